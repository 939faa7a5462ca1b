//! Scorecards and bands: measures → 0–100 points each → weighted score → red/yellow/green.

use super::alerts::AlertParams;
use super::measures::{Category, Measure, MeasureParams, N_MEASURES};
use super::state::{AccountState, Band, MeasureValues, StateParams};
use crate::event::timestamp::{day_of, DAY_MS};

/// One measure of a compiled scorecard.
#[derive(Debug, Clone, PartialEq)]
pub struct CardItem {
    pub measure: Measure,
    pub weight: f64,
    pub red: f64,
    pub green: f64,
    /// At or beyond `red`, the account is red whatever its score.
    pub critical: bool,
}

impl CardItem {
    /// 0–100 by linear interpolation from `red` to `green` (either direction), clamped.
    pub fn points(&self, value: f64) -> f64 {
        (((value - self.red) / (self.green - self.red)).clamp(0.0, 1.0)) * 100.0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    /// `name@version`, carried by every score and alert.
    pub id: String,
    pub items: Vec<CardItem>,
}

/// A score and what it is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub score: f64,
    /// Points (0–100) per measure of the card that had data.
    pub points: [Option<f64>; N_MEASURES],
    /// Some measure with data is at or beyond its red value.
    pub any_red: bool,
    /// Some critical measure is at or beyond its red value.
    pub critical_red: bool,
    /// The account has no usage in its data: its usage measures without data counted 0 points.
    pub no_usage: bool,
}

impl Card {
    /// Weighted mean of the points of the measures that have data; `None` if none has. A measure
    /// without data is left out and the weights renormalised, with one exception each way for
    /// the usage measures: missing usage is never a reason to score an account on its support
    /// measures alone. If `usage_absent` (kizashi knows the account has used nothing: it watched
    /// long enough, or its start date is long enough ago), a usage measure without data counts 0
    /// points; if not, and no usage measure of the card has data, the account is not scored yet.
    pub fn score(&self, values: &MeasureValues, usage_absent: bool) -> Option<Scored> {
        let mut points = [None; N_MEASURES];
        let (mut sum, mut weights, mut any_red, mut critical_red) = (0.0, 0.0, false, false);
        let (mut usage_items, mut usage_data) = (false, false);
        for item in &self.items {
            let usage = item.measure.category() == Category::Usage;
            usage_items |= usage;
            match values[item.measure as usize] {
                Some(v) => {
                    usage_data |= usage;
                    let p = item.points(v);
                    points[item.measure as usize] = Some(p);
                    sum += p * item.weight;
                    weights += item.weight;
                    any_red |= p <= 0.0;
                    critical_red |= p <= 0.0 && item.critical;
                }
                None if usage_absent && usage => weights += item.weight,
                None => {}
            }
        }
        if usage_items && !usage_data && !usage_absent {
            return None;
        }
        let has_data = points.iter().any(Option::is_some);
        (has_data && weights > 0.0).then(|| Scored { score: sum / weights, points, any_red, critical_red, no_usage: usage_absent })
    }

    /// How far the score fell from `before` to `now`, like for like: both scored on the measures
    /// that have data at both ends (a measure that only now has data, as windows fill or seats
    /// become known, moves the score without anything having got worse). `None` if no measure
    /// has data at both ends.
    pub fn drop_like_for_like(&self, before: &MeasureValues, now: &MeasureValues) -> Option<f64> {
        let (mut b, mut n, mut w) = (0.0, 0.0, 0.0);
        for item in &self.items {
            if let (Some(x), Some(y)) = (before[item.measure as usize], now[item.measure as usize]) {
                b += item.points(x) * item.weight;
                n += item.points(y) * item.weight;
                w += item.weight;
            }
        }
        (w > 0.0).then(|| (b - n) / w)
    }

    pub fn item(&self, m: Measure) -> Option<&CardItem> {
        self.items.iter().find(|i| i.measure == m)
    }
}

/// Band thresholds with hysteresis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bands {
    pub red_below: f64,
    pub green_from: f64,
    pub hysteresis: f64,
    pub any_red_is_red: bool,
}

