//! Read replicas through the proxy, on real streaming replicas: read/write
//! split, read-your-writes with a delayed replica, lag limits, a replica
//! stopped under load, failover to a promoted replica, and the admin
//! console's replica commands.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::raw::no_hang;
use common::replicas::ReplicaEnv;
use shardwire::backend::topology::ServerRole;
use shardwire::localcluster::ReplicaOptions;

fn delayed(ms: u64) -> ReplicaOptions {
    ReplicaOptions {
        recovery_min_apply_delay: Some(Duration::from_millis(ms)),
        ..ReplicaOptions::default()
    }
}

async fn create_items(env: &ReplicaEnv) {
    env.connect()
        .await
        .batch_execute(
            "CREATE TABLE items (id bigint PRIMARY KEY, writer int NOT NULL, note text);
             INSERT INTO items SELECT g, -1, 'seed' FROM generate_series(1, 100) g;",
        )
        .await
        .expect("create table");
    // Every replica has the table before reads start.
    env.wait_for_replay().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_sees_the_sessions_own_write_with_a_delayed_replica() {
    let env = ReplicaEnv::start(vec![ReplicaOptions::default(), delayed(300)], |_| {}).await;
    create_items(&env).await;
    let writers = 4;
    let per_writer = 500;
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let client = env.connect().await;
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                let id = 1_000 + (writer * per_writer + i) as i64;
                if i % 2 == 0 {
                    // Extended protocol.
                    client
                        .execute(
                            "INSERT INTO items (id, writer, note) VALUES ($1, $2, 'x')",
                            &[&id, &writer],
                        )
                        .await
                        .expect("insert");
                    let rows = client
                        .query("SELECT writer FROM items WHERE id = $1", &[&id])
                        .await
                        .expect("select");
                    assert_eq!(rows.len(), 1, "row {id} not visible right after its insert");
                } else {
                    // Simple protocol.
                    client
                        .simple_query(&format!(
                            "INSERT INTO items (id, writer, note) VALUES ({id}, {writer}, 'y')"
                        ))
                        .await
                        .expect("insert");
                    let rows = client
                        .simple_query(&format!("SELECT writer FROM items WHERE id = {id}"))
                        .await
                        .expect("select");
                    let found = rows
                        .iter()
                        .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
                        .count();
                    assert_eq!(found, 1, "row {id} not visible right after its insert");
                }
            }
        }));
    }
    // A reader that never writes: nothing holds its reads on the primary.
    let reader = env.connect().await;
    let reader_task = tokio::spawn(async move {
        for i in 0..300 {
            reader
                .query_one(
                    "SELECT count(*) FROM items WHERE id <= $1",
                    &[&(i64::from(i) % 100 + 1)],
                )
                .await
                .expect("reader select");
        }
    });
    for task in tasks {
        task.await.expect("writer task");
    }
    reader_task.await.expect("reader task");
    let reads = env.reads();
    let replica_reads: u64 = reads[1..].iter().sum();
    assert!(
        replica_reads >= 300,
        "reads that were safe on replicas went elsewhere: {reads:?}"
    );
    assert_eq!(env.writes()[1..], [0, 0], "writes reached a replica");
    // Once the replicas have caught up, a writer's reads go back to them.
    env.wait_for_replay().await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let client = env.connect().await;
    client
        .execute("INSERT INTO items VALUES (99999, 9, 'late')", &[])
        .await
        .expect("insert");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let before: u64 = env.reads()[1..].iter().sum();
    let row = client
        .query_one("SELECT note FROM items WHERE id = 99999", &[])
        .await
        .expect("select");
    assert_eq!(row.get::<_, &str>(0), "late");
    let after: u64 = env.reads()[1..].iter().sum();
    assert_eq!(
        after,
        before + 1,
        "a caught-up read did not go to a replica"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_spread_over_replicas_and_writes_stay_on_the_primary() {
    let env = ReplicaEnv::start(vec![ReplicaOptions::default(); 2], |_| {}).await;
    create_items(&env).await;
    let start_reads = env.reads();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let client = env.connect().await;
        tasks.push(tokio::spawn(async move {
            for i in 0..100i64 {
                client
                    .query_one("SELECT note FROM items WHERE id = $1", &[&(i + 1)])
                    .await
                    .expect("read");
            }
        }));
    }
    for task in tasks {
        task.await.expect("reader");
    }
    let reads: Vec<u64> = env
        .reads()
        .iter()
        .zip(&start_reads)
        .map(|(now, before)| now - before)
        .collect();
    assert_eq!(reads[0], 0, "reads went to the primary: {reads:?}");
    assert!(reads[1] > 0 && reads[2] > 0, "reads not spread: {reads:?}");
    assert_eq!(reads[1] + reads[2], 400);

    // Statements that must not run on a replica go to the primary.
    let client = env.connect().await;
    client
        .batch_execute("CREATE SEQUENCE s")
        .await
        .expect("create sequence");
    let before = env.writes()[0];
    for sql in [
        "SELECT nextval('s')",
        "SELECT pg_advisory_lock(1), pg_advisory_unlock(1)",
        "SELECT set_config('application_name', 'x', false)",
        "SELECT id FROM items WHERE id = 1 FOR UPDATE",
        "/* shardwire: primary */ SELECT 1",
    ] {
        client.simple_query(sql).await.expect(sql);
    }
    assert_eq!(env.writes()[0], before + 5);
    // A hint sends a read anywhere; BEGIN READ ONLY runs on a replica.
    // (A fresh session: this one's own writes hold its reads on the
    // primary until the replicas replay them.)
    let replica_reads: u64 = env.reads()[1..].iter().sum();
    env.connect()
        .await
        .batch_execute("BEGIN READ ONLY; SELECT count(*) FROM items; SELECT 1; COMMIT;")
        .await
        .expect("read-only transaction");
    assert!(env.reads()[1..].iter().sum::<u64>() > replica_reads);
    assert_eq!(env.writes()[1..], [0, 0], "writes reached a replica");

    // Session settings follow the client to the replicas; so do prepared
    // statements.
    client
        .batch_execute(
            "CREATE SCHEMA other; CREATE TABLE other.items (id bigint, note text);
             INSERT INTO other.items VALUES (1, 'other schema')",
        )
        .await
        .expect("second schema");
    env.wait_for_replay().await;
    client
        .batch_execute("SET search_path = other, public")
        .await
        .expect("set");
    let statement = client
        .prepare("SELECT note FROM items WHERE id = $1")
        .await
        .expect("prepare");
    let before: u64 = env.reads()[1..].iter().sum();
    for _ in 0..10 {
        let row = client.query_one(&statement, &[&1i64]).await.expect("read");
        assert_eq!(row.get::<_, &str>(0), "other schema");
        let rows = client
            .simple_query("SELECT note FROM items WHERE id = 1")
            .await
            .expect("simple read");
        let note = rows.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        });
        assert_eq!(note.as_deref(), Some("other schema"));
    }
    assert!(env.reads()[1..].iter().sum::<u64>() >= before + 20);
    client
        .batch_execute("RESET search_path")
        .await
        .expect("reset");
    let row = client
        .query_one("SELECT note FROM items WHERE id = 1", &[])
        .await
        .expect("read");
    assert_eq!(row.get::<_, &str>(0), "seed");

    // The servers agree: a write sent to a hot standby would have failed
    // (25006), and none did; every row is on the primary.
    let primary = ReplicaEnv::connect_server(&env.primary).await;
    let rows: i64 = primary
        .query_one("SELECT count(*) FROM public.items", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(rows, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_replica_leaves_the_rotation_until_it_catches_up() {
    let env = ReplicaEnv::start(vec![delayed(3_000)], |c| {
        c.replicas.max_replica_lag_ms = 500;
    })
    .await;
    let client = env.connect().await;
    client
        .batch_execute("CREATE TABLE t (v int); INSERT INTO t VALUES (1)")
        .await
        .expect("write");
    env.wait_for("the delayed replica leaves the rotation", |r| {
        !r[1].in_rotation
    })
    .await;
    let reader = env.connect().await;
    let before = env.reads();
    reader.simple_query("SELECT 1").await.expect("read");
    let after = env.reads();
    assert_eq!(
        after[0],
        before[0] + 1,
        "the read did not go to the primary"
    );
    assert_eq!(after[1], before[1]);
    env.wait_for("the replica catches up and returns", |r| r[1].in_rotation)
        .await;
    reader.simple_query("SELECT 1").await.expect("read");
    assert_eq!(
        env.reads()[1],
        after[1] + 1,
        "the replica did not take reads again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stopped_under_load_fails_no_read_and_comes_back() {
    let mut env = ReplicaEnv::start(vec![ReplicaOptions::default(); 2], |_| {}).await;
    create_items(&env).await;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = env.connect().await;
        let (stop, done) = (Arc::clone(&stop), Arc::clone(&done));
        tasks.push(tokio::spawn(async move {
            let mut i = 0i64;
            while !stop.load(Ordering::Relaxed) {
                let row = client
                    .query_one("SELECT note FROM items WHERE id = $1", &[&(i % 100 + 1)])
                    .await
                    .expect("a read failed while a replica stopped");
                assert_eq!(row.get::<_, &str>(0), "seed");
                i += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Three stop/start rounds: each one catches some reads mid-flight.
    for _round in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let stopped = env.replicas.remove(0);
        let mut stopped = tokio::task::spawn_blocking(move || {
            let mut stopped = stopped;
            stopped.stop().expect("stop replica");
            stopped
        })
        .await
        .expect("stop task");
        let at_stop = done.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert!(done.load(Ordering::Relaxed) > at_stop, "reads stalled");
        stopped = tokio::task::spawn_blocking(move || {
            stopped.start().expect("restart replica");
            stopped
        })
        .await
        .expect("start task");
        env.replicas.insert(0, stopped);
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    }
    env.wait_for("the restarted replica is back in rotation", |r| {
        r[1].role == ServerRole::Replica && r[1].in_rotation && !r[1].banned
    })
    .await;
    let before = env.reads()[1];
    env.wait_for("reads reach the restarted replica", |r| {
        r[1].reads > before + 10
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("reader");
    }
}

/// Terminates the replica backend running `sql` (a read the proxy holds
/// for a retry, its batch not synced yet), then waits until the proxy has
/// dealt with the failure and banned the replica. Returns the message tags
/// the client got meanwhile: only `queued_before` (the proxy's answers
/// to messages before the read), never a part of the failed read.
async fn terminate_held_read(
    env: &ReplicaEnv,
    raw: &mut common::raw::Raw,
    sql: &str,
    queued_before: &str,
) -> String {
    let replica = ReplicaEnv::connect_server(&env.replicas[0]).await;
    no_hang("the read reaches the replica", async {
        loop {
            let terminated: i64 = replica
                .query_one(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                     WHERE query = $1 AND pid <> pg_backend_pid()",
                    &[&sql],
                )
                .await
                .expect("terminate the read's backend")
                .get(0);
            if terminated > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let mut seen = String::new();
    loop {
        tokio::select! {
            () = env.wait_for("the failed replica is banned", |r| r[1].banned) => return seen,
            m = raw.recv() => {
                seen.push(char::from(m.tag));
                assert!(
                    queued_before.starts_with(&seen),
                    "before its Sync, the client got {seen:?}: a part of the failed read",
                );
            }
        }
    }
}

/// Regression: a replica backend that is terminated flushes the answers it
/// holds for an unsynced batch (here to Parse and Describe) with its FATAL
/// error, which then comes with no answer pending. The read must still run
/// again elsewhere; the client once got a ParameterDescription without the
/// ParseComplete queued before it (tokio-postgres: UnexpectedMessage).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_terminated_before_the_sync_fails_no_read() {
    use postgres_protocol::message::frontend;
    const SQL: &str = "SELECT 1 AS held_describe";
    let env = ReplicaEnv::start(vec![ReplicaOptions::default()], |_| {}).await;
    env.wait_for("the replica is in rotation", |r| r[1].in_rotation)
        .await;
    let mut raw = common::raw::Raw::connect(env.proxy.addrs[0].port()).await;
    raw.send(|out| {
        frontend::parse("s1", SQL, [], out).unwrap();
        frontend::describe(b'S', "s1", out).unwrap();
    })
    .await;
    let mut seen = terminate_held_read(&env, &mut raw, SQL, "1").await;
    raw.send(frontend::sync).await;
    let answer = no_hang("the read run again", raw.until_ready()).await;
    seen.push_str(&answer.tags);
    assert_eq!(seen, "1tTZ", "errors: {:?}", answer.errors);
}

/// Regression: a replica backend terminated while it executes a statement
/// of an unsynced batch answers it with its FATAL error, which the
/// pipeline takes as the answer: the read looked complete and the error
/// reached the client instead of the read running again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_terminated_during_an_unsynced_execute_fails_no_read() {
    use postgres_protocol::message::frontend;
    const SQL: &str =
        "SELECT pg_sleep(CASE WHEN pg_is_in_recovery() THEN 60 ELSE 0 END) AS held_execute";
    let env = ReplicaEnv::start(vec![ReplicaOptions::default()], |_| {}).await;
    env.wait_for("the replica is in rotation", |r| r[1].in_rotation)
        .await;
    let mut raw = common::raw::Raw::connect(env.proxy.addrs[0].port()).await;
    raw.send(|out| {
        frontend::parse("", SQL, [], out).unwrap();
        common::raw::bind_text(out, "", "", &[], 0);
        frontend::execute("", 0, out).unwrap();
    })
    .await;
    let mut seen = terminate_held_read(&env, &mut raw, SQL, "1").await;
    raw.send(frontend::sync).await;
    let answer = no_hang("the read run again", raw.until_ready()).await;
    seen.push_str(&answer.tags);
    assert_eq!(seen, "12DCZ", "errors: {:?}", answer.errors);
}

/// A read held for a retry waits for its batch's Sync, unless the client
/// sends a Flush: then it may wait for the answers before syncing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_read_reaches_a_client_that_flushes_before_its_sync() {
    use postgres_protocol::message::frontend;
    let env = ReplicaEnv::start(vec![ReplicaOptions::default()], |_| {}).await;
    env.wait_for("the replica is in rotation", |r| r[1].in_rotation)
        .await;
    let before = env.reads()[1];
    let mut raw = common::raw::Raw::connect(env.proxy.addrs[0].port()).await;
    raw.send(|out| {
        frontend::parse("", "SELECT 1", [], out).unwrap();
        common::raw::bind_text(out, "", "", &[], 0);
        frontend::execute("", 0, out).unwrap();
        frontend::flush(out);
    })
    .await;
    let mut seen = String::new();
    for _ in 0..4 {
        seen.push(char::from(raw.recv().await.tag));
    }
    assert_eq!(seen, "12DC");
    assert_eq!(
        env.reads()[1],
        before + 1,
        "the read did not go to the replica"
    );
    raw.send(frontend::sync).await;
    assert_eq!(no_hang("the Sync", raw.until_ready()).await.tags, "Z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_follow_a_promoted_replica_without_a_restart() {
    let mut env = ReplicaEnv::start(vec![ReplicaOptions::default()], |_| {}).await;
    let client = env.connect().await;
    client
        .batch_execute("CREATE TABLE t (v int)")
        .await
        .expect("create");
    env.wait_for_replay().await;
    // A session inside a transaction on the primary when it dies.
    let doomed = env.connect().await;
    doomed
        .batch_execute("BEGIN; INSERT INTO t VALUES (0)")
        .await
        .expect("begin");
    tokio::task::block_in_place(|| env.primary.kill()).expect("kill primary");
    // The proxy tells the client at once (FATAL 08006, which tokio-postgres
    // reports as a closed connection when it arrives unasked).
    let error = no_hang(
        "a statement on the dead primary",
        doomed.simple_query("SELECT 1"),
    )
    .await
    .expect_err("the dead primary cannot answer");
    let code = error.code().map(|c| c.code().to_string());
    assert!(
        error.is_closed()
            || code
                .as_deref()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        "unclear error for a dead primary: {error:?}"
    );
    // The operator promotes the replica through the admin console.
    let admin = env.connect_admin().await;
    admin
        .simple_query("PROMOTE shard0 1")
        .await
        .expect("promote");
    env.wait_for("the promoted replica takes writes", |_| true)
        .await;
    let mut attempts = 0;
    loop {
        attempts += 1;
        match client.simple_query("INSERT INTO t VALUES (1)").await {
            Ok(_) => break,
            Err(e) if attempts < 200 => {
                assert!(
                    e.code().is_some(),
                    "a write during failover failed without an SQLSTATE: {e:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("writes never reached the promoted replica: {e:?}"),
        }
    }
    assert_eq!(env.primary_index(), 1);
    let rows = client.query("SELECT v FROM t", &[]).await.expect("read");
    assert_eq!(rows.len(), 1);
    let _ = &mut env;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_console_reports_replicas_and_refuses_others() {
    let env = ReplicaEnv::start(vec![ReplicaOptions::default()], |_| {}).await;
    let admin = env.connect_admin().await;
    let rows: Vec<_> = admin
        .simple_query("SHOW REPLICAS")
        .await
        .expect("show replicas")
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get("role"), Some("primary"));
    assert_eq!(rows[1].get("role"), Some("replica"));
    assert_eq!(rows[1].get("in_rotation"), Some("true"));
    let version = admin.simple_query("SHOW VERSION").await.expect("version");
    let version = version.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    });
    assert!(version.is_some_and(|v| v.starts_with("shardwire ")));
    let config: Vec<(String, String)> = admin
        .simple_query("show config;")
        .await
        .expect("config")
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((r.get(0)?.to_string(), r.get(1)?.to_string()))
            }
            _ => None,
        })
        .collect();
    assert!(config.contains(&("pool.size".to_string(), "4".to_string())));
    assert!(config.contains(&("users[0].password".to_string(), "********".to_string())));
    assert!(
        config.iter().all(|(_, v)| v != common::APP_PASSWORD),
        "a password leaked"
    );
    assert!(config.iter().any(|(k, _)| k == "shards[0].replicas"));
    let error = admin
        .simple_query("PROMOTE shard0 0")
        .await
        .expect_err("not a replica");
    let message = error.as_db_error().map(|e| e.message().to_string());
    assert!(
        message.unwrap_or_default().contains("not in recovery"),
        "{error:?}"
    );
    let error = admin.simple_query("FROBNICATE").await.expect_err("unknown");
    let db_error = error.as_db_error().expect("an ErrorResponse");
    assert_eq!(db_error.code().code(), "42601");
    assert!(db_error.hint().unwrap_or("").contains("SHOW REPLICAS"));
    let refused = common::connect(&env.conninfo(
        common::APP_USER,
        common::APP_PASSWORD,
        shardwire::ADMIN_DATABASE,
    ))
    .await
    .expect_err("the app user is no admin");
    assert_eq!(refused.code().map(|c| c.code()), Some("42501"));
}

/// Waits until every replica of `proxy` has replayed what each primary of
/// `primaries` has written so far.
async fn wait_for_sharded_replay(
    proxy: &shardwire::proxy::ProxyHandle,
    primaries: &[shardwire::localcluster::LocalCluster],
) {
    for (shard, primary) in primaries.iter().enumerate() {
        let direct = ReplicaEnv::connect_server(primary).await;
        let text: String = direct
            .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
            .await
            .expect("position")
            .get(0);
        let target = shardwire::backend::topology::parse_lsn(&text).expect("an LSN");
        let servers = &proxy.shared.topology.shards[shard];
        let mut caught_up = false;
        for _ in 0..1200 {
            if servers.report(1).position >= target {
                caught_up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(caught_up, "shard {shard}'s replica never replayed {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_database_reads_from_each_shards_replica() {
    let primaries =
        common::sharded::start_clusters(2, shardwire::localcluster::ClusterOptions::for_tests())
            .await;
    let (primaries, replicas) = tokio::task::spawn_blocking(move || {
        let replicas: Vec<_> = primaries
            .iter()
            .map(|p| {
                p.create_replica(None, &ReplicaOptions::default())
                    .expect("replica")
            })
            .collect();
        (primaries, replicas)
    })
    .await
    .expect("replica task");
    let map = "buckets = 16\ndefault_shard = \"shard0\"\n[[bucket_ranges]]\nbuckets = \"0-7\"\nshard = \"shard0\"\n[[bucket_ranges]]\nbuckets = \"8-15\"\nshard = \"shard1\"\n[[tables]]\nname = \"accounts\"\nkey = \"id\"\ntype = \"bigint\"\n";
    let mut config = common::sharded::sharded_config(&primaries, map);
    for (shard, replica) in config.shards.iter_mut().zip(&replicas) {
        shard.replicas = vec![format!("{}:{}", replica.host(), replica.port())];
    }
    config.replicas.probe_interval_ms = 100;
    let proxy = shardwire::proxy::start(config).await.expect("proxy");
    let conninfo = format!(
        "host=127.0.0.1 port={} user={} password={} dbname={}",
        proxy.addrs[0].port(),
        common::APP_USER,
        common::APP_PASSWORD,
        common::APP_DB
    );
    let writer = common::connect(&conninfo).await.expect("connect");
    let rows: Vec<String> = (1..=100).map(|id| format!("({id}, 0)")).collect();
    writer
        .batch_execute(&format!(
            "CREATE TABLE accounts (id bigint PRIMARY KEY, v int);
             INSERT INTO accounts VALUES {};",
            rows.join(", ")
        ))
        .await
        .expect("create and fill accounts");
    wait_for_sharded_replay(&proxy, &primaries).await;
    let reads =
        |shard: usize, server: usize| proxy.shared.topology.shards[shard].report(server).reads;
    let before = [reads(0, 1), reads(1, 1), reads(0, 0), reads(1, 0)];
    let reader = common::connect(&conninfo).await.expect("connect");
    for id in 1..=20i64 {
        let row = reader
            .query_one("SELECT v FROM accounts WHERE id = $1", &[&id])
            .await
            .expect("point read");
        assert_eq!(row.get::<_, i32>(0), 0);
    }
    let count: i64 = reader
        .query_one("SELECT count(*) FROM accounts", &[])
        .await
        .expect("scatter")
        .get(0);
    assert_eq!(count, 100);
    let after = [reads(0, 1), reads(1, 1), reads(0, 0), reads(1, 0)];
    assert!(
        after[0] > before[0] && after[1] > before[1],
        "replicas unused: {before:?} -> {after:?}"
    );
    assert_eq!(
        (after[2], after[3]),
        (before[2], before[3]),
        "reads reached a primary"
    );
    // A read-only transaction over both shards runs on the replicas and
    // commits without two-phase commit (a standby refuses PREPARE).
    let read_only = common::connect(&conninfo).await.expect("connect");
    read_only
        .batch_execute(
            "BEGIN READ ONLY; SELECT count(*) FROM accounts; SELECT v FROM accounts WHERE id = 3; COMMIT",
        )
        .await
        .expect("a read-only transaction across shards commits");
    assert!(reads(0, 1) > after[0] && reads(1, 1) > after[1]);
    // A write, then the same session's read of it, on either shard.
    for id in [5i64, 77] {
        writer
            .execute("UPDATE accounts SET v = 1 WHERE id = $1", &[&id])
            .await
            .expect("update");
        let v: i32 = writer
            .query_one("SELECT v FROM accounts WHERE id = $1", &[&id])
            .await
            .expect("read own write")
            .get(0);
        assert_eq!(v, 1);
    }
    drop(proxy);
    drop(replicas);
}

/// Regression: the proxy's own simple queries (WAL positions, settings)
/// destroy a server's unnamed statement; a later Bind must prepare it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnamed_statements_survive_read_your_writes_bookkeeping() {
    use postgres_protocol::message::frontend;
    let env = ReplicaEnv::start(vec![ReplicaOptions::default()], |c| c.pool.size = 1).await;
    create_items(&env).await;
    let mut raw = common::raw::Raw::connect(env.proxy.addrs[0].port()).await;
    for i in 0..40 {
        let id = (i % 100 + 1).to_string();
        let sql = if i % 2 == 0 {
            "UPDATE items SET note = 'seed' WHERE id = $1"
        } else {
            "SELECT note FROM items WHERE id = $1"
        };
        raw.send(|out| {
            frontend::parse("", sql, [], out).unwrap();
            common::raw::bind_text(out, "", "", &[Some(&id)], 0);
            frontend::execute("", 0, out).unwrap();
            frontend::sync(out);
        })
        .await;
        let answer = no_hang("an unnamed statement", raw.until_ready()).await;
        assert!(answer.errors.is_empty(), "{sql}: {:?}", answer.errors);
        // The same statement again, bound without a new Parse.
        raw.send(|out| {
            common::raw::bind_text(out, "", "", &[Some(&id)], 0);
            frontend::execute("", 0, out).unwrap();
            frontend::sync(out);
        })
        .await;
        let answer = no_hang("a rebound unnamed statement", raw.until_ready()).await;
        assert!(
            answer.errors.is_empty(),
            "{sql} rebound: {:?}",
            answer.errors
        );
    }
}

/// Regression: COPY FROM counts as a write for read-your-writes, and
/// set_config follows the client like SET.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_and_set_config_are_tracked_like_other_writes_and_settings() {
    let env = ReplicaEnv::start(vec![delayed(300)], |_| {}).await;
    create_items(&env).await;
    let client = env.connect().await;
    for i in 0..20i64 {
        let id = 10_000 + i;
        let sink = client
            .copy_in("COPY items (id, writer, note) FROM STDIN")
            .await
            .expect("copy in");
        futures::pin_mut!(sink);
        futures::SinkExt::send(&mut sink, bytes::Bytes::from(format!("{id}\t7\tcopied\n")))
            .await
            .expect("copy data");
        sink.finish().await.expect("copy done");
        let rows = client
            .query("SELECT note FROM items WHERE id = $1", &[&id])
            .await
            .expect("read");
        assert_eq!(
            rows.len(),
            1,
            "copied row {id} not visible right after its COPY"
        );
    }
    client
        .simple_query("SELECT set_config('search_path', 'pg_catalog', false)")
        .await
        .expect("set_config");
    env.wait_for_replay().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = env.reads()[1];
    for _ in 0..5 {
        let path: String = client
            .query_one("SELECT current_setting('search_path')", &[])
            .await
            .expect("read setting")
            .get(0);
        assert_eq!(path, "pg_catalog");
    }
    assert!(
        env.reads()[1] > before,
        "the setting was only checked on the primary"
    );
}
