//! Sharding key values: parsed exactly as the server parses them, and
//! written in one canonical text form.
//!
//! The router must compute a key's shard from the very value the server will
//! store, so text input follows the type's Postgres input function and
//! binary input its receive function. Where this module rejects a value the
//! server would reject it too; it accepts the integer syntax of Postgres 16
//! and later (`0x1F`, `0o17`, `0b101`, `1_000`), which older servers refuse
//! themselves, so routing such a value first never stores a wrong row.

use std::fmt::{self, Write as _};

use super::{KeyType, OwnedKey};
use crate::sharding::hash::{KeyValue, parse_uuid};

/// Parses the text form of a key value as the type's input function
/// (`int8in`, `int4in`, `textin`, `uuid_in`) would; `None` where the server
/// would raise an error.
pub(super) fn parse_text(key_type: KeyType, text: &str) -> Option<OwnedKey> {
    match key_type {
        KeyType::Bigint => parse_integer(text, i64::MIN, i64::MAX).map(OwnedKey::Int),
        KeyType::Integer => {
            parse_integer(text, i32::MIN.into(), i32::MAX.into()).map(OwnedKey::Int)
        }
        KeyType::Text => Some(OwnedKey::Text(text.to_owned())),
        KeyType::Uuid => parse_uuid(text).map(OwnedKey::Uuid),
    }
}

/// Parses the binary form of a key value (a binary-format bind parameter):
/// big-endian int2, int4 or int8 for integer keys (whichever type the client
/// sent), UTF-8 for text, 16 bytes for uuid.
pub(super) fn parse_binary(key_type: KeyType, bytes: &[u8]) -> Option<OwnedKey> {
    match key_type {
        KeyType::Bigint | KeyType::Integer => {
            let value = match *bytes {
                [a, b] => i16::from_be_bytes([a, b]).into(),
                [a, b, c, d] => i32::from_be_bytes([a, b, c, d]).into(),
                _ => i64::from_be_bytes(bytes.try_into().ok()?),
            };
            let fits = key_type == KeyType::Bigint || i32::try_from(value).is_ok();
            fits.then_some(OwnedKey::Int(value))
        }
        KeyType::Text => std::str::from_utf8(bytes)
            .ok()
            .map(|s| OwnedKey::Text(s.to_owned())),
        KeyType::Uuid => bytes.try_into().ok().map(OwnedKey::Uuid),
    }
}

/// Whitespace as C's `isspace` sees it in the C locale (Rust's ASCII
/// whitespace lacks the vertical tab).
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0B' | '\x0C' | '\r')
}

/// An integer as `pg_strtoint64` / `pg_strtoint32` read it: surrounding
/// whitespace, an optional sign, decimal digits or a `0x` / `0o` / `0b`
/// prefix with digits of that base, single underscores between digits; the
/// value must lie within `min..=max`.
fn parse_integer(text: &str, min: i64, max: i64) -> Option<i64> {
    let trimmed = text.trim_matches(is_c_space);
    let (negative, unsigned) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    let prefixed = |radix| (radix, &unsigned[2..], true);
    let (radix, digits, underscore_may_lead) = match unsigned.get(..2) {
        Some("0x" | "0X") => prefixed(16),
        Some("0o" | "0O") => prefixed(8),
        Some("0b" | "0B") => prefixed(2),
        _ => (10, unsigned, false),
    };
    let magnitude = i128::from(parse_digits(digits, radix, underscore_may_lead)?);
    let value = if negative { -magnitude } else { magnitude };
    (i128::from(min)..=i128::from(max))
        .contains(&value)
        .then_some(value as i64)
}

/// The value of a run of digits in `radix`, each underscore followed by a
/// digit (a leading one only after a base prefix); `None` when empty,
/// malformed or beyond `u64`.
fn parse_digits(digits: &str, radix: u32, underscore_may_lead: bool) -> Option<u64> {
    let digit = |b: u8| char::from(b).to_digit(radix);
    let bytes = digits.as_bytes();
    if bytes.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'_' {
            let followed_by_digit = bytes.get(i + 1).is_some_and(|&n| digit(n).is_some());
            if !followed_by_digit || (i == 0 && !underscore_may_lead) {
                return None;
            }
            continue;
        }
        value = value
            .checked_mul(radix.into())?
            .checked_add(digit(b)?.into())?;
    }
    Some(value)
}

