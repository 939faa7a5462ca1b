//! `kizashi tune`: a scorecard fitted to what the customers did, shown on a later period.
//!
//! One replay with the base configuration writes the feature rows (`replay --features`): each
//! account at its first scoring of each day, with its next outcome. Rows up to `--fit-until` fit;
//! the rows after it validate (a split by time, never at random). For each measure of the base
//! `default` scorecard, how well it ranks the accounts that churn or downgrade within `--horizon`
//! days (the area under the ROC curve, AUC) says its direction and its weight (how far from 0.5);
//! its red and green values are the 10th and 90th percentiles of its values on the fit rows. A
//! measure that ranks no better than chance (within 0.02 of 0.5) gets no weight, and the report
//! says so. The tuned scorecard replaces every scorecard but the onboarding one, its version one
//! above the base's, in a configuration file under `--out` that `--config` loads, with a comment
//! block saying what data, period and figures produced it. The report puts the base score's AUC
//! and the tuned one's side by side on both periods, so over-fitting shows.
//!
//! Then it confirms with a real `replay --compare` of the base and the tuned configuration against
//! the outcomes after `--fit-until` only: the alerts' precision, recall and lead time, as kizashi
//! would send them. This first version tunes the score's ranking (AUC); the search over rule
//! parameters for recall at a precision target is not built.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::config::{Settings, WeightedMeasure};
use crate::core::measures::Measure;

/// What `tune` reads and writes.
#[derive(Debug, Clone)]
pub struct TuneOptions {
    pub usage: Vec<PathBuf>,
    pub support: Vec<PathBuf>,
    pub accounts: Vec<PathBuf>,
    pub actions: Vec<PathBuf>,
    pub outcomes: Vec<PathBuf>,
    /// Days since 1970: rows on or before it fit, rows after it validate.
    pub fit_until: i32,
    /// A row is positive when the account churns or downgrades within this many days.
    pub horizon_days: i32,
    /// Where the replay's outputs, `features.csv`, `tuned.toml` and `report.txt` go.
    pub out: PathBuf,
    /// The clock for `ts_in_future` (epoch ms).
    pub now_ms: i64,
    /// How the base configuration is named in the report.
    pub config_label: String,
}

/// Fewest positive rows in the fit period `tune` fits on.
pub const MIN_POSITIVES: usize = 30;

/// One measure's verdict on the fit rows.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasureFit {
    pub measure: Measure,
    /// AUC of the measure's value for the positives (0.5: chance; below: lower values are riskier).
    pub auc: f64,
    /// Rows with a value.
    pub rows: usize,
    pub red: f64,
    pub green: f64,
    pub weight: f64,
}

/// What `tune` found.
#[derive(Debug, Clone)]
pub struct TuneReport {
    pub fits: Vec<MeasureFit>,
    /// (rows, positives) of the fit and the validation periods.
    pub fit_rows: (usize, usize),
    pub validation_rows: (usize, usize),
    /// AUC of `100 − score`: base and tuned, on the fit and on the validation rows.
    pub base_auc: (f64, f64),
    pub tuned_auc: (f64, f64),
    /// Risk alerts against the outcomes after `fit_until` (`replay --compare`): base and tuned.
    pub confirmed: Option<(crate::evaluation::Figures, crate::evaluation::Figures)>,
    pub config: PathBuf,
    pub text: String,
    /// Feature rows that could not be read (a text cell holding a comma), left out.
    pub skipped_rows: usize,
}

/// A feature row: its day, the base score, each measure's value, and whether it is positive.
struct Row {
    day: i32,
    score: f64,
    values: Vec<Option<f64>>,
    positive: bool,
}

