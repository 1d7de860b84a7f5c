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

mod lag;
mod reads;
#[cfg(test)]
mod tests;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use crate::config::{Config, ReplicaSettings};
use lag::PrimaryHistory;

/// A WAL position (`pg_lsn`) as a byte offset.
pub type Lsn = u64;

/// Parses Postgres' `X/Y` text form of a `pg_lsn` (two hexadecimal numbers
/// of at most 8 digits each); `None` for anything else.
pub fn parse_lsn(text: &str) -> Option<Lsn> {
    let (high, low) = text.split_once('/')?;
    let half = |part: &str| -> Option<u64> {
        let valid = (1..=8).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_hexdigit());
        if valid {
            u64::from_str_radix(part, 16).ok()
        } else {
            None
        }
    };
    Some((half(high)? << 32) | half(low)?)
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

impl ServerRole {
    fn to_u8(self) -> u8 {
        match self {
            ServerRole::Unknown => 0,
            ServerRole::Primary => 1,
            ServerRole::Replica => 2,
            ServerRole::Down => 3,
        }
    }

    fn from_u8(value: u8) -> ServerRole {
        match value {
            1 => ServerRole::Primary,
            2 => ServerRole::Replica,
            3 => ServerRole::Down,
            _ => ServerRole::Unknown,
        }
    }
}

/// What one probe of one server found, when the server answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerStatus {
    /// `pg_is_in_recovery()`.
    pub in_recovery: bool,
    /// Replay position (replica) or current WAL position (primary); 0 when
    /// the server reported none.
    pub position: Lsn,
    /// The timeline a primary writes on, which tells the newer primary
    /// apart in a split brain (`None` for replicas).
    pub timeline: Option<u32>,
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

impl ServerHealth {
    fn new(address: &str) -> ServerHealth {
        ServerHealth {
            address: address.to_string(),
            role: AtomicU8::new(ServerRole::Unknown.to_u8()),
            position: AtomicU64::new(0),
            lag_bytes: AtomicU64::new(0),
            lag_ms: AtomicU64::new(0),
            banned_until: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        }
    }

    fn role(&self) -> ServerRole {
        ServerRole::from_u8(self.role.load(Ordering::Acquire))
    }

    fn position(&self) -> Lsn {
        self.position.load(Ordering::Acquire)
    }

    fn banned_at(&self, now_ms: u64) -> bool {
        self.banned_until.load(Ordering::Acquire) > now_ms
    }
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
    /// The current primary's recent positions, for replicas' time lag;
    /// only the probe touches it.
    history: Mutex<PrimaryHistory>,
    /// Milliseconds since `epoch` until which reads that would need a live
    /// replay check go straight to the primary: the last check found the
    /// replica behind, so the next ones would most likely only add a round
    /// trip.
    checks_paused_until: AtomicU64,
}

/// How long live replay checks pause after one found its replica behind.
const CHECK_PAUSE_MS: u64 = 10;

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
    ///
    /// # Panics
    /// If `config` has no shard `shard`.
    pub fn new(config: &Config, shard: usize) -> ShardServers {
        let shard_config = &config.shards[shard];
        let addresses = std::iter::once(&shard_config.primary).chain(&shard_config.replicas);
        ShardServers {
            name: shard_config.name.clone(),
            servers: addresses.map(|a| ServerHealth::new(a)).collect(),
            primary: AtomicUsize::new(0),
            turn: AtomicUsize::new(0),
            settings: config.replicas.clone(),
            epoch: Instant::now(),
            history: Mutex::new(PrimaryHistory::default()),
            checks_paused_until: AtomicU64::new(0),
        }
    }

    /// Records the outcome of a live replay check: a replica found behind
    /// pauses further checks for a few milliseconds (see
    /// [`ReadTarget::CheckReplica`]).
    pub fn note_check(&self, caught_up: bool) {
        if !caught_up {
            self.checks_paused_until
                .store(self.now_ms() + CHECK_PAUSE_MS, Ordering::Release);
        }
    }

    /// Whether live replay checks are paused now.
    fn checks_paused(&self, now_ms: u64) -> bool {
        self.checks_paused_until.load(Ordering::Acquire) > now_ms
    }

    /// Index of the server that takes writes now: the configured primary
    /// until the probe finds another server out of recovery.
    pub fn primary(&self) -> usize {
        self.primary.load(Ordering::Acquire)
    }

    /// Keeps a replica that refused or dropped a connection out of the
    /// rotation for the configured ban time; it comes back by itself once
    /// the time is over. An unknown index is ignored.
    pub fn ban(&self, server: usize) {
        if let Some(health) = self.servers.get(server) {
            let until = self.now_ms().saturating_add(self.settings.ban_time_ms);
            health.banned_until.store(until, Ordering::Release);
        }
    }

    /// Records a replay position learned outside the probe (a live check):
    /// positions only move forward. An unknown index is ignored.
    pub fn note_position(&self, server: usize, lsn: Lsn) {
        if let Some(health) = self.servers.get(server) {
            health.position.fetch_max(lsn, Ordering::AcqRel);
        }
    }

    /// A snapshot of one server's state for reports.
    ///
    /// # Panics
    /// If the shard has no server `server`.
    pub fn report(&self, server: usize) -> ServerReport {
        let now_ms = self.now_ms();
        let health = &self.servers[server];
        ServerReport {
            address: health.address.clone(),
            role: health.role(),
            in_rotation: self.in_rotation_at(server, now_ms),
            banned: health.banned_at(now_ms),
            lag_bytes: health.lag_bytes.load(Ordering::Acquire),
            lag_ms: health.lag_ms.load(Ordering::Acquire),
            position: health.position(),
            reads: health.reads.load(Ordering::Relaxed),
            writes: health.writes.load(Ordering::Relaxed),
        }
    }

    /// Publishes one probe round: `statuses[i]` is what server `i` answered
    /// (`None`: it did not), `primary` the server that takes writes from
    /// now on, `now` when the round finished. Replicas' lags are measured
    /// against the primary's position of this round.
    pub(crate) fn record_round(
        &self,
        statuses: &[Option<ServerStatus>],
        primary: usize,
        now: Instant,
    ) {
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        if self.primary.swap(primary, Ordering::AcqRel) != primary {
            history.clear();
        }
        for (health, status) in self.servers.iter().zip(statuses) {
            let role = match status {
                None => ServerRole::Down,
                Some(s) if s.in_recovery => ServerRole::Replica,
                Some(_) => ServerRole::Primary,
            };
            health.role.store(role.to_u8(), Ordering::Release);
            if let Some(s) = status {
                health.position.store(s.position, Ordering::Release);
            }
        }
        if let Some(Some(status)) = statuses.get(primary)
            && !status.in_recovery
        {
            history.record(now, status.position);
        }
        let latest = history.latest().unwrap_or(0);
        for (i, health) in self.servers.iter().enumerate() {
            let (bytes, ms) = if i == primary {
                (0, 0)
            } else {
                let position = health.position();
                let ms = history.lag(position, now).as_millis();
                (
                    latest.saturating_sub(position),
                    u64::try_from(ms).unwrap_or(u64::MAX),
                )
            };
            health.lag_bytes.store(bytes, Ordering::Release);
            health.lag_ms.store(ms, Ordering::Release);
        }
    }

    /// Milliseconds since this shard's state was created: the ban clock.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
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
