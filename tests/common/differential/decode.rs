//! Binary result values to canonical text. Extended-protocol answers come in
//! binary; each value is decoded by its column type into the text Postgres
//! would print for it (integers, numeric with its display scale, text,
//! date, timestamptz in UTC, uuid, bool), so answers compare by value and
//! mismatches read naturally. Other types print as hex, which still compares
//! exactly. The suite has no float columns: float sums depend on addition
//! order, and every value here must compare exactly.

use tokio_postgres::types::{FromSql, Type};

use super::calendar::{format_date, format_timestamptz};
use super::sql::format_uuid;

/// A value's raw bytes, whatever its type.
pub struct Raw<'a>(pub &'a [u8]);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> Result<Raw<'a>, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// The canonical text of a binary value of type `ty`; a value whose bytes
/// do not fit its type gets a marker naming the type (never a panic).
pub fn canonical(ty: &Type, raw: &[u8]) -> String {
    decode(ty, raw).unwrap_or_else(|| format!("<malformed {ty}: {}>", hex(raw)))
}

fn decode(ty: &Type, raw: &[u8]) -> Option<String> {
    Some(match *ty {
        Type::BOOL => match raw {
            [0] => "f".to_string(),
            [1] => "t".to_string(),
            _ => return None,
        },
        Type::INT2 => i16::from_be_bytes(raw.try_into().ok()?).to_string(),
        Type::INT4 => i32::from_be_bytes(raw.try_into().ok()?).to_string(),
        Type::INT8 => i64::from_be_bytes(raw.try_into().ok()?).to_string(),
        Type::OID => u32::from_be_bytes(raw.try_into().ok()?).to_string(),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            String::from_utf8(raw.to_vec()).ok()?
        }
        Type::NUMERIC => numeric(raw)?,
        Type::DATE => match i32::from_be_bytes(raw.try_into().ok()?) {
            i32::MAX => "infinity".to_string(),
            i32::MIN => "-infinity".to_string(),
            days => format_date(i64::from(days)),
        },
        Type::TIMESTAMPTZ => match i64::from_be_bytes(raw.try_into().ok()?) {
            i64::MAX => "infinity".to_string(),
            i64::MIN => "-infinity".to_string(),
            micros => format_timestamptz(micros),
        },
        Type::UUID => format_uuid(&raw.try_into().ok()?),
        _ => format!("{ty}:{}", hex(raw)),
    })
}

fn hex(raw: &[u8]) -> String {
    let digits: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    format!("\\x{digits}")
}

/// `numeric` binary: ndigits, weight, sign, dscale (int16 each), then
/// ndigits base-10000 digits; digit `i` is worth `10000^(weight - i)`.
/// Printed like numeric_out: the integer part, then exactly dscale
/// fraction digits.
fn numeric(raw: &[u8]) -> Option<String> {
    let word = |i: usize| {
        raw.get(2 * i..2 * i + 2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
    };
    let ndigits = usize::try_from(word(0)?).ok()?;
    let weight = i64::from(word(1)?);
    let sign = word(2)? as u16;
    let dscale = usize::try_from(word(3)?).ok()?;
    if raw.len() != 8 + 2 * ndigits {
        return None;
    }
    let negative = match sign {
        0x0000 => false,
        0x4000 => true,
        0xC000 => return Some("NaN".to_string()),
        0xD000 => return Some("Infinity".to_string()),
        0xF000 => return Some("-Infinity".to_string()),
        _ => return None,
    };
    let digits: Vec<i16> = (0..ndigits).map(|i| word(4 + i)).collect::<Option<_>>()?;
    if digits.iter().any(|d| !(0..10_000).contains(d)) {
        return None;
    }
    let group = |index: i64| {
        usize::try_from(index)
            .ok()
            .and_then(|i| digits.get(i))
            .copied()
            .unwrap_or(0)
    };
    let integer: String = (0..=weight).map(|i| format!("{:04}", group(i))).collect();
    let integer = integer.trim_start_matches('0');
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    out.push_str(if integer.is_empty() { "0" } else { integer });
    if dscale > 0 {
        let groups = dscale.div_ceil(4) as i64;
        let fraction: String = (1..=groups)
            .map(|f| format!("{:04}", group(weight + f)))
            .collect();
        out.push('.');
        out.push_str(&fraction[..dscale]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_bytes(weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> Vec<u8> {
        let mut out = Vec::new();
        for w in [digits.len() as i16, weight, sign as i16, dscale as i16]
            .into_iter()
            .chain(digits.iter().copied())
        {
            out.extend_from_slice(&w.to_be_bytes());
        }
        out
    }

    #[test]
    fn numerics_print_like_postgres() {
        assert_eq!(numeric(&numeric_bytes(0, 0, 0, &[])).as_deref(), Some("0"));
        assert_eq!(
            numeric(&numeric_bytes(0, 0, 2, &[])).as_deref(),
            Some("0.00")
        );
        assert_eq!(
            numeric(&numeric_bytes(1, 0, 2, &[12, 3456, 7800])).as_deref(),
            Some("123456.78")
        );
        assert_eq!(
            numeric(&numeric_bytes(-2, 0x4000, 8, &[12])).as_deref(),
            Some("-0.00000012")
        );
        assert_eq!(
            numeric(&numeric_bytes(2, 0, 0, &[5])).as_deref(),
            Some("500000000")
        );
        assert_eq!(
            numeric(&numeric_bytes(0, 0xC000, 0, &[])).as_deref(),
            Some("NaN")
        );
        assert_eq!(numeric(&[0, 1]), None);
        assert_eq!(
            canonical(&Type::INT4, &[0, 0, 1]),
            "<malformed int4: \\x000001>"
        );
    }
}
