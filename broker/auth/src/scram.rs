//! SASL SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka speaks them: the mechanism
//! table, the stored credential, and the server and client halves of the exchange. The message
//! grammar lives in `message`, the state machines in `server` and `client`.

mod client;
mod credential;
mod message;
mod server;

use aws_lc_rs::{digest, hmac, pbkdf2};

pub use client::ScramClient;
pub use credential::{ScramCredential, salted_password};
pub use message::MAX_MESSAGE_LEN;
pub use server::{ScramServer, ServerStep};

/// The two SCRAM mechanisms Kafka supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The SASL mechanism name, as clients send it in SaslHandshake.
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// Exact and case-sensitive, as Kafka's `ScramMechanism.forMechanismName`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The mechanism id Kafka uses in UserScramCredentialRecord and the
    /// Describe/AlterUserScramCredentials APIs (0 is "unknown").
    pub fn kafka_type(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_kafka_type(t: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.kafka_type() == t)
    }

    /// Kafka's floor for the iteration count, for both mechanisms.
    pub fn min_iterations(self) -> u32 {
        4096
    }

    /// Kafka's ceiling for the iteration count, for both mechanisms.
    pub fn max_iterations(self) -> u32 {
        16384
    }

    /// Output length of the hash, and so of every key and proof.
    pub fn hash_len(self) -> usize {
        match self {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        }
    }

    pub(crate) fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        let algorithm = match self {
            ScramMechanism::Sha256 => hmac::HMAC_SHA256,
            ScramMechanism::Sha512 => hmac::HMAC_SHA512,
        };
        hmac::sign(&hmac::Key::new(algorithm, key), data)
            .as_ref()
            .to_vec()
    }

    pub(crate) fn hash(self, data: &[u8]) -> Vec<u8> {
        let algorithm = match self {
            ScramMechanism::Sha256 => &digest::SHA256,
            ScramMechanism::Sha512 => &digest::SHA512,
        };
        digest::digest(algorithm, data).as_ref().to_vec()
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            ScramMechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            ScramMechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }
}

