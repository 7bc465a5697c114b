//! The remote store's typed settings, read from Kafka's broker keys (`remote.log.*`) and the
//! remote storage manager keys under `rsm.config.` (the names of Aiven's tiered-storage plugin,
//! so existing Kafka configs carry over).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::TieredError;

/// Where remote segments live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A local directory (`rsm.config.storage.backend=filesystem`): the embedded default and
    /// tests; on a shared file system it is a real tier too.
    Filesystem { root: PathBuf },
    /// Any S3-compatible store (`rsm.config.storage.backend=s3`).
    S3 {
        bucket: String,
        /// `rsm.config.storage.s3.endpoint.url`; `None` is AWS itself.
        endpoint: Option<String>,
        region: String,
        /// `rsm.config.storage.s3.path.style.access.enabled`: `http://host/bucket/key` instead of
        /// `http://bucket.host/key` (most S3-compatible servers want this).
        path_style: bool,
        /// When both are `None`, the standard AWS environment variables
        /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, ...) apply.
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
    },
}

/// Everything [`crate::RemoteStore::new`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteStorageConfig {
    pub backend: Backend,
    /// `rsm.config.key.prefix`, put literally before every object key (Aiven's behaviour: add
    /// the trailing `/` yourself if you want a "directory").
    pub key_prefix: String,
    /// `remote.log.manager.copy.max.bytes.per.second`; `None` is unlimited.
    pub copy_bytes_per_sec: Option<u64>,
    /// `remote.log.manager.fetch.max.bytes.per.second`; `None` is unlimited.
    pub fetch_bytes_per_sec: Option<u64>,
    /// `remote.log.manager.thread.pool.size`: segments uploaded at the same time.
    pub upload_concurrency: usize,
    /// `remote.log.reader.threads`: ranged GETs in flight at the same time.
    pub read_concurrency: usize,
    /// `rsm.config.fetch.chunk.cache.size`: bytes of remote log chunks kept in memory.
    pub cache_bytes: u64,
}

/// Default size of the in-memory chunk cache (`rsm.config.fetch.chunk.cache.size`).
pub const DEFAULT_CACHE_BYTES: u64 = 256 * 1024 * 1024;

const LONG_MAX: u64 = i64::MAX as u64;

