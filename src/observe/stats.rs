//! Per-fingerprint statement statistics, like `pg_stat_statements` but
//! across every shard the proxy routes to.
//!
//! Entries are keyed by (database, fingerprint): one shape in two logical
//! databases touches different tables, and the index advisor reading the
//! snapshot needs to know which. Only the collector task writes; readers
//! (the admin console, the snapshot writer) take the lock briefly, never
//! the client path.
//!
//! Memory is bounded twice: at most `max_fingerprints` entries (beyond it
//! the least-called 5 % are evicted at once, as `pg_stat_statements` does,
//! so eviction is not paid on every new shape), and per entry a latency
//! histogram of bounded size (see [`LatencyHistogram`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::event::{Route, StatementEvent};
use super::fingerprint::Shape;
use super::timestamp::rfc3339;

/// Longest sample text kept per entry; longer texts are cut at a
/// character boundary.
const SAMPLE_MAX_BYTES: usize = 1024;

/// Entries whose views are built under one lock: readers hold the lock for
/// a bounded time however many entries there are.
const VIEW_CHUNK: usize = 128;

/// Version of the snapshot file format.
pub const SNAPSHOT_VERSION: u32 = 1;

/// Latency distribution of one shape, in microseconds.
///
/// HDR histogram with 2 significant decimal digits (a percentile is within
/// 1 % of the true value), values from 1 µs, growing only as far as the
/// slowest call seen and clamped at 1 hour (longer calls count as 1 hour in
/// percentiles; min, max and totals stay exact). Counts are `u32` and
/// saturate. Size: 1 KiB for a shape never slower than 256 µs, plus 512 B
/// per doubling of its slowest call: about 4 KiB under 10 ms, 7 KiB under
/// 1 s, 13 KiB at most, so 5 000 entries take under 65 MiB in the worst
/// case and about a third of that for OLTP traffic.
#[derive(Debug, Clone)]
struct LatencyHistogram(Histogram<u32>);

impl LatencyHistogram {
    /// Slowest value told apart: one hour in microseconds.
    const MAX_MICROS: u64 = 3_600_000_000;
    const SIGNIFICANT_DIGITS: u8 = 2;

    fn new() -> LatencyHistogram {
        // 2 µs is the smallest range hdrhistogram accepts; auto-resize grows it.
        let mut histogram = Histogram::new_with_max(2, Self::SIGNIFICANT_DIGITS)
            .expect("constant histogram bounds are valid");
        histogram.auto(true);
        LatencyHistogram(histogram)
    }

    fn record(&mut self, micros: u64) {
        let value = micros.min(Self::MAX_MICROS);
        if self.0.record(value).is_err() {
            // Resizing failed (it cannot below MAX_MICROS): count it at the top.
            self.0.saturating_record(value);
        }
    }

    /// p50, p95 and p99 in microseconds, in one pass over the counts.
    fn percentiles(&self) -> [u64; 3] {
        let mut out = [0; 3];
        for (slot, value) in out
            .iter_mut()
            .zip(self.0.value_at_quantiles([0.5, 0.95, 0.99]))
        {
            *slot = value;
        }
        out
    }
}

/// How often a shape took each route kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteCounts {
    /// Not a scatter, on exactly one shard.
    pub single_shard: u64,
    /// Fanned out to several shards with merged answers.
    pub scatter: u64,
    /// Ran on a server, not a replica.
    pub primary: u64,
    /// Ran on a replica.
    pub replica: u64,
}

impl RouteCounts {
    fn count(&mut self, route: &Route) {
        if route.shards.is_empty() {
            return;
        }
        if route.scatter {
            self.scatter += 1;
        } else if route.shards.len() == 1 {
            self.single_shard += 1;
        }
        if route.replica {
            self.replica += 1;
        } else {
            self.primary += 1;
        }
    }
}

/// Calls of a shape on one shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardCalls {
    /// The shard's name.
    pub shard: String,
    /// Statements of the shape that ran there.
    pub calls: u64,
}

