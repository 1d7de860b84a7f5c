//! `shardwire demo`: the embedded default a new user runs first. It starts
//! two local Postgres clusters (two shards), creates the demo schema on both,
//! serves them through the proxy on 127.0.0.1:6432 with the demo shard map,
//! loads the demo data through the proxy with COPY (so the proxy splits it
//! across the shards), and runs until Ctrl-C.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::config::{Config, Shard, User};
use crate::localcluster::{ClusterOptions, LocalCluster, Role};
use crate::sharding::map::ShardMap;

/// The demo's client-side user, password and database.
pub const DEMO_USER: &str = "demo";
/// Password of [`DEMO_USER`] (on the proxy and on the servers).
pub const DEMO_PASSWORD: &str = "demo";
/// The demo database.
pub const DEMO_DATABASE: &str = "demo";

/// The demo schema, created on every shard.
const SCHEMA: &str = include_str!("schema.sql");
/// The demo data: one generating query per table.
const DATA: &str = include_str!("data.sql");
/// The demo's shard map (also shipped as `shard-maps/demo.toml`).
const SHARD_MAP: &str = include_str!("../../shard-maps/demo.toml");
/// The demo's shards.
const SHARDS: [&str; 2] = ["shard0", "shard1"];

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
    let setup = tokio::task::spawn_blocking(move || prepare_clusters(&setup_dir, keep));
    let clusters = tokio::select! {
        clusters = setup => clusters.context("demo setup task failed")??,
        _ = signals.recv() => return interrupted().await,
    };
    write_cluster_json(&dir, &clusters)?;
    let map_path = dir.join("demo-shard-map.toml");
    std::fs::write(&map_path, SHARD_MAP)
        .with_context(|| format!("cannot write {}", map_path.display()))?;
    let config = demo_config(args.port, &clusters, &map_path)?;
    std::fs::write(dir.join("shardwire.toml"), config.to_toml())
        .with_context(|| format!("cannot write {}", dir.join("shardwire.toml").display()))?;
    let proxy = crate::proxy::start(config).await?;
    let url = format!(
        "postgres://{DEMO_USER}:{DEMO_PASSWORD}@127.0.0.1:{}/{DEMO_DATABASE}",
        args.port
    );
    tokio::select! {
        loaded = load_data(&url, &clusters[0]) => loaded.context("loading the demo data through the proxy")?,
        _ = signals.recv() => {
            drop(proxy);
            return interrupted().await;
        }
    }
    println!("shardwire demo ready: {url}");
    println!("  connect:  psql '{url}'");
    println!("  clusters: {}", dir.join("cluster.json").display());
    println!("  config:   {}", dir.join("shardwire.toml").display());
    println!("  Ctrl-C stops the proxy and the clusters.");
    signals.recv().await;
    println!("stopping shardwire demo");
    proxy.stop_listening();
    drop(proxy);
    tokio::task::spawn_blocking(move || drop(clusters))
        .await
        .context("stopping the demo clusters")?;
    Ok(())
}

/// Ctrl-C during setup: stop whatever already started.
async fn interrupted() -> Result<()> {
    println!("interrupted: stopping the demo clusters");
    tokio::task::spawn_blocking(crate::localcluster::stop_all_registered)
        .await
        .context("stopping the demo clusters")?;
    anyhow::bail!("demo interrupted during setup");
}

/// Fails fast, before any cluster starts, when the proxy port is taken.
fn ensure_port_free(port: u16) -> Result<()> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpListener::bind(addr).map(drop).with_context(|| {
        format!("port {port} on 127.0.0.1 is taken: stop what runs there or pass --port")
    })
}

/// Opens (or creates) the demo's shards, each with the role, the database
/// and the schema.
fn prepare_clusters(dir: &Path, keep: bool) -> Result<Vec<LocalCluster>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    SHARDS
        .iter()
        .map(|shard| prepare_cluster(&dir.join(shard), keep))
        .collect()
}

fn prepare_cluster(shard_dir: &Path, keep: bool) -> Result<LocalCluster> {
    if !keep && shard_dir.exists() {
        // A previous demo (possibly still running, or crashed) left this:
        // stop it and start clean.
        let old = LocalCluster::open_or_init(shard_dir, &ClusterOptions::default()).with_context(
            || {
                format!(
                    "cannot recover the old demo cluster in {}",
                    shard_dir.display()
                )
            },
        )?;
        drop(old);
        std::fs::remove_dir_all(shard_dir)
            .with_context(|| format!("cannot remove {}", shard_dir.display()))?;
    }
    let cluster = LocalCluster::open_or_init(shard_dir, &ClusterOptions::default())?;
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
    let has_schema = cluster.psql(
        DEMO_DATABASE,
        "SELECT count(*) FROM pg_tables WHERE tablename = 'transactions'",
    )?;
    if has_schema.trim() == "0" {
        cluster
            .psql(DEMO_DATABASE, SCHEMA)
            .context("creating the demo schema")?;
    }
    Ok(cluster)
}

