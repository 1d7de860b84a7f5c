//! The demo's Postgres servers: per shard, a primary holding the demo role,
//! database and schema, and one streaming replica of it; plus the
//! `cluster.json` that tells users and tests where they listen.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::{DEMO_DATABASE, DEMO_PASSWORD, DEMO_USER, SCHEMA, SHARDS};
use crate::localcluster::{ClusterOptions, LocalCluster, ReplicaOptions, Role};

/// How long the replicas may take to replay what the data load wrote.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(120);
/// Pause between two looks at a replica's replay position.
const REPLAY_POLL: Duration = Duration::from_millis(100);

/// One shard of the demo: its primary and its streaming replica.
///
/// The replica is declared first so that it is dropped (stopped) first: the
/// primary then has no WAL sender left to wait for when it shuts down.
#[derive(Debug)]
pub struct DemoShard {
    /// The hot standby streaming from `primary`.
    pub replica: LocalCluster,
    /// The server that takes the writes.
    pub primary: LocalCluster,
    /// The shard's name in the config and the shard map.
    pub name: &'static str,
}

impl DemoShard {
    /// `host:port` of the primary, as the proxy config names it.
    pub fn primary_address(&self) -> String {
        address(&self.primary)
    }

    /// `host:port` of the replica, as the proxy config names it.
    pub fn replica_address(&self) -> String {
        address(&self.replica)
    }
}

fn address(cluster: &LocalCluster) -> String {
    format!("{}:{}", cluster.host(), cluster.port())
}

/// Opens (or creates) every shard of the demo under `dir`: the primary in
/// `<dir>/<shard>` with the demo role, database and schema, then its replica
/// in `<dir>/<shard>-replica`, base-backed-up from it (so it has the role and
/// schema already; later changes reach it by streaming).
///
/// With `keep`, clusters found in `dir` are reused (a running one is
/// adopted). Without it, or when a shard's primary is new (a replica left
/// next to a new primary would be the copy of another cluster), old clusters
/// are stopped and deleted first.
pub fn prepare_shards(dir: &Path, keep: bool) -> Result<Vec<DemoShard>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    SHARDS
        .iter()
        .map(|name| prepare_shard(dir, name, keep))
        .collect()
}

fn prepare_shard(dir: &Path, name: &'static str, keep: bool) -> Result<DemoShard> {
    let primary_dir = dir.join(name);
    let replica_dir = dir.join(format!("{name}-replica"));
    let fresh = !keep || !holds_cluster(&primary_dir);
    if fresh {
        remove_old_cluster(&replica_dir)?;
        remove_old_cluster(&primary_dir)?;
    }
    let primary = LocalCluster::open_or_init(&primary_dir, &ClusterOptions::default())?;
    create_demo_objects(&primary)?;
    let replica = primary
        .create_replica(Some(&replica_dir), &ReplicaOptions::default())
        .with_context(|| format!("creating the replica of {name}"))?;
    Ok(DemoShard {
        replica,
        primary,
        name,
    })
}

/// True if `cluster_dir` holds a Postgres data directory.
fn holds_cluster(cluster_dir: &Path) -> bool {
    cluster_dir.join("data").join("PG_VERSION").is_file()
}

/// Stops the server a previous demo (possibly still running, or crashed)
/// left in `cluster_dir`, and deletes the directory.
fn remove_old_cluster(cluster_dir: &Path) -> Result<()> {
    if !cluster_dir.exists() {
        return Ok(());
    }
    if holds_cluster(cluster_dir) {
        let old = LocalCluster::open_or_init(cluster_dir, &ClusterOptions::default())
            .with_context(|| {
                format!(
                    "cannot recover the old demo cluster in {}",
                    cluster_dir.display()
                )
            })?;
        drop(old);
    }
    std::fs::remove_dir_all(cluster_dir)
        .with_context(|| format!("cannot remove {}", cluster_dir.display()))
}

/// The demo role, database and schema on a primary (whatever of them is
/// missing).
fn create_demo_objects(primary: &LocalCluster) -> Result<()> {
    let has_role = primary.psql(
        "postgres",
        &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{DEMO_USER}'"),
    )?;
    if has_role.trim() == "0" {
        primary.create_role(DEMO_USER, DEMO_PASSWORD, false)?;
    }
    let has_db = primary.psql(
        "postgres",
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{DEMO_DATABASE}'"),
    )?;
    if has_db.trim() == "0" {
        primary.create_database(DEMO_DATABASE, DEMO_USER)?;
    }
    let has_schema = primary.psql(
        DEMO_DATABASE,
        "SELECT count(*) FROM pg_tables WHERE tablename = 'transactions'",
    )?;
    if has_schema.trim() == "0" {
        primary
            .psql(DEMO_DATABASE, SCHEMA)
            .context("creating the demo schema")?;
    }
    // The proxy's probe runs as the demo role; the admin console's PROMOTE
    // needs this (granting twice is harmless).
    primary
        .psql(
            DEMO_DATABASE,
            &format!("GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer) TO {DEMO_USER}"),
        )
        .context("granting pg_promote to the demo role")?;
    Ok(())
}

/// Waits until every replica has replayed all the WAL its primary had
/// written when this was called, so that reads the proxy sends to a replica
/// right after the demo says it is ready see the loaded data.
pub fn wait_for_replay(shards: &[DemoShard]) -> Result<()> {
    for shard in shards {
        let target = shard
            .primary
            .psql("postgres", "SELECT pg_current_wal_lsn()")?;
        let caught_up = format!("SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn");
        let deadline = Instant::now() + REPLAY_TIMEOUT;
        while shard.replica.psql("postgres", &caught_up)? != "t" {
            if Instant::now() >= deadline {
                bail!(
                    "the replica of {} (port {}) did not replay the primary's WAL up to {target} within {}s (see {}); starting the demo without --keep rebuilds the replicas",
                    shard.name,
                    shard.replica.port(),
                    REPLAY_TIMEOUT.as_secs(),
                    shard.replica.log_file().display()
                );
            }
            std::thread::sleep(REPLAY_POLL);
        }
    }
    Ok(())
}

/// One entry of `cluster.json`.
#[derive(Debug, Serialize)]
struct ClusterEntry {
    name: String,
    role: &'static str,
    shard: String,
    host: String,
    port: u16,
    data_dir: PathBuf,
}

impl ClusterEntry {
    /// `position` is the server's place in the demo ("primary" or
    /// "replica"), `role` what it is now (a promoted replica is a primary).
    fn new(shard: &str, position: &str, cluster: &LocalCluster) -> ClusterEntry {
        ClusterEntry {
            name: format!("{shard}-{position}"),
            role: match cluster.role() {
                Role::Primary => "primary",
                Role::Replica => "replica",
            },
            shard: shard.to_string(),
            host: cluster.host().to_string(),
            port: cluster.port(),
            data_dir: cluster.data_dir().to_path_buf(),
        }
    }
}

/// Writes `<dir>/cluster.json`: every server of every shard (primaries
/// first, then replicas, in shard order), with its role and address.
pub fn write_cluster_json(dir: &Path, shards: &[DemoShard]) -> Result<()> {
    let primaries = shards
        .iter()
        .map(|s| ClusterEntry::new(s.name, "primary", &s.primary));
    let replicas = shards
        .iter()
        .map(|s| ClusterEntry::new(s.name, "replica", &s.replica));
    let entries: Vec<ClusterEntry> = primaries.chain(replicas).collect();
    let path = dir.join("cluster.json");
    let text = serde_json::to_string_pretty(&entries).context("rendering cluster.json")?;
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}
