//! Walking expressions for the subqueries they contain; anything not
//! understood is scanned for table names instead.

use std::convert::Infallible;
use std::fmt::Display;
use std::ops::ControlFlow;

use sqlparser::ast::Visit;

use super::{Walker, mentioned_tables};
use crate::router::text;
use crate::sqlwalk::{LevelNode, walk_level};

impl Walker<'_> {
    /// Something the walk does not look into: every sharded or reference
    /// table its text names becomes an unconstrained nested reference.
    pub(super) fn opaque(&mut self, node: &dyn Display) {
        let identifiers = text::identifiers(&node.to_string());
        let depth = self.scopes.len();
        for name in mentioned_tables(self.map, &identifiers) {
            self.add_ref(&name, depth, false);
        }
    }

    /// Walks an expression, or anything holding expressions (function
    /// arguments), for the subqueries it contains: each is walked as a
    /// nested query, and a table named outside any subquery (`x IN t`)
    /// counts like anything not understood.
    pub(super) fn expr(&mut self, node: &impl Visit) {
        let _: ControlFlow<Infallible> = walk_level(node, |found| {
            match found {
                LevelNode::Query(query) => self.query(query, false),
                LevelNode::Relation(name) => self.opaque(name),
                LevelNode::Expr(_) => {}
            }
            ControlFlow::Continue(())
        });
    }
}

#[cfg(test)]
mod tests {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    use super::super::{Facts, Walker};
    use crate::router::keys::{KeyConstraint, KeySource};
    use crate::sharding::map::ShardMap;

    /// The facts of `sql` against the shipped demo map (`clients`,
    /// `portfolios`, `holdings`, `transactions` sharded by `client_id`).
    fn facts(sql: &str) -> Facts {
        let names = ["shard0".to_string(), "shard1".to_string()];
        let map = ShardMap::from_toml(include_str!("../../../shard-maps/demo.toml"), &names)
            .unwrap_or_else(|problems| panic!("{problems:#?}"));
        let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("test SQL parses");
        let mut walker = Walker::new(&map);
        walker.statement(&statements[0]);
        walker.finish()
    }

    /// Name, depth and key constraint of every reference.
    fn refs(sql: &str) -> Vec<(String, usize, Option<KeyConstraint>)> {
        facts(sql)
            .refs
            .into_iter()
            .map(|r| (r.name, r.depth, r.constraint))
            .collect()
    }

    fn client(id: &str) -> Option<KeyConstraint> {
        Some(KeyConstraint::OneOf(vec![KeySource::Number(id.into())]))
    }

    #[test]
    fn subqueries_in_expressions_are_walked_as_nested_queries() {
        assert_eq!(
            refs(
                "SELECT * FROM holdings h WHERE h.client_id = 1 \
                 AND h.portfolio_id IN (SELECT id FROM portfolios p WHERE p.client_id = 2) \
                 AND EXISTS (SELECT 1 FROM transactions t WHERE t.client_id = 3)"
            ),
            [
                ("public.holdings".into(), 0, client("1")),
                ("public.portfolios".into(), 1, client("2")),
                ("public.transactions".into(), 1, client("3")),
            ]
        );
    }

    #[test]
    fn subqueries_inside_window_and_call_clauses_are_walked_too() {
        assert_eq!(
            refs(
                "SELECT row_number() OVER (PARTITION BY \
                 (SELECT 1 FROM clients c WHERE c.client_id = 5)) FROM holdings"
            ),
            [
                ("public.holdings".into(), 0, None),
                ("public.clients".into(), 1, client("5")),
            ]
        );
    }

    #[test]
    fn a_column_named_like_a_table_is_no_reference() {
        assert_eq!(
            refs("SELECT string_agg(note, ',' ORDER BY clients) FROM holdings"),
            [("public.holdings".into(), 0, None)]
        );
    }
}
