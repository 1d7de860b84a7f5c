//! Sessions on a sharded database: every statement goes to the shard its
//! key names, or to several shards whose answers are merged.
//!
//! The single-shard path is the ordinary pump of [`super::session`]: the
//! session's attached server is the *active* shard, and messages stream to
//! it with the usual pipelining. Routing a statement to another shard first
//! drains the active one (its answers reach the client in order), then parks
//! it when a transaction or an unsynced extended batch still needs it, and
//! attaches the other. Cross-shard work (scatter reads, writes on several
//! shards, COPY splitting, two-phase commit) runs as request/answer
//! exchanges with all its shards at once and queues the merged answer for
//! the client.

mod bind;
mod copy;
mod cursors;
mod exchange;
mod extended;
mod fanout;
mod retry;
mod servers;
mod settings;
mod simple;
pub mod twophase;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;

use super::pipeline::{Expect, Synthetic};
use super::session::{Session, SessionEnd};
use crate::backend::pool::{Lease, Pool};
use crate::config::PoolMode;
use crate::net::messages::{PgError, put_query};
use crate::router::RouterCache;
use crate::sharding::map::ShardMap;

pub use bind::BindValues;
pub use servers::{ReadRouting, Role, ShardPools};

/// Sharding state of one client session.
pub struct ShardState {
    /// The shard map snapshot this session routes with.
    pub map: Arc<ShardMap>,
    /// Parse and analysis cache shared by all sessions.
    pub router: Arc<RouterCache>,
    /// Config shard names, by config index (for `SET shardwire.shard`).
    pub shard_names: Vec<String>,
    /// The servers of each shard of the map, by config shard index.
    pub servers: Vec<Option<ShardPools>>,
    /// How reads are spread over replicas.
    pub reads: ReadRouting,
    /// The `/* shardwire: primary|replica */` hint of the statement being
    /// routed (set per query string or Bind).
    pub role_hint: Option<crate::router::readwrite::RoleHint>,
    /// Shard of the session's attached server, when one is attached.
    pub active: usize,
    /// The slot (primary or replica) the attached server serves.
    pub active_role: Role,
    /// Index of the attached server among its shard's servers.
    pub active_server: usize,
    /// Other servers the session holds: transaction participants and
    /// servers with an unsynced extended batch.
    pub parked: Vec<Parked>,
    /// The client's transaction as the proxy sees it.
    pub txn: Txn,
    /// `SET shardwire.shard`: every statement goes to this shard.
    pub session_shard: Option<usize>,
    /// `SET shardwire.sharding_key`: statements route as if their key
    /// equalled this value.
    pub session_key: Option<String>,
    /// Where each open portal lives, by portal name.
    pub portals: HashMap<Bytes, Portal>,
    /// A `COPY ... FROM STDIN` being split across shards.
    pub copy_in: Option<Box<copy::CopySplit>>,
    /// Largest merged cross-shard result the proxy buffers.
    pub max_result_bytes: usize,
    /// A read on a replica that can still run elsewhere if the replica
    /// fails (see [`retry`]).
    pub retry: Option<Box<retry::RetryPoint>>,
    /// Session parameters changed by statements sent since the last
    /// transaction ended, to learn from their servers (see [`settings`]).
    pub changed_settings: Vec<settings::ChangedSetting>,
    /// The shard of each cursor the client declared.
    pub cursors: cursors::Cursors,
}

/// A server held while another shard is active.
pub struct Parked {
    /// Its shard.
    pub shard: usize,
    /// The slot it serves.
    pub role: Role,
    /// Its index among the shard's servers.
    pub server: usize,
    /// The connection.
    pub lease: Lease,
    /// Extended-protocol messages went to it since the last Sync.
    pub unsynced: bool,
}

