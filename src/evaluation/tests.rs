//! Hand-computed fixtures: every figure below was worked out on paper from the definitions in
//! the module's header (horizon 90 days, bands 30 days before each outcome).

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;
use crate::core::Band;
use crate::outcome::{Outcome, OutcomeKind};

const BASE: i64 = 20_000;

/// Day `n` after the base day, in epoch ms.
fn d(n: i64) -> i64 {
    (BASE + n) * DAY_MS
}

fn o(account: &str, kind: OutcomeKind, day: i64) -> Outcome {
    Outcome { account_id: account.into(), kind, ts_ms: d(day) }
}

use OutcomeKind::{Churned, Downgraded, Expanded, Renewed};

fn fixture() -> (History, Vec<Outcome>, BTreeSet<&'static str>) {
    let mut h = History::default();
    let risk = |h: &mut History, a: &str, day: i64, rules: &[&str]| h.record(a, d(day), AlertKind::Risk, rules);
    // a01: caught 40 days ahead (its opportunity alert is not a risk alert, and a false one).
    risk(&mut h, "a01", 10, &["silent_decline"]);
    h.record("a01", d(0), AlertKind::Opportunity, &["expansion_candidate"]);
    // a02: two alerts; the first in the horizon sets the lead (80); `also` counts for its rule.
    risk(&mut h, "a02", 0, &["inactive"]);
    risk(&mut h, "a02", 20, &["inactive", "silent_decline"]);
    // a03: a tie, the alert at the outcome's instant: caught, lead 0.
    risk(&mut h, "a03", 100, &["entered_red"]);
    // a04: exactly 90 days ahead: inside the horizon.
    risk(&mut h, "a04", 10, &["entered_red"]);
    // a05: 91 days ahead: missed, and the alert is a false alarm.
    risk(&mut h, "a05", 5, &["silent_decline"]);
    // a06: alerted the day after it churned: not a true positive; a false alarm.
    risk(&mut h, "a06", 51, &["inactive"]);
    // a07: an outcome with no history at all (known account, never alerted, never scored).
    // a08: two outcomes, each caught by a different rule.
    risk(&mut h, "a08", 20, &["silent_decline"]);
    risk(&mut h, "a08", 140, &["entered_red"]);
    // a09: three false alarms within one horizon (one FP), then another much later (a second).
    for day in [0, 30, 60, 200] {
        risk(&mut h, "a09", day, &["silent_decline"]);
    }
    // a10: renewed, never alerted (a true negative: not reported). a11: alerted, no outcome.
    risk(&mut h, "a11", 10, &["ticket_spike"]);
    // a12: an opportunity caught 30 days ahead.
    h.record("a12", d(50), AlertKind::Opportunity, &["expansion_candidate"]);
    // a14: churned without any alert.

    for (a, day, band) in [
        ("a01", 0, Band::Green),
        ("a01", 15, Band::Red),
        ("a02", -10, Band::Yellow),
        ("a05", 0, Band::Green),
        ("a08", 0, Band::Green),
        ("a08", 5, Band::Yellow),
        ("a08", 6, Band::Yellow),
        ("a08", 130, Band::Red),
        ("a09", 0, Band::Green),
        ("a10", 0, Band::Green),
        ("a12", 0, Band::Green),
        ("a14", 10, Band::Red),
    ] {
        h.record_band(a, d(day), band);
    }
    h.set_end(Some(d(100)));

    let outcomes = vec![
        o("a01", Churned, 50),
        o("a02", Churned, 80),
        o("a03", Churned, 100),
        o("a04", Downgraded, 100),
        o("a05", Churned, 96),
        o("a06", Churned, 50),
        o("a07", Churned, 40),
        o("a08", Churned, 150),
        o("a08", Downgraded, 30),
        o("a09", Renewed, 70),
        o("a10", Renewed, 60),
        o("a12", Expanded, 80),
        o("a14", Churned, 60),
        o("ghost", Churned, 10),
        o("ghost", Renewed, 100),
    ];
    let known: BTreeSet<&str> =
        ["a01", "a02", "a03", "a04", "a05", "a06", "a07", "a08", "a09", "a10", "a11", "a12", "a14"].into();
    (h, outcomes, known)
}

fn opts() -> Options {
    Options { horizon_days: 90, band_at_days: 30, rules: BTreeSet::new() }
}

fn run() -> Evaluation {
    let (h, outcomes, known) = fixture();
    evaluate(&h, &outcomes, |a| known.contains(a), &opts())
}

fn lead(median: f64, p10: f64, p90: f64) -> LeadTime {
    LeadTime { median: Some(median), p10: Some(p10), p90: Some(p90) }
}

