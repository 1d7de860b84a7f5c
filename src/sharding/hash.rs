//! PostgreSQL's hash-partitioning hash, bit-exact.
//!
//! `PARTITION BY HASH (k1, k2, ...)` sends a row to the partition whose
//! remainder is `row_hash % modulus`, where `row_hash` combines the "extended"
//! (64-bit, seeded) hash of every non-NULL key column, each computed with the
//! fixed seed [`HASH_PARTITION_SEED`]. Shardwire computes the very same value
//! so that a key's shard can be verified inside Postgres with plain SQL
//! (`satisfies_hash_partition(...)`), and so that a sharded table can be turned
//! into (or checked against) a native hash-partitioned table without moving
//! rows.
//!
//! The pieces mirror Postgres (versions 11 and later):
//!
//! - [`hash_bytes_extended`]: Bob Jenkins' lookup3 hash with a 64-bit seed
//!   (`hash_bytes_extended` in `src/common/hashfn.c`);
//! - [`hash_uint32_extended`]: its one-word special case;
//! - per-type functions of the default hash operator classes
//!   ([`hashint4_extended`], [`hashint8_extended`], [`hashtext_extended`],
//!   [`hashuuid_extended`]);
//! - [`hash_combine64`] and [`partition_hash`] / [`partition_for`], as in
//!   `compute_partition_hash_value` (`src/backend/partitioning/partbounds.c`).
//!
//! Postgres reads the hashed bytes as native-endian words, so its hash values
//! differ between little- and big-endian servers. This module reproduces the
//! little-endian results (x86-64, aarch64, and practically every server in
//! use today), whatever the endianness of the machine running shardwire.
//!
//! Everything here is pure and allocation-free.

/// The seed Postgres passes to every key column's extended hash function when
/// it computes a row's hash partition (`HASH_PARTITION_SEED` in
/// `src/include/catalog/partition.h`). Fixed forever: changing it would move
/// every row of every hash-partitioned table.
pub const HASH_PARTITION_SEED: u64 = 0x7A5B_2236_7996_DCFD;

/// lookup3's starting value for `a`, `b` and `c` before the length is added
/// (the golden ratio constant plus Postgres' extra offset).
const INITIAL: u32 = 0x9e37_79b9_u32.wrapping_add(3_923_095);

/// Random 64-bit constant of Postgres' `hash_combine64`.
const COMBINE64_CONSTANT: u64 = 0x49a0_f4dd_15e5_a8e3;

/// lookup3's internal state: three 32-bit words.
#[derive(Clone, Copy)]
struct State {
    a: u32,
    b: u32,
    c: u32,
}

impl State {
    /// Starts a hash of `len` bytes, perturbed by `seed` when it is non-zero.
    ///
    /// Postgres treats a non-zero seed as an extra 12-byte block (high half in
    /// `a`, low half in `b`, zero in `c`) mixed in before the data; a zero
    /// seed leaves the state untouched, so seed 0 gives the same low 32 bits
    /// as the non-extended hash.
    fn new(len: u32, seed: u64) -> State {
        let start = INITIAL.wrapping_add(len);
        let mut s = State {
            a: start,
            b: start,
            c: start,
        };
        if seed != 0 {
            s.a = s.a.wrapping_add((seed >> 32) as u32);
            s.b = s.b.wrapping_add(seed as u32);
            s.mix();
        }
        s
    }

    /// lookup3's `mix`: reversibly mixes the three words after each
    /// 12-byte block.
    #[inline(always)]
    fn mix(&mut self) {
        let State { a, b, c } = self;
        *a = a.wrapping_sub(*c);
        *a ^= c.rotate_left(4);
        *c = c.wrapping_add(*b);
        *b = b.wrapping_sub(*a);
        *b ^= a.rotate_left(6);
        *a = a.wrapping_add(*c);
        *c = c.wrapping_sub(*b);
        *c ^= b.rotate_left(8);
        *b = b.wrapping_add(*a);
        *a = a.wrapping_sub(*c);
        *a ^= c.rotate_left(16);
        *c = c.wrapping_add(*b);
        *b = b.wrapping_sub(*a);
        *b ^= a.rotate_left(19);
        *a = a.wrapping_add(*c);
        *c = c.wrapping_sub(*b);
        *c ^= b.rotate_left(4);
        *b = b.wrapping_add(*a);
    }

    /// lookup3's `final` followed by Postgres' 64-bit packing of the result
    /// (`b` in the high half, `c` in the low half).
    #[inline(always)]
    fn finish(mut self) -> u64 {
        let State { a, b, c } = &mut self;
        *c ^= *b;
        *c = c.wrapping_sub(b.rotate_left(14));
        *a ^= *c;
        *a = a.wrapping_sub(c.rotate_left(11));
        *b ^= *a;
        *b = b.wrapping_sub(a.rotate_left(25));
        *c ^= *b;
        *c = c.wrapping_sub(b.rotate_left(16));
        *a ^= *c;
        *a = a.wrapping_sub(c.rotate_left(4));
        *b ^= *a;
        *b = b.wrapping_sub(a.rotate_left(14));
        *c ^= *b;
        *c = c.wrapping_sub(b.rotate_left(24));
        (u64::from(*b) << 32) | u64::from(*c)
    }
}

