//! Turning an analyzed statement plus bind values, hints and session
//! settings into a [`Route`].
//!
//! Precedence: a comment hint beats session settings; a shard (hint or
//! `shardwire.shard`) routes anything there; a sharding key (hint or
//! `shardwire.sharding_key`) fills in the key of every sharded table
//! reference the statement does not constrain itself, and places rows whose
//! key the text does not give.

mod copying;
mod placement;
mod reads;
mod writes;

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::net::messages::PgError;
use crate::scatter::ScatterPlan;
use crate::sharding::hash::KeyValue;
use crate::sharding::map::{ShardMap, ShardedTable, TableClass};

use super::analysis::{Dml, Routing, StatementAnalysis};
use super::facts::{RefClass, TableRef};
use super::hint::Hint;
use super::keys::{KeySource, row_shard};

/// Everything besides the text that routing depends on.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteInput<'a> {
    /// Bind values, `None` for NULL (empty for simple-protocol queries).
    pub params: &'a [Option<&'a [u8]>],
    /// Format codes as in the Bind message: none means all text, one
    /// applies to all parameters, else one per parameter (1 = binary).
    pub param_formats: &'a [i16],
    /// From `SET shardwire.shard` (a config shard index, resolved by the
    /// session).
    pub session_shard: Option<usize>,
    /// From `SET shardwire.sharding_key`.
    pub session_key: Option<&'a str>,
    /// Config shard names, by config index: resolves `shard=<name>` hints
    /// (a hint may also give the index itself).
    pub shard_names: &'a [String],
    /// Position of the sharding key in the column order of sharded tables,
    /// by normalized table name, as learned from a shard: routes an INSERT
    /// without a column list.
    pub key_positions: Option<&'a std::collections::HashMap<String, usize>>,
}

/// Where a statement runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// On one shard (config shard index), text unchanged.
    Single(usize),
    /// A SELECT on several shards, rows merged by `plan` (its `shard_sql`
    /// runs on each shard). Plain SELECTs without ORDER BY, aggregates,
    /// DISTINCT or LIMIT are scatters too: their plan merges by simple
    /// concatenation, so there is no separate route for them.
    Scatter {
        /// Config shard indexes, ascending.
        shards: Vec<usize>,
        /// How to run and merge.
        plan: Arc<ScatterPlan>,
    },
    /// `COPY ... TO STDOUT` of several shards: each shard runs the
    /// statement's own text and the client gets the data concatenated.
    Concat {
        /// Config shard indexes, ascending.
        shards: Vec<usize>,
    },
    /// A write or DDL that runs on every listed shard as one atomic
    /// (two-phase) transaction. Also `COPY FROM STDIN` into a reference
    /// table: every row goes to every listed shard.
    AllShards {
        /// Config shard indexes, ascending.
        shards: Vec<usize>,
        /// Every shard holds the same copy of what the statement touches
        /// (reference tables, DDL): the client gets one shard's result
        /// (its rows and CommandComplete). Otherwise each shard touches
        /// its own rows (keyless writes on a sharded table): RETURNING rows
        /// are concatenated and CommandComplete counts summed.
        replicated: bool,
    },
    /// A multi-row INSERT whose rows belong to several shards: each part
    /// runs on its shard, atomically together.
    SplitInsert {
        /// One part per shard, ascending by shard.
        parts: Vec<InsertPart>,
    },
    /// An INSERT without a column list into this sharded table: the
    /// caller must learn where the key sits in the table's column order
    /// (into [`RouteInput::key_positions`]) and route again.
    NeedsKeyPosition {
        /// Normalized table name.
        table: String,
    },
    /// `COPY sharded_table (..) FROM STDIN`: the session sends each data
    /// row to the shard its key field names (see [`super::copy_target`]),
    /// atomically across these shards.
    SplitCopy {
        /// The table's shards, ascending.
        shards: Vec<usize>,
    },
}

