//! Back-test figures: how well a configuration's alerts and bands foresaw what customers did.
//! Pure: the alerts and score updates a replay emitted, the outcome labels and the set of
//! accounts the replay saw go in; precision, recall, lead times and band tables come out. No I/O,
//! and nothing here ever feeds back into scores or alerts.
//!
//! The unit is a *prediction window* of `horizon` days. An alert says "this account will churn or
//! downgrade within the horizon" (an opportunity alert: "will expand"). For each group of alerts
//! (one rule, or any alert of a kind):
//! - a target outcome (churned/downgraded; expanded for opportunities) with at least one alert of
//!   the group at or before it and at most `horizon` days earlier is a true positive, its lead time
//!   the days from the first such alert to the outcome; without one, a false negative;
//! - an alert is confirmed when such an outcome follows it; unconfirmed alerts are false alarms,
//!   grouped into windows: a false positive starts at an unconfirmed alert and covers the
//!   unconfirmed alerts of the same account in the `horizon` days after it.
//!
//! Outcomes of accounts the replay never saw are counted apart and left out of every figure.

pub mod render;

use std::collections::{BTreeMap, BTreeSet};

use compact_str::CompactString;
use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::core::{Alert, Band, ScoreUpdate};
use crate::event::timestamp::DAY_MS;
use crate::outcome::{Outcome, OutcomeKind, ReadStats};

/// What an alert is about: a risk to act on, or an opportunity to grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    Risk,
    Opportunity,
}

impl AlertKind {
    /// Whether `outcome` is what alerts of this kind foresee.
    pub fn targets(self, outcome: OutcomeKind) -> bool {
        match self {
            AlertKind::Risk => outcome.is_bad(),
            AlertKind::Opportunity => outcome == OutcomeKind::Expanded,
        }
    }

    fn target_names(self) -> Vec<&'static str> {
        OutcomeKind::ALL.into_iter().filter(|&o| self.targets(o)).map(OutcomeKind::name).collect()
    }
}

/// The one place that tells risk from opportunity: the alert's own `kind`.
pub fn alert_kind(alert: &Alert) -> AlertKind {
    match alert.rule.kind() {
        crate::core::alerts::AlertKind::Risk => AlertKind::Risk,
        crate::core::alerts::AlertKind::Opportunity => AlertKind::Opportunity,
    }
}

/// One alert as the evaluation keeps it: when, which kind, every rule it names (its rule, then
/// those in `also`).
#[derive(Debug, Clone, PartialEq)]
struct Mark {
    at_ms: i64,
    kind: AlertKind,
    rules: Vec<CompactString>,
}

/// An alert as `(account, time, is risk, rules named)`.
pub type AlertRow<'a> = (&'a str, i64, bool, Vec<&'a str>);
/// A band change as `(account, time, band)`.
pub type BandRow<'a> = (&'a str, i64, &'static str);

/// What the evaluation needs of a replay's output, kept as it streams by: every alert, and each
/// account's band changes (from its score updates).
#[derive(Debug, Default)]
pub struct History {
    alerts: FxHashMap<CompactString, Vec<Mark>>,
    bands: FxHashMap<CompactString, Vec<(i64, Band)>>,
    /// The replay's last stream time.
    end_ms: Option<i64>,
}

impl History {
    pub fn record_alert(&mut self, a: &Alert) {
        let rules: Vec<&str> = std::iter::once(a.rule.name()).chain(a.also.iter().map(|r| r.name())).collect();
        self.record(&a.account_id, a.event_time_ms, alert_kind(a), &rules);
    }

    /// Records an alert on `account` at `at_ms` naming `rules` (the first is its own rule).
    pub fn record(&mut self, account: &str, at_ms: i64, kind: AlertKind, rules: &[&str]) {
        let mark = Mark { at_ms, kind, rules: rules.iter().map(|&r| r.into()).collect() };
        match self.alerts.get_mut(account) {
            Some(v) => v.push(mark),
            None => {
                self.alerts.insert(account.into(), vec![mark]);
            }
        }
    }

    pub fn record_score(&mut self, s: &ScoreUpdate) {
        self.record_band(&s.account_id, s.event_time_ms, s.band);
    }

    /// Records that `account` was scored in `band` at `at_ms`; only changes are kept.
    pub fn record_band(&mut self, account: &str, at_ms: i64, band: Band) {
        match self.bands.get_mut(account) {
            Some(v) => {
                if v.last().is_none_or(|&(_, b)| b != band) {
                    v.push((at_ms, band));
                }
            }
            None => {
                self.bands.insert(account.into(), vec![(at_ms, band)]);
            }
        }
    }

