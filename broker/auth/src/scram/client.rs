//! The client half of a SCRAM exchange, as Kafka's ScramSaslClient: client-first, then the proof
//! in client-final, then the check of the server's signature. Used for inter-broker connections
//! and by tests.

use aws_lc_rs::constant_time;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::credential::random_bytes;
use super::message::{self, ServerFinal};
use super::{ScramMechanism, salted_password};
use crate::AuthError;

/// The gs2 header this client always sends: no channel binding, no authzid. "biws" in base64.
const GS2_HEADER: &str = "n,,";

/// One SCRAM exchange, client side.
pub struct ScramClient {
    mechanism: ScramMechanism,
    sasl_name: String,
    password: String,
    nonce: Result<String, AuthError>,
    state: State,
}

enum State {
    Initial,
    SentFirst { client_first_bare: String },
    SentFinal { server_signature: Vec<u8> },
    Complete,
    Failed,
}

impl ScramClient {
    /// `username` is escaped (`,` → `=2C`, `=` → `=3D`) for the wire.
    pub fn new(m: ScramMechanism, username: &str, password: &str) -> Self {
        Self::with_nonce_result(
            m,
            username,
            password,
            random_bytes::<24>().map(|b| STANDARD.encode(b)),
        )
    }

    #[cfg(test)]
    pub(crate) fn with_nonce(
        m: ScramMechanism,
        username: &str,
        password: &str,
        nonce: &str,
    ) -> Self {
        Self::with_nonce_result(m, username, password, Ok(nonce.to_owned()))
    }

    fn with_nonce_result(
        m: ScramMechanism,
        username: &str,
        password: &str,
        nonce: Result<String, AuthError>,
    ) -> Self {
        Self {
            mechanism: m,
            sasl_name: message::escape_saslname(username),
            password: password.to_owned(),
            nonce,
            state: State::Initial,
        }
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// `n,,n=<user>,r=<nonce>`. Calling it again restarts the exchange (same nonce). Should the
    /// random generator have failed in `new`, this returns an empty message and `final_message`
    /// reports the failure.
    pub fn first_message(&mut self) -> Vec<u8> {
        let Ok(nonce) = &self.nonce else {
            self.state = State::Failed;
            return Vec::new();
        };
        let client_first_bare = format!("n={},r={nonce}", self.sasl_name);
        let message = format!("{GS2_HEADER}{client_first_bare}").into_bytes();
        self.state = State::SentFirst { client_first_bare };
        message
    }

    /// The client-final message answering `server_first`. Refuses a nonce that does not extend
    /// ours (`Malformed`) and an iteration count outside the mechanism's range (`Invalid`: too
    /// few weakens the credential, too many costs us CPU at the server's whim).
    pub fn final_message(&mut self, server_first: &[u8]) -> Result<Vec<u8>, AuthError> {
        let m = self.mechanism;
        let client_first_bare = match std::mem::replace(&mut self.state, State::Failed) {
            State::SentFirst { client_first_bare } => client_first_bare,
            State::Failed => return Err(self.failed()),
            _ => {
                return Err(AuthError::IllegalState(format!(
                    "{} client is not awaiting server-first",
                    m.name()
                )));
            }
        };
        let text = message::text(m, server_first)?;
        let first = message::parse_server_first(m, text)?;
        let our_nonce = self.nonce.as_deref().unwrap_or_default();
        if !(first.nonce.starts_with(our_nonce) && first.nonce.len() > our_nonce.len()) {
            return Err(AuthError::malformed(
                m.name(),
                "server-first-message: server nonce does not extend the client nonce",
            ));
        }
        let salted = salted_password(m, &self.password, &first.salt, first.iterations)?;
        let client_key = m.hmac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let without_proof = format!("c={},r={}", STANDARD.encode(GS2_HEADER), first.nonce);
        let auth_message = format!("{client_first_bare},{text},{without_proof}");
        let client_signature = m.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = m.hmac(&salted, b"Server Key");
        self.state = State::SentFinal {
            server_signature: m.hmac(&server_key, auth_message.as_bytes()),
        };
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes())
    }

