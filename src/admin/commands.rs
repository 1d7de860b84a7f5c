//! Parsing admin console commands and running them.

use bytes::BytesMut;

use super::resultset::{command_complete, result_set};
use crate::backend::topology::{ServerRole, format_lsn};
use crate::net::messages::{PgError, backend_tag, put_empty};
use crate::proxy::Shared;

/// The commands the console knows, for the error on an unknown one.
const KNOWN: &str = "SHOW POOLS, SHOW CLIENTS, SHOW SERVERS, SHOW STATS, SHOW SHARDS, \
SHOW QUERIES, SHOW SLOW, SHOW CACHE, SHOW CONFIG, SHOW REPLICAS, SHOW VERSION, RELOAD, PAUSE, \
RESUME, SHUTDOWN, PROMOTE <shard> <server>";

/// One console command, parsed; running it is a separate step so the
/// extended protocol can check a statement at Parse and run it at Execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `SHOW POOLS`: every server connection pool with its counters.
    ShowPools,
    /// `SHOW CLIENTS`: every logged-in client.
    ShowClients,
    /// `SHOW SERVERS`: every open server connection.
    ShowServers,
    /// `SHOW STATS`: traffic totals.
    ShowStats,
    /// `SHOW SHARDS`: buckets, rows and bytes per shard and database.
    ShowShards,
    /// `SHOW QUERIES`: the top statement fingerprints.
    ShowQueries,
    /// `SHOW SLOW`: recent slow statements.
    ShowSlow,
    /// `SHOW CACHE`: the routing caches.
    ShowCache,
    /// `SHOW CONFIG`: every setting in effect.
    ShowConfig,
    /// `SHOW REPLICAS`: every server's probed role and lag.
    ShowReplicas,
    /// `SHOW VERSION`.
    ShowVersion,
    /// `RELOAD`: re-read the config file.
    Reload,
    /// `PAUSE`: drain the servers; new queries wait.
    Pause,
    /// `RESUME`: lift PAUSE.
    Resume,
    /// `SHUTDOWN`: graceful stop, requested once the answer is sent.
    Shutdown,
    /// `PROMOTE <shard> <server>`.
    Promote {
        /// Shard name or index.
        shard: String,
        /// Server index or address.
        server: String,
    },
    /// An empty query string.
    Empty,
}

impl Command {
    /// The commands of a simple Query string, separated by semicolons
    /// (one [`Command::Empty`] when there is none). Every command is
    /// parsed before any runs, as Postgres does.
    pub fn parse_script(sql: &str) -> Result<Vec<Command>, PgError> {
        let pieces: Vec<&str> = sql
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        if pieces.is_empty() {
            return Ok(vec![Command::Empty]);
        }
        pieces.into_iter().map(Self::parse_one).collect()
    }

    /// The one command of an extended-protocol statement.
    pub fn parse(sql: &str) -> Result<Command, PgError> {
        let mut commands = Self::parse_script(sql)?;
        match commands.len() {
            1 => Ok(commands.remove(0)),
            _ => Err(PgError::error(
                "42601",
                "cannot insert multiple commands into a prepared statement",
            )),
        }
    }

