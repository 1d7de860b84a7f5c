//! Typed values of result columns: what the merger needs to compare, group
//! and add the shards' values exactly as Postgres would, in whichever format
//! (text or binary) the shards sent them.
//!
//! Text values compare bytewise, as Postgres does under the `C` collation
//! the shards run with; other database collations are out of scope (their
//! order cannot be reproduced outside the server). Dates and times in text
//! format must be in `DateStyle` ISO and intervals in `IntervalStyle`
//! postgres (both defaults); other styles are refused as unsupported.

mod datetime;
mod float;
mod numeric;

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::net::messages::PgError;
use crate::sharding::hash::parse_uuid;

pub use numeric::Numeric;

/// SQLSTATE feature_not_supported.
const UNSUPPORTED: &str = "0A000";
/// SQLSTATE protocol_violation: a shard sent something malformed.
const PROTOCOL_VIOLATION: &str = "08P01";
/// SQLSTATE numeric_value_out_of_range.
const OUT_OF_RANGE: &str = "22003";

/// Type OIDs of the built-in types the merger knows.
pub mod oid {
    /// `boolean`
    pub const BOOL: u32 = 16;
    /// `bytea`
    pub const BYTEA: u32 = 17;
    /// `name`
    pub const NAME: u32 = 19;
    /// `bigint`
    pub const INT8: u32 = 20;
    /// `smallint`
    pub const INT2: u32 = 21;
    /// `integer`
    pub const INT4: u32 = 23;
    /// `text`
    pub const TEXT: u32 = 25;
    /// `oid`
    pub const OID: u32 = 26;
    /// `json`
    pub const JSON: u32 = 114;
    /// `real`
    pub const FLOAT4: u32 = 700;
    /// `double precision`
    pub const FLOAT8: u32 = 701;
    /// `money`
    pub const MONEY: u32 = 790;
    /// `character(n)`
    pub const BPCHAR: u32 = 1042;
    /// `character varying`
    pub const VARCHAR: u32 = 1043;
    /// `date`
    pub const DATE: u32 = 1082;
    /// `time`
    pub const TIME: u32 = 1083;
    /// `timestamp`
    pub const TIMESTAMP: u32 = 1114;
    /// `timestamptz`
    pub const TIMESTAMPTZ: u32 = 1184;
    /// `interval`
    pub const INTERVAL: u32 = 1186;
    /// `numeric`
    pub const NUMERIC: u32 = 1700;
    /// `uuid`
    pub const UUID: u32 = 2950;
    /// `jsonb`
    pub const JSONB: u32 = 3802;
}

/// Result format of a column, from its RowDescription format code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Format code 0: the type's output function's text.
    Text,
    /// Format code 1: the type's send function's bytes.
    Binary,
}

impl Format {
    /// The format of a RowDescription format code (`None` for unknown
    /// codes).
    pub fn from_code(code: i16) -> Option<Format> {
        match code {
            0 => Some(Format::Text),
            1 => Some(Format::Binary),
            _ => None,
        }
    }
}

/// How the merger treats a type: picked from its OID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    Oid,
    Float,
    Numeric,
    /// Bytewise text; `blank_padded` types ignore trailing spaces.
    Text {
        blank_padded: bool,
    },
    /// Equality only, as text (Postgres has no usable order for JSON).
    Json,
    Bytea,
    Date,
    Time,
    Timestamp {
        zoned: bool,
    },
    Uuid,
    Interval,
    /// Passed through unchanged; never compared.
    Opaque,
}

impl Kind {
    fn of(oid: u32) -> Kind {
        match oid {
            oid::BOOL => Kind::Bool,
            oid::INT2 | oid::INT4 | oid::INT8 => Kind::Int,
            oid::OID => Kind::Oid,
            oid::FLOAT4 | oid::FLOAT8 => Kind::Float,
            oid::NUMERIC => Kind::Numeric,
            oid::TEXT | oid::VARCHAR | oid::NAME => Kind::Text {
                blank_padded: false,
            },
            oid::BPCHAR => Kind::Text { blank_padded: true },
            oid::JSON | oid::JSONB => Kind::Json,
            oid::BYTEA => Kind::Bytea,
            oid::DATE => Kind::Date,
            oid::TIME => Kind::Time,
            oid::TIMESTAMP => Kind::Timestamp { zoned: false },
            oid::TIMESTAMPTZ => Kind::Timestamp { zoned: true },
            oid::UUID => Kind::Uuid,
            oid::INTERVAL => Kind::Interval,
            _ => Kind::Opaque,
        }
    }
}

