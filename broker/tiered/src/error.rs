//! The crate's error type and its split into retriable (the store is down, slow or failing
//! transiently: try again later) and permanent failures (bad credentials, missing bucket, bad
//! config, corrupt remote data).

use std::time::Duration;

/// A remote storage failure.
#[derive(thiserror::Error, Debug)]
pub enum TieredError {
    /// The tiered-storage settings are unusable.
    #[error("tiered storage config: {0}")]
    Config(String),
    /// The store did not answer, or answered with a transient failure, within the retry budget.
    #[error("remote store unavailable ({op} {path}): {source}")]
    Unavailable {
        op: &'static str,
        path: String,
        #[source]
        source: Box<object_store::Error>,
    },
    /// The store refused the credentials or the access.
    #[error(
        "remote store refused access ({op} {path}): check rsm.config.storage.aws.access.key.id / \
         secret.access.key or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY: {source}"
    )]
    Denied {
        op: &'static str,
        path: String,
        #[source]
        source: Box<object_store::Error>,
    },
    /// The configured bucket does not exist.
    #[error("remote store bucket '{bucket}' does not exist ({op} {path}): {source}")]
    NoSuchBucket {
        bucket: String,
        op: &'static str,
        path: String,
        #[source]
        source: Box<object_store::Error>,
    },
    /// An object the operation needs is missing (for example a segment not uploaded, or
    /// deleted by retention meanwhile).
    #[error("remote object missing: {path}")]
    NotFound { path: String },
    /// Any other store failure that retrying will not fix.
    #[error("remote store error ({op} {path}): {source}")]
    Store {
        op: &'static str,
        path: String,
        #[source]
        source: Box<object_store::Error>,
    },
    /// Remote data is not what was uploaded (size or checksum mismatch, malformed index/batch).
    #[error("corrupt remote data in {path}: {reason}")]
    Corrupt { path: String, reason: String },
    /// A local segment file could not be read for upload.
    #[error("cannot read local file {path}: {source}")]
    LocalIo {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The operation did not finish in time.
    #[error("remote store operation timed out after {0:?}")]
    Timeout(Duration),
}

impl TieredError {
    /// Whether trying the same operation again later may succeed: the store was unreachable,
    /// slow, or answered with a server error. Credentials, missing buckets, missing objects and
    /// corrupt data are permanent until someone acts.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            TieredError::Unavailable { .. } | TieredError::Timeout(_)
        )
    }

    /// The same failure (variant, and so `is_retriable`, and message) for another waiter of a
    /// shared fetch; store errors are carried as text.
    pub(crate) fn duplicate(&self) -> TieredError {
        let source = || {
            Box::new(object_store::Error::Generic {
                store: "remote",
                source: Box::new(std::io::Error::other(self.to_string())),
            })
        };
        match self {
            TieredError::Config(m) => TieredError::Config(m.clone()),
            TieredError::Unavailable { op, path, .. } => TieredError::Unavailable {
                op,
                path: path.clone(),
                source: source(),
            },
            TieredError::Denied { op, path, .. } => TieredError::Denied {
                op,
                path: path.clone(),
                source: source(),
            },
            TieredError::NoSuchBucket {
                bucket, op, path, ..
            } => TieredError::NoSuchBucket {
                bucket: bucket.clone(),
                op,
                path: path.clone(),
                source: source(),
            },
            TieredError::NotFound { path } => TieredError::NotFound { path: path.clone() },
            TieredError::Store { op, path, .. } => TieredError::Store {
                op,
                path: path.clone(),
                source: source(),
            },
            TieredError::Corrupt { path, reason } => TieredError::Corrupt {
                path: path.clone(),
                reason: reason.clone(),
            },
            TieredError::LocalIo { path, source } => TieredError::LocalIo {
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            TieredError::Timeout(d) => TieredError::Timeout(*d),
        }
    }

    /// Sorts an `object_store` failure of `op` on `path` into the variants above.
    pub(crate) fn from_store(
        op: &'static str,
        path: &str,
        bucket: Option<&str>,
        error: object_store::Error,
    ) -> TieredError {
        let path = path.to_string();
        let source = Box::new(error);
        match source.as_ref() {
            object_store::Error::NotFound { .. } => {
                // S3 answers 404 for a missing bucket too; object_store reports it as NotFound.
                if is_no_such_bucket(source.as_ref()) {
                    return TieredError::NoSuchBucket {
                        bucket: bucket.unwrap_or_default().to_string(),
                        op,
                        path,
                        source,
                    };
                }
                TieredError::NotFound { path }
            }
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => {
                TieredError::Denied { op, path, source }
            }
            object_store::Error::Generic { .. } => {
                let text = error_chain(source.as_ref());
                if is_no_such_bucket(source.as_ref()) {
                    TieredError::NoSuchBucket {
                        bucket: bucket.unwrap_or_default().to_string(),
                        op,
                        path,
                        source,
                    }
                } else if DENIED_CODES.iter().any(|c| text.contains(c)) {
                    TieredError::Denied { op, path, source }
                } else if PERMANENT_CODES.iter().any(|c| text.contains(c)) {
                    TieredError::Store { op, path, source }
                } else {
                    // Connection refused/reset, timeouts, 5xx after object_store's own retries.
                    TieredError::Unavailable { op, path, source }
                }
            }
            object_store::Error::JoinError { .. } => TieredError::Unavailable { op, path, source },
            _ => TieredError::Store { op, path, source },
        }
    }
}

/// S3 error codes that mean the credentials or the signature are wrong.
const DENIED_CODES: &[&str] = &[
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "403 Forbidden",
    "Forbidden",
    "401 Unauthorized",
];

/// Client errors (4xx other than throttling) that a retry cannot fix.
const PERMANENT_CODES: &[&str] = &[
    "400 Bad Request",
    "InvalidRequest",
    "InvalidArgument",
    "EntityTooLarge",
    "MalformedXML",
];

fn is_no_such_bucket(e: &object_store::Error) -> bool {
    let text = error_chain(e);
    text.contains("NoSuchBucket") || text.contains("bucket does not exist")
}

/// The error and all its sources as one string, for matching S3 error codes buried in the chain.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
