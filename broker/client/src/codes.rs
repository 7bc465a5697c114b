//! Where each response keeps its error codes (top level, per topic, per resource), so that a
//! caller checks a whole answer in one step ([`ResponseErrors::check`], or
//! [`Connection::call_checked`]) instead of walking it after every call. Implemented for the
//! responses of the admin APIs; add a response here when a caller needs it.
//!
//! [`Connection::call_checked`]: crate::Connection::call_checked

use kafka_protocol::messages::{
    AlterClientQuotasResponse, AlterPartitionReassignmentsResponse,
    AlterUserScramCredentialsResponse, ApiKey, ApiVersionsResponse, CreateAclsResponse,
    CreatePartitionsResponse, CreateTopicsResponse, DeleteAclsResponse, DeleteTopicsResponse,
    DescribeAclsResponse, DescribeConfigsResponse, DescribeQuorumResponse,
    IncrementalAlterConfigsResponse, ListPartitionReassignmentsResponse, MetadataResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::error::KafkaError;

/// One error code of a response, with the resource it is about when the response names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code<'a> {
    /// Topic, user, config resource or quota entity.
    pub resource: Option<&'a str>,
    /// Kafka error code, 0 for none.
    pub code: i16,
    /// The broker's message.
    pub message: Option<&'a str>,
}

fn code<'a>(resource: Option<&'a str>, code: i16, message: &'a Option<StrBytes>) -> Code<'a> {
    Code {
        resource,
        code,
        message: message.as_deref(),
    }
}

/// A response whose error codes can be checked as a whole.
pub trait ResponseErrors {
    /// The API this responds to.
    const API: ApiKey;

    /// Every error code the response carries, the top-level one first.
    fn codes(&self) -> Vec<Code<'_>>;

    /// The first code that is neither 0 nor in `tolerated`, as an error.
    fn check(&self, tolerated: &[i16]) -> Result<(), KafkaError> {
        match self
            .codes()
            .into_iter()
            .find(|c| c.code != 0 && !tolerated.contains(&c.code))
        {
            Some(c) => KafkaError::check(Self::API, c.resource, c.code, c.message),
            None => Ok(()),
        }
    }
}

impl ResponseErrors for ApiVersionsResponse {
    const API: ApiKey = ApiKey::ApiVersions;
    fn codes(&self) -> Vec<Code<'_>> {
        vec![code(None, self.error_code, &None)]
    }
}

/// The top-level and per-topic codes; per-partition codes (a leader being elected) describe
/// the partition, they do not fail the request.
impl ResponseErrors for MetadataResponse {
    const API: ApiKey = ApiKey::Metadata;
    fn codes(&self) -> Vec<Code<'_>> {
        let topics = self.topics.iter().map(|t| {
            let name = t.name.as_ref().map(|n| n.0.as_str());
            code(name, t.error_code, &None)
        });
        std::iter::once(code(None, self.error_code, &None))
            .chain(topics)
            .collect()
    }
}

impl ResponseErrors for CreateTopicsResponse {
    const API: ApiKey = ApiKey::CreateTopics;
    fn codes(&self) -> Vec<Code<'_>> {
        self.topics
            .iter()
            .map(|t| code(Some(&t.name.0), t.error_code, &t.error_message))
            .collect()
    }
}

impl ResponseErrors for DeleteTopicsResponse {
    const API: ApiKey = ApiKey::DeleteTopics;
    fn codes(&self) -> Vec<Code<'_>> {
        self.responses
            .iter()
            .map(|t| {
                let name = t.name.as_ref().map(|n| n.0.as_str());
                code(name, t.error_code, &t.error_message)
            })
            .collect()
    }
}

impl ResponseErrors for CreatePartitionsResponse {
    const API: ApiKey = ApiKey::CreatePartitions;
    fn codes(&self) -> Vec<Code<'_>> {
        self.results
            .iter()
            .map(|t| code(Some(&t.name.0), t.error_code, &t.error_message))
            .collect()
    }
}

impl ResponseErrors for DescribeConfigsResponse {
    const API: ApiKey = ApiKey::DescribeConfigs;
    fn codes(&self) -> Vec<Code<'_>> {
        self.results
            .iter()
            .map(|r| code(Some(&r.resource_name), r.error_code, &r.error_message))
            .collect()
    }
}

impl ResponseErrors for IncrementalAlterConfigsResponse {
    const API: ApiKey = ApiKey::IncrementalAlterConfigs;
    fn codes(&self) -> Vec<Code<'_>> {
        self.responses
            .iter()
            .map(|r| code(Some(&r.resource_name), r.error_code, &r.error_message))
            .collect()
    }
}

