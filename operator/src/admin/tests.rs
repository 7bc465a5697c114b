use super::*;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    ApiVersionsResponse, BrokerId, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsResponse,
    DescribeQuorumResponse,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn versions(keys: &[(ApiKey, i16, i16)]) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(
        keys.iter()
            .map(|(k, min, max)| {
                ApiVersion::default()
                    .with_api_key(*k as i16)
                    .with_min_version(*min)
                    .with_max_version(*max)
            })
            .collect(),
    )
}

#[test]
fn describe_quorum_version_is_the_highest_both_speak() {
    let version = |keys| describe_quorum_version(&versions(keys));
    assert_eq!(version(&[(ApiKey::DescribeQuorum, 0, 2)]), Some(2));
    assert_eq!(version(&[(ApiKey::DescribeQuorum, 0, 5)]), Some(2));
    assert_eq!(version(&[(ApiKey::DescribeQuorum, 0, 1)]), Some(1));
    // Missing, or only newer versions than this client speaks.
    assert_eq!(version(&[(ApiKey::Metadata, 0, 12)]), None);
    assert_eq!(version(&[(ApiKey::DescribeQuorum, 3, 4)]), None);
}

fn quorum(top: i16, partition: Option<(i16, i32)>) -> DescribeQuorumResponse {
    use kafka_protocol::messages::describe_quorum_response::{PartitionData, TopicData};
    DescribeQuorumResponse::default()
        .with_error_code(top)
        .with_topics(
            partition
                .map(|(code, leader)| {
                    TopicData::default()
                        .with_topic_name(topic_name(METADATA_TOPIC))
                        .with_partitions(vec![
                            PartitionData::default()
                                .with_partition_index(0)
                                .with_error_code(code)
                                .with_leader_id(BrokerId(leader)),
                        ])
                })
                .into_iter()
                .collect(),
        )
}

#[test]
fn quorum_leader_or_none_when_the_cluster_cannot_say() {
    assert_eq!(
        quorum_leader(&quorum(0, Some((0, 1000)))).ok(),
        Some(Some(1000))
    );
    assert_eq!(quorum_leader(&quorum(0, Some((0, -1)))).ok(), Some(None));
    assert_eq!(quorum_leader(&quorum(0, None)).ok(), Some(None));
    assert_eq!(
        quorum_leader(&quorum(UNSUPPORTED_VERSION, None)).ok(),
        Some(None)
    );
    assert_eq!(
        quorum_leader(&quorum(0, Some((UNSUPPORTED_VERSION, -1)))).ok(),
        Some(None)
    );
    // Any other error is an error (INVALID_REQUEST: a broker that runs alone).
    assert!(matches!(
        quorum_leader(&quorum(42, None)),
        Err(AdminError::Kafka { code: 42, .. })
    ));
    assert!(matches!(
        quorum_leader(&quorum(0, Some((3, -1)))),
        Err(AdminError::Kafka { code: 3, .. })
    ));
}

#[test]
fn missing_apis_are_those_absent_or_not_at_the_version_sent() {
    // Strait's broker today (in part): topics, configs, SCRAM credentials and ACLs (v1-3), no
    // quota API.
    let strait = SupportedApis::from_response(&versions(&[
        (ApiKey::CreateTopics, 2, 7),
        (ApiKey::DescribeConfigs, 1, 4),
        (ApiKey::DescribeUserScramCredentials, 0, 0),
        (ApiKey::AlterUserScramCredentials, 0, 0),
        (ApiKey::DescribeAcls, 1, 3),
        (ApiKey::CreateAcls, 1, 3),
        (ApiKey::DeleteAcls, 1, 3),
    ]));
    assert!(strait.speaks(ApiKey::CreateTopics, 7));
    assert!(strait.missing(SCRAM_APIS).is_empty());
    assert!(strait.missing(ACL_APIS).is_empty());
    assert_eq!(strait.missing(QUOTA_APIS), QUOTA_APIS);
    // Before ACLs it served none of the ACL APIs.
    let before_acls = SupportedApis::from_response(&versions(&[
        (ApiKey::CreateTopics, 2, 7),
        (ApiKey::AlterUserScramCredentials, 0, 0),
    ]));
    assert_eq!(before_acls.missing(ACL_APIS), ACL_APIS);
    // Before SASL it served no SCRAM API either.
    let before = SupportedApis::from_response(&versions(&[(ApiKey::CreateTopics, 2, 7)]));
    assert_eq!(before.missing(SCRAM_APIS), SCRAM_APIS);
    // Listed, but only older versions than this client sends.
    let old = SupportedApis::new([
        (ApiKey::DescribeAcls, 0, 3),
        (ApiKey::CreateAcls, 0, 1),
        (ApiKey::DeleteAcls, 0, 3),
    ]);
    assert_eq!(old.missing(ACL_APIS), [(ApiKey::CreateAcls, 3)]);
}

