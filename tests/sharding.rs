//! Sharding through the proxy against three real shards: key routing in
//! both protocols, hints, scatter-gather merges, split multi-row INSERT,
//! reference tables, cross-shard transactions with two-phase commit
//! (including a proxy killed mid-commit), and COPY splitting.

mod common;

use std::collections::BTreeMap;

use common::sharded::ShardedEnv;
use shardwire::sharding::map::{KeyInput, ShardMap, TableClass};

const MAP: &str = r#"
buckets = 64
default_shard = "shard0"
reference_tables = ["currencies"]
[[bucket_ranges]]
buckets = "0-20"
shard = "shard0"
[[bucket_ranges]]
buckets = "21-41"
shard = "shard1"
[[bucket_ranges]]
buckets = "42-63"
shard = "shard2"
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
"#;

const SCHEMA: &str = "
CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL, region text, balance numeric(12,2));
CREATE TABLE orders (id bigint, account_id bigint NOT NULL, amount int NOT NULL, PRIMARY KEY (account_id, id));
CREATE TABLE currencies (code text PRIMARY KEY, rate numeric NOT NULL);
CREATE TABLE notes (id int PRIMARY KEY, body text);
";

async fn env() -> ShardedEnv {
    let env = ShardedEnv::start(3, MAP, |_| {}).await;
    env.on_every_shard(SCHEMA).await;
    env
}

fn map(env: &ShardedEnv) -> &ShardMap {
    env.config.shard_map(common::APP_DB).expect("sharded db")
}

fn shard_of(env: &ShardedEnv, table: &str, id: i64) -> usize {
    let TableClass::Sharded(t) = map(env).table(&format!("public.{table}")) else {
        panic!("{table} is sharded");
    };
    map(env)
        .shard_for_input(t, KeyInput::Text(&id.to_string()))
        .expect("key routes")
}

/// Ids of `table` stored on each shard, read directly.
async fn ids_per_shard(env: &ShardedEnv, sql: &str) -> Vec<Vec<i64>> {
    let mut out = Vec::new();
    for i in 0..env.shards.len() {
        let client = env.connect_shard(i).await;
        let rows = client.query(sql, &[]).await.expect("direct read");
        out.push(rows.iter().map(|r| r.get::<_, i64>(0)).collect());
    }
    out
}