/// Runs the replay, fits, writes `tuned.toml` and `report.txt` under `opts.out`.
pub fn tune(settings: &Settings, opts: &TuneOptions) -> Result<TuneReport> {
    std::fs::create_dir_all(&opts.out).with_context(|| format!("creating {}", opts.out.display()))?;
    let features = opts.out.join("features.csv");
    let replay = replay_options(opts, "base", Some(features.clone()));
    let backtest = super::replay::BacktestOptions {
        outcomes: opts.outcomes.clone(),
        horizon_days: opts.horizon_days.max(1) as u32,
        band_at_days: 30,
        config_label: opts.config_label.clone(),
        compare: None,
        truth: None,
    };
    super::replay::run_backtest(settings, &replay, Some(&backtest))?;
    let (rows, skipped_rows) = read_rows(&features, opts.horizon_days)?;
    let (fit, validation): (Vec<&Row>, Vec<&Row>) = rows.iter().partition(|r| r.day <= opts.fit_until);
    let positives = |rs: &[&Row]| rs.iter().filter(|r| r.positive).count();
    if positives(&fit) < MIN_POSITIVES {
        bail!(
            "the fit period has {} rows of accounts that churned or downgraded within {} days; tune needs at least {MIN_POSITIVES} (move --fit-until later, or give more history or outcomes)",
            positives(&fit),
            opts.horizon_days
        );
    }
    let base_card = settings.scorecards.get(&settings.scoring.default_scorecard).context("the base configuration has no default scorecard")?;
    let (fits, tuned) = fit_card(base_card, &fit)?;
    let score = |r: &Row| tuned_score(&tuned, r);
    let auc_of = |rs: &[&Row], s: &dyn Fn(&Row) -> f64| auc(rs.iter().map(|r| (100.0 - s(r), r.positive)));
    let base_auc = (auc_of(&fit, &|r| r.score), auc_of(&validation, &|r| r.score));
    let tuned_auc = (auc_of(&fit, &score), auc_of(&validation, &score));
    let report = TuneReport {
        fit_rows: (fit.len(), positives(&fit)),
        validation_rows: (validation.len(), positives(&validation)),
        base_auc,
        tuned_auc,
        config: opts.out.join("tuned.toml"),
        text: String::new(),
        confirmed: None,
        skipped_rows,
        fits,
    };
    let mut text = render(&report, opts, base_card);
    std::fs::write(&report.config, tuned_config(settings, &tuned, &text)).with_context(|| format!("writing {}", report.config.display()))?;
    let confirmed = confirm(settings, &report.config, opts, &backtest)?;
    if let Some((b, t)) = &confirmed {
        let _ = writeln!(text, "risk alerts against the outcomes after {} (replay --compare):", crate::event::timestamp::format_day(opts.fit_until));
        for (name, f) in [("base", b), ("tuned", t)] {
            let p = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.3}"));
            let _ = writeln!(text, "  {name:<6} precision {}  recall {}  lead time median {} days  ({} alerts)", p(f.precision), p(f.recall), p(f.lead_time_days.median), f.alerts);
        }
        std::fs::write(&report.config, tuned_config(settings, &tuned, &text))?;
    }
    std::fs::write(opts.out.join("report.txt"), &text)?;
    Ok(TuneReport { text, confirmed, ..report })
}

/// Each measure of `base`'s verdict on the fit rows, and the tuned scorecard: the measures better
/// than chance, weights adding up to 100, a critical measure kept critical.
fn fit_card(base: &crate::config::ScorecardConfig, fit: &[&Row]) -> Result<(Vec<MeasureFit>, Vec<WeightedMeasure>)> {
    let fits: Vec<MeasureFit> = base.measures.iter().filter_map(|m| Measure::from_name(&m.measure)).map(|m| fit_measure(m, fit)).collect();
    let total: f64 = fits.iter().map(|f| f.weight).sum();
    if total <= 0.0 {
        bail!("no measure of the default scorecard ranks churn better than chance on the fit period: nothing to tune");
    }
    let tuned = fits
        .iter()
        .filter(|f| f.weight > 0.0)
        .map(|f| {
            let critical = base.measures.iter().any(|m| m.measure == f.measure.name() && m.critical);
            WeightedMeasure { measure: f.measure.name().into(), weight: (f.weight / total * 200.0).round() / 2.0, red: Some(f.red), green: Some(f.green), critical }
        })
        .collect();
    Ok((fits, tuned))
}

/// A replay of `opts`' files into `out` under `opts.out`, one partition, a temporary state.
fn replay_options(opts: &TuneOptions, out: &str, features: Option<PathBuf>) -> super::replay::ReplayOptions {
    super::replay::ReplayOptions {
        usage: opts.usage.clone(),
        support: opts.support.clone(),
        accounts: opts.accounts.clone(),
        actions: opts.actions.clone(),
        out: opts.out.join(out),
        partitions: 1,
        until_ms: None,
        now_ms: opts.now_ms,
        state_dir: None,
        batch: 200_000,
        serve: None,
        features,
    }
}