impl OwnedKey {
    /// The value as the hash function of a `key_type` column sees it
    /// (`Int4` for integer keys, `Int8` for bigint ones).
    pub fn hash_value(&self, key_type: KeyType) -> KeyValue<'_> {
        match self {
            OwnedKey::Int(v) => match (key_type, i32::try_from(*v)) {
                (KeyType::Integer, Ok(v4)) => KeyValue::Int4(v4),
                _ => KeyValue::Int8(*v),
            },
            OwnedKey::Text(s) => KeyValue::Text(s),
            OwnedKey::Uuid(u) => KeyValue::Uuid(*u),
        }
    }
}

/// The canonical text of a key, as list entries are keyed: integers in
/// decimal, text as is, uuids lowercase and hyphenated (what Postgres
/// prints).
impl fmt::Display for OwnedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OwnedKey::Int(v) => write!(f, "{v}"),
            OwnedKey::Text(s) => f.write_str(s),
            OwnedKey::Uuid(u) => {
                for (i, byte) in u.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        f.write_char('-')?;
                    }
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// Runs `f` on the canonical text of `key` without allocating: text keys are
/// passed as they are, integers and uuids are written to the stack (the
/// per-statement list lookup stays allocation-free).
pub(super) fn with_canonical_text<R>(key: &OwnedKey, f: impl FnOnce(&str) -> R) -> R {
    match key {
        OwnedKey::Text(s) => f(s),
        other => {
            let mut text = InlineText::default();
            // Cannot fail: the longest form (a uuid, 36 bytes) fits.
            let _ = write!(text, "{other}");
            f(text.as_str())
        }
    }
}

/// A short string on the stack: room for the canonical text of any integer
/// (20 bytes) or uuid (36 bytes).
struct InlineText {
    bytes: [u8; 40],
    len: usize,
}

impl Default for InlineText {
    fn default() -> Self {
        InlineText {
            bytes: [0; 40],
            len: 0,
        }
    }
}