/// The type and format of one result column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnType {
    oid: u32,
    format: Format,
    kind: Kind,
}

impl ColumnType {
    /// A column of type `oid` sent in `format`.
    pub fn new(oid: u32, format: Format) -> ColumnType {
        ColumnType {
            oid,
            format,
            kind: Kind::of(oid),
        }
    }

    /// The type's OID.
    pub fn oid(&self) -> u32 {
        self.oid
    }

    /// The format values arrive (and leave) in.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The type's SQL name for error messages (`type OID n` for types the
    /// merger does not know).
    pub fn name(&self) -> String {
        let known = match self.oid {
            oid::BOOL => "boolean",
            oid::BYTEA => "bytea",
            oid::NAME => "name",
            oid::INT8 => "bigint",
            oid::INT2 => "smallint",
            oid::INT4 => "integer",
            oid::TEXT => "text",
            oid::OID => "oid",
            oid::JSON => "json",
            oid::FLOAT4 => "real",
            oid::FLOAT8 => "double precision",
            oid::MONEY => "money",
            oid::BPCHAR => "character",
            oid::VARCHAR => "character varying",
            oid::DATE => "date",
            oid::TIME => "time without time zone",
            oid::TIMESTAMP => "timestamp without time zone",
            oid::TIMESTAMPTZ => "timestamp with time zone",
            oid::INTERVAL => "interval",
            oid::NUMERIC => "numeric",
            oid::UUID => "uuid",
            oid::JSONB => "jsonb",
            other => return format!("type OID {other}"),
        };
        known.to_string()
    }

    /// Whether values can be tested for equality (GROUP BY, DISTINCT).
    pub fn has_equality(&self) -> bool {
        self.kind != Kind::Opaque
    }

    /// Whether values can be ordered (ORDER BY, MIN/MAX, HAVING).
    pub fn has_ordering(&self) -> bool {
        !matches!(self.kind, Kind::Opaque | Kind::Json)
    }

    /// The 0A000 error for an operation (`"grouping"`, `"sorting"`, ...)
    /// this type does not support across shards.
    pub fn unsupported(&self, operation: &str) -> PgError {
        PgError::error(
            UNSUPPORTED,
            format!(
                "{operation} by a column of type {} (OID {}) is not supported across shards",
                self.name(),
                self.oid
            ),
        )
    }

