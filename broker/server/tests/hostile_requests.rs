//! The request path under hostile input, in-process and deterministic: valid requests of every
//! implemented API and version, then thousands of mutations of them (bit flips, truncations,
//! huge counts, garbage), each through `handle_frame` on a real broker with real logs. Any handler
//! panic is a failure, and the broker must still serve a valid request afterwards.
//! The same entry point is fuzzed without bounds by `broker/server/fuzz` (cargo fuzz).

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};
use strait_broker::api::{Origin, Outcome, handle_frame};

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn frame<R: Encodable>(key: ApiKey, version: i16, body: &R) -> Option<Bytes> {
    let mut buf = BytesMut::new();
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("hostile")));
    header
        .encode(&mut buf, key.request_header_version(version))
        .ok()?;
    body.encode(&mut buf, version).ok()?;
    Some(buf.freeze())
}

fn topic(name: &'static str) -> TopicName {
    TopicName(StrBytes::from_static_str(name))
}

/// A valid request of every implemented API at every version kafka-protocol can encode.
fn seeds() -> Vec<Bytes> {
    use kafka_protocol::messages::*;
    let mut out = Vec::new();
    let metadata = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(topic("hostile"))),
    ]));
    let records = {
        // One valid uncompressed batch with one record, as a client would send it.
        let mut b = BytesMut::new();
        let record = [0u8, 0, 0, 1, 2, b'v', 0]; // attributes, timestamp delta, offset delta, key length -1, value length 1, "v", no headers
        let mut body = BytesMut::new();
        body.put_i16(0); // attributes
        body.put_i32(0); // last offset delta
        body.put_i64(1_700_000_000_000);
        body.put_i64(1_700_000_000_000);
        body.put_i64(-1);
        body.put_i16(-1);
        body.put_i32(-1);
        body.put_i32(1);
        body.put_u8((record.len() as u8) << 1);
        body.put_slice(&record);
        b.put_i64(0);
        b.put_i32((4 + 1 + 4 + body.len()) as i32);
        b.put_i32(-1);
        b.put_i8(2);
        b.put_u32(crc32c_of(&body));
        b.put_slice(&body);
        b.freeze()
    };
    let produce = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(topic("hostile"))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default().with_records(Some(records)),
                ]),
        ]);
    let fetch = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(topic("hostile"))
                .with_partitions(vec![
                    fetch_request::FetchPartition::default().with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let list_offsets = ListOffsetsRequest::default().with_topics(vec![
        list_offsets_request::ListOffsetsTopic::default()
            .with_name(topic("hostile"))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default().with_timestamp(-1),
            ]),
    ]);
    let create = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(topic("hostile-created"))
            .with_num_partitions(2)
            .with_replication_factor(1),
    ]);
    let describe = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("hostile")),
    ]);
    let alter = AlterConfigsRequest::default().with_resources(vec![
        alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("hostile"))
            .with_configs(vec![
                alter_configs_request::AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("retention.ms"))
                    .with_value(Some(StrBytes::from_static_str("86400000"))),
            ]),
    ]);
    let incremental = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("hostile"))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("cleanup.policy"))
                    .with_config_operation(2)
                    .with_value(Some(StrBytes::from_static_str("compact"))),
            ]),
    ]);
    let partitions = CreatePartitionsRequest::default().with_topics(vec![
        create_partitions_request::CreatePartitionsTopic::default()
            .with_name(topic("hostile"))
            .with_count(3),
    ]);
    let delete_records = DeleteRecordsRequest::default().with_topics(vec![
        delete_records_request::DeleteRecordsTopic::default()
            .with_name(topic("hostile"))
            .with_partitions(vec![
                delete_records_request::DeleteRecordsPartition::default().with_offset(0),
            ]),
    ]);
    let delete_topics = DeleteTopicsRequest::default()
        .with_topic_names(vec![topic("hostile-created")])
        .with_topics(vec![
            delete_topics_request::DeleteTopicState::default()
                .with_name(Some(topic("hostile-created"))),
        ]);
    for v in 0..=4 {
        out.extend(frame(
            ApiKey::ApiVersions,
            v,
            &ApiVersionsRequest::default(),
        ));
    }
    for v in 0..=12 {
        out.extend(frame(ApiKey::Metadata, v, &metadata));
    }
    for v in 3..=12 {
        out.extend(frame(ApiKey::Produce, v, &produce));
    }
    for v in 4..=12 {
        out.extend(frame(ApiKey::Fetch, v, &fetch));
    }
    for v in 1..=9 {
        out.extend(frame(ApiKey::ListOffsets, v, &list_offsets));
    }
    for v in 2..=7 {
        out.extend(frame(ApiKey::CreateTopics, v, &create));
    }
    for v in 1..=4 {
        out.extend(frame(ApiKey::DescribeConfigs, v, &describe));
    }
    for v in 0..=2 {
        out.extend(frame(ApiKey::AlterConfigs, v, &alter));
        out.extend(frame(ApiKey::DeleteRecords, v, &delete_records));
    }
    for v in 0..=1 {
        out.extend(frame(ApiKey::IncrementalAlterConfigs, v, &incremental));
        out.extend(frame(
            ApiKey::DescribeCluster,
            v,
            &DescribeClusterRequest::default().with_endpoint_type(1),
        ));
    }
    for v in 0..=3 {
        out.extend(frame(ApiKey::CreatePartitions, v, &partitions));
    }
    for v in 1..=6 {
        out.extend(frame(ApiKey::DeleteTopics, v, &delete_topics));
    }
    let epochs = kafka_protocol::messages::OffsetForLeaderEpochRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_topics(vec![
            kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                .with_topic(topic("hostile"))
                .with_partitions(vec![
                    kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_leader_epoch(0),
                ]),
        ]);
    for v in 2..=4 {
        out.extend(frame(ApiKey::OffsetForLeaderEpoch, v, &epochs));
    }
    let elect =
        kafka_protocol::messages::ElectLeadersRequest::default().with_topic_partitions(Some(vec![
            kafka_protocol::messages::elect_leaders_request::TopicPartitions::default()
                .with_topic(topic("hostile"))
                .with_partitions(vec![0]),
        ]));
    for v in 0..=2 {
        out.extend(frame(ApiKey::ElectLeaders, v, &elect));
    }
    let reassign = kafka_protocol::messages::AlterPartitionReassignmentsRequest::default()
        .with_topics(vec![
            kafka_protocol::messages::alter_partition_reassignments_request::ReassignableTopic::default()
                .with_name(topic("hostile"))
                .with_partitions(vec![
                    kafka_protocol::messages::alter_partition_reassignments_request::ReassignablePartition::default()
                        .with_replicas(Some(vec![kafka_protocol::messages::BrokerId(1)])),
                ]),
        ]);
    out.extend(frame(ApiKey::AlterPartitionReassignments, 0, &reassign));
    out.extend(frame(
        ApiKey::ListPartitionReassignments,
        0,
        &kafka_protocol::messages::ListPartitionReassignmentsRequest::default(),
    ));
    let quorum = kafka_protocol::messages::DescribeQuorumRequest::default().with_topics(vec![
        kafka_protocol::messages::describe_quorum_request::TopicData::default()
            .with_topic_name(topic("__cluster_metadata"))
            .with_partitions(vec![
                kafka_protocol::messages::describe_quorum_request::PartitionData::default(),
            ]),
    ]);
    for v in 0..=2 {
        out.extend(frame(ApiKey::DescribeQuorum, v, &quorum));
    }
    out
}

