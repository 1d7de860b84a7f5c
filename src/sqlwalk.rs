//! Walking the part of a SQL tree that belongs to one query level.
//!
//! The router and the scatter planner both look at the expressions a clause
//! evaluates at its own query level and treat every sub-select as a unit of
//! its own: the router walks it as a nested scope with its own FROM list,
//! and an aggregate inside it is the sub-select's, not the planned query's.
//! sqlparser's [`Visitor`] reaches every node of the AST (it is generated
//! with the AST, so a new expression kind in an upgrade is walked too), but
//! it cannot skip a subtree; this module counts how deep in sub-selects the
//! visit is and reports only what lies at the top.

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, ObjectName, Query, Visit, Visitor};

/// Something found at the walked query level.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LevelNode<'a> {
    /// An expression evaluated at this level, the walked node included
    /// when it is an expression.
    Expr(&'a Expr),
    /// A sub-select (`(SELECT ...)`, `EXISTS`, `IN (SELECT ...)`, a
    /// function argument): reported whole, nothing inside it is reported.
    Query(&'a Query),
    /// A table named outside any sub-select (SQLite's `x IN table`).
    Relation(&'a ObjectName),
}

/// Calls `found` for each expression, sub-select and table name of
/// `node`'s query level, in pre-order (a node before what it contains,
/// left to right), until `found` breaks. `node` is an expression or
/// something holding expressions (a function argument); passing a whole
/// query reports just that query.
pub(crate) fn walk_level<B>(
    node: &impl Visit,
    found: impl FnMut(LevelNode<'_>) -> ControlFlow<B>,
) -> ControlFlow<B> {
    node.visit(&mut LevelVisitor { depth: 0, found })
}

/// The [`Visitor`] behind [`walk_level`].
struct LevelVisitor<F> {
    /// How many sub-selects the visit is inside.
    depth: usize,
    /// The caller's callback.
    found: F,
}

impl<F> LevelVisitor<F> {
    /// Reports `node` when the visit is at the walked level.
    fn report<B>(&mut self, node: LevelNode<'_>) -> ControlFlow<B>
    where
        F: FnMut(LevelNode<'_>) -> ControlFlow<B>,
    {
        if self.depth == 0 {
            (self.found)(node)
        } else {
            ControlFlow::Continue(())
        }
    }
}

impl<F, B> Visitor for LevelVisitor<F>
where
    F: FnMut(LevelNode<'_>) -> ControlFlow<B>,
{
    type Break = B;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<B> {
        self.report(LevelNode::Query(query))?;
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<B> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<B> {
        self.report(LevelNode::Expr(expr))
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<B> {
        self.report(LevelNode::Relation(relation))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use sqlparser::ast::{SelectItem, SetExpr, Statement};
    use sqlparser::dialect::{Dialect, PostgreSqlDialect, SQLiteDialect};
    use sqlparser::parser::Parser;

    use super::*;

    /// The first select-list expression of `SELECT <sql>`.
    fn parse_expr(dialect: &dyn Dialect, sql: &str) -> Expr {
        let statements =
            Parser::parse_sql(dialect, &format!("SELECT {sql}")).expect("test SQL parses");
        let Some(Statement::Query(query)) = statements.into_iter().next() else {
            panic!("not a query: {sql}");
        };
        let SetExpr::Select(select) = *query.body else {
            panic!("not a SELECT: {sql}");
        };
        match select.projection.into_iter().next() {
            Some(SelectItem::UnnamedExpr(expr)) => expr,
            other => panic!("no plain expression: {other:?}"),
        }
    }

    /// Everything the walk reports, as text.
    fn reported(dialect: &dyn Dialect, sql: &str) -> Vec<String> {
        let expr = parse_expr(dialect, sql);
        let mut seen = Vec::new();
        let _ = walk_level(&expr, |node| {
            seen.push(match node {
                LevelNode::Expr(expr) => format!("expr {expr}"),
                LevelNode::Query(query) => format!("query {query}"),
                LevelNode::Relation(name) => format!("table {name}"),
            });
            ControlFlow::<Infallible>::Continue(())
        });
        seen
    }

    #[test]
    fn sub_selects_are_reported_whole_and_not_entered() {
        assert_eq!(
            reported(
                &PostgreSqlDialect {},
                "a + (SELECT max(b) FROM t WHERE c IN (SELECT d FROM u))"
            ),
            [
                "expr a + (SELECT max(b) FROM t WHERE c IN (SELECT d FROM u))",
                "expr a",
                "expr (SELECT max(b) FROM t WHERE c IN (SELECT d FROM u))",
                "query SELECT max(b) FROM t WHERE c IN (SELECT d FROM u)",
            ]
        );
        assert_eq!(
            reported(
                &PostgreSqlDialect {},
                "EXISTS (SELECT 1 FROM t) AND x IN (SELECT y FROM u) AND f(z)"
            )
            .iter()
            .filter(|node| node.starts_with("query"))
            .collect::<Vec<_>>(),
            ["query SELECT 1 FROM t", "query SELECT y FROM u"]
        );
    }

    #[test]
    fn walks_on_after_a_sub_select() {
        let seen = reported(
            &PostgreSqlDialect {},
            "(SELECT 1) + count(*) OVER (PARTITION BY k)",
        );
        assert!(seen.contains(&"query SELECT 1".to_string()), "{seen:?}");
        assert!(seen.contains(&"expr k".to_string()), "{seen:?}");
    }

    #[test]
    fn a_table_named_in_an_expression_is_reported() {
        assert_eq!(
            reported(&SQLiteDialect {}, "x IN t"),
            ["expr x IN t", "expr x", "table t"]
        );
    }

    #[test]
    fn stops_where_the_callback_breaks() {
        let expr = parse_expr(&PostgreSqlDialect {}, "f(g(1), h(2))");
        let mut calls = Vec::new();
        let stopped = walk_level(&expr, |node| match node {
            LevelNode::Expr(Expr::Function(call)) => {
                calls.push(call.name.to_string());
                if calls.len() == 2 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            }
            _ => ControlFlow::Continue(()),
        });
        assert_eq!(stopped, ControlFlow::Break(()));
        assert_eq!(calls, ["f", "g"]);
    }
}
