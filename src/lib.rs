//! shardwire: a PostgreSQL wire-protocol proxy that pools, routes and shards.
//!
//! The crate is split into the data plane (`net`, `frontend`, `backend`,
//! `router`) that moves client traffic, and the control plane (`config`,
//! `localcluster`, and later observability and rebalancing) that never sits
//! on a client's path. See `DESIGN.md` in the shared folder for the whole
//! architecture.

pub mod admin;
pub mod auth;
pub mod backend;
pub mod config;
pub mod demo;
pub mod frontend;
pub mod localcluster;
pub mod net;
pub mod observe;
pub mod proxy;
pub mod router;
pub mod scatter;
pub mod sharding;
mod sqlwalk;

/// Name of the admin console's database on the proxy's port.
pub const ADMIN_DATABASE: &str = "shardwire";
