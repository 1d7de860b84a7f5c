//! Proves `shardwire::sharding::hash` bit-exact against a real PostgreSQL:
//! for 10,000 deterministic keys of each supported key type (and of a
//! two-column key), the partition Postgres routes a row to under
//! `PARTITION BY HASH` with modulus 7 is the one shardwire computes, the
//! remainders shardwire computes for modulus 1024 satisfy
//! `satisfies_hash_partition`, and (single columns) the full 64-bit column
//! hashes equal the SQL hash functions' results.

mod common;

use shardwire::sharding::hash::{
    HASH_PARTITION_SEED, KeyValue, hashint4_extended, hashint8_extended, hashtext_extended,
    hashuuid_extended, parse_uuid, partition_for,
};
use tokio_postgres::types::ToSql;

use common::hash_partitions::{connect, create_partitioned, partitions_by_id, start_cluster};
use common::keys::{KEYS, bigint_keys, integer_keys, text_keys, uuid_keys};

/// Modulus of the table that really has partitions.
const SMALL_MODULUS: u64 = 7;
/// Modulus checked with `satisfies_hash_partition` only.
const LARGE_MODULUS: u64 = 1024;

/// One single-column key type under test.
struct SingleKey<'a> {
    /// Table name, also the prefix of its partitions' names.
    table: &'static str,
    /// The key column's type in `CREATE TABLE`.
    column_type: &'static str,
    /// SQL turning parameter `$1` into an array of the key type.
    keys_array: &'static str,
    /// The SQL extended hash function of the type's default hash opclass.
    hash_function: &'static str,
    /// The keys as sent to the server (`$1`).
    param: &'a (dyn ToSql + Sync),
    /// The same keys as shardwire sees them, in the same order.
    keys: Vec<KeyValue<'a>>,
    /// shardwire's column hash of each key with the partition seed.
    hashes: Vec<u64>,
}

