//! The cost of routing a statement by its sharding key.
//!
//! The shard map is built here: `accounts`, `orders` and `payments` hashed
//! in one co-location group (`accounts.id` = `orders.account_id` =
//! `payments.account_id`), `sessions` hashed on a uuid, reference tables
//! `currencies` and `countries`, 1024 buckets over 4 shards.
//!
//! What is measured, per typical statement (point SELECT by literal key,
//! the same with a `$1` text and a `$1` binary parameter, a 10-row INSERT
//! split over the shards, a co-located join with a reference table, a
//! scatter GROUP BY):
//!
//! - `routing/uncached/*`: `router::analyze` (parse, walk, plan) + `route`;
//! - `routing/cached/*`: `RouterCache::analyze` on a warm cache + `route`,
//!   what the proxy does for a statement text it has seen;
//! - `routing/parse_only/*`: the baseline, in the same run: sqlparser's
//!   `Parser::parse_sql` of the same text alone, the least routing from
//!   text can cost;
//! - `key_to_shard/*`: `ShardMap::shard_for_input` alone (parse the key
//!   value, hash it, look up the bucket's owner).
//!
//! After criterion's report, a table gives each statement's "uncached
//! routing / parse-only" and "cached / uncached" ratios, from the medians
//! of the very samples criterion measured (per-iteration time of each of
//! its `SAMPLE_SIZE` samples).
//!
//! Run: `cargo bench --bench routing` (under two minutes after the build;
//! no plots). `cargo test --benches` runs each benchmark once and prints no
//! ratios.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use shardwire::router::readwrite::ReadOnlyFunctions;
use shardwire::router::{Analysis, Route, RouteInput, RouterCache, analyze, route};
use shardwire::sharding::map::{KeyInput, ShardMap, ShardedTable, TableClass};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

const SHARDS: usize = 4;
const BUCKETS: usize = 1024;
/// Samples per benchmark; the ratios use the last this many of each.
const SAMPLE_SIZE: usize = 30;

/// The shard map's tables, without the bucket ranges.
const MAP_TABLES: &str = r#"
default_shard = "shard0"
reference_tables = ["currencies", "countries"]

[[tables]]
name = "accounts"
key = "id"
type = "bigint"
group = "account"

[[tables]]
name = "orders"
key = "account_id"
type = "bigint"
group = "account"

[[tables]]
name = "payments"
key = "account_id"
type = "bigint"
group = "account"

[[tables]]
name = "sessions"
key = "session_id"
type = "uuid"
"#;

/// The shard map: [`MAP_TABLES`] with the buckets split evenly.
fn shard_map(names: &[String]) -> ShardMap {
    let mut toml = format!("buckets = {BUCKETS}\n{MAP_TABLES}");
    let per_shard = BUCKETS / SHARDS;
    for (shard, name) in names.iter().enumerate() {
        let first = shard * per_shard;
        let _ = write!(
            toml,
            "\n[[bucket_ranges]]\nbuckets = \"{first}-{}\"\nshard = \"{name}\"\n",
            first + per_shard - 1
        );
    }
    ShardMap::from_toml(&toml, names).expect("bench shard map is valid")
}

/// The route a case must get (checked once before measuring).
#[derive(Clone, Copy)]
enum Expect {
    Single,
    SplitInsert,
    Scatter,
}

/// One statement to route, with its bind values.
struct Case {
    name: &'static str,
    sql: String,
    params: Vec<Option<Vec<u8>>>,
    formats: Vec<i16>,
    expect: Expect,
}