/// What is kept per (database, fingerprint).
#[derive(Debug, Clone)]
struct Entry {
    normalized: String,
    sample: String,
    calls: u64,
    errors: u64,
    rows: u64,
    total_micros: u64,
    min_micros: u64,
    max_micros: u64,
    histogram: LatencyHistogram,
    /// Calls per shard index (grown to the highest index seen).
    shard_calls: Vec<u64>,
    routes: RouteCounts,
    first_seen: SystemTime,
    last_seen: SystemTime,
}

impl Entry {
    fn new(shape: &Shape, started: SystemTime) -> Entry {
        Entry {
            normalized: shape.normalized.clone(),
            sample: String::new(),
            calls: 0,
            errors: 0,
            rows: 0,
            total_micros: 0,
            min_micros: u64::MAX,
            max_micros: 0,
            histogram: LatencyHistogram::new(),
            shard_calls: Vec::new(),
            routes: RouteCounts::default(),
            first_seen: started,
            last_seen: started,
        }
    }

    fn record(&mut self, event: &StatementEvent, text: &str) {
        let micros = micros(event.duration);
        self.calls += 1;
        self.errors += u64::from(event.error.is_some());
        self.rows = self.rows.saturating_add(event.rows);
        self.total_micros = self.total_micros.saturating_add(micros);
        self.min_micros = self.min_micros.min(micros);
        self.max_micros = self.max_micros.max(micros);
        self.histogram.record(micros);
        let mut shards = event.route.shards.0;
        while shards != 0 {
            let index = shards.trailing_zeros() as usize;
            shards &= shards - 1;
            if self.shard_calls.len() <= index {
                self.shard_calls.resize(index + 1, 0);
            }
            self.shard_calls[index] += 1;
        }
        self.routes.count(&event.route);
        self.last_seen = self.last_seen.max(event.started);
        let sample = truncate(text, SAMPLE_MAX_BYTES);
        if self.sample != sample {
            // Reuses the buffer: no allocation once it is large enough.
            self.sample.clear();
            self.sample.push_str(sample);
        }
    }
}

/// Totals of one logical database.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    statements: u64,
    errors: u64,
    rows: u64,
    total_micros: u64,
}

impl Totals {
    fn add(&mut self, event: &StatementEvent) {
        self.statements += 1;
        self.errors += u64::from(event.error.is_some());
        self.rows = self.rows.saturating_add(event.rows);
        self.total_micros = self.total_micros.saturating_add(micros(event.duration));
    }
}

#[derive(Debug, Default)]
struct DatabaseStore {
    totals: Totals,
    entries: HashMap<u64, Entry>,
}

#[derive(Debug, Default)]
struct Store {
    databases: HashMap<String, DatabaseStore>,
    /// Entries over all databases.
    len: usize,
    evicted: u64,
}

/// One shape's statistics as shown by `SHOW QUERIES` and written to the
/// snapshot file. Times are milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryView {
    /// The fingerprint, 16 lowercase hex digits (a JSON number would lose
    /// bits in most JSON readers).
    pub fingerprint: String,
    /// Logical database.
    pub database: String,
    /// Normalized text.
    pub query: String,
    /// A recent real text of the shape (at most 1 KiB).
    pub sample: String,
    /// Statements run.
    pub calls: u64,
    /// Of which ended with an error.
    pub errors: u64,
    /// Rows returned or affected.
    pub rows: u64,
    /// Sum of durations.
    pub total_ms: f64,
    /// `total_ms / calls`.
    pub mean_ms: f64,
    /// Fastest call.
    pub min_ms: f64,
    /// Slowest call.
    pub max_ms: f64,
    /// Median (histogram, within 1 %).
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Calls per shard, in shard order, shards never used left out.
    pub shards: Vec<ShardCalls>,
    /// Calls per route kind.
    pub routes: RouteCounts,
    /// When the shape was first seen since it was (re)admitted.
    pub first_seen: String,
    /// When it last started.
    pub last_seen: String,
}