/// Reads up to 4 bytes as a little-endian word, missing high bytes being zero
/// (how lookup3 adds a block's trailing bytes on a little-endian machine).
#[inline(always)]
fn le_word(bytes: &[u8]) -> u32 {
    debug_assert!(bytes.len() <= 4);
    bytes
        .iter()
        .rev()
        .fold(0u32, |acc, &byte| (acc << 8) | u32::from(byte))
}

/// Postgres' `hash_bytes_extended` (a.k.a. `hash_any_extended`): the 64-bit
/// seeded lookup3 hash of `data`, as a little-endian server computes it.
///
/// This is the building block of the text and uuid hashes; it is public so
/// callers can hash a value's raw bytes when they already have them in the
/// server's encoding.
///
/// # Panics
///
/// If `data` is longer than `u32::MAX` bytes (Postgres cannot hash such a
/// value either: its length is a 32-bit integer, and a datum is at most 1 GB).
pub fn hash_bytes_extended(data: &[u8], seed: u64) -> u64 {
    let len = u32::try_from(data.len()).expect("hash_bytes_extended: input longer than 4 GiB");
    let mut s = State::new(len, seed);

    // Whole 12-byte blocks. Postgres has an aligned path (native word loads)
    // and an unaligned one (byte-wise little-endian assembly); on a
    // little-endian server both amount to little-endian words.
    let mut blocks = data.chunks_exact(12);
    for block in &mut blocks {
        s.a = s.a.wrapping_add(le_word(&block[0..4]));
        s.b = s.b.wrapping_add(le_word(&block[4..8]));
        s.c = s.c.wrapping_add(le_word(&block[8..12]));
        s.mix();
    }

    // The last 0..=11 bytes: the first 8 fill `a` and `b` as little-endian
    // words; bytes 8..11 go to `c` shifted up by one byte (lookup3 reserves
    // c's lowest byte, historically for the length). No mix before `final`,
    // and `final` runs even when nothing is left.
    let tail = blocks.remainder();
    let (ab, c_part) = tail.split_at(tail.len().min(8));
    let (a_part, b_part) = ab.split_at(ab.len().min(4));
    s.a = s.a.wrapping_add(le_word(a_part));
    s.b = s.b.wrapping_add(le_word(b_part));
    s.c = s.c.wrapping_add(le_word(c_part) << 8);

    s.finish()
}

/// Postgres' `hash_bytes_uint32_extended` (a.k.a. `hash_uint32_extended`):
/// the hash of one 32-bit word, the core of the integer hashes. It equals
/// [`hash_bytes_extended`] of the word's 4 little-endian bytes, but skips the
/// byte handling.
pub fn hash_uint32_extended(value: u32, seed: u64) -> u64 {
    let mut s = State::new(4, seed);
    s.a = s.a.wrapping_add(value);
    s.finish()
}

/// Postgres' `hashint4extended`: the extended hash of an `integer`
/// (also what `int2` uses after widening to `integer`).
pub fn hashint4_extended(v: i32, seed: u64) -> u64 {
    hash_uint32_extended(v as u32, seed)
}

/// Postgres' `hashint8extended`: the extended hash of a `bigint`.
///
/// The high half is folded into the low half (XOR, complemented for negative
/// values) before hashing one word, so that a `bigint` holding a value that
/// fits in `integer` hashes exactly like that `integer` — which is why
/// Postgres can put `int4` and `int8` in one hash operator family, and why
/// routing does not depend on which of the two types a literal was parsed as.
pub fn hashint8_extended(v: i64, seed: u64) -> u64 {
    let low = v as u32;
    let high = (v >> 32) as u32;
    let folded = if v >= 0 { low ^ high } else { low ^ !high };
    hash_uint32_extended(folded, seed)
}

/// Postgres' `hashtextextended` for a `text` / `varchar` value under a
/// *deterministic* collation (e.g. `"C"`, the default of a cluster initialized
/// with locale C, or any libc collation): the hash of the string's bytes in
/// the server encoding, assumed here to be UTF-8.
///
/// Non-deterministic (ICU, `deterministic = false`) collations hash a sort
/// key instead and are not supported; neither is `char(n)` (`bpchar`), which
/// ignores trailing spaces.
pub fn hashtext_extended(s: &str, seed: u64) -> u64 {
    hash_bytes_extended(s.as_bytes(), seed)
}

/// Postgres' `uuid_hash_extended`: the hash of the uuid's 16 bytes in their
/// written order (the order [`parse_uuid`] returns).
pub fn hashuuid_extended(u: &[u8; 16], seed: u64) -> u64 {
    hash_bytes_extended(u, seed)
}

/// Postgres' `hash_combine64`: folds the hash `b` of the next key column into
/// the running row hash `a`. Order matters: `(x, y)` and `(y, x)` differ.
pub fn hash_combine64(a: u64, b: u64) -> u64 {
    a ^ b
        .wrapping_add(COMBINE64_CONSTANT)
        .wrapping_add(a << 54)
        .wrapping_add(a >> 7)
}