impl Bands {
    fn raw(&self, score: f64) -> Band {
        if score < self.red_below {
            Band::Red
        } else if score >= self.green_from {
            Band::Green
        } else {
            Band::Yellow
        }
    }

    /// The band after `previous`: a worse band is entered at its edge, a better one only once the
    /// score is `hysteresis` points past the edge, so a score wobbling on an edge does not flap.
    pub fn next(&self, previous: Option<Band>, scored: &Scored) -> Band {
        if scored.critical_red || (self.any_red_is_red && scored.any_red) {
            return Band::Red;
        }
        let raw = self.raw(scored.score);
        match previous {
            Some(prev) if raw > prev => prev.max(self.raw(scored.score - self.hysteresis)),
            _ => raw,
        }
    }
}

/// Everything the pure core needs from config, compiled once at start by the config layer
/// (`Params::new` lives in `config.rs`: the arrow runs from config to core, never back).
#[derive(Debug, Clone)]
pub struct Params {
    pub state: StateParams,
    pub measures: MeasureParams,
    pub cards: Vec<Card>,
    /// `(segment, card)`; segments match case-insensitively (ASCII).
    pub by_segment: Vec<(String, usize)>,
    pub default_card: usize,
    /// `(card, days)` for onboarding accounts.
    pub onboarding: Option<(usize, u32)>,
    pub bands: Bands,
    pub score_step: f64,
    /// Support trouble that keeps an account out of green (`None`: off).
    pub support_cap: Option<SupportCap>,
    pub tiers: Tiers,
    pub alerts: AlertParams,
    pub grace_ms: i64,
}

/// How closely CS looks after an account (`scoring.tiers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    High,
    Low,
    Tech,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::High, Tier::Low, Tier::Tech];

    pub fn name(self) -> &'static str {
        match self {
            Tier::High => "high",
            Tier::Low => "low",
            Tier::Tech => "tech",
        }
    }
}

/// Severities, lowest first (what `alerts.*.severity` may be).
pub const SEVERITY_ORDER: [&str; 4] = ["info", "low", "medium", "high"];

/// The tier rules of `scoring.tiers`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tiers {
    pub high_arr_from: f64,
    pub tech_arr_below: f64,
    pub high_segments: Vec<String>,
    pub tech_segments: Vec<String>,
    /// The highest severity of a tech-touch account's alerts, if capped.
    pub tech_max_severity: Option<String>,
    /// The least severity of a high-touch account's alerts but `info` ones (`scoring.tiers.high_min_severity`).
    pub high_min_severity: Option<String>,
}

impl Tiers {
    /// The tier of an account of `segment` and `arr`: a listed segment first, then ARR; `low`
    /// without either.
    pub fn of(&self, segment: Option<&str>, arr: Option<f64>) -> Tier {
        let listed = |list: &[String]| segment.is_some_and(|s| list.iter().any(|x| x.eq_ignore_ascii_case(s)));
        if listed(&self.high_segments) {
            Tier::High
        } else if listed(&self.tech_segments) {
            Tier::Tech
        } else {
            match arr {
                Some(a) if a >= self.high_arr_from => Tier::High,
                Some(a) if a < self.tech_arr_below => Tier::Tech,
                _ => Tier::Low,
            }
        }
    }

    /// The severity an alert of a `tier` account carries when its rule says `severity`.
    pub fn severity(&self, tier: Tier, severity: &str) -> String {
        let rank = |s: &str| SEVERITY_ORDER.iter().position(|x| *x == s);
        match (tier, &self.tech_max_severity, &self.high_min_severity) {
            (Tier::Tech, Some(cap), _) if rank(severity) > rank(cap) => cap.clone(),
            (Tier::High, _, Some(floor)) if severity != "info" && rank(severity) < rank(floor) => floor.clone(),
            _ => severity.to_string(),
        }
    }
}

