//! One client session after startup: the query loop.
//!
//! Bytes move between the client and its server connection as whole protocol
//! messages copied between reusable buffers; only the fields pooling needs
//! are read. Both directions are pumped concurrently with back-pressure, so
//! a client that pipelines many statements or a server that streams a large
//! result can never deadlock the two sockets against each other.

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};

use super::cancel::CancelKey;
use super::params::{Params, note_reported, sync_query};
use super::pipeline::{Creates, Expect, Pipeline, Route, Slot, Synthetic};
use super::statements::{ClientStatements, StatementDef, server_name};
use crate::backend::conn::{MAX_SERVER_MESSAGE, ServerConn};
use crate::backend::pool::{Lease, Pool};
use crate::config::PoolMode;
use crate::net::messages::{
    PgError, backend_tag as bt, bind_parts, parameter_status_parts, parse_parts, put_cstr,
    put_message, query_text, tag, target_parts,
};
use crate::net::peek_frame;
use crate::net::stream::ClientStream;

/// Buffered bytes beyond which the proxy stops reading the other side.
pub(crate) const HIGH_WATER: usize = 256 * 1024;

/// Buffer capacity an idle client may keep.
const IDLE_BUFFER_LIMIT: usize = 16 * 1024;

/// How long a client that broke the protocol still gets the answers to the
/// messages it sent before.
const CLOSING_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// How a session ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// The client said Terminate or closed its socket.
    ClientGone,
    /// The session must end with this error sent to the client.
    Fatal(PgError),
    /// Not an end: the current statement fails with this error (a shard
    /// could not be reached) and the session goes on. The sharded message
    /// loop answers it; should one reach [`Session::run`], it ends the
    /// session like `Fatal`.
    StatementFailed(PgError),
    /// Not an end: an extended batch failed on a server; the client's
    /// messages up to its Sync are skipped (the server skips them too).
    BatchFailed,
}

impl From<PgError> for SessionEnd {
    fn from(e: PgError) -> Self {
        SessionEnd::Fatal(e)
    }
}

/// Everything a session knows, for the duration of the client connection.
pub struct Session {
    /// Pool mode of this client's pool.
    pub mode: PoolMode,
    /// The pool this client's server connections come from.
    pub pool: std::sync::Arc<Pool>,
    /// The lent server connection, if any.
    pub server: Option<Lease>,
    /// Read half of the client socket.
    pub client_rd: ReadHalf<ClientStream>,
    /// Write half of the client socket.
    pub client_wr: WriteHalf<ClientStream>,
    /// Bytes from the client not yet handled.
    pub inbox: BytesMut,
    /// Bytes for the client not yet written.
    pub outbox: BytesMut,
    /// Answers the client still expects.
    pub pipeline: Pipeline,
    /// The client's prepared statements (transaction mode).
    pub statements: ClientStatements,
    /// The client's session parameters.
    pub params: Params,
    /// After a proxy-detected error in the extended protocol, the client's
    /// messages are skipped until Sync, as the server would.
    pub skip_until_sync: bool,
    /// The client's cancel key.
    pub cancel: CancelKey,
    /// Largest message accepted from the client.
    pub max_message: usize,
    /// Query run on a server before another session gets it (session mode).
    pub reset_query: String,
    /// The client broke the protocol (an oversized or malformed message):
    /// the answers to what it sent before are still delivered, then the
    /// session ends with this error.
    pub closing: Option<(PgError, tokio::time::Instant)>,
    /// Bytes were written to the client since the last completed flush
    /// (TLS holds them in its record buffer until flushed).
    pub client_unflushed: bool,
    /// The client connection is TLS.
    pub client_tls: bool,
    /// Routing state when the database is sharded (`None`: every statement
    /// goes to the one server, untouched).
    pub sharding: Option<Box<super::sharded::ShardState>>,
    /// The client message being handled (a read on a replica keeps it to
    /// run it again elsewhere should the replica fail).
    pub current_message: Bytes,
    /// `pool.query_timeout_ms`: how long a server owing answers may stay
    /// silent.
    pub query_timeout: Option<std::time::Duration>,
    /// When the attached server last sent or accepted bytes.
    pub server_activity: tokio::time::Instant,
    /// This client in the registry (its traffic counters).
    pub client: Arc<super::clients::ClientEntry>,
    /// Statement bookkeeping for statistics (`None` when
    /// `observe.statistics` is off).
    pub tracker: Option<Box<super::tracker::StatementTracker>>,
}

enum Io {
    ClientRead(std::io::Result<usize>),
    ClientWrote(std::io::Result<usize>),
    ClientFlushed(std::io::Result<()>),
    ServerRead(std::io::Result<usize>),
    ServerWrote(std::io::Result<usize>),
    ClosingDeadline,
    QueryTimeout,
}

