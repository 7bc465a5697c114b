//! Kafka's `sasl.jaas.config` value: one JAAS login module entry, tokenized as Kafka's
//! `JaasConfig` does with Java's StreamTokenizer, so configs copied from Kafka parse the same.
//! Gives the broker the PLAIN user table and the inter-broker user name and password.

use std::collections::BTreeMap;
use std::iter::Peekable;
use std::str::Chars;

use crate::AuthError;

/// One login module entry, e.g.
/// `org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret";`
#[derive(Clone, PartialEq, Eq)]
pub struct JaasConfig {
    pub login_module: String,
    /// Lowercased: `required`, `requisite`, `sufficient` or `optional`.
    pub control_flag: String,
    pub options: BTreeMap<String, String>,
}

/// Parses a `sasl.jaas.config` value: `<module class> <flag> (<key>=<value>)* ;`, values bare
/// tokens or quoted strings (`"` or `'`, with Java's backslash escapes), `//` and `/* */`
/// comments. Exactly one entry, as Kafka requires of this property.
pub fn parse(value: &str) -> Result<JaasConfig, AuthError> {
    let mut tokens = Tokenizer {
        chars: value.chars().peekable(),
    };
    let mut entries = Vec::new();
    while let Some(first) = tokens.next_token()? {
        entries.push(parse_entry(first, &mut tokens)?);
    }
    match entries.len() {
        0 => Err(invalid("Login module not specified in JAAS config")),
        1 => Ok(entries.remove(0)),
        n => Err(AuthError::Invalid(format!(
            "JAAS config property contains {n} login modules, should be 1 module"
        ))),
    }
}

impl JaasConfig {
    /// PlainLoginModule's `user_<name>="<password>"` entries, keyed by name.
    pub fn plain_users(&self) -> BTreeMap<String, String> {
        self.options
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("user_")?, v)))
            .filter(|(name, _)| !name.is_empty())
            .map(|(name, v)| (name.to_owned(), v.clone()))
            .collect()
    }

    pub fn username(&self) -> Option<&str> {
        self.options.get("username").map(String::as_str)
    }

    pub fn password(&self) -> Option<&str> {
        self.options.get("password").map(String::as_str)
    }
}

/// Whether an option holds a secret that Debug must not print.
fn is_secret(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    key.starts_with("user_") || lower.contains("password") || lower.contains("secret")
}

impl std::fmt::Debug for JaasConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let options: BTreeMap<&str, &str> = self
            .options
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str(),
                    if is_secret(k) {
                        "<redacted>"
                    } else {
                        v.as_str()
                    },
                )
            })
            .collect();
        f.debug_struct("JaasConfig")
            .field("login_module", &self.login_module)
            .field("control_flag", &self.control_flag)
            .field("options", &options)
            .finish()
    }
}

fn invalid(message: &str) -> AuthError {
    AuthError::Invalid(message.to_owned())
}

fn parse_entry(first: Token, tokens: &mut Tokenizer<'_>) -> Result<JaasConfig, AuthError> {
    let login_module = first.into_string().map_err(|t| {
        AuthError::Invalid(format!(
            "Expected a login module class name in JAAS config, found {t}"
        ))
    })?;
    let flag = tokens
        .next_token()?
        .ok_or_else(|| invalid("Login module control flag not specified in JAAS config"))?
        .into_string()
        .map_err(|_| invalid("Login module control flag is not available in the JAAS config"))?;
    let control_flag = flag.to_ascii_lowercase();
    if !matches!(
        control_flag.as_str(),
        "required" | "requisite" | "sufficient" | "optional"
    ) {
        return Err(AuthError::Invalid(format!(
            "Invalid login module control flag '{flag}' in JAAS config"
        )));
    }
    let mut options = BTreeMap::new();
    loop {
        let key = match tokens.next_token()? {
            None => return Err(invalid("JAAS config entry not terminated by semi-colon")),
            Some(Token::Semicolon) => break,
            Some(t) => t.into_string().map_err(|t| {
                AuthError::Invalid(format!("Expected an option name in JAAS config, found {t}"))
            })?,
        };
        let no_value = || {
            AuthError::Invalid(format!(
                "Value not specified for key '{key}' in JAAS config"
            ))
        };
        if tokens.next_token()? != Some(Token::Equals) {
            return Err(no_value());
        }
        let value = tokens
            .next_token()?
            .ok_or_else(no_value)?
            .into_string()
            .map_err(|_| no_value())?;
        // Later duplicates win, as in Kafka's HashMap.
        options.insert(key, value);
    }
    Ok(JaasConfig {
        login_module,
        control_flag,
        options,
    })
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    /// A bare word or a quoted string: both are values to Kafka.
    Str(String),
    Semicolon,
    Equals,
    /// A character that is none of the above (C1 controls).
    Other(char),
}

