//! Two-phase commit when the proxy dies mid-commit: a cross-shard write
//! transaction ends committed on every shard or on none, once a restarted
//! proxy's recovery has run. Also: shards without prepared-transaction
//! slots refuse cross-shard writes with a clear error.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::sharded::{ShardedEnv, sharded_config, start_clusters};
use common::{APP_DB, APP_PASSWORD, APP_USER};
use shardwire::localcluster::{ClusterOptions, LocalCluster};

const SHARDWIRE: &str = env!("CARGO_BIN_EXE_shardwire");

const MAP: &str = r#"
buckets = 16
default_shard = "shard0"
[[bucket_ranges]]
buckets = "0-7"
shard = "shard0"
[[bucket_ranges]]
buckets = "8-15"
shard = "shard1"
[[tables]]
name = "accounts"
key = "id"
type = "bigint"
"#;

const SCHEMA: &str = "CREATE TABLE accounts (id bigint PRIMARY KEY, balance int NOT NULL)";

/// Two keys on different shards.
fn keys_on_two_shards(config: &shardwire::config::Config) -> (i64, i64) {
    let map = config.shard_map(APP_DB).unwrap();
    let shardwire::sharding::map::TableClass::Sharded(t) = map.table("public.accounts") else {
        unreachable!()
    };
    let shard = |id: i64| {
        map.shard_for_input(t, shardwire::sharding::map::KeyInput::Text(&id.to_string()))
            .unwrap()
    };
    let b = (2..1000).find(|&i| shard(i) != shard(1)).unwrap();
    (1, b)
}

