//! Scorecards and bands: measures → 0–100 points each → weighted score → red/yellow/green.

use rustc_hash::FxHashMap;

use super::measures::{Measure, MeasureParams, N_MEASURES};
use super::state::{AccountState, Band, MeasureValues, StateParams};
use crate::config::{AlertsConfig, Settings};
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
}

impl Card {
    /// Weighted mean of the points of the measures that have data; `None` if none has.
    pub fn score(&self, values: &MeasureValues) -> Option<Scored> {
        let mut points = [None; N_MEASURES];
        let (mut sum, mut weights, mut any_red, mut critical_red) = (0.0, 0.0, false, false);
        for item in &self.items {
            if let Some(v) = values[item.measure as usize] {
                let p = item.points(v);
                points[item.measure as usize] = Some(p);
                sum += p * item.weight;
                weights += item.weight;
                any_red |= p <= 0.0;
                critical_red |= p <= 0.0 && item.critical;
            }
        }
        (weights > 0.0).then(|| Scored { score: sum / weights, points, any_red, critical_red })
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

/// Everything the pure core needs from config, compiled once at start.
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
    pub alerts: AlertsConfig,
    pub grace_ms: i64,
}

impl Params {
    /// Compiles validated settings. Panics only on settings that `Settings::problems` rejects.
    pub fn new(s: &Settings) -> Params {
        let mut cards = Vec::new();
        let mut index = FxHashMap::default();
        let mut by_segment = Vec::new();
        for (name, c) in &s.scorecards {
            let items = c
                .measures
                .iter()
                .filter_map(|m| {
                    Some(CardItem {
                        measure: Measure::from_name(&m.measure)?,
                        weight: m.weight,
                        red: m.red?,
                        green: m.green?,
                        critical: m.critical,
                    })
                })
                .collect();
            index.insert(name.clone(), cards.len());
            for seg in &c.segments {
                by_segment.push((seg.clone(), cards.len()));
            }
            cards.push(Card { id: format!("{name}@{}", c.version), items });
        }
        let default_card = index.get(&s.scoring.default_scorecard).copied().unwrap_or(0);
        let onboarding = (s.scoring.onboarding_days > 0)
            .then(|| index.get(&s.scoring.onboarding_scorecard).map(|&c| (c, s.scoring.onboarding_days)))
            .flatten();
        Params {
            state: StateParams {
                retention_days: s.events.retention_days,
                max_open_tickets: s.events.max_open_tickets,
                dedup_window_ms: s.events.dedup_window.as_millis() as i64,
            },
            measures: MeasureParams { key_features: s.events.key_features.clone() },
            cards,
            by_segment,
            default_card,
            onboarding,
            bands: Bands {
                red_below: s.scoring.red_below,
                green_from: s.scoring.green_from,
                hysteresis: s.scoring.band_hysteresis,
                any_red_is_red: s.scoring.any_red_is_red,
            },
            score_step: s.scoring.score_step,
            alerts: s.alerts.clone(),
            grace_ms: s.events.grace.as_millis() as i64,
        }
    }

    /// The scorecard for an account at `now_ms`: onboarding while its start date is recent,
    /// else the one listing its segment, else the default.
    pub fn card_for(&self, state: &AccountState, now_ms: i64) -> &Card {
        if let (Some((card, days)), Some(start)) = (self.onboarding, state.facts.start_day) {
            let age = day_of(now_ms) - start;
            if (0..days as i32).contains(&age) {
                return &self.cards[card];
            }
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
        let full = c.score(&values(Some(0.6), Some(14.0), Some(4.5))).unwrap();
        assert!((full.score - (25.0 * 100.0 + 0.0 + 10.0 * 100.0) / 45.0).abs() < 1e-9);
        // Seats unknown: seat_utilization has no data; the other two carry the whole weight.
        let no_seats = c.score(&values(None, Some(2.0), Some(2.5))).unwrap();
        assert_eq!(no_seats.score, 50.0);
        assert_eq!(no_seats.points[Measure::SeatUtilization as usize], None);
        assert_eq!(c.score(&values(None, None, None)), None);
    }

    #[test]
    fn bands_have_hysteresis() {
        let b = Bands { red_below: 40.0, green_from: 70.0, hysteresis: 5.0, any_red_is_red: false };
        let s = |score: f64| Scored { score, points: [None; N_MEASURES], any_red: false, critical_red: false };
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

    proptest! {
        #[test]
        fn score_is_always_within_0_and_100(
            seat in prop::option::of(-10.0f64..10.0),
            days in prop::option::of(0.0f64..1000.0),
            csat in prop::option::of(-5.0f64..50.0),
        ) {
            if let Some(s) = card().score(&values(seat, days, csat)) {
                prop_assert!((0.0..=100.0).contains(&s.score), "{}", s.score);
            }
        }
    }
}
