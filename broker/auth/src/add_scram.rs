//! Kafka's `kafka-storage format --add-scram` argument (KIP-900), parsed as Kafka's ScramParser
//! does and with its error wording, into a SCRAM credential to bootstrap the cluster with.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};

use crate::AuthError;
use crate::scram::{ScramCredential, ScramMechanism};

/// Java's `Base64.getDecoder()`: the standard alphabet, padding optional.
const JAVA_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Iterations when the argument names none, as Kafka.
const DEFAULT_ITERATIONS: i64 = 4096;

/// One `--add-scram` argument, resolved to the credential to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddScram {
    pub mechanism: ScramMechanism,
    pub name: String,
    pub credential: ScramCredential,
}

/// Parses `<mechanism>=[key=value,...]`, e.g.
/// `SCRAM-SHA-512=[name=admin,password=admin-secret]` or
/// `SCRAM-SHA-256=[name=alice,iterations=8192,salt="MWx2...",saltedpassword="mT0y..."]`.
///
/// Keys: `name` (required), `password` or `saltedpassword` (exactly one; `saltedpassword` needs
/// `salt`), `salt` (base64; random when absent), `iterations` (default 4096, within the
/// mechanism's range). Values may be double-quoted but cannot contain `,`. Without a salt one is
/// drawn at random, so two parses of the same argument give different credentials.
///
/// Stricter than Kafka in three ways: both `password` and `saltedpassword` is an error (Kafka
/// silently uses the password), an empty `name` is an error, and `saltedpassword` must be the
/// mechanism's hash length.
pub fn parse(arg: &str) -> Result<AddScram, AuthError> {
    let fail = |msg: String| Err(AuthError::Invalid(msg));
    let input = arg.trim();
    let Some((mechanism_name, config)) = input.split_once('=') else {
        return fail(format!(
            "Failed to find equals sign in SCRAM argument '{input}'"
        ));
    };
    let Some(mechanism) = ScramMechanism::from_name(mechanism_name) else {
        return fail(format!(
            "The add-scram mechanism {mechanism_name} is not supported."
        ));
    };
    let Some(config) = config.strip_prefix('[') else {
        return fail("Expected configuration string to start with [".to_owned());
    };
    let Some(config) = config.strip_suffix(']') else {
        return fail("Expected configuration string to end with ]".to_owned());
    };

    let mut components = BTreeMap::new();
    let mut parts: Vec<&str> = config.split(',').collect();
    // Java's String.split drops trailing empty strings.
    while parts.len() > 1 && parts.last() == Some(&"") {
        parts.pop();
    }
    for part in parts {
        let Some((key, value)) = part.split_once('=') else {
            return fail(format!("No equals sign found in SCRAM component: {part}"));
        };
        components.insert(key, unquote(value));
    }

    let Some(name) = components.remove("name") else {
        return fail("You must supply 'name' to add-scram".to_owned());
    };
    if name.is_empty() {
        return fail("The 'name' given to add-scram must not be empty".to_owned());
    }
    let salt = match components.remove("salt") {
        None => None,
        Some(s) => match JAVA_BASE64.decode(s) {
            Ok(salt) => Some(salt),
            Err(_) => return fail(format!("Failed to decode given salt: {s}")),
        },
    };
    let iterations = match components.remove("iterations") {
        None => DEFAULT_ITERATIONS,
        // Java's Integer.parseInt range.
        Some(s) => match s.parse::<i32>() {
            Ok(i) => i64::from(i),
            Err(_) => return fail(format!("Failed to parse iterations count: {s}")),
        },
    };
    let password = components.remove("password");
    let salted_password = components.remove("saltedpassword");
    let secret = match (password, salted_password) {
        (None, None) => {
            return fail(
                "You must supply one of 'password' or 'saltedpassword' to add-scram".to_owned(),
            );
        }
        (Some(_), Some(_)) => {
            return fail(
                "You must supply only one of 'password' or 'saltedpassword' to add-scram"
                    .to_owned(),
            );
        }
        (Some(password), None) => Secret::Password(password),
        (None, Some(salted)) => {
            let Some(salt) = salt.clone() else {
                return fail(
                    "You must supply 'salt' with 'saltedpassword' to add-scram".to_owned(),
                );
            };
            // The value is password-equivalent: not echoed, unlike Kafka.
            let Ok(salted) = JAVA_BASE64.decode(salted) else {
                return fail("Failed to decode given saltedpassword".to_owned());
            };
            Secret::Salted { salt, salted }
        }
    };
    if !components.is_empty() {
        let keys: Vec<&str> = components.keys().copied().collect();
        return fail(format!("Unknown SCRAM configurations: {}", keys.join(", ")));
    }

    let (min, max) = (mechanism.min_iterations(), mechanism.max_iterations());
    if iterations < i64::from(min) {
        return fail(format!(
            "The 'iterations' value must be >= {min} for add-scram using {mechanism}"
        ));
    }
    let Some(iterations) = u32::try_from(iterations).ok().filter(|&i| i <= max) else {
        return fail(format!(
            "The 'iterations' value must be <= {max} for add-scram using {mechanism}"
        ));
    };

    let credential = match (secret, salt) {
        (Secret::Salted { salt, salted }, _) => {
            ScramCredential::from_salted_password(mechanism, &salt, &salted, iterations)?
        }
        (Secret::Password(password), Some(salt)) => {
            ScramCredential::from_password(mechanism, password, &salt, iterations)?
        }
        (Secret::Password(password), None) => {
            ScramCredential::generate(mechanism, password, iterations)?
        }
    };
    Ok(AddScram {
        mechanism,
        name: name.to_owned(),
        credential,
    })
}

