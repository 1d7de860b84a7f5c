//! Caching analyses by SQL text.
//!
//! Applications send the same statement texts over and over (prepared
//! statements, ORM queries): parsing and walking each once per shard map
//! version keeps routing cheap. The cache is bounded (least recently used
//! entries go first) and shared by all sessions of a database.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lru::LruCache;

use crate::sharding::map::ShardMap;

use super::analysis::{Analysis, Planner, analyze_with};
use super::readwrite::ReadOnlyFunctions;

/// A bounded LRU cache of [`Analysis`] values keyed by SQL text, valid for
/// one shard map version (an entry made with another version is redone).
///
/// Use one cache per logical database: map versions of different
/// databases are unrelated. Analysis runs outside the lock, so two
/// sessions missing on the same text at once both analyze it (the result
/// is the same).
pub struct RouterCache {
    entries: Mutex<LruCache<String, Arc<Analysis>>>,
    hits: AtomicU64,
    misses: AtomicU64,
    planner: Planner,
    /// Functions the analyses count as read-only.
    functions: Arc<ReadOnlyFunctions>,
    key_positions: Mutex<Arc<HashMap<String, usize>>>,
    text_bytewise: std::sync::OnceLock<bool>,
}

impl RouterCache {
    /// A cache holding at most `capacity` analyses (at least one), whose
    /// analyses count `functions` as read-only.
    pub fn new(capacity: usize, functions: ReadOnlyFunctions) -> Self {
        Self::with_planner(capacity, crate::scatter::plan_select, functions)
    }

    /// A cache whose analyses plan scatters with `planner`.
    pub(super) fn with_planner(
        capacity: usize,
        planner: Planner,
        functions: ReadOnlyFunctions,
    ) -> Self {
        RouterCache {
            entries: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
            )),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            planner,
            functions: Arc::new(functions),
            key_positions: Mutex::default(),
            text_bytewise: std::sync::OnceLock::new(),
        }
    }

    /// The analysis of `sql` against `map`, from the cache when it was made
    /// with this map version.
    pub fn analyze(&self, sql: &str, map: &ShardMap) -> Arc<Analysis> {
        let cached = self
            .lock()
            .get(sql)
            .filter(|analysis| analysis.map_version == map.version)
            .cloned();
        if let Some(analysis) = cached {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return analysis;
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let analysis = Arc::new(analyze_with(sql, map, self.planner, &self.functions));
        self.lock().put(sql.to_string(), Arc::clone(&analysis));
        analysis
    }

    /// Lookups answered from the cache.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Lookups that had to analyze.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Number of cached analyses.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the cache holds no analysis.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where the sharding key sits in each sharded table's column order, as
    /// learned from the shards so far (see [`super::Route::NeedsKeyPosition`]).
    pub fn key_positions(&self) -> Arc<HashMap<String, usize>> {
        Arc::clone(&self.positions())
    }

    /// Records the key position of `table` learned from a shard.
    pub fn learn_key_position(&self, table: &str, position: usize) {
        let mut positions = self.positions();
        Arc::make_mut(&mut positions).insert(table.to_string(), position);
    }

    /// Whether the database sorts text byte by byte (the `C` collation), as
    /// learned from a shard; `None` until learned.
    pub fn text_sorts_bytewise(&self) -> Option<bool> {
        self.text_bytewise.get().copied()
    }

    /// Records how the database sorts text.
    pub fn learn_text_sorts_bytewise(&self, bytewise: bool) {
        let _ = self.text_bytewise.set(bytewise);
    }

    /// Forgets learned key positions: DDL through the proxy may have
    /// changed a table's columns.
    pub fn forget_key_positions(&self) {
        *self.positions() = Arc::default();
    }

    fn positions(&self) -> std::sync::MutexGuard<'_, Arc<HashMap<String, usize>>> {
        self.key_positions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The entries; a panic elsewhere while holding the lock leaves them
    /// consistent (every operation is a single LRU call), so poisoning is
    /// ignored.
    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, Arc<Analysis>>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
