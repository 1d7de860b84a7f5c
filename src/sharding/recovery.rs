//! Resolving in-doubt two-phase transactions shardwire left prepared.
//!
//! A proxy that dies between `PREPARE TRANSACTION` and `COMMIT PREPARED`
//! leaves prepared transactions holding locks on its shards. This control
//! plane task finds them (their gids start with `shardwire:`), settles each
//! one's fate through the decision table on the default shard (a recorded
//! commit is finished; anything else is decided as abort, atomically, so a
//! still-running commit cannot disagree) and applies it. It runs at start-up
//! and then periodically, on connections of its own.

use std::time::Duration;

use crate::backend::topology::Topology;
use crate::config::{Config, User};
use crate::frontend::sharded::twophase::{DECISION_TABLE_DDL, GID_PREFIX, decide_sql};
use crate::sharding::map::ShardMap;

/// Prepared transactions younger than this are left alone: their commit is
/// probably still running (waiting is only politeness; correctness comes
/// from the decision table).
pub const GRACE: Duration = Duration::from_secs(5);

/// How often recovery runs.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// Resolves in-doubt transactions of every sharded database, as every user
/// that has server credentials. Returns how many were resolved.
pub async fn recover_all(config: &Config, topology: &Topology) -> usize {
    let mut resolved = 0;
    for database in &config.databases {
        let Some(map) = config.shard_map(&database.name) else {
            continue;
        };
        for user in config
            .users
            .iter()
            .filter(|u| u.server_password().is_some())
        {
            match recover(config, topology, map, database.server_database(), user).await {
                Ok(n) => resolved += n,
                Err(e) => {
                    tracing::debug!(database = %database.name, user = %user.name, error = %e, "in-doubt recovery skipped")
                }
            }
        }
    }
    resolved
}

/// Runs [`recover_all`] now and then every [`INTERVAL`], forever.
pub async fn recover_forever(shared: std::sync::Arc<crate::proxy::Shared>) {
    loop {
        let runtime = shared.runtime();
        let n = recover_all(&runtime.config, &shared.topology).await;
        if n > 0 {
            tracing::info!(resolved = n, "resolved in-doubt cross-shard transactions");
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

/// Connects to the current primary of `shard` (it moves on failover).
async fn connect(
    topology: &Topology,
    shard: usize,
    database: &str,
    user: &User,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let servers = &topology.shards[shard];
    let pg = crate::backend::control::control_config(
        &servers.servers[servers.primary()].address,
        &crate::backend::control::ControlLogin {
            user: user.server_user(),
            password: user.server_password(),
            database,
            application_name: "shardwire-recovery",
            connect_timeout: Duration::from_secs(5),
        },
    );
    let (client, connection) = pg.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

async fn recover(
    config: &Config,
    topology: &Topology,
    map: &ShardMap,
    database: &str,
    user: &User,
) -> Result<usize, tokio_postgres::Error> {
    let mut resolved = 0;
    let mut default = None;
    let mut still_prepared: Vec<String> = Vec::new();
    for &shard in &map.shards {
        let client = connect(topology, shard, database, user).await?;
        let all = client
            .query(
                "SELECT gid FROM pg_prepared_xacts WHERE gid LIKE $1 AND database = current_database()",
                &[&format!("{GID_PREFIX}%")],
            )
            .await?;
        still_prepared.extend(all.iter().map(|r| r.get::<_, String>(0)));
        let rows = client
            .query(
                "SELECT gid FROM pg_prepared_xacts \
                 WHERE gid LIKE $1 AND database = current_database() \
                 AND owner = current_user AND prepared < now() - make_interval(secs => $2)",
                &[&format!("{GID_PREFIX}%"), &GRACE.as_secs_f64()],
            )
            .await?;
        for row in rows {
            let gid: String = row.get(0);
            if default.is_none() {
                let d = connect(topology, map.default_shard, database, user).await?;
                d.batch_execute(DECISION_TABLE_DDL).await?;
                default = Some(d);
            }
            let decider = default.as_ref().expect("connected just above");
            let outcome = decide(decider, &gid).await?;
            let verb = if outcome == "commit" {
                "COMMIT"
            } else {
                "ROLLBACK"
            };
            let quoted = crate::frontend::params::quote_literal(&gid);
            match client
                .batch_execute(&format!("{verb} PREPARED {quoted}"))
                .await
            {
                Ok(()) => {
                    tracing::info!(%gid, shard = %config.shards[shard].name, "{verb} PREPARED by recovery");
                    resolved += 1;
                }
                Err(e) => {
                    tracing::warn!(%gid, error = %e, "recovery could not finish a prepared transaction")
                }
            }
        }
    }
    forget_finished_decisions(topology, map, database, user, &still_prepared).await?;
    Ok(resolved)
}

/// Deletes decisions no shard needs any more (their transaction is no
/// longer prepared anywhere); runs only after every shard was listed.
async fn forget_finished_decisions(
    topology: &Topology,
    map: &ShardMap,
    database: &str,
    user: &User,
    still_prepared: &[String],
) -> Result<(), tokio_postgres::Error> {
    let client = connect(topology, map.default_shard, database, user).await?;
    let exists: Option<String> = client
        .query_one(
            "SELECT to_regclass('shardwire.commit_decisions')::text",
            &[],
        )
        .await?
        .get(0);
    if exists.is_some() {
        client
            .execute(
                "DELETE FROM shardwire.commit_decisions \
                 WHERE decided_at < now() - make_interval(secs => $1) AND NOT gid = ANY($2)",
                &[&GRACE.as_secs_f64(), &still_prepared],
            )
            .await?;
    }
    Ok(())
}

async fn decide(
    client: &tokio_postgres::Client,
    gid: &str,
) -> Result<String, tokio_postgres::Error> {
    let messages = client.simple_query(&decide_sql(gid, "abort")).await?;
    Ok(messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        })
        .unwrap_or_else(|| "abort".to_string()))
}
