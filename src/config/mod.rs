//! The proxy's configuration: a TOML file parsed into immutable snapshots.
//!
//! The format is the stable contract between operators and shardwire: later
//! capabilities (shard maps, replicas, observability) add sections, they never
//! rename existing keys. Every field has a default where one is sensible, so a
//! minimal file names only users, databases and shards.

mod live;
mod observe;
mod replicas;
mod settings;
mod shard_maps;
mod validate;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::sharding::map::ShardMap;
pub use live::restart_only_changes;
pub use observe::{MetricsSettings, ObserveSettings};
pub use replicas::{LoadBalance, ReplicaSettings};
pub(crate) use validate::Checker;
pub use validate::{Problem, validate};

/// The whole configuration file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listening sockets and protocol limits.
    #[serde(default)]
    pub proxy: ProxySettings,
    /// TLS towards clients; absent means SSLRequest is answered `N`.
    #[serde(default)]
    pub tls: Option<TlsSettings>,
    /// Default pool settings, applied to every (user, database, server) pool.
    #[serde(default)]
    pub pool: PoolSettings,
    /// Client-side users: who may connect and how they authenticate.
    #[serde(default)]
    pub users: Vec<User>,
    /// Logical databases clients connect to.
    #[serde(default)]
    pub databases: Vec<Database>,
    /// The Postgres servers, one primary (plus replicas) per shard.
    #[serde(default)]
    pub shards: Vec<Shard>,
    /// How reads use the shards' replicas.
    #[serde(default)]
    pub replicas: ReplicaSettings,
    /// Statement statistics and the slow-query log.
    #[serde(default)]
    pub observe: ObserveSettings,
    /// The Prometheus endpoint.
    #[serde(default)]
    pub metrics: MetricsSettings,
    /// The loaded shard map of each sharded database, by logical database
    /// name (filled by [`Config::load`] / [`Config::from_toml`] from each
    /// database's `shard_map` file, or by [`Config::load_shard_maps`]); a
    /// database without one is unsharded: everything on shard 0.
    #[serde(skip)]
    pub shard_maps: HashMap<String, Arc<ShardMap>>,
    /// The file this config was loaded from (RELOAD reads it again);
    /// `None` for a config built in memory.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// Listening sockets, timeouts and limits of the client side.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProxySettings {
    /// TCP addresses to listen on.
    pub listen: Vec<String>,
    /// Directory for a Unix socket named `.s.PGSQL.<port>` (port of the first
    /// TCP address), as libpq expects; absent means no Unix socket.
    pub unix_socket_dir: Option<PathBuf>,
    /// A client must finish its startup and authentication within this time.
    pub startup_timeout_ms: u64,
    /// Largest protocol message accepted from a client or a server; larger
    /// ones are refused with SQLSTATE 54000 and the connection is closed.
    pub max_message_bytes: usize,
    /// How long a graceful shutdown waits for running transactions.
    pub shutdown_timeout_ms: u64,
    /// Log format: `human` or `json`.
    pub log_format: LogFormat,
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            listen: vec!["127.0.0.1:6432".to_string()],
            unix_socket_dir: None,
            startup_timeout_ms: 10_000,
            max_message_bytes: 64 * 1024 * 1024,
            shutdown_timeout_ms: 30_000,
            log_format: LogFormat::Human,
        }
    }
}

impl ProxySettings {
    /// Time allowed for startup and authentication.
    pub fn startup_timeout(&self) -> Duration {
        Duration::from_millis(self.startup_timeout_ms)
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

/// TLS certificate and key for client connections.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Refuse clients that do not ask for TLS on TCP connections.
    #[serde(default)]
    pub require: bool,
}

/// Pooling behaviour of a pool: when a server connection is lent to a client.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    /// A server connection is lent for one transaction (or one statement
    /// outside a transaction) and returned as soon as the server is idle.
    #[default]
    Transaction,
    /// A server connection is lent for the whole client session.
    Session,
}

