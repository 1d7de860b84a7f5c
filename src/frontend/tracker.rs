//! Statement bookkeeping of one session: when each statement began, how
//! its answer ended, and where it ran, handed to the observer as one
//! [`StatementEvent`] per statement.
//!
//! The tracker sees the client's messages as the session handles them and
//! the bytes the session writes to the client. Watching the written bytes
//! (rather than each place that produces an answer: forwarded server
//! messages, the proxy's own replies, merged cross-shard results) gives
//! one definition of "done" for every path, and a held answer (a replica
//! read that may still be retried) counts only once it reaches the client.
//!
//! Units of work, in client order:
//! - a simple Query: done at the ReadyForQuery that ends its answer;
//! - an Execute: done at its CommandComplete, EmptyQueryResponse,
//!   PortalSuspended or ErrorResponse; after an error the server skips to
//!   Sync, so Executes still waiting at the next ReadyForQuery never ran;
//! - a Sync or FunctionCall: a marker answered by a ReadyForQuery.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use bytes::Bytes;
use tokio::time::Instant;

use super::clients::ClientEntry;
use crate::net::HEADER_LEN;
use crate::net::messages::{backend_tag as bt, bind_parts, error_field, parse_parts, split_cstr};
use crate::net::messages::{tag, target_parts};
use crate::observe::Observer;
use crate::observe::event::{Route, StatementEvent};

/// Bytes of a CommandComplete or ErrorResponse body kept to read its row
/// count or SQLSTATE (both sit at the start).
const CAPTURE: usize = 128;

/// What a queued unit waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A simple Query: ends at ReadyForQuery.
    Simple,
    /// An Execute: ends at its own completion message.
    Execute,
    /// A Sync or FunctionCall: only answered by a ReadyForQuery.
    Marker,
    /// Where the client ended a COPY IN (CopyDone or CopyFail): the
    /// Syncs before it reached a server in COPY IN mode, which ignores
    /// them.
    CopyEnd,
}

/// One statement (or marker) awaiting its answer.
#[derive(Debug, Clone)]
struct Unit {
    kind: Kind,
    text: Bytes,
    bind: Option<Bytes>,
    started: Instant,
    wall: SystemTime,
    /// Rows from CommandComplete tags.
    rows: u64,
    /// DataRows seen (the count of a suspended portal, which has no tag).
    data_rows: u64,
    error: Option<[u8; 5]>,
    route: Route,
}

/// A bound portal: the text and Bind of the statement it will execute,
/// where routing sent it (a fan-out portal runs at its Bind or Describe),
/// and when it was bound (its first Execute is timed from there).
#[derive(Debug, Clone)]
struct Portal {
    text: Bytes,
    bind: Bytes,
    route: Route,
    bound: Option<(Instant, SystemTime)>,
}

/// Splits the client-bound byte stream into messages, keeping the start of
/// the bodies it needs.
#[derive(Debug, Default, Clone)]
struct Scanner {
    header: [u8; HEADER_LEN],
    header_len: usize,
    body_left: usize,
    body: Vec<u8>,
}

/// The statement bookkeeping of one session.
pub struct StatementTracker {
    observer: Arc<Observer>,
    client: Arc<ClientEntry>,
    /// Text of each statement the client prepared, by its name.
    statements: HashMap<Bytes, Bytes>,
    /// Bound portals, by name.
    portals: HashMap<Bytes, Portal>,
    queue: VecDeque<Unit>,
    scanner: Scanner,
    /// The portal the message being handled routes (a Bind or a
    /// Describe of a portal): routing noted meanwhile goes with it.
    routing_portal: Option<Bytes>,
    /// The message being handled queued a unit (the queue's last).
    current_queued: bool,
    /// The answers show the server in COPY IN and the client has not
    /// ended it yet: its Syncs meanwhile get no answer.
    copy_in: bool,
    /// Where every statement runs, for a session that is not routed.
    fixed_route: Option<Route>,
}

impl StatementTracker {
    /// Bookkeeping for `client`, reporting to `observer`. `fixed_route`
    /// is where every statement of an unrouted session runs; a routed
    /// session reports routes through [`StatementTracker::note_route`].
    pub fn new(
        observer: Arc<Observer>,
        client: Arc<ClientEntry>,
        fixed_route: Option<Route>,
    ) -> StatementTracker {
        StatementTracker {
            observer,
            client,
            statements: HashMap::new(),
            portals: HashMap::new(),
            queue: VecDeque::new(),
            scanner: Scanner::default(),
            routing_portal: None,
            current_queued: false,
            copy_in: false,
            fixed_route,
        }
    }

