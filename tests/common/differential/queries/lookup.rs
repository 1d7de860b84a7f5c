//! Point lookups, range predicates and IN lists: the router's key
//! extraction (literals in several spellings, text and binary parameters,
//! every key type and strategy) and fan-outs of keyless predicates.

use super::super::dataset::{DAYS, PLACED, REGIONS};
use super::super::params::Param;
use super::super::sql::{self, format_uuid, quote};
use super::{Category, Gen, Query};

/// Equality on the sharding key of every sharded table.
pub fn point_lookups(g: &mut Gen, out: &mut Vec<Query>) {
    let cat = Category::PointLookup;
    for _ in 0..5 {
        out.push(Query::new(
            cat,
            format!(
                "SELECT id, name, region, tier, credit, created FROM customers WHERE id = {}",
                g.customer_id()
            ),
        ));
        out.push(
            Query::new(cat, "SELECT * FROM customers WHERE id = $1")
                .with_params(vec![Param::Int8(g.customer_id())]),
        );
        out.push(
            Query::new(cat, "SELECT name, credit FROM customers WHERE id = $1")
                .with_params(vec![Param::TextFormat(g.customer_id().to_string())]),
        );
        out.push(
            Query::new(
                cat,
                format!(
                    "SELECT id, product_id, status, amount, qty, placed FROM orders WHERE customer_id = {} ORDER BY id",
                    g.customer_id()
                ),
            )
            .total(),
        );
        out.push(
            Query::new(
                cat,
                "SELECT id, amount, placed FROM orders WHERE customer_id = $1 AND qty >= $2 \
                 ORDER BY placed DESC NULLS LAST, id",
            )
            .total()
            .with_params(vec![
                Param::Int8(g.customer_id()),
                Param::Int4(g.rng.between(-3, 30) as i32),
            ]),
        );
        out.push(
            Query::new(cat, "SELECT count(*), sum(amount), avg(qty), min(placed), max(status) FROM orders WHERE customer_id = $1")
                .with_params(vec![Param::Int8(g.customer_id())]),
        );
        let event = g.event_id();
        out.push(Query::new(
            cat,
            format!(
                "SELECT id, kind, n FROM events WHERE id = {}",
                sql::uuid(&event)
            ),
        ));
        out.push(
            Query::new(cat, "SELECT kind, n FROM events WHERE id = $1")
                .with_params(vec![Param::Uuid(g.event_id())]),
        );
        out.push(
            Query::new(cat, "SELECT id, n FROM events WHERE id = $1").with_params(vec![
                Param::TextFormat(format_uuid(&g.event_id()).to_uppercase()),
            ]),
        );
        out.push(Query::new(
            cat,
            format!(
                "SELECT code, owner, balance, opened FROM accounts WHERE code = {}",
                quote(&g.account_code())
            ),
        ));
        out.push(
            Query::new(cat, "SELECT owner, balance FROM accounts WHERE code = $1")
                .with_params(vec![Param::Text(g.account_code())]),
        );
        out.push(Query::new(
            cat,
            format!(
                "SELECT entry, account, delta, booked FROM ledger WHERE entry = {}",
                g.ledger_entry()
            ),
        ));
        out.push(
            Query::new(cat, "SELECT * FROM ledger WHERE entry = $1")
                .with_params(vec![Param::Int4(g.ledger_entry() as i32)]),
        );
    }
    key_spellings(g, out);
}

