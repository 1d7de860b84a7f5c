//! Which server of a shard runs a statement: the primary, or a replica
//! picked from the shared topology (role, lag, bans, load, and the
//! session's own last write), plus the bookkeeping read-your-writes needs.
//!
//! A session holds at most one server per (shard, role) slot. A read may
//! use the shard's primary slot when the session already holds it (a read
//! after a write in one pipeline must see the write); a portal stays on the
//! exact slot it was bound on.

use std::sync::Arc;

use super::Parked;
use crate::backend::pool::{Lease, Pool};
use crate::backend::topology::{Lsn, ReadTarget, ShardServers, parse_lsn};
use crate::config::PoolMode;
use crate::frontend::params::sync_query;
use crate::frontend::session::{Session, SessionEnd};
use crate::net::messages::PgError;
use crate::router::readwrite::{Access, TxnAccess, choose_role};

pub use crate::router::readwrite::Role;

/// The servers of one shard as one session (user and database) sees them.
pub struct ShardPools {
    /// Probed state of the shard's servers, shared by all sessions.
    pub topology: Arc<ShardServers>,
    /// This session's pool for each server, in `topology.servers` order.
    pub pools: Vec<Arc<Pool>>,
}

/// How a session spreads its reads.
#[derive(Debug, Default)]
pub struct ReadRouting {
    /// Reads may go to replicas (transaction pooling, `read_write_split`).
    pub enabled: bool,
    /// Reads wait for the session's own writes (`read_your_writes`).
    pub read_your_writes: bool,
    /// Per config shard index: the primary's WAL position after this
    /// session's last write there, until every replica has replayed it.
    pub positions: Vec<Option<Lsn>>,
}

/// SQLSTATE classes of errors that mean a server is unreachable or going
/// away (connection exceptions, operator intervention): such a replica is
/// banned, and the read moves elsewhere.
fn is_server_failure(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57P")
}

impl Session {
    /// The kind of server a statement of `access` runs on, given the
    /// session's transaction and the query string's role hint.
    pub(crate) fn statement_role(&self, access: Access) -> Role {
        let st = self.shard_state_ref();
        let hint = st.role_hint;
        if !st.reads.enabled {
            return Role::Primary;
        }
        let txn = if !self.in_transaction() {
            TxnAccess::None
        } else if st.txn.read_only {
            TxnAccess::ReadOnly
        } else {
            TxnAccess::ReadWrite
        };
        choose_role(access, hint, txn)
    }

    /// Makes the server of `shard` that serves `role` the active one:
    /// drains and parks the current server, then reuses a held server of
    /// that slot or borrows one. With `exact`, only the slot of exactly
    /// `role` will do (a portal lives there); otherwise a read may use the
    /// shard's primary when the session holds it.
    pub(crate) async fn activate_role(
        &mut self,
        shard: usize,
        role: Role,
        exact: bool,
    ) -> Result<(), SessionEnd> {
        // Inside a transaction, the server that joined it serves every
        // statement of the shard, whatever its slot.
        let exact = exact && !self.in_transaction();
        let joined = self.in_transaction() && self.shard_state_ref().txn.joined.contains(&shard);
        let st = self.shard_state_ref();
        let serves = |have: Role| joined || have == role || (!exact && have == Role::Primary);
        if self.server.is_none() || st.active != shard || !serves(st.active_role) {
            self.drain_active().await?;
            self.settle_retry_point(true);
            self.park_active();
            let held = if joined {
                self.shard_state().take_parked(shard)
            } else {
                self.shard_state().take_parked_serving(shard, role, exact)
            };
            let (lease, unsynced, role, server) = match held {
                Some(p) => (p.lease, p.unsynced, p.role, p.server),
                None => {
                    let (lease, server) = self.checkout_role(shard, role).await?;
                    if self.retryable(shard, role, server) {
                        self.begin_retry_point(shard, server);
                    }
                    (lease, false, role, server)
                }
            };
            self.pipeline.set_unsynced(unsynced);
            self.cancel.slot.set(Some(lease.conn_ref().cancel.clone()));
            self.server = Some(lease);
            let st = self.shard_state();
            st.active = shard;
            st.active_role = role;
            st.active_server = server;
        } else if self.shard_state_ref().retry.is_none()
            && !self.pipeline.has_server_answers_pending()
            && self.retryable(shard, role, self.shard_state_ref().active_server)
        {
            // A new read on the replica the session still holds.
            let server = self.shard_state_ref().active_server;
            self.begin_retry_point(shard, server);
        }
        if self.tracker.is_some() {
            let server = self.shard_state_ref().active_server;
            let on_replica = self
                .shard_pools(shard)
                .is_ok_and(|p| p.topology.primary() != server);
            if let Some(tracker) = self.tracker.as_mut() {
                tracker.note_route(shard, on_replica);
            }
        }
        Ok(())
    }

