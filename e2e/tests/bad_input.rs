//! Hostile and broken bytes through raw TCP: each must close (or be answered on) that one
//! connection only, while the process stays up and other clients keep working.

use std::time::Duration;

use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, ProduceResponse,
};
use strait_e2e::wire::{
    WireClient, encode_request, frame, produce_request, produce_result, record_batch,
};
use strait_e2e::{Admin, Broker, topic_partitions};

const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Produce version used for raw requests: v9 is flexible and names topics (v13 uses ids).
const PRODUCE_VERSION: i16 = 9;

fn start() -> Broker {
    Broker::start(&[
        ("num.partitions", "1"),
        ("socket.request.max.bytes", "1048576"),
        ("message.max.bytes", "10000"),
    ])
    .expect("start broker")
}

/// The broker is alive and serves a new raw connection and an rdkafka client.
fn assert_healthy(broker: &mut Broker) {
    broker.assert_alive().expect("broker process alive");
    let mut fresh = WireClient::connect(broker.addr()).expect("second connection");
    let versions = fresh
        .api_versions()
        .expect("ApiVersions on a fresh connection");
    assert!(versions.contains_key(&(ApiKey::Produce as i16)));
    Admin::new(&broker.bootstrap())
        .and_then(|a| a.topics())
        .expect("rdkafka metadata");
    broker
        .assert_alive()
        .expect("broker process alive after client");
}

fn produce_version(client: &mut WireClient) -> i16 {
    let versions = client.api_versions().expect("api versions");
    let (min, max) = versions[&(ApiKey::Produce as i16)];
    assert!(
        min <= 3,
        "Produce v3 (record batch v2) supported: {min}..{max}"
    );
    PRODUCE_VERSION.min(max)
}

#[test]
fn oversize_frame_closes_connection() {
    let mut broker = start();
    let mut client = WireClient::connect(broker.addr()).expect("connect");
    // 2 MiB claimed against a 1 MiB socket.request.max.bytes: no need to send the body.
    client
        .send_raw(&(2 * 1024 * 1024i32).to_be_bytes())
        .expect("send length");
    client.send_raw(&[0u8; 1024]).ok();
    client.expect_closed(CLOSE_TIMEOUT).expect("closed");
    assert_healthy(&mut broker);
}

#[test]
fn negative_length_closes_connection() {
    let mut broker = start();
    let mut client = WireClient::connect(broker.addr()).expect("connect");
    client.send_raw(&(-1i32).to_be_bytes()).expect("send");
    client.expect_closed(CLOSE_TIMEOUT).expect("closed");
    assert_healthy(&mut broker);
}

#[test]
fn garbage_closes_connection() {
    let mut broker = start();
    // An HTTP request: its first four bytes read as a ~1.2 GB length.
    let mut client = WireClient::connect(broker.addr()).expect("connect");
    client
        .send_raw(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("send");
    client
        .expect_closed(CLOSE_TIMEOUT)
        .expect("closed after HTTP");
    // A well-framed body of garbage: api key 0x4741 does not exist.
    let mut client = WireClient::connect(broker.addr()).expect("connect");
    client.send_raw(&frame(b"GARBAGE!GARBAGE!")).expect("send");
    client
        .expect_closed(CLOSE_TIMEOUT)
        .expect("closed after garbage frame");
    // A frame too short to hold a request header.
    let mut client = WireClient::connect(broker.addr()).expect("connect");
    client.send_raw(&frame(&[0, 18])).expect("send");
    client
        .expect_closed(CLOSE_TIMEOUT)
        .expect("closed after short frame");
    assert_healthy(&mut broker);
}

#[test]
fn truncated_frame_closes_connection() {
    let mut broker = start();
    let mut client = WireClient::connect(broker.addr()).expect("connect");
    let request = encode_request(
        ApiKey::ApiVersions as i16,
        0,
        1,
        &ApiVersionsRequest::default(),
        0,
    )
    .expect("encode");
    // Claim 100 bytes, send the real (shorter) request, then close our side.
    let mut bytes = 100i32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&request[4..]);
    client.send_raw(&bytes).expect("send");
    client.shutdown_write().expect("shutdown");
    client
        .expect_closed(CLOSE_TIMEOUT)
        .expect("closed without an answer");
    assert_healthy(&mut broker);
}

#[test]
fn unknown_api_key_closes_connection() {
    let mut broker = start();
    let mut client = WireClient::connect(broker.addr()).expect("connect");
    client
        .send_request(9999, 0, &ApiVersionsRequest::default(), 0)
        .expect("send");
    client.expect_closed(CLOSE_TIMEOUT).expect("closed");
    assert_healthy(&mut broker);
}

