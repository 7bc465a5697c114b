//! One connection to a broker: TCP, or TLS over it, one request in flight, typed requests and
//! responses through `kafka-protocol`. Every step runs under a deadline (the connect and the
//! TLS handshake under [`ConnectOptions::connect_timeout`], each request and its response under
//! [`ConnectOptions::request_timeout`] or the one given), and every response's correlation id
//! is checked. A request that fails half-way (I/O, deadline, a frame out of step) leaves the
//! connection [`ClientError::Broken`]: dial again.

use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::{HeaderVersion, Message, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;

use crate::codes::ResponseErrors;
use crate::error::{ClientError, KafkaError, Step};
use crate::frame::{self, FrameError};
use crate::sasl::{self, SaslLogin};
use crate::tls::ClientTls;
use crate::versions::{API_VERSIONS_MAX, SupportedApis, UNSUPPORTED_VERSION, our_range};

/// How to reach brokers: who this client says it is, the deadlines, TLS.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// The client id of every request header (and, when it is a valid software name, the
    /// `client_software_name` of ApiVersions).
    pub client_id: String,
    /// Deadline of the TCP connect, and again of the TLS handshake.
    pub connect_timeout: Duration,
    /// Deadline of one request and its response, unless the call gives its own.
    pub request_timeout: Duration,
    /// Largest response frame accepted (a sanity cap against a corrupt length).
    pub max_response: usize,
    /// TLS over the TCP connection, when set; the host dialled is the name the server's
    /// certificate is checked against.
    pub tls: Option<ClientTls>,
    /// SASL login after TCP/TLS (SASL_PLAINTEXT / SASL_SSL listeners), when set.
    pub sasl: Option<SaslLogin>,
}

