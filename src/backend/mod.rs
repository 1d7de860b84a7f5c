//! Server side of the data plane: connections to Postgres servers and the
//! pools that lend them to client sessions.

pub mod conn;
pub mod control;
pub mod pool;
pub mod probe;
pub mod topology;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use crate::config::{Config, User};
use conn::ServerTarget;
use pool::{PauseGate, Pool, PoolLimits};

/// How often waiting for lent connections to come back looks again.
const RETURN_POLL: Duration = Duration::from_millis(50);

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

/// Every pool of the proxy, created on first use, plus the pools RELOAD
/// replaced that still have connections lent out.
#[derive(Default)]
pub struct Pools {
    pools: RwLock<HashMap<PoolKey, Arc<Pool>>>,
    retired: Mutex<Vec<(PoolKey, Arc<Pool>)>>,
    gate: Arc<PauseGate>,
    /// The config of the last RELOAD: a pool created after it takes its
    /// settings from there, even for a login that began before the reload
    /// (and still holds the previous config).
    reloaded: ArcSwapOption<Config>,
}

/// What the pool for `user` on `database` against server `address` looks
/// like under `config`: where and as whom it connects, and its limits.
pub fn pool_settings(
    config: &Config,
    user: &User,
    database: &str,
    address: &str,
) -> (ServerTarget, PoolLimits) {
    let server_database = config
        .database(database)
        .map_or(database, |d| d.server_database())
        .to_string();
    let target = ServerTarget {
        address: address.to_string(),
        user: user.server_user().to_string(),
        password: user.server_password().map(str::to_string),
        database: server_database,
    };
    let size = config.pool_size(user);
    let limits = PoolLimits {
        size,
        min_idle: config.pool.min_idle.min(size),
        connect_timeout: config.pool.connect_timeout(),
        checkout_timeout: config.pool.checkout_timeout(),
        idle_timeout: config.pool.idle_timeout(),
        lifetime: config.pool.server_lifetime(),
        max_prepared: config.pool.max_prepared_statements,
    };
    (target, limits)
}

impl Pools {
    /// The pool for `user` on `database`, against the configured primary
    /// of `shard`.
    pub fn primary(&self, config: &Config, user: &User, database: &str, shard: usize) -> Arc<Pool> {
        self.server(config, user, database, shard, &config.shards[shard].primary)
    }

    /// The pool for `user` on `database`, against server `address` (the
    /// primary or a replica) of `shard`. A missing pool is created with
    /// the settings of `config` (the caller's snapshot), or of the last
    /// RELOAD when that is newer and still knows the user.
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
        let mut pools = self.pools.write().unwrap_or_else(|e| e.into_inner());
        // Read under the write lock: RELOAD publishes its config before it
        // takes this lock to replace pools, so a pool made here is either
        // made with the new settings or replaced by that RELOAD.
        let reloaded = self.reloaded.load_full();
        let (config, user) = match reloaded.as_deref() {
            Some(latest) => latest
                .user(&user.name)
                .map_or((config, user), |u| (latest, u)),
            None => (config, user),
        };
        Arc::clone(pools.entry(key).or_insert_with(|| {
            let (target, limits) = pool_settings(config, user, database, address);
            Pool::new(target, limits, Arc::clone(&self.gate))
        }))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<PoolKey, Arc<Pool>>> {
        self.pools.read().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_retired(&self) -> std::sync::MutexGuard<'_, Vec<(PoolKey, Arc<Pool>)>> {
        self.retired.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a reloaded config: every pool whose server credentials or
    /// limits differ under `config` is replaced for new checkouts (see
    /// [`Pool::retire`]). Pools of users or databases `config` no longer
    /// has are kept for the sessions still using them. Returns how many
    /// pools were replaced.
    pub fn reload(&self, config: &Config) -> usize {
        self.reloaded.store(Some(Arc::new(config.clone())));
        let mut pools = self.pools.write().unwrap_or_else(|e| e.into_inner());
        let mut replaced = Vec::new();
        for (key, pool) in pools.iter_mut() {
            let (Some(user), Some(_)) = (config.user(&key.user), config.database(&key.database))
            else {
                continue;
            };
            let (target, limits) = pool_settings(config, user, &key.database, &key.address);
            if pool.target() == &target && pool.limits() == &limits {
                continue;
            }
            let successor = Pool::new(target, limits, Arc::clone(&self.gate));
            pool.retire(Arc::clone(&successor));
            replaced.push((key.clone(), std::mem::replace(pool, successor)));
        }
        drop(pools);
        let count = replaced.len();
        self.lock_retired().extend(replaced);
        count
    }

    /// A snapshot of every pool in use with its key, sorted for stable
    /// reports.
    pub fn snapshot(&self) -> Vec<(PoolKey, Arc<Pool>)> {
        let mut all: Vec<_> = self
            .read()
            .iter()
            .map(|(k, p)| (k.clone(), Arc::clone(p)))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// [`Pools::snapshot`] plus the retired pools that still have open
    /// connections (see [`Pool::is_retired`]).
    pub fn snapshot_with_retired(&self) -> Vec<(PoolKey, Arc<Pool>)> {
        let mut all = self.snapshot();
        all.extend(
            self.lock_retired()
                .iter()
                .map(|(k, p)| (k.clone(), Arc::clone(p))),
        );
        all
    }

    /// Runs pool maintenance (idle timeout, lifetime, min idle) forever,
    /// and forgets retired pools once their last connection closed.
    pub async fn maintain_forever(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            for (_, pool) in self.snapshot_with_retired() {
                pool.maintain().await;
            }
            self.lock_retired()
                .retain(|(_, pool)| pool.open_count() > 0 || pool.lent_count() > 0);
        }
    }

    /// Server connections lent to clients right now (or being opened for
    /// one), over all pools.
    pub fn lent_count(&self) -> usize {
        self.snapshot_with_retired()
            .iter()
            .map(|(_, pool)| pool.lent_count())
            .sum()
    }

    /// Waits until no server connection is lent, or `timeout` passed;
    /// returns the number still lent.
    pub async fn wait_until_returned(&self, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let busy = self.lent_count();
            if busy == 0 || tokio::time::Instant::now() >= deadline {
                return busy;
            }
            tokio::time::sleep(RETURN_POLL).await;
        }
    }

    /// Closes all idle server connections.
    pub fn close_idle(&self) {
        for (_, pool) in self.snapshot_with_retired() {
            pool.close_idle();
        }
    }

    /// The PAUSE / RESUME switch of every pool.
    pub fn gate(&self) -> &PauseGate {
        &self.gate
    }
}
