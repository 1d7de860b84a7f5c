//! Observability: what goes through the proxy, seen per statement shape.
//!
//! The data plane only hands each completed statement to
//! [`Observer::record`] (a bounded channel, never a wait). The collector
//! task does the rest off the client's path: fingerprints the text
//! ([`fingerprint`], cached by [`shapes`]), updates per-fingerprint
//! statistics ([`stats`], written to a [`snapshot`] file), feeds the
//! Prometheus metrics ([`metrics`]), and hands statements slower than the
//! threshold to the plan-capture task ([`capture`]), which takes their
//! plans with [`explain`] on control-plane connections and logs them in
//! the slow-query log ([`slowlog`]).

pub mod bind;
pub mod capture;
pub mod collector;
pub mod event;
pub mod explain;
pub mod fingerprint;
pub mod metrics;
pub mod plan_summary;
pub mod rotate;
pub mod shapes;
pub mod slowlog;
pub mod snapshot;
pub mod stats;
#[cfg(test)]
mod testing;
pub mod timestamp;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::backend::topology::Topology;
use crate::config::Config;
use event::StatementEvent;

/// Events buffered between the sessions and the collector. Beyond it,
/// events are dropped (and counted) rather than slowing a client.
const EVENT_QUEUE: usize = 65_536;

/// Longest [`Observer::flush`] waits (a plan being captured may take up to
/// its statement timeout).
const FLUSH_LIMIT: Duration = Duration::from_secs(10);

/// Flush requests waiting for the collector.
const FLUSH_QUEUE: usize = 16;

/// The sessions' handle on statistics, the slow log and metrics.
pub struct Observer {
    /// `observe.statistics`: when off, sessions skip statement bookkeeping.
    enabled: bool,
    events: mpsc::Sender<StatementEvent>,
    /// Flush requests to the collector (see [`Observer::flush`]).
    flushes: mpsc::Sender<oneshot::Sender<()>>,
    /// Events dropped because the collector fell behind.
    dropped: AtomicU64,
    statistics: Arc<stats::Statistics>,
    slow_log: Arc<slowlog::SlowLog>,
    metrics: Arc<metrics::Metrics>,
    snapshot_path: Option<PathBuf>,
}

impl Observer {
    /// Builds the stores from `config` and starts the collector task (and
    /// the snapshot writer when `observe.snapshot_path` is set).
    pub fn start(
        config: &Config,
        topology: Arc<Topology>,
        metrics: Arc<metrics::Metrics>,
    ) -> Arc<Observer> {
        let (events, receiver) = mpsc::channel(EVENT_QUEUE);
        let (flushes, flush_requests) = mpsc::channel(FLUSH_QUEUE);
        let shard_names = topology.shards.iter().map(|s| s.name.clone()).collect();
        let statistics = Arc::new(stats::Statistics::new(
            config.observe.max_fingerprints,
            shard_names,
        ));
        let slow_log = Arc::new(slowlog::SlowLog::new(&config.observe));
        let snapshot_path = config.observe.snapshot_path.clone();
        if let Some(path) = &snapshot_path {
            tokio::spawn(snapshot::every(
                config.observe.snapshot_interval(),
                Arc::downgrade(&statistics),
                path.clone(),
            ));
        }
        let observer = Arc::new(Observer {
            enabled: config.observe.statistics,
            events,
            flushes,
            dropped: AtomicU64::new(0),
            statistics: Arc::clone(&statistics),
            slow_log: Arc::clone(&slow_log),
            metrics: Arc::clone(&metrics),
            snapshot_path,
        });
        tokio::spawn(collector::run(
            receiver,
            flush_requests,
            collector::Parts {
                config: Arc::new(config.clone()),
                topology,
                statistics,
                slow_log,
                metrics,
            },
        ));
        observer
    }

    /// An observer whose events go to the returned receiver instead of a
    /// collector, for tests of the code that produces them.
    #[cfg(test)]
    pub(crate) fn for_tests() -> (Arc<Observer>, mpsc::Receiver<StatementEvent>) {
        let (events, receiver) = mpsc::channel(EVENT_QUEUE);
        let settings = crate::config::ObserveSettings::default();
        let observer = Observer {
            enabled: true,
            events,
            flushes: mpsc::channel(FLUSH_QUEUE).0,
            dropped: AtomicU64::new(0),
            statistics: Arc::new(stats::Statistics::new(settings.max_fingerprints, vec![])),
            slow_log: Arc::new(slowlog::SlowLog::new(&settings)),
            metrics: Arc::new(metrics::Metrics::default()),
            snapshot_path: None,
        };
        (Arc::new(observer), receiver)
    }

    /// Whether sessions should build statement events at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Hands a completed statement to the collector without waiting.
    pub fn record(&self, event: StatementEvent) {
        if self.events.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events dropped because the collector could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits (at most 10 s) until every statement recorded before is in
    /// the statistics and, when slow, in the slow log with its plan and in
    /// its file. For shutdown, and for tests that read right after
    /// running a statement.
    pub async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        let _ = tokio::time::timeout(FLUSH_LIMIT, async {
            if self.flushes.send(done).await.is_ok() {
                let _ = flushed.await;
            }
        })
        .await;
    }

    /// At shutdown: flushes (see [`Observer::flush`]) and writes the final
    /// statistics snapshot when a snapshot path is configured.
    pub async fn finish(&self) {
        self.flush().await;
        if let Some(path) = &self.snapshot_path {
            snapshot::write_off_runtime(Arc::clone(&self.statistics), path.clone()).await;
        }
    }

    /// Per-fingerprint statistics.
    pub fn statistics(&self) -> &Arc<stats::Statistics> {
        &self.statistics
    }

    /// Recent slow statements.
    pub fn slow_log(&self) -> &Arc<slowlog::SlowLog> {
        &self.slow_log
    }

    /// The Prometheus metrics.
    pub fn metrics(&self) -> &Arc<metrics::Metrics> {
        &self.metrics
    }
}
