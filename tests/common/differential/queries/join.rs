//! Joins: customers with orders (one co-location group, joined on the key:
//! each shard joins its own rows), joins and subqueries with the reference
//! table, and a few joins whose per-shard evaluation would be wrong (not on
//! the key, across groups, a reference table on the preserved side of an
//! outer join): the proxy must refuse those with 0A000 or answer them right.

use super::super::dataset::{CATEGORIES, DAYS, STATUSES};
use super::super::params::Param;
use super::super::sql;
use super::{Category, Gen, Query};

/// Joins within the customer group.
pub fn colocated_joins(g: &mut Gen, out: &mut Vec<Query>) {
    let cat = Category::ColocatedJoin;
    for _ in 0..5 {
        out.push(Query::new(
            cat,
            format!(
                "SELECT c.id, c.name, o.id AS order_id, o.amount FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = {}",
                g.customer_id()
            ),
        ));
        out.push(
            Query::new(
                cat,
                "SELECT c.name, o.id, o.status, o.placed FROM orders o JOIN customers c ON c.id = o.customer_id \
                 WHERE o.customer_id = $1 ORDER BY o.id",
            )
            .total()
            .with_params(vec![Param::Int8(g.customer_id())]),
        );
        let status = g.quoted(&STATUSES);
        out.push(Query::new(
            cat,
            format!("SELECT c.id, c.region, o.id, o.amount FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.status = {status}"),
        ));
        let amount = sql::format_cents(g.rng.between(-50_000, 500_000));
        out.push(
            Query::new(
                cat,
                format!(
                    "SELECT c.id, c.name, o.id, o.amount FROM customers c JOIN orders o ON o.customer_id = c.id \
                     WHERE o.amount > {amount} ORDER BY o.amount DESC NULLS LAST, o.id LIMIT {}",
                    g.rng.between(1, 40)
                ),
            )
            .total(),
        );
        let n = 2 + g.rng.below(8);
        let ids = g.list(n, |g| g.customer_id().to_string());
        out.push(Query::new(
            cat,
            format!("SELECT c.id, o.id, o.qty FROM customers c, orders o WHERE o.customer_id = c.id AND c.id IN ({ids})"),
        ));
        out.push(
            Query::new(
                cat,
                "SELECT c.region, count(*), sum(o.amount), avg(o.qty) FROM customers c JOIN orders o ON o.customer_id = c.id \
                 GROUP BY c.region ORDER BY c.region NULLS FIRST",
            )
            .total(),
        );
        out.push(Query::new(
            cat,
            format!(
                "SELECT c.tier, max(o.placed), min(o.amount), count(o.product_id) FROM customers c JOIN orders o ON c.id = o.customer_id \
                 WHERE c.created > {} GROUP BY c.tier",
                sql::date(Some(g.rng.between(DAYS.0, DAYS.1)))
            ),
        ));
    }
    let id = g.customer().id;
    out.push(Query::new(cat, "SELECT c.id, count(o.id) FROM customers c LEFT JOIN orders o ON o.customer_id = c.id GROUP BY c.id HAVING count(o.id) = 0"));
    out.push(
        Query::new(
            cat,
            "SELECT c.id, c.name, o.id FROM customers c LEFT JOIN orders o ON o.customer_id = c.id WHERE c.tier = 2 \
             ORDER BY c.id, o.id NULLS FIRST",
        )
        .total(),
    );
    out.push(Query::new(
        cat,
        "SELECT id, name FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id AND o.status = 'paid')",
    ));
    out.push(Query::new(
        cat,
        "SELECT id FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE amount > 4000)",
    ));
    out.push(
        Query::new(cat, "SELECT c.id, c.name FROM customers c WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id) ORDER BY c.id LIMIT 30")
            .total(),
    );
    out.push(Query::new(cat, "SELECT count(*), sum(o.amount) FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.region = 'north'"));
    let tiered = g
        .data
        .customers
        .iter()
        .find(|c| c.tier.is_some_and(|t| t >= 2))
        .map_or(id, |c| c.id);
    for sql in [
        "SELECT count(*), sum(o.amount) FROM orders o JOIN customers c ON c.tier = o.qty WHERE o.status = 'paid'".to_string(),
        format!("SELECT e.id, e.n, c.name FROM customers c JOIN events e ON e.n < c.tier * 20 - 1000 WHERE c.id = {tiered}"),
        "SELECT a.code, l.entry, l.delta FROM accounts a JOIN ledger l ON l.account = a.code WHERE a.owner = 'ada'".to_string(),
        format!("SELECT count(*) FROM customers c JOIN orders o ON o.customer_id <> c.id WHERE c.id = {id}"),
    ] {
        out.push(Query::new(cat, sql));
    }
}