/// Totals of one logical database, for `SHOW STATS`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseView {
    /// Logical database.
    pub database: String,
    /// Statements run.
    pub statements: u64,
    /// Of which failed.
    pub errors: u64,
    /// Rows returned or affected.
    pub rows: u64,
    /// Sum of durations in milliseconds.
    pub total_ms: f64,
    /// `total_ms / statements`.
    pub mean_ms: f64,
}

/// The statistics file the index advisor reads offline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// [`SNAPSHOT_VERSION`].
    pub version: u32,
    /// When it was taken (RFC 3339, UTC).
    pub taken_at: String,
    /// Most entries kept (`observe.max_fingerprints`).
    pub max_fingerprints: usize,
    /// Entries evicted so far to stay within it.
    pub evicted: u64,
    /// Every entry, by total time descending.
    pub entries: Vec<EntryView>,
    /// Per-database totals, by name.
    pub databases: Vec<DatabaseView>,
}

/// Statistics of every statement shape seen, bounded in memory.
pub struct Statistics {
    max_fingerprints: usize,
    /// Names of the shards, by index (for views).
    shard_names: Vec<String>,
    store: Mutex<Store>,
}

impl Statistics {
    /// An empty store keeping at most `max_fingerprints` shapes; views name
    /// shard `i` `shard_names[i]`.
    pub fn new(max_fingerprints: usize, shard_names: Vec<String>) -> Statistics {
        Statistics {
            max_fingerprints,
            shard_names,
            store: Mutex::new(Store::default()),
        }
    }

    /// The most shapes kept.
    pub fn capacity(&self) -> usize {
        self.max_fingerprints
    }

    /// Shapes kept now.
    pub fn len(&self) -> usize {
        self.lock().len
    }

    /// Whether no shape was recorded (or all were evicted).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries evicted so far.
    pub fn evicted(&self) -> u64 {
        self.lock().evicted
    }

    /// Counts one completed statement of shape `shape`, whose text is
    /// `text` (called by the collector only).
    pub fn record(&self, event: &StatementEvent, shape: &Shape, text: &str) {
        let mut store = self.lock();
        let database = event.session.database.as_str();
        let known = store
            .databases
            .get(database)
            .is_some_and(|db| db.entries.contains_key(&shape.fingerprint));
        // Capacity 0 keeps no shapes, only the database totals.
        let admit = known || self.max_fingerprints > 0;
        if !known && admit {
            if store.len >= self.max_fingerprints {
                evict(&mut store, eviction_batch(self.max_fingerprints));
            }
            store.len += 1;
        }
        if !store.databases.contains_key(database) {
            store
                .databases
                .insert(database.to_string(), DatabaseStore::default());
        }
        let Some(db) = store.databases.get_mut(database) else {
            return;
        };
        db.totals.add(event);
        if admit {
            db.entries
                .entry(shape.fingerprint)
                .or_insert_with(|| Entry::new(shape, event.started))
                .record(event, text);
        }
    }

    /// The `limit` shapes with the most total time, most first.
    pub fn top_by_total_time(&self, limit: usize) -> Vec<EntryView> {
        let mut keys = self.keys_by_total_time();
        keys.truncate(limit);
        self.views(&keys)
    }

    /// Totals per database, by name.
    pub fn databases(&self) -> Vec<DatabaseView> {
        let store = self.lock();
        let mut views: Vec<DatabaseView> = store
            .databases
            .iter()
            .map(|(name, db)| {
                let t = db.totals;
                DatabaseView {
                    database: name.clone(),
                    statements: t.statements,
                    errors: t.errors,
                    rows: t.rows,
                    total_ms: millis(t.total_micros),
                    mean_ms: mean_millis(t.total_micros, t.statements),
                }
            })
            .collect();
        views.sort_by(|a, b| a.database.cmp(&b.database));
        views
    }

