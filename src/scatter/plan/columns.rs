//! The shard query's output columns as the planner builds them: the
//! client's select list first, then hidden helper columns, each with how it
//! merges and what it can be looked up by (ordinal, output name, equal
//! expression).
//!
//! A `*` item expands to a number of columns only the shards know. Column
//! numbers here count it as zero columns (see
//! [`ScatterPlan::wildcard_at`](crate::scatter::ScatterPlan::wildcard_at));
//! a column between two `*` items has no position the plan could name, so
//! lookups skip it and the planner appends a hidden copy instead.

use sqlparser::ast::{Expr, SelectItem};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::scatter::ColumnMerge;

use super::ident_name;

/// One shard output column (a `*` expansion is not one).
struct OutputColumn {
    /// [`canonical`] text of the expression the client wrote (for AVG, the
    /// `avg(...)` call, not the `sum(...)` the shards run).
    key: String,
    /// The column's output name (alias, or the name Postgres implies);
    /// `None` for hidden columns, which ORDER BY cannot name.
    name: Option<String>,
    /// How values from several shards combine.
    merge: ColumnMerge,
    /// The collation the item names with a top-level COLLATE; sorting by
    /// the column sorts by it.
    collation: Option<String>,
}

/// The output columns planned so far.
#[derive(Default)]
pub(super) struct OutputColumns {
    columns: Vec<OutputColumn>,
    /// Column number at which each `*` item of the select list expands.
    wildcards: Vec<usize>,
    /// Select items appended to the client's list, in column order.
    hidden_items: Vec<SelectItem>,
}

/// Everything about the planned columns the final plan needs.
pub(super) struct PlannedColumns {
    /// Merge rule per column.
    pub merges: Vec<ColumnMerge>,
    /// How many columns (not counting `*` expansions) the client sees.
    pub visible: usize,
    /// Where the first `*` expands, if any.
    pub wildcard_at: Option<usize>,
    /// Items to append to the shard query's select list.
    pub hidden_items: Vec<SelectItem>,
}

impl OutputColumns {
    /// Adds a column of the client's select list.
    pub fn push_visible(&mut self, expr: &Expr, name: Option<String>, merge: ColumnMerge) -> usize {
        debug_assert!(self.hidden_items.is_empty(), "visible columns come first");
        self.columns.push(OutputColumn {
            key: canonical(expr),
            name,
            merge,
            collation: None,
        });
        self.columns.len() - 1
    }

    /// Records a `*` item of the client's select list.
    pub fn push_wildcard(&mut self) {
        self.wildcards.push(self.columns.len());
    }

    /// Appends a hidden column: `item` is what the shards compute, `source`
    /// what the client wrote (the lookup key).
    pub fn push_hidden(&mut self, item: SelectItem, source: &Expr, merge: ColumnMerge) -> usize {
        self.columns.push(OutputColumn {
            key: canonical(source),
            name: None,
            merge,
            collation: None,
        });
        self.hidden_items.push(item);
        self.columns.len() - 1
    }

    /// Sets how an already planned column merges (the AVG count column is
    /// known only after the select list is complete).
    pub fn set_merge(&mut self, column: usize, merge: ColumnMerge) {
        if let Some(planned) = self.columns.get_mut(column) {
            planned.merge = merge;
        }
    }

    /// How `column` merges.
    pub fn merge(&self, column: usize) -> Option<ColumnMerge> {
        self.columns.get(column).map(|planned| planned.merge)
    }

    /// Records the collation a select item names (see [`Self::collation`]).
    pub fn set_collation(&mut self, column: usize, collation: Option<String>) {
        if let Some(planned) = self.columns.get_mut(column) {
            planned.collation = collation;
        }
    }

    /// The collation a select item names with a top-level COLLATE, which
    /// an ORDER BY by its position or name sorts with.
    pub fn collation(&self, column: usize) -> Option<&str> {
        self.columns.get(column)?.collation.as_deref()
    }

    /// The first addressable column computing the same expression as
    /// `expr` (compared without regard to the case of unquoted names).
    pub fn find_expr(&self, expr: &Expr) -> Option<usize> {
        let key = canonical(expr);
        (0..self.columns.len())
            .find(|&column| self.addressable(column) && self.columns[column].key == key)
    }

    /// The first addressable column of the select list whose output name is
    /// `name`.
    pub fn find_name(&self, name: &str) -> Option<usize> {
        (0..self.columns.len()).find(|&column| {
            self.addressable(column) && self.columns[column].name.as_deref() == Some(name)
        })
    }

    /// The column a `GROUP BY n` / `ORDER BY n` position names, or the
    /// error Postgres would give (or the reason the proxy cannot tell).
    pub fn position(&self, clause: &str, position: u64, visible: usize) -> Result<usize, String> {
        let before_wildcard = self.wildcards.first().copied().unwrap_or(visible);
        let index = usize::try_from(position)
            .ok()
            .and_then(|position| position.checked_sub(1));
        match index {
            Some(index) if index < before_wildcard => Ok(index),
            Some(_) if !self.wildcards.is_empty() => Err(super::unsupported(
                &format!("{clause} {position} after a * in the select list"),
                "name the column instead of its position (the proxy cannot count the columns \
                 * expands to)",
            )),
            _ => Err(format!(
                "{clause} position {position} is not in select list"
            )),
        }
    }

    /// Whether the select list has a `*` item.
    pub fn has_wildcard(&self) -> bool {
        !self.wildcards.is_empty()
    }

    /// Whether the plan can name `column`'s position: it is not between the
    /// first and the last `*`.
    fn addressable(&self, column: usize) -> bool {
        match (self.wildcards.first(), self.wildcards.last()) {
            (Some(&first), Some(&last)) => column < first || column >= last,
            _ => true,
        }
    }

    /// The finished column list; `visible` is the length of the client's
    /// select list.
    pub fn finish(self, visible: usize) -> PlannedColumns {
        PlannedColumns {
            merges: self.columns.iter().map(|column| column.merge).collect(),
            visible,
            wildcard_at: self.wildcards.first().copied(),
            hidden_items: self.hidden_items,
        }
    }
}

/// A text that is equal for two expressions exactly when Postgres reads
/// them as the same expression up to spelling: tokens without whitespace,
/// unquoted names folded to lower case (`SUM(X)` and `sum(x)` match,
/// `"X"` and `x` do not).
pub(super) fn canonical(expr: &Expr) -> String {
    let text = expr.to_string();
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, &text).tokenize() else {
        return text;
    };
    tokens
        .iter()
        .filter(|token| !matches!(token, Token::Whitespace(_)))
        .map(|token| match token {
            Token::Word(word) if word.quote_style.is_none() => {
                format!("\"{}\"", word.value.to_lowercase())
            }
            Token::Word(word) => format!("\"{}\"", word.value),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The output column name Postgres gives an unaliased expression, for the
/// forms ORDER BY and GROUP BY can refer to: a column's own name, a
/// function's name, the inner expression's name through a cast.
pub(super) fn implied_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(ident) => Some(ident_name(ident)),
        Expr::CompoundIdentifier(parts) => parts.last().map(ident_name),
        Expr::Function(call) => call
            .name
            .0
            .last()
            .and_then(|part| part.as_ident())
            .map(ident_name),
        Expr::Nested(inner) | Expr::Cast { expr: inner, .. } => implied_name(inner),
        Expr::Case { .. } => Some("case".to_string()),
        _ => None,
    }
}
