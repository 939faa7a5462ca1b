//! Scenario tests of the scoring core driven through the engine (RocksDB included), with synthetic
//! accounts whose story is known: silence, decline, a flapping score, unknown seats.

use std::borrow::Cow;

use kizashi::config::{Settings, WeightedMeasure};
use kizashi::core::{Alert, Params, ScoreUpdate};
use kizashi::engine::{Engine, Options, Record, Source};
use kizashi::event::timestamp::{day_of, DAY_MS};
use kizashi::event::{AccountEvent, AccountStatus, Event, Priority, SupportEvent, TicketKind, UsageEvent};

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
        owner: None,
        arr: None,
        renewal_day: None,
        start_day: None,
        status: AccountStatus::Active,
        end_day: None,
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
        owner: None,
        arr: Some(24_000.0),
        renewal_day: renewal,
        start_day: Some(start),
        status: AccountStatus::Active,
        end_day: None,
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
        Harness::with_board(settings, None)
    }

    /// A harness whose engine keeps `board` (the at-risk index the API reads).
    fn with_board(settings: &Settings, board: Option<std::sync::Arc<kizashi::engine::board::Board>>) -> Harness {
        assert_eq!(settings.problems(), Vec::<String>::new());
        let dir = tempfile::tempdir().unwrap();
        let mut options = Options::new(kizashi::store::Budget { total: 256 << 20 });
        options.board = board;
        let engine = Engine::open(dir.path(), Params::new(settings), options).unwrap();
        Harness { engine, offset: 0, alerts: Vec::new(), scores: Vec::new(), _dir: dir }
    }

    fn feed(&mut self, e: Event<'_>) {
        self.offset += 1;
        let decoded = Ok(e);
        self.engine.process(0, Record::new(Source { name: "test", offset: self.offset }, b"", &decoded)).unwrap();
        self.collect();
    }

    fn advance(&mut self, to: i64) {
        while self.engine.advance_time(0, to).unwrap() {}
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
    // Long before the 14 days, the leading measures said so: the red band within a week, then a
    // silence without tickets once the fall outlasted part of a week off (an eight-person team
    // waits three working days more than a large one: `small_team_wait`).
    let first = &h.alerts[0];
    assert!(day_of(first.event_time_ms) <= last_day + 7, "the first alert leads: {first:?}");
    let silent = h.alerts_of("silent_decline");
    assert_eq!(silent.len(), 1, "{:?}", h.alerts);
    assert!(day_of(silent[0].event_time_ms) <= last_day + 8, "{:?}", silent[0]);
    let names_drop = |x: &&Alert| x.rule.name() == "usage_drop" || x.also.iter().any(|r| r.name() == "usage_drop");
    let drop = h.alerts.iter().find(names_drop).expect("usage_drop fires too");
    assert!(day_of(drop.event_time_ms) <= last_day + 8, "{drop:?}");
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

fn support(account: &str, ticket: &str, kind: TicketKind, ts: i64) -> Event<'static> {
    Event::Support(SupportEvent {
        account_id: Cow::Owned(account.into()),
        ticket_id: Cow::Owned(ticket.into()),
        kind,
        priority: Some(Priority::Normal),
        csat: None,
        nps: None,
        ts_ms: ts,
        event_id: None,
    })
}

fn nps(account: &str, score: u8, ts: i64) -> Event<'static> {
    Event::Support(SupportEvent {
        account_id: Cow::Owned(account.into()),
        ticket_id: Cow::Borrowed(""),
        kind: TicketKind::Nps,
        priority: None,
        csat: None,
        nps: Some(score),
        ts_ms: ts,
        event_id: None,
    })
}

fn names(a: &Alert, rule: &str) -> bool {
    a.rule.name() == rule || a.also.iter().any(|r| r.name() == rule)
}

/// The band of the last score update at or before `at`.
fn band_at(h: &Harness, account: &str, at: i64) -> Option<&'static str> {
    h.scores.iter().rev().find(|s| s.account_id == account && s.event_time_ms <= at).map(|s| s.band.name())
}

