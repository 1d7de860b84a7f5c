//! Planning a fanned-out SELECT: the SQL every shard runs and how the
//! shards' rows merge into the client's result.
//!
//! Only the top query level is planned. Sub-selects (in FROM, WHERE or the
//! select list) run on each shard as written; whether the tables inside
//! them may be read shard by shard is the router's decision.
//!
//! The rewrite, clause by clause:
//! - select list: COUNT/SUM/MIN/MAX stay; `avg(x)` becomes `sum(x) AS avg`
//!   plus a hidden `count(x)`; any other aggregate, or an aggregate inside
//!   an expression, is refused;
//! - GROUP BY stays; a key the select list lacks is appended as a hidden
//!   column so the proxy can regroup;
//! - HAVING is removed (shards return every partial group) and becomes a
//!   [`Filter`](super::Filter) over merged columns;
//! - ORDER BY stays when rows are not grouped (each shard sorts, the merge
//!   interleaves) and is removed when grouped (the merge sorts the groups);
//!   a key the select list lacks is appended hidden;
//! - LIMIT/OFFSET: ungrouped shards get `LIMIT offset+limit`, the merge
//!   skips and cuts; grouped shards return everything.
//!
//! SELECT DISTINCT keeps its DISTINCT on the shards, and the merge removes
//! duplicates across shards. Like Postgres, it refuses an ORDER BY key
//! that is not in the select list: a hidden sort column would take part in
//! the shards' DISTINCT and change which rows are distinct. Ungrouped
//! DISTINCT still pushes `LIMIT offset+limit` down: a row among the first
//! n distinct rows overall is among the first n distinct rows of its shard.
//!
//! Further choices:
//! - in an aggregate query without GROUP BY, non-aggregate items (`1`,
//!   `now()`) merge as `Min`, so the result stays one row;
//! - `*` keeps its place; see [`ScatterPlan::wildcard_at`] for how column
//!   numbers count it;
//! - LIMIT with FOR UPDATE/SHARE is refused: every shard would lock rows
//!   the merge discards.
//!
//! Known limits (no schema knowledge): a user-defined aggregate called like
//! a plain function looks like a plain function (query it with the sharding
//! key); an aggregate inside a sub-select that reads only outer columns
//! belongs to the outer query in Postgres but is not seen here; `GROUP BY
//! name`, where `name` is both a select alias and an input column, is taken
//! as the alias.

mod aggregate;
mod calls;
mod columns;
mod having;
mod limit;
mod order;
mod wildcard;

#[cfg(test)]
mod tests;

use sqlparser::ast::{
    Distinct, Expr, Function, GroupByExpr, Ident, ObjectName, ObjectNamePart, Query, Select,
    SelectFlavor, SelectItem, SetExpr,
};

use super::{ColumnMerge, MergeSpec, ScatterPlan};
use aggregate::{Mergeable, is_aggregate, is_window, mergeable};
use calls::find_call;
use columns::{OutputColumns, implied_name};

/// Advice for every refusal: a query that names its shard is not fanned
/// out and runs unchanged.
const ONE_SHARD: &str = "add a condition on the sharding key so the query runs on one shard";

/// Plans a SELECT for running on several shards, or says why it cannot be
/// answered exactly across shards (the text of a 0A000 error, naming what
/// to change).
pub fn plan_select(query: &Query) -> Result<ScatterPlan, String> {
    let select = top_select(query)?;
    check_select_clauses(select)?;
    let window = limit::row_window(query)?;
    if window.limit.is_some() && !query.locks.is_empty() {
        return Err(unsupported(
            "LIMIT with FOR UPDATE/SHARE",
            &format!(
                "every shard would lock up to LIMIT rows that the merge then discards; {ONE_SHARD}"
            ),
        ));
    }
    let distinct = is_distinct(select)?;
    let group_by = group_by_expressions(select)?;
    let sort = order::sort_items(query)?;

    let mut clause_exprs: Vec<&Expr> = select.projection.iter().filter_map(item_expr).collect();
    clause_exprs.extend(sort.iter().map(|item| &item.expr));
    clause_exprs.extend(select.having.as_ref());
    reject_window_functions(select, &clause_exprs)?;
    let aggregated = clause_exprs
        .iter()
        .any(|expr| find_call(expr, &is_aggregate).is_some());
    let grouped = aggregated || !group_by.is_empty() || select.having.is_some();

    let mut shard_query = query.clone();
    let SetExpr::Select(shard_select) = shard_query.body.as_mut() else {
        return Err(unsupported("this query form", ONE_SHARD));
    };
    let mut planner = Planner {
        columns: OutputColumns::default(),
        visible: select.projection.len(),
        plain: if grouped && group_by.is_empty() {
            ColumnMerge::Min
        } else {
            ColumnMerge::Group
        },
    };
    planner.plan_select_list(&mut shard_select.projection)?;
    for expr in group_by {
        planner.column_for(expr, Clause::GroupBy)?;
    }
    let having = match &select.having {
        Some(condition) => Some(having::filter(&mut planner, condition)?),
        None => None,
    };
    let order_by = order::sort_keys(&mut planner, sort, distinct)?;

    let planned = planner.columns.finish(planner.visible);
    shard_select.projection.extend(planned.hidden_items);
    shard_select.having = None;
    shard_query.fetch = None;
    if grouped {
        shard_query.order_by = None;
        shard_query.limit_clause = None;
    } else {
        shard_query.limit_clause = limit::shard_limit(&window);
    }
    Ok(ScatterPlan {
        shard_sql: shard_query.to_string(),
        visible_columns: planned.visible,
        wildcard_at: planned.wildcard_at,
        merge: MergeSpec {
            columns: planned.merges,
            grouped,
            having,
            order_by,
            distinct,
            offset: window.offset,
            limit: window.limit,
        },
    })
}

