//! The admin console: database `shardwire` on the proxy's own port, for
//! users marked `admin = true` (anyone else is refused at login with
//! 42501). It speaks the simple query protocol (psql, `simple_query`) and
//! the extended one (`query` in drivers, see [`extended`]); answers are
//! ordinary result sets of text columns. Several commands may share one
//! simple Query, separated by semicolons; an unknown command is refused
//! with 42601 and a hint listing the known ones.
//!
//! Commands:
//! - `SHOW POOLS`: per pool (a user on a database against one server):
//!   user, database, shard, address, role (primary/replica), mode, size,
//!   active (lent), idle, waiting clients, opened, closed, waits, wait_ms,
//!   checkout_timeouts, retired (replaced by RELOAD, draining).
//! - `SHOW CLIENTS`: id, user, database, address, tls, connected_since,
//!   statements, bytes_in, bytes_out.
//! - `SHOW SERVERS`: every open server connection: shard, address, user,
//!   database, backend pid, state (active/idle), connected_since,
//!   idle_since, idle_ms.
//! - `SHOW SHARDS`: per shard and database: primary, replica count,
//!   buckets owned, tables, rows and bytes, read from the primary (see
//!   [`shards`]); an unreachable shard's row says why in `error`.
//! - `SHOW CACHE`: each routed database's parse and routing cache:
//!   entries, capacity, hits, misses, hit ratio.
//! - `SHOW STATS`, `SHOW QUERIES`, `SHOW SLOW`: statement statistics and
//!   the slow log (see [`statements`]).
//! - `SHOW CONFIG` (every setting, passwords masked), `SHOW REPLICAS`
//!   (probed roles, lag, rotation), `SHOW VERSION`.
//! - `RELOAD`: re-reads the config file and applies it without dropping
//!   clients; a file with problems, or one changing a start-only setting,
//!   is refused with every problem named and the old config stays (see
//!   [`reload`] and [`crate::config::restart_only_changes`]).
//! - `PAUSE`: new checkouts wait (within their checkout timeout); answers
//!   once every lent server connection is back and the idle ones are
//!   closed, or with an error naming how many are still busy after
//!   `proxy.shutdown_timeout_ms`. `RESUME` lifts it. Both are idempotent.
//! - `SHUTDOWN`: answers, then asks whoever runs the proxy for a graceful
//!   stop (no new clients; running transactions finish, up to
//!   `proxy.shutdown_timeout_ms`).
//! - `PROMOTE <shard> <server>`: promotes a replica; the probe then moves
//!   writes to it.

mod cache;
mod clients;
mod commands;
pub mod extended;
mod pools;
mod reload;
mod resultset;
mod shards;
mod statements;
mod time;

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use crate::frontend::io::read_frame;
use crate::net::messages::{
    PgError, put_backend_key_data, put_parameter_status, put_ready_for_query, query_text, tag,
};
use crate::net::peek_frame;
use crate::net::stream::ClientStream;
use crate::proxy::Shared;
use commands::Command;
use extended::Extended;

/// Largest message the console accepts.
const MAX_MESSAGE: usize = 1024 * 1024;

/// Serves an authenticated admin client until it leaves.
pub async fn serve(stream: ClientStream, inbox: BytesMut, shared: Arc<Shared>) {
    let mut console = Console {
        stream,
        inbox,
        out: BytesMut::new(),
        shared,
        extended: Extended::default(),
        skip_until_sync: false,
        shutdown_after_answer: false,
    };
    console.greet();
    console.run().await;
}

/// One admin client's connection.
struct Console {
    stream: ClientStream,
    inbox: BytesMut,
    out: BytesMut,
    shared: Arc<Shared>,
    extended: Extended,
    /// After an error in the extended protocol, messages up to Sync are
    /// ignored.
    skip_until_sync: bool,
    /// SHUTDOWN ran: the shutdown is requested once its answer is sent.
    shutdown_after_answer: bool,
}

