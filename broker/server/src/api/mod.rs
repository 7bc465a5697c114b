//! Request dispatch: parses the request header, checks the API key and version against what
//! Strait implements, decodes the body with `kafka-protocol`, routes it to the handler of that API
//! and encodes the response frame. Anything that cannot be parsed closes only its own connection.

pub mod acls;
pub mod admin_topics;
pub mod authz;
pub mod client_quotas;
pub mod configs;
pub mod consumer_groups;
pub mod delete_records;
pub mod describe_cluster;
pub mod fetch;
pub mod groups;
pub mod leader_epoch;
pub mod list_offsets;
pub mod log_dirs;
pub mod metadata;
pub mod offsets;
pub mod produce;
pub mod producer_id;
pub mod quorum;
pub mod reassignments;
pub mod scram_credentials;
pub mod topic_partitions;
pub mod transactions;
pub mod versions;

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use futures::FutureExt;
use kafka_protocol::messages::{self, ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
use tracing::{Instrument, error};

use crate::broker::Broker;
use crate::frame::{finish_frame, start_frame};
use crate::zero_copy::{ResponsePart, SpliceBuf, Splices};

/// What the connection does after a request.
pub enum Outcome {
    /// Send this complete frame (length prefix included).
    Respond(Bytes),
    /// Send this frame, given as memory and file regions (a zero-copy Fetch response).
    RespondParts(Vec<ResponsePart>),
    /// Send nothing (Produce with acks=0).
    NoResponse,
    /// Close the connection; the reason is logged by the caller.
    Close(String),
    /// The request's effects are done (an acks=all produce appended its records); its response
    /// comes when this resolves. The connection reads on meanwhile and answers in order.
    Deferred(Pending),
}

/// The rest of a deferred request.
pub type Pending = std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + 'static>>;

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Respond(b) => f.debug_tuple("Respond").field(&b.len()).finish(),
            Outcome::RespondParts(p) => f.debug_tuple("RespondParts").field(&p.len()).finish(),
            Outcome::NoResponse => f.write_str("NoResponse"),
            Outcome::Close(reason) => f.debug_tuple("Close").field(reason).finish(),
            Outcome::Deferred(_) => f.write_str("Deferred"),
        }
    }
}

/// Per-request facts handlers may need.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    /// Name of the listener the request arrived on (Metadata answers with that listener's endpoints).
    pub listener: String,
    /// The client's address as Kafka shows it in group descriptions ("/127.0.0.1").
    pub client_host: String,
    /// Whether record data may go to the socket straight from the files (plaintext listeners).
    pub zero_copy: bool,
    /// Kafka's principal of the connection: `User:<name>` once authenticated, else
    /// `User:ANONYMOUS`.
    pub principal: String,
    /// The connection's mute (quota throttling): no request is read before this instant.
    pub mute: Mute,
}

/// When a connection may read its next request (KIP-219: a throttled client's channel is muted
/// for its throttle time).
#[derive(Debug, Clone, Default)]
pub struct Mute(Arc<std::sync::Mutex<Option<std::time::Instant>>>);

impl Mute {
    /// Mutes for `throttle` from now (a longer mute already set stays).
    pub fn apply(&self, throttle: crate::quota::Throttle) {
        if !throttle.is_throttled() {
            return;
        }
        let until = std::time::Instant::now() + throttle.0;
        let mut slot = self.0.lock().expect("mute");
        if slot.is_none_or(|t| t < until) {
            *slot = Some(until);
        }
    }

    /// The instant reading may resume, if it is still ahead.
    pub fn until(&self) -> Option<std::time::Instant> {
        let mut slot = self.0.lock().expect("mute");
        match *slot {
            Some(t) if t > std::time::Instant::now() => Some(t),
            _ => {
                *slot = None;
                None
            }
        }
    }
}

impl RequestContext {
    /// The user name quotas are kept for (the principal's name).
    pub fn quota_user(&self) -> &str {
        self.principal
            .split_once(':')
            .map_or(self.principal.as_str(), |(_, n)| n)
    }

    pub fn quota_client(&self) -> &str {
        self.client_id.as_deref().unwrap_or("")
    }

