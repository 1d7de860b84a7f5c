//! [`LocalCluster`]: one running local PostgreSQL server and its directory.

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use super::binaries::PgBin;
use super::conf::{self, SETTINGS_FILE};
use super::pidfile::{self, ServerState};
use super::process;
use super::registry;
use super::runas::{RunAs, client_command};
use super::server::{self, StopMode};
use super::template;
use super::{ClusterOptions, HOST, ReplicaOptions, Role, SUPERUSER};

/// How many ports to try when the chosen one gets taken before the server binds it.
const PORT_ATTEMPTS: usize = 5;
/// Longest allowed unix socket directory (sun_path is 108 bytes, and the socket
/// name `.s.PGSQL.NNNNN` plus a slash and NUL need 16).
const MAX_SOCKET_DIR_LEN: usize = 90;
const PSQL_TIMEOUT: Duration = Duration::from_secs(600);
const BASEBACKUP_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a running server found by `open_or_init` may take to accept
/// connections before it is restarted instead of adopted.
const ADOPT_WAIT: Duration = Duration::from_secs(30);

/// A real local PostgreSQL server (primary or streaming replica) listening on
/// 127.0.0.1, with its cluster directory.
///
/// Created by [`LocalCluster::start_temp`], [`LocalCluster::open_or_init`] or
/// [`LocalCluster::create_replica`]. Dropping it stops the server (fast
/// shutdown, falling back to immediate, then SIGKILL); a temporary cluster's
/// directory is deleted too, a kept one stays. All methods block (they run
/// processes): from async code use `spawn_blocking` or accept the block.
#[derive(Debug)]
pub struct LocalCluster {
    bin: PgBin,
    psql: PathBuf,
    run_as: RunAs,
    root: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    /// A socket directory outside `root` (used when `root` is too long for a
    /// unix socket path); removed on drop.
    outside_socket_dir: bool,
    log_file: PathBuf,
    port: u16,
    opts: ClusterOptions,
    replica: AtomicBool,
    adopted: bool,
    keep: bool,
    registry_id: u64,
    /// Dropped after `Drop::drop` stopped the server.
    _temp: Option<TempDir>,
}

impl LocalCluster {
    /// Starts a new cluster in a fresh temporary directory (deleted on drop):
    /// a copy of the cached initdb template, configured per `opts`, started on
    /// a free loopback port (or `opts.port`).
    pub fn start_temp(opts: &ClusterOptions) -> Result<LocalCluster> {
        let bin = PgBin::resolve(opts.pg_bin.as_deref())?;
        let run_as = RunAs::detect()?;
        let (root, temp) = new_temp_root()?;
        run_as.prepare_dir(&root)?;
        template::create_data_dir(&bin, &run_as, &opts.superuser_password, &root.join("data"))?;
        let mut cluster = Self::assemble(bin, run_as, root, opts.clone(), Some(temp))?;
        cluster.start_on_chosen_port(opts.port)?;
        Ok(cluster)
    }

