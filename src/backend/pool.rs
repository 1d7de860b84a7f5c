//! A pool of server connections for one (user, database, server) triple.
//!
//! Written on tokio's fair semaphore rather than a generic pool crate because
//! the proxy needs per-connection protocol state (prepared statements,
//! session parameters, transaction status) inspected on every return, plus
//! min-idle, idle-timeout and lifetime rules; the whole pool is small.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::conn::{ConnectError, ServerConn, ServerTarget};
use crate::net::messages::PgError;

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
    idle: Mutex<Vec<ServerConn>>,
    open: AtomicUsize,
    dialect: Mutex<ServerDialect>,
    /// Live counters.
    pub counters: PoolCounters,
}

/// A server connection lent to one client. Returned with [`Pool::give_back`];
/// dropped any other way it is closed, so a connection in an unknown state
/// never reaches another client.
pub struct Lease {
    conn: Option<ServerConn>,
    _permit: OwnedSemaphorePermit,
    pool: Arc<Pool>,
}

impl Lease {
    /// The leased connection.
    pub fn conn(&mut self) -> &mut ServerConn {
        self.conn
            .as_mut()
            .expect("a lease holds its connection until it ends")
    }

    /// Read-only view of the leased connection.
    pub fn conn_ref(&self) -> &ServerConn {
        self.conn
            .as_ref()
            .expect("a lease holds its connection until it ends")
    }

    /// The pool this lease came from.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.conn.take().is_some() {
            self.pool.note_closed();
        }
    }
}

impl Pool {
    /// A new, empty pool; connections open on demand (and up to `min_idle`
    /// through [`Pool::maintain`]).
    pub fn new(target: ServerTarget, limits: PoolLimits) -> Arc<Pool> {
        Arc::new(Pool {
            permits: Arc::new(Semaphore::new(limits.size)),
            target,
            limits,
            idle: Mutex::new(Vec::new()),
            open: AtomicUsize::new(0),
            dialect: Mutex::new(ServerDialect::default()),
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

    /// How the pool's server reports parameters (see [`ServerDialect`]).
    pub fn dialect(&self) -> std::sync::MutexGuard<'_, ServerDialect> {
        self.dialect.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<ServerConn>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn note_closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        self.counters.closed.fetch_add(1, Ordering::Relaxed);
    }

    /// Lends a connection, waiting up to the checkout timeout for a free one.
    /// Idle connections that died or aged out are closed on the way.
    pub async fn checkout(self: &Arc<Self>) -> Result<Lease, PgError> {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => self.wait_for_permit().await?,
        };
        while let Some(conn) = self.take_idle() {
            if self.reusable(&conn, Instant::now()) {
                return Ok(self.lease(conn, permit));
            }
            self.note_closed();
        }
        let conn = self
            .open_connection()
            .await
            .map_err(|e| e.to_client_error())?;
        Ok(self.lease(conn, permit))
    }

    /// The slow path of checkout: queue (fairly, first come first served)
    /// for a connection until the checkout timeout.
    async fn wait_for_permit(&self) -> Result<OwnedSemaphorePermit, PgError> {
        self.counters.waiting.fetch_add(1, Ordering::Relaxed);
        let queued = Instant::now();
        let permit = tokio::time::timeout(
            self.limits.checkout_timeout,
            self.permits.clone().acquire_owned(),
        )
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
                Err(PgError::fatal(
                    "53300",
                    format!(
                        "no server connection to {} became free within {} ms",
                        self.target.address,
                        self.limits.checkout_timeout.as_millis()
                    ),
                )
                .with_hint("raise pool.size or pool.checkout_timeout_ms, or shorten transactions"))
            }
        }
    }

    fn take_idle(&self) -> Option<ServerConn> {
        self.lock_idle().pop()
    }

    fn lease(self: &Arc<Self>, conn: ServerConn, permit: OwnedSemaphorePermit) -> Lease {
        Lease {
            conn: Some(conn),
            _permit: permit,
            pool: Arc::clone(self),
        }
    }

    async fn open_connection(&self) -> Result<ServerConn, ConnectError> {
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
        Ok(conn)
    }

    fn reusable(&self, conn: &ServerConn, now: Instant) -> bool {
        now.duration_since(conn.created) < self.limits.lifetime && conn.looks_alive()
    }

    /// Takes a connection back. Only a clean one (idle, nothing buffered)
    /// is kept for the next client; anything else is closed.
    pub fn give_back(mut lease: Lease) {
        let Some(mut conn) = lease.conn.take() else {
            return;
        };
        // The connection is back in the idle list (or counted closed)
        // before the permit is released with `lease`: a waiting checkout
        // then finds it instead of opening one more than the pool size.
        if conn.is_clean() {
            conn.idle_since = Instant::now();
            conn.wrote = false;
            lease.pool.lock_idle().push(conn);
        } else {
            lease.pool.note_closed();
        }
        drop(lease);
    }

    /// Closes idle connections past their idle time or lifetime, and opens
    /// new ones up to `min_idle`. Called periodically by the pool registry.
    pub async fn maintain(self: &Arc<Self>) {
        let now = Instant::now();
        let expired: Vec<ServerConn> = {
            let mut idle = self.lock_idle();
            let mut keep = Vec::with_capacity(idle.len());
            let mut expired = Vec::new();
            // Longest idle first: those are closed first, and the most recently
            // used end up last, where checkout pops from.
            idle.sort_by_key(|c| std::cmp::Reverse(now.duration_since(c.idle_since)));
            let total = idle.len();
            for (i, conn) in idle.drain(..).enumerate() {
                let surplus = total - i > self.limits.min_idle;
                let too_idle =
                    surplus && now.duration_since(conn.idle_since) >= self.limits.idle_timeout;
                if too_idle || !self.reusable(&conn, now) {
                    expired.push(conn);
                } else {
                    keep.push(conn);
                }
            }
            *idle = keep;
            expired
        };
        for _ in expired {
            self.note_closed();
        }
        while self.idle_count() < self.limits.min_idle && self.open_count() < self.limits.size {
            match self.open_connection().await {
                Ok(conn) => self.lock_idle().push(conn),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open min_idle connection");
                    break;
                }
            }
        }
    }

    /// Closes every idle connection (used on shutdown and PAUSE).
    pub fn close_idle(&self) {
        let drained: Vec<ServerConn> = self.lock_idle().drain(..).collect();
        for _ in drained {
            self.note_closed();
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