#[test]
fn a_decline_that_keeps_filing_tickets_gets_usage_drop_within_a_week() {
    let mut h = Harness::new(&Settings::default());
    h.feed(signed("busy", 20, DAY0 - 400, None, ms(DAY0, 0)));
    active_days(&mut h, "busy", DAY0..DAY0 + 42, 16, 8);
    // From day 42 only 3 of the 16 users stay (under a fifth of the norm), and the customer
    // files a ticket a week about it: silent_decline must not be the only way to see it.
    let fell = DAY0 + 42;
    for d in fell..fell + 21 {
        if (d - fell) % 7 == 2 {
            let t = format!("T{d}");
            h.feed(support("busy", &t, TicketKind::Opened, ms(d, 10)));
            h.feed(support("busy", &t, TicketKind::Closed, ms(d, 16)));
        }
        active_days(&mut h, "busy", d..d + 1, 3, 3);
    }
    let drop = h.alerts.iter().find(|a| names(a, "usage_drop")).unwrap_or_else(|| panic!("no usage_drop: {:?}", h.alerts));
    let day = day_of(drop.event_time_ms);
    assert!((fell..=fell + 7).contains(&day), "usage_drop on day {} of the fall", day - fell);
    assert_ne!(drop.band.name(), "green", "{drop:?}");
    assert!(!h.alerts.iter().any(|a| names(a, "silent_decline")), "tickets were filed: {:?}", h.alerts);
    assert!(drop.summary.starts_with("Usage over the last"), "{}", drop.summary);
    assert!(drop.summary.contains("its weeks usually swing ±"), "how unusual it is: {}", drop.summary);
    assert_ne!(band_at(&h, "busy", ms(fell + 7, 23)), Some("green"));
}

#[test]
fn a_customer_who_never_activates_is_seen_on_the_account_record_alone() {
    let mut h = Harness::new(&Settings::default());
    // Signed on DAY0, renews 80 days later; nobody ever logs in. Only time passes (other
    // accounts' events would move it), checked every hour.
    h.feed(signed("ghost", 25, DAY0, Some(DAY0 + 80), ms(DAY0, 1)));
    for hour in 2..(40 * 24) {
        h.advance(ms(DAY0, hour));
    }
    let na = h.alerts_of("not_activated");
    assert_eq!(na.len(), 1, "{:?}", h.alerts);
    assert_eq!(day_of(na[0].event_time_ms), DAY0 + 14, "on exactly day 14 after the start");
    assert!(na[0].summary.starts_with("Nobody has used the product in the 14 days since 2025-11-08"), "{}", na[0].summary);
    assert_eq!(na[0].band.name(), "red", "no usage is not a healthy score: {:?}", na[0]);
    let renewal = h.alerts_of("renewal_at_risk");
    assert_eq!(renewal.len(), 1, "{:?}", h.alerts);
    assert_eq!(day_of(renewal[0].event_time_ms), DAY0 + 20, "60 days before the renewal");
    assert_eq!((renewal[0].days_to_renewal, renewal[0].arr), (Some(60), Some(24_000.0)));
    assert!(renewal[0].summary.starts_with("Renewal in 60 days (2026-01-27, ARR 24000)"), "{}", renewal[0].summary);
    // No score from "zero urgent tickets" alone: every score the account had was red.
    assert!(!h.scores.is_empty() && h.scores.iter().all(|s| s.band.name() == "red"), "{:?}", h.scores.iter().map(|s| s.score).collect::<Vec<_>>());
    // The onboarding scorecard ended by the clock, on day 30, with no event.
    let last = h.scores.iter().rev().find(|s| s.account_id == "ghost").unwrap();
    assert_eq!(last.scorecard, "default@3", "{last:?}");
}

#[test]
fn a_customer_signed_weeks_ago_and_never_seen_is_not_activated_at_once() {
    let mut h = Harness::new(&Settings::default());
    h.feed(signed("late", 10, DAY0 - 30, None, ms(DAY0, 1)));
    let na = h.alerts_of("not_activated");
    assert_eq!(na.len(), 1, "{:?}", h.alerts);
    assert_eq!(day_of(na[0].event_time_ms), DAY0);
    assert_eq!(na[0].band.name(), "red");
}