#[test]
fn unknown_produce_version_closes_connection() {
    let mut broker = start();
    let mut client = WireClient::connect(broker.addr()).expect("connect");
    let batch = record_batch(&[b"v"]).expect("batch");
    let request = produce_request("versions", 0, 1, batch);
    client
        .send_request(ApiKey::Produce as i16, 99, &request, PRODUCE_VERSION)
        .expect("send");
    client.expect_closed(CLOSE_TIMEOUT).expect("closed");
    assert_healthy(&mut broker);
}

#[test]
fn api_versions_v99_gets_v0_answer_with_unsupported_version() {
    let mut broker = start();
    let mut client = WireClient::connect(broker.addr()).expect("connect");
    let correlation = client
        .send_request(
            ApiKey::ApiVersions as i16,
            99,
            &ApiVersionsRequest::default(),
            3,
        )
        .expect("send");
    // Kafka answers with a v0 body (header v0) so that any client can read it.
    let response: ApiVersionsResponse = client
        .read_response(correlation, 0, 0)
        .expect("v0 ApiVersions response");
    assert_eq!(response.error_code, 35, "UNSUPPORTED_VERSION");
    let keys: Vec<i16> = response.api_keys.iter().map(|k| k.api_key).collect();
    assert!(
        keys.contains(&(ApiKey::ApiVersions as i16)),
        "api list: {keys:?}"
    );
    assert!(
        keys.contains(&(ApiKey::Produce as i16)),
        "api list: {keys:?}"
    );
    assert_healthy(&mut broker);
}

#[test]
fn metadata_with_huge_topic_count_is_rejected() {
    let mut broker = start();
    let mut client = WireClient::connect(broker.addr()).expect("connect");
    // Metadata v1: the body is just the topics array; claim 2^31-1 entries and send none.
    let mut request = encode_request(
        ApiKey::Metadata as i16,
        1,
        7,
        &MetadataRequest::default(),
        1,
    )
    .expect("encode");
    request.truncate(request.len() - 4);
    request.extend_from_slice(&i32::MAX.to_be_bytes());
    let len = (request.len() - 4) as i32;
    request[..4].copy_from_slice(&len.to_be_bytes());
    client.send_raw(&request).expect("send");
    client.expect_closed(CLOSE_TIMEOUT).expect("closed");
    assert_healthy(&mut broker);
}

#[test]
fn corrupt_crc_is_answered_with_corrupt_message() {
    let mut broker = start();
    let mut client = WireClient::connect(broker.addr()).expect("connect");
    let version = produce_version(&mut client);
    // Kafka's Produce does not create topics; Metadata does.
    topic_partitions(&broker.bootstrap(), "crc").expect("create topic");
    let batch = record_batch(&[b"one", b"two", b"three"]).expect("batch");
    let mut corrupt = batch.to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x55;
    let request = produce_request("crc", 0, 1, corrupt.into());
    let response: ProduceResponse = client
        .call(ApiKey::Produce, version, &request)
        .expect("produce answered");
    let (error, _) = produce_result(&response).expect("partition result");
    assert_eq!(error, 2, "CORRUPT_MESSAGE");
    // The connection stays usable and nothing was appended.
    let request = produce_request("crc", 0, 1, batch);
    let response: ProduceResponse = client
        .call(ApiKey::Produce, version, &request)
        .expect("produce on the same connection");
    assert_eq!(produce_result(&response).expect("result"), (0, 0));
    assert_healthy(&mut broker);
}

#[test]
fn oversize_batch_is_answered_with_message_too_large() {
    let mut broker = start();
    let mut client = WireClient::connect(broker.addr()).expect("connect");
    let version = produce_version(&mut client);
    topic_partitions(&broker.bootstrap(), "big").expect("create topic");
    let big = vec![7u8; 20_000];
    let batch = record_batch(&[&big]).expect("batch");
    let request = produce_request("big", 0, 1, batch);
    let response: ProduceResponse = client
        .call(ApiKey::Produce, version, &request)
        .expect("produce answered");
    assert_eq!(
        produce_result(&response).expect("result").0,
        10,
        "MESSAGE_TOO_LARGE"
    );
    let small = record_batch(&[b"small"]).expect("batch");
    let response: ProduceResponse = client
        .call(
            ApiKey::Produce,
            version,
            &produce_request("big", 0, 1, small),
        )
        .expect("produce on the same connection");
    assert_eq!(produce_result(&response).expect("result"), (0, 0));
    assert_healthy(&mut broker);
}

#[test]
fn api_versions_v0_on_the_same_connection_after_answers() {
    let mut broker = start();
    let mut client = WireClient::connect(broker.addr()).expect("connect");
    for _ in 0..3 {
        let response: ApiVersionsResponse = client
            .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
            .expect("ApiVersions v3");
        assert_eq!(response.error_code, 0);
    }
    assert_healthy(&mut broker);
}
