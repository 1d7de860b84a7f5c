//! Real local PostgreSQL clusters, started from the system's server binaries.
//!
//! `localcluster` is what the integration tests and `shardwire demo` use to get
//! actual Postgres servers (primaries and streaming replicas) on loopback ports,
//! so nothing in the project has to mock a database.
//!
//! # Layout of a cluster directory
//!
//! Every cluster lives in one *cluster directory* (a temporary directory, or the
//! directory given to [`LocalCluster::open_or_init`]):
//!
//! ```text
//! <cluster dir>/data/          PGDATA (initdb output or a copy of the template)
//! <cluster dir>/socket/        unix_socket_directories (no /var/run needed)
//! <cluster dir>/postgres.log   server log (`pg_ctl -l`)
//! ```
//!
//! Settings chosen by this module go into `data/shardwire.conf`, included from
//! the end of `postgresql.conf`; replica-only settings (`primary_conninfo`,
//! `recovery_min_apply_delay`) go into `postgresql.auto.conf` so they survive a
//! reopen.
//!
//! # Running as root
//!
//! `initdb` and `postgres` refuse to run as root. When the effective uid is 0,
//! every server binary (`initdb`, `pg_ctl`, `pg_basebackup`) is run as the
//! `postgres` OS user (via `CommandExt::uid`/`gid`, no `su`/`runuser` needed)
//! and the directories are chowned to that user. Without such a user, the
//! module fails with a message saying so. Client tools (`psql`, `pg_isready`)
//! run as the current user.
//!
//! # Blocking
//!
//! The API is synchronous (it runs processes and waits for them). It works when
//! called from inside a tokio runtime, but it blocks the calling thread: async
//! callers should wrap it in `tokio::task::spawn_blocking`, or accept the block
//! at setup time (tests and demo start-up do).
//!
//! # Speed
//!
//! The first `initdb` for a given (binaries, version, password, locale, OS user)
//! goes into a template under the system temp dir
//! (`shardwire-initdb-template-<hash>`); later clusters copy that template
//! instead of running `initdb`. Set `SHARDWIRE_NO_INITDB_TEMPLATE=1` to always
//! run `initdb`. Note that clusters copied from one template share the same
//! system identifier.
//!
//! # Clean-up
//!
//! A cluster is stopped when its [`LocalCluster`] is dropped; a temporary one is
//! also deleted. Every running cluster is also kept in a process-wide registry:
//! [`stop_all_registered`] stops them all (call it from a Ctrl-C handler), and an
//! `atexit` hook does the same when the process exits without dropping them.

mod binaries;
mod cluster;
mod conf;
mod pidfile;
mod process;
mod registry;
mod runas;
mod server;
mod template;

use std::path::PathBuf;
use std::time::Duration;

pub use binaries::{find_pg_bin, find_pg_bin_from};
pub use cluster::LocalCluster;
pub use registry::stop_all_registered;

/// Name of the superuser every local cluster is created with.
///
/// Fixed so that tests and the demo can rely on it.
pub const SUPERUSER: &str = "postgres";

/// Loopback address every local cluster listens on (and the only one).
pub const HOST: &str = "127.0.0.1";

/// Options for creating or opening a local cluster.
///
/// The defaults suit both tests and the demo; tests usually set
/// [`fast_unsafe`](Self::fast_unsafe) to `true`.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Password of the `postgres` superuser (SCRAM-SHA-256 over TCP).
    pub superuser_password: String,
    /// `max_connections` of the server.
    pub max_connections: u32,
    /// `shared_buffers` of the server, as a Postgres size string (e.g. "128MB").
    pub shared_buffers: String,
    /// Turn off `fsync`, `synchronous_commit` and `full_page_writes`: faster,
    /// but an OS crash can lose or corrupt data. For tests only.
    pub fast_unsafe: bool,
    /// `max_prepared_transactions` (two-phase commit slots); 0 disables 2PC.
    pub max_prepared_transactions: u32,
    /// Arbitrary extra `postgresql.conf` settings, written last (so they win).
    /// Values are written as quoted strings, which Postgres accepts for any
    /// setting type.
    pub extra_settings: Vec<(String, String)>,
    /// Port to listen on. `None` picks a free loopback port (and picks another
    /// one if it gets taken before the server binds it).
    pub port: Option<u16>,
    /// Folder holding `initdb`, `pg_ctl` and `postgres`. `None` uses
    /// [`find_pg_bin`].
    pub pg_bin: Option<PathBuf>,
    /// How long to wait for the server to start (or stop) before failing.
    pub start_timeout: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            superuser_password: "postgres".to_string(),
            max_connections: 200,
            shared_buffers: "128MB".to_string(),
            fast_unsafe: false,
            max_prepared_transactions: 20,
            extra_settings: Vec::new(),
            port: None,
            pg_bin: None,
            start_timeout: Duration::from_secs(60),
        }
    }
}

impl ClusterOptions {
    /// Defaults suited to tests: like [`Default`] but with
    /// [`fast_unsafe`](Self::fast_unsafe) on.
    pub fn for_tests() -> Self {
        ClusterOptions {
            fast_unsafe: true,
            ..ClusterOptions::default()
        }
    }
}

/// Options for [`LocalCluster::create_replica`].
///
/// Everything else (password, max_connections, ...) is inherited from the
/// primary's [`ClusterOptions`], as a hot standby requires several of them to be
/// at least the primary's values.
#[derive(Debug, Clone, Default)]
pub struct ReplicaOptions {
    /// Port for the replica; `None` picks a free one.
    pub port: Option<u16>,
    /// `recovery_min_apply_delay`: make the replica lag on purpose (tests of
    /// read-your-writes routing need a replica that is behind).
    pub recovery_min_apply_delay: Option<Duration>,
    /// Extra settings for the replica only, added after the primary's.
    pub extra_settings: Vec<(String, String)>,
}

/// Whether a cluster is a primary or a streaming replica (hot standby).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Accepts writes.
    Primary,
    /// Hot standby streaming from a primary; read-only until promoted.
    Replica,
}