/// One shard's share of a split INSERT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsertPart {
    /// Config shard index.
    pub shard: usize,
    /// The INSERT with only this shard's VALUES rows (same columns, ON
    /// CONFLICT and RETURNING), placeholders renumbered from `$1`.
    pub sql: String,
    /// Indexes of the original VALUES rows in this part, ascending (to put
    /// RETURNING rows back in the client's order).
    pub rows: Vec<usize>,
    /// For each placeholder of `sql` (`$1`, `$2`, ...), the original
    /// 1-based parameter number: bind values and parameter types of the
    /// part are the originals in this order.
    pub params: Vec<usize>,
}

/// Decides where `statement` runs. `hint` is the query string's comment
/// hint ([`super::Analysis::hint`]); `map` must be the map the statement
/// was analyzed with.
pub fn route(
    statement: &StatementAnalysis,
    hint: Option<&Hint>,
    input: &RouteInput,
    map: &ShardMap,
) -> Result<Route, PgError> {
    if let Routing::Refused(message) = &statement.routing {
        return Err(unsupported(message.clone()));
    }
    let key = match target(hint, input, map)? {
        Target::Shard(shard) => return Ok(Route::Single(shard)),
        Target::Key(key) => Some(key),
        Target::Statement => None,
    };
    let router = Router { input, map, key };
    match &statement.routing {
        Routing::Refused(message) => Err(unsupported(message.clone())),
        Routing::Session => Ok(Route::Single(router.tableless_shard())),
        Routing::Everywhere => Ok(everywhere(map)),
        Routing::Opaque(tables) => router.opaque(tables),
        Routing::Dml(dml) => router.dml(dml),
        Routing::SingleShardOnly { dml, what } => match router.dml(dml)? {
            Route::Single(shard) => Ok(Route::Single(shard)),
            _ => Err(unsupported(format!(
                "{what} is supported only when it runs on one shard"
            ))
            .with_hint(PICK_A_SHARD)),
        },
        Routing::CreatesTable(dml) => router.creates_table(dml),
        Routing::Copy(copy) => router.copy(copy),
        Routing::CopyQuery(dml) => router.copy_query(dml),
    }
}

/// How to name a shard or key for statements the router cannot place.
const PICK_A_SHARD: &str = "run it on one shard with SET shardwire.shard = '<shard>' or a /* shardwire: shard=<shard> */ comment";

/// A 0A000 error (the statement is valid SQL, just not across shards).
fn unsupported(message: impl Into<String>) -> PgError {
    PgError::error("0A000", message)
}

/// What hints and settings decide before the statement is looked at.
enum Target<'a> {
    /// Run there, whatever the statement.
    Shard(usize),
    /// Use this sharding key where the statement gives none.
    Key(&'a str),
    /// The statement decides.
    Statement,
}

fn target<'a>(
    hint: Option<&'a Hint>,
    input: &RouteInput<'a>,
    map: &ShardMap,
) -> Result<Target<'a>, PgError> {
    let shard = match hint {
        Some(Hint::Shard(name)) => Some(resolve_shard_name(name, input.shard_names, map)?),
        Some(Hint::ShardingKey(key)) => return Ok(Target::Key(key)),
        None => input.session_shard,
    };
    if let Some(shard) = shard {
        if !map.shards.contains(&shard) {
            return Err(PgError::error(
                "22023",
                format!("shard {shard} is not one of this database's shards"),
            ));
        }
        return Ok(Target::Shard(shard));
    }
    Ok(input.session_key.map_or(Target::Statement, Target::Key))
}

/// A hinted shard: a config shard name, else a config index.
fn resolve_shard_name(name: &str, names: &[String], map: &ShardMap) -> Result<usize, PgError> {
    names
        .iter()
        .position(|n| n == name)
        .or_else(|| name.parse().ok())
        .filter(|shard| map.shards.contains(shard))
        .ok_or_else(|| {
            PgError::error(
                "22023",
                format!(
                    "shard {name:?} in the shardwire hint is not one of this database's shards"
                ),
            )
        })
}