    /// Records `amount` against this client's `kind` quota; mutes the connection when throttled.
    pub fn record_quota(
        &self,
        broker: &Broker,
        kind: crate::quota::Kind,
        amount: f64,
    ) -> crate::quota::Throttle {
        let image = broker.node().image();
        let throttle =
            broker
                .quotas
                .record(&image, kind, self.quota_user(), self.quota_client(), amount);
        if throttle.is_throttled() {
            broker.metrics.throttled(kind.label(), throttle.0);
            self.mute.apply(throttle);
        }
        throttle
    }
}

/// Kafka's principal of an unauthenticated connection.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// Where a request came from.
#[derive(Debug, Clone)]
pub struct Origin {
    pub listener: String,
    pub client_host: String,
    /// See `RequestContext::zero_copy`.
    pub zero_copy: bool,
    /// See `RequestContext::principal`.
    pub principal: String,
    /// See `RequestContext::mute`.
    pub mute: Mute,
}

impl Origin {
    pub fn new(listener: &str, peer: Option<std::net::SocketAddr>, zero_copy: bool) -> Self {
        Origin {
            listener: listener.to_string(),
            client_host: peer.map(|p| format!("/{}", p.ip())).unwrap_or_default(),
            zero_copy,
            principal: ANONYMOUS.to_string(),
            mute: Mute::default(),
        }
    }

    /// The connection authenticated as `user`.
    pub fn set_user(&mut self, user: &str) {
        if self.principal.strip_prefix("User:") != Some(user) {
            self.principal = format!("User:{user}");
        }
    }
}

pub async fn handle_frame(broker: &Arc<Broker>, frame: Bytes, origin: &Origin) -> Outcome {
    if frame.len() < 8 {
        return Outcome::Close(format!(
            "request of {} bytes is shorter than a request header",
            frame.len()
        ));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Ok(api_key) = ApiKey::try_from(key) else {
        return Outcome::Close(format!("unknown API key {key}"));
    };
    let Some((min, max)) = versions::supported(api_key) else {
        return Outcome::Close(format!("API {api_key:?} (key {key}) is not implemented"));
    };
    if version < min || version > max {
        if api_key == ApiKey::ApiVersions {
            // KIP-511: answer an unknown ApiVersions version with a v0 response that carries
            // UNSUPPORTED_VERSION and our ranges, so the client can retry with a version we know.
            return encode(correlation_id, 0, &versions::unsupported_version_response());
        }
        return Outcome::Close(format!(
            "{api_key:?} version {version} is not supported (supported: {min}..={max})"
        ));
    }
    let mut buf = frame;
    let header = match RequestHeader::decode(&mut buf, api_key.request_header_version(version)) {
        Ok(h) => h,
        Err(e) => return Outcome::Close(format!("malformed {api_key:?} v{version} header: {e:#}")),
    };
    let started = std::time::Instant::now();
    let ctx = RequestContext {
        api_version: version,
        correlation_id,
        client_id: header.client_id.as_ref().map(|s| s.to_string()),
        listener: origin.listener.clone(),
        client_host: origin.client_host.clone(),
        zero_copy: origin.zero_copy,
        principal: origin.principal.clone(),
        mute: origin.mute.clone(),
    };
    // One span per request: exported over OTLP when configured (see `telemetry`).
    let span = tracing::info_span!(
        "kafka.request",
        otel.name = %format_args!("{api_key:?}"),
        kafka.api = ?api_key,
        kafka.api_version = version,
        kafka.client_id = ctx.client_id.as_deref().unwrap_or(""),
        kafka.correlation_id = correlation_id,
    );
    let outcome = guarded(
        route(broker, api_key, buf, &ctx).instrument(span.clone()),
        api_key,
        version,
    )
    .await;
    // request_percentage: handling time in percent of one thread. Kafka exempts the requests
    // that must get through to be throttled at all, and brokers' own.
    let exempt = matches!(
        api_key,
        ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
    );
    if !exempt {
        ctx.record_quota(
            broker,
            crate::quota::Kind::Request,
            started.elapsed().as_secs_f64() * 100.0,
        );
    }
    let name = format!("{api_key:?}");
    broker
        .metrics
        .requests
        .with_label_values(&[name.as_str()])
        .inc();
    let duration = broker
        .metrics
        .request_duration
        .with_label_values(&[name.as_str()]);
    match outcome {
        Outcome::Deferred(rest) => Outcome::Deferred(Box::pin(async move {
            let outcome = guarded(rest.instrument(span), api_key, version).await;
            duration.observe(started.elapsed().as_secs_f64());
            outcome
        })),
        outcome => {
            duration.observe(started.elapsed().as_secs_f64());
            outcome
        }
    }
}

/// A panic in a handler is a Strait bug; it must cost one connection, never the broker.
async fn guarded(
    handler: impl std::future::Future<Output = Outcome>,
    api_key: ApiKey,
    version: i16,
) -> Outcome {
    match std::panic::AssertUnwindSafe(handler).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(_) => {
            error!(api = ?api_key, version, "request handler panicked; closing the connection");
            Outcome::Close(format!("internal error handling {api_key:?} v{version}"))
        }
    }
}

