//! Strait's Kubernetes operator: one kube-rs controller per kind (`Cluster`, `Topic`, `User`,
//! `Mirror`), each reconcile going read → validate (pure) → build the desired objects (pure) →
//! apply with server-side apply → status. Topics and users go through the Kafka admin API.

pub mod admin;
pub mod apply;
pub mod cluster;
pub mod conditions;
pub mod context;
pub mod error;
pub mod finalizer;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod mirror;
pub mod names;
pub mod reconcile;
pub mod run;
pub mod target_cluster;
pub mod topic;
pub mod user;

pub use error::Error;