/// The clause a reference to an output column comes from; each resolves
/// names its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clause {
    /// GROUP BY: position, input column (equal expression), output name.
    GroupBy,
    /// ORDER BY: position, output name, equal expression.
    OrderBy,
    /// HAVING: equal expression only (Postgres allows no output names).
    Having,
}

impl Clause {
    /// The clause as SQL, for error texts.
    fn sql(self) -> &'static str {
        match self {
            Clause::GroupBy => "GROUP BY",
            Clause::OrderBy => "ORDER BY",
            Clause::Having => "HAVING",
        }
    }
}

/// Column planning shared by the select list, GROUP BY, HAVING and ORDER BY.
struct Planner {
    columns: OutputColumns,
    /// Length of the client's select list (a `*` counts as none).
    visible: usize,
    /// How a non-aggregate column merges: `Group`, or `Min` in an
    /// aggregate query without GROUP BY, where Postgres only accepts values
    /// that do not depend on the rows (constants, parameters, `now()`) and
    /// the result must stay one row even if shards disagree on `now()`.
    plain: ColumnMerge,
}

impl Planner {
    /// Plans the client's select list, rewriting `avg(...)` items in place
    /// and appending the hidden counts they need.
    fn plan_select_list(&mut self, projection: &mut [SelectItem]) -> Result<(), String> {
        let mut averages = Vec::new();
        for item in projection.iter_mut() {
            let (expr, name) = match item {
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                    self.columns.push_wildcard();
                    self.visible -= 1;
                    continue;
                }
                SelectItem::UnnamedExpr(expr) => (expr.clone(), implied_name(expr)),
                SelectItem::ExprWithAlias { expr, alias } => {
                    (expr.clone(), Some(ident_name(alias)))
                }
                SelectItem::ExprWithAliases { .. } => {
                    return Err(unsupported("a select item with several aliases", ONE_SHARD));
                }
            };
            if let Some(call) = top_aggregate(&expr) {
                let source = Expr::Function(call.clone());
                let kind = mergeable(call)?;
                let column = self.columns.push_visible(&source, name, merge_of(kind, 0));
                if kind == Mergeable::Avg {
                    let alias = match item {
                        SelectItem::ExprWithAlias { alias, .. } => alias.clone(),
                        _ => Ident::new("avg"),
                    };
                    *item = SelectItem::ExprWithAlias {
                        expr: Expr::Function(renamed(call, "sum")),
                        alias,
                    };
                    averages.push((column, call.clone()));
                }
            } else {
                reject_nested_aggregate(&expr)?;
                let collation = order::item_collation(&expr);
                let column = self.columns.push_visible(&expr, name, self.plain);
                self.columns.set_collation(column, collation);
            }
        }
        for (column, call) in averages {
            let count_column = self.count_column(&call);
            self.columns
                .set_merge(column, ColumnMerge::AvgSum { count_column });
        }
        Ok(())
    }

    /// The output column a GROUP BY / ORDER BY / HAVING expression refers
    /// to, appending a hidden column when the select list lacks it.
    fn column_for(&mut self, expr: &Expr, clause: Clause) -> Result<usize, String> {
        if clause != Clause::Having
            && let Some(position) = integer_literal(expr)
        {
            return self.columns.position(clause.sql(), position, self.visible);
        }
        if let Expr::Identifier(ident) = expr {
            let by_name = self.columns.find_name(&ident_name(ident));
            let by_expr = self.columns.find_expr(expr);
            let found = match clause {
                Clause::OrderBy => by_name.or(by_expr),
                // An alias of an aggregate never names a group key: Postgres
                // then reads the name as an input column (or fails), and the
                // hidden column appended below does the same on the shards.
                Clause::GroupBy => by_expr
                    .or(by_name.filter(|&column| self.columns.merge(column) == Some(self.plain))),
                Clause::Having => by_expr,
            };
            if let Some(column) = found {
                return Ok(column);
            }
        }
        if let Some(call) = top_aggregate(expr) {
            return self.aggregate_column(call);
        }
        reject_nested_aggregate(expr)?;
        match self.columns.find_expr(expr) {
            Some(column) => Ok(column),
            None => Ok(self.columns.push_hidden(
                SelectItem::UnnamedExpr(expr.clone()),
                expr,
                self.plain,
            )),
        }
    }

    /// The column holding aggregate `call` (a select-list one if equal,
    /// else a hidden one; AVG as a hidden SUM and COUNT pair).
    fn aggregate_column(&mut self, call: &Function) -> Result<usize, String> {
        let source = Expr::Function(call.clone());
        if let Some(column) = self.columns.find_expr(&source) {
            return Ok(column);
        }
        let kind = mergeable(call)?;
        let shard_call = match kind {
            Mergeable::Avg => renamed(call, "sum"),
            _ => call.clone(),
        };
        let item = SelectItem::UnnamedExpr(Expr::Function(shard_call));
        let column = self.columns.push_hidden(item, &source, merge_of(kind, 0));
        if kind == Mergeable::Avg {
            let count_column = self.count_column(call);
            self.columns
                .set_merge(column, ColumnMerge::AvgSum { count_column });
        }
        Ok(column)
    }

    /// The column holding `count(x)` for `avg(x)`: an equal count already
    /// planned, else a new hidden one.
    fn count_column(&mut self, average: &Function) -> usize {
        let count = Expr::Function(renamed(average, "count"));
        match self.columns.find_expr(&count) {
            Some(column) => column,
            None => self.columns.push_hidden(
                SelectItem::UnnamedExpr(count.clone()),
                &count,
                ColumnMerge::Count,
            ),
        }
    }
}