fn decode<T: Decodable>(buf: &mut Bytes, api_key: ApiKey, version: i16) -> Result<T, Outcome> {
    T::decode(buf, version)
        .map_err(|e| Outcome::Close(format!("malformed {api_key:?} v{version} request: {e:#}")))
}

/// Encodes a response frame: length, response header (its version depends on the API version),
/// body.
pub fn encode<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    body: &R,
) -> Outcome {
    let size = body.compute_size(version).unwrap_or(0);
    let mut buf = BytesMut::with_capacity(size + 16);
    let at = start_frame(&mut buf);
    if let Err(outcome) = encode_message(&mut buf, correlation_id, version, body) {
        return outcome;
    }
    finish_frame(&mut buf, at);
    Outcome::Respond(buf.freeze())
}

/// As `encode`, for a response whose record data stays in files (see `crate::zero_copy`).
fn encode_spliced<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    body: &R,
    splices: Splices,
) -> Outcome {
    let mut buf = SpliceBuf::new(1024, splices);
    buf.put_i32(0);
    if let Err(outcome) = encode_message(&mut buf, correlation_id, version, body) {
        return outcome;
    }
    let Ok(len) = i32::try_from(buf.frame_len() - 4) else {
        return Outcome::Close("response larger than a frame can say".into());
    };
    buf.patch(0..4, &len.to_be_bytes());
    Outcome::RespondParts(buf.into_parts())
}

/// Response header and body into `buf`; an encoding failure closes the connection.
fn encode_message<R: Encodable + HeaderVersion, B: ByteBufMut>(
    buf: &mut B,
    correlation_id: i32,
    version: i16,
    body: &R,
) -> Result<(), Outcome> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(buf, R::header_version(version))
        .and_then(|_| body.encode(buf, version))
        .map_err(|e| {
            error!(version, error = %e, "failed to encode a response");
            Outcome::Close(format!("could not encode response: {e:#}"))
        })
}

