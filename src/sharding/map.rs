//! Shard maps: which shard holds which rows of which table.
//!
//! A shard map is an immutable snapshot loaded from a TOML file
//! (`shard-maps/*.toml`) named by a `[[databases]]` entry. It names the
//! shards a logical database spans, the virtual buckets hash keys fall into
//! and the bucket ranges each shard owns, the sharded tables with their key
//! column, key type and strategy (hash, range or list), co-location groups
//! and reference tables. Tables it does not name live on its default shard.
//!
//! Routing reads it through the pure lookups here; a reload or a rebalance
//! replaces the whole snapshot (with a higher `version`), never edits one.

mod build;
mod file;
mod ident;
mod key;

use std::collections::HashMap;

use super::hash::{KeyValue, partition_hash};
use crate::config::Problem;

/// Most virtual buckets a map may declare (each costs one entry in
/// [`ShardMap::bucket_owner`]; far more than any rebalance needs).
pub const MAX_BUCKETS: u32 = 1 << 20;

/// A loaded, validated shard map.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardMap {
    /// Version of this snapshot, reported by the admin console; bumped by
    /// every reload or rebalance cut-over.
    pub version: u64,
    /// Indexes (into the config's `[[shards]]`) of the shards this map uses
    /// (default shard, bucket owners, range and list rules), ascending
    /// (config order); every routing answer is one of these.
    pub shards: Vec<usize>,
    /// Config shard index of the shard holding tables the map does not name
    /// (and the 2PC decision record).
    pub default_shard: usize,
    /// Number of virtual hash buckets (fixed for the life of the data).
    pub buckets: u32,
    /// Config shard index owning each bucket, indexed by bucket number.
    pub bucket_owner: Vec<usize>,
    /// Sharded tables by normalized name (see [`normalize_table_name`]).
    pub tables: HashMap<String, ShardedTable>,
    /// Reference tables (a full copy on every shard), normalized names.
    pub reference_tables: Vec<String>,
    /// Writes whose shard key cannot be found run on every shard (as one
    /// atomic transaction) instead of being rejected.
    pub allow_keyless_writes: bool,
}

/// A table split across shards by one key column.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardedTable {
    /// Normalized name (`schema.table`).
    pub name: String,
    /// The sharding key column (normalized identifier).
    pub key_column: String,
    /// The key column's type.
    pub key_type: KeyType,
    /// How key values map to shards.
    pub strategy: Strategy,
    /// Co-location group: tables of one group share a key value space, so
    /// equal keys live on the same shard and joins on the key stay local.
    /// A table without a declared group is a group of its own (its name).
    pub group: String,
}

/// Types a sharding key may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// `bigint` (hashed as Postgres hashes int8).
    Bigint,
    /// `integer` (hashed as int4; equal to the bigint hash of the same value).
    Integer,
    /// `text` / `varchar`.
    Text,
    /// `uuid`.
    Uuid,
}

/// How a table's key values are assigned to shards.
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    /// Postgres partition hash of the key, modulo the bucket count, then the
    /// bucket's owner.
    Hash,
    /// Key ranges `[from, to)` to shards; `None` bounds are open. Loaded
    /// maps hold them sorted by `from`, without overlaps.
    Range(Vec<RangeRule>),
    /// Explicit key values to shards, with an optional shard for the rest.
    List {
        /// Normalized key value (its canonical text) to config shard index.
        values: HashMap<String, usize>,
        /// Shard for values not listed; `None` rejects them.
        default: Option<usize>,
    },
}

/// One range of a range-sharded table.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeRule {
    /// Inclusive lower bound, `None` for unbounded.
    pub from: Option<OwnedKey>,
    /// Exclusive upper bound, `None` for unbounded.
    pub to: Option<OwnedKey>,
    /// Config shard index.
    pub shard: usize,
}

/// A key value parsed to its column's type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OwnedKey {
    /// bigint or integer.
    Int(i64),
    /// text, compared bytewise (Postgres' `C` collation).
    Text(String),
    /// uuid bytes in written order.
    Uuid([u8; 16]),
}