fn crc32c_of(data: &[u8]) -> u32 {
    // Bitwise CRC-32C (Castagnoli); test-only, so speed does not matter.
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn mutate(rng: &mut Rng, seed: &Bytes) -> Bytes {
    let mut v = seed.to_vec();
    match rng.below(6) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                if !v.is_empty() {
                    let i = rng.below(v.len());
                    v[i] ^= 1 << rng.below(8);
                }
            }
        }
        1 => v.truncate(rng.below(v.len() + 1)),
        2 => {
            // Plant a huge or negative count/length somewhere after the header.
            if v.len() > 12 {
                let i = 8 + rng.below(v.len() - 11);
                let n: i32 = [i32::MAX, -2, 0x7fff_0000, -1][rng.below(4)];
                let end = (i + 4).min(v.len());
                v[i..end].copy_from_slice(&n.to_be_bytes()[..end - i]);
            }
        }
        3 => {
            if v.len() > 9 {
                let i = 8 + rng.below(v.len() - 8);
                v[i] = [0xff, 0x80, 0x7f, 0x00][rng.below(4)];
            }
        }
        4 => {
            let n = rng.below(64);
            v.extend((0..n).map(|_| rng.next() as u8));
        }
        _ => v = (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
    }
    Bytes::from(v)
}