    /// Opens the cluster kept in `dir` (creating it on first use), for
    /// `shardwire demo --dir DIR --keep`. The directory is kept on drop; the
    /// server is stopped.
    ///
    /// - `dir/data` holds no cluster yet: it is initialized and started.
    /// - It holds a cluster whose server already runs and accepts connections:
    ///   that server is adopted (see [`is_adopted`](Self::is_adopted)), on the
    ///   port it uses.
    /// - It holds a cluster with a stale `postmaster.pid` (a crash): leftover
    ///   processes are waited for (or killed), the pid file removed, and the
    ///   server started (Postgres runs crash recovery).
    /// - The port the cluster used last time is taken by another program: a new
    ///   free port is chosen and a warning logged (unless `opts.port` demands a
    ///   specific port, which then must be free).
    ///
    /// `dir` is the cluster directory (holding `data/`, `socket/`,
    /// `postgres.log`), not a bare data directory.
    pub fn open_or_init(dir: &Path, opts: &ClusterOptions) -> Result<LocalCluster> {
        let bin = PgBin::resolve(opts.pg_bin.as_deref())?;
        let run_as = RunAs::detect()?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let root =
            std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
        if root.join("PG_VERSION").exists() {
            bail!(
                "{} is itself a PostgreSQL data directory; open_or_init expects the directory \
                 that holds data/ (and socket/, postgres.log): pass a new or shardwire-made directory",
                root.display()
            );
        }
        run_as.prepare_dir(&root)?;
        let data = root.join("data");
        let existed = data.join("PG_VERSION").is_file();
        if !existed {
            prepare_empty_target(&data)?;
            template::create_data_dir(&bin, &run_as, &opts.superuser_password, &data)?;
            tracing::info!(dir = %root.display(), "initialized a new PostgreSQL cluster");
        }
        let mut cluster = Self::assemble(bin, run_as, root, opts.clone(), None)?;
        if existed && cluster.try_adopt()? {
            return Ok(cluster);
        }
        // An explicit port must be free; a port remembered from the last run is
        // reused if free, else (like a fresh pick) replaced by a free one.
        let fixed = opts.port.is_some();
        cluster.port = match opts.port {
            Some(p) => {
                if !port_is_free(p) {
                    bail!("port {p} (ClusterOptions::port) is already in use on {HOST}");
                }
                p
            }
            None => {
                let previous = conf::read_setting(&cluster.data_dir.join(SETTINGS_FILE), "port")
                    .and_then(|p| p.parse::<u16>().ok());
                match previous {
                    Some(p) if port_is_free(p) => p,
                    Some(p) => {
                        let new_port = free_port()?;
                        tracing::warn!(
                            dir = %cluster.root.display(),
                            "port {p}, used by this cluster before, is taken by another program; using port {new_port} instead"
                        );
                        new_port
                    }
                    None => free_port()?,
                }
            }
        };
        cluster.start_with_retries(!fixed)?;
        Ok(cluster)
    }

    /// Creates a streaming replica (hot standby) of this running cluster with
    /// `pg_basebackup -R -X stream`, configures it (its own port, socket,
    /// `recovery_min_apply_delay`) and starts it.
    ///
    /// `dir`: the replica's cluster directory, kept on drop; `None` = a
    /// temporary directory. If `dir` already holds a replica (from an earlier
    /// run), that replica is opened as with [`open_or_init`](Self::open_or_init).
    /// The replica inherits this cluster's options (password,
    /// max_connections, ... must match for a hot standby), plus `opts`.
    pub fn create_replica(
        &self,
        dir: Option<&Path>,
        opts: &ReplicaOptions,
    ) -> Result<LocalCluster> {
        if !self.is_running() {
            bail!(
                "cannot create a replica of {}: its server is not running",
                self.root.display()
            );
        }
        let mut ropts = self.opts.clone();
        ropts.port = opts.port;
        ropts
            .extra_settings
            .extend(opts.extra_settings.iter().cloned());
        let (root, temp) = match dir {
            Some(d) => {
                std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
                let root = std::fs::canonicalize(d)
                    .with_context(|| format!("resolving {}", d.display()))?;
                let data = root.join("data");
                if data.join("PG_VERSION").is_file() {
                    if data.join("standby.signal").is_file() {
                        tracing::info!(dir = %root.display(), "reusing the existing replica");
                        return Self::open_or_init(&root, &ropts);
                    }
                    bail!(
                        "{} already holds a cluster that is not a replica; choose another directory",
                        root.display()
                    );
                }
                (root, None)
            }
            None => {
                let (root, temp) = new_temp_root()?;
                (root, Some(temp))
            }
        };
        let run_as = self.run_as.clone();
        run_as.prepare_dir(&root)?;
        let data = root.join("data");
        prepare_empty_target(&data)?;

        let mut cmd = run_as.command(self.bin.tool("pg_basebackup"));
        cmd.args([
            "-h",
            HOST,
            "-p",
            &self.port.to_string(),
            "-U",
            SUPERUSER,
            "-D",
        ])
        .arg(&data)
        .args(["-R", "-X", "stream", "--checkpoint=fast"])
        .env("PGPASSWORD", &self.opts.superuser_password)
        .env("PGCONNECT_TIMEOUT", "10");
        if self.opts.fast_unsafe {
            cmd.arg("--no-sync");
        }
        let out = process::run(&mut cmd, BASEBACKUP_TIMEOUT, "pg_basebackup")?;
        if !out.status.success() {
            bail!(
                "pg_basebackup from {HOST}:{} into {} failed ({}): {}",
                self.port,
                data.display(),
                out.status,
                out.describe()
            );
        }
        let conninfo = format!(
            "host={HOST} port={} user={SUPERUSER} password={} application_name=shardwire_replica",
            self.port,
            conf::conninfo_value(&self.opts.superuser_password)
        );
        let delay_ms = opts
            .recovery_min_apply_delay
            .map(|d| d.as_millis())
            .unwrap_or(0);
        conf::set_in_file(
            &data.join("postgresql.auto.conf"),
            &run_as,
            &[
                ("primary_conninfo", conninfo),
                ("recovery_min_apply_delay", format!("{delay_ms}ms")),
            ],
        )?;
        let signal = data.join("standby.signal");
        if !signal.is_file() {
            run_as.write_file(&signal, "")?;
        }
        let mut replica = Self::assemble(self.bin.clone(), run_as, root, ropts, temp)?;
        replica.start_on_chosen_port(opts.port)?;
        Ok(replica)
    }

