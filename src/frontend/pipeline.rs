//! The responses a session still expects from its server, in order.
//!
//! The extended protocol lets a client send many messages before it reads
//! any answer. When the proxy rewrites that stream (skips a Parse the server
//! already has, adds a Parse the server lacks, answers a Close itself), the
//! answers must still reach the client in the order of its own messages.
//! Each message sent to the server, or answered by the proxy, leaves an entry
//! here; server responses are matched against the head entry, and the
//! proxy's own answers are released when everything before them is answered.
//! Server errors in the extended protocol skip to the next Sync, exactly as
//! the server does, so entries it never answers are dropped there.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::statements::{ClientStatements, ServerStatements};
use crate::net::messages::{PgError, backend_tag as bt, put_empty, put_ready_for_query};

/// Which response ends a message's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Parse: ParseComplete.
    Parse,
    /// Bind: BindComplete.
    Bind,
    /// Close: CloseComplete.
    Close,
    /// Describe: RowDescription or NoData (after ParameterDescription).
    Describe,
    /// Execute: CommandComplete, EmptyQueryResponse or PortalSuspended.
    Execute,
    /// Simple Query or FunctionCall: ReadyForQuery.
    ReadyForQuery,
    /// One statement of a client's query string that the proxy sends as a
    /// Query of its own: its answer is forwarded except the ReadyForQuery
    /// (the proxy ends the string's answer itself).
    Statement,
    /// Sync: ReadyForQuery, except that a server in COPY IN mode ignores a
    /// Sync (drivers send one right after the Execute that starts a COPY).
    Sync,
}

impl Expect {
    fn ends_with(self, tag: u8) -> bool {
        match self {
            Expect::Parse => tag == bt::PARSE_COMPLETE,
            Expect::Bind => tag == bt::BIND_COMPLETE,
            Expect::Close => tag == bt::CLOSE_COMPLETE,
            Expect::Describe => tag == bt::ROW_DESCRIPTION || tag == bt::NO_DATA,
            Expect::Execute => {
                tag == bt::COMMAND_COMPLETE || tag == bt::EMPTY_QUERY || tag == bt::PORTAL_SUSPENDED
            }
            Expect::ReadyForQuery | Expect::Statement | Expect::Sync => tag == bt::READY_FOR_QUERY,
        }
    }

    /// Whether an ErrorResponse ends this message's answer and makes the
    /// server skip to the next Sync (true for the extended protocol).
    fn error_skips_to_sync(self) -> bool {
        !matches!(
            self,
            Expect::ReadyForQuery | Expect::Statement | Expect::Sync
        )
    }
}

/// Which server statement slot a Parse fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A named (content-derived) statement.
    Named,
    /// The unnamed statement.
    Unnamed,
}

/// A statement a Parse creates; forgotten if the Parse fails, on the server
/// and, for the client's own Parse, in the client's names too (Postgres
/// creates nothing when Parse fails).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creates {
    /// Content id of the statement.
    pub id: u128,
    /// The server slot it fills.
    pub slot: Slot,
    /// The client's name for it, when the Parse is the client's own.
    pub client_name: Option<Bytes>,
}

/// A reply the proxy makes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Synthetic {
    /// ParseComplete for a Parse the server already had.
    ParseComplete,
    /// CloseComplete for a Close the proxy handled.
    CloseComplete,
    /// An error found by the proxy (the client's following messages up to
    /// Sync are skipped by the session, as the server would).
    Error(PgError),
    /// ReadyForQuery for a simple query the proxy answered without a server.
    ReadyForQuery(u8),
    /// Whole messages the proxy composed (a merged cross-shard result, a
    /// transaction command it answered itself).
    Raw(Bytes),
}

/// One expected answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// Answered by the server.
    Server {
        /// What ends the answer.
        expect: Expect,
        /// False for messages the proxy added: their answers are hidden
        /// (errors still reach the client).
        visible: bool,
        /// A statement this message creates on the server.
        creates: Option<Creates>,
    },
    /// Answered by the proxy.
    Proxy(Synthetic),
    /// Where the client ended a COPY IN (CopyDone or CopyFail): Syncs sent
    /// before it reached a server in COPY IN mode, which ignores them.
    CopyEnd,
}

/// What to do with one server message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Send it to the client.
    Forward,
    /// Drop it (an answer to a message the proxy added).
    Hide,
}

/// The server sent something no pending message explains: the connection's
/// state is unknown and it must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Desync(pub u8);

