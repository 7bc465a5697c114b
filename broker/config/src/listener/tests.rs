//! Tests of listener and security protocol map parsing.

use std::collections::BTreeMap;

use super::*;

fn default_map() -> BTreeMap<String, String> {
    match parse_security_protocol_map("m", "PLAINTEXT:PLAINTEXT,SSL:SSL,INTERNAL:plaintext") {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    }
}

fn listener(name: &str, host: &str, port: u16, protocol: &str) -> Listener {
    Listener {
        name: name.into(),
        host: host.into(),
        port,
        security_protocol: protocol.into(),
    }
}

fn rejected(value: &str) -> String {
    match parse_listeners("listeners", value, &default_map()) {
        Err(ConfigError::InvalidValue { key, reason }) => {
            assert_eq!(key, "listeners");
            reason
        }
        other => panic!("expected rejection of {value}, got {other:?}"),
    }
}

#[test]
fn parses_names_hosts_ports_and_protocols() {
    let parsed = parse_listeners(
        "listeners",
        "PLAINTEXT://127.0.0.1:9092, ssl://[::1]:9093,internal://:0,SSL2://host-a.example_x:1",
        &{
            let mut m = default_map();
            m.insert("SSL2".into(), "SSL".into());
            m
        },
    );
    assert_eq!(
        parsed,
        Ok(vec![
            listener("PLAINTEXT", "127.0.0.1", 9092, "PLAINTEXT"),
            listener("SSL", "::1", 9093, "SSL"),
            listener("INTERNAL", "", 0, "PLAINTEXT"),
            listener("SSL2", "host-a.example_x", 1, "SSL"),
        ])
    );
}

#[test]
fn address_brackets_ipv6() {
    assert_eq!(listener("A", "::1", 5, "SSL").address(), "[::1]:5");
    assert_eq!(listener("A", "h", 5, "SSL").to_string(), "A://h:5");
}

#[test]
fn empty_value_is_no_listeners() {
    assert_eq!(
        parse_listeners("listeners", " ", &default_map()),
        Ok(vec![])
    );
}

#[test]
fn rejects_bad_ports() {
    assert!(rejected("PLAINTEXT://h:65536").contains("out of range"));
    assert!(rejected("PLAINTEXT://h:-1").contains("out of range"));
    assert!(rejected("PLAINTEXT://h:x").contains("not a number"));
    assert!(rejected("PLAINTEXT://h").contains("host:port"));
}

#[test]
fn rejects_malformed_entries() {
    assert!(rejected("h:9092").contains("NAME://host:port"));
    assert!(rejected("://h:9092").contains("missing listener name"));
    assert!(rejected("PLAINTEXT://h/x:9092").contains("invalid character"));
    assert!(rejected("PLAINTEXT://[::1:9092").contains("unclosed"));
}

#[test]
fn rejects_duplicate_names() {
    assert!(rejected("PLAINTEXT://a:1,plaintext://b:2").contains("different name"));
}

#[test]
fn rejects_unmapped_names() {
    assert!(rejected("CLIENT://a:1").contains("no security protocol defined for listener CLIENT"));
}

#[test]
fn protocol_map_parses_and_validates() {
    let map = default_map();
    assert_eq!(map.get("INTERNAL").map(String::as_str), Some("PLAINTEXT"));
    assert!(matches!(
        parse_security_protocol_map("k", "A:TLS"),
        Err(ConfigError::InvalidValue { key, reason }) if key == "k" && reason.contains("TLS")
    ));
    assert!(matches!(
        parse_security_protocol_map("k", "A"),
        Err(ConfigError::InvalidValue { key, .. }) if key == "k"
    ));
    assert!(matches!(
        parse_security_protocol_map("k", "A:SSL,a:PLAINTEXT"),
        Err(ConfigError::InvalidValue { reason, .. }) if reason.contains("twice")
    ));
}

#[test]
fn distinct_ports_rule() {
    let a = listener("A", "10.0.0.1", 9092, "PLAINTEXT");
    let b = listener("B", "10.0.0.2", 9092, "PLAINTEXT");
    let any = listener("C", "0.0.0.0", 9092, "PLAINTEXT");
    let zero1 = listener("D", "", 0, "PLAINTEXT");
    let zero2 = listener("E", "", 0, "PLAINTEXT");
    assert!(check_distinct_ports("listeners", &[a.clone(), b.clone()]).is_ok());
    assert!(check_distinct_ports("listeners", &[zero1, zero2]).is_ok());
    assert!(check_distinct_ports("listeners", &[a, any]).is_err());
}

#[test]
fn host_port_split() {
    assert_eq!(
        split_host_port("[fe80::1%eth0]:80"),
        Ok(("fe80::1%eth0".into(), 80))
    );
    assert_eq!(
        split_host_port("localhost:9404"),
        Ok(("localhost".into(), 9404))
    );
    assert!(split_host_port("localhost").is_err());
}
