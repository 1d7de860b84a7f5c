//! What a parsed DML statement says about routing, independent of bind
//! values and session settings: the tables it reads and writes, what its
//! conditions say about each sharded table's key, which sharded tables are
//! joined on their keys, and the key of every inserted row.
//!
//! The walk is scope-aware: column references resolve through table
//! aliases to the table reference they name, innermost scope first for
//! qualified names and only the current scope for unqualified ones (an
//! unqualified name in a subquery may belong to a table the router knows
//! nothing about). Conditions are used only where they restrict every row
//! of the result: conjuncts of WHERE, and of inner-join ON clauses when the
//! scope has no outer join. Anything the walk does not understand is
//! scanned for table names, and each sharded or reference table it names
//! counts as a reference with an unknown key in a nested scope, so an
//! unusual construct can cost an error, never a wrong route.

mod conditions;
mod expressions;
mod queries;
mod writes;

use sqlparser::ast::{Ident, Insert, ObjectName};

use crate::sharding::map::{ShardMap, ShardedTable, TableClass, normalize_table_name};

use super::keys::{KeyConstraint, KeySource};

/// Index of a table reference in [`Facts::refs`].
pub(super) type RefId = usize;

/// How the shard map classifies a referenced table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RefClass {
    /// Split across shards by a key.
    Sharded,
    /// Copied on every shard.
    Reference,
    /// Only on the default shard.
    Unsharded,
}

/// One occurrence of a table in the statement.
#[derive(Debug, Clone)]
pub(super) struct TableRef {
    /// Normalized table name (`schema.table`).
    pub name: String,
    /// Its class in the shard map the facts were made with.
    pub class: RefClass,
    /// Scope nesting depth: 0 for the statement's own FROM / target.
    pub depth: usize,
    /// Listed in the FROM of the statement's top-level SELECT, where a
    /// scatter plan can split the work per shard.
    pub top_level: bool,
    /// What the conditions of its scope say about its key.
    pub constraint: Option<KeyConstraint>,
}

/// Why the key of inserted rows is not in the statement text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MissingKey {
    /// `INSERT INTO t VALUES (...)`: the key's position is unknown.
    NoColumnList,
    /// The column list does not name the key column.
    NotListed,
    /// `INSERT ... DEFAULT VALUES`.
    DefaultValues,
}

/// How a write statement decides which rows it touches.
#[derive(Debug, Clone)]
pub(super) enum WriteKind {
    /// UPDATE / DELETE: rows chosen by conditions on the target.
    Filtered {
        /// `UPDATE` or `DELETE`, for messages.
        verb: &'static str,
        /// The statement assigns the target's key column.
        updates_key: bool,
    },
    /// INSERT ... VALUES: one key per row.
    Rows(InsertRows),
    /// INSERT ... SELECT, MERGE: the target's rows come from a query, so
    /// only a hint or session setting can place them.
    FromQuery {
        /// The statement kind, for messages.
        verb: &'static str,
    },
}

/// The rows of an `INSERT ... VALUES`.
#[derive(Debug, Clone)]
pub(super) struct InsertRows {
    /// Each row's key, `None` when the row does not give it as a literal or
    /// parameter.
    pub keys: Vec<Option<KeySource>>,
    /// Why no row gives its key, when the statement's shape says so.
    pub missing: Option<MissingKey>,
    /// Without a column list: every value of every row (the key's position
    /// in the table's column order is learned from a shard when routing).
    pub positional: Vec<Vec<Option<KeySource>>>,
    /// The statement, kept to render per-shard parts; only for sharded
    /// targets with several rows, and not inside a WITH query.
    pub statement: Option<Box<Insert>>,
    /// An `ON CONFLICT DO UPDATE` assigns the key column something other
    /// than `EXCLUDED.<key>`.
    pub conflict_updates_key: bool,
}

/// One table a statement writes.
#[derive(Debug, Clone)]
pub(super) struct Write {
    /// The written table's reference.
    pub target: RefId,
    /// How its rows are chosen.
    pub kind: WriteKind,
}

/// Everything routing needs from a DML statement's text.
#[derive(Debug, Clone, Default)]
pub(super) struct Facts {
    /// Every table occurrence, in walk order.
    pub refs: Vec<TableRef>,
    /// Key equalities between sharded references of one scope and one
    /// co-location group (`a.k = b.k`, `USING (k)`).
    pub edges: Vec<(RefId, RefId)>,
    /// Key equalities from a subquery to an outer reference
    /// (`outer, inner`): the inner reference only sees rows with the outer
    /// row's key, not the other way round.
    pub correlations: Vec<(RefId, RefId)>,
    /// Tables written (data-modifying CTEs can make several).
    pub writes: Vec<Write>,
    /// `SELECT ... INTO`: the statement creates a table.
    pub creates_table: bool,
    /// An outer join keeps unmatched rows of a side without sharded tables
    /// (a reference table, a function) joined to sharded tables: a scatter
    /// would return those rows once per shard.
    pub outer_join_repeats: bool,
}

/// Collects [`Facts`] by walking a statement.
pub(super) struct Walker<'m> {
    map: &'m ShardMap,
    facts: Facts,
    scopes: Vec<Scope>,
    ctes: Vec<String>,
    /// How many queries the walk is inside (0: at the statement itself).
    queries: usize,
}