/// The same key written the ways Postgres accepts it.
fn key_spellings(g: &mut Gen, out: &mut Vec<Query>) {
    let cat = Category::PointLookup;
    let id = g.customer().id;
    let negative = g
        .data
        .customers
        .iter()
        .find(|c| c.id < 0)
        .map_or(-1, |c| c.id);
    let event = format_uuid(&g.rng.pick(&g.data.events).id);
    let quoted_code = g
        .data
        .accounts
        .iter()
        .find(|a| a.code.contains('\''))
        .map_or("x'y", |a| &a.code)
        .to_string();
    for sql in [
        format!("SELECT id, name FROM customers WHERE {id} = id"),
        format!("SELECT id, name FROM customers WHERE id = '{id}'"),
        format!("SELECT id, name FROM customers WHERE id = ' {id} '"),
        format!("SELECT id, name FROM customers WHERE id = {id}::bigint"),
        format!("SELECT id, name FROM customers WHERE (id = {id}) AND tier IS NOT NULL"),
        format!("SELECT c.id, c.name FROM customers AS c WHERE c.id = {id}"),
        format!("SELECT id, tier FROM customers WHERE id = {negative}"),
        format!(
            "SELECT id, kind FROM events WHERE id = '{}'",
            event.to_uppercase()
        ),
        format!(
            "SELECT id, kind FROM events WHERE id = '{{{}}}'",
            event.replace('-', "")
        ),
        "SELECT entry FROM ledger WHERE entry = 99999999999".to_string(),
        format!(
            "SELECT code, owner FROM accounts WHERE code = {}",
            quote(&quoted_code)
        ),
    ] {
        out.push(Query::new(cat, sql));
    }
    out.push(
        Query::new(cat, "SELECT id, name FROM customers WHERE id = $1")
            .with_params(vec![Param::TextFormat(format!(" {id}"))]),
    );
    out.push(
        Query::new(cat, "SELECT code, balance FROM accounts WHERE code = $1")
            .with_params(vec![Param::TextFormat(g.account_code())]),
    );
}

/// Two existing values of `pick`, smaller first.
fn ordered_pair(g: &mut Gen, mut pick: impl FnMut(&mut Gen) -> i64) -> (i64, i64) {
    let (a, b) = (pick(g), pick(g));
    (a.min(b), a.max(b))
}

/// Range predicates on keys (hash: fan-out; range strategy: the shards the
/// range overlaps) and on other columns.
pub fn ranges(g: &mut Gen, out: &mut Vec<Query>) {
    let cat = Category::Range;
    for _ in 0..4 {
        let (a, b) = ordered_pair(g, |g| g.customer().id);
        out.push(Query::new(
            cat,
            format!("SELECT id, name, credit FROM customers WHERE id BETWEEN {a} AND {b}"),
        ));
        out.push(
            Query::new(
                cat,
                format!("SELECT id, tier FROM customers WHERE id >= {a} AND id < {b} ORDER BY id"),
            )
            .total(),
        );
        let credit = sql::format_cents(g.rng.between(-500_000, 10_000_000));
        out.push(Query::new(
            cat,
            format!("SELECT id, region FROM customers WHERE credit > {credit}"),
        ));
        out.push(
            Query::new(
                cat,
                format!(
                    "SELECT id, credit FROM customers WHERE credit <= {credit} ORDER BY credit, id"
                ),
            )
            .total(),
        );
        let (low, high) = ordered_pair(g, |g| g.rng.between(-500_000, 10_000_000));
        out.push(
            Query::new(
                cat,
                "SELECT id, credit FROM customers WHERE credit BETWEEN $1 AND $2",
            )
            .with_params(vec![
                Param::TextFormat(sql::format_cents(low)),
                Param::TextFormat(sql::format_cents(high)),
            ]),
        );
        let first = g.rng.between(500, 1500);
        let last = first + g.rng.between(1, 1200);
        out.push(
            Query::new(cat, format!("SELECT entry, account, delta FROM ledger WHERE entry >= {first} AND entry < {last} ORDER BY entry"))
                .total(),
        );
        out.push(
            Query::new(
                cat,
                "SELECT entry, delta FROM ledger WHERE entry BETWEEN $1 AND $2",
            )
            .with_params(vec![Param::Int4(first as i32), Param::Int4(last as i32)]),
        );
        out.push(Query::new(
            cat,
            format!("SELECT entry, booked FROM ledger WHERE entry > {last} AND delta < 0"),
        ));
        let (t1, t2) = ordered_pair(g, |g| g.rng.between(PLACED.0, PLACED.1));
        out.push(Query::new(
            cat,
            format!(
                "SELECT id, customer_id, amount FROM orders WHERE placed >= {} AND placed < {}",
                sql::timestamptz(Some(t1)),
                sql::timestamptz(Some(t2))
            ),
        ));
        let (c1, c2) = (g.account_code(), g.account_code());
        let (c1, c2) = (c1.clone().min(c2.clone()), c1.max(c2));
        out.push(Query::new(
            cat,
            format!(
                "SELECT code, balance FROM accounts WHERE code >= {} AND code < {}",
                quote(&c1),
                quote(&c2)
            ),
        ));
        let (n1, n2) = ordered_pair(g, |g| g.rng.between(-1000, 1000));
        out.push(Query::new(
            cat,
            format!("SELECT id, n FROM events WHERE n BETWEEN {n1} AND {n2}"),
        ));
        let (d1, d2) = ordered_pair(g, |g| g.rng.between(DAYS.0, DAYS.1));
        out.push(Query::new(
            cat,
            format!(
                "SELECT id, created FROM customers WHERE created BETWEEN {} AND {}",
                sql::date(Some(d1)),
                sql::date(Some(d2))
            ),
        ));
        out.push(Query::new(
            cat,
            "SELECT id, name FROM customers WHERE name >= 'Z' AND name < 'ä'",
        ));
        out.push(
            Query::new(
                cat,
                "SELECT customer_id, id, amount FROM orders WHERE customer_id > $1 AND amount < $2",
            )
            .with_params(vec![
                Param::Int8(a),
                Param::TextFormat(sql::format_cents(g.rng.between(-50_000, 100_000))),
            ]),
        );
    }
}