/// The column merge for a mergeable aggregate; `count_column` is only
/// used by AVG (and set for real once the count column is known).
fn merge_of(kind: Mergeable, count_column: usize) -> ColumnMerge {
    match kind {
        Mergeable::Count => ColumnMerge::Count,
        Mergeable::Sum => ColumnMerge::Sum,
        Mergeable::Min => ColumnMerge::Min,
        Mergeable::Max => ColumnMerge::Max,
        Mergeable::Avg => ColumnMerge::AvgSum { count_column },
    }
}

/// `call` with its function renamed (`avg(x)` to `sum(x)` or
/// `count(x)`), keeping a `pg_catalog.` qualifier.
fn renamed(call: &Function, name: &str) -> Function {
    let mut renamed = call.clone();
    let mut parts = call.name.0.clone();
    parts.pop();
    parts.push(ObjectNamePart::Identifier(Ident::new(name)));
    renamed.name = ObjectName(parts);
    renamed
}

/// The aggregate call `expr` is (inside any parentheses), if it is one.
fn top_aggregate(expr: &Expr) -> Option<&Function> {
    match expr {
        Expr::Nested(inner) => top_aggregate(inner),
        Expr::Function(call) if is_aggregate(call) => Some(call),
        _ => None,
    }
}

/// Refuses an expression that computes with an aggregate's result: the
/// shards' partial aggregates would enter the expression before merging.
fn reject_nested_aggregate(expr: &Expr) -> Result<(), String> {
    match find_call(expr, &is_aggregate) {
        Some(call) => Err(unsupported(
            &format!(
                "aggregate {}() inside an expression ({expr})",
                call.name.to_string().to_lowercase()
            ),
            &format!(
                "select the aggregate as a column of its own and compute the expression in the \
                 application, or {ONE_SHARD}"
            ),
        )),
        None => Ok(()),
    }
}

/// Refuses window functions anywhere in the clauses the merge depends on:
/// their values depend on rows the shard does not have.
fn reject_window_functions(select: &Select, exprs: &[&Expr]) -> Result<(), String> {
    if let Some(window) = select.named_window.first() {
        return Err(unsupported(
            &format!("window function (WINDOW {})", window.0),
            ONE_SHARD,
        ));
    }
    match exprs.iter().find_map(|expr| find_call(expr, &is_window)) {
        Some(call) => Err(unsupported(
            &format!(
                "window function {}() OVER (...)",
                call.name.to_string().to_lowercase()
            ),
            &format!("{ONE_SHARD}, or compute it in the application"),
        )),
        None => Ok(()),
    }
}