impl Console {
    /// The parameters and ReadyForQuery that end a login.
    fn greet(&mut self) {
        for (name, value) in [
            ("server_version", "15.0 (shardwire admin console)"),
            ("server_encoding", "UTF8"),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO, MDY"),
            ("integer_datetimes", "on"),
            ("standard_conforming_strings", "on"),
        ] {
            put_parameter_status(&mut self.out, name, value);
        }
        put_backend_key_data(&mut self.out, 0, 0);
        put_ready_for_query(&mut self.out, b'I');
    }

    async fn run(&mut self) {
        loop {
            // Pipelined messages (Parse, Bind, Execute, Sync) are answered
            // in one write once none is left buffered.
            let pipelined = matches!(peek_frame(&self.inbox, MAX_MESSAGE), Ok(Some(_)));
            if !pipelined && !self.send().await {
                return;
            }
            let frame = match read_frame(&mut self.stream, &mut self.inbox, MAX_MESSAGE).await {
                Ok(frame) => frame,
                Err(e) => {
                    e.encode(&mut self.out);
                    self.send().await;
                    return;
                }
            };
            let message = self.inbox.split_to(frame.len);
            let body = frame.body(&message);
            match frame.tag {
                tag::TERMINATE => return,
                tag::QUERY => {
                    self.extended.forget_unnamed();
                    self.simple_query(body).await;
                    put_ready_for_query(&mut self.out, b'I');
                }
                tag::SYNC => {
                    self.skip_until_sync = false;
                    self.extended.sync();
                    put_ready_for_query(&mut self.out, b'I');
                }
                tag::FLUSH => {}
                // Leftovers of a failed COPY: Postgres ignores them too.
                tag::COPY_DATA | tag::COPY_DONE | tag::COPY_FAIL => {}
                tag::FUNCTION_CALL => {
                    PgError::error("0A000", "the admin console has no functions to call")
                        .encode(&mut self.out);
                    put_ready_for_query(&mut self.out, b'I');
                }
                _ if self.skip_until_sync => {}
                tag::PARSE | tag::BIND | tag::DESCRIBE | tag::EXECUTE | tag::CLOSE => {
                    let shared = Arc::clone(&self.shared);
                    match self
                        .extended
                        .handle(frame.tag, body, &shared, &mut self.out)
                        .await
                    {
                        Ok(Some(command)) => self.completed(&command),
                        Ok(None) => {}
                        Err(e) => {
                            e.encode(&mut self.out);
                            self.skip_until_sync = true;
                        }
                    }
                }
                other => {
                    PgError::fatal(
                        "08P01",
                        format!("invalid frontend message type {}", char::from(other)),
                    )
                    .encode(&mut self.out);
                    self.send().await;
                    return;
                }
            }
        }
    }

    /// Runs the commands of a simple Query; the first error ends it.
    async fn simple_query(&mut self, body: &[u8]) {
        let sql = String::from_utf8_lossy(query_text(body)).into_owned();
        let commands = match Command::parse_script(&sql) {
            Ok(commands) => commands,
            Err(e) => return e.encode(&mut self.out),
        };
        for command in commands {
            match command.run(&self.shared).await {
                Ok(answer) => {
                    self.out.extend_from_slice(&answer);
                    self.completed(&command);
                }
                Err(e) => return e.encode(&mut self.out),
            }
        }
    }

    fn completed(&mut self, command: &Command) {
        if *command == Command::Shutdown {
            self.shutdown_after_answer = true;
        }
    }

    /// Writes the pending output; `false` when the client is gone. A
    /// SHUTDOWN is requested once its answer is out (or cannot be sent).
    async fn send(&mut self) -> bool {
        let sent = self.out.is_empty() || self.stream.write_all(&self.out).await.is_ok();
        self.out.clear();
        if std::mem::take(&mut self.shutdown_after_answer) {
            tracing::info!("shutdown requested by the admin console");
            self.shared.request_shutdown();
        }
        sent
    }
}
