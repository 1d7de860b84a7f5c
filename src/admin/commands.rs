//! Parsing and running admin console commands.

use bytes::BytesMut;

use super::resultset::{command_complete, result_set};
use crate::backend::topology::{ServerRole, format_lsn};
use crate::net::messages::PgError;
use crate::proxy::Shared;

/// The commands the console knows, for the error on an unknown one.
const KNOWN: &str = "SHOW POOLS, SHOW CLIENTS, SHOW SERVERS, SHOW STATS, SHOW SHARDS, \
SHOW QUERIES, SHOW SLOW, SHOW CACHE, SHOW CONFIG, SHOW REPLICAS, SHOW VERSION, RELOAD, PAUSE, \
RESUME, SHUTDOWN, PROMOTE <shard> <server>";

/// Runs one command; returns its answer (without ReadyForQuery).
pub async fn run(sql: &str, shared: &Shared) -> Result<BytesMut, PgError> {
    let words: Vec<String> = sql
        .trim()
        .trim_end_matches(';')
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    match upper
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["SHOW", "REPLICAS"] => Ok(show_replicas(shared)),
        ["SHOW", "VERSION"] => Ok(result_set(
            &["version"],
            &[vec![format!("shardwire {}", env!("CARGO_PKG_VERSION"))]],
            "SHOW",
        )),
        ["SHOW", "CONFIG"] => Ok(show_config(shared)),
        ["SHOW", "QUERIES"] => Ok(super::statements::show_queries(shared)),
        ["SHOW", "SLOW"] => Ok(super::statements::show_slow(shared)),
        ["SHOW", "STATS"] => Ok(super::statements::show_stats(shared)),
        ["PROMOTE", _, _] => promote(shared, &words[1], &words[2]).await,
        [] => {
            let mut out = BytesMut::new();
            crate::net::messages::put_empty(
                &mut out,
                crate::net::messages::backend_tag::EMPTY_QUERY,
            );
            Ok(out)
        }
        _ => Err(
            PgError::error("42601", format!("unknown admin command \"{}\"", sql.trim()))
                .with_hint(format!("known commands: {KNOWN}")),
        ),
    }
}

fn show_replicas(shared: &Shared) -> BytesMut {
    let mut rows = Vec::new();
    for shard in &shared.topology.shards {
        let primary = shard.primary();
        for index in 0..shard.servers.len() {
            let r = shard.report(index);
            rows.push(vec![
                shard.name.clone(),
                index.to_string(),
                r.address,
                role_name(r.role).to_string(),
                (index == primary).to_string(),
                r.in_rotation.to_string(),
                r.banned.to_string(),
                r.lag_bytes.to_string(),
                r.lag_ms.to_string(),
                format_lsn(r.position),
                r.reads.to_string(),
                r.writes.to_string(),
            ]);
        }
    }
    result_set(
        &[
            "shard",
            "server",
            "address",
            "role",
            "takes_writes",
            "in_rotation",
            "banned",
            "lag_bytes",
            "lag_ms",
            "position",
            "reads",
            "writes",
        ],
        &rows,
        "SHOW",
    )
}

/// Every setting in effect, one `key`/`value` row each (`pool.size`,
/// `users[0].name`, ...), passwords masked.
fn show_config(shared: &Shared) -> BytesMut {
    let text = shared.runtime().config.to_toml();
    let mut rows = Vec::new();
    if let Ok(value) = text.parse::<toml::Table>() {
        flatten("", &toml::Value::Table(value), &mut rows);
    }
    result_set(&["key", "value"], &rows, "SHOW")
}

/// Appends `value`'s leaves under `path` to `rows`.
fn flatten(path: &str, value: &toml::Value, rows: &mut Vec<Vec<String>>) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                flatten(&join(key), value, rows);
            }
        }
        toml::Value::Array(items)
            if items.iter().all(toml::Value::is_table) && !items.is_empty() =>
        {
            for (i, item) in items.iter().enumerate() {
                flatten(&format!("{path}[{i}]"), item, rows);
            }
        }
        leaf => {
            let secret = path.ends_with("password");
            let shown = match leaf {
                _ if secret => "********".to_string(),
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            rows.push(vec![path.to_string(), shown]);
        }
    }
}

fn role_name(role: ServerRole) -> &'static str {
    match role {
        ServerRole::Unknown => "unknown",
        ServerRole::Primary => "primary",
        ServerRole::Replica => "replica",
        ServerRole::Down => "down",
    }
}

/// `PROMOTE <shard> <replica>`: shard by name or index, replica by its
/// index among the shard's servers or its address.
async fn promote(shared: &Shared, shard: &str, server: &str) -> Result<BytesMut, PgError> {
    let topology = &shared.topology;
    let shard_index = topology
        .shards
        .iter()
        .position(|s| s.name == shard)
        .or_else(|| shard.parse().ok().filter(|i| *i < topology.shards.len()))
        .ok_or_else(|| {
            let names: Vec<&str> = topology.shards.iter().map(|s| s.name.as_str()).collect();
            PgError::error("22023", format!("unknown shard \"{shard}\""))
                .with_hint(format!("shards: {}", names.join(", ")))
        })?;
    let servers = &topology.shards[shard_index].servers;
    let server_index = servers
        .iter()
        .position(|s| s.address == server)
        .or_else(|| server.parse().ok().filter(|i| *i < servers.len()))
        .ok_or_else(|| {
            let known: Vec<String> = servers
                .iter()
                .enumerate()
                .map(|(i, s)| format!("{i} ({})", s.address))
                .collect();
            PgError::error(
                "22023",
                format!("unknown server \"{server}\" in shard \"{shard}\""),
            )
            .with_hint(format!("servers: {}", known.join(", ")))
        })?;
    let config = shared.runtime().config.clone();
    crate::backend::probe::promote(&config, shard_index, server_index).await?;
    let mut out = BytesMut::new();
    command_complete(&mut out, "PROMOTE");
    Ok(out)
}
