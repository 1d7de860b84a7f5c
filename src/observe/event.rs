//! What the data plane tells the control plane about one statement.
//!
//! A session builds a [`StatementEvent`] when a statement's answer is
//! complete and hands it to [`super::Observer::record`], which never
//! waits. The event carries the statement text as the client's own bytes
//! (a reference-counted slice of its message, no copy): normalizing and
//! fingerprinting happen later, in the collector, off the client's path.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

/// Who ran a statement: fixed for a client connection, shared by all its
/// events (and shown by `SHOW CLIENTS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The proxy's id for the client connection (also in its log span).
    pub client_id: u64,
    /// Client-side user name.
    pub user: String,
    /// Logical database.
    pub database: String,
    /// The client's address (`ip:port`, or `unix` for a Unix socket).
    pub address: String,
}

/// The set of shards a statement ran on, one bit per shard index (the
/// config allows at most [`ShardSet::CAPACITY`] shards).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ShardSet(pub u128);

impl ShardSet {
    /// Most shards a set can name.
    pub const CAPACITY: usize = 128;

    /// Adds shard `index`.
    pub fn insert(&mut self, index: usize) {
        if index < Self::CAPACITY {
            self.0 |= 1 << index;
        }
    }

    /// Whether shard `index` is in the set.
    pub fn contains(&self, index: usize) -> bool {
        index < Self::CAPACITY && self.0 & (1 << index) != 0
    }

    /// The shard indexes in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..Self::CAPACITY).filter(|&i| self.contains(i))
    }

    /// Number of shards in the set.
    pub fn len(&self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether no shard is in the set (a statement the proxy answered
    /// itself).
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
}

/// How a statement was routed: the route kinds statistics count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Route {
    /// The shards it ran on.
    pub shards: ShardSet,
    /// It fanned out to several shards and the proxy merged the answers.
    pub scatter: bool,
    /// It ran on a replica (else on a primary, or nowhere).
    pub replica: bool,
}

/// One completed statement.
#[derive(Debug, Clone)]
pub struct StatementEvent {
    /// The client that ran it.
    pub session: Arc<SessionInfo>,
    /// The statement text as the client sent it (a simple Query's whole
    /// string, or the text of the Parse an Execute ran).
    pub text: Bytes,
    /// The Bind message whose portal was executed (extended protocol):
    /// the parameter values, decoded only when the statement is slow
    /// (for the slow log's sample and its EXPLAIN).
    pub bind: Option<Bytes>,
    /// When the statement reached the proxy.
    pub started: SystemTime,
    /// From the client's message to the end of its answer.
    pub duration: Duration,
    /// Rows returned or affected (the CommandComplete counts).
    pub rows: u64,
    /// The SQLSTATE of the error it ended with, if any.
    pub error: Option<[u8; 5]>,
    /// Where it ran.
    pub route: Route,
}
