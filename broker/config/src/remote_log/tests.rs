//! Tests of the tiered-storage topic checks and the broker's remote.log / rsm.config keys.

use std::collections::BTreeMap;

use super::*;
use crate::BrokerConfig;

fn map(items: &[(&str, &str)]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn check(old: Option<&[(&str, &str)]>, new: &[(&str, &str)], broker: bool) -> Result<(), String> {
    let old = old.map(map);
    validate_tiered_topic_config(old.as_ref(), &map(new), broker)
}

#[test]
fn topics_without_tiering_are_not_checked() {
    assert_eq!(check(None, &[], false), Ok(()));
    // Local retention above total only matters once tiering is on (Kafka's order of checks).
    assert_eq!(
        check(
            None,
            &[
                ("local.retention.ms", "99999999999"),
                ("cleanup.policy", "compact")
            ],
            false
        ),
        Ok(())
    );
}

#[test]
fn enabling_needs_the_broker_switch() {
    let err = check(None, &[("remote.storage.enable", "true")], false).unwrap_err();
    assert_eq!(err, TIERED_DISABLED_IN_BROKER);
    assert!(err.starts_with("Tiered Storage functionality is disabled in the broker"));
    assert_eq!(
        check(None, &[("remote.storage.enable", "true")], true),
        Ok(())
    );
}

#[test]
fn compacted_topics_cannot_tier() {
    for policy in ["compact", "delete,compact", "compact, delete"] {
        let err = check(
            None,
            &[
                ("remote.storage.enable", "true"),
                ("cleanup.policy", policy),
            ],
            true,
        )
        .unwrap_err();
        assert!(err.contains("compacted"), "{policy}: {err}");
    }
    assert_eq!(
        check(
            None,
            &[
                ("remote.storage.enable", "true"),
                ("cleanup.policy", "delete")
            ],
            true
        ),
        Ok(())
    );
}

#[test]
fn local_retention_time_within_total() {
    let on = ("remote.storage.enable", "true");
    // Default retention.ms is 7 days.
    assert_eq!(
        check(None, &[on, ("local.retention.ms", "604800000")], true),
        Ok(())
    );
    let err = check(None, &[on, ("local.retention.ms", "604800001")], true).unwrap_err();
    assert_eq!(
        err,
        "Invalid value 604800001 for configuration local.retention.ms: Value must not be more \
         than retention.ms property value: 604800000"
    );
    let err = check(
        None,
        &[on, ("retention.ms", "1000"), ("local.retention.ms", "-1")],
        true,
    )
    .unwrap_err();
    assert!(
        err.contains("Value must not be -1 as retention.ms value is set as 1000"),
        "{err}"
    );
    // -2 follows the total; a total of -1 allows any local value.
    assert_eq!(
        check(
            None,
            &[on, ("retention.ms", "1000"), ("local.retention.ms", "-2")],
            true
        ),
        Ok(())
    );
    assert_eq!(
        check(
            None,
            &[on, ("retention.ms", "-1"), ("local.retention.ms", "-1")],
            true
        ),
        Ok(())
    );
    assert_eq!(
        check(
            None,
            &[
                on,
                ("retention.ms", "-1"),
                ("local.retention.ms", "99999999999")
            ],
            true
        ),
        Ok(())
    );
}

#[test]
fn local_retention_bytes_within_total() {
    let on = ("remote.storage.enable", "true");
    // Default retention.bytes is -1 (unlimited): anything goes.
    assert_eq!(
        check(None, &[on, ("local.retention.bytes", "1000000")], true),
        Ok(())
    );
    let err = check(
        None,
        &[
            on,
            ("retention.bytes", "1000"),
            ("local.retention.bytes", "1001"),
        ],
        true,
    )
    .unwrap_err();
    assert!(
        err.contains("local.retention.bytes")
            && err.contains("retention.bytes property value: 1000"),
        "{err}"
    );
    let err = check(
        None,
        &[
            on,
            ("retention.bytes", "1000"),
            ("local.retention.bytes", "-1"),
        ],
        true,
    )
    .unwrap_err();
    assert!(err.contains("must not be -1"), "{err}");
    assert_eq!(
        check(
            None,
            &[
                on,
                ("retention.bytes", "1000"),
                ("local.retention.bytes", "1000")
            ],
            true
        ),
        Ok(())
    );
}

#[test]
fn copy_disabled_needs_identical_retention() {
    let on = ("remote.storage.enable", "true");
    let off = ("remote.log.copy.disable", "true");
    assert_eq!(check(None, &[on, off], true), Ok(()));
    let err = check(None, &[on, off, ("local.retention.ms", "1000")], true).unwrap_err();
    assert!(
        err.contains("`local.retention.ms` and `retention.ms` must be set to the identical value"),
        "{err}"
    );
    let err = check(
        None,
        &[
            on,
            off,
            ("retention.bytes", "5000"),
            ("local.retention.bytes", "10"),
        ],
        true,
    )
    .unwrap_err();
    assert!(err.contains("`local.retention.bytes`"), "{err}");
    assert_eq!(
        check(
            None,
            &[
                on,
                off,
                ("retention.ms", "1000"),
                ("local.retention.ms", "1000")
            ],
            true
        ),
        Ok(())
    );
}

#[test]
fn turning_off_needs_copy_disable_and_delete_on_disable() {
    let was = [("remote.storage.enable", "true")];
    let err = check(Some(&was[..]), &[("remote.storage.enable", "false")], true).unwrap_err();
    assert!(
        err.starts_with("It is invalid to disable remote storage without deleting remote data"),
        "{err}"
    );
    // Dropping the override also turns it off.
    assert!(check(Some(&was[..]), &[], true).is_err());
    assert!(
        check(
            Some(&was[..]),
            &[
                ("remote.storage.enable", "false"),
                ("remote.log.delete.on.disable", "true")
            ],
            true
        )
        .is_err()
    );
    assert!(
        check(
            Some(&was[..]),
            &[
                ("remote.storage.enable", "false"),
                ("remote.log.copy.disable", "true")
            ],
            true
        )
        .is_err()
    );
    let ok = [
        ("remote.storage.enable", "false"),
        ("remote.log.copy.disable", "true"),
        ("remote.log.delete.on.disable", "true"),
    ];
    assert_eq!(check(Some(&was[..]), &ok, true), Ok(()));
    // Turning off works even when the broker no longer has tiered storage.
    assert_eq!(check(Some(&was[..]), &ok, false), Ok(()));
    // Never enabled: nothing to turn off.
    assert_eq!(
        check(Some(&[][..]), &[("remote.storage.enable", "false")], true),
        Ok(())
    );
    // Read-only (still enabled, copy disabled) is fine.
    assert_eq!(
        check(
            Some(&was[..]),
            &[
                ("remote.storage.enable", "true"),
                ("remote.log.copy.disable", "true")
            ],
            true
        ),
        Ok(())
    );
}

fn broker(items: &[(&str, &str)]) -> (BrokerConfig, Vec<String>) {
    let pairs: Vec<(String, String)> = items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match BrokerConfig::from_pairs(&pairs) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn broker_defaults() {
    let (cfg, warnings) = broker(&[]);
    assert!(warnings.is_empty(), "{warnings:?}");
    let r = &cfg.remote_log;
    assert_eq!(r.system_enable, None);
    assert_eq!(r.task_interval_ms, 30_000);
    assert_eq!(r.thread_pool_size, 10);
    assert_eq!(r.reader_threads, 10);
    assert_eq!(r.copy_max_bytes_per_second, None);
    assert_eq!(r.fetch_max_bytes_per_second, None);
    assert!(r.rsm_config.is_empty());
    assert_eq!(
        cfg.raw_value("remote.log.storage.system.enable").as_deref(),
        Some("false")
    );
}

#[test]
fn broker_keys_and_rsm_prefix_are_read() {
    let (cfg, warnings) = broker(&[
        ("remote.log.storage.system.enable", "true"),
        ("remote.log.manager.task.interval.ms", "500"),
        ("remote.log.manager.thread.pool.size", "3"),
        ("remote.log.reader.threads", "4"),
        ("remote.log.manager.copy.max.bytes.per.second", "1048576"),
        (
            "remote.log.manager.fetch.max.bytes.per.second",
            "9223372036854775807",
        ),
        (
            "remote.log.storage.manager.class.name",
            "io.aiven.kafka.tieredstorage.RemoteStorageManager",
        ),
        (
            "remote.log.metadata.manager.class.name",
            "org.apache.kafka.server.log.remote.metadata.storage.TopicBasedRemoteLogMetadataManager",
        ),
        ("rsm.config.storage.backend", "s3"),
        ("rsm.config.storage.s3.bucket.name", "bucket"),
        (
            "rsm.config.storage.s3.endpoint.url",
            " http://127.0.0.1:9000 ",
        ),
        ("rsm.config.chunk.size", "4194304"),
    ]);
    assert!(warnings.is_empty(), "{warnings:?}");
    let r = &cfg.remote_log;
    assert_eq!(r.system_enable, Some(true));
    assert_eq!(r.task_interval_ms, 500);
    assert_eq!(r.thread_pool_size, 3);
    assert_eq!(r.reader_threads, 4);
    assert_eq!(r.copy_max_bytes_per_second, Some(1_048_576));
    assert_eq!(r.fetch_max_bytes_per_second, None);
    assert_eq!(
        r.storage_manager_class_name.as_deref(),
        Some("io.aiven.kafka.tieredstorage.RemoteStorageManager")
    );
    assert!(r.metadata_manager_class_name.is_some());
    assert_eq!(r.rsm_config.len(), 4);
    let props = r.store_props();
    assert_eq!(
        props["rsm.config.storage.s3.endpoint.url"],
        "http://127.0.0.1:9000"
    );
    assert_eq!(props["remote.log.storage.system.enable"], "true");
    assert_eq!(
        props["remote.log.manager.copy.max.bytes.per.second"],
        "1048576"
    );
    assert!(!props.contains_key("remote.log.manager.fetch.max.bytes.per.second"));
}

#[test]
fn broker_keys_are_validated() {
    for (key, value) in [
        ("remote.log.storage.system.enable", "yes"),
        ("remote.log.manager.thread.pool.size", "0"),
        ("remote.log.reader.threads", "-1"),
        ("remote.log.manager.copy.max.bytes.per.second", "0"),
        ("remote.log.manager.task.interval.ms", "0"),
    ] {
        let pairs = vec![(key.to_string(), value.to_string())];
        assert!(BrokerConfig::from_pairs(&pairs).is_err(), "{key}={value}");
    }
}