/// A key value as the router found it, before parsing to the key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyInput<'a> {
    /// Text form: a SQL literal's value (quotes removed), a text-format bind
    /// parameter, a COPY field or a `shardwire.sharding_key` setting.
    Text(&'a str),
    /// A binary-format bind parameter (int2/int4/int8 big-endian, text
    /// bytes, or 16 uuid bytes).
    Binary(&'a [u8]),
    /// SQL NULL: no shard holds a NULL key for hash tables.
    Null,
}

/// Why a key value cannot be routed: reported to the client as an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The value does not parse as the key type (SQLSTATE 22P02).
    #[error("invalid value {value:?} for sharding key {column} of type {key_type}")]
    Invalid {
        /// The value as given.
        value: String,
        /// The key column.
        column: String,
        /// The key type's SQL name.
        key_type: &'static str,
    },
    /// An integer that does not fit the key type (SQLSTATE 22003, as the
    /// server reports it).
    #[error("value \"{value}\" is out of range for type {key_type}")]
    OutOfRange {
        /// The value as given.
        value: String,
        /// The key type's SQL name.
        key_type: &'static str,
    },
    /// No range or list entry holds the value (SQLSTATE 22023).
    #[error("no shard holds sharding key value {value} of table {table}")]
    Unmapped {
        /// The table.
        table: String,
        /// The value, canonical text.
        value: String,
    },
}

impl KeyType {
    /// The SQL name of the type.
    pub fn sql_name(self) -> &'static str {
        match self {
            KeyType::Bigint => "bigint",
            KeyType::Integer => "integer",
            KeyType::Text => "text",
            KeyType::Uuid => "uuid",
        }
    }
}

/// Normalizes a table name as written in SQL or in a shard map to
/// `schema.table`: unqualified names are in `public`, identifiers are
/// compared as Postgres folds them (the caller passes quoted identifiers
/// with their quotes removed and case kept, unquoted ones lowercased).
pub fn normalize_table_name(parts: &[String]) -> String {
    match parts {
        [table] => format!("public.{table}"),
        [.., schema, table] => format!("{schema}.{table}"),
        [] => String::new(),
    }
}

/// Why `input` is not a valid key of `table`: out of range for an integer
/// key written as an integer, invalid otherwise.
fn key_error(table: &ShardedTable, input: KeyInput<'_>) -> KeyError {
    let written = match input {
        KeyInput::Text(text) => text.to_string(),
        KeyInput::Binary(bytes) => key::hex_literal(bytes),
        KeyInput::Null => String::new(),
    };
    if is_integer_text(table.key_type, &written) {
        KeyError::OutOfRange {
            value: written.trim().to_string(),
            key_type: table.key_type.sql_name(),
        }
    } else {
        KeyError::Invalid {
            value: written,
            column: table.key_column.clone(),
            key_type: table.key_type.sql_name(),
        }
    }
}

/// Whether `text` is a well-formed decimal integer for an integer key
/// type, so failing to parse it means it is out of range.
fn is_integer_text(key_type: KeyType, text: &str) -> bool {
    let digits = text.trim();
    let digits = digits.strip_prefix(['+', '-']).unwrap_or(digits);
    matches!(key_type, KeyType::Integer | KeyType::Bigint)
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
}

/// What the map says about one table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TableClass<'a> {
    /// Split across shards by a key.
    Sharded(&'a ShardedTable),
    /// Copied on every shard.
    Reference,
    /// Not named by the map: lives on the default shard.
    Unsharded,
}