/// How long the test waits for an answer. Requests that change metadata are answered once the
/// change is committed by the metadata quorum and applied (thousands of partitions' logs
/// created or deleted): waiting for them keeps one mutated request's work from piling up under
/// the next ones. Anything else answers at once or waits on purpose (a JoinGroup for its
/// rebalance), which is not a failure.
fn answer_within(frame: &[u8]) -> Duration {
    const METADATA_CHANGES: [i16; 6] = [3, 19, 20, 33, 37, 44];
    let key = frame.get(..2).map(|k| i16::from_be_bytes([k[0], k[1]]));
    if key.is_some_and(|k| METADATA_CHANGES.contains(&k)) {
        Duration::from_secs(20)
    } else {
        Duration::from_millis(200)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_requests_never_panic_and_broker_keeps_serving() {
    // Mutated admin requests legitimately create topics with thousands of partitions; on tmpfs
    // that costs no fsyncs, which keeps the run short without skipping any request.
    let dir = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let (config, _) =
        strait_config::BrokerConfig::load(None, &[format!("log.dirs={}", dir.path().display())])
            .unwrap();
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let broker = strait_broker::start(config, stopped).await.unwrap().broker;
    // As a plaintext connection: Fetch answers may come as zero-copy parts.
    let origin = Origin::new("PLAINTEXT", None, true);
    let seeds = seeds();
    assert!(
        seeds.len() > 60,
        "expected seeds for every API/version, got {}",
        seeds.len()
    );
    // The unmutated seeds are valid: each gets an answer.
    for s in &seeds {
        match handle_frame(&broker, s.clone(), &origin).await {
            Outcome::Respond(_) | Outcome::RespondParts(_) => {}
            other => panic!(
                "valid request (api key {}, version {}) not answered: {other:?}",
                i16::from_be_bytes([s[0], s[1]]),
                i16::from_be_bytes([s[2], s[3]])
            ),
        }
    }
    let mut rng = Rng(0x5eed_5eed_1234_5678);
    let mut closed = 0;
    for i in 0..20_000 {
        let seed = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, seed);
        // A mutated JoinGroup may legitimately wait for other members for its rebalance timeout;
        // waiting is not a failure, a panic is.
        let Ok(outcome) = tokio::time::timeout(
            answer_within(&input),
            handle_frame(&broker, input.clone(), &origin),
        )
        .await
        else {
            continue;
        };
        if let Outcome::Close(reason) = outcome {
            assert!(
                !reason.starts_with("internal error"),
                "iteration {i}: handler panicked on {input:?}: {reason}"
            );
            closed += 1;
        }
    }
    assert!(
        closed > 0,
        "no mutation was rejected; the mutator is broken"
    );
    // Still fully functional.
    match handle_frame(&broker, seeds[0].clone(), &origin).await {
        Outcome::Respond(_) => {}
        other => panic!("broker no longer answers: {other:?}"),
    }
}
