//! Strait's Kubernetes custom resources in API group `strait.dev`, version `v1alpha1`:
//! [`Cluster`] (a set of brokers), [`Topic`], [`User`] and [`Mirror`] (cross-cluster
//! replication), with their schemas (schemars, with validation and CEL rules) and the CRD YAML
//! rendering used by the `crdgen` binary.

// Clippy mistakes repeated `printcolumn(type_ = ...)` entries of `#[kube(...)]` for duplicated
// attributes.
#![allow(clippy::duplicated_attributes)]

pub mod cel_cost;
pub mod cluster;
pub mod common;
pub mod generate;
pub mod mirror;
pub mod structural;
pub mod topic;
pub mod user;

pub use cluster::{Cluster, ClusterSpec, ClusterStatus};
pub use common::{ClusterReference, DeletionPolicy, SecretKeyRef};
pub use mirror::{Mirror, MirrorSpec, MirrorStatus};
pub use topic::{Topic, TopicSpec, TopicStatus};
pub use user::{User, UserSpec, UserStatus};

/// The API group of every Strait resource.
pub const GROUP: &str = "strait.dev";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";
