//! SASL on a connection (Kafka's SaslServerAuthenticator): on a `SASL_PLAINTEXT` or `SASL_SSL`
//! listener nothing but ApiVersions, SaslHandshake and SaslAuthenticate is served until the
//! client has authenticated; then requests pass with the authenticated principal. SaslHandshake
//! v1 is followed by SaslAuthenticate requests, v0 by raw SASL tokens in bare length-prefixed
//! frames (clients before Kafka 1.0). A failed authentication is answered with Kafka's error after
//! `connection.failed.authentication.delay.ms`, counted, logged, and ends only this connection.
//! KIP-368: with `connections.max.reauth.ms` the session has a lifetime; the client
//! re-authenticates (same principal) on the same connection before it ends, or the connection
//! is closed at its next request.
//! OAUTHBEARER (KIP-255, with KIP-768's JWT validation) checks the client's token against the
//! broker's key set ([`crate::oauth_keys`]); the principal is the token's subject claim, and, as
//! in Kafka, the session ends when the token expires (or earlier with
//! `connections.max.reauth.ms`). A token that fails validation gets RFC 7628's error challenge;
//! after the client's `\x01` the failure is answered with the validation reason.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    ApiKey, RequestHeader, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::Decodable;
use strait_auth::AuthError;
use strait_auth::oauth::{MECHANISM as OAUTHBEARER, OAuthServer};
use strait_auth::scram::{ScramMechanism, ScramServer, ServerStep};
use tracing::{info, warn};

use crate::api::{self, Outcome, str_bytes};
use crate::broker::Broker;
use crate::clock::now_ms;

/// Kafka's `sasl.server.max.receive.size` default: the largest frame read before a client has
/// authenticated, so an anonymous peer cannot make the broker buffer a large request.
pub const MAX_UNAUTHENTICATED_FRAME: u32 = 524_288;

/// The mechanism exchange in progress.
enum Exchange {
    Scram(ScramServer),
    Plain,
    /// Created with the client's first message, so the token is validated at that time with
    /// the key set then in use.
    OAuth(Option<Box<OAuthServer>>),
}

enum State {
    /// ApiVersions and SaslHandshake only.
    Handshake,
    /// After SaslHandshake v1: SaslAuthenticate requests carry the tokens.
    Authenticate {
        mechanism: String,
        exchange: Exchange,
    },
    /// After SaslHandshake v0: the next frames are bare tokens.
    RawTokens {
        mechanism: String,
        exchange: Exchange,
    },
    /// Requests pass. `expires` is the KIP-368 session end (`connections.max.reauth.ms`, or an
    /// OAUTHBEARER token's expiry).
    Authenticated { expires: Option<Instant> },
    /// Answered with a failure: the connection ends after this response.
    Failed,
}

/// What the connection does with a frame.
pub enum Verdict {
    /// Handle it as a Kafka request (the client is authenticated, or it is ApiVersions).
    Pass(Bytes),
    /// Answer with this outcome (handshake and authentication exchanges).
    Answer(Outcome),
    /// Answer, then close the connection (a refused handshake or failed authentication).
    AnswerThenClose(Outcome, String),
    /// Close without an answer (a request Kafka does not allow in this state).
    Close(String),
}

/// One connection's authentication state.
pub struct Authenticator {
    broker: Arc<Broker>,
    listener: String,
    peer: String,
    mechanisms: Vec<String>,
    plain_users: Option<BTreeMap<String, String>>,
    state: State,
    /// The authenticated principal's user name; kept across re-authentications, which must
    /// not change it.
    principal: Option<String>,
    /// The mechanism of the first authentication (a re-authentication must use the same).
    authenticated_with: Option<String>,
}

impl Authenticator {
    /// `None` when `listener` is not a SASL listener.
    pub fn for_listener(broker: &Arc<Broker>, listener: &str, peer: String) -> Option<Self> {
        let settings = broker.config.sasl.listeners.get(listener)?;
        Some(Authenticator {
            broker: broker.clone(),
            listener: listener.to_string(),
            peer,
            mechanisms: settings.mechanisms.clone(),
            plain_users: settings.plain_users(),
            state: State::Handshake,
            principal: None,
            authenticated_with: None,
        })
    }