/// The names visible in one query level.
#[derive(Default)]
struct Scope {
    bindings: Vec<Binding>,
    /// The FROM has an outer (or unknown kind of) join: ON clauses do not
    /// restrict every row.
    outer_joins: bool,
    /// This is the statement's top-level SELECT.
    top_level: bool,
}

/// A name a column can be qualified with.
struct Binding {
    /// Alias, or the bare table name when there is no alias.
    name: String,
    /// The normalized table name, when it may qualify columns
    /// (`schema.table.column`): tables without alias.
    qualified: Option<String>,
    /// The table reference, `None` for CTEs, derived tables and functions.
    target: Option<RefId>,
}

/// An identifier as Postgres folds it: unquoted lowercased, quoted kept.
pub(super) fn fold(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

/// The folded parts of an object name.
fn fold_name(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|part| part.as_ident().map_or_else(|| part.to_string(), fold))
        .collect()
}

/// The normalized name of a table as written in SQL.
pub(super) fn table_name(name: &ObjectName) -> String {
    normalize_table_name(&fold_name(name))
}

/// The class of a normalized table name.
pub(super) fn class_of(map: &ShardMap, name: &str) -> RefClass {
    match map.table(name) {
        TableClass::Sharded(_) => RefClass::Sharded,
        TableClass::Reference => RefClass::Reference,
        TableClass::Unsharded => RefClass::Unsharded,
    }
}

/// Sharded and reference tables whose bare name is among `identifiers`
/// (folded): what a statement the router cannot analyze may touch.
pub(super) fn mentioned_tables(map: &ShardMap, identifiers: &[String]) -> Vec<String> {
    let bare = |name: &str| name.split_once('.').map_or(name, |(_, t)| t).to_string();
    let mut names: Vec<String> = map
        .tables
        .keys()
        .chain(&map.reference_tables)
        .filter(|name| identifiers.contains(&bare(name)))
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    names
}

impl<'m> Walker<'m> {
    /// A walker for one statement against `map`.
    pub(super) fn new(map: &'m ShardMap) -> Self {
        Walker {
            map,
            facts: Facts::default(),
            scopes: Vec::new(),
            ctes: Vec::new(),
            queries: 0,
        }
    }

    /// The facts collected.
    pub(super) fn finish(self) -> Facts {
        self.facts
    }

    /// Runs `f` in a new innermost scope.
    fn in_scope(&mut self, top_level: bool, outer_joins: bool, f: impl FnOnce(&mut Self)) {
        self.scopes.push(Scope {
            bindings: Vec::new(),
            outer_joins,
            top_level,
        });
        f(self);
        self.scopes.pop();
    }

    /// Depth of the innermost scope.
    fn depth(&self) -> usize {
        self.scopes.len().saturating_sub(1)
    }

    /// The innermost scope (there is one while walking a query level).
    fn scope(&mut self) -> &mut Scope {
        if self.scopes.is_empty() {
            self.scopes.push(Scope::default());
        }
        let last = self.scopes.len() - 1;
        &mut self.scopes[last]
    }

    /// Binds a name that hides outer names but names no table reference.
    fn bind_opaque(&mut self, name: String) {
        self.scope().bindings.push(Binding {
            name,
            qualified: None,
            target: None,
        });
    }

    fn bind_alias(&mut self, alias: Option<&Ident>) {
        if let Some(alias) = alias {
            self.bind_opaque(fold(alias));
        }
    }

    /// Adds a table reference (or a CTE use) to the innermost scope.
    fn bind_table(&mut self, name: &ObjectName, alias: Option<&Ident>) -> Option<RefId> {
        let parts = fold_name(name);
        let bare = parts.last().cloned().unwrap_or_default();
        if parts.len() == 1 && self.ctes.contains(&bare) {
            self.bind_opaque(alias.map_or(bare, fold));
            return None;
        }
        let normalized = normalize_table_name(&parts);
        let id = self.add_ref(
            &normalized,
            self.depth(),
            self.scopes.last().is_some_and(|s| s.top_level),
        );
        let binding = match alias {
            Some(alias) => Binding {
                name: fold(alias),
                qualified: None,
                target: Some(id),
            },
            None => Binding {
                name: bare,
                qualified: Some(normalized),
                target: Some(id),
            },
        };
        self.scope().bindings.push(binding);
        Some(id)
    }

    fn add_ref(&mut self, name: &str, depth: usize, top_level: bool) -> RefId {
        self.facts.refs.push(TableRef {
            name: name.to_string(),
            class: class_of(self.map, name),
            depth,
            top_level,
            constraint: None,
        });
        self.facts.refs.len() - 1
    }

    /// The sharded table behind a reference.
    fn sharded(&self, id: RefId) -> Option<&'m ShardedTable> {
        let table_ref = self.facts.refs.get(id)?;
        match self.map.table(&table_ref.name) {
            TableClass::Sharded(table) => Some(table),
            _ => None,
        }
    }

    fn key_column_of(&self, id: RefId) -> Option<&'m str> {
        self.sharded(id).map(|t| t.key_column.as_str())
    }
}