#[allow(clippy::too_many_arguments)]
fn fig(rule: &str, alerts: u64, tp: u64, fp: u64, fn_: u64, precision: Option<f64>, recall: Option<f64>, l: LeadTime) -> Figures {
    Figures {
        rule: rule.into(),
        alerts,
        true_positives: tp,
        false_positives: fp,
        false_negatives: fn_,
        precision,
        recall,
        lead_time_days: l,
    }
}

#[test]
fn any_risk_alert_counts_tp_fp_fn_and_lead_times_by_hand() {
    let e = run();
    // TP: a01, a02, a03 (tie), a04 (exactly 90 days), a08 twice. FN: a05 (91 days), a06 (alert
    // after), a07 (no history), a14. FP: a05, a06, a09 (two windows), a11.
    // Leads sorted: 0, 10, 10, 40, 80, 90 → median 25, p10 5, p90 85.
    assert_eq!(e.risk.any, fig("any", 14, 6, 5, 4, Some(0.545), Some(0.6), lead(25.0, 5.0, 85.0)));
    assert_eq!(e.risk.outcomes, 10);
    assert_eq!(e.risk.targets, vec!["churned", "downgraded"]);
}

#[test]
fn per_rule_figures_count_every_rule_an_alert_names() {
    let e = run();
    let rules: Vec<&str> = e.risk.rules.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(rules, vec!["entered_red", "inactive", "silent_decline", "ticket_spike"]);
    let by = |r: &str| e.risk.rules.iter().find(|f| f.rule == r).unwrap().clone();
    // a03 (0), a04 (90), a08's churn (10); no false alarm.
    assert_eq!(by("entered_red"), fig("entered_red", 3, 3, 0, 7, Some(1.0), Some(0.3), lead(10.0, 2.0, 74.0)));
    // a02 (80, from its first alert); a06 after its churn is a false alarm.
    assert_eq!(by("inactive"), fig("inactive", 3, 1, 1, 9, Some(0.5), Some(0.1), lead(80.0, 80.0, 80.0)));
    // a01 (40), a02 through `also` (60), a08's downgrade (10); a05 and a09's two windows are false.
    assert_eq!(by("silent_decline"), fig("silent_decline", 8, 3, 3, 7, Some(0.5), Some(0.3), lead(40.0, 16.0, 56.0)));
    assert_eq!(by("ticket_spike"), fig("ticket_spike", 1, 0, 1, 10, Some(0.0), Some(0.0), LeadTime::default()));
}

#[test]
fn opportunity_alerts_are_scored_against_expansions() {
    let e = run();
    assert_eq!(e.opportunity.targets, vec!["expanded"]);
    let expected = fig("any", 2, 1, 1, 0, Some(0.5), Some(1.0), lead(30.0, 30.0, 30.0));
    assert_eq!(e.opportunity.any, expected);
    assert_eq!(e.opportunity.rules, vec![Figures { rule: "expansion_candidate".into(), ..expected }]);
}

#[test]
fn bands_at_the_cut_off_and_unknown_accounts() {
    let e = run();
    let b = &e.bands.by_outcome;
    // churned: a01 red (day 20), a02 yellow, a05 green, a08 yellow (day 120), a14 red (its update
    // at day 10, before the cut-off at 30); a03, a06, a07 never scored.
    assert_eq!(b.churned, BandCounts { red: 2, yellow: 2, green: 1, none: 3 });
    // a08's downgrade at day 30: cut-off at day 0, exactly its first update (at or before counts).
    assert_eq!(b.downgraded, BandCounts { red: 0, yellow: 0, green: 1, none: 1 });
    assert_eq!(b.renewed, BandCounts { red: 0, yellow: 0, green: 2, none: 0 });
    assert_eq!(b.expanded, BandCounts { red: 0, yellow: 0, green: 1, none: 0 });
    let s = e.bands.churned_or_downgraded_share;
    assert_eq!((s.red, s.yellow, s.green, s.none), (Some(1.0), Some(1.0), Some(0.4), Some(1.0)));
    assert_eq!(e.bands.cutoff_after_history, 1, "a08's churn at day 150 is read at day 120, after the end (day 100)");
    assert_eq!(e.unknown_accounts, Unknown { outcomes: 2, accounts: vec!["ghost".into()] });
    let counts: Vec<(&str, u64)> = e.outcomes.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(counts, vec![("churned", 8), ("downgraded", 2), ("expanded", 1), ("renewed", 2)]);
}

#[test]
fn band_at_reads_the_last_update_at_or_before_the_instant() {
    let (h, _, _) = fixture();
    assert_eq!(h.band_at("a08", d(0) - 1), None);
    assert_eq!(h.band_at("a08", d(0)), Some(Band::Green));
    assert_eq!(h.band_at("a08", d(129)), Some(Band::Yellow));
    assert_eq!(h.band_at("a08", d(1000)), Some(Band::Red));
    assert_eq!(h.band_at("nobody", d(0)), None);
}

