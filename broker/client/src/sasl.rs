//! SASL login for a connection (the client side of Kafka's SaslHandshake v1 + SaslAuthenticate):
//! right after TCP/TLS and before any other request, and again before the session lifetime the
//! broker granted runs out (KIP-368), so a long-lived connection such as a replica fetcher's is
//! not closed under it. SCRAM-SHA-256/512 and PLAIN; the exchanges come from `strait-auth`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use strait_auth::scram::{ScramClient, ScramMechanism};

use crate::connection::Connection;
use crate::error::{ClientError, KafkaError};

const HANDSHAKE_VERSION: i16 = 1;
const AUTHENTICATE_VERSION: i16 = 1;

/// Who a connection logs in as.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslLogin {
    /// `SCRAM-SHA-256`, `SCRAM-SHA-512` or `PLAIN`.
    pub mechanism: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SaslLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslLogin")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Runs the exchange on `conn`; returns when the session must be renewed (`None`: never).
pub(crate) async fn login(
    conn: &mut Connection,
    login: &SaslLogin,
) -> Result<Option<Instant>, ClientError> {
    let addr = conn.addr().to_owned();
    let refused = |reason: String| ClientError::Authentication {
        addr: addr.clone(),
        reason,
    };
    let handshake = conn
        .exchange(
            HANDSHAKE_VERSION,
            &SaslHandshakeRequest::default()
                .with_mechanism(StrBytes::from_string(login.mechanism.clone())),
        )
        .await?;
    KafkaError::check(ApiKey::SaslHandshake, None, handshake.error_code, None)?;
    let started = Instant::now();
    let lifetime_ms = match ScramMechanism::from_name(&login.mechanism) {
        Some(m) => {
            let mut client = ScramClient::new(m, &login.username, &login.password);
            let first = client.first_message();
            let server_first = authenticate(conn, first).await?.0;
            let last = client
                .final_message(&server_first)
                .map_err(|e| refused(e.to_string()))?;
            let (server_final, lifetime) = authenticate(conn, last).await?;
            client
                .verify_server_final(&server_final)
                .map_err(|e| refused(e.to_string()))?;
            lifetime
        }
        None if login.mechanism == "PLAIN" => {
            let message = strait_auth::plain::client_message(&login.username, &login.password);
            authenticate(conn, message).await?.1
        }
        None => {
            return Err(refused(format!(
                "mechanism {} is not supported",
                login.mechanism
            )));
        }
    };
    // Renew well before the end, as Kafka's clients do (at 85-95% of the lifetime).
    Ok((lifetime_ms > 0).then(|| {
        started + Duration::from_millis(u64::try_from(lifetime_ms).unwrap_or(0) * 85 / 100)
    }))
}

/// One SaslAuthenticate round: the server's bytes and the session lifetime it granted.
async fn authenticate(
    conn: &mut Connection,
    bytes: Vec<u8>,
) -> Result<(Vec<u8>, i64), ClientError> {
    let response = conn
        .exchange(
            AUTHENTICATE_VERSION,
            &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes)),
        )
        .await?;
    let message = response.error_message.as_ref().map(|m| m.to_string());
    KafkaError::check(
        ApiKey::SaslAuthenticate,
        None,
        response.error_code,
        message.as_deref(),
    )?;
    Ok((response.auth_bytes.to_vec(), response.session_lifetime_ms))
}