impl RemoteStorageConfig {
    /// Builds the typed config from Kafka key/value pairs (full key names, as in
    /// `server.properties`; `strait_config::RemoteLogSettings::store_props` gives exactly these).
    ///
    /// * `rsm.config.storage.backend` (or Aiven's `rsm.config.storage.backend.class` with its
    ///   `...FileSystemStorage` / `...S3Storage` class names) picks the backend. **When it is not
    ///   set, the backend is the local directory `rsm.config.storage.root`, else `default_root`**:
    ///   this is the embedded default that lets a laptop broker tier to disk with no S3. The
    ///   broker chooses `default_root` (for example `<data dir>/remote-storage`).
    /// * filesystem: `rsm.config.storage.root` (default `default_root`).
    /// * s3: `rsm.config.storage.s3.bucket.name` (required), `.s3.endpoint.url`, `.s3.region`
    ///   (else `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`),
    ///   `.s3.path.style.access.enabled` (false), `rsm.config.storage.aws.access.key.id` and
    ///   `.aws.secret.access.key` (both or neither; neither means the AWS environment variables).
    /// * `rsm.config.key.prefix` (empty), `rsm.config.fetch.chunk.cache.size` (256 MiB),
    ///   `remote.log.manager.{copy,fetch}.max.bytes.per.second` (Long.MAX_VALUE = no cap),
    ///   `remote.log.manager.thread.pool.size` (10), `remote.log.reader.threads` (10).
    ///
    /// Whether tiering is on at all (`remote.log.storage.system.enable`) is not decided here;
    /// see [`system_enabled`].
    pub fn from_props(
        props: &BTreeMap<String, String>,
        default_root: &Path,
    ) -> Result<RemoteStorageConfig, TieredError> {
        let get = |k: &str| props.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let backend_name = get("rsm.config.storage.backend")
            .or_else(|| get("rsm.config.storage.backend.class"))
            .unwrap_or("filesystem");
        let backend = match backend_name.to_ascii_lowercase().as_str() {
            "filesystem" | "io.aiven.kafka.tieredstorage.storage.filesystem.filesystemstorage" => {
                Backend::Filesystem {
                    root: get("rsm.config.storage.root")
                        .map(PathBuf::from)
                        .unwrap_or_else(|| default_root.to_path_buf()),
                }
            }
            "s3" | "io.aiven.kafka.tieredstorage.storage.s3.s3storage" => {
                let bucket = get("rsm.config.storage.s3.bucket.name").ok_or_else(|| {
                    TieredError::Config(
                        "rsm.config.storage.backend=s3 needs rsm.config.storage.s3.bucket.name"
                            .into(),
                    )
                })?;
                let access_key_id = get("rsm.config.storage.aws.access.key.id");
                let secret_access_key = get("rsm.config.storage.aws.secret.access.key");
                if access_key_id.is_some() != secret_access_key.is_some() {
                    return Err(TieredError::Config(
                        "rsm.config.storage.aws.access.key.id and \
                         rsm.config.storage.aws.secret.access.key must be set together"
                            .into(),
                    ));
                }
                let region = get("rsm.config.storage.s3.region")
                    .map(str::to_string)
                    .or_else(|| std::env::var("AWS_REGION").ok())
                    .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
                    .unwrap_or_else(|| "us-east-1".to_string());
                Backend::S3 {
                    bucket: bucket.to_string(),
                    endpoint: get("rsm.config.storage.s3.endpoint.url").map(str::to_string),
                    region,
                    path_style: parse_bool(
                        props,
                        "rsm.config.storage.s3.path.style.access.enabled",
                    )?
                    .unwrap_or(false),
                    access_key_id: access_key_id.map(str::to_string),
                    secret_access_key: secret_access_key.map(str::to_string),
                }
            }
            other => {
                return Err(TieredError::Config(format!(
                    "rsm.config.storage.backend: unknown backend '{other}' (expected filesystem \
                     or s3)"
                )));
            }
        };
        let rate = |k: &str| -> Result<Option<u64>, TieredError> {
            match parse_u64(props, k)? {
                None | Some(LONG_MAX) => Ok(None),
                Some(0) => Err(TieredError::Config(format!("{k} must be at least 1"))),
                Some(n) => Ok(Some(n)),
            }
        };
        let count = |k: &str, default: usize| -> Result<usize, TieredError> {
            match parse_u64(props, k)? {
                None => Ok(default),
                Some(0) => Err(TieredError::Config(format!("{k} must be at least 1"))),
                Some(n) => usize::try_from(n)
                    .map_err(|_| TieredError::Config(format!("{k}: {n} is too large"))),
            }
        };
        Ok(RemoteStorageConfig {
            backend,
            key_prefix: props
                .get("rsm.config.key.prefix")
                .map(|p| p.trim().to_string())
                .unwrap_or_default(),
            copy_bytes_per_sec: rate("remote.log.manager.copy.max.bytes.per.second")?,
            fetch_bytes_per_sec: rate("remote.log.manager.fetch.max.bytes.per.second")?,
            upload_concurrency: count("remote.log.manager.thread.pool.size", 10)?,
            read_concurrency: count("remote.log.reader.threads", 10)?,
            cache_bytes: parse_u64(props, "rsm.config.fetch.chunk.cache.size")?
                .unwrap_or(DEFAULT_CACHE_BYTES),
        })
    }
}

/// Whether tiered storage is available to topics: `remote.log.storage.system.enable` when set;
/// when it is not set, Strait's embedded default is on (Kafka's is off), with the backend
/// [`RemoteStorageConfig::from_props`] picks (a local directory unless `rsm.config.storage.*`
/// says otherwise). The broker may choose a stricter rule; this is the documented default.
pub fn system_enabled(props: &BTreeMap<String, String>) -> Result<bool, TieredError> {
    Ok(parse_bool(props, "remote.log.storage.system.enable")?.unwrap_or(true))
}

fn parse_bool(props: &BTreeMap<String, String>, key: &str) -> Result<Option<bool>, TieredError> {
    match props.get(key).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(None),
        Some(v) if v == "true" => Ok(Some(true)),
        Some(v) if v == "false" => Ok(Some(false)),
        Some(v) => Err(TieredError::Config(format!(
            "{key}: expected true or false, got '{v}'"
        ))),
    }
}

