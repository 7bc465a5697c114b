//! The operator's error type: everything a reconcile can fail with.

use crate::admin::AdminError;

/// A failed reconcile; the controller retries it with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API failed.
    #[error("kubernetes api: {0}")]
    Kube(#[from] kube::Error),
    /// The Kafka admin API failed.
    #[error("kafka admin: {0}")]
    Admin(#[from] AdminError),
    /// An object lacks a field the API server always sets.
    #[error("object has no {0}")]
    MissingField(&'static str),
    /// Serializing an object failed.
    #[error("serialize: {0}")]
    Serialize(#[from] serde_json::Error),
    /// A Secret lacks the referenced key or holds non-UTF-8 data.
    #[error("secret {secret}: {problem}")]
    Secret {
        /// Secret name.
        secret: String,
        /// What is wrong.
        problem: String,
    },
    /// The cluster CA or a broker certificate could not be made or read.
    #[error("certificates: {0}")]
    Certificate(#[from] crate::cluster::certs::CertError),
    /// Adding or removing a finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
}

impl Error {
    /// Short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Admin(_) => "kafka",
            Error::MissingField(_) => "missing_field",
            Error::Serialize(_) => "serialize",
            Error::Secret { .. } => "secret",
            Error::Certificate(_) => "certificate",
            Error::Finalizer(_) => "finalizer",
        }
    }
}