impl ShardMap {
    /// Classifies a table by its normalized name.
    pub fn table(&self, normalized: &str) -> TableClass<'_> {
        if let Some(t) = self.tables.get(normalized) {
            TableClass::Sharded(t)
        } else if self.reference_tables.iter().any(|r| r == normalized) {
            TableClass::Reference
        } else {
            TableClass::Unsharded
        }
    }

    /// Parses a key value to the table's key type, as the server's input
    /// (text) or receive (binary) function would; `Ok(None)` for NULL.
    pub fn parse_key(
        &self,
        table: &ShardedTable,
        input: KeyInput<'_>,
    ) -> Result<Option<OwnedKey>, KeyError> {
        let parsed = match input {
            KeyInput::Null => return Ok(None),
            KeyInput::Text(text) => key::parse_text(table.key_type, text),
            KeyInput::Binary(bytes) => key::parse_binary(table.key_type, bytes),
        };
        match parsed {
            Some(key) => Ok(Some(key)),
            // The value's text is built only for the error message.
            None => Err(key_error(table, input)),
        }
    }

    /// The shard holding rows of `table` whose key is `key` (`None`: NULL).
    ///
    /// Hash tables: the owner of the key's bucket; a NULL key is in bucket 0,
    /// as Postgres puts rows whose key is all NULL in remainder 0. Range
    /// tables: the rule containing the key (NULL is in none). List tables:
    /// the entry listing the key's canonical text, else the list default
    /// (NULL goes to the default, as in a Postgres LIST partitioning).
    pub fn shard_for(
        &self,
        table: &ShardedTable,
        key: Option<&OwnedKey>,
    ) -> Result<usize, KeyError> {
        let shard = match &table.strategy {
            Strategy::Hash => {
                let bucket = self.bucket_for(table, key);
                self.bucket_owner.get(bucket as usize).copied()
            }
            Strategy::Range(rules) => key.and_then(|k| {
                rules
                    .iter()
                    .find(|rule| rule.contains(k))
                    .map(|rule| rule.shard)
            }),
            Strategy::List { values, default } => key
                .and_then(|k| key::with_canonical_text(k, |text| values.get(text).copied()))
                .or(*default),
        };
        shard.ok_or_else(|| KeyError::Unmapped {
            table: table.name.clone(),
            value: key.map_or_else(|| "NULL".to_string(), OwnedKey::to_string),
        })
    }

    /// Shard of a key given as the router found it: `parse_key` then `shard_for`.
    pub fn shard_for_input(
        &self,
        table: &ShardedTable,
        input: KeyInput<'_>,
    ) -> Result<usize, KeyError> {
        let key = self.parse_key(table, input)?;
        self.shard_for(table, key.as_ref())
    }

    /// The shards that may hold rows of `table` (for scatter reads): every
    /// shard owning a bucket for hash tables, the named shards for range and
    /// list tables; sorted, without duplicates.
    pub fn shards_of(&self, table: &ShardedTable) -> Vec<usize> {
        let mut shards: Vec<usize> = Vec::new();
        let mut add = |shard: usize| {
            if !shards.contains(&shard) {
                shards.push(shard);
            }
        };
        match &table.strategy {
            Strategy::Hash => {
                // Owners come in long runs: skip repeats before the search.
                let mut previous = None;
                for &owner in &self.bucket_owner {
                    if previous != Some(owner) {
                        add(owner);
                        previous = Some(owner);
                    }
                }
            }
            Strategy::Range(rules) => rules.iter().for_each(|rule| add(rule.shard)),
            Strategy::List { values, default } => {
                values.values().chain(default).for_each(|&shard| add(shard));
            }
        }
        shards.sort_unstable();
        shards
    }

    /// The bucket of a hash key (exposed for the rebalancer and for checks
    /// inside Postgres: `satisfies_hash_partition(..., buckets, bucket, key)`):
    /// `partition_hash(key) % buckets`, the remainder Postgres computes for a
    /// hash partition of modulus `buckets`. 0 for a map without buckets
    /// (which loading refuses).
    pub fn bucket_of(&self, key: &KeyValue<'_>) -> u32 {
        let hash = partition_hash(std::slice::from_ref(key));
        // The remainder is below `buckets`, a u32.
        hash.checked_rem(u64::from(self.buckets)).unwrap_or(0) as u32
    }

    /// The bucket of a parsed key of `table` (`None`: NULL, bucket 0), hashed
    /// as the table's key type hashes.
    pub fn bucket_for(&self, table: &ShardedTable, key: Option<&OwnedKey>) -> u32 {
        let value = key.map_or(KeyValue::Null, |k| k.hash_value(table.key_type));
        self.bucket_of(&value)
    }

    /// The map of an unsharded database living on `shard`: no sharded or
    /// reference tables, every statement on that shard. Used to route an
    /// unsharded database's reads to its replicas.
    pub fn unsharded(shard: usize) -> ShardMap {
        ShardMap {
            version: 1,
            shards: vec![shard],
            default_shard: shard,
            buckets: 1,
            bucket_owner: vec![shard],
            tables: HashMap::new(),
            reference_tables: Vec::new(),
            allow_keyless_writes: false,
        }
    }

    /// Parses and validates a shard map's TOML text. Shard names in it refer
    /// to `shard_names` (the config's `[[shards]]` names, in order); the
    /// map holds their indexes. Every problem is returned, each located by
    /// its key path (`tables[2].key`), or by line and column for syntax
    /// errors.
    pub fn from_toml(text: &str, shard_names: &[String]) -> Result<ShardMap, Vec<Problem>> {
        let file = file::parse(text).map_err(|problem| vec![problem])?;
        build::build(&file, shard_names)
    }
}