    /// Whether a read just sent to server `server` of `shard` can run again
    /// elsewhere if that server fails: a replica, outside a transaction,
    /// under transaction pooling.
    fn retryable(&self, shard: usize, role: Role, server: usize) -> bool {
        role == Role::Replica
            && self.mode == PoolMode::Transaction
            && self.closing.is_none()
            && !self.in_transaction()
            && self
                .shard_pools(shard)
                .is_ok_and(|p| p.topology.primary() != server)
    }

    /// Counts a statement about to run on the active server (per server,
    /// as reads or writes by the slot), and marks the primary as written
    /// through when the statement may write, so read-your-writes records
    /// its WAL position afterwards.
    pub(crate) fn note_statement(&mut self, access: Access) {
        let st = self.shard_state_ref();
        let (shard, role, server) = (st.active, st.active_role, st.active_server);
        let track_writes = st.reads.enabled && st.reads.read_your_writes;
        st.count_statement(shard, role, server);
        if role == Role::Primary
            && access == Access::Write
            && track_writes
            && let Some(lease) = self.server.as_mut()
        {
            lease.conn().wrote = true;
        }
    }

    /// Counts a cross-shard statement on each of its servers (as a read
    /// on a replica slot, a write on the primary's) and, for a write, marks
    /// them as written through for read-your-writes.
    pub(crate) fn note_fanout(&mut self, leases: &mut [(usize, Lease)], write: bool) {
        let st = self
            .sharding
            .as_deref()
            .expect("only sharded sessions fan out");
        for (shard, lease) in leases.iter_mut() {
            let (role, server) = st.slot_of(*shard, lease);
            st.count_statement(*shard, role, server);
            if write && st.reads.enabled && st.reads.read_your_writes {
                lease.conn().wrote = true;
            }
            if let Some(tracker) = self.tracker.as_mut() {
                let on_replica = st.servers[*shard]
                    .as_ref()
                    .is_some_and(|p| p.topology.primary() != server);
                tracker.note_route(*shard, on_replica);
            }
        }
    }

    /// Borrows a server of `shard` for `role`; returns it with its index
    /// among the shard's servers.
    pub(crate) async fn checkout_role(
        &mut self,
        shard: usize,
        role: Role,
    ) -> Result<(Lease, usize), SessionEnd> {
        let result = match role {
            Role::Primary => {
                let primary = self.shard_pools(shard)?.topology.primary();
                self.checkout_server(shard, primary)
                    .await
                    .map(|lease| (lease, primary))
            }
            Role::Replica => Box::pin(self.checkout_read(shard)).await,
        };
        result.map_err(|error| {
            // The shard is unreachable: this statement fails, and so does
            // the transaction it belongs to; the session goes on.
            if self.in_transaction() {
                self.shard_state().txn.failed = true;
            }
            SessionEnd::StatementFailed(PgError {
                severity: "ERROR",
                ..error
            })
        })
    }