    /// Checks the server-final message: the server must prove it knows the credential too.
    /// `e=invalid-proof`, `e=unknown-user` and a wrong signature are `InvalidCredentials`; other
    /// server errors are `Malformed` with the server's error value.
    pub fn verify_server_final(&mut self, server_final: &[u8]) -> Result<(), AuthError> {
        let m = self.mechanism;
        let expected = match std::mem::replace(&mut self.state, State::Failed) {
            State::SentFinal { server_signature } => server_signature,
            State::Failed => return Err(self.failed()),
            _ => {
                return Err(AuthError::IllegalState(format!(
                    "{} client is not awaiting server-final",
                    m.name()
                )));
            }
        };
        match message::parse_server_final(m, message::text(m, server_final)?)? {
            ServerFinal::Verifier(signature) => {
                constant_time::verify_slices_are_equal(&signature, &expected)
                    .map_err(|_| AuthError::invalid_credentials(m.name()))?;
                self.state = State::Complete;
                Ok(())
            }
            ServerFinal::Error("invalid-proof" | "unknown-user") => {
                Err(AuthError::invalid_credentials(m.name()))
            }
            ServerFinal::Error(e) => Err(AuthError::malformed(
                m.name(),
                format!("server reported error '{e}'"),
            )),
        }
    }

    fn failed(&self) -> AuthError {
        match &self.nonce {
            Err(e) => e.clone(),
            Ok(_) => AuthError::IllegalState(format!(
                "{} exchange already failed",
                self.mechanism.name()
            )),
        }
    }
}

// The password stays out of logs.
impl std::fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramClient")
            .field("mechanism", &self.mechanism)
            .field("sasl_name", &self.sasl_name)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: ScramMechanism = ScramMechanism::Sha256;
    const SERVER_FIRST: &[u8] =
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";

    fn rfc_client() -> ScramClient {
        ScramClient::with_nonce(M, "user", "pencil", "rOprNGfwEbeRWgbNEkqO")
    }

    #[test]
    fn rfc7677_vector() {
        let mut client = rfc_client();
        assert_eq!(client.first_message(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        assert_eq!(
            String::from_utf8(client.final_message(SERVER_FIRST).unwrap()).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        client
            .verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert!(matches!(
            client.final_message(SERVER_FIRST),
            Err(AuthError::IllegalState(_))
        ));
    }

    #[test]
    fn escapes_the_username() {
        let mut client = ScramClient::with_nonce(M, "a,b=c", "pw", "xyz");
        assert_eq!(client.first_message(), b"n,,n=a=2Cb=3Dc,r=xyz");
        assert!(!format!("{client:?}").contains("pw"));
    }

    #[test]
    fn wrong_server_signature() {
        let mut client = rfc_client();
        client.first_message();
        client.final_message(SERVER_FIRST).unwrap();
        assert_eq!(
            client.verify_server_final(b"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Err(AuthError::invalid_credentials("SCRAM-SHA-256"))
        );
        assert!(matches!(
            client.verify_server_final(b"v=AAAA"),
            Err(AuthError::IllegalState(_))
        ));
    }

    #[test]
    fn server_errors() {
        for (msg, credentials) in [
            (&b"e=invalid-proof"[..], true),
            (b"e=unknown-user", true),
            (b"e=other-error", false),
        ] {
            let mut client = rfc_client();
            client.first_message();
            client.final_message(SERVER_FIRST).unwrap();
            let err = client.verify_server_final(msg).unwrap_err();
            assert_eq!(
                matches!(err, AuthError::InvalidCredentials { .. }),
                credentials,
                "{err:?}"
            );
        }
    }

    #[test]
    fn refuses_bad_server_first() {
        // (server-first, whether the error is Malformed rather than Invalid)
        let cases: [(&[u8], bool); 6] = [
            (b"r=someoneelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", true),
            (
                b"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
                true,
            ),
            (
                b"r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4095",
                false,
            ),
            (
                b"r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1000000",
                false,
            ),
            (b"r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==", true),
            (b"garbage", true),
        ];
        for (msg, malformed) in cases {
            let mut client = rfc_client();
            client.first_message();
            let err = client.final_message(msg).unwrap_err();
            let expected = if malformed {
                matches!(err, AuthError::Malformed { .. })
            } else {
                matches!(err, AuthError::Invalid(_))
            };
            assert!(expected, "{err:?}");
            assert!(matches!(
                client.final_message(SERVER_FIRST),
                Err(AuthError::IllegalState(_))
            ));
        }
    }

    #[test]
    fn steps_out_of_order() {
        let mut client = rfc_client();
        assert!(matches!(
            client.final_message(SERVER_FIRST),
            Err(AuthError::IllegalState(_))
        ));
        let mut client = rfc_client();
        assert!(matches!(
            client.verify_server_final(b"v=AAAA"),
            Err(AuthError::IllegalState(_))
        ));
    }
}