/// Replays base and tuned side by side (`--compare`) against the outcomes after `fit_until`; `None`
/// when there are none.
fn confirm(
    settings: &Settings,
    tuned: &Path,
    opts: &TuneOptions,
    backtest: &super::replay::BacktestOptions,
) -> Result<Option<(crate::evaluation::Figures, crate::evaluation::Figures)>> {
    let later = opts.out.join("validation-outcomes.jsonl");
    let mut kept = String::new();
    for path in &opts.outcomes {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            let ms = match &v["ts"] {
                serde_json::Value::String(s) => crate::event::timestamp::parse_rfc3339_ms(s)
                    .or_else(|| crate::event::timestamp::parse_date_day(s).map(|d| i64::from(d) * crate::event::timestamp::DAY_MS)),
                serde_json::Value::Number(n) => n.as_i64(),
                _ => None,
            };
            if ms.is_some_and(|t| crate::event::timestamp::day_of(t) > opts.fit_until) {
                kept.push_str(line);
                kept.push('\n');
            }
        }
    }
    if kept.is_empty() {
        return Ok(None);
    }
    std::fs::write(&later, kept)?;
    let tuned_settings = crate::config::load(Some(tuned), Vec::new()).map_err(|p| anyhow::anyhow!("the tuned configuration does not load: {p}"))?;
    let replay = replay_options(opts, "confirm", None);
    let b = super::replay::BacktestOptions {
        outcomes: vec![later],
        compare: Some(("tuned.toml".into(), tuned_settings)),
        ..backtest.clone()
    };
    let summary = super::replay::run_backtest(settings, &replay, Some(&b))?;
    Ok(summary.evaluation.and_then(|r| Some((r.evaluation.risk.any.clone(), r.compare?.risk.any.clone()))))
}

/// The rows of a `--features` file, labelled.
fn read_rows(path: &Path, horizon: i32) -> Result<(Vec<Row>, usize)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().context("an empty features file")?.split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).with_context(|| format!("no `{name}` column"));
    let (day, score, outcome, until) = (col("day")?, col("score")?, col("outcome")?, col("days_to_outcome")?);
    let measures: Vec<usize> = Measure::ALL.iter().map(|m| col(m.name())).collect::<Result<_>>()?;
    let (mut rows, mut skipped) = (Vec::new(), 0);
    for line in lines {
        // Text cells (the account id, segment) may be quoted with commas; the numeric columns are
        // counted from the end, the day and score from a start that has no such cell before them.
        let cells: Vec<&str> = line.split(',').collect();
        let d = (cells.len() == header.len()).then(|| crate::event::timestamp::parse_date_day(cells[day])).flatten();
        let Some(d) = d else {
            skipped += 1;
            continue;
        };
        let num = |i: usize| cells[i].parse::<f64>().ok();
        let positive = matches!(cells[outcome], "churned" | "downgraded") && cells[until].parse::<i32>().is_ok_and(|n| n <= horizon);
        rows.push(Row { day: d, score: num(score).unwrap_or(0.0), values: measures.iter().map(|&i| num(i)).collect(), positive });
    }
    Ok((rows, skipped))
}

/// A measure's direction, weight and red/green values from the fit rows.
fn fit_measure(m: Measure, rows: &[&Row]) -> MeasureFit {
    let i = m as usize;
    let mut vals: Vec<f64> = rows.iter().filter_map(|r| r.values[i]).filter(|v| v.is_finite()).collect();
    let a = auc(rows.iter().filter_map(|r| r.values[i].map(|v| (v, r.positive))));
    vals.sort_by(f64::total_cmp);
    let q = |p: f64| if vals.is_empty() { 0.0 } else { vals[((vals.len() - 1) as f64 * p).round() as usize] };
    let (lo, hi) = (q(0.1), q(0.9));
    // Higher values riskier (AUC above 0.5): red at the high end.
    let (red, green) = if a > 0.5 { (hi, lo) } else { (lo, hi) };
    let strength = (a - 0.5).abs() - 0.02;
    let weight = if strength > 0.0 && hi > lo { strength } else { 0.0 };
    MeasureFit { measure: m, auc: a, rows: vals.len(), red, green, weight }
}

