//! ORDER BY over several columns with directions and NULLS FIRST/LAST:
//! the proxy's k-way merge of sorted shard results, with LIMIT/OFFSET
//! applied after merging, sort keys outside the select list, and ties.

use super::super::dataset::STATUSES;
use super::super::params::Param;
use super::{Category, Gen, Query};

/// Random sorts over every table, then fixed shapes.
pub fn order_bys(g: &mut Gen, out: &mut Vec<Query>) {
    let cat = Category::OrderBy;
    for _ in 0..44 {
        let table = g.table();
        let orderable = table.orderable();
        let n = 1 + g.rng.below(3);
        let keys = g.rng.sample(&orderable, n);
        let key_names: Vec<&str> = keys.iter().map(|c| c.name).collect();
        let mut select: Vec<&str> = key_names.clone();
        let extra = g.rng.pick(table.cols).name;
        if !select.contains(&extra) {
            select.push(extra);
        }
        let filter = g.maybe_where(table);
        let query = match g.rng.below(3) {
            // Ties possible: the sort keys are checked in order, the rows
            // as a multiset.
            0 => {
                let selected = g.rng.sample(&select, select.len());
                let positions: Vec<usize> = key_names
                    .iter()
                    .map(|k| {
                        selected
                            .iter()
                            .position(|s| s == k)
                            .expect("sort keys are selected")
                    })
                    .collect();
                let items: Vec<String> = key_names
                    .iter()
                    .zip(&positions)
                    .map(|(k, &p)| g.sort_item(k, p))
                    .collect();
                Query::new(
                    cat,
                    format!(
                        "SELECT {} FROM {}{filter} ORDER BY {}",
                        selected.join(", "),
                        table.name,
                        items.join(", ")
                    ),
                )
                .sorted_by(positions)
            }
            // Ended by the unique column: a total order, so LIMIT/OFFSET are
            // deterministic.
            1 => {
                if !select.contains(&table.unique) {
                    select.push(table.unique);
                }
                let mut items: Vec<String> = key_names.iter().map(|k| g.sort_term(k)).collect();
                items.push(g.sort_term(table.unique));
                let limit = g.limit_offset();
                Query::new(
                    cat,
                    format!(
                        "SELECT {} FROM {}{filter} ORDER BY {}{limit}",
                        select.join(", "),
                        table.name,
                        items.join(", ")
                    ),
                )
                .total()
            }
            // Sort keys the select list lacks (the proxy adds hidden ones).
            _ => {
                let mut items: Vec<String> = key_names.iter().map(|k| g.sort_term(k)).collect();
                items.push(g.sort_term(table.unique));
                let limit = g.limit_offset();
                Query::new(
                    cat,
                    format!(
                        "SELECT {}, {extra} FROM {}{filter} ORDER BY {}{limit}",
                        table.unique,
                        table.name,
                        items.join(", ")
                    ),
                )
                .total()
            }
        };
        out.push(query);
    }
    out.push(
        Query::new(cat, "SELECT id, name, credit FROM customers ORDER BY credit DESC NULLS LAST, id LIMIT $1 OFFSET $2")
            .total()
            .with_params(vec![Param::Int8(g.rng.between(0, 30)), Param::Int8(g.rng.between(0, 30))]),
    );
    out.push(
        Query::new(
            cat,
            "SELECT id, amount FROM orders WHERE status = $1 ORDER BY amount, id LIMIT $2",
        )
        .total()
        .with_params(vec![
            Param::Text(g.rng.pick(&STATUSES).to_string()),
            Param::Int8(g.rng.between(1, 30)),
        ]),
    );
    let status = g.quoted(&STATUSES);
    for sql in [
        "SELECT * FROM customers ORDER BY 4 DESC NULLS LAST, 1 LIMIT 30".to_string(),
        "SELECT code, owner FROM accounts ORDER BY owner NULLS FIRST, code DESC".to_string(),
        "SELECT id, kind, n FROM events ORDER BY n DESC, id LIMIT 25 OFFSET 5".to_string(),
        "SELECT id, placed FROM orders ORDER BY placed NULLS FIRST, id LIMIT 0".to_string(),
        "SELECT entry, delta FROM ledger ORDER BY entry DESC LIMIT 10".to_string(),
        "SELECT id, name FROM customers ORDER BY id LIMIT ALL".to_string(),
        "SELECT id, credit * 2 AS double_credit FROM customers ORDER BY double_credit DESC NULLS LAST, id LIMIT 10".to_string(),
        "SELECT id, lower(name) AS lname FROM customers ORDER BY lower(name), id LIMIT 20".to_string(),
        format!("SELECT customer_id, id, placed FROM orders WHERE status = {status} ORDER BY placed DESC, customer_id, id"),
    ] {
        out.push(Query::new(cat, sql).total());
    }
}