    /// Decodes one non-NULL field.
    pub fn decode<'a>(&self, raw: &'a [u8]) -> Result<Value<'a>, PgError> {
        let decoded = match self.format {
            Format::Text => self.decode_text(raw),
            Format::Binary => self.decode_binary(raw),
        };
        decoded.ok_or_else(|| self.undecodable(raw))
    }

    /// Appends the key bytes of a field (`None` for NULL): equal exactly
    /// for values that compare equal (NULLs equal each other, as GROUP BY
    /// and DISTINCT treat them), self-delimiting so several fields' keys
    /// can be concatenated.
    pub fn write_key(&self, raw: Option<&[u8]>, out: &mut Vec<u8>) -> Result<(), PgError> {
        match raw {
            None => out.push(0),
            Some(raw) => {
                out.push(1);
                self.decode(raw)?.write_key(out);
            }
        }
        Ok(())
    }

    /// Parses a HAVING literal (SQL text of a number, or a quoted string)
    /// into a value comparable with this column's values: exact numbers for
    /// integer and numeric columns, doubles for float columns (as Postgres
    /// casts a numeric constant compared with a float), the type's text
    /// input otherwise.
    pub fn parse_literal(&self, literal: &str) -> Result<Value<'static>, PgError> {
        let text = unquote(literal.trim());
        let parsed = match self.kind {
            Kind::Int | Kind::Oid | Kind::Numeric => {
                Numeric::parse_text(text.as_bytes()).map(Value::Numeric)
            }
            Kind::Float => text.parse::<f64>().ok().map(Value::Float),
            Kind::Bool => match text.to_ascii_lowercase().as_str() {
                "true" | "t" => Some(Value::Int(1)),
                "false" | "f" => Some(Value::Int(0)),
                _ => None,
            },
            _ => ColumnType::new(self.oid, Format::Text)
                .decode_text(text.as_bytes())
                .map(Value::into_owned),
        };
        parsed.ok_or_else(|| {
            PgError::error(
                UNSUPPORTED,
                format!(
                    "cannot compare a {} column with the constant {literal} across shards",
                    self.name()
                ),
            )
        })
    }

    fn decode_text<'a>(&self, raw: &'a [u8]) -> Option<Value<'a>> {
        let number = || std::str::from_utf8(raw).ok()?.parse::<i64>().ok();
        match self.kind {
            Kind::Bool => match raw {
                b"t" => Some(Value::Int(1)),
                b"f" => Some(Value::Int(0)),
                _ => None,
            },
            Kind::Int => number().map(Value::Int),
            Kind::Oid => number()
                .filter(|n| u32::try_from(*n).is_ok())
                .map(Value::Int),
            Kind::Float => float::parse(raw).map(Value::Float),
            Kind::Numeric => Numeric::parse_text(raw).map(Value::Numeric),
            Kind::Text { blank_padded } => Some(text_value(raw, blank_padded)),
            Kind::Json | Kind::Opaque => Some(Value::Bytes(Cow::Borrowed(raw))),
            Kind::Bytea => decode_bytea_text(raw).map(|b| Value::Bytes(Cow::Owned(b))),
            Kind::Date => datetime::parse_date(raw).map(Value::Int),
            Kind::Time => datetime::parse_time(raw).map(Value::Int),
            Kind::Timestamp { zoned } => datetime::parse_timestamp(raw, zoned).map(Value::Int),
            Kind::Uuid => std::str::from_utf8(raw)
                .ok()
                .and_then(parse_uuid)
                .map(|u| Value::Bytes(Cow::Owned(u.to_vec()))),
            Kind::Interval => datetime::parse_interval(raw).map(Value::Wide),
        }
    }

    fn decode_binary<'a>(&self, raw: &'a [u8]) -> Option<Value<'a>> {
        match self.kind {
            Kind::Bool => match raw {
                [0] => Some(Value::Int(0)),
                [1] => Some(Value::Int(1)),
                _ => None,
            },
            Kind::Int | Kind::Date | Kind::Time | Kind::Timestamp { .. } => {
                binary_int(raw).map(Value::Int)
            }
            Kind::Oid => Some(Value::Int(u32::from_be_bytes(raw.try_into().ok()?).into())),
            Kind::Float => binary_float(raw).map(Value::Float),
            Kind::Numeric => Numeric::from_binary(raw).map(Value::Numeric),
            Kind::Text { blank_padded } => Some(text_value(raw, blank_padded)),
            Kind::Json | Kind::Bytea | Kind::Opaque => Some(Value::Bytes(Cow::Borrowed(raw))),
            Kind::Uuid => (raw.len() == 16).then_some(Value::Bytes(Cow::Borrowed(raw))),
            Kind::Interval => datetime::interval_from_binary(raw).map(Value::Wide),
        }
    }

    /// The error for a field this type cannot decode: a style the merger
    /// does not parse (0A000, with the setting to change), or garbage from
    /// a shard (08P01).
    fn undecodable(&self, raw: &[u8]) -> PgError {
        let shown = String::from_utf8_lossy(&raw[..raw.len().min(64)]).into_owned();
        let style_hint = match (self.format, self.kind) {
            (Format::Text, Kind::Date | Kind::Timestamp { .. }) => Some("SET DateStyle TO ISO"),
            (Format::Text, Kind::Interval) => Some("SET IntervalStyle TO postgres"),
            _ => None,
        };
        match style_hint {
            Some(setting) => PgError::error(
                UNSUPPORTED,
                format!(
                    "cannot compare {} value \"{shown}\" across shards: only the default output style is understood",
                    self.name()
                ),
            )
            .with_hint(format!("{setting}, or request binary results")),
            None => PgError::error(
                PROTOCOL_VIOLATION,
                format!("a shard sent a malformed {} value", self.name()),
            ),
        }
    }
}

