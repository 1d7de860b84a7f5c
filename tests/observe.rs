//! Statement statistics and the slow-query log through the proxy, against
//! real Postgres: slow statements (simple and extended protocol, psql)
//! show up in `SHOW SLOW` and the JSON-lines file with JSON plans; shapes
//! share `SHOW QUERIES` rows; the EXPLAIN rate limit; statements without
//! plans; EXPLAIN ANALYZE only for reads on a replica (a write runs
//! exactly once); the statistics snapshot file; plans of a sharded
//! database taken on the shard the statement ran on.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use shardwire::config::{Config, User};
use shardwire::localcluster::ReplicaOptions;
use shardwire::observe::bind::{Param, RawParam};
use shardwire::observe::slowlog::SlowEntry;
use shardwire::observe::stats::Snapshot;
use shardwire::proxy::ProxyHandle;
use tempfile::TempDir;

use common::replicas::ReplicaEnv;
use common::sharded::ShardedEnv;
use common::{APP_DB, APP_PASSWORD, APP_USER, TestEnv, connect};

const ADMIN_USER: &str = "ops";
const ADMIN_PASSWORD: &str = "ops-secret";

/// One console row: column name → text.
type Row = BTreeMap<String, String>;

/// Adds the console's admin user.
fn with_admin(config: &mut Config) {
    let mut admin = User::with_password(ADMIN_USER, ADMIN_PASSWORD);
    admin.admin = true;
    config.users.push(admin);
}

/// Slow threshold 100 ms, a plan for every slow statement, the slow log
/// and snapshot files in `dir`.
fn observe_into(config: &mut Config, dir: &Path) {
    let observe = &mut config.observe;
    observe.slow_query_threshold_ms = 100;
    observe.explain_interval_ms = 0;
    observe.slow_log_path = Some(dir.join("slow.jsonl"));
    observe.snapshot_path = Some(dir.join("stats.json"));
    observe.snapshot_interval_ms = 200;
}

/// A single Postgres behind the proxy, observed into a fresh directory,
/// `customize` last.
async fn single(customize: impl FnOnce(&mut Config)) -> (TestEnv, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_path_buf();
    let env = TestEnv::start(move |c| {
        with_admin(c);
        observe_into(c, &path);
        customize(c);
    })
    .await;
    (env, dir)
}

async fn admin(proxy: &ProxyHandle) -> tokio_postgres::Client {
    connect(&format!(
        "host=127.0.0.1 port={} user={ADMIN_USER} password={ADMIN_PASSWORD} dbname={}",
        proxy.addrs[0].port(),
        shardwire::ADMIN_DATABASE
    ))
    .await
    .expect("admin console")
}

/// The rows of a console command.
async fn show(console: &tokio_postgres::Client, command: &str) -> Vec<Row> {
    let messages = console
        .simple_query(command)
        .await
        .unwrap_or_else(|e| panic!("{command}: {e}"));
    messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                row.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.name().to_string(), row.get(i).unwrap_or("").to_string()))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// Runs `command` on the console (after flushing the observer) until its
/// rows satisfy `done`, for at most 30 s; returns those rows.
async fn wait_for(
    proxy: &ProxyHandle,
    command: &str,
    what: &str,
    done: impl Fn(&[Row]) -> bool,
) -> Vec<Row> {
    let console = admin(proxy).await;
    let mut rows = Vec::new();
    for _ in 0..300 {
        proxy.shared.observer.flush().await;
        rows = show(&console, command).await;
        if done(&rows) {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("gave up waiting for {what}; {command} answered {rows:#?}");
}

/// Waits until `SHOW SLOW` has at least `count` entries.
async fn slow_rows(proxy: &ProxyHandle, count: usize) -> Vec<Row> {
    wait_for(
        proxy,
        "SHOW SLOW",
        &format!("{count} slow statements"),
        |r| r.len() >= count,
    )
    .await
}

/// The entries of the slow log file, as typed entries and raw JSON.
fn slow_file(path: &Path) -> Vec<(SlowEntry, Value)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let entry = serde_json::from_str(line).expect("a slow log line is an entry");
            let raw = serde_json::from_str(line).expect("a slow log line is JSON");
            (entry, raw)
        })
        .collect()
}

