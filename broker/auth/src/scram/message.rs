//! The SCRAM message grammar (RFC 5802 section 7) as Kafka accepts it: parsing the four messages
//! into borrowed parts, and the `saslname` escaping of `,` and `=`. No cryptography here.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::ScramMechanism;
use crate::AuthError;

/// The largest SCRAM message either half accepts. Real ones are around 100 bytes; the cap keeps
/// a peer from making us buffer or scan much.
pub const MAX_MESSAGE_LEN: usize = 4096;

/// A message as text, after the size cap and the UTF-8 check (NUL is excluded too: RFC 5802
/// forbids it in every attribute).
pub(super) fn text(m: ScramMechanism, message: &[u8]) -> Result<&str, AuthError> {
    if message.len() > MAX_MESSAGE_LEN {
        return Err(AuthError::malformed(
            m.name(),
            format!(
                "message of {} bytes exceeds the {MAX_MESSAGE_LEN}-byte limit",
                message.len()
            ),
        ));
    }
    let text = std::str::from_utf8(message)
        .map_err(|_| AuthError::malformed(m.name(), "message is not UTF-8"))?;
    if text.contains('\0') {
        return Err(AuthError::malformed(m.name(), "message contains NUL"));
    }
    Ok(text)
}

/// client-first-message = gs2-header client-first-message-bare.
#[derive(Debug)]
pub(super) struct ClientFirst<'a> {
    /// "n,," / "y,," / "n,a=...,": echoed back, base64, in the final message's `c=`.
    pub gs2_header: &'a str,
    /// Unescaped; empty when absent.
    pub authzid: String,
    /// Unescaped.
    pub username: String,
    pub nonce: &'a str,
    /// Part of the AuthMessage, exactly as received.
    pub bare: &'a str,
    /// Kafka's `tokenauth=true` extension: the user name is a delegation token id.
    pub token_auth: bool,
}

pub(super) fn parse_client_first(
    m: ScramMechanism,
    text: &str,
) -> Result<ClientFirst<'_>, AuthError> {
    let bad =
        |detail: &str| AuthError::malformed(m.name(), format!("client-first-message: {detail}"));
    let (flag, rest) = text.split_once(',').ok_or_else(|| bad("no gs2 header"))?;
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err(bad("channel binding is not supported")),
        _ => return Err(bad("gs2 header must start with 'n' or 'y'")),
    }
    let (authz, bare) = rest
        .split_once(',')
        .ok_or_else(|| bad("gs2 header is incomplete"))?;
    let authzid = match authz {
        "" => String::new(),
        a => {
            let value = a
                .strip_prefix("a=")
                .ok_or_else(|| bad("authzid must start with 'a='"))?;
            unescape_saslname(value).ok_or_else(|| bad("invalid authzid"))?
        }
    };
    let gs2_header = &text[..text.len() - bare.len()];

    let mut parts = bare.split(',');
    let user = parts.next().unwrap_or_default();
    if user.starts_with("m=") {
        return Err(bad("mandatory extensions are not supported"));
    }
    let user = attribute(user, 'n').ok_or_else(|| bad("expected 'n=<username>'"))?;
    let username = unescape_saslname(user).ok_or_else(|| bad("invalid username encoding"))?;
    let nonce = parts
        .next()
        .and_then(|p| attribute(p, 'r'))
        .ok_or_else(|| bad("expected 'r=<nonce>'"))?;
    if !valid_nonce(nonce) {
        return Err(bad("nonce must be printable ASCII without ','"));
    }
    let mut token_auth = false;
    for part in parts {
        let (key, value) = extension(part).ok_or_else(|| bad("invalid extension"))?;
        // Java's Boolean.parseBoolean, as Kafka's ScramExtensions reads it.
        if key == "tokenauth" && value.eq_ignore_ascii_case("true") {
            token_auth = true;
        }
    }
    Ok(ClientFirst {
        gs2_header,
        authzid,
        username,
        nonce,
        bare,
        token_auth,
    })
}