    /// Notes a client message the session is about to handle (not one it
    /// skips while waiting for Sync).
    pub fn on_client_message(&mut self, tag: u8, message: &Bytes) {
        self.current_queued = false;
        self.routing_portal = None;
        let body = &message[HEADER_LEN.min(message.len())..];
        match tag {
            tag::QUERY => {
                let text = split_cstr(body).map_or(body, |(text, _)| text);
                let text = message.slice_ref(text);
                self.queue_unit(Kind::Simple, text, None);
            }
            tag::PARSE => {
                if let Some((name, rest)) = parse_parts(body)
                    && let Some((text, _)) = split_cstr(rest)
                {
                    self.statements
                        .insert(message.slice_ref(name), message.slice_ref(text));
                }
            }
            tag::BIND => {
                if let Some((portal, statement, _)) = bind_parts(body) {
                    let text = self.statements.get(statement).cloned().unwrap_or_default();
                    let name = message.slice_ref(portal);
                    self.portals.insert(
                        name.clone(),
                        Portal {
                            text,
                            bind: message.clone(),
                            route: Route::default(),
                            bound: Some((Instant::now(), SystemTime::now())),
                        },
                    );
                    self.routing_portal = Some(name);
                }
            }
            tag::DESCRIBE => {
                if let Some((b'P', name)) = target_parts(body) {
                    self.routing_portal = Some(message.slice_ref(name));
                }
            }
            tag::EXECUTE => {
                let portal = split_cstr(body).and_then(|(name, _)| self.portals.get_mut(name));
                match portal {
                    Some(p) => {
                        let (text, bind, route) = (p.text.clone(), p.bind.clone(), p.route);
                        let bound = p.bound.take();
                        self.queue_unit(Kind::Execute, text, Some(bind));
                        if let Some(unit) = self.queue.back_mut() {
                            if self.fixed_route.is_none() {
                                unit.route = route;
                            }
                            // A portal's first Execute counts from its Bind:
                            // a fan-out portal may already have run.
                            if let Some((started, wall)) = bound {
                                unit.started = started;
                                unit.wall = wall;
                            }
                        }
                    }
                    None => self.queue_unit(Kind::Execute, Bytes::new(), None),
                }
            }
            tag::COPY_DONE | tag::COPY_FAIL => {
                if self.copy_in {
                    self.copy_in = false;
                } else {
                    self.queue_unit(Kind::CopyEnd, Bytes::new(), None);
                    self.current_queued = false;
                }
            }
            tag::CLOSE => {
                if let Some((kind, name)) = target_parts(body) {
                    match kind {
                        b'S' => self.statements.remove(name),
                        _ => self.portals.remove(name).map(|p| p.text),
                    };
                }
            }
            // A server in COPY IN ignores Syncs.
            tag::SYNC if self.copy_in => {}
            tag::SYNC | tag::FUNCTION_CALL => {
                self.queue_unit(Kind::Marker, Bytes::new(), None);
            }
            _ => {}
        }
    }

    /// Notes that the statement being handled runs on `shard`, on a
    /// replica or not.
    pub fn note_route(&mut self, shard: usize, replica: bool) {
        let route = match self.queue.back_mut() {
            Some(unit) if self.current_queued => &mut unit.route,
            _ => match self
                .routing_portal
                .as_ref()
                .and_then(|name| self.portals.get_mut(name))
            {
                Some(portal) => &mut portal.route,
                None => return,
            },
        };
        route.shards.insert(shard);
        route.scatter = route.shards.len() > 1;
        route.replica |= replica;
    }

    /// Where to rewind to if the messages from the current one on are
    /// handled again (a retried replica read).
    pub fn mark(&self) -> usize {
        self.queue
            .len()
            .saturating_sub(usize::from(self.current_queued))
    }

    /// Forgets units queued since `mark`: their messages are about to be
    /// handled again.
    pub fn rewind(&mut self, mark: usize) {
        self.queue.truncate(mark);
    }

