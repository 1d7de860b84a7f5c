//! Protocol-level integration tests: real tokio-postgres clients (and a tiny
//! hand-written wire client where a driver hides the detail under test) talk
//! to a real Postgres through the proxy.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use common::raw::{Msg, NO_HANG, Raw, bind_text, no_hang};
use common::{APP_DB, APP_PASSWORD, APP_USER, TestEnv};
use futures::{SinkExt, StreamExt, TryStreamExt};
use postgres_protocol::message::frontend;
use shardwire::config::PoolMode;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::error::{DbError, SqlState};
use tokio_postgres::{AsyncMessage, Client, NoTls};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A tokio-postgres config for the proxy as the app user.
fn proxy_config(env: &TestEnv) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(env.proxy_port())
        .user(APP_USER)
        .password(APP_PASSWORD)
        .dbname(APP_DB)
        .connect_timeout(NO_HANG);
    config
}

/// A client whose asynchronous messages (notices, notifications) are
/// collected in a channel, and whose connection task can be aborted.
struct Watched {
    client: Client,
    messages: mpsc::UnboundedReceiver<AsyncMessage>,
    task: JoinHandle<()>,
}

async fn connect_watched(
    config: &tokio_postgres::Config,
) -> Result<Watched, tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (tx, messages) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut stream = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = stream.next().await {
            match message {
                Ok(message) => {
                    let _ = tx.send(message);
                }
                Err(_) => break,
            }
        }
    });
    Ok(Watched {
        client,
        messages,
        task,
    })
}

/// The database error inside a tokio-postgres error, or a panic naming what
/// came instead.
fn db_error<T: std::fmt::Debug>(result: Result<T, tokio_postgres::Error>, what: &str) -> DbError {
    match result {
        Ok(v) => panic!("{what}: expected an error, got {v:?}"),
        Err(e) => match e.as_db_error() {
            Some(db) => db.clone(),
            None => panic!("{what}: expected a database error with a SQLSTATE, got {e:?}"),
        },
    }
}

/// Asserts that `result` failed with SQLSTATE `code`; returns the error.
fn expect_code<T: std::fmt::Debug>(
    result: Result<T, tokio_postgres::Error>,
    code: &SqlState,
    what: &str,
) -> DbError {
    let db = db_error(result, what);
    assert_eq!(
        db.code(),
        code,
        "{what}: wrong SQLSTATE ({}: {})",
        db.code().code(),
        db.message()
    );
    db
}

/// Number of server backends of the app user.
/// Server sessions of the app role that belong to the proxy's pools: the
/// proxy's own control-plane sessions (the slow log's EXPLAIN connection,
/// named `shardwire-...`) are not pool connections.
async fn app_backends(direct: &Client, extra_condition: &str) -> i64 {
    let sql = format!(
        "select count(*) from pg_stat_activity where usename = 'app' \
         and application_name not like 'shardwire-%' {extra_condition}"
    );
    direct.query_one(&sql, &[]).await.unwrap().get(0)
}

/// Polls until `condition` holds (bounded); panics with `what` otherwise.
async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if condition().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Terminates every backend of the app user and waits until they are gone.
async fn terminate_app_backends(direct: &Client) {
    direct
        .execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where usename = 'app'",
            &[],
        )
        .await
        .unwrap();
    wait_until("no app backend is left", || async {
        app_backends(direct, "").await == 0
    })
    .await;
}

// ---------------------------------------------------------------------------
// Simple query protocol
// ---------------------------------------------------------------------------

