//! Tests of `.properties` parsing against Java's `Properties.load` behaviour.

use super::parse_properties;
use crate::error::ConfigError;

fn pairs(text: &str) -> Vec<(String, String)> {
    match parse_properties(text) {
        Ok(p) => p,
        Err(e) => panic!("parse failed: {e}"),
    }
}

fn kv(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

#[test]
fn separators_comments_and_blank_lines() {
    let text = "# comment\n! also a comment\n\n  a=1\nb: 2\nc 3\nd   =   4  \n\te\t:\tfive\nf\n";
    assert_eq!(
        pairs(text),
        vec![
            kv("a", "1"),
            kv("b", "2"),
            kv("c", "3"),
            kv("d", "4"),
            kv("e", "five"),
            kv("f", "")
        ]
    );
}

#[test]
fn only_the_first_separator_splits() {
    assert_eq!(
        pairs("url=http://h:1/x=y\nk  = =v"),
        vec![kv("url", "http://h:1/x=y"), kv("k", "=v")]
    );
}

#[test]
fn continuation_lines_join_and_lose_leading_whitespace() {
    let text = "listeners=PLAINTEXT://a:1,\\\n    SSL://b:2\nnext=x\n";
    assert_eq!(
        pairs(text),
        vec![
            kv("listeners", "PLAINTEXT://a:1,SSL://b:2"),
            kv("next", "x")
        ]
    );
}

#[test]
fn even_backslashes_do_not_continue() {
    assert_eq!(pairs("a=x\\\\\nb=y"), vec![kv("a", "x\\"), kv("b", "y")]);
}

#[test]
fn comment_ending_in_backslash_does_not_continue() {
    assert_eq!(pairs("# note \\\na=1"), vec![kv("a", "1")]);
}

#[test]
fn continuation_at_end_of_input_is_dropped() {
    assert_eq!(pairs("a=1\\"), vec![kv("a", "1")]);
}

#[test]
fn escapes_are_decoded() {
    let text = "tab=a\\tb\nnl=a\\nb\nuni=\\u00e9t\\u00E9\nkey\\=with\\:seps\\ x=v\nother=\\q";
    assert_eq!(
        pairs(text),
        vec![
            kv("tab", "a\tb"),
            kv("nl", "a\nb"),
            kv("uni", "été"),
            kv("key=with:seps x", "v"),
            kv("other", "q"),
        ]
    );
}

#[test]
fn surrogate_pairs_combine() {
    assert_eq!(pairs("e=\\uD83D\\uDE00"), vec![kv("e", "😀")]);
}

#[test]
fn escaped_trailing_space_survives_trimming() {
    assert_eq!(pairs("a=x\\ \nb=y  \t"), vec![kv("a", "x "), kv("b", "y")]);
}

#[test]
fn crlf_and_lone_cr_end_lines() {
    assert_eq!(
        pairs("a=1\r\nb=2\rc=3"),
        vec![kv("a", "1"), kv("b", "2"), kv("c", "3")]
    );
}

#[test]
fn duplicates_are_kept_in_order() {
    assert_eq!(pairs("a=1\na=2"), vec![kv("a", "1"), kv("a", "2")]);
}

#[test]
fn malformed_unicode_escape_names_the_line() {
    let err = parse_properties("a=1\n# c\nb=\\u12G4\n");
    assert!(
        matches!(&err, Err(ConfigError::Syntax { line: 3, reason, .. }) if reason.contains("\\uXXXX")),
        "{err:?}"
    );
}

#[test]
fn lone_surrogate_is_rejected() {
    assert!(matches!(
        parse_properties("x=\\uD800z"),
        Err(ConfigError::Syntax { line: 1, .. })
    ));
}

#[test]
fn empty_key_names_the_line() {
    let err = parse_properties("a=1\n\n=v");
    assert!(
        matches!(&err, Err(ConfigError::Syntax { line: 3, reason, path }) if reason == "empty key" && path == "<properties>"),
        "{err:?}"
    );
}

#[test]
fn error_line_is_where_a_continued_line_starts() {
    let err = parse_properties("a=1\nb=x\\\n  \\u00zz");
    assert!(
        matches!(err, Err(ConfigError::Syntax { line: 2, .. })),
        "{err:?}"
    );
}
