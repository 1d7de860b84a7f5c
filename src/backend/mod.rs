//! Server side of the data plane: connections to Postgres servers and the
//! pools that lend them to client sessions.

pub mod conn;
pub mod control;
pub mod pool;
pub mod probe;
pub mod topology;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::config::{Config, User};
use conn::ServerTarget;
use pool::{Pool, PoolLimits};

/// Identifies one pool: a client-side user on a logical database, against
/// one server of one shard.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolKey {
    /// Client-side user name.
    pub user: String,
    /// Logical database name.
    pub database: String,
    /// Index of the shard in the config.
    pub shard: usize,
    /// `host:port` of the server.
    pub address: String,
}

/// Every pool of the proxy, created on first use.
#[derive(Default)]
pub struct Pools {
    pools: RwLock<HashMap<PoolKey, Arc<Pool>>>,
}

impl Pools {
    /// The pool for `user` on `database`, against the configured primary
    /// of `shard`.
    pub fn primary(&self, config: &Config, user: &User, database: &str, shard: usize) -> Arc<Pool> {
        self.server(config, user, database, shard, &config.shards[shard].primary)
    }

    /// The pool for `user` on `database`, against server `address` (the
    /// primary or a replica) of `shard`.
    pub fn server(
        &self,
        config: &Config,
        user: &User,
        database: &str,
        shard: usize,
        address: &str,
    ) -> Arc<Pool> {
        let key = PoolKey {
            user: user.name.clone(),
            database: database.to_string(),
            shard,
            address: address.to_string(),
        };
        if let Some(pool) = self.read().get(&key) {
            return Arc::clone(pool);
        }
        let server_database = config
            .database(database)
            .map_or(database, |d| d.server_database())
            .to_string();
        let target = ServerTarget {
            address: key.address.clone(),
            user: user.server_user().to_string(),
            password: user.server_password().map(str::to_string),
            database: server_database,
        };
        let limits = PoolLimits {
            size: config.pool_size(user),
            min_idle: config.pool.min_idle.min(config.pool_size(user)),
            connect_timeout: config.pool.connect_timeout(),
            checkout_timeout: config.pool.checkout_timeout(),
            idle_timeout: config.pool.idle_timeout(),
            lifetime: config.pool.server_lifetime(),
            max_prepared: config.pool.max_prepared_statements,
        };
        let mut pools = self.pools.write().unwrap_or_else(|e| e.into_inner());
        Arc::clone(
            pools
                .entry(key)
                .or_insert_with(|| Pool::new(target, limits)),
        )
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<PoolKey, Arc<Pool>>> {
        self.pools.read().unwrap_or_else(|e| e.into_inner())
    }

    /// A snapshot of every pool with its key, sorted for stable reports.
    pub fn snapshot(&self) -> Vec<(PoolKey, Arc<Pool>)> {
        let mut all: Vec<_> = self
            .read()
            .iter()
            .map(|(k, p)| (k.clone(), Arc::clone(p)))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Runs pool maintenance (idle timeout, lifetime, min idle) forever.
    pub async fn maintain_forever(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            for (_, pool) in self.snapshot() {
                pool.maintain().await;
            }
        }
    }

    /// Server connections lent to clients right now, over all pools.
    pub fn lent_count(&self) -> usize {
        self.snapshot()
            .iter()
            .map(|(_, pool)| pool.open_count().saturating_sub(pool.idle_count()))
            .sum()
    }

    /// Closes all idle server connections.
    pub fn close_idle(&self) {
        for (_, pool) in self.snapshot() {
            pool.close_idle();
        }
    }
}
