//! Splitting a multi-row INSERT into one INSERT per shard.
//!
//! Each part is the client's statement with only that shard's VALUES rows,
//! rendered from the AST (so comments are dropped), with its `$n`
//! placeholders renumbered from `$1`: a part binds only the parameters its
//! rows (and its ON CONFLICT / RETURNING clauses) use, so the server never
//! sees a parameter whose type it cannot infer.

use sqlparser::ast::{Insert, SetExpr, Statement};

use super::decide::InsertPart;
use super::text::renumber_placeholders;

/// The part of `insert` holding the VALUES rows `rows` (ascending
/// indexes), for `shard`.
pub(super) fn split_insert(insert: &Insert, shard: usize, rows: Vec<usize>) -> InsertPart {
    let mut part = insert.clone();
    if let Some(source) = &mut part.source
        && let SetExpr::Values(values) = source.body.as_mut()
    {
        let all = std::mem::take(&mut values.rows);
        values.rows = all
            .into_iter()
            .enumerate()
            .filter(|(index, _)| rows.binary_search(index).is_ok())
            .map(|(_, row)| row)
            .collect();
    }
    let (sql, params) = renumber_placeholders(&Statement::Insert(part).to_string());
    InsertPart {
        shard,
        sql,
        rows,
        params,
    }
}