    /// Borrows the server a read of `shard` goes to: a usable replica that
    /// has replayed the session's last write there, else the primary. A
    /// replica that cannot be reached is banned and the next one tried.
    async fn checkout_read(&mut self, shard: usize) -> Result<(Lease, usize), PgError> {
        let topology = Arc::clone(&self.shard_pools(shard)?.topology);
        let mut excluded = Vec::new();
        loop {
            let min_lsn = self.read_position(shard, &topology);

            let choice = {
                let pools = &self.shard_pools(shard)?.pools;
                let load = |i: usize| pools.get(i).map_or(usize::MAX, |p| p.lent_count());
                topology.choose_read(min_lsn, &load, &excluded)
            };
            let (server, check) = match choice {
                ReadTarget::Server(i) => (i, None),
                ReadTarget::CheckReplica(i) => (i, min_lsn),
                ReadTarget::Primary => break,
            };
            if server == topology.primary() {
                break;
            }
            let lease = match self.checkout_server(shard, server).await {
                Ok(lease) => lease,
                Err(error) => {
                    if is_server_failure(&error.code) {
                        topology.ban(server);
                    }
                    excluded.push(server);
                    continue;
                }
            };
            let Some(needed) = check else {
                return Ok((lease, server));
            };
            match replay_position(lease).await {
                Ok((lease, Some(position))) => {
                    topology.note_position(server, position);
                    topology.note_check(position >= needed);
                    if position >= needed {
                        return Ok((lease, server));
                    }
                    Pool::give_back(lease);
                    break;
                }
                Ok((lease, None)) => {
                    // Not in recovery (any more): leave it to the probe.
                    Pool::give_back(lease);
                    excluded.push(server);
                }
                Err(_) => {
                    topology.ban(server);
                    excluded.push(server);
                }
            }
        }
        let primary = topology.primary();
        self.checkout_server(shard, primary)
            .await
            .map(|lease| (lease, primary))
    }

    /// The WAL position reads of `shard` must see, forgotten once every
    /// replica has replayed it.
    fn read_position(&mut self, shard: usize, topology: &ShardServers) -> Option<Lsn> {
        let reads = &mut self.shard_state().reads;
        if !reads.read_your_writes {
            return None;
        }
        let slot = reads.positions.get_mut(shard)?;
        if slot.is_some_and(|lsn| topology.all_replayed(lsn)) {
            *slot = None;
        }
        *slot
    }

    /// The servers of `shard` this session may use.
    fn shard_pools(&self, shard: usize) -> Result<&ShardPools, PgError> {
        self.shard_state_ref()
            .servers
            .get(shard)
            .and_then(Option::as_ref)
            .ok_or_else(|| PgError::error("XX000", format!("no pool for shard {shard}")))
    }

    /// Borrows a connection to server `server` of `shard` with the client's
    /// session parameters applied.
    async fn checkout_server(&mut self, shard: usize, server: usize) -> Result<Lease, PgError> {
        let pool = self
            .shard_pools(shard)?
            .pools
            .get(server)
            .cloned()
            .ok_or_else(|| {
                PgError::error("XX000", format!("no server {server} in shard {shard}"))
            })?;
        let mut lease = Box::pin(pool.checkout()).await?;
        let conn = lease.conn();
        if let Some(sql) = sync_query(&conn.session_params, &self.params) {
            Box::pin(conn.run_maintenance(&sql)).await?;
            conn.session_params = self.params.clone();
        }
        Ok(lease)
    }

    /// Whether [`Session::record_writes`] has anything to do: a cheap test
    /// run on every turn of the session loop.
    pub(crate) fn has_writes_to_record(&self) -> bool {
        let Some(st) = self.sharding.as_deref() else {
            return false;
        };
        st.reads.enabled
            && (!st.changed_settings.is_empty()
                || self.server.as_ref().is_some_and(|l| l.conn_ref().wrote)
                || st.parked.iter().any(|p| p.lease.conn_ref().wrote))
    }

