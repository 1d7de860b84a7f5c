//! The Prometheus endpoint against real servers: `/metrics` is scraped
//! over plain HTTP, parsed with a Prometheus text parser, and its families,
//! labels and values checked for a single-shard proxy, a sharded database
//! and a shard with a replica; a taken metrics port fails the start.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::replicas::ReplicaEnv;
use common::sharded::ShardedEnv;
use common::{APP_DB, APP_USER, TestEnv};
use prometheus_parse::{Scrape, Value};
use shardwire::config::{Config, User};
use shardwire::localcluster::ReplicaOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Any free loopback port: the tests read the bound one back.
const ANY_PORT: &str = "127.0.0.1:0";
/// Bound for statement events to reach the metrics (they go through the
/// collector's queue).
const EVENTS_ARRIVE: Duration = Duration::from_secs(30);

// ----- scraping -----

/// One HTTP/1.1 exchange: the status code and the body.
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect to metrics");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read response");
    let text = String::from_utf8(raw).expect("a UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, body.to_string())
}

/// Scrapes `/metrics` and parses it.
async fn scrape(addr: SocketAddr) -> Scrape {
    let (status, body) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text format")
}

/// Scrapes until `done` holds (statement events arrive asynchronously).
async fn scrape_until(addr: SocketAddr, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = tokio::time::Instant::now() + EVENTS_ARRIVE;
    loop {
        let scraped = scrape(addr).await;
        if done(&scraped) {
            return scraped;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "gave up waiting for {what}; last scrape:\n{}",
                dump(&scraped)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every sample, one a line, sorted (for failure messages).
fn dump(scrape: &Scrape) -> String {
    let mut lines: Vec<String> = scrape
        .samples
        .iter()
        .map(|s| {
            let mut labels: Vec<_> = s.labels.iter().collect();
            labels.sort();
            format!("{} {labels:?} {:?}", s.metric, s.value)
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

/// The values of `metric` whose labels include all of `labels`.
fn values(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .filter_map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
            _ => None,
        })
        .collect()
}

/// The sum of [`values`] (0 when there is none).
fn sum(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    values(scrape, metric, labels).iter().sum()
}

/// The single value of `metric` with `labels`; panics if there is not
/// exactly one series.
fn one(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match values(scrape, metric, labels)[..] {
        [value] => value,
        ref other => panic!(
            "{metric}{labels:?}: expected one series, got {other:?}\n{}",
            dump(scrape)
        ),
    }
}

/// The kinds `metric`'s samples were parsed as (from its `# TYPE` line).
fn kind_of(scrape: &Scrape, metric: &str) -> Vec<&'static str> {
    let mut kinds: Vec<&'static str> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .map(|s| match s.value {
            Value::Counter(_) => "counter",
            Value::Gauge(_) => "gauge",
            Value::Histogram(_) => "histogram",
            Value::Summary(_) => "summary",
            Value::Untyped(_) => "untyped",
        })
        .collect();
    kinds.dedup();
    kinds
}

fn with_metrics(config: &mut Config) {
    config.metrics.listen = Some(ANY_PORT.to_string());
}

// ----- tests -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_shard_proxy_reports_connections_queries_errors_and_traffic() {
    let env = TestEnv::start(with_metrics).await;
    let addr = env
        .proxy
        .metrics_addr
        .expect("the metrics endpoint is bound");
    assert_ne!(addr.port(), 0, "port 0 is resolved");
    let server = format!("{}:{}", env.cluster.host(), env.cluster.port());

    let client = env.connect().await;
    for i in 0..5i32 {
        let row = client
            .query_one("SELECT $1::int + 1", &[&i])
            .await
            .expect("query");
        assert_eq!(row.get::<_, i32>(0), i + 1);
    }
    client.simple_query("SELECT 1").await.expect("simple query");
    let error = client
        .simple_query("SELECT * FROM no_such_table")
        .await
        .expect_err("the table does not exist");
    assert_eq!(
        error.code(),
        Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE)
    );

    let scraped = scrape_until(addr, "the failed statement's event", |s| {
        sum(s, "shardwire_query_errors_total", &[("sqlstate", "42P01")]) >= 1.0
    })
    .await;
    let app = [("user", APP_USER), ("database", APP_DB)];
    assert_eq!(one(&scraped, "shardwire_client_connections", &app), 1.0);
    assert_eq!(kind_of(&scraped, "shardwire_client_connections"), ["gauge"]);

    let pool = [
        ("user", APP_USER),
        ("database", APP_DB),
        ("shard", "shard0"),
        ("server", server.as_str()),
    ];
    let open = sum(&scraped, "shardwire_server_connections", &pool);
    assert!(open >= 1.0, "no server connection:\n{}", dump(&scraped));
    for state in ["active", "idle"] {
        let mut labels = pool.to_vec();
        labels.push(("state", state));
        one(&scraped, "shardwire_server_connections", &labels);
    }
    assert_eq!(one(&scraped, "shardwire_pool_clients_waiting", &pool), 0.0);
    assert!(one(&scraped, "shardwire_server_connections_opened_total", &pool) >= 1.0);
    for family in [
        "shardwire_pool_waits_total",
        "shardwire_pool_wait_microseconds_total",
        "shardwire_pool_checkout_timeouts_total",
    ] {
        one(&scraped, family, &pool);
        assert_eq!(kind_of(&scraped, family), ["counter"]);
    }

    // 5 extended + 1 simple + 1 failed statement, all on the one primary.
    let single = [
        ("database", APP_DB),
        ("route", "single_shard"),
        ("server_role", "primary"),
    ];
    assert!(
        one(&scraped, "shardwire_queries_total", &single) >= 7.0,
        "{}",
        dump(&scraped)
    );
    assert_eq!(
        sum(&scraped, "shardwire_queries_total", &[("route", "scatter")]),
        0.0
    );
    assert_eq!(
        one(
            &scraped,
            "shardwire_query_errors_total",
            &[("sqlstate", "42P01")]
        ),
        1.0
    );
    let latency = scraped
        .samples
        .iter()
        .find(|s| {
            s.metric == "shardwire_query_duration_seconds"
                && s.labels.get("database") == Some(APP_DB)
        })
        .expect("a latency histogram for the database");
    let Value::Histogram(buckets) = &latency.value else {
        panic!("latency is not a histogram: {:?}", latency.value);
    };
    let bounds: Vec<f64> = buckets.iter().map(|b| b.less_than).collect();
    assert_eq!(bounds.first(), Some(&0.0005), "{bounds:?}");
    assert!(bounds.contains(&10.0), "{bounds:?}");
    let counted = one(
        &scraped,
        "shardwire_query_duration_seconds_count",
        &[("database", APP_DB)],
    );
    assert!(counted >= 7.0);
    assert_eq!(
        buckets.last().map(|b| b.count),
        Some(counted),
        "+Inf holds every statement"
    );

    let received = one(&scraped, "shardwire_client_bytes_received_total", &[]);
    let sent = one(&scraped, "shardwire_client_bytes_sent_total", &[]);
    assert!(received > 0.0 && sent > 0.0, "{received} in, {sent} out");
    assert_eq!(
        one(&scraped, "shardwire_statement_events_dropped_total", &[]),
        0.0
    );
    assert!(
        scraped.docs.contains_key("shardwire_queries_total"),
        "families carry help text"
    );
    // No replicas: no lag series.
    assert!(values(&scraped, "shardwire_replica_lag_bytes", &[]).is_empty());

    // RELOAD replaces the pool (new limits) with one whose own counters
    // start at 0: the exported totals keep growing from where they were.
    let opened = one(&scraped, "shardwire_server_connections_opened_total", &pool);
    let mut reloaded = env.config.clone();
    reloaded.pool.size += 1;
    assert_eq!(env.proxy.shared.reload(reloaded).expect("reload"), 1);
    let other = env.connect().await;
    other.simple_query("SELECT 2").await.expect("query");
    let scraped = scrape(addr).await;
    assert!(
        one(&scraped, "shardwire_server_connections_opened_total", &pool) >= opened + 1.0,
        "{}",
        dump(&scraped)
    );
    drop(other);

    // The client leaves: its gauge drops to 0, totals stay.
    drop(client);
    let scraped = scrape_until(addr, "the client's departure", |s| {
        sum(s, "shardwire_client_connections", &app) == 0.0
    })
    .await;
    assert!(one(&scraped, "shardwire_client_bytes_received_total", &[]) >= received);

    // Only /metrics, only GET.
    assert_eq!(http_get(addr, "/").await.0, 404);
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .await
        .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");

    // The endpoint stops with the proxy.
    drop(env);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the metrics endpoint outlived its proxy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const SHARD_MAP: &str = r#"
