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

use std::fmt::Display;

use sqlparser::ast::{
    AssignmentTarget, BinaryOperator, Delete, Distinct, Expr, FromTable, Function, FunctionArg,
    FunctionArgExpr, FunctionArguments, GroupByExpr, Ident, InTarget, Insert, JoinConstraint,
    JoinOperator, LimitClause, Merge, ObjectName, OnConflictAction, OnInsert, OrderByKind, Query,
    Select, SelectItem, SetExpr, Statement, TableFactor, TableObject, TableWithJoins, Update,
    UpdateTableFromKind,
};

use crate::sharding::map::{ShardMap, ShardedTable, TableClass, normalize_table_name};

use super::keys::{KeyConstraint, KeySource, both, either, key_source};
use super::text;

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

/// Conditions found in one boolean expression.
#[derive(Default)]
struct Cond {
    keys: Vec<(RefId, KeyConstraint)>,
    edges: Vec<(RefId, RefId)>,
}

/// Which parts of a condition restrict the scope's rows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CondUse {
    /// WHERE, or ON of inner joins in a scope without outer joins.
    KeysAndEdges,
    /// ON of a scope with outer joins: only key equalities count.
    EdgesOnly,
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

/// Whether a join keeps rows without a match (or is not a plain inner or
/// cross join).
fn is_outer(operator: &JoinOperator) -> bool {
    !matches!(
        operator,
        JoinOperator::Join(_)
            | JoinOperator::Inner(_)
            | JoinOperator::CrossJoin(_)
            | JoinOperator::StraightJoin(_)
    )
}

/// The ON / USING part of a join, when it has one.
fn join_constraint(operator: &JoinOperator) -> Option<&JoinConstraint> {
    match operator {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c)
        | JoinOperator::CrossJoin(c)
        | JoinOperator::StraightJoin(c) => Some(c),
        _ => None,
    }
}