/// server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count ["," extensions].
#[derive(Debug)]
pub(super) struct ServerFirst<'a> {
    pub nonce: &'a str,
    pub salt: Vec<u8>,
    pub iterations: u32,
}

pub(super) fn parse_server_first(
    m: ScramMechanism,
    text: &str,
) -> Result<ServerFirst<'_>, AuthError> {
    let bad =
        |detail: &str| AuthError::malformed(m.name(), format!("server-first-message: {detail}"));
    let mut parts = text.split(',');
    let first = parts.next().unwrap_or_default();
    if first.starts_with("m=") {
        return Err(bad("mandatory extensions are not supported"));
    }
    let nonce = attribute(first, 'r')
        .filter(|n| valid_nonce(n))
        .ok_or_else(|| bad("expected 'r=<nonce>'"))?;
    let salt = parts
        .next()
        .and_then(|p| attribute(p, 's'))
        .ok_or_else(|| bad("expected 's=<salt>'"))?;
    let salt = STANDARD
        .decode(salt)
        .map_err(|_| bad("salt is not base64"))?;
    let iterations = parts
        .next()
        .and_then(|p| attribute(p, 'i'))
        .filter(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|i| i.parse().ok())
        .ok_or_else(|| bad("expected 'i=<iteration count>'"))?;
    for part in parts {
        extension(part).ok_or_else(|| bad("invalid extension"))?;
    }
    Ok(ServerFirst {
        nonce,
        salt,
        iterations,
    })
}

/// client-final-message = channel-binding "," nonce ["," extensions] "," proof.
#[derive(Debug)]
pub(super) struct ClientFinal<'a> {
    pub channel_binding: Vec<u8>,
    pub nonce: &'a str,
    /// Part of the AuthMessage, exactly as received.
    pub without_proof: &'a str,
    pub proof: Vec<u8>,
}

pub(super) fn parse_client_final(
    m: ScramMechanism,
    text: &str,
) -> Result<ClientFinal<'_>, AuthError> {
    let bad =
        |detail: &str| AuthError::malformed(m.name(), format!("client-final-message: {detail}"));
    let (without_proof, proof) = text
        .rsplit_once(',')
        .ok_or_else(|| bad("too few attributes"))?;
    let proof = attribute(proof, 'p').ok_or_else(|| bad("expected 'p=<proof>' last"))?;
    let proof = STANDARD
        .decode(proof)
        .map_err(|_| bad("proof is not base64"))?;
    if proof.len() != m.hash_len() {
        return Err(bad("proof has the wrong length"));
    }
    let mut parts = without_proof.split(',');
    let channel_binding = parts
        .next()
        .and_then(|p| attribute(p, 'c'))
        .ok_or_else(|| bad("expected 'c=<channel binding>'"))?;
    let channel_binding = STANDARD
        .decode(channel_binding)
        .map_err(|_| bad("channel binding is not base64"))?;
    let nonce = parts
        .next()
        .and_then(|p| attribute(p, 'r'))
        .ok_or_else(|| bad("expected 'r=<nonce>'"))?;
    if !valid_nonce(nonce) {
        return Err(bad("nonce must be printable ASCII without ','"));
    }
    for part in parts {
        extension(part).ok_or_else(|| bad("invalid extension"))?;
    }
    Ok(ClientFinal {
        channel_binding,
        nonce,
        without_proof,
        proof,
    })
}

/// server-final-message = (server-error / verifier) ["," extensions].
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ServerFinal<'a> {
    Verifier(Vec<u8>),
    Error(&'a str),
}

