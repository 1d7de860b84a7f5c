//! Proves the scatter planner's shard SQL is SQL a real PostgreSQL accepts:
//! every planned text is prepared (and, without parameters, run) against a
//! temporary cluster, and the columns Postgres reports are the ones the
//! plan describes (visible plus hidden, `*` expanded by
//! `ScatterPlan::for_shard_columns`). One shard holding all rows must also
//! reproduce the client's query: AVG as the hidden SUM/COUNT pair, and the
//! pushed-down LIMIT as enough rows for OFFSET + LIMIT.

use shardwire::localcluster::{ClusterOptions, LocalCluster};
use shardwire::scatter::{ColumnMerge, ScatterPlan, plan_select};
use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use tokio_postgres::{Client, SimpleQueryMessage};

/// Tables shaped like the planner's test queries, with a few rows.
const SCHEMA: &str = "
    CREATE TABLE t (id int PRIMARY KEY, a text, b int, x numeric, y int,
                    ts timestamptz, name text, created_at timestamptz);
    CREATE TABLE u (id int PRIMARY KEY, tid int, c text);
    INSERT INTO t SELECT i, 'k' || (i % 3), i % 5, i * 1.5, i % 7,
                         now() - i * interval '1 hour', 'n' || i, now()
                  FROM generate_series(1, 30) AS i;
    INSERT INTO u SELECT i, i % 10, 'c' || i FROM generate_series(1, 20) AS i;
";

/// Queries whose plans must run; they cover every rewrite the planner does.
const QUERIES: &[&str] = &[
    "SELECT id, name FROM t WHERE b > 1",
    "SELECT * FROM t WHERE id > $1",
    "SELECT t.*, u.* FROM t JOIN u ON t.id = u.tid ORDER BY t.id",
    "SELECT t.*, u.c, u.* FROM t JOIN u ON t.id = u.tid ORDER BY c",
    "SELECT *, id FROM t ORDER BY id DESC LIMIT 3",
    "SELECT DISTINCT a, b FROM t ORDER BY b DESC OFFSET 4",
    "SELECT count(*), sum(x), min(x), max(x), avg(x) FROM t",
    "SELECT AVG(x) AS \"Mean\" FROM t WHERE b = $1",
    "SELECT 1, count(*) FROM t",
    "SELECT count(*) FROM t GROUP BY a",
    "SELECT a || 'x', count(*) FROM t GROUP BY a",
    "SELECT b + 1, count(*) FROM t GROUP BY b",
    "SELECT t.*, count(*) FROM t GROUP BY t.id HAVING avg(x) > 1 ORDER BY count(*) DESC",
    "SELECT a AS k, count(*) AS n FROM t GROUP BY k ORDER BY n DESC LIMIT 2",
    "SELECT a FROM t GROUP BY a HAVING count(*) > 1 AND avg(x) < 100 ORDER BY avg(y)",
    "SELECT a, avg(x) FROM t GROUP BY a HAVING avg(x) > 3 OR NOT 'z' > a",
    "SELECT DISTINCT count(*) FROM t GROUP BY a",
    "SELECT date_trunc('day', ts) AS day, sum(x) FROM t GROUP BY 1 ORDER BY 1",
    "SELECT a FROM t ORDER BY b DESC NULLS LAST LIMIT 5 OFFSET 10",
    "SELECT a FROM t ORDER BY a COLLATE \"C\" FETCH FIRST 3 ROWS ONLY",
    "SELECT a, (SELECT count(*) FROM u WHERE u.tid = t.id) AS refs FROM t ORDER BY refs, a",
    "SELECT count(*) FROM t WHERE created_at > now() - INTERVAL '1 day'",
    "SELECT pg_catalog.avg(x) FROM t",
];

fn parse(sql: &str) -> sqlparser::ast::Query {
    match Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .expect("test SQL parses")
        .remove(0)
    {
        Statement::Query(query) => *query,
        other => panic!("not a query: {other}"),
    }
}

/// Connects with tokio-postgres and drives the connection.
async fn connect(cluster: &LocalCluster) -> Client {
    let (client, connection) = tokio_postgres::connect(
        &cluster.connection_string("postgres"),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connect");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

async fn prepared_database() -> (LocalCluster, Client) {
    let cluster =
        LocalCluster::start_temp(&ClusterOptions::for_tests()).expect("start temp cluster");
    let client = connect(&cluster).await;
    client.batch_execute(SCHEMA).await.expect("schema");
    (cluster, client)
}

/// Rows of `sql` as text (simple protocol), NULL as `None`.
async fn text_rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
        .into_iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|column| row.get(column).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

fn plan(sql: &str) -> ScatterPlan {
    plan_select(&parse(sql)).unwrap_or_else(|error| panic!("{sql} refused: {error}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planned_shard_sql_runs_with_the_planned_columns() {
    let (_cluster, client) = prepared_database().await;
    for sql in QUERIES {
        let plan = plan(sql);
        let statement = client
            .prepare(&plan.shard_sql)
            .await
            .unwrap_or_else(|error| panic!("{sql}\n  shard SQL {}: {error:?}", plan.shard_sql));
        let returned = statement.columns().len();
        let concrete = plan
            .for_shard_columns(returned)
            .unwrap_or_else(|error| panic!("{sql}: {error}"));
        assert_eq!(concrete.merge.columns.len(), returned, "{sql}");
        if plan.wildcard_at.is_none() {
            assert_eq!(plan.merge.columns.len(), returned, "{sql}");
        }
        assert!(concrete.visible_columns <= returned, "{sql}");
        if statement.params().is_empty() {
            client
                .query(&statement, &[])
                .await
                .unwrap_or_else(|error| panic!("{sql}\n  shard SQL {}: {error:?}", plan.shard_sql));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shard_reproduces_avg_from_sum_and_count() {
    let (_cluster, client) = prepared_database().await;
    let sql = "SELECT a, avg(x) FROM t GROUP BY a ORDER BY a";
    let plan = plan(sql);
    let ColumnMerge::AvgSum { count_column } = plan.merge.columns[1] else {
        panic!("avg(x) is not planned as AvgSum: {plan:?}");
    };
    let mut shard_rows = text_rows(&client, &plan.shard_sql).await;
    shard_rows.sort();
    let expected = text_rows(&client, sql).await;
    assert_eq!(shard_rows.len(), expected.len());
    for (shard_row, expected_row) in shard_rows.iter().zip(&expected) {
        let number = |cell: &Option<String>| -> f64 {
            cell.as_deref()
                .expect("not NULL")
                .parse()
                .expect("a number")
        };
        assert_eq!(shard_row[0], expected_row[0]);
        let average = number(&shard_row[1]) / number(&shard_row[count_column]);
        assert!(
            (average - number(&expected_row[1])).abs() < 1e-9,
            "{shard_row:?} vs {expected_row:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shard_returns_the_rows_offset_and_limit_need() {
    let (_cluster, client) = prepared_database().await;
    let sql = "SELECT id FROM t ORDER BY id DESC LIMIT 4 OFFSET 3";
    let plan = plan(sql);
    let shard_rows = text_rows(&client, &plan.shard_sql).await;
    let offset = usize::try_from(plan.merge.offset).expect("small offset");
    let limit = usize::try_from(plan.merge.limit.expect("has a limit")).expect("small limit");
    let merged: Vec<_> = shard_rows.into_iter().skip(offset).take(limit).collect();
    assert_eq!(merged, text_rows(&client, sql).await);
}
