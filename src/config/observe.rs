//! The `[observe]` and `[metrics]` sections: statement statistics, the
//! slow-query log with plans, and the Prometheus endpoint.
//!
//! Everything has a default: statistics and the in-memory slow log are on
//! out of the box (the admin console's `SHOW QUERIES` and `SHOW SLOW` read
//! them); files and the metrics endpoint are written only where a path or
//! address is configured.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Statement statistics and the slow-query log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ObserveSettings {
    /// Record per-fingerprint statistics and slow statements. Off: the
    /// data path skips the bookkeeping entirely (for the overhead
    /// benchmark, or an operator who wants none of it).
    pub statistics: bool,
    /// Most distinct statement fingerprints kept; the least-used are
    /// evicted beyond it, as `pg_stat_statements.max` does.
    pub max_fingerprints: usize,
    /// JSON file the statistics are written to every
    /// `snapshot_interval_ms` and at shutdown, for the index advisor to
    /// read offline; absent: no file.
    pub snapshot_path: Option<PathBuf>,
    /// How often the statistics snapshot file is rewritten.
    pub snapshot_interval_ms: u64,
    /// A statement that takes longer than this goes to the slow-query log.
    pub slow_query_threshold_ms: u64,
    /// Capture the plan of slow statements with `EXPLAIN (FORMAT JSON)` on
    /// a control-plane connection to the shard they ran on.
    pub explain: bool,
    /// At most one EXPLAIN per fingerprint per this interval: a slow
    /// statement repeated a thousand times costs one plan, not a thousand.
    pub explain_interval_ms: u64,
    /// Use `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` for read-only
    /// statements, on a replica only (never a primary, never a write).
    pub explain_analyze: bool,
    /// JSON-lines file of slow statements; absent: only the in-memory ring.
    pub slow_log_path: Option<PathBuf>,
    /// The slow log file is rotated (`.1`, `.2`, ...) when it would grow
    /// beyond this size.
    pub slow_log_max_bytes: u64,
    /// Rotated slow log files kept besides the current one.
    pub slow_log_files: usize,
    /// Slow statements kept in memory for `SHOW SLOW`.
    pub slow_ring_entries: usize,
}

impl Default for ObserveSettings {
    fn default() -> Self {
        ObserveSettings {
            statistics: true,
            max_fingerprints: 5_000,
            snapshot_path: None,
            snapshot_interval_ms: 60_000,
            slow_query_threshold_ms: 100,
            explain: true,
            explain_interval_ms: 60_000,
            explain_analyze: false,
            slow_log_path: None,
            slow_log_max_bytes: 64 * 1024 * 1024,
            slow_log_files: 5,
            slow_ring_entries: 1_000,
        }
    }
}

impl ObserveSettings {
    /// Statements slower than this are logged.
    pub fn slow_query_threshold(&self) -> Duration {
        Duration::from_millis(self.slow_query_threshold_ms)
    }
    /// Minimum time between two EXPLAINs of one fingerprint.
    pub fn explain_interval(&self) -> Duration {
        Duration::from_millis(self.explain_interval_ms)
    }
    /// Time between two statistics snapshot files.
    pub fn snapshot_interval(&self) -> Duration {
        Duration::from_millis(self.snapshot_interval_ms)
    }
}

/// The Prometheus endpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// `host:port` serving `GET /metrics` in the Prometheus text format;
    /// absent: no endpoint (metrics are still kept for the console).
    pub listen: Option<String>,
}
