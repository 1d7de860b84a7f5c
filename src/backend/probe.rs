//! The control-plane probe: every `replicas.probe_interval_ms`, asks every
//! server of every shard for its role and WAL position on a connection of
//! its own (tokio-postgres), and publishes the result in the
//! [`Topology`](super::topology::Topology) the data plane reads.
//!
//! Each shard is probed on its own schedule, and all servers of a shard at
//! once, so a hung server delays only its own shard's round (by at most the
//! connect or query timeout). Connections stay open between rounds and are
//! reopened when broken.

mod login;
mod roles;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;

use super::topology::{ServerRole, ServerStatus, ShardServers, Topology};
use crate::config::Config;
use crate::net::messages::PgError;
use login::{ProbeConnection, ProbeError, ProbeLogin};
use roles::{PrimaryChoice, Situation, choose_primary};

/// How long `PROMOTE` waits for the replica to leave recovery.
const PROMOTE_WAIT_SECS: u64 = 60;

/// Probes every server of `topology` now and then every probe interval,
/// forever (the caller aborts the task on shutdown). `config` gives the
/// servers' credentials (`replicas.probe_user`).
pub async fn probe_forever(topology: Arc<Topology>, config: Arc<Config>) {
    let Some(mut prober) = Prober::new(&topology, &config) else {
        tracing::warn!(
            "no [[users]] entry to probe the servers with: replica roles and lag stay unknown"
        );
        return;
    };
    let interval = config.replicas.probe_interval();
    let login = &prober.login;
    join_all(prober.shards.iter_mut().map(|shard| async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            shard.round(login).await;
        }
    }))
    .await;
}

/// The probe's connections to every server of a topology, for one round at
/// a time ([`probe_forever`] runs rounds on a schedule; tests run them by
/// hand).
pub struct Prober {
    login: ProbeLogin,
    shards: Vec<ShardProber>,
}

impl Prober {
    /// A prober of `topology` with the credentials `config` gives; `None`
    /// when the config names no user to log in with.
    pub fn new(topology: &Topology, config: &Config) -> Option<Prober> {
        Some(Prober {
            login: ProbeLogin::from_config(config)?,
            shards: topology
                .shards
                .iter()
                .map(|shard| ShardProber::new(Arc::clone(shard)))
                .collect(),
        })
    }

    /// Runs one probe round over every shard and publishes its results.
    pub async fn probe_once(&mut self) {
        let login = &self.login;
        join_all(self.shards.iter_mut().map(|shard| shard.round(login))).await;
    }
}

/// One shard and a connection slot per server.
struct ShardProber {
    shard: Arc<ShardServers>,
    connections: Vec<Option<ProbeConnection>>,
}

impl ShardProber {
    fn new(shard: Arc<ShardServers>) -> ShardProber {
        let connections = shard.servers.iter().map(|_| None).collect();
        ShardProber { shard, connections }
    }

    /// Probes every server of the shard at once, chooses the primary,
    /// publishes the round and logs what changed.
    async fn round(&mut self, login: &ProbeLogin) {
        let shard = &self.shard;
        let answers = join_all(
            self.connections
                .iter_mut()
                .zip(&shard.servers)
                .map(|(slot, server)| probe_server(slot, &server.address, login)),
        )
        .await;
        let statuses: Vec<Option<ServerStatus>> =
            answers.iter().map(|a| a.as_ref().ok().copied()).collect();
        let roles_before: Vec<ServerRole> = (0..shard.servers.len())
            .map(|i| shard.report(i).role)
            .collect();
        let primary_before = shard.primary();
        let choice = choose_primary(primary_before, &statuses);
        shard.record_round(&statuses, choice.primary, Instant::now());
        log_changes(shard, &roles_before, primary_before, choice, &answers);
    }
}

/// Probes one server on its kept connection, or a new one when there is
/// none or the kept one failed (it may be stale: the server restarted).
async fn probe_server(
    slot: &mut Option<ProbeConnection>,
    address: &str,
    login: &ProbeLogin,
) -> Result<ServerStatus, ProbeError> {
    if let Some(connection) = slot.as_ref().filter(|c| !c.is_closed()) {
        match connection.status(login.query_timeout).await {
            Ok(status) => return Ok(status),
            Err(e @ ProbeError::Timeout(_)) => {
                *slot = None;
                return Err(e);
            }
            Err(e) => {
                tracing::debug!(server = %address, error = %e, "probe connection failed; reconnecting")
            }
        }
    }
    *slot = None;
    let connection = login.connect(address).await?;
    let status = connection.status(login.query_timeout).await?;
    *slot = Some(connection);
    Ok(status)
}

