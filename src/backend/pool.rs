//! A pool of server connections for one (user, database, server) triple.
//!
//! Written on tokio's fair semaphore rather than a generic pool crate because
//! the proxy needs per-connection protocol state (prepared statements,
//! session parameters, transaction status) inspected on every return, plus
//! min-idle, idle-timeout and lifetime rules; the whole pool is small.
//!
//! All pools share one [`PauseGate`] (the console's PAUSE / RESUME), and
//! each keeps a record of its open connections ([`ServerRecords`]) for
//! `SHOW SERVERS`. RELOAD replaces a pool whose settings changed by
//! [`Pool::retire`]-ing it: the sessions still holding it check out from
//! its successor, and its own connections close as they come back.

pub mod gate;
pub mod servers;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::conn::{ConnectError, ServerConn, ServerTarget};
use crate::net::messages::PgError;
pub use gate::PauseGate;
pub use servers::{ServerRecord, ServerRecords};

/// Limits of one pool.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolLimits {
    /// Most connections.
    pub size: usize,
    /// Connections kept open while idle.
    pub min_idle: usize,
    /// Time to connect and authenticate.
    pub connect_timeout: Duration,
    /// Time a client waits for a connection.
    pub checkout_timeout: Duration,
    /// Idle connections beyond `min_idle` close after this.
    pub idle_timeout: Duration,
    /// Connections close after this age.
    pub lifetime: Duration,
    /// Prepared statements kept per connection.
    pub max_prepared: usize,
}

/// Counters of a pool, for the admin console and metrics.
#[derive(Debug, Default)]
pub struct PoolCounters {
    /// Connections opened over the pool's life.
    pub opened: AtomicU64,
    /// Connections closed over the pool's life.
    pub closed: AtomicU64,
    /// Clients waiting for a connection right now.
    pub waiting: AtomicUsize,
    /// Checkouts that timed out.
    pub checkout_timeouts: AtomicU64,
    /// Checkouts that had to queue for a connection.
    pub waits: AtomicU64,
    /// Time spent queueing by those checkouts, in microseconds.
    pub wait_micros: AtomicU64,
}

/// How this pool's server reports its parameters: the ParameterStatus set
/// of a fresh connection, and the server's spelling of values clients asked
/// for (`DateStyle=iso` is reported as `ISO, MDY`). With it a client can be
/// told its parameters at startup without borrowing a server connection.
#[derive(Debug, Default)]
pub struct ServerDialect {
    base: Option<BTreeMap<String, String>>,
    spelled: HashMap<(String, String), String>,
}

/// Distinct (parameter, value) spellings remembered per pool.
const MAX_SPELLINGS: usize = 4096;

impl ServerDialect {
    /// The ParameterStatus set a client with parameters `wanted` would see,
    /// and `wanted` in the server's spelling; `None` when some value's
    /// spelling is not known yet (a server must be asked).
    pub fn describe(
        &self,
        wanted: &BTreeMap<String, String>,
    ) -> Option<(BTreeMap<String, String>, BTreeMap<String, String>)> {
        let mut view = self.base.clone()?;
        let mut normalized = BTreeMap::new();
        for (name, raw) in wanted {
            let reported_name = view.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned();
            let value = match reported_name {
                // A value exactly as the server reports it by default is
                // spelled that way (client_encoding=UTF8, the usual case).
                Some(reported_name) if view.get(&reported_name) == Some(raw) => raw.clone(),
                Some(reported_name) => {
                    let spelled = self.spelled.get(&(name.clone(), raw.clone()))?.clone();
                    view.insert(reported_name, spelled.clone());
                    spelled
                }
                None => raw.clone(),
            };
            normalized.insert(name.clone(), value);
        }
        Some((view, normalized))
    }

    /// Learns how a server spelled the values of `wanted` (after they were
    /// applied to it and it reported `reported`).
    pub fn learn(
        &mut self,
        wanted: &BTreeMap<String, String>,
        reported: &BTreeMap<String, String>,
    ) {
        if self.spelled.len() > MAX_SPELLINGS {
            self.spelled.clear();
        }
        for (name, raw) in wanted {
            if let Some((_, value)) = reported.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
                self.spelled
                    .insert((name.clone(), raw.clone()), value.clone());
            }
        }
    }
}

