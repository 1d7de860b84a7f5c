//! The collector task: turns statement events into statistics, metrics and
//! slow-log entries, off the client's path.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::event::StatementEvent;
use super::{metrics::Metrics, slowlog::SlowLog, stats::Statistics};
use crate::backend::topology::Topology;
use crate::config::Config;

/// What the collector updates, and what it needs to capture plans.
pub struct Parts {
    /// The config the proxy started with (slow threshold, users' server
    /// credentials for EXPLAIN connections).
    pub config: Arc<Config>,
    /// Current primaries and replicas (where EXPLAIN runs).
    pub topology: Arc<Topology>,
    /// Per-fingerprint statistics.
    pub statistics: Arc<Statistics>,
    /// The slow-query log.
    pub slow_log: Arc<SlowLog>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
}

/// Consumes events until every sender is gone.
pub async fn run(mut events: mpsc::Receiver<StatementEvent>, parts: Parts) {
    while let Some(event) = events.recv().await {
        parts.metrics.on_statement(&event);
    }
}
