//! Observability: what goes through the proxy, seen per statement shape.
//!
//! So far: statement fingerprints (`fingerprint`). Statistics per
//! fingerprint, the slow-query log and metrics build on them.

pub mod fingerprint;