/// Runs every check for one single-column key type.
async fn check_single_key(case: SingleKey<'_>) {
    assert_eq!(case.keys.len(), KEYS);
    let cluster = start_cluster();
    let client = connect(&cluster).await;
    let table = case.table;
    create_partitioned(
        &client,
        table,
        &format!("id int not null, k {}", case.column_type),
        "k",
        SMALL_MODULUS,
    )
    .await;

    // Modulus 7: where Postgres actually puts each row, plus a NULL key
    // (NULLs are skipped by the row hash, so it lands in remainder 0).
    let inserted = client
        .execute(
            &format!(
                "insert into {table} (id, k) \
                 select i - 1, k from unnest({}) with ordinality as x(k, i)",
                case.keys_array
            ),
            &[case.param],
        )
        .await
        .expect("insert keys");
    assert_eq!(inserted, KEYS as u64);
    client
        .execute(
            &format!("insert into {table} (id, k) values (-1, null)"),
            &[],
        )
        .await
        .expect("insert null key");
    let placed = partitions_by_id(&client, table).await;
    assert_eq!(placed.len(), KEYS + 1);
    assert_eq!(placed[&-1], partition_for(&[KeyValue::Null], SMALL_MODULUS));
    assert_eq!(placed[&-1], 0);
    let mut wrong = Vec::new();
    let mut per_partition = [0usize; SMALL_MODULUS as usize];
    for (id, key) in case.keys.iter().enumerate() {
        let ours = partition_for(std::slice::from_ref(key), SMALL_MODULUS);
        let theirs = placed[&(id as i32)];
        per_partition[theirs as usize] += 1;
        if ours != theirs {
            wrong.push((key, ours, theirs));
        }
    }
    assert!(
        wrong.is_empty(),
        "{table}: {} of {KEYS} keys routed differently (key, shardwire, postgres), e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    // Not a statistical test: just that the keys really spread over all
    // partitions, so the comparison above means something.
    assert!(per_partition.iter().all(|&n| n > 0), "{per_partition:?}");

    // Modulus 1024, via satisfies_hash_partition on the same parent.
    let remainders: Vec<i32> = case
        .keys
        .iter()
        .map(|k| partition_for(std::slice::from_ref(k), LARGE_MODULUS) as i32)
        .collect();
    for (shift, expect_satisfied) in [(0, true), (1, false)] {
        // With shift 1, every key is paired with a wrong remainder: checks
        // that the function really discriminates.
        let sql = format!(
            "select count(*)::int8, (array_agg(k::text))[1:5] from unnest({}, $2::int[]) as x(k, r) \
             where satisfies_hash_partition('{table}'::regclass, {LARGE_MODULUS}, \
             (r + {shift}) % {LARGE_MODULUS}, k) is distinct from {expect_satisfied}",
            case.keys_array
        );
        let row = client
            .query_one(&sql, &[case.param, &remainders])
            .await
            .expect("satisfies_hash_partition");
        let failures: i64 = row.get(0);
        let sample: Option<Vec<String>> = row.get(1);
        assert_eq!(
            failures, 0,
            "{table}: modulus {LARGE_MODULUS}, shift {shift}: e.g. {sample:?}"
        );
    }
    let row = client
        .query_one(
            &format!(
                "select satisfies_hash_partition('{table}'::regclass, {LARGE_MODULUS}, 0, null::{})",
                case.column_type.split(' ').next().unwrap()
            ),
            &[],
        )
        .await
        .expect("satisfies_hash_partition(null)");
    assert!(row.get::<_, bool>(0), "{table}: a NULL key has remainder 0");

    // The full 64-bit column hashes.
    let hashes: Vec<i64> = case.hashes.iter().map(|&h| h as i64).collect();
    let sql = format!(
        "select count(*)::int8, (array_agg(k::text))[1:5] from unnest({}, $2::int8[]) as x(k, h) \
         where {}(k, {}) <> h",
        case.keys_array, case.hash_function, HASH_PARTITION_SEED as i64
    );
    let row = client
        .query_one(&sql, &[case.param, &hashes])
        .await
        .expect("compare column hashes");
    let failures: i64 = row.get(0);
    let sample: Option<Vec<String>> = row.get(1);
    assert_eq!(
        failures, 0,
        "{table}: {} differs, e.g. {sample:?}",
        case.hash_function
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bigint_keys_match_postgres() {
    let values = bigint_keys();
    check_single_key(SingleKey {
        table: "t_int8",
        column_type: "bigint",
        keys_array: "$1::int8[]",
        hash_function: "hashint8extended",
        param: &values,
        keys: values.iter().map(|&v| KeyValue::Int8(v)).collect(),
        hashes: values
            .iter()
            .map(|&v| hashint8_extended(v, HASH_PARTITION_SEED))
            .collect(),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integer_keys_match_postgres() {
    let values = integer_keys();
    check_single_key(SingleKey {
        table: "t_int4",
        column_type: "integer",
        keys_array: "$1::int4[]",
        hash_function: "hashint4extended",
        param: &values,
        keys: values.iter().map(|&v| KeyValue::Int4(v)).collect(),
        hashes: values
            .iter()
            .map(|&v| hashint4_extended(v, HASH_PARTITION_SEED))
            .collect(),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_keys_match_postgres() {
    let values = text_keys();
    check_single_key(SingleKey {
        table: "t_text",
        column_type: "text collate \"C\"",
        keys_array: "$1::text[]",
        hash_function: "hashtextextended",
        param: &values,
        keys: values.iter().map(|v| KeyValue::Text(v)).collect(),
        hashes: values
            .iter()
            .map(|v| hashtext_extended(v, HASH_PARTITION_SEED))
            .collect(),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uuid_keys_match_postgres() {
    let values = uuid_keys();
    let parsed: Vec<[u8; 16]> = values
        .iter()
        .map(|v| parse_uuid(v).unwrap_or_else(|| panic!("parse_uuid({v})")))
        .collect();
    check_single_key(SingleKey {
        table: "t_uuid",
        column_type: "uuid",
        keys_array: "$1::text[]::uuid[]",
        hash_function: "uuid_hash_extended",
        param: &values,
        keys: parsed.iter().map(|&u| KeyValue::Uuid(u)).collect(),
        hashes: parsed
            .iter()
            .map(|u| hashuuid_extended(u, HASH_PARTITION_SEED))
            .collect(),
    })
    .await;
}

/// A two-column key `(bigint, text)`, with some NULLs in either column and in
/// both: checks the order of `hash_combine64` and the skipping of NULLs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_column_keys_match_postgres() {
    let ints = bigint_keys();
    let texts = text_keys();
    let a: Vec<Option<i64>> = (0..KEYS)
        .map(|i| (i % 17 != 5).then_some(ints[(i * 7) % KEYS]))
        .collect();
    let b: Vec<Option<String>> = (0..KEYS)
        .map(|i| (i % 13 != 3).then(|| texts[(i * 11) % KEYS].clone()))
        .collect();
    let keys: Vec<[KeyValue; 2]> = a
        .iter()
        .zip(&b)
        .map(|(a, b)| {
            [
                a.map_or(KeyValue::Null, KeyValue::Int8),
                b.as_deref().map_or(KeyValue::Null, KeyValue::Text),
            ]
        })
        .collect();
    assert!(keys.iter().any(|k| k == &[KeyValue::Null, KeyValue::Null]));

    let cluster = start_cluster();
    let client = connect(&cluster).await;
    let table = "t_pair";
    create_partitioned(
        &client,
        table,
        "id int not null, a bigint, b text collate \"C\"",
        "a, b",
        SMALL_MODULUS,
    )
    .await;
    let inserted = client
        .execute(
            "insert into t_pair (id, a, b) \
             select i - 1, a, b from unnest($1::int8[], $2::text[]) with ordinality as x(a, b, i)",
            &[&a, &b],
        )
        .await
        .expect("insert keys");
    assert_eq!(inserted, KEYS as u64);
    let placed = partitions_by_id(&client, table).await;
    let mut wrong = Vec::new();
    for (id, key) in keys.iter().enumerate() {
        let ours = partition_for(key, SMALL_MODULUS);
        let theirs = placed[&(id as i32)];
        if ours != theirs {
            wrong.push((key, ours, theirs));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {KEYS} pairs routed differently (key, shardwire, postgres), e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );

    let remainders: Vec<i32> = keys
        .iter()
        .map(|k| partition_for(k, LARGE_MODULUS) as i32)
        .collect();
    for (shift, expect_satisfied) in [(0, true), (1, false)] {
        let sql = format!(
            "select count(*)::int8 from unnest($1::int8[], $2::text[], $3::int[]) as x(a, b, r) \
             where satisfies_hash_partition('t_pair'::regclass, {LARGE_MODULUS}, \
             (r + {shift}) % {LARGE_MODULUS}, a, b) is distinct from {expect_satisfied}"
        );
        // With shift 1, every pair is paired with a wrong remainder.
        let failures: i64 = client
            .query_one(&sql, &[&a, &b, &remainders])
            .await
            .expect("satisfies_hash_partition")
            .get(0);
        assert_eq!(failures, 0, "modulus {LARGE_MODULUS}, shift {shift}");
    }

    // The reversed order really gives other partitions for most keys, so the
    // comparison above pins down the combine order.
    let reversed_differs = keys
        .iter()
        .filter(|&&[x, y]| {
            partition_for(&[y, x], LARGE_MODULUS) != partition_for(&[x, y], LARGE_MODULUS)
        })
        .count();
    assert!(reversed_differs > KEYS / 2, "{reversed_differs}");
}
