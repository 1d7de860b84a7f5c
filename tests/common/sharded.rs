//! Harness for sharding tests: several local clusters (one per shard), each
//! with the app role and database, and a proxy routing by a shard map.

use std::sync::Arc;

use shardwire::config::{Config, Database, PoolMode, Shard, User};
use shardwire::localcluster::{ClusterOptions, LocalCluster};
use shardwire::proxy::ProxyHandle;
use shardwire::sharding::map::ShardMap;

use super::{APP_DB, APP_PASSWORD, APP_USER, connect, start_cluster, start_cluster_with};

/// Shards plus a proxy in front of them.
pub struct ShardedEnv {
    /// The proxy (dropped first).
    pub proxy: ProxyHandle,
    /// Its config.
    pub config: Config,
    /// One cluster per shard, in shard order.
    pub shards: Vec<LocalCluster>,
}

/// Starts `count` clusters in parallel, each with the app role and database.
pub async fn start_clusters(count: usize, options: ClusterOptions) -> Vec<LocalCluster> {
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let options = options.clone();
            tokio::task::spawn_blocking(move || start_cluster_with(&options))
        })
        .collect();
    let mut clusters = Vec::new();
    for task in tasks {
        clusters.push(task.await.expect("cluster task"));
    }
    clusters
}

/// A config for `clusters` as shards `shard0..`, routed by `map_toml`.
pub fn sharded_config(clusters: &[LocalCluster], map_toml: &str) -> Config {
    let mut config = Config::single_shard(
        "127.0.0.1:0",
        User::with_password(APP_USER, APP_PASSWORD),
        APP_DB,
        &format!("{}:{}", clusters[0].host(), clusters[0].port()),
    );
    config.pool.mode = PoolMode::Transaction;
    config.pool.size = 8;
    config.shards = clusters
        .iter()
        .enumerate()
        .map(|(i, c)| Shard {
            name: format!("shard{i}"),
            primary: format!("{}:{}", c.host(), c.port()),
            replicas: vec![],
        })
        .collect();
    let names: Vec<String> = config.shards.iter().map(|s| s.name.clone()).collect();
    let map = ShardMap::from_toml(map_toml, &names).expect("test shard map is valid");
    config.databases = vec![Database {
        name: APP_DB.to_string(),
        server_database: None,
        shard_map: None,
    }];
    config.shard_maps.insert(APP_DB.to_string(), Arc::new(map));
    config
}

impl ShardedEnv {
    /// `count` shards routed by `map_toml`, then `customize`.
    pub async fn start(
        count: usize,
        map_toml: &str,
        customize: impl FnOnce(&mut Config),
    ) -> ShardedEnv {
        let shards = start_clusters(count, ClusterOptions::for_tests()).await;
        Self::with_clusters(shards, map_toml, customize).await
    }

    /// A proxy over clusters already started.
    pub async fn with_clusters(
        shards: Vec<LocalCluster>,
        map_toml: &str,
        customize: impl FnOnce(&mut Config),
    ) -> ShardedEnv {
        let mut config = sharded_config(&shards, map_toml);
        customize(&mut config);
        let proxy = shardwire::proxy::start(config.clone())
            .await
            .expect("proxy starts");
        ShardedEnv {
            proxy,
            config,
            shards,
        }
    }

    /// Connection string to the proxy as the app user.
    pub fn proxy_conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user={APP_USER} password={APP_PASSWORD} dbname={APP_DB}",
            self.proxy.addrs[0].port()
        )
    }

    /// Connects through the proxy.
    pub async fn connect(&self) -> tokio_postgres::Client {
        connect(&self.proxy_conninfo())
            .await
            .expect("connect through proxy")
    }

    /// Connects straight to shard `i` as the app user.
    pub async fn connect_shard(&self, i: usize) -> tokio_postgres::Client {
        let c = &self.shards[i];
        connect(&format!(
            "host={} port={} user={APP_USER} password={APP_PASSWORD} dbname={APP_DB}",
            c.host(),
            c.port()
        ))
        .await
        .expect("connect to shard")
    }

    /// Runs `sql` on every shard directly (schema setup).
    pub async fn on_every_shard(&self, sql: &str) {
        for i in 0..self.shards.len() {
            self.connect_shard(i)
                .await
                .batch_execute(sql)
                .await
                .expect("setup SQL on a shard");
        }
    }
}

/// A single plain Postgres with the app role and database (the reference
/// side of differential tests).
pub async fn single_postgres() -> LocalCluster {
    tokio::task::spawn_blocking(start_cluster)
        .await
        .expect("cluster task")
}
