//! Turning an analyzed statement plus bind values, hints and session
//! settings into a [`Route`].
//!
//! Precedence: a comment hint beats session settings; a shard (hint or
//! `shardwire.shard`) routes anything there; a sharding key (hint or
//! `shardwire.sharding_key`) fills in the key of every sharded table
//! reference the statement does not constrain itself, and places rows whose
//! key the text does not give.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::net::messages::PgError;
use crate::scatter::{ColumnMerge, ScatterPlan};
use crate::sharding::hash::KeyValue;
use crate::sharding::map::{ShardMap, ShardedTable, TableClass};

use super::analysis::{Dml, Routing, StatementAnalysis};
use super::copy::{CopyDirection, CopyStatement};
use super::facts::{Facts, InsertRows, MissingKey, RefClass, RefId, TableRef, Write, WriteKind};
use super::hint::Hint;
use super::insert::split_insert;
use super::keys::{KeyConstraint, KeySource, ShardSet, intersect, row_shard, shards_of_constraint};

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
    /// (two-phase) transaction; the session sums the row counts of
    /// CommandComplete. Also `COPY FROM STDIN` into a reference table:
    /// every row goes to every listed shard.
    AllShards {
        /// Config shard indexes, ascending.
        shards: Vec<usize>,
    },
    /// A multi-row INSERT whose rows belong to several shards: each part
    /// runs on its shard, atomically together.
    SplitInsert {
        /// One part per shard, ascending by shard.
        parts: Vec<InsertPart>,
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
        Routing::Everywhere => Ok(on(map.shards.clone())),
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

/// One shard as [`Route::Single`], several as [`Route::AllShards`].
fn on(shards: Vec<usize>) -> Route {
    match shards.as_slice() {
        [shard] => Route::Single(*shard),
        _ => Route::AllShards { shards },
    }
}

/// The effective shard set of every reference and the co-location
/// components (by root reference).
struct Placement {
    sets: Vec<ShardSet>,
    root: Vec<RefId>,
    correlations: Vec<(RefId, RefId)>,
}

impl Placement {
    /// Whether `id` sees only rows on the shard of `target`'s rows: same
    /// co-location component, or a subquery correlated on the key with it
    /// (through any chain of such subqueries).
    fn bound_to(&self, id: RefId, target: RefId) -> bool {
        let mut reached = vec![self.root[target]];
        let mut grew = true;
        while grew {
            grew = false;
            for &(outer, inner) in &self.correlations {
                let (outer, inner) = (self.root[outer], self.root[inner]);
                if reached.contains(&outer) && !reached.contains(&inner) {
                    reached.push(inner);
                    grew = true;
                }
            }
        }
        reached.contains(&self.root[id])
    }
}

struct Router<'a> {
    input: &'a RouteInput<'a>,
    map: &'a ShardMap,
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

    /// Resolves every reference's shard set: its own constraint, joined
    /// with its co-location component's, narrowed by outer references it
    /// is correlated with; unconstrained components take the session or
    /// hinted key.
    fn placement(&self, facts: &Facts) -> Result<Placement, PgError> {
        let count = facts.refs.len();
        let mut root: Vec<RefId> = (0..count).collect();
        fn find(root: &mut [RefId], mut id: RefId) -> RefId {
            while root[id] != id {
                root[id] = root[root[id]];
                id = root[id];
            }
            id
        }
        for &(a, b) in &facts.edges {
            let (ra, rb) = (find(&mut root, a), find(&mut root, b));
            root[ra.max(rb)] = ra.min(rb);
        }
        for id in 0..count {
            root[id] = find(&mut root, id);
        }
        let mut sets: Vec<ShardSet> = vec![None; count];
        for (id, table_ref) in facts.refs.iter().enumerate() {
            if let (RefClass::Sharded, Some(constraint)) = (table_ref.class, &table_ref.constraint)
            {
                let own = self.constraint_shards(table_ref, constraint)?;
                sets[root[id]] = intersect(sets[root[id]].take(), own);
            }
        }
        for _ in 0..=facts.correlations.len() {
            let mut changed = false;
            for &(outer, inner) in &facts.correlations {
                let narrowed = intersect(sets[root[inner]].clone(), sets[root[outer]].clone());
                if narrowed != sets[root[inner]] {
                    sets[root[inner]] = narrowed;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        if let Some(key) = self.key {
            let hinted = KeyConstraint::OneOf(vec![KeySource::Text(key.to_string())]);
            for (id, table_ref) in facts.refs.iter().enumerate() {
                if table_ref.class == RefClass::Sharded && sets[root[id]].is_none() {
                    sets[root[id]] = self.constraint_shards(table_ref, &hinted)?;
                }
            }
        }
        let sets = (0..count).map(|id| sets[root[id]].clone()).collect();
        Ok(Placement {
            sets,
            root,
            correlations: facts.correlations.clone(),
        })
    }

    fn constraint_shards(
        &self,
        table_ref: &TableRef,
        constraint: &KeyConstraint,
    ) -> Result<ShardSet, PgError> {
        let table = self.sharded(table_ref)?;
        shards_of_constraint(constraint, table, self.input, self.map)
    }

    fn dml(&self, dml: &Dml) -> Result<Route, PgError> {
        let placement = self.placement(&dml.facts)?;
        match dml.facts.writes.as_slice() {
            [] => self.read(dml, &placement),
            writes => self.write(&dml.facts, writes, &placement),
        }
    }

    /// The one shard every sharded reference is confined to, if any
    /// (`Some(None)`: none of them can match a row).
    fn common_shard(&self, sharded: &[RefId], placement: &Placement) -> Option<Option<usize>> {
        let mut common = None;
        for &id in sharded {
            let set = placement.sets[id].as_ref()?;
            match (set.len(), common) {
                (0, _) => {}
                (1, None) => common = set.first().copied(),
                (1, Some(shard)) if set.first() == Some(&shard) => {}
                _ => return None,
            }
        }
        Some(common)
    }

    fn read(&self, dml: &Dml, placement: &Placement) -> Result<Route, PgError> {
        let refs = &dml.facts.refs;
        let sharded: Vec<RefId> = (0..refs.len())
            .filter(|&id| refs[id].class == RefClass::Sharded)
            .collect();
        let unsharded = refs.iter().find(|r| r.class == RefClass::Unsharded);
        let Some(&first) = sharded.first() else {
            return Ok(Route::Single(match unsharded {
                Some(_) => self.map.default_shard,
                None => self.tableless_shard(),
            }));
        };
        if let Some(shard) = self.common_shard(&sharded, placement) {
            let shard = shard.unwrap_or(self.map.default_shard);
            return match unsharded {
                Some(local) if shard != self.map.default_shard => {
                    Err(self.unsharded_join(&refs[first], local))
                }
                _ => Ok(Route::Single(shard)),
            };
        }
        if let Some(local) = unsharded {
            return Err(self.unsharded_join(&refs[first], local));
        }
        self.not_co_located(refs, &sharded, placement)?;
        if let Some(&nested) = sharded.iter().find(|&&id| !refs[id].top_level) {
            let table = self.sharded(&refs[nested])?;
            return Err(unsupported(format!(
                "a subquery on sharded table {} would need rows from several shards",
                table.name
            ))
            .with_hint(format!(
                "constrain {} to one shard ({} = ...), or {PICK_A_SHARD}",
                table.name, table.key_column
            )));
        }
        let shards = match &placement.sets[first] {
            Some(set) => set.iter().copied().collect(),
            None => self.shards_of_refs(refs, &sharded)?,
        };
        if let [shard] = shards.as_slice() {
            return Ok(Route::Single(*shard));
        }
        match &dml.plan {
            Some(Ok(plan)) => Ok(Route::Scatter {
                shards,
                plan: Arc::clone(plan),
            }),
            Some(Err(reason)) => Err(unsupported(reason.clone())),
            None => {
                Err(unsupported("this statement cannot run across shards").with_hint(PICK_A_SHARD))
            }
        }
    }

    /// Every shard that may hold rows of the given references.
    fn shards_of_refs(&self, refs: &[TableRef], ids: &[RefId]) -> Result<Vec<usize>, PgError> {
        let mut shards = BTreeSet::new();
        for &id in ids {
            shards.extend(self.map.shards_of(self.sharded(&refs[id])?));
        }
        Ok(shards.into_iter().collect())
    }

    /// Fails when two top-level sharded references are not joined on
    /// their keys (both would need every shard's rows).
    fn not_co_located(
        &self,
        refs: &[TableRef],
        sharded: &[RefId],
        placement: &Placement,
    ) -> Result<(), PgError> {
        let top: Vec<RefId> = sharded
            .iter()
            .copied()
            .filter(|&id| refs[id].top_level)
            .collect();
        let Some(&first) = top.first() else {
            return Ok(());
        };
        let Some(&other) = top
            .iter()
            .find(|&&id| placement.root[id] != placement.root[first])
        else {
            return Ok(());
        };
        let (a, b) = (self.sharded(&refs[first])?, self.sharded(&refs[other])?);
        let hint = if a.group == b.group {
            format!(
                "add key equality ({}.{} = {}.{})",
                a.name, a.key_column, b.name, b.key_column
            )
        } else {
            format!(
                "they are in different co-location groups ({} and {}): put them in one group, or constrain both keys to one shard",
                a.group, b.group
            )
        };
        Err(unsupported(format!(
            "join of tables that are not co-located: {} and {}",
            a.name, b.name
        ))
        .with_hint(hint))
    }

    fn unsharded_join(&self, sharded: &TableRef, local: &TableRef) -> PgError {
        let hint = match self.sharded(sharded) {
            Ok(table) => format!(
                "constrain {}.{} to keys of the default shard, or declare {} a reference table",
                table.name, table.key_column, local.name
            ),
            Err(error) => error.message,
        };
        unsupported(format!(
            "sharded table {} is used with table {}, which lives only on the default shard",
            sharded.name, local.name
        ))
        .with_hint(hint)
    }

    fn write(
        &self,
        facts: &Facts,
        writes: &[Write],
        placement: &Placement,
    ) -> Result<Route, PgError> {
        let mut routes = Vec::new();
        for write in writes {
            routes.push(self.write_route(facts, write, placement)?);
        }
        let shards = |route: &Route| -> Vec<usize> {
            match route {
                Route::Single(shard) => vec![*shard],
                Route::AllShards { shards } => shards.clone(),
                Route::SplitInsert { parts } => parts.iter().map(|p| p.shard).collect(),
                _ => Vec::new(),
            }
        };
        let Some(first) = routes.first() else {
            return Ok(Route::Single(self.map.default_shard));
        };
        let target = shards(first);
        if routes.len() > 1
            && !routes
                .iter()
                .all(|r| matches!(r, Route::Single(_)) && shards(r) == target)
        {
            let names: Vec<&str> = writes
                .iter()
                .map(|w| facts.refs[w.target].name.as_str())
                .collect();
            return Err(unsupported(format!(
                "statement writes {} on different shards or on several shards each",
                names.join(" and ")
            ))
            .with_hint("split it into one statement per table"));
        }
        let written: Vec<RefId> = writes.iter().map(|w| w.target).collect();
        for (id, table_ref) in facts.refs.iter().enumerate() {
            if written.contains(&id) {
                continue;
            }
            let confined = match table_ref.class {
                RefClass::Reference => true,
                RefClass::Unsharded => target == [self.map.default_shard],
                RefClass::Sharded => {
                    written.iter().any(|&w| {
                        facts.refs[w].class == RefClass::Sharded && placement.bound_to(id, w)
                    }) || placement.sets[id].as_ref().is_some_and(|set| {
                        set.is_empty() || (target.len() == 1 && set.iter().eq(target.iter()))
                    })
                }
            };
            if !confined {
                let written = &facts.refs[written[0]].name;
                return Err(unsupported(format!(
                    "writing {written} on shard(s) {target:?} reads table {}, whose rows are elsewhere",
                    table_ref.name
                ))
                .with_hint(match table_ref.class {
                    RefClass::Unsharded => format!("{} lives only on the default shard", table_ref.name),
                    _ => format!(
                        "constrain {}'s sharding key to the written shard, or join it on the key",
                        table_ref.name
                    ),
                }));
            }
        }
        Ok(routes.swap_remove(0))
    }

    fn write_route(
        &self,
        facts: &Facts,
        write: &Write,
        placement: &Placement,
    ) -> Result<Route, PgError> {
        let table_ref = &facts.refs[write.target];
        match table_ref.class {
            RefClass::Reference => return Ok(on(self.map.shards.clone())),
            RefClass::Unsharded => return Ok(Route::Single(self.map.default_shard)),
            RefClass::Sharded => {}
        }
        let table = self.sharded(table_ref)?;
        match &write.kind {
            WriteKind::Filtered { verb, updates_key } => {
                if *updates_key {
                    return Err(unsupported(format!(
                        "updating the sharding key {} of {} is not supported: the row could belong to another shard",
                        table.key_column, table.name
                    ))
                    .with_hint("delete the row and insert it with its new key"));
                }
                match &placement.sets[write.target] {
                    Some(set) if set.is_empty() => Ok(Route::Single(
                        self.map.shards_of(table).first().copied().unwrap_or(self.map.default_shard),
                    )),
                    Some(set) => Ok(on(set.iter().copied().collect())),
                    None if self.map.allow_keyless_writes => Ok(on(self.map.shards_of(table))),
                    None => Err(unsupported(format!(
                        "{verb} on sharded table {} without its sharding key {}",
                        table.name, table.key_column
                    ))
                    .with_hint(format!(
                        "add {} = ... to the WHERE clause, or {PICK_A_SHARD}, or set allow_keyless_writes in the shard map",
                        table.key_column
                    ))),
                }
            }
            WriteKind::Rows(rows) => self.insert(table, rows),
            WriteKind::FromQuery { verb } => match self.hinted_row_shard(table)? {
                Some(shard) => Ok(Route::Single(shard)),
                None => Err(unsupported(format!(
                    "{verb} into sharded table {} needs its rows' shard fixed",
                    table.name
                ))
                .with_hint(format!(
                    "SET shardwire.sharding_key, or add a /* shardwire: sharding_key=... */ comment, or {PICK_A_SHARD}"
                ))),
            },
        }
    }

    /// The shard of the session or hinted key for rows of `table`.
    fn hinted_row_shard(&self, table: &ShardedTable) -> Result<Option<usize>, PgError> {
        match self.key {
            Some(key) => row_shard(
                &KeySource::Text(key.to_string()),
                table,
                self.input,
                self.map,
            ),
            None => Ok(None),
        }
    }

    fn insert(&self, table: &ShardedTable, rows: &InsertRows) -> Result<Route, PgError> {
        if rows.conflict_updates_key {
            return Err(unsupported(format!(
                "ON CONFLICT DO UPDATE may set the sharding key {} of {} only to EXCLUDED.{}",
                table.key_column, table.name, table.key_column
            )));
        }
        let mut by_shard: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (row, key) in rows.keys.iter().enumerate() {
            let shard = match key {
                Some(source) => row_shard(source, table, self.input, self.map)?,
                None => None,
            };
            let shard = match shard {
                Some(shard) => shard,
                None => self
                    .hinted_row_shard(table)?
                    .ok_or_else(|| missing_key(table, rows.missing))?,
            };
            by_shard.entry(shard).or_default().push(row);
        }
        if by_shard.len() <= 1 {
            let shard = by_shard
                .keys()
                .next()
                .copied()
                .unwrap_or(self.map.default_shard);
            return Ok(Route::Single(shard));
        }
        let Some(statement) = &rows.statement else {
            return Err(unsupported(format!(
                "INSERT into {} inside a WITH query with rows for several shards is not supported",
                table.name
            ))
            .with_hint("insert the rows of each shard separately, or without the WITH clause"));
        };
        let parts = by_shard
            .into_iter()
            .map(|(shard, rows)| split_insert(statement, shard, rows))
            .collect();
        Ok(Route::SplitInsert { parts })
    }

    fn creates_table(&self, dml: &Dml) -> Result<Route, PgError> {
        match dml.facts.refs.iter().find(|r| r.class != RefClass::Reference) {
            None => Ok(on(self.map.shards.clone())),
            Some(source) => Err(unsupported(format!(
                "creating a table from a query on {} is not supported: every shard would get different rows",
                source.name
            ))
            .with_hint(format!(
                "create the table first, then fill it with INSERT ... SELECT, or {PICK_A_SHARD}"
            ))),
        }
    }

    fn copy(&self, copy: &CopyStatement) -> Result<Route, PgError> {
        let CopyStatement::Table {
            table,
            client_side,
            direction,
        } = copy
        else {
            return Ok(Route::Single(self.map.default_shard));
        };
        let server_side = || {
            unsupported(format!(
                "COPY of {table} with a server-side file or program is not supported through shardwire"
            ))
            .with_hint("use COPY ... FROM STDIN / TO STDOUT (psql's \\copy)")
        };
        match (self.map.table(table), direction) {
            (TableClass::Unsharded, _) | (TableClass::Reference, CopyDirection::Out) => {
                Ok(Route::Single(self.map.default_shard))
            }
            (TableClass::Reference, CopyDirection::In) => match client_side {
                Some(_) => Ok(on(self.map.shards.clone())),
                None => Err(server_side()),
            },
            (TableClass::Sharded(sharded), direction) => {
                let Some(target) = client_side else {
                    return Err(server_side());
                };
                let shards = self.map.shards_of(sharded);
                if let [shard] = shards.as_slice() {
                    return Ok(Route::Single(*shard));
                }
                let has_key = target
                    .columns
                    .as_ref()
                    .is_some_and(|c| c.contains(&sharded.key_column));
                match direction {
                    CopyDirection::Out => match self.hinted_row_shard(sharded)? {
                        Some(shard) => Ok(Route::Single(shard)),
                        None => Ok(Route::Concat { shards }),
                    },
                    CopyDirection::In if has_key => Ok(Route::SplitCopy { shards }),
                    CopyDirection::In => match self.hinted_row_shard(sharded)? {
                        Some(shard) => Ok(Route::Single(shard)),
                        None => Err(unsupported(format!(
                            "COPY into sharded table {} needs a column list naming its sharding key {}",
                            sharded.name, sharded.key_column
                        ))
                        .with_hint(format!(
                            "write COPY {} ({}, ...) FROM STDIN",
                            sharded.name, sharded.key_column
                        ))),
                    },
                }
            }
        }
    }

    /// `COPY (query) TO`: single-shard, or concatenated when the query
    /// needs no merging.
    fn copy_query(&self, dml: &Dml) -> Result<Route, PgError> {
        match self.dml(dml)? {
            Route::Scatter { shards, plan } if is_concatenation(&plan) => Ok(Route::Concat { shards }),
            Route::Scatter { .. } => Err(unsupported(
                "COPY (query) TO across shards supports only queries without ORDER BY, aggregates, DISTINCT, LIMIT or OFFSET",
            )
            .with_hint("use a SELECT, or constrain the query to one shard")),
            other => Ok(other),
        }
    }
}

/// Whether a scatter plan merges by plain concatenation.
fn is_concatenation(plan: &ScatterPlan) -> bool {
    let merge = &plan.merge;
    !merge.grouped
        && merge.having.is_none()
        && merge.order_by.is_empty()
        && !merge.distinct
        && merge.offset == 0
        && merge.limit.is_none()
        && merge.columns.iter().all(|c| *c == ColumnMerge::Group)
        && plan.visible_columns == merge.columns.len()
}

/// The error for inserted rows whose key the text does not give.
fn missing_key(table: &ShardedTable, missing: Option<MissingKey>) -> PgError {
    let (name, key) = (&table.name, &table.key_column);
    let message = match missing {
        Some(MissingKey::NoColumnList) => {
            format!(
                "INSERT into sharded table {name} needs a column list naming its sharding key {key}"
            )
        }
        Some(MissingKey::NotListed | MissingKey::DefaultValues) => {
            format!("INSERT into sharded table {name} must give its sharding key {key}")
        }
        None => format!(
            "the sharding key {key} of every row inserted into {name} must be a literal or a bind parameter"
        ),
    };
    unsupported(message).with_hint(format!(
        "write INSERT INTO {name} ({key}, ...) VALUES (<key>, ...), or SET shardwire.sharding_key"
    ))
}
