//! Table-driven routing tests against a hand-built shard map of three
//! shards (config indexes 0, 1, 2; default shard 0; 12 hash buckets, four
//! per shard).
//!
//! SQL texts use placeholders for key values known to land on a given
//! shard, found with the Postgres partition hash itself: `{A}`, `{A2}`
//! (bigint keys on shard 0), `{B}`, `{B2}` (shard 1), `{C}` (shard 2),
//! `{N}` (a negative key on shard 2), `{TA}`/`{TB}`/`{TC}` (text keys on
//! shards 0/1/2) and `{UA}`/`{UB}`/`{UC}` (uuids on shards 0/1/2).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use sqlparser::ast::Query;

use crate::scatter::{ColumnMerge, MergeSpec, ScatterPlan, SortKey};
use crate::sharding::hash::{KeyValue, parse_uuid, partition_hash};
use crate::sharding::map::{KeyType, OwnedKey, RangeRule, ShardMap, ShardedTable, Strategy};

use super::analysis::analyze_with;
use super::readwrite::ReadOnlyFunctions;
use super::*;

const BUCKETS: u32 = 12;
const OWNER: [usize; 12] = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2];
const ALL: [usize; 3] = [0, 1, 2];

fn hashed(table: &str, key: &str, key_type: KeyType, group: &str) -> ShardedTable {
    ShardedTable {
        name: table.to_string(),
        key_column: key.to_string(),
        key_type,
        strategy: Strategy::Hash,
        group: group.to_string(),
    }
}

fn test_map(allow_keyless_writes: bool) -> ShardMap {
    let range = |from: Option<i64>, to: Option<i64>, shard| RangeRule {
        from: from.map(OwnedKey::Int),
        to: to.map(OwnedKey::Int),
        shard,
    };
    let tables = [
        hashed(
            "public.customers",
            "customer_id",
            KeyType::Bigint,
            "customers",
        ),
        hashed("public.orders", "customer_id", KeyType::Bigint, "customers"),
        hashed(
            "sales.invoices",
            "customer_id",
            KeyType::Bigint,
            "customers",
        ),
        hashed("public.events", "tenant", KeyType::Text, "events"),
        hashed("public.sessions", "session_id", KeyType::Uuid, "sessions"),
        hashed("public.Accounts", "AccountId", KeyType::Integer, "Accounts"),
        ShardedTable {
            name: "public.metrics".into(),
            key_column: "ts".into(),
            key_type: KeyType::Bigint,
            strategy: Strategy::Range(vec![
                range(None, Some(1000), 0),
                range(Some(1000), Some(2000), 1),
                range(Some(2000), None, 2),
            ]),
            group: "metrics".into(),
        },
        ShardedTable {
            name: "public.stores".into(),
            key_column: "region".into(),
            key_type: KeyType::Text,
            strategy: Strategy::List {
                values: HashMap::from([("eu".into(), 0), ("us".into(), 1), ("apac".into(), 2)]),
                default: None,
            },
            group: "stores".into(),
        },
    ];
    ShardMap {
        version: 7,
        shards: ALL.to_vec(),
        default_shard: 0,
        buckets: BUCKETS,
        bucket_owner: OWNER.to_vec(),
        tables: tables.into_iter().map(|t| (t.name.clone(), t)).collect(),
        reference_tables: vec!["public.countries".into(), "public.currencies".into()],
        allow_keyless_writes,
    }
}

fn shard_of(value: KeyValue) -> usize {
    OWNER[(partition_hash(&[value]) % u64::from(BUCKETS)) as usize]
}

fn int_key(shard: usize, nth: usize, negative: bool) -> i64 {
    (1..)
        .map(|i: i64| if negative { -i } else { i })
        .filter(|&k| shard_of(KeyValue::Int8(k)) == shard)
        .nth(nth)
        .unwrap_or_default()
}

fn text_key(shard: usize) -> String {
    (1..)
        .map(|i| format!("tenant-{i}"))
        .find(|k| shard_of(KeyValue::Text(k)) == shard)
        .unwrap_or_default()
}

fn uuid_key(shard: usize) -> String {
    (1..)
        .map(|i: u32| format!("00000000-0000-0000-0000-{i:012}"))
        .find(|k| parse_uuid(k).is_some_and(|u| shard_of(KeyValue::Uuid(u)) == shard))
        .unwrap_or_default()
}

/// The placeholder values, computed once.
fn keys() -> &'static Vec<(&'static str, String)> {
    static KEYS: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
    KEYS.get_or_init(|| {
        vec![
            ("{A2}", int_key(0, 1, false).to_string()),
            ("{B2}", int_key(1, 1, false).to_string()),
            ("{A}", int_key(0, 0, false).to_string()),
            ("{B}", int_key(1, 0, false).to_string()),
            ("{C}", int_key(2, 0, false).to_string()),
            ("{N}", int_key(2, 0, true).to_string()),
            ("{TA}", text_key(0)),
            ("{TB}", text_key(1)),
            ("{TC}", text_key(2)),
            ("{UA}", uuid_key(0)),
            ("{UB}", uuid_key(1)),
            ("{UC}", uuid_key(2)),
        ]
    })
}

fn fill(text: &str) -> String {
    keys()
        .iter()
        .fold(text.to_string(), |t, (name, value)| t.replace(name, value))
}

fn key_value(name: &str) -> String {
    fill(name)
}

/// A stand-in for the scatter planner: plans everything (ORDER BY makes a
/// merge that is not a concatenation) except `percentile_cont`.
fn fake_plan(query: &Query) -> Result<ScatterPlan, String> {
    let sql = query.to_string();
    if sql.contains("percentile_cont") {
        return Err("percentile_cont cannot be merged across shards".into());
    }
    let order_by = match query.order_by {
        Some(_) => vec![SortKey {
            column: 0,
            descending: false,
            nulls_first: false,
        }],
        None => Vec::new(),
    };
    Ok(ScatterPlan {
        wildcard_at: None,
        shard_sql: sql,
        visible_columns: 1,
        merge: MergeSpec {
            columns: vec![ColumnMerge::Group],
            order_by,
            ..MergeSpec::default()
        },
    })
}