    /// The authenticated user, once there is one.
    pub fn principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }

    /// Largest frame to read next: small until the client has authenticated.
    pub fn frame_limit(&self, max: u32) -> u32 {
        match self.state {
            State::Authenticated { .. } => max,
            _ => max.min(MAX_UNAUTHENTICATED_FRAME),
        }
    }

    pub async fn on_frame(&mut self, frame: Bytes) -> Verdict {
        if let State::RawTokens { .. } = self.state {
            return self.raw_token(frame).await;
        }
        if frame.len() < 8 {
            return Verdict::Pass(frame);
        }
        let key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let api = ApiKey::try_from(key).ok();
        match (&self.state, api) {
            (_, Some(ApiKey::SaslHandshake)) => self.handshake(frame, version),
            (State::Authenticate { .. }, Some(ApiKey::SaslAuthenticate)) => {
                self.authenticate(frame, version).await
            }
            (State::Authenticated { expires }, _) => {
                if expires.is_some_and(|at| Instant::now() >= at) {
                    return Verdict::Close(format!(
                        "SASL session of {} expired (connections.max.reauth.ms, or the \
                         OAUTHBEARER token's expiry) without re-authentication",
                        self.principal.as_deref().unwrap_or("?")
                    ));
                }
                Verdict::Pass(frame)
            }
            (_, Some(ApiKey::ApiVersions)) => Verdict::Pass(frame),
            (State::Failed, _) => Verdict::Close("authentication failed".into()),
            (_, api) => Verdict::Close(format!(
                "unexpected Kafka request of type {} during SASL handshake",
                api.map_or_else(|| format!("key {key}"), |a| format!("{a:?}"))
            )),
        }
    }

    fn handshake(&mut self, frame: Bytes, version: i16) -> Verdict {
        let (correlation, request) = match decode::<SaslHandshakeRequest>(frame, version) {
            Ok(r) => r,
            Err(reason) => return Verdict::Close(reason),
        };
        if matches!(self.state, State::Authenticate { .. }) {
            return Verdict::Close("SaslHandshake while an authentication is in progress".into());
        }
        let mechanism = request.mechanism.to_string();
        let enabled = self
            .mechanisms
            .iter()
            .map(|m| str_bytes(m.as_str()))
            .collect();
        let reauth_mismatch = self
            .authenticated_with
            .as_ref()
            .is_some_and(|first| *first != mechanism);
        if !self.mechanisms.contains(&mechanism) || reauth_mismatch {
            self.state = State::Failed;
            let response = SaslHandshakeResponse::default()
                .with_error_code(ResponseError::UnsupportedSaslMechanism.code())
                .with_mechanisms(enabled);
            self.count(&mechanism, false);
            warn!(peer = %self.peer, listener = %self.listener, %mechanism,
                "SASL handshake refused: mechanism not enabled on this listener");
            return Verdict::AnswerThenClose(
                api::encode(correlation, version, &response),
                format!("unsupported SASL mechanism {mechanism}"),
            );
        }
        let exchange = match ScramMechanism::from_name(&mechanism) {
            Some(m) => Exchange::Scram(ScramServer::new(m)),
            None if mechanism == OAUTHBEARER => Exchange::OAuth(None),
            None => Exchange::Plain,
        };
        self.state = if version == 0 {
            State::RawTokens {
                mechanism,
                exchange,
            }
        } else {
            State::Authenticate {
                mechanism,
                exchange,
            }
        };
        Verdict::Answer(api::encode(
            correlation,
            version,
            &SaslHandshakeResponse::default().with_mechanisms(enabled),
        ))
    }

    async fn authenticate(&mut self, frame: Bytes, version: i16) -> Verdict {
        let (correlation, request) = match decode::<SaslAuthenticateRequest>(frame, version) {
            Ok(r) => r,
            Err(reason) => return Verdict::Close(reason),
        };
        match self.step(&request.auth_bytes) {
            Ok(Step::Continue(challenge)) => Verdict::Answer(api::encode(
                correlation,
                version,
                &SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(challenge)),
            )),
            Ok(Step::Done(message, lifetime)) => Verdict::Answer(api::encode(
                correlation,
                version,
                &SaslAuthenticateResponse::default()
                    .with_auth_bytes(Bytes::from(message))
                    .with_session_lifetime_ms(lifetime),
            )),
            Err(e) => {
                self.delay_failure().await;
                let response = SaslAuthenticateResponse::default()
                    .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                    .with_error_message(Some(str_bytes(e.to_string())));
                Verdict::AnswerThenClose(
                    api::encode(correlation, version, &response),
                    format!("SASL authentication failed: {e}"),
                )
            }
        }
    }

    /// SaslHandshake v0: a bare token in, a bare token out.
    async fn raw_token(&mut self, token: Bytes) -> Verdict {
        match self.step(&token) {
            Ok(Step::Continue(reply)) | Ok(Step::Done(reply, _)) => {
                Verdict::Answer(Outcome::Respond(bare_frame(&reply)))
            }
            Err(e) => {
                // v0 has no error response: the connection just closes.
                self.delay_failure().await;
                Verdict::Close(format!("SASL authentication failed: {e}"))
            }
        }
    }

    /// One token of the exchange in progress; on success the state moves on.
    fn step(&mut self, token: &[u8]) -> Result<Step, AuthError> {
        let (mechanism, exchange) = match &mut self.state {
            State::Authenticate {
                mechanism,
                exchange,
            }
            | State::RawTokens {
                mechanism,
                exchange,
            } => (mechanism.clone(), exchange),
            _ => {
                return Err(AuthError::IllegalState(
                    "no authentication in progress".into(),
                ));
            }
        };
        let result = match exchange {
            Exchange::Scram(server) => {
                let m = server.mechanism();
                let broker = &self.broker;
                server.step(token, &|user: &str| broker.scram_credential(user, m))
            }
            Exchange::Plain => {
                let users = &self.plain_users;
                let broker = &self.broker;
                strait_auth::plain::authenticate(token, &|user: &str, password: &str| match users {
                    Some(users) => users.get(user).is_some_and(|expected| {
                        strait_auth::constant_time_eq(expected.as_bytes(), password.as_bytes())
                    }),
                    None => broker.plain_against_scram(user, password),
                })
                .map(|principal| ServerStep::Success {
                    principal,
                    message: Vec::new(),
                })
            }
            Exchange::OAuth(server) => match (server, &self.broker.oauth_keys) {
                (Some(server), _) => server.step(token),
                (server @ None, Some(keys)) => server.insert(Box::new(keys.server())).step(token),
                (None, None) => Err(AuthError::IllegalState(
                    "OAUTHBEARER is enabled but the broker has no key set".into(),
                )),
            },
        };
        // An OAUTHBEARER session may not outlive its token.
        let credential_expires_at_ms = match exchange {
            Exchange::OAuth(Some(server)) => server.expires_at_ms(),
            _ => None,
        };
        match result {
            Ok(ServerStep::Challenge(challenge)) => Ok(Step::Continue(challenge)),
            Ok(ServerStep::Success { principal, message }) => {
                if let Some(previous) = self.principal.clone()
                    && previous != principal
                {
                    let e = AuthError::InvalidCredentials {
                        mechanism: mechanism.clone(),
                    };
                    self.fail(&mechanism, Some(&principal), &e);
                    warn!(peer = %self.peer, %previous, new = %principal,
                        "re-authentication changed the principal");
                    return Err(e);
                }
                let lifetime = session_lifetime_ms(
                    self.broker.config.sasl.max_reauth_ms,
                    credential_expires_at_ms,
                    now_ms(),
                );
                // A lifetime past what an Instant can hold (a token expiring in a billion
                // years) is no expiry, not an overflow.
                let expires =
                    lifetime.and_then(|ms| Instant::now().checked_add(Duration::from_millis(ms)));
                let first = self.principal.is_none();
                if first {
                    info!(peer = %self.peer, listener = %self.listener, %mechanism,
                        user = %principal, "SASL authentication succeeded");
                }
                self.principal = Some(principal);
                self.authenticated_with = Some(mechanism.clone());
                self.state = State::Authenticated { expires };
                self.count(&mechanism, true);
                Ok(Step::Done(
                    message,
                    lifetime.map_or(0, |ms| i64::try_from(ms).unwrap_or(i64::MAX)),
                ))
            }
            Err(e) => {
                self.fail(&mechanism, None, &e);
                Err(e)
            }
        }
    }

    fn fail(&mut self, mechanism: &str, user: Option<&str>, e: &AuthError) {
        self.state = State::Failed;
        self.count(mechanism, false);
        warn!(peer = %self.peer, listener = %self.listener, %mechanism,
            user = user.unwrap_or(""), error = %e, "SASL authentication failed");
    }

    fn count(&self, mechanism: &str, ok: bool) {
        self.broker
            .metrics
            .authentications
            .with_label_values(&[
                self.listener.as_str(),
                mechanism,
                if ok { "success" } else { "failure" },
            ])
            .inc();
    }

    /// Kafka delays the answer to a failed authentication so that guessing passwords is slow;
    /// only this connection waits.
    async fn delay_failure(&self) {
        let delay = self.broker.config.sasl.failed_authentication_delay_ms;
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
    }
}