    /// Everything, for the snapshot file. Built chunk by chunk, so the
    /// collector is never held up for long; an entry evicted meanwhile is
    /// left out.
    pub fn snapshot(&self) -> Snapshot {
        let keys = self.keys_by_total_time();
        Snapshot {
            version: SNAPSHOT_VERSION,
            taken_at: rfc3339(SystemTime::now()),
            max_fingerprints: self.max_fingerprints,
            evicted: self.evicted(),
            entries: self.views(&keys),
            databases: self.databases(),
        }
    }

    /// Every (database, fingerprint), by total time descending.
    fn keys_by_total_time(&self) -> Vec<(String, u64)> {
        let store = self.lock();
        let mut keyed: Vec<(u64, &str, u64)> = store
            .databases
            .iter()
            .flat_map(|(name, db)| {
                db.entries
                    .iter()
                    .map(move |(fp, e)| (e.total_micros, name.as_str(), *fp))
            })
            .collect();
        keyed.sort_unstable_by(|a, b| b.cmp(a));
        keyed
            .into_iter()
            .map(|(_, name, fp)| (name.to_string(), fp))
            .collect()
    }

    fn views(&self, keys: &[(String, u64)]) -> Vec<EntryView> {
        let mut views = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(VIEW_CHUNK) {
            let store = self.lock();
            for (database, fingerprint) in chunk {
                let entry = store
                    .databases
                    .get(database)
                    .and_then(|db| db.entries.get(fingerprint));
                if let Some(entry) = entry {
                    views.push(self.view(database, *fingerprint, entry));
                }
            }
        }
        views
    }

