//! The collector task: turns statement events into statistics, metrics and
//! slow-log entries, off the client's path.
//!
//! It only does in-memory work per event: a shape-cache lookup (texts are
//! tokenized once, see [`ShapeCache`]), a statistics update and the
//! metrics. Slow statements are handed to the plan-capture task through a
//! bounded queue it never waits on ([`CaptureQueue`]); EXPLAIN and file
//! writes happen there and on the slow log's writer thread.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::capture::{CaptureQueue, SlowStatement};
use super::event::StatementEvent;
use super::explain::Explainer;
use super::shapes::ShapeCache;
use super::{metrics::Metrics, slowlog::SlowLog, stats::Statistics};
use crate::backend::topology::Topology;
use crate::config::Config;

/// Distinct statement texts whose shapes are cached.
const SHAPE_CACHE_ENTRIES: usize = 4_096;

/// Longest wait for the slow log file to catch up on a flush.
const FILE_FLUSH_LIMIT: Duration = Duration::from_secs(5);

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

/// Consumes events until every sender is gone. A flush request is
/// answered once every event queued before it is counted and, when slow,
/// logged with its plan and written to the slow log file.
pub async fn run(
    mut events: mpsc::Receiver<StatementEvent>,
    mut flush_requests: mpsc::Receiver<oneshot::Sender<()>>,
    parts: Parts,
) {
    let shard_names: Arc<[String]> = parts
        .topology
        .shards
        .iter()
        .map(|shard| shard.name.clone())
        .collect();
    let captures = CaptureQueue::start(
        Explainer::new(Arc::clone(&parts.config), Arc::clone(&parts.topology)),
        Arc::clone(&parts.slow_log),
        shard_names,
    );
    let mut collector = Collector {
        threshold: parts.config.observe.slow_query_threshold(),
        shapes: ShapeCache::new(SHAPE_CACHE_ENTRIES),
        captures,
        parts,
    };
    loop {
        tokio::select! {
            biased;
            event = events.recv() => match event {
                Some(event) => collector.on_statement(event),
                None => return,
            },
            Some(done) = flush_requests.recv() => {
                // Everything recorded before the request is queued by now.
                while let Ok(event) = events.try_recv() {
                    collector.on_statement(event);
                }
                collector.captures.flush().await;
                collector.parts.slow_log.flush(FILE_FLUSH_LIMIT).await;
                let _ = done.send(());
            }
        }
    }
}

/// The collector task's state.
struct Collector {
    parts: Parts,
    threshold: Duration,
    shapes: ShapeCache,
    captures: CaptureQueue,
}

impl Collector {
    fn on_statement(&mut self, event: StatementEvent) {
        self.parts.metrics.on_statement(&event);
        let shape = self.shapes.shape_of(&event.text);
        self.parts
            .statistics
            .record(&event, &shape, &String::from_utf8_lossy(&event.text));
        if event.duration > self.threshold {
            self.captures.submit(SlowStatement { event, shape });
        }
    }
}
