//! Date and time values in the forms Postgres prints them with
//! `DateStyle = ISO` and `IntervalStyle = postgres` (the defaults), turned
//! into the numbers Postgres itself compares: days or microseconds since
//! 2000-01-01 (UTC for `timestamptz`), and for intervals the 128-bit
//! microsecond span of `interval_cmp_value` (a month counts 30 days).
//! Other styles are not parsed: the caller reports them as unsupported.

/// Microseconds in a second.
const USECS_PER_SEC: i64 = 1_000_000;
/// Microseconds in a day.
const USECS_PER_DAY: i64 = 86_400 * USECS_PER_SEC;
/// Days from 1970-01-01 to 2000-01-01, Postgres' epoch.
const POSTGRES_EPOCH_DAYS: i64 = 10_957;
/// `-infinity` / `infinity` dates as `date_send` sends them.
const DATE_NEG_INFINITY: i64 = i32::MIN as i64;
const DATE_POS_INFINITY: i64 = i32::MAX as i64;

/// Parses `date` text (`2024-01-31`, `0044-03-15 BC`, `infinity`) into
/// days since 2000-01-01 (the infinities as `date_send` encodes them).
pub fn parse_date(text: &[u8]) -> Option<i64> {
    match infinity(text) {
        Some(true) => return Some(DATE_POS_INFINITY),
        Some(false) => return Some(DATE_NEG_INFINITY),
        None => {}
    }
    let (text, bc) = strip_bc(text);
    let mut cursor = Cursor(text);
    let days = cursor.date(bc)?;
    cursor.finished().then_some(days)
}

/// Parses `timestamp` text (`zoned` false: `2024-01-31 12:00:00.5`) or
/// `timestamptz` text (`zoned` true, with its `+05:30` offset) into
/// microseconds since 2000-01-01 (UTC), the infinities as `i64` extremes.
pub fn parse_timestamp(text: &[u8], zoned: bool) -> Option<i64> {
    match infinity(text) {
        Some(true) => return Some(i64::MAX),
        Some(false) => return Some(i64::MIN),
        None => {}
    }
    let (text, bc) = strip_bc(text);
    let mut cursor = Cursor(text);
    let days = cursor.date(bc)?;
    cursor.expect(b' ')?;
    let time = cursor.time_of_day()?;
    let offset = if zoned { cursor.zone_offset()? } else { 0 };
    cursor.finished().then_some(())?;
    days.checked_mul(USECS_PER_DAY)?
        .checked_add(time)?
        .checked_sub(offset)
}

/// Parses `time` text (`13:45:00.25`) into microseconds since midnight.
pub fn parse_time(text: &[u8]) -> Option<i64> {
    let mut cursor = Cursor(text);
    let time = cursor.time_of_day()?;
    cursor.finished().then_some(time)
}

/// Parses `interval` text in IntervalStyle `postgres`
/// (`1 year 2 mons -3 days +04:05:06.5`) into its comparison value.
pub fn parse_interval(text: &[u8]) -> Option<i128> {
    let text = std::str::from_utf8(text).ok()?;
    let mut months: i64 = 0;
    let mut days: i64 = 0;
    let mut time: i64 = 0;
    let mut words = text.split(' ').peekable();
    while let Some(word) = words.next() {
        if word.contains(':') {
            time = parse_signed_time(word.as_bytes())?;
            continue;
        }
        let amount: i64 = word.parse().ok()?;
        match words.next()? {
            "year" | "years" => months = months.checked_add(amount.checked_mul(12)?)?,
            "mon" | "mons" => months = months.checked_add(amount)?,
            "day" | "days" => days = days.checked_add(amount)?,
            _ => return None,
        }
    }
    Some(interval_cmp_value(time, days, months))
}

/// Decodes `interval_send`'s format (microseconds, days, months) into its
/// comparison value.
pub fn interval_from_binary(bytes: &[u8]) -> Option<i128> {
    let time = i64::from_be_bytes(bytes.get(0..8)?.try_into().ok()?);
    let days = i32::from_be_bytes(bytes.get(8..12)?.try_into().ok()?);
    let months = i32::from_be_bytes(bytes.get(12..16)?.try_into().ok()?);
    (bytes.len() == 16).then(|| interval_cmp_value(time, days.into(), months.into()))
}

