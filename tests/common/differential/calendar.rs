//! Dates and timestamps as Postgres stores them (days and microseconds since
//! 2000-01-01 UTC), rendered the way Postgres prints them in ISO DateStyle:
//! the dataset writes its literals with these, and the binary decoder turns
//! `date` / `timestamptz` values into the same text.

/// Days from 1970-01-01 to 2000-01-01 (the Postgres epoch).
const PG_EPOCH_UNIX_DAYS: i64 = 10_957;
/// Microseconds in a day.
const DAY_MICROS: i64 = 86_400_000_000;

/// Year, month, day of a day number counted from 2000-01-01 (proleptic
/// Gregorian calendar, the civil-from-days algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + PG_EPOCH_UNIX_DAYS + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DD` of a day number (years 1..=9999, all this suite uses;
/// others get an explicit marker rather than a wrong-looking date).
pub fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    if (1..=9999).contains(&y) {
        format!("{y:04}-{m:02}-{d:02}")
    } else {
        format!("date#{days}")
    }
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]+00` of microseconds since the epoch, UTC,
/// fraction without trailing zeros (Postgres' timestamptz output with
/// `TimeZone = UTC`).
pub fn format_timestamptz(micros: i64) -> String {
    let days = micros.div_euclid(DAY_MICROS);
    let in_day = micros.rem_euclid(DAY_MICROS);
    let seconds = in_day / 1_000_000;
    let fraction = in_day % 1_000_000;
    let mut out = format!(
        "{} {:02}:{:02}:{:02}",
        format_date(days),
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    );
    if fraction != 0 {
        let digits = format!("{fraction:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out.push_str("+00");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates_and_timestamps() {
        assert_eq!(format_date(0), "2000-01-01");
        assert_eq!(format_date(-1), "1999-12-31");
        assert_eq!(format_date(59), "2000-02-29");
        assert_eq!(format_date(366), "2001-01-01");
        assert_eq!(format_date(8_460), "2023-03-01");
        assert_eq!(format_timestamptz(0), "2000-01-01 00:00:00+00");
        assert_eq!(format_timestamptz(-1), "1999-12-31 23:59:59.999999+00");
        assert_eq!(
            format_timestamptz(DAY_MICROS + 3_723_450_000),
            "2000-01-02 01:02:03.45+00"
        );
    }
}
