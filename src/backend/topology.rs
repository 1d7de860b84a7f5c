//! Who is who among a shard's servers, and which of them may take a read.
//!
//! Every shard has a list of servers: the configured primary (index 0) and
//! its configured replicas (1..). The control-plane probe
//! ([`super::probe`]) fills in what each one is right now: its role from
//! `pg_is_in_recovery()`, its WAL position, its lag behind the primary, and
//! whether it answered at all. The data plane reads this shared state with
//! atomics only (never waits on the probe) to pick a server per statement.
//!
//! Roles can change without a restart: when a replica is promoted, the
//! probe sees it out of recovery and [`ShardServers::primary`] moves to it.

use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::config::{Config, LoadBalance, ReplicaSettings};

/// A WAL position (`pg_lsn`) as a byte offset.
pub type Lsn = u64;

/// Parses Postgres' `X/Y` text form of a `pg_lsn`.
pub fn parse_lsn(text: &str) -> Option<Lsn> {
    let _ = text;
    todo!("helper: topology")
}

/// Renders an LSN the way Postgres prints `pg_lsn` (`16/B374D848`).
pub fn format_lsn(lsn: Lsn) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// What the probe last found a server to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerRole {
    /// Not probed yet: the configured role is assumed.
    Unknown,
    /// Out of recovery: accepts writes.
    Primary,
    /// In recovery (hot standby).
    Replica,
    /// Did not answer the last probe.
    Down,
}

/// The probed state of one server, shared by every session.
#[derive(Debug)]
pub struct ServerHealth {
    /// `host:port`.
    pub address: String,
    role: AtomicU8,
    /// Last replayed (replica) or written (primary) WAL position seen.
    position: AtomicU64,
    lag_bytes: AtomicU64,
    lag_ms: AtomicU64,
    /// Milliseconds since [`ShardServers`] was created until which the
    /// server is banned (0: not banned).
    banned_until: AtomicU64,
    /// Statements this proxy routed here, for SHOW and the tests.
    pub reads: AtomicU64,
    /// Writes this proxy routed here.
    pub writes: AtomicU64,
}

/// The servers of one shard and how reads are spread over them.
#[derive(Debug)]
pub struct ShardServers {
    /// The shard's name.
    pub name: String,
    /// Index 0: the configured primary; then the configured replicas.
    pub servers: Vec<ServerHealth>,
    primary: AtomicUsize,
    turn: AtomicUsize,
    settings: ReplicaSettings,
    epoch: Instant,
}

/// Where a read should go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadTarget {
    /// This server (a usable replica, or the primary when it takes reads).
    Server(usize),
    /// This replica is usable but not known to have replayed the session's
    /// last write: ask it for its replay position first, and go to the
    /// primary if it is still behind.
    CheckReplica(usize),
    /// The primary: no replica is usable for this read.
    Primary,
}

impl ShardServers {
    /// The servers of shard `shard` of `config`, all of unknown role.
    pub fn new(config: &Config, shard: usize) -> ShardServers {
        let _ = (config, shard, Ordering::Relaxed, AtomicU8::new(0));
        todo!("helper: topology")
    }

    /// Index of the server that takes writes now: the configured primary
    /// until the probe finds another server out of recovery.
    pub fn primary(&self) -> usize {
        self.primary.load(Ordering::Acquire)
    }

    /// Picks the server for a read. `min_lsn` is the session's last commit
    /// on this shard (read-your-writes), `load(i)` the statements in flight
    /// on server `i` (least-outstanding balancing), `exclude` servers that
    /// already failed this read.
    pub fn choose_read(
        &self,
        min_lsn: Option<Lsn>,
        load: &dyn Fn(usize) -> usize,
        exclude: &[usize],
    ) -> ReadTarget {
        let _ = (min_lsn, load, exclude, LoadBalance::RoundRobin);
        todo!("helper: topology")
    }

    /// Keeps a replica that refused or dropped a connection out of the
    /// rotation for the configured ban time.
    pub fn ban(&self, server: usize) {
        let _ = server;
        todo!("helper: topology")
    }

    /// Records a replay position learned outside the probe (a live check):
    /// positions only move forward.
    pub fn note_position(&self, server: usize, lsn: Lsn) {
        let _ = (server, lsn);
        todo!("helper: topology")
    }

    /// Whether every usable replica has replayed `lsn`: a session's
    /// read-your-writes position can then be forgotten.
    pub fn all_replayed(&self, lsn: Lsn) -> bool {
        let _ = lsn;
        todo!("helper: topology")
    }

    /// A snapshot of one server's state for reports.
    pub fn report(&self, server: usize) -> ServerReport {
        let _ = (server, Duration::ZERO);
        todo!("helper: topology")
    }
}

/// One server's state as reported by `SHOW REPLICAS` and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerReport {
    /// `host:port`.
    pub address: String,
    /// The role last probed.
    pub role: ServerRole,
    /// Whether reads may go there now.
    pub in_rotation: bool,
    /// Whether it is banned after a connection failure.
    pub banned: bool,
    /// Bytes of WAL behind the primary at the last probe.
    pub lag_bytes: u64,
    /// Milliseconds behind the primary at the last probe.
    pub lag_ms: u64,
    /// Last known WAL position.
    pub position: Lsn,
    /// Reads routed here.
    pub reads: u64,
    /// Writes routed here.
    pub writes: u64,
}

/// The servers of every shard of a config.
#[derive(Debug)]
pub struct Topology {
    /// One entry per `[[shards]]` entry, same order.
    pub shards: Vec<std::sync::Arc<ShardServers>>,
}

impl Topology {
    /// Every shard of `config`, nothing probed yet.
    pub fn new(config: &Config) -> Topology {
        Topology {
            shards: (0..config.shards.len())
                .map(|i| std::sync::Arc::new(ShardServers::new(config, i)))
                .collect(),
        }
    }
}