/// The expected outcome of routing a statement.
#[derive(Debug, Clone, PartialEq)]
enum Want {
    S(usize),
    Scatter(Vec<usize>),
    /// AllShards, each shard's own rows.
    All(Vec<usize>),
    /// AllShards, the same copy on every shard.
    Copies(Vec<usize>),
    Concat(Vec<usize>),
    SplitCopy(Vec<usize>),
    /// (shard, original rows) per part.
    Split(Vec<(usize, Vec<usize>)>),
    /// The key position of this table must be learned first.
    NeedsKey(&'static str),
    Fails(&'static str),
}
use Want::*;

struct Case {
    sql: &'static str,
    params: Vec<Option<Vec<u8>>>,
    formats: Vec<i16>,
    session_shard: Option<usize>,
    session_key: Option<&'static str>,
    keyless: bool,
    want: Want,
}

fn case(sql: &'static str, want: Want) -> Case {
    Case {
        sql,
        params: Vec::new(),
        formats: Vec::new(),
        session_shard: None,
        session_key: None,
        keyless: false,
        want,
    }
}

impl Case {
    /// Text-format parameters (placeholders filled in).
    fn text(mut self, values: &[Option<&str>]) -> Self {
        self.params = values
            .iter()
            .map(|v| v.map(|v| fill(v).into_bytes()))
            .collect();
        self
    }

    /// Binary-format parameters.
    fn binary(mut self, values: Vec<Option<Vec<u8>>>) -> Self {
        self.params = values;
        self.formats = vec![1];
        self
    }

    /// Per-parameter formats.
    fn formats(mut self, formats: &[i16]) -> Self {
        self.formats = formats.to_vec();
        self
    }

    fn session_shard(mut self, shard: usize) -> Self {
        self.session_shard = Some(shard);
        self
    }

    fn session_key(mut self, key: &'static str) -> Self {
        self.session_key = Some(key);
        self
    }

    fn keyless(mut self) -> Self {
        self.keyless = true;
        self
    }
}

fn int8(name: &str) -> Option<Vec<u8>> {
    Some(
        key_value(name)
            .parse::<i64>()
            .unwrap()
            .to_be_bytes()
            .to_vec(),
    )
}

fn int4(name: &str) -> Option<Vec<u8>> {
    Some(
        key_value(name)
            .parse::<i32>()
            .unwrap()
            .to_be_bytes()
            .to_vec(),
    )
}

fn uuid_bytes(name: &str) -> Option<Vec<u8>> {
    parse_uuid(&key_value(name)).map(|u| u.to_vec())
}

fn shard_names() -> Vec<String> {
    vec!["shard_a".into(), "shard_b".into(), "shard_c".into()]
}

/// Routes the (single) statement of a case.
fn run(case: &Case) -> Result<Route, crate::net::messages::PgError> {
    let map = test_map(case.keyless);
    let sql = fill(case.sql);
    let analysis = analyze_with(&sql, &map, fake_plan, &ReadOnlyFunctions::default());
    assert_eq!(analysis.statements.len(), 1, "{sql}: one statement");
    let params: Vec<Option<&[u8]>> = case.params.iter().map(|p| p.as_deref()).collect();
    let session_key = case.session_key.map(fill);
    let names = shard_names();
    let input = RouteInput {
        params: &params,
        param_formats: &case.formats,
        session_shard: case.session_shard,
        session_key: session_key.as_deref(),
        shard_names: &names,
        key_positions: None,
    };
    route(
        &analysis.statements[0],
        analysis.hint.as_ref(),
        &input,
        &map,
    )
}

fn outcome(result: Result<Route, crate::net::messages::PgError>) -> Want {
    match result {
        Ok(Route::Single(shard)) => S(shard),
        Ok(Route::Scatter { shards, .. }) => Scatter(shards),
        Ok(Route::AllShards {
            shards,
            replicated: false,
        }) => All(shards),
        Ok(Route::AllShards {
            shards,
            replicated: true,
        }) => Copies(shards),
        Ok(Route::Concat { shards }) => Concat(shards),
        Ok(Route::SplitCopy { shards }) => SplitCopy(shards),
        Ok(Route::SplitInsert { parts }) => {
            Split(parts.into_iter().map(|p| (p.shard, p.rows)).collect())
        }
        Ok(Route::NeedsKeyPosition { table }) => NeedsKey(if table == "public.orders" {
            "public.orders"
        } else {
            "other"
        }),
        Err(error) => Fails(match error.code.as_str() {
            "0A000" => "0A000",
            "22P02" => "22P02",
            "22023" => "22023",
            "22021" => "22021",
            "22003" => "22003",
            _ => "other",
        }),
    }
}

fn reads() -> Vec<Case> {
    vec![
        // Equality on the key, in every spelling.
        case("SELECT * FROM orders WHERE customer_id = {B}", S(1)),
        case("select * from ORDERS where CUSTOMER_ID = {C}", S(2)),
        case("SELECT * FROM public.orders o WHERE o.customer_id = {A}", S(0)),
        case("SELECT * FROM Public.Orders AS o WHERE O.Customer_Id = {B}", S(1)),
        case("SELECT * FROM orders WHERE {B} = customer_id", S(1)),
        case("SELECT * FROM orders WHERE customer_id = '{B}'", S(1)),
        case("SELECT * FROM orders WHERE customer_id = '{B}'::bigint", S(1)),
        case("SELECT * FROM orders WHERE customer_id = CAST('{C}' AS BIGINT)", S(2)),
        case("SELECT * FROM orders WHERE customer_id = {C}::int8", S(2)),
        case("SELECT * FROM orders WHERE customer_id = {N}", S(2)),
        case("SELECT * FROM orders WHERE (customer_id = {B})", S(1)),
        case("SELECT * FROM orders WHERE ((customer_id) = ({A}))", S(0)),
        case("SELECT * FROM orders WHERE orders.customer_id = {B}", S(1)),
        case("SELECT * FROM orders WHERE public.orders.customer_id = {B}", S(1)),
        // Parameters.
        case("SELECT * FROM orders WHERE customer_id = $1", S(1)).text(&[Some("{B}")]),
        case("SELECT * FROM orders WHERE customer_id = $2 AND note = $1", S(2))
            .text(&[Some("x"), Some("{C}")]),
        case("SELECT * FROM orders WHERE customer_id = $1", S(1)).binary(vec![int8("{B}")]),
        case("SELECT * FROM orders WHERE customer_id = $1::int", S(2)).binary(vec![int4("{C}")]),
        case("SELECT * FROM orders WHERE customer_id = CAST($1 AS bigint)", S(0))
            .text(&[Some("{A}")]),
        case("SELECT * FROM orders WHERE note = $1 AND customer_id = $2", S(1))
            .binary(vec![Some(b"x".to_vec()), int8("{B}")])
            .formats(&[0, 1]),
        case("SELECT * FROM orders WHERE customer_id = $1", Scatter(ALL.to_vec())),
        case("SELECT * FROM orders WHERE customer_id = $1", S(0)).text(&[None]),
        case("SELECT * FROM orders WHERE customer_id = $1", Fails("22P02")).text(&[Some("abc")]),
        case("SELECT * FROM orders WHERE customer_id = $1", Fails("22P02"))
            .binary(vec![Some(vec![1, 2, 3])]),
        case("SELECT * FROM orders WHERE customer_id = $1", Fails("22021"))
            .text(&[Some("\u{0}")])
            .binary(vec![Some(vec![0xff, 0xfe])])
            .formats(&[0]),
        // NULL and impossible keys.
        case("SELECT * FROM orders WHERE customer_id = NULL", S(0)),
        case("SELECT * FROM orders WHERE customer_id = 'abc'", Fails("22P02")),
        case("SELECT * FROM orders WHERE customer_id = 4.5", Scatter(ALL.to_vec())),
        case("SELECT * FROM orders WHERE customer_id = 1e3", Scatter(ALL.to_vec())),
        case("SELECT * FROM orders WHERE customer_id = 99999999999999999999", S(0)),
        case(r#"SELECT * FROM "Accounts" WHERE "AccountId" = 3000000000"#, S(0)),
        case(r#"SELECT * FROM "Accounts" WHERE "AccountId" = '3000000000'"#, Fails("22003")),
        case(r#"SELECT * FROM "Accounts" WHERE "AccountId" = 'x1'"#, Fails("22P02")),
        case(
            "SELECT * FROM orders o1 JOIN orders o2 ON o1.customer_id = o2.customer_id",
            Scatter(ALL.to_vec()),
        ),
        case("SELECT * FROM orders WHERE customer_id = {A} AND customer_id = {B}", S(0)),
        // IN lists, AND, OR.
        case("SELECT * FROM orders WHERE customer_id IN ({A}, {A2})", S(0)),
        case("SELECT * FROM orders WHERE customer_id IN ({A}, {B})", Scatter(vec![0, 1])),
        case("SELECT * FROM orders WHERE customer_id IN ($1, $2, {C})", Scatter(ALL.to_vec()))
            .text(&[Some("{A}"), Some("{B}")]),
        case("SELECT * FROM orders WHERE customer_id IN ($1, $2)", S(1))
            .text(&[Some("{B}"), Some("{B2}")]),
        case("SELECT * FROM orders WHERE customer_id IN ($1, NULL)", S(2)).text(&[Some("{C}")]),
        case("SELECT * FROM orders WHERE customer_id NOT IN ({A})", Scatter(ALL.to_vec())),
        case("SELECT * FROM orders WHERE customer_id = {A} AND status = 'open'", S(0)),
        case("SELECT * FROM orders WHERE status = 'open' AND customer_id = {B}", S(1)),
        case(
            "SELECT * FROM orders WHERE customer_id = {A} OR customer_id = {B}",
            Scatter(vec![0, 1]),
        ),
        case("SELECT * FROM orders WHERE customer_id = {A} OR status = 'x'", Scatter(ALL.to_vec())),
        case(
            "SELECT * FROM orders WHERE (customer_id = {A} OR customer_id = {A2}) AND status = 'x'",
            S(0),
        ),
        case(
            "SELECT * FROM orders WHERE customer_id IN ({A}, {B}) AND customer_id IN ({B}, {C})",
            S(1),
        ),
        case("SELECT * FROM orders WHERE NOT (customer_id = {B})", Scatter(ALL.to_vec())),
        case("SELECT * FROM orders WHERE customer_id <> {B}", Scatter(ALL.to_vec())),
        case("SELECT * FROM orders WHERE customer_id > {B}", Scatter(ALL.to_vec())),
        case("SELECT * FROM orders WHERE customer_id::text = '{B}'", Scatter(ALL.to_vec())),
        case("SELECT * FROM orders WHERE customer_id = {B} + 0", Scatter(ALL.to_vec())),
        // Scatter reads and planning.
        case("SELECT * FROM orders", Scatter(ALL.to_vec())),
        case("SELECT count(*) FROM orders", Scatter(ALL.to_vec())),
        case("SELECT * FROM orders ORDER BY id LIMIT 10", Scatter(ALL.to_vec())),
        case(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY amount) FROM orders",
            Fails("0A000"),
        ),
        case(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY amount) FROM orders WHERE customer_id = {C}",
            S(2),
        ),
        case("SELECT * FROM orders WHERE customer_id = {B} FOR UPDATE", S(1)),
        // No sharded table.
        case("SELECT 1", S(0)),
        case("SELECT now()", S(0)),
        case("VALUES (1), (2)", S(0)),
        case("SHOW search_path", S(0)),
        case("SELECT * FROM countries", S(0)),
        case("SELECT * FROM settings", S(0)),
        case("SELECT * FROM countries c JOIN currencies cu ON c.code = cu.country", S(0)),
        case("SELECT * FROM settings s JOIN countries c ON s.country = c.code", S(0)),
        // Reference tables join anything.
        case(
            "SELECT * FROM orders o JOIN countries c ON o.country = c.code WHERE o.customer_id = {C}",
            S(2),
        ),
        case("SELECT * FROM orders o JOIN countries c ON o.country = c.code", Scatter(ALL.to_vec())),
        // Co-located joins.
        case(
            "SELECT * FROM customers c JOIN orders o ON o.customer_id = c.customer_id WHERE c.customer_id = {B}",
            S(1),
        ),
        case(
            "SELECT * FROM customers c JOIN orders o ON o.customer_id = c.customer_id WHERE o.customer_id = {C}",
            S(2),
        ),
        case(
            "SELECT * FROM customers c INNER JOIN orders o ON c.customer_id = o.customer_id",
            Scatter(ALL.to_vec()),
        ),
        case(
            "SELECT * FROM customers c, orders o WHERE c.customer_id = o.customer_id AND o.customer_id = $1",
            S(0),
        )
        .text(&[Some("{A}")]),
        case(
            "SELECT * FROM customers JOIN orders USING (customer_id) WHERE customer_id = {C}",
            S(2),
        ),
        case("SELECT * FROM customers JOIN orders USING (customer_id)", Scatter(ALL.to_vec())),
        case(
            "SELECT * FROM customers, orders JOIN sales.invoices USING (customer_id)",
            Fails("0A000"),
        ),
        case(
            "SELECT * FROM customers c JOIN (orders JOIN sales.invoices USING (customer_id)) ON c.customer_id = orders.customer_id",
            Scatter(ALL.to_vec()),
        ),
        case(
            "SELECT * FROM orders o JOIN sales.invoices i ON i.customer_id = o.customer_id WHERE o.customer_id = {C}",
            S(2),
        ),
        case(
            "SELECT * FROM customers c JOIN orders o ON o.customer_id = c.customer_id JOIN sales.invoices i ON i.customer_id = o.customer_id WHERE i.customer_id IN ({A}, {B})",
            Scatter(vec![0, 1]),
        ),
        case(
            "SELECT * FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND c.customer_id = {C}",
            S(2),
        ),
        // Outer joins: ON conditions do not restrict the preserved side.
        case(
            "SELECT * FROM customers c LEFT JOIN orders o ON o.customer_id = c.customer_id AND o.customer_id = {B}",
            Scatter(ALL.to_vec()),
        ),
        case(
            "SELECT * FROM customers c LEFT JOIN orders o ON o.customer_id = c.customer_id WHERE c.customer_id = {B}",
            S(1),
        ),
        case(
            "SELECT * FROM customers c LEFT OUTER JOIN orders o ON o.customer_id = c.customer_id WHERE o.customer_id = {A}",
            S(0),
        ),
        case(
            "SELECT * FROM customers c FULL JOIN orders o ON o.customer_id = c.customer_id",
            Scatter(ALL.to_vec()),
        ),
        case("SELECT * FROM orders o LEFT JOIN countries c ON c.code = o.country", Scatter(ALL.to_vec())),
        case("SELECT * FROM countries c LEFT JOIN orders o ON c.code = o.country", Fails("0A000")),
        case("SELECT * FROM orders o RIGHT JOIN countries c ON c.code = o.country", Fails("0A000")),
        case("SELECT * FROM orders o FULL JOIN countries c ON c.code = o.country", Fails("0A000")),
        case(
            "SELECT * FROM countries c LEFT JOIN orders o ON c.code = o.country WHERE o.customer_id = {B}",
            S(1),
        ),
        case(
            "SELECT * FROM generate_series(1, 3) g LEFT JOIN orders o ON o.id = g",
            Fails("0A000"),
        ),
        case(
            "SELECT * FROM (countries c LEFT JOIN currencies cu ON cu.country = c.code) JOIN orders o ON o.country = c.code",
            Scatter(ALL.to_vec()),
        ),
        // Not co-located.
        case("SELECT * FROM orders o JOIN events e ON e.tenant = o.note", Fails("0A000")),
        case(
            "SELECT * FROM customers c JOIN orders o ON c.customer_id = o.id",
            Fails("0A000"),
        ),
        case("SELECT * FROM customers, orders", Fails("0A000")),
        case(
            "SELECT * FROM orders o JOIN events e ON true WHERE o.customer_id = {B} AND e.tenant = '{TB}'",
            S(1),
        ),
        case(
            "SELECT * FROM orders o JOIN events e ON true WHERE o.customer_id = {B} AND e.tenant = '{TC}'",
            Fails("0A000"),
        ),
        case(
            "SELECT * FROM orders o JOIN events e ON e.tenant = o.note WHERE o.customer_id = {B}",
            Fails("0A000"),
        ),
        // Sharded with unsharded (default-shard) tables.
        case(
            "SELECT * FROM orders o JOIN settings s ON true WHERE o.customer_id = {A}",
            S(0),
        ),
        case(
            "SELECT * FROM orders o JOIN settings s ON true WHERE o.customer_id = {B}",
            Fails("0A000"),
        ),
        case("SELECT * FROM orders o JOIN settings s ON s.id = o.setting_id", Fails("0A000")),
        case(
            "SELECT * FROM customers WHERE customer_id = {B} AND x IN (SELECT y FROM settings WHERE customer_id = 5)",
            Fails("0A000"),
        ),
        // Subqueries and CTEs.
        case(
            "SELECT * FROM customers WHERE customer_id = {B} AND customer_id IN (SELECT customer_id FROM orders WHERE customer_id = {B})",
            S(1),
        ),
        case("SELECT * FROM countries WHERE code IN (SELECT country FROM orders)", Fails("0A000")),
        case(
            "SELECT * FROM countries WHERE code IN (SELECT country FROM orders WHERE customer_id = {C})",
            S(2),
        ),
        case(
            "SELECT * FROM customers c WHERE c.customer_id = {A} AND EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.customer_id)",
            S(0),
        ),
        case(
            "SELECT * FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.customer_id)",
            Fails("0A000"),
        ),
        case(
            "SELECT * FROM customers c WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.customer_id AND o.customer_id = {B})",
            Fails("0A000"),
        ),
        case(
            "SELECT (SELECT name FROM countries WHERE code = o.country) FROM orders o WHERE o.customer_id = {B}",
            S(1),
        ),
        case(
            "SELECT o.id, (SELECT count(*) FROM sales.invoices i WHERE i.customer_id = o.customer_id) FROM orders o WHERE o.customer_id = $1",
            S(2),
        )
        .text(&[Some("{C}")]),
        case(
            "WITH mine AS (SELECT * FROM orders WHERE customer_id = {B}) SELECT * FROM mine",
            S(1),
        ),
        case("WITH x AS (SELECT * FROM orders) SELECT count(*) FROM x", Fails("0A000")),
        case("WITH orders AS (SELECT 1 AS customer_id) SELECT * FROM orders", S(0)),
        case(
            "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 5) SELECT * FROM t",
            S(0),
        ),
        case("SELECT * FROM (SELECT * FROM orders WHERE customer_id = {C}) t", S(2)),
        case(
            "SELECT * FROM (SELECT * FROM orders) t WHERE t.customer_id = {C}",
            Fails("0A000"),
        ),
        case(
            "SELECT id FROM orders WHERE customer_id = {A} UNION SELECT id FROM customers WHERE customer_id = {A2}",
            S(0),
        ),
        case(
            "SELECT id FROM orders WHERE customer_id = {A} UNION ALL SELECT id FROM customers WHERE customer_id = {B}",
            Fails("0A000"),
        ),
        case("SELECT id FROM orders UNION SELECT id FROM customers", Fails("0A000")),
        case(
            "SELECT * FROM orders o, LATERAL (SELECT * FROM sales.invoices i WHERE i.customer_id = o.customer_id) x WHERE o.customer_id = {B}",
            S(1),
        ),
        case(
            "SELECT * FROM orders WHERE customer_id = {A} AND amount > (SELECT avg(amount) FROM orders)",
            Fails("0A000"),
        ),
        case(
            "SELECT * FROM customers c WHERE c.customer_id = {B} AND c.customer_id IN (SELECT o.customer_id FROM orders o WHERE o.customer_id = {B})",
            S(1),
        ),
        // Text, uuid, range and list keys.
        case("SELECT * FROM events WHERE tenant = '{TA}'", S(0)),
        case("SELECT * FROM events WHERE tenant = '{TB}'", S(1)),
        case("SELECT * FROM events WHERE tenant = E'{TC}'", S(2)),
        case("SELECT * FROM events WHERE tenant = $1", S(1)).text(&[Some("{TB}")]),
        case("SELECT * FROM events WHERE tenant = $1::text", S(2))
            .binary(vec![Some(key_value("{TC}").into_bytes())]),
        case("SELECT * FROM events WHERE tenant IN ('{TA}', '{TC}')", Scatter(vec![0, 2])),
        case("SELECT * FROM events WHERE tenant = '{TB}'::varchar", S(1)),
        case("SELECT * FROM events WHERE tenant = '{TB}xyz'::varchar(8)", Scatter(ALL.to_vec())),
        case("SELECT * FROM events WHERE tenant = '{TB}' COLLATE \"C\"", Scatter(ALL.to_vec())),
        case("SELECT * FROM sessions WHERE session_id = '{UB}'", S(1)),
        case("SELECT * FROM sessions WHERE session_id = '{UC}'::uuid", S(2)),
        case("SELECT * FROM sessions WHERE session_id = uuid '{UA}'", S(0)),
        case("SELECT * FROM sessions WHERE session_id = $1", S(1)).binary(vec![uuid_bytes("{UB}")]),
        case("SELECT * FROM sessions WHERE session_id = 'not-a-uuid'", Fails("22P02")),
        case("SELECT * FROM metrics WHERE ts = 5", S(0)),
        case("SELECT * FROM metrics WHERE ts = 1500", S(1)),
        case("SELECT * FROM metrics WHERE ts = 2500", S(2)),
        case("SELECT * FROM metrics WHERE ts IN (5, 1500)", Scatter(vec![0, 1])),
        case("SELECT * FROM metrics WHERE ts BETWEEN 1 AND 10", Scatter(ALL.to_vec())),
        case("SELECT * FROM stores WHERE region = 'us'", S(1)),
        case("SELECT * FROM stores WHERE region = 'mars'", S(0)),
        case("SELECT * FROM stores WHERE region IN ('eu', 'apac')", Scatter(vec![0, 2])),
        case("SELECT * FROM stores", Scatter(ALL.to_vec())),
        // Schemas and quoted names.
        case("SELECT * FROM sales.invoices WHERE customer_id = {B}", S(1)),
        case("SELECT * FROM SALES.INVOICES i WHERE i.customer_id = {C}", S(2)),
        case("SELECT * FROM sales.invoices WHERE sales.invoices.customer_id = {A}", S(0)),
        case("SELECT * FROM invoices WHERE customer_id = {B}", S(0)),
        case(r#"SELECT * FROM "Accounts" WHERE "AccountId" = {B}"#, S(1)),
        case(r#"SELECT * FROM public."Accounts" a WHERE a."AccountId" = $1"#, S(2))
            .binary(vec![int4("{C}")]),
        case(r#"SELECT * FROM "Accounts" WHERE AccountId = {B}"#, Scatter(ALL.to_vec())),
        case("SELECT * FROM accounts WHERE accountid = {B}", S(0)),
        case(r#"SELECT * FROM "orders" WHERE "customer_id" = {C}"#, S(2)),
        case(r#"SELECT * FROM "Orders" WHERE customer_id = {C}"#, S(0)),
        // EXPLAIN and cursors must stay on one shard.
        case("EXPLAIN SELECT * FROM orders WHERE customer_id = {B}", S(1)),
        case("EXPLAIN SELECT * FROM orders", Fails("0A000")),
        case("DECLARE c CURSOR FOR SELECT * FROM orders WHERE customer_id = {C}", S(2)),
        case("DECLARE c CURSOR FOR SELECT * FROM orders", Fails("0A000")),
        case("PREPARE p AS SELECT * FROM orders WHERE customer_id = $1", Fails("0A000")),
        case("PREPARE p AS SELECT 1", S(0)),
    ]
}

fn writes() -> Vec<Case> {
    vec![
        // INSERT.
        case("INSERT INTO orders (customer_id, note) VALUES ({B}, 'x')", S(1)),
        case("insert into ORDERS (NOTE, Customer_Id) values ('x', $1)", S(2)).text(&[Some("{C}")]),
        case("INSERT INTO orders (customer_id) VALUES ($1)", S(1)).binary(vec![int8("{B}")]),
        case("INSERT INTO public.orders AS o (customer_id) VALUES ({A})", S(0)),
        case("INSERT INTO orders (customer_id, note) VALUES ({A}, 'a'), ({A2}, 'b')", S(0)),
        case(
            "INSERT INTO orders (customer_id, note) VALUES ({A}, 'a'), ({B}, 'b'), ({A2}, 'c')",
            Split(vec![(0, vec![0, 2]), (1, vec![1])]),
        ),
        case(
            "INSERT INTO orders (customer_id, note) VALUES ($1, 'a'), ($2, 'b'), ($3, 'c') RETURNING id",
            Split(vec![(0, vec![0]), (1, vec![1]), (2, vec![2])]),
        )
        .text(&[Some("{A}"), Some("{B}"), Some("{C}")]),
        case("INSERT INTO orders VALUES ({B}, 'x')", NeedsKey("public.orders")),
        case("INSERT INTO orders VALUES ({B}, 'x')", S(2)).session_key("{C}"),
        case("/* shardwire: sharding_key={B} */ INSERT INTO orders VALUES ({B}, 'x')", S(1)),
        case("/* shardwire: shard=2 */ INSERT INTO orders VALUES ({B}, 'x')", S(2)),
        case("INSERT INTO orders VALUES ({B}, 'x')", S(1)).session_shard(1),
        case("INSERT INTO orders (note) VALUES ('x')", Fails("0A000")),
        case("INSERT INTO orders DEFAULT VALUES", Fails("0A000")),
        case("INSERT INTO orders (customer_id) VALUES (DEFAULT)", Fails("0A000")),
        case("INSERT INTO orders (customer_id) VALUES (nextval('ids'))", Fails("0A000")),
        case("INSERT INTO orders (customer_id) VALUES (4.5)", Fails("0A000")),
        case("INSERT INTO orders (customer_id) VALUES (NULL)", S(OWNER[0])),
        case("INSERT INTO orders (customer_id) VALUES ($1)", S(OWNER[0])).text(&[None]),
        case("INSERT INTO orders (customer_id) VALUES ('abc')", Fails("22P02")),
        case("INSERT INTO orders (customer_id) VALUES ($1)", Fails("0A000")),
        case("INSERT INTO metrics (ts, v) VALUES (1500, 1), (2500, 2)", Split(vec![(1, vec![0]), (2, vec![1])])),
        case("INSERT INTO stores (region, name) VALUES ('apac', 'x')", S(2)),
        case("INSERT INTO stores (region, name) VALUES ('mars', 'x')", Fails("22023")),
        case("INSERT INTO stores (region, name) VALUES (NULL, 'x')", Fails("22023")),
        case("INSERT INTO events (tenant, body) VALUES ('{TB}', '{}')", S(1)),
        case("INSERT INTO sessions (session_id) VALUES ('{UC}')", S(2)),
        case("INSERT INTO sessions (session_id) VALUES ('zzz')", Fails("22P02")),
        case(r#"INSERT INTO "Accounts" ("AccountId") VALUES ({C})"#, S(2)),
        case(
            "INSERT INTO orders (customer_id, id) VALUES ({B}, 1) ON CONFLICT (id) DO UPDATE SET customer_id = EXCLUDED.customer_id, note = 'again'",
            S(1),
        ),
        case(
            "INSERT INTO orders (customer_id, id) VALUES ({B}, 1) ON CONFLICT (id) DO UPDATE SET customer_id = 5",
            Fails("0A000"),
        ),
        case("INSERT INTO orders (customer_id, id) VALUES ({B}, 1) ON CONFLICT DO NOTHING", S(1)),
        case(
            "INSERT INTO orders (customer_id, country) VALUES ({C}, (SELECT code FROM countries LIMIT 1))",
            S(2),
        ),
        case(
            "INSERT INTO orders (customer_id, setting) VALUES ({C}, (SELECT id FROM settings LIMIT 1))",
            Fails("0A000"),
        ),
        case(
            "INSERT INTO orders (customer_id, setting) VALUES ({A}, (SELECT id FROM settings LIMIT 1))",
            S(0),
        ),
        case("INSERT INTO orders (customer_id) SELECT customer_id FROM customers", Fails("0A000")),
        case("INSERT INTO orders (customer_id) SELECT {B}", Fails("0A000")),
        case(
            "INSERT INTO orders (customer_id) SELECT customer_id FROM customers WHERE customer_id = {B}",
            S(1),
        )
        .session_key("{B}"),
        case("INSERT INTO orders (customer_id) SELECT customer_id FROM customers", S(2))
            .session_key("{C}"),
        case("INSERT INTO countries (code, name) VALUES ('fr', 'France')", Copies(ALL.to_vec())),
        case("INSERT INTO countries (code) SELECT code FROM currencies", Copies(ALL.to_vec())),
        case("INSERT INTO countries (code) SELECT country FROM orders", Fails("0A000")),
        case("INSERT INTO settings (k, v) VALUES ('a', 'b')", S(0)),
        case("INSERT INTO settings (k) SELECT code FROM countries", S(0)),
        case("INSERT INTO settings (k) SELECT note FROM orders WHERE customer_id = {B}", Fails("0A000")),
        case("INSERT INTO settings (k) SELECT note FROM orders WHERE customer_id = {A}", S(0)),
        // UPDATE.
        case("UPDATE orders SET note = 'x' WHERE customer_id = {B}", S(1)),
        case("update ORDERS o set NOTE = $2 where O.customer_id = $1", S(2))
            .text(&[Some("{C}"), Some("x")]),
        case("UPDATE orders SET note = 'x' WHERE id = 5", Fails("0A000")),
        case("UPDATE orders SET note = 'x' WHERE id = 5", All(ALL.to_vec())).keyless(),
        case("UPDATE orders SET note = 'x'", All(ALL.to_vec())).keyless(),
        case("UPDATE orders SET note = 'x' WHERE customer_id IN ({A}, {B})", All(vec![0, 1])),
        case("UPDATE orders SET customer_id = {B} WHERE customer_id = {B}", Fails("0A000")),
        case("UPDATE orders SET (note, customer_id) = ('x', 1) WHERE customer_id = {B}", Fails("0A000")),
        case("UPDATE orders SET note = 'x' WHERE customer_id = NULL", S(0)),
        case(
            "UPDATE orders o SET note = c.name FROM customers c WHERE c.customer_id = o.customer_id AND c.customer_id = {C}",
            S(2),
        ),
        case(
            "UPDATE orders o SET note = c.name FROM customers c WHERE c.customer_id = o.customer_id",
            Fails("0A000"),
        ),
        case(
            "UPDATE orders o SET note = c.name FROM customers c WHERE c.customer_id = o.customer_id",
            All(ALL.to_vec()),
        )
        .keyless(),
        case(
            "UPDATE orders o SET note = e.body FROM events e WHERE o.customer_id = {B}",
            Fails("0A000"),
        ),
        case(
            "UPDATE orders o SET note = e.body FROM events e WHERE o.customer_id = {B} AND e.tenant = '{TB}'",
            S(1),
        ),
        case(
            "UPDATE orders o SET country = c.code FROM countries c WHERE o.customer_id = {A} AND c.name = 'x'",
            S(0),
        ),
        case("UPDATE countries SET name = 'x' WHERE code = 'fr'", Copies(ALL.to_vec())),
        case("UPDATE countries c SET name = o.note FROM orders o WHERE o.customer_id = {B}", Fails("0A000")),
        case("UPDATE settings SET v = 'x'", S(0)),
        case("UPDATE settings SET v = (SELECT note FROM orders WHERE customer_id = {A})", S(0)),
        case("UPDATE settings SET v = (SELECT note FROM orders WHERE customer_id = {B})", Fails("0A000")),
        case("UPDATE metrics SET v = 0 WHERE ts = 1500", S(1)),
        case("UPDATE stores SET name = 'x' WHERE region = 'eu'", S(0)),
        case("UPDATE events SET body = 'x' WHERE tenant = $1", S(2)).text(&[Some("{TC}")]),
        // DELETE.
        case("DELETE FROM orders WHERE customer_id = {A}", S(0)),
        case("DELETE FROM orders o WHERE o.customer_id = $1 RETURNING *", S(1))
            .binary(vec![int8("{B}")]),
        case("DELETE FROM orders WHERE id = 5", Fails("0A000")),
        case("DELETE FROM orders", All(ALL.to_vec())).keyless(),
        case("DELETE FROM orders WHERE customer_id IN ({B}, {C})", All(vec![1, 2])),
        case(
            "DELETE FROM orders o USING customers c WHERE c.customer_id = o.customer_id AND c.customer_id = {B}",
            S(1),
        ),
        case(
            "DELETE FROM orders o WHERE EXISTS (SELECT 1 FROM customers c WHERE c.customer_id = o.customer_id AND c.blocked)",
            All(ALL.to_vec()),
        )
        .keyless(),
        case(
            "DELETE FROM orders o WHERE o.customer_id = {C} AND EXISTS (SELECT 1 FROM customers c WHERE c.customer_id = o.customer_id)",
            S(2),
        ),
        case(
            "DELETE FROM orders o WHERE o.customer_id = {C} AND o.country IN (SELECT code FROM countries)",
            S(2),
        ),
        case("DELETE FROM countries WHERE code = 'fr'", Copies(ALL.to_vec())),
        case("DELETE FROM settings WHERE k = 'a'", S(0)),
        // Data-modifying CTEs and MERGE.
        case(
            "WITH d AS (DELETE FROM orders WHERE customer_id = {B} RETURNING *) SELECT count(*) FROM d",
            S(1),
        ),
        case(
            "WITH d AS (DELETE FROM orders WHERE customer_id = {B} RETURNING *) INSERT INTO sales.invoices (customer_id) VALUES ({B2})",
            S(1),
        ),
        case(
            "WITH d AS (DELETE FROM orders WHERE customer_id = {B} RETURNING *) INSERT INTO sales.invoices (customer_id) VALUES ({C})",
            Fails("0A000"),
        ),
        case(
            "WITH d AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM d",
            Fails("0A000"),
        )
        .keyless(),
        case(
            "WITH d AS (UPDATE orders SET note = 'x' WHERE customer_id IN ({A}, {B}) RETURNING *) SELECT * FROM d",
            Fails("0A000"),
        ),
        case(
            "WITH x AS (SELECT code FROM countries) INSERT INTO orders (customer_id, country) VALUES ({A}, 'a'), ({B}, 'b')",
            Fails("0A000"),
        ),
        case(
            "WITH x AS (SELECT 1) INSERT INTO orders (customer_id) VALUES ({A}), ({A2})",
            S(0),
        ),
        case("WITH x AS (SELECT 1) UPDATE orders SET note = 'x'", All(ALL.to_vec())).keyless(),
        case(
            "WITH x AS (SELECT 1) DELETE FROM orders WHERE customer_id IN ({A}, {C}) RETURNING id",
            All(vec![0, 2]),
        ),
        case(
            "MERGE INTO orders o USING customers c ON o.customer_id = c.customer_id WHEN MATCHED THEN UPDATE SET note = 'x'",
            Fails("0A000"),
        ),
        case(
            "MERGE INTO orders o USING customers c ON o.customer_id = c.customer_id WHEN MATCHED THEN UPDATE SET note = 'x'",
            S(1),
        )
        .session_key("{B}"),
        case(
            "MERGE INTO settings s USING countries c ON s.k = c.code WHEN NOT MATCHED THEN INSERT (k) VALUES (c.code)",
            S(0),
        ),
    ]
}

fn others() -> Vec<Case> {
    vec![
        // DDL.
        case("CREATE TABLE t (a int)", Copies(ALL.to_vec())),
        case("CREATE INDEX ON orders (note)", Copies(ALL.to_vec())),
        case("ALTER TABLE orders ADD COLUMN x int", Copies(ALL.to_vec())),
        case("DROP TABLE orders", Copies(ALL.to_vec())),
        case("TRUNCATE orders, customers", Copies(ALL.to_vec())),
        case("COMMENT ON TABLE orders IS 'x'", Copies(ALL.to_vec())),
        case("GRANT SELECT ON orders TO bob", Copies(ALL.to_vec())),
        case(
            "CREATE VIEW v AS SELECT * FROM orders",
            Copies(ALL.to_vec()),
        ),
        case("/* shardwire: shard=2 */ CREATE TABLE t (a int)", S(2)),
        case(
            "/* shardwire: sharding_key=5 */ CREATE TABLE t (a int)",
            Copies(ALL.to_vec()),
        ),
        case("CREATE TABLE t AS SELECT * FROM orders", Fails("0A000")),
        case("CREATE TABLE t AS SELECT * FROM settings", Fails("0A000")),
        case(
            "CREATE TABLE t AS SELECT * FROM countries",
            Copies(ALL.to_vec()),
        ),
        case("CREATE TABLE t AS SELECT 1 AS a", Copies(ALL.to_vec())),
        case("SELECT * INTO t FROM orders", Fails("0A000")),
        case("SELECT * INTO t FROM orders", S(1)).session_shard(1),
        // Transaction control and settings.
        case("BEGIN", S(0)),
        case("BEGIN", S(1)).session_key("{B}"),
        case("START TRANSACTION ISOLATION LEVEL SERIALIZABLE", S(0)),
        case("COMMIT", S(0)),
        case("SAVEPOINT a", S(2)).session_shard(2),
        case("SET search_path = app", S(0)),
        case("PREPARE TRANSACTION 'x'", Fails("0A000")),
        case(
            "/* shardwire: shard=1 */ PREPARE TRANSACTION 'x'",
            Fails("0A000"),
        ),
        case("COMMIT PREPARED 'x'", Fails("0A000")),
        // COPY.
        case(
            "COPY orders (customer_id, note) FROM STDIN",
            SplitCopy(ALL.to_vec()),
        ),
        // Without a column list the key is in the table's column order.
        case("COPY orders FROM STDIN", SplitCopy(ALL.to_vec())),
        case("COPY orders (note) FROM STDIN", Fails("0A000")),
        // The rows carry their keys: a session key does not override them.
        case("COPY orders FROM STDIN", SplitCopy(ALL.to_vec())).session_key("{C}"),
        case("COPY orders (note) FROM STDIN", S(2)).session_key("{C}"),
        case("COPY orders FROM STDIN", S(1)).session_shard(1),
        case("COPY orders TO STDOUT", Concat(ALL.to_vec())),
        case("COPY orders TO STDOUT", S(1)).session_key("{B}"),
        case("COPY orders FROM '/tmp/x'", Fails("0A000")),
        case("COPY orders TO PROGRAM 'cat'", Fails("0A000")),
        case("COPY countries FROM STDIN", Copies(ALL.to_vec())),
        case("COPY countries FROM '/tmp/x'", Fails("0A000")),
        case("COPY countries TO STDOUT", S(0)),
        case("COPY settings FROM STDIN", S(0)),
        case("COPY settings FROM '/tmp/x'", S(0)),
        case(
            "COPY (SELECT * FROM orders WHERE customer_id = {B}) TO STDOUT",
            S(1),
        ),
        case(
            "COPY (SELECT * FROM orders) TO STDOUT",
            Concat(ALL.to_vec()),
        ),
        case(
            "COPY (SELECT * FROM orders ORDER BY id) TO STDOUT",
            Fails("0A000"),
        ),
        case(
            "COPY (SELECT * FROM metrics WHERE ts IN (1, 2500)) TO STDOUT",
            Concat(vec![0, 2]),
        ),
        // Hints and session settings.
        case("/* shardwire: shard=2 */ SELECT * FROM orders", S(2)),
        case("/* shardwire: shard=shard_b */ SELECT * FROM orders", S(1)),
        case(
            "SELECT * FROM orders /* shardwire: shard='shard_c' */",
            S(2),
        ),
        case(
            "/* shardwire: shard=nope */ SELECT * FROM orders",
            Fails("22023"),
        ),
        case("/* shardwire: shard=7 */ SELECT 1", Fails("22023")),
        case("-- shardwire: sharding_key={C}\nSELECT * FROM orders", S(2)),
        case(
            "/* shardwire: sharding_key={TB} */ SELECT * FROM events",
            S(1),
        ),
        case(
            "/* shardwire: sharding_key={C} */ SELECT * FROM orders WHERE customer_id = {A}",
            S(0),
        ),
        case("/* shardwire: sharding_key={B} */ SELECT 1", S(1)),
        case("/* shardwire: sharding_key={TC} */ SELECT 1", S(2)),
        case(
            "/* shardwire: sharding_key=1500 */ SELECT * FROM metrics",
            S(1),
        ),
        case(
            "/* shardwire: sharding_key={A} */ SELECT * FROM customers c JOIN orders o USING (customer_id)",
            S(0),
        ),
        case(
            "/* shardwire: sharding_key={B} */ SELECT * FROM settings",
            S(0),
        ),
        case(
            "/* shardwire: sharding_key=abc */ SELECT * FROM orders",
            Fails("22P02"),
        ),
        case(
            "/* shardwire: sharding_key={B} */ UPDATE orders SET note = 'x'",
            S(1),
        ),
        case("SELECT * FROM orders", S(2)).session_shard(2),
        case("UPDATE orders SET note = 'x'", S(1)).session_shard(1),
        case("SELECT * FROM orders", S(1)).session_key("{B}"),
        case("SELECT * FROM orders", Fails("22P02")).session_key("abc"),
        case("/* shardwire: shard=0 */ SELECT * FROM orders", S(0)).session_shard(2),
        case(
            "/* shardwire: sharding_key={C} */ SELECT * FROM orders",
            S(2),
        )
        .session_shard(1),
        case("SELECT 1", Fails("22023")).session_shard(9),
        // Statements the router does not analyze.
        case(
            "DO $$ begin update orders set note = 'x'; end $$",
            Fails("0A000"),
        ),
        case("DO $$ begin perform 1; end $$", S(0)),
        case(
            "/* shardwire: shard=1 */ DO $$ begin update orders set note = 'x'; end $$",
            S(1),
        ),
        case(
            "/* shardwire: sharding_key={B} */ DO $$ begin update orders set note = 'x'; end $$",
            S(1),
        ),
        case("CHECKPOINT", S(0)),
        case(
            "SELECT * FROM orders WHERE note = 'unterminated",
            Fails("0A000"),
        ),
        case("SELECT 'unterminated", S(0)),
        case("VACUUM orders", Fails("0A000")),
        case("VACUUM settings", S(0)),
        case("/* shardwire: shard=1 */ VACUUM orders", S(1)),
        case("LOCK TABLE orders", Fails("0A000")),
        case("LISTEN jobs", S(0)),
        case("CALL refresh_all(1)", S(0)),
        case(
            "EXPLAIN ANALYZE DELETE FROM orders WHERE customer_id = {A}",
            S(0),
        ),
    ]
}

#[test]
fn routes_every_case() {
    let cases: Vec<Case> = reads()
        .into_iter()
        .chain(writes())
        .chain(others())
        .collect();
    assert!(cases.len() >= 150, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let got = outcome(run(case));
        if got != case.want {
            failures.push(format!(
                "{}\n    want {:?}, got {:?}",
                fill(case.sql),
                case.want,
                got
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn analysis(sql: &str) -> Analysis {
    analyze_with(
        &fill(sql),
        &test_map(false),
        fake_plan,
        &ReadOnlyFunctions::default(),
    )
}

fn kinds(sql: &str) -> Vec<StatementKind> {
    analysis(sql)
        .statements
        .into_iter()
        .map(|s| s.kind)
        .collect()
}

#[test]
fn classifies_statement_kinds() {
    use StatementKind as K;
    let setting = |name: &str, value: Option<&str>, local| K::SetShardwire {
        name: name.into(),
        value: value.map(Into::into),
        local,
    };
    let expected: Vec<(&str, Vec<StatementKind>)> = vec![
        (
            "SELECT 1; select * from orders for update",
            vec![K::Read, K::Read],
        ),
        (
            "SHOW search_path; VALUES (1); EXPLAIN SELECT 1",
            vec![K::Read, K::Read, K::Read],
        ),
        (
            "INSERT INTO t VALUES (1); UPDATE t SET a = 1; DELETE FROM t",
            vec![K::Write; 3],
        ),
        (
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            vec![K::Write],
        ),
        ("EXPLAIN ANALYZE DELETE FROM t", vec![K::Write]),
        ("EXPLAIN DELETE FROM t", vec![K::Read]),
        (
            "COPY t FROM STDIN; COPY (SELECT 1) TO STDOUT",
            vec![K::Copy, K::Copy],
        ),
        (
            "CREATE TABLE t (a int); DROP INDEX i; TRUNCATE t; GRANT SELECT ON t TO u",
            vec![K::Ddl; 4],
        ),
        (
            "SELECT * INTO t2 FROM t; CREATE TABLE t3 AS SELECT 1",
            vec![K::Ddl, K::Ddl],
        ),
        (
            "BEGIN; START TRANSACTION; COMMIT; END",
            vec![K::Begin, K::Begin, K::Commit, K::Commit],
        ),
        (
            "ROLLBACK; ABORT; ROLLBACK TO SAVEPOINT a; ROLLBACK TO b",
            vec![
                K::Rollback,
                K::Rollback,
                K::RollbackToSavepoint,
                K::RollbackToSavepoint,
            ],
        ),
        (
            "SAVEPOINT a; RELEASE a; RELEASE SAVEPOINT a",
            vec![K::Savepoint, K::ReleaseSavepoint, K::ReleaseSavepoint],
        ),
        (
            "PREPARE TRANSACTION 'x'; COMMIT PREPARED 'x'; ROLLBACK PREPARED 'x'",
            vec![K::PrepareTransaction; 3],
        ),
        (
            "SET shardwire.sharding_key = 42",
            vec![setting("sharding_key", Some("42"), false)],
        ),
        (
            "set SHARDWIRE.Shard to 'EU'",
            vec![setting("shard", Some("EU"), false)],
        ),
        (
            "SET LOCAL shardwire.shard = shard_b",
            vec![setting("shard", Some("shard_b"), true)],
        ),
        (
            "SET SESSION shardwire.sharding_key = -7",
            vec![setting("sharding_key", Some("-7"), false)],
        ),
        (
            "SET shardwire.shard TO DEFAULT; RESET shardwire.sharding_key",
            vec![
                setting("shard", None, false),
                setting("sharding_key", None, false),
            ],
        ),
        (
            "SET shardwire.replica = 1",
            vec![setting("replica", Some("1"), false)],
        ),
        (
            "SET search_path = a, b; SET LOCAL statement_timeout = 5; RESET ALL; DISCARD ALL; SET TIME ZONE 'UTC'; SET ROLE bob",
            vec![K::Set; 6],
        ),
        (
            "LISTEN x; NOTIFY x; CALL p(); VACUUM; DO $$ begin end $$; CHECKPOINT",
            vec![K::Other; 6],
        ),
    ];
    for (sql, want) in expected {
        assert_eq!(kinds(sql), want, "{sql}");
    }
}

#[test]
fn keeps_each_statements_text_and_reports_parse_errors() {
    let parsed =
        analysis("/* shardwire: shard=1 */ BEGIN;\n INSERT INTO t VALUES (';');  COMMIT ;");
    let texts: Vec<&str> = parsed.statements.iter().map(|s| s.sql.as_str()).collect();
    assert_eq!(
        texts,
        vec![
            "/* shardwire: shard=1 */ BEGIN",
            "INSERT INTO t VALUES (';')",
            "COMMIT"
        ]
    );
    assert_eq!(parsed.hint, Some(Hint::Shard("1".into())));
    assert_eq!(parsed.parse_error, None);
    assert_eq!(parsed.map_version, 7);

    let broken = analysis("SELECT 1; SELEC 2; CHECKPOINT");
    assert_eq!(broken.statements.len(), 3);
    assert_eq!(broken.statements[1].sql, "SELEC 2");
    assert!(
        broken
            .parse_error
            .as_deref()
            .is_some_and(|e| e.contains("SELEC"))
    );

    assert!(analysis("").statements.is_empty());
    assert!(analysis(" ; -- nothing\n").statements.is_empty());

    // A SQL-standard function body holds `;`: the parser's own statements win.
    let atomic = analysis(
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END; SELECT 3",
    );
    if atomic.parse_error.is_none() {
        assert_eq!(atomic.statements.len(), 2);
        assert_eq!(atomic.statements[0].kind, StatementKind::Ddl);
    }
}

#[test]
fn renders_split_insert_parts_with_renumbered_parameters() {
    let map = test_map(false);
    let sql = fill(
        "INSERT INTO orders (customer_id, note) VALUES ($1, $2), ($3, $4), ($5, $2), ({A2}, 'lit') \
         ON CONFLICT (id) DO UPDATE SET note = $6 RETURNING id",
    );
    let analysis = analyze_with(&sql, &map, fake_plan, &ReadOnlyFunctions::default());
    let values = ["{A}", "n", "{B}", "m", "{C}", "z"].map(|v| fill(v).into_bytes());
    let params: Vec<Option<&[u8]>> = values.iter().map(|v| Some(v.as_slice())).collect();
    let input = RouteInput {
        params: &params,
        ..RouteInput::default()
    };
    let Ok(Route::SplitInsert { parts }) = route(&analysis.statements[0], None, &input, &map)
    else {
        panic!("expected a split insert");
    };
    let a2 = key_value("{A2}");
    let want = vec![
        InsertPart {
            shard: 0,
            sql: format!(
                "INSERT INTO orders (customer_id, note) VALUES ($1, $2), ({a2}, 'lit') ON CONFLICT(id) DO UPDATE SET note = $3 RETURNING id"
            ),
            rows: vec![0, 3],
            params: vec![1, 2, 6],
        },
        InsertPart {
            shard: 1,
            sql: "INSERT INTO orders (customer_id, note) VALUES ($1, $2) ON CONFLICT(id) DO UPDATE SET note = $3 RETURNING id".into(),
            rows: vec![1],
            params: vec![3, 4, 6],
        },
        InsertPart {
            shard: 2,
            sql: "INSERT INTO orders (customer_id, note) VALUES ($1, $2) ON CONFLICT(id) DO UPDATE SET note = $3 RETURNING id".into(),
            rows: vec![2],
            params: vec![5, 2, 6],
        },
    ];
    assert_eq!(parts, want);
}

#[test]
fn scatter_routes_carry_the_plan() {
    let map = test_map(false);
    let analysis = analyze_with(
        "SELECT id FROM orders ORDER BY id",
        &map,
        fake_plan,
        &ReadOnlyFunctions::default(),
    );
    let route = route(&analysis.statements[0], None, &RouteInput::default(), &map);
    let Ok(Route::Scatter { shards, plan }) = route else {
        panic!("expected a scatter, got {route:?}");
    };
    assert_eq!(shards, ALL.to_vec());
    assert_eq!(plan.shard_sql, "SELECT id FROM orders ORDER BY id");
    assert_eq!(plan.merge.order_by.len(), 1);
}

#[test]
fn errors_say_what_to_change() {
    let message = |sql: &str| {
        let error = run(&case(Box::leak(sql.to_string().into_boxed_str()), S(0))).expect_err(sql);
        (error.code, error.message, error.hint.unwrap_or_default())
    };
    let (code, text, hint) = message("UPDATE orders SET note = 'x' WHERE id = 1");
    assert_eq!(code, "0A000");
    assert_eq!(
        text,
        "UPDATE on sharded table public.orders without its sharding key customer_id"
    );
    assert!(
        hint.contains("customer_id = ...")
            && hint.contains("SET shardwire.shard")
            && hint.contains("allow_keyless_writes")
    );

    let (_, text, hint) = message("SELECT * FROM orders o JOIN events e ON e.tenant = o.note");
    assert!(
        text.contains("not co-located")
            && text.contains("public.orders")
            && text.contains("public.events")
    );
    assert!(hint.contains("co-location group"));

    let (_, _, hint) = message("SELECT * FROM customers c JOIN orders o ON c.customer_id = o.id");
    assert!(
        hint.contains("public.customers.customer_id = public.orders.customer_id"),
        "{hint}"
    );

    let (_, text, hint) = message("INSERT INTO orders (note) VALUES ('x')");
    assert!(
        text.contains("must give its sharding key")
            && hint.contains("INSERT INTO public.orders (customer_id"),
        "{text} / {hint}"
    );

    let (code, text, _) = message("SELECT * FROM orders WHERE customer_id = 'x'");
    assert_eq!(code, "22P02");
    assert!(
        text.contains("customer_id") && text.contains("bigint"),
        "{text}"
    );
}

#[test]
fn describes_copy_targets() {
    let target = |sql: &str| {
        let analysis = analysis(sql);
        copy_target(&analysis.statements[0])
    };
    assert_eq!(
        target("COPY orders (customer_id, note) FROM STDIN"),
        Some(CopyTarget {
            table: "public.orders".into(),
            columns: Some(vec!["customer_id".into(), "note".into()]),
            direction: CopyDirection::In,
            format: CopyFormat::Text,
            delimiter: '\t',
            null: "\\N".into(),
            header: false,
            quote: '"',
            escape: '"',
        })
    );
    assert_eq!(
        target(
            "COPY sales.invoices (Customer_Id) FROM STDIN WITH (FORMAT csv, HEADER true, DELIMITER ';', QUOTE '''', ESCAPE '\\')"
        ),
        Some(CopyTarget {
            table: "sales.invoices".into(),
            columns: Some(vec!["customer_id".into()]),
            direction: CopyDirection::In,
            format: CopyFormat::Csv,
            delimiter: ';',
            null: String::new(),
            header: true,
            quote: '\'',
            escape: '\\',
        })
    );
    let legacy = target("COPY orders (customer_id) FROM STDIN CSV HEADER").expect("copy target");
    assert_eq!(
        (legacy.format, legacy.header, legacy.delimiter),
        (CopyFormat::Csv, true, ',')
    );
    let binary =
        target(r#"COPY "Accounts" ("AccountId") TO STDOUT (FORMAT binary)"#).expect("copy target");
    assert_eq!(binary.table, "public.Accounts");
    assert_eq!(binary.columns, Some(vec!["AccountId".to_string()]));
    assert_eq!(
        (binary.direction, binary.format),
        (CopyDirection::Out, CopyFormat::Binary)
    );
    let all_columns = target("COPY orders FROM STDIN (NULL 'nil')").expect("copy target");
    assert_eq!(
        (all_columns.columns, all_columns.null.as_str()),
        (None, "nil")
    );
    assert_eq!(target("COPY orders FROM '/tmp/x'"), None);
    assert_eq!(target("COPY (SELECT 1) TO STDOUT"), None);
    assert_eq!(target("SELECT 1"), None);
}

#[test]
fn cache_counts_hits_and_stays_bounded() {
    let cache = RouterCache::with_planner(2, fake_plan, ReadOnlyFunctions::default());
    let map = test_map(false);
    let first = cache.analyze("SELECT 1", &map);
    let again = cache.analyze("SELECT 1", &map);
    assert!(Arc::ptr_eq(&first, &again));
    assert_eq!((cache.hits(), cache.misses()), (1, 1));

    cache.analyze("SELECT 2", &map);
    cache.analyze("SELECT 3", &map);
    assert_eq!(cache.len(), 2);
    cache.analyze("SELECT 1", &map); // evicted as least recently used
    assert_eq!((cache.hits(), cache.misses()), (1, 4));
    cache.analyze("SELECT 3", &map);
    assert_eq!((cache.hits(), cache.misses()), (2, 4));

    let mut newer = map.clone();
    newer.version += 1;
    let redone = cache.analyze("SELECT 3", &newer);
    assert_eq!(redone.map_version, newer.version);
    assert_eq!((cache.hits(), cache.misses()), (2, 5));
    assert_eq!(cache.len(), 2);
    assert!(!cache.is_empty());

    let tiny = RouterCache::new(0, ReadOnlyFunctions::default());
    tiny.analyze("SELECT 1", &map);
    tiny.analyze("SELECT 2", &map);
    assert_eq!(tiny.len(), 1);
}

#[test]
fn cache_is_shareable_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<RouterCache>();
    shareable::<Analysis>();
    let cache = Arc::new(RouterCache::with_planner(
        16,
        fake_plan,
        ReadOnlyFunctions::default(),
    ));
    let map = Arc::new(test_map(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (cache, map) = (Arc::clone(&cache), Arc::clone(&map));
            std::thread::spawn(move || {
                for i in 0..50 {
                    cache.analyze(&format!("SELECT {}", i % 8), &map);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker");
    }
    assert_eq!(cache.hits() + cache.misses(), 200);
    assert_eq!(cache.len(), 8);
}

#[test]
fn deep_expressions_are_routed_without_analysis() {
    let mut sql = String::from("SELECT * FROM orders WHERE customer_id = 1");
    for i in 0..20_000 {
        sql.push_str(&format!(" OR customer_id = {i}"));
    }
    let map = test_map(false);
    let analysis = analyze_with(&sql, &map, fake_plan, &ReadOnlyFunctions::default());
    assert!(
        analysis
            .parse_error
            .as_deref()
            .is_some_and(|e| e.contains("operators"))
    );
    let error =
        route(&analysis.statements[0], None, &RouteInput::default(), &map).expect_err("opaque");
    assert_eq!(error.code, "0A000");
    let hinted = route(
        &analysis.statements[0],
        Some(&Hint::Shard("2".into())),
        &RouteInput::default(),
        &map,
    );
    assert_eq!(hinted, Ok(Route::Single(2)));

    let in_list: Vec<String> = (0..20_000).map(|i| format!("({i}, -{i})")).collect();
    let bulk = format!("INSERT INTO settings (a, b) VALUES {}", in_list.join(", "));
    let analysis = analyze_with(&bulk, &map, fake_plan, &ReadOnlyFunctions::default());
    assert_eq!(analysis.parse_error, None);
    assert_eq!(
        route(&analysis.statements[0], None, &RouteInput::default(), &map),
        Ok(Route::Single(0))
    );
}

#[test]
fn inserts_without_a_column_list_route_by_the_learned_key_position() {
    let map = test_map(false);
    let names = shard_names();
    let positions: std::collections::HashMap<String, usize> =
        [("public.orders".to_string(), 0)].into_iter().collect();
    let input = RouteInput {
        shard_names: &names,
        key_positions: Some(&positions),
        ..RouteInput::default()
    };
    let routed = |sql: &str| {
        let sql = fill(sql);
        let analysis = analyze_with(&sql, &map, fake_plan, &ReadOnlyFunctions::default());
        outcome(route(&analysis.statements[0], None, &input, &map))
    };
    assert_eq!(routed("INSERT INTO orders VALUES ({B}, 'x')"), S(1));
    assert_eq!(routed("INSERT INTO orders VALUES ({C}, 'x')"), S(2));
    assert_eq!(
        routed("INSERT INTO orders VALUES ({B}, 'x'), ({C}, 'y'), ({B}, 'z')"),
        Split(vec![(1, vec![0, 2]), (2, vec![1])])
    );
    // A row whose key position holds an expression is refused, as with a
    // column list.
    assert_eq!(
        routed("INSERT INTO orders VALUES (now(), 'x')"),
        Fails("0A000")
    );
}