/// The queue of expected answers of one session.
#[derive(Debug, Default, Clone)]
pub struct Pipeline {
    queue: VecDeque<Pending>,
    failed: bool,
    /// The server is in COPY IN mode and the client has not ended it yet.
    copy_in: bool,
    /// Errors sent to the client so far (the server's and the proxy's).
    errors_seen: u64,
    /// Extended-protocol messages went to the server since the last Sync:
    /// the server may hold an implicit transaction or open portals (an
    /// Execute with a row limit answers PortalSuspended), so it must stay
    /// with this client until the Sync.
    unsynced: bool,
}

impl Pipeline {
    /// Adds an expected server answer.
    pub fn expect(&mut self, expect: Expect, visible: bool, creates: Option<Creates>) {
        match expect {
            Expect::Sync => self.unsynced = false,
            Expect::ReadyForQuery | Expect::Statement => {}
            _ => self.unsynced = true,
        }
        if expect == Expect::Sync && self.copy_in {
            // The server ignores it: no answer will come.
            return;
        }
        self.queue.push_back(Pending::Server {
            expect,
            visible,
            creates,
        });
    }

    /// Adds a proxy answer, released in order.
    pub fn reply(&mut self, reply: Synthetic) {
        self.queue.push_back(Pending::Proxy(reply));
    }

    /// Notes that the client ended a COPY IN (sent CopyDone or CopyFail).
    pub fn copy_ended(&mut self) {
        if self.copy_in {
            self.copy_in = false;
        } else if !self.queue.is_empty() {
            // The server may not have entered COPY IN yet: remember where
            // the client's COPY data ended.
            self.queue.push_back(Pending::CopyEnd);
        }
    }

    /// True when no answer is outstanding.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// True while a server answer is outstanding (so the server connection
    /// must stay with this client).
    pub fn awaits_server(&self) -> bool {
        self.copy_in || self.unsynced || self.has_server_answers_pending()
    }

    /// Whether the server behind this queue holds an unsynced extended batch.
    pub fn unsynced(&self) -> bool {
        self.unsynced
    }

    /// Takes the unsynced flag when the server is parked (sharded sessions
    /// keep it per server).
    pub fn take_unsynced(&mut self) -> bool {
        std::mem::take(&mut self.unsynced)
    }

    /// Restores the unsynced flag of a server that becomes active again.
    pub fn set_unsynced(&mut self, unsynced: bool) {
        self.unsynced = unsynced;
    }

    /// How many errors reached the client so far: a proxy running a query
    /// string statement by statement stops at the first.
    pub fn errors_seen(&self) -> u64 {
        self.errors_seen
    }

    /// An error since the last ReadyForQuery: the client's messages are
    /// skipped until its Sync.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Whether answers to messages already sent are still to come.
    pub fn has_server_answers_pending(&self) -> bool {
        self.queue
            .iter()
            .any(|p| matches!(p, Pending::Server { .. }))
    }

    /// The server entered COPY IN: the Syncs the client sent after the
    /// COPY started and before it ended the COPY will never be answered.
    fn enter_copy_in(&mut self) {
        let end = self
            .queue
            .iter()
            .position(|p| *p == Pending::CopyEnd)
            .unwrap_or(self.queue.len());
        let mut index = 1;
        let mut end = end;
        while index < end {
            if matches!(
                self.queue[index],
                Pending::Server {
                    expect: Expect::Sync,
                    ..
                }
            ) {
                self.queue.remove(index);
                end -= 1;
            } else {
                index += 1;
            }
        }
        match self.queue.get(end) {
            Some(Pending::CopyEnd) => {
                self.queue.remove(end);
            }
            _ => self.copy_in = true,
        }
    }

    /// Writes the proxy answers that are now at the head of the queue.
    pub fn release_replies(&mut self, out: &mut BytesMut) {
        while let Some(Pending::Proxy(_) | Pending::CopyEnd) = self.queue.front() {
            let Some(Pending::Proxy(reply)) = self.queue.pop_front() else {
                continue;
            };
            match reply {
                Synthetic::ReadyForQuery(status) => {
                    self.failed = false;
                    put_ready_for_query(out, status);
                }
                _ if self.failed => {}
                Synthetic::ParseComplete => put_empty(out, bt::PARSE_COMPLETE),
                Synthetic::CloseComplete => put_empty(out, bt::CLOSE_COMPLETE),
                Synthetic::Raw(bytes) => out.extend_from_slice(&bytes),
                Synthetic::Error(e) => {
                    e.encode(out);
                    self.failed = true;
                    self.errors_seen += 1;
                }
            }
        }
    }