#[test]
fn an_account_red_from_the_start_raises_one_alert_that_says_so() {
    let mut h = Harness::new(&Settings::default());
    // 100 seats, 2 users: red from its first full week, long before alerts may fire. (Its trends
    // get data in its fourth week and lift it to yellow; once its 30-day seat utilisation has
    // data, 2% is critical and it is red again: another transition, another alert.)
    h.feed(account("thin", Some(100), ms(DAY0, 0)));
    active_days(&mut h, "thin", DAY0..DAY0 + 20, 2, 1);
    assert!(h.scores.iter().any(|s| s.band.name() == "red" && day_of(s.event_time_ms) < DAY0 + 14));
    let red = h.alerts_of("entered_red");
    assert_eq!(red.len(), 1, "{:?}", h.alerts);
    let a = red[0];
    assert_eq!(day_of(a.event_time_ms), DAY0 + 14, "the first evaluation that may alert");
    assert!(a.summary.starts_with("Health score is red at"), "{}", a.summary);
    assert!(!a.summary.contains("entered") && !a.summary.contains("(was"), "{}", a.summary);
    assert!(a.summary.contains("weekly seat utilisation is 2%"), "names what makes it red: {}", a.summary);
}

#[test]
fn a_flapping_renewal_date_does_not_repeat_renewal_at_risk_and_a_new_term_rearms_it() {
    let mut h = Harness::new(&Settings::default());
    let renew = DAY0 + 100;
    h.feed(signed("flappy", 100, DAY0 - 400, Some(renew), ms(DAY0, 0)));
    for d in DAY0..DAY0 + 90 {
        // The CRM sends the renewal date back and forth by ten days.
        let r = if d % 2 == 0 { renew } else { renew + 10 };
        h.feed(signed("flappy", 100, DAY0 - 400, Some(r), ms(d, 1)));
        active_days(&mut h, "flappy", d..d + 1, 3, 1);
    }
    let alerts = h.alerts_of("renewal_at_risk");
    assert_eq!(alerts.len(), 1, "{:?}", alerts);
    assert_eq!(day_of(alerts[0].event_time_ms), renew - 60);
    // Renewed: the next term's date re-arms the rule once it comes within 60 days.
    let next = renew + 365;
    for d in DAY0 + 90..next - 55 {
        h.feed(signed("flappy", 100, DAY0 - 400, Some(next), ms(d, 1)));
        active_days(&mut h, "flappy", d..d + 1, 3, 1);
    }
    let alerts = h.alerts_of("renewal_at_risk");
    assert_eq!(alerts.len(), 2, "{:?}", alerts);
    assert_eq!(day_of(alerts[1].event_time_ms), next - 60);
}

#[test]
fn a_healthy_account_using_nearly_all_its_seats_is_an_expansion_candidate() {
    let mut h = Harness::new(&Settings::default());
    h.feed(account("full", Some(10), ms(DAY0, 0)));
    active_days(&mut h, "full", DAY0..DAY0 + 45, 10, 8);
    let ex = h.alerts_of("expansion_candidate");
    assert_eq!(ex.len(), 1, "{:?}", h.alerts);
    let a = ex[0];
    // seat_utilization (30 days) has data from day 29, and must hold 7 days.
    assert_eq!(day_of(a.event_time_ms), DAY0 + 35);
    assert_eq!((a.band.name(), a.severity.as_str()), ("green", "info"));
    let json: serde_json::Value = serde_json::from_str(&a.to_json()).unwrap();
    assert_eq!(json["kind"], "opportunity");
    assert!(h.alerts.iter().filter(|x| x.rule.kind().name() == "risk").count() == 0, "{:?}", h.alerts);
}

#[test]
fn nps_answers_make_nps_90d() {
    let mut settings = Settings::default();
    settings.scoring.score_step = 0.0;
    let mut h = Harness::new(&settings);
    h.feed(account("voice", Some(10), ms(DAY0, 0)));
    active_days(&mut h, "voice", DAY0..DAY0 + 10, 5, 5);
    for (i, score) in [9u8, 10, 9, 8, 3].into_iter().enumerate() {
        h.feed(nps("voice", score, ms(DAY0 + 10, 1 + i as i64)));
    }
    let last = h.scores.last().unwrap();
    let v = last.measures.iter().find(|m| m.measure == "nps_90d").unwrap();
    assert_eq!(v.value, Some(40.0), "3 promoters, 1 detractor of 5 answers");
    assert!(v.points.is_some(), "the default scorecard uses it");
}