/// Support trouble that caps an account's band at yellow whatever its score: at least
/// `urgent_open` urgent tickets open with the oldest open `urgent_after_ms` or longer, or CSAT
/// over 90 days at or below `csat_at_most` from at least `csat_answers` answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SupportCap {
    pub urgent_open: u32,
    pub urgent_after_ms: i64,
    pub csat_at_most: f64,
    pub csat_answers: u32,
}

/// Why an account is held out of green.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SupportTrouble {
    /// Urgent tickets open and the oldest one's age in days, when that holds the cap.
    pub urgent: Option<(usize, i64)>,
    /// CSAT over 90 days and its answers, when that holds the cap.
    pub csat: Option<(f64, u64)>,
}

impl SupportTrouble {
    /// "3 urgent tickets open, the oldest for 21 days; CSAT 1.8 from 4 answers".
    pub fn words(&self) -> String {
        let urgent = self.urgent.map(|(n, days)| {
            let t = if n == 1 { "ticket" } else { "tickets" };
            format!("{n} urgent {t} open, the oldest for {days} days")
        });
        let csat = self.csat.map(|(c, n)| format!("CSAT {c:.1} from {n} answers"));
        [urgent, csat].into_iter().flatten().collect::<Vec<_>>().join("; ")
    }
}

impl SupportCap {
    /// What of the cap holds for `state` at `now_ms`, if anything.
    pub fn trouble(&self, state: &AccountState, now_ms: i64) -> Option<SupportTrouble> {
        let now = day_of(now_ms);
        let open = state.tickets.open_urgent_count();
        let urgent = state
            .tickets
            .oldest_urgent_ms()
            .filter(|&t| open >= self.urgent_open as usize && self.urgent_open > 0 && now_ms.saturating_sub(t) >= self.urgent_after_ms)
            .map(|t| (open, now_ms.saturating_sub(t) / DAY_MS));
        let answers = state.csat_count.sum(now - 89, now);
        let csat = (answers >= u64::from(self.csat_answers.max(1)))
            .then(|| state.csat_sum.sum(now - 89, now) as f64 / answers as f64)
            .filter(|&c| c <= self.csat_at_most)
            .map(|c| (c, answers));
        (urgent.is_some() || csat.is_some()).then_some(SupportTrouble { urgent, csat })
    }
}

impl Params {
    /// Day the account's onboarding scorecard ends, while it is onboarding at `now_day`.
    pub fn onboarding_ends(&self, state: &AccountState, now_day: i32) -> Option<i32> {
        let (_, days) = self.onboarding?;
        let start = state.facts.start_day?;
        let end = start.saturating_add(days as i32);
        (start..end).contains(&now_day).then_some(end)
    }

    /// The scorecard for an account at `now_ms`: onboarding while its start date is recent,
    /// else the one listing its segment, else the default.
    pub fn card_for(&self, state: &AccountState, now_ms: i64) -> &Card {
        if let (Some((card, _)), Some(_)) = (self.onboarding, self.onboarding_ends(state, day_of(now_ms))) {
            return &self.cards[card];
        }
        let idx = state
            .facts
            .segment
            .as_ref()
            .and_then(|s| self.by_segment.iter().find(|(seg, _)| seg.eq_ignore_ascii_case(s)))
            .map(|(_, card)| *card)
            .unwrap_or(self.default_card);
        &self.cards[idx]
    }