    fn parse_one(text: &str) -> Result<Command, PgError> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
        let upper: Vec<&str> = upper.iter().map(String::as_str).collect();
        Ok(match upper.as_slice() {
            ["SHOW", "POOLS"] => Command::ShowPools,
            ["SHOW", "CLIENTS"] => Command::ShowClients,
            ["SHOW", "SERVERS"] => Command::ShowServers,
            ["SHOW", "STATS"] => Command::ShowStats,
            ["SHOW", "SHARDS"] => Command::ShowShards,
            ["SHOW", "QUERIES"] => Command::ShowQueries,
            ["SHOW", "SLOW"] => Command::ShowSlow,
            ["SHOW", "CACHE"] => Command::ShowCache,
            ["SHOW", "CONFIG"] => Command::ShowConfig,
            ["SHOW", "REPLICAS"] => Command::ShowReplicas,
            ["SHOW", "VERSION"] => Command::ShowVersion,
            ["RELOAD"] => Command::Reload,
            ["PAUSE"] => Command::Pause,
            ["RESUME"] => Command::Resume,
            ["SHUTDOWN"] => Command::Shutdown,
            ["PROMOTE", _, _] => Command::Promote {
                shard: words[1].to_string(),
                server: words[2].to_string(),
            },
            _ => {
                return Err(
                    PgError::error("42601", format!("unknown admin command \"{text}\""))
                        .with_hint(format!("known commands: {KNOWN}")),
                );
            }
        })
    }

    /// Whether the answer is a result set (the `SHOW` commands, which
    /// change nothing and may run just to describe their columns).
    pub fn returns_rows(&self) -> bool {
        matches!(
            self,
            Command::ShowPools
                | Command::ShowClients
                | Command::ShowServers
                | Command::ShowStats
                | Command::ShowShards
                | Command::ShowQueries
                | Command::ShowSlow
                | Command::ShowCache
                | Command::ShowConfig
                | Command::ShowReplicas
                | Command::ShowVersion
        )
    }

    /// Runs the command; returns its answer (without ReadyForQuery).
    pub async fn run(&self, shared: &Shared) -> Result<BytesMut, PgError> {
        match self {
            Command::ShowPools => Ok(super::pools::show_pools(shared)),
            Command::ShowClients => Ok(super::clients::show_clients(shared)),
            Command::ShowServers => Ok(super::pools::show_servers(shared)),
            Command::ShowStats => Ok(super::statements::show_stats(shared)),
            Command::ShowShards => Ok(super::shards::show_shards(shared).await),
            Command::ShowQueries => Ok(super::statements::show_queries(shared)),
            Command::ShowSlow => Ok(super::statements::show_slow(shared)),
            Command::ShowCache => Ok(super::cache::show_cache(shared)),
            Command::ShowConfig => Ok(show_config(shared)),
            Command::ShowReplicas => Ok(show_replicas(shared)),
            Command::ShowVersion => Ok(result_set(
                &["version", "config_generation"],
                &[vec![
                    format!("shardwire {}", env!("CARGO_PKG_VERSION")),
                    shared.runtime().generation.to_string(),
                ]],
                "SHOW",
            )),
            Command::Reload => super::reload::reload(shared).await,
            Command::Pause => super::pools::pause(shared).await,
            Command::Resume => Ok(super::pools::resume(shared)),
            Command::Shutdown => Ok(completion("SHUTDOWN")),
            Command::Promote { shard, server } => promote(shared, shard, server).await,
            Command::Empty => {
                let mut out = BytesMut::new();
                put_empty(&mut out, backend_tag::EMPTY_QUERY);
                Ok(out)
            }
        }
    }
}

/// The answer of a command without rows: its CommandComplete.
pub fn completion(tag: &str) -> BytesMut {
    let mut out = BytesMut::new();
    command_complete(&mut out, tag);
    out
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
    let rows: Vec<Vec<String>> = shared
        .runtime()
        .config
        .settings()
        .into_iter()
        .map(|(key, value)| {
            let shown = match key.ends_with("password") {
                true => "********".to_string(),
                false => value,
            };
            vec![key, shown]
        })
        .collect();
    result_set(&["key", "value"], &rows, "SHOW")
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
    Ok(completion("PROMOTE"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_case_insensitively_with_semicolons() {
        assert_eq!(
            Command::parse_script("show pools; SHOW  Clients;").unwrap(),
            vec![Command::ShowPools, Command::ShowClients]
        );
        assert_eq!(Command::parse(" pause ; ").unwrap(), Command::Pause);
        assert_eq!(
            Command::parse("PROMOTE shard0 127.0.0.1:5433").unwrap(),
            Command::Promote {
                shard: "shard0".into(),
                server: "127.0.0.1:5433".into()
            }
        );
        assert_eq!(Command::parse_script(" ; ").unwrap(), vec![Command::Empty]);
    }

    #[test]
    fn unknown_commands_list_the_known_ones() {
        let error = Command::parse_script("SHOW POOLS; FROBNICATE").unwrap_err();
        assert_eq!(error.code, "42601");
        assert!(error.message.contains("FROBNICATE"));
        let hint = error.hint.unwrap_or_default();
        assert!(hint.contains("SHOW POOLS") && hint.contains("SHUTDOWN"));
        let error = Command::parse("SHOW POOLS; SHOW CLIENTS").unwrap_err();
        assert_eq!(error.code, "42601");
    }

    #[test]
    fn only_show_commands_return_rows() {
        assert!(Command::ShowShards.returns_rows());
        assert!(!Command::Reload.returns_rows());
        assert!(!Command::Empty.returns_rows());
    }
}