    /// Matches one server message (not an asynchronous one) against the
    /// head of the queue and says where it goes. Proxy answers that become
    /// due are written to `out` first.
    pub fn on_server_message(
        &mut self,
        tag: u8,
        statements: &mut ServerStatements,
        client: &mut ClientStatements,
        out: &mut BytesMut,
    ) -> Result<Route, Desync> {
        self.release_replies(out);
        if tag == bt::READY_FOR_QUERY {
            return self.on_ready_for_query(statements, client);
        }
        let Some(Pending::Server {
            expect,
            visible,
            creates,
        }) = self.queue.front().cloned()
        else {
            // An error nobody asked for is the server ending the session
            // (shutdown, idle-in-transaction timeout): the client must see it.
            return if tag == bt::ERROR {
                Ok(Route::Forward)
            } else {
                Err(Desync(tag))
            };
        };
        if tag == bt::ERROR {
            self.errors_seen += 1;
            self.copy_in = false;
            if expect.error_skips_to_sync() {
                self.queue.pop_front();
                undo(creates, statements, client);
                self.failed = true;
            }
            return Ok(Route::Forward);
        }
        match tag {
            bt::COPY_IN => self.enter_copy_in(),
            // The server has left COPY IN, whether the client ended it or not.
            bt::COMMAND_COMPLETE => self.copy_in = false,
            _ => {}
        }
        if expect.ends_with(tag) {
            self.queue.pop_front();
        }
        Ok(if visible { Route::Forward } else { Route::Hide })
    }

    fn on_ready_for_query(
        &mut self,
        statements: &mut ServerStatements,
        client: &mut ClientStatements,
    ) -> Result<Route, Desync> {
        while let Some(pending) = self.queue.pop_front() {
            match pending {
                Pending::Server {
                    expect: Expect::ReadyForQuery | Expect::Sync,
                    visible,
                    ..
                } => {
                    self.failed = false;
                    return Ok(if visible { Route::Forward } else { Route::Hide });
                }
                Pending::Server {
                    expect: Expect::Statement,
                    ..
                } => return Ok(Route::Hide),
                Pending::Server { creates, .. } => undo(creates, statements, client),
                Pending::Proxy(_) | Pending::CopyEnd => {}
            }
        }
        Err(Desync(bt::READY_FOR_QUERY))
    }
}