impl ConnectOptions {
    /// Plaintext, 10 s to connect, 30 s per request, responses up to 64 MiB.
    pub fn new(client_id: &str) -> Self {
        ConnectOptions {
            client_id: client_id.to_owned(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_response: frame::DEFAULT_MAX_RESPONSE,
            tls: None,
            sasl: None,
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A connection to one broker.
pub struct Connection {
    addr: String,
    stream: Box<dyn Io>,
    client_id: String,
    request_timeout: Duration,
    max_response: usize,
    next_correlation: i32,
    apis: Option<SupportedApis>,
    broken: bool,
    sasl: Option<SaslLogin>,
    /// When the SASL session must be renewed (KIP-368).
    renew_at: Option<Instant>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.addr)
            .field("client_id", &self.client_id)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

/// The host of `host:port`, without the brackets of an IPv6 literal.
pub fn host_of(address: &str) -> &str {
    address
        .rsplit_once(':')
        .map_or(address, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']')
}

/// `host:port`, with brackets around an IPv6 literal.
pub fn address(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl Connection {
    /// Connects to `address` (`host:port`), over TLS when `options.tls` is set.
    pub async fn connect(address: &str, options: &ConnectOptions) -> Result<Self, ClientError> {
        Connection::connect_via(address, address, options).await
    }

    /// Connects to `address` by dialling `dial` instead (a port-forward, or a test broker on
    /// a loopback port standing for a name), still checking the TLS server certificate for
    /// `address`'s host.
    pub async fn connect_via(
        address: &str,
        dial: &str,
        options: &ConnectOptions,
    ) -> Result<Self, ClientError> {
        let addr = address.to_owned();
        let deadline = options.connect_timeout;
        let timeout = |step| ClientError::Timeout {
            addr: addr.clone(),
            step,
            after: deadline,
        };
        let tcp = tokio::time::timeout(deadline, TcpStream::connect(dial))
            .await
            .map_err(|_| timeout(Step::Connect))?
            .map_err(|source| ClientError::Connect {
                addr: if dial == address {
                    addr.clone()
                } else {
                    format!("{addr} (via {dial})")
                },
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Io> = match &options.tls {
            None => Box::new(tcp),
            Some(tls) => {
                let tls_error = |source| ClientError::Tls {
                    addr: addr.clone(),
                    source,
                };
                let name = ServerName::try_from(host_of(address).to_owned()).map_err(|e| {
                    tls_error(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
                })?;
                let stream = tokio::time::timeout(deadline, tls.connector().connect(name, tcp))
                    .await
                    .map_err(|_| timeout(Step::Handshake))?
                    .map_err(tls_error)?;
                Box::new(stream)
            }
        };
        let mut conn = Connection {
            addr,
            stream,
            client_id: options.client_id.clone(),
            request_timeout: options.request_timeout,
            max_response: options.max_response,
            next_correlation: 1,
            apis: None,
            broken: false,
            sasl: options.sasl.clone(),
            renew_at: None,
        };
        // SASL after TLS, before any other request.
        if let Some(login) = options.sasl.as_ref() {
            conn.renew_at = sasl::login(&mut conn, login).await?;
        }
        Ok(conn)
    }

    /// The broker's address (as named, not as dialled).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `request` at `version` and waits for its response, within the request timeout.
    pub async fn call<R: Request>(
        &mut self,
        version: i16,
        request: &R,
    ) -> Result<R::Response, ClientError> {
        self.call_within(version, request, self.request_timeout)
            .await
    }

    /// [`Connection::call`] within `timeout` (a long-polling Fetch waits longer than most).
    pub async fn call_within<R: Request>(
        &mut self,
        version: i16,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        if let (Some(at), Some(login)) = (self.renew_at, self.sasl.clone())
            && Instant::now() >= at
        {
            self.renew_at = sasl::login(self, &login).await?;
        }
        self.exchange_within(version, request, timeout).await
    }

    /// One request and its response, without the SASL renewal check (the login's own requests).
    pub(crate) async fn exchange<R: Request>(
        &mut self,
        version: i16,
        request: &R,
    ) -> Result<R::Response, ClientError> {
        self.exchange_within(version, request, self.request_timeout)
            .await
    }

    async fn exchange_within<R: Request>(
        &mut self,
        version: i16,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        let correlation = self.next_correlation();
        let frame = frame::encode_request(version, correlation, Some(&self.client_id), request)
            .map_err(|source| self.frame_error(source))?;
        let body = self
            .round_trip(
                R::KEY,
                &frame,
                correlation,
                R::Response::header_version(version),
                timeout,
            )
            .await?;
        frame::decode_body(body, version).map_err(|source| self.frame_error(source))
    }

    /// [`Connection::call`], then every error code of the response checked: the first one
    /// not in `tolerated` is the error.
    pub async fn call_checked<R>(
        &mut self,
        version: i16,
        request: &R,
        tolerated: &[i16],
    ) -> Result<R::Response, ClientError>
    where
        R: Request,
        R::Response: ResponseErrors,
    {
        let response = self.call(version, request).await?;
        response.check(tolerated)?;
        Ok(response)
    }

    /// What the broker serves, asked once per connection (ApiVersions v3, or the highest
    /// version the broker names when it does not serve v3).
    pub async fn api_versions(&mut self) -> Result<&SupportedApis, ClientError> {
        if self.apis.is_none() {
            let mut response = self.ask_api_versions(API_VERSIONS_MAX).await?;
            if response.error_code == UNSUPPORTED_VERSION {
                let theirs = SupportedApis::from_response(&response);
                let version = theirs
                    .highest_common(ApiKey::ApiVersions, 0..=API_VERSIONS_MAX)
                    .ok_or_else(|| ClientError::UnsupportedVersion {
                        addr: self.addr.clone(),
                        api: ApiKey::ApiVersions,
                        ours: our_range(0..=API_VERSIONS_MAX, ApiVersionsRequest::VERSIONS),
                        theirs: theirs.range(ApiKey::ApiVersions),
                    })?;
                response = self.ask_api_versions(version).await?;
            }
            KafkaError::check(ApiKey::ApiVersions, None, response.error_code, None)?;
            self.apis = Some(SupportedApis::from_response(&response));
        }
        Ok(self.apis.get_or_insert_default())
    }

    /// The version to send `R` at: the highest in `ours` (and in what `kafka-protocol` can
    /// encode) the broker serves, or [`ClientError::UnsupportedVersion`].
    pub async fn negotiate<R: Request>(
        &mut self,
        ours: RangeInclusive<i16>,
    ) -> Result<i16, ClientError> {
        let ours = our_range(ours, R::VERSIONS);
        let api = ApiKey::try_from(R::KEY).map_err(|()| {
            self.frame_error(FrameError::Encode {
                what: "request header",
                detail: format!("unknown API key {}", R::KEY),
            })
        })?;
        let apis = self.api_versions().await?;
        let theirs = apis.range(api);
        match apis.highest_common(api, ours.min..=ours.max) {
            Some(version) if !ours.is_empty() => Ok(version),
            _ => Err(ClientError::UnsupportedVersion {
                addr: self.addr.clone(),
                api,
                ours,
                theirs,
            }),
        }
    }

    /// Sends `request` at the version [`Connection::negotiate`] picks within `ours`.
    pub async fn call_negotiated<R: Request>(
        &mut self,
        ours: RangeInclusive<i16>,
        request: &R,
    ) -> Result<R::Response, ClientError> {
        let version = self.negotiate::<R>(ours).await?;
        self.call(version, request).await
    }

    async fn ask_api_versions(&mut self, version: i16) -> Result<ApiVersionsResponse, ClientError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_string(software_name(&self.client_id)))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let correlation = self.next_correlation();
        let frame = frame::encode_request(version, correlation, Some(&self.client_id), &request)
            .map_err(|source| self.frame_error(source))?;
        let body = self
            .round_trip(
                ApiKey::ApiVersions as i16,
                &frame,
                correlation,
                ApiVersionsResponse::header_version(version),
                self.request_timeout,
            )
            .await?;
        // A version the broker does not serve is answered in v0 (error code first) so that
        // any client can read which versions it does serve.
        let unsupported = body.get(..2) == Some(&UNSUPPORTED_VERSION.to_be_bytes()[..]);
        frame::decode_body(body, if unsupported { 0 } else { version })
            .map_err(|source| self.frame_error(source))
    }

    fn next_correlation(&mut self) -> i32 {
        let id = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        id
    }

    fn frame_error(&self, source: FrameError) -> ClientError {
        ClientError::Frame {
            addr: self.addr.clone(),
            source,
        }
    }

    /// Writes `frame`, reads the response to `correlation` and returns its body.
    async fn round_trip(
        &mut self,
        api_key: i16,
        frame: &[u8],
        correlation: i32,
        header_version: i16,
        timeout: Duration,
    ) -> Result<Bytes, ClientError> {
        if self.broken {
            return Err(ClientError::Broken {
                addr: self.addr.clone(),
            });
        }
        // Unless the exchange completes, the stream's position is unknown.
        self.broken = true;
        let addr = &self.addr;
        let max = self.max_response;
        let stream = &mut self.stream;
        let io = |source| ClientError::Io {
            addr: addr.clone(),
            source,
        };
        let exchange = async {
            stream.write_all(frame).await.map_err(io)?;
            // A no-op on TCP; TLS holds encrypted records back until flushed.
            stream.flush().await.map_err(io)?;
            let mut prefix = [0u8; frame::LENGTH_BYTES];
            stream.read_exact(&mut prefix).await.map_err(io)?;
            let len = frame::response_length(prefix, max).map_err(|source| ClientError::Frame {
                addr: addr.clone(),
                source,
            })?;
            crate::read::read_body(stream, len).await.map_err(io)
        };
        let response = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout {
                addr: addr.clone(),
                step: Step::Request(api_key),
                after: timeout,
            })??;
        let body = frame::response_body(response, correlation, header_version)
            .map_err(|source| self.frame_error(source))?;
        self.broken = false;
        Ok(body)
    }
}

/// `client_id` when Kafka accepts it as a `client_software_name` (letters, digits, `-` and
/// `.`, starting and ending with a letter or digit), `strait-client` otherwise.
fn software_name(client_id: &str) -> String {
    let inner_ok = client_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if inner_ok && ends_ok(client_id.chars().next()) && ends_ok(client_id.chars().last()) {
        client_id.to_owned()
    } else {
        "strait-client".to_owned()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::{
        DescribeQuorumRequest, DescribeQuorumResponse, MetadataRequest, MetadataResponse,
    };
    use kafka_protocol::protocol::Encodable;
    use tokio::net::TcpListener;

    /// One request as a fake broker saw it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) struct Seen {
        pub key: i16,
        pub version: i16,
        pub correlation: i32,
    }

    /// What a fake broker writes for one request: raw bytes, given what it saw.
    pub(crate) type Answer = Box<dyn Fn(&Seen) -> Vec<u8> + Send + Sync>;

    /// A response frame at the version asked, echoing the correlation id.
    pub(crate) fn answer<R: Encodable + HeaderVersion + Send + Sync + 'static>(
        response: R,
    ) -> Answer {
        Box::new(move |seen| {
            frame::encode_response(seen.correlation, seen.version, &response).unwrap()
        })
    }

    /// A broker on a loopback port answering each request, over any number of connections,
    /// with the next of `answers`; hands back what it was asked.
    pub(crate) async fn fake_broker(
        answers: Vec<Answer>,
    ) -> (String, tokio::task::JoinHandle<Vec<Seen>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            // With no answers at all, it accepts connections until aborted.
            let total = answers.len();
            let mut answers = answers.into_iter();
            let mut seen = Vec::new();
            'connections: while let Ok((mut stream, _)) = listener.accept().await {
                while let Ok(len) = stream.read_i32().await {
                    let mut body = vec![0u8; usize::try_from(len).unwrap()];
                    stream.read_exact(&mut body).await.unwrap();
                    let at = |i: usize| [body[i], body[i + 1]];
                    let request = Seen {
                        key: i16::from_be_bytes(at(0)),
                        version: i16::from_be_bytes(at(2)),
                        correlation: i32::from_be_bytes([body[4], body[5], body[6], body[7]]),
                    };
                    let Some(answer) = answers.next() else {
                        seen.push(request);
                        break 'connections;
                    };
                    stream.write_all(&answer(&request)).await.unwrap();
                    seen.push(request);
                }
                if total > 0 && answers.len() == 0 {
                    break;
                }
            }
            seen
        });
        (address, server)
    }

    pub(crate) fn versions(keys: &[(ApiKey, i16, i16)]) -> ApiVersionsResponse {
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

    fn options() -> ConnectOptions {
        ConnectOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            ..ConnectOptions::new("strait-test")
        }
    }

    #[tokio::test]
    async fn calls_are_typed_and_correlated() {
        let metadata =
            MetadataResponse::default().with_cluster_id(Some(StrBytes::from_static_str("c")));
        let (address, server) = fake_broker(vec![answer(metadata.clone()), answer(metadata)]).await;
        let mut conn = Connection::connect(&address, &options()).await.unwrap();
        for _ in 0..2 {
            let back = conn.call(12, &MetadataRequest::default()).await.unwrap();
            assert_eq!(back.cluster_id.as_deref(), Some("c"));
        }
        drop(conn);
        let seen = server.await.unwrap();
        assert_eq!(
            seen.iter().map(|s| (s.key, s.version)).collect::<Vec<_>>(),
            [(3, 12), (3, 12)]
        );
        assert_ne!(seen[0].correlation, seen[1].correlation);
    }

    #[tokio::test]
    async fn a_response_to_another_request_breaks_the_connection() {
        let wrong: Answer = Box::new(|seen| {
            frame::encode_response(
                seen.correlation + 1,
                seen.version,
                &MetadataResponse::default(),
            )
            .unwrap()
        });
        let (address, _server) = fake_broker(vec![wrong]).await;
        let mut conn = Connection::connect(&address, &options()).await.unwrap();
        let e = conn
            .call(12, &MetadataRequest::default())
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                ClientError::Frame {
                    source: FrameError::Correlation { .. },
                    ..
                }
            ),
            "{e}"
        );
        let e = conn
            .call(12, &MetadataRequest::default())
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Broken { .. }), "{e}");
    }

    #[tokio::test]
    async fn an_oversized_length_is_refused_before_reading_it() {
        let huge: Answer = Box::new(|_| i32::MAX.to_be_bytes().to_vec());
        let (address, _server) = fake_broker(vec![huge]).await;
        let small = ConnectOptions {
            max_response: 1024,
            ..options()
        };
        let mut conn = Connection::connect(&address, &small).await.unwrap();
        let e = conn
            .call(12, &MetadataRequest::default())
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                ClientError::Frame {
                    source: FrameError::BadLength { max: 1024, .. },
                    ..
                }
            ),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_silent_broker_times_out_and_an_absent_one_is_unreachable() {
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = silent.local_addr().unwrap().to_string();
        let quick = ConnectOptions {
            request_timeout: Duration::from_millis(200),
            ..options()
        };
        let mut conn = Connection::connect(&address, &quick).await.unwrap();
        let e = conn
            .call(12, &MetadataRequest::default())
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                ClientError::Timeout {
                    step: Step::Request(3),
                    ..
                }
            ),
            "{e}"
        );
        assert!(!e.is_unreachable());
        drop(silent);
        let e = Connection::connect(&address, &options()).await.unwrap_err();
        assert!(
            matches!(e, ClientError::Connect { .. }) && e.is_unreachable(),
            "{e}"
        );
    }

    #[tokio::test]
    async fn negotiation_picks_the_highest_common_version() {
        let (address, server) = fake_broker(vec![
            answer(versions(&[
                (ApiKey::DescribeQuorum, 0, 1),
                (ApiKey::Metadata, 0, 9),
            ])),
            answer(DescribeQuorumResponse::default()),
            answer(MetadataResponse::default()),
        ])
        .await;
        let mut conn = Connection::connect(&address, &options()).await.unwrap();
        conn.call_negotiated(0..=2, &DescribeQuorumRequest::default())
            .await
            .unwrap();
        // ApiVersions is asked once per connection.
        conn.call_negotiated(1..=12, &MetadataRequest::default())
            .await
            .unwrap();
        let e = conn
            .negotiate::<DescribeQuorumRequest>(2..=2)
            .await
            .unwrap_err();
        assert!(
            matches!(
                &e,
                ClientError::UnsupportedVersion {
                    api: ApiKey::DescribeQuorum,
                    theirs: Some(r),
                    ..
                } if r.max == 1
            ),
            "{e}"
        );
        let e = conn
            .negotiate::<kafka_protocol::messages::FetchRequest>(4..=12)
            .await;
        assert!(
            matches!(e, Err(ClientError::UnsupportedVersion { theirs: None, .. })),
            "{e:?}"
        );
        drop(conn);
        let seen: Vec<_> = server
            .await
            .unwrap()
            .iter()
            .map(|s| (s.key, s.version))
            .collect();
        assert_eq!(seen, [(18, 3), (55, 1), (3, 9)]);
    }

    #[tokio::test]
    async fn a_broker_without_api_versions_v3_is_asked_again_within_its_range() {
        // Kafka answers an ApiVersions version it does not serve in v0, error 35.
        let old = versions(&[(ApiKey::ApiVersions, 0, 2), (ApiKey::Metadata, 0, 8)]);
        let unsupported = old.clone().with_error_code(UNSUPPORTED_VERSION);
        let v0: Answer = Box::new(move |seen| {
            frame::encode_response(seen.correlation, 0, &unsupported).unwrap()
        });
        let (address, server) = fake_broker(vec![v0, answer(old)]).await;
        let mut conn = Connection::connect(&address, &options()).await.unwrap();
        let apis = conn.api_versions().await.unwrap();
        assert!(apis.speaks(ApiKey::Metadata, 8));
        drop(conn);
        let seen: Vec<_> = server
            .await
            .unwrap()
            .iter()
            .map(|s| (s.key, s.version))
            .collect();
        assert_eq!(seen, [(18, 3), (18, 2)]);
    }

    #[tokio::test]
    async fn error_codes_checked_in_the_same_call() {
        use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
        use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, TopicName};
        let exists = CreateTopicsResponse::default().with_topics(vec![
            CreatableTopicResult::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_error_code(36),
        ]);
        let (address, _server) = fake_broker(vec![answer(exists.clone()), answer(exists)]).await;
        let mut conn = Connection::connect(&address, &options()).await.unwrap();
        let request = CreateTopicsRequest::default();
        let e = conn.call_checked(7, &request, &[]).await.unwrap_err();
        let kafka = e.kafka().unwrap();
        assert_eq!((kafka.code, kafka.resource.as_deref()), (36, Some("t")));
        conn.call_checked(7, &request, &[36]).await.unwrap();
    }

    /// A TLS broker serving `localhost`'s certificate, answering one Metadata per connection
    /// (requires a client certificate).
    async fn tls_broker(pki: &crate::tls::tests::Pki) -> u16 {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let roots = crate::tls::roots_from_pem(pki.ca.as_bytes()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            crate::tls::provider(),
        )
        .build()
        .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from_pem_slice(pki.server.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(pki.server_key.as_bytes()).unwrap(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                let mut len = [0u8; 4];
                if tls.read_exact(&mut len).await.is_err() {
                    continue;
                }
                let mut body = vec![0u8; usize::try_from(i32::from_be_bytes(len)).unwrap()];
                tls.read_exact(&mut body).await.unwrap();
                let correlation = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                let response =
                    frame::encode_response(correlation, 12, &MetadataResponse::default());
                tls.write_all(&response.unwrap()).await.unwrap();
                tls.flush().await.unwrap();
            }
        });
        port
    }

    #[tokio::test]
    async fn tls_checks_the_host_dialled_unless_told_not_to() {
        let pki = crate::tls::tests::pki();
        let port = tls_broker(&pki).await;
        let tls = ClientTls::from_pem(&pki.ca, Some(&pki.client_keystore)).unwrap();
        let secure = ConnectOptions {
            tls: Some(tls),
            ..options()
        };
        let mut conn = Connection::connect(&format!("localhost:{port}"), &secure)
            .await
            .unwrap();
        conn.call(12, &MetadataRequest::default()).await.unwrap();
        // The certificate does not name 127.0.0.1, whether dialled or named.
        let e = Connection::connect(&format!("127.0.0.1:{port}"), &secure)
            .await
            .unwrap_err();
        assert!(
            matches!(e, ClientError::Tls { .. }) && e.is_unreachable(),
            "{e}"
        );
        let localhost = format!("localhost:{port}");
        let via = Connection::connect_via("other.test:1", &localhost, &secure).await;
        assert!(matches!(via, Err(ClientError::Tls { .. })), "{via:?}");
        // Chain checked, host not.
        let (chain, key) = crate::tls::identity_from_pem(pki.client_keystore.as_bytes()).unwrap();
        let chain_only = ClientTls::build(crate::tls::TlsOptions {
            roots: std::sync::Arc::new(crate::tls::roots_from_pem(pki.ca.as_bytes()).unwrap()),
            check_host: false,
            identity: Some((chain, key)),
            versions: vec![&rustls::version::TLS13],
        })
        .unwrap();
        let lenient = ConnectOptions {
            tls: Some(chain_only),
            ..options()
        };
        let mut conn = Connection::connect(&format!("127.0.0.1:{port}"), &lenient)
            .await
            .unwrap();
        conn.call(12, &MetadataRequest::default()).await.unwrap();
        // A server chain from another CA is refused either way.
        let other = crate::tls::tests::pki();
        let stranger = ConnectOptions {
            tls: Some(ClientTls::from_pem(&other.ca, Some(&other.client_keystore)).unwrap()),
            ..options()
        };
        let e = Connection::connect(&format!("localhost:{port}"), &stranger).await;
        assert!(matches!(e, Err(ClientError::Tls { .. })), "{e:?}");
        // No client certificate: TLS 1.3 reports the refusal on the first read.
        let anonymous = ConnectOptions {
            tls: Some(ClientTls::from_pem(&pki.ca, None).unwrap()),
            ..options()
        };
        let refused = async {
            let mut conn = Connection::connect(&format!("localhost:{port}"), &anonymous).await?;
            conn.call(12, &MetadataRequest::default()).await
        };
        assert!(refused.await.is_err());
    }

    #[test]
    fn hosts_and_software_names() {
        assert_eq!(host_of("kafka-0.ns.svc:9091"), "kafka-0.ns.svc");
        assert_eq!(host_of("[::1]:9092"), "::1");
        assert_eq!(address("::1", 9092), "[::1]:9092");
        assert_eq!(address("a", 1), "a:1");
        assert_eq!(software_name("strait-operator"), "strait-operator");
        assert_eq!(software_name("my client"), "strait-client");
        assert_eq!(software_name("-x"), "strait-client");
    }
}
