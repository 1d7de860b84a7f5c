//! Deterministic sharding-key generators shared by the tests that compare
//! shardwire's hashing with a real Postgres (`partition_hash`,
//! `shard_map_hash`): the same keys on every run, covering the edge cases of
//! each key type.

/// Keys generated per type.
pub const KEYS: usize = 10_000;

/// splitmix64: a tiny deterministic generator, so every run checks the same
/// keys.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// bigint keys: small values, both sides of the int4 and uint32 boundaries,
/// the extremes, and values spread over the whole range.
pub fn bigint_keys() -> Vec<i64> {
    let mut keys: Vec<i64> = vec![
        0,
        1,
        -1,
        42,
        i64::MIN,
        i64::MIN + 1,
        i64::MAX,
        i64::MAX - 1,
        i32::MIN as i64,
        i32::MIN as i64 - 1,
        i32::MAX as i64,
        i32::MAX as i64 + 1,
        u32::MAX as i64,
        u32::MAX as i64 + 1,
        -(u32::MAX as i64),
        -(u32::MAX as i64) - 1,
    ];
    keys.extend(-500..500);
    let mut rng = Rng(1);
    while keys.len() < KEYS {
        let v = rng.next() as i64;
        keys.push(match keys.len() % 4 {
            0 => v,                        // anywhere
            1 => v >> 32,                  // fits in int4
            2 => v >> rng.below(64),       // any magnitude, either sign
            _ => (v >> 40) ^ (1i64 << 32), // just above the int4 range
        });
    }
    keys
}

/// integer keys: small values, the extremes, and values spread over the range.
pub fn integer_keys() -> Vec<i32> {
    let mut keys: Vec<i32> = vec![0, 1, -1, 42, i32::MIN, i32::MIN + 1, i32::MAX, i32::MAX - 1];
    keys.extend(-500..500);
    let mut rng = Rng(2);
    while keys.len() < KEYS {
        let v = rng.next() as i32;
        keys.push(if keys.len().is_multiple_of(2) {
            v
        } else {
            v >> rng.below(32)
        });
    }
    keys
}

/// text keys: empty, every length up to 64 characters of mixed 1- to 4-byte
/// UTF-8 (so byte lengths cover every lookup3 tail), quotes and backslashes,
/// and a few long values (several kB, which the server may compress).
pub fn text_keys() -> Vec<String> {
    const ALPHABET: &[char] = &[
        'a',
        'b',
        'z',
        'A',
        'Z',
        '0',
        '9',
        ' ',
        '\t',
        '\'',
        '"',
        '\\',
        '%',
        '_',
        '\u{7f}',
        'é',
        'ß',
        'Ω',
        'ж',
        '日',
        '本',
        '語',
        '€',
        '🦀',
        '😀',
        '\u{10ffff}',
    ];
    let mut keys = vec![String::new(), "abc".to_string(), "héllo wörld".to_string()];
    let mut rng = Rng(3);
    // ASCII prefixes: every byte length 1..=48.
    let ascii = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV";
    keys.extend((1..=ascii.len()).map(|n| ascii[..n].to_string()));
    for n in [1000, 4096, 10_000] {
        keys.push((0..n).map(|i| ALPHABET[i % ALPHABET.len()]).collect());
    }
    while keys.len() < KEYS {
        let len = rng.below(65) as usize;
        let ascii_only = keys.len() % 3 == 0;
        let s: String = (0..len)
            .map(|_| {
                if ascii_only {
                    char::from(b' ' + rng.below(95) as u8)
                } else {
                    ALPHABET[rng.below(ALPHABET.len() as u64) as usize]
                }
            })
            .collect();
        keys.push(s);
    }
    keys
}

/// uuid keys as text, in every form Postgres accepts (hyphenated, bare,
/// braces, upper case, odd hyphen groups), so `parse_uuid` is checked too.
pub fn uuid_keys() -> Vec<String> {
    let mut keys = vec![
        "00000000-0000-0000-0000-000000000000".to_string(),
        "ffffffff-ffff-ffff-ffff-ffffffffffff".to_string(),
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".to_string(),
    ];
    let mut rng = Rng(4);
    while keys.len() < KEYS {
        let bytes: Vec<u8> = (0..16).map(|_| rng.next() as u8).collect();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let hyphenated = format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        );
        keys.push(match keys.len() % 6 {
            0 | 1 => hyphenated,
            2 => hex,
            3 => format!("{{{hyphenated}}}"),
            4 => hyphenated.to_uppercase(),
            _ => hex
                .as_bytes()
                .chunks(4)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join("-"),
        });
    }
    keys
}