impl Token {
    fn into_string(self) -> Result<String, Token> {
        match self {
            Token::Str(s) => Ok(s),
            t => Err(t),
        }
    }
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Token::Str(_) => f.write_str("a string"),
            Token::Semicolon => f.write_str("';'"),
            Token::Equals => f.write_str("'='"),
            Token::Other(c) => write!(f, "character U+{:04X}", u32::from(*c)),
        }
    }
}

/// Java's StreamTokenizer with Kafka's syntax table: bytes 0-32 are whitespace; `;` and `=` are
/// single-character tokens; `"` and `'` quote; `/` starts a comment (`//`, `/* */`, or a lone `/`
/// to the end of the line); 33-128 and 160 up are word characters.
struct Tokenizer<'a> {
    chars: Peekable<Chars<'a>>,
}

fn is_word_char(c: char) -> bool {
    let u = u32::from(c);
    ((33..=128).contains(&u) && !matches!(c, ';' | '=' | '"' | '\'' | '/')) || u >= 160
}

impl Tokenizer<'_> {
    fn next_token(&mut self) -> Result<Option<Token>, AuthError> {
        loop {
            let Some(c) = self.chars.next() else {
                return Ok(None);
            };
            match c {
                c if u32::from(c) <= 32 => {}
                c if is_word_char(c) => {
                    let mut word = String::from(c);
                    while let Some(&c) = self.chars.peek().filter(|&&c| is_word_char(c)) {
                        word.push(c);
                        self.chars.next();
                    }
                    return Ok(Some(Token::Str(word)));
                }
                '"' | '\'' => return self.quoted(c).map(|s| Some(Token::Str(s))),
                '/' if self.chars.peek() == Some(&'*') => {
                    self.chars.next();
                    // An unterminated block comment runs to the end, as in Java.
                    let mut prev = '\0';
                    for c in self.chars.by_ref() {
                        if prev == '*' && c == '/' {
                            break;
                        }
                        prev = c;
                    }
                }
                '/' => while self.chars.next_if(|&c| c != '\n' && c != '\r').is_some() {},
                ';' => return Ok(Some(Token::Semicolon)),
                '=' => return Ok(Some(Token::Equals)),
                c => return Ok(Some(Token::Other(c))),
            }
        }
    }

    /// The rest of a quoted string. Java ends one at a line break too; the end of the input
    /// inside one is an error here (Java would fail on the missing `;` anyway).
    fn quoted(&mut self, quote: char) -> Result<String, AuthError> {
        let mut out = String::new();
        loop {
            let c = match self.chars.next() {
                None => return Err(invalid("Unterminated quoted string in JAAS config")),
                Some(c) if c == quote => return Ok(out),
                Some('\n' | '\r') => return Ok(out),
                Some('\\') => self.escape()?,
                Some(c) => c,
            };
            out.push(c);
        }
    }

    /// Java's escapes: `\a \b \f \n \r \t \v`, up to three octal digits (`\0`-`\377`), and
    /// otherwise the character itself (`\"`, `\\`).
    fn escape(&mut self) -> Result<char, AuthError> {
        let c = self
            .chars
            .next()
            .ok_or_else(|| invalid("Unterminated quoted string in JAAS config"))?;
        let octal = |c: Option<&char>| c.and_then(|c| c.to_digit(8));
        Ok(match c {
            'a' => '\u{7}',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\u{b}',
            '0'..='7' => {
                let first = c.to_digit(8).unwrap_or(0);
                let mut value = first;
                let max_digits = if first <= 3 { 3 } else { 2 };
                for _ in 1..max_digits {
                    let Some(d) = octal(self.chars.peek()) else {
                        break;
                    };
                    value = value * 8 + d;
                    self.chars.next();
                }
                char::from_u32(value).unwrap_or('\u{fffd}')
            }
            c => c,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";"#;

    fn err(value: &str) -> String {
        match parse(value) {
            Err(AuthError::Invalid(msg)) => msg,
            other => panic!("expected Invalid for {value:?}, got {other:?}"),
        }
    }

    #[test]
    fn plain_login_module() {
        let c = parse(PLAIN).unwrap();
        assert_eq!(
            c.login_module,
            "org.apache.kafka.common.security.plain.PlainLoginModule"
        );
        assert_eq!(c.control_flag, "required");
        assert_eq!(c.username(), Some("admin"));
        assert_eq!(c.password(), Some("admin-secret"));
        let users = c.plain_users();
        assert_eq!(users.len(), 2);
        assert_eq!(users["admin"], "admin-secret");
        assert_eq!(users["alice"], "alice-secret");
    }

    #[test]
    fn scram_login_module_with_bare_tokens_and_odd_spacing() {
        let c = parse("org.apache.kafka.common.security.scram.ScramLoginModule\n\tREQUIRED username = a password=b\n;  ")
            .unwrap();
        assert_eq!(c.control_flag, "required");
        assert_eq!((c.username(), c.password()), (Some("a"), Some("b")));
        assert!(c.plain_users().is_empty());
    }

    #[test]
    fn quoted_values_with_escapes() {
        let c = parse(r#"M optional a="x\"y\\z" b='sin"gle' c="tab\there\101\7\400" d="semi;colon = eq" e="";"#).unwrap();
        assert_eq!(c.options["a"], "x\"y\\z");
        assert_eq!(c.options["b"], "sin\"gle");
        assert_eq!(c.options["c"], "tab\there\u{41}\u{7}\u{20}0");
        assert_eq!(c.options["d"], "semi;colon = eq");
        assert_eq!(c.options["e"], "");
    }

    #[test]
    fn comments_and_duplicates() {
        let c = parse("M /* block */ sufficient // line\n k=1 k=2 / lone comment\n;").unwrap();
        assert_eq!(c.control_flag, "sufficient");
        assert_eq!(c.options.len(), 1);
        assert_eq!(c.options["k"], "2");
    }

    #[test]
    fn errors() {
        assert_eq!(err(""), "Login module not specified in JAAS config");
        assert_eq!(
            err("  /* nothing */ "),
            "Login module not specified in JAAS config"
        );
        assert_eq!(
            err("M"),
            "Login module control flag not specified in JAAS config"
        );
        assert_eq!(
            err("M maybe;"),
            "Invalid login module control flag 'maybe' in JAAS config"
        );
        assert_eq!(
            err("M required;;"),
            "Expected a login module class name in JAAS config, found ';'"
        );
        assert_eq!(
            err("M required a=b"),
            "JAAS config entry not terminated by semi-colon"
        );
        assert_eq!(
            err("M required a=b;  N optional;"),
            "JAAS config property contains 2 login modules, should be 1 module"
        );
        assert_eq!(
            err("M required a;"),
            "Value not specified for key 'a' in JAAS config"
        );
        assert_eq!(
            err("M required a=;"),
            "Value not specified for key 'a' in JAAS config"
        );
        assert_eq!(
            err("M required a="),
            "Value not specified for key 'a' in JAAS config"
        );
        assert_eq!(
            err("M required a=\"b;"),
            "Unterminated quoted string in JAAS config"
        );
        assert_eq!(
            err("M required a=\"b\\"),
            "Unterminated quoted string in JAAS config"
        );
        assert!(err("M required \u{85}=b;").contains("U+0085"));
    }

    #[test]
    fn debug_redacts_secrets() {
        let c =
            parse(r#"M required username="admin" password="p1" user_bob="p2" clientSecret="p3";"#)
                .unwrap();
        let shown = format!("{c:?}");
        assert!(shown.contains("admin"));
        for secret in ["p1", "p2", "p3"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