/// Each shard's own rows: one shard as [`Route::Single`], several as
/// [`Route::AllShards`] with counts summed.
fn on(shards: Vec<usize>) -> Route {
    match shards.as_slice() {
        [shard] => Route::Single(*shard),
        _ => Route::AllShards {
            shards,
            replicated: false,
        },
    }
}

/// The same copy on every shard of the map (reference tables, DDL): one
/// shard as [`Route::Single`], several as a replicated
/// [`Route::AllShards`].
fn everywhere(map: &ShardMap) -> Route {
    match map.shards.as_slice() {
        [shard] => Route::Single(*shard),
        shards => Route::AllShards {
            shards: shards.to_vec(),
            replicated: true,
        },
    }
}

/// Routing of one statement execution.
struct Router<'a> {
    input: &'a RouteInput<'a>,
    map: &'a ShardMap,
    /// The session or hinted sharding key.
    key: Option<&'a str>,
}

impl Router<'_> {
    /// The shard for a statement that touches no sharded table: the key's
    /// bucket owner when a key is set (as bigint if it is an integer, else
    /// as text), else the default shard.
    fn tableless_shard(&self) -> usize {
        let Some(key) = self.key else {
            return self.map.default_shard;
        };
        let value = key
            .trim()
            .parse::<i64>()
            .map_or(KeyValue::Text(key), KeyValue::Int8);
        let bucket = self.map.bucket_of(&value);
        self.map
            .bucket_owner
            .get(bucket as usize)
            .copied()
            .unwrap_or(self.map.default_shard)
    }

    fn sharded(&self, table_ref: &TableRef) -> Result<&ShardedTable, PgError> {
        match self.map.table(&table_ref.name) {
            TableClass::Sharded(table) => Ok(table),
            _ => Err(PgError::error(
                "XX000",
                format!(
                    "the shard map changed while routing a statement on {}; retry",
                    table_ref.name
                ),
            )),
        }
    }

    /// A statement not analyzed structurally.
    fn opaque(&self, tables: &[String]) -> Result<Route, PgError> {
        if tables.is_empty() {
            return Ok(Route::Single(self.tableless_shard()));
        }
        let mut shards = BTreeSet::new();
        for name in tables {
            match (self.map.table(name), self.key) {
                (TableClass::Sharded(table), Some(key)) => {
                    let source = KeySource::Text(key.to_string());
                    if let Some(shard) = row_shard(&source, table, self.input, self.map)? {
                        shards.insert(shard);
                    }
                }
                _ => {
                    shards.clear();
                    break;
                }
            }
        }
        match shards.len() {
            1 => Ok(Route::Single(
                shards.into_iter().next().unwrap_or(self.map.default_shard),
            )),
            _ => Err(unsupported(format!(
                "shardwire cannot analyze this statement, which mentions {}",
                tables.join(", ")
            ))
            .with_hint(PICK_A_SHARD)),
        }
    }

    fn dml(&self, dml: &Dml) -> Result<Route, PgError> {
        let placement = self.placement(&dml.facts)?;
        match dml.facts.writes.as_slice() {
            [] => self.read(dml, &placement),
            writes => self.write(&dml.facts, writes, &placement),
        }
    }

    fn creates_table(&self, dml: &Dml) -> Result<Route, PgError> {
        match dml.facts.refs.iter().find(|r| r.class != RefClass::Reference) {
            None => Ok(everywhere(self.map)),
            Some(source) => Err(unsupported(format!(
                "creating a table from a query on {} is not supported: every shard would get different rows",
                source.name
            ))
            .with_hint(format!(
                "create the table first, then fill it with INSERT ... SELECT, or {PICK_A_SHARD}"
            ))),
        }
    }
}
