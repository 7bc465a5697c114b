//! Incremental fetch sessions (KIP-227) against a real broker, over the raw protocol (librdkafka
//! does not use them; the Java client and Strait's own followers do): a full fetch opens a
//! session, incremental fetches name only what changed and get back only partitions with
//! something new, forgotten partitions leave the session, wrong epochs and unknown ids get
//! Kafka's errors, and epoch -1 closes the session.

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strait_e2e::Broker;
use strait_e2e::kafka::Admin;
use strait_e2e::wire::{WireClient, produce_request, produce_result, record_batch};

const TOPIC: &str = "sessions";
/// Topic names in requests: Fetch v12 is the last version without topic ids.
const VERSION: i16 = 12;
const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const INVALID_FETCH_SESSION_EPOCH: i16 = 71;

fn name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

fn fetch(session_id: i32, epoch: i32, partitions: &[(i32, i64)], forget: &[i32]) -> FetchRequest {
    let mut topics = Vec::new();
    if !partitions.is_empty() {
        topics.push(
            FetchTopic::default().with_topic(name()).with_partitions(
                partitions
                    .iter()
                    .map(|(p, offset)| {
                        FetchPartition::default()
                            .with_partition(*p)
                            .with_fetch_offset(*offset)
                            .with_partition_max_bytes(1 << 20)
                    })
                    .collect(),
            ),
        );
    }
    let mut forgotten = Vec::new();
    if !forget.is_empty() {
        forgotten.push(
            ForgottenTopic::default()
                .with_topic(name())
                .with_partitions(forget.to_vec()),
        );
    }
    FetchRequest::default()
        .with_replica_id((-1).into())
        // Short waits: an incremental fetch with nothing new answers after max_wait.
        .with_max_wait_ms(100)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_session_id(session_id)
        .with_session_epoch(epoch)
        .with_topics(topics)
        .with_forgotten_topics_data(forgotten)
}

/// Partition index → (record bytes, high watermark) of every partition the response names.
fn answered(response: &FetchResponse) -> Vec<(i32, usize, i64)> {
    let mut out: Vec<(i32, usize, i64)> = response
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| {
            assert_eq!(p.error_code, 0, "partition {}", p.partition_index);
            (
                p.partition_index,
                p.records.as_ref().map_or(0, |r| r.len()),
                p.high_watermark,
            )
        })
        .collect();
    out.sort();
    out
}

fn produce(client: &mut WireClient, partition: i32, value: &[u8]) {
    let batch = record_batch(&[value]).unwrap();
    let response: ProduceResponse = client
        .call(
            ApiKey::Produce,
            7,
            &produce_request(TOPIC, partition, -1, batch),
        )
        .expect("produce");
    assert_eq!(produce_result(&response).unwrap().0, 0);
}

#[test]
fn incremental_fetch_sessions_answer_only_what_changed() {
    let broker = Broker::start(&[]).expect("broker");
    Admin::new(&broker.bootstrap())
        .unwrap()
        .create_topic(TOPIC, 3, &[])
        .unwrap();
    let mut client = WireClient::connect(broker.addr()).unwrap();
    let mut call = |request: &FetchRequest| -> FetchResponse {
        client
            .call(ApiKey::Fetch, VERSION, request)
            .expect("fetch response")
    };
    let mut producer = WireClient::connect(broker.addr()).unwrap();
    produce(&mut producer, 0, b"zero");

    // A full fetch with epoch 0 opens a session and answers every partition.
    let opened = call(&fetch(0, 0, &[(0, 0), (1, 0), (2, 0)], &[]));
    assert_eq!(opened.error_code, 0);
    let session = opened.session_id;
    assert_ne!(session, 0, "a session was opened");
    let first = answered(&opened);
    assert_eq!(first.iter().map(|a| a.0).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert!(
        first[0].1 > 0 && first[0].2 == 1,
        "partition 0's record: {first:?}"
    );

    // Incremental, moving partition 0's offset on: nothing is new anywhere, nothing answered.
    let quiet = call(&fetch(session, 1, &[(0, 1)], &[]));
    assert_eq!(quiet.error_code, 0);
    assert_eq!(quiet.session_id, session);
    assert_eq!(answered(&quiet), vec![]);

    // A record on partition 2 (still in the session at offset 0, not named in the request).
    produce(&mut producer, 2, b"two");
    let news = call(&fetch(session, 2, &[], &[]));
    let got = answered(&news);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].0, got[0].2), (2, 1));
    assert!(got[0].1 > 0);

    // Forget partition 2 and move on: a new record there is no longer reported.
    produce(&mut producer, 2, b"two again");
    let forgot = call(&fetch(session, 3, &[], &[2]));
    assert_eq!(answered(&forgot), vec![]);

    // A replayed or skipped epoch, and an unknown session, are refused as Kafka does.
    assert_eq!(
        call(&fetch(session, 3, &[], &[])).error_code,
        INVALID_FETCH_SESSION_EPOCH
    );
    assert_eq!(
        call(&fetch(session + 1_000_000, 1, &[], &[])).error_code,
        FETCH_SESSION_ID_NOT_FOUND
    );

    // Epoch -1 closes it (a sessionless full fetch); the id is then unknown.
    let closed = call(&fetch(session, -1, &[(0, 0)], &[]));
    assert_eq!((closed.error_code, closed.session_id), (0, 0));
    assert_eq!(answered(&closed).len(), 1);
    assert_eq!(
        call(&fetch(session, 4, &[], &[])).error_code,
        FETCH_SESSION_ID_NOT_FOUND
    );
}
