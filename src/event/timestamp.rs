//! Event time: RFC 3339 strings or epoch milliseconds in, epoch milliseconds out; days since epoch.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub const DAY_MS: i64 = 86_400_000;

/// Earliest accepted event time: 1970-01-01T00:00:00Z.
pub const MIN_TS_MS: i64 = 0;
/// Latest accepted event time: 9999-12-31T23:59:59.999Z (the last RFC 3339 instant).
pub const MAX_TS_MS: i64 = 253_402_300_799_999;
/// Days of `MIN_TS_MS` and `MAX_TS_MS`: every day kizashi keeps lies in this range.
pub const MIN_DAY: i32 = 0;
pub const MAX_DAY: i32 = 2_932_896;

/// The UTC day (days since 1970-01-01) holding `ms`. Saturates instead of wrapping, so even a
/// time outside the accepted range (which decoding rejects) can never turn into a far-off day.
pub fn day_of(ms: i64) -> i32 {
    ms.div_euclid(DAY_MS).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// Whether `ms` is an event time kizashi accepts (1970-01-01 to 9999-12-31, UTC).
pub fn ts_in_range(ms: i64) -> bool {
    (MIN_TS_MS..=MAX_TS_MS).contains(&ms)
}

/// Parses an RFC 3339 timestamp into epoch milliseconds.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    if let Some(ms) = utc_ms(s.as_bytes()) {
        return Some(ms);
    }
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The common form, `YYYY-MM-DDTHH:MM:SSZ` with an optional fraction of 1 to 9 digits, read
/// directly (most event times are this); `None` for anything else, which the `time` crate reads
/// (other offsets, a leap second, lower-case letters, more digits, and every invalid time). Where
/// it gives a time, it is the one `time` gives (a property test compares them).
fn utc_ms(b: &[u8]) -> Option<i64> {
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let digit = |i: usize| b[i].wrapping_sub(b'0');
    let num = |r: std::ops::Range<usize>| {
        let mut n = 0u32;
        for i in r {
            let d = digit(i);
            if d > 9 {
                return None;
            }
            n = n * 10 + u32::from(d);
        }
        Some(n)
    };
    let two = |i: usize| {
        let (hi, lo) = (digit(i), digit(i + 1));
        (hi <= 9 && lo <= 9).then(|| u32::from(hi) * 10 + u32::from(lo))
    };
    let (year, month, day) = (num(0..4)?, two(5)?, two(8)?);
    let (hour, minute, second) = (two(11)?, two(14)?, two(17)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut nanos = 0i64;
    match (b[19], b.len()) {
        (b'Z', 20) => {}
        (b'.', n @ 22..=30) if b[n - 1] == b'Z' => {
            let digits = num(20..n - 1)?;
            nanos = i64::from(digits) * 10i64.pow(9 - (n - 21) as u32);
        }
        _ => return None,
    }
    // Days from 1970-01-01 of a proleptic Gregorian date (the era algorithm: 400-year cycles
    // from March 1st, year 0).
    let (y, m, d) = (i64::from(year) - i64::from(month <= 2), i64::from(month), i64::from(day));
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    // As `time` does: nanoseconds since the epoch divided by a million, toward zero. Before the
    // epoch (`secs` < 0, so the whole is negative) a part of a millisecond goes up, not down.
    let part = secs < 0 && nanos % 1_000_000 != 0;
    Some(secs * 1000 + nanos / 1_000_000 + i64::from(part))
}

/// Parses `YYYY-MM-DD` (or a full RFC 3339 timestamp) into days since epoch.
pub fn parse_date_day(s: &str) -> Option<i32> {
    if s.len() == 10 {
        let d = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
        Some(d.to_julian_day() - 2_440_588)
    } else {
        parse_rfc3339_ms(s).map(day_of)
    }
}

/// Formats epoch milliseconds as RFC 3339 UTC with milliseconds, e.g. `2026-11-20T10:00:00.000Z`.
pub fn format_ms(ms: i64) -> String {
    match OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        ),
        Err(_) => ms.to_string(),
    }
}

/// Formats a day number as `YYYY-MM-DD`.
pub fn format_day(day: i32) -> String {
    format_ms(i64::from(day) * DAY_MS)[..10].to_string()
}

