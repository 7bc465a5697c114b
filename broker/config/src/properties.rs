//! Java `.properties` text parsing, following `java.util.Properties.load` (the format of Kafka's
//! `server.properties`), except that values also lose trailing whitespace.

use crate::error::ConfigError;

/// Parses `.properties` text into `(key, value)` pairs in file order (duplicates kept; the last
/// one wins when the pairs are applied). Syntax errors name the line; the path is `<properties>`.
pub fn parse_properties(text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    parse_properties_from("<properties>", text)
}

/// As [`parse_properties`], with `path` used in error messages.
pub(crate) fn parse_properties_from(
    path: &str,
    text: &str,
) -> Result<Vec<(String, String)>, ConfigError> {
    let lines = physical_lines(text);
    let mut pairs = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let start_line = i + 1;
        let first = trim_leading(lines[i]);
        i += 1;
        // Comment lines never continue, even when they end in a backslash (as in Java).
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        let mut logical = String::new();
        let mut current = first;
        loop {
            if ends_with_odd_backslashes(current) {
                logical.push_str(&current[..current.len() - 1]);
                if i >= lines.len() {
                    break;
                }
                current = trim_leading(lines[i]);
                i += 1;
            } else {
                logical.push_str(current);
                break;
            }
        }
        let syntax = |reason: &str| ConfigError::Syntax {
            path: path.to_string(),
            line: start_line,
            reason: reason.to_string(),
        };
        let (key, value) = split_logical_line(&logical).map_err(|r| syntax(&r))?;
        if key.is_empty() {
            return Err(syntax("empty key"));
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// Splits on `\n`, `\r\n` and lone `\r`, Java's line terminators.
fn physical_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                lines.push(&text[start..i]);
                start = i + 1;
            }
            b'\r' => {
                lines.push(&text[start..i]);
                if bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0c')
}

fn trim_leading(line: &str) -> &str {
    line.trim_start_matches(is_blank)
}

fn ends_with_odd_backslashes(line: &str) -> bool {
    line.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1
}

/// Key ends at the first unescaped `=`, `:` or blank; blanks and one `=`/`:` separate it from
/// the value.
fn split_logical_line(line: &str) -> Result<(String, String), String> {
    let mut chars = line.chars().peekable();
    let mut key = String::new();
    let mut separated_by_blank = false;
    let mut has_separator = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => key.push(unescape(&mut chars)?.0),
            '=' | ':' => {
                has_separator = true;
                break;
            }
            c if is_blank(c) => {
                separated_by_blank = true;
                break;
            }
            c => key.push(c),
        }
    }
    while chars.peek().is_some_and(|&c| is_blank(c)) {
        chars.next();
    }
    if separated_by_blank && !has_separator && matches!(chars.peek(), Some('=' | ':')) {
        chars.next();
        while chars.peek().is_some_and(|&c| is_blank(c)) {
            chars.next();
        }
    }
    // Remember which characters came from escapes so `\ ` at the end survives trimming.
    let mut value: Vec<(char, bool)> = Vec::new();
    while let Some(c) = chars.next() {
        if c == '\\' {
            value.push(unescape(&mut chars)?);
        } else {
            value.push((c, false));
        }
    }
    while value
        .last()
        .is_some_and(|&(c, escaped)| !escaped && c.is_whitespace())
    {
        value.pop();
    }
    Ok((key, value.into_iter().map(|(c, _)| c).collect()))
}

/// Decodes the escape after a backslash; returns the character and `true` (it was escaped).
fn unescape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<(char, bool), String> {
    let c = match chars.next() {
        None => return Err("backslash at end of line".into()),
        Some('t') => '\t',
        Some('n') => '\n',
        Some('r') => '\r',
        Some('f') => '\x0c',
        Some('u') => {
            let high = hex4(chars)?;
            if (0xD800..0xDC00).contains(&high) {
                // A UTF-16 surrogate pair written as two escapes.
                if chars.next() != Some('\\') || chars.next() != Some('u') {
                    return Err("malformed \\uXXXX escape: unpaired surrogate".into());
                }
                let low = hex4(chars)?;
                if !(0xDC00..0xE000).contains(&low) {
                    return Err("malformed \\uXXXX escape: unpaired surrogate".into());
                }
                let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                char::from_u32(code).ok_or("malformed \\uXXXX escape")?
            } else {
                char::from_u32(high).ok_or("malformed \\uXXXX escape: unpaired surrogate")?
            }
        }
        Some(other) => other,
    };
    Ok((c, true))
}

fn hex4(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<u32, String> {
    let mut code = 0u32;
    for _ in 0..4 {
        let digit = chars
            .next()
            .and_then(|c| c.to_digit(16))
            .ok_or("malformed \\uXXXX escape")?;
        code = code * 16 + digit;
    }
    Ok(code)
}

#[cfg(test)]
mod tests;
