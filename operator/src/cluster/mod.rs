//! The `Cluster` kind. `controller` runs each pass as a pipeline: `validate` → `observe` →
//! `plan` → `apply` → `status`, with the steps that cannot be planned up front in their own
//! modules (`issue`: certificates; `reconfigure`: one KIP-853 voter change per pass; `drain`:
//! the scale step's admin work). The pure decisions behind them: `identity` (who the Cluster
//! is, node ids), `build` (the desired objects, one file per kind), `config`
//! (`server.properties`), `quorum`, `voters` (the next voter change), `scale`, `roll`, `storage`,
//! `prune`, `zones`, `external` (advertised addresses), `tiered` (tiered storage keys, env,
//! volume), `tls` (which certificates) and `certs`
//! (making them); `reach` holds the admin client of a Cluster.

pub mod apply;
pub mod build;
pub mod certs;
pub mod config;
pub mod controller;
pub mod drain;
pub mod external;
pub mod identity;
pub mod issue;
pub mod observe;
pub mod plan;
pub mod prune;
pub mod quorum;
pub mod reach;
pub mod reconfigure;
pub mod roll;
pub mod scale;
pub mod status;
pub mod storage;
pub mod tiered;
pub mod tls;
pub mod validate;
pub mod voters;
pub mod zones;