/// A pool of connections to one server as one role.
pub struct Pool {
    target: ServerTarget,
    limits: PoolLimits,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Pooled>>,
    open: AtomicUsize,
    dialect: Mutex<ServerDialect>,
    gate: Arc<PauseGate>,
    /// Set when RELOAD replaced this pool: checkouts go there, and
    /// connections coming back here close.
    successor: OnceLock<Arc<Pool>>,
    servers: ServerRecords,
    /// Live counters.
    pub counters: PoolCounters,
}

/// An open server connection with its `SHOW SERVERS` record.
struct Pooled {
    conn: ServerConn,
    record: Arc<ServerRecord>,
}

/// A server connection lent to one client. Returned with [`Pool::give_back`];
/// dropped any other way it is closed, so a connection in an unknown state
/// never reaches another client.
pub struct Lease {
    conn: Option<Pooled>,
    _permit: OwnedSemaphorePermit,
    /// Where the connection goes back to.
    home: Arc<Pool>,
    /// The pool the session asked, when RELOAD had replaced it and the
    /// connection came from its successor.
    asked: Option<Arc<Pool>>,
}

impl Lease {
    /// The leased connection.
    pub fn conn(&mut self) -> &mut ServerConn {
        &mut self
            .conn
            .as_mut()
            .expect("a lease holds its connection until it ends")
            .conn
    }

    /// Read-only view of the leased connection.
    pub fn conn_ref(&self) -> &ServerConn {
        &self
            .conn
            .as_ref()
            .expect("a lease holds its connection until it ends")
            .conn
    }

    /// The pool this lease was asked of (the session's own pool, even when
    /// RELOAD replaced it and the connection came from the replacement).
    pub fn pool(&self) -> &Arc<Pool> {
        self.asked.as_ref().unwrap_or(&self.home)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(pooled) = self.conn.take() {
            self.home.close(pooled);
        }
    }
}

impl Pool {
    /// A new, empty pool; connections open on demand (and up to `min_idle`
    /// through [`Pool::maintain`]). Checkouts wait while `gate` is paused.
    pub fn new(target: ServerTarget, limits: PoolLimits, gate: Arc<PauseGate>) -> Arc<Pool> {
        Arc::new(Pool {
            permits: Arc::new(Semaphore::new(limits.size)),
            target,
            limits,
            idle: Mutex::new(Vec::new()),
            open: AtomicUsize::new(0),
            dialect: Mutex::new(ServerDialect::default()),
            gate,
            successor: OnceLock::new(),
            servers: ServerRecords::default(),
            counters: PoolCounters::default(),
        })
    }

    /// The server this pool connects to.
    pub fn target(&self) -> &ServerTarget {
        &self.target
    }

    /// The pool's limits.
    pub fn limits(&self) -> &PoolLimits {
        &self.limits
    }