/// Sizing and lifetime of server connection pools.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PoolSettings {
    /// Transaction or session pooling.
    pub mode: PoolMode,
    /// Most server connections one pool opens.
    pub size: usize,
    /// Idle server connections a pool keeps open even without clients.
    pub min_idle: usize,
    /// Time allowed to connect and authenticate to a server.
    pub connect_timeout_ms: u64,
    /// Time a client waits for a free server connection before it gets an error.
    pub checkout_timeout_ms: u64,
    /// Idle server connections beyond `min_idle` are closed after this time.
    pub idle_timeout_ms: u64,
    /// Server connections are closed (when idle) after this age.
    pub server_lifetime_ms: u64,
    /// A server that owes a client answers and sends nothing for this long
    /// is given up on: the statement is cancelled, the client gets SQLSTATE
    /// 57014 and the server connection is closed, so no client waits
    /// forever on a hung server. 0 turns the limit off (the default, as a
    /// long query is legitimate).
    pub query_timeout_ms: u64,
    /// Prepared statements kept per server connection in transaction mode;
    /// the least recently used are closed beyond it.
    pub max_prepared_statements: usize,
    /// Query run on a server connection before another session gets it
    /// (session mode only).
    pub reset_query: String,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            mode: PoolMode::Transaction,
            size: 8,
            min_idle: 0,
            connect_timeout_ms: 5_000,
            checkout_timeout_ms: 30_000,
            idle_timeout_ms: 600_000,
            server_lifetime_ms: 3_600_000,
            query_timeout_ms: 0,
            max_prepared_statements: 1_000,
            reset_query: "DISCARD ALL".to_string(),
        }
    }
}

impl PoolSettings {
    /// Time allowed to connect and authenticate to a server.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    /// Time a client waits for a server connection.
    pub fn checkout_timeout(&self) -> Duration {
        Duration::from_millis(self.checkout_timeout_ms)
    }
    /// Idle time after which surplus server connections close.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
    /// Age after which server connections are replaced.
    pub fn server_lifetime(&self) -> Duration {
        Duration::from_millis(self.server_lifetime_ms)
    }
    /// Silence of a server owing answers after which it is given up on.
    pub fn query_timeout(&self) -> Option<Duration> {
        (self.query_timeout_ms > 0).then(|| Duration::from_millis(self.query_timeout_ms))
    }
}

/// How a client proves who it is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMethod {
    /// SCRAM-SHA-256 (RFC 7677), the default.
    #[default]
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// The legacy md5 challenge.
    Md5,
    /// No password at all: only for loopback test setups.
    Trust,
}

/// A client-side user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The name clients log in with.
    pub name: String,
    /// The client's password: plain text, or a Postgres-style stored secret
    /// (`SCRAM-SHA-256$<iter>:<salt>$<stored>:<server>` or `md5<hex>`).
    #[serde(default)]
    pub password: Option<String>,
    /// Authentication method required from clients.
    #[serde(default)]
    pub auth: AuthMethod,
    /// Role used on the servers (defaults to `name`).
    #[serde(default)]
    pub server_user: Option<String>,
    /// Password used on the servers (defaults to `password` when that is plain text).
    #[serde(default)]
    pub server_password: Option<String>,
    /// Pool mode for this user's pools (defaults to `[pool].mode`).
    #[serde(default)]
    pub pool_mode: Option<PoolMode>,
    /// Pool size for this user's pools (defaults to `[pool].size`).
    #[serde(default)]
    pub pool_size: Option<usize>,
    /// May use the admin console (database `shardwire`).
    #[serde(default)]
    pub admin: bool,
}

impl User {
    /// A SCRAM-authenticated user whose plain password is also its server
    /// password, with everything else at its default: the usual starting
    /// point (the demo, tests).
    pub fn with_password(name: &str, password: &str) -> User {
        User {
            name: name.to_string(),
            password: Some(password.to_string()),
            auth: AuthMethod::ScramSha256,
            server_user: None,
            server_password: None,
            pool_mode: None,
            pool_size: None,
            admin: false,
        }
    }

    /// The role name used on the servers.
    pub fn server_user(&self) -> &str {
        self.server_user.as_deref().unwrap_or(&self.name)
    }

    /// The password used on the servers, if any is known in plain text.
    pub fn server_password(&self) -> Option<&str> {
        self.server_password
            .as_deref()
            .or_else(|| self.password.as_deref().filter(|p| !is_stored_secret(p)))
    }
}

