//! Mirror lag as the operator measures it through its admin clients: for each mirrored source
//! topic, the sum over its partitions of the source's high watermark minus that of the same
//! partition of the mirrored topic on the target (a partition not yet there counts from 0).

use std::collections::BTreeMap;

use strait_crds::mirror::MirroredTopic;

use crate::admin::{AdminError, KafkaAdmin};
use crate::mirror::validate::Validated;

/// At most this many topics are listed in the status (the object must stay small); the
/// `Ready` message counts every one.
pub const MAX_STATUS_TOPICS: usize = 500;

/// Records of `source` (high watermark by partition) not yet in `target`.
pub fn lag(source: &BTreeMap<i32, i64>, target: &BTreeMap<i32, i64>) -> i64 {
    source
        .iter()
        .map(|(p, end)| (end - target.get(p).copied().unwrap_or(0)).max(0))
        .sum()
}

/// The lag of every topic of the source that `validated` mirrors, in name order.
pub async fn measure<S: KafkaAdmin, T: KafkaAdmin>(
    source: &S,
    target: &T,
    validated: &Validated,
) -> Result<Vec<MirroredTopic>, AdminError> {
    let mut topics: Vec<String> = source
        .all_partitions()
        .await?
        .into_keys()
        .map(|(topic, _)| topic)
        .filter(|t| validated.mirrors(t))
        .collect();
    topics.dedup();
    let mut out = Vec::with_capacity(topics.len());
    for name in topics {
        let target_topic = validated.target_topic(&name);
        let behind = lag(
            &source.end_offsets(&name).await?,
            &target.end_offsets(&target_topic).await?,
        );
        out.push(MirroredTopic {
            name,
            target_topic,
            lag_records: behind,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_sums_partitions_and_counts_missing_ones_from_zero() {
        let source = BTreeMap::from([(0, 100), (1, 50), (2, 7)]);
        let target = BTreeMap::from([(0, 90), (1, 50)]);
        assert_eq!(lag(&source, &target), 10 + 7);
        // A target ahead (records written there directly) is not negative lag.
        assert_eq!(lag(&BTreeMap::from([(0, 5)]), &BTreeMap::from([(0, 9)])), 0);
        assert_eq!(lag(&BTreeMap::new(), &target), 0);
    }
}
