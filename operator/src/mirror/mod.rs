//! The `Mirror` kind: cross-cluster replication run as a Deployment of `strait-mirror`
//! processes. `validate` resolves the Clusters and refuses what cannot run, `config` renders
//! `mm2.properties`, `failover` plans a linked Mirror's failover from its Job, `build` the
//! ConfigMap, Deployment, failover Job and PodMonitor, `lag` measures how far the target is
//! behind, `status` is a pure function of the pass, and `controller` runs the steps in that
//! order.

pub mod build;
pub mod config;
pub mod controller;
pub mod failover;
pub mod lag;
pub mod status;
pub mod validate;