    fn view(&self, database: &str, fingerprint: u64, e: &Entry) -> EntryView {
        let [p50, p95, p99] = e.histogram.percentiles();
        let shards = e
            .shard_calls
            .iter()
            .enumerate()
            .filter(|(_, calls)| **calls > 0)
            .map(|(index, calls)| ShardCalls {
                shard: self
                    .shard_names
                    .get(index)
                    .cloned()
                    .unwrap_or_else(|| format!("#{index}")),
                calls: *calls,
            })
            .collect();
        EntryView {
            fingerprint: format!("{fingerprint:016x}"),
            database: database.to_string(),
            query: e.normalized.clone(),
            sample: e.sample.clone(),
            calls: e.calls,
            errors: e.errors,
            rows: e.rows,
            total_ms: millis(e.total_micros),
            mean_ms: mean_millis(e.total_micros, e.calls),
            min_ms: millis(if e.calls == 0 { 0 } else { e.min_micros }),
            max_ms: millis(e.max_micros),
            p50_ms: millis(p50),
            p95_ms: millis(p95),
            p99_ms: millis(p99),
            shards,
            routes: e.routes,
            first_seen: rfc3339(e.first_seen),
            last_seen: rfc3339(e.last_seen),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Entries evicted at once when full: 5 % of the capacity, at least one.
fn eviction_batch(max_fingerprints: usize) -> usize {
    (max_fingerprints / 20).max(1)
}

/// Removes the `count` entries with the fewest calls (the least recently
/// seen first among equals).
fn evict(store: &mut Store, count: usize) {
    let mut candidates: Vec<(u64, SystemTime, String, u64)> = store
        .databases
        .iter()
        .flat_map(|(name, db)| {
            db.entries
                .iter()
                .map(move |(fp, e)| (e.calls, e.last_seen, name.clone(), *fp))
        })
        .collect();
    let count = count.min(candidates.len());
    if count == 0 {
        return;
    }
    if count < candidates.len() {
        candidates.select_nth_unstable_by(count - 1, |a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    }
    for (_, _, database, fingerprint) in candidates.into_iter().take(count) {
        if let Some(db) = store.databases.get_mut(&database)
            && db.entries.remove(&fingerprint).is_some()
        {
            store.len -= 1;
            store.evicted += 1;
        }
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

fn millis(micros: u64) -> f64 {
    micros as f64 / 1_000.0
}

fn mean_millis(total_micros: u64, count: u64) -> f64 {
    if count == 0 {
        0.0
    } else {
        millis(total_micros) / count as f64
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a
/// character boundary.
pub(crate) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::fingerprint::shape;
    use crate::observe::testing::{event, route as on};

    fn record(stats: &Statistics, database: &str, sql: &str, millis: u64, route: Route) {
        stats.record(&event(database, sql, millis, route), &shape(sql), sql);
    }

    fn names() -> Vec<String> {
        vec!["east".into(), "west".into(), "north".into()]
    }

    #[test]
    fn calls_of_one_shape_add_up_with_exact_min_max_and_total() {
        let stats = Statistics::new(100, names());
        record(
            &stats,
            "db",
            "SELECT * FROM t WHERE id = 1",
            10,
            on(&[0], false, false),
        );
        record(
            &stats,
            "db",
            "select * from t where id = 22",
            30,
            on(&[0], false, false),
        );
        let mut failed = event(
            "db",
            "SELECT * FROM t WHERE id = 3",
            20,
            on(&[0], false, false),
        );
        failed.error = Some(*b"42P01");
        stats.record(
            &failed,
            &shape("SELECT * FROM t WHERE id = 3"),
            "SELECT * FROM t WHERE id = 3",
        );
        let top = stats.top_by_total_time(10);
        assert_eq!(top.len(), 1);
        let e = &top[0];
        assert_eq!((e.calls, e.errors, e.rows), (3, 1, 3));
        assert_eq!(
            (e.total_ms, e.min_ms, e.max_ms, e.mean_ms),
            (60.0, 10.0, 30.0, 20.0)
        );
        assert_eq!(e.query, "select * from t where id = $1");
        assert_eq!(e.sample, "SELECT * FROM t WHERE id = 3");
        assert_eq!(
            e.fingerprint,
            format!("{:016x}", shape("SELECT * FROM t WHERE id = 5").fingerprint)
        );
        assert_eq!(e.first_seen, "2023-11-14T22:13:20.000Z");
    }

    #[test]
    fn percentiles_come_from_the_histogram_within_one_percent() {
        let stats = Statistics::new(100, names());
        // 1..=100 ms: p50 = 50 ms, p95 = 95 ms, p99 = 99 ms.
        for ms in 1..=100 {
            record(&stats, "db", "SELECT pg_sleep(1)", ms, Route::default());
        }
        let e = &stats.top_by_total_time(1)[0];
        for (got, want) in [(e.p50_ms, 50.0), (e.p95_ms, 95.0), (e.p99_ms, 99.0)] {
            assert!((got - want).abs() <= want * 0.01, "{got} vs {want}");
        }
        assert_eq!(e.max_ms, 100.0);
    }

    #[test]
    fn calls_slower_than_an_hour_clamp_in_percentiles_only() {
        let stats = Statistics::new(100, names());
        record(&stats, "db", "SELECT 1", 2 * 3_600_000, Route::default());
        let e = &stats.top_by_total_time(1)[0];
        assert_eq!(e.max_ms, 7_200_000.0);
        assert!((e.p99_ms - 3_600_000.0).abs() <= 36_000.0, "{}", e.p99_ms);
    }

    #[test]
    fn route_kinds_and_shards_are_counted_per_call() {
        let stats = Statistics::new(100, names());
        let sql = "SELECT * FROM t";
        record(&stats, "db", sql, 1, on(&[1], false, false));
        record(&stats, "db", sql, 1, on(&[1], false, true));
        record(&stats, "db", sql, 1, on(&[0, 1, 2], true, false));
        // Answered by the proxy: no shard, no route kind.
        record(&stats, "db", sql, 1, Route::default());
        let e = &stats.top_by_total_time(1)[0];
        assert_eq!(
            e.routes,
            RouteCounts {
                single_shard: 2,
                scatter: 1,
                primary: 2,
                replica: 1
            }
        );
        let shards: Vec<(&str, u64)> = e
            .shards
            .iter()
            .map(|s| (s.shard.as_str(), s.calls))
            .collect();
        assert_eq!(shards, [("east", 1), ("west", 3), ("north", 1)]);
        assert_eq!(e.calls, 4);
    }

    #[test]
    fn shapes_are_kept_per_database_with_database_totals() {
        let stats = Statistics::new(100, names());
        record(&stats, "a", "SELECT 1", 4, Route::default());
        record(&stats, "b", "SELECT 2", 6, Route::default());
        record(&stats, "b", "SELECT x FROM t", 10, Route::default());
        assert_eq!(stats.len(), 3);
        let dbs = stats.databases();
        assert_eq!(dbs.len(), 2);
        assert_eq!((dbs[1].database.as_str(), dbs[1].statements), ("b", 2));
        assert_eq!((dbs[1].total_ms, dbs[1].mean_ms), (16.0, 8.0));
        let top = stats.top_by_total_time(10);
        let order: Vec<(&str, f64)> = top
            .iter()
            .map(|e| (e.database.as_str(), e.total_ms))
            .collect();
        assert_eq!(order, [("b", 10.0), ("b", 6.0), ("a", 4.0)]);
    }

    #[test]
    fn a_full_store_evicts_the_least_called_five_percent_at_once() {
        let stats = Statistics::new(40, names());
        // 40 shapes: shape i is called i + 1 times.
        for i in 0..40 {
            let sql = format!("SELECT c{i} FROM t");
            for _ in 0..=i {
                record(&stats, "db", &sql, 1, Route::default());
            }
        }
        assert_eq!(stats.len(), 40);
        record(&stats, "db", "SELECT newcomer FROM t", 1, Route::default());
        // 5 % of 40 = 2 evicted (the two least called), then the newcomer.
        assert_eq!(stats.len(), 39);
        assert_eq!(stats.evicted(), 2);
        let kept: Vec<String> = stats
            .top_by_total_time(100)
            .into_iter()
            .map(|e| e.query)
            .collect();
        assert!(!kept.contains(&"select c0 from t".to_string()));
        assert!(!kept.contains(&"select c1 from t".to_string()));
        assert!(kept.contains(&"select c2 from t".to_string()));
        assert!(kept.contains(&"select newcomer from t".to_string()));
        // Database totals still count every statement.
        assert_eq!(stats.databases()[0].statements, (1..=40).sum::<u64>() + 1);
    }

    #[test]
    fn a_store_of_capacity_zero_keeps_only_database_totals() {
        let stats = Statistics::new(0, names());
        record(&stats, "db", "SELECT 1", 1, Route::default());
        assert!(stats.is_empty());
        assert_eq!(stats.databases()[0].statements, 1);
    }

    #[test]
    fn samples_are_cut_at_a_character_boundary() {
        let long = format!("SELECT '{}'", "é".repeat(1000));
        let stats = Statistics::new(10, names());
        record(&stats, "db", &long, 1, Route::default());
        let sample = &stats.top_by_total_time(1)[0].sample;
        assert!(sample.len() <= SAMPLE_MAX_BYTES && sample.len() >= SAMPLE_MAX_BYTES - 1);
        assert!(long.starts_with(sample.as_str()));
    }

    #[test]
    fn snapshots_round_trip_through_json() {
        let stats = Statistics::new(10, names());
        record(
            &stats,
            "db",
            "SELECT * FROM t WHERE id = 7",
            3,
            on(&[2], false, false),
        );
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.version, 1);
        let json = serde_json::to_string(&snapshot).unwrap();
        let back: Snapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, snapshot);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["entries"][0]["shards"][0]["shard"], "north");
        assert_eq!(value["entries"][0]["routes"]["single_shard"], 1);
    }
}
