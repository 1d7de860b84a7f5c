//! One line out of an `EXPLAIN (FORMAT JSON)` plan for `SHOW SLOW`:
//! `Limit > Index Scan using t_pkey on t (cost=0.29..8.30 rows=1)`.
//!
//! Nodes are named as Postgres' text format names them; a node with one
//! child is followed by ` > child`, one with several children lists them
//! in brackets. The estimate (and with ANALYZE the actual time and rows)
//! of the whole plan closes the line.

use std::fmt::Write as _;

use serde_json::Value;

/// Longest summary before the tree is cut off with `…`.
const MAX_TREE_CHARS: usize = 240;

/// Deepest node described (plans are rarely deeper; a hostile one could be).
const MAX_DEPTH: usize = 64;

/// The summary of `explain`, the JSON EXPLAIN returned (an array of one
/// object with a `Plan`); `None` when it has no plan.
pub fn summarize(explain: &Value) -> Option<String> {
    let top = explain.get(0).unwrap_or(explain);
    let plan = top.get("Plan")?;
    let mut out = String::new();
    describe(plan, 0, &mut out);
    if out.len() > MAX_TREE_CHARS {
        let cut = super::stats::truncate(&out, MAX_TREE_CHARS).len();
        out.truncate(cut);
        out.push('…');
    }
    let number = |node: &Value, key: &str| node.get(key).and_then(Value::as_f64);
    if let (Some(startup), Some(total), Some(rows)) = (
        number(plan, "Startup Cost"),
        number(plan, "Total Cost"),
        number(plan, "Plan Rows"),
    ) {
        let _ = write!(out, " (cost={startup:.2}..{total:.2} rows={rows:.0})");
    }
    if let Some(rows) = number(plan, "Actual Rows") {
        let time = number(top, "Execution Time").or_else(|| number(plan, "Actual Total Time"));
        match time {
            Some(ms) => {
                let _ = write!(out, " (actual time={ms:.3} ms rows={rows:.0})");
            }
            None => {
                let _ = write!(out, " (actual rows={rows:.0})");
            }
        }
    }
    Some(out)
}

/// Appends `node` and its children to `out`, stopping early once the line
/// is long enough.
fn describe(node: &Value, depth: usize, out: &mut String) {
    if out.len() > MAX_TREE_CHARS || depth >= MAX_DEPTH {
        return;
    }
    out.push_str(&label(node));
    let children = node
        .get("Plans")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    match children {
        [] => {}
        [only] => {
            out.push_str(" > ");
            describe(only, depth + 1, out);
        }
        several => {
            out.push_str(" [");
            for (i, child) in several.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                describe(child, depth + 1, out);
            }
            out.push(']');
        }
    }
}

/// A node's name as `EXPLAIN`'s text format prints it.
fn label(node: &Value) -> String {
    let text = |key: &str| node.get(key).and_then(Value::as_str);
    let node_type = text("Node Type").unwrap_or("?");
    let mut label = match node_type {
        "ModifyTable" => text("Operation").unwrap_or(node_type).to_string(),
        "Aggregate" => match text("Strategy") {
            Some("Hashed") => "HashAggregate".to_string(),
            Some("Sorted") => "GroupAggregate".to_string(),
            Some("Mixed") => "MixedAggregate".to_string(),
            _ => "Aggregate".to_string(),
        },
        _ => node_type.to_string(),
    };
    if let Some(join) = text("Join Type").filter(|j| *j != "Inner") {
        label = match label.strip_suffix(" Join") {
            Some(kind) => format!("{kind} {join} Join"),
            None => format!("{label} {join} Join"),
        };
    }
    if let Some(index) = text("Index Name") {
        let _ = write!(label, " using {index}");
    }
    let target = text("Relation Name")
        .or_else(|| text("Function Name"))
        .or_else(|| text("CTE Name"));
    if let Some(target) = target {
        let _ = write!(label, " on {target}");
        if let Some(alias) = text("Alias").filter(|a| *a != target) {
            let _ = write!(label, " {alias}");
        }
    }
    label
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::summarize;

    #[test]
    fn a_chain_of_single_children_reads_top_down() {
        let plan = json!([{"Plan": {
            "Node Type": "Limit", "Startup Cost": 0.29, "Total Cost": 8.30, "Plan Rows": 1,
            "Plans": [{"Node Type": "Index Scan", "Index Name": "t_pkey",
                       "Relation Name": "t", "Alias": "t",
                       "Startup Cost": 0.29, "Total Cost": 8.30, "Plan Rows": 1}]
        }}]);
        assert_eq!(
            summarize(&plan).unwrap(),
            "Limit > Index Scan using t_pkey on t (cost=0.29..8.30 rows=1)"
        );
    }

    #[test]
    fn joins_aggregates_and_writes_are_named_as_postgres_names_them() {
        let plan = json!([{"Plan": {
            "Node Type": "Aggregate", "Strategy": "Hashed",
            "Startup Cost": 10.0, "Total Cost": 20.5, "Plan Rows": 200,
            "Plans": [{"Node Type": "Hash Join", "Join Type": "Left", "Plans": [
                {"Node Type": "Seq Scan", "Relation Name": "orders", "Alias": "o"},
                {"Node Type": "Hash", "Plans": [
                    {"Node Type": "Function Scan", "Function Name": "generate_series", "Alias": "g"}
                ]}
            ]}]
        }}]);
        assert_eq!(
            summarize(&plan).unwrap(),
            "HashAggregate > Hash Left Join [Seq Scan on orders o, Hash > Function Scan on \
             generate_series g] (cost=10.00..20.50 rows=200)"
        );
        let insert = json!([{"Plan": {"Node Type": "ModifyTable", "Operation": "Insert",
            "Relation Name": "t", "Alias": "t", "Plans": [{"Node Type": "Result"}]}}]);
        assert_eq!(summarize(&insert).unwrap(), "Insert on t > Result");
        let anti = json!({"Plan": {"Node Type": "Nested Loop", "Join Type": "Anti"}});
        assert_eq!(summarize(&anti).unwrap(), "Nested Loop Anti Join");
    }

    #[test]
    fn analyzed_plans_add_actual_time_and_rows() {
        let plan = json!([{"Plan": {
            "Node Type": "Result", "Startup Cost": 0.0, "Total Cost": 0.01, "Plan Rows": 1,
            "Actual Total Time": 300.2, "Actual Rows": 1
        }, "Execution Time": 300.512}]);
        assert_eq!(
            summarize(&plan).unwrap(),
            "Result (cost=0.00..0.01 rows=1) (actual time=300.512 ms rows=1)"
        );
    }

    #[test]
    fn huge_or_odd_plans_stay_one_short_line() {
        let mut node = json!({"Node Type": "Seq Scan", "Relation Name": "leaf"});
        for _ in 0..200 {
            node = json!({"Node Type": "Subquery Scan", "Plans": [node]});
        }
        let summary = summarize(&json!([{"Plan": node}])).unwrap();
        assert!(
            summary.ends_with('…') && summary.chars().count() < 260,
            "{summary}"
        );
        assert_eq!(summarize(&json!([{"Plan": {}}])).unwrap(), "?");
        assert_eq!(summarize(&json!("no plan")), None);
        assert_eq!(summarize(&json!([])), None);
    }
}