fn cases() -> Vec<Case> {
    let point = "SELECT id, name, balance FROM accounts WHERE id = $1";
    let rows: Vec<String> = (1..=10)
        .map(|i| format!("({i}, {}, {}.50, 'EUR')", 1000 + 37 * i, 10 * i))
        .collect();
    let case = |name, sql: &str, expect| Case {
        name,
        sql: sql.to_string(),
        params: vec![],
        formats: vec![],
        expect,
    };
    vec![
        case(
            "point_literal",
            "SELECT id, name, balance FROM accounts WHERE id = 42",
            Expect::Single,
        ),
        Case {
            params: vec![Some(b"42".to_vec())],
            ..case("point_param_text", point, Expect::Single)
        },
        Case {
            params: vec![Some(42i64.to_be_bytes().to_vec())],
            formats: vec![1],
            ..case("point_param_binary", point, Expect::Single)
        },
        case(
            "insert_10_rows",
            &format!(
                "INSERT INTO orders (id, account_id, amount, currency) VALUES {}",
                rows.join(", ")
            ),
            Expect::SplitInsert,
        ),
        case(
            "colocated_join",
            "SELECT o.id, o.amount, c.rate FROM accounts a \
             JOIN orders o ON o.account_id = a.id \
             JOIN currencies c ON c.code = o.currency \
             WHERE a.id = 42 ORDER BY o.id",
            Expect::Single,
        ),
        case(
            "scatter_group_by",
            "SELECT currency, count(*), sum(amount), avg(amount) FROM orders \
             GROUP BY currency ORDER BY currency",
            Expect::Scatter,
        ),
    ]
}

/// What every benchmark needs.
struct Fixture {
    names: Vec<String>,
    map: ShardMap,
    cases: Vec<Case>,
}

impl Case {
    /// Bind values as the router takes them.
    fn param_refs(&self) -> Vec<Option<&[u8]>> {
        self.params.iter().map(Option::as_deref).collect()
    }
}

/// Routes the one statement of `analysis`.
fn route_first(analysis: &Analysis, input: &RouteInput, map: &ShardMap) -> Route {
    let statement = analysis.statements.first().expect("one statement");
    route(statement, analysis.hint.as_ref(), input, map).expect("statement routes")
}

fn input<'a>(
    params: &'a [Option<&'a [u8]>],
    formats: &'a [i16],
    names: &'a [String],
) -> RouteInput<'a> {
    RouteInput {
        params,
        param_formats: formats,
        shard_names: names,
        ..RouteInput::default()
    }
}

/// Per-iteration times (ns) of each benchmark's samples, by benchmark id.
#[derive(Default)]
struct Samples(HashMap<String, Vec<f64>>);

impl Samples {
    /// Runs `routine` `iters` times, records the per-iteration time under
    /// `id` and returns the total (criterion's `iter_custom` contract).
    fn time<T>(&mut self, id: &str, iters: u64, mut routine: impl FnMut() -> T) -> Duration {
        let started = Instant::now();
        for _ in 0..iters {
            black_box(routine());
        }
        let elapsed = started.elapsed();
        self.0
            .entry(id.to_string())
            .or_default()
            .push(elapsed.as_nanos() as f64 / iters.max(1) as f64);
        elapsed
    }

    /// Median of the measured samples of `id` (the last `SAMPLE_SIZE`:
    /// criterion's warm-up calls come first); `None` when criterion did
    /// not measure it (test mode, filtered out).
    fn median(&self, id: &str) -> Option<f64> {
        let all = self.0.get(id)?;
        if all.len() < SAMPLE_SIZE {
            return None;
        }
        let mut measured = all[all.len() - SAMPLE_SIZE..].to_vec();
        measured.sort_by(f64::total_cmp);
        Some((measured[SAMPLE_SIZE / 2 - 1] + measured[SAMPLE_SIZE / 2]) / 2.0)
    }
}