/// One partition-key column's value, typed as the column is.
///
/// The variant must match the *column's* type, since each type has its own
/// hash function (an `Int4` and an `Int8` holding the same value hash the same,
/// so for integers only the value matters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyValue<'a> {
    /// An `integer` (or `smallint`) column's value.
    Int4(i32),
    /// A `bigint` column's value.
    Int8(i64),
    /// A `text` / `varchar` column's value, under a deterministic collation.
    Text(&'a str),
    /// A `uuid` column's value, bytes in written order (see [`parse_uuid`]).
    Uuid([u8; 16]),
    /// SQL NULL, in a column of any type: skipped by the row hash.
    Null,
}

impl KeyValue<'_> {
    /// The value's extended hash with `seed`, or `None` for NULL.
    fn hash(&self, seed: u64) -> Option<u64> {
        match *self {
            KeyValue::Int4(v) => Some(hashint4_extended(v, seed)),
            KeyValue::Int8(v) => Some(hashint8_extended(v, seed)),
            KeyValue::Text(s) => Some(hashtext_extended(s, seed)),
            KeyValue::Uuid(ref u) => Some(hashuuid_extended(u, seed)),
            KeyValue::Null => None,
        }
    }
}

/// The 64-bit row hash `PARTITION BY HASH (keys...)` computes for a row whose
/// key columns hold `keys`, in the partition key's column order: starting
/// from 0, each non-NULL column's hash (with [`HASH_PARTITION_SEED`]) is
/// folded in with [`hash_combine64`]; NULL columns are skipped, so a row whose
/// keys are all NULL hashes to 0.
pub fn partition_hash(keys: &[KeyValue]) -> u64 {
    keys.iter()
        .filter_map(|k| k.hash(HASH_PARTITION_SEED))
        .fold(0, hash_combine64)
}

/// The remainder of the partition a row with `keys` belongs to among hash
/// partitions of `modulus` (`FOR VALUES WITH (MODULUS modulus, REMAINDER r)`):
/// `partition_hash(keys) % modulus`. This is the value to pass as `remainder`
/// to `satisfies_hash_partition(parent, modulus, remainder, keys...)`.
///
/// # Panics
///
/// If `modulus` is 0 (Postgres requires a positive modulus).
pub fn partition_for(keys: &[KeyValue], modulus: u64) -> u64 {
    assert!(modulus > 0, "partition_for: modulus must be positive");
    partition_hash(keys) % modulus
}

/// Parses a uuid literal the way Postgres' `uuid` input function does:
/// 32 hexadecimal digits (either case), optionally with a hyphen after any
/// group of four digits (so the standard `8-4-4-4-12` form, no hyphens at
/// all, and forms such as `a0eebc999c0b-4ef8-bb6d-6bb9bd380a11` or
/// `a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11`), optionally wrapped in one pair
/// of braces. No surrounding whitespace, and no hyphen at the end.
///
/// Returns the 16 bytes in written order, ready for [`KeyValue::Uuid`], or
/// `None` where Postgres would raise "invalid input syntax for type uuid";
/// routing a uuid literal needs exactly the value the server will see.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let mut rest = s.as_bytes();
    let braces = rest.first() == Some(&b'{');
    if braces {
        rest = &rest[1..];
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        let (&[hi, lo], after) = rest.split_first_chunk::<2>()?;
        *byte = (hex_digit(hi)? << 4) | hex_digit(lo)?;
        rest = after;
        // A hyphen may follow every second byte, except the last one.
        if i % 2 == 1 && i < 15 && rest.first() == Some(&b'-') {
            rest = &rest[1..];
        }
    }
    if braces {
        rest = rest.strip_prefix(b"}")?;
    }
    rest.is_empty().then_some(out)
}

