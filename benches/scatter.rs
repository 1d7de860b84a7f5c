//! Scatter-gather latency: keyless SELECTs through shardwire over 4 shards
//! against the same SELECTs on one plain Postgres holding all the rows.
//!
//! Setup: 5 local Postgres clusters (4 shards + 1 single), started in
//! parallel; `events (id bigint PRIMARY KEY, account bigint, kind text,
//! amount numeric(12,2))` on all of them; a hash shard map on `id` (1024
//! buckets, 256 per shard); the proxy in-process. The rows are loaded with
//! `COPY events FROM STDIN` through the proxy (which splits them by key) and
//! straight into the single Postgres, then `VACUUM ANALYZE` runs directly on
//! every cluster.
//!
//! Measured, interleaved in rounds (the side that goes first alternates),
//! over the extended protocol (`tokio_postgres::Client::query`):
//! `count(*)`, a GROUP BY over ~10 kinds with count/sum/avg, and a GROUP BY
//! over 10,000 accounts with ORDER BY ... LIMIT 10. Every answer of the
//! proxy must equal the single Postgres' answer (same column names, types
//! and values, numerics compared with their display scale).
//!
//! `cargo bench --bench scatter` (the binary gets `--bench`): 1,000,000
//! rows. Without `--bench` (`cargo test --benches`): 20,000 rows and a few
//! rounds, a smoke run of seconds that still checks the answers.

use std::error::Error;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::SinkExt;
use shardwire::config::{Config, Database, PoolMode, Shard, User};
use shardwire::localcluster::{ClusterOptions, LocalCluster};
use shardwire::sharding::map::ShardMap;
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{Client, NoTls};

const APP_USER: &str = "app";
const APP_PASSWORD: &str = "app-secret";
const APP_DB: &str = "appdb";
const SHARDS: usize = 4;
const BUCKETS: usize = 1024;
const ACCOUNTS: u64 = 10_000;
const KINDS: u64 = 10;
const COPY_CHUNK: usize = 64 * 1024;

const SCHEMA: &str =
    "CREATE TABLE events (id bigint PRIMARY KEY, account bigint, kind text, amount numeric(12,2))";

/// The measured statements: (label, SQL).
const QUERIES: [(&str, &str); 3] = [
    ("count(*)", "SELECT count(*) FROM events"),
    (
        "GROUP BY kind (10 groups): count, sum, avg",
        "SELECT kind, count(*), sum(amount), avg(amount) FROM events GROUP BY kind ORDER BY kind",
    ),
    (
        "GROUP BY account (10k groups), top 10",
        "SELECT account, count(*) FROM events GROUP BY account ORDER BY 2 DESC, 1 LIMIT 10",
    ),
];

/// How big and how long a run is.
struct Mode {
    rows: u64,
    /// Measured rounds (each runs every query once per side).
    rounds: usize,
    /// Stop measuring after this long, even with rounds left.
    measure_budget: Duration,
    /// Everything after the clusters are up must finish within this.
    deadline: Duration,
}

impl Mode {
    /// `cargo bench` passes `--bench`; `cargo test --benches` does not.
    fn from_args() -> Mode {
        if std::env::args().any(|arg| arg == "--bench") {
            Mode {
                rows: 1_000_000,
                rounds: 30,
                measure_budget: Duration::from_secs(240),
                deadline: Duration::from_secs(900),
            }
        } else {
            Mode {
                rows: 20_000,
                rounds: 3,
                measure_budget: Duration::from_secs(30),
                deadline: Duration::from_secs(180),
            }
        }
    }
}

