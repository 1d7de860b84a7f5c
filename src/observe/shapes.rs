//! A bounded cache of statement shapes by text, so the collector tokenizes
//! a text the application repeats (a prepared statement, an ORM query)
//! once, not on every call.

use std::num::NonZeroUsize;
use std::sync::Arc;

use lru::LruCache;

use super::fingerprint::{Shape, shape};

/// Texts longer than this are not cached: they would pin much memory for
/// little gain (long texts are rarely repeated verbatim).
const MAX_CACHED_TEXT: usize = 8 * 1024;

/// Recently seen texts and their shapes, keyed by a hash of the text.
pub struct ShapeCache {
    /// Hash of the text → the text (to rule out a hash collision) and its
    /// shape.
    entries: LruCache<u64, (Box<[u8]>, Arc<Shape>)>,
}

impl ShapeCache {
    /// A cache of at most `capacity` texts (at least one).
    pub fn new(capacity: usize) -> ShapeCache {
        ShapeCache {
            entries: LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN)),
        }
    }

    /// The shape of `text` (the client's bytes; invalid UTF-8 is read
    /// lossily), from the cache when the same text was seen recently.
    pub fn shape_of(&mut self, text: &[u8]) -> Arc<Shape> {
        let key = xxhash_rust::xxh3::xxh3_64(text);
        if let Some((cached, shape)) = self.entries.get(&key)
            && **cached == *text
        {
            return Arc::clone(shape);
        }
        let shaped = Arc::new(shape(&String::from_utf8_lossy(text)));
        if text.len() <= MAX_CACHED_TEXT {
            self.entries
                .put(key, (Box::from(text), Arc::clone(&shaped)));
        }
        shaped
    }

    /// Texts cached now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{MAX_CACHED_TEXT, ShapeCache};
    use crate::observe::fingerprint::shape;

    #[test]
    fn repeated_texts_are_shaped_once() {
        let mut cache = ShapeCache::new(2);
        let first = cache.shape_of(b"SELECT * FROM t WHERE id = 1");
        let again = cache.shape_of(b"SELECT * FROM t WHERE id = 1");
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(*first, shape("SELECT * FROM t WHERE id = 1"));
    }

    #[test]
    fn the_least_recent_text_leaves_a_full_cache() {
        let mut cache = ShapeCache::new(2);
        let a = cache.shape_of(b"SELECT 1");
        cache.shape_of(b"SELECT 2");
        cache.shape_of(b"SELECT 1");
        cache.shape_of(b"SELECT 3");
        assert_eq!(cache.len(), 2);
        assert!(Arc::ptr_eq(&a, &cache.shape_of(b"SELECT 1")));
    }

    #[test]
    fn long_and_invalid_texts_are_shaped_but_not_kept() {
        let mut cache = ShapeCache::new(4);
        let long = format!("SELECT '{}'", "x".repeat(MAX_CACHED_TEXT));
        assert_eq!(cache.shape_of(long.as_bytes()).normalized, "select $1");
        assert_eq!(cache.len(), 0);
        assert_eq!(cache.shape_of(b"SELECT '\xff'").normalized, "select $1");
    }
}
