//! `ssl.principal.mapping.rules` (KIP-371, Kafka's `SslPrincipalMapper`): how the subject of a
//! client certificate (an RFC 2253 distinguished name such as `CN=alice,OU=apps,O=example`)
//! becomes the name in the connection's `User:<name>` principal. Rules are tried in order;
//! `RULE:<regex>/<replacement>/[L|U]` applies when the regex matches the whole name, `DEFAULT`
//! keeps the name as it is. A subject no rule matches cannot be authenticated.

use regex::Regex;

use crate::error::ConfigError;

const KEY: &str = "ssl.principal.mapping.rules";

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Pattern {
        regex: Regex,
        /// In the regex crate's syntax (`${1}`), converted from Java's (`$1`).
        replacement: String,
        case: Case,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

/// The parsed rules.
#[derive(Debug, Clone)]
pub struct PrincipalMapper {
    source: String,
    rules: Vec<Rule>,
}

impl PartialEq for PrincipalMapper {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for PrincipalMapper {}

impl Default for PrincipalMapper {
    fn default() -> Self {
        PrincipalMapper {
            source: "DEFAULT".into(),
            rules: vec![Rule::Default],
        }
    }
}

impl PrincipalMapper {
    /// Parses Kafka's syntax: rules separated by commas (or new lines); inside a rule's regex and
    /// replacement `/` and `,` may be escaped with a backslash.
    pub fn parse(value: &str) -> Result<PrincipalMapper, ConfigError> {
        let invalid = |detail: String| ConfigError::invalid(KEY, detail);
        let mut rules = Vec::new();
        let mut rest = value.trim();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) = split_part(after)
                    .ok_or_else(|| invalid(format!("rule without a replacement: {rest}")))?;
                let (replacement, after) = split_part(after)
                    .ok_or_else(|| invalid(format!("rule not ended by '/': {rest}")))?;
                let (case, after) = match after.chars().next() {
                    Some('L') => (Case::Lower, &after[1..]),
                    Some('U') => (Case::Upper, &after[1..]),
                    _ => (Case::Keep, after),
                };
                let regex = Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| invalid(format!("invalid regex {pattern:?}: {e}")))?;
                rules.push(Rule::Pattern {
                    regex,
                    replacement: java_replacement(&replacement),
                    case,
                });
                rest = after;
            } else {
                return Err(invalid(format!(
                    "expected RULE:<regex>/<replacement>/[LU] or DEFAULT at {rest:?}"
                )));
            }
            rest = rest.trim_start();
            match rest.chars().next() {
                None => {}
                Some(',') | Some('\n') => rest = rest[1..].trim_start(),
                Some(_) => return Err(invalid(format!("expected ',' between rules at {rest:?}"))),
            }
        }
        if rules.is_empty() {
            return Err(invalid("no rule (use DEFAULT)".into()));
        }
        Ok(PrincipalMapper {
            source: value.to_string(),
            rules,
        })
    }

    /// The principal name of `distinguished_name`, or `None` when no rule applies.
    pub fn map(&self, distinguished_name: &str) -> Option<String> {
        for rule in &self.rules {
            match rule {
                Rule::Default => return Some(distinguished_name.to_string()),
                Rule::Pattern {
                    regex,
                    replacement,
                    case,
                } => {
                    if !regex.is_match(distinguished_name) {
                        continue;
                    }
                    let mapped = regex
                        .replace(distinguished_name, replacement.as_str())
                        .into_owned();
                    return Some(match case {
                        Case::Keep => mapped,
                        Case::Lower => mapped.to_lowercase(),
                        Case::Upper => mapped.to_uppercase(),
                    });
                }
            }
        }
        None
    }
}

/// One `/`-terminated part of a rule, with `\/` (and any other `\x`) unescaped to `/` (`\x`
/// kept for the regex); the rest after the `/`.
fn split_part(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, '/')) => out.push('/'),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => return None,
            },
            '/' => return Some((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

/// Java's `$1` group references as `${1}` (the regex crate reads `$1x` as a group named `1x`).
fn java_replacement(java: &str) -> String {
    let mut out = String::new();
    let mut chars = java.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            let mut n = String::new();
            while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                n.push(d);
                chars.next();
            }
            out.push_str(&format!("${{{n}}}"));
        } else if c == '$' {
            out.push_str("$$");
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_documentation_examples() {
        let m = PrincipalMapper::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,\
             RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,\
             RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,\
             DEFAULT",
        )
        .unwrap();
        assert_eq!(
            m.map("CN=kafka-server1,OU=ServiceUsers,O=org,C=US")
                .as_deref(),
            Some("kafka-server1")
        );
        assert_eq!(
            m.map("CN=Duke,OU=JavaSoft,O=Sun Microsystems,L=Santa Clara,ST=CA,C=US")
                .as_deref(),
            Some("duke@javasoft")
        );
        assert_eq!(m.map("OU=x,cn=Admin.1,O=y").as_deref(), Some("admin.1"));
        assert_eq!(m.map("O=nothing").as_deref(), Some("O=nothing"));
    }

    #[test]
    fn default_keeps_the_name_and_unmatched_names_have_none() {
        assert_eq!(
            PrincipalMapper::default().map("CN=a,O=b").as_deref(),
            Some("CN=a,O=b")
        );
        let only = PrincipalMapper::parse("RULE:^CN=([^,]*),O=strait\\/dev$/$1/U").unwrap();
        assert_eq!(only.map("CN=op,O=strait/dev").as_deref(), Some("OP"));
        assert_eq!(only.map("CN=op,O=other"), None);
    }

    #[test]
    fn bad_rules_are_config_errors() {
        for bad in ["", "RULE:abc", "RULE:(/x/", "SOMETHING", "DEFAULT DEFAULT"] {
            assert!(PrincipalMapper::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