fn main() {
    let mode = Mode::from_args();
    let clusters = start_clusters(SHARDS + 1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (single, shards) = clusters.split_last().expect("clusters started");
    let outcome = runtime
        .block_on(async { tokio::time::timeout(mode.deadline, run(&mode, shards, single)).await });
    if outcome.is_err() {
        panic!(
            "scatter bench did not finish within {:?} (clusters are stopped on exit)",
            mode.deadline
        );
    }
}

/// Starts `count` clusters in parallel threads, each with the app role and
/// database.
fn start_clusters(count: usize) -> Vec<LocalCluster> {
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..count)
            .map(|_| {
                scope.spawn(|| {
                    let cluster = LocalCluster::start_temp(&ClusterOptions::for_tests())
                        .expect("local cluster starts");
                    cluster
                        .create_role(APP_USER, APP_PASSWORD, false)
                        .expect("create role");
                    cluster
                        .create_database(APP_DB, APP_USER)
                        .expect("create database");
                    cluster
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|thread| thread.join().expect("cluster thread"))
            .collect()
    })
}

async fn run(mode: &Mode, shards: &[LocalCluster], single: &LocalCluster) {
    let proxy = shardwire::proxy::start(sharded_config(shards))
        .await
        .expect("proxy starts");
    let mut direct = Vec::new();
    for cluster in shards.iter().chain([single]) {
        let client = connect(cluster.port()).await;
        client.batch_execute(SCHEMA).await.expect("create table");
        direct.push(client);
    }
    let through_proxy = connect(proxy.addrs[0].port()).await;
    let single_client = direct.last().expect("single client");

    let data = copy_data(mode.rows);
    let proxy_load = copy_in(&through_proxy, &data, mode.rows).await;
    let single_load = copy_in(single_client, &data, mode.rows).await;
    for client in &direct {
        client
            .batch_execute("VACUUM ANALYZE events")
            .await
            .expect("vacuum analyze");
    }
    println!(
        "loaded {} rows with COPY: through the proxy onto {SHARDS} shards in {:.2} s, \
         directly into the single Postgres in {:.2} s",
        mode.rows,
        proxy_load.as_secs_f64(),
        single_load.as_secs_f64()
    );

    let timings = measure(mode, &through_proxy, single_client).await;
    println!("{}", report(mode, &timings));
}

/// The proxy's config: the app user and database, the shards, a hash map
/// on `events.id`.
fn sharded_config(shards: &[LocalCluster]) -> Config {
    let address = |cluster: &LocalCluster| format!("{}:{}", cluster.host(), cluster.port());
    let mut config = Config::single_shard(
        "127.0.0.1:0",
        User::with_password(APP_USER, APP_PASSWORD),
        APP_DB,
        &address(&shards[0]),
    );
    config.pool.mode = PoolMode::Transaction;
    config.pool.size = 8;
    config.shards = shards
        .iter()
        .enumerate()
        .map(|(i, cluster)| Shard {
            name: format!("shard{i}"),
            primary: address(cluster),
            replicas: vec![],
        })
        .collect();
    let names: Vec<String> = config.shards.iter().map(|s| s.name.clone()).collect();
    let map = ShardMap::from_toml(&shard_map_toml(), &names).expect("bench shard map is valid");
    config.databases = vec![Database {
        name: APP_DB.to_string(),
        server_database: None,
        shard_map: None,
    }];
    config.shard_maps.insert(APP_DB.to_string(), map.into());
    let problems = shardwire::config::validate(&config);
    assert!(problems.is_empty(), "bench config invalid: {problems:?}");
    config
}

/// `events` hashed on `id`, the buckets split evenly over the shards.
fn shard_map_toml() -> String {
    let per_shard = BUCKETS / SHARDS;
    let mut toml = format!(
        "buckets = {BUCKETS}\ndefault_shard = \"shard0\"\n\
         [[tables]]\nname = \"events\"\nkey = \"id\"\ntype = \"bigint\"\n"
    );
    for shard in 0..SHARDS {
        let first = shard * per_shard;
        let last = first + per_shard - 1;
        let _ = write!(
            toml,
            "[[bucket_ranges]]\nbuckets = \"{first}-{last}\"\nshard = \"shard{shard}\"\n"
        );
    }
    toml
}

async fn connect(port: u16) -> Client {
    let conninfo = format!(
        "host=127.0.0.1 port={port} user={APP_USER} password={APP_PASSWORD} dbname={APP_DB}"
    );
    let (client, connection) = tokio_postgres::connect(&conninfo, NoTls)
        .await
        .expect("connect");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A deterministic pseudo-random mix of an id (splitmix64's finalizer).
fn mix(id: u64) -> u64 {
    let mut z = id.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `rows` events in COPY text format: accounts uniform over 10,000, kinds
/// over 10, amounts 0.00–999.99.
fn copy_data(rows: u64) -> Bytes {
    let mut text = String::with_capacity(rows as usize * 40);
    for id in 1..=rows {
        let h = mix(id);
        let cents = (h >> 40) % 100_000;
        let _ = writeln!(
            text,
            "{id}\t{}\tkind_{:02}\t{}.{:02}",
            h % ACCOUNTS,
            (h >> 20) % KINDS,
            cents / 100,
            cents % 100
        );
    }
    Bytes::from(text)
}

/// Runs `COPY events FROM STDIN` with `data` in 64 KiB messages; returns
/// how long it took.
async fn copy_in(client: &Client, data: &Bytes, rows: u64) -> Duration {
    let started = Instant::now();
    let sink = client
        .copy_in("COPY events FROM STDIN")
        .await
        .expect("COPY starts");
    futures::pin_mut!(sink);
    for start in (0..data.len()).step_by(COPY_CHUNK) {
        let end = (start + COPY_CHUNK).min(data.len());
        sink.send(data.slice(start..end)).await.expect("COPY data");
    }
    let copied = sink.finish().await.expect("COPY finishes");
    assert_eq!(copied, rows, "COPY row count");
    started.elapsed()
}

/// A numeric value as Postgres prints it (with its display scale), decoded
/// from the binary format, so answers compare by value and scale.
struct NumericText(String);

impl<'a> FromSql<'a> for NumericText {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        let word = |i: usize| -> Option<i16> {
            raw.get(2 * i..2 * i + 2)
                .map(|b| i16::from_be_bytes([b[0], b[1]]))
        };
        let header = (word(0), word(1), word(2), word(3));
        let (Some(ndigits), Some(weight), Some(sign), Some(dscale)) = header else {
            return Err("numeric shorter than its header".into());
        };
        let (ndigits, weight, dscale) = (ndigits as i32, weight as i32, dscale as usize);
        if raw.len() != 8 + 2 * ndigits.max(0) as usize {
            return Err("numeric length does not match its digit count".into());
        }
        if sign as u16 == 0xC000 {
            return Ok(NumericText("NaN".to_string()));
        }
        // Base-10000 digit `i` (0 = most significant) or 0 outside the stored ones.
        let digit = |i: i32| {
            if (0..ndigits).contains(&i) {
                word(4 + i as usize).unwrap_or(0)
            } else {
                0
            }
        };
        let mut text = String::new();
        if sign as u16 == 0x4000 {
            text.push('-');
        }
        if weight < 0 {
            text.push('0');
        }
        for i in 0..=weight {
            let _ = if i == 0 {
                write!(text, "{}", digit(i))
            } else {
                write!(text, "{:04}", digit(i))
            };
        }
        if dscale > 0 {
            let mut fraction = String::new();
            let mut i = weight + 1;
            while fraction.len() < dscale {
                let _ = write!(fraction, "{:04}", digit(i));
                i += 1;
            }
            fraction.truncate(dscale);
            text.push('.');
            text.push_str(&fraction);
        }
        Ok(NumericText(text))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

/// A result as comparable text: a header of column names and types, then
/// one line per row.
fn answer(rows: &[tokio_postgres::Row]) -> Vec<String> {
    let Some(first) = rows.first() else {
        return Vec::new();
    };
    let header = first
        .columns()
        .iter()
        .map(|c| format!("{}:{}", c.name(), c.type_()))
        .collect::<Vec<_>>()
        .join(", ");
    let lines = rows.iter().map(|row| {
        (0..row.len())
            .map(|i| {
                let value = match *row.columns()[i].type_() {
                    Type::INT8 => row.get::<_, Option<i64>>(i).map(|v| v.to_string()),
                    Type::TEXT => row.get::<_, Option<String>>(i),
                    Type::NUMERIC => row.get::<_, Option<NumericText>>(i).map(|v| v.0),
                    ref other => panic!("no decoder for result type {other}"),
                };
                value.unwrap_or_else(|| "NULL".to_string())
            })
            .collect::<Vec<_>>()
            .join(" | ")
    });
    std::iter::once(header).chain(lines).collect()
}

/// Runs `sql` with the extended protocol; its latency and answer.
async fn timed_query(client: &Client, sql: &str) -> (Duration, Vec<String>) {
    let started = Instant::now();
    let rows = client.query(sql, &[]).await.expect("measured query");
    let elapsed = started.elapsed();
    (elapsed, answer(&rows))
}

/// Latencies of one query on both sides.
struct Timings {
    label: &'static str,
    proxy: Vec<Duration>,
    single: Vec<Duration>,
}

/// One untimed warm-up per query and side (asserting equal answers), then
/// interleaved rounds; every timed answer must equal the warm-up's.
async fn measure(mode: &Mode, proxy: &Client, single: &Client) -> Vec<Timings> {
    let mut expected = Vec::new();
    for (label, sql) in QUERIES {
        let (_, want) = timed_query(single, sql).await;
        let (_, got) = timed_query(proxy, sql).await;
        assert!(!want.is_empty(), "{label}: empty answer");
        assert_eq!(got, want, "{label}: proxy and single Postgres differ");
        println!(
            "{label}: {} rows, equal on both sides; columns {}; first row {}",
            want.len() - 1,
            want[0],
            want[1]
        );
        expected.push(want);
    }
    let mut timings: Vec<Timings> = QUERIES
        .iter()
        .map(|&(label, _)| Timings {
            label,
            proxy: Vec::new(),
            single: Vec::new(),
        })
        .collect();
    let started = Instant::now();
    for round in 0..mode.rounds {
        if started.elapsed() > mode.measure_budget {
            println!("measurement budget spent after {round} rounds");
            break;
        }
        for ((label, sql), (timing, want)) in QUERIES.iter().zip(timings.iter_mut().zip(&expected))
        {
            let proxy_first = round % 2 == 0;
            for on_proxy in [proxy_first, !proxy_first] {
                let (client, samples) = if on_proxy {
                    (proxy, &mut timing.proxy)
                } else {
                    (single, &mut timing.single)
                };
                let (elapsed, got) = timed_query(client, sql).await;
                assert_eq!(&got, want, "{label}: answer changed (proxy: {on_proxy})");
                samples.push(elapsed);
            }
        }
    }
    timings
}

/// The `p`-th percentile (nearest rank) of `samples`, in ms.
fn percentile_ms(samples: &[Duration], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

/// The results as a markdown table.
fn report(mode: &Mode, timings: &[Timings]) -> String {
    let mut out = format!(
        "\n{} rows; proxy over {SHARDS} shards vs one Postgres; extended protocol; \
         {} rounds; answers identical on both sides\n\n\
         | query | single median (ms) | single p95 (ms) | proxy median (ms) | proxy p95 (ms) \
         | proxy/single median | proxy/single p95 |\n|---|---:|---:|---:|---:|---:|---:|\n",
        mode.rows,
        timings.first().map_or(0, |t| t.proxy.len()),
    );
    for t in timings {
        let (single_median, single_p95) = (
            percentile_ms(&t.single, 50.0),
            percentile_ms(&t.single, 95.0),
        );
        let (proxy_median, proxy_p95) =
            (percentile_ms(&t.proxy, 50.0), percentile_ms(&t.proxy, 95.0));
        let _ = writeln!(
            out,
            "| {} | {single_median:.2} | {single_p95:.2} | {proxy_median:.2} | {proxy_p95:.2} | {:.2} | {:.2} |",
            t.label,
            proxy_median / single_median,
            proxy_p95 / single_p95
        );
    }
    out
}
