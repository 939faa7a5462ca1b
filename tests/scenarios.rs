//! Scenario tests of the scoring core driven through the engine (RocksDB included), with synthetic
//! accounts whose story is known: silence, decline, a flapping score, unknown seats.

use std::borrow::Cow;

use kizashi::config::{Settings, WeightedMeasure};
use kizashi::core::{Alert, Params, ScoreUpdate};
use kizashi::engine::{Engine, Source};
use kizashi::event::timestamp::{day_of, DAY_MS};
use kizashi::event::{AccountEvent, Event, UsageEvent};

const DAY0: i32 = 20_400; // 2025-11-08
const HOUR: i64 = 3_600_000;

fn ms(day: i32, hour: i64) -> i64 {
    i64::from(day) * DAY_MS + hour * HOUR
}

fn usage(account: &str, user: usize, feature: usize, ts: i64) -> Event<'static> {
    Event::Usage(UsageEvent {
        account_id: Cow::Owned(account.into()),
        user_id: Cow::Owned(format!("u{user}")),
        event: Cow::Borrowed("feature_used"),
        feature: Some(Cow::Owned(format!("f{feature}"))),
        ts_ms: ts,
        event_id: None,
    })
}

fn account(account: &str, seats: Option<u32>, ts: i64) -> Event<'static> {
    Event::Account(AccountEvent {
        account_id: Cow::Owned(account.into()),
        name: None,
        seats,
        segment: Some(Cow::Borrowed("smb")),
        arr: None,
        renewal_day: None,
        start_day: None,
        ts_ms: ts,
    })
}

/// An account record with a start date, a renewal date and ARR.
fn signed(account: &str, seats: u32, start: i32, renewal: Option<i32>, ts: i64) -> Event<'static> {
    Event::Account(AccountEvent {
        account_id: Cow::Owned(account.into()),
        name: Some(Cow::Owned(format!("{account} Inc"))),
        seats: Some(seats),
        segment: Some(Cow::Borrowed("smb")),
        arr: Some(24_000.0),
        renewal_day: renewal,
        start_day: Some(start),
        ts_ms: ts,
    })
}

struct Harness {
    engine: Engine,
    offset: i64,
    alerts: Vec<Alert>,
    scores: Vec<ScoreUpdate>,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn new(settings: &Settings) -> Harness {
        assert_eq!(settings.problems(), Vec::<String>::new());
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), false, Params::new(settings), 1000).unwrap();
        Harness { engine, offset: 0, alerts: Vec::new(), scores: Vec::new(), _dir: dir }
    }

    fn feed(&mut self, e: Event<'_>) {
        self.offset += 1;
        self.engine.process(0, Source { name: "test", offset: self.offset }, Ok(e)).unwrap();
        self.collect();
    }

    fn advance(&mut self, to: i64) {
        self.engine.advance_time(0, to).unwrap();
        self.collect();
    }

    fn collect(&mut self) {
        self.engine.flush(|_| {}).unwrap();
        let out = self.engine.take_output();
        assert!(out.rejected.is_empty(), "{:?}", out.rejected);
        self.alerts.extend(out.alerts);
        self.scores.extend(out.scores);
    }

    fn alerts_of(&self, rule: &str) -> Vec<&Alert> {
        self.alerts.iter().filter(|a| a.rule.name() == rule).collect()
    }
}

/// `users` users each using `features` features on every day of `days`.
fn active_days(h: &mut Harness, acct: &str, days: std::ops::Range<i32>, users: usize, features: usize) {
    for d in days {
        for u in 0..users {
            h.feed(usage(acct, u, u % features, ms(d, 9 + (u as i64 % 8))));
        }
    }
}

#[test]
fn a_silent_account_gets_inactive_on_the_right_day_without_further_events() {
    let mut h = Harness::new(&Settings::default());
    h.feed(account("quiet", Some(10), ms(DAY0, 0)));
    active_days(&mut h, "quiet", DAY0..DAY0 + 30, 8, 8);
    let last_day = DAY0 + 29;
    // No more events from the account: only time passes (as other accounts' events would move it).
    for d in last_day + 1..last_day + 20 {
        h.advance(ms(d, 12));
    }
    let inactive = h.alerts_of("inactive");
    assert_eq!(inactive.len(), 1, "exactly one inactive alert: {:?}", h.alerts);
    let a = inactive[0];
    assert_eq!(day_of(a.event_time_ms), last_day + 14, "fires the day the 14-day silence is reached");
    assert_eq!(a.account_id, "quiet");
    assert_eq!(a.band.name(), "red", "days_since_last_activity is critical in the default scorecard");
    assert!(a.summary.starts_with("No product usage for 14 days"), "{}", a.summary);
    assert!(h.alerts.iter().all(|x| day_of(x.event_time_ms) > last_day), "no alert while active: {:?}", h.alerts);
    // Long before the 14 days, the leading measures said so: a silence without tickets.
    let first = &h.alerts[0];
    assert!(day_of(first.event_time_ms) <= last_day + 7, "the first alert leads: {first:?}");
    assert_eq!(first.rule.name(), "silent_decline", "{:?}", h.alerts);
    let names_drop = |x: &&Alert| x.rule.name() == "usage_drop" || x.also.iter().any(|r| r.name() == "usage_drop");
    let drop = h.alerts.iter().find(names_drop).expect("usage_drop fires too");
    assert!(day_of(drop.event_time_ms) <= last_day + 7, "{drop:?}");
}