/// Postgres' `interval_cmp_value`: the whole span in microseconds with a
/// month counted as 30 days, so `1 mon` equals `30 days`.
fn interval_cmp_value(time: i64, days: i64, months: i64) -> i128 {
    let total_days = i128::from(months) * 30 + i128::from(days);
    total_days * i128::from(USECS_PER_DAY) + i128::from(time)
}

/// `Some(true)` for `infinity`, `Some(false)` for `-infinity`.
fn infinity(text: &[u8]) -> Option<bool> {
    match text {
        b"infinity" => Some(true),
        b"-infinity" => Some(false),
        _ => None,
    }
}

/// Splits off the ` BC` era suffix.
fn strip_bc(text: &[u8]) -> (&[u8], bool) {
    match text.strip_suffix(b" BC") {
        Some(rest) => (rest, true),
        None => (text, false),
    }
}

/// `[+-]HH:MM:SS[.ffffff]` with hours of any size (the time part of an
/// interval) into signed microseconds.
fn parse_signed_time(text: &[u8]) -> Option<i64> {
    let (negative, text) = match text.split_first()? {
        (b'-', rest) => (true, rest),
        (b'+', rest) => (false, rest),
        _ => (false, text),
    };
    let mut cursor = Cursor(text);
    let time = cursor.clock(usize::MAX)?;
    cursor
        .finished()
        .then_some(if negative { -time } else { time })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (astronomical year
/// numbering: 1 BC is year 0).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// A forward-only reader over ASCII date/time text.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    /// Consumes one expected byte.
    fn expect(&mut self, byte: u8) -> Option<()> {
        let (&first, rest) = self.0.split_first()?;
        (first == byte).then(|| self.0 = rest)
    }

    /// Consumes 1..=`max_len` digits (at least `min_len`) as a number.
    fn number(&mut self, min_len: usize, max_len: usize) -> Option<i64> {
        let len = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
        if len < min_len || len > max_len.min(18) {
            return None;
        }
        let (digits, rest) = self.0.split_at(len);
        self.0 = rest;
        std::str::from_utf8(digits).ok()?.parse().ok()
    }

    /// `YYYY-MM-DD` (years may have more digits) as days since 2000-01-01.
    fn date(&mut self, bc: bool) -> Option<i64> {
        let year = self.number(4, 9)?;
        self.expect(b'-')?;
        let month = self.number(2, 2)?;
        self.expect(b'-')?;
        let day = self.number(2, 2)?;
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return None;
        }
        let year = if bc { 1 - year } else { year };
        Some(days_from_civil(year, month, day) - POSTGRES_EPOCH_DAYS)
    }

    /// `HH:MM:SS[.ffffff]` within a day, as microseconds.
    fn time_of_day(&mut self) -> Option<i64> {
        let time = self.clock(2)?;
        (time <= USECS_PER_DAY).then_some(time)
    }

    /// `H..:MM:SS[.ffffff]` with up to `hour_digits` hour digits, as
    /// microseconds.
    fn clock(&mut self, hour_digits: usize) -> Option<i64> {
        let hours = self.number(2, hour_digits)?;
        self.expect(b':')?;
        let minutes = self.number(2, 2)?;
        self.expect(b':')?;
        let seconds = self.number(2, 2)?;
        if minutes > 59 || seconds > 60 {
            return None;
        }
        let mut micros = 0;
        if self.expect(b'.').is_some() {
            let before = self.0.len();
            let fraction = self.number(1, 6)?;
            let len = before - self.0.len();
            micros = fraction * 10i64.pow(6 - len as u32);
        }
        hours
            .checked_mul(3600)?
            .checked_add(minutes * 60 + seconds)?
            .checked_mul(USECS_PER_SEC)?
            .checked_add(micros)
    }

    /// A zone offset `+HH[:MM[:SS]]` / `-HH...`, as microseconds east of
    /// UTC.
    fn zone_offset(&mut self) -> Option<i64> {
        let negative = match self.0.first()? {
            b'+' => false,
            b'-' => true,
            _ => return None,
        };
        self.0 = &self.0[1..];
        let mut seconds = self.number(2, 2)? * 3600;
        if self.expect(b':').is_some() {
            seconds += self.number(2, 2)? * 60;
            if self.expect(b':').is_some() {
                seconds += self.number(2, 2)?;
            }
        }
        let micros = seconds * USECS_PER_SEC;
        Some(if negative { -micros } else { micros })
    }

    /// True when everything was consumed.
    fn finished(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_count_days_from_2000() {
        assert_eq!(parse_date(b"2000-01-01"), Some(0));
        assert_eq!(parse_date(b"2000-03-01"), Some(60));
        assert_eq!(parse_date(b"1999-12-31"), Some(-1));
        // Values of `'...'::date - '2000-01-01'` in PostgreSQL 15.
        assert_eq!(parse_date(b"0001-01-01 BC"), Some(-730_485));
        assert_eq!(parse_date(b"4713-11-24 BC"), Some(-2_451_179));
        assert_eq!(parse_date(b"10000-01-01"), Some(2_921_940));
        assert_eq!(parse_date(b"infinity"), Some(i64::from(i32::MAX)));
        assert_eq!(parse_date(b"01/02/2024"), None);
        assert_eq!(parse_date(b"2024-13-01"), None);
    }

    #[test]
    fn timestamps_apply_fractions_and_offsets() {
        let base = parse_timestamp(b"2024-05-06 07:08:09", false).unwrap();
        assert_eq!(
            parse_timestamp(b"2024-05-06 07:08:09.5", false),
            Some(base + 500_000)
        );
        assert_eq!(
            parse_timestamp(b"2024-05-06 07:08:09.000001", false),
            Some(base + 1)
        );
        assert_eq!(
            parse_timestamp(b"2024-05-06 12:38:09+05:30", true),
            Some(base)
        );
        assert_eq!(parse_timestamp(b"2024-05-06 00:08:09-07", true), Some(base));
        assert_eq!(
            parse_timestamp(b"2024-05-06 07:08:09+00:00:01", true),
            Some(base - 1_000_000)
        );
        assert_eq!(parse_timestamp(b"2024-05-06 07:08:09", true), None);
        assert_eq!(parse_timestamp(b"2024-05-06 07:08:09+00", false), None);
        assert!(
            parse_timestamp(b"0044-03-15 10:00:00+00 BC", true).unwrap()
                < parse_timestamp(b"0001-01-01 00:00:00+00", true).unwrap()
        );
        assert_eq!(parse_timestamp(b"-infinity", true), Some(i64::MIN));
    }

    #[test]
    fn times_and_intervals() {
        assert_eq!(parse_time(b"00:00:01.25"), Some(1_250_000));
        assert_eq!(parse_time(b"24:00:00"), Some(USECS_PER_DAY));
        assert_eq!(parse_time(b"24:00:01"), None);
        let day = i128::from(USECS_PER_DAY);
        assert_eq!(parse_interval(b"00:00:00"), Some(0));
        assert_eq!(parse_interval(b"1 mon"), parse_interval(b"30 days"));
        assert_eq!(parse_interval(b"1 day"), parse_interval(b"24:00:00"));
        assert_eq!(
            parse_interval(b"1 year -2 mons +3 days -04:05:06.5"),
            Some((360 - 60 + 3) * day - i128::from(4 * 3600 + 5 * 60 + 6) * 1_000_000 - 500_000)
        );
        assert_eq!(
            parse_interval(b"1000000:00:00"),
            Some(1_000_000 * 3600 * 1_000_000)
        );
        assert_eq!(parse_interval(b"@ 1 day"), None);
        assert_eq!(parse_interval(b"P1D"), None);
        let mut binary = Vec::new();
        binary.extend_from_slice(&5i64.to_be_bytes());
        binary.extend_from_slice(&1i32.to_be_bytes());
        binary.extend_from_slice(&2i32.to_be_bytes());
        assert_eq!(interval_from_binary(&binary), Some(61 * day + 5));
        assert_eq!(interval_from_binary(&binary[..15]), None);
    }
}
