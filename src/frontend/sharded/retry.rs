//! Retrying a read whose replica failed before any of its answer reached
//! the client.
//!
//! When a read outside a transaction goes to a freshly borrowed replica,
//! the session takes a *retry point*: the pipeline as it was, the client's
//! messages from the one that started the read on, and the client output
//! queued so far. Until the replica has answered everything, its answer is
//! held back instead of being written to the client. If the replica drops
//! the connection (it was stopped, it crashed), the held answer is thrown
//! away, the replica is banned, and the client's messages are handled
//! again: the router picks another replica or the primary, and the client
//! never sees the failure. Once the answer is complete (or too large to
//! hold) it is released and the point is gone. In an extended batch the
//! answer is complete only at the client's Sync (or Flush): before that a
//! server sends nothing unless it is failing, and then what it flushes
//! with its FATAL error (answers so far, an error that skips to Sync) is
//! part of the failed read.

use bytes::{Bytes, BytesMut};

use crate::frontend::pipeline::Pipeline;
use crate::frontend::session::Session;
use crate::net::messages::tag;

/// Held answer bytes beyond which a read is no longer retryable: the
/// answer then streams to the client as usual.
const MAX_HELD: usize = 128 * 1024;

/// What is needed to run a read again elsewhere.
pub struct RetryPoint {
    /// The shard and server the read went to.
    shard: usize,
    server: usize,
    /// The pipeline before the read.
    pipeline: Pipeline,
    /// Client output queued before the read (held back with the answer,
    /// to keep the order).
    earlier_output: BytesMut,
    /// The client's messages since the read began, handled again on retry.
    messages: BytesMut,
    /// Names of statements the client prepared since (forgotten on retry,
    /// as their Parse is handled again).
    parsed: Vec<Bytes>,
    /// The statement tracker's queue before the read (its statements are
    /// queued again when their messages are handled again).
    tracker_mark: usize,
    /// The client sent a Flush since: it may wait for answers before its
    /// Sync.
    client_flushed: bool,
}

impl Session {
    /// Starts a retry point for a read that `message` began on replica
    /// `server` of `shard`.
    pub(crate) fn begin_retry_point(&mut self, shard: usize, server: usize) {
        let message = self.current_message.clone();
        // `split` keeps the outbox's capacity for the answer.
        let earlier_output = self.outbox.split();
        let point = RetryPoint {
            shard,
            server,
            pipeline: self.pipeline.clone(),
            earlier_output,
            messages: BytesMut::from(&message[..]),
            parsed: Vec::new(),
            tracker_mark: self.tracker.as_ref().map_or(0, |t| t.mark()),
            client_flushed: false,
        };
        self.shard_state().retry = Some(Box::new(point));
    }

    /// Whether client output is being held back for a possible retry.
    pub(crate) fn holding_output(&self) -> bool {
        self.sharding.as_deref().is_some_and(|s| s.retry.is_some())
    }

    /// Logs a client message handled while a retry point exists.
    pub(crate) fn note_client_message(&mut self, message: &[u8]) {
        if let Some(point) = self.sharding.as_deref_mut().and_then(|s| s.retry.as_mut()) {
            point.messages.extend_from_slice(message);
            point.client_flushed |= message.first() == Some(&tag::FLUSH);
        }
    }

    /// Logs a statement name the client prepared while a retry point exists.
    pub(crate) fn note_parsed(&mut self, name: &[u8]) {
        if let Some(point) = self.sharding.as_deref_mut().and_then(|s| s.retry.as_mut()) {
            point.parsed.push(Bytes::copy_from_slice(name));
        }
    }

    /// Releases the held answer when the read is complete or too large to
    /// hold; `force` releases it anyway (the session moves on to another
    /// server).
    pub(crate) fn settle_retry_point(&mut self, force: bool) {
        let answered = !self.pipeline.has_server_answers_pending();
        let synced = !self.pipeline.unsynced();
        let Some(st) = self.sharding.as_deref_mut() else {
            return;
        };
        let Some(point) = st.retry.as_ref() else {
            return;
        };
        let complete = answered && (synced || point.client_flushed);
        if !(force || complete || self.outbox.len() > MAX_HELD) {
            return;
        }
        if let Some(point) = st.retry.take()
            && !point.earlier_output.is_empty()
        {
            let mut output = point.earlier_output;
            output.extend_from_slice(&self.outbox);
            self.outbox = output;
        }
    }

    /// After the active server failed: when a retry point covers it, bans
    /// the replica, drops the connection and its held answer, and queues
    /// the client's messages to be handled again. Returns whether it did.
    pub(crate) fn retry_read(&mut self) -> bool {
        let Some(point) = self.sharding.as_deref_mut().and_then(|s| s.retry.take()) else {
            return false;
        };
        tracing::info!(
            shard = point.shard,
            server = point.server,
            "replica failed during a read; running it again elsewhere"
        );
        if let Some(pools) = self.shard_state_ref().servers[point.shard].as_ref() {
            pools.topology.ban(point.server);
        }
        self.server = None;
        self.cancel.slot.set(None);
        self.pipeline = point.pipeline;
        self.outbox = point.earlier_output;
        if let Some(tracker) = self.tracker.as_mut() {
            tracker.rewind(point.tracker_mark);
        }
        for name in &point.parsed {
            self.statements.remove(name);
        }
        let mut inbox = point.messages;
        inbox.extend_from_slice(&self.inbox);
        self.inbox = inbox;
        true
    }
}
