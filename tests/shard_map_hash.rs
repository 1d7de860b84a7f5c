//! Proves a shard map's hash routing against a real PostgreSQL: with a map
//! of 64 buckets, for 10,000 keys of each key type (bigint, integer, text,
//! uuid) given as the router sees them (text parameters, and binary ones for
//! integers), the bucket `ShardMap` computes is the partition Postgres picks
//! for the same key in a `PARTITION BY HASH` table of 64 partitions, and the
//! shard is that bucket's owner. A NULL key is in bucket 0 on both sides.
//! (`partition_hash.rs` proves the raw hash functions; this proves the map's
//! key parsing and bucket arithmetic on top of them.)

mod common;

use shardwire::sharding::hash::parse_uuid;
use shardwire::sharding::map::{KeyInput, ShardMap, ShardedTable, TableClass};
use tokio_postgres::types::ToSql;

use common::hash_partitions::{connect, create_partitioned, partitions_by_id, start_cluster};
use common::keys::{KEYS, bigint_keys, integer_keys, text_keys, uuid_keys};

/// Buckets of the test map, and so partitions of each test table.
const BUCKETS: u64 = 64;

/// A map with one hash table per key type, buckets split between two shards.
const MAP: &str = r#"
buckets = 64
default_shard = "shard0"

[[bucket_ranges]]
buckets = "0-31"
shard = "shard0"

[[bucket_ranges]]
buckets = "32-63"
shard = "shard1"

[[tables]]
name = "t_int8"
key = "k"
type = "bigint"

[[tables]]
name = "t_int4"
key = "k"
type = "integer"

[[tables]]
name = "t_text"
key = "k"
type = "text"

[[tables]]
name = "t_uuid"
key = "k"
type = "uuid"
"#;

/// One key type under test.
struct Case<'a> {
    /// Table name in the map and in Postgres.
    table: &'static str,
    /// The key column's type in `CREATE TABLE`.
    column_type: &'static str,
    /// SQL turning parameter `$1` into an array of the key type.
    keys_array: &'static str,
    /// The keys as sent to the server (`$1`).
    param: &'a (dyn ToSql + Sync),
    /// The same keys in text form, as a text-format bind parameter.
    texts: Vec<String>,
    /// The same keys in binary form (a binary-format bind parameter).
    binaries: Vec<Vec<u8>>,
}

fn load_map() -> ShardMap {
    let shards = vec!["shard0".to_string(), "shard1".to_string()];
    let map = ShardMap::from_toml(MAP, &shards).unwrap_or_else(|p| panic!("{p:#?}"));
    assert_eq!(u64::from(map.buckets), BUCKETS);
    map
}

fn sharded<'m>(map: &'m ShardMap, table: &str) -> &'m ShardedTable {
    match map.table(&format!("public.{table}")) {
        TableClass::Sharded(t) => t,
        other => panic!("{table} is {other:?}"),
    }
}

/// The bucket and shard the map gives a key, checking that it also agrees
/// with `bucket_of` on the parsed key's hash value.
fn route(map: &ShardMap, table: &ShardedTable, input: KeyInput<'_>) -> (u32, usize) {
    let key = map
        .parse_key(table, input)
        .unwrap_or_else(|e| panic!("{}: {input:?}: {e}", table.name));
    let bucket = map.bucket_for(table, key.as_ref());
    if let Some(key) = &key {
        assert_eq!(map.bucket_of(&key.hash_value(table.key_type)), bucket);
    }
    let shard = map
        .shard_for(table, key.as_ref())
        .unwrap_or_else(|e| panic!("{}: {input:?}: {e}", table.name));
    (bucket, shard)
}

async fn check(client: &tokio_postgres::Client, map: &ShardMap, case: Case<'_>) {
    let table = sharded(map, case.table);
    assert_eq!(case.texts.len(), KEYS);
    create_partitioned(
        client,
        case.table,
        &format!("id int not null, k {}", case.column_type),
        "k",
        BUCKETS,
    )
    .await;
    let inserted = client
        .execute(
            &format!(
                "insert into {} (id, k) \
                 select i - 1, k from unnest({}) with ordinality as x(k, i)",
                case.table, case.keys_array
            ),
            &[case.param],
        )
        .await
        .expect("insert keys");
    assert_eq!(inserted, KEYS as u64);
    client
        .execute(
            &format!("insert into {} (id, k) values (-1, null)", case.table),
            &[],
        )
        .await
        .expect("insert null key");
    let placed = partitions_by_id(client, case.table).await;
    assert_eq!(placed.len(), KEYS + 1);

    assert_eq!(placed[&-1], 0, "Postgres puts a NULL key in remainder 0");
    assert_eq!(route(map, table, KeyInput::Null), (0, 0));

    let mut wrong = Vec::new();
    let mut per_shard = [0usize; 2];
    for (id, text) in case.texts.iter().enumerate() {
        let theirs = placed[&(id as i32)];
        let owner = map.bucket_owner[theirs as usize];
        for input in [KeyInput::Text(text), KeyInput::Binary(&case.binaries[id])] {
            let (bucket, shard) = route(map, table, input);
            if (u64::from(bucket), shard) != (theirs, owner) {
                wrong.push((input, bucket, theirs));
            }
        }
        per_shard[owner] += 1;
    }
    assert!(
        wrong.is_empty(),
        "{}: {} keys routed differently (key, shardwire bucket, postgres partition), e.g. {:?}",
        case.table,
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    // The keys really spread over both shards, so the check means something.
    assert!(per_shard.iter().all(|&n| n > KEYS / 4), "{per_shard:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_buckets_are_postgres_hash_partitions() {
    let map = load_map();
    let cluster = start_cluster();
    let client = connect(&cluster).await;

    let bigints = bigint_keys();
    check(
        &client,
        &map,
        Case {
            table: "t_int8",
            column_type: "bigint",
            keys_array: "$1::int8[]",
            param: &bigints,
            texts: bigints.iter().map(i64::to_string).collect(),
            binaries: bigints.iter().map(|v| v.to_be_bytes().to_vec()).collect(),
        },
    )
    .await;

    let integers = integer_keys();
    check(
        &client,
        &map,
        Case {
            table: "t_int4",
            column_type: "integer",
            keys_array: "$1::int4[]",
            param: &integers,
            // Surrounding whitespace and a plus sign, as int4in accepts.
            texts: integers.iter().map(|v| format!(" {v:+} ")).collect(),
            binaries: integers.iter().map(|v| v.to_be_bytes().to_vec()).collect(),
        },
    )
    .await;

    let texts = text_keys();
    check(
        &client,
        &map,
        Case {
            table: "t_text",
            column_type: "text collate \"C\"",
            keys_array: "$1::text[]",
            param: &texts,
            texts: texts.clone(),
            binaries: texts.iter().map(|t| t.as_bytes().to_vec()).collect(),
        },
    )
    .await;

    let uuids = uuid_keys();
    check(
        &client,
        &map,
        Case {
            table: "t_uuid",
            column_type: "uuid",
            keys_array: "$1::text[]::uuid[]",
            param: &uuids,
            texts: uuids.clone(),
            binaries: uuids
                .iter()
                .map(|u| parse_uuid(u).expect("valid uuid").to_vec())
                .collect(),
        },
    )
    .await;
}
