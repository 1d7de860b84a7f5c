//! Prometheus metrics of the proxy.
//!
//! Each proxy owns its recorder: nothing is installed as the process-wide
//! `metrics` recorder, because several proxies may run in one process (the
//! tests do) and each must report only its own traffic. Handles are
//! registered straight on the proxy's [`PrometheusRecorder`] through the
//! [`metrics::Recorder`] trait.
//!
//! Two kinds of metrics: per-statement ones ([`statements`]), counted by
//! the collector from every [`StatementEvent`]; and state-derived ones
//! ([`state`]), read from the shared state when `/metrics` is scraped
//! ([`http`]).

mod families;
mod http;
mod state;
mod statements;
mod totals;

pub use http::bind;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::event::StatementEvent;
use crate::proxy::Shared;
use families::{Family, QUERY_DURATION};

/// Upper bounds of the latency histogram's buckets, in seconds: from half
/// a millisecond (a cached point read) to ten seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often recorded latencies are folded into the histogram buckets
/// when nobody scrapes (else the recorder would keep every sample).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Metadata of every handle: the recorder ignores it, the trait wants it.
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The proxy's metrics: its own recorder, the handle that renders it, and
/// the per-statement handles (registered once per database and SQLSTATE,
/// then reused).
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    statements: statements::StatementMetrics,
    /// Serializes scrapes: each refresh compares with the previous one.
    state: Mutex<state::StateMetrics>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh recorder with every family described and the latency
    /// histogram bucketed.
    pub fn new() -> Metrics {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(QUERY_DURATION.name.to_string()),
                &LATENCY_BUCKETS,
            )
            .expect("the latency buckets are a non-empty constant")
            .build_recorder();
        families::describe_all(&recorder);
        Metrics {
            handle: recorder.handle(),
            recorder,
            statements: statements::StatementMetrics::default(),
            state: Mutex::new(state::StateMetrics::default()),
        }
    }

    /// Counts a completed statement (called by the collector).
    pub fn on_statement(&self, event: &StatementEvent) {
        self.statements.record(&self.registrar(), event);
    }

    /// Refreshes the state-derived metrics from `shared` and renders all
    /// of them in the Prometheus text format (what `/metrics` answers).
    pub fn render(&self, shared: &Shared) -> String {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.refresh(&self.registrar(), shared);
        self.handle.render()
    }

    fn registrar(&self) -> Registrar<'_> {
        Registrar {
            recorder: &self.recorder,
        }
    }
}

/// The address a listener from [`bind`] got (port 0 resolved).
pub fn bound_addr(listener: &Option<TcpListener>) -> Option<SocketAddr> {
    listener.as_ref().and_then(|l| l.local_addr().ok())
}

/// Starts the metrics tasks of a proxy: the `/metrics` endpoint on
/// `listener` (if any) and the recorder's upkeep. Both end when `stop`
/// changes (the proxy stops).
pub fn spawn(shared: &Arc<Shared>, listener: Option<TcpListener>, stop: watch::Receiver<bool>) {
    if let Some(listener) = listener {
        tokio::spawn(http::serve(listener, Arc::clone(shared), stop.clone()));
    }
    let metrics = Arc::clone(shared.observer.metrics());
    tokio::spawn(upkeep(metrics, stop));
}

async fn upkeep(metrics: Arc<Metrics>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => metrics.handle.run_upkeep(),
        }
    }
}

/// Registers handles of the proxy's families on its recorder.
struct Registrar<'a> {
    recorder: &'a PrometheusRecorder,
}

impl Registrar<'_> {
    fn key(&self, family: &Family, labels: Vec<Label>) -> Key {
        Key::from_parts(family.name, labels)
    }

    fn counter(&self, family: &Family, labels: Vec<Label>) -> Counter {
        self.counter_for(&self.key(family, labels))
    }

    fn counter_for(&self, key: &Key) -> Counter {
        self.recorder.register_counter(key, &METADATA)
    }

    fn gauge_for(&self, key: &Key) -> Gauge {
        self.recorder.register_gauge(key, &METADATA)
    }

    fn histogram(&self, family: &Family, labels: Vec<Label>) -> Histogram {
        self.recorder
            .register_histogram(&self.key(family, labels), &METADATA)
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use bytes::Bytes;

    use super::*;
    use crate::observe::event::{Route, SessionInfo, ShardSet};

    fn event(database: &str, shards: &[usize], error: Option<&[u8; 5]>) -> StatementEvent {
        let mut set = ShardSet::default();
        for &shard in shards {
            set.insert(shard);
        }
        StatementEvent {
            session: Arc::new(SessionInfo {
                client_id: 1,
                user: "u".into(),
                database: database.into(),
                address: "127.0.0.1:1".into(),
            }),
            text: Bytes::from_static(b"SELECT 1"),
            bind: None,
            started: SystemTime::now(),
            duration: Duration::from_millis(3),
            rows: 1,
            error: error.copied(),
            route: Route {
                shards: set,
                scatter: shards.len() > 1,
                replica: false,
            },
        }
    }

    #[test]
    fn statements_are_counted_by_route_latency_and_sqlstate() {
        let metrics = Metrics::new();
        metrics.on_statement(&event("app", &[0], None));
        metrics.on_statement(&event("app", &[0], Some(b"42P01")));
        metrics.on_statement(&event("app", &[0, 1], None));
        metrics.on_statement(&event("other", &[], None));
        let text = metrics.handle.render();
        for line in [
            r#"shardwire_queries_total{database="app",route="single_shard",server_role="primary"} 2"#,
            r#"shardwire_queries_total{database="app",route="scatter",server_role="primary"} 1"#,
            r#"shardwire_queries_total{database="other",route="local",server_role="none"} 1"#,
            r#"shardwire_query_errors_total{sqlstate="42P01"} 1"#,
            r#"shardwire_query_duration_seconds_bucket{database="app",le="0.005"} 3"#,
            r#"shardwire_query_duration_seconds_bucket{database="app",le="0.0025"} 0"#,
            r#"shardwire_query_duration_seconds_count{database="app"} 3"#,
            "# TYPE shardwire_query_duration_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line} in:\n{text}");
        }
    }

    #[test]
    fn proxies_in_one_process_keep_separate_metrics() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.on_statement(&event("app", &[0], None));
        assert!(a.handle.render().contains("shardwire_queries_total"));
        assert!(!b.handle.render().contains("shardwire_queries_total"));
    }
}
