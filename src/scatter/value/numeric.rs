//! An exact decimal with Postgres `numeric` semantics, just enough to merge
//! shards' aggregates: parse and print the text and binary formats, compare,
//! add, and divide by a row count the way `numeric_div` does for AVG.
//!
//! Values are kept as Postgres keeps them: base-10000 digits aligned on the
//! decimal point, a weight (power of 10000 of the first digit) and a display
//! scale (`dscale`, digits shown after the point). Keeping the same layout
//! makes the binary format a direct copy and makes AVG's result scale (which
//! Postgres derives from the base-10000 digits) come out identical.

use std::cmp::Ordering;

/// Digits per base-10000 digit.
const DEC_DIGITS: i32 = 4;
/// The base of one stored digit.
const NBASE: u32 = 10_000;
/// Postgres' `NUMERIC_MIN_SIG_DIGITS`: a quotient has at least this many
/// significant decimal digits.
const MIN_SIG_DIGITS: i32 = 16;
/// Postgres' `NUMERIC_MAX_DISPLAY_SCALE`.
const MAX_DISPLAY_SCALE: i32 = 1000;
/// Largest display scale the binary format can carry (`NUMERIC_DSCALE_MAX`).
const MAX_DSCALE: u32 = 0x3FFF;

/// Sign words of the binary format.
const SIGN_POS: u16 = 0x0000;
const SIGN_NEG: u16 = 0x4000;
const SIGN_NAN: u16 = 0xC000;
const SIGN_PINF: u16 = 0xD000;
const SIGN_NINF: u16 = 0xF000;
/// The display scale `numeric_send` reports for the infinities: Postgres
/// reads it from header bits that, for these special values, hold 32.
const INFINITY_SENT_DSCALE: u32 = 32;

/// What kind of number a [`Numeric`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Zero or a positive finite number.
    Positive,
    /// A negative finite number.
    Negative,
    /// Not-a-number: equal to itself and greater than everything else.
    NaN,
    /// `Infinity`.
    PosInf,
    /// `-Infinity`.
    NegInf,
}

/// An exact Postgres `numeric` value.
///
/// Invariant: `digits` has no leading or trailing zero digits; zero has no
/// digits, weight 0 and kind `Positive`; special values have no digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numeric {
    kind: Kind,
    /// Power of 10000 of `digits[0]`.
    weight: i32,
    /// Digits shown after the decimal point.
    dscale: u32,
    /// Base-10000 digits, most significant first.
    digits: Vec<u16>,
}

impl Numeric {
    /// The value of an integer (display scale 0).
    pub fn from_i64(value: i64) -> Numeric {
        let mut magnitude = value.unsigned_abs();
        let mut digits = Vec::new();
        while magnitude > 0 {
            digits.push((magnitude % u64::from(NBASE)) as u16);
            magnitude /= u64::from(NBASE);
        }
        digits.reverse();
        let weight = digits.len() as i32 - 1;
        let kind = if value < 0 {
            Kind::Negative
        } else {
            Kind::Positive
        };
        Numeric::finite(kind, weight, 0, digits)
    }

