//! Pool sizing and lifetimes against a real server: min_idle connections are
//! opened and kept, idle ones beyond it close after idle_timeout, and old
//! ones are replaced after server_lifetime. Waits are bounded polls; no
//! timing is asserted.

mod common;

use std::time::Duration;

use common::{APP_USER, TestEnv};

/// Pool backends of the app role on the server right now (not the
/// proxy's control-plane sessions, named `shardwire-...`, such as the slow
/// log's EXPLAIN connection).
async fn app_backends(env: &TestEnv) -> i64 {
    let direct = env.connect_direct().await;
    direct
        .query_one(
            "select count(*) from pg_stat_activity where usename = $1 \
             and application_name not like 'shardwire-%'",
            &[&APP_USER],
        )
        .await
        .expect("count backends")
        .get(0)
}

/// Polls until `check` holds (at most 30 s).
async fn eventually(env: &TestEnv, what: &str, check: impl Fn(i64) -> bool) -> i64 {
    let mut last = -1;
    for _ in 0..300 {
        last = app_backends(env).await;
        if check(last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: still {last} app backends after 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_idle_connections_are_opened_and_kept() {
    let env = TestEnv::start(|config| {
        config.pool.size = 4;
        config.pool.min_idle = 2;
        config.pool.idle_timeout_ms = 200;
    })
    .await;
    // The pool exists once a client used it.
    let client = env.connect().await;
    client.simple_query("select 1").await.unwrap();
    drop(client);
    eventually(&env, "min_idle = 2", |n| n == 2).await;
    // Idle timeout never closes below min_idle.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        app_backends(&env).await,
        2,
        "min_idle connections stay open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_close_after_idle_timeout() {
    let env = TestEnv::start(|config| {
        config.pool.size = 3;
        config.pool.idle_timeout_ms = 300;
    })
    .await;
    let clients = futures::future::join_all((0..3).map(|_| env.connect())).await;
    // Three concurrent transactions need three server connections.
    let txns = clients.iter().map(|c| async move {
        c.simple_query("begin; select pg_sleep(0.3); commit")
            .await
            .unwrap();
    });
    futures::future::join_all(txns).await;
    assert!(app_backends(&env).await >= 2, "the pool grew under load");
    eventually(&env, "idle connections closed", |n| n == 0).await;
    // And the pool still serves.
    let row = clients[0].query_one("select 7", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_connections_are_replaced_after_their_lifetime() {
    let env = TestEnv::start(|config| {
        config.pool.size = 1;
        config.pool.server_lifetime_ms = 300;
    })
    .await;
    let client = env.connect().await;
    let pid = |row: tokio_postgres::Row| row.get::<_, i32>(0);
    let first = pid(client
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(700)).await;
    let second = pid(client
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap());
    assert_ne!(
        first, second,
        "a connection past its lifetime is not reused"
    );
    // Only the new one remains.
    eventually(&env, "old connection closed", |n| n == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_hits_the_connect_timeout() {
    // A "server" that accepts TCP connections and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let env = TestEnv::start(|config| {
        config.shards[0].primary = silent_addr.to_string();
        config.pool.connect_timeout_ms = 500;
    })
    .await;
    let started = tokio::time::timeout(
        Duration::from_secs(20),
        common::connect(&env.proxy_conninfo()),
    )
    .await
    .expect("the client gets an answer, not a hang");
    let Err(err) = started else {
        panic!("no server: the login must fail");
    };
    let db = err.as_db_error().expect("an ErrorResponse from the proxy");
    assert_eq!(db.code().code(), "08006", "{db:?}");
    assert!(
        db.message().contains("connect_timeout_ms"),
        "{}",
        db.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_past_the_query_timeout_is_cancelled_with_57014() {
    let env = TestEnv::start(|c| c.pool.query_timeout_ms = 300).await;
    let client = env.connect().await;
    // pg_sleep sends nothing for 60 s: to the proxy it is a silent server.
    let error = common::raw::no_hang(
        "a statement past the timeout",
        client.simple_query("SELECT pg_sleep(60)"),
    )
    .await
    .expect_err("the statement outlives the timeout");
    assert!(
        error.is_closed() || error.code().map(|c| c.code()) == Some("57014"),
        "{error:?}"
    );
    // The statement was cancelled on the server, and the proxy still serves.
    eventually(&env, "the sleeping backend is cancelled", |n| n <= 1).await;
    let fresh = env.connect().await;
    let rows = fresh
        .simple_query("SELECT 1")
        .await
        .expect("a new session works");
    assert!(!rows.is_empty());
    // Statements that answer in time are untouched.
    fresh
        .simple_query("SELECT pg_sleep(0.05)")
        .await
        .expect("a short statement");
}
