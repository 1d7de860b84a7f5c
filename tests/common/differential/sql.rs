//! SQL literals of the dataset's values: the INSERTs and the generated
//! queries write values with these, so both sides read exactly the same text.

use super::calendar::{format_date, format_timestamptz};

/// A string literal, single quotes doubled (standard_conforming_strings).
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Cents as a `numeric(_, 2)` value: `-12.05`.
pub fn format_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// A uuid in its canonical hyphenated lower-case form.
pub fn format_uuid(bytes: &[u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A nullable value rendered by `render`, or `NULL`.
fn or_null<T>(value: Option<T>, render: impl FnOnce(T) -> String) -> String {
    value.map(render).unwrap_or_else(|| "NULL".to_string())
}

/// Text literal or NULL.
pub fn text(value: Option<&str>) -> String {
    or_null(value, quote)
}

/// Integer literal or NULL.
pub fn int(value: Option<i64>) -> String {
    or_null(value, |v| v.to_string())
}

/// Two-decimal numeric literal (from cents) or NULL.
pub fn cents(value: Option<i64>) -> String {
    or_null(value, format_cents)
}

/// `DATE '…'` literal (days since 2000-01-01) or NULL.
pub fn date(value: Option<i64>) -> String {
    or_null(value, |d| format!("DATE '{}'", format_date(d)))
}

/// `TIMESTAMPTZ '…'` literal (microseconds since 2000-01-01 UTC) or NULL.
pub fn timestamptz(value: Option<i64>) -> String {
    or_null(value, |t| {
        format!("TIMESTAMPTZ '{}'", format_timestamptz(t))
    })
}

/// uuid string literal.
pub fn uuid(value: &[u8; 16]) -> String {
    quote(&format_uuid(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals() {
        assert_eq!(quote("x'y"), "'x''y'");
        assert_eq!(format_cents(-5), "-0.05");
        assert_eq!(format_cents(123_456), "1234.56");
        assert_eq!(format_cents(0), "0.00");
        assert_eq!(text(None), "NULL");
        assert_eq!(
            format_uuid(&[0xab; 16]),
            "abababab-abab-abab-abab-abababababab"
        );
    }
}
