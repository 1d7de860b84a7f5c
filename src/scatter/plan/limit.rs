//! LIMIT, OFFSET and FETCH FIRST: read as numbers at planning time, because
//! the merge applies them after combining the shards' rows.

use sqlparser::ast::{Expr, LimitClause, Query, Value};

use super::{ONE_SHARD, integer_literal, unsupported};

/// Which merged rows the client gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RowWindow {
    /// Rows skipped.
    pub offset: u64,
    /// Most rows returned after skipping; `None` for no limit.
    pub limit: Option<u64>,
}

/// The query's LIMIT/OFFSET/FETCH as numbers, or why they cannot be used.
pub(super) fn row_window(query: &Query) -> Result<RowWindow, String> {
    let (limit, offset) = match &query.limit_clause {
        None => (None, None),
        Some(LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) => {
            if !limit_by.is_empty() {
                return Err(unsupported("LIMIT ... BY", ONE_SHARD));
            }
            (limit.as_ref(), offset.as_ref().map(|offset| &offset.value))
        }
        Some(LimitClause::OffsetCommaLimit { .. }) => {
            return Err(unsupported(
                "LIMIT offset, count",
                "write LIMIT count OFFSET offset",
            ));
        }
    };
    let mut window = RowWindow {
        offset: match offset {
            Some(offset) => count("OFFSET", offset)?.unwrap_or(0),
            None => 0,
        },
        limit: match limit {
            Some(limit) => count("LIMIT", limit)?,
            None => None,
        },
    };
    if let Some(fetch) = &query.fetch {
        if limit.is_some() {
            return Err(unsupported(
                "LIMIT together with FETCH FIRST",
                "use one of them",
            ));
        }
        if fetch.with_ties {
            return Err(unsupported(
                "FETCH FIRST ... WITH TIES",
                &format!("use ONLY and fetch the ties with a second query, or {ONE_SHARD}"),
            ));
        }
        if fetch.percent {
            return Err(unsupported("FETCH FIRST ... PERCENT", ONE_SHARD));
        }
        window.limit = match &fetch.quantity {
            Some(quantity) => count("FETCH FIRST", quantity)?,
            None => Some(1),
        };
    }
    Ok(window)
}

/// The LIMIT each shard applies when shards' rows are not regrouped: the
/// first `offset + limit` rows of every shard contain the first
/// `offset + limit` rows overall. `None` when there is no limit (or the
/// sum is beyond what Postgres' bigint LIMIT takes).
pub(super) fn shard_limit(window: &RowWindow) -> Option<LimitClause> {
    let rows = window
        .limit?
        .checked_add(window.offset)
        .filter(|&rows| i64::try_from(rows).is_ok())?;
    Some(LimitClause::LimitOffset {
        limit: Some(Expr::value(Value::Number(rows.to_string(), false))),
        offset: None,
        limit_by: Vec::new(),
    })
}

/// A row count given as a literal: `Some(n)`, or `None` for NULL (no
/// limit, no offset); anything else is refused.
fn count(clause: &str, expr: &Expr) -> Result<Option<u64>, String> {
    if let Expr::Value(value) = expr {
        match &value.value {
            Value::Null => return Ok(None),
            Value::Placeholder(parameter) => {
                return Err(unsupported(
                    &format!("{clause} with a parameter ({parameter})"),
                    &format!(
                        "write the number into the query text (the proxy needs it when \
                         planning), or {ONE_SHARD}"
                    ),
                ));
            }
            _ => {}
        }
    }
    match integer_literal(expr) {
        Some(rows) => Ok(Some(rows)),
        None => Err(unsupported(
            &format!("{clause} {expr}"),
            &format!("write {clause} as a non-negative integer literal"),
        )),
    }
}