buckets = 64
default_shard = "shard0"
[[bucket_ranges]]
buckets = "0-31"
shard = "shard0"
[[bucket_ranges]]
buckets = "32-63"
shard = "shard1"
[[tables]]
name = "accounts"
key = "id"
type = "bigint"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_database_reports_routes_pools_per_shard_and_parse_cache_hits() {
    let env = ShardedEnv::start(2, SHARD_MAP, with_metrics).await;
    let addr = env
        .proxy
        .metrics_addr
        .expect("the metrics endpoint is bound");
    env.on_every_shard("CREATE TABLE accounts (id bigint PRIMARY KEY, name text)")
        .await;
    let client = env.connect().await;
    for id in 1..=20i64 {
        client
            .execute("INSERT INTO accounts (id, name) VALUES ($1, 'a')", &[&id])
            .await
            .expect("insert");
    }
    // The same text over and over: parsed once, then served from the cache.
    for id in 1..=20i64 {
        client
            .query_one("SELECT name FROM accounts WHERE id = $1", &[&id])
            .await
            .expect("point read");
    }
    let row = client
        .query_one("SELECT count(*) FROM accounts", &[])
        .await
        .expect("scatter count");
    assert_eq!(row.get::<_, i64>(0), 20);

    let db = ("database", APP_DB);
    let scraped = scrape_until(addr, "the scatter statement's event", |s| {
        sum(s, "shardwire_queries_total", &[db, ("route", "scatter")]) >= 1.0
    })
    .await;
    let single = [db, ("route", "single_shard"), ("server_role", "primary")];
    assert!(
        one(&scraped, "shardwire_queries_total", &single) >= 40.0,
        "{}",
        dump(&scraped)
    );
    assert_eq!(
        one(
            &scraped,
            "shardwire_queries_total",
            &[db, ("route", "scatter"), ("server_role", "primary")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &scraped,
            "shardwire_queries_total",
            &[db, ("server_role", "replica")]
        ),
        0.0
    );

    let hits = one(&scraped, "shardwire_parse_cache_hits_total", &[db]);
    let misses = one(&scraped, "shardwire_parse_cache_misses_total", &[db]);
    let entries = one(&scraped, "shardwire_parse_cache_entries", &[db]);
    assert!(hits >= 30.0, "{hits} hits, {misses} misses");
    assert!(
        misses >= 1.0 && entries >= 1.0,
        "{misses} misses, {entries} entries"
    );

    // One pool per shard, labelled with the shard's name and server.
    for (i, shard) in env.shards.iter().enumerate() {
        let name = format!("shard{i}");
        let server = format!("{}:{}", shard.host(), shard.port());
        let pool = [
            ("user", APP_USER),
            db,
            ("shard", name.as_str()),
            ("server", server.as_str()),
        ];
        assert!(
            sum(&scraped, "shardwire_server_connections", &pool) >= 1.0,
            "no connection to {name}:\n{}",
            dump(&scraped)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_with_a_replica_reports_lag_rotation_and_replica_reads() {
    let env = ReplicaEnv::start(vec![ReplicaOptions::default()], with_metrics).await;
    let addr = env
        .proxy
        .metrics_addr
        .expect("the metrics endpoint is bound");
    let client = env.connect().await;
    client
        .batch_execute("CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (1)")
        .await
        .expect("write");
    env.wait_for_replay().await;
    env.wait_for("the replica in rotation", |r| r[1].in_rotation)
        .await;
    // A fresh session: reads of the writing one wait for its own writes.
    let reader = env.connect().await;
    for _ in 0..5 {
        reader
            .query_one("SELECT id FROM items WHERE id = 1", &[])
            .await
            .expect("read");
    }
    assert!(
        env.reads()[1] >= 1,
        "precondition: a read went to the replica"
    );

    let scraped = scrape_until(addr, "a replica read's event", |s| {
        sum(s, "shardwire_queries_total", &[("server_role", "replica")]) >= 1.0
    })
    .await;
    let replica = format!("{}:{}", env.replicas[0].host(), env.replicas[0].port());
    let primary = format!("{}:{}", env.primary.host(), env.primary.port());
    for server in [&primary, &replica] {
        let labels = [("shard", "shard0"), ("server", server.as_str())];
        for family in [
            "shardwire_replica_lag_bytes",
            "shardwire_replica_lag_seconds",
            "shardwire_replica_in_rotation",
        ] {
            let value = one(&scraped, family, &labels);
            assert!(value >= 0.0, "{family}{labels:?} = {value}");
            assert_eq!(kind_of(&scraped, family), ["gauge"]);
        }
    }
    assert_eq!(
        one(
            &scraped,
            "shardwire_replica_in_rotation",
            &[("shard", "shard0"), ("server", replica.as_str())]
        ),
        1.0
    );
    assert_eq!(
        one(
            &scraped,
            "shardwire_replica_lag_bytes",
            &[("shard", "shard0"), ("server", primary.as_str())]
        ),
        0.0,
        "the primary lags nothing"
    );
    // The replica has a pool of its own.
    assert!(
        sum(
            &scraped,
            "shardwire_server_connections",
            &[("server", replica.as_str())]
        ) >= 1.0
    );
}

/// A proxy config whose shard nobody listens on: enough to start (servers
/// are only dialled for clients), no cluster needed.
fn serverless_config() -> Config {
    Config::single_shard(
        ANY_PORT,
        User::with_password(APP_USER, "x"),
        APP_DB,
        "127.0.0.1:1",
    )
}

#[tokio::test]
async fn a_taken_metrics_port_fails_the_start_and_no_listen_means_no_endpoint() {
    let holder = std::net::TcpListener::bind(ANY_PORT).expect("bind");
    let taken = holder.local_addr().expect("bound address");
    let mut config = serverless_config();
    config.metrics.listen = Some(taken.to_string());
    let error = match shardwire::proxy::start(config).await {
        Ok(_) => panic!("a proxy started with its metrics port taken"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        error.contains(&taken.to_string()) && error.contains("metrics"),
        "the message names the metrics address: {error}"
    );

    let proxy = shardwire::proxy::start(serverless_config())
        .await
        .expect("proxy starts");
    assert_eq!(proxy.metrics_addr, None);
}
