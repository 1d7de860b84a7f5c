//! The running proxy: listeners, the shared state every session sees, and
//! the handle used to stop it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use crate::backend::Pools;
use crate::backend::topology::Topology;
use crate::config::{Config, TlsSettings};
use crate::frontend::auth::UserSecrets;
use crate::frontend::cancel::CancelRegistry;
use crate::frontend::clients::ClientRegistry;
use crate::net::stream::ClientStream;
use crate::observe::Observer;
use crate::router::RouterCache;
use crate::router::readwrite::ReadOnlyFunctions;
use crate::sharding::map::ShardMap;

/// Distinct statement texts whose parse and routing analysis are cached.
pub const ROUTER_CACHE_ENTRIES: usize = 10_000;

/// A config snapshot with everything derived from it. RELOAD swaps in a
/// new one; a session keeps the snapshot it logged in with.
pub struct Runtime {
    /// The configuration.
    pub config: Config,
    /// Per-user secrets derived from the configured passwords.
    pub secrets: HashMap<String, UserSecrets>,
    /// TLS acceptor, when TLS is configured.
    pub tls: Option<TlsAcceptor>,
    /// Parse and routing-analysis caches, one per routed database (see
    /// [`routed_map`]; map versions of different databases are unrelated).
    pub routers: HashMap<String, Arc<RouterCache>>,
    /// 1 for the config the proxy started with, one more for each RELOAD
    /// applied: operators compare it across proxies (`SHOW VERSION`) to see
    /// that every one runs the same snapshot.
    pub generation: u64,
}

impl Runtime {
    /// Derives secrets, routing caches and loads TLS material for `config`.
    pub fn new(config: Config) -> Result<Runtime> {
        Self::build(config, None)
    }

    /// The runtime of a reloaded `config`: like [`Runtime::new`], but the
    /// routing cache of a database whose shard map and read-only functions
    /// did not change is kept (with its hits and learned key positions).
    pub fn succeeding(config: Config, previous: &Runtime) -> Result<Runtime> {
        Self::build(config, Some(previous))
    }

    fn build(config: Config, previous: Option<&Runtime>) -> Result<Runtime> {
        let secrets = config
            .users
            .iter()
            .map(|u| (u.name.clone(), UserSecrets::derive(u)))
            .collect();
        let tls = config.tls.as_ref().map(load_tls).transpose()?;
        let routers = config
            .databases
            .iter()
            .filter_map(|db| {
                let map = routed_map(&config, &db.name)?;
                let kept = previous
                    .filter(|p| {
                        p.config.replicas.read_only_functions == config.replicas.read_only_functions
                            && routed_map(&p.config, &db.name).as_deref() == Some(&*map)
                    })
                    .and_then(|p| p.routers.get(&db.name).cloned());
                let router = kept.unwrap_or_else(|| {
                    Arc::new(RouterCache::new(
                        ROUTER_CACHE_ENTRIES,
                        ReadOnlyFunctions::new(&config.replicas.read_only_functions),
                    ))
                });
                Some((db.name.clone(), router))
            })
            .collect();
        Ok(Runtime {
            config,
            secrets,
            tls,
            routers,
            generation: previous.map_or(1, |p| p.generation + 1),
        })
    }
}

