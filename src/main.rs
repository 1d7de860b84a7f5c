//! The `shardwire` command line: serve, demo, check-config.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shardwire::config::{Config, LogFormat};

/// A PostgreSQL wire-protocol proxy: pooling, sharding, read replicas.
#[derive(Parser)]
#[command(name = "shardwire", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve clients with the given config until Ctrl-C or SIGTERM.
    Serve {
        /// Path of the TOML config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Start local Postgres clusters with demo data and serve them.
    Demo(shardwire::demo::DemoArgs),
    /// Validate a config file and print every problem with its location.
    CheckConfig {
        /// Path of the TOML config file.
        file: PathBuf,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(config) => {
                println!(
                    "{}: OK ({} users, {} databases, {} shards, {} shard maps)",
                    file.display(),
                    config.users.len(),
                    config.databases.len(),
                    config.shards.len(),
                    config.shard_maps.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Serve { config } => {
            let config = match Config::load(&config) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            init_logging(config.proxy.log_format);
            run(serve(config))
        }
        Command::Demo(args) => {
            init_logging(LogFormat::Human);
            run(shardwire::demo::run(args))
        }
    }
}

fn run(main: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(main);
    // Sessions still running are abandoned rather than waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let mut signals = shardwire::proxy::ShutdownSignals::install()?;
    let drain_timeout = std::time::Duration::from_millis(config.proxy.shutdown_timeout_ms);
    let proxy = shardwire::proxy::start(config).await?;
    for addr in &proxy.addrs {
        tracing::info!(%addr, "listening");
    }
    if let Some(path) = &proxy.unix_socket {
        tracing::info!(path = %path.display(), "listening on unix socket");
    }
    if let Some(addr) = proxy.metrics_addr {
        tracing::info!(%addr, "serving Prometheus metrics at /metrics");
    }
    tokio::select! {
        _ = signals.recv() => {}
        _ = proxy.shared.shutdown_requested() => {}
    }
    tracing::info!("shutting down: waiting for running transactions (Ctrl-C again to stop now)");
    let busy = tokio::select! {
        busy = proxy.drain(drain_timeout) => busy,
        _ = signals.recv() => proxy.shared.pools.lent_count(),
    };
    if busy > 0 {
        tracing::warn!(busy, "stopping with server connections still in use");
    }
    Ok(())
}