/// Whether a FROM list contains an outer join, at any nesting of
/// parenthesized joins.
fn has_outer_join(from: &[TableWithJoins]) -> bool {
    from.iter().any(|item| {
        item.joins.iter().any(|join| is_outer(&join.join_operator))
            || std::iter::once(&item.relation)
                .chain(item.joins.iter().map(|join| &join.relation))
                .any(|factor| match factor {
                    TableFactor::NestedJoin {
                        table_with_joins, ..
                    } => has_outer_join(std::slice::from_ref(table_with_joins)),
                    _ => false,
                })
    })
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

    /// Walks a top-level DML statement (query, INSERT, UPDATE, DELETE,
    /// MERGE); other statements are scanned for table names.
    pub(super) fn statement(&mut self, statement: &Statement) {
        match statement {
            Statement::Query(query) => self.query(query, true),
            Statement::Insert(insert) => self.insert(insert),
            Statement::Update(update) => self.update(update),
            Statement::Delete(delete) => self.delete(delete),
            Statement::Merge(merge) => self.merge(merge),
            other => self.opaque(other),
        }
    }

    /// Walks a query; `top_level` when it is the statement itself.
    pub(super) fn query(&mut self, query: &Query, top_level: bool) {
        self.queries += 1;
        let visible_ctes = self.ctes.len();
        if let Some(with) = &query.with {
            if with.recursive {
                self.ctes
                    .extend(with.cte_tables.iter().map(|cte| fold(&cte.alias.name)));
            }
            for cte in &with.cte_tables {
                self.query(&cte.query, false);
                if !with.recursive {
                    self.ctes.push(fold(&cte.alias.name));
                }
            }
        }
        let mut trailing: Vec<&Expr> = Vec::new();
        if let Some(order_by) = &query.order_by
            && let OrderByKind::Expressions(exprs) = &order_by.kind
        {
            trailing.extend(exprs.iter().map(|e| &e.expr));
        }
        match &query.limit_clause {
            Some(LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) => {
                trailing.extend(limit);
                trailing.extend(offset.iter().map(|o| &o.value));
                trailing.extend(limit_by);
            }
            Some(LimitClause::OffsetCommaLimit { offset, limit }) => {
                trailing.extend([offset, limit]);
            }
            None => {}
        }
        trailing.extend(query.fetch.iter().filter_map(|f| f.quantity.as_ref()));
        self.set_expr(&query.body, top_level, &trailing);
        self.ctes.truncate(visible_ctes);
        self.queries -= 1;
    }

    /// Walks a query body; `trailing` are ORDER BY / LIMIT expressions,
    /// which see the select list's tables.
    fn set_expr(&mut self, body: &SetExpr, top_level: bool, trailing: &[&Expr]) {
        match body {
            SetExpr::Select(select) => {
                self.select(select, top_level, trailing);
                return;
            }
            SetExpr::Query(query) => self.query(query, top_level),
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left, false, &[]);
                self.set_expr(right, false, &[]);
            }
            SetExpr::Values(values) => {
                for row in &values.rows {
                    row.content.iter().for_each(|e| self.expr(e));
                }
            }
            SetExpr::Insert(statement)
            | SetExpr::Update(statement)
            | SetExpr::Delete(statement)
            | SetExpr::Merge(statement) => self.statement(statement),
            SetExpr::Table(table) => self.opaque(table),
        }
        self.in_scope(false, false, |walker| {
            trailing.iter().for_each(|e| walker.expr(e))
        });
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

    fn select(&mut self, select: &Select, top_level: bool, trailing: &[&Expr]) {
        self.in_scope(top_level, has_outer_join(&select.from), |walker| {
            select.from.iter().for_each(|item| walker.join_tree(item));
            if let Some(selection) = &select.selection {
                walker.condition(selection, CondUse::KeysAndEdges);
                walker.expr(selection);
            }
            select
                .projection
                .iter()
                .for_each(|item| walker.select_item(item));
            if let Some(Distinct::On(exprs)) = &select.distinct {
                exprs.iter().for_each(|e| walker.expr(e));
            }
            if let GroupByExpr::Expressions(exprs, _) = &select.group_by {
                exprs.iter().for_each(|e| walker.expr(e));
            }
            select.having.iter().for_each(|e| walker.expr(e));
            select.qualify.iter().for_each(|e| walker.expr(e));
            select.named_window.iter().for_each(|w| walker.opaque(w));
            trailing.iter().for_each(|e| walker.expr(e));
        });
        if select.into.is_some() {
            self.facts.creates_table = true;
        }
    }

    fn select_item(&mut self, item: &SelectItem) {
        match item {
            SelectItem::UnnamedExpr(e)
            | SelectItem::ExprWithAlias { expr: e, .. }
            | SelectItem::ExprWithAliases { expr: e, .. } => self.expr(e),
            SelectItem::QualifiedWildcard(..) | SelectItem::Wildcard(_) => {}
        }
    }

    fn join_tree(&mut self, item: &TableWithJoins) {
        let tree = self.scope().bindings.len();
        self.factor(&item.relation);
        for join in &item.joins {
            let left = self.scope().bindings.len();
            self.factor(&join.relation);
            match join_constraint(&join.join_operator) {
                Some(JoinConstraint::On(on)) => {
                    let restricts = !is_outer(&join.join_operator) && !self.scope().outer_joins;
                    let usage = if restricts {
                        CondUse::KeysAndEdges
                    } else {
                        CondUse::EdgesOnly
                    };
                    self.condition(on, usage);
                    self.expr(on);
                }
                Some(JoinConstraint::Using(columns)) => self.using_edges(columns, tree, left),
                _ => {}
            }
        }
    }

    /// `USING (k)`: references keyed by `k` on the left side (bindings
    /// `tree..split` of this join tree) and in the joined relation
    /// (bindings from `split`) are joined on their keys.
    fn using_edges(&mut self, columns: &[ObjectName], tree: usize, split: usize) {
        let bindings: Vec<Option<RefId>> = self.scope().bindings.iter().map(|b| b.target).collect();
        let split = split.min(bindings.len());
        let (left, right) = (&bindings[tree.min(split)..split], &bindings[split..]);
        let mut edges = Vec::new();
        for column in columns.iter().filter_map(|c| fold_name(c).pop()) {
            let keyed = |side: &[Option<RefId>]| -> Vec<RefId> {
                side.iter()
                    .flatten()
                    .copied()
                    .filter(|&r| self.key_column_of(r) == Some(column.as_str()))
                    .collect()
            };
            for l in keyed(left) {
                edges.extend(keyed(right).into_iter().map(|r| (l, r)));
            }
        }
        self.record_edges(edges);
    }

    fn factor(&mut self, factor: &TableFactor) {
        match factor {
            TableFactor::Table {
                name, alias, args, ..
            } => match args {
                Some(args) => {
                    args.args.iter().for_each(|a| self.function_arg(a));
                    let label = alias.as_ref().map_or_else(
                        || fold_name(name).pop().unwrap_or_default(),
                        |a| fold(&a.name),
                    );
                    self.bind_opaque(label);
                }
                None => {
                    self.bind_table(name, alias.as_ref().map(|a| &a.name));
                }
            },
            TableFactor::Derived {
                subquery, alias, ..
            } => {
                self.query(subquery, false);
                self.bind_alias(alias.as_ref().map(|a| &a.name));
            }
            TableFactor::TableFunction { expr, alias } => {
                self.expr(expr);
                self.bind_alias(alias.as_ref().map(|a| &a.name));
            }
            TableFactor::Function { args, alias, .. } => {
                args.iter().for_each(|a| self.function_arg(a));
                self.bind_alias(alias.as_ref().map(|a| &a.name));
            }
            TableFactor::UNNEST {
                alias, array_exprs, ..
            } => {
                array_exprs.iter().for_each(|e| self.expr(e));
                self.bind_alias(alias.as_ref().map(|a| &a.name));
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                self.join_tree(table_with_joins);
                self.bind_alias(alias.as_ref().map(|a| &a.name));
            }
            other => self.opaque(other),
        }
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

    /// Something the walk does not look into: every sharded or reference
    /// table its text names becomes an unconstrained nested reference.
    fn opaque(&mut self, node: &dyn Display) {
        let identifiers = text::identifiers(&node.to_string());
        let depth = self.scopes.len();
        for name in mentioned_tables(self.map, &identifiers) {
            self.add_ref(&name, depth, false);
        }
    }

    /// Walks an expression for the subqueries it contains.
    fn expr(&mut self, expr: &Expr) {
        match expr {
            Expr::Subquery(query)
            | Expr::Exists {
                subquery: query, ..
            } => self.query(query, false),
            Expr::In { expr, target, .. } => {
                self.expr(expr);
                match target {
                    InTarget::List(list) => list.iter().for_each(|e| self.expr(e)),
                    InTarget::Subquery(query) => self.query(query, false),
                    InTarget::Unnest(e) => self.expr(e),
                    other => self.opaque(other),
                }
            }
            Expr::BinaryOp { left, right, .. }
            | Expr::AnyOp { left, right, .. }
            | Expr::AllOp { left, right, .. }
            | Expr::IsDistinctFrom(left, right)
            | Expr::IsNotDistinctFrom(left, right)
            | Expr::AtTimeZone {
                timestamp: left,
                time_zone: right,
            }
            | Expr::Position {
                expr: left,
                r#in: right,
            } => {
                self.expr(left);
                self.expr(right);
            }
            Expr::UnaryOp { expr, .. }
            | Expr::Nested(expr)
            | Expr::Cast { expr, .. }
            | Expr::Collate { expr, .. }
            | Expr::Extract { expr, .. }
            | Expr::Ceil { expr, .. }
            | Expr::Floor { expr, .. }
            | Expr::Named { expr, .. }
            | Expr::IsJson { expr, .. }
            | Expr::IsNormalized { expr, .. }
            | Expr::IsFalse(expr)
            | Expr::IsNotFalse(expr)
            | Expr::IsTrue(expr)
            | Expr::IsNotTrue(expr)
            | Expr::IsNull(expr)
            | Expr::IsNotNull(expr)
            | Expr::IsUnknown(expr)
            | Expr::IsNotUnknown(expr) => self.expr(expr),
            Expr::Between {
                expr, low, high, ..
            } => [expr, low, high].into_iter().for_each(|e| self.expr(e)),
            Expr::Like {
                expr,
                pattern,
                escape_char,
                ..
            }
            | Expr::ILike {
                expr,
                pattern,
                escape_char,
                ..
            }
            | Expr::SimilarTo {
                expr,
                pattern,
                escape_char,
                ..
            } => [Some(expr), Some(pattern), escape_char.as_ref()]
                .into_iter()
                .flatten()
                .for_each(|e| self.expr(e)),
            Expr::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => [Some(expr), substring_from.as_ref(), substring_for.as_ref()]
                .into_iter()
                .flatten()
                .for_each(|e| self.expr(e)),
            Expr::Trim {
                expr,
                trim_what,
                trim_characters,
                ..
            } => {
                self.expr(expr);
                trim_what.iter().for_each(|e| self.expr(e));
                trim_characters.iter().flatten().for_each(|e| self.expr(e));
            }
            Expr::Overlay {
                expr,
                overlay_what,
                overlay_from,
                overlay_for,
            } => [
                Some(expr),
                Some(overlay_what),
                Some(overlay_from),
                overlay_for.as_ref(),
            ]
            .into_iter()
            .flatten()
            .for_each(|e| self.expr(e)),
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                operand.iter().for_each(|e| self.expr(e));
                for when in conditions {
                    self.expr(&when.condition);
                    self.expr(&when.result);
                }
                else_result.iter().for_each(|e| self.expr(e));
            }
            Expr::Function(function) => self.function(function),
            Expr::Tuple(exprs) => exprs.iter().for_each(|e| self.expr(e)),
            Expr::Array(array) => array.elem.iter().for_each(|e| self.expr(e)),
            Expr::GroupingSets(sets) | Expr::Cube(sets) | Expr::Rollup(sets) => {
                sets.iter().flatten().for_each(|e| self.expr(e))
            }
            Expr::Identifier(_)
            | Expr::CompoundIdentifier(_)
            | Expr::Value(_)
            | Expr::TypedString(_)
            | Expr::Wildcard(_)
            | Expr::QualifiedWildcard(..) => {}
            other => self.opaque(other),
        }
    }

    fn function(&mut self, function: &Function) {
        for arguments in [&function.parameters, &function.args] {
            match arguments {
                FunctionArguments::None => {}
                FunctionArguments::Subquery(query) => self.query(query, false),
                FunctionArguments::List(list) => {
                    list.args.iter().for_each(|a| self.function_arg(a));
                    list.clauses.iter().for_each(|c| self.opaque(c));
                }
            }
        }
        function.filter.iter().for_each(|e| self.expr(e));
        function
            .within_group
            .iter()
            .for_each(|o| self.expr(&o.expr));
        if let Some(over) = &function.over {
            self.opaque(over);
        }
    }

    fn function_arg(&mut self, arg: &FunctionArg) {
        let (FunctionArg::Named { arg, .. }
        | FunctionArg::ExprNamed { arg, .. }
        | FunctionArg::Unnamed(arg)) = arg;
        if let FunctionArgExpr::Expr(e) = arg {
            self.expr(e);
        }
    }

    /// Records what a boolean expression says about the keys of the
    /// innermost scope's references.
    fn condition(&mut self, expr: &Expr, usage: CondUse) {
        let found = self.cond(expr);
        if usage == CondUse::KeysAndEdges {
            let depth = self.depth();
            for (id, constraint) in found.keys {
                let table_ref = &mut self.facts.refs[id];
                if table_ref.depth == depth {
                    table_ref.constraint = Some(match table_ref.constraint.take() {
                        Some(existing) => both(existing, constraint),
                        None => constraint,
                    });
                }
            }
        }
        self.record_edges(found.edges);
    }

    /// Files key equalities as same-scope edges or correlations; pairs of
    /// different co-location groups are no co-location at all.
    fn record_edges(&mut self, edges: Vec<(RefId, RefId)>) {
        let depth = self.depth();
        for (a, b) in edges {
            let (Some(ta), Some(tb)) = (self.sharded(a), self.sharded(b)) else {
                continue;
            };
            if ta.group != tb.group || a == b {
                continue;
            }
            let (da, db) = (self.facts.refs[a].depth, self.facts.refs[b].depth);
            if da == depth && db == depth {
                self.facts.edges.push((a, b));
            } else if db == depth && da < depth {
                self.facts.correlations.push((a, b));
            } else if da == depth && db < depth {
                self.facts.correlations.push((b, a));
            }
        }
    }

    fn cond(&self, expr: &Expr) -> Cond {
        match expr {
            Expr::Nested(inner) => self.cond(inner),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right,
            } => conjunction(self.cond(left), self.cond(right)),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Or,
                right,
            } => disjunction(self.cond(left), self.cond(right)),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } => self.equality(left, right),
            Expr::In {
                expr,
                target: InTarget::List(list),
                negated: false,
                ..
            } => {
                let sources: Option<Vec<KeySource>> = list.iter().map(key_source).collect();
                let mut cond = Cond::default();
                if let Some(sources) = sources {
                    cond.keys = self
                        .key_refs(expr)
                        .into_iter()
                        .map(|id| (id, KeyConstraint::OneOf(sources.clone())))
                        .collect();
                }
                cond
            }
            _ => Cond::default(),
        }
    }

    fn equality(&self, left: &Expr, right: &Expr) -> Cond {
        let (lrefs, rrefs) = (self.key_refs(left), self.key_refs(right));
        let mut cond = Cond::default();
        for &l in &lrefs {
            cond.edges.extend(rrefs.iter().map(|&r| (l, r)));
        }
        for (refs, other) in [(&lrefs, right), (&rrefs, left)] {
            if let Some(source) = key_source(other) {
                cond.keys.extend(
                    refs.iter()
                        .map(|&id| (id, KeyConstraint::OneOf(vec![source.clone()]))),
                );
            }
        }
        cond
    }

    /// The references whose key column `expr` denotes: qualified names
    /// resolve through every scope, innermost first (the first binding of
    /// that name wins, even if it is not a table); unqualified names only
    /// in the innermost scope, where every table keyed by that column
    /// matches (tables joined `USING` it share the name).
    fn key_refs(&self, expr: &Expr) -> Vec<RefId> {
        match expr {
            Expr::Nested(inner) => self.key_refs(inner),
            Expr::Identifier(ident) => {
                let column = fold(ident);
                self.scopes
                    .last()
                    .map(|scope| {
                        scope
                            .bindings
                            .iter()
                            .filter_map(|b| b.target)
                            .filter(|&id| self.key_column_of(id) == Some(column.as_str()))
                            .collect()
                    })
                    .unwrap_or_default()
            }
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                let folded: Vec<String> = parts.iter().map(fold).collect();
                let Some((column, qualifier)) = folded.split_last() else {
                    return Vec::new();
                };
                self.resolve_qualifier(qualifier)
                    .filter(|&id| self.key_column_of(id) == Some(column.as_str()))
                    .into_iter()
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    /// The table reference a column qualifier (`t` or `schema.t`) names.
    fn resolve_qualifier(&self, qualifier: &[String]) -> Option<RefId> {
        let matches = |b: &Binding| match qualifier {
            [name] => b.name == *name,
            [..] => b.qualified.as_deref() == Some(normalize_table_name(qualifier).as_str()),
        };
        self.scopes
            .iter()
            .rev()
            .find_map(|scope| scope.bindings.iter().find(|b| matches(b)))
            .and_then(|b| b.target)
    }

    fn insert(&mut self, insert: &Insert) {
        self.in_scope(false, false, |walker| {
            let target = match &insert.table {
                TableObject::TableName(name) => {
                    walker.bind_table(name, insert.table_alias.as_ref().map(|a| &a.alias))
                }
                other => {
                    walker.opaque(other);
                    None
                }
            };
            walker.bind_opaque("excluded".to_string());
            let kind = match &insert.source {
                Some(source) => match (&*source.body, &source.with) {
                    (SetExpr::Values(values), None) => {
                        let rows: Vec<&[Expr]> =
                            values.rows.iter().map(|r| r.content.as_slice()).collect();
                        rows.iter()
                            .flat_map(|r| r.iter())
                            .for_each(|e| walker.expr(e));
                        WriteKind::Rows(walker.insert_rows(insert, target, &rows))
                    }
                    _ => {
                        walker.query(source, false);
                        WriteKind::FromQuery {
                            verb: "INSERT ... SELECT",
                        }
                    }
                },
                None => WriteKind::Rows(InsertRows {
                    keys: vec![None],
                    missing: Some(MissingKey::DefaultValues),
                    statement: None,
                    conflict_updates_key: false,
                }),
            };
            let conflict_updates_key = walker.on_conflict(insert, target);
            walker.returning(insert.returning.as_deref());
            if let Some(target) = target {
                let kind = match kind {
                    WriteKind::Rows(mut rows) => {
                        rows.conflict_updates_key = conflict_updates_key;
                        WriteKind::Rows(rows)
                    }
                    other => other,
                };
                walker.facts.writes.push(Write { target, kind });
            }
        });
    }

    /// The key of every VALUES row of an INSERT into `target`.
    fn insert_rows(&self, insert: &Insert, target: Option<RefId>, rows: &[&[Expr]]) -> InsertRows {
        let key_column = target.and_then(|t| self.key_column_of(t));
        let position = key_column.map(|key| {
            if insert.columns.is_empty() {
                Err(MissingKey::NoColumnList)
            } else {
                insert
                    .columns
                    .iter()
                    .position(|c| fold_name(c).first().map(String::as_str) == Some(key))
                    .ok_or(MissingKey::NotListed)
            }
        });
        let (keys, missing) = match position {
            Some(Ok(at)) => (
                rows.iter()
                    .map(|row| row.get(at).and_then(key_source))
                    .collect(),
                None,
            ),
            Some(Err(missing)) => (vec![None; rows.len()], Some(missing)),
            None => (vec![None; rows.len()], None),
        };
        // Parts are rendered from the INSERT alone: one inside a WITH query
        // cannot be split (its rows may use the WITH's tables).
        let splittable = key_column.is_some() && rows.len() > 1 && self.queries == 0;
        let statement = splittable.then(|| Box::new(insert.clone()));
        InsertRows {
            keys,
            missing,
            statement,
            conflict_updates_key: false,
        }
    }

    /// Walks `ON CONFLICT DO UPDATE`; true when it assigns the target's key
    /// anything but `EXCLUDED.<key>` (the row stays where it is only then).
    fn on_conflict(&mut self, insert: &Insert, target: Option<RefId>) -> bool {
        let Some(OnInsert::OnConflict(conflict)) = &insert.on else {
            if let Some(other) = &insert.on {
                self.opaque(other);
            }
            return false;
        };
        let OnConflictAction::DoUpdate(update) = &conflict.action else {
            return false;
        };
        let key = target.and_then(|t| self.key_column_of(t));
        let mut moves_key = false;
        for assignment in &update.assignments {
            self.expr(&assignment.value);
            let keeps_key = matches!(&assignment.value, Expr::CompoundIdentifier(parts)
                if parts.iter().map(fold).collect::<Vec<_>>() == ["excluded", key.unwrap_or_default()]);
            moves_key |= assigns(&assignment.target, key) && !keeps_key;
        }
        if let Some(selection) = &update.selection {
            self.expr(selection);
        }
        moves_key
    }

    fn returning(&mut self, returning: Option<&[SelectItem]>) {
        returning
            .into_iter()
            .flatten()
            .for_each(|item| self.select_item(item));
    }

    fn update(&mut self, update: &Update) {
        let mut from_items: Vec<&TableWithJoins> = Vec::new();
        if let Some(UpdateTableFromKind::BeforeSet(items) | UpdateTableFromKind::AfterSet(items)) =
            &update.from
        {
            from_items.extend(items);
        }
        let outer = has_outer_join(std::slice::from_ref(&update.table))
            || from_items
                .iter()
                .any(|i| has_outer_join(std::slice::from_ref(*i)));
        self.in_scope(false, outer, |walker| {
            let target = walker.write_target(&update.table.relation);
            for join in &update.table.joins {
                walker.factor(&join.relation);
            }
            from_items.iter().for_each(|item| walker.join_tree(item));
            let key = target.and_then(|t| walker.key_column_of(t));
            let mut updates_key = false;
            for assignment in &update.assignments {
                walker.expr(&assignment.value);
                updates_key |= assigns(&assignment.target, key);
            }
            walker.filter(update.selection.as_ref());
            walker.returning(update.returning.as_deref());
            if let Some(target) = target {
                walker.facts.writes.push(Write {
                    target,
                    kind: WriteKind::Filtered {
                        verb: "UPDATE",
                        updates_key,
                    },
                });
            }
        });
    }

    fn delete(&mut self, delete: &Delete) {
        let (FromTable::WithFromKeyword(items) | FromTable::WithoutKeyword(items)) = &delete.from;
        let using = delete.using.as_deref().unwrap_or_default();
        let outer = has_outer_join(items) || has_outer_join(using);
        self.in_scope(false, outer, |walker| {
            let mut items = items.iter();
            let target = items.next().and_then(|first| {
                let target = walker.write_target(&first.relation);
                for join in &first.joins {
                    walker.factor(&join.relation);
                }
                target
            });
            items.chain(using).for_each(|item| walker.join_tree(item));
            walker.filter(delete.selection.as_ref());
            walker.returning(delete.returning.as_deref());
            if let Some(target) = target {
                walker.facts.writes.push(Write {
                    target,
                    kind: WriteKind::Filtered {
                        verb: "DELETE",
                        updates_key: false,
                    },
                });
            }
        });
    }

    fn merge(&mut self, merge: &Merge) {
        self.in_scope(false, true, |walker| {
            let target = walker.write_target(&merge.table);
            walker.factor(&merge.source);
            walker.expr(&merge.on);
            merge.clauses.iter().for_each(|c| walker.opaque(c));
            if let Some(target) = target {
                walker.facts.writes.push(Write {
                    target,
                    kind: WriteKind::FromQuery { verb: "MERGE" },
                });
            }
        });
    }

    /// Binds the table an UPDATE / DELETE / MERGE writes.
    fn write_target(&mut self, factor: &TableFactor) -> Option<RefId> {
        match factor {
            TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } => self.bind_table(name, alias.as_ref().map(|a| &a.name)),
            other => {
                self.factor(other);
                None
            }
        }
    }

    /// A WHERE clause of the innermost scope.
    fn filter(&mut self, selection: Option<&Expr>) {
        if let Some(selection) = selection {
            self.condition(selection, CondUse::KeysAndEdges);
            self.expr(selection);
        }
    }
}

