//! The one error type of the crate. Its messages are safe to show an unauthenticated peer: a
//! failed login says the same thing whether the user is unknown or the password wrong.

/// Why an authentication step or a credential-related parse failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// Wrong password, unknown user, bad proof: one message for all of them, Kafka's wording, so
    /// a client cannot tell which user names exist.
    #[error(
        "Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"
    )]
    InvalidCredentials { mechanism: String },
    /// A message that does not follow the mechanism's grammar.
    #[error("Malformed {mechanism} message: {detail}")]
    Malformed { mechanism: String, detail: String },
    /// A value out of range or a config string that does not parse (iterations, `--add-scram`,
    /// JAAS).
    #[error("{0}")]
    Invalid(String),
    /// A step called after the exchange finished or failed.
    #[error("{0}")]
    IllegalState(String),
    /// An OAUTHBEARER access token that failed validation, with what was wrong (expired, wrong
    /// audience, unknown kid, bad signature, ...). The token was presented by the client, so
    /// telling it why is no disclosure.
    #[error("Invalid OAUTHBEARER token: {0}")]
    InvalidToken(String),
}

impl AuthError {
    pub(crate) fn invalid_credentials(mechanism: &str) -> Self {
        Self::InvalidCredentials {
            mechanism: mechanism.to_owned(),
        }
    }

    pub(crate) fn malformed(mechanism: &str, detail: impl Into<String>) -> Self {
        Self::Malformed {
            mechanism: mechanism.to_owned(),
            detail: detail.into(),
        }
    }

    pub(crate) fn invalid_token(detail: impl Into<String>) -> Self {
        Self::InvalidToken(detail.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_credentials_reads_like_kafka() {
        assert_eq!(
            AuthError::invalid_credentials("SCRAM-SHA-256").to_string(),
            "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"
        );
    }
}
