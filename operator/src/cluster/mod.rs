//! The `Cluster` kind: its identity (`identity`), validation, the controller quorum layout, the
//! desired Kubernetes objects (`build`, one file per kind), the TLS certificates (which are needed, `tls`; making them, `certs`),
//! the brokers' external addresses, scale planning, zones leaving `spec.zones`, rolling restarts,
//! storage changes, what to delete once unused, the status conditions and the controller that
//! applies them.

pub mod build;
pub mod certs;
pub mod config;
pub mod controller;
pub mod external;
pub mod identity;
pub mod prune;
pub mod quorum;
pub mod roll;
pub mod scale;
pub mod status;
pub mod storage;
pub mod tls;
pub mod validate;
pub mod zones;