/// Forgets a statement whose Parse the server did not run.
fn undo(creates: Option<Creates>, server: &mut ServerStatements, client: &mut ClientStatements) {
    let Some(creates) = creates else { return };
    match creates.slot {
        Slot::Named => server.remove(creates.id),
        Slot::Unnamed if server.unnamed == Some(creates.id) => server.unnamed = None,
        Slot::Unnamed => {}
    }
    if let Some(name) = creates.client_name
        && client.get(&name).is_some_and(|def| def.id == creates.id)
    {
        client.remove(&name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(id: u128) -> Creates {
        Creates {
            id,
            slot: Slot::Named,
            client_name: None,
        }
    }

    fn tags(out: &BytesMut) -> Vec<u8> {
        let mut tags = vec![];
        let mut offset = 0;
        while let Ok(Some(frame)) = crate::net::peek_frame(&out[offset..], 1 << 20) {
            tags.push(frame.tag);
            offset += frame.len;
        }
        tags
    }

    #[test]
    fn proxy_answers_keep_their_place() {
        let mut p = Pipeline::default();
        let mut stmts = ServerStatements::new(10);
        let mut client = ClientStatements::default();
        let mut out = BytesMut::new();
        // Bind+Execute of an earlier statement, then a Parse the server
        // already has (answered by the proxy), then Sync.
        p.expect(Expect::Bind, true, None);
        p.expect(Expect::Execute, true, None);
        p.reply(Synthetic::ParseComplete);
        p.expect(Expect::ReadyForQuery, true, None);
        p.release_replies(&mut out);
        assert!(out.is_empty(), "must wait for the earlier answers");
        for tag in [bt::BIND_COMPLETE, bt::DATA_ROW, bt::COMMAND_COMPLETE] {
            assert_eq!(
                p.on_server_message(tag, &mut stmts, &mut client, &mut out),
                Ok(Route::Forward)
            );
        }
        p.release_replies(&mut out);
        assert_eq!(tags(&out), vec![bt::PARSE_COMPLETE]);
        assert_eq!(
            p.on_server_message(bt::READY_FOR_QUERY, &mut stmts, &mut client, &mut out),
            Ok(Route::Forward)
        );
        assert!(p.is_empty());
    }

    #[test]
    fn hidden_parse_is_swallowed_but_its_error_is_not() {
        let mut p = Pipeline::default();
        let mut stmts = ServerStatements::new(10);
        let mut client = ClientStatements::default();
        let mut out = BytesMut::new();
        stmts.insert(7);
        p.expect(Expect::Parse, false, Some(named(7)));
        p.expect(Expect::Bind, true, None);
        p.expect(Expect::ReadyForQuery, true, None);
        assert_eq!(
            p.on_server_message(bt::PARSE_COMPLETE, &mut stmts, &mut client, &mut out),
            Ok(Route::Hide)
        );
        assert!(stmts.has(7));

        stmts.insert(8);
        let mut p = Pipeline::default();
        p.expect(Expect::Parse, false, Some(named(8)));
        p.expect(Expect::Bind, true, None);
        p.reply(Synthetic::ParseComplete);
        p.expect(Expect::ReadyForQuery, true, None);
        assert_eq!(
            p.on_server_message(bt::ERROR, &mut stmts, &mut client, &mut out),
            Ok(Route::Forward)
        );
        assert!(!stmts.has(8), "a failed Parse leaves nothing prepared");
        // The server skips to Sync: the synthetic answer behind the error is dropped.
        assert_eq!(
            p.on_server_message(bt::READY_FOR_QUERY, &mut stmts, &mut client, &mut out),
            Ok(Route::Forward)
        );
        assert!(out.is_empty());
        assert!(p.is_empty());
    }

    #[test]
    fn failed_client_parse_forgets_the_client_name() {
        let mut p = Pipeline::default();
        let mut stmts = ServerStatements::new(10);
        let mut client = ClientStatements::default();
        let mut out = BytesMut::new();
        let def = crate::frontend::statements::StatementDef::new(b"selec 1\0\0\0");
        client.insert(b"s1", def.clone());
        stmts.insert(def.id);
        p.expect(
            Expect::Parse,
            true,
            Some(Creates {
                id: def.id,
                slot: Slot::Named,
                client_name: Some(Bytes::from_static(b"s1")),
            }),
        );
        p.expect(Expect::Sync, true, None);
        assert_eq!(
            p.on_server_message(bt::ERROR, &mut stmts, &mut client, &mut out),
            Ok(Route::Forward)
        );
        assert!(client.get(b"s1").is_none(), "the name is free again");
        assert!(!stmts.has(def.id));
    }

    #[test]
    fn simple_query_errors_do_not_skip() {
        let mut p = Pipeline::default();
        let mut stmts = ServerStatements::new(10);
        let mut client = ClientStatements::default();
        let mut out = BytesMut::new();
        p.expect(Expect::ReadyForQuery, true, None);
        for tag in [
            bt::ROW_DESCRIPTION,
            bt::DATA_ROW,
            bt::COMMAND_COMPLETE,
            bt::ERROR,
        ] {
            assert_eq!(
                p.on_server_message(tag, &mut stmts, &mut client, &mut out),
                Ok(Route::Forward)
            );
        }
        assert!(!p.is_empty());
        assert_eq!(
            p.on_server_message(bt::READY_FOR_QUERY, &mut stmts, &mut client, &mut out),
            Ok(Route::Forward)
        );
        assert!(p.is_empty());
    }

    #[test]
    fn unexplained_messages_are_a_desync() {
        let mut p = Pipeline::default();
        let mut stmts = ServerStatements::new(10);
        let mut client = ClientStatements::default();
        let mut out = BytesMut::new();
        assert_eq!(
            p.on_server_message(bt::DATA_ROW, &mut stmts, &mut client, &mut out),
            Err(Desync(bt::DATA_ROW))
        );
        assert_eq!(
            p.on_server_message(bt::READY_FOR_QUERY, &mut stmts, &mut client, &mut out),
            Err(Desync(bt::READY_FOR_QUERY))
        );
    }

    #[test]
    fn syncs_sent_during_copy_in_are_not_awaited() {
        let mut stmts = ServerStatements::new(10);
        let mut client = ClientStatements::default();
        let mut out = BytesMut::new();
        // tokio-postgres: Bind, Execute, Sync, CopyData.., CopyDone, Sync,
        // all sent before the server answers.
        let mut p = Pipeline::default();
        p.expect(Expect::Bind, true, None);
        p.expect(Expect::Execute, true, None);
        p.expect(Expect::Sync, true, None);
        p.copy_ended();
        p.expect(Expect::Sync, true, None);
        for tag in [
            bt::BIND_COMPLETE,
            bt::COPY_IN,
            bt::COMMAND_COMPLETE,
            bt::READY_FOR_QUERY,
        ] {
            assert_eq!(
                p.on_server_message(tag, &mut stmts, &mut client, &mut out),
                Ok(Route::Forward)
            );
        }
        assert!(!p.awaits_server(), "one ReadyForQuery answers the COPY");

        // The same, but the client waits for CopyInResponse before sending data.
        let mut p = Pipeline::default();
        p.expect(Expect::Bind, true, None);
        p.expect(Expect::Execute, true, None);
        p.expect(Expect::Sync, true, None);
        for tag in [bt::BIND_COMPLETE, bt::COPY_IN] {
            assert_eq!(
                p.on_server_message(tag, &mut stmts, &mut client, &mut out),
                Ok(Route::Forward)
            );
        }
        p.expect(Expect::Sync, true, None); // ignored by the server, stray
        assert!(p.awaits_server());
        p.copy_ended();
        p.expect(Expect::Sync, true, None);
        for tag in [bt::COMMAND_COMPLETE, bt::READY_FOR_QUERY] {
            assert_eq!(
                p.on_server_message(tag, &mut stmts, &mut client, &mut out),
                Ok(Route::Forward)
            );
        }
        assert!(!p.awaits_server());
    }

    #[test]
    fn simple_query_copy_needs_no_sync() {
        let mut stmts = ServerStatements::new(10);
        let mut client = ClientStatements::default();
        let mut out = BytesMut::new();
        let mut p = Pipeline::default();
        p.expect(Expect::ReadyForQuery, true, None);
        assert_eq!(
            p.on_server_message(bt::COPY_IN, &mut stmts, &mut client, &mut out),
            Ok(Route::Forward)
        );
        p.copy_ended();
        for tag in [bt::COMMAND_COMPLETE, bt::READY_FOR_QUERY] {
            assert_eq!(
                p.on_server_message(tag, &mut stmts, &mut client, &mut out),
                Ok(Route::Forward)
            );
        }
        assert!(!p.awaits_server());
        assert!(p.is_empty());
    }

    #[test]
    fn a_suspended_portal_keeps_the_server_until_sync() {
        let mut p = Pipeline::default();
        let mut stmts = ServerStatements::new(10);
        let mut client = ClientStatements::default();
        let mut out = BytesMut::new();
        p.expect(Expect::Bind, true, None);
        p.expect(Expect::Execute, true, None);
        for tag in [bt::BIND_COMPLETE, bt::DATA_ROW, bt::PORTAL_SUSPENDED] {
            assert_eq!(
                p.on_server_message(tag, &mut stmts, &mut client, &mut out),
                Ok(Route::Forward)
            );
        }
        assert!(
            p.awaits_server(),
            "no Sync yet: the portal lives on this server"
        );
        p.expect(Expect::Sync, true, None);
        assert_eq!(
            p.on_server_message(bt::READY_FOR_QUERY, &mut stmts, &mut client, &mut out),
            Ok(Route::Forward)
        );
        assert!(!p.awaits_server());
    }

    #[test]
    fn unsolicited_errors_reach_the_client() {
        let mut p = Pipeline::default();
        let mut stmts = ServerStatements::new(10);
        let mut client = ClientStatements::default();
        let mut out = BytesMut::new();
        assert_eq!(
            p.on_server_message(bt::ERROR, &mut stmts, &mut client, &mut out),
            Ok(Route::Forward)
        );
    }

    #[test]
    fn proxy_error_suppresses_later_replies_until_sync() {
        let mut p = Pipeline::default();
        let mut stmts = ServerStatements::new(10);
        let mut client = ClientStatements::default();
        let mut out = BytesMut::new();
        p.reply(Synthetic::Error(PgError::error("42P05", "exists")));
        p.reply(Synthetic::CloseComplete);
        p.expect(Expect::ReadyForQuery, true, None);
        p.release_replies(&mut out);
        assert_eq!(tags(&out), vec![bt::ERROR]);
        assert_eq!(
            p.on_server_message(bt::READY_FOR_QUERY, &mut stmts, &mut client, &mut out),
            Ok(Route::Forward)
        );
    }
}
