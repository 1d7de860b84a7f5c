//! Differential test of sharding: the same generated dataset is loaded into
//! one plain Postgres and, through the proxy, into three shards (customers
//! and orders co-located by customer id, products a reference table, events
//! hash-sharded on a uuid, accounts on a text key, ledger range-sharded on
//! an integer); then several hundred generated queries (point lookups,
//! ranges, IN lists, aggregates, GROUP BY / HAVING, DISTINCT, ORDER BY with
//! LIMIT / OFFSET, co-located and reference joins, failing queries) run on
//! both, with the simple and the extended protocol. Every answer of the
//! proxy must equal the single Postgres' — rows compared as multisets, in
//! order as far as the ORDER BY determines it, columns by name and type,
//! errors by SQLSTATE — or be a refusal with SQLSTATE 0A000. Refusals must
//! stay a minority and every category must have equal answers.
//!
//! Run it (the per-category summary is printed to stdout):
//! `cargo test --test differential -- --nocapture`. The seed of the data and
//! the queries is fixed; `SHARDWIRE_DIFF_SEED=<u64>` picks another.

mod common;
#[path = "common/differential/mod.rs"]
mod differential;

use shardwire::localcluster::LocalCluster;
use tokio_postgres::Client;

use common::sharded::{ShardedEnv, single_postgres};
use common::{APP_DB, APP_PASSWORD, APP_USER, connect};
use differential::dataset::{Dataset, LoadOrder};
use differential::decode::{Raw, canonical};
use differential::queries;
use differential::run::{Side, run_all};
use differential::schema::{REFERENCE_TABLE, SCHEMA, SHARD_MAP, SHARDED_TABLES};

/// Seed of the dataset and the queries unless `SHARDWIRE_DIFF_SEED` is set.
const DEFAULT_SEED: u64 = 20_261_125;

fn seed() -> u64 {
    match std::env::var("SHARDWIRE_DIFF_SEED") {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("SHARDWIRE_DIFF_SEED={text:?} is not a u64")),
        Err(_) => DEFAULT_SEED,
    }
}

/// Connection string of `cluster` as the app user.
fn app_conninfo(cluster: &LocalCluster) -> String {
    format!(
        "host={} port={} user={APP_USER} password={APP_PASSWORD} dbname={APP_DB}",
        cluster.host(),
        cluster.port()
    )
}

async fn execute_all(client: &Client, statements: &[String], side: &str) {
    for statement in statements {
        if let Err(e) = client.batch_execute(statement).await {
            let start: String = statement.chars().take(120).collect();
            panic!(
                "loading {side} failed: {e} ({:?}) in {start}…",
                e.as_db_error().map(|d| d.message())
            );
        }
    }
}

/// Row counts per shard, read directly: the sharded tables' rows are split
/// over the shards (each holds some, none twice), the reference table is
/// whole on every shard.
async fn check_placement(env: &ShardedEnv, data: &Dataset) {
    let expected: std::collections::HashMap<_, _> = data.row_counts().into_iter().collect();
    let mut totals = std::collections::HashMap::new();
    for shard in 0..env.shards.len() {
        let client = env.connect_shard(shard).await;
        for table in SHARDED_TABLES.iter().chain([&REFERENCE_TABLE]) {
            let n: i64 = client
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await
                .expect("count")
                .get(0);
            let n = n as usize;
            if *table == REFERENCE_TABLE {
                assert_eq!(
                    n, expected[table],
                    "reference table {table} on shard {shard}"
                );
            } else {
                assert!(n > 0, "{table} has no rows on shard {shard}");
                *totals.entry(*table).or_insert(0) += n;
            }
        }
    }
    for table in SHARDED_TABLES {
        assert_eq!(
            totals[table], expected[table],
            "rows of {table} over all shards"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_answers_match_single_postgres() {
    let seed = seed();
    let data = Dataset::generate(seed);
    let (single, env) = tokio::join!(single_postgres(), ShardedEnv::start(3, SHARD_MAP, |_| {}));

    let mut reference = Side::connect(app_conninfo(&single)).await;
    reference
        .client()
        .batch_execute(SCHEMA)
        .await
        .expect("schema on the single Postgres");
    execute_all(
        reference.client(),
        &data.insert_statements(LoadOrder::Generated),
        "the single Postgres",
    )
    .await;

    env.on_every_shard(SCHEMA).await;
    let mut proxy = Side::connect(env.proxy_conninfo()).await;
    execute_all(
        proxy.client(),
        &data.insert_statements(LoadOrder::Reversed),
        "through the proxy",
    )
    .await;
    check_placement(&env, &data).await;

    let queries = queries::generate(&data, seed);
    assert!(
        queries.len() >= 500,
        "only {} distinct queries",
        queries.len()
    );
    let outcome = run_all(&mut reference, &mut proxy, &queries).await;
    println!(
        "differential suite, seed {seed}: {} queries\n{}",
        queries.len(),
        outcome.summary()
    );
    let problems = outcome.problems();
    for problem in &problems {
        println!("FAILED: {problem}\n");
    }
    assert!(
        problems.is_empty(),
        "{} problem(s), the first:\n{}",
        problems.len(),
        problems[0]
    );
}

/// The binary decoder prints values exactly as Postgres' own output
/// functions do (in UTC), so extended-protocol answers compare by value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_decoding_matches_postgres_text() {
    let cluster = single_postgres().await;
    let client = connect(&app_conninfo(&cluster)).await.expect("connect");
    client
        .batch_execute("SET TimeZone = 'UTC'")
        .await
        .expect("set time zone");
    let values = [
        ("-32768", "int2"),
        ("2147483647", "int4"),
        ("-9223372036854775808", "int8"),
        ("0", "numeric"),
        ("0.000", "numeric"),
        ("-0.0000012", "numeric"),
        ("123456789012345678901234.5678", "numeric"),
        ("10000", "numeric"),
        ("1e-20", "numeric"),
        ("'NaN'", "numeric"),
        ("'-Infinity'", "numeric"),
        ("-12.5", "numeric(12,2)"),
        ("'2000-01-01'", "date"),
        ("'1999-12-31'", "date"),
        ("'2024-02-29'", "date"),
        ("'1900-03-01'", "date"),
        ("'infinity'", "date"),
        ("'2000-01-01 00:00:00+00'", "timestamptz"),
        ("'1999-12-31 23:59:59.999999+00'", "timestamptz"),
        ("'2023-06-15 12:34:56.5+02'", "timestamptz"),
        ("'Zoë O''Brien'", "text"),
        ("'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'", "uuid"),
    ];
    for (literal, ty) in values {
        let sql = format!("SELECT ({literal})::{ty}, (({literal})::{ty})::text");
        check_decoding(&client, &sql).await;
    }
    check_decoding(
        &client,
        "SELECT avg(x), avg(x)::text FROM (VALUES (1), (2), (4)) s(x)",
    )
    .await;
    check_decoding(
        &client,
        "SELECT sum(x), sum(x)::text FROM (VALUES (1.5), (-2.25)) s(x)",
    )
    .await;
}

/// Decodes column 0 of `sql`'s row in binary; it must equal column 1,
/// Postgres' text of the same value.
async fn check_decoding(client: &Client, sql: &str) {
    let row = client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    let raw: Raw = row.get(0);
    let text: &str = row.get(1);
    assert_eq!(canonical(row.columns()[0].type_(), raw.0), text, "{sql}");
}
