//! Tiered storage (KIP-405) of a Cluster as the brokers take it: the `remote.log.*` and
//! `rsm.config.*` keys of `server.properties` (Kafka's and Aiven's names), the topic defaults of
//! local retention, the credentials as `AWS_*` env vars from the referenced Secret (never in the
//! rendered configuration), and the volume of a `filesystem` store's claim. Without
//! `tieredStorage` tiering is rendered off, so a Topic cannot tier into the broker's own disk.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EnvVar, EnvVarSource, PersistentVolumeClaimVolumeSource, SecretKeySelector, Volume, VolumeMount,
};
use strait_crds::ClusterSpec;
use strait_crds::cluster::TieredStorage;

use crate::names;

/// Broker key that makes tiering available to topics.
pub const SYSTEM_ENABLE: &str = "remote.log.storage.system.enable";
/// The env vars the broker's S3 client reads credentials from.
pub const ACCESS_KEY_ENV: &str = "AWS_ACCESS_KEY_ID";
pub const SECRET_KEY_ENV: &str = "AWS_SECRET_ACCESS_KEY";
/// Name of the pods' volume with a `filesystem` store's claim.
pub const VOLUME: &str = "tiered-storage";

/// Broker keys the operator renders from `tieredStorage` (or as off without it); a Cluster's
/// `config` may not set them. Other `rsm.config.*` keys (the chunk cache), the
/// `remote.log.manager.*` tuning keys and `log.local.retention.*` (unless `tieredStorage` sets
/// them too) stay the user's.
pub const KEYS: [&str; 11] = [
    SYSTEM_ENABLE,
    "rsm.config.storage.backend",
    "rsm.config.storage.backend.class",
    "rsm.config.storage.root",
    "rsm.config.storage.s3.bucket.name",
    "rsm.config.storage.s3.endpoint.url",
    "rsm.config.storage.s3.region",
    "rsm.config.storage.s3.path.style.access.enabled",
    "rsm.config.storage.aws.access.key.id",
    "rsm.config.storage.aws.secret.access.key",
    "rsm.config.key.prefix",
];

/// The broker keys of `spec.tieredStorage`. Without it: tiering off (the broker's default when
/// the key is unset is a directory beside the data dir, on the same volume).
pub fn broker_keys(spec: &ClusterSpec) -> BTreeMap<String, String> {
    let mut keys = BTreeMap::new();
    let Some(t) = &spec.tiered_storage else {
        keys.insert(SYSTEM_ENABLE.to_owned(), "false".to_owned());
        return keys;
    };
    let mut put = |k: &str, v: String| {
        keys.insert(k.to_owned(), v);
    };
    put(SYSTEM_ENABLE, "true".to_owned());
    if let Some(s3) = &t.s3 {
        put("rsm.config.storage.backend", "s3".to_owned());
        put("rsm.config.storage.s3.bucket.name", s3.bucket.clone());
        if let Some(endpoint) = &s3.endpoint {
            put("rsm.config.storage.s3.endpoint.url", endpoint.clone());
        }
        if let Some(region) = &s3.region {
            put("rsm.config.storage.s3.region", region.clone());
        }
        put(
            "rsm.config.storage.s3.path.style.access.enabled",
            s3.path_style.to_string(),
        );
    } else if let Some(fs) = &t.filesystem {
        put("rsm.config.storage.backend", "filesystem".to_owned());
        put("rsm.config.storage.root", fs.path.clone());
    }
    if let Some(prefix) = &t.key_prefix {
        put("rsm.config.key.prefix", prefix.clone());
    }
    if let Some(ms) = t.default_local_retention_ms {
        put("log.local.retention.ms", ms.to_string());
    }
    if let Some(bytes) = t.default_local_retention_bytes {
        put("log.local.retention.bytes", bytes.to_string());
    }
    keys
}

/// The credentials env vars of an `s3` store with `credentialsSecret`, from the Secret's keys.
pub fn env(spec: &ClusterSpec) -> Vec<EnvVar> {
    let Some(creds) = spec
        .tiered_storage
        .as_ref()
        .and_then(|t| t.s3.as_ref())
        .and_then(|s3| s3.credentials_secret.as_ref())
    else {
        return Vec::new();
    };
    [
        (ACCESS_KEY_ENV, &creds.access_key_id),
        (SECRET_KEY_ENV, &creds.secret_access_key),
    ]
    .into_iter()
    .map(|(name, key)| EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: key.name.clone(),
                key: key.key.clone(),
                ..SecretKeySelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    })
    .collect()
}

/// The `filesystem` store's claim, mounted by every broker.
fn claim(spec: &ClusterSpec) -> Option<(&str, &str)> {
    let fs = spec.tiered_storage.as_ref()?.filesystem.as_ref()?;
    Some((fs.claim_name.as_deref()?, fs.path.as_str()))
}

