//! The admin console against real clusters: every command through psql
//! (a process) and tokio-postgres (simple and extended protocol), refusals
//! (non-admins, unknown commands), RELOAD of a broken and of a good config
//! file while a client is mid-transaction, PAUSE / RESUME holding a new
//! query, SHUTDOWN letting an open transaction commit, and SHOW SHARDS /
//! SHOW CACHE / a reloaded shard map over two shards.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::raw::no_hang;
use common::{APP_DB, APP_PASSWORD, APP_USER, connect};
use shardwire::config::{Config, PoolMode, User};
use shardwire::localcluster::LocalCluster;
use shardwire::proxy::ProxyHandle;
use tokio_postgres::{Client, SimpleQueryMessage};

const ADMIN_USER: &str = "root";
const ADMIN_PASSWORD: &str = "root-secret";

/// Every SHOW command; each must answer through both protocols.
const SHOW_COMMANDS: &[&str] = &[
    "SHOW POOLS",
    "SHOW CLIENTS",
    "SHOW SERVERS",
    "SHOW STATS",
    "SHOW SHARDS",
    "SHOW QUERIES",
    "SHOW SLOW",
    "SHOW CACHE",
    "SHOW CONFIG",
    "SHOW REPLICAS",
    "SHOW VERSION",
];

/// A proxy started from a config file (so RELOAD can read it again).
struct FileProxy {
    proxy: ProxyHandle,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

/// `config` plus the admin user, in transaction mode.
fn with_admin(mut config: Config) -> Config {
    let mut admin = User::with_password(ADMIN_USER, ADMIN_PASSWORD);
    admin.admin = true;
    config.users.push(admin);
    config
}

/// Writes `config` to `path` as TOML.
fn write_config(path: &Path, config: &Config) {
    std::fs::write(path, config.to_toml()).expect("write the config file");
}

impl FileProxy {
    /// Writes `config` to a file, loads it back and starts a proxy on it.
    async fn start(config: &Config) -> FileProxy {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("shardwire.toml");
        write_config(&path, config);
        let loaded = Config::load(&path).expect("the written config loads");
        let proxy = shardwire::proxy::start(loaded).await.expect("proxy starts");
        FileProxy {
            proxy,
            path,
            _dir: dir,
        }
    }
}

fn conninfo(proxy: &ProxyHandle, user: &str, password: &str, db: &str) -> String {
    format!(
        "host=127.0.0.1 port={} user={user} password={password} dbname={db}",
        proxy.addrs[0].port()
    )
}

async fn admin(proxy: &ProxyHandle) -> Client {
    connect(&conninfo(
        proxy,
        ADMIN_USER,
        ADMIN_PASSWORD,
        shardwire::ADMIN_DATABASE,
    ))
    .await
    .expect("the admin logs in to the console")
}

async fn app(proxy: &ProxyHandle) -> Client {
    connect(&conninfo(proxy, APP_USER, APP_PASSWORD, APP_DB))
        .await
        .expect("the app logs in")
}

/// A console answer as (column names, rows), through the simple protocol.
async fn simple(client: &Client, sql: &str) -> (Vec<String>, Vec<Vec<Option<String>>>) {
    let messages = no_hang(sql, client.simple_query(sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    let mut columns = Vec::new();
    let mut rows = Vec::new();
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(description) => {
                columns = description.iter().map(|c| c.name().to_string()).collect();
            }
            SimpleQueryMessage::Row(row) => {
                rows.push(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_string))
                        .collect(),
                );
            }
            _ => {}
        }
    }
    (columns, rows)
}

/// A console answer as (column names, rows), through the extended
/// protocol (Parse, Describe, Bind with binary results, Execute).
async fn extended(client: &Client, sql: &str) -> (Vec<String>, Vec<Vec<Option<String>>>) {
    let rows = no_hang(sql, client.query(sql, &[]))
        .await
        .unwrap_or_else(|e| panic!("{sql} (extended): {e:?}"));
    let statement = client.prepare(sql).await.expect("prepare");
    let columns = statement
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let rows = rows
        .iter()
        .map(|row| {
            (0..row.len())
                .map(|i| row.get::<_, Option<String>>(i))
                .collect()
        })
        .collect();
    (columns, rows)
}

