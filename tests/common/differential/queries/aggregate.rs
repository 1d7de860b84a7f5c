//! Aggregates, GROUP BY (with HAVING, ORDER BY, LIMIT/OFFSET) and DISTINCT:
//! the merges of fanned-out results. Built from random picks over the
//! catalog, plus a few fixed shapes (empty input, expressions over
//! aggregates, aggregates that cannot be merged from per-shard parts).

use super::super::params::Param;
use super::super::sql;
use super::catalog::{Col, Table};
use super::{Category, Gen, Query};

/// `count(*)` and every aggregate valid over the columns of `table` other
/// than `except`.
fn aggregate_calls(table: &Table, except: &[Col]) -> Vec<String> {
    let mut calls = vec!["count(*)".to_string()];
    for col in table
        .cols
        .iter()
        .filter(|c| !except.iter().any(|e| e.name == c.name))
    {
        calls.extend(col.aggregates());
    }
    calls
}

/// Between 1 and `most` distinct elements of `items`.
fn some<T: Clone>(g: &mut Gen, items: &[T], most: usize) -> Vec<T> {
    let n = 1 + g.rng.below(most.min(items.len()));
    g.rng.sample(items, n)
}

/// Aggregates without GROUP BY: one row, merged from every shard's.
pub fn aggregates(g: &mut Gen, out: &mut Vec<Query>) {
    let cat = Category::Aggregate;
    for _ in 0..36 {
        let table = g.table();
        let calls = some(g, &aggregate_calls(table, &[]), 4);
        let filter = g.maybe_where(table);
        out.push(Query::new(
            cat,
            format!("SELECT {} FROM {}{filter}", calls.join(", "), table.name),
        ));
    }
    for _ in 0..3 {
        out.push(
            Query::new(cat, "SELECT count(*), sum(tier), avg(credit), min(created), max(name) FROM customers WHERE tier >= $1")
                .with_params(vec![Param::Int4(g.rng.between(-1, 6) as i32)]),
        );
        out.push(
            Query::new(cat, "SELECT count(amount), sum(qty), avg(amount), max(placed) FROM orders WHERE amount > $1")
                .with_params(vec![Param::TextFormat(sql::format_cents(g.rng.between(-50_000, 500_000)))]),
        );
    }
    for sql in [
        "SELECT count(*), count(tier), sum(credit), avg(tier), min(name), max(created) FROM customers WHERE tier > 100",
        "SELECT count(*) AS n, sum(amount) AS total, avg(amount) AS mean FROM orders",
        "SELECT sum(balance), avg(balance), min(balance), max(balance) FROM accounts",
        "SELECT max(amount) - min(amount) FROM orders",
        "SELECT count(DISTINCT region) FROM customers",
        "SELECT string_agg(name, ',' ORDER BY name, id) FROM customers WHERE tier = 3",
    ] {
        out.push(Query::new(cat, sql));
    }
}

/// A HAVING condition over an aggregate of `table` (in the select list or
/// not).
fn having(g: &mut Gen, table: &Table) -> String {
    let col = *g.rng.pick(table.cols);
    let condition = match col
        .aggregates()
        .into_iter()
        .filter(|c| !c.starts_with("count"))
        .collect::<Vec<_>>()
    {
        calls if !calls.is_empty() && g.rng.chance(50) => {
            let call = g.rng.pick(&calls).clone();
            let op = *g.rng.pick(&["<", ">=", "<>"]);
            format!("{call} {op} {}", g.literal(table.name, &col))
        }
        _ => format!("count(*) > {}", g.rng.between(0, 6)),
    };
    match g.rng.below(5) {
        0 => format!("NOT ({condition})"),
        1 => format!("{condition} AND count({}) >= 1", col.name),
        2 => format!("{condition} OR count(*) = 1"),
        _ => condition,
    }
}

