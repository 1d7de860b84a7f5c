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

use std::collections::HashMap;

use super::hash::KeyValue;

/// A loaded, validated shard map.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardMap {
    /// Version of this snapshot, reported by the admin console; bumped by
    /// every reload or rebalance cut-over.
    pub version: u64,
    /// Indexes (into the config's `[[shards]]`) of the shards this map spans,
    /// in the order the map lists them; every routing answer is one of these.
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
    /// Key ranges `[from, to)` to shards; `None` bounds are open.
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

    /// Parses a key value to the table's key type.
    pub fn parse_key(&self, table: &ShardedTable, input: KeyInput<'_>) -> Result<Option<OwnedKey>, KeyError> {
        let _ = (table, input);
        unimplemented!("filled in by the shard map loader")
    }

    /// The shard holding rows of `table` whose key is `key` (`None`: NULL).
    pub fn shard_for(&self, table: &ShardedTable, key: Option<&OwnedKey>) -> Result<usize, KeyError> {
        let _ = (table, key);
        unimplemented!("filled in by the shard map loader")
    }

    /// Shard of a key given as the router found it: `parse_key` then `shard_for`.
    pub fn shard_for_input(&self, table: &ShardedTable, input: KeyInput<'_>) -> Result<usize, KeyError> {
        let key = self.parse_key(table, input)?;
        self.shard_for(table, key.as_ref())
    }

    /// The shards that may hold rows of `table` (for scatter reads): every
    /// shard owning a bucket for hash tables, the named shards for range and
    /// list tables; sorted, without duplicates.
    pub fn shards_of(&self, table: &ShardedTable) -> Vec<usize> {
        let _ = table;
        unimplemented!("filled in by the shard map loader")
    }

    /// The bucket of a hash key (exposed for the rebalancer and for checks
    /// inside Postgres: `satisfies_hash_partition(..., buckets, bucket, key)`).
    pub fn bucket_of(&self, key: &KeyValue<'_>) -> u32 {
        let _ = key;
        unimplemented!("filled in by the shard map loader")
    }
}
