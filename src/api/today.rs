//! The "today" order of the queue (`sort=today`, the page's default view): whom to call first.
//!
//! Each account's priority is what is at stake times how soon it matters:
//!
//! `ARR × band × renewal × alert`
//!
//! - **ARR** as the account record gives it (1 when unknown: without ARR the order is set by the
//!   other three alone);
//! - **band**: red 1, yellow 0.4, green or none 0.1;
//! - **renewal**: 1 within 30 days, then `30 / days` (60 days: 0.5; a year: 0.08), at least 0.05;
//!   0.25 without a date or with one past;
//! - **alert**: the newest risk alert of the last 30 days, by severity (`high` 1, `medium` 0.6,
//!   `low` 0.35, else 0.2), halved for every 14 days of its age; 0.05 without one.
//!
//! Ties (equal priority) go by risk order: the lower score, then the larger ARR and seats; the
//! account id only when all of that is equal, so that pages do not shift. "Now" is the newest
//! alert's time on the board (the board's today, as `/v1/summary` reads it), so a replayed
//! history ranks as it would have on its last day.

use crate::core::{Params, Rule};
use crate::engine::board::Entry;
use crate::event::timestamp::{day_of, DAY_MS};

/// Risk alerts older than this many days do not count.
const ALERT_DAYS: i64 = 30;
/// An alert's weight halves every this many days.
const ALERT_HALF_LIFE_DAYS: f64 = 14.0;

/// The today order's weights at `now_ms`, from the rules' severities in `params`.
pub struct Today<'a> {
    params: &'a Params,
    now_ms: Option<i64>,
}

impl<'a> Today<'a> {
    pub fn new(params: &'a Params, now_ms: Option<i64>) -> Today<'a> {
        Today { params, now_ms }
    }

    /// The account's priority (higher first).
    pub fn priority(&self, e: &Entry) -> f64 {
        let arr = e.arr.filter(|a| *a > 0.0).unwrap_or(1.0);
        let band = match e.band {
            Some(crate::core::Band::Red) => 1.0,
            Some(crate::core::Band::Yellow) => 0.4,
            _ => 0.1,
        };
        arr * band * self.renewal(e) * self.alert(e)
    }

    fn renewal(&self, e: &Entry) -> f64 {
        let (Some(r), Some(now)) = (e.renewal_day, self.now_ms) else { return 0.25 };
        match r - day_of(now) {
            d if d < 0 => 0.25,
            d if d <= 30 => 1.0,
            d => (30.0 / f64::from(d)).max(0.05),
        }
    }

    fn alert(&self, e: &Entry) -> f64 {
        let Some(now) = self.now_ms else { return 0.05 };
        e.alerts
            .iter()
            .filter_map(|&(code, at)| Some((Rule::from_code(code)?, at)))
            .filter(|(rule, at)| rule.kind() == crate::core::alerts::AlertKind::Risk && now - at <= ALERT_DAYS * DAY_MS)
            .map(|(rule, at)| {
                let severity = match self.params.alerts.common(rule).severity.as_str() {
                    "high" => 1.0,
                    "medium" => 0.6,
                    "low" => 0.35,
                    _ => 0.2,
                };
                let age_days = (now - at).max(0) as f64 / DAY_MS as f64;
                severity * 0.5f64.powf(age_days / ALERT_HALF_LIFE_DAYS)
            })
            .fold(0.05, f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Band;

    fn entry(band: Band, arr: Option<f64>, renewal_day: Option<i32>, alerts: Vec<(u8, i64)>) -> Entry {
        Entry { partition: 0, score: Some(50.0), band: Some(band), segment: None, arr, seats: None, name: None, owner: None, renewal_day, alerts, ended: None, status: 0, snoozed_until: None, scored_band: None }
    }

    #[test]
    fn stake_and_how_soon_both_count() {
        let params = Params::new(&crate::config::Settings::default());
        let now = 20_400 * DAY_MS;
        let t = Today::new(&params, Some(now));
        let fresh = vec![(Rule::EnteredRed as u8, now - DAY_MS)];
        let red_soon = entry(Band::Red, Some(50_000.0), Some(20_410), fresh.clone());
        let red_later = entry(Band::Red, Some(50_000.0), Some(20_700), fresh.clone());
        let yellow_soon = entry(Band::Yellow, Some(50_000.0), Some(20_410), fresh.clone());
        let small_red_soon = entry(Band::Red, Some(5_000.0), Some(20_410), fresh.clone());
        let stale = entry(Band::Red, Some(50_000.0), Some(20_410), vec![(Rule::EnteredRed as u8, now - 40 * DAY_MS)]);
        let p = |e: &Entry| t.priority(e);
        assert!(p(&red_soon) > p(&red_later), "a renewal in 10 days before one in 300");
        assert!(p(&red_soon) > p(&yellow_soon), "red before yellow");
        assert!(p(&red_soon) > p(&small_red_soon), "more ARR at stake first");
        assert!(p(&red_soon) > p(&stale), "a fresh alert before one 40 days old");
        // A large yellow account with a stale alert and a far renewal goes after a smaller red one
        // renewing soon with a fresh alert.
        let big_quiet = entry(Band::Yellow, Some(504_000.0), Some(20_700), vec![(Rule::ScoreDrop as u8, now - 29 * DAY_MS)]);
        assert!(p(&red_soon) > p(&big_quiet), "{} vs {}", p(&red_soon), p(&big_quiet));
        // An opportunity is not a risk.
        let expansion = entry(Band::Green, Some(50_000.0), None, vec![(Rule::ExpansionCandidate as u8, now)]);
        assert_eq!(p(&expansion), 50_000.0 * 0.1 * 0.25 * 0.05);
    }
}