/// GROUP BY over one or two low-cardinality columns.
pub fn group_bys(g: &mut Gen, out: &mut Vec<Query>) {
    let cat = Category::GroupBy;
    for _ in 0..40 {
        let table = g.table();
        let groups = some(g, &table.groupable(), 2);
        let aggs = some(g, &aggregate_calls(table, &groups), 3);
        let shown_groups = !g.rng.chance(15);
        let mut select: Vec<String> = if shown_groups {
            groups.iter().map(|c| c.name.to_string()).collect()
        } else {
            vec![]
        };
        let first_agg = select.len();
        select.extend(aggs.iter().cloned());
        let group_names: Vec<&str> = groups.iter().map(|c| c.name).collect();
        let mut sql = format!(
            "SELECT {} FROM {}{} GROUP BY {}",
            select.join(", "),
            table.name,
            g.maybe_where(table),
            group_names.join(", ")
        );
        if g.rng.chance(40) {
            sql.push_str(&format!(" HAVING {}", having(g, table)));
        }
        let agg_item = g.sort_item(&aggs[0], first_agg);
        let group_items: Vec<String> = group_names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                if shown_groups {
                    g.sort_item(name, i)
                } else {
                    g.sort_term(name)
                }
            })
            .collect();
        let query = match g.rng.below(4) {
            0 => Query::new(cat, sql),
            1 => Query::new(
                cat,
                format!(
                    "{sql} ORDER BY {}{}",
                    group_items.join(", "),
                    g.limit_offset()
                ),
            )
            .total(),
            2 => Query::new(
                cat,
                format!(
                    "{sql} ORDER BY {agg_item}, {}{}",
                    group_items.join(", "),
                    g.limit_offset()
                ),
            )
            .total(),
            _ => Query::new(cat, format!("{sql} ORDER BY {agg_item}")).sorted_by(vec![first_agg]),
        };
        out.push(query);
    }
    for _ in 0..2 {
        out.push(
            Query::new(
                cat,
                format!(
                    "SELECT customer_id, count(*), sum(amount) FROM orders GROUP BY customer_id \
                     ORDER BY sum(amount) DESC NULLS LAST, customer_id LIMIT {}",
                    g.rng.between(1, 25)
                ),
            )
            .total(),
        );
        out.push(
            Query::new(cat, "SELECT status, count(*), max(placed) FROM orders WHERE qty > $1 GROUP BY status HAVING count(*) > $2")
                .with_params(vec![Param::Int4(g.rng.between(-3, 40) as i32), Param::Int8(g.rng.between(0, 30))]),
        );
    }
    for sql in [
        "SELECT tier % 2 AS parity, count(*) FROM customers GROUP BY tier % 2 ORDER BY 1 NULLS FIRST",
        "SELECT region, count(*) FROM customers GROUP BY 1 ORDER BY 2 DESC, 1",
        "SELECT date_trunc('year', placed) AS year, count(*), sum(qty) FROM orders GROUP BY 1 ORDER BY 1",
        "SELECT kind, avg(n), min(n), max(n) FROM events GROUP BY kind HAVING avg(n) > 0 ORDER BY kind DESC NULLS LAST",
    ] {
        out.push(Query::new(cat, sql).total());
    }
}

/// SELECT DISTINCT over one or two columns.
pub fn distincts(g: &mut Gen, out: &mut Vec<Query>) {
    let cat = Category::Distinct;
    for _ in 0..20 {
        let table = g.table();
        let cols = if g.rng.chance(25) {
            vec![*g.rng.pick(&table.orderable())]
        } else {
            some(g, &table.groupable(), 2)
        };
        let names: Vec<&str> = cols.iter().map(|c| c.name).collect();
        let sql = format!(
            "SELECT DISTINCT {} FROM {}{}",
            names.join(", "),
            table.name,
            g.maybe_where(table)
        );
        let items: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, name)| g.sort_item(name, i))
            .collect();
        let query = match g.rng.below(3) {
            0 => Query::new(cat, sql),
            1 => Query::new(
                cat,
                format!("{sql} ORDER BY {}{}", items.join(", "), g.limit_offset()),
            )
            .total(),
            _ => Query::new(cat, format!("{sql} ORDER BY {}", items[0])).sorted_by(vec![0]),
        };
        out.push(query);
    }
    let amount = sql::format_cents(g.rng.between(-50_000, 500_000));
    for sql in [
        "SELECT DISTINCT lower(name) FROM customers ORDER BY 1".to_string(),
        format!("SELECT DISTINCT customer_id FROM orders WHERE amount > {amount} ORDER BY customer_id LIMIT 20"),
        "SELECT DISTINCT tier, region FROM customers ORDER BY tier NULLS FIRST, region DESC OFFSET 3".to_string(),
        "SELECT DISTINCT ON (region) region, id, name FROM customers ORDER BY region, id".to_string(),
    ] {
        out.push(Query::new(cat, sql).total());
    }
    out.push(
        Query::new(
            cat,
            "SELECT DISTINCT status, qty FROM orders WHERE qty < $1",
        )
        .with_params(vec![Param::Int4(5)]),
    );
}
