//! `float4`/`float8` text as Postgres (12 and later, `extra_float_digits`
//! 1, the default) reads and prints it: the shortest digits that read back
//! to the same value, in fixed notation for decimal exponents from -4 up to
//! (excluding) 15 for float8 and 6 for float4, otherwise `d.ddde+XX`.

use std::fmt::Write;

/// First decimal exponent printed in exponent notation by `float8out`.
const FLOAT8_EXPONENT_FROM: i32 = 15;
/// First decimal exponent printed in exponent notation by `float4out`.
const FLOAT4_EXPONENT_FROM: i32 = 6;
/// Smallest decimal exponent printed in fixed notation.
const FIXED_EXPONENT_MIN: i32 = -4;

/// Parses float text (`1.5`, `-1e+20`, `NaN`, `Infinity`, `-Infinity`).
pub fn parse(text: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(text).ok()?.trim();
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok().filter(|v: &f64| v.is_finite()),
    }
}

/// Appends a float8 as `float8out` prints it.
pub fn write_float8(value: f64, out: &mut Vec<u8>) {
    write_special_or(value, out, || {
        postgres_notation(&format!("{value:e}"), FLOAT8_EXPONENT_FROM)
    });
}

/// Appends a float4 as `float4out` prints it.
pub fn write_float4(value: f32, out: &mut Vec<u8>) {
    write_special_or(f64::from(value), out, || {
        postgres_notation(&format!("{value:e}"), FLOAT4_EXPONENT_FROM)
    });
}

/// Writes NaN, the infinities and zeros, or else what `finite` formats.
fn write_special_or(value: f64, out: &mut Vec<u8>, finite: impl FnOnce() -> String) {
    let text = if value.is_nan() {
        "NaN".to_string()
    } else if value.is_infinite() {
        if value > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
    } else if value == 0.0 {
        if value.is_sign_negative() { "-0" } else { "0" }.to_string()
    } else {
        finite()
    };
    out.extend_from_slice(text.as_bytes());
}

/// Turns Rust's shortest round-trip scientific form (`-1.2345e-7`) into
/// Postgres' notation.
fn postgres_notation(scientific: &str, exponent_from: i32) -> String {
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let mut out = sign.to_string();
    if (FIXED_EXPONENT_MIN..exponent_from).contains(&exponent) {
        if exponent < 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exponent - 1) as usize));
            out.push_str(&digits);
        } else {
            let int_len = exponent as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', int_len - digits.len()));
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        let _ = write!(out, "e{exponent_sign}{:02}", exponent.unsigned_abs());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float8(v: f64) -> String {
        let mut out = Vec::new();
        write_float8(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn float4(v: f32) -> String {
        let mut out = Vec::new();
        write_float4(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn float8_text_matches_postgres() {
        // Outputs of PostgreSQL 15 for the same values.
        let cases: &[(f64, &str)] = &[
            (1e14, "100000000000000"),
            (1e15, "1e+15"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.000123, "0.000123"),
            (1.5e-5, "1.5e-05"),
            (1e100, "1e+100"),
            (1e-100, "1e-100"),
            (0.1, "0.1"),
            (999999999999999.0, "999999999999999"),
            (9999999999999998.0, "9.999999999999998e+15"),
            (-2.5, "-2.5"),
            (-0.0, "-0"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for &(value, expected) in cases {
            assert_eq!(float8(value), expected);
            if value.is_nan() {
                assert!(parse(expected.as_bytes()).unwrap().is_nan());
            } else {
                assert_eq!(parse(expected.as_bytes()), Some(value));
            }
        }
    }

    #[test]
    fn float4_text_matches_postgres() {
        let cases: &[(f32, &str)] = &[
            (1234567.0, "1.234567e+06"),
            (123456.0, "123456"),
            (1e6, "1e+06"),
            (0.1, "0.1"),
            (1e-30, "1e-30"),
            (9999999.0, "9.999999e+06"),
            (12345.5, "12345.5"),
            (f32::INFINITY, "Infinity"),
        ];
        for &(value, expected) in cases {
            assert_eq!(float4(value), expected);
        }
        assert_eq!(parse(b"nonsense"), None);
        assert_eq!(parse(b"inf"), None, "Postgres never prints this");
    }
}