    /// Before servers go back to their pools: reads the primary's WAL
    /// position on each one this session wrote through, so its later reads
    /// wait for it (read-your-writes). Runs only between transactions.
    pub(crate) async fn record_writes(&mut self) {
        let Some(st) = self.sharding.as_deref() else {
            return;
        };
        if self.mode != PoolMode::Transaction
            || !st.reads.enabled
            || self.pipeline.awaits_server()
            || self.in_transaction()
        {
            return;
        }
        if !st.changed_settings.is_empty() {
            self.learn_settings().await;
        }
        let active = self.shard_state_ref().active;
        if let Some(lease) = self.server.as_mut()
            && lease.conn_ref().wrote
            && lease.conn_ref().is_clean()
        {
            match Box::pin(commit_position(lease)).await {
                Some(lsn) => self.note_commit(active, lsn),
                None => self.server = None,
            }
        }
        let parked = std::mem::take(&mut self.shard_state().parked);
        for mut p in parked {
            if p.lease.conn_ref().wrote && p.lease.conn_ref().is_clean() && !p.unsynced {
                match Box::pin(commit_position(&mut p.lease)).await {
                    Some(lsn) => self.note_commit(p.shard, lsn),
                    None => continue,
                }
            }
            self.shard_state().parked.push(p);
        }
    }

    fn note_commit(&mut self, shard: usize, lsn: Lsn) {
        if let Some(slot) = self.shard_state().reads.positions.get_mut(shard) {
            *slot = Some(slot.map_or(lsn, |old| old.max(lsn)));
        }
    }
}

/// Reads the WAL position a server's last commit reached and clears its
/// written mark; `None` when the connection failed (the caller drops it).
/// The insert position, not `pg_current_wal_lsn()` (the write position):
/// with `synchronous_commit = off` the commit record may not be written
/// yet, and a replica that replayed up to the write position could still
/// miss it.
async fn commit_position(lease: &mut Lease) -> Option<Lsn> {
    let conn = lease.conn();
    conn.wrote = false;
    let text = conn
        .query_value("SELECT pg_catalog.pg_current_wal_insert_lsn()::text")
        .await
        .ok()?;
    text.as_deref().and_then(parse_lsn)
}

/// Asks a replica how far it has replayed; `None` when it is not in
/// recovery. Errors mean the connection is unusable (it is dropped).
async fn replay_position(mut lease: Lease) -> Result<(Lease, Option<Lsn>), PgError> {
    let text = lease
        .conn()
        .query_value("SELECT pg_catalog.pg_last_wal_replay_lsn()::text")
        .await?;
    Ok((lease, text.as_deref().and_then(parse_lsn)))
}

impl super::ShardState {
    /// Counts one statement on server `server` of `shard`: as a read when
    /// it runs in a replica slot, as a write in the primary's (`SHOW
    /// REPLICAS`, tests).
    fn count_statement(&self, shard: usize, role: Role, server: usize) {
        if let Some(health) = self
            .servers
            .get(shard)
            .and_then(Option::as_ref)
            .and_then(|p| p.topology.servers.get(server))
        {
            let counter = match role {
                Role::Primary => &health.writes,
                Role::Replica => &health.reads,
            };
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The slot and server index of a lease of `shard` that came back from
    /// a cross-shard exchange: a lease on the current primary serves the
    /// primary slot, any other a replica slot.
    pub(super) fn slot_of(&self, shard: usize, lease: &Lease) -> (Role, usize) {
        let Some(pools) = self.servers.get(shard).and_then(Option::as_ref) else {
            return (Role::Primary, 0);
        };
        let server = pools
            .pools
            .iter()
            .position(|p| Arc::ptr_eq(p, lease.pool()))
            .unwrap_or(0);
        let role = if server == pools.topology.primary() {
            Role::Primary
        } else {
            Role::Replica
        };
        (role, server)
    }

    /// Takes the held server of `shard` that serves `role` (see
    /// [`Session::activate_role`]): the exact slot first, else for a
    /// non-exact read the primary slot.
    pub(super) fn take_parked_serving(
        &mut self,
        shard: usize,
        role: Role,
        exact: bool,
    ) -> Option<Parked> {
        let position = |wanted: Role| {
            self.parked
                .iter()
                .position(|p| p.shard == shard && p.role == wanted)
        };
        let index = if exact || role == Role::Primary {
            position(role)
        } else {
            position(Role::Primary).or_else(|| position(Role::Replica))
        }?;
        Some(self.parked.swap_remove(index))
    }
}