fn parse_u64(props: &BTreeMap<String, String>, key: &str) -> Result<Option<u64>, TieredError> {
    props
        .get(key)
        .map(|v| {
            v.trim().parse::<u64>().map_err(|_| {
                TieredError::Config(format!("{key}: expected a non-negative number, got '{v}'"))
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(items: &[(&str, &str)]) -> BTreeMap<String, String> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn embedded_default_is_a_local_directory() {
        let cfg = RemoteStorageConfig::from_props(&props(&[]), Path::new("/data/remote")).unwrap();
        assert_eq!(
            cfg.backend,
            Backend::Filesystem {
                root: PathBuf::from("/data/remote")
            }
        );
        assert_eq!(cfg.key_prefix, "");
        assert_eq!(cfg.copy_bytes_per_sec, None);
        assert_eq!(cfg.fetch_bytes_per_sec, None);
        assert_eq!(cfg.upload_concurrency, 10);
        assert_eq!(cfg.read_concurrency, 10);
        assert_eq!(cfg.cache_bytes, DEFAULT_CACHE_BYTES);
        assert!(system_enabled(&props(&[])).unwrap());
        assert!(!system_enabled(&props(&[("remote.log.storage.system.enable", "false")])).unwrap());
        assert!(system_enabled(&props(&[("remote.log.storage.system.enable", "x")])).is_err());
    }

    #[test]
    fn filesystem_root_and_limits() {
        let cfg = RemoteStorageConfig::from_props(
            &props(&[
                ("rsm.config.storage.backend", "filesystem"),
                ("rsm.config.storage.root", "/mnt/tier"),
                ("rsm.config.key.prefix", "cluster-a/"),
                ("remote.log.manager.copy.max.bytes.per.second", "1048576"),
                (
                    "remote.log.manager.fetch.max.bytes.per.second",
                    "9223372036854775807",
                ),
                ("remote.log.manager.thread.pool.size", "2"),
                ("remote.log.reader.threads", "3"),
                ("rsm.config.fetch.chunk.cache.size", "1000"),
            ]),
            Path::new("/unused"),
        )
        .unwrap();
        assert_eq!(
            cfg.backend,
            Backend::Filesystem {
                root: PathBuf::from("/mnt/tier")
            }
        );
        assert_eq!(cfg.key_prefix, "cluster-a/");
        assert_eq!(cfg.copy_bytes_per_sec, Some(1_048_576));
        assert_eq!(cfg.fetch_bytes_per_sec, None);
        assert_eq!(cfg.upload_concurrency, 2);
        assert_eq!(cfg.read_concurrency, 3);
        assert_eq!(cfg.cache_bytes, 1000);
    }

    #[test]
    fn s3_settings() {
        let cfg = RemoteStorageConfig::from_props(
            &props(&[
                ("rsm.config.storage.backend", "s3"),
                ("rsm.config.storage.s3.bucket.name", "tier"),
                (
                    "rsm.config.storage.s3.endpoint.url",
                    "http://127.0.0.1:9000",
                ),
                ("rsm.config.storage.s3.region", "eu-west-1"),
                ("rsm.config.storage.s3.path.style.access.enabled", "true"),
                ("rsm.config.storage.aws.access.key.id", "AK"),
                ("rsm.config.storage.aws.secret.access.key", "SK"),
            ]),
            Path::new("/unused"),
        )
        .unwrap();
        assert_eq!(
            cfg.backend,
            Backend::S3 {
                bucket: "tier".into(),
                endpoint: Some("http://127.0.0.1:9000".into()),
                region: "eu-west-1".into(),
                path_style: true,
                access_key_id: Some("AK".into()),
                secret_access_key: Some("SK".into()),
            }
        );
        // Aiven's class name selects the same backend.
        let aiven = RemoteStorageConfig::from_props(
            &props(&[
                (
                    "rsm.config.storage.backend.class",
                    "io.aiven.kafka.tieredstorage.storage.s3.S3Storage",
                ),
                ("rsm.config.storage.s3.bucket.name", "tier"),
                ("rsm.config.storage.s3.region", "eu-west-1"),
            ]),
            Path::new("/unused"),
        )
        .unwrap();
        assert!(matches!(
            aiven.backend,
            Backend::S3 {
                path_style: false,
                access_key_id: None,
                ..
            }
        ));
    }

    #[test]
    fn bad_settings_are_refused() {
        let root = Path::new("/unused");
        for bad in [
            vec![("rsm.config.storage.backend", "gcs")],
            vec![("rsm.config.storage.backend", "s3")],
            vec![
                ("rsm.config.storage.backend", "s3"),
                ("rsm.config.storage.s3.bucket.name", "b"),
                ("rsm.config.storage.aws.access.key.id", "AK"),
            ],
            vec![
                ("rsm.config.storage.backend", "s3"),
                ("rsm.config.storage.s3.bucket.name", "b"),
                ("rsm.config.storage.s3.path.style.access.enabled", "yes"),
            ],
            vec![("remote.log.manager.copy.max.bytes.per.second", "0")],
            vec![("remote.log.manager.fetch.max.bytes.per.second", "-5")],
            vec![("remote.log.reader.threads", "0")],
        ] {
            let err = RemoteStorageConfig::from_props(&props(&bad), root).unwrap_err();
            assert!(matches!(err, TieredError::Config(_)), "{bad:?}: {err}");
            assert!(!err.is_retriable());
        }
    }
}