/// The value of `column` in `row` of an answer.
fn cell<'a>(columns: &[String], row: &'a [Option<String>], column: &str) -> Option<&'a str> {
    let index = columns
        .iter()
        .position(|c| c == column)
        .unwrap_or_else(|| panic!("no column {column} in {columns:?}"));
    row[index].as_deref()
}

/// The rows whose `column` is `value`.
fn rows_where<'a>(
    answer: &'a (Vec<String>, Vec<Vec<Option<String>>>),
    column: &str,
    value: &str,
) -> Vec<&'a Vec<Option<String>>> {
    let (columns, rows) = answer;
    rows.iter()
        .filter(|row| cell(columns, row, column) == Some(value))
        .collect()
}

/// The SQLSTATE and message of a console error.
fn db_error(error: &tokio_postgres::Error) -> (String, String, String) {
    let db = error
        .as_db_error()
        .unwrap_or_else(|| panic!("an ErrorResponse, got {error:?}"));
    (
        db.code().code().to_string(),
        db.message().to_string(),
        db.hint().unwrap_or("").to_string(),
    )
}

/// What psql printed and whether it succeeded.
struct PsqlRun {
    success: bool,
    stdout: String,
    stderr: String,
}

/// psql (of the cluster's installation, else from PATH) as `user` on the
/// console, running `sql` with `-A` (unaligned, `|`-separated, headers on).
async fn psql(
    cluster: &LocalCluster,
    proxy: &ProxyHandle,
    user: &str,
    password: &str,
    sql: &str,
) -> PsqlRun {
    let installed = cluster.pg_bin().join("psql");
    let program = match installed.is_file() {
        true => installed,
        false => PathBuf::from("psql"),
    };
    let mut cmd = tokio::process::Command::new(program);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .args(["-X", "-A", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(format!(
            "host=127.0.0.1 port={} user={user} dbname={} sslmode=disable",
            proxy.addrs[0].port(),
            shardwire::ADMIN_DATABASE
        ))
        .args(["-c", sql])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = no_hang(sql, cmd.output()).await.expect("psql runs");
    PsqlRun {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// psql as the admin; panics unless it succeeded.
async fn psql_admin(cluster: &LocalCluster, proxy: &ProxyHandle, sql: &str) -> String {
    let run = psql(cluster, proxy, ADMIN_USER, ADMIN_PASSWORD, sql).await;
    assert!(
        run.success,
        "psql {sql} failed:\n{}\n{}",
        run.stdout, run.stderr
    );
    run.stdout
}

async fn start_cluster() -> LocalCluster {
    tokio::task::spawn_blocking(common::start_cluster)
        .await
        .expect("cluster task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_answers_through_psql_and_tokio_postgres() {
    let cluster = start_cluster().await;
    let config = with_admin(common::base_config(&cluster, PoolMode::Transaction, 4));
    let env = FileProxy::start(&config).await;
    let proxy = &env.proxy;
    let client = app(proxy).await;
    client
        .batch_execute("CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (1), (2)")
        .await
        .expect("setup");
    let console = admin(proxy).await;

    for sql in SHOW_COMMANDS {
        let (simple_columns, _) = simple(&console, sql).await;
        let (extended_columns, _) = extended(&console, sql).await;
        assert!(!simple_columns.is_empty(), "{sql} has columns");
        assert_eq!(
            simple_columns, extended_columns,
            "{sql}: same columns both ways"
        );
        let printed = psql_admin(&cluster, proxy, sql).await;
        let header = printed.lines().next().unwrap_or("");
        assert_eq!(header, simple_columns.join("|"), "{sql} through psql");
    }

    for answer in [
        simple(&console, "show pools;").await,
        extended(&console, "SHOW POOLS").await,
    ] {
        let pools = rows_where(&answer, "user", APP_USER);
        assert_eq!(pools.len(), 1, "one pool for the app: {answer:?}");
        let columns = &answer.0;
        assert_eq!(cell(columns, pools[0], "database"), Some(APP_DB));
        assert_eq!(cell(columns, pools[0], "shard"), Some("shard0"));
        assert_eq!(cell(columns, pools[0], "role"), Some("primary"));
        assert_eq!(cell(columns, pools[0], "mode"), Some("transaction"));
        assert_eq!(cell(columns, pools[0], "size"), Some("4"));
        assert_eq!(cell(columns, pools[0], "active"), Some("0"));
        assert_eq!(cell(columns, pools[0], "retired"), Some("false"));
        assert!(cell(columns, pools[0], "opened").is_some_and(|n| n != "0"));
    }

    let servers = simple(&console, "SHOW SERVERS").await;
    let app_servers = rows_where(&servers, "user", APP_USER);
    assert!(!app_servers.is_empty(), "{servers:?}");
    for row in &app_servers {
        assert_eq!(cell(&servers.0, row, "state"), Some("idle"));
        assert!(cell(&servers.0, row, "pid").is_some_and(|p| p.parse::<i32>().unwrap() > 0));
        assert!(cell(&servers.0, row, "idle_since").is_some());
        assert!(cell(&servers.0, row, "connected_since").is_some_and(|t| t.ends_with("+00")));
    }
    // A server in a transaction shows as active.
    client
        .batch_execute("BEGIN; SELECT 1")
        .await
        .expect("begin");
    let servers = extended(&console, "SHOW SERVERS").await;
    let active = rows_where(&servers, "state", "active");
    assert_eq!(active.len(), 1, "{servers:?}");
    assert_eq!(cell(&servers.0, active[0], "idle_since"), None);
    client.batch_execute("COMMIT").await.expect("commit");

    let clients = simple(&console, "SHOW CLIENTS").await;
    let apps = rows_where(&clients, "user", APP_USER);
    assert_eq!(apps.len(), 1, "the app's session is listed: {clients:?}");
    assert_eq!(cell(&clients.0, apps[0], "database"), Some(APP_DB));
    assert_eq!(cell(&clients.0, apps[0], "tls"), Some("false"));
    assert!(
        cell(&clients.0, apps[0], "address").is_some_and(|a| a.starts_with("127.0.0.1:")),
        "{clients:?}"
    );
    assert!(
        cell(&clients.0, apps[0], "statements").is_some_and(|n| n.parse::<u64>().unwrap() >= 3),
        "setup, BEGIN and COMMIT were counted: {clients:?}"
    );
    assert!(cell(&clients.0, apps[0], "bytes_in").is_some_and(|n| n != "0"));
    assert!(cell(&clients.0, apps[0], "bytes_out").is_some_and(|n| n != "0"));
    let consoles = rows_where(&clients, "database", "shardwire");
    assert_eq!(
        consoles.len(),
        1,
        "the console itself is listed too: {clients:?}"
    );

    let shards = extended(&console, "SHOW SHARDS").await;
    assert_eq!(shards.1.len(), 1, "{shards:?}");
    let row = &shards.1[0];
    assert_eq!(cell(&shards.0, row, "shard"), Some("shard0"));
    assert_eq!(cell(&shards.0, row, "database"), Some(APP_DB));
    assert_eq!(cell(&shards.0, row, "buckets"), None, "unsharded");
    assert_eq!(cell(&shards.0, row, "tables"), Some("1"));
    assert_eq!(cell(&shards.0, row, "replicas"), Some("0"));
    assert!(cell(&shards.0, row, "bytes_total_relation_size").is_some_and(|b| b != "0"));
    assert!(cell(&shards.0, row, "rows_n_live_tup").is_some());
    assert_eq!(cell(&shards.0, row, "error"), None);

    // An unsharded database without replicas is forwarded untouched: no
    // routing cache to show.
    assert!(simple(&console, "SHOW CACHE").await.1.is_empty());

    // Commands without rows, through both protocols and psql.
    for sql in ["PAUSE", "RESUME", "RELOAD"] {
        console.simple_query(sql).await.expect(sql);
        console.execute(sql, &[]).await.expect(sql);
        psql_admin(&cluster, proxy, sql).await;
    }
    assert_eq!(
        client
            .query_one("SELECT count(*) FROM items", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        2
    );
    let error = console
        .query("PROMOTE nowhere 0", &[])
        .await
        .expect_err("no shard");
    assert_eq!(db_error(&error).0, "22023");
    // Several commands in one simple Query.
    let answers = console
        .simple_query("SHOW VERSION; SHOW VERSION")
        .await
        .expect("two commands");
    let completions = answers
        .iter()
        .filter(|m| matches!(m, SimpleQueryMessage::CommandComplete(_)))
        .count();
    assert_eq!(completions, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_admins_and_unknown_commands_are_refused() {
    let env = common::TestEnv::start(|config| *config = with_admin(config.clone())).await;
    let proxy = &env.proxy;
    let refused = connect(&conninfo(
        proxy,
        APP_USER,
        APP_PASSWORD,
        shardwire::ADMIN_DATABASE,
    ))
    .await
    .expect_err("the app user is no admin");
    assert_eq!(refused.code().map(|c| c.code()), Some("42501"));
    let run = psql(&env.cluster, proxy, APP_USER, APP_PASSWORD, "SHOW POOLS").await;
    assert!(!run.success, "psql as a non-admin must fail");
    assert!(
        run.stderr.contains("may not use the admin console"),
        "{}",
        run.stderr
    );

    let console = admin(proxy).await;
    for error in [
        console
            .simple_query("FROBNICATE")
            .await
            .expect_err("unknown"),
        console
            .query("SHOW NOTHING", &[])
            .await
            .expect_err("unknown"),
    ] {
        let (code, message, hint) = db_error(&error);
        assert_eq!(code, "42601");
        assert!(message.contains("unknown admin command"), "{message}");
        for known in [
            "SHOW POOLS",
            "SHOW SHARDS",
            "RELOAD",
            "PAUSE",
            "RESUME",
            "SHUTDOWN",
        ] {
            assert!(hint.contains(known), "{hint} lists {known}");
        }
    }
    let run = psql(
        &env.cluster,
        proxy,
        ADMIN_USER,
        ADMIN_PASSWORD,
        "FROBNICATE",
    )
    .await;
    assert!(
        !run.success && run.stderr.contains("known commands"),
        "{}",
        run.stderr
    );
    // Declared parameters are refused at Parse; the console stays usable.
    let error = console
        .prepare_typed("SHOW POOLS", &[tokio_postgres::types::Type::INT4])
        .await
        .expect_err("no parameters");
    let (code, message, _) = db_error(&error);
    assert_eq!(code, "08P01");
    assert!(message.contains("no parameters"), "{message}");
    // A config built in memory cannot be reloaded.
    let error = console.simple_query("RELOAD").await.expect_err("in memory");
    let (code, message, _) = db_error(&error);
    assert_eq!(code, "55000");
    assert!(message.contains("built in memory"), "{message}");
    assert!(!extended(&console, "SHOW VERSION").await.1.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_refuses_a_broken_config_and_applies_a_good_one_live() {
    let cluster = start_cluster().await;
    cluster
        .create_role("newbie", "newbie-secret", false)
        .expect("create role");
    let config = with_admin(common::base_config(&cluster, PoolMode::Transaction, 4));
    let env = FileProxy::start(&config).await;
    let proxy = &env.proxy;
    let console = admin(proxy).await;
    let writer = app(proxy).await;
    writer
        .batch_execute("CREATE TABLE log (n int); GRANT SELECT ON log TO newbie")
        .await
        .expect("setup");
    writer
        .batch_execute("BEGIN; INSERT INTO log VALUES (1)")
        .await
        .expect("a transaction is open across the reloads");

    // A broken file: every problem is named, nothing changes.
    let mut broken = config.clone();
    broken.pool.size = 0;
    broken.proxy.startup_timeout_ms = 0;
    write_config(&env.path, &broken);
    let error = console.simple_query("RELOAD").await.expect_err("broken");
    let (code, message, _) = db_error(&error);
    assert_eq!(code, "F0000");
    assert!(
        message.contains("running config stays in effect"),
        "{message}"
    );
    assert!(
        message.contains("pool.size") && message.contains("proxy.startup_timeout_ms"),
        "{message}"
    );
    let run = psql(&cluster, proxy, ADMIN_USER, ADMIN_PASSWORD, "RELOAD").await;
    assert!(
        !run.success && run.stderr.contains("pool.size"),
        "{}",
        run.stderr
    );
    std::fs::write(&env.path, "[pool\nsize = ").expect("write");
    let error = console.query("RELOAD", &[]).await.expect_err("not TOML");
    assert_eq!(db_error(&error).0, "F0000");
    let settings = simple(&console, "SHOW CONFIG").await;
    assert_eq!(rows_where(&settings, "key", "pool.size").len(), 1);
    assert_eq!(
        cell(
            &settings.0,
            rows_where(&settings, "key", "pool.size")[0],
            "value"
        ),
        Some("4")
    );
    let other = app(proxy).await;
    assert_eq!(
        other
            .query_one("SELECT 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );

    // A start-only setting is refused by name.
    let mut moved = config.clone();
    moved.proxy.listen = vec!["127.0.0.1:1".into()];
    write_config(&env.path, &moved);
    let error = console.query("RELOAD", &[]).await.expect_err("start-only");
    let (code, message, _) = db_error(&error);
    assert_eq!(code, "55000");
    assert!(message.contains("proxy.listen"), "{message}");

    let generation = |rows: Vec<tokio_postgres::SimpleQueryMessage>| {
        rows.into_iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => {
                    row.get("config_generation").map(str::to_string)
                }
                _ => None,
            })
            .expect("SHOW VERSION has a row")
    };
    let before = generation(console.simple_query("SHOW VERSION").await.unwrap());
    assert_eq!(before, "1", "refused reloads change nothing");

    // A good change: a new user, a bigger pool.
    let mut good = config.clone();
    good.pool.size = 6;
    good.users
        .push(User::with_password("newbie", "newbie-secret"));
    write_config(&env.path, &good);
    let printed = psql_admin(&cluster, proxy, "RELOAD").await;
    assert!(
        printed.trim().is_empty(),
        "RELOAD prints nothing with -q: {printed}"
    );
    let after = generation(console.simple_query("SHOW VERSION").await.unwrap());
    assert_eq!(after, "2", "an applied reload is a new config generation");

    // The client mid-transaction goes on and commits.
    writer
        .batch_execute("INSERT INTO log VALUES (2); COMMIT")
        .await
        .expect("the open transaction survives the reload");
    assert_eq!(
        other
            .query_one("SELECT count(*) FROM log", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        2
    );
    let newbie = connect(&conninfo(proxy, "newbie", "newbie-secret", APP_DB))
        .await
        .expect("the new user logs in");
    let who: String = newbie
        .query_one("SELECT current_user::text", &[])
        .await
        .expect("query as newbie")
        .get(0);
    assert_eq!(who, "newbie");
    let settings = extended(&console, "SHOW CONFIG").await;
    assert_eq!(
        cell(
            &settings.0,
            rows_where(&settings, "key", "pool.size")[0],
            "value"
        ),
        Some("6")
    );
    let pools = simple(&console, "SHOW POOLS").await;
    let live: Vec<_> = rows_where(&pools, "user", APP_USER)
        .into_iter()
        .filter(|row| cell(&pools.0, row, "retired") == Some("false"))
        .collect();
    assert_eq!(live.len(), 1, "{pools:?}");
    assert_eq!(cell(&pools.0, live[0], "size"), Some("6"));
    // The old pool is retired: its connections closed once returned.
    for retired in rows_where(&pools, "retired", "true") {
        assert_eq!(cell(&pools.0, retired, "size"), Some("4"));
        assert_eq!(cell(&pools.0, retired, "idle"), Some("0"));
    }
    assert_eq!(
        writer
            .query_one("SELECT 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_new_queries_until_resume() {
    let cluster = start_cluster().await;
    let config = with_admin(common::base_config(&cluster, PoolMode::Transaction, 4));
    let proxy = shardwire::proxy::start(config.clone())
        .await
        .expect("proxy");
    let console = Arc::new(admin(&proxy).await);
    let waiting = app(&proxy).await;
    waiting.simple_query("SELECT 1").await.expect("warm up");
    let holder = app(&proxy).await;
    holder
        .batch_execute("BEGIN; SELECT 1")
        .await
        .expect("a transaction holds a server");

    // PAUSE answers only once the transaction's server is back.
    let pause = tokio::spawn({
        let console = Arc::clone(&console);
        async move { console.simple_query("PAUSE").await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pause.is_finished(), "PAUSE waits for the open transaction");
    holder
        .batch_execute("COMMIT")
        .await
        .expect("commit while pausing");
    no_hang("PAUSE", pause)
        .await
        .unwrap()
        .expect("PAUSE succeeds");
    let servers = simple(&console, "SHOW SERVERS").await;
    assert!(
        servers.1.is_empty(),
        "paused: no server connection left: {servers:?}"
    );

    // A new query waits until RESUME.
    let query = tokio::spawn(async move {
        let row = waiting.query_one("SELECT 41 + 1", &[]).await;
        row.map(|r| r.get::<_, i32>(0))
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!query.is_finished(), "the query waits while paused");
    console
        .query("PAUSE", &[])
        .await
        .expect("PAUSE again is fine");
    let pools = simple(&console, "SHOW POOLS").await;
    let app_pool = rows_where(&pools, "user", APP_USER);
    assert_eq!(
        cell(&pools.0, app_pool[0], "waiting"),
        Some("1"),
        "{pools:?}"
    );
    console.query("RESUME", &[]).await.expect("RESUME");
    assert_eq!(
        no_hang("query after RESUME", query)
            .await
            .unwrap()
            .expect("query"),
        42
    );
    console
        .simple_query("RESUME")
        .await
        .expect("RESUME again is fine");
    assert_eq!(
        holder
            .query_one("SELECT 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );

    // With a short shutdown timeout, PAUSE gives up on a busy server and
    // says how many are busy; the pause stays until RESUME.
    let mut short = config.clone();
    short.proxy.shutdown_timeout_ms = 200;
    let impatient = shardwire::proxy::start(short).await.expect("proxy");
    let busy = app(&impatient).await;
    busy.batch_execute("BEGIN; SELECT 1").await.expect("begin");
    let impatient_console = admin(&impatient).await;
    let error = impatient_console
        .simple_query("PAUSE")
        .await
        .expect_err("busy");
    let (code, message, hint) = db_error(&error);
    assert_eq!(code, "55006");
    assert!(
        message.contains("1 server connection(s) still in use"),
        "{message}"
    );
    assert!(hint.contains("RESUME"), "{hint}");
    busy.batch_execute("COMMIT")
        .await
        .expect("the held transaction commits");
    impatient_console
        .simple_query("RESUME")
        .await
        .expect("RESUME");
    assert_eq!(
        busy.query_one("SELECT 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_an_open_transaction_commit_then_stops_accepting() {
    let cluster = start_cluster().await;
    let config = with_admin(common::base_config(&cluster, PoolMode::Transaction, 4));

    // Through psql: the request reaches whoever runs the proxy.
    let first = shardwire::proxy::start(config.clone())
        .await
        .expect("proxy");
    psql_admin(&cluster, &first, "SHUTDOWN").await;
    no_hang("shutdown request", first.shared.shutdown_requested()).await;
    drop(first);

    // Through tokio-postgres, with a runner draining like `serve` does.
    let proxy = Arc::new(shardwire::proxy::start(config).await.expect("proxy"));
    let runner = tokio::spawn({
        let proxy = Arc::clone(&proxy);
        async move {
            proxy.shared.shutdown_requested().await;
            proxy.drain(Duration::from_secs(60)).await
        }
    });
    let client = app(&proxy).await;
    client
        .batch_execute("CREATE TABLE t (n int); BEGIN; INSERT INTO t VALUES (1)")
        .await
        .expect("open a transaction");
    let console = admin(&proxy).await;
    let answer = console
        .query("SHUTDOWN", &[])
        .await
        .expect("SHUTDOWN answers");
    assert!(answer.is_empty());
    client
        .batch_execute("INSERT INTO t VALUES (2); COMMIT")
        .await
        .expect("the running transaction finishes");
    let busy = no_hang("drain", runner).await.expect("runner");
    assert_eq!(busy, 0, "every server connection came back");
    let refused = connect(&conninfo(&proxy, APP_USER, APP_PASSWORD, APP_DB)).await;
    assert!(refused.is_err(), "no new clients after SHUTDOWN");
    let direct = connect(&cluster.connection_string(APP_DB))
        .await
        .expect("direct");
    let count: i64 = direct
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 2, "the transaction committed");
}

const MAP_SPLIT: &str = r#"
buckets = 4
default_shard = "shard0"
[[bucket_ranges]]
buckets = "0-2"
shard = "shard0"
[[bucket_ranges]]
buckets = "3"
shard = "shard1"
[[tables]]
name = "accounts"
key = "id"
type = "bigint"
"#;

const MAP_MOVED: &str = r#"
buckets = 4
default_shard = "shard0"
[[bucket_ranges]]
buckets = "0-3"
shard = "shard1"
[[tables]]
name = "accounts"
key = "id"
type = "bigint"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_caches_and_reloaded_shard_maps_over_two_shards() {
    let mut clusters =
        common::sharded::start_clusters(2, shardwire::localcluster::ClusterOptions::for_tests())
            .await;
    let mut config = with_admin(common::sharded::sharded_config(&clusters, MAP_SPLIT));
    config.shard_maps.clear();
    let dir = tempfile::tempdir().expect("temp dir");
    let map_path = dir.path().join("app-map.toml");
    std::fs::write(&map_path, MAP_SPLIT).expect("write map");
    config.databases[0].shard_map = Some(map_path.clone());
    let config_path = dir.path().join("shardwire.toml");
    write_config(&config_path, &config);
    let proxy = shardwire::proxy::start(Config::load(&config_path).expect("config loads"))
        .await
        .expect("proxy");
    for cluster in &clusters {
        let direct = connect(&format!(
            "host={} port={} user={APP_USER} password={APP_PASSWORD} dbname={APP_DB}",
            cluster.host(),
            cluster.port()
        ))
        .await
        .expect("direct");
        direct
            .batch_execute("CREATE TABLE accounts (id bigint PRIMARY KEY, v text)")
            .await
            .expect("schema");
    }
    let client = app(&proxy).await;
    for id in 0..20i64 {
        client
            .execute("INSERT INTO accounts VALUES ($1, 'x')", &[&id])
            .await
            .expect("insert");
    }
    let console = admin(&proxy).await;

    let shards = simple(&console, "SHOW SHARDS").await;
    assert_eq!(shards.1.len(), 2, "{shards:?}");
    for (row, (name, buckets)) in shards.1.iter().zip([("shard0", "3"), ("shard1", "1")]) {
        assert_eq!(cell(&shards.0, row, "shard"), Some(name));
        assert_eq!(cell(&shards.0, row, "buckets"), Some(buckets));
        assert_eq!(cell(&shards.0, row, "tables"), Some("1"));
        assert_eq!(cell(&shards.0, row, "error"), None);
    }
    let psql_shards = psql_admin(&clusters[0], &proxy, "SHOW SHARDS").await;
    assert!(
        psql_shards.lines().any(|l| l.starts_with("shard1|appdb|")),
        "{psql_shards}"
    );

    let cache = extended(&console, "SHOW CACHE").await;
    assert_eq!(cache.1.len(), 1, "{cache:?}");
    let row = &cache.1[0];
    assert_eq!(cell(&cache.0, row, "database"), Some(APP_DB));
    assert_eq!(cell(&cache.0, row, "cache"), Some("routing"));
    assert_eq!(
        cell(&cache.0, row, "entries"),
        Some("1"),
        "one statement text"
    );
    assert!(cell(&cache.0, row, "hits").is_some_and(|h| h.parse::<u64>().unwrap() >= 19));
    assert!(cell(&cache.0, row, "hit_ratio").is_some());

    // A new shard map: every bucket moves to shard1. The router follows.
    std::fs::write(&map_path, MAP_MOVED).expect("write map");
    console
        .simple_query("RELOAD")
        .await
        .expect("RELOAD a new map");
    let shards = extended(&console, "SHOW SHARDS").await;
    let buckets: Vec<Option<&str>> = shards
        .1
        .iter()
        .map(|row| cell(&shards.0, row, "buckets"))
        .collect();
    assert_eq!(buckets, vec![Some("0"), Some("4")]);
    let cache = simple(&console, "SHOW CACHE").await;
    assert_eq!(
        cell(&cache.0, &cache.1[0], "entries"),
        Some("0"),
        "a fresh cache"
    );
    let fresh = app(&proxy).await;
    fresh
        .execute("INSERT INTO accounts VALUES (1000, 'moved')", &[])
        .await
        .expect("insert under the new map");
    let on_shard1 = connect(&format!(
        "host={} port={} user={APP_USER} password={APP_PASSWORD} dbname={APP_DB}",
        clusters[1].host(),
        clusters[1].port()
    ))
    .await
    .expect("direct");
    let found: i64 = on_shard1
        .query_one("SELECT count(*) FROM accounts WHERE id = 1000", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(found, 1, "the new map routes every key to shard1");

    // A shard that is down gets an error row; the others still answer.
    tokio::task::block_in_place(|| clusters[1].stop()).expect("stop shard1");
    let shards = simple(&console, "SHOW SHARDS").await;
    assert_eq!(cell(&shards.0, &shards.1[0], "error"), None);
    assert_eq!(cell(&shards.0, &shards.1[0], "tables"), Some("1"));
    let down = &shards.1[1];
    assert_eq!(cell(&shards.0, down, "shard"), Some("shard1"));
    assert_eq!(cell(&shards.0, down, "tables"), None);
    let error = cell(&shards.0, down, "error").expect("an error for the stopped shard");
    assert!(error.contains(&clusters[1].port().to_string()), "{error}");
}