    /// Parses numeric text: what `numeric_out` prints (`-12.50`, `NaN`,
    /// `Infinity`, `-Infinity`) and also SQL literals with an exponent
    /// (`1.5e3`). Returns `None` for anything else.
    pub fn parse_text(text: &[u8]) -> Option<Numeric> {
        let text = text.trim_ascii();
        let (negative, body) = match text.split_first() {
            Some((b'-', rest)) => (true, rest),
            Some((b'+', rest)) => (false, rest),
            _ => (false, text),
        };
        if body.eq_ignore_ascii_case(b"nan") {
            return (body.len() == text.len()).then(|| Numeric::special(Kind::NaN));
        }
        if body.eq_ignore_ascii_case(b"infinity") || body.eq_ignore_ascii_case(b"inf") {
            let kind = if negative { Kind::NegInf } else { Kind::PosInf };
            return Some(Numeric::special(kind));
        }
        let (mantissa, exponent) = match body.iter().position(|b| b.eq_ignore_ascii_case(&b'e')) {
            Some(at) => (&body[..at], parse_exponent(&body[at + 1..])?),
            None => (body, 0),
        };
        let (int_part, frac_part) = match mantissa.iter().position(|&b| b == b'.') {
            Some(at) => (&mantissa[..at], &mantissa[at + 1..]),
            None => (mantissa, &b""[..]),
        };
        let all_digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
        if int_part.len() + frac_part.len() == 0 || !all_digits(int_part) || !all_digits(frac_part)
        {
            return None;
        }
        let decimal: Vec<u8> = int_part.iter().chain(frac_part).map(|b| b - b'0').collect();
        let int_len = i64::try_from(int_part.len()).ok()? + exponent;
        let dscale = (i64::try_from(frac_part.len()).ok()? - exponent).max(0);
        let dscale = u32::try_from(dscale).ok().filter(|&s| s <= MAX_DSCALE)?;
        let int_len = i32::try_from(int_len).ok()?;
        let kind = if negative {
            Kind::Negative
        } else {
            Kind::Positive
        };
        Some(Numeric::from_decimal_digits(
            kind, &decimal, int_len, dscale,
        ))
    }