/// Asserts the connection still runs queries (after an error, a refusal...).
async fn assert_serves(client: &tokio_postgres::Client) {
    let row = client
        .query_one("select 1", &[])
        .await
        .expect("the connection still serves");
    assert_eq!(row.get::<_, i32>(0), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_query_multi_statement_empty_and_notice() {
    let env = TestEnv::start(|_| {}).await;
    let mut w = connect_watched(&proxy_config(&env)).await.unwrap();
    let client = &w.client;

    // Several statements in one Query message.
    let messages = client
        .simple_query(
            "create table sq(id int primary key, name text); \
             insert into sq values (1, 'one'), (2, 'two'), (3, NULL); \
             select id, name from sq order by id; \
             select 'x' as a, 2 as b",
        )
        .await
        .unwrap();
    let mut rows = Vec::new();
    let mut completions = 0;
    for message in &messages {
        match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => rows.push(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect::<Vec<_>>(),
            ),
            tokio_postgres::SimpleQueryMessage::CommandComplete(_) => completions += 1,
            _ => {}
        }
    }
    assert_eq!(
        completions, 4,
        "one CommandComplete per statement: {messages:?}"
    );
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        rows,
        vec![
            vec![s("1"), s("one")],
            vec![s("2"), s("two")],
            vec![s("3"), None],
            vec![s("x"), s("2")],
        ]
    );

    // An error in the middle of a multi-statement query stops it there and
    // rolls back the implicit transaction.
    let err = client
        .simple_query(
            "insert into sq values (10, 'ten'); select 1/0; insert into sq values (11, 'eleven')",
        )
        .await;
    expect_code(
        err,
        &SqlState::DIVISION_BY_ZERO,
        "error in multi-statement query",
    );
    let count: i64 = client
        .query_one("select count(*) from sq where id >= 10", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        count, 0,
        "the implicit transaction of the failed query was rolled back"
    );

    // The empty query.
    let empty = client.simple_query("").await.unwrap();
    assert!(
        empty
            .iter()
            .all(|m| !matches!(m, tokio_postgres::SimpleQueryMessage::Row(_))),
        "empty query returns no rows"
    );
    client.batch_execute("   ;  ").await.unwrap();

    // Notices raised by the server reach the client.
    client
        .batch_execute("DO $$ BEGIN RAISE NOTICE 'hello from %', 'plpgsql'; END $$")
        .await
        .unwrap();
    let notice = no_hang("notice", async {
        loop {
            match w.messages.recv().await {
                Some(AsyncMessage::Notice(notice)) => return notice,
                Some(_) => continue,
                None => panic!("connection ended before the notice arrived"),
            }
        }
    })
    .await;
    assert_eq!(notice.message(), "hello from plpgsql");
    assert_eq!(notice.severity(), "NOTICE");

    // Still usable.
    let one: i32 = w.client.query_one("select 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
}

// ---------------------------------------------------------------------------
// Extended protocol: parameters and results of many types
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_binary_round_trips() {
    let env = TestEnv::start(|_| {}).await;
    let client = env.connect().await;

    macro_rules! round_trip {
        ($sql:expr, $ty:ty, $value:expr) => {{
            let value: $ty = $value;
            let row = client
                .query_one($sql, &[&value])
                .await
                .unwrap_or_else(|e| panic!("{}: {e:?}", $sql));
            let back: $ty = row.get(0);
            assert_eq!(back, value, "round trip through `{}`", $sql);
        }};
    }

    round_trip!("select $1::int2", i16, -12_345);
    round_trip!("select $1::int2", i16, i16::MAX);
    round_trip!("select $1::int4", i32, i32::MIN);
    round_trip!("select $1::int8", i64, 9_007_199_254_740_993);
    round_trip!("select $1::float4", f32, 3.25);
    round_trip!("select $1::float8", f64, -1.0e300);
    round_trip!("select $1::float8", f64, f64::INFINITY);
    round_trip!("select $1::bool", bool, true);
    round_trip!("select $1::bool", bool, false);
    round_trip!(
        "select $1::text",
        String,
        "héllo, wörld ✓ 'quoted' \"double\"".to_string()
    );
    round_trip!("select $1::text", String, String::new());
    round_trip!("select $1::varchar", String, "varchar value".to_string());
    round_trip!("select $1::bytea", Vec<u8>, (0..=255u8).collect());
    round_trip!("select $1::bytea", Vec<u8>, vec![0, 0, 0]);
    round_trip!("select $1::\"char\"", i8, 65);
    round_trip!("select $1::int4", Option<i32>, None);
    round_trip!("select $1::text", Option<String>, None);
    round_trip!("select $1::int4", Option<i32>, Some(7));
    round_trip!("select $1::int4[]", Vec<i32>, vec![1, -2, 3, i32::MAX]);
    round_trip!("select $1::int4[]", Vec<i32>, vec![]);
    round_trip!(
        "select $1::int4[]",
        Vec<Option<i32>>,
        vec![Some(1), None, Some(3)]
    );
    round_trip!(
        "select $1::text[]",
        Vec<String>,
        vec![
            "a".to_string(),
            "with space".to_string(),
            "{braces}".to_string(),
            String::new()
        ]
    );
    round_trip!("select $1::int8[]", Vec<i64>, vec![i64::MIN, 0, i64::MAX]);
    round_trip!("select $1::float8[]", Vec<f64>, vec![0.5, -2.25]);
    round_trip!("select $1::bool[]", Vec<bool>, vec![true, false, true]);
    // SystemTime maps to timestamp and timestamptz without extra features.
    let micros = Duration::from_micros(1_709_214_300_123_456);
    round_trip!("select $1::timestamptz", SystemTime, UNIX_EPOCH + micros);
    round_trip!("select $1::timestamp", SystemTime, UNIX_EPOCH + micros);

    // Types without a native Rust mapping here go through text casts.
    let cases = [
        (
            "select cast(cast($1::text as numeric) as text)",
            "12345678901234567890.123456789",
        ),
        (
            "select cast(cast($1::text as numeric) as text)",
            "-0.000000000000000001",
        ),
        ("select cast(cast($1::text as numeric) as text)", "NaN"),
        ("select cast(cast($1::text as date) as text)", "2024-02-29"),
        (
            "select cast(cast($1::text as timestamp) as text)",
            "2024-02-29 13:45:00.123456",
        ),
        (
            "select cast(cast($1::text as interval) as text)",
            "1 year 2 mons 3 days 04:05:06",
        ),
        (
            "select cast(cast($1::text as uuid) as text)",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        ),
        (
            "select cast(cast($1::text as jsonb) as text)",
            "{\"a\": [1, 2, {\"b\": null}]}",
        ),
    ];
    for (sql, value) in cases {
        let back: String = client.query_one(sql, &[&value]).await.unwrap().get(0);
        assert_eq!(back, value, "{sql}");
    }
    let utc: String = client
        .query_one(
            "select cast(cast($1::text as timestamptz) at time zone 'UTC' as text)",
            &[&"2024-02-29 13:45:00+02"],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(utc, "2024-02-29 11:45:00");

    // Many parameters of mixed types in one statement.
    let row = client
        .query_one(
            "select $1::int2, $2::int4, $3::int8, $4::float4, $5::float8, $6::bool, $7::text, $8::bytea, $9::int4[], $10::text[], $11::int4",
            &[
                &1i16,
                &2i32,
                &3i64,
                &4.5f32,
                &6.75f64,
                &true,
                &"seven",
                &vec![8u8, 9],
                &vec![10i32, 11],
                &vec!["twelve".to_string()],
                &None::<i32>,
            ],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i16>(0), 1);
    assert_eq!(row.get::<_, i32>(1), 2);
    assert_eq!(row.get::<_, i64>(2), 3);
    assert_eq!(row.get::<_, f32>(3), 4.5);
    assert_eq!(row.get::<_, f64>(4), 6.75);
    assert!(row.get::<_, bool>(5));
    assert_eq!(row.get::<_, &str>(6), "seven");
    assert_eq!(row.get::<_, Vec<u8>>(7), vec![8, 9]);
    assert_eq!(row.get::<_, Vec<i32>>(8), vec![10, 11]);
    assert_eq!(row.get::<_, Vec<String>>(9), vec!["twelve".to_string()]);
    assert_eq!(row.get::<_, Option<i32>>(10), None);

    // Values stored through the proxy and read back directly are the same.
    client
        .batch_execute("create table typed(a int8, b float8, c text, d bytea, e int4[])")
        .await
        .unwrap();
    client
        .execute(
            "insert into typed values ($1, $2, $3, $4, $5)",
            &[
                &42i64,
                &0.125f64,
                &"stored",
                &vec![1u8, 2, 3],
                &vec![4i32, 5],
            ],
        )
        .await
        .unwrap();
    let direct = env.connect_direct().await;
    let row = direct
        .query_one("select a, b, c, d, e from typed", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 42);
    assert_eq!(row.get::<_, f64>(1), 0.125);
    assert_eq!(row.get::<_, &str>(2), "stored");
    assert_eq!(row.get::<_, Vec<u8>>(3), vec![1, 2, 3]);
    assert_eq!(row.get::<_, Vec<i32>>(4), vec![4, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_text_format_parameters_and_results() {
    let env = TestEnv::start(|_| {}).await;
    let mut raw = Raw::connect(env.proxy_port()).await;

    // (type, text input, canonical text output)
    let cases: [(&str, Option<&str>, Option<&str>); 14] = [
        ("int2", Some("-32768"), Some("-32768")),
        ("int4", Some(" 42"), Some("42")),
        (
            "int8",
            Some("9223372036854775807"),
            Some("9223372036854775807"),
        ),
        ("float4", Some("1.5"), Some("1.5")),
        ("float8", Some("-2.5e-3"), Some("-0.0025")),
        ("bool", Some("yes"), Some("t")),
        ("text", Some("tab\there ✓"), Some("tab\there ✓")),
        ("bytea", Some("\\x00ff10"), Some("\\x00ff10")),
        ("numeric", Some("123.4500"), Some("123.4500")),
        ("date", Some("2024-02-29"), Some("2024-02-29")),
        (
            "timestamp",
            Some("2024-02-29 13:45:00.5"),
            Some("2024-02-29 13:45:00.5"),
        ),
        ("int4[]", Some("{1,2,NULL}"), Some("{1,2,NULL}")),
        ("text[]", Some("{a,\"b c\"}"), Some("{a,\"b c\"}")),
        ("int4", None, None),
    ];
    for (ty, input, expected) in cases {
        let sql = format!("select $1::{ty}");
        raw.send(|out| {
            frontend::parse("", &sql, None, out).unwrap();
            bind_text(out, "", "", &[input], 0);
            frontend::describe(b'P', "", out).unwrap();
            frontend::execute("", 0, out).unwrap();
            frontend::sync(out);
        })
        .await;
        let t = raw.until_ready().await;
        assert_eq!(t.tags, "12TDCZ", "{sql}: {t:?}");
        assert_eq!(t.status, b'I');
        assert_eq!(t.text(0, 0).as_deref(), expected, "{sql} with {input:?}");
    }

    // A named statement with declared parameter types (int4 = 23, text = 25),
    // text parameters, binary results, executed several times.
    raw.send(|out| {
        frontend::parse("typed_stmt", "select $1 + 1, $2 || '!'", [23u32, 25], out).unwrap();
        frontend::describe(b'S', "typed_stmt", out).unwrap();
        frontend::sync(out);
    })
    .await;
    let t = raw.until_ready().await;
    assert_eq!(t.tags, "1tTZ", "{t:?}");
    for i in 0..5i32 {
        let n = (i * 1000).to_string();
        raw.send(|out| {
            bind_text(out, "", "typed_stmt", &[Some(&n), Some("hey")], 1);
            frontend::execute("", 0, out).unwrap();
            frontend::sync(out);
        })
        .await;
        let t = raw.until_ready().await;
        assert_eq!(t.tags, "2DCZ", "{t:?}");
        let first = t.rows[0][0].clone().unwrap();
        assert_eq!(
            first,
            (i * 1000 + 1).to_be_bytes().to_vec(),
            "binary int4 result"
        );
        assert_eq!(
            t.rows[0][1].as_deref(),
            Some(&b"hey!"[..]),
            "binary text result"
        );
    }

    // A malformed text value is the server's error, and the connection goes on.
    raw.send(|out| {
        frontend::parse("", "select $1::int4", None, out).unwrap();
        bind_text(out, "", "", &[Some("not a number")], 0);
        frontend::execute("", 0, out).unwrap();
        frontend::sync(out);
    })
    .await;
    let t = raw.until_ready().await;
    assert_eq!(t.tags, "1EZ", "{t:?}");
    assert_eq!(t.errors, vec!["22P02".to_string()]);
    raw.send(|out| frontend::query("select 'still here'", out).unwrap())
        .await;
    let t = raw.until_ready().await;
    assert_eq!(t.text(0, 0).as_deref(), Some("still here"));
}

// ---------------------------------------------------------------------------
// Prepared statements under transaction pooling
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_many_clients_few_servers() {
    const CLIENTS: i32 = 50;
    const ROUNDS: i32 = 40;
    let env = TestEnv::start(|_| {}).await;
    let direct = env.connect_direct().await;
    {
        let setup = env.connect().await;
        setup
            .batch_execute(
                "create table items(id bigserial primary key, client int not null, n int not null)",
            )
            .await
            .unwrap();
    }

    // Sample the number of app backends while the clients run.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        let direct = env.connect_direct().await;
        tokio::spawn(async move {
            let mut most = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                most = most.max(app_backends(&direct, "").await);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            most
        })
    };

    // Connect one after the other (SCRAM key derivation in a debug build is
    // slow enough that 50 at once could starve the in-process proxy of CPU
    // past its startup timeout), then run all clients at once.
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(
            connect_watched(&proxy_config(&env))
                .await
                .expect("client connects")
                .client,
        );
    }
    let mut tasks = Vec::new();
    for (c, mut client) in (0..CLIENTS).zip(clients) {
        tasks.push(tokio::spawn(async move {
            // Same names in every client ("s0", "s1", ...) but partly different texts.
            let double = client.prepare("select $1::int4 * 2").await.unwrap();
            let insert = client
                .prepare("insert into items(client, n) values ($1, $2) returning n")
                .await
                .unwrap();
            let count = client
                .prepare(&format!(
                    "select count(*), {c} as me from items where client = $1"
                ))
                .await
                .unwrap();
            let mut inserted = 0i64;
            for round in 0..ROUNDS {
                if round % 2 == 0 {
                    // Implicit transactions.
                    let d: i32 = client.query_one(&double, &[&round]).await.unwrap().get(0);
                    assert_eq!(d, round * 2);
                    let n: i32 = client
                        .query_one(&insert, &[&c, &round])
                        .await
                        .unwrap()
                        .get(0);
                    assert_eq!(n, round);
                    inserted += 1;
                    let row = client.query_one(&count, &[&c]).await.unwrap();
                    assert_eq!(row.get::<_, i64>(0), inserted, "client {c} round {round}");
                    assert_eq!(row.get::<_, i32>(1), c);
                } else {
                    // Explicit transactions, committed or rolled back.
                    let tx = client.transaction().await.unwrap();
                    let n: i32 = tx.query_one(&insert, &[&c, &round]).await.unwrap().get(0);
                    assert_eq!(n, round);
                    let row = tx.query_one(&count, &[&c]).await.unwrap();
                    assert_eq!(
                        row.get::<_, i64>(0),
                        inserted + 1,
                        "client {c} round {round} in tx"
                    );
                    let d: i32 = tx.query_one(&double, &[&(round + c)]).await.unwrap().get(0);
                    assert_eq!(d, (round + c) * 2);
                    if round % 4 == 1 {
                        tx.commit().await.unwrap();
                        inserted += 1;
                    } else {
                        tx.rollback().await.unwrap();
                    }
                }
            }
            let row = client.query_one(&count, &[&c]).await.unwrap();
            assert_eq!(row.get::<_, i64>(0), inserted);
            inserted
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += no_hang("client task", async {
            tokio::time::timeout(Duration::from_secs(120), task).await
        })
        .await
        .map_err(|_| "client task timed out")
        .unwrap()
        .expect("client task succeeded");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let most = sampler.await.unwrap();

    let stored: i64 = direct
        .query_one("select count(*) from items", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, total);
    // 20 implicit inserts + 10 committed explicit ones per client.
    assert_eq!(total, i64::from(CLIENTS) * 30);
    let now = app_backends(&direct, "").await;
    // The proxy's own view, to explain a failure.
    let pools: Vec<String> = env
        .proxy
        .shared
        .pools
        .snapshot()
        .iter()
        .map(|(_, pool)| {
            format!(
                "open {} opened {} closed {}",
                pool.open_count(),
                pool.counters
                    .opened
                    .load(std::sync::atomic::Ordering::Relaxed),
                pool.counters
                    .closed
                    .load(std::sync::atomic::Ordering::Relaxed)
            )
        })
        .collect();
    assert!(
        most <= 4,
        "{most} app backends at once during the run, pool size is 4 (proxy pool: {pools:?})"
    );
    assert!(
        now <= 4,
        "{now} app backends after the run, pool size is 4 (proxy pool: {pools:?})"
    );
    let in_tx = app_backends(&direct, "and state <> 'idle'").await;
    assert_eq!(in_tx, 0, "every pooled backend is idle after the run");
}

/// Many short transactions from more clients than server connections: the
/// pool never opens more connections than its size, on the proxy's count or
/// on the server's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_never_exceeds_its_size() {
    const SIZE: usize = 3;
    let env = TestEnv::start(|config| config.pool.size = SIZE).await;
    let direct = env.connect_direct().await;
    let mut clients = Vec::new();
    for _ in 0..40 {
        clients.push(env.connect().await);
    }
    let mut tasks = Vec::new();
    for (i, client) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let stmt = client.prepare("select $1::int4 + 1").await.unwrap();
            for n in 0..250i32 {
                let v: i32 = client.query_one(&stmt, &[&n]).await.unwrap().get(0);
                assert_eq!(v, n + 1, "client {i}");
                if n % 5 == 0 {
                    client
                        .batch_execute("begin; select 1; commit")
                        .await
                        .unwrap();
                }
            }
        }));
    }
    for task in tasks {
        no_hang("client task", task).await.unwrap();
    }
    let pools = env.proxy.shared.pools.snapshot();
    let (_, pool) = pools.first().expect("the app pool exists");
    let opened = pool
        .counters
        .opened
        .load(std::sync::atomic::Ordering::Relaxed);
    let closed = pool
        .counters
        .closed
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        pool.open_count() <= SIZE,
        "the proxy holds {} server connections for a pool of {SIZE} (opened {opened}, closed {closed})",
        pool.open_count()
    );
    let on_server = app_backends(&direct, "").await;
    assert!(
        on_server as usize <= SIZE,
        "{on_server} app backends on the server for a pool of {SIZE}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_queries_on_one_client() {
    let env = TestEnv::start(|_| {}).await;
    let client = env.connect().await;
    let stmt = client
        .prepare("select $1::int4 * 3, $2::text")
        .await
        .unwrap();

    // 200 Bind/Execute/Sync groups in flight at once on one connection.
    let labels: Vec<String> = (0..200).map(|i| format!("row-{i}")).collect();
    let futures = (0..200i32).map(|i| {
        let (client, stmt, label) = (&client, &stmt, &labels[i as usize]);
        async move { client.query_one(stmt, &[&i, label]).await }
    });
    let results = no_hang(
        "200 pipelined queries",
        futures::future::try_join_all(futures),
    )
    .await
    .unwrap();
    assert_eq!(results.len(), 200);
    for (i, row) in results.iter().enumerate() {
        assert_eq!(row.get::<_, i32>(0), i as i32 * 3);
        assert_eq!(row.get::<_, &str>(1), labels[i]);
    }

    // Unprepared texts: each is Parse/Describe/Sync then Bind/Execute/Sync,
    // all interleaved; every 10th fails, the others must not be disturbed.
    let futures = (0..200i32).map(|i| {
        let client = &client;
        async move {
            let sql = if i % 10 == 7 {
                format!("select 1/0 + {i}")
            } else {
                format!("select {i}::int4 + $1::int4")
            };
            if i % 10 == 7 {
                client.query_one(&sql, &[]).await
            } else {
                client.query_one(&sql, &[&1i32]).await
            }
        }
    });
    let results = no_hang(
        "200 pipelined mixed queries",
        futures::future::join_all(futures),
    )
    .await;
    for (i, result) in results.into_iter().enumerate() {
        if i % 10 == 7 {
            expect_code(
                result,
                &SqlState::DIVISION_BY_ZERO,
                "pipelined failing query",
            );
        } else {
            let row = result.unwrap_or_else(|e| panic!("pipelined query {i}: {e:?}"));
            assert_eq!(row.get::<_, i32>(0), i as i32 + 1);
        }
    }

    // Pipelined inside an explicit transaction.
    client
        .batch_execute("create table pipe(n int)")
        .await
        .unwrap();
    client.batch_execute("begin").await.unwrap();
    let insert = client
        .prepare("insert into pipe values ($1)")
        .await
        .unwrap();
    let futures = (0..200i32).map(|i| {
        let (client, insert) = (&client, &insert);
        async move { client.execute(insert, &[&i]).await }
    });
    let counts = no_hang("pipelined inserts", futures::future::try_join_all(futures))
        .await
        .unwrap();
    assert!(counts.iter().all(|&n| n == 1));
    client.batch_execute("commit").await.unwrap();
    let row = client
        .query_one("select count(*), sum(n) from pipe", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 200);
    assert_eq!(row.get::<_, i64>(1), (0..200).sum::<i64>());
}

// ---------------------------------------------------------------------------
// COPY
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_and_out_100k_rows() {
    const ROWS: i64 = 100_000;
    // One server connection, so a session that keeps it after COPY would
    // starve the second client below.
    let env = TestEnv::start(|config| {
        config.pool.size = 1;
        config.pool.checkout_timeout_ms = 5_000;
    })
    .await;
    let client = env.connect().await;
    client
        .batch_execute("create table copied(id int8 primary key, name text not null)")
        .await
        .unwrap();

    let sink = client
        .copy_in("COPY copied (id, name) FROM STDIN")
        .await
        .unwrap();
    futures::pin_mut!(sink);
    let mut chunk = String::new();
    for id in 1..=ROWS {
        chunk.push_str(&format!("{id}\tname number {id}\n"));
        if id % 1000 == 0 {
            sink.send(Bytes::from(std::mem::take(&mut chunk)))
                .await
                .unwrap();
        }
    }
    let copied = no_hang("COPY FROM STDIN finish", sink.finish())
        .await
        .unwrap();
    assert_eq!(copied, ROWS as u64);

    let expected_sum = ROWS * (ROWS + 1) / 2;
    let row = client
        .query_one("select count(*), sum(id)::int8 from copied", &[])
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, i64>(1)),
        (ROWS, expected_sum)
    );
    let direct = env.connect_direct().await;
    let row = direct
        .query_one("select count(*), sum(id)::int8 from copied", &[])
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, i64>(1)),
        (ROWS, expected_sum)
    );

    // COPY OUT through the proxy.
    let stream = client
        .copy_out("COPY (select id, name from copied order by id) TO STDOUT")
        .await
        .unwrap();
    let chunks: Vec<Bytes> = no_hang("COPY TO STDOUT", stream.try_collect())
        .await
        .unwrap();
    let mut all = BytesMut::new();
    for c in chunks {
        all.extend_from_slice(&c);
    }
    let text = std::str::from_utf8(&all).unwrap();
    let (mut count, mut sum) = (0i64, 0i64);
    for (i, line) in text.lines().enumerate() {
        let (id, name) = line.split_once('\t').expect("tab-separated line");
        let id: i64 = id.parse().unwrap();
        assert_eq!(id, i as i64 + 1);
        assert_eq!(name, format!("name number {id}"));
        count += 1;
        sum += id;
    }
    assert_eq!((count, sum), (ROWS, expected_sum));

    // The same client goes on normally.
    let n: i64 = client
        .query_one("select count(*) from copied where id <= 10", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 10);

    // And the only server connection went back to the pool after the COPYs:
    // another client gets it.
    let other = env.connect().await;
    let n: i64 = no_hang(
        "second client after COPY",
        other.query_one("select count(*) from copied", &[]),
    )
    .await
    .expect("the pool's only connection is free again after COPY")
    .get(0);
    assert_eq!(n, ROWS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_error_and_abort_leave_session_usable() {
    let env = TestEnv::start(|config| {
        config.pool.size = 1;
        config.pool.checkout_timeout_ms = 5_000;
    })
    .await;
    let client = env.connect().await;
    client
        .batch_execute("create table cp(id int primary key)")
        .await
        .unwrap();

    // Bad data: the server fails the COPY.
    let sink = client.copy_in("COPY cp FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    sink.send(Bytes::from_static(b"1\n2\nnot-a-number\n"))
        .await
        .unwrap();
    let result = no_hang("COPY with bad data", sink.finish()).await;
    expect_code(
        result,
        &SqlState::INVALID_TEXT_REPRESENTATION,
        "COPY with bad data",
    );

    // Aborted by the client (sink dropped without finish: CopyFail).
    {
        let sink = client
            .copy_in::<_, Bytes>("COPY cp FROM STDIN")
            .await
            .unwrap();
        futures::pin_mut!(sink);
        sink.send(Bytes::from_static(b"3\n")).await.unwrap();
    }

    let n: i64 = no_hang(
        "query after failed COPYs",
        client.query_one("select count(*) from cp", &[]),
    )
    .await
    .unwrap()
    .get(0);
    assert_eq!(n, 0, "no row of the failed COPYs is visible");
    let other = env.connect().await;
    let n: i64 = no_hang(
        "second client after failed COPYs",
        other.query_one("select count(*) from cp", &[]),
    )
    .await
    .expect("the pool's only connection is free again")
    .get(0);
    assert_eq!(n, 0);
}

// ---------------------------------------------------------------------------
// Cancel
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_running_query() {
    let env = TestEnv::start(|_| {}).await;
    let client = env.connect().await;
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(NoTls).await
    });
    let result = no_hang(
        "pg_sleep(30) with cancel",
        client.query_one("select pg_sleep(30)", &[]),
    )
    .await;
    canceller.await.unwrap().expect("cancel request sent");
    expect_code(result, &SqlState::QUERY_CANCELED, "cancelled query");
    let one: i32 = client.query_one("select 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1, "the client works after its query was cancelled");

    // Inside an explicit transaction: the transaction is aborted, then rolled back.
    client.batch_execute("begin").await.unwrap();
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(NoTls).await
    });
    let result = no_hang(
        "pg_sleep(30) in tx with cancel",
        client.batch_execute("select pg_sleep(30)"),
    )
    .await;
    canceller.await.unwrap().expect("cancel request sent");
    expect_code(
        result,
        &SqlState::QUERY_CANCELED,
        "cancelled query in a transaction",
    );
    expect_code(
        client.query_one("select 1", &[]).await,
        &SqlState::IN_FAILED_SQL_TRANSACTION,
        "statement after cancel in transaction",
    );
    client.batch_execute("rollback").await.unwrap();
    let one: i32 = client.query_one("select 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_outside_and_inside_transactions() {
    let env = TestEnv::start(|_| {}).await;
    let mut client = env.connect().await;
    client
        .batch_execute("create table e(id int primary key)")
        .await
        .unwrap();

    // Outside a transaction, extended and simple protocol.
    expect_code(
        client.query_one("select 1/0", &[]).await,
        &SqlState::DIVISION_BY_ZERO,
        "select 1/0",
    );
    assert_serves(&client).await;
    expect_code(
        client.simple_query("select 1/0").await,
        &SqlState::DIVISION_BY_ZERO,
        "simple 1/0",
    );
    assert_eq!(
        client
            .query_one("select 2", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        2
    );
    expect_code(
        client.query("select * from no_such_table", &[]).await,
        &SqlState::UNDEFINED_TABLE,
        "unknown table",
    );
    expect_code(
        client.prepare("selec 1").await,
        &SqlState::SYNTAX_ERROR,
        "syntax error in Parse",
    );
    assert_eq!(
        client
            .query_one("select 3", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        3
    );

    // Inside a transaction: aborted until ROLLBACK, and nothing is kept.
    client.batch_execute("BEGIN").await.unwrap();
    client
        .execute("insert into e values (1)", &[])
        .await
        .unwrap();
    expect_code(
        client.query_one("select 1/0", &[]).await,
        &SqlState::DIVISION_BY_ZERO,
        "1/0 in tx",
    );
    expect_code(
        client.query_one("select 1", &[]).await,
        &SqlState::IN_FAILED_SQL_TRANSACTION,
        "statement in failed tx",
    );
    expect_code(
        client.simple_query("select 1").await,
        &SqlState::IN_FAILED_SQL_TRANSACTION,
        "simple statement in failed tx",
    );
    client.batch_execute("ROLLBACK").await.unwrap();
    let n: i64 = client
        .query_one("select count(*) from e", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "the rolled back insert is not visible");

    // COMMIT of a failed transaction rolls back.
    client
        .batch_execute("BEGIN; insert into e values (2)")
        .await
        .unwrap();
    expect_code(
        client.execute("insert into e values (2)", &[]).await,
        &SqlState::UNIQUE_VIOLATION,
        "duplicate key in tx",
    );
    let commit = client.simple_query("COMMIT").await.unwrap();
    let tag = commit.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::CommandComplete(n) => Some(*n),
        _ => None,
    });
    assert_eq!(tag, Some(0), "COMMIT of a failed transaction");
    let n: i64 = client
        .query_one("select count(*) from e", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "COMMIT of a failed transaction kept nothing");

    // An error while executing a prepared statement, outside and inside a transaction.
    let div = client.prepare("select 10 / $1::int4").await.unwrap();
    expect_code(
        client.query_one(&div, &[&0i32]).await,
        &SqlState::DIVISION_BY_ZERO,
        "prepared 10/0",
    );
    assert_eq!(
        client
            .query_one(&div, &[&5i32])
            .await
            .unwrap()
            .get::<_, i32>(0),
        2
    );
    let insert = client.prepare("insert into e values ($1)").await.unwrap();
    let mut tx = client.transaction().await.unwrap();
    tx.execute(&insert, &[&10i32]).await.unwrap();
    {
        let sp = tx.savepoint("sp").await.unwrap();
        expect_code(
            sp.execute(&insert, &[&10i32]).await,
            &SqlState::UNIQUE_VIOLATION,
            "dup in savepoint",
        );
        sp.rollback().await.unwrap();
    }
    tx.execute(&insert, &[&11i32]).await.unwrap();
    expect_code(
        tx.query_one(&div, &[&0i32]).await,
        &SqlState::DIVISION_BY_ZERO,
        "prepared 10/0 in tx",
    );
    expect_code(
        tx.query_one(&div, &[&1i32]).await,
        &SqlState::IN_FAILED_SQL_TRANSACTION,
        "prepared statement in failed tx",
    );
    tx.rollback().await.unwrap();
    let n: i64 = client
        .query_one("select count(*) from e", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    assert_eq!(
        client
            .query_one(&div, &[&2i32])
            .await
            .unwrap()
            .get::<_, i32>(0),
        5
    );

    // A committed transaction after all that.
    let tx = client.transaction().await.unwrap();
    tx.execute(&insert, &[&20i32]).await.unwrap();
    tx.commit().await.unwrap();
    let direct = env.connect_direct().await;
    let ids: Vec<i32> = direct
        .query("select id from e order by id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, vec![20]);
}

// ---------------------------------------------------------------------------
// Client disconnects
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_mid_transaction_leaves_clean_server() {
    let env = TestEnv::start(|config| config.pool.size = 1).await;
    let direct = env.connect_direct().await;
    {
        let setup = env.connect().await;
        setup.batch_execute("create table d(id int)").await.unwrap();
    }

    for (round, abrupt) in [(1, true), (2, false)] {
        let w = connect_watched(&proxy_config(&env)).await.unwrap();
        w.client.batch_execute("BEGIN").await.unwrap();
        w.client
            .execute("insert into d values ($1)", &[&round])
            .await
            .unwrap();
        let in_tx = app_backends(&direct, "and state = 'idle in transaction'").await;
        assert_eq!(
            in_tx, 1,
            "round {round}: the open transaction is visible on the server"
        );
        if abrupt {
            // The socket just closes: no Terminate message.
            w.task.abort();
            drop(w.client);
        } else {
            // Dropping the client sends Terminate.
            drop(w.client);
        }
        wait_until("no app backend is idle in transaction", || async {
            app_backends(
                &direct,
                "and state in ('idle in transaction', 'idle in transaction (aborted)')",
            )
            .await
                == 0
        })
        .await;
        let n: i64 = direct
            .query_one("select count(*) from d", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "round {round}: the uncommitted insert is not visible");

        // The next client gets a clean server (pool size 1: the same one or a new one).
        let mut next = connect_watched(&proxy_config(&env)).await.unwrap();
        let messages = no_hang(
            "next client",
            next.client
                .simple_query("select now() = statement_timestamp()"),
        )
        .await
        .unwrap();
        let fresh = messages.iter().any(
            |m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("t")),
        );
        assert!(
            fresh,
            "round {round}: the next client's statement runs in its own transaction"
        );
        let n: i64 = next
            .client
            .query_one("select count(*) from d", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0);
        next.client.batch_execute("BEGIN").await.unwrap();
        next.client.batch_execute("COMMIT").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        while let Ok(message) = next.messages.try_recv() {
            if let AsyncMessage::Notice(notice) = message {
                panic!(
                    "round {round}: unexpected notice for a clean BEGIN/COMMIT: {}",
                    notice.message()
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Authentication and startup errors
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_errors() {
    let env = TestEnv::start(|_| {}).await;

    let mut config = proxy_config(&env);
    config.password("wrong-password");
    let e = expect_code(
        config.connect(NoTls).await.map(|_| ()),
        &SqlState::INVALID_PASSWORD,
        "wrong password",
    );
    assert!(
        e.message().contains(APP_USER),
        "message names the user: {}",
        e.message()
    );

    let mut config = proxy_config(&env);
    config.user("nobody_here");
    let e = expect_code(
        config.connect(NoTls).await.map(|_| ()),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
        "unknown user",
    );
    assert!(
        e.message().contains("nobody_here"),
        "message names the user: {}",
        e.message()
    );

    let mut config = proxy_config(&env);
    config.dbname("no_such_db");
    let e = expect_code(
        config.connect(NoTls).await.map(|_| ()),
        &SqlState::INVALID_CATALOG_NAME,
        "unknown database",
    );
    assert!(
        e.message().contains("no_such_db"),
        "message names the database: {}",
        e.message()
    );

    // The proxy still serves good clients.
    let client = env.connect().await;
    assert_serves(&client).await;
}

// ---------------------------------------------------------------------------
// Session parameters under transaction pooling
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_parameters_follow_each_client() {
    let env = TestEnv::start(|config| config.pool.size = 1).await;
    {
        let setup = env.connect().await;
        setup
            .batch_execute("create schema myschema; create schema otherschema")
            .await
            .unwrap();
    }
    // What a direct connection with the same startup settings shows is
    // what the proxy must show.
    async fn direct_path(env: &TestEnv, options: Option<&str>) -> String {
        let mut config: tokio_postgres::Config =
            env.cluster.connection_string(APP_DB).parse().unwrap();
        if let Some(options) = options {
            config.options(options);
        }
        let (client, connection) = config.connect(NoTls).await.unwrap();
        tokio::spawn(connection);
        client
            .query_one("show search_path", &[])
            .await
            .unwrap()
            .get(0)
    }

    struct Who {
        app: &'static str,
        options: Option<&'static str>,
        path: String,
        set_later: Option<&'static str>,
    }
    let mut clients = Vec::new();
    for (app, options, set_later) in [
        ("foo", Some("-c search_path=myschema,public"), None),
        ("bar", None, None),
        ("baz", Some("-c search_path=otherschema"), None),
        // Changes its application_name with SET after the first round.
        ("qux", None, Some("qux_renamed")),
    ] {
        clients.push(Who {
            app,
            options,
            path: direct_path(&env, options).await,
            set_later,
        });
    }
    assert!(
        clients[0].path.starts_with("myschema"),
        "{}",
        clients[0].path
    );

    let mut tasks = Vec::new();
    for who in clients {
        let mut config = proxy_config(&env);
        config.application_name(who.app);
        if let Some(options) = who.options {
            config.options(options);
        }
        tasks.push(tokio::spawn(async move {
            let client = connect_watched(&config).await.unwrap().client;
            let mut app = who.app.to_string();
            for round in 0..15 {
                let (seen_app, seen_path): (String, String) = if round % 3 == 0 {
                    let tx_client = &client;
                    tx_client.batch_execute("BEGIN").await.unwrap();
                    let row = tx_client
                        .query_one(
                            "select current_setting('application_name'), current_setting('search_path')",
                            &[],
                        )
                        .await
                        .unwrap();
                    tx_client.batch_execute("COMMIT").await.unwrap();
                    (row.get(0), row.get(1))
                } else {
                    let messages = client
                        .simple_query("select current_setting('application_name'); show search_path")
                        .await
                        .unwrap();
                    let values: Vec<String> = messages
                        .iter()
                        .filter_map(|m| match m {
                            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                            _ => None,
                        })
                        .collect();
                    (values[0].clone(), values[1].clone())
                };
                assert_eq!(seen_app, app, "client {}: application_name in round {round}", who.app);
                assert_eq!(seen_path, who.path, "client {}: search_path in round {round}", who.app);
                if round == 0
                    && let Some(new_name) = who.set_later
                {
                    client
                        .batch_execute(&format!("SET application_name = '{new_name}'"))
                        .await
                        .unwrap();
                    app = new_name.to_string();
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    for task in tasks {
        no_hang("session parameter client", task).await.unwrap();
    }
}

// ---------------------------------------------------------------------------
// LISTEN / NOTIFY
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_refused_in_transaction_mode() {
    let env = TestEnv::start(|_| {}).await;
    let client = env.connect().await;

    let e = expect_code(
        client.batch_execute("LISTEN events").await,
        &SqlState::FEATURE_NOT_SUPPORTED,
        "LISTEN in transaction mode",
    );
    assert!(
        e.message().contains("transaction pooling"),
        "message mentions transaction pooling: {}",
        e.message()
    );
    assert_serves(&client).await;

    // Inside a transaction it aborts the transaction as a server error would.
    client.batch_execute("BEGIN").await.unwrap();
    let e = expect_code(
        client.batch_execute("listen events").await,
        &SqlState::FEATURE_NOT_SUPPORTED,
        "LISTEN inside a transaction",
    );
    assert!(
        e.message().contains("transaction pooling"),
        "{}",
        e.message()
    );
    expect_code(
        client.query_one("select 1", &[]).await,
        &SqlState::IN_FAILED_SQL_TRANSACTION,
        "after refused LISTEN in tx",
    );
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        client
            .query_one("select 2", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        2
    );

    // No pooled server connection was left listening.
    let direct = env.connect_direct().await;
    let listening: i64 = direct
        .query_one(
            "select count(*) from pg_stat_activity where usename = 'app' and query ilike '%listen%' and query not ilike '%raise%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(listening, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_via_extended_protocol_refused_in_transaction_mode() {
    let env = TestEnv::start(|config| config.pool.size = 1).await;
    let client = env.connect().await;
    // Drivers often send every statement through Parse/Bind/Execute.
    let e = expect_code(
        client.execute("LISTEN events", &[]).await,
        &SqlState::FEATURE_NOT_SUPPORTED,
        "LISTEN via the extended protocol in transaction mode",
    );
    assert!(
        e.message().contains("transaction pooling"),
        "{}",
        e.message()
    );
    assert_serves(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_notify_in_session_mode() {
    let env = TestEnv::start(|config| config.pool.mode = PoolMode::Session).await;
    let mut listener = connect_watched(&proxy_config(&env)).await.unwrap();
    listener
        .client
        .batch_execute("LISTEN events")
        .await
        .unwrap();

    // From a direct session.
    let direct = env.connect_direct().await;
    direct
        .batch_execute("NOTIFY events, 'from direct'")
        .await
        .unwrap();
    // From another client of the proxy.
    let notifier = env.connect().await;
    notifier
        .execute("select pg_notify('events', $1)", &[&"from proxy"])
        .await
        .unwrap();

    let mut payloads = Vec::new();
    no_hang("notifications", async {
        while payloads.len() < 2 {
            match listener.messages.recv().await {
                Some(AsyncMessage::Notification(n)) => {
                    assert_eq!(n.channel(), "events");
                    payloads.push(n.payload().to_string());
                }
                Some(_) => {}
                None => panic!("listener connection ended"),
            }
        }
    })
    .await;
    payloads.sort();
    assert_eq!(
        payloads,
        vec!["from direct".to_string(), "from proxy".to_string()]
    );

    // Notifications also arrive while the listener is busy in a query.
    direct
        .batch_execute("NOTIFY events, 'third'")
        .await
        .unwrap();
    listener
        .client
        .query_one("select pg_sleep(0.2)", &[])
        .await
        .unwrap();
    let n = no_hang("third notification", async {
        loop {
            match listener.messages.recv().await {
                Some(AsyncMessage::Notification(n)) => return n,
                Some(_) => {}
                None => panic!("listener connection ended"),
            }
        }
    })
    .await;
    assert_eq!(n.payload(), "third");
}

// ---------------------------------------------------------------------------
// Session mode
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_mode_state_persists_and_is_reset() {
    let env = TestEnv::start(|config| {
        config.pool.mode = PoolMode::Session;
        config.pool.size = 1;
    })
    .await;
    {
        let client = env.connect().await;
        client
            .batch_execute("create temp table scratch(n int); insert into scratch values (1)")
            .await
            .unwrap();
        client.batch_execute("SET work_mem = '7MB'").await.unwrap();
        client
            .batch_execute("PREPARE named_here AS select $1::int + 100")
            .await
            .unwrap();
        client
            .execute("insert into scratch values ($1)", &[&2i32])
            .await
            .unwrap();
        let stmt = client
            .prepare("select sum(n)::int4 from scratch")
            .await
            .unwrap();
        for _ in 0..5 {
            assert_eq!(
                client.query_one(&stmt, &[]).await.unwrap().get::<_, i32>(0),
                3
            );
        }
        let wm: String = client.query_one("show work_mem", &[]).await.unwrap().get(0);
        assert_eq!(wm, "7MB");
        let v: i32 = client
            .query_one("select n from pg_temp.scratch where n = 2", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(v, 2);
        let messages = client.simple_query("EXECUTE named_here(1)").await.unwrap();
        assert!(messages.iter().any(
            |m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("101"))
        ));
    }
    // The first client is gone; with one server connection, the next client
    // gets the same pool slot, reset.
    let client = no_hang("second session-mode client", env.connect()).await;
    let temp: i64 = client
        .query_one(
            "select count(*) from pg_class where relname = 'scratch' and relpersistence = 't'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(temp, 0, "the previous session's temp table is gone");
    expect_code(
        client.query("select * from pg_temp.scratch", &[]).await,
        &SqlState::UNDEFINED_TABLE,
        "temp table of the previous client",
    );
    let wm: String = client.query_one("show work_mem", &[]).await.unwrap().get(0);
    assert_ne!(wm, "7MB", "the previous session's SET is reset");
    expect_code(
        client.simple_query("EXECUTE named_here(1)").await,
        &SqlState::INVALID_SQL_STATEMENT_NAME,
        "prepared statement of the previous client",
    );
    let messages = client
        .simple_query("select count(*) from pg_prepared_statements")
        .await
        .unwrap();
    let count = messages.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(
        count.as_deref(),
        Some("0"),
        "no prepared statement of the previous client is left"
    );
}

// ---------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_message_is_refused() {
    let env = TestEnv::start(|config| config.proxy.max_message_bytes = 65_536).await;
    let bystander = env.connect().await;
    assert_serves(&bystander).await;

    // A statement well under the limit works.
    let small = env.connect().await;
    let sql = format!("select length('{}')", "y".repeat(30_000));
    let messages = small.simple_query(&sql).await.unwrap();
    assert!(messages.iter().any(
        |m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("30000"))
    ));

    // A 100 KB literal is over it.
    let big = env.connect().await;
    let sql = format!("select length('{}')", "x".repeat(100_000));
    let result = no_hang("oversized query", big.simple_query(&sql)).await;
    let e = expect_code(
        result,
        &SqlState::PROGRAM_LIMIT_EXCEEDED,
        "oversized simple query",
    );
    assert!(
        e.message().contains("65536"),
        "message names the limit: {}",
        e.message()
    );

    // The proxy keeps serving: the bystander and new clients.
    assert_eq!(
        bystander
            .query_one("select 2", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        2
    );
    let fresh = env.connect().await;
    assert_eq!(
        fresh
            .query_one("select 3", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        3
    );

    // A big parameter in the extended protocol (Bind) is refused the same way.
    let other = env.connect().await;
    let stmt = other.prepare("select length($1::text)").await.unwrap();
    let param = "z".repeat(100_000);
    let result = no_hang("oversized Bind", other.query_one(&stmt, &[&param])).await;
    expect_code(result, &SqlState::PROGRAM_LIMIT_EXCEEDED, "oversized Bind");
    assert_eq!(
        bystander
            .query_one("select 4", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        4
    );
}

/// The client's messages are answered in order: what was sent before the
/// oversized message is answered before the error that ends the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_message_after_pipelined_requests() {
    let env = TestEnv::start(|config| config.proxy.max_message_bytes = 65_536).await;

    // Deterministic: a Sync and the oversized Query in one write.
    let mut raw = Raw::connect(env.proxy_port()).await;
    raw.send(|out| {
        frontend::sync(out);
        frontend::query(&format!("select length('{}')", "x".repeat(100_000)), out).unwrap();
    })
    .await;
    let mut seen = Vec::new();
    let mut buf = BytesMut::new();
    no_hang("raw read until EOF", async {
        while raw.stream.read_buf(&mut buf).await.unwrap_or(0) > 0 {}
    })
    .await;
    while buf.len() >= 5 {
        let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        if buf.len() <= len {
            break;
        }
        let mut frame = buf.split_to(len + 1).freeze();
        let tag = frame[0];
        frame.advance(5);
        let m = Msg { tag, body: frame };
        seen.push(match tag {
            b'E' => format!("E{}", m.field(b'C').unwrap_or_default()),
            t => (t as char).to_string(),
        });
    }
    assert_eq!(
        seen,
        vec!["Z".to_string(), "E54000".to_string()],
        "ReadyForQuery for the Sync, then the error for the oversized message"
    );

    // The same with a driver: tokio-postgres closes the statement of a
    // `query(&str)` in the background (Close + Sync) right before the next
    // request goes out.
    let client = env.connect().await;
    assert_serves(&client).await;
    let sql = format!("select length('{}')", "x".repeat(100_000));
    let result = no_hang("oversized query after a query", client.simple_query(&sql)).await;
    expect_code(
        result,
        &SqlState::PROGRAM_LIMIT_EXCEEDED,
        "oversized query after another query",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_timeout_gives_an_error() {
    let env = TestEnv::start(|config| {
        config.pool.size = 1;
        config.pool.checkout_timeout_ms = 500;
    })
    .await;
    // Both connect first: startup itself needs a server connection briefly.
    let a = env.connect().await;
    let b = env.connect().await;
    a.batch_execute("BEGIN; select 1").await.unwrap();
    let result = no_hang(
        "query while the only server is held",
        b.query_one("select 1", &[]),
    )
    .await;
    let e = expect_code(result, &SqlState::TOO_MANY_CONNECTIONS, "checkout timeout");
    let text = format!("{} {}", e.message(), e.hint().unwrap_or(""));
    assert!(
        text.contains("500 ms") && text.contains("pool"),
        "the error names the pool and the timeout: {text}"
    );
    a.batch_execute("COMMIT").await.unwrap();
    assert_eq!(
        a.query_one("select 5", &[]).await.unwrap().get::<_, i32>(0),
        5
    );
    // The severity must tell the truth: after ERROR the session goes on,
    // after FATAL it is closed.
    let retry = no_hang("B after the timeout", b.query_one("select 6", &[])).await;
    match e.severity() {
        "ERROR" => assert_eq!(
            retry.expect("session usable after ERROR").get::<_, i32>(0),
            6
        ),
        "FATAL" => assert!(
            retry.is_err() && b.is_closed(),
            "session closed after FATAL"
        ),
        other => panic!("unexpected severity {other}"),
    }
    // Either way a new client works once the server is free.
    let c = env.connect().await;
    assert_eq!(
        c.query_one("select 7", &[]).await.unwrap().get::<_, i32>(0),
        7
    );
}

// ---------------------------------------------------------------------------
// Server failures
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_backend_killed_during_and_between_queries() {
    let env = TestEnv::start(|config| config.pool.size = 1).await;
    let direct = env.connect_direct().await;

    // Killed while a query runs.
    let victim = env.connect().await;
    let running = tokio::spawn(async move {
        let result = victim.query_one("select pg_sleep(30)", &[]).await;
        (result, victim)
    });
    wait_until("the sleep is running on the server", || async {
        app_backends(
            &direct,
            "and state = 'active' and query like '%pg_sleep(30)%'",
        )
        .await
            == 1
    })
    .await;
    direct
        .execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where usename = 'app' and query like '%pg_sleep(30)%'",
            &[],
        )
        .await
        .unwrap();
    let (result, _victim) = no_hang("query on a killed backend", running).await.unwrap();
    let e = db_error(result, "query on a killed backend");
    assert!(
        e.code() == &SqlState::ADMIN_SHUTDOWN || e.code() == &SqlState::CONNECTION_FAILURE,
        "query on a killed backend: {} {}",
        e.code().code(),
        e.message()
    );

    // A new client works: the pool replaced the connection.
    let client = no_hang("connect after kill", env.connect()).await;
    let stmt = client.prepare("select $1::int4").await.unwrap();
    assert_eq!(
        client
            .query_one(&stmt, &[&-1i32])
            .await
            .unwrap()
            .get::<_, i32>(0),
        -1
    );

    // Killed while idle in the pool: detected on checkout. (A prepared
    // statement is used so that no driver housekeeping such as closing a
    // dropped statement is in flight when the backend dies.)
    for i in 0..5 {
        terminate_app_backends(&direct).await;
        let v: i32 = no_hang(
            "query after idle backend was killed",
            client.query_one(&stmt, &[&i]),
        )
        .await
        .unwrap_or_else(|e| panic!("query {i} after the idle pooled backend was killed: {e:?}"))
        .get(0);
        assert_eq!(v, i);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_survive_server_replacement() {
    let env = TestEnv::start(|_| {}).await;
    let direct = env.connect_direct().await;
    let mut client = env.connect().await;
    client.batch_execute("create table r(n int)").await.unwrap();
    let stmt = client.prepare("select $1::int4 * 10").await.unwrap();
    let insert = client.prepare("insert into r values ($1)").await.unwrap();
    assert_eq!(
        client
            .query_one(&stmt, &[&1i32])
            .await
            .unwrap()
            .get::<_, i32>(0),
        10
    );
    client.execute(&insert, &[&1i32]).await.unwrap();

    for round in 2..5i32 {
        terminate_app_backends(&direct).await;
        // No query was in flight, so the next execution must just work,
        // prepared again on the new server connection.
        let v = no_hang(
            "execute after replacement",
            client.query_one(&stmt, &[&round]),
        )
        .await
        .unwrap_or_else(|e| {
            panic!("round {round}: prepared statement after server replacement: {e:?}")
        });
        assert_eq!(v.get::<_, i32>(0), round * 10);
        terminate_app_backends(&direct).await;
        let tx = client.transaction().await.unwrap();
        tx.execute(&insert, &[&round]).await.unwrap();
        assert_eq!(
            tx.query_one(&stmt, &[&round])
                .await
                .unwrap()
                .get::<_, i32>(0),
            round * 10
        );
        tx.commit().await.unwrap();
    }
    let n: i64 = direct
        .query_one("select count(*) from r", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 4);
}

// ---------------------------------------------------------------------------
// Message sequences a driver rarely sends
// ---------------------------------------------------------------------------

/// Parse/Bind/Execute with a row limit and Flush (no Sync) keeps the server
/// in an implicit transaction with an open portal: the proxy must not lend
/// that server to anyone else before the Sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_without_sync_keeps_its_server() {
    let env = TestEnv::start(|config| {
        config.pool.size = 1;
        config.pool.checkout_timeout_ms = 3_000;
    })
    .await;
    let mut raw = Raw::connect(env.proxy_port()).await;
    raw.send(|out| {
        frontend::parse("", "select g from generate_series(1, 5) g", None, out).unwrap();
        bind_text(out, "", "", &[], 0);
        frontend::execute("", 2, out).unwrap();
        frontend::flush(out);
    })
    .await;
    let mut tags = String::new();
    while !tags.ends_with('s') && !tags.ends_with('E') {
        tags.push(raw.recv().await.tag as char);
    }
    assert_eq!(tags, "12DDs");

    // Another client meanwhile: it must wait (and time out), not run on the
    // server that holds the first client's open portal.
    let other = env.connect().await;
    let other_result = no_hang("other client", other.query_one("select 42", &[])).await;

    if let Ok(row) = &other_result {
        panic!(
            "the other client ran on the server that holds an open portal of the first \
             client's unfinished implicit transaction (got {})",
            row.get::<_, i32>(0)
        );
    }

    // The first client continues its portal.
    raw.send(|out| {
        frontend::execute("", 0, out).unwrap();
        frontend::sync(out);
    })
    .await;
    let t = raw.until_ready().await;
    assert_eq!(t.tags, "DDDCZ", "the rest of the portal: {t:?}");
    assert_eq!(t.text(0, 0).as_deref(), Some("3"));

    match other_result {
        Err(e) => assert_eq!(
            e.code(),
            Some(&SqlState::TOO_MANY_CONNECTIONS),
            "the other client may only time out waiting: {e:?}"
        ),
        Ok(row) => panic!(
            "the other client ran on a server lent out mid-portal (got {})",
            row.get::<_, i32>(0)
        ),
    }
}