macro_rules! dispatch {
    ($broker:expr, $api_key:expr, $buf:expr, $ctx:expr, { $($key:ident => $req:ty => $handler:path),* $(,)? }) => {
        match $api_key {
            $(ApiKey::$key => {
                let req: $req = match decode(&mut $buf, $api_key, $ctx.api_version) {
                    Ok(r) => r,
                    Err(outcome) => return outcome,
                };
                let resp = $handler($broker, req, $ctx).await;
                encode($ctx.correlation_id, $ctx.api_version, &resp)
            })*
            ApiKey::Fetch => {
                let req: messages::FetchRequest = match decode(&mut $buf, $api_key, $ctx.api_version) {
                    Ok(r) => r,
                    Err(outcome) => return outcome,
                };
                let consumer = fetch::replica_id(&req, $ctx.api_version) < 0;
                if consumer {
                    // Over its consumer_byte_rate: an empty answer with the wait (Kafka's
                    // throttled fetch response), and the connection muted meanwhile.
                    let image = $broker.node().image();
                    let pending = $broker.quotas.pending(
                        &image,
                        crate::quota::Kind::Fetch,
                        $ctx.quota_user(),
                        $ctx.quota_client(),
                    );
                    if pending.is_throttled() {
                        $broker.metrics.throttled("fetch", pending.0);
                        $ctx.mute.apply(pending);
                        let resp = messages::FetchResponse::default()
                            .with_throttle_time_ms(pending.ms())
                            .with_session_id(req.session_id);
                        return encode($ctx.correlation_id, $ctx.api_version, &resp);
                    }
                }
                let (mut resp, splices) = fetch::handle($broker, req, $ctx).await;
                if consumer {
                    let bytes = splices.bytes() + fetch::inline_record_bytes(&resp);
                    let throttle = $ctx.record_quota($broker, crate::quota::Kind::Fetch, bytes as f64);
                    resp.throttle_time_ms = resp.throttle_time_ms.max(throttle.ms());
                }
                if splices.is_empty() {
                    encode($ctx.correlation_id, $ctx.api_version, &resp)
                } else {
                    $broker.metrics.fetch_zero_copy_bytes.inc_by(splices.bytes());
                    encode_spliced($ctx.correlation_id, $ctx.api_version, &resp, splices)
                }
            }
            ApiKey::Produce => {
                let req: messages::ProduceRequest = match decode(&mut $buf, $api_key, $ctx.api_version) {
                    Ok(r) => r,
                    Err(outcome) => return outcome,
                };
                let bytes: usize = req
                    .topic_data
                    .iter()
                    .flat_map(|t| t.partition_data.iter())
                    .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
                    .sum();
                // KIP-890: a batch that would open a transaction is checked with its coordinator.
                // A mirror link's append is no transaction (see `produce`).
                let refused = if req.transactional_id.as_ref().is_some_and(|t| {
                    t.as_str() != strait_client::link::TRANSACTIONAL_ID
                }) {
                    crate::txn::verify::check($broker, &req, $ctx.api_version).await
                } else {
                    Default::default()
                };
                let staged = produce::stage($broker, req, $ctx, refused);
                let throttle = $ctx.record_quota($broker, crate::quota::Kind::Produce, bytes as f64);
                if !staged.wants_response() {
                    Outcome::NoResponse
                } else if staged.is_complete() {
                    let mut resp = produce::complete($broker, staged, $ctx).await;
                    resp.throttle_time_ms = resp.throttle_time_ms.max(throttle.ms());
                    encode($ctx.correlation_id, $ctx.api_version, &resp)
                } else {
                    // acks=all: the records are appended; the wait for the ISR must not hold up
                    // the client's next requests (librdkafka sends one partition per request).
                    let broker = $broker.clone();
                    let ctx = $ctx.clone();
                    Outcome::Deferred(Box::pin(async move {
                        let mut resp = produce::complete(&broker, staged, &ctx).await;
                        resp.throttle_time_ms = resp.throttle_time_ms.max(throttle.ms());
                        encode(ctx.correlation_id, ctx.api_version, &resp)
                    }))
                }
            }
            other => Outcome::Close(format!("API {other:?} is not implemented")),
        }
    };
}

