//! Event time: RFC 3339 strings or epoch milliseconds in, epoch milliseconds out; days since epoch.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub const DAY_MS: i64 = 86_400_000;

/// The UTC day (days since 1970-01-01) holding `ms`.
pub fn day_of(ms: i64) -> i32 {
    ms.div_euclid(DAY_MS) as i32
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
        assert_eq!(parse_date_day("2026-11-20"), Some(20777));
        assert_eq!(format_day(20777), "2026-11-20");
        assert_eq!(parse_date_day("2026-13-01"), None);
    }
}
