//! The `Cluster` kind: validation, the desired Kubernetes objects, scale-down planning and the
//! controller that applies them.

pub mod config;
pub mod controller;
pub mod resources;
pub mod scale;
pub mod validate;
