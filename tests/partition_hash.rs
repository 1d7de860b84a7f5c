//! Proves `shardwire::sharding::hash` bit-exact against a real PostgreSQL:
//! for 10,000 deterministic keys of each supported key type (and of a
//! two-column key), the partition Postgres routes a row to under
//! `PARTITION BY HASH` with modulus 7 is the one shardwire computes, the
//! remainders shardwire computes for modulus 1024 satisfy
//! `satisfies_hash_partition`, and (single columns) the full 64-bit column
//! hashes equal the SQL hash functions' results.

use std::collections::HashMap;

use shardwire::localcluster::{ClusterOptions, LocalCluster};
use shardwire::sharding::hash::{
    HASH_PARTITION_SEED, KeyValue, hashint4_extended, hashint8_extended, hashtext_extended,
    hashuuid_extended, parse_uuid, partition_for,
};
use tokio_postgres::types::ToSql;

/// Keys generated per type.
const KEYS: usize = 10_000;
/// Modulus of the table that really has partitions.
const SMALL_MODULUS: u64 = 7;
/// Modulus checked with `satisfies_hash_partition` only.
const LARGE_MODULUS: u64 = 1024;

/// Connects with tokio-postgres and drives the connection.
async fn connect(cluster: &LocalCluster) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(
        &cluster.connection_string("postgres"),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connect");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

fn start_cluster() -> LocalCluster {
    LocalCluster::start_temp(&ClusterOptions::for_tests()).expect("start temp cluster")
}

/// splitmix64: a tiny deterministic generator, so every run checks the same
/// keys.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

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

/// Creates `table` partitioned by hash with `SMALL_MODULUS` partitions named
/// `<table>_p<remainder>`.
async fn create_partitioned(
    client: &tokio_postgres::Client,
    table: &str,
    columns: &str,
    key: &str,
) {
    let mut sql = format!("create table {table} ({columns}) partition by hash ({key});");
    for r in 0..SMALL_MODULUS {
        sql.push_str(&format!(
            "create table {table}_p{r} partition of {table} \
             for values with (modulus {SMALL_MODULUS}, remainder {r});"
        ));
    }
    client.batch_execute(&sql).await.expect("create tables");
}

/// Reads back `id -> remainder of the partition holding the row`.
async fn partitions_by_id(client: &tokio_postgres::Client, table: &str) -> HashMap<i32, u64> {
    let rows = client
        .query(
            &format!("select id, tableoid::regclass::text from {table}"),
            &[],
        )
        .await
        .expect("read back partitions");
    let prefix = format!("{table}_p");
    rows.iter()
        .map(|row| {
            let id: i32 = row.get(0);
            let partition: String = row.get(1);
            let r = partition
                .strip_prefix(&prefix)
                .and_then(|r| r.parse().ok())
                .unwrap_or_else(|| panic!("unexpected partition {partition}"));
            (id, r)
        })
        .collect()
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

/// bigint keys: small values, both sides of the int4 and uint32 boundaries,
/// the extremes, and values spread over the whole range.
fn bigint_keys() -> Vec<i64> {
    let mut keys: Vec<i64> = vec![
        0,
        1,
        -1,
        42,
        i64::MIN,
        i64::MIN + 1,
        i64::MAX,
        i64::MAX - 1,
        i32::MIN as i64,
        i32::MIN as i64 - 1,
        i32::MAX as i64,
        i32::MAX as i64 + 1,
        u32::MAX as i64,
        u32::MAX as i64 + 1,
        -(u32::MAX as i64),
        -(u32::MAX as i64) - 1,
    ];
    keys.extend(-500..500);
    let mut rng = Rng(1);
    while keys.len() < KEYS {
        let v = rng.next() as i64;
        keys.push(match keys.len() % 4 {
            0 => v,                        // anywhere
            1 => v >> 32,                  // fits in int4
            2 => v >> rng.below(64),       // any magnitude, either sign
            _ => (v >> 40) ^ (1i64 << 32), // just above the int4 range
        });
    }
    keys
}

/// integer keys: small values, the extremes, and values spread over the range.
fn integer_keys() -> Vec<i32> {
    let mut keys: Vec<i32> = vec![0, 1, -1, 42, i32::MIN, i32::MIN + 1, i32::MAX, i32::MAX - 1];
    keys.extend(-500..500);
    let mut rng = Rng(2);
    while keys.len() < KEYS {
        let v = rng.next() as i32;
        keys.push(if keys.len().is_multiple_of(2) {
            v
        } else {
            v >> rng.below(32)
        });
    }
    keys
}

/// text keys: empty, every length up to 64 characters of mixed 1- to 4-byte
/// UTF-8 (so byte lengths cover every lookup3 tail), quotes and backslashes,
/// and a few long values (several kB, which the server may compress).
fn text_keys() -> Vec<String> {
    const ALPHABET: &[char] = &[
        'a',
        'b',
        'z',
        'A',
        'Z',
        '0',
        '9',
        ' ',
        '\t',
        '\'',
        '"',
        '\\',
        '%',
        '_',
        '\u{7f}',
        'é',
        'ß',
        'Ω',
        'ж',
        '日',
        '本',
        '語',
        '€',
        '🦀',
        '😀',
        '\u{10ffff}',
    ];
    let mut keys = vec![String::new(), "abc".to_string(), "héllo wörld".to_string()];
    let mut rng = Rng(3);
    // ASCII prefixes: every byte length 1..=48.
    let ascii = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV";
    keys.extend((1..=ascii.len()).map(|n| ascii[..n].to_string()));
    for n in [1000, 4096, 10_000] {
        keys.push((0..n).map(|i| ALPHABET[i % ALPHABET.len()]).collect());
    }
    while keys.len() < KEYS {
        let len = rng.below(65) as usize;
        let ascii_only = keys.len() % 3 == 0;
        let s: String = (0..len)
            .map(|_| {
                if ascii_only {
                    char::from(b' ' + rng.below(95) as u8)
                } else {
                    ALPHABET[rng.below(ALPHABET.len() as u64) as usize]
                }
            })
            .collect();
        keys.push(s);
    }
    keys
}

/// uuid keys as text, in every form Postgres accepts (hyphenated, bare,
/// braces, upper case, odd hyphen groups), so `parse_uuid` is checked too.
fn uuid_keys() -> Vec<String> {
    let mut keys = vec![
        "00000000-0000-0000-0000-000000000000".to_string(),
        "ffffffff-ffff-ffff-ffff-ffffffffffff".to_string(),
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".to_string(),
    ];
    let mut rng = Rng(4);
    while keys.len() < KEYS {
        let bytes: Vec<u8> = (0..16).map(|_| rng.next() as u8).collect();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let hyphenated = format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        );
        keys.push(match keys.len() % 6 {
            0 | 1 => hyphenated,
            2 => hex,
            3 => format!("{{{hyphenated}}}"),
            4 => hyphenated.to_uppercase(),
            _ => hex
                .as_bytes()
                .chunks(4)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join("-"),
        });
    }
    keys
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
