//! The desired Kubernetes objects of a Cluster, one file per kind, each a pure function of the
//! `ClusterRef` and what the plan decided (replicas, voters, hashes, addresses): the plan calls
//! them and the apply step sends what they return, so nothing here talks to the API server.

pub mod certificates;
pub mod configmap;
pub mod monitoring;
pub mod pdb;
pub mod rbac;
pub mod services;
pub mod statefulset;