impl Strategy {
    /// The strategy's name as written in a shard map.
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Hash => "hash",
            Strategy::Range(_) => "range",
            Strategy::List { .. } => "list",
        }
    }
}

impl RangeRule {
    /// Whether `key` lies in `[from, to)`.
    pub fn contains(&self, key: &OwnedKey) -> bool {
        self.from.as_ref().is_none_or(|from| from <= key)
            && self.to.as_ref().is_none_or(|to| key < to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sharding::hash::partition_for;

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn load(text: &str, shards: &[&str]) -> ShardMap {
        ShardMap::from_toml(text, &names(shards)).unwrap_or_else(|p| panic!("{p:#?}"))
    }

    fn sharded<'m>(map: &'m ShardMap, name: &str) -> &'m ShardedTable {
        match map.table(name) {
            TableClass::Sharded(t) => t,
            other => panic!("{name} is {other:?}"),
        }
    }

    const DEMO: &str = include_str!("../../shard-maps/demo.toml");
    const EXAMPLE: &str = include_str!("../../shard-maps/example.toml");

    #[test]
    fn shipped_demo_map_is_valid() {
        let map = load(DEMO, &["shard0", "shard1"]);
        assert_eq!(map.buckets, 1024);
        assert_eq!(map.shards, vec![0, 1]);
        assert_eq!(map.default_shard, 0);
        assert!(map.bucket_owner[..512].iter().all(|&s| s == 0));
        assert!(map.bucket_owner[512..].iter().all(|&s| s == 1));
        for name in ["clients", "portfolios", "holdings", "transactions"] {
            let t = sharded(&map, &format!("public.{name}"));
            assert_eq!(t.key_column, "client_id");
            assert_eq!(t.key_type, KeyType::Bigint);
            assert_eq!(t.strategy, Strategy::Hash);
            assert_eq!(t.group, "client");
            assert_eq!(map.shards_of(t), vec![0, 1]);
        }
        assert_eq!(map.table("public.assets"), TableClass::Reference);
        assert_eq!(map.table("public.prices"), TableClass::Reference);
        assert_eq!(map.table("public.other"), TableClass::Unsharded);
        assert!(!map.allow_keyless_writes);
    }

    #[test]
    fn shipped_example_map_is_valid() {
        // Config shards in another order than the map mentions them, plus
        // one the map does not use: indexes follow the config.
        let map = load(EXAMPLE, &["spare", "shard2", "shard1", "shard0"]);
        assert_eq!(map.shards, vec![1, 2, 3]);
        assert_eq!(map.default_shard, 3);
        assert_eq!(map.tables.len(), 5);
        assert_eq!(sharded(&map, "sales.orders").group, "client");
        assert_eq!(sharded(&map, "public.sessions").group, "public.sessions");
        assert_eq!(sharded(&map, "public.sessions").key_type, KeyType::Uuid);
        assert_eq!(
            map.reference_tables,
            names(&["public.assets", "public.prices", "reference.Currencies"])
        );
        let events = sharded(&map, "public.events");
        assert_eq!(events.strategy.name(), "range");
        assert_eq!(map.shards_of(events), vec![1, 2, 3]);
        let accounts = sharded(&map, "public.accounts");
        assert_eq!(map.shards_of(accounts), vec![1, 2, 3]);
    }

    const STRATEGIES: &str = r#"
        buckets = 8
        default_shard = "a"
        bucket_ranges = [{ buckets = "0-3", shard = "a" }, { buckets = "4-7", shard = "b" }]
        [[tables]]
        name = "h8"
        key = "k"
        type = "bigint"
        [[tables]]
        name = "h4"
        key = "k"
        type = "integer"
        [[tables]]
        name = "ht"
        key = "k"
        type = "text"
        [[tables]]
        name = "hu"
        key = "k"
        type = "uuid"
        [[tables]]
        name = "r"
        key = "k"
        type = "integer"
        strategy = "range"
        ranges = [{ from = 100, to = 200, shard = "c" }, { to = -5, shard = "a" }, { from = 200, shard = "b" }]
        [[tables]]
        name = "l"
        key = "k"
        type = "integer"
        strategy = "list"
        lists = [{ values = [1, "+2", " 3 "], shard = "a" }, { values = ["0x10"], shard = "c" }]
        [[tables]]
        name = "ld"
        key = "k"
        type = "uuid"
        strategy = "list"
        lists = [{ values = ["A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"], shard = "b" }]
        list_default = "c"
    "#;