/// The client's transaction block.
#[derive(Debug, Default)]
pub struct Txn {
    /// The client said BEGIN and has not ended the block.
    pub open: bool,
    /// The client's BEGIN statement (with its isolation options), sent to
    /// each shard when the transaction first reaches it.
    pub begin_sql: String,
    /// The BEGIN asked for a read-only transaction: it runs on replicas.
    pub read_only: bool,
    /// SAVEPOINT statements so far, replayed on shards that join later so
    /// `ROLLBACK TO SAVEPOINT` means the same everywhere.
    pub savepoints: Vec<String>,
    /// The session's routing settings before a `SET LOCAL shardwire.*`,
    /// restored when the transaction ends.
    pub saved_settings: Option<(Option<usize>, Option<String>)>,
    /// A shard of the transaction could not be reached: the transaction is
    /// aborted, as after an error on a server.
    pub failed: bool,
    /// Shards the proxy sent this transaction's BEGIN to.
    pub joined: std::collections::BTreeSet<usize>,
}

/// Where a portal's rows come from.
pub enum Portal {
    /// An ordinary portal on the server of one shard's slot.
    Shard(usize, Role),
    /// A statement the proxy runs across shards when the portal is
    /// described or executed; its answer is buffered here.
    Fanout(Box<fanout::FanoutPortal>),
    /// A transaction-control or `SET shardwire.*` statement the proxy
    /// answers itself.
    Command(String),
}

impl ShardState {
    /// State for a new session on a database with `map`.
    pub fn new(
        map: Arc<ShardMap>,
        router: Arc<RouterCache>,
        shard_names: Vec<String>,
        servers: Vec<Option<ShardPools>>,
        reads: ReadRouting,
        max_result_bytes: usize,
    ) -> ShardState {
        let active = map.default_shard;
        ShardState {
            map,
            router,
            shard_names,
            servers,
            reads,
            role_hint: None,
            active,
            active_role: Role::Primary,
            active_server: 0,
            parked: Vec::new(),
            txn: Txn::default(),
            session_shard: None,
            session_key: None,
            portals: HashMap::new(),
            copy_in: None,
            max_result_bytes,
            retry: None,
            changed_settings: Vec::new(),
            cursors: cursors::Cursors::default(),
        }
    }

    /// The status for a ReadyForQuery the active server (status
    /// `active`) sent: the whole transaction's. A server back to idle with
    /// no other participant ends the client's transaction block.
    pub fn ready_status(&mut self, active: u8) -> u8 {
        let parked_failed = self
            .parked
            .iter()
            .any(|p| p.lease.conn_ref().status == b'E');
        let parked_in_txn = self
            .parked
            .iter()
            .any(|p| p.lease.conn_ref().status != b'I');
        if active == b'I' && !parked_in_txn {
            self.end_transaction_block();
            return b'I';
        }
        if active == b'E' || parked_failed {
            b'E'
        } else {
            b'T'
        }
    }

    /// Forgets the transaction block, undoing its `SET LOCAL shardwire.*`.
    pub fn end_transaction_block(&mut self) {
        if let Some((shard, key)) = self.txn.saved_settings.take() {
            self.session_shard = shard;
            self.session_key = key;
        }
        self.txn = Txn::default();
    }

    /// `RESET ALL` / `DISCARD ALL`: the routing settings go too.
    pub fn reset_settings(&mut self) {
        self.session_shard = None;
        self.session_key = None;
        self.txn.saved_settings = None;
    }

    /// Takes a held server of `shard`, whatever its slot.
    pub(crate) fn take_parked(&mut self, shard: usize) -> Option<Parked> {
        let index = self.parked.iter().position(|p| p.shard == shard)?;
        Some(self.parked.swap_remove(index))
    }

    /// Resolves a shard given by name or config index (`SET shardwire.shard`).
    pub fn resolve_shard(&self, value: &str) -> Result<usize, PgError> {
        let value = value.trim();
        let by_name = self.shard_names.iter().position(|n| n == value);
        let by_index = value
            .parse::<usize>()
            .ok()
            .filter(|i| *i < self.shard_names.len());
        by_name
            .or(by_index)
            .filter(|i| self.map.shards.contains(i))
            .ok_or_else(|| {
                PgError::error("22023", format!("unknown shard \"{value}\""))
                    .with_hint(format!("shards of this database: {}", self.known_shards()))
            })
    }

