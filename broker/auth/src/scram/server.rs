//! The server half of a SCRAM exchange, as Kafka's ScramSaslServer: client-first → server-first →
//! client-final → server-final, with the credential looked up by the caller. An unknown user runs
//! the whole exchange against a fake credential and fails where a wrong password would.

use std::sync::OnceLock;

use aws_lc_rs::{constant_time, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::credential::{kafka_salt, random_bytes};
use super::message::{self, ClientFirst};
use super::{ScramCredential, ScramMechanism};
use crate::AuthError;

/// What the server answers to one client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerStep {
    /// Send this to the client and wait for its next message.
    Challenge(Vec<u8>),
    /// The client proved its identity; send `message` (server-final) and treat the connection as
    /// `principal`.
    Success { principal: String, message: Vec<u8> },
}

/// One SCRAM exchange, server side. Create one per authentication attempt.
pub struct ScramServer {
    mechanism: ScramMechanism,
    state: State,
    /// Tests pin the server nonce to reproduce published vectors.
    fixed_nonce: Option<String>,
}

enum State {
    AwaitingClientFirst,
    AwaitingClientFinal(Box<Exchange>),
    Complete,
    Failed,
}

/// What the final step needs from the first.
struct Exchange {
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    username: String,
    credential: ScramCredential,
    /// False when `credential` is the stand-in for an unknown user: the exchange must fail even
    /// if the proof somehow matched.
    known: bool,
}

impl ScramServer {
    pub fn new(m: ScramMechanism) -> Self {
        Self {
            mechanism: m,
            state: State::AwaitingClientFirst,
            fixed_nonce: None,
        }
    }

