//! Hanging transactions, on the wire against real brokers: with KIP-890 verification on (the
//! default) a transactional batch for a partition its transaction never added is refused with
//! INVALID_TXN_STATE and the partition's last stable offset does not move; with it off the same
//! stray batch opens a transaction nobody ends (the LSO stays behind the high watermark), which
//! DescribeProducers shows and an admin's WriteTxnMarkers abort (`kafka-transactions.sh abort`)
//! clears, after a crash and restart of the broker that rebuilt the open transaction from its log;
//! and KIP-890 part 2 (transaction version 2) spoken as a Kafka 4 client does.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, DescribeProducersRequest,
    DescribeProducersResponse, EndTxnRequest, EndTxnResponse, FetchRequest, FetchResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, GroupId, InitProducerIdRequest,
    InitProducerIdResponse, ListOffsetsRequest, ListOffsetsResponse, OffsetFetchRequest,
    OffsetFetchResponse, ProducerId, TopicName, TransactionalId, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strait_e2e::broker::{Broker, BrokerOptions};
use strait_e2e::kafka::Admin;
use strait_e2e::wire::{WireClient, produce_request, produce_result};

const TOPIC: &str = "hang";
const INVALID_TXN_STATE: i16 = 48;
const WAIT: Duration = Duration::from_secs(30);

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A transactional batch of `n` records of producer (`pid`, `epoch`) from sequence 0.
fn txn_batch(pid: i64, epoch: i16, n: usize) -> Bytes {
    txn_batch_from(pid, epoch, 0, n)
}

/// A transactional batch of `n` records of producer (`pid`, `epoch`) from sequence `seq`.
fn txn_batch_from(pid: i64, epoch: i16, seq: i32, n: usize) -> Bytes {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: seq + i as i32,
            // Now: an old timestamp would let retention move the log start past the batch.
            timestamp: now_ms,
            key: None,
            value: Some(Bytes::from(format!("stray-{i}"))),
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
    .expect("encode batch");
    buf.freeze()
}