    /// Decodes the binary format (`numeric_send`): ndigits, weight, sign,
    /// dscale (16 bits each), then the digits. Returns `None` when malformed.
    pub fn from_binary(bytes: &[u8]) -> Option<Numeric> {
        let word = |i: usize| -> Option<u16> {
            let at = i * 2;
            Some(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
        };
        let ndigits = usize::from(word(0)?);
        let weight = i32::from(word(1)? as i16);
        let sign = word(2)?;
        let dscale = u32::from(word(3)?);
        if bytes.len() != 8 + 2 * ndigits || dscale > MAX_DSCALE {
            return None;
        }
        let kind = match sign {
            SIGN_POS => Kind::Positive,
            SIGN_NEG => Kind::Negative,
            SIGN_NAN => return Some(Numeric::special(Kind::NaN)),
            SIGN_PINF => return Some(Numeric::special(Kind::PosInf)),
            SIGN_NINF => return Some(Numeric::special(Kind::NegInf)),
            _ => return None,
        };
        let digits = (4..4 + ndigits)
            .map(|i| word(i).filter(|&d| u32::from(d) < NBASE))
            .collect::<Option<Vec<u16>>>()?;
        Some(Numeric::finite(kind, weight, dscale, digits))
    }

    /// Appends the text `numeric_out` prints: the integer part, then exactly
    /// `dscale` digits after the point.
    pub fn write_text(&self, out: &mut Vec<u8>) {
        match self.kind {
            Kind::NaN => return out.extend_from_slice(b"NaN"),
            Kind::PosInf => return out.extend_from_slice(b"Infinity"),
            Kind::NegInf => return out.extend_from_slice(b"-Infinity"),
            Kind::Negative => out.push(b'-'),
            Kind::Positive => {}
        }
        if self.weight < 0 {
            out.push(b'0');
        } else {
            for position in (0..=self.weight).rev() {
                let digit = self.digit_at(position);
                if position == self.weight {
                    out.extend_from_slice(digit.to_string().as_bytes());
                } else {
                    out.extend_from_slice(format!("{digit:04}").as_bytes());
                }
            }
        }
        if self.dscale == 0 {
            return;
        }
        out.push(b'.');
        let mut written = 0;
        let mut position = -1;
        while written < self.dscale {
            let group = format!("{:04}", self.digit_at(position));
            let take = (self.dscale - written).min(4) as usize;
            out.extend_from_slice(&group.as_bytes()[..take]);
            written += take as u32;
            position -= 1;
        }
    }

    /// Appends the binary format, as `numeric_send` sends a stored value.
    /// Fails when the weight does not fit the format (a sum far beyond any
    /// real data).
    pub fn write_binary(&self, out: &mut Vec<u8>) -> Result<(), NumericOverflow> {
        let (sign, weight, dscale) = match self.kind {
            Kind::Positive => (SIGN_POS, self.weight, self.dscale),
            Kind::Negative => (SIGN_NEG, self.weight, self.dscale),
            Kind::NaN => (SIGN_NAN, 0, 0),
            Kind::PosInf => (SIGN_PINF, 0, INFINITY_SENT_DSCALE),
            Kind::NegInf => (SIGN_NINF, 0, INFINITY_SENT_DSCALE),
        };
        let weight = i16::try_from(weight).map_err(|_| NumericOverflow)?;
        let ndigits = u16::try_from(self.digits.len()).map_err(|_| NumericOverflow)?;
        out.extend_from_slice(&ndigits.to_be_bytes());
        out.extend_from_slice(&weight.to_be_bytes());
        out.extend_from_slice(&sign.to_be_bytes());
        out.extend_from_slice(&(dscale as u16).to_be_bytes());
        for digit in &self.digits {
            out.extend_from_slice(&digit.to_be_bytes());
        }
        Ok(())
    }

    /// Appends bytes that are equal for numerically equal values (1.0 and
    /// 1.00 alike) and different otherwise: grouping and DISTINCT keys.
    pub fn write_key(&self, out: &mut Vec<u8>) {
        out.push(self.kind as u8);
        out.extend_from_slice(&self.weight.to_be_bytes());
        out.extend_from_slice(&(self.digits.len() as u32).to_be_bytes());
        for digit in &self.digits {
            out.extend_from_slice(&digit.to_be_bytes());
        }
    }

    /// Postgres' numeric ordering: `-Infinity` < finite values < `Infinity`
    /// < `NaN`, and `NaN` equals itself.
    pub fn compare(&self, other: &Numeric) -> Ordering {
        self.rank()
            .cmp(&other.rank())
            .then_with(|| match self.kind {
                Kind::Positive => compare_magnitudes(self, other),
                Kind::Negative => compare_magnitudes(other, self),
                _ => Ordering::Equal,
            })
    }

    /// The exact sum, with the larger display scale of the two (as
    /// `numeric_add`); `Infinity + -Infinity` and anything with `NaN` give
    /// `NaN`.
    pub fn add(&self, other: &Numeric) -> Numeric {
        match (self.kind, other.kind) {
            (Kind::NaN, _) | (_, Kind::NaN) => return Numeric::special(Kind::NaN),
            (Kind::PosInf, Kind::NegInf) | (Kind::NegInf, Kind::PosInf) => {
                return Numeric::special(Kind::NaN);
            }
            (Kind::PosInf | Kind::NegInf, _) => return self.clone(),
            (_, Kind::PosInf | Kind::NegInf) => return other.clone(),
            _ => {}
        }
        let dscale = self.dscale.max(other.dscale);
        if self.kind == other.kind {
            let (weight, digits) = add_magnitudes(self, other);
            return Numeric::finite(self.kind, weight, dscale, digits);
        }
        match compare_magnitudes(self, other) {
            Ordering::Equal => Numeric::finite(Kind::Positive, 0, dscale, Vec::new()),
            Ordering::Greater => {
                let (weight, digits) = subtract_magnitudes(self, other);
                Numeric::finite(self.kind, weight, dscale, digits)
            }
            Ordering::Less => {
                let (weight, digits) = subtract_magnitudes(other, self);
                Numeric::finite(other.kind, weight, dscale, digits)
            }
        }
    }

    /// `self / count` as `numeric_div` computes it for AVG: exact, rounded
    /// half away from zero at the scale `select_div_scale` picks (at least
    /// 16 significant digits, and no less than the dividend's display
    /// scale). `count` must be positive.
    pub fn div_by_count(&self, count: i64) -> Numeric {
        match self.kind {
            Kind::NaN | Kind::PosInf | Kind::NegInf => return self.clone(),
            Kind::Positive | Kind::Negative => {}
        }
        let divisor = Numeric::from_i64(count);
        let rscale = select_div_scale(self, &divisor);
        let divisor = count.unsigned_abs();
        // Positions (powers of 10000) of the quotient digits to compute: down
        // to the one holding the decimal digit just below `rscale`, which
        // decides the rounding.
        let lowest = -((rscale + 1 + DEC_DIGITS - 1) / DEC_DIGITS);
        let highest = self.weight.max(lowest);
        let mut quotient: Vec<u32> = Vec::with_capacity((highest - lowest + 1) as usize);
        let mut remainder: u128 = 0;
        for position in (lowest..=highest).rev() {
            let current = remainder * u128::from(NBASE) + u128::from(self.digit_at(position));
            quotient.push((current / u128::from(divisor)) as u32);
            remainder = current % u128::from(divisor);
        }
        // Decimal digit 10^-(rscale+1) sits at 10^k inside the lowest digit.
        let k = -(rscale + 1) - DEC_DIGITS * lowest;
        let unit = 10u32.pow(k as u32 + 1);
        let last = quotient.len() - 1;
        let round_up = (quotient[last] / 10u32.pow(k as u32)) % 10 >= 5;
        quotient[last] -= quotient[last] % unit;
        if round_up {
            quotient[last] += unit;
            propagate_carries(&mut quotient);
        }
        let (weight, digits) = if quotient[0] >= NBASE {
            // The carry ran past the top digit.
            let mut digits = vec![(quotient[0] / NBASE) as u16, (quotient[0] % NBASE) as u16];
            digits.extend(quotient[1..].iter().map(|&d| d as u16));
            (highest + 1, digits)
        } else {
            (highest, quotient.iter().map(|&d| d as u16).collect())
        };
        Numeric::finite(self.kind, weight, rscale as u32, digits)
    }

    /// A special value (NaN or an infinity).
    fn special(kind: Kind) -> Numeric {
        Numeric {
            kind,
            weight: 0,
            dscale: 0,
            digits: Vec::new(),
        }
    }

    /// A finite value, normalized (leading and trailing zero digits
    /// stripped, zero made positive).
    fn finite(kind: Kind, weight: i32, dscale: u32, mut digits: Vec<u16>) -> Numeric {
        let leading = digits.iter().take_while(|&&d| d == 0).count();
        digits.drain(..leading);
        while digits.last() == Some(&0) {
            digits.pop();
        }
        if digits.is_empty() {
            return Numeric {
                kind: Kind::Positive,
                weight: 0,
                dscale,
                digits,
            };
        }
        Numeric {
            kind,
            weight: weight - leading as i32,
            dscale,
            digits,
        }
    }

    /// Builds a value from decimal digits with `int_len` of them before the
    /// point (negative: zeros between the point and the first digit).
    fn from_decimal_digits(kind: Kind, decimal: &[u8], int_len: i32, dscale: u32) -> Numeric {
        // Pad on the left so the point falls on a base-10000 boundary.
        let pad = (DEC_DIGITS - int_len.rem_euclid(DEC_DIGITS)) % DEC_DIGITS;
        let weight = (int_len + pad) / DEC_DIGITS - 1;
        let padded = std::iter::repeat_n(0u8, pad as usize).chain(decimal.iter().copied());
        let mut digits = Vec::with_capacity(decimal.len() / 4 + 2);
        let mut group = 0u16;
        let mut in_group = 0;
        for d in padded {
            group = group * 10 + u16::from(d);
            in_group += 1;
            if in_group == DEC_DIGITS {
                digits.push(group);
                group = 0;
                in_group = 0;
            }
        }
        if in_group > 0 {
            digits.push(group * 10u16.pow((DEC_DIGITS - in_group) as u32));
        }
        Numeric::finite(kind, weight, dscale, digits)
    }

    /// The digit at power-of-10000 `position` (0 outside the stored ones).
    fn digit_at(&self, position: i32) -> u16 {
        let index = i64::from(self.weight) - i64::from(position);
        usize::try_from(index)
            .ok()
            .and_then(|i| self.digits.get(i))
            .copied()
            .unwrap_or(0)
    }

    /// Position in Postgres' total order of kinds (zero counts as
    /// positive); values of one finite kind are then compared by magnitude.
    fn rank(&self) -> u8 {
        match self.kind {
            Kind::NegInf => 0,
            Kind::Negative => 1,
            Kind::Positive => 2,
            Kind::PosInf => 3,
            Kind::NaN => 4,
        }
    }

    /// The position and value of the first nonzero digit (0, 0 for zero):
    /// what `select_div_scale` looks at.
    fn leading_digit(&self) -> (i32, u16) {
        self.digits.first().map_or((0, 0), |&d| (self.weight, d))
    }
}

/// A sum too large for the numeric binary format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumericOverflow;

/// Postgres' choice of result scale for a division: enough for 16
/// significant digits, at least either input's display scale.
fn select_div_scale(dividend: &Numeric, divisor: &Numeric) -> i32 {
    let (weight1, first1) = dividend.leading_digit();
    let (weight2, first2) = divisor.leading_digit();
    let mut quotient_weight = weight1 - weight2;
    if first1 <= first2 {
        quotient_weight -= 1;
    }
    (MIN_SIG_DIGITS - quotient_weight * DEC_DIGITS)
        .max(dividend.dscale as i32)
        .max(divisor.dscale as i32)
        .clamp(0, MAX_DISPLAY_SCALE)
}

/// Parses the exponent after `e` in a numeric literal.
fn parse_exponent(text: &[u8]) -> Option<i64> {
    let value: i64 = std::str::from_utf8(text).ok()?.parse().ok()?;
    // Postgres refuses exponents beyond this range too.
    (value.abs() <= 1000).then_some(value)
}

/// Compares |a| and |b| (both finite).
fn compare_magnitudes(a: &Numeric, b: &Numeric) -> Ordering {
    match (a.digits.is_empty(), b.digits.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Less,
        (false, true) => return Ordering::Greater,
        (false, false) => {}
    }
    // Normalized: no trailing zero digits, so a longer common prefix wins.
    a.weight
        .cmp(&b.weight)
        .then_with(|| a.digits.cmp(&b.digits))
}

/// The positions spanned by two finite values: (highest, lowest).
fn span(a: &Numeric, b: &Numeric) -> (i32, i32) {
    let low = |n: &Numeric| n.weight - n.digits.len() as i32 + 1;
    (a.weight.max(b.weight), low(a).min(low(b)))
}

/// |a| + |b| as (weight, digits), not yet normalized.
fn add_magnitudes(a: &Numeric, b: &Numeric) -> (i32, Vec<u16>) {
    let (high, low) = span(a, b);
    let mut digits = Vec::with_capacity((high - low + 2) as usize);
    let mut carry = 0u32;
    for position in low..=high {
        let sum = u32::from(a.digit_at(position)) + u32::from(b.digit_at(position)) + carry;
        digits.push((sum % NBASE) as u16);
        carry = sum / NBASE;
    }
    digits.push(carry as u16);
    digits.reverse();
    (high + 1, digits)
}

/// |a| - |b| for |a| >= |b|, as (weight, digits), not yet normalized.
fn subtract_magnitudes(a: &Numeric, b: &Numeric) -> (i32, Vec<u16>) {
    let (high, low) = span(a, b);
    let mut digits = Vec::with_capacity((high - low + 1) as usize);
    let mut borrow = 0i32;
    for position in low..=high {
        let mut diff = i32::from(a.digit_at(position)) - i32::from(b.digit_at(position)) - borrow;
        borrow = i32::from(diff < 0);
        if diff < 0 {
            diff += NBASE as i32;
        }
        digits.push(diff as u16);
    }
    digits.reverse();
    (high, digits)
}

/// Carries digits of `NBASE` or more into the next higher digit (the first
/// digit may be left at `NBASE` or more for the caller to split).
fn propagate_carries(digits: &mut [u32]) {
    for i in (1..digits.len()).rev() {
        if digits[i] >= NBASE {
            digits[i] -= NBASE;
            digits[i - 1] += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(text: &str) -> Numeric {
        Numeric::parse_text(text.as_bytes()).expect(text)
    }

    fn text(n: &Numeric) -> String {
        let mut out = Vec::new();
        n.write_text(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_round_trips() {
        for s in [
            "0",
            "0.00",
            "1",
            "-1",
            "12345678",
            "-0.0001",
            "123.4500",
            "10000",
            "99999999.99999999",
            "0.000000001",
            "NaN",
            "Infinity",
            "-Infinity",
        ] {
            assert_eq!(text(&num(s)), s);
        }
        assert_eq!(text(&num("1.5e3")), "1500");
        assert_eq!(text(&num("1.5e-3")), "0.0015");
        assert_eq!(text(&num("-0.00")), "0.00");
        assert_eq!(text(&num("007")), "7");
        for bad in ["", "-", "1.2.3", "abc", "1e", "--1", "."] {
            assert_eq!(Numeric::parse_text(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn binary_round_trips_and_matches_postgres_layout() {
        // 12345.678 is stored as digits [1, 2345, 6780], weight 1, dscale 3.
        let n = num("12345.678");
        let mut bin = Vec::new();
        n.write_binary(&mut bin).unwrap();
        assert_eq!(
            bin,
            [0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1A, 0x7C].to_vec()
        );
        assert_eq!(Numeric::from_binary(&bin), Some(n));
        let mut zero = Vec::new();
        num("0.000").write_binary(&mut zero).unwrap();
        assert_eq!(zero, [0, 0, 0, 0, 0, 0, 0, 3].to_vec());
        assert_eq!(Numeric::from_binary(&[0, 1, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(
            Numeric::from_binary(&[0, 1, 0, 0, 0, 0, 0, 0, 0x27, 0x10]),
            None,
            "digit 10000"
        );
    }

    #[test]
    fn ordering_and_keys() {
        let ordered = [
            "-Infinity",
            "-100",
            "-1.5",
            "0",
            "0.0001",
            "1",
            "1.00001",
            "10000",
            "Infinity",
            "NaN",
        ];
        for (i, a) in ordered.iter().enumerate() {
            for (j, b) in ordered.iter().enumerate() {
                assert_eq!(num(a).compare(&num(b)), i.cmp(&j), "{a} vs {b}");
            }
        }
        let key = |s: &str| {
            let mut k = Vec::new();
            num(s).write_key(&mut k);
            k
        };
        assert_eq!(key("1.0"), key("1.00"));
        assert_eq!(key("0"), key("-0.000"));
        assert_ne!(key("1"), key("10000"));
        assert_eq!(key("NaN"), key("NaN"));
    }

    #[test]
    fn addition_is_exact() {
        let sum = |a: &str, b: &str| text(&num(a).add(&num(b)));
        assert_eq!(sum("9999.9999", "0.0001"), "10000.0000");
        assert_eq!(sum("1.5", "-1.50"), "0.00");
        assert_eq!(sum("-5", "3.25"), "-1.75");
        assert_eq!(sum("3.25", "-5"), "-1.75");
        assert_eq!(sum("100000000", "-0.00000001"), "99999999.99999999");
        assert_eq!(sum("Infinity", "-Infinity"), "NaN");
        assert_eq!(sum("Infinity", "5"), "Infinity");
        assert_eq!(sum("NaN", "5"), "NaN");
    }

    #[test]
    fn division_matches_numeric_div() {
        // Expected values from PostgreSQL 15: SELECT a::numeric / b::numeric.
        let div = |a: &str, b: i64| text(&num(a).div_by_count(b));
        assert_eq!(div("3", 2), "1.5000000000000000");
        assert_eq!(div("1", 3), "0.33333333333333333333");
        assert_eq!(div("2", 3), "0.66666666666666666667");
        assert_eq!(div("-2", 3), "-0.66666666666666666667");
        assert_eq!(div("10", 1), "10.0000000000000000");
        assert_eq!(div("0", 5), "0.00000000000000000000");
        assert_eq!(div("1.50", 7), "0.21428571428571428571");
        assert_eq!(div("99999", 1), "99999.000000000000");
        assert_eq!(div("NaN", 2), "NaN");
    }
}
