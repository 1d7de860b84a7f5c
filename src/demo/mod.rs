//! `shardwire demo`: the embedded default a new user runs first. It starts
//! local Postgres clusters, loads the demo schema and data, and serves them
//! through the proxy on 127.0.0.1:6432 until Ctrl-C.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::config::{Config, User};
use crate::localcluster::{ClusterOptions, LocalCluster, Role};

/// The demo's client-side user, password and database.
pub const DEMO_USER: &str = "demo";
/// Password of [`DEMO_USER`] (on the proxy and on the servers).
pub const DEMO_PASSWORD: &str = "demo";
/// The demo database.
pub const DEMO_DATABASE: &str = "demo";

const SCHEMA: &str = include_str!("schema.sql");

/// Flags of `shardwire demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Port the proxy listens on (127.0.0.1).
    #[arg(long, default_value_t = 6432)]
    pub port: u16,
    /// Directory holding the demo's clusters and cluster.json
    /// (default: shardwire-demo in the system's temp directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Reuse the clusters and data already in --dir instead of starting fresh.
    #[arg(long)]
    pub keep: bool,
}

/// One entry of `cluster.json`.
#[derive(Debug, Serialize)]
struct ClusterEntry {
    name: String,
    role: &'static str,
    shard: String,
    host: String,
    port: u16,
    data_dir: PathBuf,
}

/// Runs the demo until Ctrl-C / SIGTERM.
pub async fn run(args: DemoArgs) -> Result<()> {
    let mut signals = crate::proxy::ShutdownSignals::install()?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("shardwire-demo"));
    ensure_port_free(args.port)?;
    let keep = args.keep;
    let setup_dir = dir.clone();
    let setup = tokio::task::spawn_blocking(move || prepare_cluster(&setup_dir, keep));
    let cluster = tokio::select! {
        cluster = setup => cluster.context("demo setup task failed")??,
        _ = signals.recv() => {
            println!("interrupted: stopping the demo clusters");
            tokio::task::spawn_blocking(crate::localcluster::stop_all_registered)
                .await
                .context("stopping the demo clusters")?;
            anyhow::bail!("demo interrupted during setup");
        }
    };
    write_cluster_json(&dir, &cluster)?;
    let config = demo_config(args.port, &cluster);
    std::fs::write(dir.join("shardwire.toml"), config.to_toml())
        .with_context(|| format!("cannot write {}", dir.join("shardwire.toml").display()))?;
    let proxy = crate::proxy::start(config).await?;
    let url = format!(
        "postgres://{DEMO_USER}:{DEMO_PASSWORD}@127.0.0.1:{}/{DEMO_DATABASE}",
        args.port
    );
    println!("shardwire demo ready: {url}");
    println!("  connect:  psql '{url}'");
    println!("  clusters: {}", dir.join("cluster.json").display());
    println!("  config:   {}", dir.join("shardwire.toml").display());
    println!("  Ctrl-C stops the proxy and the clusters.");
    signals.recv().await;
    println!("stopping shardwire demo");
    proxy.stop_listening();
    drop(proxy);
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .context("stopping the demo clusters")?;
    Ok(())
}

/// Fails fast, before any cluster starts, when the proxy port is taken.
fn ensure_port_free(port: u16) -> Result<()> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpListener::bind(addr).map(drop).with_context(|| {
        format!("port {port} on 127.0.0.1 is taken: stop what runs there or pass --port")
    })
}

/// Opens (or creates) the demo cluster and makes sure it holds the demo data.
fn prepare_cluster(dir: &Path, keep: bool) -> Result<LocalCluster> {
    let shard_dir = dir.join("shard0");
    if !keep && shard_dir.exists() {
        // A previous demo (possibly still running, or crashed) left this:
        // stop it and start clean.
        let old = LocalCluster::open_or_init(&shard_dir, &ClusterOptions::default()).with_context(
            || {
                format!(
                    "cannot recover the old demo cluster in {}",
                    shard_dir.display()
                )
            },
        )?;
        drop(old);
        std::fs::remove_dir_all(&shard_dir)
            .with_context(|| format!("cannot remove {}", shard_dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let cluster = LocalCluster::open_or_init(&shard_dir, &ClusterOptions::default())?;
    let has_role = cluster.psql(
        "postgres",
        &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{DEMO_USER}'"),
    )?;
    if has_role.trim() == "0" {
        cluster.create_role(DEMO_USER, DEMO_PASSWORD, false)?;
    }
    let has_db = cluster.psql(
        "postgres",
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{DEMO_DATABASE}'"),
    )?;
    if has_db.trim() == "0" {
        cluster.create_database(DEMO_DATABASE, DEMO_USER)?;
    }
    let loaded = cluster.psql(
        DEMO_DATABASE,
        "SELECT count(*) FROM pg_tables WHERE tablename = 'transactions'",
    )?;
    if loaded.trim() == "0" {
        println!("loading demo data into {} ...", shard_dir.display());
        cluster
            .psql(DEMO_DATABASE, SCHEMA)
            .context("loading the demo schema")?;
    }
    Ok(cluster)
}

fn write_cluster_json(dir: &Path, cluster: &LocalCluster) -> Result<()> {
    let entries = vec![ClusterEntry {
        name: "shard0-primary".to_string(),
        role: match cluster.role() {
            Role::Primary => "primary",
            Role::Replica => "replica",
        },
        shard: "shard0".to_string(),
        host: cluster.host().to_string(),
        port: cluster.port(),
        data_dir: cluster.data_dir().to_path_buf(),
    }];
    let path = dir.join("cluster.json");
    let text = serde_json::to_string_pretty(&entries).context("rendering cluster.json")?;
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The demo's proxy config: one shard, the demo user in transaction mode.
pub fn demo_config(port: u16, cluster: &LocalCluster) -> Config {
    Config::single_shard(
        &format!("127.0.0.1:{port}"),
        User::with_password(DEMO_USER, DEMO_PASSWORD),
        DEMO_DATABASE,
        &format!("{}:{}", cluster.host(), cluster.port()),
    )
}
