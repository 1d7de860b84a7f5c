//! Native `PARTITION BY HASH` tables, to see where Postgres itself puts a
//! row: the reference the hash-routing tests compare shardwire with.

use std::collections::HashMap;

use shardwire::localcluster::{ClusterOptions, LocalCluster};

/// A fresh Postgres server (nothing created in it: the tests work in the
/// `postgres` database as the superuser).
pub fn start_cluster() -> LocalCluster {
    LocalCluster::start_temp(&ClusterOptions::for_tests()).expect("start temp cluster")
}

/// Connects to the `postgres` database as the superuser.
pub async fn connect(cluster: &LocalCluster) -> tokio_postgres::Client {
    super::connect(&cluster.connection_string("postgres"))
        .await
        .expect("connect")
}

/// Creates `table` partitioned by hash with `modulus` partitions named
/// `<table>_p<remainder>`.
pub async fn create_partitioned(
    client: &tokio_postgres::Client,
    table: &str,
    columns: &str,
    key: &str,
    modulus: u64,
) {
    let mut sql = format!("create table {table} ({columns}) partition by hash ({key});");
    for r in 0..modulus {
        sql.push_str(&format!(
            "create table {table}_p{r} partition of {table} \
             for values with (modulus {modulus}, remainder {r});"
        ));
    }
    client.batch_execute(&sql).await.expect("create tables");
}

/// Reads back `id -> remainder of the partition holding the row`.
pub async fn partitions_by_id(client: &tokio_postgres::Client, table: &str) -> HashMap<i32, u64> {
    let rows = client
        .query(
            &format!("select id, tableoid::regclass::text from {table}"),
            &[],
        )
        .await
        .expect("read back partitions");
    let prefix = format!("{table}_p");
    rows.iter()
        .map(|row| {
            let id: i32 = row.get(0);
            let partition: String = row.get(1);
            let r = partition
                .strip_prefix(&prefix)
                .and_then(|r| r.parse().ok())
                .unwrap_or_else(|| panic!("unexpected partition {partition}"));
            (id, r)
        })
        .collect()
}