    /// The replay's last stream time (band cut-offs after it are counted as such).
    pub fn set_end(&mut self, end_ms: Option<i64>) {
        self.end_ms = end_ms;
    }

    /// The band of the account's last score update at or before `t` (`None`: not scored by then).
    pub fn band_at(&self, account: &str, t: i64) -> Option<Band> {
        let v = self.bands.get(account)?;
        let n = v.partition_point(|&(at, _)| at <= t);
        n.checked_sub(1).map(|i| v[i].1)
    }

    /// Every alert as `(account, time, is risk, rules named)`, and every band change as
    /// `(account, time, band)` (for `generate::profile_report`).
    pub fn alerts_and_bands(&self) -> (Vec<AlertRow<'_>>, Vec<BandRow<'_>>) {
        let alerts = self
            .alerts
            .iter()
            .flat_map(|(a, ms)| ms.iter().map(move |m| (a.as_str(), m.at_ms, m.kind == AlertKind::Risk, m.rules.iter().map(|r| r.as_str()).collect())))
            .collect();
        let bands = self.bands.iter().flat_map(|(a, v)| v.iter().map(move |&(t, b)| (a.as_str(), t, b.name()))).collect();
        (alerts, bands)
    }

    /// Every (kind, rule) named by an alert.
    pub fn rules(&self) -> BTreeSet<(AlertKind, String)> {
        self.alerts.values().flatten().flat_map(|m| m.rules.iter().map(|r| (m.kind, r.to_string()))).collect()
    }
}

/// Settings of an evaluation.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub horizon_days: u32,
    /// Bands are read this many days before each outcome.
    pub band_at_days: u32,
    /// Rules reported even if they never fired here (so two evaluations have the same rows).
    pub rules: BTreeSet<(AlertKind, String)>,
}

/// Days from the first alert in the horizon to the outcome, over the true positives.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LeadTime {
    pub median: Option<f64>,
    pub p10: Option<f64>,
    pub p90: Option<f64>,
}

/// The figures of one group of alerts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// A rule's name, or `any` for every alert of the kind.
    pub rule: String,
    pub alerts: u64,
    pub true_positives: u64,
    pub false_positives: u64,
    pub false_negatives: u64,
    /// TP / (TP + FP); `null` without any.
    pub precision: Option<f64>,
    /// TP / (TP + FN); `null` without a target outcome.
    pub recall: Option<f64>,
    pub lead_time_days: LeadTime,
}

/// Risk alerts against churned/downgraded, or opportunity alerts against expanded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Section {
    pub targets: Vec<&'static str>,
    /// Target outcomes evaluated.
    pub outcomes: u64,
    pub any: Figures,
    pub rules: Vec<Figures>,
}

/// Outcomes by band, red … none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct BandCounts {
    pub red: u64,
    pub yellow: u64,
    pub green: u64,
    /// Not scored yet at the cut-off (no score update at or before it).
    pub none: u64,
}

impl BandCounts {
    fn add(&mut self, band: Option<Band>) {
        match band {
            Some(Band::Red) => self.red += 1,
            Some(Band::Yellow) => self.yellow += 1,
            Some(Band::Green) => self.green += 1,
            None => self.none += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.red + self.yellow + self.green + self.none
    }
}

/// A share per band (`null` where the band holds no outcome).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct BandShares {
    pub red: Option<f64>,
    pub yellow: Option<f64>,
    pub green: Option<f64>,
    pub none: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BandsByOutcome {
    pub churned: BandCounts,
    pub downgraded: BandCounts,
    pub renewed: BandCounts,
    pub expanded: BandCounts,
}

impl BandsByOutcome {
    fn row(&mut self, k: OutcomeKind) -> &mut BandCounts {
        match k {
            OutcomeKind::Churned => &mut self.churned,
            OutcomeKind::Downgraded => &mut self.downgraded,
            OutcomeKind::Renewed => &mut self.renewed,
            OutcomeKind::Expanded => &mut self.expanded,
        }
    }

    pub fn get(&self, k: OutcomeKind) -> &BandCounts {
        match k {
            OutcomeKind::Churned => &self.churned,
            OutcomeKind::Downgraded => &self.downgraded,
            OutcomeKind::Renewed => &self.renewed,
            OutcomeKind::Expanded => &self.expanded,
        }
    }
}

/// Each outcome's band `cutoff_days` before it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BandTable {
    pub cutoff_days: u32,
    pub by_outcome: BandsByOutcome,
    /// Of the outcomes in each band at the cut-off, the share that churned or downgraded.
    pub churned_or_downgraded_share: BandShares,
    /// Outcomes whose cut-off lies after the replay's last stream time: their band is the last
    /// one the replay scored.
    pub cutoff_after_history: u64,
}

