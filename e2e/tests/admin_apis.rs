//! Admin APIs newer Kafka tools call, on the wire against a real broker: DescribeTopicPartitions
//! (KIP-966) pages through topics in name order with a cursor, answers unknown topics with an
//! error, and describes each partition as Metadata does.

use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use kafka_protocol::messages::{
    ApiKey, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strait_e2e::broker::Broker;
use strait_e2e::kafka::Admin;
use strait_e2e::wire::WireClient;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

fn name(n: &str) -> TopicName {
    TopicName(StrBytes::from_string(n.to_string()))
}

/// A (topic, partition) pair.
type Tp = (String, i32);

/// One page: (topic, partition) pairs described, topics answered with an error, next cursor.
fn page(
    client: &mut WireClient,
    topics: &[&str],
    limit: i32,
    cursor: Option<Tp>,
) -> (Vec<Tp>, Vec<(String, i16)>, Option<Tp>) {
    let request = DescribeTopicPartitionsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|t| TopicRequest::default().with_name(name(t)))
                .collect(),
        )
        .with_response_partition_limit(limit)
        .with_cursor(cursor.map(|(t, p)| {
            Cursor::default()
                .with_topic_name(name(&t))
                .with_partition_index(p)
        }));
    let response: DescribeTopicPartitionsResponse = client
        .call(ApiKey::DescribeTopicPartitions, 0, &request)
        .expect("DescribeTopicPartitions");
    let mut described = Vec::new();
    let mut errors = Vec::new();
    for t in response.topics {
        let topic = t.name.map(|n| n.0.to_string()).unwrap_or_default();
        if t.error_code != 0 {
            errors.push((topic, t.error_code));
            continue;
        }
        assert!(!t.topic_id.is_nil(), "{topic} has its topic id");
        for p in t.partitions {
            assert_eq!(p.error_code, 0);
            assert_eq!(
                p.leader_id.0, 1,
                "the single node leads {topic}-{}",
                p.partition_index
            );
            assert_eq!(p.replica_nodes.len(), 1);
            assert_eq!(p.isr_nodes.len(), 1);
            described.push((topic.clone(), p.partition_index));
        }
    }
    let next = response
        .next_cursor
        .map(|c| (c.topic_name.0.to_string(), c.partition_index));
    (described, errors, next)
}

#[test]
fn describe_topic_partitions_pages_with_a_cursor() {
    let broker = Broker::start(&[]).expect("broker");
    let admin = Admin::new(&broker.bootstrap()).expect("admin");
    for (topic, partitions) in [("dtp-a", 3), ("dtp-b", 2), ("dtp-c", 1)] {
        admin
            .create_topic(topic, partitions, &[])
            .expect("create topic");
    }
    let mut client = WireClient::connect(broker.addr()).expect("connect");
    let named = ["dtp-c", "dtp-missing", "dtp-a", "dtp-b"];

    // Everything in one page when the limit allows it, in name order.
    let (all, errors, next) = page(&mut client, &named, 100, None);
    let expected: Vec<(String, i32)> = [("dtp-a", 0), ("dtp-a", 1), ("dtp-a", 2), ("dtp-b", 0)]
        .into_iter()
        .chain([("dtp-b", 1), ("dtp-c", 0)])
        .map(|(t, p)| (t.to_string(), p))
        .collect();
    assert_eq!(all, expected);
    assert_eq!(
        errors,
        vec![("dtp-missing".to_string(), UNKNOWN_TOPIC_OR_PARTITION)]
    );
    assert_eq!(next, None);

    // Pages of two partitions follow the cursor and add up to the same list.
    let mut paged = Vec::new();
    let mut cursor = None;
    for _ in 0..10 {
        let (got, _, next) = page(&mut client, &named, 2, cursor.clone());
        assert!(got.len() <= 2, "the limit holds: {got:?}");
        paged.extend(got);
        cursor = next;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(paged, expected);
    assert!(cursor.is_none(), "pagination ended");

    // No names: every topic (the three, and internal ones if any).
    let (every, _, _) = page(&mut client, &[], 2000, None);
    for p in &expected {
        assert!(every.contains(p), "{p:?} missing from the unnamed listing");
    }
}