mod properties {
    use super::*;
    use kizashi::core::{evaluate, AccountState};
    use proptest::prelude::*;

    const NOW: i32 = DAY0 + 60;

    fn history(events: &[(u8, i32, u8)], seats: Option<u32>) -> AccountState {
        let params = Params::new(&Settings::default());
        let mut s = AccountState::default();
        s.apply(&account("p", seats, ms(DAY0, 0)), DAY0, &params.state);
        // Events in time order (the engine guarantees stream time is the highest seen).
        let mut evs: Vec<(i32, u8, u8)> = events.iter().map(|&(u, d, f)| (DAY0 + d, u, f)).collect();
        evs.sort_unstable();
        for (day, user, feature) in evs {
            s.advance(day, &params.state);
            s.apply(&usage("p", user as usize, feature as usize, ms(day, 10)), day, &params.state);
        }
        s
    }

    fn score(mut s: AccountState, at: i64) -> Option<f64> {
        let params = Params::new(&Settings::default());
        evaluate(&mut s, "p", at, &params);
        s.score.last.map(|l| l.score)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Whatever happened, the score is within 0..=100; and a declining account never scores
        /// lower because a user it had never seen started using the product this week.
        #[test]
        fn more_users_never_lower_the_score(
            events in prop::collection::vec((0u8..6, 0i32..61, 0u8..6), 0..200),
            fade_from in 20i32..55,
            newcomer in prop::collection::vec((54i32..61, 0u8..9), 1..6),
            seats in prop::option::of(1u32..40),
        ) {
            // Users stop one by one after `fade_from`: a decline.
            let kept: Vec<(u8, i32, u8)> = events.into_iter().filter(|&(u, d, _)| d < fade_from + 3 * i32::from(u)).collect();
            let before = history(&kept, seats);
            let at = ms(NOW, 23);
            let base = score(before.clone(), at);
            if let Some(b) = base {
                prop_assert!((0.0..=100.0).contains(&b), "{b}");
            }
            let params = Params::new(&Settings::default());
            let mut after = before;
            let mut days: Vec<(i32, u8)> = newcomer;
            days.sort_unstable();
            for (d, f) in days {
                after.apply(&usage("p", 99, f as usize, ms(DAY0 + d, 11)), NOW, &params.state);
            }
            let more = score(after, at);
            if let (Some(b), Some(m)) = (base, more) {
                prop_assert!((0.0..=100.0).contains(&m), "{m}");
                prop_assert!(m >= b - 1e-9, "a new user lowered the score from {b} to {m}");
            }
            prop_assert!(!(base.is_some() && more.is_none()), "usage never unscores an account");
        }
    }
}

fn urgent(account: &str, ticket: &str, ts: i64) -> Event<'static> {
    Event::Support(SupportEvent {
        account_id: Cow::Owned(account.into()),
        ticket_id: Cow::Owned(ticket.into()),
        kind: TicketKind::Opened,
        priority: Some(Priority::Urgent),
        csat: None,
        nps: None,
        ts_ms: ts,
        event_id: None,
    })
}

/// `users` users on every weekday of `days`, each week's usage scaled by `level(week)` (users
/// beyond the share kept sit the week out).
fn weekdays(h: &mut Harness, acct: &str, days: std::ops::Range<i32>, users: usize, level: impl Fn(i32) -> f64) {
    for d in days {
        if matches!(d.rem_euclid(7), 2 | 3) {
            continue;
        }
        let n = (users as f64 * level((d - DAY0) / 7)).round() as usize;
        active_days(h, acct, d..d + 1, n, 6);
    }
}