/// Outcomes for accounts the replay never saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Unknown {
    pub outcomes: u64,
    /// Sorted, each once.
    pub accounts: Vec<String>,
}

/// Everything one configuration's replay scored against the outcomes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Outcomes of known accounts, by kind.
    pub outcomes: BTreeMap<&'static str, u64>,
    pub unknown_accounts: Unknown,
    pub risk: Section,
    pub opportunity: Section,
    pub bands: BandTable,
}

/// `evaluation.json`: the evaluation of `--config` and, with `--compare`, of the other
/// configuration and the differences (compare − evaluation).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub horizon_days: u32,
    pub band_at_days: u32,
    pub outcome_files: ReadStats,
    pub configs: Configs,
    pub evaluation: Evaluation,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compare: Option<Evaluation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub differences: Option<Differences>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Configs {
    pub evaluation: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compare: Option<String>,
}

/// compare − evaluation, per group (`null` where either side has no value).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delta {
    pub kind: AlertKind,
    pub rule: String,
    pub true_positives: i64,
    pub false_positives: i64,
    pub false_negatives: i64,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub lead_time_median_days: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Differences {
    pub groups: Vec<Delta>,
    /// compare − evaluation of the band table, per outcome kind.
    pub bands: BandsDelta,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct BandCountsDelta {
    pub red: i64,
    pub yellow: i64,
    pub green: i64,
    pub none: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BandsDelta {
    pub churned: BandCountsDelta,
    pub downgraded: BandCountsDelta,
    pub renewed: BandCountsDelta,
    pub expanded: BandCountsDelta,
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f + 0.0
}

fn ratio(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| round(n as f64 / d as f64, 3))
}

/// The `p`-quantile (0..=1) of sorted values, interpolating linearly between the closest ranks.
fn quantile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let rank = p * last as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64))
}

fn lead_time(mut days: Vec<f64>) -> LeadTime {
    days.sort_by(f64::total_cmp);
    let q = |p| quantile(&days, p).map(|d| round(d, 1));
    LeadTime { median: q(0.5), p10: q(0.1), p90: q(0.9) }
}

/// Counts for one group of alerts over every account.
fn figures<'a>(
    rule: &str,
    kind: AlertKind,
    names_rule: impl Fn(&Mark) -> bool,
    accounts: &BTreeSet<&'a str>,
    history: &History,
    outcomes: &FxHashMap<&'a str, Vec<&'a Outcome>>,
    horizon_ms: i64,
) -> Figures {
    let (mut alerts, mut tp, mut fp, mut fn_) = (0, 0, 0, 0);
    let mut leads = Vec::new();
    for &account in accounts {
        let mut times: Vec<i64> = history
            .alerts
            .get(account)
            .map(|v| v.iter().filter(|m| m.kind == kind && names_rule(m)).map(|m| m.at_ms).collect())
            .unwrap_or_default();
        times.sort_unstable();
        alerts += times.len() as u64;
        let mut targets: Vec<i64> = outcomes
            .get(account)
            .map(|v| v.iter().filter(|o| kind.targets(o.kind)).map(|o| o.ts_ms).collect())
            .unwrap_or_default();
        targets.sort_unstable();
        for &o in &targets {
            let first = times.partition_point(|&t| t < o.saturating_sub(horizon_ms));
            match times.get(first) {
                Some(&t) if t <= o => {
                    tp += 1;
                    leads.push((o - t) as f64 / DAY_MS as f64);
                }
                _ => fn_ += 1,
            }
        }
        // False alarms: unconfirmed alerts, one per horizon-long window starting at the first.
        let mut window_end: Option<i64> = None;
        for &t in &times {
            let next = targets.partition_point(|&o| o < t);
            let confirmed = targets.get(next).is_some_and(|&o| o - t <= horizon_ms);
            if confirmed || window_end.is_some_and(|end| t <= end) {
                continue;
            }
            fp += 1;
            window_end = Some(t.saturating_add(horizon_ms));
        }
    }
    Figures {
        rule: rule.to_string(),
        alerts,
        true_positives: tp,
        false_positives: fp,
        false_negatives: fn_,
        precision: ratio(tp, tp + fp),
        recall: ratio(tp, tp + fn_),
        lead_time_days: lead_time(leads),
    }
}

