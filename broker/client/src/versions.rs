//! What a broker serves, from its ApiVersions answer, and the version a request goes out at:
//! the highest both the broker and this client speak. [`Connection::api_versions`] asks once
//! per connection; [`Connection::call_negotiated`] sends at the agreed version.
//!
//! [`Connection::api_versions`]: crate::Connection::api_versions
//! [`Connection::call_negotiated`]: crate::Connection::call_negotiated

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use kafka_protocol::protocol::VersionRange;

/// The ApiVersions version asked first; a broker that does not serve it answers in v0 with
/// UNSUPPORTED_VERSION and its range, and is asked again within that range.
pub const API_VERSIONS_MAX: i16 = 3;
/// Kafka's `UNSUPPORTED_VERSION`.
pub const UNSUPPORTED_VERSION: i16 = 35;

/// The APIs a broker advertises in ApiVersions, with their version ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SupportedApis(BTreeMap<i16, (i16, i16)>);

impl SupportedApis {
    /// From `(api, min version, max version)` triples.
    pub fn new(ranges: impl IntoIterator<Item = (ApiKey, i16, i16)>) -> Self {
        SupportedApis(
            ranges
                .into_iter()
                .map(|(key, min, max)| (key as i16, (min, max)))
                .collect(),
        )
    }

    /// What an ApiVersions response lists.
    pub fn from_response(versions: &ApiVersionsResponse) -> Self {
        SupportedApis(
            versions
                .api_keys
                .iter()
                .map(|k| (k.api_key, (k.min_version, k.max_version)))
                .collect(),
        )
    }

    /// The versions the broker serves `key` at; `None` when it does not list it.
    pub fn range(&self, key: ApiKey) -> Option<VersionRange> {
        self.0
            .get(&(key as i16))
            .map(|&(min, max)| VersionRange { min, max })
    }

    /// Whether the broker serves `key` at `version`.
    pub fn speaks(&self, key: ApiKey, version: i16) -> bool {
        self.range(key)
            .is_some_and(|r| (r.min..=r.max).contains(&version))
    }

    /// Those of `needed` (APIs at the versions a client sends) the broker does not serve.
    pub fn missing(&self, needed: &[(ApiKey, i16)]) -> Vec<(ApiKey, i16)> {
        needed
            .iter()
            .filter(|(key, version)| !self.speaks(*key, *version))
            .copied()
            .collect()
    }

    /// The highest version of `key` in `ours` the broker serves; `None` when it does not list
    /// the API or shares no version of it.
    pub fn highest_common(&self, key: ApiKey, ours: RangeInclusive<i16>) -> Option<i16> {
        let theirs = self.range(key)?;
        let common = theirs.intersect(&VersionRange {
            min: (*ours.start()).max(0),
            max: *ours.end(),
        });
        (!common.is_empty()).then_some(common.max)
    }
}

/// `ours` as a `kafka-protocol` range, within what it can encode for a message of `versions`.
pub(crate) fn our_range(ours: RangeInclusive<i16>, versions: VersionRange) -> VersionRange {
    versions.intersect(&VersionRange {
        min: *ours.start(),
        max: *ours.end(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_common_version_or_none() {
        let apis = SupportedApis::new([(ApiKey::DescribeQuorum, 0, 2), (ApiKey::Fetch, 4, 16)]);
        assert_eq!(apis.highest_common(ApiKey::DescribeQuorum, 0..=2), Some(2));
        assert_eq!(apis.highest_common(ApiKey::DescribeQuorum, 0..=5), Some(2));
        assert_eq!(apis.highest_common(ApiKey::DescribeQuorum, 0..=1), Some(1));
        assert_eq!(apis.highest_common(ApiKey::Fetch, 0..=3), None);
        assert_eq!(apis.highest_common(ApiKey::Fetch, 12..=12), Some(12));
        assert_eq!(apis.highest_common(ApiKey::Metadata, 0..=12), None);
        assert_eq!(
            apis.range(ApiKey::Fetch),
            Some(VersionRange { min: 4, max: 16 })
        );
    }

    #[test]
    fn missing_apis_are_those_absent_or_not_at_the_version_sent() {
        let apis = SupportedApis::new([(ApiKey::CreateAcls, 0, 1), (ApiKey::DescribeAcls, 0, 3)]);
        assert!(apis.speaks(ApiKey::DescribeAcls, 3));
        assert_eq!(
            apis.missing(&[
                (ApiKey::DescribeAcls, 3),
                (ApiKey::CreateAcls, 3),
                (ApiKey::DeleteAcls, 3)
            ]),
            [(ApiKey::CreateAcls, 3), (ApiKey::DeleteAcls, 3)]
        );
        assert!(SupportedApis::default().missing(&[]).is_empty());
    }
}