/// The tuned scorecard's score of a row: the weighted mean of the points of its measures with data.
fn tuned_score(card: &[WeightedMeasure], r: &Row) -> f64 {
    let (mut sum, mut w) = (0.0, 0.0);
    for m in card {
        let Some(v) = Measure::from_name(&m.measure).and_then(|x| r.values[x as usize]) else { continue };
        let (red, green) = (m.red.unwrap_or(0.0), m.green.unwrap_or(1.0));
        let t = if green == red { 1.0 } else { ((v - red) / (green - red)).clamp(0.0, 1.0) };
        sum += m.weight * t * 100.0;
        w += m.weight;
    }
    if w > 0.0 { sum / w } else { 50.0 }
}

/// Area under the ROC curve of `(value, positive)` pairs: the chance a positive's value is above a
/// negative's (ties count half); 0.5 without both kinds.
pub fn auc(pairs: impl Iterator<Item = (f64, bool)>) -> f64 {
    let mut v: Vec<(f64, bool)> = pairs.filter(|(x, _)| x.is_finite()).collect();
    let pos = v.iter().filter(|p| p.1).count() as f64;
    let neg = v.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return 0.5;
    }
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Rank sum of the positives, ties at their mean rank.
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < v.len() {
        let mut j = i;
        while j < v.len() && v[j].0 == v[i].0 {
            j += 1;
        }
        let mean_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += mean_rank * v[i..j].iter().filter(|p| p.1).count() as f64;
        i = j;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

fn render(r: &TuneReport, opts: &TuneOptions, base: &crate::config::ScorecardConfig) -> String {
    let fmt = crate::event::timestamp::format_day;
    let mut t = String::new();
    let _ = writeln!(t, "kizashi tune: base {}, fit on rows up to {}, validated on the rows after", opts.config_label, fmt(opts.fit_until));
    let _ = writeln!(t, "a row is positive when the account churns or downgrades within {} days", opts.horizon_days);
    let _ = writeln!(t, "rows (positive): fit {} ({}), validation {} ({})", r.fit_rows.0, r.fit_rows.1, r.validation_rows.0, r.validation_rows.1);
    if r.skipped_rows > 0 {
        let _ = writeln!(t, "{} rows left out: an account id or segment holding a comma", r.skipped_rows);
    }
    let _ = writeln!(t, "AUC of 100 - score        fit     validation");
    let _ = writeln!(t, "  base (version {})       {:.3}   {:.3}", base.version, r.base_auc.0, r.base_auc.1);
    let _ = writeln!(t, "  tuned (version {})      {:.3}   {:.3}", base.version + 1, r.tuned_auc.0, r.tuned_auc.1);
    let _ = writeln!(t, "measure                      AUC    rows    red → green     weight");
    for f in &r.fits {
        let verdict = if f.weight > 0.0 { "" } else { "  (no better than chance: left out)" };
        let _ = writeln!(t, "  {:<26} {:.3} {:>7} {:>8.3} → {:<8.3} {:.3}{verdict}", f.measure.name(), f.auc, f.rows, f.red, f.green, f.weight);
    }
    t
}

/// The base configuration with every scorecard but the onboarding one replaced by `card`, its
/// version one above, as TOML with `report` as a comment block on top.
fn tuned_config(settings: &Settings, card: &[WeightedMeasure], report: &str) -> String {
    let mut s = settings.clone();
    let onboarding = s.scoring.onboarding_scorecard.clone();
    for (name, c) in s.scorecards.iter_mut() {
        if *name != onboarding {
            c.version += 1;
            c.measures = card.to_vec();
        }
    }
    let mut out = String::from("# Written by `kizashi tune`. What produced it:\n");
    for l in report.lines() {
        out.push_str("# ");
        out.push_str(l);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&s.to_toml());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_is_the_chance_a_positive_ranks_above_a_negative() {
        assert_eq!(auc([(1.0, false), (2.0, true)].into_iter()), 1.0);
        assert_eq!(auc([(1.0, true), (2.0, false)].into_iter()), 0.0);
        assert_eq!(auc([(1.0, true), (1.0, false)].into_iter()), 0.5, "a tie counts half");
        assert_eq!(auc([(1.0, true), (3.0, true), (2.0, false)].into_iter()), 0.5);
        assert_eq!(auc([(1.0, false)].into_iter()), 0.5, "no positive");
    }
}
