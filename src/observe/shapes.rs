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

/// Recently seen texts and their shapes, keyed by a hash of the text with
/// its numeric literals masked (see [`mask_numbers`]): `... WHERE id = 7`
/// and `... WHERE id = 8` share one entry, so an application that inlines
/// its constants (pgbench's simple protocol, many ORMs) is tokenized once
/// per statement shape rather than once per call.
pub struct ShapeCache {
    /// Hash of the key → the key (to rule out a hash collision) and the
    /// shape.
    entries: LruCache<u64, (Box<[u8]>, Arc<Shape>)>,
    /// The masked text of the statement being looked up (reused).
    scratch: Vec<u8>,
}

impl ShapeCache {
    /// A cache of at most `capacity` texts (at least one).
    pub fn new(capacity: usize) -> ShapeCache {
        ShapeCache {
            entries: LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN)),
            scratch: Vec::new(),
        }
    }

    /// The shape of `text` (the client's bytes; invalid UTF-8 is read
    /// lossily), from the cache when a text differing at most in numeric
    /// literals was seen recently.
    pub fn shape_of(&mut self, text: &[u8]) -> Arc<Shape> {
        let masked = mask_numbers(text, &mut self.scratch);
        let key_bytes: &[u8] = if masked { &self.scratch } else { text };
        let key = xxhash_rust::xxh3::xxh3_64(key_bytes);
        if let Some((cached, shape)) = self.entries.get(&key)
            && **cached == *key_bytes
        {
            return Arc::clone(shape);
        }
        let shaped = Arc::new(shape(&String::from_utf8_lossy(text)));
        if key_bytes.len() <= MAX_CACHED_TEXT {
            self.entries
                .put(key, (Box::from(key_bytes), Arc::clone(&shaped)));
        }
        shaped
    }

    /// Texts cached now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Marks a masked run of digits in a key (a byte no SQL text contains).
const MASK: u8 = 0;

/// Writes `text` to `out` with every run of digits that can only be part
/// of a constant replaced by [`MASK`]: runs inside string literals, and
/// runs outside quotes that do not continue an identifier (`t1`, `$1`
/// keep their digits). Texts equal after masking differ only in
/// constants, which the normalizer turns into placeholders, so they have
/// one shape. Returns false, leaving `out` unspecified, for texts the scan
/// does not follow exactly (comments, backslash escapes, dollar quoting, a
/// NUL byte, or an unterminated quote): those are keyed by their full text.
fn mask_numbers(text: &[u8], out: &mut Vec<u8>) -> bool {
    #[derive(PartialEq)]
    enum In {
        Code,
        String,
        Identifier,
    }
    out.clear();
    let mut state = In::Code;
    let mut previous = b' ';
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        let next = text.get(i + 1).copied().unwrap_or(b' ');
        match (&state, b) {
            (_, b'\\' | MASK) => return false,
            (In::Code, b'-') if next == b'-' => return false,
            (In::Code, b'/') if next == b'*' => return false,
            (In::Code, b'$') if !continues_identifier(previous) && !next.is_ascii_digit() => {
                return false;
            }
            (In::Code, b'\'') => state = In::String,
            (In::Code, b'"') => state = In::Identifier,
            (In::String, b'\'') => state = In::Code,
            (In::Identifier, b'"') => state = In::Code,
            (In::String, b'0'..=b'9') | (In::Code, b'0'..=b'9')
                if state == In::String || !continues_identifier(previous) =>
            {
                while text.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                out.push(MASK);
                previous = b'0';
                i += 1;
                continue;
            }
            _ => {}
        }
        out.push(b);
        previous = b;
        i += 1;
    }
    state == In::Code
}

/// Whether a digit after `byte` continues an identifier or parameter
/// (`t1`, `$1`, `x_2`, non-ASCII letters).
fn continues_identifier(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'$' || byte >= 0x80
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
        let a = cache.shape_of(b"SELECT a");
        cache.shape_of(b"SELECT b");
        cache.shape_of(b"SELECT a");
        cache.shape_of(b"SELECT c");
        assert_eq!(cache.len(), 2);
        assert!(Arc::ptr_eq(&a, &cache.shape_of(b"SELECT a")));
    }

    #[test]
    fn texts_differing_in_numbers_share_an_entry_and_keep_their_shape() {
        let mut cache = ShapeCache::new(64);
        let a = cache.shape_of(b"SELECT abalance FROM pgbench_accounts WHERE aid = 17;");
        let b = cache.shape_of(b"SELECT abalance FROM pgbench_accounts WHERE aid = 912345;");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn masked_keys_never_change_a_shape() {
        // Pairs that mask alike (or nearly) must still get the shape the
        // normalizer gives each text on its own.
        let texts: &[&str] = &[
            "SELECT * FROM t1 WHERE a = 1",
            "SELECT * FROM t2 WHERE a = 1",
            "SELECT \"col 1\" FROM t WHERE a = 5",
            "SELECT \"col 2\" FROM t WHERE a = 6",
            "SELECT 'a 1', x FROM t",
            "SELECT 'a 22', x FROM t",
            "SELECT 'it''s 3' FROM t",
            "SELECT 'it''s 4' FROM t",
            "SELECT $1, $2",
            "SELECT $2, $1",
            "SELECT 1e5, 2.5, -3",
            "SELECT 7e1, 8.25, -90",
            "SELECT 'open 1",
            "SELECT 'open 2",
            "SELECT \"open 1",
            "SELECT \"open 2",
            "SELECT 1 -- note 1\n, 2",
            "SELECT 1 -- note 2\n, 2",
            "SELECT 1 /* 1 */",
            "SELECT 1 /* 2 */",
            "SELECT $$a 1$$",
            "SELECT $$a 2$$",
            "SELECT E'a\\'b 1'",
            "SELECT E'a\\'b 2'",
            "SELECT x FROM t ORDER BY 1",
            "SELECT x FROM t ORDER BY 2",
            "SELECT a$1 FROM t",
            "SELECT a$2 FROM t",
            "SELECT * FROM t WHERE id IN (1, 2, 3)",
            "SELECT * FROM t WHERE id IN (4, 5)",
            "SELECT 0x1F",
            "SELECT 0x2F",
            "SELECT 1x5",
            "SELECT 2x5",
            "SELECT 'é1' FROM ü1",
            "SELECT 'é2' FROM ü2",
        ];
        let mut cache = ShapeCache::new(64);
        for _ in 0..2 {
            for text in texts {
                assert_eq!(*cache.shape_of(text.as_bytes()), shape(text), "{text}");
            }
        }
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