#[test]
fn a_support_crisis_holds_a_heavy_user_out_of_green_and_renewal_at_risk_says_why() {
    let mut h = Harness::new(&Settings::default());
    h.feed(signed("crisis", 12, DAY0 - 400, Some(DAY0 + 80), ms(DAY0, 0)));
    weekdays(&mut h, "crisis", DAY0..DAY0 + 28, 11, |_| 1.0);
    assert_eq!(band_at(&h, "crisis", ms(DAY0 + 27, 23)), Some("green"), "heavy, steady use: {:?}", h.scores.last());
    // Three urgent tickets are opened and left open; usage goes on as before.
    let start = DAY0 + 28;
    for i in 0..3 {
        h.feed(urgent("crisis", &format!("U{i}"), ms(start, 9 + i)));
    }
    weekdays(&mut h, "crisis", start..start + 21, 11, |_| 1.0);
    assert_eq!(band_at(&h, "crisis", ms(start + 6, 23)), Some("green"), "not yet a week old");
    // The tickets were opened on a Saturday: a week later is a weekend without events, so the
    // account is next scored on the Monday (stream time moves with the events).
    for d in start + 9..start + 21 {
        assert_eq!(band_at(&h, "crisis", ms(d, 23)), Some("yellow"), "day {}: urgent tickets a week old", d - start);
    }
    let renewal = h.alerts_of("renewal_at_risk");
    assert_eq!(renewal.len(), 1, "{:?}", h.alerts);
    assert!(renewal[0].summary.contains("held out of green by support (3 urgent tickets open, the oldest for"), "{}", renewal[0].summary);
    assert_eq!(day_of(renewal[0].event_time_ms), start + 9, "the first scoring after the week: {:?}", renewal[0]);
}

#[test]
fn a_champion_going_quiet_while_the_others_go_on_is_its_own_alert() {
    let mut h = Harness::new(&Settings::default());
    h.feed(signed("champ", 10, DAY0 - 400, None, ms(DAY0, 0)));
    let left = DAY0 + 42;
    for d in DAY0..DAY0 + 70 {
        if matches!(d.rem_euclid(7), 2 | 3) {
            continue;
        }
        // u0 and u1 every weekday until they leave; the eight others one weekday in four.
        for u in 0..10 {
            let on = if u < 2 { d < left } else { (d + u as i32) % 4 == 0 };
            if on {
                h.feed(usage("champ", u, u % 5, ms(d, 10)));
            }
        }
    }
    h.advance(ms(DAY0 + 70, 12));
    let quiet = h.alerts.iter().find(|a| names(a, "champion_quiet")).unwrap_or_else(|| panic!("no champion_quiet: {:?}", h.alerts));
    let day = day_of(quiet.event_time_ms) - left;
    assert!((12..=14).contains(&day), "twelve days of silence, seen on day {day}");
    let a = h.alerts.iter().find(|a| a.rule.name() == "champion_quiet").expect("its own alert or the first");
    assert!(a.summary.contains("(u0, u1)") && a.summary.contains("while the others go on"), "{}", a.summary);
    let risk = |a: &&Alert| a.rule.kind() == kizashi::core::alerts::AlertKind::Risk;
    assert!(h.alerts.iter().filter(risk).all(|a| day_of(a.event_time_ms) >= left), "nothing before they left: {:?}", h.alerts);
}

#[test]
fn weeks_that_swing_a_quarter_either_way_raise_no_alert_and_a_sharp_fall_does_within_days() {
    let mut h = Harness::new(&Settings::default());
    h.feed(signed("swing", 60, DAY0 - 400, None, ms(DAY0, 0)));
    h.feed(signed("falls", 60, DAY0 - 400, None, ms(DAY0, 0)));
    // Busy and slow weeks: 75%, 125%, 100%, 80%, ... of 40 users; the second account the same
    // until a Monday on which two thirds of its usage go. Both fed day by day (one stream time).
    let swing = |w: i32| [0.75, 1.25, 1.0, 0.8, 1.2, 0.9, 1.1, 0.75, 1.25, 1.0][w.rem_euclid(10) as usize];
    let fell = DAY0 + 51;
    assert_eq!(fell.rem_euclid(7), 4, "a Monday");
    for d in DAY0..DAY0 + 70 {
        weekdays(&mut h, "swing", d..d + 1, 40, swing);
        weekdays(&mut h, "falls", d..d + 1, 40, |w| if d < fell { swing(w) } else { swing(w) / 3.0 });
    }
    assert!(h.alerts.iter().all(|a| a.account_id != "swing"), "a steady account's swings: {:?}", h.alerts);
    let drop = h.alerts.iter().find(|a| a.account_id == "falls" && names(a, "usage_drop")).unwrap_or_else(|| panic!("usage_drop: {:?}", h.alerts));
    let day = day_of(drop.event_time_ms) - fell;
    assert!(day <= 5, "a sharp fall in a 60-seat account is seen within days, not on day {day}");
    assert!(h.alerts.iter().filter(|a| a.account_id == "falls").all(|a| day_of(a.event_time_ms) >= fell), "{:?}", h.alerts);
    assert_ne!(band_at(&h, "falls", ms(DAY0 + 69, 23)), Some("green"), "a fall that goes on is never green");
}