enum Step {
    Continue(Vec<u8>),
    /// Final server message and the session lifetime in ms (0: none).
    Done(Vec<u8>, i64),
}

/// The session lifetime of a new authentication, as Kafka's SaslServerAuthenticator computes it:
/// `connections.max.reauth.ms` when positive, the time left until the credential expires (an
/// OAUTHBEARER token's `exp`, even when `connections.max.reauth.ms` is 0), the smaller of the two
/// when both apply, never negative; `None` when neither applies (the session never expires).
fn session_lifetime_ms(
    max_reauth_ms: u64,
    credential_expires_at_ms: Option<i64>,
    now_ms: i64,
) -> Option<u64> {
    let credential =
        credential_expires_at_ms.map(|exp| u64::try_from(exp.saturating_sub(now_ms)).unwrap_or(0));
    match (credential, max_reauth_ms > 0) {
        (None, false) => None,
        (None, true) => Some(max_reauth_ms),
        (Some(left), false) => Some(left),
        (Some(left), true) => Some(left.min(max_reauth_ms)),
    }
}

/// Decodes a request of this module's two APIs: (correlation id, body), or why not.
fn decode<T: Decodable>(frame: Bytes, version: i16) -> Result<(i32, T), String> {
    let api = ApiKey::try_from(i16::from_be_bytes([frame[0], frame[1]]))
        .map_err(|()| "unknown API key".to_string())?;
    let Some((min, max)) = api::versions::supported(api) else {
        return Err(format!("{api:?} is not implemented"));
    };
    if version < min || version > max {
        return Err(format!(
            "{api:?} version {version} is not supported (supported: {min}..={max})"
        ));
    }
    let mut buf = frame;
    let header = RequestHeader::decode(&mut buf, api.request_header_version(version))
        .map_err(|e| format!("malformed {api:?} v{version} header: {e:#}"))?;
    let body = T::decode(&mut buf, version)
        .map_err(|e| format!("malformed {api:?} v{version} request: {e:#}"))?;
    Ok((header.correlation_id, body))
}