/// Joins with the reference table, and queries of it alone.
pub fn reference_joins(g: &mut Gen, out: &mut Vec<Query>) {
    let cat = Category::ReferenceJoin;
    for _ in 0..4 {
        out.push(
            Query::new(
                cat,
                format!(
                    "SELECT o.id, o.qty, p.category, p.price FROM orders o JOIN products p ON p.id = o.product_id \
                     WHERE o.customer_id = {} ORDER BY o.id",
                    g.customer_id()
                ),
            )
            .total(),
        );
        out.push(
            Query::new(cat, "SELECT o.id, p.category FROM orders o JOIN products p ON p.id = o.product_id WHERE o.customer_id = $1")
                .with_params(vec![Param::Int8(g.customer_id())]),
        );
        let category = g.quoted(&CATEGORIES);
        out.push(Query::new(
            cat,
            format!("SELECT o.customer_id, o.id, p.price FROM orders o JOIN products p ON o.product_id = p.id WHERE p.category = {category}"),
        ));
        let price = sql::format_cents(g.rng.between(0, 100_000));
        out.push(
            Query::new(
                cat,
                format!(
                    "SELECT o.id, o.amount, p.price FROM orders o JOIN products p ON p.id = o.product_id WHERE p.price > {price} \
                     ORDER BY p.price DESC, o.id LIMIT {}",
                    g.rng.between(1, 40)
                ),
            )
            .total(),
        );
        out.push(Query::new(
            cat,
            format!(
                "SELECT c.region, p.category, count(*) FROM customers c JOIN orders o ON o.customer_id = c.id \
                 JOIN products p ON p.id = o.product_id WHERE c.tier >= {} GROUP BY c.region, p.category",
                g.rng.between(-1, 5)
            ),
        ));
        out.push(
            Query::new(
                cat,
                format!(
                    "SELECT id, category, price FROM products WHERE price > {price} ORDER BY id"
                ),
            )
            .total(),
        );
    }
    for sql in [
        "SELECT p.category, count(*), sum(o.qty), sum(o.amount), avg(p.price) FROM orders o JOIN products p ON p.id = o.product_id \
         GROUP BY p.category ORDER BY 1 NULLS FIRST",
        "SELECT DISTINCT p.category FROM orders o JOIN products p ON p.id = o.product_id WHERE o.qty > 40 ORDER BY 1",
        "SELECT p.id, count(o.id) FROM products p LEFT JOIN orders o ON o.product_id = p.id GROUP BY p.id ORDER BY p.id",
    ] {
        out.push(Query::new(cat, sql).total());
    }
    for sql in [
        "SELECT count(*), sum(price), avg(price), min(category), max(category) FROM products",
        "SELECT category, count(*) FROM products GROUP BY category",
        "SELECT * FROM products WHERE id = 7",
        "SELECT o.id, p.id, p.category FROM orders o LEFT JOIN products p ON p.id = o.product_id WHERE o.product_id IS NULL OR p.price > 900",
        "SELECT e.kind, p.category FROM events e JOIN products p ON p.id = e.n WHERE e.n BETWEEN 1 AND 50",
        // Wrong if each shard ran them: products without orders on a shard,
        // products with qualifying orders on several shards.
        "SELECT p.id, o.id FROM products p LEFT JOIN orders o ON o.product_id = p.id WHERE p.id > 45",
        "SELECT p.category, count(*) FROM products p WHERE EXISTS (SELECT 1 FROM orders o WHERE o.product_id = p.id AND o.qty > 45) GROUP BY 1",
    ] {
        out.push(Query::new(cat, sql));
    }
}
