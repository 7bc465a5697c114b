//! Authentication mechanics, free of sockets and of the broker: the SASL mechanisms' message
//! exchanges (SCRAM, PLAIN, and OAUTHBEARER with its JWT validation), Kafka's SCRAM credential
//! format, and the parsers for the config syntaxes Kafka users already write (JAAS options,
//! `--add-scram`). The broker's connection layer drives these; the client crate uses the client
//! halves for inter-broker authentication.

pub mod add_scram;
pub mod error;
pub mod jaas;
pub mod oauth;
pub mod plain;
pub mod scram;

pub use error::AuthError;

/// Whether `a == b`, in time that does not depend on where they differ nor (beyond hashing) on
/// whether their lengths match: both are hashed and the digests compared in constant time. For
/// checking a presented password against a configured one (PLAIN's `user_<name>` table).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use aws_lc_rs::{constant_time, digest};
    let (a, b) = (
        digest::digest(&digest::SHA256, a),
        digest::digest(&digest::SHA256, b),
    );
    constant_time::verify_slices_are_equal(a.as_ref(), b.as_ref()).is_ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn constant_time_eq() {
        assert!(super::constant_time_eq(b"secret", b"secret"));
        assert!(super::constant_time_eq(b"", b""));
        assert!(!super::constant_time_eq(b"secret", b"secreT"));
        assert!(!super::constant_time_eq(b"secret", b"secret2"));
        assert!(!super::constant_time_eq(b"", b"x"));
    }
}
