//! The `Cluster` kind: validation, the controller quorum layout, the desired Kubernetes objects,
//! the TLS certificates (which are needed, `tls`; making them, `certs`),
//! the brokers' external addresses, scale planning, zones leaving `spec.zones`, rolling restarts,
//! storage changes, what to delete once unused, the status conditions and the controller that
//! applies them.

pub mod certs;
pub mod config;
pub mod controller;
pub mod external;
pub mod prune;
pub mod quorum;
pub mod resources;
pub mod roll;
pub mod scale;
pub mod status;
pub mod storage;
pub mod tls;
pub mod validate;
pub mod zones;
