//! The broker's side of linked mirror topics (`strait.mirror.source`), driven over the wire the
//! way `strait-mirror` drives it, on a three-node cluster: producers are refused; link appends
//! (transactional id `__strait_mirror_link`) keep the source's offsets, gaps and leader epochs
//! byte for byte on every replica, and one below the log end is answered with where the log
//! ends; the key can only be given at creation; the failover (IncrementalAlterConfigs DELETE)
//! keeps an empty marker, stops the link, and the leader stamps its own writes above the
//! mirrored epochs (the controller raises its epoch) so that after the leader is killed and
//! restarted all three logs are still identical.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, ProduceResponse, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strait_e2e::cluster::{Cluster, ClusterSpec, READY_TIMEOUT};
use strait_e2e::segments::{partition_dir, segment_files};
use strait_e2e::wait_for;
use strait_e2e::wire::{WireClient, produce_request, produce_result, record_batch};

const TOPIC: &str = "linked";
const LINK: &str = "__strait_mirror_link";
const TIMEOUT: Duration = Duration::from_secs(60);
const INVALID_REQUEST: i16 = 42;
const INVALID_CONFIG: i16 = 40;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;

/// A batch as the source's leader wrote it: `count` records from `base`, stamped with the
/// source's leader `epoch`.
fn source_batch(base: i64, epoch: i32, count: usize) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: epoch,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: base + i as i64,
            sequence: -1,
            timestamp: 1_700_000_000_000 + base + i as i64,
            key: Some(Bytes::from(format!("k{}", base + i as i64))),
            value: Some(Bytes::from(format!("source record {}", base + i as i64))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode");
    buf.freeze()
}

fn link_append(client: &mut WireClient, batch: Bytes) -> (i16, i64) {
    let request = produce_request(TOPIC, 0, -1, batch)
        .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str(LINK))));
    let response: ProduceResponse = client
        .call(ApiKey::Produce, 9, &request)
        .expect("link append");
    produce_result(&response).unwrap()
}

fn produce(client: &mut WireClient, value: &[u8]) -> (i16, i64) {
    let batch = record_batch(&[value]).unwrap();
    let response: ProduceResponse = client
        .call(ApiKey::Produce, 9, &produce_request(TOPIC, 0, -1, batch))
        .expect("produce");
    produce_result(&response).unwrap()
}

/// The raw record bytes a consumer's Fetch gets from `offset`.
fn fetch_raw(client: &mut WireClient, offset: i64) -> Bytes {
    let request = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let response: FetchResponse = client.call(ApiKey::Fetch, 12, &request).expect("fetch");
    let p = &response.responses[0].partitions[0];
    assert_eq!(p.error_code, 0, "fetch error");
    p.records.clone().unwrap_or_default()
}

fn alter(client: &mut WireClient, topic: &str, op: i8, value: Option<&str>) -> i16 {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configs(vec![
                AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("strait.mirror.source"))
                    .with_config_operation(op)
                    .with_value(value.map(|v| StrBytes::from_string(v.to_string()))),
            ]),
    ]);
    let response: IncrementalAlterConfigsResponse = client
        .call(ApiKey::IncrementalAlterConfigs, 1, &request)
        .expect("alter configs");
    response.responses[0].error_code
}

/// The partition's leader as the live nodes' metadata names it, connected; `None` while it is
/// not known or not reachable.
fn try_leader_client(cluster: &mut Cluster) -> Option<(u32, i32, WireClient)> {
    let info = cluster.partition_info(TOPIC).ok()?.into_iter().next()?;
    let id = u32::try_from(info.leader).ok()?;
    let client = WireClient::connect(cluster.node(id).ok()?.addr().ok()?).ok()?;
    Some((id, info.leader_epoch, client))
}

fn leader_client(cluster: &mut Cluster) -> (u32, i32, WireClient) {
    wait_for(TIMEOUT, "a reachable leader", || try_leader_client(cluster)).expect("leader")
}

/// Every replica's segment files of the partition, concatenated.
fn replica_log(cluster: &Cluster, id: u32) -> Vec<u8> {
    let dir = partition_dir(cluster.node(id).unwrap().log_dir(), TOPIC, 0);
    let mut out = Vec::new();
    for (_, path) in segment_files(&dir).unwrap_or_default() {
        out.extend(std::fs::read(path).unwrap_or_default());
    }
    out
}

/// Waits until the three replicas' logs are the same bytes, and returns them.
fn identical_replicas(cluster: &Cluster, at_least: usize) -> Vec<u8> {
    wait_for(TIMEOUT, "every replica's log to be identical", || {
        let logs: Vec<Vec<u8>> = cluster
            .ids()
            .iter()
            .map(|id| replica_log(cluster, *id))
            .collect();
        (logs[0].len() >= at_least && logs.iter().all(|l| *l == logs[0])).then(|| logs[0].clone())
    })
    .expect("identical replicas")
}