    fn strategies() -> ShardMap {
        load(STRATEGIES, &["a", "b", "c"])
    }

    #[test]
    fn hash_lookups_use_the_postgres_partition_hash() {
        let map = strategies();
        let cases: [(&str, KeyInput, KeyValue); 4] = [
            ("public.h8", KeyInput::Text(" -42 "), KeyValue::Int8(-42)),
            ("public.h4", KeyInput::Text("77"), KeyValue::Int4(77)),
            (
                "public.ht",
                KeyInput::Text("hello"),
                KeyValue::Text("hello"),
            ),
            (
                "public.hu",
                KeyInput::Text("a0eebc999c0b4ef8bb6d6bb9bd380a11"),
                KeyValue::Uuid(
                    crate::sharding::hash::parse_uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
                        .expect("uuid"),
                ),
            ),
        ];
        for (name, input, value) in cases {
            let table = sharded(&map, name);
            let bucket = partition_for(&[value], 8) as u32;
            assert_eq!(map.bucket_of(&value), bucket, "{name}");
            let key = map.parse_key(table, input).expect("parses");
            assert_eq!(map.bucket_for(table, key.as_ref()), bucket, "{name}");
            let expected = if bucket < 4 { 0 } else { 1 };
            assert_eq!(map.shard_for_input(table, input), Ok(expected), "{name}");
        }
    }

    #[test]
    fn binary_and_text_inputs_route_alike() {
        let map = strategies();
        let h8 = sharded(&map, "public.h8");
        let h4 = sharded(&map, "public.h4");
        for v in [-3i64, 0, 1, 99_999, i32::MAX.into()] {
            let text = v.to_string();
            let by_text = map.shard_for_input(h8, KeyInput::Text(&text));
            let v4 = i32::try_from(v).expect("fits");
            for bytes in [&v.to_be_bytes()[..], &v4.to_be_bytes()[..]] {
                assert_eq!(map.shard_for_input(h8, KeyInput::Binary(bytes)), by_text);
                assert_eq!(map.shard_for_input(h4, KeyInput::Binary(bytes)), by_text);
            }
        }
    }

    #[test]
    fn null_hash_keys_are_in_bucket_zero() {
        let map = strategies();
        let table = sharded(&map, "public.ht");
        assert_eq!(map.parse_key(table, KeyInput::Null), Ok(None));
        assert_eq!(map.bucket_for(table, None), 0);
        assert_eq!(map.bucket_of(&KeyValue::Null), 0);
        assert_eq!(map.shard_for(table, None), Ok(0));
    }

    #[test]
    fn invalid_keys_name_the_column_and_type() {
        let map = strategies();
        let h4 = sharded(&map, "public.h4");
        assert_eq!(
            map.parse_key(h4, KeyInput::Text("2147483648")),
            Err(KeyError::OutOfRange {
                value: "2147483648".into(),
                key_type: "integer",
            })
        );
        let err = map.shard_for_input(h4, KeyInput::Binary(&[1, 2, 3]));
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err(r#"invalid value "\\x010203" for sharding key k of type integer"#.to_string())
        );
        let hu = sharded(&map, "public.hu");
        assert!(map.parse_key(hu, KeyInput::Text("xyz")).is_err());
    }

    #[test]
    fn range_lookups_find_the_containing_rule() {
        let map = strategies();
        let r = sharded(&map, "public.r");
        let shard = |v: &str| map.shard_for_input(r, KeyInput::Text(v));
        assert_eq!(shard("-2147483648"), Ok(0));
        assert_eq!(shard("-6"), Ok(0));
        assert_eq!(shard("100"), Ok(2));
        assert_eq!(shard("199"), Ok(2));
        assert_eq!(shard("200"), Ok(1));
        assert_eq!(shard("2147483647"), Ok(1));
        for unmapped in ["-5", "0", "99"] {
            assert_eq!(
                shard(unmapped),
                Err(KeyError::Unmapped {
                    table: "public.r".into(),
                    value: unmapped.into(),
                })
            );
        }
        assert_eq!(
            map.shard_for(r, None),
            Err(KeyError::Unmapped {
                table: "public.r".into(),
                value: "NULL".into(),
            })
        );
        assert_eq!(map.shards_of(r), vec![0, 1, 2]);
        // Loaded rules are sorted by lower bound, the unbounded one first.
        let Strategy::Range(rules) = &r.strategy else {
            panic!("range")
        };
        let froms: Vec<_> = rules.iter().map(|r| r.from.clone()).collect();
        assert_eq!(
            froms,
            vec![None, Some(OwnedKey::Int(100)), Some(OwnedKey::Int(200))]
        );
    }