/// Whether a configured password is a stored secret rather than plain text.
pub fn is_stored_secret(password: &str) -> bool {
    password.starts_with("SCRAM-SHA-256$")
        || (password.len() == 35
            && password.starts_with("md5")
            && password[3..].bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A logical database clients connect to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Database {
    /// Name clients use in their connection string.
    pub name: String,
    /// Database name on the servers (defaults to `name`).
    #[serde(default)]
    pub server_database: Option<String>,
    /// Shard map file (`shard-maps/*.toml`, relative to the config file's
    /// folder) spreading this database over the shards; absent: the
    /// database is unsharded and lives on the first shard.
    #[serde(default)]
    pub shard_map: Option<PathBuf>,
}

impl Database {
    /// The database name on the servers.
    pub fn server_database(&self) -> &str {
        self.server_database.as_deref().unwrap_or(&self.name)
    }
}

/// One shard: a primary and its streaming replicas.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Shard {
    /// A name unique among shards, used in logs and the admin console.
    pub name: String,
    /// `host:port` of the primary.
    pub primary: String,
    /// `host:port` of each replica.
    #[serde(default)]
    pub replicas: Vec<String>,
}

/// Errors that stop a configuration from loading.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The file parsed but its contents are inconsistent.
    #[error("{path}: {} problem(s):\n{}", problems.len(), render_problems(problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found, each with its location.
        problems: Vec<Problem>,
    },
}

fn render_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Config {
    /// One listen address, one user, one database on one shard, every other
    /// setting at its default: what the demo and the tests start from.
    pub fn single_shard(listen: &str, user: User, database: &str, primary: &str) -> Config {
        Config {
            proxy: ProxySettings {
                listen: vec![listen.to_string()],
                ..ProxySettings::default()
            },
            tls: None,
            pool: PoolSettings::default(),
            users: vec![user],
            databases: vec![Database {
                name: database.to_string(),
                server_database: None,
                shard_map: None,
            }],
            shards: vec![Shard {
                name: "shard0".to_string(),
                primary: primary.to_string(),
                replicas: vec![],
            }],
            replicas: ReplicaSettings::default(),
            observe: ObserveSettings::default(),
            metrics: MetricsSettings::default(),
            shard_maps: HashMap::new(),
            source: None,
        }
    }

    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::from_toml(&text, path)?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses and validates config text and loads its shard maps; `path`
    /// names it in messages and anchors relative paths (TLS files, shard
    /// maps). Problems of the config and of its shard maps are reported
    /// together.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut problems = validate(&config);
        if let Some(base) = path.parent() {
            config.resolve_relative_paths(base);
        }
        problems.extend(config.load_shard_maps());
        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            });
        }
        Ok(config)
    }

    fn resolve_relative_paths(&mut self, base: &Path) {
        let tls_files = self
            .tls
            .iter_mut()
            .flat_map(|tls| [&mut tls.cert, &mut tls.key]);
        let maps = self
            .databases
            .iter_mut()
            .filter_map(|db| db.shard_map.as_mut());
        let observe_files = [
            &mut self.observe.snapshot_path,
            &mut self.observe.slow_log_path,
        ]
        .into_iter()
        .flatten();
        for p in tls_files.chain(maps).chain(observe_files) {
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        }
    }

    /// Reads every database's `shard_map` file (paths as they stand: call
    /// after resolving them) into [`Config::shard_maps`], replacing what was
    /// there; returns the problems found, each map problem located as
    /// `<map file>: <key path>`. Databases whose map has problems get none.
    pub fn load_shard_maps(&mut self) -> Vec<Problem> {
        let (maps, problems) = shard_maps::load(self);
        self.shard_maps = maps;
        problems
    }

    /// The shard map of a logical database; `None` when it is unsharded.
    pub fn shard_map(&self, database: &str) -> Option<&Arc<ShardMap>> {
        self.shard_maps.get(database)
    }

    /// Renders the config back to TOML (used by the demo and `SHOW CONFIG`).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render config: {e}"))
    }

    /// Finds a client-side user by name.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    /// Finds a logical database by name.
    pub fn database(&self, name: &str) -> Option<&Database> {
        self.databases.iter().find(|d| d.name == name)
    }

    /// Parsed listen addresses (validated at load time).
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.proxy
            .listen
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect()
    }

    /// Pool mode of a user's pools.
    pub fn pool_mode(&self, user: &User) -> PoolMode {
        user.pool_mode.unwrap_or(self.pool.mode)
    }

    /// Pool size of a user's pools.
    pub fn pool_size(&self, user: &User) -> usize {
        user.pool_size.unwrap_or(self.pool.size)
    }
}
