//! The shard map file as written (`shard-maps/*.toml`), before validation.
//!
//! Every key the format knows is here; unknown keys are syntax errors (with
//! their line), so a misspelt key never silently means "use the default".
//! Values whose meaning depends on other keys (key types, strategies, shard
//! names, key literals) stay strings here and are checked by the builder,
//! which reports every problem with its location. `shard-maps/example.toml`
//! documents each key.

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MapFile {
    /// Number of virtual hash buckets.
    pub buckets: u32,
    /// Shard holding the tables the map does not name.
    pub default_shard: String,
    /// Run UPDATE/DELETE without the key on every shard instead of refusing.
    #[serde(default)]
    pub allow_keyless_writes: bool,
    /// Which shard owns which buckets.
    #[serde(default)]
    pub bucket_ranges: Vec<BucketRangeEntry>,
    /// Sharded tables.
    #[serde(default)]
    pub tables: Vec<TableEntry>,
    /// Tables copied on every shard.
    #[serde(default)]
    pub reference_tables: Vec<String>,
}

/// `[[bucket_ranges]]`: an inclusive range of buckets and their shard.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BucketRangeEntry {
    /// `"first-last"`, `"n"` or the integer `n`.
    pub buckets: Literal,
    /// Shard name.
    pub shard: String,
}

/// `[[tables]]`: one sharded table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TableEntry {
    /// `table` or `schema.table`, as in SQL (unquoted parts fold to lower case).
    pub name: String,
    /// The sharding key column.
    pub key: String,
    /// `bigint`, `integer`, `text` or `uuid`.
    #[serde(rename = "type")]
    pub key_type: String,
    /// `hash` (the default), `range` or `list`.
    #[serde(default)]
    pub strategy: Option<String>,
    /// Co-location group.
    #[serde(default)]
    pub group: Option<String>,
    /// Range rules (strategy `range` only).
    #[serde(default)]
    pub ranges: Vec<RangeEntry>,
    /// List rules (strategy `list` only).
    #[serde(default)]
    pub lists: Vec<ListEntry>,
    /// Shard for unlisted values (strategy `list` only).
    #[serde(default)]
    pub list_default: Option<String>,
}

/// One range rule: `[from, to)` to a shard.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RangeEntry {
    /// Inclusive lower bound; absent: unbounded.
    #[serde(default)]
    pub from: Option<Literal>,
    /// Exclusive upper bound; absent: unbounded.
    #[serde(default)]
    pub to: Option<Literal>,
    /// Shard name.
    pub shard: String,
}

/// One list rule: key values to a shard.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListEntry {
    /// The values.
    pub values: Vec<Literal>,
    /// Shard name.
    pub shard: String,
}

/// A key value or bucket number as written: a TOML integer or string. Both
/// are read through their text (an integer as its decimal digits), so
/// `values = [1, 2]` and `values = ["1", "2"]` mean the same.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Literal {
    /// A TOML integer.
    Int(i64),
    /// A TOML string.
    Text(String),
}

impl Literal {
    /// The literal's text.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Literal::Int(v) => v.to_string().into(),
            Literal::Text(s) => s.as_str().into(),
        }
    }
}

/// Reads the file's TOML; a syntax or schema error becomes one problem
/// located at its line and column.
pub(super) fn parse(text: &str) -> Result<MapFile, crate::config::Problem> {
    toml::from_str(text).map_err(|e| crate::config::Problem {
        location: e
            .span()
            .map(|span| line_and_column(text, span.start))
            .unwrap_or_default(),
        message: e.message().to_string(),
    })
}

/// `line L, column C` (both from 1) of a byte offset into `text`.
fn line_and_column(text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}")
}