#[test]
fn a_wider_horizon_catches_what_a_narrow_one_misses() {
    let (h, outcomes, known) = fixture();
    let e = evaluate(&h, &outcomes, |a| known.contains(a), &Options { horizon_days: 91, ..opts() });
    // a05's alert is now 91 days ahead: inside.
    assert_eq!((e.risk.any.true_positives, e.risk.any.false_negatives), (7, 3));
}

#[test]
fn rules_that_never_fired_still_get_a_row_when_asked_and_differences_subtract() {
    let (h, outcomes, known) = fixture();
    let mut o = opts();
    o.rules.insert((AlertKind::Risk, "usage_drop".into()));
    let e = evaluate(&h, &outcomes, |a| known.contains(a), &o);
    let row = e.risk.rules.iter().find(|f| f.rule == "usage_drop").unwrap();
    assert_eq!(*row, fig("usage_drop", 0, 0, 0, 10, None, Some(0.0), LeadTime::default()));

    let same = differences(&e, &e);
    assert!(same.groups.iter().all(|g| g.true_positives == 0 && g.precision.is_none_or(|p| p == 0.0)));
    assert_eq!(same.bands, BandsDelta::default());
    let base = run();
    let diff = differences(&base, &e);
    assert!(diff.groups.iter().all(|g| g.rule != "usage_drop"), "only rows both sides have");
    let mut fewer = fixture().0;
    fewer.alerts.remove("a01");
    let worse = evaluate(&fewer, &outcomes, |a| known.contains(a), &opts());
    let any = differences(&base, &worse).groups.into_iter().find(|g| g.rule == "any" && g.kind == AlertKind::Risk).unwrap();
    assert_eq!((any.true_positives, any.false_negatives, any.recall), (-1, 1, Some(-0.1)));
}

#[test]
fn the_table_shows_every_group_and_band() {
    let (h, outcomes, known) = fixture();
    let e = evaluate(&h, &outcomes, |a| known.contains(a), &opts());
    let report = Report {
        horizon_days: 90,
        band_at_days: 30,
        outcome_files: Default::default(),
        configs: Configs { evaluation: "built-in defaults".into(), compare: None },
        evaluation: e.clone(),
        compare: None,
        differences: None,
    };
    let text = render::report(&report);
    for needle in ["any risk alert", "silent_decline", "any opportunity alert", "churned or downgraded", "25.0", "0.545", "ghost"] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    let both = render::report(&Report { compare: Some(e), ..report });
    assert!(both.contains("Δrecall") && both.contains("+0.000"), "{both}");
}

proptest! {
    /// Whatever the alerts and outcomes: TP + FN is the number of target outcomes, a single rule
    /// never catches more than "any", and every lead time lies within the horizon.
    #[test]
    fn counts_are_consistent(
        alerts in prop::collection::vec((0..4usize, 0i64..300, 0..3usize), 0..40),
        outcomes in prop::collection::vec((0..5usize, 0..4usize, 0i64..300), 0..20),
    ) {
        let rules = ["r0", "r1", "r2"];
        let mut h = History::default();
        for (a, day, r) in &alerts {
            h.record(&format!("a{a}"), d(*day), AlertKind::Risk, &[rules[*r], rules[(*r + 1) % 3]]);
        }
        let os: Vec<Outcome> = outcomes.iter().map(|(a, k, day)| o(&format!("a{a}"), OutcomeKind::ALL[*k], *day)).collect();
        let e = evaluate(&h, &os, |a| a != "a4", &Options { horizon_days: 60, band_at_days: 10, rules: BTreeSet::new() });
        let targets = os.iter().filter(|o| o.kind.is_bad() && o.account_id != "a4").count() as u64;
        prop_assert_eq!(e.risk.any.true_positives + e.risk.any.false_negatives, targets);
        prop_assert_eq!(e.risk.any.alerts, alerts.len() as u64);
        for f in &e.risk.rules {
            prop_assert!(f.true_positives <= e.risk.any.true_positives);
            prop_assert_eq!(f.true_positives + f.false_negatives, targets);
            prop_assert!(f.false_positives <= f.alerts);
        }
        for l in [e.risk.any.lead_time_days.p10, e.risk.any.lead_time_days.p90] {
            prop_assert!(l.is_none_or(|x| (0.0..=60.0).contains(&x)));
        }
        prop_assert_eq!(e.bands.by_outcome.churned.total(), e.outcomes["churned"]);
    }
}
