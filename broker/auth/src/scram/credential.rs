//! Kafka's stored SCRAM credential (salt, StoredKey, ServerKey, iterations) and its derivation
//! from a password or a client-computed salted password, plus the randomness SCRAM needs.

use std::num::NonZeroU32;

use aws_lc_rs::{constant_time, pbkdf2, rand};

use super::ScramMechanism;
use crate::AuthError;

/// Kafka's stored form of a SCRAM credential: what lets a server check a proof, never the
/// password.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: u32,
}

impl ScramCredential {
    /// SaltedPassword = Hi(password, salt, i) (PBKDF2-HMAC); ClientKey = HMAC(SaltedPassword,
    /// "Client Key"); StoredKey = H(ClientKey); ServerKey = HMAC(SaltedPassword, "Server Key").
    /// The password is used as its UTF-8 bytes, without SASLprep, as Kafka does.
    pub fn from_password(
        m: ScramMechanism,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, AuthError> {
        let salted = salted_password(m, password, salt, iterations)?;
        Self::from_salted_password(m, salt, &salted, iterations)
    }

    /// As `from_password`, with a fresh salt shaped like Kafka's (`ScramFormatter.secureRandomBytes`:
    /// a 130-bit random number written in base 36, as ASCII bytes).
    pub fn generate(m: ScramMechanism, password: &str, iterations: u32) -> Result<Self, AuthError> {
        Self::from_password(m, password, &random_salt()?, iterations)
    }

    /// From what AlterUserScramCredentials and `--add-scram saltedpassword=` carry: the client
    /// has already run Hi, so only the cheap HMACs remain.
    pub fn from_salted_password(
        m: ScramMechanism,
        salt: &[u8],
        salted_password: &[u8],
        iterations: u32,
    ) -> Result<Self, AuthError> {
        check_iterations(m, iterations)?;
        if salted_password.len() != m.hash_len() {
            return Err(AuthError::Invalid(format!(
                "The salted password is {} bytes; {} needs {}",
                salted_password.len(),
                m.name(),
                m.hash_len()
            )));
        }
        let client_key = m.hmac(salted_password, b"Client Key");
        Ok(Self {
            salt: salt.to_vec(),
            stored_key: m.hash(&client_key),
            server_key: m.hmac(salted_password, b"Server Key"),
            iterations,
        })
    }

    /// Whether `password` is the one this credential was made from, compared in constant time.
    /// A credential whose iteration count is outside the mechanism's range never matches, so a
    /// stored value cannot make a PLAIN login arbitrarily expensive.
    pub fn verify_password(&self, m: ScramMechanism, password: &str) -> bool {
        let Ok(salted) = salted_password(m, password, &self.salt, self.iterations) else {
            return false;
        };
        let stored_key = m.hash(&m.hmac(&salted, b"Client Key"));
        constant_time::verify_slices_are_equal(&stored_key, &self.stored_key).is_ok()
    }
}

// The keys are password-equivalent for an attacker who can watch an exchange (ServerKey lets one
// impersonate the server), so Debug shows only their presence.
impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("salt", &format_args!("<{} bytes>", self.salt.len()))
            .field("stored_key", &"<redacted>")
            .field("server_key", &"<redacted>")
            .field("iterations", &self.iterations)
            .finish()
    }
}

/// SaltedPassword = Hi(password, salt, iterations), with the iteration count checked against the
/// mechanism's range.
pub fn salted_password(
    m: ScramMechanism,
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> Result<Vec<u8>, AuthError> {
    let iterations = check_iterations(m, iterations)?;
    let mut out = vec![0; m.hash_len()];
    pbkdf2::derive(m.pbkdf2(), iterations, salt, password.as_bytes(), &mut out);
    Ok(out)
}

fn check_iterations(m: ScramMechanism, iterations: u32) -> Result<NonZeroU32, AuthError> {
    let (min, max) = (m.min_iterations(), m.max_iterations());
    match NonZeroU32::new(iterations) {
        Some(i) if (min..=max).contains(&iterations) => Ok(i),
        _ => Err(AuthError::Invalid(format!(
            "Iterations {iterations} is outside the range [{min}, {max}] allowed for {}",
            m.name()
        ))),
    }
}

/// Random bytes from AWS-LC's generator. It aborts the process rather than fail, so the error
/// branch is for form's sake.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut out = [0; N];
    rand::fill(&mut out)
        .map_err(|_| AuthError::Invalid("The system random number generator failed".to_owned()))?;
    Ok(out)
}

