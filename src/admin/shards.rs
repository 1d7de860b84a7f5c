//! `SHOW SHARDS`: per shard and database, the shard's current primary,
//! its replica count, the hash buckets the database's shard map gives it,
//! and how much data it holds, read from the primary over a control-plane
//! connection: `rows_n_live_tup` sums `pg_stat_user_tables.n_live_tup` (the
//! statistics' live-row estimate, no table scan) and
//! `bytes_total_relation_size` sums `pg_total_relation_size` (tables with
//! their indexes and TOAST) over the same user tables. A shard that cannot
//! answer in time gets a row with NULL sizes and the reason in `error`.

use std::time::Duration;

use bytes::BytesMut;
use tokio_postgres::SimpleQueryMessage;

use super::resultset::result_set_with_nulls;
use crate::backend::control::{ControlLogin, control_config, control_user};
use crate::config::{Config, User};
use crate::proxy::Shared;

/// Tables, live rows and bytes of the user tables of one database.
const SIZE_SQL: &str = "SELECT count(*), coalesce(sum(n_live_tup), 0), \
     coalesce(sum(pg_total_relation_size(relid)), 0) FROM pg_stat_user_tables";

/// Time a shard gets to answer [`SIZE_SQL`] once connected.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// One row to fill: a database on a shard.
struct Placement<'a> {
    shard: usize,
    database: &'a crate::config::Database,
    /// Buckets the database's shard map gives the shard; `None` when the
    /// database is unsharded.
    buckets: Option<usize>,
}

/// Tables, live rows and bytes as the shard reported them.
type Sizes = [String; 3];

/// One row per shard of each sharded database's map (and per unsharded
/// database, on the first shard), shards queried concurrently.
pub async fn show_shards(shared: &Shared) -> BytesMut {
    let runtime = shared.runtime();
    let config = &runtime.config;
    let placements = placements(config);
    let user = control_user(config);
    let sizes = futures::future::join_all(placements.iter().map(|p| {
        let address = primary_address(shared, config, p.shard);
        async move {
            match user {
                Some(user) => measure(config, user, p, &address).await,
                None => Err("no user in the config to log in to the shards with".to_string()),
            }
        }
    }))
    .await;
    let rows: Vec<Vec<Option<String>>> = placements
        .iter()
        .zip(sizes)
        .map(|(p, sizes)| {
            let shard = config.shards.get(p.shard);
            let (sizes, error) = match sizes {
                Ok(sizes) => (sizes.map(Some), None),
                Err(e) => ([None, None, None], Some(e)),
            };
            let [tables, rows, bytes] = sizes;
            vec![
                shard.map(|s| s.name.clone()),
                Some(p.database.name.clone()),
                Some(primary_address(shared, config, p.shard)),
                shard.map(|s| s.replicas.len().to_string()),
                p.buckets.map(|b| b.to_string()),
                tables,
                rows,
                bytes,
                error,
            ]
        })
        .collect();
    result_set_with_nulls(
        &[
            "shard",
            "database",
            "primary",
            "replicas",
            "buckets",
            "tables",
            "rows_n_live_tup",
            "bytes_total_relation_size",
            "error",
        ],
        &rows,
        "SHOW",
    )
}

/// Every (shard, database) pair holding data, in shard then config order.
fn placements(config: &Config) -> Vec<Placement<'_>> {
    let mut placements: Vec<Placement<'_>> = config
        .databases
        .iter()
        .flat_map(|database| match config.shard_map(&database.name) {
            Some(map) => map
                .shards
                .iter()
                .map(|&shard| Placement {
                    shard,
                    database,
                    buckets: Some(map.bucket_owner.iter().filter(|&&o| o == shard).count()),
                })
                .collect(),
            None => vec![Placement {
                shard: 0,
                database,
                buckets: None,
            }],
        })
        .collect();
    placements.sort_by_key(|p| p.shard);
    placements
}

/// The shard's primary as the probe sees it (after a failover, the
/// promoted replica), else as configured.
fn primary_address(shared: &Shared, config: &Config, shard: usize) -> String {
    shared
        .topology
        .shards
        .get(shard)
        .and_then(|s| s.servers.get(s.primary()))
        .map(|server| server.address.clone())
        .or_else(|| config.shards.get(shard).map(|s| s.primary.clone()))
        .unwrap_or_default()
}

/// Asks the primary at `address` for the sizes of one database.
async fn measure(
    config: &Config,
    user: &User,
    placement: &Placement<'_>,
    address: &str,
) -> Result<Sizes, String> {
    let connect_timeout = config.pool.connect_timeout();
    let pg = control_config(
        address,
        &ControlLogin {
            user: user.server_user(),
            password: user.server_password(),
            database: placement.database.server_database(),
            application_name: "shardwire-admin",
            connect_timeout,
        },
    );
    let (client, connection) =
        tokio::time::timeout(connect_timeout, pg.connect(tokio_postgres::NoTls))
            .await
            .map_err(|_| {
                format!(
                    "{address}: no connection within {} ms",
                    connect_timeout.as_millis()
                )
            })?
            .map_err(|e| format!("{address}: {e}"))?;
    let driver = tokio::spawn(connection);
    let answer = tokio::time::timeout(QUERY_TIMEOUT, client.simple_query(SIZE_SQL)).await;
    // A hung server must not keep the connection's task alive.
    driver.abort();
    let messages = answer
        .map_err(|_| {
            format!(
                "{address}: no answer within {} ms",
                QUERY_TIMEOUT.as_millis()
            )
        })?
        .map_err(|e| format!("{address}: {e}"))?;
    messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => {
                Some([0, 1, 2].map(|i| row.get(i).unwrap_or("").to_string()))
            }
            _ => None,
        })
        .ok_or_else(|| format!("{address}: no row from the size query"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Database, Shard, User};
    use crate::sharding::map::ShardMap;
    use std::sync::Arc;

    #[test]
    fn sharded_databases_list_their_map_shards_and_buckets() {
        let mut config = Config::single_shard(
            "127.0.0.1:6432",
            User::with_password("app", "pw"),
            "appdb",
            "127.0.0.1:5432",
        );
        config.shards.push(Shard {
            name: "shard1".into(),
            primary: "127.0.0.1:5433".into(),
            replicas: vec![],
        });
        config.databases.push(Database {
            name: "plain".into(),
            server_database: None,
            shard_map: None,
        });
        let names = vec!["shard0".to_string(), "shard1".to_string()];
        let map = ShardMap::from_toml(
            "buckets = 4\ndefault_shard = \"shard0\"\n\
             [[bucket_ranges]]\nbuckets = \"0-2\"\nshard = \"shard0\"\n\
             [[bucket_ranges]]\nbuckets = \"3\"\nshard = \"shard1\"\n",
            &names,
        )
        .expect("valid map");
        config.shard_maps.insert("appdb".into(), Arc::new(map));
        let found: Vec<(usize, &str, Option<usize>)> = placements(&config)
            .iter()
            .map(|p| (p.shard, p.database.name.as_str(), p.buckets))
            .collect();
        assert_eq!(
            found,
            vec![
                (0, "appdb", Some(3)),
                (0, "plain", None),
                (1, "appdb", Some(1))
            ]
        );
    }
}