fn load_tls(settings: &TlsSettings) -> Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(&settings.cert)
        .with_context(|| format!("cannot read TLS certificate {}", settings.cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("invalid PEM in {}", settings.cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&settings.key)
        .with_context(|| format!("cannot read TLS key {}", settings.key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("TLS certificate and key do not match")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// State shared by all sessions.
pub struct Shared {
    runtime: ArcSwap<Runtime>,
    /// Server connection pools.
    pub pools: Arc<Pools>,
    /// Cancel keys of live clients.
    pub cancels: Arc<CancelRegistry>,
    /// Clients connected right now.
    pub clients: AtomicUsize,
    /// Roles, positions and health of every shard's servers, kept current
    /// by the probe.
    pub topology: Arc<Topology>,
    /// Statement statistics, the slow log and metrics.
    pub observer: Arc<Observer>,
    /// Logged-in clients.
    pub registry: Arc<ClientRegistry>,
    /// Set by the admin console's SHUTDOWN; whoever runs the proxy
    /// (`serve`, the demo) waits on it next to the signals.
    shutdown: watch::Sender<bool>,
    /// Held while a RELOAD swaps the runtime, so two run one after the other.
    reloading: Mutex<()>,
}

/// Why a reloaded config was not applied (the running one stays).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// Settings read only at start changed.
    #[error(
        "these settings cannot change while shardwire runs: {}; restart shardwire to apply them",
        .0.join(", ")
    )]
    NeedsRestart(Vec<String>),
    /// Deriving the new runtime failed (TLS files).
    #[error("{0:#}")]
    Runtime(anyhow::Error),
}

/// The shard map statements of `database` are routed with: its own map
/// when it is sharded; for an unsharded database whose shard has replicas,
/// a one-shard map (so reads can be routed to the replicas and writes
/// follow a promoted primary); `None` for a plain unsharded database, whose
/// traffic is forwarded untouched.
pub fn routed_map(config: &Config, database: &str) -> Option<Arc<ShardMap>> {
    if let Some(map) = config.shard_map(database) {
        return Some(Arc::clone(map));
    }
    let has_replicas = config
        .shards
        .first()
        .is_some_and(|s| !s.replicas.is_empty());
    (has_replicas && config.database(database).is_some()).then(|| Arc::new(ShardMap::unsharded(0)))
}

impl Shared {
    /// The current config snapshot.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Asks whoever runs the proxy for a graceful shutdown.
    pub fn request_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Swaps in a reloaded config without dropping any client: new logins
    /// see its users, passwords, pool settings and shard maps (with their
    /// routing caches); pools whose limits or server credentials changed
    /// are replaced for new checkouts. A config whose start-only settings
    /// differ (see [`crate::config::restart_only_changes`]) is refused and
    /// the running one stays. Returns the number of pools replaced.
    pub fn reload(&self, config: Config) -> Result<usize, ReloadError> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.runtime();
        let fixed = crate::config::restart_only_changes(&current.config, &config);
        if !fixed.is_empty() {
            return Err(ReloadError::NeedsRestart(fixed));
        }
        let runtime = Runtime::succeeding(config, &current).map_err(ReloadError::Runtime)?;
        let replaced = self.pools.reload(&runtime.config);
        self.runtime.store(Arc::new(runtime));
        Ok(replaced)
    }

    /// Resolves once a graceful shutdown was requested.
    pub async fn shutdown_requested(&self) {
        let mut requested = self.shutdown.subscribe();
        let _ = requested.wait_for(|&yes| yes).await;
    }
}

/// A running proxy; dropping it stops the listeners.
pub struct ProxyHandle {
    /// The TCP addresses actually bound (port 0 resolved).
    pub addrs: Vec<SocketAddr>,
    /// The Unix socket path, if any.
    pub unix_socket: Option<PathBuf>,
    /// Where `GET /metrics` is served (`[metrics] listen`, port 0
    /// resolved); `None` when no endpoint is configured.
    pub metrics_addr: Option<SocketAddr>,
    /// Shared state, for the admin console and tests.
    pub shared: Arc<Shared>,
    stop: watch::Sender<bool>,
}