impl Session {
    /// Runs the query loop until the client leaves or a fatal error.
    pub async fn run(&mut self) -> SessionEnd {
        let end = match self.pump().await {
            SessionEnd::StatementFailed(e) => SessionEnd::Fatal(e),
            SessionEnd::BatchFailed => {
                SessionEnd::Fatal(PgError::fatal("XX000", "unhandled failed batch"))
            }
            end => end,
        };
        // Output held for a retry goes out behind what was queued before it.
        self.settle_retry_point(true);
        if let SessionEnd::Fatal(e) = &end {
            e.encode(&mut self.outbox);
        }
        self.note_client_output(self.outbox.len());
        let _ = self.client_wr.write_all(&self.outbox).await;
        let _ = self.client_wr.shutdown().await;
        self.outbox.clear();
        self.release_at_end().await;
        end
    }

    async fn pump(&mut self) -> SessionEnd {
        loop {
            if let Err(end) = self.handle_client_messages().await {
                return end;
            }
            if let Err(e) = self.handle_server_messages() {
                // A replica that failed a held read (a terminated backend
                // flushes what it had for an unsynced batch, then its
                // FATAL comes with no answer pending): the read runs
                // again elsewhere, as when the connection just drops.
                if self.retry_read() {
                    continue;
                }
                return SessionEnd::Fatal(e);
            }
            self.pipeline.release_replies(&mut self.outbox);
            if self.sharding.is_some() {
                self.settle_retry_point(false);
            }
            self.write_eagerly();
            if self.has_writes_to_record() {
                Box::pin(self.record_writes()).await;
            }
            self.release_if_idle();
            if self.closing.is_some() && !self.answers_pending() {
                return self.closing_error();
            }
            match self.wait_io().await {
                Io::ClosingDeadline => return self.closing_error(),
                Io::QueryTimeout => return SessionEnd::Fatal(self.query_timed_out()),
                Io::ClientRead(Ok(0)) => return SessionEnd::ClientGone,
                Io::ClientRead(Err(_)) | Io::ClientWrote(Err(_)) | Io::ClientFlushed(Err(_)) => {
                    return SessionEnd::ClientGone;
                }
                Io::ClientWrote(Ok(n)) => {
                    self.client_wrote(n);
                    self.client_unflushed = true;
                }
                Io::ClientFlushed(Ok(())) => self.client_unflushed = false,
                Io::ServerRead(Ok(0)) | Io::ServerRead(Err(_)) | Io::ServerWrote(Err(_)) => {
                    // Whatever the server said last (often a FATAL error)
                    // goes to the client first, unless the read can run
                    // again on another server.
                    let _ = self.handle_server_messages();
                    if self.retry_read() {
                        continue;
                    }
                    return SessionEnd::Fatal(self.server_lost());
                }
                Io::ServerRead(Ok(_)) | Io::ServerWrote(Ok(_)) => {
                    self.server_activity = tokio::time::Instant::now();
                }
                Io::ClientRead(Ok(n)) => {
                    self.client
                        .bytes_in
                        .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    }

    /// Writes what is ready to go right away when the sockets accept it,
    /// saving a turn of the event loop per message (the common case: a
    /// short query out, a short result back). Whatever does not fit is
    /// written by `wait_io` as the socket drains; errors surface there too.
    fn write_eagerly(&mut self) {
        if let Some(lease) = self.server.as_mut() {
            let conn = lease.conn();
            if !conn.outbox.is_empty()
                && let Ok(n) = conn.writer.try_write(&conn.outbox)
            {
                conn.outbox.advance(n);
                self.server_activity = tokio::time::Instant::now();
            }
        }
        // TLS is left to `wait_io`: a TLS stream polled outside the event
        // loop's own wakeups stalled large results in testing.
        if !self.client_tls
            && !self.outbox.is_empty()
            && !self.holding_output()
            && let Some(Ok(n)) = poll_once(self.client_wr.write(&self.outbox))
        {
            self.client_wrote(n);
        }
    }

    /// The first `n` bytes of the outbox reached the client: they are
    /// counted, shown to the statement tracker, and dropped.
    pub(crate) fn client_wrote(&mut self, n: usize) {
        self.note_client_output(n);
        self.outbox.advance(n);
    }

    /// Counts and tracks the first `n` bytes of the outbox as sent.
    fn note_client_output(&mut self, n: usize) {
        self.client
            .bytes_out
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        if let Some(tracker) = self.tracker.as_mut() {
            tracker.on_client_output(&self.outbox[..n]);
        }
    }

    /// Whether the attached server still owes answers to sent messages.
    fn answers_pending(&self) -> bool {
        self.server.is_some() && self.pipeline.has_server_answers_pending()
    }

    fn closing_error(&mut self) -> SessionEnd {
        let (error, _) = self.closing.take().expect("called only while closing");
        SessionEnd::Fatal(error)
    }

    pub(crate) fn server_lost(&mut self) -> PgError {
        let address = self
            .server
            .as_ref()
            .map(|l| l.conn_ref().cancel.address.clone())
            .unwrap_or_default();
        // The connection is unusable: dropping the lease closes it.
        self.server = None;
        self.cancel.slot.set(None);
        PgError::fatal("08006", format!("lost the connection to server {address}"))
            .with_hint("the transaction in progress, if any, was rolled back; reconnect and retry")
    }

    /// The attached server owed answers and stayed silent past
    /// `pool.query_timeout_ms`: its statement is cancelled and the
    /// connection dropped (its state is unknown).
    pub(crate) fn query_timed_out(&mut self) -> PgError {
        let timeout = self.query_timeout.map_or(0, |t| t.as_millis());
        let address = match self.server.take() {
            Some(lease) => {
                let target = lease.conn_ref().cancel.clone();
                tokio::spawn(async move { crate::frontend::cancel::send_cancel(&target).await });
                lease.conn_ref().cancel.address.to_string()
            }
            None => String::new(),
        };
        self.cancel.slot.set(None);
        PgError::fatal(
            "57014",
            format!("server {address} did not answer within pool.query_timeout_ms ({timeout} ms)"),
        )
        .with_hint("the statement was cancelled and its transaction, if any, rolled back; reconnect and retry")
    }

    async fn wait_io(&mut self) -> Io {
        let client_has_whole_message =
            matches!(peek_frame(&self.inbox, self.max_message), Ok(Some(_)));
        let server_backlog = self
            .server
            .as_ref()
            .map_or(0, |s| s.conn_ref().outbox.len());
        let read_client =
            self.closing.is_none() && !client_has_whole_message && server_backlog < HIGH_WATER;
        let closing_deadline = self.closing.as_ref().map(|(_, deadline)| *deadline);
        let query_deadline = self
            .query_timeout
            .filter(|_| self.answers_pending())
            .map(|timeout| self.server_activity + timeout);
        let read_server = self.outbox.len() < HIGH_WATER;
        let write_client = !self.outbox.is_empty() && !self.holding_output();
        // TLS keeps written records buffered until flushed.
        let flush_client = !write_client && self.client_unflushed;
        let (client_rd, client_wr, inbox, outbox) = (
            &mut self.client_rd,
            &mut self.client_wr,
            &mut self.inbox,
            &mut self.outbox,
        );
        match self.server.as_mut().map(Lease::conn) {
            Some(ServerConn {
                reader,
                writer,
                inbox: server_inbox,
                outbox: server_outbox,
                ..
            }) => {
                let write_server = !server_outbox.is_empty();
                tokio::select! {
                    biased;
                    io = write_or_flush(client_wr, outbox, write_client), if write_client || flush_client => io,
                    r = writer.write_buf(server_outbox), if write_server => Io::ServerWrote(r),
                    r = reader.read_buf(server_inbox), if read_server => Io::ServerRead(r),
                    r = client_rd.read_buf(inbox), if read_client => Io::ClientRead(r),
                    _ = tokio::time::sleep_until(closing_deadline.unwrap_or_else(tokio::time::Instant::now)),
                        if closing_deadline.is_some() => Io::ClosingDeadline,
                    _ = tokio::time::sleep_until(query_deadline.unwrap_or_else(tokio::time::Instant::now)),
                        if query_deadline.is_some() => Io::QueryTimeout,
                }
            }
            None => {
                tokio::select! {
                    biased;
                    io = write_or_flush(client_wr, outbox, write_client), if write_client || flush_client => io,
                    r = client_rd.read_buf(inbox) => Io::ClientRead(r),
                }
            }
        }
    }

    /// Handles every whole client message in the inbox, unless the server
    /// side is backed up.
    async fn handle_client_messages(&mut self) -> Result<(), SessionEnd> {
        while self.closing.is_none() {
            if self
                .server
                .as_ref()
                .is_some_and(|s| s.conn_ref().outbox.len() >= HIGH_WATER)
            {
                return Ok(());
            }
            let frame = match peek_frame(&self.inbox, self.max_message) {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(()),
                Err(e) => {
                    let code = match e {
                        crate::net::FrameError::TooLarge { .. } => "54000",
                        crate::net::FrameError::BadLength(_) => "08P01",
                    };
                    // Answers to what the client sent before still reach it;
                    // a Flush makes the server send them without a Sync.
                    let deadline = tokio::time::Instant::now() + CLOSING_GRACE;
                    self.closing = Some((PgError::fatal(code, e.to_string()), deadline));
                    if let Some(server) = self.server.as_mut() {
                        crate::net::messages::put_empty(&mut server.conn().outbox, tag::FLUSH);
                    }
                    return Ok(());
                }
            };
            let message = self.inbox.split_to(frame.len).freeze();
            self.note_client_message(&message);
            self.current_message = message.clone();
            self.handle_client_message(frame.tag, message).await?;
        }
        Ok(())
    }

    async fn handle_client_message(&mut self, tag: u8, message: Bytes) -> Result<(), SessionEnd> {
        let body = &message[crate::net::HEADER_LEN..];
        if tag == tag::TERMINATE {
            return Err(SessionEnd::ClientGone);
        }
        if self.skip_until_sync && tag != tag::SYNC {
            return Ok(());
        }
        if let Some(tracker) = self.tracker.as_mut() {
            tracker.on_client_message(tag, &message);
        }
        if self.sharding.is_some() {
            return self.handle_sharded_message(tag, &message, body).await;
        }
        match tag {
            tag::SYNC => {
                self.skip_until_sync = false;
                self.forward(&message, Expect::Sync).await
            }
            tag::QUERY => self.on_query(&message, body).await,
            tag::FUNCTION_CALL => self.forward(&message, Expect::ReadyForQuery).await,
            tag::EXECUTE => self.forward(&message, Expect::Execute).await,
            tag::PARSE if self.rewrites_statements() => self.on_parse(body).await,
            tag::PARSE => self.forward(&message, Expect::Parse).await,
            tag::BIND if self.rewrites_statements() => self.on_bind(body).await,
            tag::BIND => self.forward(&message, Expect::Bind).await,
            tag::DESCRIBE => self.on_describe(&message, body).await,
            tag::CLOSE => self.on_close(&message, body).await,
            tag::FLUSH | tag::COPY_DATA | tag::COPY_DONE | tag::COPY_FAIL => {
                self.pass_to_attached(tag, &message);
                Ok(())
            }
            other => Err(invalid_message_type(other)),
        }
    }

    /// Flush and COPY data go to the attached server; without one there is
    /// nothing to flush or copy to.
    fn pass_to_attached(&mut self, tag: u8, message: &[u8]) {
        if let Some(server) = self.server.as_mut() {
            server.conn().outbox.extend_from_slice(message);
            if tag == tag::COPY_DONE || tag == tag::COPY_FAIL {
                self.pipeline.copy_ended();
            }
        }
    }

    /// Messages on a sharded database: routed per statement. A shard that
    /// cannot be reached fails the statement, not the session.
    async fn handle_sharded_message(
        &mut self,
        tag: u8,
        message: &[u8],
        body: &[u8],
    ) -> Result<(), SessionEnd> {
        match self.route_sharded_message(tag, message, body).await {
            Err(SessionEnd::StatementFailed(error)) => {
                self.reply_error(error, tag == tag::QUERY);
                Ok(())
            }
            Err(SessionEnd::BatchFailed) => Ok(()),
            other => other,
        }
    }

    async fn route_sharded_message(
        &mut self,
        tag: u8,
        message: &[u8],
        body: &[u8],
    ) -> Result<(), SessionEnd> {
        match tag {
            tag::SYNC => self.sharded_sync(message).await,
            tag::QUERY => {
                if self.mode == PoolMode::Transaction
                    && let Some(keyword) = session_only_keyword(query_text(body))
                {
                    return self.reject_query(keyword).await;
                }
                self.sharded_query(message, body).await
            }
            tag::PARSE => self.sharded_parse(body).await,
            tag::BIND => self.sharded_bind(body).await,
            tag::DESCRIBE => self.sharded_describe(message, body).await,
            tag::EXECUTE => self.sharded_execute(message, body).await,
            tag::CLOSE => self.sharded_close(message, body).await,
            tag::COPY_DATA | tag::COPY_DONE | tag::COPY_FAIL
                if self
                    .shard_state_ref_opt()
                    .is_some_and(|s| s.copy_in.is_some()) =>
            {
                self.sharded_copy_message(tag, body).await
            }
            tag::FUNCTION_CALL => {
                let shard = self
                    .shard_state_ref_opt()
                    .map_or(0, |s| s.session_shard.unwrap_or(s.map.default_shard));
                self.activate(shard).await?;
                self.send_active(message, Expect::ReadyForQuery);
                Ok(())
            }
            tag::FLUSH | tag::COPY_DATA | tag::COPY_DONE | tag::COPY_FAIL => {
                self.pass_to_attached(tag, message);
                Ok(())
            }
            other => Err(invalid_message_type(other)),
        }
    }

    fn shard_state_ref_opt(&self) -> Option<&super::sharded::ShardState> {
        self.sharding.as_deref()
    }

    fn rewrites_statements(&self) -> bool {
        self.mode == PoolMode::Transaction || self.sharding.is_some()
    }

    /// Sends a client message unchanged and records the answer it expects.
    async fn forward(&mut self, message: &[u8], expect: Expect) -> Result<(), SessionEnd> {
        self.attach().await?;
        let conn = attached(&mut self.server);
        conn.outbox.extend_from_slice(message);
        self.pipeline.expect(expect, true, None);
        Ok(())
    }

    async fn on_query(&mut self, message: &[u8], body: &[u8]) -> Result<(), SessionEnd> {
        if self.mode == PoolMode::Transaction
            && let Some(keyword) = session_only_keyword(query_text(body))
        {
            return self.reject_query(keyword).await;
        }
        self.forward(message, Expect::ReadyForQuery).await?;
        // A simple query destroys the unnamed statement, here and on the server.
        self.statements.unnamed = None;
        if let Some(server) = self.server.as_mut() {
            server.conn().prepared.unnamed = None;
        }
        Ok(())
    }

    /// Refuses a statement that cannot work under transaction pooling. Inside
    /// a transaction the server raises the error itself, so the transaction
    /// is aborted exactly as it would be on a direct connection.
    pub(crate) async fn reject_query(&mut self, keyword: &str) -> Result<(), SessionEnd> {
        let (message, hint) = transaction_mode_refusal(keyword);
        match self.server.as_mut() {
            Some(server) => {
                let sql = format!(
                    "DO $shardwire$ BEGIN RAISE EXCEPTION USING ERRCODE = 'feature_not_supported', MESSAGE = {}, HINT = {}; END $shardwire$",
                    super::params::quote_literal(&message),
                    super::params::quote_literal(hint)
                );
                crate::net::messages::put_query(&mut server.conn().outbox, &sql);
                self.pipeline.expect(Expect::ReadyForQuery, true, None);
            }
            None => {
                self.pipeline.reply(Synthetic::Error(
                    PgError::error("0A000", message).with_hint(hint),
                ));
                self.pipeline.reply(Synthetic::ReadyForQuery(b'I'));
            }
        }
        Ok(())
    }

    async fn on_parse(&mut self, body: &[u8]) -> Result<(), SessionEnd> {
        let Some((name, content)) = parse_parts(body) else {
            return Err(PgError::fatal("08P01", "malformed Parse message").into());
        };
        if let Some(keyword) = session_only_keyword(query_text(content)) {
            let (message, hint) = transaction_mode_refusal(keyword);
            self.pipeline.reply(Synthetic::Error(
                PgError::error("0A000", message).with_hint(hint),
            ));
            self.skip_until_sync = true;
            return Ok(());
        }
        if !name.is_empty() && self.statements.contains(name) {
            self.pipeline.reply(Synthetic::Error(PgError::error(
                "42P05",
                format!(
                    "prepared statement \"{}\" already exists",
                    String::from_utf8_lossy(name)
                ),
            )));
            self.skip_until_sync = true;
            return Ok(());
        }
        let def = StatementDef::new(content);
        self.statements.insert(name, def.clone());
        self.attach().await?;
        let conn = attached(&mut self.server);
        if name.is_empty() {
            put_parse(&mut conn.outbox, b"", &def.content);
            conn.prepared.unnamed = Some(def.id);
            self.pipeline.expect(
                Expect::Parse,
                true,
                Some(Creates {
                    id: def.id,
                    slot: Slot::Unnamed,
                    client_name: Some(Bytes::new()),
                }),
            );
        } else if conn.prepared.has(def.id) {
            self.pipeline.reply(Synthetic::ParseComplete);
        } else {
            prepare_on_server(conn, &mut self.pipeline, &def, Some(name));
        }
        Ok(())
    }

    /// Makes sure the server has the client's statement `name` (preparing it
    /// there when missing) and returns its definition, or `None` when the
    /// client has no such statement: the message then goes out unchanged and
    /// the server reports the error exactly as it would without a proxy.
    async fn ensure_prepared(
        &mut self,
        name: &[u8],
    ) -> Result<Option<Arc<StatementDef>>, SessionEnd> {
        let def = self.statements.get(name).cloned();
        self.attach().await?;
        let conn = attached(&mut self.server);
        let Some(def) = def else {
            return Ok(None);
        };
        if name.is_empty() {
            if conn.prepared.unnamed != Some(def.id) {
                put_parse(&mut conn.outbox, b"", &def.content);
                conn.prepared.unnamed = Some(def.id);
                self.pipeline.expect(
                    Expect::Parse,
                    false,
                    Some(Creates {
                        id: def.id,
                        slot: Slot::Unnamed,
                        client_name: None,
                    }),
                );
            }
        } else if !conn.prepared.has(def.id) {
            prepare_on_server(conn, &mut self.pipeline, &def, None);
        }
        Ok(Some(def))
    }

    /// Sends Bind or Describe-statement with the client's statement name
    /// replaced by the server's.
    pub(crate) async fn send_with_statement(
        &mut self,
        name: &[u8],
        expect: Expect,
        write: impl FnOnce(&mut BytesMut, &[u8]),
    ) -> Result<(), SessionEnd> {
        let def = self.ensure_prepared(name).await?;
        let server_name = match &def {
            Some(def) if !name.is_empty() => def.server_name.as_bytes(),
            _ => name,
        };
        write(&mut attached(&mut self.server).outbox, server_name);
        self.pipeline.expect(expect, true, None);
        Ok(())
    }

    async fn on_bind(&mut self, body: &[u8]) -> Result<(), SessionEnd> {
        let Some((portal, statement, rest)) = bind_parts(body) else {
            return Err(PgError::fatal("08P01", "malformed Bind message").into());
        };
        self.send_with_statement(statement, Expect::Bind, |out, name| {
            put_message(out, tag::BIND, |b| {
                put_cstr(b, portal);
                put_cstr(b, name);
                b.extend_from_slice(rest);
            })
        })
        .await
    }

    async fn on_describe(&mut self, message: &[u8], body: &[u8]) -> Result<(), SessionEnd> {
        let Some((kind, name)) = target_parts(body) else {
            return Err(PgError::fatal("08P01", "malformed Describe message").into());
        };
        if kind != b'S' || !self.rewrites_statements() {
            return self.forward(message, Expect::Describe).await;
        }
        self.send_with_statement(name, Expect::Describe, |out, name| {
            put_message(out, tag::DESCRIBE, |b| {
                b.extend_from_slice(b"S");
                put_cstr(b, name);
            })
        })
        .await
    }

    async fn on_close(&mut self, message: &[u8], body: &[u8]) -> Result<(), SessionEnd> {
        let Some((kind, name)) = target_parts(body) else {
            return Err(PgError::fatal("08P01", "malformed Close message").into());
        };
        if kind == b'S' && self.rewrites_statements() {
            // Server statements are shared by content and closed only when
            // evicted; the client's name is simply forgotten.
            self.statements.remove(name);
            self.pipeline.reply(Synthetic::CloseComplete);
            return Ok(());
        }
        self.forward(message, Expect::Close).await
    }

    /// Gives this client a server connection if it has none, with the
    /// client's session parameters applied.
    async fn attach(&mut self) -> Result<(), SessionEnd> {
        if self.server.is_none() {
            // Boxed: these futures are large and rarely pending; keeping them
            // out of the session's own future keeps idle clients small.
            let mut lease = Box::pin(self.pool.checkout()).await?;
            let conn = lease.conn();
            if let Some(sql) = sync_query(&conn.session_params, &self.params) {
                Box::pin(conn.run_maintenance(&sql)).await?;
                conn.session_params = self.params.clone();
            }
            self.cancel.slot.set(Some(conn.cancel.clone()));
            self.server = Some(lease);
        }
        Ok(())
    }

    /// Moves whole server messages to the client (or drops the proxy's own).
    pub(crate) fn handle_server_messages(&mut self) -> Result<(), PgError> {
        let Some(lease) = self.server.as_mut() else {
            return Ok(());
        };
        let conn = lease.conn();
        let mut gone = None;
        while self.outbox.len() < HIGH_WATER {
            let frame = match peek_frame(&conn.inbox, MAX_SERVER_MESSAGE) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    return Err(PgError::fatal(
                        "08P01",
                        format!("invalid message from server: {e}"),
                    ));
                }
            };
            let body = frame.body(&conn.inbox);
            if frame.tag == bt::ERROR && !self.pipeline.has_server_answers_pending() {
                // Nobody asked: the server is ending this connection
                // (shutdown, pg_terminate_backend, a timeout).
                gone = Some(PgError::fatal(
                    crate::net::messages::error_field(body, b'C').unwrap_or("08006"),
                    format!(
                        "server {} closed the connection: {}",
                        conn.cancel.address,
                        crate::net::messages::error_field(body, b'M').unwrap_or("")
                    ),
                ));
                conn.inbox.clear();
                break;
            }
            let route = match frame.tag {
                bt::NOTICE | bt::NOTIFICATION => Route::Forward,
                bt::PARAMETER_STATUS => {
                    if let Some((name, value)) = parameter_status_parts(body) {
                        conn.reported.insert(name.to_string(), value.to_string());
                        if note_reported(&mut self.params, name, value) {
                            conn.session_params
                                .insert(name.to_ascii_lowercase(), value.to_string());
                        }
                    }
                    Route::Forward
                }
                tag => {
                    let route = self
                        .pipeline
                        .on_server_message(
                            tag,
                            &mut conn.prepared,
                            &mut self.statements,
                            &mut self.outbox,
                        )
                        .map_err(|desync| {
                            PgError::fatal(
                                "08P01",
                                format!(
                                    "unexpected message '{}' from server {}",
                                    char::from(desync.0).escape_default(),
                                    conn.cancel.address
                                ),
                            )
                        })?;
                    match tag {
                        bt::READY_FOR_QUERY => {
                            conn.status = body.first().copied().unwrap_or(b'I');
                            if route == Route::Forward
                                && let Some(sharding) = self.sharding.as_deref_mut()
                            {
                                // The client's status covers every shard of its transaction.
                                let status = sharding.ready_status(conn.status);
                                self.outbox.extend_from_slice(&conn.inbox[..frame.len - 1]);
                                self.outbox.extend_from_slice(&[status]);
                                conn.inbox.advance(frame.len);
                                continue;
                            }
                        }
                        bt::COMMAND_COMPLETE => {
                            note_command(body, &mut conn.prepared, &mut self.statements)
                        }
                        _ => {}
                    }
                    route
                }
            };
            if route == Route::Forward {
                self.outbox.extend_from_slice(&conn.inbox[..frame.len]);
            }
            conn.inbox.advance(frame.len);
        }
        match gone {
            Some(error) => self.server_gone(error),
            None => Ok(()),
        }
    }

    /// The attached server ended its connection unasked. Between
    /// transactions under transaction pooling the client loses nothing: the
    /// connection is dropped and its next statement gets another server.
    /// Otherwise the client's session state or transaction went with it,
    /// and the session ends with the server's reason.
    fn server_gone(&mut self, error: PgError) -> Result<(), PgError> {
        let idle = self
            .server
            .as_ref()
            .is_some_and(|l| l.conn_ref().status == b'I')
            && !self.pipeline.awaits_server();
        let in_transaction = self.sharding.is_some() && self.in_transaction();
        self.server = None;
        self.cancel.slot.set(None);
        if idle && self.mode == PoolMode::Transaction && !in_transaction {
            tracing::info!(error = %error, "dropped a server connection its server closed");
            return Ok(());
        }
        Err(error)
    }

    /// In transaction mode, returns the server to the pool as soon as it is
    /// idle outside a transaction with nothing outstanding.
    fn release_if_idle(&mut self) {
        if self.mode != PoolMode::Transaction || self.pipeline.awaits_server() {
            return;
        }
        if self.sharding.is_some() {
            if self.in_transaction() {
                return;
            }
            self.release_parked_if_idle();
        }
        if self
            .server
            .as_ref()
            .is_some_and(|s| s.conn_ref().is_clean())
        {
            self.cancel.slot.set(None);
            if let Some(lease) = self.server.take() {
                Pool::give_back(lease);
            }
            self.shrink_buffers();
        }
    }

    /// Gives back buffer memory a large statement or result left behind, so
    /// thousands of idle clients stay small.
    fn shrink_buffers(&mut self) {
        for buffer in [&mut self.inbox, &mut self.outbox] {
            if buffer.is_empty() && buffer.capacity() > IDLE_BUFFER_LIMIT {
                *buffer = BytesMut::new();
            }
        }
    }

    /// At the end of a session: roll back what the client left open and
    /// reset the connection, or close it when its state is unknown.
    async fn release_at_end(&mut self) {
        self.release_parked_at_end().await;
        self.cancel.slot.set(None);
        let Some(mut lease) = self.server.take() else {
            return;
        };
        if self.pipeline.awaits_server() {
            // A statement is still running: its state cannot be known
            // cheaply, so the connection is closed rather than reused.
            return;
        }
        let reset = self.mode == PoolMode::Session;
        let reset_query = self.reset_query.clone();
        let cleanup = async {
            let conn = lease.conn();
            if conn.status != b'I' {
                conn.run_maintenance("ROLLBACK").await?;
            }
            if reset && !reset_query.is_empty() {
                conn.run_maintenance(&reset_query).await?;
                conn.prepared.clear();
                conn.session_params.clear();
            }
            Ok::<(), PgError>(())
        };
        match tokio::time::timeout(std::time::Duration::from_secs(5), Box::pin(cleanup)).await {
            Ok(Ok(())) => Pool::give_back(lease),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "closing server connection that failed its reset")
            }
            Err(_) => tracing::warn!("closing server connection whose reset timed out"),
        }
    }
}