/// Logs role changes, a new primary, and (when something changed) a split
/// brain or a shard without primary.
fn log_changes(
    shard: &ShardServers,
    roles_before: &[ServerRole],
    primary_before: usize,
    choice: PrimaryChoice,
    answers: &[Result<ServerStatus, ProbeError>],
) {
    let mut changed = false;
    for (i, (before, answer)) in roles_before.iter().zip(answers).enumerate() {
        let now = shard.report(i).role;
        if now == *before {
            continue;
        }
        changed = true;
        let server = &shard.servers[i].address;
        match answer {
            Err(e) => {
                tracing::warn!(shard = %shard.name, %server, error = %e, "server does not answer the probe")
            }
            Ok(_) => {
                tracing::info!(shard = %shard.name, %server, from = ?before, to = ?now, "server role")
            }
        }
    }
    if choice.primary != primary_before {
        tracing::warn!(
            shard = %shard.name,
            from = %shard.servers[primary_before].address,
            to = %shard.servers[choice.primary].address,
            "writes now go to a new primary"
        );
    }
    if !changed {
        return;
    }
    let primary = &shard.servers[choice.primary].address;
    match choice.situation {
        Situation::Single => {}
        Situation::SplitBrain => tracing::warn!(
            shard = %shard.name,
            %primary,
            "several servers are out of recovery (split brain): writes go to the one on the newest timeline"
        ),
        Situation::NoPrimary => tracing::warn!(
            shard = %shard.name,
            %primary,
            "no server of the shard is out of recovery: writes will fail until one is promoted"
        ),
    }
}

/// Promotes replica `server` of shard `shard` (`SELECT pg_promote()`), for
/// the admin console's `PROMOTE`; the probe then moves writes to it.
/// `server` counts as in the config: 0 the configured primary, then the
/// replicas. Waits up to 60 s for the promotion to finish.
pub async fn promote(config: &Config, shard: usize, server: usize) -> Result<(), PgError> {
    let shard_config = config.shards.get(shard).ok_or_else(|| {
        PgError::error(
            "22023",
            format!(
                "there is no shard {shard}: the config has {}",
                config.shards.len()
            ),
        )
    })?;
    let address = std::iter::once(&shard_config.primary)
        .chain(&shard_config.replicas)
        .nth(server)
        .ok_or_else(|| {
            PgError::error(
                "22023",
                format!(
                    "shard {} has no server {server}: 0 is its configured primary, 1 to {} its replicas",
                    shard_config.name,
                    shard_config.replicas.len()
                ),
            )
        })?;
    let login = ProbeLogin::from_config(config).ok_or_else(|| {
        PgError::error("28000", "no [[users]] entry to log in to the servers with")
    })?;
    let connection = login
        .connect(address)
        .await
        .map_err(|e| PgError::error("08001", format!("cannot connect to server {address}: {e}")))?;
    let status = connection
        .status(login.query_timeout)
        .await
        .map_err(|e| e.to_pg_error(address))?;
    if !status.in_recovery {
        return Err(PgError::error(
            "55000",
            format!("server {address} is not in recovery: only a replica can be promoted"),
        ));
    }
    let sql = format!("SELECT pg_promote(true, {PROMOTE_WAIT_SECS})");
    let wait = Duration::from_secs(PROMOTE_WAIT_SECS) + login.query_timeout;
    let promoted = connection
        .query_value(&sql, wait)
        .await
        .map_err(|e| match e.to_pg_error(address) {
            denied if denied.code == "42501" => denied.with_hint(
                "PROMOTE needs a superuser, or a role granted EXECUTE on pg_promote, as replicas.probe_user",
            ),
            other => other,
        })?;
    if promoted.as_deref() != Some("t") {
        return Err(PgError::error(
            "57014",
            format!("server {address} did not finish its promotion within {PROMOTE_WAIT_SECS} s"),
        ));
    }
    tracing::warn!(shard = %shard_config.name, server = %address, "replica promoted by the admin console");
    Ok(())
}