/// InitProducerId for transactional id `id`, retried while the coordinator loads.
fn init_transactional(client: &mut WireClient, id: &str) -> (i64, i16) {
    let deadline = Instant::now() + WAIT;
    loop {
        let find: FindCoordinatorResponse = client
            .call(
                ApiKey::FindCoordinator,
                3,
                &FindCoordinatorRequest::default()
                    .with_key(s(id))
                    .with_key_type(1),
            )
            .expect("FindCoordinator");
        if find.error_code == 0 {
            let init: InitProducerIdResponse = client
                .call(
                    ApiKey::InitProducerId,
                    4,
                    &InitProducerIdRequest::default()
                        .with_transactional_id(Some(TransactionalId(s(id))))
                        .with_transaction_timeout_ms(600_000)
                        .with_producer_id(ProducerId(-1))
                        .with_producer_epoch(-1),
                )
                .expect("InitProducerId");
            if init.error_code == 0 {
                return (init.producer_id.0, init.producer_epoch);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no transaction coordinator for {id}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// (high watermark, last stable offset) of partition 0, from ListOffsets LATEST at each
/// isolation level.
fn watermarks(client: &mut WireClient) -> (i64, i64) {
    let mut latest = |isolation: i8| -> i64 {
        let response: ListOffsetsResponse = client
            .call(
                ApiKey::ListOffsets,
                7,
                &ListOffsetsRequest::default()
                    .with_replica_id((-1).into())
                    .with_isolation_level(isolation)
                    .with_topics(vec![
                        ListOffsetsTopic::default()
                            .with_name(TopicName(s(TOPIC)))
                            .with_partitions(vec![
                                ListOffsetsPartition::default()
                                    .with_partition_index(0)
                                    .with_timestamp(-1),
                            ]),
                    ]),
            )
            .expect("ListOffsets");
        let p = &response.topics[0].partitions[0];
        assert_eq!(p.error_code, 0, "ListOffsets error");
        p.offset
    };
    (latest(0), latest(1))
}

/// (producer id, epoch, coordinator epoch, open transaction's first offset) of partition 0.
fn producers(client: &mut WireClient) -> Vec<(i64, i32, i32, i64)> {
    let response: DescribeProducersResponse = client
        .call(
            ApiKey::DescribeProducers,
            0,
            &DescribeProducersRequest::default().with_topics(vec![
                TopicRequest::default()
                    .with_name(TopicName(s(TOPIC)))
                    .with_partition_indexes(vec![0]),
            ]),
        )
        .expect("DescribeProducers");
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "DescribeProducers error");
    p.active_producers
        .iter()
        .map(|s| {
            (
                s.producer_id.0,
                s.producer_epoch,
                s.coordinator_epoch,
                s.current_txn_start_offset,
            )
        })
        .collect()
}

fn setup(broker: &Broker) -> WireClient {
    Admin::new(&broker.bootstrap())
        .and_then(|a| a.create_topic(TOPIC, 1, &[]))
        .expect("create topic");
    WireClient::connect(broker.addr()).expect("connect")
}

#[test]
fn verification_refuses_a_stray_transactional_batch() {
    let broker = Broker::start(&[]).expect("broker");
    let mut client = setup(&broker);
    let (pid, epoch) = init_transactional(&mut client, "stray");
    // The transaction never added the partition: the leader asks the coordinator and refuses.
    let request = produce_request(TOPIC, 0, -1, txn_batch(pid, epoch, 3))
        .with_transactional_id(Some(TransactionalId(s("stray"))));
    let response = client.call(ApiKey::Produce, 9, &request).expect("Produce");
    let (code, _) = produce_result(&response).expect("result");
    assert_eq!(code, INVALID_TXN_STATE, "stray batch must be refused");
    assert_eq!(watermarks(&mut client), (0, 0), "nothing was appended");
    assert!(
        producers(&mut client).iter().all(|p| p.3 < 0),
        "no transaction is open"
    );
}

#[test]
fn an_admin_aborts_a_hanging_transaction_after_a_crash() {
    let mut broker = Broker::start_with(BrokerOptions::with_overrides(&[(
        "transaction.partition.verification.enable",
        "false",
    )]))
    .expect("broker");
    let mut client = setup(&broker);
    let (pid, epoch) = init_transactional(&mut client, "hanging");
    let request = produce_request(TOPIC, 0, -1, txn_batch(pid, epoch, 3))
        .with_transactional_id(Some(TransactionalId(s("hanging"))));
    let response = client.call(ApiKey::Produce, 9, &request).expect("Produce");
    assert_eq!(produce_result(&response).expect("result"), (0, 0));
    // Committed data after it stays invisible to read_committed: the LSO is stuck at 0.
    let plain = produce_request(
        TOPIC,
        0,
        -1,
        strait_e2e::wire::record_batch(&[b"after"]).expect("batch"),
    );
    let response = client.call(ApiKey::Produce, 9, &plain).expect("Produce");
    assert_eq!(produce_result(&response).expect("result"), (0, 3));
    assert_eq!(watermarks(&mut client), (4, 0));

    // A crash: the open transaction is rebuilt from the log (no clean shutdown snapshot).
    broker.kill().expect("SIGKILL");
    broker.restart().expect("restart");
    let mut client = WireClient::connect(broker.addr()).expect("reconnect");
    let deadline = Instant::now() + WAIT;
    let found = loop {
        let found = producers(&mut client);
        if !found.is_empty() || Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let hanging = found
        .iter()
        .find(|p| p.0 == pid)
        .copied()
        .unwrap_or_else(|| panic!("producer {pid} not described: {found:?}"));
    assert_eq!(hanging.3, 0, "its open transaction starts at offset 0");
    assert_eq!(
        watermarks(&mut client),
        (4, 0),
        "the LSO survived the crash"
    );

    // kafka-transactions.sh abort: WriteTxnMarkers with what DescribeProducers said.
    let abort = WriteTxnMarkersRequest::default().with_markers(vec![
        WritableTxnMarker::default()
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(hanging.1 as i16)
            .with_transaction_result(false)
            .with_coordinator_epoch(hanging.2)
            .with_topics(vec![
                WritableTxnMarkerTopic::default()
                    .with_name(TopicName(s(TOPIC)))
                    .with_partition_indexes(vec![0]),
            ]),
    ]);
    let response: WriteTxnMarkersResponse = client
        .call(ApiKey::WriteTxnMarkers, 1, &abort)
        .expect("WriteTxnMarkers");
    let code = response.markers[0].topics[0].partitions[0].error_code;
    assert_eq!(code, 0, "the admin abort was refused");
    // The marker takes offset 4; the LSO catches up with the high watermark.
    assert_eq!(watermarks(&mut client), (5, 5));
    assert!(producers(&mut client).iter().all(|p| p.3 < 0));
    broker.assert_alive().expect("broker alive");
}

fn produce_tv2(client: &mut WireClient, id: &str, partition: i32, batch: Bytes) -> i16 {
    let request = produce_request(TV2_TOPIC, partition, -1, batch)
        .with_transactional_id(Some(TransactionalId(s(id))));
    let response = client
        .call(ApiKey::Produce, 12, &request)
        .expect("Produce v12");
    produce_result(&response).expect("result").0
}

fn end_txn_v5(
    client: &mut WireClient,
    id: &str,
    pid: i64,
    epoch: i16,
    commit: bool,
) -> (i16, i64, i16) {
    let deadline = Instant::now() + WAIT;
    loop {
        let response: EndTxnResponse = client
            .call(
                ApiKey::EndTxn,
                5,
                &EndTxnRequest::default()
                    .with_transactional_id(TransactionalId(s(id)))
                    .with_producer_id(ProducerId(pid))
                    .with_producer_epoch(epoch)
                    .with_committed(commit),
            )
            .expect("EndTxn v5");
        // CONCURRENT_TRANSACTIONS: the previous transaction's markers are still being written.
        if response.error_code != 51 || Instant::now() > deadline {
            return (
                response.error_code,
                response.producer_id.0,
                response.producer_epoch,
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// (high watermark, last stable offset) of `TV2_TOPIC`-`partition` from a read_committed Fetch,
/// with the producer ids of the aborted transactions it returns from offset 0.
fn fetch_committed(client: &mut WireClient, partition: i32) -> (i64, i64, Vec<i64>) {
    let request = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_isolation_level(1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(s(TV2_TOPIC)))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let response: FetchResponse = client.call(ApiKey::Fetch, 12, &request).expect("Fetch");
    let p = &response.responses[0].partitions[0];
    assert_eq!(p.error_code, 0, "Fetch error");
    let aborted = p
        .aborted_transactions
        .iter()
        .flatten()
        .map(|a| a.producer_id.0)
        .collect();
    (p.high_watermark, p.last_stable_offset, aborted)
}

fn wait_stable(client: &mut WireClient, partition: i32) -> (i64, i64, Vec<i64>) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = fetch_committed(client, partition);
        if got.0 == got.1 || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const TV2_TOPIC: &str = "tv2";

/// KIP-890 part 2 as a Kafka 4 client speaks it: no AddPartitionsToTxn nor AddOffsetsToTxn, the
/// leader and the group coordinator add the partitions, and every EndTxn bumps the epoch.
#[test]
fn transaction_version_2_on_the_wire() {
    let broker = Broker::start(&[]).expect("broker");
    Admin::new(&broker.bootstrap())
        .and_then(|a| a.create_topic(TV2_TOPIC, 2, &[]))
        .expect("create topic");
    let mut client = WireClient::connect(broker.addr()).expect("connect");
    let versions: ApiVersionsResponse = client
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .expect("ApiVersions v3");
    let finalized = versions
        .finalized_features
        .iter()
        .find(|f| f.name.as_str() == "transaction.version")
        .map(|f| f.max_version_level);
    assert_eq!(finalized, Some(2), "transaction.version 2 is finalized");

    let id = "tv2-producer";
    let group = "tv2-group";
    let (pid, e0) = init_transactional(&mut client, id);
    // The offsets topic, for the transactional offset commit.
    let find: FindCoordinatorResponse = client
        .call(
            ApiKey::FindCoordinator,
            3,
            &FindCoordinatorRequest::default()
                .with_key(s(group))
                .with_key_type(0),
        )
        .expect("FindCoordinator");
    assert_eq!(find.error_code, 0);

    // A transaction over both partitions and the group, nothing added by hand.
    assert_eq!(
        produce_tv2(&mut client, id, 0, txn_batch_from(pid, e0, 0, 3)),
        0
    );
    assert_eq!(
        produce_tv2(&mut client, id, 1, txn_batch_from(pid, e0, 0, 2)),
        0
    );
    assert_eq!(
        fetch_committed(&mut client, 0).1,
        0,
        "the open transaction holds the LSO"
    );
    let commit = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s(id)))
        .with_group_id(GroupId(s(group)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(e0)
        .with_generation_id(-1)
        .with_member_id(s(""))
        .with_topics(vec![
            TxnOffsetCommitRequestTopic::default()
                .with_name(TopicName(s(TV2_TOPIC)))
                .with_partitions(vec![
                    TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(42)
                        .with_committed_leader_epoch(-1),
                ]),
        ]);
    let deadline = Instant::now() + WAIT;
    loop {
        let response: TxnOffsetCommitResponse = client
            .call(ApiKey::TxnOffsetCommit, 5, &commit)
            .expect("TxnOffsetCommit v5");
        let code = response.topics[0].partitions[0].error_code;
        if code == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "TxnOffsetCommit v5 failed: {code}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, pid1, e1) = end_txn_v5(&mut client, id, pid, e0, true);
    assert_eq!(
        (code, pid1, e1),
        (0, pid, e0 + 1),
        "EndTxn v5 bumps the epoch"
    );
    assert_eq!(
        wait_stable(&mut client, 0),
        (4, 4, vec![]),
        "3 records and the marker"
    );
    assert_eq!(wait_stable(&mut client, 1), (3, 3, vec![]));
    // The retry of the EndTxn (its answer was lost) gets the bumped epoch again.
    assert_eq!(end_txn_v5(&mut client, id, pid, e0, true), (0, pid, e0 + 1));
    // The committed offset became the group's with the marker.
    let deadline = Instant::now() + WAIT;
    loop {
        let response: OffsetFetchResponse = client
            .call(
                ApiKey::OffsetFetch,
                1,
                &OffsetFetchRequest::default()
                    .with_group_id(GroupId(s(group)))
                    .with_topics(Some(vec![
                        OffsetFetchRequestTopic::default()
                            .with_name(TopicName(s(TV2_TOPIC)))
                            .with_partition_indexes(vec![0]),
                    ])),
            )
            .expect("OffsetFetch");
        let offset = response.topics[0].partitions[0].committed_offset;
        if offset == 42 {
            break;
        }
        assert!(Instant::now() < deadline, "offset not committed: {offset}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The old epoch is fenced: its late batch cannot open a transaction.
    let late = produce_tv2(&mut client, id, 0, txn_batch_from(pid, e0, 3, 1));
    assert!(
        late == 47 || late == 90,
        "a batch of the fenced epoch must be refused, got {late}"
    );
    // The next transaction, at the new epoch from sequence 0, aborted: read_committed skips it.
    assert_eq!(
        produce_tv2(&mut client, id, 1, txn_batch_from(pid, e1, 0, 2)),
        0
    );
    let (code, _, e2) = end_txn_v5(&mut client, id, pid, e1, false);
    assert_eq!((code, e2), (0, e1 + 1));
    let (hw, lso, aborted) = wait_stable(&mut client, 1);
    assert_eq!(
        (hw, lso),
        (6, 6),
        "3 + 2 aborted records + the abort marker"
    );
    assert_eq!(
        aborted,
        vec![pid],
        "read_committed gets the aborted transaction"
    );
}