    #[test]
    fn text_ranges_compare_bytewise() {
        let text = r#"
            buckets = 1
            default_shard = "a"
            bucket_ranges = [{ buckets = 0, shard = "a" }]
            [[tables]]
            name = "events"
            key = "day"
            type = "text"
            strategy = "range"
            ranges = [{ from = "2024-01-01", to = "2025-01-01", shard = "a" }, { from = "2025-01-01", shard = "b" }]
        "#;
        let map = load(text, &["a", "b"]);
        let events = sharded(&map, "public.events");
        let shard = |v: &str| map.shard_for_input(events, KeyInput::Text(v));
        assert_eq!(shard("2024-06-30"), Ok(0));
        assert_eq!(shard("2025-01-01"), Ok(1));
        assert_eq!(shard("2025"), Ok(0)); // a prefix sorts first
        assert_eq!(shard("Z"), Ok(1)); // '2' < 'Z' bytewise
        assert!(shard("2023-12-31").is_err());
    }

    #[test]
    fn list_lookups_use_canonical_text_then_the_default() {
        let map = strategies();
        let l = sharded(&map, "public.l");
        let shard = |v: &str| map.shard_for_input(l, KeyInput::Text(v));
        assert_eq!(shard("1"), Ok(0));
        assert_eq!(shard(" +1"), Ok(0));
        assert_eq!(shard("2"), Ok(0));
        assert_eq!(shard("3"), Ok(0));
        assert_eq!(shard("16"), Ok(2));
        assert_eq!(
            map.shard_for_input(l, KeyInput::Binary(&16i32.to_be_bytes())),
            Ok(2)
        );
        assert_eq!(
            shard("4"),
            Err(KeyError::Unmapped {
                table: "public.l".into(),
                value: "4".into(),
            })
        );
        assert!(map.shard_for(l, None).is_err());
        assert_eq!(map.shards_of(l), vec![0, 2]);

        let ld = sharded(&map, "public.ld");
        let shard = |v: &str| map.shard_for_input(ld, KeyInput::Text(v));
        assert_eq!(shard("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), Ok(1));
        assert_eq!(shard("{A0EEBC999C0B4EF8BB6D6BB9BD380A11}"), Ok(1));
        assert_eq!(shard("00000000-0000-0000-0000-000000000000"), Ok(2));
        assert_eq!(map.shard_for(ld, None), Ok(2));
        assert_eq!(map.shards_of(ld), vec![1, 2]);
    }

    #[test]
    fn shards_of_a_hash_table_are_the_bucket_owners() {
        let map = load(
            r#"
            buckets = 6
            default_shard = "d"
            bucket_ranges = [
                { buckets = "0-1", shard = "c" },
                { buckets = "2-3", shard = "a" },
                { buckets = "4-5", shard = "c" },
            ]
            [[tables]]
            name = "t"
            key = "k"
            type = "text"
        "#,
            &["a", "b", "c", "d"],
        );
        assert_eq!(map.shards_of(sharded(&map, "public.t")), vec![0, 2]);
        assert_eq!(map.shards, vec![0, 2, 3]);
    }

    #[test]
    fn maps_built_by_hand_never_panic() {
        let map = ShardMap {
            version: 1,
            shards: vec![],
            default_shard: 0,
            buckets: 0,
            bucket_owner: vec![],
            tables: HashMap::new(),
            reference_tables: vec![],
            allow_keyless_writes: false,
        };
        let table = ShardedTable {
            name: "public.t".into(),
            key_column: "k".into(),
            key_type: KeyType::Integer,
            strategy: Strategy::Hash,
            group: "public.t".into(),
        };
        assert_eq!(map.bucket_of(&KeyValue::Int4(1)), 0);
        assert!(map.shard_for(&table, Some(&OwnedKey::Int(1))).is_err());
        // An integer key out of the int4 range hashes as int8.
        assert_eq!(
            OwnedKey::Int(1 << 40).hash_value(KeyType::Integer),
            KeyValue::Int8(1 << 40)
        );
    }
}