/// The partition leader epoch of each batch in `records`.
fn batch_epochs(records: &Bytes) -> Vec<(i64, i32)> {
    let mut buf = records.clone();
    let mut out = Vec::new();
    while buf.len() >= 61 {
        let set = RecordBatchDecoder::decode(&mut buf).expect("decode");
        if let Some(first) = set.records.first() {
            out.push((first.offset, first.partition_leader_epoch));
        }
    }
    out
}

#[test]
fn link_appends_keep_the_source_log_and_failover_stamps_above_it() {
    let mut cluster = Cluster::start(ClusterSpec::combined(&["a", "b", "c"])).expect("cluster");
    cluster.wait_all_ready(READY_TIMEOUT).expect("ready");
    cluster
        .create_topic(
            TOPIC,
            1,
            3,
            &[
                ("strait.mirror.source", "east:orders"),
                ("min.insync.replicas", "2"),
            ],
        )
        .expect("create the mirror topic");
    cluster
        .create_topic("plain", 1, 3, &[])
        .expect("create an ordinary topic");
    let (_, _, mut client) = leader_client(&mut cluster);

    // Producers are refused, saying why.
    assert_eq!(produce(&mut client, b"not allowed").0, INVALID_REQUEST);

    // Link appends: the source's offsets (with a compaction gap) and epochs, kept.
    let batches = [
        source_batch(0, 3, 3),
        source_batch(3, 3, 2),
        source_batch(10, 7, 2),
    ];
    for b in &batches {
        let base = batch_epochs(b)[0].0;
        assert_eq!(link_append(&mut client, b.clone()), (0, base));
    }
    // A link append below the log end is told where the log ends.
    assert_eq!(
        link_append(&mut client, batches[1].clone()),
        (OFFSET_OUT_OF_RANGE, 12)
    );
    let sent: Vec<u8> = batches.iter().flat_map(|b| b.iter().copied()).collect();
    assert_eq!(fetch_raw(&mut client, 0).as_ref(), sent.as_slice());
    assert_eq!(identical_replicas(&cluster, sent.len()), sent);

    // The key is given at creation only, and never redirected.
    assert_eq!(
        alter(&mut client, "plain", 0, Some("east:plain")),
        INVALID_CONFIG
    );
    assert_eq!(
        alter(&mut client, TOPIC, 0, Some("west:orders")),
        INVALID_CONFIG
    );

    // Failover: DELETE keeps an empty marker; the link is refused from then on.
    assert_eq!(alter(&mut client, TOPIC, 1, None), 0);
    assert_eq!(
        wait_for(TIMEOUT, "the link to be refused after failover", || {
            let (code, _) = link_append(&mut client, source_batch(12, 7, 1));
            (code != 0).then_some(code)
        })
        .unwrap(),
        INVALID_REQUEST
    );
    // The first writes wait (retriably) for the controller to raise the epoch above 7.
    let mut refusals = 0;
    let offset = wait_for(TIMEOUT, "a produce to the failed-over topic", || {
        let (_, _, mut client) = try_leader_client(&mut cluster)?;
        match produce(&mut client, b"after failover") {
            (0, offset) => Some(offset),
            (NOT_LEADER_OR_FOLLOWER, _) => {
                refusals += 1;
                None
            }
            (code, _) => panic!("produce after failover: error {code}"),
        }
    })
    .unwrap();
    assert_eq!(offset, 12);
    assert!(refusals >= 1, "the first write should wait for the raise");
    let (leader, epoch, mut client) = leader_client(&mut cluster);
    assert!(
        epoch >= 8,
        "leader epoch {epoch} not raised above the source's 7"
    );
    let fetched = fetch_raw(&mut client, 0);
    let epochs = batch_epochs(&fetched);
    assert_eq!(&fetched[..sent.len()], sent.as_slice());
    assert_eq!(epochs.last().map(|(o, _)| *o), Some(12));
    assert!(
        epochs.last().unwrap().1 >= 8,
        "own batch stamped {epochs:?}"
    );

    // The leader dies: the new one writes, the old one rejoins, and all logs agree.
    cluster.kill(leader).unwrap();
    let offset = wait_for(TIMEOUT, "a produce through the new leader", || {
        let (id, _, mut client) = try_leader_client(&mut cluster)?;
        if id == leader {
            return None;
        }
        match produce(&mut client, b"new leader") {
            (0, offset) => Some(offset),
            _ => None,
        }
    })
    .unwrap();
    assert_eq!(offset, 13);
    cluster.restart(leader).unwrap();
    cluster.wait_all_ready(READY_TIMEOUT).unwrap();
    let log = identical_replicas(&cluster, fetched.len() + 1);
    assert!(log.starts_with(&sent));
}