#[test]
fn frames_for_tests_round_trip() {
    let request = CreateTopicsRequest::default().with_timeout_ms(5);
    let frame = encode_frame(ApiKey::CreateTopics, 7, "t", &request).expect("encode");
    let len = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
    assert_eq!(usize::try_from(len).ok(), Some(frame.len() - 4));
    // Api key 19 (CreateTopics), version 7.
    assert_eq!(&frame[4..8], &[0, 19, 0, 7]);
    let response = CreateTopicsResponse::default().with_throttle_time_ms(3);
    let answer = frame::encode_response(1, 7, &response).expect("encode response");
    let back: CreateTopicsResponse = decode_response(&answer[4..], 7).expect("decode");
    assert_eq!(back, response);
    assert!(matches!(
        decode_response::<CreateTopicsResponse>(&answer[4..7], 7),
        Err(AdminError::Protocol(_))
    ));
}

/// What a fake broker answers to one request: the frame for the version asked, echoing the
/// correlation id.
type Answer = Box<dyn Fn(i32, i16) -> Vec<u8> + Send>;

fn answer<R: Encodable + HeaderVersion + Send + 'static>(response: R) -> Answer {
    Box::new(move |correlation, version| {
        frame::encode_response(correlation, version, &response).expect("encode")
    })
}

/// A fake broker answering each request (over any number of connections) with the next of
/// `answers`; returns its address and the api keys and versions it was asked.
async fn fake_broker(answers: Vec<Answer>) -> (String, tokio::task::JoinHandle<Vec<(i16, i16)>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    let server = tokio::spawn(async move {
        let mut answers = answers.into_iter();
        let mut asked = Vec::new();
        while answers.len() > 0 {
            let Ok((mut stream, _)) = listener.accept().await else {
                break;
            };
            while let Ok(len) = stream.read_i32().await {
                let mut body = vec![0u8; usize::try_from(len).expect("len")];
                stream.read_exact(&mut body).await.expect("body");
                let version = i16::from_be_bytes([body[2], body[3]]);
                let correlation = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                asked.push((i16::from_be_bytes([body[0], body[1]]), version));
                let Some(answer) = answers.next() else { break };
                let frame = answer(correlation, version);
                stream.write_all(&frame).await.expect("write");
            }
        }
        asked
    });
    (address, server)
}