impl std::fmt::Display for ScramMechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuthError;

    #[test]
    fn names_and_kafka_types_round_trip() {
        for m in ScramMechanism::ALL {
            assert_eq!(ScramMechanism::from_name(m.name()), Some(m));
            assert_eq!(ScramMechanism::from_kafka_type(m.kafka_type()), Some(m));
        }
        assert_eq!(ScramMechanism::from_name("scram-sha-256"), None);
        assert_eq!(ScramMechanism::from_name("SCRAM-SHA-1"), None);
        assert_eq!(ScramMechanism::from_kafka_type(0), None);
        assert_eq!(ScramMechanism::Sha256.kafka_type(), 1);
        assert_eq!(ScramMechanism::Sha512.kafka_type(), 2);
        assert_eq!(ScramMechanism::Sha512.hash_len(), 64);
    }

    fn exchange(
        m: ScramMechanism,
        client: &mut ScramClient,
        server: &mut ScramServer,
        lookup: &dyn Fn(&str) -> Option<ScramCredential>,
    ) -> Result<String, AuthError> {
        let first = client.first_message();
        let ServerStep::Challenge(server_first) = server.step(&first, lookup)? else {
            panic!("expected a challenge");
        };
        let client_final = client.final_message(&server_first)?;
        match server.step(&client_final, lookup)? {
            ServerStep::Success { principal, message } => {
                client.verify_server_final(&message)?;
                assert_eq!(server.mechanism(), m);
                Ok(principal)
            }
            ServerStep::Challenge(_) => panic!("expected success"),
        }
    }

    #[test]
    fn round_trip_both_mechanisms() {
        for m in ScramMechanism::ALL {
            let cred = ScramCredential::generate(m, "alice-secret", 8192).unwrap();
            let lookup = |u: &str| (u == "al,i=ce").then(|| cred.clone());
            let mut client = ScramClient::new(m, "al,i=ce", "alice-secret");
            let mut server = ScramServer::new(m);
            assert_eq!(
                exchange(m, &mut client, &mut server, &lookup).unwrap(),
                "al,i=ce"
            );
            // Both halves are finished: any further step is a state error.
            assert!(matches!(
                server.step(b"n,,n=x,r=y", &lookup),
                Err(AuthError::IllegalState(_))
            ));
            assert!(matches!(
                client.verify_server_final(b"v=AAAA"),
                Err(AuthError::IllegalState(_))
            ));
        }
    }

    #[test]
    fn wrong_password_and_unknown_user_fail_alike() {
        let m = ScramMechanism::Sha512;
        let cred = ScramCredential::generate(m, "right", 4096).unwrap();
        let lookup = |u: &str| (u == "bob").then(|| cred.clone());

        let mut client = ScramClient::new(m, "bob", "wrong");
        let wrong = exchange(m, &mut client, &mut ScramServer::new(m), &lookup).unwrap_err();
        let mut client = ScramClient::new(m, "nobody", "right");
        let unknown = exchange(m, &mut client, &mut ScramServer::new(m), &lookup).unwrap_err();

        assert_eq!(wrong, AuthError::invalid_credentials("SCRAM-SHA-512"));
        assert_eq!(wrong, unknown);
        assert_eq!(wrong.to_string(), unknown.to_string());
    }

    #[test]
    fn credential_for_the_other_mechanism_does_not_authenticate() {
        let cred = ScramCredential::generate(ScramMechanism::Sha256, "pw", 4096).unwrap();
        let lookup = |_: &str| Some(cred.clone());
        let m = ScramMechanism::Sha512;
        let mut client = ScramClient::new(m, "u", "pw");
        let err = exchange(m, &mut client, &mut ScramServer::new(m), &lookup).unwrap_err();
        assert_eq!(err, AuthError::invalid_credentials("SCRAM-SHA-512"));
    }

    /// Every truncation and many single-byte corruptions of a valid exchange: errors, never
    /// panics, never success.
    #[test]
    fn mutated_messages_never_panic() {
        let m = ScramMechanism::Sha256;
        let cred = ScramCredential::generate(m, "pw", 4096).unwrap();
        let lookup = |u: &str| (u == "u").then(|| cred.clone());
        let new_client = || ScramClient::with_nonce(m, "u", "pw", "fixed-client-nonce");
        let mut client = new_client();
        let first = client.first_message();
        let mut server = ScramServer::new(m);
        let ServerStep::Challenge(server_first) = server.step(&first, &lookup).unwrap() else {
            panic!()
        };
        let client_final = client.final_message(&server_first).unwrap();
        let ServerStep::Success {
            message: server_final,
            ..
        } = server.step(&client_final, &lookup).unwrap()
        else {
            panic!()
        };

        let variants = |msg: &[u8]| {
            let mut out: Vec<Vec<u8>> = (0..msg.len()).map(|n| msg[..n].to_vec()).collect();
            for i in 0..msg.len() {
                for b in [b',', b'=', b'\0', 0xff, b'a', b'+'] {
                    let mut v = msg.to_vec();
                    v[i] = b;
                    if v != msg {
                        out.push(v);
                    }
                }
            }
            out
        };
        for bad in variants(&first) {
            let mut server = ScramServer::new(m);
            if server.step(&bad, &lookup).is_ok() {
                // Still a valid client-first (say a different nonce): the old proof cannot pass.
                assert!(server.step(&client_final, &lookup).is_err());
            }
        }
        for bad in variants(&client_final) {
            let mut server = ScramServer::new(m);
            server.step(&first, &lookup).unwrap();
            assert!(server.step(&bad, &lookup).is_err());
        }
        for bad in variants(&server_first) {
            let mut client = new_client();
            client.first_message();
            let _ = client.final_message(&bad);
        }
        for bad in variants(&server_final) {
            let mut client = new_client();
            client.first_message();
            client.final_message(&server_first).unwrap();
            assert!(client.verify_server_final(&bad).is_err());
        }
    }
}
