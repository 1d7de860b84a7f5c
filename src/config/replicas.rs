//! The `[replicas]` section: how reads are spread over streaming replicas
//! and when a replica is fit to serve them.
//!
//! Every setting has a default, so a config that lists `replicas` under its
//! shards gets read/write splitting, lag limits and read-your-writes without
//! naming this section at all.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Read routing to replicas.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicaSettings {
    /// Send reads outside explicit read-write transactions to replicas.
    /// Off: every statement goes to the primary, replicas only stand by
    /// for failover.
    pub read_write_split: bool,
    /// How a read picks among the usable replicas.
    pub load_balance: LoadBalance,
    /// The primary takes reads too, as one more member of the rotation
    /// (it always takes them when no replica is usable).
    pub primary_reads: bool,
    /// How often every server of every shard is probed for its role
    /// (`pg_is_in_recovery()`) and WAL position. Failover is noticed within
    /// two intervals.
    pub probe_interval_ms: u64,
    /// A replica whose replay position is more than this many bytes of WAL
    /// behind its primary leaves the rotation until it catches up.
    pub max_replica_lag_bytes: u64,
    /// A replica that has not yet replayed what the primary wrote this many
    /// milliseconds ago leaves the rotation until it catches up.
    pub max_replica_lag_ms: u64,
    /// After a session commits a write, its reads go only to replicas that
    /// have replayed that commit (else to the primary).
    pub read_your_writes: bool,
    /// A replica that refuses connections or drops them is kept out of the
    /// rotation this long.
    pub ban_time_ms: u64,
    /// Functions known not to write, besides Postgres' built-in read-only
    /// ones: a read calling any other function goes to the primary. Names
    /// are matched case-insensitively, with or without their schema.
    pub read_only_functions: Vec<String>,
    /// The `[[users]]` entry whose server credentials the probe (and the
    /// admin console's PROMOTE) use; absent: the first user with a server
    /// password. PROMOTE needs a superuser or a role granted `pg_promote`.
    pub probe_user: Option<String>,
}

impl Default for ReplicaSettings {
    fn default() -> Self {
        ReplicaSettings {
            read_write_split: true,
            load_balance: LoadBalance::LeastOutstanding,
            primary_reads: false,
            probe_interval_ms: 1_000,
            max_replica_lag_bytes: 16 * 1024 * 1024,
            max_replica_lag_ms: 10_000,
            read_your_writes: true,
            ban_time_ms: 10_000,
            read_only_functions: Vec::new(),
            probe_user: None,
        }
    }
}

impl ReplicaSettings {
    /// Time between probes.
    pub fn probe_interval(&self) -> Duration {
        Duration::from_millis(self.probe_interval_ms)
    }
    /// Time a failing replica stays out of the rotation.
    pub fn ban_time(&self) -> Duration {
        Duration::from_millis(self.ban_time_ms)
    }
    /// Lag beyond which a replica leaves the rotation.
    pub fn max_lag(&self) -> Duration {
        Duration::from_millis(self.max_replica_lag_ms)
    }
}

/// How reads are spread among usable replicas.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LoadBalance {
    /// The replica with the fewest statements in flight from this proxy
    /// (ties broken in turn): adapts to slow or busy replicas.
    #[default]
    LeastOutstanding,
    /// Each replica in turn.
    RoundRobin,
}