/// The proxy as a process, serving `config_path`, optionally with a fault point.
fn spawn_proxy(config_path: &Path, fault: Option<&str>) -> Child {
    let mut cmd = Command::new(SHARDWIRE);
    cmd.args(["serve", "--config"])
        .arg(config_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match fault {
        Some(f) => cmd.env("SHARDWIRE_FAULT", f),
        None => cmd.env_remove("SHARDWIRE_FAULT"),
    };
    cmd.spawn().expect("proxy process starts")
}

async fn wait_connect(port: u16) -> tokio_postgres::Client {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let conninfo = format!(
            "host=127.0.0.1 port={port} user={APP_USER} password={APP_PASSWORD} dbname={APP_DB}"
        );
        match common::connect(&conninfo).await {
            Ok(client) => return client,
            Err(e) if Instant::now() > deadline => panic!("proxy never accepted: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn direct(cluster: &LocalCluster) -> tokio_postgres::Client {
    common::connect(&format!(
        "host={} port={} user={APP_USER} password={APP_PASSWORD} dbname={APP_DB}",
        cluster.host(),
        cluster.port()
    ))
    .await
    .expect("direct connection")
}

async fn balances(shards: &[LocalCluster]) -> Vec<i64> {
    let mut out = Vec::new();
    for shard in shards {
        let n: i64 = direct(shard)
            .await
            .query_one(
                "SELECT coalesce(sum(balance), 0)::bigint FROM accounts",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        out.push(n);
    }
    out
}

async fn prepared_count(shards: &[LocalCluster]) -> i64 {
    let mut total = 0;
    for shard in shards {
        let n: i64 = direct(shard)
            .await
            .query_one("SELECT count(*) FROM pg_prepared_xacts", &[])
            .await
            .unwrap()
            .get(0);
        total += n;
    }
    total
}

/// Runs a cross-shard transfer through a proxy that aborts at `fault`,
/// restarts it without the fault, waits for recovery, and returns the
/// per-shard balances.
async fn crash_and_recover(fault: &str) -> (Vec<i64>, Vec<i64>) {
    let shards = start_clusters(2, ClusterOptions::for_tests()).await;
    for shard in &shards {
        direct(shard).await.batch_execute(SCHEMA).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let map_path = dir.path().join("map.toml");
    std::fs::write(&map_path, MAP).unwrap();
    let mut config = sharded_config(&shards, MAP);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    config.proxy.listen = vec![format!("127.0.0.1:{port}")];
    config.databases[0].shard_map = Some(map_path.clone());
    let config_path = dir.path().join("shardwire.toml");
    std::fs::write(&config_path, config.to_toml()).unwrap();
    let (a, b) = keys_on_two_shards(&config);

    let mut proxy = spawn_proxy(&config_path, Some(fault));
    let client = wait_connect(port).await;
    client
        .batch_execute(&format!("INSERT INTO accounts VALUES ({a}, 100)"))
        .await
        .unwrap();
    client
        .batch_execute(&format!("INSERT INTO accounts VALUES ({b}, 100)"))
        .await
        .unwrap();
    let before = balances(&shards).await;
    client.batch_execute("BEGIN").await.unwrap();
    client
        .batch_execute(&format!(
            "UPDATE accounts SET balance = balance - 30 WHERE id = {a}"
        ))
        .await
        .unwrap();
    client
        .batch_execute(&format!(
            "UPDATE accounts SET balance = balance + 30 WHERE id = {b}"
        ))
        .await
        .unwrap();
    let commit = client.batch_execute("COMMIT").await;
    assert!(commit.is_err(), "the proxy dies during COMMIT");
    let status = proxy.wait().expect("proxy exits");
    assert!(!status.success(), "the fault point aborts the proxy");
    assert_eq!(
        prepared_count(&shards).await,
        2,
        "both shards hold the prepared transaction"
    );

    let mut proxy = spawn_proxy(&config_path, None);
    let _client = wait_connect(port).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    while prepared_count(&shards).await > 0 {
        assert!(
            Instant::now() < deadline,
            "recovery did not resolve the prepared transactions"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let after = balances(&shards).await;
    let _ = proxy.kill();
    let _ = proxy.wait();
    (before, after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_prepare_rolls_back_on_every_shard() {
    let (before, after) = crash_and_recover("2pc-after-prepare").await;
    assert_eq!(
        before, after,
        "no decision was recorded: neither shard commits"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_decision_commits_on_every_shard() {
    let (before, after) = crash_and_recover("2pc-after-decision").await;
    assert_eq!(after.iter().sum::<i64>(), 200);
    assert_ne!(before, after, "the recorded commit reaches both shards");
    let moved: Vec<i64> = before.iter().zip(&after).map(|(b, a)| a - b).collect();
    let mut sorted = moved.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![-30, 30],
        "each shard applied its half: {moved:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_prepared_transaction_slots_cross_shard_writes_get_a_clear_error() {
    let options = ClusterOptions {
        max_prepared_transactions: 0,
        ..ClusterOptions::for_tests()
    };
    let shards = start_clusters(2, options).await;
    let env = ShardedEnv::with_clusters(shards, MAP, |_| {}).await;
    env.on_every_shard(SCHEMA).await;
    let client = env.connect().await;
    let (a, b) = keys_on_two_shards(&env.config);
    client.batch_execute("BEGIN").await.unwrap();
    client
        .batch_execute(&format!("INSERT INTO accounts VALUES ({a}, 1)"))
        .await
        .unwrap();
    client
        .batch_execute(&format!("INSERT INTO accounts VALUES ({b}, 1)"))
        .await
        .unwrap();
    let err = client
        .batch_execute("COMMIT")
        .await
        .expect_err("2PC impossible");
    assert_eq!(err.code().map(|c| c.code()), Some("0A000"), "{err:?}");
    assert!(
        err.to_string().contains("max_prepared_transactions")
            || format!("{err:?}").contains("max_prepared_transactions")
    );
    // Nothing was committed anywhere; single-shard work still commits.
    let n: i64 = client
        .query_one("SELECT count(*) FROM accounts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    client
        .batch_execute(&format!("INSERT INTO accounts VALUES ({a}, 1)"))
        .await
        .unwrap();
    let n: i64 = client
        .query_one("SELECT count(*) FROM accounts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}