    /// Connections open right now (idle and lent).
    pub fn open_count(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Idle connections right now.
    pub fn idle_count(&self) -> usize {
        self.lock_idle().len()
    }

    /// Connections lent to clients right now: the statements (or
    /// transactions) in flight on this server from this pool, which is what
    /// least-outstanding read balancing compares.
    pub fn lent_count(&self) -> usize {
        self.limits
            .size
            .saturating_sub(self.permits.available_permits())
    }

    /// The open connections, for `SHOW SERVERS`.
    pub fn servers(&self) -> Vec<Arc<ServerRecord>> {
        self.servers.snapshot()
    }

    /// Whether RELOAD replaced this pool (its connections close as they
    /// come back).
    pub fn is_retired(&self) -> bool {
        self.successor.get().is_some()
    }

    /// Hands new checkouts to `successor` and closes the idle connections;
    /// lent ones close when they come back. Used by RELOAD when the pool's
    /// limits or server credentials changed.
    pub fn retire(&self, successor: Arc<Pool>) {
        if self.successor.set(successor).is_ok() {
            self.close_idle();
        }
    }

    /// How the pool's server reports parameters (see [`ServerDialect`]).
    pub fn dialect(&self) -> std::sync::MutexGuard<'_, ServerDialect> {
        self.dialect.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Pooled>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn close(&self, pooled: Pooled) {
        self.servers.unregister(&pooled.record);
        self.open.fetch_sub(1, Ordering::Relaxed);
        self.counters.closed.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether a connection coming back stays open for the next client:
    /// not while paused (PAUSE drains the servers) nor once retired.
    fn keeps_idle(&self) -> bool {
        !self.gate.is_paused() && !self.is_retired()
    }

    /// Lends a connection, waiting up to the checkout timeout for a free one
    /// (and for RESUME while the pools are paused). Idle connections that
    /// died or aged out are closed on the way. A pool replaced by RELOAD
    /// lends from its replacement.
    pub async fn checkout(self: &Arc<Self>) -> Result<Lease, PgError> {
        if self.successor.get().is_none() {
            return self.lend().await;
        }
        let mut newest = Arc::clone(self);
        while let Some(next) = newest.successor.get() {
            newest = Arc::clone(next);
        }
        let mut lease = newest.lend().await?;
        lease.asked = Some(Arc::clone(self));
        Ok(lease)
    }

    async fn lend(self: &Arc<Self>) -> Result<Lease, PgError> {
        let ready = match self.gate.is_paused() {
            true => None,
            false => self.permits.clone().try_acquire_owned().ok(),
        };
        let permit = match ready {
            Some(permit) => permit,
            None => self.queue().await?,
        };
        while let Some(pooled) = self.take_idle() {
            if self.reusable(&pooled.conn, Instant::now()) {
                return Ok(self.lease(pooled, permit));
            }
            self.close(pooled);
        }
        let pooled = self
            .open_connection()
            .await
            .map_err(|e| e.to_client_error())?;
        Ok(self.lease(pooled, permit))
    }

    /// The slow path of checkout: queue (fairly, first come first served)
    /// for RESUME and a connection until the checkout timeout.
    async fn queue(&self) -> Result<OwnedSemaphorePermit, PgError> {
        self.counters.waiting.fetch_add(1, Ordering::Relaxed);
        let queued = Instant::now();
        let permit = tokio::time::timeout(self.limits.checkout_timeout, async {
            self.gate.opened().await;
            self.permits.clone().acquire_owned().await
        })
        .await;
        self.counters.waiting.fetch_sub(1, Ordering::Relaxed);
        self.counters.waits.fetch_add(1, Ordering::Relaxed);
        self.counters.wait_micros.fetch_add(
            u64::try_from(queued.elapsed().as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        match permit {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(PgError::fatal("57P01", "the pool is shutting down")),
            Err(_) => {
                self.counters
                    .checkout_timeouts
                    .fetch_add(1, Ordering::Relaxed);
                // The session ends: its statement cannot run, and a client
                // that queued this long is better off reconnecting.
                Err(self.checkout_timeout_error())
            }
        }
    }

    fn checkout_timeout_error(&self) -> PgError {
        let waited = format!(
            "no server connection to {} became free within {} ms",
            self.target.address,
            self.limits.checkout_timeout.as_millis()
        );
        if self.gate.is_paused() {
            return PgError::fatal(
                "57P03",
                format!("{waited}: shardwire is paused (PAUSE in the admin console)"),
            )
            .with_hint("RESUME in the admin console lets queries run again");
        }
        PgError::fatal("53300", waited)
            .with_hint("raise pool.size or pool.checkout_timeout_ms, or shorten transactions")
    }

    fn take_idle(&self) -> Option<Pooled> {
        self.lock_idle().pop()
    }

    fn lease(self: &Arc<Self>, pooled: Pooled, permit: OwnedSemaphorePermit) -> Lease {
        pooled.record.mark_lent();
        Lease {
            conn: Some(pooled),
            _permit: permit,
            home: Arc::clone(self),
            asked: None,
        }
    }

    async fn open_connection(&self) -> Result<Pooled, ConnectError> {
        let conn = ServerConn::connect(
            &self.target,
            self.limits.connect_timeout,
            self.limits.max_prepared,
        )
        .await?;
        self.dialect()
            .base
            .get_or_insert_with(|| conn.reported.clone());
        self.open.fetch_add(1, Ordering::Relaxed);
        self.counters.opened.fetch_add(1, Ordering::Relaxed);
        let record = self.servers.register(conn.cancel.pid);
        Ok(Pooled { conn, record })
    }

    fn reusable(&self, conn: &ServerConn, now: Instant) -> bool {
        now.duration_since(conn.created) < self.limits.lifetime && conn.looks_alive()
    }

    /// Takes a connection back. Only a clean one (idle, nothing buffered)
    /// is kept for the next client, and only while the pool is neither
    /// paused nor retired; anything else is closed.
    pub fn give_back(mut lease: Lease) {
        let Some(mut pooled) = lease.conn.take() else {
            return;
        };
        // The connection is back in the idle list (or counted closed)
        // before the permit is released with `lease`: a waiting checkout
        // then finds it instead of opening one more than the pool size.
        if pooled.conn.is_clean() && lease.home.keeps_idle() {
            pooled.conn.idle_since = Instant::now();
            pooled.conn.wrote = false;
            pooled.record.mark_idle();
            lease.home.lock_idle().push(pooled);
        } else {
            lease.home.close(pooled);
        }
        drop(lease);
    }

    /// Closes idle connections past their idle time or lifetime, and opens
    /// new ones up to `min_idle`; a paused or retired pool only closes its
    /// idle connections. Called periodically by the pool registry.
    pub async fn maintain(self: &Arc<Self>) {
        if !self.keeps_idle() {
            self.close_idle();
            return;
        }
        let now = Instant::now();
        let expired: Vec<Pooled> = {
            let mut idle = self.lock_idle();
            let mut keep = Vec::with_capacity(idle.len());
            let mut expired = Vec::new();
            // Longest idle first: those are closed first, and the most recently
            // used end up last, where checkout pops from.
            idle.sort_by_key(|p| std::cmp::Reverse(now.duration_since(p.conn.idle_since)));
            let total = idle.len();
            for (i, pooled) in idle.drain(..).enumerate() {
                let surplus = total - i > self.limits.min_idle;
                let too_idle = surplus
                    && now.duration_since(pooled.conn.idle_since) >= self.limits.idle_timeout;
                if too_idle || !self.reusable(&pooled.conn, now) {
                    expired.push(pooled);
                } else {
                    keep.push(pooled);
                }
            }
            *idle = keep;
            expired
        };
        for pooled in expired {
            self.close(pooled);
        }
        while self.keeps_idle()
            && self.idle_count() < self.limits.min_idle
            && self.open_count() < self.limits.size
        {
            match self.open_connection().await {
                Ok(pooled) => self.lock_idle().push(pooled),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open min_idle connection");
                    break;
                }
            }
        }
    }

    /// Closes every idle connection (used on shutdown, PAUSE and RELOAD).
    pub fn close_idle(&self) {
        let drained: Vec<Pooled> = self.lock_idle().drain(..).collect();
        for pooled in drained {
            self.close(pooled);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn dialect_needs_a_server_until_it_knows_the_spelling() {
        let mut dialect = ServerDialect::default();
        let wanted = map(&[
            ("datestyle", "iso"),
            ("search_path", "a"),
            ("timezone", "UTC"),
        ]);
        assert!(dialect.describe(&wanted).is_none(), "nothing known yet");
        dialect.base = Some(map(&[("DateStyle", "ISO, MDY"), ("TimeZone", "UTC")]));
        assert!(
            dialect.describe(&wanted).is_none(),
            "spelling of iso unknown"
        );
        dialect.learn(
            &wanted,
            &map(&[("DateStyle", "ISO, MDY"), ("TimeZone", "UTC")]),
        );
        let (view, normalized) = dialect.describe(&wanted).expect("known now");
        assert_eq!(view, map(&[("DateStyle", "ISO, MDY"), ("TimeZone", "UTC")]));
        assert_eq!(
            normalized,
            map(&[
                ("datestyle", "ISO, MDY"),
                ("search_path", "a"),
                ("timezone", "UTC")
            ])
        );
    }
}