/// A decoded value, compared and hashed the way Postgres' default operator
/// class for its type does. All values of one column have the same variant
/// (HAVING literals for integer columns are the exception: `Numeric`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// Integers, booleans, OIDs, dates, times and timestamps.
    Int(i64),
    /// Intervals, by `interval_cmp_value`.
    Wide(i128),
    /// float4 and float8 (float4 widened exactly).
    Float(f64),
    /// numeric.
    Numeric(Numeric),
    /// Text (bytewise; bpchar without trailing blanks), bytea, uuid, json.
    Bytes(Cow<'a, [u8]>),
}

impl Value<'_> {
    /// Postgres' comparison of two values of one column: floats order NaN
    /// above every number and equal to itself, and -0 equals 0; numerics
    /// compare by value (1.0 = 1.00); text compares bytewise.
    pub fn compare(&self, other: &Value<'_>) -> Ordering {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::Wide(a), Value::Wide(b)) => a.cmp(b),
            (Value::Float(a), Value::Float(b)) => compare_floats(*a, *b),
            (Value::Numeric(a), Value::Numeric(b)) => a.compare(b),
            (Value::Int(a), Value::Numeric(b)) => Numeric::from_i64(*a).compare(b),
            (Value::Numeric(a), Value::Int(b)) => a.compare(&Numeric::from_i64(*b)),
            (Value::Bytes(a), Value::Bytes(b)) => a.cmp(b),
            // Values of one column always share a variant; any fixed order
            // keeps this total.
            _ => self.variant_rank().cmp(&other.variant_rank()),
        }
    }

    /// Appends bytes that are equal exactly when values compare equal, each
    /// value self-delimiting: keys of groups and of DISTINCT rows.
    pub fn write_key(&self, out: &mut Vec<u8>) {
        out.push(self.variant_rank());
        match self {
            Value::Int(v) => out.extend_from_slice(&v.to_be_bytes()),
            Value::Wide(v) => out.extend_from_slice(&v.to_be_bytes()),
            Value::Float(v) => out.extend_from_slice(&canonical_float_bits(*v).to_be_bytes()),
            Value::Numeric(n) => n.write_key(out),
            Value::Bytes(b) => {
                out.extend_from_slice(&(b.len() as u64).to_be_bytes());
                out.extend_from_slice(b);
            }
        }
    }

    /// The value with no borrow of the field it came from.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Int(v) => Value::Int(v),
            Value::Wide(v) => Value::Wide(v),
            Value::Float(v) => Value::Float(v),
            Value::Numeric(n) => Value::Numeric(n),
            Value::Bytes(b) => Value::Bytes(Cow::Owned(b.into_owned())),
        }
    }

    fn variant_rank(&self) -> u8 {
        match self {
            Value::Int(_) => 0,
            Value::Wide(_) => 1,
            Value::Float(_) => 2,
            Value::Numeric(_) => 3,
            Value::Bytes(_) => 4,
        }
    }
}

/// Appends a bigint in `format`, as `int8out` / `int8send` do.
pub fn write_int8(value: i64, format: Format, out: &mut Vec<u8>) {
    match format {
        Format::Text => out.extend_from_slice(value.to_string().as_bytes()),
        Format::Binary => out.extend_from_slice(&value.to_be_bytes()),
    }
}

/// Appends a double in `format`, as `float8out` / `float8send` do.
pub fn write_float8(value: f64, format: Format, out: &mut Vec<u8>) {
    match format {
        Format::Text => float::write_float8(value, out),
        Format::Binary => out.extend_from_slice(&value.to_bits().to_be_bytes()),
    }
}

/// Appends a real in `format`, as `float4out` / `float4send` do.
pub fn write_float4(value: f32, format: Format, out: &mut Vec<u8>) {
    match format {
        Format::Text => float::write_float4(value, out),
        Format::Binary => out.extend_from_slice(&value.to_bits().to_be_bytes()),
    }
}

/// Appends a numeric in `format`, as `numeric_out` / `numeric_send` do.
pub fn write_numeric(value: &Numeric, format: Format, out: &mut Vec<u8>) -> Result<(), PgError> {
    match format {
        Format::Text => {
            value.write_text(out);
            Ok(())
        }
        Format::Binary => value
            .write_binary(out)
            .map_err(|_| PgError::error(OUT_OF_RANGE, "value overflows numeric format")),
    }
}