/// Scores `history` against `outcomes`. `known` says whether the replay saw an account.
pub fn evaluate(history: &History, outcomes: &[Outcome], known: impl Fn(&str) -> bool, opts: &Options) -> Evaluation {
    let horizon_ms = i64::from(opts.horizon_days) * DAY_MS;
    let mut unknown = Unknown::default();
    let mut by_account: FxHashMap<&str, Vec<&Outcome>> = FxHashMap::default();
    let mut counts: BTreeMap<&'static str, u64> = OutcomeKind::ALL.iter().map(|k| (k.name(), 0)).collect();
    for o in outcomes {
        if known(&o.account_id) {
            by_account.entry(o.account_id.as_str()).or_default().push(o);
            *counts.entry(o.kind.name()).or_default() += 1;
        } else {
            unknown.outcomes += 1;
            unknown.accounts.push(o.account_id.clone());
        }
    }
    unknown.accounts.sort_unstable();
    unknown.accounts.dedup();

    let accounts: BTreeSet<&str> =
        by_account.keys().copied().chain(history.alerts.keys().map(CompactString::as_str)).collect();
    let mut rules = history.rules();
    rules.extend(opts.rules.iter().cloned());
    let section = |kind: AlertKind| {
        let any = figures("any", kind, |_| true, &accounts, history, &by_account, horizon_ms);
        let per_rule = rules
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, r)| figures(r, kind, |m| m.rules.iter().any(|x| x == r), &accounts, history, &by_account, horizon_ms))
            .collect();
        Section {
            targets: kind.target_names(),
            outcomes: any.true_positives + any.false_negatives,
            any,
            rules: per_rule,
        }
    };

    let cutoff_ms = i64::from(opts.band_at_days) * DAY_MS;
    let mut bands = BandsByOutcome::default();
    let (mut bad, mut all) = (BandCounts::default(), BandCounts::default());
    let mut after = 0;
    for (account, list) in &by_account {
        for o in list {
            let at = o.ts_ms.saturating_sub(cutoff_ms);
            if history.end_ms.is_none_or(|end| at > end) {
                after += 1;
            }
            let band = history.band_at(account, at);
            bands.row(o.kind).add(band);
            all.add(band);
            if o.kind.is_bad() {
                bad.add(band);
            }
        }
    }
    let shares = BandShares {
        red: ratio(bad.red, all.red),
        yellow: ratio(bad.yellow, all.yellow),
        green: ratio(bad.green, all.green),
        none: ratio(bad.none, all.none),
    };
    Evaluation {
        outcomes: counts,
        unknown_accounts: unknown,
        risk: section(AlertKind::Risk),
        opportunity: section(AlertKind::Opportunity),
        bands: BandTable {
            cutoff_days: opts.band_at_days,
            by_outcome: bands,
            churned_or_downgraded_share: shares,
            cutoff_after_history: after,
        },
    }
}

fn sub(a: Option<f64>, b: Option<f64>, digits: i32) -> Option<f64> {
    Some(round(b? - a?, digits))
}

/// compare − evaluation for every group both sides have (they have the same rows when both were
/// given the union of rules).
pub fn differences(a: &Evaluation, b: &Evaluation) -> Differences {
    let mut groups = Vec::new();
    for (kind, sa, sb) in [(AlertKind::Risk, &a.risk, &b.risk), (AlertKind::Opportunity, &a.opportunity, &b.opportunity)] {
        let rows_a = std::iter::once(&sa.any).chain(&sa.rules);
        for fa in rows_a {
            let Some(fb) = std::iter::once(&sb.any).chain(&sb.rules).find(|f| f.rule == fa.rule) else { continue };
            groups.push(Delta {
                kind,
                rule: fa.rule.clone(),
                true_positives: fb.true_positives as i64 - fa.true_positives as i64,
                false_positives: fb.false_positives as i64 - fa.false_positives as i64,
                false_negatives: fb.false_negatives as i64 - fa.false_negatives as i64,
                precision: sub(fa.precision, fb.precision, 3),
                recall: sub(fa.recall, fb.recall, 3),
                lead_time_median_days: sub(fa.lead_time_days.median, fb.lead_time_days.median, 1),
            });
        }
    }
    let d = |k: OutcomeKind| {
        let (x, y) = (a.bands.by_outcome.get(k), b.bands.by_outcome.get(k));
        BandCountsDelta {
            red: y.red as i64 - x.red as i64,
            yellow: y.yellow as i64 - x.yellow as i64,
            green: y.green as i64 - x.green as i64,
            none: y.none as i64 - x.none as i64,
        }
    };
    Differences {
        groups,
        bands: BandsDelta {
            churned: d(OutcomeKind::Churned),
            downgraded: d(OutcomeKind::Downgraded),
            renewed: d(OutcomeKind::Renewed),
            expanded: d(OutcomeKind::Expanded),
        },
    }
}

#[cfg(test)]
mod tests;
