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
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
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
}