    /// Notes bytes written to the client.
    pub fn on_client_output(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let Some((tag, used)) = self.scanner.feed(rest) else {
                return;
            };
            rest = &rest[used..];
            if let Some(tag) = tag {
                let body = std::mem::take(&mut self.scanner.body);
                self.on_reply(tag, &body);
                self.scanner.body = body;
                self.scanner.body.clear();
            }
        }
    }

    fn queue_unit(&mut self, kind: Kind, text: Bytes, bind: Option<Bytes>) {
        self.queue.push_back(Unit {
            kind,
            text,
            bind,
            started: Instant::now(),
            wall: SystemTime::now(),
            rows: 0,
            data_rows: 0,
            error: None,
            route: self.fixed_route.unwrap_or_default(),
        });
        self.current_queued = true;
    }

    fn on_reply(&mut self, tag: u8, body: &[u8]) {
        match tag {
            bt::DATA_ROW => {
                if let Some(unit) = self.queue.front_mut() {
                    unit.data_rows += 1;
                }
            }
            bt::COMMAND_COMPLETE => {
                if let Some(unit) = self.queue.front_mut() {
                    unit.rows += command_rows(body);
                }
                self.finish_execute();
            }
            bt::PORTAL_SUSPENDED => {
                if let Some(unit) = self.queue.front_mut() {
                    unit.rows = unit.data_rows;
                }
                self.finish_execute();
            }
            bt::EMPTY_QUERY => self.finish_execute(),
            bt::ERROR => {
                let Some(unit) = self.queue.front_mut() else {
                    return;
                };
                if unit.error.is_none()
                    && let Some(code) = error_field(body, b'C')
                    && let Ok(code) = <[u8; 5]>::try_from(code.as_bytes())
                {
                    unit.error = Some(code);
                }
                self.finish_execute();
            }
            bt::READY_FOR_QUERY => self.on_ready(),
            bt::COPY_IN => self.enter_copy_in(),
            _ => {}
        }
    }

    /// The server entered COPY IN: Syncs the client sent since the COPY
    /// began will get no answer, up to where the client ended the COPY (or
    /// until it does).
    fn enter_copy_in(&mut self) {
        let mut index = 1;
        while index < self.queue.len() {
            match self.queue[index].kind {
                Kind::Marker => {
                    self.queue.remove(index);
                }
                Kind::CopyEnd => {
                    self.queue.remove(index);
                    return;
                }
                _ => index += 1,
            }
        }
        self.copy_in = true;
    }

    /// Ends the Execute at the head of the queue, if that is what it is.
    fn finish_execute(&mut self) {
        if self.queue.front().is_some_and(|u| u.kind == Kind::Execute)
            && let Some(unit) = self.queue.pop_front()
        {
            self.report(unit);
        }
    }

    /// A ReadyForQuery ends a simple Query or a Sync; Executes before it
    /// that are still waiting were skipped by the server after an error.
    fn on_ready(&mut self) {
        while let Some(unit) = self.queue.pop_front() {
            match unit.kind {
                Kind::Execute | Kind::CopyEnd => {}
                Kind::Simple => return self.report(unit),
                Kind::Marker => return,
            }
        }
    }

    fn report(&mut self, unit: Unit) {
        if unit.text.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        self.client.statements.fetch_add(1, Ordering::Relaxed);
        self.observer.record(StatementEvent {
            session: Arc::clone(&self.client.info),
            text: unit.text,
            bind: unit.bind,
            started: unit.wall,
            duration: unit.started.elapsed(),
            rows: unit.rows,
            error: unit.error,
            route: unit.route,
        });
    }
}

impl Scanner {
    /// Consumes bytes of the current message from `bytes`; returns how
    /// many it used and, when that completed a message, its tag (with the
    /// kept start of its body in `self.body`). `None` when `bytes` is empty.
    fn feed(&mut self, bytes: &[u8]) -> Option<(Option<u8>, usize)> {
        if bytes.is_empty() {
            return None;
        }
        let mut used = 0;
        if self.header_len < HEADER_LEN {
            let take = (HEADER_LEN - self.header_len).min(bytes.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&bytes[..take]);
            self.header_len += take;
            used = take;
            if self.header_len < HEADER_LEN {
                return Some((None, used));
            }
            let len = u32::from_be_bytes([
                self.header[1],
                self.header[2],
                self.header[3],
                self.header[4],
            ]) as usize;
            self.body_left = len.saturating_sub(HEADER_LEN - 1);
        }
        let tag = self.header[0];
        let take = self.body_left.min(bytes.len() - used);
        let keeps = matches!(tag, bt::COMMAND_COMPLETE | bt::ERROR);
        if keeps && self.body.len() < CAPTURE {
            let room = CAPTURE - self.body.len();
            self.body
                .extend_from_slice(&bytes[used..used + take.min(room)]);
        }
        self.body_left -= take;
        used += take;
        if self.body_left > 0 {
            return Some((None, used));
        }
        self.header_len = 0;
        Some((Some(tag), used))
    }
}

/// The row count at the end of a CommandComplete tag (`SELECT 5`,
/// `INSERT 0 5`, `UPDATE 5`); 0 for tags without one.
fn command_rows(body: &[u8]) -> u64 {
    let tag = split_cstr(body).map_or(body, |(tag, _)| tag);
    tag.rsplit(|&b| b == b' ')
        .next()
        .filter(|_| tag.contains(&b' '))
        .and_then(|n| std::str::from_utf8(n).ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