#[tokio::test]
async fn active_controller_over_the_wire() {
    // DescribeQuorum v1 at most: the client asks v1, on the same connection, and reads the
    // leader.
    let (address, server) = fake_broker(vec![
        answer(versions(&[(ApiKey::DescribeQuorum, 0, 1)])),
        answer(quorum(0, Some((0, 2000)))),
    ])
    .await;
    let leader = WireAdmin::new(&address).active_controller().await;
    assert_eq!(leader.ok(), Some(Some(2000)));
    assert_eq!(
        server.await.expect("server"),
        [
            (ApiKey::ApiVersions as i16, 3),
            (ApiKey::DescribeQuorum as i16, 1)
        ]
    );
    // Not in ApiVersions: never asked.
    let (address, server) = fake_broker(vec![answer(versions(&[(ApiKey::Metadata, 0, 12)]))]).await;
    let leader = WireAdmin::new(&address).active_controller().await;
    assert_eq!(leader.ok(), Some(None));
    assert_eq!(server.await.expect("server").len(), 1);
    // Listed, but answered UNSUPPORTED_VERSION.
    let (address, server) = fake_broker(vec![
        answer(versions(&[(ApiKey::DescribeQuorum, 0, 2)])),
        answer(quorum(UNSUPPORTED_VERSION, None)),
    ])
    .await;
    let leader = WireAdmin::new(&address).active_controller().await;
    assert_eq!(leader.ok(), Some(None));
    assert_eq!(
        server.await.expect("server")[1],
        (ApiKey::DescribeQuorum as i16, 2)
    );
}

#[tokio::test]
async fn supported_apis_over_the_wire() {
    let (address, server) = fake_broker(vec![answer(versions(&[
        (ApiKey::Metadata, 0, 12),
        (ApiKey::AlterUserScramCredentials, 0, 0),
    ]))])
    .await;
    let apis = WireAdmin::new(&address)
        .supported_apis()
        .await
        .expect("apis");
    assert!(apis.speaks(ApiKey::AlterUserScramCredentials, 0));
    assert!(!apis.speaks(ApiKey::CreateAcls, 3));
    assert_eq!(
        server.await.expect("server"),
        [(ApiKey::ApiVersions as i16, 3)]
    );
}

#[tokio::test]
async fn every_call_checks_the_codes_of_its_answer() {
    let exists = CreateTopicsResponse::default().with_topics(vec![
        CreatableTopicResult::default()
            .with_name(topic_name("a"))
            .with_error_code(TOPIC_ALREADY_EXISTS)
            .with_error_message(Some(sb("exists"))),
    ]);
    let absent = DeleteTopicsResponse::default().with_responses(vec![
        DeletableTopicResult::default()
            .with_name(Some(topic_name("a")))
            .with_error_code(UNKNOWN_TOPIC_OR_PARTITION),
    ]);
    let refused = absent.clone().with_responses(vec![
        DeletableTopicResult::default()
            .with_name(Some(topic_name("a")))
            .with_error_code(41),
    ]);
    let (address, server) =
        fake_broker(vec![answer(exists), answer(absent), answer(refused)]).await;
    let admin = WireAdmin::new(&address);
    let created = admin.create_topic("a", 1, 1, &BTreeMap::new()).await;
    match created {
        Err(AdminError::Kafka {
            operation,
            resource,
            code: TOPIC_ALREADY_EXISTS,
            message,
        }) => {
            assert_eq!(
                (operation.as_str(), resource.as_str(), message.as_deref()),
                ("CreateTopics", "a", Some("exists"))
            );
        }
        other => panic!("{other:?}"),
    }
    // An absent topic is what deleting wants; another code is an error.
    admin.delete_topic("a").await.expect("absent is fine");
    let deleted = admin.delete_topic("a").await;
    assert!(
        matches!(deleted, Err(AdminError::Kafka { code: 41, .. })),
        "{deleted:?}"
    );
    assert_eq!(server.await.expect("server").len(), 3);
}

#[tokio::test]
async fn unreachable_cluster_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let admin = WireAdmin::new(&address);
    let err = admin.delete_topic("x").await.unwrap_err();
    assert!(matches!(err, AdminError::Connect { .. }), "{err}");
    let err = WireAdmin::new("").cluster_id().await.unwrap_err();
    assert!(matches!(err, AdminError::Connect { .. }), "{err}");
}

#[test]
fn bad_tls_settings_are_tls_errors() {
    let err = tls_config("", "").unwrap_err();
    assert_eq!(err.to_string(), "TLS settings: no CA certificate");
}