#[test]
fn a_declining_account_alerts_with_the_measure_that_fell_first_in_its_explanation() {
    let mut h = Harness::new(&Settings::default());
    h.feed(account("fading", Some(40), ms(DAY0, 0)));
    active_days(&mut h, "fading", DAY0..DAY0 + 40, 36, 10);
    // Then only 3 of the 36 users stay, on 2 features.
    active_days(&mut h, "fading", DAY0 + 40..DAY0 + 75, 3, 2);
    let drops: Vec<&Alert> =
        h.alerts.iter().filter(|a| matches!(a.rule.name(), "score_drop" | "entered_red" | "silent_decline")).collect();
    assert!(!drops.is_empty(), "the decline is noticed: {:?}", h.alerts);
    let a = drops[0];
    let top = &a.explanation[0];
    assert!(top.points < 0.0, "the first explanation line lost points: {top:?}");
    assert!(a.explanation.iter().all(|e| e.value.is_none() || e.points >= top.points), "sorted by damage");
    assert!(
        matches!(
            top.measure,
            "seat_utilization" | "seat_utilization_7d" | "stickiness" | "usage_trend" | "active_users_trend" | "feature_breadth_30d"
        ),
        "an adoption measure explains it: {top:?}"
    );
    assert!(a.previous_score.unwrap() > a.score);
    assert!(!a.summary.is_empty() && a.summary.ends_with('.'));
}

/// Score = seat utilisation × 100, so seats move the score across the red edge (40) at will.
fn utilisation_only(hysteresis: f64) -> Settings {
    let mut s = Settings::default();
    let card = s.scorecards.get_mut("default").unwrap();
    card.measures = vec![WeightedMeasure {
        measure: "seat_utilization".into(),
        weight: 1.0,
        red: Some(0.0),
        green: Some(1.0),
        critical: false,
    }];
    s.scoring.band_hysteresis = hysteresis;
    s.scoring.onboarding_days = 0;
    s.alerts.entered_red.cooldown = std::time::Duration::ZERO;
    s.alerts.score_drop.enabled = false;
    s.alerts.min_history_days = 0;
    s
}

fn flap(settings: &Settings) -> usize {
    let mut h = Harness::new(settings);
    // A new customer (its windows have data once it is a week old), seats unknown while users
    // arrive (no score yet), then 20 seats: 10 users → 50, yellow.
    let mut record = signed("wobbly", 20, DAY0, None, ms(DAY0, 0));
    if let Event::Account(a) = &mut record {
        a.seats = None;
    }
    h.feed(record);
    active_days(&mut h, "wobbly", DAY0..DAY0 + 8, 10, 3);
    h.feed(signed("wobbly", 20, DAY0, None, ms(DAY0 + 8, 0)));
    // 10 active users: seats 20 → 50, 26 → 38.5 (red), 24 → 41.7 (just above the edge).
    for (i, seats) in [26, 24, 26, 24, 26, 24, 26].into_iter().enumerate() {
        h.feed(signed("wobbly", seats, DAY0, None, ms(DAY0 + 8, 1 + i as i64)));
        h.feed(usage("wobbly", 0, 0, ms(DAY0 + 8, 1 + i as i64)));
    }
    h.alerts_of("entered_red").len()
}

#[test]
fn a_score_flapping_around_the_red_edge_alerts_once() {
    assert_eq!(flap(&utilisation_only(5.0)), 1, "hysteresis holds the band");
    // The same story without hysteresis alerts on every crossing: the test above can fail.
    assert_eq!(flap(&utilisation_only(0.0)), 4);
}

#[test]
fn unknown_seats_leave_seat_utilization_out_and_renormalise() {
    let mut h = Harness::new(&Settings::default());
    h.feed(account("noseats", None, ms(DAY0, 0)));
    active_days(&mut h, "noseats", DAY0..DAY0 + 3, 5, 5);
    let last = h.scores.last().expect("score updates were published");
    let seat = last.measures.iter().find(|m| m.measure == "seat_utilization").unwrap();
    let configured = Settings::default().scorecards["default"].measures.iter().find(|m| m.measure == "seat_utilization").unwrap().weight;
    assert_eq!((seat.value, seat.points, seat.weight), (None, None, Some(configured)));
    let (sum, weights) = last
        .measures
        .iter()
        .filter_map(|m| Some((m.points?, m.weight?)))
        .fold((0.0, 0.0), |(s, w), (p, wt)| (s + p * wt, w + wt));
    assert!((last.score - sum / weights).abs() < 0.15, "score {} is the weighted mean of the others {}", last.score, sum / weights);
    assert!(weights < 100.0, "seat_utilization's weight was left out");
}