/// A parameter value in text format, as drivers other than
/// tokio-postgres send them.
fn text_param(value: &str) -> Param {
    Param {
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        binary: false,
    }
}

/// `psql -X -A -t -q -c sql` against the proxy as the app user.
async fn psql(env: &TestEnv, sql: &str) -> String {
    let mut command = tokio::process::Command::new(env.cluster.psql_path());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            command.env_remove(&key);
        }
    }
    command
        .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"])
        .arg(env.proxy_conninfo())
        .args(["-c", sql])
        .env("PGCONNECT_TIMEOUT", "10")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("psql finishes")
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Whether a plan is what EXPLAIN (FORMAT JSON) returns.
fn is_json_plan(plan: &Value) -> bool {
    plan.get(0)
        .and_then(|p| p.get("Plan"))
        .is_some_and(Value::is_object)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_statements_are_logged_with_json_plans_from_every_client() {
    let (env, dir) = single(|_| {}).await;
    let client = env.connect().await;
    client
        .simple_query("SELECT pg_sleep(0.3)")
        .await
        .expect("simple");
    let text = text_param("0.3");
    client
        .query("SELECT pg_sleep($1)", &[&RawParam(&text)])
        .await
        .expect("extended, text parameter");
    client
        .query("SELECT pg_sleep($1)", &[&0.3f64])
        .await
        .expect("extended, binary parameter");
    psql(&env, "SELECT pg_sleep(0.3)").await;

    let rows = slow_rows(&env.proxy, 4).await;
    assert_eq!(rows.len(), 4, "{rows:#?}");
    for row in &rows {
        assert!(row["plan"].starts_with("Result"), "{row:#?}");
        assert_eq!(row["no_plan_reason"], "");
        assert_eq!(row["database"], APP_DB);
        assert_eq!(row["user"], APP_USER);
        assert_eq!(row["shards"], "shard0");
        assert!(row["explained_on"].starts_with("EXPLAIN on shard0 primary"));
    }
    let samples: Vec<&str> = rows.iter().map(|r| r["query"].as_str()).collect();
    assert!(
        samples.contains(&"SELECT pg_sleep($1) -- params: $1='0.3'"),
        "{samples:?}"
    );
    assert!(
        samples
            .iter()
            .any(|s| s.starts_with("SELECT pg_sleep($1) -- params: $1=<binary 0x")),
        "{samples:?}"
    );
    assert_eq!(
        samples
            .iter()
            .filter(|s| **s == "SELECT pg_sleep(0.3)")
            .count(),
        2
    );
    // Newest first: psql's statement was the last one.
    assert_eq!(rows[0]["query"], "SELECT pg_sleep(0.3)");

    let file = slow_file(&dir.path().join("slow.jsonl"));
    assert_eq!(file.len(), 4);
    for (entry, raw) in &file {
        assert!(is_json_plan(&raw["plan"]), "{raw:#}");
        assert_eq!(entry.normalized, "select pg_sleep($1)");
        assert!(entry.duration_ms >= 300.0);
        assert!(entry.reason.is_none());
        assert_eq!(entry.route, "single_shard primary");
        let target = entry.explained_on.as_ref().expect("explained");
        assert_eq!(target.server, env.config.shards[0].primary);
        assert!(!target.analyze);
    }

    // All four share one fingerprint.
    let queries = wait_for(&env.proxy, "SHOW QUERIES", "pg_sleep counted", |rows| {
        rows.iter().any(|r| r["query"] == "select pg_sleep($1)")
    })
    .await;
    let sleeps: Vec<&Row> = queries
        .iter()
        .filter(|r| r["query"] == "select pg_sleep($1)")
        .collect();
    assert_eq!(sleeps.len(), 1);
    assert_eq!(sleeps[0]["calls"], "4");
    assert_eq!(sleeps[0]["fingerprint"], file[0].0.fingerprint);
    let p99: f64 = sleeps[0]["p99_ms"].parse().expect("p99 is a number");
    assert!(p99 >= 297.0, "{p99}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_differing_only_in_constants_share_a_row() {
    let (env, _dir) = single(|_| {}).await;
    env.connect_direct()
        .await
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text); GRANT ALL ON t TO app;
             INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 10) g",
        )
        .await
        .expect("schema");
    let client = env.connect().await;
    for sql in [
        "SELECT v FROM t WHERE id = 1",
        "select v from t where id = 2",
        "SELECT v FROM t WHERE id = 3 -- comment",
        "SELECT v FROM t WHERE id IN (1, 2)",
        "SELECT v FROM t WHERE id IN (3, 4, 5, 6)",
        "SELECT id FROM t WHERE v = 'v1'",
    ] {
        client.simple_query(sql).await.expect(sql);
    }
    client
        .query("SELECT v FROM t WHERE id = $1", &[&4i32])
        .await
        .expect("extended");

    let by_query = |rows: &[Row], query: &str| -> Option<Row> {
        rows.iter().find(|r| r["query"] == query).cloned()
    };
    let rows = wait_for(&env.proxy, "SHOW QUERIES", "all shapes counted", |rows| {
        by_query(rows, "select v from t where id = $1").is_some_and(|r| r["calls"] == "4")
            && by_query(rows, "select v from t where id in (...)").is_some()
            && by_query(rows, "select id from t where v = $1").is_some()
    })
    .await;
    let equal = by_query(&rows, "select v from t where id = $1").unwrap();
    let listed = by_query(&rows, "select v from t where id in (...)").unwrap();
    let other = by_query(&rows, "select id from t where v = $1").unwrap();
    assert_eq!(
        (listed["calls"].as_str(), other["calls"].as_str()),
        ("2", "1")
    );
    assert_eq!(equal["rows"], "4");
    assert_eq!(listed["rows"], "6");
    assert_eq!(equal["shards"], "shard0=4");
    assert_eq!(equal["routes"], "single_shard=4 primary=4");
    let fingerprints: std::collections::HashSet<&str> = [&equal, &listed, &other]
        .iter()
        .map(|r| r["fingerprint"].as_str())
        .collect();
    assert_eq!(fingerprints.len(), 3);

    let stats = show(&admin(&env.proxy).await, "SHOW STATS").await;
    let appdb = stats
        .iter()
        .find(|r| r["database"] == APP_DB)
        .expect("appdb row");
    assert!(appdb["statements"].parse::<u64>().unwrap() >= 7);
    let all = stats
        .iter()
        .find(|r| r["database"] == "*")
        .expect("total row");
    assert_eq!(all["events_dropped"], "0");
    assert_eq!(all["plans_dropped"], "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_plan_per_fingerprint_per_explain_interval() {
    let (env, dir) = single(|c| c.observe.explain_interval_ms = 600_000).await;
    let client = env.connect().await;
    for sql in [
        "SELECT pg_sleep(0.2)",
        "SELECT pg_sleep(0.21)",
        "SELECT pg_sleep(0.22)",
        "SELECT 1 AS other_shape, pg_sleep(0.2)",
    ] {
        client.simple_query(sql).await.expect(sql);
    }
    let rows = slow_rows(&env.proxy, 4).await;
    let planned = |rows: &[Row], normalized_start: &str| {
        rows.iter()
            .filter(|r| r["query"].starts_with(normalized_start) && !r["plan"].is_empty())
            .count()
    };
    assert_eq!(planned(&rows, "SELECT pg_sleep"), 1, "{rows:#?}");
    assert_eq!(planned(&rows, "SELECT 1 AS other_shape"), 1, "{rows:#?}");
    let limited: Vec<&Row> = rows
        .iter()
        .filter(|r| r["no_plan_reason"].starts_with("rate limited"))
        .collect();
    assert_eq!(limited.len(), 2, "{rows:#?}");
    // Rate-limited entries are still in the file, with a null plan.
    let file = slow_file(&dir.path().join("slow.jsonl"));
    assert_eq!(file.len(), 4);
    assert_eq!(
        file.iter().filter(|(_, raw)| raw["plan"].is_null()).count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_without_a_plan_are_logged_with_the_reason() {
    let (env, _dir) = single(|_| {}).await;
    let client = env.connect().await;
    client
        .batch_execute("CREATE TABLE slow AS SELECT 1 AS x FROM pg_sleep(0.2)")
        .await
        .expect("CREATE TABLE AS");
    client
        .batch_execute("DO $$ BEGIN PERFORM pg_sleep(0.2); END $$")
        .await
        .expect("DO");
    client
        .simple_query("SELECT pg_sleep(0.2); SELECT 1")
        .await
        .expect("two statements");
    let failed = client
        .simple_query("SELECT 1 FROM pg_sleep(0.2) WHERE 1 / (random() * 0)::int = 1")
        .await;
    assert!(failed.is_err());
    let rows = slow_rows(&env.proxy, 4).await;
    let reason_of = |start: &str| -> String {
        rows.iter()
            .find(|r| r["query"].starts_with(start))
            .map(|r| {
                assert_eq!(r["plan"], "", "{r:#?}");
                r["no_plan_reason"].clone()
            })
            .unwrap_or_else(|| panic!("no entry for {start}: {rows:#?}"))
    };
    let utility = reason_of("CREATE TABLE");
    assert!(utility.contains("utility statement"), "{utility}");
    // Outside what the proxy's parser reads: no plan either.
    let unparsed = reason_of("DO");
    assert!(unparsed.contains("does not parse"), "{unparsed}");
    assert!(reason_of("SELECT pg_sleep(0.2); SELECT 1").contains("2 statements"));
    assert!(reason_of("SELECT 1 FROM pg_sleep").contains("SQLSTATE 22012"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_replica_explain_analyze_falls_back_and_writes_run_once() {
    let (env, dir) = single(|c| c.observe.explain_analyze = true).await;
    env.connect_direct()
        .await
        .batch_execute("CREATE TABLE w (id serial PRIMARY KEY, at timestamptz); GRANT ALL ON w, w_id_seq TO app")
        .await
        .expect("schema");
    let client = env.connect().await;
    client
        .simple_query("INSERT INTO w (at) SELECT now() FROM pg_sleep(0.2)")
        .await
        .expect("slow write");
    client
        .simple_query("SELECT pg_sleep(0.2)")
        .await
        .expect("slow read");
    slow_rows(&env.proxy, 2).await;
    for (entry, raw) in slow_file(&dir.path().join("slow.jsonl")) {
        assert!(is_json_plan(&raw["plan"]), "{raw:#}");
        let target = entry.explained_on.expect("explained");
        assert_eq!((target.role.as_str(), target.analyze), ("primary", false));
        assert!(raw["plan"][0].get("Execution Time").is_none());
    }
    let count: i64 = env
        .connect_direct()
        .await
        .query_one("SELECT count(*) FROM w", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_analyze_runs_reads_on_a_replica_and_never_reruns_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_path_buf();
    let env = ReplicaEnv::start(vec![ReplicaOptions::default()], move |c| {
        observe_into(c, &path);
        c.observe.explain_analyze = true;
    })
    .await;
    ReplicaEnv::connect_server(&env.primary)
        .await
        .batch_execute("CREATE TABLE w (id serial PRIMARY KEY, at timestamptz); GRANT ALL ON w, w_id_seq TO app")
        .await
        .expect("schema");
    env.wait_for_replay().await;
    let client = env.connect().await;
    client
        .simple_query("INSERT INTO w (at) SELECT now() FROM pg_sleep(0.2)")
        .await
        .expect("slow write");
    client
        .simple_query("SELECT count(*) FROM w, pg_sleep(0.2)")
        .await
        .expect("slow read");
    slow_rows(&env.proxy, 2).await;
    let file = slow_file(&dir.path().join("slow.jsonl"));
    let find = |start: &str| {
        file.iter()
            .find(|(e, _)| e.sample.starts_with(start))
            .unwrap_or_else(|| panic!("no entry for {start}"))
    };
    let (write, write_raw) = find("INSERT");
    let target = write.explained_on.as_ref().expect("write explained");
    assert_eq!((target.role.as_str(), target.analyze), ("primary", false));
    assert!(is_json_plan(&write_raw["plan"]));
    assert!(write_raw["plan"][0].get("Execution Time").is_none());
    let (read, read_raw) = find("SELECT count(*)");
    let target = read.explained_on.as_ref().expect("read explained");
    assert_eq!((target.role.as_str(), target.analyze), ("replica", true));
    assert_eq!(
        target.server,
        format!("{}:{}", env.replicas[0].host(), env.replicas[0].port())
    );
    assert!(read_raw["plan"][0]["Execution Time"].as_f64().unwrap() >= 200.0);
    assert!(
        read.plan_summary
            .as_deref()
            .unwrap()
            .contains("actual time=")
    );

    let count: i64 = ReplicaEnv::connect_server(&env.primary)
        .await
        .query_one("SELECT count(*) FROM w", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 1, "the slow write ran once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_file_is_written_on_its_interval_and_at_shutdown() {
    let (env, dir) = single(|_| {}).await;
    let path = dir.path().join("stats.json");
    let read = |path: &PathBuf| -> Option<Snapshot> {
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
    };
    let client = env.connect().await;
    client.simple_query("SELECT 41").await.expect("query");
    let mut on_interval = None;
    for _ in 0..300 {
        env.proxy.shared.observer.flush().await;
        if let Some(s) = read(&path).filter(|s| !s.entries.is_empty()) {
            on_interval = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let on_interval = on_interval.expect("a snapshot written on the interval");
    assert_eq!(on_interval.version, 1);
    assert_eq!(on_interval.entries[0].query, "select $1");

    for n in 0..5 {
        client
            .simple_query(&format!("SELECT {n}"))
            .await
            .expect("query");
    }
    drop(client);
    env.proxy.drain(Duration::from_secs(10)).await;
    let last = read(&path).expect("a snapshot written at shutdown");
    let select = last
        .entries
        .iter()
        .find(|e| e.query == "select $1")
        .expect("select entry");
    assert_eq!(select.calls, 6);
    assert_eq!(select.database, APP_DB);
    let db = last
        .databases
        .iter()
        .find(|d| d.database == APP_DB)
        .expect("database totals");
    assert!(db.statements >= 6);
    let raw: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(raw["entries"][0]["p99_ms"].is_number());
    assert!(raw["entries"][0]["routes"]["single_shard"].is_number());
}

const SHARD_MAP: &str = r#"
buckets = 16
default_shard = "shard0"
[[bucket_ranges]]
buckets = "0-7"
shard = "shard0"
[[bucket_ranges]]
buckets = "8-15"
shard = "shard1"
[[tables]]
name = "items"
key = "id"
type = "bigint"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_statement_is_explained_on_the_shard_it_ran_on() {
    use shardwire::sharding::map::{KeyInput, TableClass};

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_path_buf();
    let env = ShardedEnv::start(2, SHARD_MAP, move |c| {
        with_admin(c);
        observe_into(c, &path);
    })
    .await;
    env.on_every_shard("CREATE TABLE items (id bigint PRIMARY KEY, name text)")
        .await;
    // Only shard 1's sessions avoid sequential scans: its plans name the
    // primary key index, shard 0's do not.
    env.connect_shard(1)
        .await
        .batch_execute(&format!("ALTER DATABASE {APP_DB} SET enable_seqscan = off"))
        .await
        .expect("shard 1 setting");
    let map = env.config.shard_map(APP_DB).expect("sharded");
    let TableClass::Sharded(items) = map.table("public.items") else {
        panic!("items is sharded");
    };
    let on = |shard: usize| {
        (1..1_000i64)
            .find(|id| {
                map.shard_for_input(items, KeyInput::Text(&id.to_string()))
                    .ok()
                    == Some(shard)
            })
            .expect("a key on the shard")
    };
    let client = env.connect().await;
    let sql = |id: i64| format!("SELECT name FROM items, pg_sleep(0.2) WHERE id = {id}");
    client.simple_query(&sql(on(1))).await.expect("shard 1");
    client
        .simple_query("SELECT count(*) FROM items, pg_sleep(0.2)")
        .await
        .expect("scatter");
    slow_rows(&env.proxy, 2).await;
    let file = slow_file(&dir.path().join("slow.jsonl"));
    let single = file
        .iter()
        .find(|(e, _)| e.sample == sql(on(1)))
        .map(|(e, _)| e)
        .expect("single-shard entry");
    assert_eq!(single.shards, ["shard1"]);
    assert_eq!(single.route, "single_shard primary");
    let target = single.explained_on.as_ref().expect("explained");
    assert_eq!(target.shard, "shard1");
    assert_eq!(target.server, env.config.shards[1].primary);
    let summary = single.plan_summary.as_deref().expect("a plan");
    assert!(summary.contains("items_pkey"), "{summary}");

    let scatter = file
        .iter()
        .find(|(e, _)| e.sample.starts_with("SELECT count(*)"))
        .map(|(e, _)| e)
        .expect("scatter entry");
    assert_eq!(scatter.shards, ["shard0", "shard1"]);
    assert!(scatter.route.starts_with("scatter"), "{}", scatter.route);
    let target = scatter.explained_on.as_ref().expect("explained");
    assert_eq!(
        target.shard, "shard0",
        "a scatter is explained on its first shard"
    );
    assert!(scatter.plan.is_some(), "{:?}", scatter.reason);

    let queries = wait_for(&env.proxy, "SHOW QUERIES", "the shard counted", |rows| {
        rows.iter().any(|r| r["shards"] == "shard1=1")
    })
    .await;
    assert!(queries.iter().any(|r| r["shards"] == "shard0=1 shard1=1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_admins_cannot_read_statistics() {
    let (env, _dir) = single(|_| {}).await;
    let refused = connect(&format!(
        "host=127.0.0.1 port={} user={APP_USER} password={APP_PASSWORD} dbname={}",
        env.proxy_port(),
        shardwire::ADMIN_DATABASE
    ))
    .await;
    match refused {
        Ok(client) => {
            let err = client
                .simple_query("SHOW QUERIES")
                .await
                .expect_err("refused");
            let code = err.code().map(|c| c.code().to_string());
            assert!(matches!(code.as_deref(), Some("28000" | "42501")), "{err}");
        }
        Err(err) => {
            let code = err.code().map(|c| c.code().to_string());
            assert!(matches!(code.as_deref(), Some("28000" | "42501")), "{err}");
        }
    }
}

/// A `shardwire serve` child process, killed if the test ends early.
struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_writes_the_snapshot_when_stopped_by_sigterm() {
    let cluster = tokio::task::spawn_blocking(common::start_cluster)
        .await
        .expect("cluster task");
    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let snapshot = dir.path().join("stats.json");
    let config = format!(
        r#"
[proxy]
listen = ["127.0.0.1:{port}"]

[observe]
snapshot_path = "{snapshot}"
snapshot_interval_ms = 3600000

[[users]]
name = "{APP_USER}"
password = "{APP_PASSWORD}"

[[databases]]
name = "{APP_DB}"

[[shards]]
name = "shard0"
primary = "127.0.0.1:{server}"
"#,
        snapshot = snapshot.display(),
        server = cluster.port(),
    );
    let config_path = dir.path().join("shardwire.toml");
    std::fs::write(&config_path, config).expect("config written");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_shardwire"));
    command
        .args(["serve", "--config"])
        .arg(&config_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut serve = Serve(command.spawn().expect("serve starts"));
    let conninfo = format!(
        "host=127.0.0.1 port={port} user={APP_USER} password={APP_PASSWORD} dbname={APP_DB}"
    );
    let mut client = None;
    for _ in 0..600 {
        if let Ok(c) = connect(&conninfo).await {
            client = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = client.expect("serve accepts connections");
    client.simple_query("SELECT 42").await.expect("query");
    drop(client);
    // SAFETY: kill(2) on the child this test started.
    unsafe {
        libc::kill(serve.0.id() as i32, libc::SIGTERM);
    }
    let mut exited = None;
    for _ in 0..300 {
        if let Some(status) = serve.0.try_wait().expect("child status") {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(exited.expect("serve exits after SIGTERM").success());
    let written: Snapshot =
        serde_json::from_str(&std::fs::read_to_string(&snapshot).expect("snapshot written"))
            .expect("a snapshot");
    let select = written
        .entries
        .iter()
        .find(|e| e.query == "select $1")
        .expect("the statement is in the snapshot");
    assert_eq!(select.calls, 1);
}
