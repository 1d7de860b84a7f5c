//! Prepared statements under transaction pooling.
//!
//! A client's named statement lives on whichever server connection its
//! transaction used. The proxy keeps each client's statements itself and
//! gives every distinct statement a server-side name derived from its
//! content (`sw_<128-bit hash>`): two clients preparing the same text share
//! one server statement, and different texts can never collide. Each server
//! connection remembers which of those it holds (bounded, least recently
//! used closed first), so a statement is prepared again only where missing.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;

use bytes::Bytes;
use lru::LruCache;
use xxhash_rust::xxh3::xxh3_128;

/// The content of a prepared statement: what follows the name in Parse.
#[derive(Debug, PartialEq, Eq)]
pub struct StatementDef {
    /// Hash of the content; also the server-side identity.
    pub id: u128,
    /// Query text, NUL, parameter count and parameter type OIDs.
    pub content: Bytes,
    /// The name this statement has on server connections (computed once:
    /// it is written into every Bind).
    pub server_name: String,
}

impl StatementDef {
    /// Builds the definition from the Parse body after the statement name.
    pub fn new(content: &[u8]) -> Arc<StatementDef> {
        let id = xxh3_128(content);
        Arc::new(StatementDef {
            id,
            content: Bytes::copy_from_slice(content),
            server_name: server_name(id),
        })
    }
}

/// The server-side name of statement `id`.
pub fn server_name(id: u128) -> String {
    format!("sw_{id:032x}")
}

/// A client's prepared statements, by the names the client gave them.
#[derive(Default)]
pub struct ClientStatements {
    named: HashMap<Vec<u8>, Arc<StatementDef>>,
    /// The unnamed statement, which Postgres keeps until the next unnamed
    /// Parse or simple Query.
    pub unnamed: Option<Arc<StatementDef>>,
}

impl ClientStatements {
    /// Looks up a statement by client name (empty name: the unnamed one).
    pub fn get(&self, name: &[u8]) -> Option<&Arc<StatementDef>> {
        if name.is_empty() {
            self.unnamed.as_ref()
        } else {
            self.named.get(name)
        }
    }

    /// Whether a named statement exists.
    pub fn contains(&self, name: &[u8]) -> bool {
        self.named.contains_key(name)
    }

    /// Records a statement under a client name (empty: unnamed).
    pub fn insert(&mut self, name: &[u8], def: Arc<StatementDef>) {
        if name.is_empty() {
            self.unnamed = Some(def);
        } else {
            self.named.insert(name.to_vec(), def);
        }
    }

    /// Forgets a statement (Close S).
    pub fn remove(&mut self, name: &[u8]) {
        if name.is_empty() {
            self.unnamed = None;
        } else {
            self.named.remove(name);
        }
    }

    /// Forgets all (DEALLOCATE ALL / DISCARD ALL by the client).
    pub fn clear(&mut self) {
        self.named.clear();
        self.unnamed = None;
    }

    /// Number of named statements.
    pub fn len(&self) -> usize {
        self.named.len()
    }

    /// True when the client has no named statement.
    pub fn is_empty(&self) -> bool {
        self.named.is_empty()
    }
}

/// The statements the proxy prepared on one server connection.
pub struct ServerStatements {
    named: LruCache<u128, ()>,
    /// Content id of the server's unnamed statement, if the proxy knows it.
    pub unnamed: Option<u128>,
}

impl ServerStatements {
    /// An empty set that keeps at most `capacity` named statements.
    pub fn new(capacity: usize) -> ServerStatements {
        ServerStatements {
            named: LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN)),
            unnamed: None,
        }
    }

    /// Whether statement `id` is prepared here; marks it recently used.
    pub fn has(&mut self, id: u128) -> bool {
        self.named.get(&id).is_some()
    }

    /// Records `id` as prepared; returns a statement evicted to make room,
    /// which the caller must close on the server.
    pub fn insert(&mut self, id: u128) -> Option<u128> {
        match self.named.push(id, ()) {
            Some((evicted, ())) if evicted != id => Some(evicted),
            _ => None,
        }
    }

    /// Forgets `id` (its Parse failed or was never run).
    pub fn remove(&mut self, id: u128) {
        self.named.pop(&id);
    }

    /// Forgets everything (after DISCARD ALL / DEALLOCATE ALL on the server).
    pub fn clear(&mut self) {
        self.named.clear();
        self.unnamed = None;
    }

    /// Number of named statements held.
    pub fn len(&self) -> usize {
        self.named.len()
    }

    /// True when none is held.
    pub fn is_empty(&self) -> bool {
        self.named.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_content_same_server_name() {
        let a = StatementDef::new(b"select $1\0\0\x01\0\0\0\x17");
        let b = StatementDef::new(b"select $1\0\0\x01\0\0\0\x17");
        let c = StatementDef::new(b"select $1\0\0\x01\0\0\0\x19");
        assert_eq!(a.server_name, b.server_name);
        assert_ne!(a.server_name, c.server_name);
        assert!(a.server_name.len() < 64, "fits NAMEDATALEN");
    }

    #[test]
    fn server_set_evicts_least_recently_used() {
        let mut set = ServerStatements::new(2);
        assert_eq!(set.insert(1), None);
        assert_eq!(set.insert(2), None);
        assert!(set.has(1));
        assert_eq!(set.insert(3), Some(2));
        assert!(set.has(1) && set.has(3) && !set.has(2));
        assert_eq!(set.insert(3), None, "re-inserting is not an eviction");
    }

    #[test]
    fn client_names_and_unnamed_are_separate() {
        let mut client = ClientStatements::default();
        let def = StatementDef::new(b"select 1\0\0\0");
        client.insert(b"s1", def.clone());
        client.insert(b"", def.clone());
        assert!(client.contains(b"s1"));
        assert_eq!(client.len(), 1);
        client.remove(b"");
        assert!(client.get(b"").is_none());
        assert!(client.get(b"s1").is_some());
    }
}