fn bench_routing(c: &mut Criterion, fixture: &Fixture, samples: &mut Samples) {
    let Fixture { names, map, cases } = fixture;
    let cache = RouterCache::new(1024, ReadOnlyFunctions::default());
    let dialect = PostgreSqlDialect {};
    let mut group = c.benchmark_group("routing");
    for case in cases {
        let params = case.param_refs();
        let input = input(&params, &case.formats, names);
        let routed = route_first(&cache.analyze(&case.sql, map), &input, map);
        let expected = match case.expect {
            Expect::Single => matches!(routed, Route::Single(_)),
            Expect::SplitInsert => matches!(routed, Route::SplitInsert { .. }),
            Expect::Scatter => matches!(routed, Route::Scatter { .. }),
        };
        assert!(expected, "{}: unexpected route {routed:?}", case.name);
        let sql = case.sql.as_str();
        for (kind, id) in
            ["parse_only", "uncached", "cached"].map(|kind| (kind, format!("{kind}/{}", case.name)))
        {
            group.bench_function(BenchmarkId::new(kind, case.name), |b| {
                b.iter_custom(|iters| match kind {
                    "parse_only" => samples.time(&id, iters, || {
                        Parser::parse_sql(&dialect, black_box(sql)).expect("parses")
                    }),
                    "uncached" => samples.time(&id, iters, || {
                        route_first(&analyze(black_box(sql), map), &input, map)
                    }),
                    _ => samples.time(&id, iters, || {
                        route_first(&cache.analyze(black_box(sql), map), &input, map)
                    }),
                })
            });
        }
    }
    group.finish();
}

fn bench_key_to_shard(c: &mut Criterion, fixture: &Fixture, samples: &mut Samples) {
    let sharded = |name: &str| -> &ShardedTable {
        match fixture.map.table(name) {
            TableClass::Sharded(table) => table,
            _ => panic!("{name} is sharded in the bench map"),
        }
    };
    let (accounts, sessions) = (sharded("public.accounts"), sharded("public.sessions"));
    let binary = 42i64.to_be_bytes();
    let keys = [
        ("bigint_text", accounts, KeyInput::Text("42")),
        ("bigint_binary", accounts, KeyInput::Binary(&binary)),
        (
            "uuid_text",
            sessions,
            KeyInput::Text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        ),
    ];
    let mut group = c.benchmark_group("key_to_shard");
    for (name, table, key) in keys {
        let id = format!("key_to_shard/{name}");
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                samples.time(&id, iters, || {
                    fixture
                        .map
                        .shard_for_input(table, black_box(key))
                        .expect("key routes")
                })
            })
        });
    }
    group.finish();
}

/// The ratio table, when criterion measured (bench mode).
fn ratios(fixture: &Fixture, samples: &Samples) -> Option<String> {
    let mut out = String::from(
        "\n| statement | parse only (µs) | uncached routing (µs) | cached routing (µs) \
         | routing / parse-only | cached / uncached |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for case in &fixture.cases {
        let [parse, uncached, cached] = ["parse_only", "uncached", "cached"]
            .map(|kind| samples.median(&format!("{kind}/{}", case.name)));
        let (parse, uncached, cached) = (parse?, uncached?, cached?);
        let _ = writeln!(
            out,
            "| {} | {:.2} | {:.2} | {:.3} | {:.2} | {:.4} |",
            case.name,
            parse / 1000.0,
            uncached / 1000.0,
            cached / 1000.0,
            uncached / parse,
            cached / uncached
        );
    }
    out.push_str("\n| key to shard | ns |\n|---|---:|\n");
    for name in ["bigint_text", "bigint_binary", "uuid_text"] {
        let median = samples.median(&format!("key_to_shard/{name}"))?;
        let _ = writeln!(out, "| {name} | {median:.1} |");
    }
    Some(out)
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(SAMPLE_SIZE)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .without_plots()
        .configure_from_args();
    let names: Vec<String> = (0..SHARDS).map(|i| format!("shard{i}")).collect();
    let fixture = Fixture {
        map: shard_map(&names),
        names,
        cases: cases(),
    };
    let mut samples = Samples::default();
    bench_routing(&mut criterion, &fixture, &mut samples);
    bench_key_to_shard(&mut criterion, &fixture, &mut samples);
    criterion.final_summary();
    match ratios(&fixture, &samples) {
        Some(table) => println!("{table}"),
        None => println!("(ratios only in bench mode: cargo bench --bench routing)"),
    }
}
