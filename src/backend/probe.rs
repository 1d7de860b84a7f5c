//! The control-plane probe: every `replicas.probe_interval_ms`, asks every
//! server of every shard for its role and WAL position on a connection of
//! its own (tokio-postgres), and publishes the result in the
//! [`Topology`](super::topology::Topology) the data plane reads.

use std::sync::Arc;

use super::topology::Topology;
use crate::config::Config;
use crate::net::messages::PgError;

/// Probes every server of `topology` now and then every probe interval,
/// forever (the caller aborts the task on shutdown). `config` gives the
/// servers' credentials (`replicas.probe_user`).
pub async fn probe_forever(topology: Arc<Topology>, config: Arc<Config>) {
    let _ = (topology, config);
    todo!("helper: probe")
}

/// Promotes replica `server` of shard `shard` (`SELECT pg_promote()`), for
/// the admin console's `PROMOTE`; the probe then moves writes to it.
pub async fn promote(config: &Config, shard: usize, server: usize) -> Result<(), PgError> {
    let _ = (config, shard, server);
    todo!("helper: probe")
}