/// Postgres' float comparison (`float8_cmp_internal`).
fn compare_floats(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// Bits equal for floats that compare equal: one NaN, one zero.
fn canonical_float_bits(value: f64) -> u64 {
    if value.is_nan() {
        f64::NAN.to_bits()
    } else if value == 0.0 {
        0
    } else {
        value.to_bits()
    }
}

/// A text value as compared: `character(n)` ignores trailing blanks.
fn text_value(raw: &[u8], blank_padded: bool) -> Value<'_> {
    let end = if blank_padded {
        raw.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1)
    } else {
        raw.len()
    };
    Value::Bytes(Cow::Borrowed(&raw[..end]))
}

/// A big-endian integer of 2, 4 or 8 bytes.
fn binary_int(raw: &[u8]) -> Option<i64> {
    Some(match raw.len() {
        2 => i16::from_be_bytes(raw.try_into().ok()?).into(),
        4 => i32::from_be_bytes(raw.try_into().ok()?).into(),
        8 => i64::from_be_bytes(raw.try_into().ok()?),
        _ => return None,
    })
}

/// A big-endian float4 or float8.
fn binary_float(raw: &[u8]) -> Option<f64> {
    Some(match raw.len() {
        4 => f32::from_be_bytes(raw.try_into().ok()?).into(),
        8 => f64::from_be_bytes(raw.try_into().ok()?),
        _ => return None,
    })
}