/// Whether an assignment sets column `key` (or a field of it).
fn assigns(target: &AssignmentTarget, key: Option<&str>) -> bool {
    let Some(key) = key else {
        return false;
    };
    let names = match target {
        AssignmentTarget::ColumnName(name) => std::slice::from_ref(name),
        AssignmentTarget::Tuple(names) => names.as_slice(),
    };
    names
        .iter()
        .any(|name| fold_name(name).first().map(String::as_str) == Some(key))
}

/// Both conditions hold: each reference's constraints combine with AND.
fn conjunction(mut a: Cond, b: Cond) -> Cond {
    for (id, constraint) in b.keys {
        match a.keys.iter_mut().find(|(existing, _)| *existing == id) {
            Some((_, existing)) => {
                let previous = std::mem::replace(existing, KeyConstraint::All(Vec::new()));
                *existing = both(previous, constraint);
            }
            None => a.keys.push((id, constraint)),
        }
    }
    a.edges.extend(b.edges);
    a
}

/// Either condition holds: only references constrained on both sides stay
/// constrained (by the union), and no equality is certain.
fn disjunction(a: Cond, b: Cond) -> Cond {
    let mut keys = Vec::new();
    for (id, left) in a.keys {
        if let Some((_, right)) = b.keys.iter().find(|(other, _)| *other == id) {
            keys.push((id, either(left, right.clone())));
        }
    }
    Cond {
        keys,
        edges: Vec::new(),
    }
}
