//! Console commands over the server connection pools: `SHOW POOLS`,
//! `SHOW SERVERS`, `PAUSE` and `RESUME`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;

use super::commands::completion;
use super::resultset::result_set_with_nulls;
use super::time::format_utc;
use crate::backend::PoolKey;
use crate::config::PoolMode;
use crate::net::messages::PgError;
use crate::proxy::Shared;

/// The shard name of a pool and whether its server is the shard's
/// current primary (as the probe sees it).
fn shard_and_role(shared: &Shared, key: &PoolKey) -> (String, &'static str) {
    let Some(shard) = shared.topology.shards.get(key.shard) else {
        return (key.shard.to_string(), "unknown");
    };
    let primary = shard.servers.get(shard.primary()).map(|s| &s.address);
    let role = match primary == Some(&key.address) {
        true => "primary",
        false => "replica",
    };
    (shard.name.clone(), role)
}

/// `SHOW POOLS`: one row per pool (a user on a database against one
/// server), including pools RELOAD replaced that still have connections.
pub fn show_pools(shared: &Shared) -> BytesMut {
    let runtime = shared.runtime();
    let config = &runtime.config;
    let rows: Vec<Vec<Option<String>>> = shared
        .pools
        .snapshot_with_retired()
        .into_iter()
        .map(|(key, pool)| {
            let (shard, role) = shard_and_role(shared, &key);
            let mode = config.user(&key.user).map(|u| match config.pool_mode(u) {
                PoolMode::Transaction => "transaction".to_string(),
                PoolMode::Session => "session".to_string(),
            });
            let counters = &pool.counters;
            let count = |n: u64| Some(n.to_string());
            vec![
                Some(key.user.clone()),
                Some(key.database.clone()),
                Some(shard),
                Some(key.address.clone()),
                Some(role.to_string()),
                mode,
                count(pool.limits().size as u64),
                count(pool.lent_count() as u64),
                count(pool.idle_count() as u64),
                count(counters.waiting.load(Ordering::Relaxed) as u64),
                count(counters.opened.load(Ordering::Relaxed)),
                count(counters.closed.load(Ordering::Relaxed)),
                count(counters.waits.load(Ordering::Relaxed)),
                count(counters.wait_micros.load(Ordering::Relaxed) / 1000),
                count(counters.checkout_timeouts.load(Ordering::Relaxed)),
                Some(pool.is_retired().to_string()),
            ]
        })
        .collect();
    result_set_with_nulls(
        &[
            "user",
            "database",
            "shard",
            "address",
            "role",
            "mode",
            "size",
            "active",
            "idle",
            "waiting",
            "opened",
            "closed",
            "waits",
            "wait_ms",
            "checkout_timeouts",
            "retired",
        ],
        &rows,
        "SHOW",
    )
}

/// `SHOW SERVERS`: one row per open server connection, lent or idle.
pub fn show_servers(shared: &Shared) -> BytesMut {
    let mut rows = Vec::new();
    for (key, pool) in shared.pools.snapshot_with_retired() {
        let (shard, _) = shard_and_role(shared, &key);
        for server in pool.servers() {
            let state = match server.is_lent() {
                true => "active",
                false => "idle",
            };
            rows.push(vec![
                Some(shard.clone()),
                Some(key.address.clone()),
                Some(key.user.clone()),
                Some(key.database.clone()),
                Some(server.pid.to_string()),
                Some(state.to_string()),
                Some(format_utc(server.connected_at)),
                server.idle_since().map(format_utc),
                server.idle_for().map(|d| d.as_millis().to_string()),
            ]);
        }
    }
    result_set_with_nulls(
        &[
            "shard",
            "address",
            "user",
            "database",
            "pid",
            "state",
            "connected_since",
            "idle_since",
            "idle_ms",
        ],
        &rows,
        "SHOW",
    )
}

/// `PAUSE`: new checkouts wait (within their checkout timeout); answers
/// once every lent server connection is back and the idle ones are
/// closed, or with an error after `proxy.shutdown_timeout_ms` (the pause
/// stays in effect either way).
pub async fn pause(shared: &Shared) -> Result<BytesMut, PgError> {
    shared.pools.gate().pause();
    let timeout_ms = shared.runtime().config.proxy.shutdown_timeout_ms;
    let busy = shared
        .pools
        .wait_until_returned(Duration::from_millis(timeout_ms))
        .await;
    shared.pools.close_idle();
    if busy > 0 {
        return Err(PgError::error(
            "55006",
            format!(
                "PAUSE: {busy} server connection(s) still in use after {timeout_ms} ms \
                 (proxy.shutdown_timeout_ms)"
            ),
        )
        .with_hint(
            "shardwire stays paused and new queries wait; PAUSE again to wait longer, \
             RESUME to lift the pause",
        ));
    }
    tracing::info!("paused by the admin console");
    Ok(completion("PAUSE"))
}

/// `RESUME`: waiting and new checkouts proceed.
pub fn resume(shared: &Shared) -> BytesMut {
    shared.pools.gate().resume();
    tracing::info!("resumed by the admin console");
    completion("RESUME")
}
