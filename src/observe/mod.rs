//! Observability: what goes through the proxy, seen per statement shape.
//!
//! The data plane only hands each completed statement to
//! [`Observer::record`] (a bounded channel, never a wait). The collector
//! task does the rest off the client's path: fingerprints the text
//! ([`fingerprint`]), updates per-fingerprint statistics ([`stats`]),
//! feeds the Prometheus metrics ([`metrics`]), and sends statements slower
//! than the threshold to the slow-query log ([`slowlog`]) with a plan
//! captured by [`explain`] on a control-plane connection.

pub mod collector;
pub mod event;
pub mod explain;
pub mod fingerprint;
pub mod metrics;
pub mod slowlog;
pub mod stats;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::backend::topology::Topology;
use crate::config::Config;
use event::StatementEvent;

/// Events buffered between the sessions and the collector. Beyond it,
/// events are dropped (and counted) rather than slowing a client.
const EVENT_QUEUE: usize = 65_536;

/// The sessions' handle on statistics, the slow log and metrics.
pub struct Observer {
    /// `observe.statistics`: when off, sessions skip statement bookkeeping.
    enabled: bool,
    events: mpsc::Sender<StatementEvent>,
    /// Events dropped because the collector fell behind.
    dropped: AtomicU64,
    statistics: Arc<stats::Statistics>,
    slow_log: Arc<slowlog::SlowLog>,
    metrics: Arc<metrics::Metrics>,
}

impl Observer {
    /// Builds the stores from `config` and starts the collector task.
    pub fn start(
        config: &Config,
        topology: Arc<Topology>,
        metrics: Arc<metrics::Metrics>,
    ) -> Arc<Observer> {
        let (events, receiver) = mpsc::channel(EVENT_QUEUE);
        let statistics = Arc::new(stats::Statistics::new(config.observe.max_fingerprints));
        let slow_log = Arc::new(slowlog::SlowLog::new(&config.observe));
        let observer = Arc::new(Observer {
            enabled: config.observe.statistics,
            events,
            dropped: AtomicU64::new(0),
            statistics: Arc::clone(&statistics),
            slow_log: Arc::clone(&slow_log),
            metrics: Arc::clone(&metrics),
        });
        tokio::spawn(collector::run(
            receiver,
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
            dropped: AtomicU64::new(0),
            statistics: Arc::new(stats::Statistics::new(settings.max_fingerprints)),
            slow_log: Arc::new(slowlog::SlowLog::new(&settings)),
            metrics: Arc::new(metrics::Metrics::default()),
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
