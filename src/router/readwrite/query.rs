//! Whether a query only reads: one walk over everything it contains.
//!
//! sqlparser's [`Visitor`] reaches every node (sub-selects, CTEs, function
//! arguments, ORDER BY, FROM items...), so nothing a query evaluates is
//! missed, including node kinds added by a parser upgrade.

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Query, Select, Statement, TableFactor, Visit, Visitor};

use super::ReadOnlyFunctions;

/// True when `query` takes no row locks, creates no table, modifies no
/// data and calls only functions `functions` allows.
pub(super) fn reads_only(query: &Query, functions: &ReadOnlyFunctions) -> bool {
    query.visit(&mut ReadOnlyCheck { functions }).is_continue()
}

/// The [`Visitor`] behind [`reads_only`]: breaks at the first node that
/// may write.
struct ReadOnlyCheck<'a> {
    functions: &'a ReadOnlyFunctions,
}

impl ReadOnlyCheck<'_> {
    /// Breaks unless `writes` is false.
    fn refuse_if(writes: bool) -> ControlFlow<()> {
        if writes {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

impl Visitor for ReadOnlyCheck<'_> {
    type Break = ();

    /// A statement inside a query is a data-modifying CTE
    /// (`WITH x AS (INSERT ...)`) or a write with a WITH clause.
    fn pre_visit_statement(&mut self, _statement: &Statement) -> ControlFlow<()> {
        ControlFlow::Break(())
    }

    /// `FOR UPDATE` / `FOR SHARE` at any level takes row locks, which a
    /// standby refuses.
    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        Self::refuse_if(!query.locks.is_empty())
    }

    /// `SELECT ... INTO new_table` creates a table.
    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        Self::refuse_if(select.into.is_some())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::Function(function) => Self::refuse_if(!self.functions.allows(&function.name)),
            _ => ControlFlow::Continue(()),
        }
    }

    /// Set-returning functions in FROM (`FROM f(x)`, `LATERAL f(x)`).
    fn pre_visit_table_factor(&mut self, table: &TableFactor) -> ControlFlow<()> {
        match table {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            }
            | TableFactor::Function { name, .. } => Self::refuse_if(!self.functions.allows(name)),
            _ => ControlFlow::Continue(()),
        }
    }
}