/// Decodes bytea text output: `\x` hex (the default `bytea_output`) or the
/// escape format (`\\` and `\ooo`).
fn decode_bytea_text(raw: &[u8]) -> Option<Vec<u8>> {
    if let Some(hex) = raw.strip_prefix(b"\\x") {
        if hex.len() % 2 != 0 {
            return None;
        }
        let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        return hex
            .chunks_exact(2)
            .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
            .collect();
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some((&byte, tail)) = rest.split_first() {
        if byte != b'\\' {
            out.push(byte);
            rest = tail;
        } else if let Some(tail) = tail.strip_prefix(b"\\") {
            out.push(b'\\');
            rest = tail;
        } else {
            let octal = tail.get(..3)?;
            let value = std::str::from_utf8(octal).ok()?;
            out.push(u8::from_str_radix(value, 8).ok()?);
            rest = &tail[3..];
        }
    }
    Some(out)
}

/// The text of a SQL string literal (`'it''s'` → `it's`); other literals
/// unchanged.
fn unquote(literal: &str) -> Cow<'_, str> {
    match literal
        .strip_prefix('\'')
        .and_then(|rest| rest.strip_suffix('\''))
    {
        Some(inner) => Cow::Owned(inner.replace("''", "'")),
        None => Cow::Borrowed(literal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(oid: u32, raw: &str) -> Value<'static> {
        ColumnType::new(oid, Format::Text)
            .decode(raw.as_bytes())
            .expect(raw)
            .into_owned()
    }

    fn key(value: &Value<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        value.write_key(&mut out);
        out
    }

    #[test]
    fn text_and_binary_decode_to_the_same_values() {
        let binary = |oid: u32, raw: &[u8]| {
            ColumnType::new(oid, Format::Binary)
                .decode(raw)
                .unwrap()
                .into_owned()
        };
        assert_eq!(
            binary(oid::INT4, &(-7i32).to_be_bytes()),
            text(oid::INT4, "-7")
        );
        assert_eq!(binary(oid::INT2, &3i16.to_be_bytes()), text(oid::INT2, "3"));
        assert_eq!(binary(oid::BOOL, &[1]), text(oid::BOOL, "t"));
        assert_eq!(
            binary(oid::OID, &u32::MAX.to_be_bytes()),
            text(oid::OID, "4294967295")
        );
        assert_eq!(
            binary(oid::FLOAT4, &1.5f32.to_be_bytes()),
            text(oid::FLOAT4, "1.5")
        );
        assert_eq!(
            binary(oid::DATE, &1i32.to_be_bytes()),
            text(oid::DATE, "2000-01-02")
        );
        assert_eq!(
            binary(oid::TIMESTAMP, &1_500_000i64.to_be_bytes()),
            text(oid::TIMESTAMP, "2000-01-01 00:00:01.5")
        );
        let uuid = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        assert_eq!(
            binary(oid::UUID, &parse_uuid(uuid).unwrap()),
            text(oid::UUID, uuid)
        );
        assert_eq!(
            binary(oid::BYTEA, b"a\\\x01"),
            text(oid::BYTEA, "\\x615c01")
        );
        assert_eq!(
            text(oid::BYTEA, "a\\\\\\001"),
            text(oid::BYTEA, "\\x615c01")
        );
        assert_eq!(text(oid::BPCHAR, "ab  "), text(oid::TEXT, "ab"));
    }

    #[test]
    fn malformed_fields_are_errors() {
        let err = |oid: u32, format: Format, raw: &[u8]| {
            ColumnType::new(oid, format).decode(raw).unwrap_err().code
        };
        assert_eq!(err(oid::INT8, Format::Binary, &[0; 7]), "08P01");
        assert_eq!(err(oid::INT4, Format::Text, b"12a"), "08P01");
        assert_eq!(err(oid::NUMERIC, Format::Binary, &[0; 3]), "08P01");
        assert_eq!(err(oid::UUID, Format::Binary, &[0; 15]), "08P01");
        assert_eq!(err(oid::BOOL, Format::Binary, &[2]), "08P01");
        assert_eq!(err(oid::DATE, Format::Text, b"01/02/2024"), "0A000");
        assert_eq!(err(oid::INTERVAL, Format::Text, b"P1D"), "0A000");
    }

    #[test]
    fn comparisons_follow_postgres() {
        let nan = Value::Float(f64::NAN);
        assert_eq!(nan.compare(&Value::Float(f64::INFINITY)), Ordering::Greater);
        assert_eq!(nan.compare(&nan), Ordering::Equal);
        assert_eq!(
            Value::Float(-0.0).compare(&Value::Float(0.0)),
            Ordering::Equal
        );
        assert_eq!(key(&Value::Float(-0.0)), key(&Value::Float(0.0)));
        assert_eq!(key(&nan), key(&Value::Float(-f64::NAN)));
        assert_eq!(
            key(&text(oid::NUMERIC, "1.0")),
            key(&text(oid::NUMERIC, "1.00"))
        );
        assert_eq!(
            text(oid::TEXT, "B").compare(&text(oid::TEXT, "a")),
            Ordering::Less,
            "C collation: bytewise"
        );
        assert_ne!(key(&text(oid::TEXT, "ab")), key(&text(oid::TEXT, "a")));
        assert_eq!(
            text(oid::INTERVAL, "1 day").compare(&text(oid::INTERVAL, "24:00:00")),
            Ordering::Equal
        );
        assert_eq!(
            text(oid::TIMESTAMPTZ, "2024-01-01 10:00:00+02")
                .compare(&text(oid::TIMESTAMPTZ, "2024-01-01 09:00:00+00")),
            Ordering::Less
        );
    }

    #[test]
    fn literals_compare_with_column_values() {
        let int8 = ColumnType::new(oid::INT8, Format::Binary);
        let lit = int8.parse_literal("2.5").unwrap();
        assert_eq!(Value::Int(3).compare(&lit), Ordering::Greater);
        assert_eq!(Value::Int(2).compare(&lit), Ordering::Less);
        let float = ColumnType::new(oid::FLOAT8, Format::Text);
        assert_eq!(float.parse_literal("1e3").unwrap(), Value::Float(1000.0));
        let name = ColumnType::new(oid::TEXT, Format::Text);
        assert_eq!(
            name.parse_literal("'it''s'").unwrap(),
            Value::Bytes(Cow::Borrowed(b"it's"))
        );
        let date = ColumnType::new(oid::DATE, Format::Binary);
        assert_eq!(date.parse_literal("'2000-01-03'").unwrap(), Value::Int(2));
        assert_eq!(int8.parse_literal("'abc'").unwrap_err().code, "0A000");
    }

    #[test]
    fn aggregate_outputs_encode_like_postgres() {
        let mut out = Vec::new();
        write_int8(-42, Format::Text, &mut out);
        assert_eq!(out, b"-42");
        out.clear();
        write_float8(0.5, Format::Binary, &mut out);
        assert_eq!(out, 0.5f64.to_be_bytes());
        out.clear();
        write_numeric(&Numeric::from_i64(5), Format::Text, &mut out).unwrap();
        assert_eq!(out, b"5");
        assert_eq!(ColumnType::new(4242, Format::Text).name(), "type OID 4242");
        assert!(!ColumnType::new(oid::JSON, Format::Text).has_ordering());
        assert!(ColumnType::new(oid::JSONB, Format::Text).has_equality());
    }
}
