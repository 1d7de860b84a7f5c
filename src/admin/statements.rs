//! Console commands over statement statistics and the slow log:
//! `SHOW QUERIES`, `SHOW SLOW`, `SHOW STATS`.

use bytes::BytesMut;

use super::resultset::result_set;
use crate::observe::stats::{EntryView, RouteCounts};
use crate::proxy::Shared;

/// Fingerprints `SHOW QUERIES` lists.
const TOP_QUERIES: usize = 100;

/// `SHOW QUERIES`: the top fingerprints by total time (times in ms).
pub fn show_queries(shared: &Shared) -> BytesMut {
    let rows: Vec<Vec<String>> = shared
        .observer
        .statistics()
        .top_by_total_time(TOP_QUERIES)
        .iter()
        .map(query_row)
        .collect();
    result_set(
        &[
            "fingerprint",
            "database",
            "calls",
            "errors",
            "rows",
            "total_ms",
            "mean_ms",
            "min_ms",
            "max_ms",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "shards",
            "routes",
            "query",
        ],
        &rows,
        "SHOW",
    )
}

fn query_row(e: &EntryView) -> Vec<String> {
    let shards = e
        .shards
        .iter()
        .map(|s| format!("{}={}", s.shard, s.calls))
        .collect::<Vec<_>>()
        .join(" ");
    vec![
        e.fingerprint.clone(),
        e.database.clone(),
        e.calls.to_string(),
        e.errors.to_string(),
        e.rows.to_string(),
        ms(e.total_ms),
        ms(e.mean_ms),
        ms(e.min_ms),
        ms(e.max_ms),
        ms(e.p50_ms),
        ms(e.p95_ms),
        ms(e.p99_ms),
        shards,
        routes(&e.routes),
        e.query.clone(),
    ]
}

/// The route kinds taken, `kind=count` for each kind taken at all.
fn routes(counts: &RouteCounts) -> String {
    [
        ("single_shard", counts.single_shard),
        ("scatter", counts.scatter),
        ("primary", counts.primary),
        ("replica", counts.replica),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(kind, n)| format!("{kind}={n}"))
    .collect::<Vec<_>>()
    .join(" ")
}

/// `SHOW SLOW`: recent slow statements, newest first, with a one-line
/// plan summary (or why there is no plan).
pub fn show_slow(shared: &Shared) -> BytesMut {
    let slow_log = shared.observer.slow_log();
    let rows: Vec<Vec<String>> = slow_log
        .recent(slow_log.capacity())
        .iter()
        .map(|e| {
            let explained_on = e.explained_on.as_ref().map_or(String::new(), |t| {
                let how = if t.analyze {
                    "EXPLAIN ANALYZE"
                } else {
                    "EXPLAIN"
                };
                format!("{how} on {} {} ({})", t.shard, t.role, t.server)
            });
            vec![
                e.time.clone(),
                ms(e.duration_ms),
                e.fingerprint.clone(),
                e.database.clone(),
                e.user.clone(),
                e.shards.join(" "),
                e.route.clone(),
                e.plan_summary.clone().unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
                explained_on,
                e.sample.clone(),
            ]
        })
        .collect();
    result_set(
        &[
            "time",
            "duration_ms",
            "fingerprint",
            "database",
            "user",
            "shards",
            "route",
            "plan",
            "no_plan_reason",
            "explained_on",
            "query",
        ],
        &rows,
        "SHOW",
    )
}

/// `SHOW STATS`: traffic totals per database, then a `*` row for all of
/// them that also carries the observer's own losses: events dropped
/// because the collector fell behind, slow statements logged without a
/// plan because plan capture fell behind, slow-log lines not written, and
/// fingerprints evicted to stay within `observe.max_fingerprints`.
pub fn show_stats(shared: &Shared) -> BytesMut {
    let observer = &shared.observer;
    let databases = observer.statistics().databases();
    let mut rows: Vec<Vec<String>> = databases
        .iter()
        .map(|d| {
            let mut row = totals_row(&d.database, d.statements, d.errors, d.rows, d.total_ms);
            row.extend(std::iter::repeat_n(String::new(), 4));
            row
        })
        .collect();
    let sum = |f: fn(&crate::observe::stats::DatabaseView) -> u64| -> u64 {
        databases.iter().map(f).sum()
    };
    let mut all = totals_row(
        "*",
        sum(|d| d.statements),
        sum(|d| d.errors),
        sum(|d| d.rows),
        databases.iter().map(|d| d.total_ms).sum(),
    );
    all.extend([
        observer.dropped().to_string(),
        observer.slow_log().plans_dropped().to_string(),
        observer.slow_log().lines_dropped().to_string(),
        observer.statistics().evicted().to_string(),
    ]);
    rows.push(all);
    result_set(
        &[
            "database",
            "statements",
            "errors",
            "rows",
            "total_ms",
            "mean_ms",
            "events_dropped",
            "plans_dropped",
            "slow_lines_dropped",
            "fingerprints_evicted",
        ],
        &rows,
        "SHOW",
    )
}

fn totals_row(
    database: &str,
    statements: u64,
    errors: u64,
    rows: u64,
    total_ms: f64,
) -> Vec<String> {
    let mean = if statements == 0 {
        0.0
    } else {
        total_ms / statements as f64
    };
    vec![
        database.to_string(),
        statements.to_string(),
        errors.to_string(),
        rows.to_string(),
        ms(total_ms),
        ms(mean),
    ]
}

/// Milliseconds with microsecond precision.
fn ms(value: f64) -> String {
    format!("{value:.3}")
}