impl ResponseErrors for AlterPartitionReassignmentsResponse {
    const API: ApiKey = ApiKey::AlterPartitionReassignments;
    fn codes(&self) -> Vec<Code<'_>> {
        let partitions = self.responses.iter().flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| code(Some(&t.name.0), p.error_code, &p.error_message))
        });
        std::iter::once(code(None, self.error_code, &self.error_message))
            .chain(partitions)
            .collect()
    }
}

impl ResponseErrors for ListPartitionReassignmentsResponse {
    const API: ApiKey = ApiKey::ListPartitionReassignments;
    fn codes(&self) -> Vec<Code<'_>> {
        vec![code(None, self.error_code, &self.error_message)]
    }
}

impl ResponseErrors for AlterUserScramCredentialsResponse {
    const API: ApiKey = ApiKey::AlterUserScramCredentials;
    fn codes(&self) -> Vec<Code<'_>> {
        self.results
            .iter()
            .map(|r| code(Some(&r.user), r.error_code, &r.error_message))
            .collect()
    }
}

impl ResponseErrors for CreateAclsResponse {
    const API: ApiKey = ApiKey::CreateAcls;
    fn codes(&self) -> Vec<Code<'_>> {
        self.results
            .iter()
            .map(|r| code(None, r.error_code, &r.error_message))
            .collect()
    }
}

impl ResponseErrors for DescribeAclsResponse {
    const API: ApiKey = ApiKey::DescribeAcls;
    fn codes(&self) -> Vec<Code<'_>> {
        vec![code(None, self.error_code, &self.error_message)]
    }
}

impl ResponseErrors for DeleteAclsResponse {
    const API: ApiKey = ApiKey::DeleteAcls;
    fn codes(&self) -> Vec<Code<'_>> {
        self.filter_results
            .iter()
            .flat_map(|f| {
                let matching = f
                    .matching_acls
                    .iter()
                    .map(|m| code(Some(&m.resource_name), m.error_code, &m.error_message));
                std::iter::once(code(None, f.error_code, &f.error_message)).chain(matching)
            })
            .collect()
    }
}

impl ResponseErrors for AlterClientQuotasResponse {
    const API: ApiKey = ApiKey::AlterClientQuotas;
    fn codes(&self) -> Vec<Code<'_>> {
        self.entries
            .iter()
            .map(|e| {
                let entity = e.entity.first().and_then(|x| x.entity_name.as_deref());
                code(entity, e.error_code, &e.error_message)
            })
            .collect()
    }
}

impl ResponseErrors for DescribeQuorumResponse {
    const API: ApiKey = ApiKey::DescribeQuorum;
    fn codes(&self) -> Vec<Code<'_>> {
        let partitions = self.topics.iter().flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| code(Some(&t.topic_name.0), p.error_code, &p.error_message))
        });
        std::iter::once(code(None, self.error_code, &self.error_message))
            .chain(partitions)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponsePartition, MetadataResponseTopic,
    };

    fn name(s: &'static str) -> TopicName {
        TopicName(StrBytes::from_static_str(s))
    }

    #[test]
    fn the_first_code_not_tolerated_is_the_error() {
        let deleted = DeleteTopicsResponse::default().with_responses(vec![
            DeletableTopicResult::default().with_name(Some(name("a"))),
            DeletableTopicResult::default()
                .with_name(Some(name("b")))
                .with_error_code(3),
            DeletableTopicResult::default()
                .with_name(Some(name("c")))
                .with_error_code(41)
                .with_error_message(Some(StrBytes::from_static_str("not controller"))),
        ]);
        let e = deleted.check(&[]).unwrap_err();
        assert_eq!((e.code, e.resource.as_deref()), (3, Some("b")));
        let e = deleted.check(&[3]).unwrap_err();
        assert_eq!(
            (e.api, e.code, e.message.as_deref()),
            (ApiKey::DeleteTopics, 41, Some("not controller"))
        );
        deleted.check(&[3, 41]).unwrap();
    }

    #[test]
    fn metadata_partition_codes_are_state_not_failure() {
        let metadata = MetadataResponse::default().with_topics(vec![
            MetadataResponseTopic::default()
                .with_name(Some(name("t")))
                .with_partitions(vec![
                    MetadataResponsePartition::default().with_error_code(5),
                ]),
        ]);
        metadata.check(&[]).unwrap();
        let mut unknown = metadata;
        unknown.topics[0].error_code = 3;
        assert_eq!(
            unknown.check(&[]).unwrap_err().resource.as_deref(),
            Some("t")
        );
    }
}