/// The single SELECT a fanned-out query must be, or why it is not.
fn top_select(query: &Query) -> Result<&Select, String> {
    if query.with.is_some() {
        return Err(unsupported("WITH (common table expressions)", ONE_SHARD));
    }
    if query.for_clause.is_some()
        || query.settings.is_some()
        || query.format_clause.is_some()
        || !query.pipe_operators.is_empty()
    {
        return Err(unsupported("non-PostgreSQL query syntax", ONE_SHARD));
    }
    match query.body.as_ref() {
        SetExpr::Select(select) => Ok(select),
        SetExpr::SetOperation { op, .. } => Err(unsupported(
            &format!("set operation {}", op.to_string().to_uppercase()),
            &format!("{ONE_SHARD}, or run each part as its own query"),
        )),
        SetExpr::Query(_) => Err(unsupported(
            "a parenthesized query with ORDER BY/LIMIT outside",
            "remove the parentheses",
        )),
        SetExpr::Values(_) => Err(unsupported("VALUES", ONE_SHARD)),
        SetExpr::Table(_) => Err(unsupported("TABLE", "write SELECT * FROM the table")),
        SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => {
            Err(unsupported("a data-modifying statement here", ONE_SHARD))
        }
    }
}

/// Refuses SELECT clauses the planner does not handle (mostly syntax of
/// other SQL dialects, and SELECT INTO).
fn check_select_clauses(select: &Select) -> Result<(), String> {
    if select.into.is_some() {
        return Err(unsupported(
            "SELECT INTO",
            "use CREATE TABLE ... AS on one shard",
        ));
    }
    let foreign_syntax = select.top.is_some()
        || select.exclude.is_some()
        || select.select_modifiers.is_some()
        || select.value_table_mode.is_some()
        || select.prewhere.is_some()
        || select.qualify.is_some()
        || !select.optimizer_hints.is_empty()
        || !select.lateral_views.is_empty()
        || !select.connect_by.is_empty()
        || !select.cluster_by.is_empty()
        || !select.distribute_by.is_empty()
        || !select.sort_by.is_empty()
        || select.flavor != SelectFlavor::Standard;
    if foreign_syntax {
        return Err(unsupported("non-PostgreSQL SELECT syntax", ONE_SHARD));
    }
    Ok(())
}

/// Whether the SELECT is DISTINCT; DISTINCT ON is refused (which row of
/// each set survives depends on rows on other shards).
fn is_distinct(select: &Select) -> Result<bool, String> {
    match &select.distinct {
        None | Some(Distinct::All) => Ok(false),
        Some(Distinct::Distinct) => Ok(true),
        Some(Distinct::On(_)) => Err(unsupported(
            "DISTINCT ON",
            &format!(
                "{ONE_SHARD}, or select DISTINCT rows and pick one per key in the application"
            ),
        )),
    }
}

/// The plain GROUP BY expressions; grouping sets, ROLLUP and CUBE are
/// refused (their subtotal rows cannot be told from groups when merging).
fn group_by_expressions(select: &Select) -> Result<&[Expr], String> {
    let refuse = |feature: &str| {
        Err(unsupported(
            feature,
            &format!(
                "{ONE_SHARD}, or run one query per grouping and add up subtotals in the application"
            ),
        ))
    };
    let (exprs, modifiers) = match &select.group_by {
        GroupByExpr::All(_) => return refuse("GROUP BY ALL"),
        GroupByExpr::Expressions(exprs, modifiers) => (exprs, modifiers),
    };
    if let Some(modifier) = modifiers.first() {
        return refuse(&format!("GROUP BY ... {modifier}"));
    }
    for expr in exprs {
        match expr {
            Expr::GroupingSets(_) => return refuse("GROUPING SETS"),
            Expr::Rollup(_) => return refuse("ROLLUP"),
            Expr::Cube(_) => return refuse("CUBE"),
            Expr::Tuple(_) => return refuse("a parenthesized GROUP BY list or ()"),
            _ => {}
        }
    }
    Ok(exprs)
}

/// The expression of a non-`*` select item.
fn item_expr(item: &SelectItem) -> Option<&Expr> {
    match item {
        SelectItem::UnnamedExpr(expr)
        | SelectItem::ExprWithAlias { expr, .. }
        | SelectItem::ExprWithAliases { expr, .. } => Some(expr),
        SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => None,
    }
}

/// The value of an unsigned integer literal (`ORDER BY 2`, `LIMIT 10`).
fn integer_literal(expr: &Expr) -> Option<u64> {
    match expr {
        Expr::Value(value) => match &value.value {
            sqlparser::ast::Value::Number(text, _) => text.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

/// An identifier's name as Postgres resolves it: unquoted names fold to
/// lower case.
fn ident_name(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

/// The 0A000 error text: what is not supported across shards, and what to
/// do instead.
fn unsupported(feature: &str, advice: &str) -> String {
    format!("{feature} is not supported in a SELECT that runs on several shards; {advice}")
}