    /// Promotes this replica to a primary (`pg_ctl promote -w`); returns once
    /// it accepts writes.
    pub fn promote(&self) -> Result<()> {
        if self.role() != Role::Replica {
            bail!(
                "cannot promote {}: it is not a replica",
                self.root.display()
            );
        }
        let secs = self.opts.start_timeout.as_secs().max(1);
        let mut cmd = self.run_as.command(self.bin.tool("pg_ctl"));
        cmd.arg("promote")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-w", "-t", &secs.to_string()]);
        let out = process::run(
            &mut cmd,
            self.opts.start_timeout + Duration::from_secs(30),
            "pg_ctl promote",
        )?;
        if !out.status.success() {
            bail!(
                "pg_ctl promote of {} failed ({}): {}\n{}",
                self.root.display(),
                out.status,
                out.describe(),
                self.log_tail(0)
            );
        }
        self.replica.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Stops the server cleanly (fast shutdown, falling back to immediate and
    /// then SIGKILL). The directory stays; [`start`](Self::start) restarts it.
    pub fn stop(&mut self) -> Result<()> {
        server::stop(
            &self.bin.tool("pg_ctl"),
            &self.run_as,
            &self.data_dir,
            StopMode::Fast,
            self.opts.start_timeout,
        )?;
        self.adopted = false;
        Ok(())
    }

    /// Stops the server the hard way (`pg_ctl stop -m immediate`), like a
    /// crash: the next [`start`](Self::start) runs crash recovery.
    pub fn kill(&mut self) -> Result<()> {
        server::stop(
            &self.bin.tool("pg_ctl"),
            &self.run_as,
            &self.data_dir,
            StopMode::Immediate,
            self.opts.start_timeout,
        )?;
        self.adopted = false;
        Ok(())
    }

    /// Starts the server again after [`stop`](Self::stop) or
    /// [`kill`](Self::kill), on the same port (clients already know it); fails
    /// if another program took the port meanwhile. No-op if it runs.
    pub fn start(&mut self) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        if !port_is_free(self.port) {
            bail!(
                "cannot restart {}: port {} is now used by another program",
                self.root.display(),
                self.port
            );
        }
        self.start_with_retries(false)
    }

    /// True if a live server runs for this cluster's data directory.
    pub fn is_running(&self) -> bool {
        matches!(
            pidfile::server_state(&self.data_dir),
            Ok(ServerState::Running(_))
        )
    }

    /// Waits until the server accepts TCP connections (`pg_isready`), at most
    /// `timeout`; the error includes the end of the server log.
    pub fn wait_ready(&self, timeout: Duration) -> Result<()> {
        if self.probe_ready(self.port, timeout) {
            return Ok(());
        }
        bail!(
            "PostgreSQL at {HOST}:{} ({}) did not accept connections within {}s\n{}",
            self.port,
            self.root.display(),
            timeout.as_secs(),
            self.log_tail(0)
        )
    }

    /// The TCP port the server listens on (127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address the server listens on: always "127.0.0.1".
    pub fn host(&self) -> &'static str {
        HOST
    }

    /// The cluster directory (holding `data/`, `socket/`, `postgres.log`).
    pub fn cluster_dir(&self) -> &Path {
        &self.root
    }