/// The protocol violation of a message type the frontend may not send.
fn invalid_message_type(tag: u8) -> SessionEnd {
    PgError::fatal(
        "08P01",
        format!(
            "invalid frontend message type '{}'",
            char::from(tag).escape_default()
        ),
    )
    .into()
}

/// Writes buffered bytes to the client when `write`, else flushes what the
/// transport still holds: output held for a retry is never written, even
/// while earlier bytes wait for their flush. The written bytes stay in
/// `outbox`: the caller drops them with [`Session::client_wrote`].
async fn write_or_flush(
    client: &mut WriteHalf<ClientStream>,
    outbox: &BytesMut,
    write: bool,
) -> Io {
    if write {
        Io::ClientWrote(client.write(outbox).await)
    } else {
        Io::ClientFlushed(client.flush().await)
    }
}

/// Polls a future once without waiting: `None` if it is not ready.
/// Used only with cancel-safe socket writes.
fn poll_once<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}

/// The server connection of a session that just attached one.
fn attached(server: &mut Option<Lease>) -> &mut ServerConn {
    server
        .as_mut()
        .expect("attach() leaves a server attached")
        .conn()
}

/// Prepares `def` on the server under its content name, closing a statement
/// evicted to make room.
/// `client_name` is given when this is the client's own Parse (its answer
/// is then shown to the client), and absent when the proxy adds the Parse.
fn prepare_on_server(
    conn: &mut ServerConn,
    pipeline: &mut Pipeline,
    def: &StatementDef,
    client_name: Option<&[u8]>,
) {
    if let Some(evicted) = conn.prepared.insert(def.id) {
        put_message(&mut conn.outbox, tag::CLOSE, |b| {
            b.extend_from_slice(b"S");
            put_cstr(b, server_name(evicted).as_bytes());
        });
        pipeline.expect(Expect::Close, false, None);
    }
    put_parse(&mut conn.outbox, def.server_name.as_bytes(), &def.content);
    pipeline.expect(
        Expect::Parse,
        client_name.is_some(),
        Some(Creates {
            id: def.id,
            slot: Slot::Named,
            client_name: client_name.map(Bytes::copy_from_slice),
        }),
    );
}