/// The pod volume of a `filesystem` store with `claimName`.
pub fn volume(spec: &ClusterSpec) -> Option<Volume> {
    let (claim_name, _) = claim(spec)?;
    Some(Volume {
        name: VOLUME.to_owned(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim_name.to_owned(),
            read_only: Some(false),
        }),
        ..Volume::default()
    })
}

/// Where [`volume`] is mounted: the store's `path`.
pub fn volume_mount(spec: &ClusterSpec) -> Option<VolumeMount> {
    let (_, path) = claim(spec)?;
    Some(VolumeMount {
        name: VOLUME.to_owned(),
        mount_path: path.to_owned(),
        ..VolumeMount::default()
    })
}

/// What is wrong with `tieredStorage` beyond the CRD schema (which a mocked or older API server
/// may not have enforced), and topic defaults also set in `config`: the reasons, empty when it
/// can be served.
pub fn problems(t: &TieredStorage, config: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (key, field, set) in [
        (
            "log.local.retention.ms",
            "defaultLocalRetentionMs",
            t.default_local_retention_ms.is_some(),
        ),
        (
            "log.local.retention.bytes",
            "defaultLocalRetentionBytes",
            t.default_local_retention_bytes.is_some(),
        ),
    ] {
        if set && config.contains_key(key) {
            out.push(format!(
                "config key `{key}` and `tieredStorage.{field}` are both set; keep one"
            ));
        }
    }
    match (&t.s3, &t.filesystem) {
        (Some(_), Some(_)) | (None, None) => {
            out.push("`tieredStorage`: set exactly one of `s3` and `filesystem`".to_owned());
        }
        (Some(s3), None) => {
            if s3.bucket.trim().is_empty() {
                out.push("`tieredStorage.s3.bucket` is empty".to_owned());
            }
            if let Some(e) = &s3.endpoint
                && !(e.starts_with("http://") || e.starts_with("https://"))
            {
                out.push(format!(
                    "`tieredStorage.s3.endpoint` `{e}` is not an http:// or https:// URL"
                ));
            }
        }
        (None, Some(fs)) => {
            let path = fs.path.trim_end_matches('/');
            if !path.starts_with('/') || path.is_empty() {
                out.push(format!(
                    "`tieredStorage.filesystem.path` `{}` is not an absolute path",
                    fs.path
                ));
            } else if [names::DATA_DIR, names::CONFIG_DIR].iter().any(|d| {
                path == *d
                    || path.starts_with(&format!("{d}/"))
                    || d.starts_with(&format!("{path}/"))
            }) {
                // The data volume is what tiering is meant to relieve; the config dir is
                // read-only.
                out.push(format!(
                    "`tieredStorage.filesystem.path` `{}` overlaps {} or {}",
                    fs.path,
                    names::DATA_DIR,
                    names::CONFIG_DIR
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::identity::tests::spec;

    fn tiered(value: serde_json::Value) -> ClusterSpec {
        let mut s = spec(3, &["a"]);
        s.tiered_storage = Some(serde_json::from_value(value).expect("tieredStorage"));
        s
    }

    fn s3_spec() -> ClusterSpec {
        tiered(serde_json::json!({
            "s3": {
                "bucket": "kafka-tiered",
                "endpoint": "http://minio.storage.svc:9000",
                "region": "eu-west-1",
                "pathStyle": true,
                "credentialsSecret": {
                    "accessKeyId": {"name": "s3-creds", "key": "id"},
                    "secretAccessKey": {"name": "s3-creds", "key": "secret"}
                }
            },
            "keyPrefix": "prod/",
            "defaultLocalRetentionMs": 3_600_000,
            "defaultLocalRetentionBytes": 1_073_741_824
        }))
    }

    #[test]
    fn s3_renders_kafka_and_aiven_keys_and_the_topic_defaults() {
        let keys = broker_keys(&s3_spec());
        let expected: BTreeMap<String, String> = [
            ("remote.log.storage.system.enable", "true"),
            ("rsm.config.storage.backend", "s3"),
            ("rsm.config.storage.s3.bucket.name", "kafka-tiered"),
            (
                "rsm.config.storage.s3.endpoint.url",
                "http://minio.storage.svc:9000",
            ),
            ("rsm.config.storage.s3.region", "eu-west-1"),
            ("rsm.config.storage.s3.path.style.access.enabled", "true"),
            ("rsm.config.key.prefix", "prod/"),
            ("log.local.retention.ms", "3600000"),
            ("log.local.retention.bytes", "1073741824"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(keys, expected);
    }

    #[test]
    fn credentials_come_from_the_secret_as_aws_env_vars() {
        let vars = env(&s3_spec());
        let refs: Vec<(&str, &str, &str)> = vars
            .iter()
            .map(|e| {
                let r = e
                    .value_from
                    .as_ref()
                    .and_then(|v| v.secret_key_ref.as_ref())
                    .expect("secret ref");
                assert!(e.value.is_none(), "{e:?}");
                (e.name.as_str(), r.name.as_str(), r.key.as_str())
            })
            .collect();
        assert_eq!(
            refs,
            [
                ("AWS_ACCESS_KEY_ID", "s3-creds", "id"),
                ("AWS_SECRET_ACCESS_KEY", "s3-creds", "secret")
            ]
        );
        // Without a Secret: the pod's own AWS identity, nothing rendered.
        let mut s = s3_spec();
        if let Some(s3) = s.tiered_storage.as_mut().and_then(|t| t.s3.as_mut()) {
            s3.credentials_secret = None;
        }
        assert!(env(&s).is_empty());
        assert!(env(&spec(3, &["a"])).is_empty());
    }

    #[test]
    fn without_tiered_storage_tiering_is_off() {
        let keys = broker_keys(&spec(3, &["a"]));
        assert_eq!(
            keys,
            BTreeMap::from([(SYSTEM_ENABLE.to_owned(), "false".to_owned())])
        );
        assert!(volume(&spec(3, &["a"])).is_none());
    }

    #[test]
    fn filesystem_with_a_claim_mounts_it_at_the_root() {
        let s = tiered(serde_json::json!({
            "filesystem": {"path": "/var/lib/strait-remote", "claimName": "tier"}
        }));
        let keys = broker_keys(&s);
        assert_eq!(keys["rsm.config.storage.backend"], "filesystem");
        assert_eq!(keys["rsm.config.storage.root"], "/var/lib/strait-remote");
        assert_eq!(keys[SYSTEM_ENABLE], "true");
        assert!(!keys.contains_key("log.local.retention.ms"));
        let v = volume(&s).expect("volume");
        assert_eq!(
            v.persistent_volume_claim.map(|c| c.claim_name).as_deref(),
            Some("tier")
        );
        let m = volume_mount(&s).expect("mount");
        assert_eq!(
            (m.name.as_str(), m.mount_path.as_str()),
            (VOLUME, "/var/lib/strait-remote")
        );
        assert!(problems(s.tiered_storage.as_ref().expect("t"), &s.config).is_empty());
        // A path in the container alone: no volume.
        let s = tiered(serde_json::json!({"filesystem": {"path": "/tmp/tier"}}));
        assert!(volume(&s).is_none() && volume_mount(&s).is_none());
    }

    #[test]
    fn problems_name_what_is_wrong() {
        let p = |v| {
            let s = tiered(v);
            problems(s.tiered_storage.as_ref().expect("t"), &s.config)
        };
        assert!(p(serde_json::json!({"s3": {"bucket": "b1b"}})).is_empty());
        assert_eq!(
            p(serde_json::json!({})),
            ["`tieredStorage`: set exactly one of `s3` and `filesystem`"]
        );
        assert_eq!(
            p(serde_json::json!({"s3": {"bucket": "b1b"}, "filesystem": {"path": "/x"}})),
            ["`tieredStorage`: set exactly one of `s3` and `filesystem`"]
        );
        assert_eq!(
            p(serde_json::json!({"s3": {"bucket": "b1b", "endpoint": "minio:9000"}})),
            ["`tieredStorage.s3.endpoint` `minio:9000` is not an http:// or https:// URL"]
        );
        for path in [
            "/var/lib/strait",
            "/var/lib/strait/remote",
            "/var/lib",
            "/etc/strait/x",
        ] {
            let found = p(serde_json::json!({"filesystem": {"path": path}}));
            assert_eq!(found.len(), 1, "{path}: {found:?}");
            assert!(found[0].contains("overlaps"), "{found:?}");
        }
        assert_eq!(
            p(serde_json::json!({"filesystem": {"path": "tier"}})),
            ["`tieredStorage.filesystem.path` `tier` is not an absolute path"]
        );
        let mut s = s3_spec();
        s.config
            .insert("log.local.retention.bytes".into(), "1".into());
        assert_eq!(
            problems(s.tiered_storage.as_ref().expect("t"), &s.config),
            ["config key `log.local.retention.bytes` and \
                 `tieredStorage.defaultLocalRetentionBytes` are both set; keep one"]
        );
        s.config.remove("log.local.retention.bytes");
        s.config.insert("log.local.retention.ms".into(), "1".into());
        s.tiered_storage
            .as_mut()
            .expect("t")
            .default_local_retention_ms = None;
        assert!(problems(s.tiered_storage.as_ref().expect("t"), &s.config).is_empty());
    }
}