/// The single number a `SELECT count(*) ...` returns.
async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| format!("no SQLSTATE: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_land_on_their_shard_in_both_protocols() {
    let env = env().await;
    let client = env.connect().await;
    for id in 0..60i64 {
        if id % 2 == 0 {
            client
                .execute(
                    "INSERT INTO accounts (id, name, balance) VALUES ($1, $2, 10)",
                    &[&id, &format!("a{id}")],
                )
                .await
                .expect("insert with params");
        } else {
            client
                .batch_execute(&format!(
                    "INSERT INTO accounts (id, name, balance) VALUES ({id}, 'a{id}', 10)"
                ))
                .await
                .expect("insert literal");
        }
    }
    let per_shard = ids_per_shard(&env, "SELECT id FROM accounts").await;
    for (shard, ids) in per_shard.iter().enumerate() {
        assert!(!ids.is_empty(), "shard {shard} got rows");
        for id in ids {
            assert_eq!(
                shard_of(&env, "accounts", *id),
                shard,
                "row {id} on shard {shard}"
            );
        }
    }
    assert_eq!(per_shard.iter().map(Vec::len).sum::<usize>(), 60);
    // Point reads find every row through the proxy, by literal and by $1.
    for id in 0..60i64 {
        let row = client
            .query_one("SELECT name FROM accounts WHERE id = $1", &[&id])
            .await
            .expect("point read");
        assert_eq!(row.get::<_, String>(0), format!("a{id}"));
        let rows = client
            .simple_query(&format!("SELECT name FROM accounts WHERE id = {id}"))
            .await
            .expect("simple point read");
        assert_eq!(
            rows.iter()
                .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
                .count(),
            1
        );
    }
    // Updates and deletes by key.
    assert_eq!(
        client
            .execute("UPDATE accounts SET balance = 20 WHERE id = $1", &[&7i64])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        client
            .execute("DELETE FROM accounts WHERE id IN (1, 2, 3)", &[])
            .await
            .unwrap(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scatter_gather_merges_like_one_postgres() {
    let env = env().await;
    let client = env.connect().await;
    let mut values = Vec::new();
    for id in 1..=300i64 {
        values.push(format!(
            "({id}, 'n{id}', '{}', {}.{:02})",
            ["eu", "us", "ap"][id as usize % 3],
            id * 3,
            id % 100
        ));
    }
    client
        .batch_execute(&format!(
            "INSERT INTO accounts (id, name, region, balance) VALUES {}",
            values.join(",")
        ))
        .await
        .expect("split multi-row insert");
    let total = count(&client, "SELECT count(*) FROM accounts").await;
    assert_eq!(total, 300);
    let rows = client
        .query("SELECT region, count(*), sum(balance), min(name), max(id), avg(id) FROM accounts GROUP BY region ORDER BY region", &[])
        .await
        .expect("grouped scatter");
    assert_eq!(rows.len(), 3);
    let ap = &rows[0];
    assert_eq!(ap.get::<_, String>(0), "ap");
    assert_eq!(ap.get::<_, i64>(1), 100);
    assert_eq!(ap.get::<_, i64>(4), 299);
    let text = client
        .simple_query("SELECT avg(id) FROM accounts")
        .await
        .unwrap();
    let avg = text.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(avg.as_deref(), Some("150.5000000000000000"));
    let top: Vec<i64> = client
        .query(
            "SELECT id FROM accounts ORDER BY id DESC LIMIT 5 OFFSET 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(top, vec![298, 297, 296, 295, 294]);
    let having: Vec<String> = client
        .query(
            "SELECT region FROM accounts GROUP BY region HAVING sum(id) > 15000 ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Sums of id per region: eu 15150, ap 15050, us 14950.
    assert_eq!(having, vec!["ap".to_string(), "eu".to_string()]);
    // What cannot be merged exactly is refused, never answered wrongly.
    let err = client
        .query("SELECT count(DISTINCT region) FROM accounts", &[])
        .await
        .expect_err("COUNT(DISTINCT) across shards");
    assert_eq!(sqlstate(&err), "0A000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_insert_returns_rows_in_order_and_reference_tables_copy_everywhere() {
    let env = env().await;
    let client = env.connect().await;
    let rows = client
        .query(
            "INSERT INTO accounts (id, name) VALUES (5, 'e'), (1, 'a'), (40, 'x'), (2, 'b'), (33, 'y') RETURNING id",
            &[],
        )
        .await
        .expect("split insert with RETURNING");
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, vec![5, 1, 40, 2, 33]);
    client
        .batch_execute("INSERT INTO currencies VALUES ('EUR', 1.1), ('USD', 1)")
        .await
        .expect("reference write");
    for i in 0..3 {
        let n = count(
            &env.connect_shard(i).await,
            "SELECT count(*) FROM currencies",
        )
        .await;
        assert_eq!(n, 2, "shard {i} has the reference rows");
    }
    // A join with a reference table stays on the key's shard.
    let row = client
        .query_one(
            "SELECT a.name, c.rate FROM accounts a JOIN currencies c ON c.code = 'EUR' WHERE a.id = 40",
            &[],
        )
        .await
        .expect("join with a reference table");
    assert_eq!(row.get::<_, String>(0), "x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_shard_transactions_commit_everywhere_or_nowhere() {
    let env = env().await;
    let mut client = env.connect().await;
    let (a, b) = (
        1i64,
        (2..100)
            .find(|i| shard_of(&env, "accounts", *i) != shard_of(&env, "accounts", 1))
            .unwrap(),
    );
    let tx = client.transaction().await.unwrap();
    tx.execute("INSERT INTO accounts (id, name) VALUES ($1, 'one')", &[&a])
        .await
        .unwrap();
    tx.execute("INSERT INTO accounts (id, name) VALUES ($1, 'two')", &[&b])
        .await
        .unwrap();
    tx.commit().await.expect("two-phase commit");
    let total = count(&client, "SELECT count(*) FROM accounts").await;
    assert_eq!(total, 2);
    // Rolled back: nothing anywhere.
    let tx = client.transaction().await.unwrap();
    tx.execute("UPDATE accounts SET name = 'changed' WHERE id = $1", &[&a])
        .await
        .unwrap();
    tx.execute("UPDATE accounts SET name = 'changed' WHERE id = $1", &[&b])
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let changed = count(
        &client,
        "SELECT count(*) FROM accounts WHERE name = 'changed'",
    )
    .await;
    assert_eq!(changed, 0);
    // A failure on the second shard aborts the whole transaction.
    client.batch_execute("BEGIN").await.unwrap();
    client
        .batch_execute(&format!(
            "UPDATE accounts SET name = 'changed' WHERE id = {a}"
        ))
        .await
        .unwrap();
    let err = client
        .batch_execute(&format!(
            "INSERT INTO accounts (id, name) VALUES ({b}, 'dup')"
        ))
        .await
        .expect_err("duplicate key");
    assert_eq!(sqlstate(&err), "23505");
    let err = client
        .batch_execute("SELECT 1")
        .await
        .expect_err("aborted transaction");
    assert_eq!(sqlstate(&err), "25P02");
    client.batch_execute("COMMIT").await.unwrap();
    let changed = count(
        &client,
        "SELECT count(*) FROM accounts WHERE name = 'changed'",
    )
    .await;
    assert_eq!(changed, 0);
    // No prepared transaction is left behind.
    for i in 0..3 {
        let n = count(
            &env.connect_shard(i).await,
            "SELECT count(*) FROM pg_prepared_xacts",
        )
        .await;
        assert_eq!(n, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_writes_unsupported_joins_and_hints() {
    let env = env().await;
    let client = env.connect().await;
    client
        .batch_execute("INSERT INTO accounts (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c')")
        .await
        .unwrap();
    let err = client
        .execute("UPDATE accounts SET name = 'z'", &[])
        .await
        .expect_err("keyless update");
    assert_eq!(sqlstate(&err), "0A000");
    let err = client
        .query("SELECT * FROM accounts a JOIN orders o ON o.id = a.id", &[])
        .await
        .expect_err("join not on the key");
    assert_eq!(sqlstate(&err), "0A000");
    // Explicit routing: the shard setting, and a comment hint.
    client
        .batch_execute("SET shardwire.shard = 'shard2'")
        .await
        .unwrap();
    client
        .batch_execute("CREATE TABLE only_here (x int)")
        .await
        .unwrap();
    client.batch_execute("RESET shardwire.shard").await.unwrap();
    let exists: bool = env
        .connect_shard(2)
        .await
        .query_one("SELECT to_regclass('only_here') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(exists);
    let rows = client
        .simple_query("/* shardwire: shard=shard2 */ SELECT count(*) FROM only_here")
        .await
        .expect("hinted read");
    assert!(
        rows.iter()
            .any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
    );
    // A session key routes statements that do not name their key: the
    // rows seen are those of key 2's shard.
    client
        .batch_execute("SET shardwire.sharding_key = '2'")
        .await
        .unwrap();
    let seen = count(&client, "SELECT count(*) FROM accounts").await;
    let there: i64 = env
        .connect_shard(shard_of(&env, "accounts", 2))
        .await
        .query_one("SELECT count(*) FROM accounts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(seen, there);
    client
        .batch_execute("RESET shardwire.sharding_key")
        .await
        .unwrap();
    let err = client
        .batch_execute("SET shardwire.shard = 'nowhere'")
        .await
        .expect_err("unknown shard");
    assert_eq!(sqlstate(&err), "22023");
    // SET LOCAL lasts for the transaction; RESET ALL clears the setting.
    let only_here = "SELECT count(*) FROM only_here";
    client.batch_execute("BEGIN").await.unwrap();
    client
        .batch_execute("SET LOCAL shardwire.shard = 'shard2'")
        .await
        .unwrap();
    client
        .batch_execute(only_here)
        .await
        .expect("routed by SET LOCAL");
    client.batch_execute("COMMIT").await.unwrap();
    let err = client
        .batch_execute(only_here)
        .await
        .expect_err("back on the default shard");
    assert_eq!(sqlstate(&err), "42P01");
    client
        .batch_execute("SET shardwire.shard = 2")
        .await
        .unwrap();
    client
        .batch_execute(only_here)
        .await
        .expect("routed by SET");
    client.batch_execute("RESET ALL").await.unwrap();
    let err = client
        .batch_execute(only_here)
        .await
        .expect_err("RESET ALL clears it");
    assert_eq!(sqlstate(&err), "42P01");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_splits_200k_rows_onto_their_shards() {
    let env = env().await;
    let client = env.connect().await;
    let sink = client
        .copy_in("COPY orders (id, account_id, amount) FROM STDIN")
        .await
        .expect("copy starts");
    let mut data = String::new();
    for i in 0..200_000i64 {
        data.push_str(&format!("{i}\t{}\t{}\n", i % 7919, i % 1000));
    }
    futures::pin_mut!(sink);
    use futures::SinkExt;
    for chunk in data.as_bytes().chunks(65_536) {
        sink.send(bytes::Bytes::copy_from_slice(chunk))
            .await
            .expect("copy data");
    }
    let n = sink.finish().await.expect("copy finishes");
    assert_eq!(n, 200_000);
    let per_shard = ids_per_shard(&env, "SELECT account_id FROM orders").await;
    let mut total = 0;
    for (shard, keys) in per_shard.iter().enumerate() {
        total += keys.len();
        let mut wrong = BTreeMap::new();
        for key in keys {
            let want = shard_of(&env, "orders", *key);
            if want != shard {
                *wrong.entry(*key).or_insert(0) += 1;
            }
        }
        assert!(
            wrong.is_empty(),
            "shard {shard} holds rows of other shards: {wrong:?}"
        );
    }
    assert_eq!(total, 200_000);
    let total = count(&client, "SELECT count(*) FROM orders").await;
    assert_eq!(total, 200_000);
    let out = client
        .copy_out("COPY orders TO STDOUT")
        .await
        .expect("copy out");
    futures::pin_mut!(out);
    use futures::StreamExt;
    let mut lines = 0usize;
    while let Some(chunk) = out.next().await {
        lines += chunk
            .expect("copy out data")
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
    }
    assert_eq!(lines, 200_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_strings_spanning_shards_run_statement_by_statement() {
    let env = env().await;
    let client = env.connect().await;
    let b = (2..100)
        .find(|i| shard_of(&env, "accounts", *i) != shard_of(&env, "accounts", 1))
        .unwrap();
    // DDL on every shard plus a write on one: one implicit transaction.
    client
        .batch_execute(&format!(
            "CREATE TABLE marker (x int); INSERT INTO accounts (id, name) VALUES (1, 'a'); \
             INSERT INTO accounts (id, name) VALUES ({b}, 'b')"
        ))
        .await
        .expect("statements on several shards");
    let n = count(&client, "SELECT count(*) FROM accounts").await;
    assert_eq!(n, 2);
    // An error stops the string and undoes what it did on every shard.
    let err = client
        .batch_execute(&format!(
            "INSERT INTO accounts (id, name) VALUES (500, 'x'); \
             INSERT INTO accounts (id, name) VALUES ({b}, 'dup'); \
             INSERT INTO accounts (id, name) VALUES (501, 'never')"
        ))
        .await
        .expect_err("duplicate key");
    assert_eq!(sqlstate(&err), "23505");
    let n = count(&client, "SELECT count(*) FROM accounts").await;
    assert_eq!(n, 2, "the implicit transaction rolled back everywhere");
    // Rows of every statement come back, in order.
    let messages = client
        .simple_query(&format!(
            "SELECT name FROM accounts WHERE id = 1; SELECT name FROM accounts WHERE id = {b}"
        ))
        .await
        .unwrap();
    let names: Vec<String> = messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect();
    assert_eq!(names, vec!["a".to_string(), "b".to_string()]);
    // Explicit transaction control inside the string.
    client
        .batch_execute(&format!(
            "BEGIN; UPDATE accounts SET name = 'A' WHERE id = 1; UPDATE accounts SET name = 'B' WHERE id = {b}; COMMIT"
        ))
        .await
        .unwrap();
    let n = count(
        &client,
        "SELECT count(*) FROM accounts WHERE name IN ('A', 'B')",
    )
    .await;
    assert_eq!(n, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_shard_fails_the_statement_not_the_session() {
    let mut env = env().await;
    let client = env.connect().await;
    let on_two = (1..1000)
        .find(|i| shard_of(&env, "accounts", *i) == 2)
        .unwrap();
    let on_zero = (1..1000)
        .find(|i| shard_of(&env, "accounts", *i) == 0)
        .unwrap();
    client
        .batch_execute(&format!(
            "INSERT INTO accounts (id, name) VALUES ({on_zero}, 'z')"
        ))
        .await
        .unwrap();
    tokio::task::block_in_place(|| env.shards[2].stop()).expect("stop shard 2");
    let err = client
        .query("SELECT * FROM accounts WHERE id = $1", &[&on_two])
        .await
        .expect_err("shard 2 is down");
    assert!(
        err.code().is_some(),
        "an ErrorResponse with a SQLSTATE: {err:?}"
    );
    let err = client
        .simple_query("SELECT count(*) FROM accounts")
        .await
        .expect_err("a scatter needs shard 2");
    assert!(err.code().is_some(), "{err:?}");
    // The same session still serves the other shards.
    let name: String = client
        .query_one("SELECT name FROM accounts WHERE id = $1", &[&on_zero])
        .await
        .expect("shard 0 still answers")
        .get(0);
    assert_eq!(name, "z");
    // A transaction that meets the dead shard is aborted, not half-committed.
    client.batch_execute("BEGIN").await.unwrap();
    client
        .batch_execute(&format!(
            "UPDATE accounts SET name = 'changed' WHERE id = {on_zero}"
        ))
        .await
        .unwrap();
    client
        .batch_execute(&format!(
            "UPDATE accounts SET name = 'changed' WHERE id = {on_two}"
        ))
        .await
        .expect_err("shard 2 is down");
    client.batch_execute("COMMIT").await.unwrap();
    let name: String = client
        .query_one("SELECT name FROM accounts WHERE id = $1", &[&on_zero])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "z", "the failed transaction rolled back");
    tokio::task::block_in_place(|| env.shards[2].start()).expect("restart shard 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_extended_batch_may_visit_several_shards() {
    use postgres_protocol::message::frontend;
    let env = env().await;
    let client = env.connect().await;
    let b = (2..100)
        .find(|i| shard_of(&env, "accounts", *i) != shard_of(&env, "accounts", 1))
        .unwrap();
    client
        .batch_execute(&format!(
            "INSERT INTO accounts (id, name) VALUES (1, 'one'), ({b}, 'two')"
        ))
        .await
        .unwrap();
    // Parse once, then Bind/Execute for a key on one shard and a key on
    // another, and a single Sync: the proxy must fetch the first shard's
    // answers (the server holds them until Sync or Flush) before moving on.
    let mut raw = common::raw::Raw::connect(env.proxy.addrs[0].port()).await;
    let b_text = b.to_string();
    raw.send(|out| {
        frontend::parse("", "SELECT name FROM accounts WHERE id = $1", [20u32], out).unwrap();
        common::raw::bind_text(out, "", "", &[Some("1")], 0);
        frontend::execute("", 0, out).unwrap();
        common::raw::bind_text(out, "", "", &[Some(b_text.as_str())], 0);
        frontend::execute("", 0, out).unwrap();
        frontend::sync(out);
    })
    .await;
    let t = raw.until_ready().await;
    assert_eq!(t.tags, "12DC2DCZ", "{t:?}");
    assert_eq!(t.text(0, 0).as_deref(), Some("one"));
    assert_eq!(t.text(1, 0).as_deref(), Some("two"));
    assert_eq!(t.status, b'I');
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_reaches_every_shard_of_a_scatter() {
    let env = env().await;
    let client = env.connect().await;
    let one_per_shard: Vec<i64> = (0..3)
        .map(|s| {
            (1..1000)
                .find(|i| shard_of(&env, "accounts", *i) == s)
                .unwrap()
        })
        .collect();
    for id in &one_per_shard {
        client
            .execute("INSERT INTO accounts (id, name) VALUES ($1, 'x')", &[id])
            .await
            .unwrap();
    }
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        token.cancel_query(tokio_postgres::NoTls).await
    });
    // Every shard sleeps 60 s per row: only a cancel on all of them ends it.
    let err = client
        .query(
            "SELECT count(*) FROM accounts WHERE pg_sleep(60) IS NOT NULL",
            &[],
        )
        .await
        .expect_err("cancelled");
    assert_eq!(sqlstate(&err), "57014", "{err:?}");
    canceller.await.unwrap().expect("cancel sent");
    assert_eq!(count(&client, "SELECT count(*) FROM accounts").await, 3);
}

/// Names of the accounts with these ids, read on the shards directly.
async fn stored_name(env: &ShardedEnv, id: i64) -> Option<String> {
    let shard = shard_of(env, "accounts", id);
    env.connect_shard(shard)
        .await
        .query_opt("SELECT name FROM accounts WHERE id = $1", &[&id])
        .await
        .unwrap()
        .map(|r| r.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn begin_reaches_servers_already_attached() {
    use postgres_protocol::message::frontend;
    let env = env().await;
    let client = env.connect().await;
    client
        .batch_execute("INSERT INTO accounts (id, name) VALUES (2, 'orig')")
        .await
        .unwrap();
    // Pipelined simple queries: the server of the first stays attached
    // while BEGIN arrives; the UPDATE must still be inside the transaction.
    let mut raw = common::raw::Raw::connect(env.proxy.addrs[0].port()).await;
    raw.send(|out| {
        frontend::query("SELECT name FROM accounts WHERE id = 2", out).unwrap();
        frontend::query("BEGIN", out).unwrap();
        frontend::query("UPDATE accounts SET name = 'changed' WHERE id = 2", out).unwrap();
        frontend::query("ROLLBACK", out).unwrap();
    })
    .await;
    let statuses: Vec<u8> = [
        raw.until_ready().await,
        raw.until_ready().await,
        raw.until_ready().await,
        raw.until_ready().await,
    ]
    .iter()
    .map(|t| t.status)
    .collect();
    assert_eq!(statuses, b"ITTI".to_vec());
    assert_eq!(stored_name(&env, 2).await.as_deref(), Some("orig"));
    // COMMIT AND CHAIN opens the next transaction at once.
    client.batch_execute("BEGIN").await.unwrap();
    client
        .batch_execute("UPDATE accounts SET name = 'first' WHERE id = 2")
        .await
        .unwrap();
    client.batch_execute("COMMIT AND CHAIN").await.unwrap();
    client
        .batch_execute("UPDATE accounts SET name = 'second' WHERE id = 2")
        .await
        .unwrap();
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(stored_name(&env, 2).await.as_deref(), Some("first"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_mode_transactions_and_resets_cover_every_shard() {
    let env = ShardedEnv::start(3, MAP, |config| {
        config.pool.mode = shardwire::config::PoolMode::Session;
    })
    .await;
    env.on_every_shard(SCHEMA).await;
    let client = env.connect().await;
    client
        .batch_execute("INSERT INTO accounts (id, name) VALUES (2, 'orig')")
        .await
        .unwrap();
    client.batch_execute("BEGIN").await.unwrap();
    client
        .batch_execute("UPDATE accounts SET name = 'changed' WHERE id = 2")
        .await
        .unwrap();
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(stored_name(&env, 2).await.as_deref(), Some("orig"));
    // Session state left on any shard is reset before the next client.
    for shard in 0..3 {
        client
            .batch_execute(&format!(
                "SET shardwire.shard = {shard}; SET statement_timeout = '4321ms'"
            ))
            .await
            .unwrap();
    }
    drop(client);
    let next = env.connect().await;
    for shard in 0..3 {
        next.batch_execute(&format!("SET shardwire.shard = {shard}"))
            .await
            .unwrap();
        let timeout: String = next
            .query_one("SHOW statement_timeout", &[])
            .await
            .unwrap()
            .get(0);
        assert_ne!(
            timeout, "4321ms",
            "shard {shard} kept the previous client's setting"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_extended_batch_stops_and_commits_nothing() {
    use postgres_protocol::message::frontend;
    let env = env().await;
    let client = env.connect().await;
    let b = (2..100)
        .find(|i| shard_of(&env, "accounts", *i) != shard_of(&env, "accounts", 1))
        .unwrap();
    client
        .batch_execute(&format!(
            "INSERT INTO accounts (id, name) VALUES (1, 'a'), ({b}, 'b')"
        ))
        .await
        .unwrap();
    let mut raw = common::raw::Raw::connect(env.proxy.addrs[0].port()).await;
    let b_text = b.to_string();
    raw.send(|out| {
        // Shard of 1: fine. Shard of b: division by zero. Shard of 1 again:
        // must not run.
        frontend::parse(
            "ok",
            "UPDATE accounts SET name = 'x' WHERE id = $1",
            [20u32],
            out,
        )
        .unwrap();
        common::raw::bind_text(out, "", "ok", &[Some("1")], 0);
        frontend::execute("", 0, out).unwrap();
        frontend::parse(
            "bad",
            "UPDATE accounts SET name = 'x' WHERE id = $1 AND 1/0 = 1",
            [20u32],
            out,
        )
        .unwrap();
        common::raw::bind_text(out, "", "bad", &[Some(b_text.as_str())], 0);
        frontend::execute("", 0, out).unwrap();
        common::raw::bind_text(out, "", "ok", &[Some("1")], 0);
        frontend::execute("", 0, out).unwrap();
        frontend::sync(out);
    })
    .await;
    let t = raw.until_ready().await;
    assert_eq!(t.errors, vec!["22012".to_string()], "{t:?}");
    assert!(
        t.tags.ends_with("EZ"),
        "nothing after the error but ReadyForQuery: {t:?}"
    );
    assert_eq!(
        stored_name(&env, 1).await.as_deref(),
        Some("a"),
        "the batch committed nothing"
    );
    assert_eq!(stored_name(&env, b).await.as_deref(), Some("b"));
    // The session goes on.
    raw.send(|out| frontend::query("SELECT 1", out).unwrap())
        .await;
    assert_eq!(raw.until_ready().await.errors, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_string_ending_in_commit_or_rollback_is_one_transaction() {
    let env = env().await;
    let client = env.connect().await;
    let b = (2..100)
        .find(|i| shard_of(&env, "accounts", *i) != shard_of(&env, "accounts", 1))
        .unwrap();
    client
        .batch_execute(&format!(
            "INSERT INTO accounts (id, name) VALUES (1, 'a'), ({b}, 'b')"
        ))
        .await
        .unwrap();
    client
        .batch_execute(&format!(
            "UPDATE accounts SET name = 'x' WHERE id = 1; UPDATE accounts SET name = 'x' WHERE id = {b}; ROLLBACK"
        ))
        .await
        .unwrap();
    assert_eq!(stored_name(&env, 1).await.as_deref(), Some("a"));
    assert_eq!(stored_name(&env, b).await.as_deref(), Some("b"));
    let err = client
        .batch_execute(&format!(
            "UPDATE accounts SET name = 'x' WHERE id = 1; UPDATE accounts SET name = 'x' WHERE id = {b} AND 1/0 = 1; COMMIT"
        ))
        .await
        .expect_err("division by zero");
    assert_eq!(sqlstate(&err), "22012");
    assert_eq!(
        stored_name(&env, 1).await.as_deref(),
        Some("a"),
        "the failed string committed nothing"
    );
    client
        .batch_execute(&format!(
            "UPDATE accounts SET name = 'y' WHERE id = 1; UPDATE accounts SET name = 'y' WHERE id = {b}; COMMIT"
        ))
        .await
        .unwrap();
    assert_eq!(stored_name(&env, 1).await.as_deref(), Some("y"));
    assert_eq!(stored_name(&env, b).await.as_deref(), Some("y"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_copy_with_header_and_no_column_list_splits_by_key() {
    use futures::SinkExt;
    let env = env().await;
    let client = env.connect().await;
    let sink = client
        .copy_in("COPY accounts FROM STDIN WITH (FORMAT csv, HEADER true)")
        .await
        .expect("copy starts");
    futures::pin_mut!(sink);
    let mut data = String::from("id,name,region,balance\n");
    for id in 1..=500i64 {
        data.push_str(&format!("{id},\"n, {id}\",\"\",{id}.5\n"));
    }
    sink.send(bytes::Bytes::from(data)).await.unwrap();
    assert_eq!(sink.finish().await.expect("copy finishes"), 500);
    let per_shard = ids_per_shard(&env, "SELECT id FROM accounts").await;
    for (shard, ids) in per_shard.iter().enumerate() {
        assert!(!ids.is_empty());
        for id in ids {
            assert_eq!(shard_of(&env, "accounts", *id), shard, "row {id}");
        }
    }
    let row = client
        .query_one("SELECT name, region FROM accounts WHERE id = 77", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "n, 77");
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some(""));
    // A key no shard can take fails the whole COPY: nothing is kept.
    let sink = client
        .copy_in("COPY accounts (name, id) FROM STDIN")
        .await
        .expect("copy starts");
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"ok\t9001\nbad\tnot-a-number\n"))
        .await
        .unwrap();
    let err = sink.finish().await.expect_err("invalid key");
    assert_eq!(sqlstate(&err), "22P02", "{err:?}");
    assert_eq!(count(&client, "SELECT count(*) FROM accounts").await, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_order_across_shards_is_refused_when_the_database_does_not_sort_bytewise() {
    let clusters =
        common::sharded::start_clusters(3, shardwire::localcluster::ClusterOptions::for_tests())
            .await;
    for cluster in &clusters {
        cluster
            .psql(
                "postgres",
                "CREATE DATABASE icudb LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C' \
                 TEMPLATE template0 OWNER app",
            )
            .expect("an ICU database");
    }
    let env = ShardedEnv::with_clusters(clusters, MAP, |config| {
        config.databases[0].server_database = Some("icudb".to_string());
    })
    .await;
    let client = env.connect().await;
    client
        .batch_execute("CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL)")
        .await
        .expect("DDL through the proxy");
    client
        .batch_execute("INSERT INTO accounts VALUES (1, 'b'), (2, 'B'), (3, 'a'), (4, 'A')")
        .await
        .unwrap();
    for sql in [
        "SELECT name FROM accounts ORDER BY name",
        "SELECT max(name) FROM accounts",
    ] {
        let err = client.query(sql, &[]).await.expect_err(sql);
        assert_eq!(sqlstate(&err), "0A000", "{sql}: {err:?}");
    }
    // Orders that do not depend on the collation still merge.
    let ids: Vec<i64> = client
        .query("SELECT id FROM accounts ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, vec![1, 2, 3, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_are_fetched_from_the_shard_they_were_declared_on() {
    let env = env().await;
    let mut client = env.connect().await;
    // Keys on both shards, so one of the cursors is not on the default shard.
    let ids: Vec<i64> = (1..40).collect();
    let on_other = *ids
        .iter()
        .find(|&&id| shard_of(&env, "accounts", id) != map(&env).default_shard)
        .expect("a key off the default shard");
    client
        .execute(
            "INSERT INTO accounts (id, name) VALUES ($1, 'far')",
            &[&on_other],
        )
        .await
        .expect("insert");
    let rows = client
        .simple_query(&format!(
            "BEGIN; DECLARE far CURSOR FOR SELECT name FROM accounts WHERE id = {on_other}; \
             FETCH 1 FROM far; MOVE ABSOLUTE 0 IN far; FETCH NEXT FROM far; CLOSE far; COMMIT"
        ))
        .await
        .expect("a cursor on another shard");
    let names: Vec<String> = rows
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["far", "far"]);
    // Extended protocol (as psycopg's server-side cursors use it).
    let txn = client.transaction().await.expect("begin");
    txn.execute(
        "DECLARE far2 CURSOR FOR SELECT name FROM accounts WHERE id = $1",
        &[&on_other],
    )
    .await
    .expect("declare");
    let rows = txn.query("FETCH ALL FROM far2", &[]).await.expect("fetch");
    assert_eq!(rows.len(), 1);
    txn.commit().await.expect("commit");
}
