//! Shared harness of the integration tests: a real local Postgres cluster
//! (via `localcluster`) with an application role and database, and a
//! shardwire proxy serving it in-process on a free loopback port.

#![allow(dead_code)]

pub mod hash_partitions;
pub mod keys;
pub mod raw;
pub mod replicas;
pub mod sharded;

use shardwire::config::{Config, PoolMode, User};
use shardwire::localcluster::{ClusterOptions, LocalCluster};
use shardwire::proxy::ProxyHandle;

/// The application role, on the proxy and on the server.
pub const APP_USER: &str = "app";
/// Its password.
pub const APP_PASSWORD: &str = "app-secret";
/// The application database.
pub const APP_DB: &str = "appdb";

/// A cluster plus a proxy in front of it.
pub struct TestEnv {
    /// The proxy (dropped first: it stops listening).
    pub proxy: ProxyHandle,
    /// The config the proxy runs with.
    pub config: Config,
    /// The Postgres server.
    pub cluster: LocalCluster,
}

/// A config for one cluster with the app user in the given pool mode.
pub fn base_config(cluster: &LocalCluster, mode: PoolMode, pool_size: usize) -> Config {
    let mut config = Config::single_shard(
        "127.0.0.1:0",
        User::with_password(APP_USER, APP_PASSWORD),
        APP_DB,
        &format!("{}:{}", cluster.host(), cluster.port()),
    );
    config.pool.mode = mode;
    config.pool.size = pool_size;
    config
}

/// Starts a fresh cluster with the app role and database.
pub fn start_cluster() -> LocalCluster {
    start_cluster_with(&ClusterOptions::for_tests())
}

/// Starts a fresh cluster with `options`, the app role and database.
pub fn start_cluster_with(options: &ClusterOptions) -> LocalCluster {
    let cluster = LocalCluster::start_temp(options).expect("local cluster starts");
    cluster
        .create_role(APP_USER, APP_PASSWORD, false)
        .expect("create role");
    cluster
        .create_database(APP_DB, APP_USER)
        .expect("create database");
    cluster
}

impl TestEnv {
    /// Cluster + proxy in transaction mode with a pool of 4, then `customize`.
    pub async fn start(customize: impl FnOnce(&mut Config)) -> TestEnv {
        let cluster = tokio::task::spawn_blocking(start_cluster)
            .await
            .expect("cluster task");
        let mut config = base_config(&cluster, PoolMode::Transaction, 4);
        customize(&mut config);
        let problems = shardwire::config::validate(&config);
        assert!(problems.is_empty(), "test config invalid: {problems:?}");
        let proxy = shardwire::proxy::start(config.clone())
            .await
            .expect("proxy starts");
        TestEnv {
            proxy,
            config,
            cluster,
        }
    }

    /// The proxy's TCP port.
    pub fn proxy_port(&self) -> u16 {
        self.proxy.addrs[0].port()
    }

    /// A libpq-style connection string to the proxy as the app user.
    pub fn proxy_conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user={APP_USER} password={APP_PASSWORD} dbname={APP_DB}",
            self.proxy_port()
        )
    }

    /// A postgres:// URL to the proxy as the app user.
    pub fn proxy_url(&self) -> String {
        format!(
            "postgres://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{}/{APP_DB}",
            self.proxy_port()
        )
    }

    /// Connects through the proxy with tokio-postgres.
    pub async fn connect(&self) -> tokio_postgres::Client {
        connect(&self.proxy_conninfo())
            .await
            .expect("connect through proxy")
    }

    /// Connects directly to the server as the superuser, to inspect it.
    pub async fn connect_direct(&self) -> tokio_postgres::Client {
        connect(&self.cluster.connection_string(APP_DB))
            .await
            .expect("connect directly")
    }
}

/// Connects with tokio-postgres and drives the connection in a task.
pub async fn connect(conninfo: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}