    #[cfg(test)]
    pub(crate) fn with_nonce(m: ScramMechanism, server_nonce: &str) -> Self {
        Self {
            fixed_nonce: Some(server_nonce.to_owned()),
            ..Self::new(m)
        }
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// Consumes the client's next message. `lookup` maps a user name to its stored credential
    /// for this mechanism. Any error ends the exchange: further calls return `IllegalState`, as
    /// do calls after `Success`.
    ///
    /// Errors: `Malformed` for messages outside the grammar (including a `c=` that does not echo
    /// the gs2 header, and `p=` channel binding); `InvalidCredentials` for a bad proof, an unknown
    /// user, a nonce that does not match, an authzid other than the user name, and Kafka's
    /// `tokenauth` (delegation tokens are not supported).
    pub fn step(
        &mut self,
        client_message: &[u8],
        lookup: &dyn Fn(&str) -> Option<ScramCredential>,
    ) -> Result<ServerStep, AuthError> {
        let m = self.mechanism;
        match std::mem::replace(&mut self.state, State::Failed) {
            State::AwaitingClientFirst => {
                let first = message::parse_client_first(m, message::text(m, client_message)?)?;
                let (exchange, server_first) = self.client_first(&first, lookup)?;
                self.state = State::AwaitingClientFinal(Box::new(exchange));
                Ok(ServerStep::Challenge(server_first))
            }
            State::AwaitingClientFinal(exchange) => {
                let step = client_final(m, &exchange, client_message)?;
                self.state = State::Complete;
                Ok(step)
            }
            State::Complete => {
                self.state = State::Complete;
                Err(AuthError::IllegalState(format!(
                    "{} exchange already completed",
                    m.name()
                )))
            }
            State::Failed => Err(AuthError::IllegalState(format!(
                "{} exchange already failed",
                m.name()
            ))),
        }
    }

    fn client_first(
        &self,
        first: &ClientFirst<'_>,
        lookup: &dyn Fn(&str) -> Option<ScramCredential>,
    ) -> Result<(Exchange, Vec<u8>), AuthError> {
        let m = self.mechanism;
        if first.token_auth {
            return Err(AuthError::invalid_credentials(m.name()));
        }
        // Kafka refuses impersonation; checked before the lookup so the answer says nothing about
        // whether the user exists.
        if !first.authzid.is_empty() && first.authzid != first.username {
            return Err(AuthError::invalid_credentials(m.name()));
        }
        let (credential, known) = match lookup(&first.username) {
            Some(c) if usable(m, &c) => (c, true),
            _ => (fake_credential(m, &first.username)?, false),
        };
        let server_nonce = match &self.fixed_nonce {
            Some(n) => n.clone(),
            None => STANDARD.encode(random_bytes::<24>()?),
        };
        let nonce = format!("{}{server_nonce}", first.nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            STANDARD.encode(&credential.salt),
            credential.iterations
        );
        let reply = server_first.clone().into_bytes();
        let exchange = Exchange {
            gs2_header: first.gs2_header.to_owned(),
            client_first_bare: first.bare.to_owned(),
            server_first,
            nonce,
            username: first.username.clone(),
            credential,
            known,
        };
        Ok((exchange, reply))
    }
}

fn client_final(
    m: ScramMechanism,
    ex: &Exchange,
    client_message: &[u8],
) -> Result<ServerStep, AuthError> {
    let fin = message::parse_client_final(m, message::text(m, client_message)?)?;
    if fin.channel_binding != ex.gs2_header.as_bytes() {
        return Err(AuthError::malformed(
            m.name(),
            "client-final-message: channel binding does not match the gs2 header",
        ));
    }
    // Kafka's ScramSaslServer only checks that the nonce ends with the one it sent: librdkafka
    // before 2.1 repeats its own nonce in front of the combined one, and Kafka accepts it (the
    // proof covers the message as sent, so nothing is weakened).
    if !fin.nonce.ends_with(&ex.nonce) {
        return Err(AuthError::invalid_credentials(m.name()));
    }
    let auth_message = format!(
        "{},{},{}",
        ex.client_first_bare, ex.server_first, fin.without_proof
    );
    let cred = &ex.credential;
    let client_signature = m.hmac(&cred.stored_key, auth_message.as_bytes());
    let client_key: Vec<u8> = fin
        .proof
        .iter()
        .zip(&client_signature)
        .map(|(p, s)| p ^ s)
        .collect();
    let proof_ok =
        constant_time::verify_slices_are_equal(&m.hash(&client_key), &cred.stored_key).is_ok();
    if !(proof_ok && ex.known) {
        return Err(AuthError::invalid_credentials(m.name()));
    }
    let server_signature = m.hmac(&cred.server_key, auth_message.as_bytes());
    Ok(ServerStep::Success {
        principal: ex.username.clone(),
        message: format!("v={}", STANDARD.encode(server_signature)).into_bytes(),
    })
}

/// A stored credential the exchange can run on. Kafka refuses too few iterations; keys of the
/// wrong length belong to the other mechanism or are corrupt. Either way the client sees the
/// same failure as for an unknown user.
fn usable(m: ScramMechanism, c: &ScramCredential) -> bool {
    c.iterations >= m.min_iterations()
        && c.stored_key.len() == m.hash_len()
        && c.server_key.len() == m.hash_len()
}

/// The stand-in for an unknown user. Its salt is derived from the name with a per-process key,
/// so asking twice about the same unknown user gives the same salt, as for a real user; its keys
/// are random, so no proof can match.
fn fake_credential(m: ScramMechanism, username: &str) -> Result<ScramCredential, AuthError> {
    static SALT_KEY: OnceLock<Result<[u8; 32], AuthError>> = OnceLock::new();
    let key = SALT_KEY.get_or_init(random_bytes::<32>).clone()?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(m.name().as_bytes());
    ctx.update(&[0]);
    ctx.update(username.as_bytes());
    let tag = ctx.sign();
    let mut seed = [0u8; 17];
    for (s, t) in seed.iter_mut().zip(tag.as_ref()) {
        *s = *t;
    }
    Ok(ScramCredential {
        salt: kafka_salt(seed),
        stored_key: random_bytes::<64>()?[..m.hash_len()].to_vec(),
        server_key: random_bytes::<64>()?[..m.hash_len()].to_vec(),
        iterations: m.min_iterations(),
    })
}

impl std::fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::AwaitingClientFirst => "AwaitingClientFirst",
            State::AwaitingClientFinal(_) => "AwaitingClientFinal",
            State::Complete => "Complete",
            State::Failed => "Failed",
        };
        f.debug_struct("ScramServer")
            .field("mechanism", &self.mechanism)
            .field("state", &state)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: ScramMechanism = ScramMechanism::Sha256;
    const CLIENT_FIRST: &[u8] = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const NONCE: &str = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";

    fn pencil(user: &str) -> Option<ScramCredential> {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        (user == "user").then(|| ScramCredential::from_password(M, "pencil", &salt, 4096).unwrap())
    }

    fn after_first() -> ScramServer {
        let mut server = ScramServer::with_nonce(M, SERVER_NONCE);
        server.step(CLIENT_FIRST, &pencil).unwrap();
        server
    }

    fn invalid_credentials(r: Result<ServerStep, AuthError>) {
        assert_eq!(r, Err(AuthError::invalid_credentials("SCRAM-SHA-256")));
    }

    #[test]
    fn rfc7677_vector() {
        let mut server = ScramServer::with_nonce(M, SERVER_NONCE);
        assert_eq!(
            server.step(CLIENT_FIRST, &pencil).unwrap(),
            ServerStep::Challenge(
                format!("r={NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096").into_bytes()
            )
        );
        assert_eq!(
            server.step(CLIENT_FINAL.as_bytes(), &pencil).unwrap(),
            ServerStep::Success {
                principal: "user".to_owned(),
                message: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec(),
            }
        );
        assert!(matches!(
            server.step(CLIENT_FINAL.as_bytes(), &pencil),
            Err(AuthError::IllegalState(_))
        ));
        assert!(matches!(
            server.step(CLIENT_FIRST, &pencil),
            Err(AuthError::IllegalState(_))
        ));
    }

    #[test]
    fn random_server_nonce_extends_client_nonce() {
        let mut server = ScramServer::new(M);
        let ServerStep::Challenge(first) = server.step(CLIENT_FIRST, &pencil).unwrap() else {
            panic!()
        };
        let first = String::from_utf8(first).unwrap();
        let nonce = first
            .strip_prefix("r=rOprNGfwEbeRWgbNEkqO")
            .unwrap()
            .split(',')
            .next()
            .unwrap();
        assert!(nonce.len() >= 24 && !nonce.contains(','));
    }

    #[test]
    fn tampered_proof_nonce_and_channel_binding() {
        let tampered_proof = CLIENT_FINAL.replace("p=dHzb", "p=dHzc");
        invalid_credentials(after_first().step(tampered_proof.as_bytes(), &pencil));

        let tampered_nonce = CLIENT_FINAL.replace("k0,p=", "k1,p=");
        invalid_credentials(after_first().step(tampered_nonce.as_bytes(), &pencil));
        let short_nonce = CLIENT_FINAL.replace(SERVER_NONCE, "");
        invalid_credentials(after_first().step(short_nonce.as_bytes(), &pencil));
        // A longer nonce ending with the combined one (old librdkafka) is still matched; this
        // one fails only on the proof, which was computed for the standard message.
        let prefixed = CLIENT_FINAL.replace("r=", "r=extra");
        invalid_credentials(after_first().step(prefixed.as_bytes(), &pencil));

        // "eSws" is base64 of "y,,": not the header this client sent.
        let tampered_cb = CLIENT_FINAL.replace("c=biws", "c=eSws");
        let err = after_first()
            .step(tampered_cb.as_bytes(), &pencil)
            .unwrap_err();
        assert!(
            matches!(err, AuthError::Malformed { ref detail, .. } if detail.contains("channel binding"))
        );
    }

    #[test]
    fn failure_is_final() {
        let mut server = after_first();
        assert!(server.step(b"garbage", &pencil).is_err());
        assert!(matches!(
            server.step(CLIENT_FINAL.as_bytes(), &pencil),
            Err(AuthError::IllegalState(_))
        ));

        let mut server = ScramServer::new(M);
        assert!(server.step(b"", &pencil).is_err());
        assert!(matches!(
            server.step(CLIENT_FIRST, &pencil),
            Err(AuthError::IllegalState(_))
        ));
    }

    #[test]
    fn unknown_user_runs_to_the_end_and_fails_like_a_wrong_password() {
        let mut server = ScramServer::with_nonce(M, SERVER_NONCE);
        let ServerStep::Challenge(first) = server
            .step(b"n,,n=nobody,r=rOprNGfwEbeRWgbNEkqO", &pencil)
            .unwrap()
        else {
            panic!()
        };
        let first = String::from_utf8(first).unwrap();
        assert!(first.starts_with(&format!("r={NONCE},s=")) && first.ends_with(",i=4096"));
        invalid_credentials(server.step(CLIENT_FINAL.as_bytes(), &pencil));

        // The fake salt is stable per user, like a real one, and differs between users.
        let salt_of = |user: &str| {
            let msg = format!("n,,n={user},r=abc");
            match ScramServer::new(M).step(msg.as_bytes(), &pencil).unwrap() {
                ServerStep::Challenge(c) => String::from_utf8(c)
                    .unwrap()
                    .split(',')
                    .nth(1)
                    .unwrap()
                    .to_owned(),
                ServerStep::Success { .. } => panic!(),
            }
        };
        assert_eq!(salt_of("nobody"), salt_of("nobody"));
        assert_ne!(salt_of("nobody"), salt_of("nobody2"));
    }

    #[test]
    fn weak_stored_credential_is_treated_as_unknown() {
        let weak = |_: &str| {
            let mut c = pencil("user").unwrap();
            c.iterations = 1;
            Some(c)
        };
        let mut server = ScramServer::with_nonce(M, SERVER_NONCE);
        let ServerStep::Challenge(first) = server.step(CLIENT_FIRST, &weak).unwrap() else {
            panic!()
        };
        assert!(String::from_utf8(first).unwrap().ends_with(",i=4096"));
        invalid_credentials(server.step(CLIENT_FINAL.as_bytes(), &weak));
    }

    #[test]
    fn authzid_tokenauth_and_channel_binding_requests() {
        // An authzid equal to the user is fine (and changes the expected c= value).
        let mut server = ScramServer::with_nonce(M, SERVER_NONCE);
        assert!(
            server
                .step(b"n,a=user,n=user,r=rOprNGfwEbeRWgbNEkqO", &pencil)
                .is_ok()
        );
        let err = server.step(CLIENT_FINAL.as_bytes(), &pencil).unwrap_err();
        assert!(matches!(err, AuthError::Malformed { .. }));

        invalid_credentials(ScramServer::new(M).step(b"n,a=admin,n=user,r=abc", &pencil));
        invalid_credentials(ScramServer::new(M).step(b"n,,n=user,r=abc,tokenauth=true", &pencil));
        assert!(
            ScramServer::new(M)
                .step(b"n,,n=user,r=abc,unknown=x", &pencil)
                .is_ok()
        );
        assert!(
            ScramServer::new(M)
                .step(b"y,,n=user,r=abc", &pencil)
                .is_ok()
        );
        let err = ScramServer::new(M)
            .step(b"p=tls-server-end-point,,n=user,r=abc", &pencil)
            .unwrap_err();
        assert!(matches!(err, AuthError::Malformed { .. }));
    }

    #[test]
    fn truncated_garbage_and_oversize_messages() {
        for bad in [
            &b""[..],
            b"n,,",
            b"n,,n=user",
            b"n,,n=user,r=",
            b"\xff\xfe",
            b"n,,n=user,r=abc\0",
            b"biws",
        ] {
            let err = ScramServer::new(M).step(bad, &pencil).unwrap_err();
            assert!(
                matches!(err, AuthError::Malformed { .. }),
                "{bad:?}: {err:?}"
            );
        }
        let mut big = b"n,,n=user,r=".to_vec();
        big.resize(MAX + 1, b'a');
        assert!(matches!(
            ScramServer::new(M).step(&big, &pencil),
            Err(AuthError::Malformed { .. })
        ));

        for len in [0, 10, CLIENT_FINAL.len() - 1] {
            let err = after_first()
                .step(&CLIENT_FINAL.as_bytes()[..len], &pencil)
                .unwrap_err();
            assert!(matches!(err, AuthError::Malformed { .. }), "{len}: {err:?}");
        }
        let mut big = CLIENT_FINAL.as_bytes().to_vec();
        big.resize(MAX + 1, b'a');
        assert!(matches!(
            after_first().step(&big, &pencil),
            Err(AuthError::Malformed { .. })
        ));
    }

    const MAX: usize = super::super::MAX_MESSAGE_LEN;
}
