//! Tests of IncrementalAlterConfigs on topic overrides.

use std::collections::BTreeMap;

use super::*;

fn map(items: &[(&str, &str)]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn op(name: &str, op: i8, value: Option<&str>) -> (String, i8, Option<String>) {
    (name.to_string(), op, value.map(str::to_string))
}

fn apply(
    overrides: &[(&str, &str)],
    ops: &[(String, i8, Option<String>)],
) -> BTreeMap<String, String> {
    match apply_incremental(&map(overrides), ops) {
        Ok(m) => m,
        Err(e) => panic!("{ops:?} rejected: {e}"),
    }
}

fn rejected(overrides: &[(&str, &str)], ops: &[(String, i8, Option<String>)]) -> ConfigError {
    match apply_incremental(&map(overrides), ops) {
        Err(e) => e,
        Ok(m) => panic!("{ops:?} accepted: {m:?}"),
    }
}

#[test]
fn set_and_delete() {
    let result = apply(
        &[("retention.ms", "1000"), ("segment.ms", "50")],
        &[
            op("retention.ms", OP_SET, Some(" 2000 ")),
            op("segment.ms", OP_DELETE, None),
            op("segment.bytes", OP_DELETE, None),
        ],
    );
    assert_eq!(result, map(&[("retention.ms", "2000")]));
}

#[test]
fn append_starts_from_default_and_skips_duplicates() {
    let result = apply(&[], &[op("cleanup.policy", OP_APPEND, Some("compact"))]);
    assert_eq!(result, map(&[("cleanup.policy", "delete,compact")]));
    let result = apply(
        &[("cleanup.policy", "compact")],
        &[op("cleanup.policy", OP_APPEND, Some("compact,delete"))],
    );
    assert_eq!(result, map(&[("cleanup.policy", "compact,delete")]));
    let result = apply(
        &[],
        &[op(
            "leader.replication.throttled.replicas",
            OP_APPEND,
            Some("0:1,1:2"),
        )],
    );
    assert_eq!(
        result,
        map(&[("leader.replication.throttled.replicas", "0:1,1:2")])
    );
}

#[test]
fn subtract_removes_items() {
    let result = apply(
        &[("cleanup.policy", "compact,delete")],
        &[op("cleanup.policy", OP_SUBTRACT, Some("delete"))],
    );
    assert_eq!(result, map(&[("cleanup.policy", "compact")]));
    let result = apply(&[], &[op("cleanup.policy", OP_SUBTRACT, Some("compact"))]);
    assert_eq!(result, map(&[("cleanup.policy", "delete")]));
}

#[test]
fn append_and_subtract_need_list_configs() {
    let err = rejected(&[], &[op("retention.ms", OP_APPEND, Some("5"))]);
    assert_eq!(
        err,
        ConfigError::InvalidValue {
            key: "retention.ms".into(),
            reason: "Config value append is not allowed for config key: retention.ms".into(),
        }
    );
    let err = rejected(&[], &[op("compression.type", OP_SUBTRACT, Some("gzip"))]);
    assert!(
        matches!(&err, ConfigError::InvalidValue { key, reason } if key == "compression.type" && reason.contains("subtract is not allowed")),
        "{err:?}"
    );
}

#[test]
fn result_is_validated() {
    let err = rejected(&[], &[op("cleanup.policy", OP_APPEND, Some("forever"))]);
    assert!(
        matches!(&err, ConfigError::InvalidValue { key, .. } if key == "cleanup.policy"),
        "{err:?}"
    );
    let err = rejected(&[], &[op("segment.bytes", OP_SET, Some("1"))]);
    assert!(
        matches!(&err, ConfigError::InvalidValue { reason, .. } if reason.contains("Value must be at least 14")),
        "{err:?}"
    );
    // Nothing of a failed request is applied: the caller keeps its map.
    let err = rejected(
        &[("retention.ms", "5")],
        &[
            op("min.compaction.lag.ms", OP_SET, Some("10")),
            op("max.compaction.lag.ms", OP_SET, Some("5")),
        ],
    );
    assert!(matches!(err, ConfigError::InvalidValue { .. }));
}

#[test]
fn malformed_requests_are_rejected() {
    assert_eq!(
        rejected(&[], &[op("no.such", OP_SET, Some("1"))]),
        ConfigError::Unknown {
            key: "no.such".into()
        }
    );
    assert!(matches!(
        rejected(&[], &[op("retention.ms", 7, Some("1"))]),
        ConfigError::InvalidValue { reason, .. } if reason.contains("operation type 7")
    ));
    assert!(matches!(
        rejected(&[], &[op("retention.ms", OP_SET, None)]),
        ConfigError::InvalidValue { reason, .. } if reason.contains("Null value")
    ));
    assert!(matches!(
        rejected(&[], &[op("cleanup.policy", OP_APPEND, None)]),
        ConfigError::InvalidValue { reason, .. } if reason.contains("Null value")
    ));
    assert!(matches!(
        rejected(&[], &[op("retention.ms", OP_SET, Some("1")), op("retention.ms", OP_DELETE, None)]),
        ConfigError::InvalidValue { reason, .. } if reason.contains("duplicate")
    ));
}