    fn known_shards(&self) -> String {
        self.map
            .shards
            .iter()
            .map(|&i| format!("{i} ({})", self.shard_names[i]))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A whole message made of a tag and a body written by `write`.
pub(crate) fn message(tag: u8, write: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut out = BytesMut::new();
    crate::net::messages::put_message(&mut out, tag, write);
    out.freeze()
}

/// A CommandComplete message.
pub(crate) fn command_complete(tag: &str) -> Bytes {
    message(crate::net::messages::backend_tag::COMMAND_COMPLETE, |b| {
        crate::net::messages::put_cstr(b, tag.as_bytes())
    })
}

impl Session {
    fn shard_state(&mut self) -> &mut ShardState {
        self.sharding
            .as_deref_mut()
            .expect("sharded handlers run only on sharded sessions")
    }

    fn shard_state_ref(&self) -> &ShardState {
        self.sharding
            .as_deref()
            .expect("sharded handlers run only on sharded sessions")
    }

    /// Whether the client is inside a transaction block.
    pub fn in_transaction(&self) -> bool {
        let st = self.shard_state_ref();
        st.txn.open
            || !st.parked.is_empty() && st.parked.iter().any(|p| p.lease.conn_ref().status != b'I')
            || self
                .server
                .as_ref()
                .is_some_and(|s| s.conn_ref().status != b'I')
    }

    /// Whether some participant's transaction failed.
    pub fn transaction_failed(&self) -> bool {
        let st = self.shard_state_ref();
        st.txn.failed
            || st.parked.iter().any(|p| p.lease.conn_ref().status == b'E')
            || self
                .server
                .as_ref()
                .is_some_and(|s| s.conn_ref().status == b'E')
    }

    /// The transaction status the client is to see in ReadyForQuery.
    pub fn client_status(&self) -> u8 {
        if self.transaction_failed() {
            b'E'
        } else if self.in_transaction() {
            b'T'
        } else {
            b'I'
        }
    }

    /// Queues a proxy-made answer (whole messages) in the client's order.
    pub(crate) fn reply_raw(&mut self, bytes: Bytes) {
        self.pipeline.reply(Synthetic::Raw(bytes));
    }

    /// Queues an error, then (for a simple query) ReadyForQuery.
    pub(crate) fn reply_error(&mut self, error: PgError, ready: bool) {
        self.pipeline.reply(Synthetic::Error(error));
        if ready {
            let status = self.client_status();
            self.pipeline.reply(Synthetic::ReadyForQuery(status));
        } else {
            self.skip_until_sync = true;
        }
    }

    /// Waits until the active server has answered everything sent to it,
    /// moving its answers to the client.
    pub(crate) async fn drain_active(&mut self) -> Result<(), SessionEnd> {
        // Inside an extended batch the server holds its answers until Sync
        // or Flush: ask for them now.
        if self.pipeline.unsynced()
            && self.pipeline.has_server_answers_pending()
            && let Some(lease) = self.server.as_mut()
        {
            crate::net::messages::put_empty(
                &mut lease.conn().outbox,
                crate::net::messages::tag::FLUSH,
            );
        }
        loop {
            self.handle_server_messages()?;
            self.pipeline.release_replies(&mut self.outbox);
            let Some(lease) = self.server.as_mut() else {
                return Ok(());
            };
            if !self.pipeline.has_server_answers_pending() {
                return Ok(());
            }
            if self.pipeline.failed() {
                // An error in the extended batch: the server skips to the
                // client's Sync, and so must the client's later messages.
                self.skip_until_sync = true;
                return Err(SessionEnd::BatchFailed);
            }
            let holding = self.sharding.as_deref().is_some_and(|s| s.retry.is_some());
            let conn = lease.conn();
            let read_server = self.outbox.len() < super::session::HIGH_WATER;
            let deadline = self.query_timeout.map(|t| self.server_activity + t);
            tokio::select! {
                r = conn.writer.write_buf(&mut conn.outbox), if !conn.outbox.is_empty() => {
                    if r.is_err() { return Err(SessionEnd::Fatal(self.server_lost())); }
                    self.server_activity = tokio::time::Instant::now();
                }
                r = tokio::io::AsyncReadExt::read_buf(&mut conn.reader, &mut conn.inbox), if read_server => {
                    if matches!(r, Ok(0) | Err(_)) {
                        let _ = self.handle_server_messages();
                        return Err(SessionEnd::Fatal(self.server_lost()));
                    }
                    self.server_activity = tokio::time::Instant::now();
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)),
                    if deadline.is_some() => {
                    return Err(SessionEnd::Fatal(self.query_timed_out()));
                }
                r = self.client_wr.write(&self.outbox), if !self.outbox.is_empty() && !holding => {
                    let Ok(n) = r else { return Err(SessionEnd::ClientGone) };
                    self.client_wrote(n);
                    self.client_unflushed = true;
                }
            }
        }
    }

    /// Makes the primary of `shard` the active server (see
    /// [`Session::activate_role`]), joining it to the open transaction.
    pub(crate) async fn activate(&mut self, shard: usize) -> Result<(), SessionEnd> {
        self.activate_for(shard, Role::Primary, false).await?;
        self.note_statement(crate::router::readwrite::Access::Write);
        Ok(())
    }

    /// Activates the server of `shard` for `role` (exactly that slot with
    /// `exact`) and joins it to the client's open transaction, if any.
    pub(crate) async fn activate_for(
        &mut self,
        shard: usize,
        role: Role,
        exact: bool,
    ) -> Result<(), SessionEnd> {
        self.activate_role(shard, role, exact).await?;
        let status = self.server.as_ref().map_or(b'I', |l| l.conn_ref().status);
        if self.needs_join(shard, status) {
            self.shard_state().txn.joined.insert(shard);
            let statements = self.join_statements();
            let conn = self.server.as_mut().expect("attached above").conn();
            for sql in statements {
                put_query(&mut conn.outbox, &sql);
                self.pipeline.expect(Expect::ReadyForQuery, false, None);
            }
        }
        Ok(())
    }

    /// Whether the server of `shard` (transaction status `status`) must
    /// first join the client's open transaction: whether it is fresh from
    /// the pool, parked, or attached since before the client's BEGIN.
    fn needs_join(&self, shard: usize, status: u8) -> bool {
        status == b'I'
            && !self.shard_state_ref().txn.joined.contains(&shard)
            && self.in_transaction()
    }

    /// BEGIN and the savepoints a shard joining the transaction runs first.
    pub(crate) fn join_statements(&self) -> Vec<String> {
        let txn = &self.shard_state_ref().txn;
        let begin = if txn.begin_sql.is_empty() {
            "BEGIN".to_string()
        } else {
            txn.begin_sql.clone()
        };
        std::iter::once(begin)
            .chain(txn.savepoints.iter().cloned())
            .collect()
    }

    /// Moves the active server to the parked list when it is still needed,
    /// or back to its pool.
    pub(crate) fn park_active(&mut self) {
        let Some(lease) = self.server.take() else {
            return;
        };
        self.cancel.slot.set(None);
        let unsynced = self.pipeline.take_unsynced();
        let keep = unsynced || lease.conn_ref().status != b'I' || self.mode == PoolMode::Session;
        let st = self.shard_state();
        if keep {
            st.parked.push(Parked {
                shard: st.active,
                role: st.active_role,
                server: st.active_server,
                lease,
                unsynced,
            });
        } else {
            Pool::give_back(lease);
        }
    }

    /// Takes the servers of `shards` out of the session (drained, joined to
    /// the open transaction), for a cross-shard exchange; give them back
    /// with [`Session::return_leases`].
    pub(crate) async fn take_leases(
        &mut self,
        shards: &[usize],
        role: Role,
    ) -> Result<Vec<(usize, Lease)>, SessionEnd> {
        self.drain_active().await?;
        self.park_active();
        let in_txn = self.in_transaction();
        let mut leases = Vec::with_capacity(shards.len());
        for &shard in shards {
            let lease = match self.shard_state().take_parked(shard) {
                Some(p) if p.unsynced => {
                    self.shard_state().parked.push(p);
                    Err(SessionEnd::StatementFailed(
                        PgError::error(
                            "0A000",
                            "a statement that runs on several shards cannot follow other \
                             statements on its shards in the same pipeline before Sync",
                        )
                        .with_hint("send Sync before it"),
                    ))
                }
                Some(p) => Ok(p.lease),
                None => self
                    .checkout_role(shard, role)
                    .await
                    .map(|(lease, _)| lease),
            };
            let lease = match lease {
                Ok(lease) if in_txn && self.needs_join(shard, lease.conn_ref().status) => {
                    self.shard_state().txn.joined.insert(shard);
                    let mut joined = Ok(lease);
                    for sql in self.join_statements() {
                        if let Ok(lease) = joined.as_mut()
                            && let Err(e) = Box::pin(lease.conn().run_maintenance(&sql)).await
                        {
                            joined = Err(SessionEnd::Fatal(e));
                        }
                    }
                    joined
                }
                other => other,
            };
            match lease {
                Ok(lease) => leases.push((shard, lease)),
                Err(end) => {
                    self.return_leases(leases);
                    return Err(end);
                }
            }
        }
        Ok(leases)
    }

    /// Gives servers back after a cross-shard exchange: those in a
    /// transaction stay with the session, the others go back to their pools.
    pub(crate) fn return_leases(&mut self, leases: Vec<(usize, Lease)>) {
        let keep_all = self.mode == PoolMode::Session;
        for (shard, lease) in leases {
            // A server written through is kept until its WAL position is
            // recorded (read-your-writes), then released.
            if keep_all || lease.conn_ref().status != b'I' || lease.conn_ref().wrote {
                let (role, server) = self.shard_state_ref().slot_of(shard, &lease);
                self.shard_state().parked.push(Parked {
                    shard,
                    role,
                    server,
                    lease,
                    unsynced: false,
                });
            } else {
                Pool::give_back(lease);
            }
        }
    }

    /// Releases parked servers that no longer serve a transaction.
    pub(crate) fn release_parked_if_idle(&mut self) {
        if self.mode == PoolMode::Session || self.in_transaction() {
            return;
        }
        let st = self.shard_state();
        let parked = std::mem::take(&mut st.parked);
        for p in parked {
            // A server written through waits for `record_writes`.
            if p.unsynced || !p.lease.conn_ref().is_clean() || p.lease.conn_ref().wrote {
                st.parked.push(p);
            } else {
                Pool::give_back(p.lease);
            }
        }
    }

    /// At the end of the session: rolls back and returns parked servers.
    pub(crate) async fn release_parked_at_end(&mut self) {
        // Session mode: servers are reset before another client gets them.
        let reset = (self.mode == PoolMode::Session && !self.reset_query.is_empty())
            .then(|| self.reset_query.clone());
        let Some(st) = self.sharding.as_deref_mut() else {
            return;
        };
        for mut p in std::mem::take(&mut st.parked) {
            let conn = p.lease.conn();
            let cleanup = async {
                if p.unsynced {
                    let mut sync = BytesMut::new();
                    crate::net::messages::put_empty(&mut sync, crate::net::messages::tag::SYNC);
                    conn.writer.write_all(&sync).await.ok()?;
                    exchange::read_answer(conn, exchange::Until::ReadyForQuery)
                        .await
                        .ok()?;
                }
                if conn.status != b'I' {
                    conn.run_maintenance("ROLLBACK").await.ok()?;
                }
                if let Some(reset) = &reset {
                    conn.run_maintenance(reset).await.ok()?;
                    conn.prepared.clear();
                    conn.session_params.clear();
                }
                Some(())
            };
            if let Ok(Some(())) =
                tokio::time::timeout(std::time::Duration::from_secs(5), Box::pin(cleanup)).await
            {
                Pool::give_back(p.lease);
            }
        }
    }
}