impl InlineText {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl fmt::Write for InlineText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// A binary value as Postgres prints a bytea (`\x` and hex), for messages.
pub(super) fn hex_literal(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(2 + 2 * bytes.len());
    text.push_str("\\x");
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int8(text: &str) -> Option<i64> {
        parse_integer(text, i64::MIN, i64::MAX)
    }

    fn int4(text: &str) -> Option<i64> {
        parse_integer(text, i32::MIN.into(), i32::MAX.into())
    }

    #[test]
    fn decimal_integers_parse_as_int8in_does() {
        assert_eq!(int8("0"), Some(0));
        assert_eq!(int8("42"), Some(42));
        assert_eq!(int8("+42"), Some(42));
        assert_eq!(int8("-42"), Some(-42));
        assert_eq!(int8("  \t\n\x0B\x0C\r17 \n"), Some(17));
        assert_eq!(int8("007"), Some(7));
        assert_eq!(int8("-0"), Some(0));
        assert_eq!(int8("9223372036854775807"), Some(i64::MAX));
        assert_eq!(int8("-9223372036854775808"), Some(i64::MIN));
        for bad in [
            "",
            " ",
            "-",
            "+",
            "- 1",
            "1 2",
            "1.0",
            "1e3",
            "abc",
            "12a",
            "--1",
            "+-1",
            "١٢",
            "9223372036854775808",
            "-9223372036854775809",
            "99999999999999999999999",
        ] {
            assert_eq!(int8(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn integer_keys_are_range_checked_as_int4() {
        assert_eq!(int4("2147483647"), Some(i32::MAX.into()));
        assert_eq!(int4("-2147483648"), Some(i32::MIN.into()));
        assert_eq!(int4("2147483648"), None);
        assert_eq!(int4("-2147483649"), None);
        assert_eq!(int4("0x80000000"), None);
        assert_eq!(int4("-0x80000000"), Some(i32::MIN.into()));
    }

    #[test]
    fn postgres_16_integer_syntax_is_accepted() {
        assert_eq!(int8("0x1F"), Some(31));
        assert_eq!(int8("0X1f"), Some(31));
        assert_eq!(int8("-0x10"), Some(-16));
        assert_eq!(int8("0o17"), Some(15));
        assert_eq!(int8("0b101"), Some(5));
        assert_eq!(int8("1_000_000"), Some(1_000_000));
        assert_eq!(int8("0x_ff"), Some(255));
        assert_eq!(int8("0x7fff_ffff_ffff_ffff"), Some(i64::MAX));
        for bad in [
            "_1", "1_", "1__0", "0x", "0x_", "0xg", "0o8", "0b2", "-_1", "0 x1",
        ] {
            assert_eq!(int8(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn text_forms_of_every_type() {
        assert_eq!(
            parse_text(KeyType::Text, " Mixed Case "),
            Some(OwnedKey::Text(" Mixed Case ".into()))
        );
        let uuid = parse_text(KeyType::Uuid, "{A0EEBC99-9C0B4EF8-BB6D6BB9-BD380A11}");
        assert_eq!(
            uuid.map(|u| u.to_string()),
            Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".to_string())
        );
        assert_eq!(parse_text(KeyType::Uuid, "not-a-uuid"), None);
        assert_eq!(parse_text(KeyType::Integer, "5"), Some(OwnedKey::Int(5)));
    }

    #[test]
    fn binary_forms_of_every_type() {
        let int = |t, b: &[u8]| parse_binary(t, b);
        assert_eq!(
            int(KeyType::Bigint, &(-2i16).to_be_bytes()),
            Some(OwnedKey::Int(-2))
        );
        assert_eq!(
            int(KeyType::Bigint, &7i32.to_be_bytes()),
            Some(OwnedKey::Int(7))
        );
        assert_eq!(
            int(KeyType::Bigint, &i64::MIN.to_be_bytes()),
            Some(OwnedKey::Int(i64::MIN))
        );
        assert_eq!(
            int(KeyType::Integer, &7i64.to_be_bytes()),
            Some(OwnedKey::Int(7))
        );
        assert_eq!(int(KeyType::Integer, &(1i64 << 40).to_be_bytes()), None);
        for len in [0, 1, 3, 5, 16] {
            assert_eq!(int(KeyType::Bigint, &vec![0; len]), None, "{len} bytes");
        }
        assert_eq!(
            parse_binary(KeyType::Text, "héllo".as_bytes()),
            Some(OwnedKey::Text("héllo".into()))
        );
        assert_eq!(parse_binary(KeyType::Text, &[0xff, 0xfe]), None);
        assert_eq!(
            parse_binary(KeyType::Uuid, &[7; 16]),
            Some(OwnedKey::Uuid([7; 16]))
        );
        assert_eq!(parse_binary(KeyType::Uuid, &[7; 15]), None);
    }

    #[test]
    fn canonical_text_is_what_postgres_prints() {
        assert_eq!(OwnedKey::Int(-12).to_string(), "-12");
        assert_eq!(OwnedKey::Int(i64::MIN).to_string(), "-9223372036854775808");
        assert_eq!(OwnedKey::Text("Eu".into()).to_string(), "Eu");
        let mut u = [0u8; 16];
        u[0] = 0xAB;
        u[15] = 0x01;
        assert_eq!(
            OwnedKey::Uuid(u).to_string(),
            "ab000000-0000-0000-0000-000000000001"
        );
        for key in [
            OwnedKey::Int(i64::MIN),
            OwnedKey::Uuid([0xff; 16]),
            OwnedKey::Text("x".into()),
        ] {
            assert_eq!(with_canonical_text(&key, str::to_owned), key.to_string());
        }
    }

    #[test]
    fn hash_values_follow_the_key_type() {
        assert_eq!(
            OwnedKey::Int(5).hash_value(KeyType::Integer),
            KeyValue::Int4(5)
        );
        assert_eq!(
            OwnedKey::Int(5).hash_value(KeyType::Bigint),
            KeyValue::Int8(5)
        );
        assert_eq!(
            OwnedKey::Text("a".into()).hash_value(KeyType::Text),
            KeyValue::Text("a")
        );
        assert_eq!(hex_literal(&[0, 0xab]), "\\x00ab");
    }
}