/// The value of one ASCII hexadecimal digit.
fn hex_digit(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    //! Expected values were printed by a PostgreSQL 15 server on x86-64
    //! (`select to_hex(hashint8extended(v, s))`, etc.; seeds that do not fit
    //! in a signed `bigint` were passed as their two's-complement value).

    use super::*;

    /// `(value, seed, hashint4extended(value, seed))`.
    const INT4: &[(i32, u64, u64)] = &[
        (-2147483648, 0x0, 0x1b707e5fa5243fb7),
        (-1, 0x0, 0xe5cb8f9016fe094a),
        (0, 0x0, 0x39a825beefbec0af),
        (1, 0x0, 0xcd0f69c48e731746),
        (42, 0x0, 0x6f2a09a559fcfec8),
        (2147483647, 0x0, 0x8195f04afa3b9613),
        (-2147483648, 0xffffffffffffffff, 0x54cb581510494b65),
        (-1, 0xffffffffffffffff, 0x59f2fcdccd4d3e7f),
        (0, 0xffffffffffffffff, 0xc6888bf03c15bbcd),
        (1, 0xffffffffffffffff, 0x14e62382e6d55cd0),
        (42, 0xffffffffffffffff, 0xa9fbad3d2e66a3ca),
        (2147483647, 0xffffffffffffffff, 0x745d2c8a90970301),
        (-2147483648, 0x1, 0x2a3e76f3158e4913),
        (-1, 0x1, 0x37570097119c15ec),
        (0, 0x1, 0x6071c2f547a6739),
        (1, 0x1, 0x963de977be295b21),
        (42, 0x1, 0x34e8f2e667710bc0),
        (2147483647, 0x1, 0x2389eb5ee0e6763a),
        (-2147483648, 0x100000000, 0xf398ddeb9eeaaad1),
        (-1, 0x100000000, 0x83fe9f2a4b3387cf),
        (0, 0x100000000, 0x3f625f9131e4de75),
        (1, 0x100000000, 0xc2d83648efdc52d8),
        (42, 0x100000000, 0x43573fca134b0e3f),
        (2147483647, 0x100000000, 0xb032e7c50dcb4c9a),
        (-2147483648, 0x7a5b22367996dcfd, 0x44893a0f1e949193),
        (-1, 0x7a5b22367996dcfd, 0xba5fc748095606c2),
        (0, 0x7a5b22367996dcfd, 0xc2e34bda39f0f0cd),
        (1, 0x7a5b22367996dcfd, 0x52d621058124e6d5),
        (42, 0x7a5b22367996dcfd, 0x663218bcfb84b17f),
        (2147483647, 0x7a5b22367996dcfd, 0xac09237e4899f89c),
    ];

    /// `(value, seed, hashint8extended(value, seed))`.
    const INT8: &[(i64, u64, u64)] = &[
        (-9223372036854775808, 0x0, 0x8195f04afa3b9613),
        (-1234567890123456789, 0x0, 0x80aade4a97d40667),
        (-4294967296, 0x0, 0x39a825beefbec0af),
        (-2147483649, 0x0, 0x8195f04afa3b9613),
        (-2147483648, 0x0, 0x1b707e5fa5243fb7),
        (-42, 0x0, 0x7a423c3fe2f1733b),
        (-1, 0x0, 0xe5cb8f9016fe094a),
        (0, 0x0, 0x39a825beefbec0af),
        (1, 0x0, 0xcd0f69c48e731746),
        (42, 0x0, 0x6f2a09a559fcfec8),
        (2147483647, 0x0, 0x8195f04afa3b9613),
        (2147483648, 0x0, 0x1b707e5fa5243fb7),
        (4294967295, 0x0, 0xe5cb8f9016fe094a),
        (4294967296, 0x0, 0xcd0f69c48e731746),
        (1234567890123456789, 0x0, 0xed47a07b2feff047),
        (9223372036854775807, 0x0, 0x1b707e5fa5243fb7),
        (-9223372036854775808, 0xffffffffffffffff, 0x745d2c8a90970301),
        (-1234567890123456789, 0xffffffffffffffff, 0xbe25acc2fc8994b5),
        (-4294967296, 0xffffffffffffffff, 0xc6888bf03c15bbcd),
        (-2147483649, 0xffffffffffffffff, 0x745d2c8a90970301),
        (-2147483648, 0xffffffffffffffff, 0x54cb581510494b65),
        (-42, 0xffffffffffffffff, 0x73f319054d5bf46c),
        (-1, 0xffffffffffffffff, 0x59f2fcdccd4d3e7f),
        (0, 0xffffffffffffffff, 0xc6888bf03c15bbcd),
        (1, 0xffffffffffffffff, 0x14e62382e6d55cd0),
        (42, 0xffffffffffffffff, 0xa9fbad3d2e66a3ca),
        (2147483647, 0xffffffffffffffff, 0x745d2c8a90970301),
        (2147483648, 0xffffffffffffffff, 0x54cb581510494b65),
        (4294967295, 0xffffffffffffffff, 0x59f2fcdccd4d3e7f),
        (4294967296, 0xffffffffffffffff, 0x14e62382e6d55cd0),
        (1234567890123456789, 0xffffffffffffffff, 0x2c8b03f383e2d8ff),
        (9223372036854775807, 0xffffffffffffffff, 0x54cb581510494b65),
        (-9223372036854775808, 0x1, 0x2389eb5ee0e6763a),
        (-1234567890123456789, 0x1, 0xaf3c3aa2e8b2b289),
        (-4294967296, 0x1, 0x6071c2f547a6739),
        (-2147483649, 0x1, 0x2389eb5ee0e6763a),
        (-2147483648, 0x1, 0x2a3e76f3158e4913),
        (-42, 0x1, 0xa7a60b9db897040a),
        (-1, 0x1, 0x37570097119c15ec),
        (0, 0x1, 0x6071c2f547a6739),
        (1, 0x1, 0x963de977be295b21),
        (42, 0x1, 0x34e8f2e667710bc0),
        (2147483647, 0x1, 0x2389eb5ee0e6763a),
        (2147483648, 0x1, 0x2a3e76f3158e4913),
        (4294967295, 0x1, 0x37570097119c15ec),
        (4294967296, 0x1, 0x963de977be295b21),
        (1234567890123456789, 0x1, 0x8fac2a77082d1e4f),
        (9223372036854775807, 0x1, 0x2a3e76f3158e4913),
        (-9223372036854775808, 0x7a5b22367996dcfd, 0xac09237e4899f89c),
        (-1234567890123456789, 0x7a5b22367996dcfd, 0x2c4d660941925705),
        (-4294967296, 0x7a5b22367996dcfd, 0xc2e34bda39f0f0cd),
        (-2147483649, 0x7a5b22367996dcfd, 0xac09237e4899f89c),
        (-2147483648, 0x7a5b22367996dcfd, 0x44893a0f1e949193),
        (-42, 0x7a5b22367996dcfd, 0x5c6f545b0b7cb85f),
        (-1, 0x7a5b22367996dcfd, 0xba5fc748095606c2),
        (0, 0x7a5b22367996dcfd, 0xc2e34bda39f0f0cd),
        (1, 0x7a5b22367996dcfd, 0x52d621058124e6d5),
        (42, 0x7a5b22367996dcfd, 0x663218bcfb84b17f),
        (2147483647, 0x7a5b22367996dcfd, 0xac09237e4899f89c),
        (2147483648, 0x7a5b22367996dcfd, 0x44893a0f1e949193),
        (4294967295, 0x7a5b22367996dcfd, 0xba5fc748095606c2),
        (4294967296, 0x7a5b22367996dcfd, 0x52d621058124e6d5),
        (1234567890123456789, 0x7a5b22367996dcfd, 0x81a3be9c9985a7ad),
        (9223372036854775807, 0x7a5b22367996dcfd, 0x44893a0f1e949193),
    ];

    /// `(value, seed, hashtextextended(value, seed))`: every length from 0 to
    /// 40 (all lookup3 tail lengths, over several blocks), and non-ASCII
    /// UTF-8.
    const TEXT: &[(&str, u64, u64)] = &[
        ("", 0x0, 0x9fb1b765a7ea466d),
        ("a", 0x0, 0x31d94c66401370b1),
        ("Ω", 0x0, 0xdadf9048b663bc0e),
        ("ab", 0x0, 0x2751f60c666effbd),
        ("abc", 0x0, 0xa25b273dd12feb97),
        ("abcd", 0x0, 0xf196c20ce885082c),
        ("abcde", 0x0, 0x2ab16994e56fc644),
        ("abcdef", 0x0, 0x409b0ff97d7dfc0),
        ("abcdefg", 0x0, 0xaa8a45cf1de65ece),
        ("日本語テキスト", 0x0, 0x63ea085aa0eb5e60),
        ("a'b\"c\\\\d", 0x0, 0x8421e1d011c7ea33),
        ("abcdefgh", 0x0, 0x84bc1e238b1e9c33),
        ("🦀 rust 🦀", 0x0, 0x5a34f91d521248b3),
        ("abcdefghi", 0x0, 0xd2817546fa822f5f),
        ("abcdefghij", 0x0, 0xd3d2a43a741ce98c),
        ("abcdefghijk", 0x0, 0x2b3346a5a78ef3d3),
        ("héllo wörld", 0x0, 0x5c234a686cae2298),
        ("abcdefghijkl", 0x0, 0x97216e83a1763ad4),
        ("abcdefghijklm", 0x0, 0x7b1e572e1830c6d0),
        ("abcdefghijklmn", 0x0, 0x4504200712c9ce35),
        ("abcdefghijklmno", 0x0, 0x7d80773ead313697),
        ("abcdefghijklmnop", 0x0, 0xc32ac11840989db),
        ("abcdefghijklmnopq", 0x0, 0xda0bfe9623c3a42),
        ("abcdefghijklmnopqr", 0x0, 0x6b99b6dc73d18dc),
        ("abcdefghijklmnopqrs", 0x0, 0xfcc598d2d7311067),
        ("abcdefghijklmnopqrst", 0x0, 0xab874c62dad54f1),
        ("abcdefghijklmnopqrstu", 0x0, 0x6ef8fd8a7e9e4b92),
        ("abcdefghijklmnopqrstuv", 0x0, 0x464b8f6afcfbc4be),
        ("abcdefghijklmnopqrstuvw", 0x0, 0xef5dd13fbb7de978),
        ("abcdefghijklmnopqrstuvwx", 0x0, 0xe52be9a24a99b38f),
        ("abcdefghijklmnopqrstuvwxy", 0x0, 0x4e6581e63a6bea6d),
        ("abcdefghijklmnopqrstuvwxyz", 0x0, 0xa43a28a40a00e7bb),
        ("abcdefghijklmnopqrstuvwxyz0", 0x0, 0xdef5cd338d58f72c),
        ("abcdefghijklmnopqrstuvwxyz01", 0x0, 0x5e8a08c4da1256cf),
        ("abcdefghijklmnopqrstuvwxyz012", 0x0, 0xd1f54f9e770e90e),
        ("abcdefghijklmnopqrstuvwxyz0123", 0x0, 0xa9ac40e80557ffca),
        ("abcdefghijklmnopqrstuvwxyz01234", 0x0, 0x1df5b18cc9db54c2),
        ("abcdefghijklmnopqrstuvwxyz012345", 0x0, 0x3140a57f47b8b968),
        ("abcdefghijklmnopqrstuvwxyz0123456", 0x0, 0x46a60b42fed42d05),
        (
            "abcdefghijklmnopqrstuvwxyz01234567",
            0x0,
            0x7ca0a79ff4baa084,
        ),
        (
            "abcdefghijklmnopqrstuvwxyz012345678",
            0x0,
            0x9a4dcb78a8124b99,
        ),
        (
            "abcdefghijklmnopqrstuvwxyz0123456789",
            0x0,
            0x826987f34e9586fc,
        ),
        (
            "abcdefghijklmnopqrstuvwxyz0123456789A",
            0x0,
            0x31c2bc8efeadf2e5,
        ),
        (
            "abcdefghijklmnopqrstuvwxyz0123456789AB",
            0x0,
            0x91ba8c472aff17d8,
        ),
        (
            "abcdefghijklmnopqrstuvwxyz0123456789ABC",
            0x0,
            0x3df2ca3ff1fb5a6f,
        ),
        (
            "abcdefghijklmnopqrstuvwxyz0123456789ABCD",
            0x0,
            0x6139a9be5687bf9f,
        ),
        ("", 0x7a5b22367996dcfd, 0xb0e33d0b543fbfc3),
        ("a", 0x7a5b22367996dcfd, 0xa2f240f8823ba67b),
        ("Ω", 0x7a5b22367996dcfd, 0x31d444d7d03585e1),
        ("ab", 0x7a5b22367996dcfd, 0x845730e49baf33d),
        ("abc", 0x7a5b22367996dcfd, 0x325c02d16f43e1c2),
        ("abcd", 0x7a5b22367996dcfd, 0x37eb4043f6fdb06e),
        ("abcde", 0x7a5b22367996dcfd, 0x42bdebaa1b2c17d9),
        ("abcdef", 0x7a5b22367996dcfd, 0xf6dc296ce47a2776),
        ("abcdefg", 0x7a5b22367996dcfd, 0xeaf53e7fbf379bae),
        ("日本語テキスト", 0x7a5b22367996dcfd, 0x347ba0eaac984866),
        ("a'b\"c\\\\d", 0x7a5b22367996dcfd, 0x62cacae674a34d08),
        ("abcdefgh", 0x7a5b22367996dcfd, 0x94619c573ca212b2),
        ("🦀 rust 🦀", 0x7a5b22367996dcfd, 0xdae4c3efa9d0a731),
        ("abcdefghi", 0x7a5b22367996dcfd, 0x92e90b933de8cba0),
        ("abcdefghij", 0x7a5b22367996dcfd, 0x8cba26807c1916a1),
        ("abcdefghijk", 0x7a5b22367996dcfd, 0xe39999edea562278),
        ("héllo wörld", 0x7a5b22367996dcfd, 0xfdfbb8cb6a53b0be),
        ("abcdefghijkl", 0x7a5b22367996dcfd, 0x92b003d370554786),
        ("abcdefghijklm", 0x7a5b22367996dcfd, 0xa1d42895caa786b3),
        ("abcdefghijklmn", 0x7a5b22367996dcfd, 0xb7b2713c0dbc9ab3),
        ("abcdefghijklmno", 0x7a5b22367996dcfd, 0x33f5ba500ae30b98),
        ("abcdefghijklmnop", 0x7a5b22367996dcfd, 0xd6e06f0d1d6bcb47),
        ("abcdefghijklmnopq", 0x7a5b22367996dcfd, 0xc4768bb0fc014eb9),
        ("abcdefghijklmnopqr", 0x7a5b22367996dcfd, 0xc8d1b82f5e85d036),
        (
            "abcdefghijklmnopqrs",
            0x7a5b22367996dcfd,
            0x58fa7c4493410593,
        ),
        (
            "abcdefghijklmnopqrst",
            0x7a5b22367996dcfd,
            0xcc3b5ca11578b6eb,
        ),
        (
            "abcdefghijklmnopqrstu",
            0x7a5b22367996dcfd,
            0x82f7e8d4da722f1e,
        ),
        (
            "abcdefghijklmnopqrstuv",
            0x7a5b22367996dcfd,
            0x1909c7095acd0c70,
        ),
        (
            "abcdefghijklmnopqrstuvw",
            0x7a5b22367996dcfd,
            0x9a59a44ce94b5481,
        ),
        (
            "abcdefghijklmnopqrstuvwx",
            0x7a5b22367996dcfd,
            0xffd910c13dcae36e,
        ),
        (
            "abcdefghijklmnopqrstuvwxy",
            0x7a5b22367996dcfd,
            0x13317813436137bf,
        ),
        (
            "abcdefghijklmnopqrstuvwxyz",
            0x7a5b22367996dcfd,
            0x9c7a73cc5c301158,
        ),
        (
            "abcdefghijklmnopqrstuvwxyz0",
            0x7a5b22367996dcfd,
            0xce2707edad569492,
        ),
        (
            "abcdefghijklmnopqrstuvwxyz01",
            0x7a5b22367996dcfd,
            0xaf8d9de3bfc027d5,
        ),
        (
            "abcdefghijklmnopqrstuvwxyz012",
            0x7a5b22367996dcfd,
            0xa49af1cd4398fe47,
        ),
        (
            "abcdefghijklmnopqrstuvwxyz0123",
            0x7a5b22367996dcfd,
            0x574488b4a6eeec28,
        ),
        (
            "abcdefghijklmnopqrstuvwxyz01234",
            0x7a5b22367996dcfd,
            0xaeee69d8d3e8f5e5,
        ),
        (
            "abcdefghijklmnopqrstuvwxyz012345",
            0x7a5b22367996dcfd,
            0xbcdf1e672daffd00,
        ),
        (
            "abcdefghijklmnopqrstuvwxyz0123456",
            0x7a5b22367996dcfd,
            0xfdb0ee875545e346,
        ),
        (
            "abcdefghijklmnopqrstuvwxyz01234567",
            0x7a5b22367996dcfd,
            0xaee1eb2961683a2d,
        ),
        (
            "abcdefghijklmnopqrstuvwxyz012345678",
            0x7a5b22367996dcfd,
            0x47bf29095307b4ae,
        ),
        (
            "abcdefghijklmnopqrstuvwxyz0123456789",
            0x7a5b22367996dcfd,
            0x99929c72e4283997,
        ),
        (
            "abcdefghijklmnopqrstuvwxyz0123456789A",
            0x7a5b22367996dcfd,
            0x7c2c4a70835ea199,
        ),
        (
            "abcdefghijklmnopqrstuvwxyz0123456789AB",
            0x7a5b22367996dcfd,
            0xe676be10de0fdd0,
        ),
        (
            "abcdefghijklmnopqrstuvwxyz0123456789ABC",
            0x7a5b22367996dcfd,
            0x4100abe87d4386a8,
        ),
        (
            "abcdefghijklmnopqrstuvwxyz0123456789ABCD",
            0x7a5b22367996dcfd,
            0xd802f90d747458d1,
        ),
    ];

    /// `(value, seed, uuid_hash_extended(value, seed))`.
    const UUID: &[(&str, u64, u64)] = &[
        (
            "00000000-0000-0000-0000-000000000000",
            0x0,
            0xa0cfe6af50af2853,
        ),
        (
            "123e4567-e89b-12d3-a456-426614174000",
            0x0,
            0xe9214e1773e9208f,
        ),
        (
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            0x0,
            0x68ae4fe544d2cf05,
        ),
        (
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
            0x0,
            0x412872ad753a869,
        ),
        (
            "00000000-0000-0000-0000-000000000000",
            0xffffffffffffffff,
            0xddbaf22587181822,
        ),
        (
            "123e4567-e89b-12d3-a456-426614174000",
            0xffffffffffffffff,
            0xfba7f9c7ebfdc451,
        ),
        (
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            0xffffffffffffffff,
            0xde2566e5678c3310,
        ),
        (
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
            0xffffffffffffffff,
            0x220cf690057af0bf,
        ),
        (
            "00000000-0000-0000-0000-000000000000",
            0x7a5b22367996dcfd,
            0xb6b5d3c4aa5d92c2,
        ),
        (
            "123e4567-e89b-12d3-a456-426614174000",
            0x7a5b22367996dcfd,
            0xee9f87f344f2caa2,
        ),
        (
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            0x7a5b22367996dcfd,
            0x5e42c7f7f75bced,
        ),
        (
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
            0x7a5b22367996dcfd,
            0xfdeeb1999c98549e,
        ),
    ];

    #[test]
    fn int4_matches_postgres() {
        for &(v, seed, want) in INT4 {
            assert_eq!(
                hashint4_extended(v, seed),
                want,
                "hashint4extended({v}, {seed:#x})"
            );
        }
    }

    #[test]
    fn int8_matches_postgres() {
        for &(v, seed, want) in INT8 {
            assert_eq!(
                hashint8_extended(v, seed),
                want,
                "hashint8extended({v}, {seed:#x})"
            );
        }
    }

    #[test]
    fn int8_values_that_fit_in_int4_hash_like_int4() {
        for &(v, seed, want) in INT4 {
            assert_eq!(
                hashint8_extended(i64::from(v), seed),
                want,
                "{v}, {seed:#x}"
            );
        }
    }

    #[test]
    fn text_matches_postgres() {
        for &(v, seed, want) in TEXT {
            assert_eq!(
                hashtext_extended(v, seed),
                want,
                "hashtextextended({v:?}, {seed:#x})"
            );
        }
        let long = "xyz".repeat(100);
        assert_eq!(hashtext_extended(&long, 0), 0xa814ca745a016df1);
        assert_eq!(
            hashtext_extended(&long, HASH_PARTITION_SEED),
            0xee15e48dd143eafd
        );
    }

    #[test]
    fn seed_zero_keeps_the_non_extended_hash_in_the_low_half() {
        // select hashtext('abc') = -785388649
        assert_eq!(hashtext_extended("abc", 0) as u32, (-785388649i32) as u32);
    }

    #[test]
    fn unaligned_input_hashes_like_aligned_input() {
        // Postgres has separate aligned and unaligned paths; ours must not
        // depend on where the slice starts.
        let mut buf = [0u8; 64];
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        for len in 0..=40 {
            let reference = hash_bytes_extended(&buf[..len], HASH_PARTITION_SEED);
            for offset in 1..4 {
                let mut shifted = [0u8; 64];
                shifted[offset..offset + len].copy_from_slice(&buf[..len]);
                assert_eq!(
                    hash_bytes_extended(&shifted[offset..offset + len], HASH_PARTITION_SEED),
                    reference,
                    "len {len}, offset {offset}"
                );
            }
        }
    }

    #[test]
    fn uint32_hash_equals_the_byte_hash_of_its_little_endian_bytes() {
        for &(v, seed, _) in INT4 {
            let word = v as u32;
            assert_eq!(
                hash_uint32_extended(word, seed),
                hash_bytes_extended(&word.to_le_bytes(), seed)
            );
        }
    }

    #[test]
    fn uuid_matches_postgres() {
        for &(text, seed, want) in UUID {
            let u = parse_uuid(text).expect(text);
            assert_eq!(
                hashuuid_extended(&u, seed),
                want,
                "uuid_hash_extended({text}, {seed:#x})"
            );
        }
    }

    #[test]
    fn hash_combine64_matches_the_formula() {
        assert_eq!(hash_combine64(0, 0), 0x49a0_f4dd_15e5_a8e3);
        assert_eq!(hash_combine64(0, 1), 0x49a0_f4dd_15e5_a8e4);
        let a = 0x0123_4567_89ab_cdef_u64;
        let b = 0xfedc_ba98_7654_3210_u64;
        let want = a
            ^ (b.wrapping_add(0x49a0_f4dd_15e5_a8e3))
                .wrapping_add(a << 54)
                .wrapping_add(a >> 7);
        assert_eq!(hash_combine64(a, b), want);
        assert_ne!(
            hash_combine64(hash_combine64(0, a), b),
            hash_combine64(hash_combine64(0, b), a)
        );
    }

    /// Remainders for modulus 1024 found with
    /// `satisfies_hash_partition('t'::regclass, 1024, r, k)` on tables
    /// `PARTITION BY HASH` of each key type.
    #[test]
    fn partition_remainders_match_postgres() {
        let u = parse_uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap();
        let cases: &[(&[KeyValue], u64)] = &[
            (&[KeyValue::Int8(0)], 432),
            (&[KeyValue::Int8(42)], 610),
            (&[KeyValue::Int8(-1)], 933),
            (&[KeyValue::Int8(i64::MAX)], 630),
            (&[KeyValue::Int4(0)], 432),
            (&[KeyValue::Int4(42)], 610),
            (&[KeyValue::Int4(-1)], 933),
            (&[KeyValue::Text("")], 166),
            (&[KeyValue::Text("abc")], 677),
            (&[KeyValue::Text("héllo")], 931),
            (&[KeyValue::Uuid(u)], 464),
            (&[KeyValue::Int8(42), KeyValue::Text("abc")], 315),
            (&[KeyValue::Null, KeyValue::Text("abc")], 677),
            (&[KeyValue::Int8(42), KeyValue::Null], 610),
            (&[KeyValue::Null, KeyValue::Null], 0),
        ];
        for &(keys, want) in cases {
            assert_eq!(partition_for(keys, 1024), want, "{keys:?}");
        }
        assert_eq!(partition_for(&[KeyValue::Int8(42)], 7), 0);
        assert_eq!(partition_hash(&[]), 0);
        assert_eq!(partition_for(&[KeyValue::Int8(42)], 1), 0);
    }

    #[test]
    #[should_panic(expected = "modulus must be positive")]
    fn modulus_zero_panics() {
        partition_for(&[KeyValue::Int4(1)], 0);
    }

    #[test]
    fn parse_uuid_accepts_what_postgres_accepts() {
        let want = [
            0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38,
            0x0a, 0x11,
        ];
        for ok in [
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            "a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "A0EEBC999C0B4EF8BB6D6BB9BD380A11",
            "{a0eebc999c0b4ef8bb6d6bb9bd380a11}",
            "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
            "a0eebc999c0b-4ef8-bb6d6bb9-bd380a11",
            "{a0eeBC99-9c0b4ef8-bb6d-6bb9bd380a11}",
        ] {
            assert_eq!(parse_uuid(ok), Some(want), "{ok}");
        }
    }

    #[test]
    fn parse_uuid_rejects_what_postgres_rejects() {
        // Each of these raises "invalid input syntax for type uuid" in
        // Postgres 15.
        for bad in [
            "",
            "{}",
            " a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11 ",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-}",
            "{{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}}",
            "a0e-ebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11",
            "-a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111",
            "g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "+0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1é",
        ] {
            assert_eq!(parse_uuid(bad), None, "{bad:?}");
        }
    }
}