/// Wall-clock now in epoch milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_and_days() {
        let ms = parse_rfc3339_ms("2026-11-20T10:00:00Z").unwrap();
        assert_eq!(ms, 1_795_168_800_000);
        assert_eq!(parse_rfc3339_ms("2026-11-20T11:00:00+01:00"), Some(ms));
        assert_eq!(parse_rfc3339_ms("2026-11-20T10:00:00.250Z"), Some(ms + 250));
        assert_eq!(parse_rfc3339_ms("2026-11-20"), None);
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
        assert_eq!(format_ms(ms + 5), "2026-11-20T10:00:00.005Z");
        assert_eq!(day_of(ms), 20777);
        assert_eq!(day_of(-1), -1);
        assert_eq!(day_of(i64::MIN), i32::MIN, "saturates, never wraps");
        assert_eq!(day_of(i64::MAX), i32::MAX);
        assert_eq!(day_of(-185_542_595_827_200_000), i32::MIN);
        assert_eq!(day_of(MAX_TS_MS), MAX_DAY);
        assert_eq!(format_ms(MAX_TS_MS), "9999-12-31T23:59:59.999Z");
        assert!(ts_in_range(0) && ts_in_range(MAX_TS_MS) && !ts_in_range(-1) && !ts_in_range(MAX_TS_MS + 1));
        assert_eq!(parse_date_day("2026-11-20"), Some(20777));
        assert_eq!(format_day(20777), "2026-11-20");
        assert_eq!(parse_date_day("2026-13-01"), None);
    }

    /// A time in the common form, or one near it: each field in or just out of its range,
    /// another separator, offset or letter case, a fraction of 0 to 11 digits.
    fn near_utc() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let two = |hi: u32| prop_oneof![4 => 0..hi, 1 => hi..100];
        (
            (prop_oneof![4 => 1960u32..2100, 1 => 0u32..10_000], two(13), two(32)),
            (two(24), two(60), two(61)),
            prop::collection::vec(0u8..10, 0..12),
            prop::sample::select(vec!["Z", "Z", "Z", "z", "+00:00", "-05:30", "", "ZZ"]),
            prop::sample::select(vec!["T", "T", "T", "t", " ", "_"]),
        )
            .prop_map(|((y, mo, d), (h, mi, s), frac, end, t)| {
                let frac: String = frac.iter().map(|c| char::from(b'0' + c)).collect();
                let dot = if frac.is_empty() { String::new() } else { format!(".{frac}") };
                format!("{y:04}-{mo:02}-{d:02}{t}{h:02}:{mi:02}:{s:02}{dot}{end}")
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20_000))]
        /// The direct reading of the common form gives what `time` gives, wherever it gives one.
        #[test]
        fn the_common_form_is_read_as_time_reads_it(s in near_utc()) {
            let by_time = OffsetDateTime::parse(&s, &Rfc3339).ok().and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok());
            if let Some(ms) = utc_ms(s.as_bytes()) {
                proptest::prop_assert_eq!(Some(ms), by_time, "{}", s);
            }
            proptest::prop_assert_eq!(parse_rfc3339_ms(&s), by_time, "{}", s);
        }
    }

    #[test]
    fn the_common_form_is_read_directly() {
        for (s, ms) in [
            ("1970-01-01T00:00:00Z", 0),
            ("2026-11-20T10:00:00Z", 1_795_168_800_000),
            ("2026-11-20T10:00:00.25Z", 1_795_168_800_250),
            ("2026-11-20T10:00:00.123456789Z", 1_795_168_800_123),
            ("2024-02-29T23:59:59.999Z", 1_709_251_199_999),
            // Before the epoch, a part of a millisecond goes toward zero (as `time`'s nanoseconds do).
            ("1969-12-31T23:59:59.9995Z", 0),
            ("1969-12-31T23:59:59.998Z", -2),
            ("9999-12-31T23:59:59.999Z", MAX_TS_MS),
        ] {
            assert_eq!(utc_ms(s.as_bytes()), Some(ms), "{s}");
            let t = OffsetDateTime::parse(s, &Rfc3339).unwrap();
            assert_eq!(i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok(), Some(ms), "{s}");
        }
        // Leap years at the century rules' edges and year 0: whatever `time` makes of them.
        for s in ["0000-01-01T00:00:00Z", "0000-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2000-02-29T00:00:00Z", "2100-02-29T12:00:00.5Z"] {
            let by_time = OffsetDateTime::parse(s, &Rfc3339).ok().and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok());
            assert_eq!(utc_ms(s.as_bytes()).or(by_time), by_time, "{s}");
            assert_eq!(parse_rfc3339_ms(s), by_time, "{s}");
        }
        assert!(utc_ms(b"2000-02-29T00:00:00Z").is_some() && utc_ms(b"1900-02-29T00:00:00Z").is_none());
        for s in ["2025-02-29T00:00:00Z", "2026-11-20T10:00:60Z", "2026-11-20t10:00:00Z", "2026-11-20T10:00:00+00:00", "2026-11-20T10:00:00.Z", "2026-11-20T10:00:00.1234567890Z"] {
            assert_eq!(utc_ms(s.as_bytes()), None, "{s}");
        }
    }
}