/// A SASL token as SaslHandshake v0 sends it: a length and the bytes, no Kafka header.
fn bare_frame(token: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(4 + token.len());
    out.put_u32(token.len() as u32);
    out.put_slice(token);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::session_lifetime_ms;

    #[test]
    fn sessions_end_at_max_reauth_or_token_expiry_whichever_is_first() {
        let now = 1_700_000_000_000;
        // SCRAM and PLAIN: connections.max.reauth.ms alone.
        assert_eq!(session_lifetime_ms(0, None, now), None);
        assert_eq!(session_lifetime_ms(60_000, None, now), Some(60_000));
        // OAUTHBEARER: the token's expiry, also without connections.max.reauth.ms (Kafka's
        // calcCompletionTimesAndReturnSessionLifetimeMs).
        assert_eq!(session_lifetime_ms(0, Some(now + 5_000), now), Some(5_000));
        assert_eq!(
            session_lifetime_ms(60_000, Some(now + 5_000), now),
            Some(5_000)
        );
        assert_eq!(
            session_lifetime_ms(60_000, Some(now + 3_600_000), now),
            Some(60_000)
        );
        // A token accepted within the clock skew after its exp: the session is already over.
        assert_eq!(session_lifetime_ms(0, Some(now - 1_000), now), Some(0));
        assert_eq!(session_lifetime_ms(0, Some(i64::MIN), now), Some(0));
        assert_eq!(
            session_lifetime_ms(0, Some(i64::MAX), now),
            Some((i64::MAX - now) as u64)
        );
    }
}
