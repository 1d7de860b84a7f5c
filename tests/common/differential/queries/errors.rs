//! Queries the single Postgres refuses (bad input for a key, division by
//! zero on one shard and on all, overflow, unknown names, syntax): the proxy
//! must answer with the same SQLSTATE.

use super::super::params::Param;
use super::{Category, Gen, Query};

/// Failing queries, with and without parameters.
pub fn errors(g: &mut Gen, out: &mut Vec<Query>) {
    let cat = Category::Errors;
    let with_tier = g
        .data
        .customers
        .iter()
        .filter(|c| c.tier.is_some())
        .map(|c| c.id)
        .collect::<Vec<_>>();
    let id = *g.rng.pick(&with_tier);
    for sql in [
        "SELECT * FROM customers WHERE id = 'abc'".to_string(),
        format!("SELECT id, 100 / (tier - tier) FROM customers WHERE id = {id}"),
        "SELECT count(*) FROM customers WHERE credit / 0 > 1".to_string(),
        "SELECT nosuch FROM customers".to_string(),
        "SELECT * FROM nosuch_table".to_string(),
        "SELEC 1".to_string(),
        "SELECT * FROM events WHERE id = 'not-a-uuid'".to_string(),
        "SELECT tier * 2147483647 * 2 FROM customers WHERE tier > 1".to_string(),
        "SELECT id::int2 FROM customers WHERE id > 40000".to_string(),
        "SELECT 1 / 0".to_string(),
        "SELECT c.id FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.nosuch = 1"
            .to_string(),
        "SELECT sum(name) FROM customers".to_string(),
        "SELECT id FROM customers GROUP BY region".to_string(),
    ] {
        out.push(Query::new(cat, sql));
    }
    for (sql, value) in [
        ("SELECT * FROM customers WHERE id = $1", "12abc"),
        ("SELECT * FROM events WHERE id = $1", "zzz"),
        ("SELECT * FROM ledger WHERE entry = $1", "3000000000"),
        ("SELECT count(*) FROM orders WHERE amount > $1", "ten"),
    ] {
        out.push(Query::new(cat, sql).with_params(vec![Param::TextFormat(value.to_string())]));
    }
}