enum Secret<'a> {
    Password(&'a str),
    Salted { salt: Vec<u8>, salted: Vec<u8> },
}

/// Kafka strips one pair of surrounding double quotes, nothing more.
fn unquote(value: &str) -> &str {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(unquoted) if value.len() >= 2 => unquoted,
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scram::salted_password;

    const SALT: &str = "MWx2NHBkbnc0ZndxN25vdGN4bTB5eTFrN3E=";
    const SALTED: &str = "mT0yyUUxnlJaC99HXgRTSYlbuqa4FSGtJCJfTMvjYCE=";

    fn err(arg: &str) -> String {
        match parse(arg) {
            Err(AuthError::Invalid(msg)) => msg,
            other => panic!("expected Invalid for {arg}, got {other:?}"),
        }
    }

    #[test]
    fn password_form() {
        let a = parse("SCRAM-SHA-512=[name=admin,password=admin-secret]").unwrap();
        assert_eq!(
            (a.mechanism, a.name.as_str()),
            (ScramMechanism::Sha512, "admin")
        );
        assert_eq!(a.credential.iterations, 4096);
        assert!(
            a.credential
                .verify_password(ScramMechanism::Sha512, "admin-secret")
        );
        assert!(!a.credential.salt.is_empty());

        // Quotes, '=' inside a value, spaces and a trailing comma, as Kafka accepts them.
        let a = parse(&format!(
            "  SCRAM-SHA-256=[name=\"bob\",password=my pass=1,iterations=8192,salt=\"{SALT}\",]  "
        ))
        .unwrap();
        assert_eq!(a.name, "bob");
        let salt = JAVA_BASE64.decode(SALT).unwrap();
        assert_eq!(salt, b"1lv4pdnw4fwq7notcxm0yy1k7q");
        assert_eq!(
            a.credential,
            ScramCredential::from_password(ScramMechanism::Sha256, "my pass=1", &salt, 8192)
                .unwrap()
        );
    }

    #[test]
    fn salted_password_form() {
        let a = parse(&format!(
            "SCRAM-SHA-256=[name=alice,iterations=8192,salt=\"{SALT}\",saltedpassword=\"{SALTED}\"]"
        ))
        .unwrap();
        assert_eq!(
            (a.mechanism, a.name.as_str()),
            (ScramMechanism::Sha256, "alice")
        );
        let salt = JAVA_BASE64.decode(SALT).unwrap();
        let salted = JAVA_BASE64.decode(SALTED).unwrap();
        assert_eq!(
            a.credential,
            ScramCredential::from_salted_password(ScramMechanism::Sha256, &salt, &salted, 8192)
                .unwrap()
        );
        // Unpadded base64 is accepted, as by Java's decoder.
        let unpadded = parse(&format!(
            "SCRAM-SHA-256=[name=alice,iterations=8192,salt={},saltedpassword={}]",
            SALT.trim_end_matches('='),
            SALTED.trim_end_matches('=')
        ))
        .unwrap();
        assert_eq!(unpadded, a);
        // A salted password made here gives the same credential as the password form.
        let sp = salted_password(ScramMechanism::Sha512, "pw", b"salt", 4096).unwrap();
        let arg = format!(
            "SCRAM-SHA-512=[name=x,salt={},saltedpassword={}]",
            JAVA_BASE64.encode(b"salt"),
            JAVA_BASE64.encode(&sp)
        );
        assert!(
            parse(&arg)
                .unwrap()
                .credential
                .verify_password(ScramMechanism::Sha512, "pw")
        );
    }

    #[test]
    fn errors_match_kafka() {
        assert_eq!(
            err("SCRAM-SHA-512"),
            "Failed to find equals sign in SCRAM argument 'SCRAM-SHA-512'"
        );
        assert_eq!(
            err("SCRAM-SHA-UNSUPPORTED=[name=a,password=b]"),
            "The add-scram mechanism SCRAM-SHA-UNSUPPORTED is not supported."
        );
        assert_eq!(
            err("scram-sha-256=[name=a,password=b]"),
            "The add-scram mechanism scram-sha-256 is not supported."
        );
        assert_eq!(
            err("SCRAM-SHA-256=name=a,password=b"),
            "Expected configuration string to start with ["
        );
        assert_eq!(
            err("SCRAM-SHA-256=[name=a,password=b"),
            "Expected configuration string to end with ]"
        );
        assert_eq!(
            err("SCRAM-SHA-256=[]"),
            "No equals sign found in SCRAM component: "
        );
        assert_eq!(
            err("SCRAM-SHA-256=[name]"),
            "No equals sign found in SCRAM component: name"
        );
        assert_eq!(
            err("SCRAM-SHA-256=[password=b]"),
            "You must supply 'name' to add-scram"
        );
        assert_eq!(
            err("SCRAM-SHA-256=[name=bar]"),
            "You must supply one of 'password' or 'saltedpassword' to add-scram"
        );
        assert_eq!(
            err(&format!(
                "SCRAM-SHA-256=[name=a,saltedpassword=\"{SALTED}\"]"
            )),
            "You must supply 'salt' with 'saltedpassword' to add-scram"
        );
        assert_eq!(
            err(
                "SCRAM-SHA-256=[name=bob,password=mypass,unknown=something,unknown2=somethingelse]"
            ),
            "Unknown SCRAM configurations: unknown, unknown2"
        );
        assert_eq!(
            err("SCRAM-SHA-256=[name=a,password=b,salt=!!]"),
            "Failed to decode given salt: !!"
        );
        assert_eq!(
            err("SCRAM-SHA-256=[name=a,password=b,iterations=lots]"),
            "Failed to parse iterations count: lots"
        );
        assert_eq!(
            err("SCRAM-SHA-256=[name=a,password=b,iterations=99999999999]"),
            "Failed to parse iterations count: 99999999999"
        );
        assert_eq!(
            err("SCRAM-SHA-256=[name=a,password=b,iterations=-1]"),
            "The 'iterations' value must be >= 4096 for add-scram using SCRAM-SHA-256"
        );
        assert_eq!(
            err("SCRAM-SHA-512=[name=a,password=b,iterations=16385]"),
            "The 'iterations' value must be <= 16384 for add-scram using SCRAM-SHA-512"
        );
        // Stricter than Kafka.
        assert!(
            err(&format!(
                "SCRAM-SHA-256=[name=a,password=b,salt={SALT},saltedpassword={SALTED}]"
            ))
            .contains("only one")
        );
        assert!(err("SCRAM-SHA-256=[name=,password=b]").contains("empty"));
        let wrong_len = err(&format!(
            "SCRAM-SHA-512=[name=a,salt={SALT},saltedpassword={SALTED}]"
        ));
        assert!(wrong_len.contains("32 bytes"), "{wrong_len}");
        let bad_salted = err(&format!(
            "SCRAM-SHA-256=[name=a,salt={SALT},saltedpassword=secret!]"
        ));
        assert!(!bad_salted.contains("secret!"));
    }
}