#[test]
fn a_small_teams_week_off_raises_nothing_and_a_fall_that_outlasts_it_does() {
    let mut h = Harness::new(&Settings::default());
    // Four people on every weekday; in one week two of them are away. "off" comes back after
    // that week; "gone" loses three of its four people for good; "large" (forty people, half of
    // them away) is the same week in an account where that many people away at once is no chance.
    for (acct, seats) in [("off", 4), ("gone", 4), ("large", 40)] {
        h.feed(signed(acct, seats, DAY0 - 400, None, ms(DAY0, 0)));
    }
    let away = DAY0 + 44;
    assert_eq!(away.rem_euclid(7), 4, "a Monday");
    for d in DAY0..DAY0 + 70 {
        let week_off = (away..away + 7).contains(&d);
        weekdays(&mut h, "off", d..d + 1, 4, |_| if week_off { 0.5 } else { 1.0 });
        weekdays(&mut h, "gone", d..d + 1, 4, |_| if d >= away { 0.25 } else { 1.0 });
        weekdays(&mut h, "large", d..d + 1, 40, |_| if week_off { 0.5 } else { 1.0 });
    }
    let risk = |acct: &'static str| {
        move |a: &&Alert| a.account_id == acct && a.rule.kind() == kizashi::core::alerts::AlertKind::Risk
    };
    assert!(!h.alerts.iter().any(|a| risk("off")(&a)), "half of four people away for a week: {:?}", h.alerts);
    assert_eq!(band_at(&h, "off", ms(away + 3, 23)), Some("green"), "{:?}", h.scores.iter().rev().find(|s| s.account_id == "off"));
    let gone = h.alerts.iter().find(|a| a.account_id == "gone" && names(a, "usage_drop")).unwrap_or_else(|| panic!("usage_drop: {:?}", h.alerts));
    let day = day_of(gone.event_time_ms) - away;
    assert!((7..=14).contains(&day), "after the week a small team may take off, within two: day {day}");
    let large = h.alerts.iter().find(|a| a.account_id == "large" && names(a, "usage_drop")).unwrap_or_else(|| panic!("large: {:?}", h.alerts));
    let day = day_of(large.event_time_ms) - away;
    assert!(day <= 7, "forty people, twenty of them away, is seen by the end of that week, not on day {day}");
}

/// An account record saying how the account stands now.
fn with_status(account: &str, seats: u32, status: AccountStatus, end_day: Option<i32>, ts: i64) -> Event<'static> {
    match signed(account, seats, DAY0 - 400, None, ts) {
        Event::Account(a) => Event::Account(AccountEvent { status, end_day, ..a }),
        _ => unreachable!(),
    }
}