pub(super) fn parse_server_final(
    m: ScramMechanism,
    text: &str,
) -> Result<ServerFinal<'_>, AuthError> {
    let bad =
        |detail: &str| AuthError::malformed(m.name(), format!("server-final-message: {detail}"));
    let mut parts = text.split(',');
    let first = parts.next().unwrap_or_default();
    let result = if let Some(error) = attribute(first, 'e') {
        if error.is_empty() || error.contains('=') {
            return Err(bad("invalid server error value"));
        }
        ServerFinal::Error(error)
    } else {
        let verifier =
            attribute(first, 'v').ok_or_else(|| bad("expected 'v=<verifier>' or 'e=<error>'"))?;
        ServerFinal::Verifier(
            STANDARD
                .decode(verifier)
                .map_err(|_| bad("verifier is not base64"))?,
        )
    };
    for part in parts {
        extension(part).ok_or_else(|| bad("invalid extension"))?;
    }
    Ok(result)
}

/// `,` and `=` in a user name become `=2C` and `=3D` (RFC 5802 saslname).
pub(super) fn escape_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// The reverse of `escape_saslname`; any other `=` sequence is refused (None), as Kafka's
/// `ScramFormatter.username` does. Empty names are refused too.
pub(super) fn unescape_saslname(saslname: &str) -> Option<String> {
    if saslname.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(saslname.len());
    let mut rest = saslname;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let escape = rest.get(i..i + 3)?;
        out.push(match escape {
            "=2C" => ',',
            "=3D" => '=',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// The value of `<name>=<value>`, if `part` is that attribute.
fn attribute(part: &str, name: char) -> Option<&str> {
    part.strip_prefix(name)?.strip_prefix('=')
}

/// RFC 5802 `printable`: 0x21-0x7E except ','. Empty nonces are refused.
fn valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// An extension attribute `<letters>=<value>`, as Kafka's `[A-Za-z]+=[^,]+`.
fn extension(part: &str) -> Option<(&str, &str)> {
    let (key, value) = part.split_once('=')?;
    let key_ok = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphabetic());
    (key_ok && !value.is_empty()).then_some((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: ScramMechanism = ScramMechanism::Sha256;

    fn malformed(r: Result<impl std::fmt::Debug, AuthError>) -> String {
        match r {
            Err(AuthError::Malformed { mechanism, detail }) => {
                assert_eq!(mechanism, "SCRAM-SHA-256");
                detail
            }
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn saslname_escaping() {
        assert_eq!(escape_saslname("a=b,c"), "a=3Db=2Cc");
        assert_eq!(unescape_saslname("a=3Db=2Cc").as_deref(), Some("a=b,c"));
        assert_eq!(unescape_saslname("=3D2C").as_deref(), Some("=2C"));
        for bad in ["", "a=", "a=2", "a=2c", "a==2C", "a=41", "é=", "=é="] {
            assert_eq!(unescape_saslname(bad), None, "{bad}");
        }
        assert_eq!(unescape_saslname("é").as_deref(), Some("é"));
    }

    #[test]
    fn client_first_variants() {
        let f = parse_client_first(M, "n,,n=user,r=abc").unwrap();
        assert_eq!(
            (f.gs2_header, f.username.as_str(), f.nonce, f.bare),
            ("n,,", "user", "abc", "n=user,r=abc")
        );
        assert_eq!(f.authzid, "");
        assert!(!f.token_auth);

        let f = parse_client_first(M, "y,a=us=3Der,n=us=3Der,r=abc,foo=bar").unwrap();
        assert_eq!(
            (f.gs2_header, f.authzid.as_str(), f.username.as_str()),
            ("y,a=us=3Der,", "us=er", "us=er")
        );
        assert_eq!(f.bare, "n=us=3Der,r=abc,foo=bar");

        assert!(
            parse_client_first(M, "n,,n=u,r=abc,tokenauth=TRUE")
                .unwrap()
                .token_auth
        );
        assert!(
            !parse_client_first(M, "n,,n=u,r=abc,tokenauth=false")
                .unwrap()
                .token_auth
        );
    }

    #[test]
    fn client_first_errors() {
        assert!(
            malformed(parse_client_first(M, "p=tls-unique,,n=u,r=abc")).contains("channel binding")
        );
        for bad in [
            "",
            "n",
            "n,",
            "x,,n=u,r=abc",
            "n,,",
            "n,,n=u",
            "n,,n=,r=abc",
            "n,,n=u=,r=abc",
            "n,,n=u,r=",
            "n,,n=u,r=a b",
            "n,,r=abc,n=u",
            "n,,m=ext,n=u,r=abc",
            "n,b=x,n=u,r=abc",
            "n,a=,n=u,r=abc",
            "n,,n=u,r=abc,",
            "n,,n=u,r=abc,1=2",
            "n,,n=u,r=abc,k=",
            "n,,n=u,r=abc,k",
        ] {
            malformed(parse_client_first(M, bad));
        }
    }

    #[test]
    fn server_first_variants() {
        let f = parse_server_first(M, "r=abcdef,s=c2FsdA==,i=4096").unwrap();
        assert_eq!(
            (f.nonce, f.salt.as_slice(), f.iterations),
            ("abcdef", &b"salt"[..], 4096)
        );
        assert_eq!(
            parse_server_first(M, "r=ab,s=,i=1,ext=1").unwrap().salt,
            b""
        );
        for bad in [
            "",
            "r=ab",
            "r=ab,s=c2FsdA==",
            "r=ab,s=c2FsdA=,i=4096",
            "r=ab,s=c2FsdA==,i=",
            "r=ab,s=c2FsdA==,i=-1",
            "r=ab,s=c2FsdA==,i=+1",
            "r=ab,s=c2FsdA==,i=99999999999",
            "m=x,r=ab,s=c2FsdA==,i=4096",
            "s=c2FsdA==,r=ab,i=4096",
        ] {
            malformed(parse_server_first(M, bad));
        }
    }

    #[test]
    fn client_final_variants() {
        let proof = STANDARD.encode([7u8; 32]);
        let msg = format!("c=biws,r=abc,x=y,p={proof}");
        let f = parse_client_final(M, &msg).unwrap();
        assert_eq!(
            (f.channel_binding.as_slice(), f.nonce, f.without_proof),
            (&b"n,,"[..], "abc", "c=biws,r=abc,x=y")
        );
        assert_eq!(f.proof, [7u8; 32]);

        assert!(malformed(parse_client_final(M, "c=biws,r=abc,p=AAAA")).contains("length"));
        for bad in [
            String::new(),
            "p=AAAA".to_owned(),
            format!("c=biws,p={proof}"),
            format!("r=abc,c=biws,p={proof}"),
            format!("c=bi!s,r=abc,p={proof}"),
            format!("c=biws,r=abc,p={proof},x=y"),
            format!("c=biws,r=abc,p=*{proof}"),
            format!("c=biws,r=,p={proof}"),
        ] {
            malformed(parse_client_final(M, &bad));
        }
    }

    #[test]
    fn server_final_variants() {
        assert_eq!(
            parse_server_final(M, "v=AAAA").unwrap(),
            ServerFinal::Verifier(vec![0, 0, 0])
        );
        assert_eq!(
            parse_server_final(M, "v=AAAA,ext=1").unwrap(),
            ServerFinal::Verifier(vec![0, 0, 0])
        );
        assert_eq!(
            parse_server_final(M, "e=invalid-proof").unwrap(),
            ServerFinal::Error("invalid-proof")
        );
        for bad in ["", "v", "v=A", "e=", "e=a=b", "x=1", "v=AAAA,"] {
            malformed(parse_server_final(M, bad));
        }
    }

    #[test]
    fn text_limits() {
        assert!(malformed(text(M, &vec![b'a'; MAX_MESSAGE_LEN + 1])).contains("exceeds"));
        assert!(text(M, &vec![b'a'; MAX_MESSAGE_LEN]).is_ok());
        malformed(text(M, b"n,,n=\xff,r=a"));
        malformed(text(M, b"n,,n=a\0b,r=a"));
    }
}