async fn route(
    broker: &Arc<Broker>,
    api_key: ApiKey,
    mut buf: Bytes,
    ctx: &RequestContext,
) -> Outcome {
    dispatch!(broker, api_key, buf, ctx, {
        ApiVersions => messages::ApiVersionsRequest => versions::handle,
        Metadata => messages::MetadataRequest => metadata::handle,
        ListOffsets => messages::ListOffsetsRequest => list_offsets::handle,
        CreateTopics => messages::CreateTopicsRequest => admin_topics::create_topics,
        DeleteTopics => messages::DeleteTopicsRequest => admin_topics::delete_topics,
        CreatePartitions => messages::CreatePartitionsRequest => admin_topics::create_partitions,
        DescribeConfigs => messages::DescribeConfigsRequest => configs::describe,
        AlterConfigs => messages::AlterConfigsRequest => configs::alter,
        IncrementalAlterConfigs => messages::IncrementalAlterConfigsRequest => configs::incremental_alter,
        DeleteRecords => messages::DeleteRecordsRequest => delete_records::handle,
        DescribeCluster => messages::DescribeClusterRequest => describe_cluster::describe,
        FindCoordinator => messages::FindCoordinatorRequest => groups::find_coordinator,
        JoinGroup => messages::JoinGroupRequest => groups::join_group,
        SyncGroup => messages::SyncGroupRequest => groups::sync_group,
        Heartbeat => messages::HeartbeatRequest => groups::heartbeat,
        LeaveGroup => messages::LeaveGroupRequest => groups::leave_group,
        ListGroups => messages::ListGroupsRequest => groups::list_groups,
        DescribeGroups => messages::DescribeGroupsRequest => groups::describe_groups,
        DeleteGroups => messages::DeleteGroupsRequest => groups::delete_groups,
        OffsetCommit => messages::OffsetCommitRequest => offsets::commit,
        OffsetFetch => messages::OffsetFetchRequest => offsets::fetch,
        OffsetDelete => messages::OffsetDeleteRequest => offsets::delete,
        InitProducerId => messages::InitProducerIdRequest => producer_id::init,
        ConsumerGroupHeartbeat => messages::ConsumerGroupHeartbeatRequest => consumer_groups::heartbeat,
        ConsumerGroupDescribe => messages::ConsumerGroupDescribeRequest => consumer_groups::describe,
        OffsetForLeaderEpoch => messages::OffsetForLeaderEpochRequest => leader_epoch::handle,
        ElectLeaders => messages::ElectLeadersRequest => reassignments::elect_leaders,
        AlterPartitionReassignments => messages::AlterPartitionReassignmentsRequest => reassignments::alter_reassignments,
        ListPartitionReassignments => messages::ListPartitionReassignmentsRequest => reassignments::list_reassignments,
        DescribeQuorum => messages::DescribeQuorumRequest => quorum::describe,
        AddRaftVoter => messages::AddRaftVoterRequest => quorum::add_voter,
        RemoveRaftVoter => messages::RemoveRaftVoterRequest => quorum::remove_voter,
        UpdateRaftVoter => messages::UpdateRaftVoterRequest => quorum::update_voter,
        SaslHandshake => messages::SaslHandshakeRequest => scram_credentials::handshake,
        SaslAuthenticate => messages::SaslAuthenticateRequest => scram_credentials::authenticate,
        DescribeUserScramCredentials => messages::DescribeUserScramCredentialsRequest => scram_credentials::describe,
        AlterUserScramCredentials => messages::AlterUserScramCredentialsRequest => scram_credentials::alter,
        CreateAcls => messages::CreateAclsRequest => acls::create,
        DescribeAcls => messages::DescribeAclsRequest => acls::describe,
        DeleteAcls => messages::DeleteAclsRequest => acls::delete,
        AlterClientQuotas => messages::AlterClientQuotasRequest => client_quotas::alter,
        DescribeClientQuotas => messages::DescribeClientQuotasRequest => client_quotas::describe,
        AddPartitionsToTxn => messages::AddPartitionsToTxnRequest => transactions::add_partitions,
        AddOffsetsToTxn => messages::AddOffsetsToTxnRequest => transactions::add_offsets,
        EndTxn => messages::EndTxnRequest => transactions::end_txn,
        WriteTxnMarkers => messages::WriteTxnMarkersRequest => transactions::write_markers,
        TxnOffsetCommit => messages::TxnOffsetCommitRequest => transactions::txn_offset_commit,
        DescribeTransactions => messages::DescribeTransactionsRequest => transactions::describe_transactions,
        ListTransactions => messages::ListTransactionsRequest => transactions::list_transactions,
        DescribeProducers => messages::DescribeProducersRequest => transactions::describe_producers,
        DescribeTopicPartitions => messages::DescribeTopicPartitionsRequest => topic_partitions::handle,
        DescribeLogDirs => messages::DescribeLogDirsRequest => log_dirs::describe,
        AlterReplicaLogDirs => messages::AlterReplicaLogDirsRequest => log_dirs::alter,
    })
}

/// `StrBytes` from an owned string (kafka-protocol's string type).
pub fn str_bytes(s: impl Into<String>) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.into())
}

/// Kafka's name of an error code ("UNKNOWN_TOPIC_OR_PARTITION"), for metric labels.
pub fn error_name(e: kafka_protocol::ResponseError) -> String {
    let camel = format!("{e:?}");
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}