#[test]
fn an_account_that_ended_raises_no_alert_sets_no_timer_and_leaves_the_queue() {
    use kizashi::engine::board::{Board, Filter, Sort};
    let board = std::sync::Arc::new(Board::default());
    let mut h = Harness::with_board(&Settings::default(), Some(board.clone()));
    // Three accounts alike for 40 days; then each stops using the product. "left" is churned
    // on the day it stops; "stays" is not (its silence is a risk); "cancelling" was cancelled
    // on day 30 to run until day 50 and stops on day 45.
    for acct in ["left", "stays", "cancelling"] {
        h.feed(signed(acct, 12, DAY0 - 400, None, ms(DAY0, 0)));
    }
    let stop = DAY0 + 40;
    for d in DAY0..DAY0 + 46 {
        if d < stop {
            active_days(&mut h, "left", d..d + 1, 10, 5);
            active_days(&mut h, "stays", d..d + 1, 10, 5);
        }
        active_days(&mut h, "cancelling", d..d + 1, 10, 5);
        if d == DAY0 + 30 {
            h.feed(with_status("cancelling", 12, AccountStatus::Cancelled, Some(DAY0 + 50), ms(d, 20)));
        }
        if d == stop {
            h.feed(with_status("left", 12, AccountStatus::Churned, None, ms(stop, 8)));
        }
    }
    // Time goes on for a month without them (as other accounts' events would move it).
    for d in DAY0 + 46..DAY0 + 75 {
        h.advance(ms(d, 12));
    }
    let risk = |acct: &'static str| move |a: &&Alert| a.account_id == acct && a.rule.kind() == kizashi::core::alerts::AlertKind::Risk;
    assert!(h.alerts.iter().filter(risk("stays")).any(|a| a.rule.name() == "inactive"), "the silence of an account that did not end: {:?}", h.alerts);
    assert_eq!(h.alerts.iter().filter(risk("left")).count(), 0, "churned the day it stopped: {:?}", h.alerts);
    assert!(h.alerts.iter().filter(risk("cancelling")).all(|a| day_of(a.event_time_ms) < DAY0 + 50), "{:?}", h.alerts);
    assert!(h.scores.iter().filter(|s| s.account_id == "left").all(|s| day_of(s.event_time_ms) <= stop), "no score updates after the end");
    // Off the queue and counted apart; the board keeps how and when each ended.
    let queue = board.select(&Filter::default(), Sort::Risk, 0, 10);
    let ids: Vec<&str> = queue.items.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["stays"]);
    assert_eq!(board.get("left").unwrap().ended, Some((AccountStatus::Churned, stop)));
    assert_eq!(board.get("cancelling").unwrap().ended, Some((AccountStatus::Cancelled, DAY0 + 50)), "left the queue on its end day, by timer");
    let summary = board.summary(DAY0 + 74);
    assert_eq!((summary.ended, summary.accounts.iter().sum::<usize>()), (2, 1));
    // A record saying it is active again brings it back.
    h.feed(with_status("left", 12, AccountStatus::Active, None, ms(DAY0 + 75, 8)));
    active_days(&mut h, "left", DAY0 + 75..DAY0 + 76, 10, 5);
    assert_eq!(board.get("left").unwrap().ended, None);
}