    /// The data directory (PGDATA).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The directory of the server's unix socket (superuser `trust` login).
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The server log file (`pg_ctl -l`).
    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    /// The superuser's name: always "postgres".
    pub fn superuser(&self) -> &'static str {
        SUPERUSER
    }

    /// The superuser's password (SCRAM-SHA-256 over TCP).
    pub fn password(&self) -> &str {
        &self.opts.superuser_password
    }

    /// Primary, or Replica (hot standby) until promoted.
    pub fn role(&self) -> Role {
        if self.replica.load(Ordering::SeqCst) {
            Role::Replica
        } else {
            Role::Primary
        }
    }

    /// True if [`open_or_init`](Self::open_or_init) found this server already
    /// running and took it over instead of starting it.
    pub fn is_adopted(&self) -> bool {
        self.adopted
    }

    /// The options this cluster was configured with.
    pub fn options(&self) -> &ClusterOptions {
        &self.opts
    }

    /// The folder of the server binaries in use, so that callers can run
    /// `pgbench`, `psql`, ... of the same installation.
    pub fn pg_bin(&self) -> &Path {
        self.bin.dir()
    }

    /// The `psql` this cluster uses (the bindir's, else /usr/bin/psql).
    pub fn psql_path(&self) -> &Path {
        &self.psql
    }

    /// A libpq / tokio-postgres connection string for the superuser over TCP:
    /// `host=127.0.0.1 port=... user=postgres password=... dbname=...`.
    pub fn connection_string(&self, dbname: &str) -> String {
        format!(
            "host={HOST} port={} user={SUPERUSER} password={} dbname={}",
            self.port,
            conf::conninfo_value(&self.opts.superuser_password),
            conf::conninfo_value(dbname)
        )
    }

    /// Runs SQL as the superuser through the unix socket with
    /// `psql -X -A -t -q -v ON_ERROR_STOP=1 -c SQL` and returns what it printed
    /// (unaligned rows, `|`-separated, no headers or command tags), without the
    /// final newline. For setup scripts; the error includes psql's stderr.
    /// Several `;`-separated statements in one call run as one transaction
    /// (one simple-query message), so statements such as `CREATE DATABASE`
    /// or `VACUUM` need a call of their own.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String> {
        let mut cmd = client_command(&self.psql);
        cmd.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.socket_dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
                "-d",
                db,
                "-c",
                sql,
            ])
            .env("PGPASSWORD", &self.opts.superuser_password)
            .env("PGCONNECT_TIMEOUT", "10");
        let out = process::run(&mut cmd, PSQL_TIMEOUT, "psql")?;
        if !out.status.success() {
            let shown: String = sql.chars().take(500).collect();
            bail!(
                "psql (port {}, database {db}) failed ({}): {}\nSQL: {shown}",
                self.port,
                out.status,
                out.describe()
            );
        }
        let mut s = out.stdout;
        while s.ends_with('\n') {
            s.pop();
        }
        Ok(s)
    }

    /// Creates a login role with `password` (SCRAM), a superuser or not; if
    /// the role exists, sets its password and superuser flag instead
    /// (idempotent, so a kept demo cluster can be set up again).
    pub fn create_role(&self, name: &str, password: &str, superuser: bool) -> Result<()> {
        let exists = self.psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_roles WHERE rolname = {}",
                quote_literal(name)
            ),
        )? != "0";
        let verb = if exists { "ALTER" } else { "CREATE" };
        let su = if superuser {
            "SUPERUSER"
        } else {
            "NOSUPERUSER"
        };
        self.psql(
            "postgres",
            &format!(
                "{verb} ROLE {} LOGIN {su} PASSWORD {}",
                quote_ident(name),
                quote_literal(password)
            ),
        )
        .with_context(|| format!("creating role {name}"))?;
        Ok(())
    }

    /// Creates database `name` owned by `owner`; if it exists, makes `owner`
    /// its owner (idempotent).
    pub fn create_database(&self, name: &str, owner: &str) -> Result<()> {
        let exists = self.psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_database WHERE datname = {}",
                quote_literal(name)
            ),
        )? != "0";
        let sql = if exists {
            format!(
                "ALTER DATABASE {} OWNER TO {}",
                quote_ident(name),
                quote_ident(owner)
            )
        } else {
            format!(
                "CREATE DATABASE {} OWNER {}",
                quote_ident(name),
                quote_ident(owner)
            )
        };
        self.psql("postgres", &sql)
            .with_context(|| format!("creating database {name}"))?;
        Ok(())
    }

    // ----- internals -----

    /// Builds the value around a prepared data directory and registers it.
    fn assemble(
        bin: PgBin,
        run_as: RunAs,
        root: PathBuf,
        opts: ClusterOptions,
        temp: Option<TempDir>,
    ) -> Result<LocalCluster> {
        let data_dir = root.join("data");
        let (socket_dir, outside_socket_dir) = socket_dir_for(&root);
        run_as.prepare_dir(&socket_dir)?;
        let keep = temp.is_none();
        let mut remove = Vec::new();
        if !keep {
            remove.push(root.clone());
            if outside_socket_dir {
                remove.push(socket_dir.clone());
            }
        }
        let registry_id =
            registry::register(bin.tool("pg_ctl"), data_dir.clone(), run_as.clone(), remove);
        let replica = data_dir.join("standby.signal").is_file();
        Ok(LocalCluster {
            psql: bin.client_tool("psql"),
            bin,
            run_as,
            log_file: root.join("postgres.log"),
            root,
            data_dir,
            socket_dir,
            outside_socket_dir,
            port: 0,
            opts,
            replica: AtomicBool::new(replica),
            adopted: false,
            keep,
            registry_id,
            _temp: temp,
        })
    }

    /// Starts on `port` if given (it must be free), else on a free port.
    fn start_on_chosen_port(&mut self, port: Option<u16>) -> Result<()> {
        match port {
            Some(p) => {
                if !port_is_free(p) {
                    bail!("port {p} (ClusterOptions::port) is already in use on {HOST}");
                }
                self.port = p;
                self.start_with_retries(false)
            }
            None => {
                self.port = free_port()?;
                self.start_with_retries(true)
            }
        }
    }

    /// If a healthy server already runs for the data directory, adopts it and
    /// returns true. Restarts an unhealthy one, cleans up after a dead one.
    fn try_adopt(&mut self) -> Result<bool> {
        match pidfile::server_state(&self.data_dir)? {
            ServerState::NotRunning => Ok(false),
            ServerState::Stale(info) => {
                tracing::warn!(
                    dir = %self.root.display(),
                    pid = info.pid,
                    "found a stale postmaster.pid (its server is gone, e.g. after a crash); removing it and starting the server"
                );
                pidfile::reap_orphans(&self.data_dir, Duration::from_secs(10));
                let _ = std::fs::remove_file(pidfile::pid_file(&self.data_dir));
                Ok(false)
            }
            ServerState::Running(info) => {
                if let Some(port) = info.port
                    && self.probe_ready(port, ADOPT_WAIT)
                {
                    self.port = port;
                    if let Some(dir) = info.socket_dir {
                        self.socket_dir = dir;
                    }
                    self.adopted = true;
                    tracing::info!(
                        dir = %self.root.display(),
                        pid = info.pid,
                        port,
                        "adopting the PostgreSQL server already running for this directory"
                    );
                    if self.opts.port.is_some_and(|p| p != port) {
                        tracing::warn!(
                            "the adopted server listens on port {port}, not on the requested port {}",
                            self.opts.port.unwrap_or_default()
                        );
                    }
                    return Ok(true);
                }
                tracing::warn!(
                    dir = %self.root.display(),
                    pid = info.pid,
                    "a server runs for this directory but does not accept connections; restarting it"
                );
                server::stop(
                    &self.bin.tool("pg_ctl"),
                    &self.run_as,
                    &self.data_dir,
                    StopMode::Immediate,
                    self.opts.start_timeout,
                )?;
                Ok(false)
            }
        }
    }

    /// Writes the config and runs `pg_ctl start`; if the port turns out to be
    /// taken and `may_change_port`, tries again on a new free port.
    fn start_with_retries(&mut self, may_change_port: bool) -> Result<()> {
        let mut attempt = 1;
        loop {
            match self.start_once() {
                Ok(()) => return Ok(()),
                Err(failure) => {
                    if may_change_port && failure.port_in_use && attempt < PORT_ATTEMPTS {
                        let new_port = free_port()?;
                        tracing::warn!(
                            dir = %self.root.display(),
                            "port {} was taken before the server could bind it; retrying on port {new_port}",
                            self.port
                        );
                        self.port = new_port;
                        attempt += 1;
                        continue;
                    }
                    return Err(failure.error);
                }
            }
        }
    }

    fn start_once(&mut self) -> std::result::Result<(), StartFailure> {
        let plain = |error: anyhow::Error| StartFailure {
            error,
            port_in_use: false,
        };
        // A crash may have left a pid file behind.
        if let ServerState::Stale(info) = pidfile::server_state(&self.data_dir).map_err(plain)? {
            tracing::warn!(dir = %self.root.display(), pid = info.pid, "removing a stale postmaster.pid");
            pidfile::reap_orphans(&self.data_dir, Duration::from_secs(10));
            let _ = std::fs::remove_file(pidfile::pid_file(&self.data_dir));
        }
        pidfile::remove_stale_socket_locks(&self.socket_dir, &self.data_dir);
        self.write_config().map_err(plain)?;
        let log_offset = std::fs::metadata(&self.log_file)
            .map(|m| m.len())
            .unwrap_or(0);
        let secs = self.opts.start_timeout.as_secs().max(1);
        let mut cmd = self.run_as.command(self.bin.tool("pg_ctl"));
        cmd.arg("start")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&self.log_file)
            .args(["-w", "-t", &secs.to_string()]);
        let result = process::run(
            &mut cmd,
            self.opts.start_timeout + Duration::from_secs(30),
            "pg_ctl start",
        );
        let failure = match result {
            Ok(out) if out.status.success() => None,
            Ok(out) => Some(format!(
                "pg_ctl start failed ({}): {}",
                out.status,
                out.describe()
            )),
            Err(e) => Some(format!("{e:#}")),
        };
        if let Some(what) = failure {
            let tail = self.log_tail(log_offset);
            let port_in_use = tail.contains("Address already in use")
                || tail.contains("could not create any TCP/IP sockets");
            return Err(StartFailure {
                error: anyhow::anyhow!(
                    "starting PostgreSQL in {} on port {} (as OS user '{}'): {what}\n{tail}",
                    self.data_dir.display(),
                    self.port,
                    self.run_as.name
                ),
                port_in_use,
            });
        }
        self.wait_ready(self.opts.start_timeout).map_err(plain)?;
        Ok(())
    }

    /// Writes pg_hba.conf and shardwire.conf for the current port, and makes
    /// sure postgresql.auto.conf does not override what this module owns.
    fn write_config(&self) -> Result<()> {
        conf::write_hba(&self.data_dir, &self.run_as)?;
        let settings = self.settings();
        conf::write_settings(&self.data_dir, &self.run_as, &settings)?;
        let auto = self.data_dir.join("postgresql.auto.conf");
        let owned: Vec<(&str, String)> = settings
            .iter()
            .filter(|(k, _)| {
                matches!(
                    k.as_str(),
                    "port" | "listen_addresses" | "unix_socket_directories"
                ) && conf::has_setting(&auto, k)
            })
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        if !owned.is_empty() {
            tracing::warn!(
                file = %auto.display(),
                "overriding {:?} set in postgresql.auto.conf",
                owned.iter().map(|(k, _)| *k).collect::<Vec<_>>()
            );
            conf::set_in_file(&auto, &self.run_as, &owned)?;
        }
        Ok(())
    }

    /// The settings written to shardwire.conf.
    fn settings(&self) -> Vec<(String, String)> {
        let o = &self.opts;
        let mut s: Vec<(String, String)> = vec![
            ("listen_addresses".into(), HOST.into()),
            ("port".into(), self.port.to_string()),
            (
                "unix_socket_directories".into(),
                self.socket_dir.display().to_string(),
            ),
            ("max_connections".into(), o.max_connections.to_string()),
            ("shared_buffers".into(), o.shared_buffers.clone()),
            (
                "max_prepared_transactions".into(),
                o.max_prepared_transactions.to_string(),
            ),
            ("password_encryption".into(), "scram-sha-256".into()),
            ("wal_level".into(), "replica".into()),
            ("max_wal_senders".into(), "10".into()),
            ("wal_keep_size".into(), "128MB".into()),
            ("hot_standby".into(), "on".into()),
            ("logging_collector".into(), "off".into()),
            ("log_destination".into(), "stderr".into()),
            ("log_line_prefix".into(), "%m [%p] %q%u@%d ".into()),
        ];
        if o.fast_unsafe {
            for key in ["fsync", "synchronous_commit", "full_page_writes"] {
                s.push((key.into(), "off".into()));
            }
        }
        s.extend(o.extra_settings.iter().cloned());
        s
    }

    /// pg_isready against `port` until it answers "accepting", at most `timeout`.
    fn probe_ready(&self, port: u16, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let tool = self.bin.client_tool("pg_isready");
        loop {
            let mut cmd = client_command(&tool);
            cmd.args(["-h", HOST, "-p", &port.to_string(), "-U", SUPERUSER])
                .args(["-d", "postgres", "-t", "2"]);
            if let Ok(out) = process::run(&mut cmd, Duration::from_secs(10), "pg_isready")
                && out.status.success()
            {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server log written since byte `from` (its last 40 lines at most),
    /// formatted for an error message.
    fn log_tail(&self, from: u64) -> String {
        let Ok(bytes) = std::fs::read(&self.log_file) else {
            return format!("(no server log at {})", self.log_file.display());
        };
        let start = (from as usize).min(bytes.len());
        let text = String::from_utf8_lossy(&bytes[start..]);
        let lines: Vec<&str> = text.lines().collect();
        let shown = &lines[lines.len().saturating_sub(40)..];
        format!(
            "--- end of server log {} ---\n{}",
            self.log_file.display(),
            shown.join("\n")
        )
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if let Err(e) = server::stop(
            &self.bin.tool("pg_ctl"),
            &self.run_as,
            &self.data_dir,
            StopMode::Fast,
            self.opts.start_timeout,
        ) {
            tracing::warn!(dir = %self.root.display(), error = %format!("{e:#}"), "stopping local cluster");
        }
        registry::unregister(self.registry_id);
        if self.outside_socket_dir {
            if self.keep {
                // Only if empty (it is once the server is down); made anew at
                // the next start.
                let _ = std::fs::remove_dir(&self.socket_dir);
            } else {
                let _ = std::fs::remove_dir_all(&self.socket_dir);
            }
        }
    }
}

struct StartFailure {
    error: anyhow::Error,
    port_in_use: bool,
}

fn new_temp_root() -> Result<(PathBuf, TempDir)> {
    let temp = tempfile::Builder::new()
        .prefix("shardwire-pg-")
        .tempdir()
        .context("creating a temporary directory for a cluster")?;
    let root = std::fs::canonicalize(temp.path())
        .with_context(|| format!("resolving {}", temp.path().display()))?;
    Ok((root, temp))
}

/// Makes sure `data` does not exist (removing it if it is an empty directory).
fn prepare_empty_target(data: &Path) -> Result<()> {
    if !data.exists() {
        return Ok(());
    }
    let empty = std::fs::read_dir(data)
        .with_context(|| format!("reading {}", data.display()))?
        .next()
        .is_none();
    if !empty {
        bail!(
            "{} exists but holds no PostgreSQL cluster (no PG_VERSION); remove it or choose another directory",
            data.display()
        );
    }
    std::fs::remove_dir(data).with_context(|| format!("removing {}", data.display()))
}

/// `<root>/socket`, or a short directory under the temp dir when that path
/// would be too long for a unix socket. Returns (dir, is_outside_root).
fn socket_dir_for(root: &Path) -> (PathBuf, bool) {
    let own = root.join("socket");
    if own.as_os_str().len() <= MAX_SOCKET_DIR_LEN {
        return (own, false);
    }
    let hash = xxhash_rust::xxh3::xxh3_64(root.as_os_str().as_encoded_bytes());
    (
        std::env::temp_dir().join(format!("shardwire-sock-{hash:016x}")),
        true,
    )
}

/// Ports handed out by this process recently, so that two clusters started
/// at the same time do not get the same one.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A currently free loopback port (bind 127.0.0.1:0, read, close).
fn free_port() -> Result<u16> {
    for _ in 0..50 {
        let listener =
            TcpListener::bind((HOST, 0)).context("binding 127.0.0.1:0 to find a free port")?;
        let port = listener
            .local_addr()
            .context("reading the bound port")?
            .port();
        drop(listener);
        let mut guard = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
        let set = guard.get_or_insert_with(HashSet::new);
        if set.insert(port) {
            return Ok(port);
        }
    }
    bail!("could not find a free loopback port")
}

/// True if nothing listens on 127.0.0.1:`port` (we can bind it).
fn port_is_free(port: u16) -> bool {
    TcpListener::bind((HOST, port)).is_ok()
}

/// Quotes an SQL identifier: "..." with `"` doubled.
fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Quotes an SQL string literal: '...' with `'` doubled
/// (standard_conforming_strings is on by default).
fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