fn put_parse(out: &mut BytesMut, name: &[u8], content: &[u8]) {
    put_message(out, tag::PARSE, |b| {
        put_cstr(b, name);
        b.extend_from_slice(content);
    });
}

/// Commands that drop every prepared statement of the server session.
fn note_command(
    body: &[u8],
    prepared: &mut super::statements::ServerStatements,
    client: &mut ClientStatements,
) {
    let command = crate::net::messages::split_cstr(body).map_or(body, |(t, _)| t);
    if command == b"DISCARD ALL" || command == b"DEALLOCATE ALL" {
        prepared.clear();
        client.clear();
    }
}

/// Message and hint for a statement refused under transaction pooling.
fn transaction_mode_refusal(keyword: &str) -> (String, &'static str) {
    (
        format!("{keyword} is not supported in transaction pooling mode"),
        "use a user whose pool_mode is \"session\" for LISTEN/NOTIFY consumers",
    )
}

/// The first keyword of any statement in `sql` that needs a session of its
/// own (LISTEN), if present.
pub fn session_only_keyword(sql: &[u8]) -> Option<&'static str> {
    // Cheap pre-check: most statements never mention it.
    if !sql.windows(6).any(|w| w.eq_ignore_ascii_case(b"listen")) {
        return None;
    }
    let text = std::str::from_utf8(sql).ok()?;
    crate::router::statement_keywords(text)
        .into_iter()
        .any(|k| k.eq_ignore_ascii_case("listen"))
        .then_some("LISTEN")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A held answer waits in the outbox while earlier bytes still need
    /// their flush: flushing must not write it.
    #[tokio::test]
    async fn a_flush_does_not_write_held_output() {
        let (proxy_end, mut client_end) = tokio::net::UnixStream::pair().expect("socket pair");
        let (_, mut writer) = tokio::io::split(ClientStream::Unix(proxy_end));
        let held = BytesMut::from(&b"held answer"[..]);
        let io = write_or_flush(&mut writer, &held, false).await;
        assert!(matches!(io, Io::ClientFlushed(Ok(()))));
        drop(writer);
        let mut received = Vec::new();
        client_end
            .read_to_end(&mut received)
            .await
            .expect("read the client end");
        assert!(received.is_empty(), "held output reached the client");
    }
}