    pub fn retention_ms(&self) -> i64 {
        i64::from(self.state.retention_days) * DAY_MS
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_tier_comes_from_the_segment_first_then_arr_and_sets_the_bounds_of_its_severity() {
        let tiers = Tiers {
            high_arr_from: 50_000.0,
            tech_arr_below: 5_000.0,
            high_segments: vec!["enterprise".into()],
            tech_segments: vec!["self-serve".into()],
            tech_max_severity: Some("low".into()),
            high_min_severity: Some("medium".into()),
        };
        assert_eq!(tiers.of(Some("Enterprise"), Some(1_000.0)), Tier::High, "a listed segment, whatever its case, before ARR");
        assert_eq!(tiers.of(Some("self-serve"), Some(900_000.0)), Tier::Tech);
        assert_eq!(tiers.of(Some("smb"), Some(50_000.0)), Tier::High);
        assert_eq!(tiers.of(Some("smb"), Some(4_999.0)), Tier::Tech);
        assert_eq!(tiers.of(Some("smb"), Some(5_000.0)), Tier::Low);
        assert_eq!(tiers.of(None, None), Tier::Low, "without ARR");
        assert_eq!(tiers.severity(Tier::Tech, "high"), "low");
        assert_eq!(tiers.severity(Tier::Tech, "info"), "info", "a cap never raises");
        assert_eq!(tiers.severity(Tier::High, "high"), "high");
        assert_eq!(tiers.severity(Tier::High, "low"), "medium", "a high-touch account's alerts are at least medium");
        assert_eq!(tiers.severity(Tier::High, "info"), "info", "an opportunity stays info");
        assert_eq!(tiers.severity(Tier::Low, "low"), "low");
        assert_eq!(Tiers { tech_max_severity: None, ..tiers }.severity(Tier::Tech, "high"), "high");
    }

    use super::*;
    use proptest::prelude::*;

    fn card() -> Card {
        Card {
            id: "t@1".into(),
            items: vec![
                CardItem { measure: Measure::SeatUtilization, weight: 25.0, red: 0.2, green: 0.6, critical: false },
                CardItem { measure: Measure::DaysSinceLastActivity, weight: 10.0, red: 14.0, green: 2.0, critical: true },
                CardItem { measure: Measure::Csat90d, weight: 10.0, red: 2.5, green: 4.5, critical: false },
            ],
        }
    }

    fn values(seat: Option<f64>, days: Option<f64>, csat: Option<f64>) -> MeasureValues {
        let mut v = [None; N_MEASURES];
        v[Measure::SeatUtilization as usize] = seat;
        v[Measure::DaysSinceLastActivity as usize] = days;
        v[Measure::Csat90d as usize] = csat;
        v
    }

    #[test]
    fn interpolates_in_both_directions() {
        let c = card();
        assert!((c.items[0].points(0.4) - 50.0).abs() < 1e-9);
        assert_eq!(c.items[0].points(0.1), 0.0);
        assert_eq!(c.items[0].points(0.9), 100.0);
        assert_eq!(c.items[1].points(8.0), 50.0, "fewer idle days is better");
        assert_eq!(c.items[1].points(30.0), 0.0);
    }

    #[test]
    fn missing_measures_are_left_out_and_weights_renormalised() {
        let c = card();
        let full = c.score(&values(Some(0.6), Some(14.0), Some(4.5)), false).unwrap();
        assert!((full.score - (25.0 * 100.0 + 0.0 + 10.0 * 100.0) / 45.0).abs() < 1e-9);
        // Seats unknown: seat_utilization has no data; the other two carry the whole weight.
        let no_seats = c.score(&values(None, Some(2.0), Some(2.5)), false).unwrap();
        assert_eq!(no_seats.score, 50.0);
        assert_eq!(no_seats.points[Measure::SeatUtilization as usize], None);
        assert_eq!(c.score(&values(None, None, None), false), None);
    }

    #[test]
    fn an_account_without_usage_is_not_scored_on_support_alone() {
        let c = card();
        // Only CSAT has data: renormalised it would score 100.
        let s = c.score(&values(None, None, Some(4.5)), true).unwrap();
        assert!((s.score - 10.0 * 100.0 / 45.0).abs() < 1e-9, "usage measures without data count 0: {}", s.score);
        assert!(s.no_usage);
        assert_eq!(s.points[Measure::SeatUtilization as usize], None, "still shown as no data");
        assert_eq!(c.score(&values(None, None, None), true), None, "nothing at all: not scored");
        // Not known to be unused yet (just seen): support alone gives no score.
        assert_eq!(c.score(&values(None, None, Some(4.5)), false), None);
        assert!(c.score(&values(None, Some(3.0), Some(4.5)), false).is_some(), "some usage data");
    }

    #[test]
    fn bands_have_hysteresis() {
        let b = Bands { red_below: 40.0, green_from: 70.0, hysteresis: 5.0, any_red_is_red: false };
        let s = |score: f64| Scored { score, points: [None; N_MEASURES], any_red: false, critical_red: false, no_usage: false };
        assert_eq!(b.next(None, &s(39.0)), Band::Red);
        assert_eq!(b.next(Some(Band::Red), &s(41.0)), Band::Red, "needs 45 to leave red");
        assert_eq!(b.next(Some(Band::Red), &s(45.0)), Band::Yellow);
        assert_eq!(b.next(Some(Band::Yellow), &s(39.9)), Band::Red, "worse bands are entered at once");
        assert_eq!(b.next(Some(Band::Red), &s(80.0)), Band::Green);
        assert_eq!(b.next(Some(Band::Yellow), &s(72.0)), Band::Yellow);
        let strict = Bands { any_red_is_red: true, ..b };
        assert_eq!(strict.next(None, &Scored { any_red: true, ..s(90.0) }), Band::Red);
        assert_eq!(b.next(None, &Scored { any_red: true, ..s(90.0) }), Band::Green, "a non-critical red measure");
        assert_eq!(b.next(Some(Band::Green), &Scored { any_red: true, critical_red: true, ..s(90.0) }), Band::Red);
    }

    #[test]
    fn a_support_crisis_is_named_by_what_holds_it() {
        use crate::event::{Event, SupportEvent, TicketKind};
        let cap = SupportCap { urgent_open: 2, urgent_after_ms: 7 * DAY_MS, csat_at_most: 2.5, csat_answers: 2 };
        let p = StateParams { retention_days: 90, max_open_tickets: 100, dedup_window_ms: 0, max_account_bytes: 1 << 20 };
        let mut s = AccountState::default();
        let day = 20_000;
        let ticket = |id: &str, kind, priority, csat, ts| {
            Event::Support(SupportEvent {
                account_id: "a".into(),
                ticket_id: id.to_string().into(),
                kind,
                priority,
                csat,
                nps: None,
                ts_ms: ts,
                event_id: None,
            })
        };
        let at = |d: i32| i64::from(d) * DAY_MS;
        s.apply(&ticket("u1", TicketKind::Opened, Some(crate::event::Priority::Urgent), None, at(day)), day, &p);
        assert_eq!(cap.trouble(&s, at(day + 10)), None, "one urgent ticket is not a crisis");
        s.apply(&ticket("u2", TicketKind::Opened, Some(crate::event::Priority::Urgent), None, at(day + 1)), day + 1, &p);
        assert_eq!(cap.trouble(&s, at(day + 6)), None, "not yet a week old");
        let t = cap.trouble(&s, at(day + 7)).expect("two urgent tickets, the oldest a week old");
        assert_eq!(t.urgent, Some((2, 7)));
        assert_eq!(t.words(), "2 urgent tickets open, the oldest for 7 days");
        let mut s = AccountState::default();
        s.apply(&ticket("c1", TicketKind::Csat, None, Some(2), at(day)), day, &p);
        assert_eq!(cap.trouble(&s, at(day + 1)), None, "one answer");
        s.apply(&ticket("c2", TicketKind::Csat, None, Some(3), at(day + 1)), day + 1, &p);
        let t = cap.trouble(&s, at(day + 2)).expect("CSAT 2.5 from 2 answers");
        assert_eq!(t.words(), "CSAT 2.5 from 2 answers");
        assert_eq!(cap.trouble(&s, at(day + 95)), None, "answers older than 90 days");
    }

    proptest! {
        #[test]
        fn score_is_always_within_0_and_100(
            seat in prop::option::of(-10.0f64..10.0),
            days in prop::option::of(0.0f64..1000.0),
            csat in prop::option::of(-5.0f64..50.0),
        ) {
            if let Some(s) = card().score(&values(seat, days, csat), false) {
                prop_assert!((0.0..=100.0).contains(&s.score), "{}", s.score);
            }
        }
    }
}