/// A salt in Kafka's shape, so generated and fake credentials look like the ones Kafka's tools
/// write.
pub(crate) fn random_salt() -> Result<Vec<u8>, AuthError> {
    Ok(kafka_salt(random_bytes::<17>()?))
}

/// Kafka's salt from 17 bytes of entropy: the low 130 bits as a big-endian number, written in
/// lowercase base 36 (as Java's `new BigInteger(130, random).toString(36)`), as ASCII bytes.
pub(crate) fn kafka_salt(mut n: [u8; 17]) -> Vec<u8> {
    n[0] &= 0b11; // 136 bits drawn, 130 kept
    let mut digits = Vec::new();
    while n.iter().any(|&b| b != 0) {
        let mut rem = 0u32;
        for b in n.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = u8::try_from(cur / 36).unwrap_or(0); // cur < 36 * 256, so the quotient fits
            rem = cur % 36;
        }
        digits.push(char::from_digit(rem, 36).map_or(b'0', |c| c as u8));
    }
    if digits.is_empty() {
        digits.push(b'0');
    }
    digits.reverse();
    digits
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    #[test]
    fn rfc7677_credential() {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let m = ScramMechanism::Sha256;
        let cred = ScramCredential::from_password(m, "pencil", &salt, 4096).unwrap();
        let salted = salted_password(m, "pencil", &salt, 4096).unwrap();
        assert_eq!(
            cred,
            ScramCredential::from_salted_password(m, &salt, &salted, 4096).unwrap()
        );
        assert!(cred.verify_password(m, "pencil"));
        assert!(!cred.verify_password(m, "pencil2"));
        assert!(!cred.verify_password(m, ""));
        assert!(!cred.verify_password(ScramMechanism::Sha512, "pencil"));
    }

    #[test]
    fn iterations_are_checked() {
        for m in ScramMechanism::ALL {
            for bad in [0, 1, 4095, 16385, u32::MAX] {
                assert!(matches!(
                    ScramCredential::from_password(m, "pw", b"salt", bad),
                    Err(AuthError::Invalid(_))
                ));
                assert!(salted_password(m, "pw", b"salt", bad).is_err());
            }
            assert!(ScramCredential::from_password(m, "pw", b"", 4096).is_ok());
            assert!(ScramCredential::from_password(m, "", b"salt", 16384).is_ok());
        }
        let cred = ScramCredential {
            salt: b"s".to_vec(),
            stored_key: vec![0; 32],
            server_key: vec![0; 32],
            iterations: u32::MAX,
        };
        assert!(!cred.verify_password(ScramMechanism::Sha256, "pw"));
    }

    #[test]
    fn salted_password_length_is_checked() {
        let err =
            ScramCredential::from_salted_password(ScramMechanism::Sha512, b"s", &[0; 32], 4096);
        assert!(matches!(err, Err(AuthError::Invalid(_))));
    }

    #[test]
    fn generated_salts_look_like_kafkas() {
        let cred = ScramCredential::generate(ScramMechanism::Sha256, "pw", 4096).unwrap();
        assert!(!cred.salt.is_empty() && cred.salt.len() <= 26);
        assert!(
            cred.salt
                .iter()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        );
        assert!(cred.verify_password(ScramMechanism::Sha256, "pw"));
        let other = ScramCredential::generate(ScramMechanism::Sha256, "pw", 4096).unwrap();
        assert_ne!(cred.salt, other.salt);
    }

    #[test]
    fn kafka_salt_is_base36_of_130_bits() {
        assert_eq!(kafka_salt([0; 17]), b"0");
        let mut one = [0; 17];
        one[16] = 35;
        assert_eq!(kafka_salt(one), b"z");
        one[16] = 36;
        assert_eq!(kafka_salt(one), b"10");
        // 2^130 - 1 in base 36.
        assert_eq!(kafka_salt([0xff; 17]), b"1omfro7zwmumr3umxudzyj6scf");
    }

    #[test]
    fn debug_hides_keys() {
        let cred =
            ScramCredential::from_password(ScramMechanism::Sha256, "pw", b"salt", 4096).unwrap();
        let shown = format!("{cred:?}");
        assert!(shown.contains("redacted"));
        assert!(!shown.contains(&format!("{:?}", cred.stored_key)));
    }
}