impl ProxyHandle {
    /// Stops accepting new clients; sessions already running continue.
    pub fn stop_listening(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(path) = &self.unix_socket {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Binds the listeners and starts serving `config`.
pub async fn start(config: Config) -> Result<ProxyHandle> {
    let runtime = Runtime::new(config)?;
    let config = &runtime.config;
    let mut tcp = Vec::new();
    for addr in config.listen_addrs() {
        let listener = TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen on {addr} (is another proxy or PgBouncer running there?)")
        })?;
        tcp.push(listener);
    }
    let addrs: Vec<SocketAddr> = tcp.iter().filter_map(|l| l.local_addr().ok()).collect();
    let metrics_listener = crate::observe::metrics::bind(config.metrics.listen.as_deref()).await?;
    let metrics_addr = crate::observe::metrics::bound_addr(&metrics_listener);
    let unix = match (&config.proxy.unix_socket_dir, addrs.first()) {
        (Some(dir), Some(first)) => {
            let path = dir.join(format!(".s.PGSQL.{}", first.port()));
            if path.exists() {
                std::fs::remove_file(&path)
                    .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
            }
            let listener = UnixListener::bind(&path)
                .with_context(|| format!("cannot listen on unix socket {}", path.display()))?;
            Some((listener, path))
        }
        _ => None,
    };
    let topology = Arc::new(Topology::new(config));
    let probe = config
        .shards
        .iter()
        .any(|s| !s.replicas.is_empty())
        .then(|| {
            tokio::spawn(crate::backend::probe::probe_forever(
                Arc::clone(&topology),
                Arc::new(config.clone()),
            ))
        });
    let metrics = Arc::new(crate::observe::metrics::Metrics::default());
    let observer = Observer::start(config, Arc::clone(&topology), metrics);
    let shared = Arc::new(Shared {
        runtime: ArcSwap::from_pointee(runtime),
        pools: Arc::new(Pools::default()),
        cancels: Arc::new(CancelRegistry::default()),
        clients: AtomicUsize::new(0),
        topology,
        observer,
        registry: Arc::new(ClientRegistry::default()),
        shutdown: watch::channel(false).0,
        reloading: Mutex::new(()),
    });
    let (stop, stop_rx) = watch::channel(false);
    crate::observe::metrics::spawn(&shared, metrics_listener, stop_rx.clone());
    for listener in tcp {
        tokio::spawn(accept_tcp(listener, Arc::clone(&shared), stop_rx.clone()));
    }
    let unix_socket = unix.map(|(listener, path)| {
        tokio::spawn(accept_unix(listener, Arc::clone(&shared), stop_rx.clone()));
        path
    });
    let maintenance =
        tokio::spawn(Arc::clone(&shared.pools).maintain_forever(Duration::from_secs(1)));
    let recovery = tokio::spawn(crate::sharding::recovery::recover_forever(Arc::clone(
        &shared,
    )));
    let mut stop_rx_maintenance = stop_rx;
    tokio::spawn(async move {
        let _ = stop_rx_maintenance.changed().await;
        maintenance.abort();
        recovery.abort();
        if let Some(probe) = probe {
            probe.abort();
        }
    });
    Ok(ProxyHandle {
        addrs,
        unix_socket,
        metrics_addr,
        shared,
        stop,
    })
}

fn spawn_session(stream: ClientStream, shared: &Arc<Shared>) {
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        shared.clients.fetch_add(1, Ordering::Relaxed);
        crate::frontend::serve_client(stream, Arc::clone(&shared)).await;
        shared.clients.fetch_sub(1, Ordering::Relaxed);
    });
}

async fn accept_tcp(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    spawn_session(ClientStream::Tcp(stream), &shared);
                }
                Err(e) => accept_failed(e).await,
            },
        }
    }
}

async fn accept_unix(listener: UnixListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => spawn_session(ClientStream::Unix(stream), &shared),
                Err(e) => accept_failed(e).await,
            },
        }
    }
}

/// Accept errors (out of file descriptors, mostly) are transient: log and
/// back off briefly instead of spinning.
async fn accept_failed(e: std::io::Error) {
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Ctrl-C (SIGINT) and SIGTERM, listened for from the moment this is
/// created: a signal that arrives while the caller is still setting up is
/// not lost (nor does it kill the process before cleanup).
pub struct ShutdownSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    /// Installs the handlers.
    pub fn install() -> Result<ShutdownSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(ShutdownSignals {
            interrupt: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    /// Resolves at the next Ctrl-C or SIGTERM.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

impl ProxyHandle {
    /// Graceful stop: no new clients; waits until no server connection is
    /// lent to a client (every running transaction has finished) or
    /// `timeout` has passed. Returns the number of connections still lent.
    pub async fn drain(&self, timeout: Duration) -> usize {
        self.stop_listening();
        let busy = self.shared.pools.wait_until_returned(timeout).await;
        self.shared.pools.close_idle();
        self.shared.observer.finish().await;
        busy
    }
}