/// IN lists of keys spanning shards, `= ANY($1)`, and IN on other columns.
pub fn in_lists(g: &mut Gen, out: &mut Vec<Query>) {
    let cat = Category::InList;
    for _ in 0..4 {
        let n = 2 + g.rng.below(11);
        let ids = g.list(n, |g| g.customer_id().to_string());
        out.push(Query::new(
            cat,
            format!("SELECT id, name, tier FROM customers WHERE id IN ({ids})"),
        ));
        out.push(
            Query::new(
                cat,
                format!(
                    "SELECT id, name, tier FROM customers WHERE id IN ({ids}) ORDER BY id DESC"
                ),
            )
            .total(),
        );
        out.push(Query::new(
            cat,
            format!("SELECT count(*), sum(credit), max(name) FROM customers WHERE id IN ({ids})"),
        ));
        out.push(
            Query::new(cat, format!("SELECT customer_id, id, amount FROM orders WHERE customer_id IN ({ids}) ORDER BY customer_id, id"))
                .total(),
        );
        out.push(
            Query::new(
                cat,
                "SELECT id, credit FROM customers WHERE id IN ($1, $2, $3, $4)",
            )
            .with_params((0..4).map(|_| Param::Int8(g.customer_id())).collect()),
        );
        out.push(
            Query::new(cat, "SELECT id, region FROM customers WHERE id = ANY($1)")
                .with_params(vec![Param::Int8Array(g.customer_ids(n))]),
        );
        let events = g.list(n, |g| sql::uuid(&g.event_id()));
        out.push(Query::new(
            cat,
            format!("SELECT id, kind FROM events WHERE id IN ({events})"),
        ));
        let codes = g.list(n, |g| quote(&g.account_code()));
        out.push(Query::new(
            cat,
            format!("SELECT code, owner FROM accounts WHERE code IN ({codes})"),
        ));
        let entries = g.list(n, |g| g.ledger_entry().to_string());
        out.push(Query::new(
            cat,
            format!("SELECT entry, delta FROM ledger WHERE entry IN ({entries})"),
        ));
        out.push(Query::new(
            cat,
            format!("SELECT id FROM customers WHERE id IN ({})", g.customer_id()),
        ));
        let regions = g.list(2, |g| g.quoted(&REGIONS));
        out.push(Query::new(
            cat,
            format!(
                "SELECT id, name FROM customers WHERE region IN ({regions}) AND tier NOT IN (1, 2)"
            ),
        ));
        out.push(Query::new(cat, "SELECT id, status FROM orders WHERE status IN ('paid', 'Shipped', 'été') AND qty IN (1, 2, 3)"));
    }
}
