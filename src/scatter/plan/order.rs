//! ORDER BY: which forms the merge can reproduce, and the sort keys over
//! shard output columns.
//!
//! The merge compares values itself, so a sort must not depend on
//! anything it cannot see: `USING <operator>` and linguistic collations
//! are refused; the byte-order collations (`"C"`, `"POSIX"`, `ucs_basic`,
//! `pg_c_utf8`) sort UTF-8 text as plain byte comparison does.

use sqlparser::ast::{Expr, OrderByExpr, OrderByKind, OrderBySort, Query};

use crate::scatter::SortKey;

use super::{Clause, ONE_SHARD, Planner, ident_name, unsupported};

/// Collations whose order is byte order of UTF-8 text.
const BYTE_ORDER_COLLATIONS: &[&str] = &["C", "POSIX", "ucs_basic", "pg_c_utf8"];

/// The ORDER BY items, or why the merge could not reproduce their order.
pub(super) fn sort_items(query: &Query) -> Result<&[OrderByExpr], String> {
    let Some(order_by) = &query.order_by else {
        return Ok(&[]);
    };
    if order_by.interpolate.is_some() {
        return Err(unsupported("ORDER BY ... INTERPOLATE", ONE_SHARD));
    }
    let items = match &order_by.kind {
        OrderByKind::Expressions(items) => items,
        OrderByKind::All(_) => return Err(unsupported("ORDER BY ALL", "list the sort keys")),
    };
    for item in items {
        if item.with_fill.is_some() {
            return Err(unsupported("ORDER BY ... WITH FILL", ONE_SHARD));
        }
        if let Some(OrderBySort::Using(operator)) = &item.options.sort {
            return Err(unsupported(
                &format!("ORDER BY {} USING {operator}", item.expr),
                &format!("write ASC or DESC, or {ONE_SHARD}"),
            ));
        }
        check_collation(&item.expr, item_collation(&item.expr).as_deref())?;
    }
    Ok(items)
}

/// The sort keys for `items` over shard output columns, appending hidden
/// columns for keys the select list lacks (refused under DISTINCT, as
/// Postgres does).
pub(super) fn sort_keys(
    planner: &mut Planner,
    items: &[OrderByExpr],
    distinct: bool,
) -> Result<Vec<SortKey>, String> {
    items
        .iter()
        .map(|item| {
            let column = planner.column_for(without_collation(&item.expr), Clause::OrderBy)?;
            check_collation(&item.expr, planner.columns.collation(column))?;
            if distinct && column >= planner.visible {
                let hint = if planner.columns.has_wildcard() {
                    "; name it in the select list (the proxy cannot see which columns * holds)"
                } else {
                    ""
                };
                return Err(format!(
                    "for SELECT DISTINCT, ORDER BY expressions must appear in select list ({}){hint}",
                    item.expr
                ));
            }
            let descending = item.options.sort == Some(OrderBySort::Desc);
            Ok(SortKey {
                column,
                descending,
                nulls_first: item.options.nulls_first.unwrap_or(descending),
            })
        })
        .collect()
}

/// The collation named by a top-level COLLATE in `expr` (through
/// parentheses), as Postgres resolves the name.
pub(super) fn item_collation(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Nested(inner) => item_collation(inner),
        Expr::Collate { collation, .. } => collation
            .0
            .last()
            .and_then(|part| part.as_ident())
            .map(ident_name),
        _ => None,
    }
}

/// `expr` without a top-level COLLATE: the value the merge compares.
fn without_collation(expr: &Expr) -> &Expr {
    match expr {
        Expr::Nested(inner) if item_collation(inner).is_some() => without_collation(inner),
        Expr::Collate { expr, .. } => expr,
        _ => expr,
    }
}

/// Refuses sorting `key` by a collation whose order is not byte order.
fn check_collation(key: &Expr, collation: Option<&str>) -> Result<(), String> {
    match collation {
        Some(name) if !BYTE_ORDER_COLLATIONS.contains(&name) => Err(unsupported(
            &format!("ORDER BY with COLLATE \"{name}\" ({key})"),
            &format!(
                "sort by COLLATE \"C\" across shards and re-sort in the application, or {ONE_SHARD}"
            ),
        )),
        _ => Ok(()),
    }
}