/// A `cs-actions` record.
fn act(account: &str, action: kizashi::event::ActionKind, until: Option<i32>, band: Option<&'static str>, ts: i64) -> Event<'static> {
    Event::Action(kizashi::event::ActionEvent {
        account_id: Cow::Owned(account.into()),
        action,
        by: Some(Cow::Borrowed("dana")),
        note: Some(Cow::Borrowed("spoke to the sponsor")),
        until_day: until,
        owner: Some(Cow::Borrowed("lee")),
        band: band.map(Cow::Borrowed),
        ts_ms: ts,
        event_id: None,
    })
}

#[test]
fn the_teams_actions_set_the_status_a_snooze_and_an_override_end_by_timer_and_a_worse_alert_reopens() {
    use kizashi::engine::board::{Board, Filter, Sort};
    use kizashi::event::ActionKind::*;
    let board = std::sync::Arc::new(Board::default());
    let mut h = Harness::with_board(&Settings::default(), Some(board.clone()));
    // Two accounts alike for 40 days, then both go silent; each then gets, by default,
    // silent_decline (high) on day 44, entered_red (high) on 46, score_drop (medium) on 48 and
    // inactive (high) on 53.
    for acct in ["a", "b"] {
        h.feed(signed(acct, 12, DAY0 - 400, None, ms(DAY0, 0)));
    }
    for d in DAY0..DAY0 + 40 {
        active_days(&mut h, "a", d..d + 1, 10, 5);
        active_days(&mut h, "b", d..d + 1, 10, 5);
    }
    let today = Filter { hide_set_aside: true, ..Filter::default() };
    let listed = |f: &Filter| board.select(f, Sort::Risk, 0, 10).items.into_iter().map(|(id, _)| id.to_string()).collect::<Vec<_>>();
    let status_of = |h: &Harness, acct: &str, rule: &str| h.alerts.iter().find(|a| a.account_id == acct && a.rule.name() == rule).map(|a| a.cs.status);
    // Day 41: "a" acknowledged and assigned, "b" overridden red until day 45.
    h.feed(act("a", Acknowledge, None, None, ms(DAY0 + 41, 9)));
    assert_eq!(h.scores.last().map(|s| (s.account_id.as_str(), s.cs.status)), Some(("a", "acknowledged")), "an action publishes a score update");
    h.feed(act("a", Assign, None, None, ms(DAY0 + 41, 10)));
    assert_eq!(board.get("a").unwrap().owner.as_deref(), Some("lee"), "assigned: the board's owner");
    h.feed(act("b", Override, Some(DAY0 + 45), Some("red"), ms(DAY0 + 41, 11)));
    let last = h.scores.iter().rev().find(|s| s.account_id == "b").unwrap();
    assert_eq!(last.band.name(), "red", "the override's band is the one shown");
    assert_eq!(last.cs.overridden.as_ref().map(|o| (o.band, o.scored_band, o.until.as_str())), Some(("red", Some("green"), "2025-12-23")));
    assert_eq!((board.get("b").unwrap().band, board.get("b").unwrap().scored_band), (Some(kizashi::core::Band::Red), Some(kizashi::core::Band::Green)));
    for d in DAY0 + 41..DAY0 + 45 {
        h.advance(ms(d, 12));
    }
    assert_eq!(status_of(&h, "a", "silent_decline"), Some("open"), "a new alert reopens an acknowledged account");
    // The override ends on its day, by the engine's timer, with a score update saying so.
    h.advance(ms(DAY0 + 45, 1));
    let last = h.scores.iter().rev().find(|s| s.account_id == "b").unwrap();
    assert_eq!((day_of(last.event_time_ms), last.cs.overridden.is_none()), (DAY0 + 45, true), "{last:?}");
    assert_eq!(board.get("b").unwrap().scored_band, None);
    // Day 46 (after entered_red, high): "b" snoozed until day 60. Day 48 (after score_drop,
    // medium): "a" snoozed until day 60.
    h.advance(ms(DAY0 + 46, 12));
    h.feed(act("b", Snooze, Some(DAY0 + 60), None, ms(DAY0 + 46, 13)));
    h.advance(ms(DAY0 + 48, 12));
    h.feed(act("a", Snooze, Some(DAY0 + 60), None, ms(DAY0 + 48, 13)));
    assert_eq!(listed(&today), Vec::<String>::new(), "snoozed accounts are out of the today view");
    assert_eq!(listed(&Filter::default()).len(), 2, "and still in the risk queue");
    for d in DAY0 + 49..DAY0 + 55 {
        h.advance(ms(d, 12));
    }
    // inactive (high) is worse than what "a" snoozed (score_drop, medium): it reopens "a"; "b"
    // snoozed a high alert: its score_drop and inactive came in snoozed.
    assert_eq!(status_of(&h, "b", "score_drop"), Some("snoozed"));
    assert_eq!(status_of(&h, "b", "inactive"), Some("snoozed"));
    assert_eq!(status_of(&h, "a", "inactive"), Some("open"));
    assert_eq!(listed(&today), ["a"]);
    // The snooze ends on day 60, by timer.
    for d in DAY0 + 55..DAY0 + 61 {
        h.advance(ms(d, 12));
    }
    assert_eq!(board.get("b").unwrap().status, 0);
    assert_eq!(listed(&today).len(), 2, "back on its day");
    // Resolved: out of the today view until the next alert.
    h.feed(act("b", Resolve, None, None, ms(DAY0 + 61, 9)));
    assert_eq!((board.get("b").unwrap().status, listed(&today)), (3, vec!["a".to_string()]));
    let resolved = h.scores.iter().rev().find(|s| s.account_id == "b").unwrap();
    assert_eq!(resolved.cs.action.as_ref().map(|m| (m.status, m.note.as_deref(), m.by.as_deref())), Some(("resolved", Some("spoke to the sponsor"), Some("dana"))));
}
