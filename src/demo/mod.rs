//! `shardwire demo`: the embedded default a new user runs first. It starts
//! two shards, each a local Postgres primary with one streaming replica
//! (four clusters), creates the demo schema on the primaries, serves them
//! through the proxy on 127.0.0.1:6432 with the demo shard map (the replicas
//! listed for reads), loads the demo data through the proxy with COPY (so
//! the proxy splits it across the shards' primaries), waits for the replicas
//! to replay it, and runs until Ctrl-C. Prometheus metrics are served on
//! 127.0.0.1:9930 (`--metrics-port`) and the admin console is open to the
//! demo's admin user.

mod clusters;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config::{Config, Shard, User};
use crate::localcluster::LocalCluster;
use crate::sharding::map::ShardMap;

/// The demo's client-side user, password and database.
pub const DEMO_USER: &str = "demo";
/// Password of [`DEMO_USER`] (on the proxy and on the servers).
pub const DEMO_PASSWORD: &str = "demo";
/// The demo database.
pub const DEMO_DATABASE: &str = "demo";
/// The demo's admin console user (database `shardwire`).
pub const DEMO_ADMIN: &str = "admin";
/// Password of [`DEMO_ADMIN`].
pub const DEMO_ADMIN_PASSWORD: &str = "admin";

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
    /// Port of the Prometheus endpoint, `GET /metrics` (127.0.0.1; 0: any
    /// free port, printed in the ready output).
    #[arg(long, default_value_t = 9930)]
    pub metrics_port: u16,
    /// Directory holding the demo's clusters and cluster.json
    /// (default: shardwire-demo in the system's temp directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Reuse the clusters and data already in --dir instead of starting fresh.
    #[arg(long)]
    pub keep: bool,
}

/// Runs the demo until Ctrl-C / SIGTERM.
pub async fn run(args: DemoArgs) -> Result<()> {
    let mut signals = crate::proxy::ShutdownSignals::install()?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("shardwire-demo"));
    if args.metrics_port == args.port && args.port != 0 {
        anyhow::bail!(
            "--port and --metrics-port are both {}: pick two different ports",
            args.port
        );
    }
    ensure_port_free(args.port, "--port")?;
    ensure_port_free(args.metrics_port, "--metrics-port")?;
    let keep = args.keep;
    let setup_dir = dir.clone();
    let setup = tokio::task::spawn_blocking(move || clusters::prepare_shards(&setup_dir, keep));
    let shards = tokio::select! {
        shards = setup => shards.context("demo setup task failed")??,
        _ = signals.recv() => return interrupted().await,
    };
    clusters::write_cluster_json(&dir, &shards)?;
    let map_path = dir.join("demo-shard-map.toml");
    std::fs::write(&map_path, SHARD_MAP)
        .with_context(|| format!("cannot write {}", map_path.display()))?;
    let mut config = demo_config(&args, &shards, &map_path)?;
    let config_path = dir.join("shardwire.toml");
    std::fs::write(&config_path, config.to_toml())
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    // The admin console's RELOAD re-reads the file written here.
    config.source = Some(config_path);
    let proxy = crate::proxy::start(config).await?;
    let url = format!(
        "postgres://{DEMO_USER}:{DEMO_PASSWORD}@127.0.0.1:{}/{DEMO_DATABASE}",
        args.port
    );
    let shards = tokio::select! {
        loaded = load_and_replicate(&url, shards) => loaded?,
        _ = signals.recv() => {
            drop(proxy);
            return interrupted().await;
        }
    };
    println!("shardwire demo ready: {url}");
    println!("  connect:  psql '{url}'");
    println!(
        "  admin:    psql 'postgres://{DEMO_ADMIN}:{DEMO_ADMIN_PASSWORD}@127.0.0.1:{}/{}'  (SHOW POOLS, SHOW QUERIES, SHOW SLOW, SHOW REPLICAS, PROMOTE <shard> <server>)",
        args.port,
        crate::ADMIN_DATABASE
    );
    if let Some(addr) = proxy.metrics_addr {
        println!("  metrics:  http://{addr}/metrics");
    }
    for shard in &shards {
        println!(
            "  {}:   primary {}, replica {}",
            shard.name,
            shard.primary_address(),
            shard.replica_address()
        );
    }
    println!("  clusters: {}", dir.join("cluster.json").display());
    println!("  config:   {}", dir.join("shardwire.toml").display());
    println!("  Ctrl-C stops the proxy and the clusters.");
    tokio::select! {
        _ = signals.recv() => {}
        _ = proxy.shared.shutdown_requested() => {}
    }
    println!(
        "stopping shardwire demo: waiting for running transactions (Ctrl-C again to stop now)"
    );
    let timeout =
        std::time::Duration::from_millis(proxy.shared.runtime().config.proxy.shutdown_timeout_ms);
    // Like `serve`: open transactions may finish before the clusters stop.
    tokio::select! {
        _ = proxy.drain(timeout) => {}
        _ = signals.recv() => {}
    }
    drop(proxy);
    tokio::task::spawn_blocking(move || drop(shards))
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

/// Fails fast, before any cluster starts, when a port the demo serves on
/// (given by `flag`) is taken.
fn ensure_port_free(port: u16, flag: &str) -> Result<()> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpListener::bind(addr).map(drop).with_context(|| {
        format!("port {port} on 127.0.0.1 is taken: stop what runs there or pass {flag}")
    })
}

/// Loads the demo data through the proxy, then waits (without blocking the
/// runtime) until the replicas have replayed it. Hands the shards back.
async fn load_and_replicate(
    url: &str,
    shards: Vec<clusters::DemoShard>,
) -> Result<Vec<clusters::DemoShard>> {
    load_data(url, &shards[0].primary)
        .await
        .context("loading the demo data through the proxy")?;
    tokio::task::spawn_blocking(move || clusters::wait_for_replay(&shards).map(|()| shards))
        .await
        .context("waiting for the replicas failed")?
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

/// The demo's proxy config: two shards routed by the demo shard map (at
/// `map_path`), each with its replica for reads (the `[replicas]` defaults),
/// the demo user in transaction mode, the admin user, and metrics on the
/// `--metrics-port`.
fn demo_config(args: &DemoArgs, shards: &[clusters::DemoShard], map_path: &Path) -> Result<Config> {
    let mut config = Config::single_shard(
        &format!("127.0.0.1:{}", args.port),
        User::with_password(DEMO_USER, DEMO_PASSWORD),
        DEMO_DATABASE,
        &shards[0].primary_address(),
    );
    config.shards = shards
        .iter()
        .map(|shard| Shard {
            name: shard.name.to_string(),
            primary: shard.primary_address(),
            replicas: vec![shard.replica_address()],
        })
        .collect();
    config.databases[0].shard_map = Some(map_path.to_path_buf());
    config.metrics.listen = Some(format!("127.0.0.1:{}", args.metrics_port));
    let mut admin = User::with_password(DEMO_ADMIN, DEMO_ADMIN_PASSWORD);
    admin.admin = true;
    config.users.push(admin);
    let names: Vec<String> = SHARDS.iter().map(|s| s.to_string()).collect();
    let map = ShardMap::from_toml(SHARD_MAP, &names).map_err(|problems| {
        anyhow::anyhow!("the embedded demo shard map is invalid: {problems:?}")
    })?;
    config
        .shard_maps
        .insert(DEMO_DATABASE.to_string(), std::sync::Arc::new(map));
    Ok(config)
}