/// Loads the demo data through the proxy unless a previous run finished
/// loading it (a `demo_loaded` marker on the default shard). Rows are
/// generated on shard0 and streamed into `COPY ... FROM STDIN` on the
/// proxy, which splits them by client_id (reference tables go everywhere).
async fn load_data(url: &str, generator: &LocalCluster) -> Result<()> {
    let proxy = connect(url).await.context("connecting to the proxy")?;
    let loaded = proxy
        .query_one("SELECT to_regclass('demo_loaded') IS NOT NULL", &[])
        .await?
        .get::<_, bool>(0);
    if loaded {
        return Ok(());
    }
    println!(
        "loading demo data through the proxy (COPY, split across {} shards) ...",
        SHARDS.len()
    );
    proxy
        .batch_execute("TRUNCATE transactions, holdings, portfolios, clients, prices, assets")
        .await
        .context("emptying a partial load")?;
    let source = connect(&format!(
        "host={} port={} user={DEMO_USER} password={DEMO_PASSWORD} dbname={DEMO_DATABASE}",
        generator.host(),
        generator.port()
    ))
    .await
    .context("connecting to shard0 to generate the data")?;
    for (table, query) in data_queries() {
        copy_through(&source, &proxy, table, query)
            .await
            .with_context(|| format!("loading {table}"))?;
    }
    // The marker is an unsharded table: it lives on the default shard.
    proxy
        .batch_execute("CREATE TABLE demo_loaded (at timestamptz DEFAULT now())")
        .await?;
    Ok(())
}

/// The (table, generating query) pairs of `data.sql`, in load order.
fn data_queries() -> Vec<(&'static str, &'static str)> {
    DATA.split("-- table: ")
        .skip(1)
        .filter_map(|part| {
            let (table, query) = part.split_once('\n')?;
            Some((table.trim(), query.trim()))
        })
        .collect()
}

async fn copy_through(
    source: &tokio_postgres::Client,
    proxy: &tokio_postgres::Client,
    table: &str,
    query: &str,
) -> Result<()> {
    use futures::{SinkExt, StreamExt};
    let rows = source
        .copy_out(&format!("COPY ({query}) TO STDOUT"))
        .await?;
    let sink = proxy.copy_in(&format!("COPY {table} FROM STDIN")).await?;
    futures::pin_mut!(rows, sink);
    while let Some(chunk) = rows.next().await {
        sink.send(chunk?).await?;
    }
    sink.finish().await?;
    Ok(())
}

async fn connect(conninfo: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

fn write_cluster_json(dir: &Path, clusters: &[LocalCluster]) -> Result<()> {
    let entries: Vec<ClusterEntry> = clusters
        .iter()
        .zip(SHARDS)
        .map(|(cluster, shard)| ClusterEntry {
            name: format!("{shard}-primary"),
            role: match cluster.role() {
                Role::Primary => "primary",
                Role::Replica => "replica",
            },
            shard: shard.to_string(),
            host: cluster.host().to_string(),
            port: cluster.port(),
            data_dir: cluster.data_dir().to_path_buf(),
        })
        .collect();
    let path = dir.join("cluster.json");
    let text = serde_json::to_string_pretty(&entries).context("rendering cluster.json")?;
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The demo's proxy config: two shards routed by the demo shard map (at
/// `map_path`), the demo user in transaction mode.
pub fn demo_config(port: u16, clusters: &[LocalCluster], map_path: &Path) -> Result<Config> {
    let mut config = Config::single_shard(
        &format!("127.0.0.1:{port}"),
        User::with_password(DEMO_USER, DEMO_PASSWORD),
        DEMO_DATABASE,
        &format!("{}:{}", clusters[0].host(), clusters[0].port()),
    );
    config.shards = clusters
        .iter()
        .zip(SHARDS)
        .map(|(cluster, name)| Shard {
            name: name.to_string(),
            primary: format!("{}:{}", cluster.host(), cluster.port()),
            replicas: vec![],
        })
        .collect();
    config.databases[0].shard_map = Some(map_path.to_path_buf());
    let names: Vec<String> = SHARDS.iter().map(|s| s.to_string()).collect();
    let map = ShardMap::from_toml(SHARD_MAP, &names).map_err(|problems| {
        anyhow::anyhow!("the embedded demo shard map is invalid: {problems:?}")
    })?;
    config
        .shard_maps
        .insert(DEMO_DATABASE.to_string(), std::sync::Arc::new(map));
    Ok(config)
}
