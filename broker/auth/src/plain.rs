//! SASL PLAIN (RFC 4616) as Kafka's PlainSaslServer: one `authzid NUL authcid NUL passwd`
//! message, checked by a caller-supplied password verifier. Only safe over TLS.

use crate::AuthError;

/// The SASL mechanism name.
pub const MECHANISM: &str = "PLAIN";

/// The largest PLAIN message accepted.
pub const MAX_MESSAGE_LEN: usize = 4096;

/// A parsed PLAIN message.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainMessage {
    pub authzid: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for PlainMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainMessage")
            .field("authzid", &self.authzid)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Parses `authzid\0authcid\0passwd` (UTF-8). An empty user name or password is `Malformed`; an
/// authzid other than the user name is `InvalidCredentials` (Kafka refuses impersonation).
pub fn parse(message: &[u8]) -> Result<PlainMessage, AuthError> {
    let bad = |detail: String| AuthError::malformed(MECHANISM, detail);
    if message.len() > MAX_MESSAGE_LEN {
        return Err(bad(format!(
            "message of {} bytes exceeds the {MAX_MESSAGE_LEN}-byte limit",
            message.len()
        )));
    }
    let text = std::str::from_utf8(message).map_err(|_| bad("message is not UTF-8".to_owned()))?;
    let fields: Vec<&str> = text.split('\0').collect();
    let [authzid, username, password] = fields[..] else {
        return Err(bad(format!(
            "expected 3 NUL-separated fields, got {}",
            fields.len()
        )));
    };
    if username.is_empty() {
        return Err(bad("username not specified".to_owned()));
    }
    if password.is_empty() {
        return Err(bad("password not specified".to_owned()));
    }
    if !authzid.is_empty() && authzid != username {
        return Err(AuthError::invalid_credentials(MECHANISM));
    }
    Ok(PlainMessage {
        authzid: authzid.to_owned(),
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

/// Parses `message` and asks `verify(username, password)`; the principal is the user name.
pub fn authenticate(
    message: &[u8],
    verify: &dyn Fn(&str, &str) -> bool,
) -> Result<String, AuthError> {
    let parsed = parse(message)?;
    if verify(&parsed.username, &parsed.password) {
        Ok(parsed.username)
    } else {
        Err(AuthError::invalid_credentials(MECHANISM))
    }
}

/// The message a client sends: no authzid, as Kafka's client.
pub fn client_message(username: &str, password: &str) -> Vec<u8> {
    format!("\0{username}\0{password}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(r: Result<PlainMessage, AuthError>) -> String {
        match r {
            Err(AuthError::Malformed { mechanism, detail }) if mechanism == "PLAIN" => detail,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn parses_with_and_without_authzid() {
        let m = parse(b"\0alice\0secret").unwrap();
        assert_eq!(
            (m.authzid.as_str(), m.username.as_str(), m.password.as_str()),
            ("", "alice", "secret")
        );
        let m = parse(b"alice\0alice\0p\xc3\xa4ss word").unwrap();
        assert_eq!(
            (m.authzid.as_str(), m.password.as_str()),
            ("alice", "päss word")
        );
        assert_eq!(parse(&client_message("bob", "pw")).unwrap().username, "bob");
        assert!(!format!("{m:?}").contains("päss"));
    }

    #[test]
    fn edge_cases() {
        assert!(detail(parse(b"")).contains("got 1"));
        assert!(detail(parse(b"alice\0secret")).contains("got 2"));
        assert!(detail(parse(b"\0alice\0secret\0")).contains("got 4"));
        assert!(detail(parse(b"\0\0secret")).contains("username"));
        assert!(detail(parse(b"\0alice\0")).contains("password"));
        assert!(detail(parse(b"\0al\xffice\0secret")).contains("UTF-8"));
        let mut big = b"\0alice\0".to_vec();
        big.resize(MAX_MESSAGE_LEN + 1, b'x');
        assert!(detail(parse(&big)).contains("limit"));
        assert_eq!(
            parse(b"admin\0alice\0secret"),
            Err(AuthError::invalid_credentials("PLAIN"))
        );
    }

    #[test]
    fn authenticate_uses_the_verifier() {
        let verify = |u: &str, p: &str| u == "alice" && p == "secret";
        assert_eq!(authenticate(b"\0alice\0secret", &verify).unwrap(), "alice");
        let wrong = authenticate(b"\0alice\0nope", &verify).unwrap_err();
        let unknown = authenticate(b"\0mallory\0secret", &verify).unwrap_err();
        assert_eq!(wrong, unknown);
        assert_eq!(
            wrong.to_string(),
            "Authentication failed during authentication due to invalid credentials with SASL mechanism PLAIN"
        );
    }
}
