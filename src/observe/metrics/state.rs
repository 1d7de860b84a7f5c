//! Metrics read from the proxy's shared state at scrape time: connections,
//! pools, the parse caches, replica lag, traffic and dropped events.
//!
//! Their sources already keep the numbers (atomics and small snapshots),
//! so reading them when Prometheus asks costs nothing on the client path
//! and is never stale. Totals kept by the sources become counters (see
//! [`super::totals`] for those of pools and parse caches, which RELOAD may
//! replace); the rest are gauges.

use std::any::Any;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{Key, Label};

use super::Registrar;
use super::families::{
    CLIENT_BYTES_RECEIVED, CLIENT_BYTES_SENT, CLIENT_CONNECTIONS, EVENTS_DROPPED, Family,
    PARSE_CACHE_ENTRIES, PARSE_CACHE_HITS, PARSE_CACHE_MISSES, POOL_CHECKOUT_TIMEOUTS,
    POOL_CLIENTS_WAITING, POOL_WAIT_MICROSECONDS, POOL_WAITS, REPLICA_IN_ROTATION,
    REPLICA_LAG_BYTES, REPLICA_LAG_SECONDS, SERVER_CONNECTIONS, SERVER_CONNECTIONS_CLOSED,
    SERVER_CONNECTIONS_OPENED,
};
use super::totals::SourceTotals;
use crate::proxy::Shared;

/// Collects one refresh's values.
struct Frame<'a> {
    registrar: &'a Registrar<'a>,
    /// Gauge values; a series named twice (a pool and its retired
    /// predecessor) adds up.
    gauges: HashMap<Key, f64>,
    sources: &'a mut SourceTotals,
}

impl Frame<'_> {
    fn gauge(&mut self, family: &Family, labels: Vec<Label>, value: f64) {
        let key = self.registrar.key(family, labels);
        *self.gauges.entry(key).or_default() += value;
    }

    /// A total the proxy keeps for its whole life.
    fn total(&self, family: &Family, labels: Vec<Label>, value: u64) {
        self.registrar.counter(family, labels).absolute(value);
    }

    /// A total kept by `source`, which RELOAD may replace.
    fn total_of<T: Any + Send + Sync>(
        &mut self,
        family: &Family,
        labels: Vec<Label>,
        source: &Arc<T>,
        total: u64,
    ) {
        let key = self.registrar.key(family, labels);
        let gained = self.sources.gained(&key, source, total);
        self.registrar.counter_for(&key).increment(gained);
    }
}

/// Refreshes the state-derived metrics; remembers the gauges of the last
/// refresh so that a series whose source went away (the last client of a
/// user left, a pool was dropped) reads 0 instead of its last value.
#[derive(Default)]
pub struct StateMetrics {
    last_gauges: HashSet<Key>,
    sources: SourceTotals,
}

impl StateMetrics {
    /// Sets every state-derived metric from `shared`.
    pub(super) fn refresh(&mut self, registrar: &Registrar, shared: &Shared) {
        self.sources.begin();
        let mut frame = Frame {
            registrar,
            gauges: HashMap::new(),
            sources: &mut self.sources,
        };
        clients(&mut frame, shared);
        pools(&mut frame, shared);
        parse_caches(&mut frame, shared);
        replicas(&mut frame, shared);
        let (received, sent) = shared.registry.total_bytes();
        frame.total(&CLIENT_BYTES_RECEIVED, vec![], received);
        frame.total(&CLIENT_BYTES_SENT, vec![], sent);
        frame.total(&EVENTS_DROPPED, vec![], shared.observer.dropped());
        let gauges = frame.gauges;
        for (key, value) in &gauges {
            registrar.gauge_for(key).set(*value);
        }
        for gone in self.last_gauges.iter().filter(|k| !gauges.contains_key(*k)) {
            registrar.gauge_for(gone).set(0.0);
        }
        self.last_gauges = gauges.into_keys().collect();
        self.sources.finish();
    }
}

fn clients(frame: &mut Frame, shared: &Shared) {
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for client in shared.registry.snapshot() {
        let key = (client.info.user.clone(), client.info.database.clone());
        *counts.entry(key).or_default() += 1;
    }
    for ((user, database), count) in counts {
        let labels = vec![Label::new("user", user), Label::new("database", database)];
        frame.gauge(&CLIENT_CONNECTIONS, labels, count as f64);
    }
}

fn pools(frame: &mut Frame, shared: &Shared) {
    let runtime = shared.runtime();
    for (key, pool) in shared.pools.snapshot_with_retired() {
        let shard = runtime
            .config
            .shards
            .get(key.shard)
            .map_or_else(|| key.shard.to_string(), |s| s.name.clone());
        let labels = || {
            vec![
                Label::new("user", key.user.clone()),
                Label::new("database", key.database.clone()),
                Label::new("shard", shard.clone()),
                Label::new("server", key.address.clone()),
            ]
        };
        let with_state = |state: &'static str| {
            let mut labels = labels();
            labels.push(Label::new("state", state));
            labels
        };
        let idle = pool.idle_count();
        let active = pool.open_count().saturating_sub(idle);
        frame.gauge(&SERVER_CONNECTIONS, with_state("active"), active as f64);
        frame.gauge(&SERVER_CONNECTIONS, with_state("idle"), idle as f64);
        let counters = &pool.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let waiting = counters.waiting.load(Ordering::Relaxed);
        frame.gauge(&POOL_CLIENTS_WAITING, labels(), waiting as f64);
        for (family, counter) in [
            (&POOL_WAITS, &counters.waits),
            (&POOL_WAIT_MICROSECONDS, &counters.wait_micros),
            (&POOL_CHECKOUT_TIMEOUTS, &counters.checkout_timeouts),
            (&SERVER_CONNECTIONS_OPENED, &counters.opened),
            (&SERVER_CONNECTIONS_CLOSED, &counters.closed),
        ] {
            frame.total_of(family, labels(), &pool, load(counter));
        }
    }
}

fn parse_caches(frame: &mut Frame, shared: &Shared) {
    for (database, cache) in &shared.runtime().routers {
        let labels = || vec![Label::new("database", database.clone())];
        frame.total_of(&PARSE_CACHE_HITS, labels(), cache, cache.hits());
        frame.total_of(&PARSE_CACHE_MISSES, labels(), cache, cache.misses());
        frame.gauge(&PARSE_CACHE_ENTRIES, labels(), cache.len() as f64);
    }
}

/// Lag and rotation of every server of the shards that have replicas (a
/// lone primary has no lag to report). Primaries are included, at lag 0,
/// so a failover moves no series.
fn replicas(frame: &mut Frame, shared: &Shared) {
    for shard in &shared.topology.shards {
        if shard.servers.len() < 2 {
            continue;
        }
        for index in 0..shard.servers.len() {
            let report = shard.report(index);
            let labels = || {
                vec![
                    Label::new("shard", shard.name.clone()),
                    Label::new("server", report.address.clone()),
                ]
            };
            frame.gauge(&REPLICA_LAG_BYTES, labels(), report.lag_bytes as f64);
            frame.gauge(
                &REPLICA_LAG_SECONDS,
                labels(),
                report.lag_ms as f64 / 1000.0,
            );
            frame.gauge(
                &REPLICA_IN_ROTATION,
                labels(),
                f64::from(u8::from(report.in_rotation)),
            );
        }
    }
}
