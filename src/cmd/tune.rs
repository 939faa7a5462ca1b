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
//! would send them.
//!
//! The red band's edge is searched for recall at a precision target (`--precision`, 0.8): on the
//! fit period, an account is flagged when its tuned score falls below the edge on any of its rows;
//! the edge kept is the highest whose flagged accounts are at least that precise (the most churners
//! caught at that precision), written as `scoring.red_below` (and `green_from` kept above it). A
//! target no edge reaches is said, and the base's edge is kept. Not searched yet: weights beyond their AUC, rule parameters.
//!
//! The fitted card replaces the base's measures only if it ranks the fit period's churners better
//! than the base does (by `MIN_GAIN` AUC): a period with no signal the base misses gets the base
//! back, so tune does not invent one.

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
    /// The precision the red band's edge is searched for (`--precision`).
    pub precision: f64,
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
    /// Critical in the base scorecard: its red and green are the base's, kept.
    pub critical: bool,
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
    /// Risk alerts against the outcomes after `fit_until` (`replay --compare`): base and tuned,
    /// all rules (`any`) first, then each rule.
    pub confirmed: Option<(Vec<crate::evaluation::Figures>, Vec<crate::evaluation::Figures>)>,
    pub config: PathBuf,
    pub text: String,
    /// Feature rows that could not be read (a text cell holding a comma), left out.
    pub skipped_rows: usize,
    /// The red band's edge found, and what it gives on the fit and on the validation period.
    pub edge: Edge,
    /// The fitted card's AUC on the fit rows.
    pub fitted_fit_auc: f64,
    /// The fitted card did not beat the base on the fit rows by `MIN_GAIN`: the base's measures
    /// are kept (`tuned_auc` is then the base's), only the red edge is tuned.
    pub kept_base: bool,
}

/// AUC a fitted card must gain over the base on the fit rows to replace the base's measures.
pub const MIN_GAIN: f64 = 0.01;

/// The red band's edge (`scoring.red_below`) searched on the fit period's accounts.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub red_below: f64,
    /// Whether some edge reached the precision target on the fit period.
    pub reached: bool,
    /// (precision, recall, accounts flagged) of accounts ever below the edge: fit, validation.
    pub fit: (f64, f64, usize),
    pub validation: (f64, f64, usize),
}

/// A feature row: its account and day, the base score, each measure's value, and whether it is
/// positive.
struct Row {
    account: String,
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
    let (fits, fitted) = fit_card(base_card, &fit)?;
    let auc_of = |rs: &[&Row], s: &dyn Fn(&Row) -> f64| auc(rs.iter().map(|r| (100.0 - s(r), r.positive)));
    let base_auc = (auc_of(&fit, &|r| r.score), auc_of(&validation, &|r| r.score));
    // The fitted card is kept only if it ranks the fit period's churners better than the base
    // (the fit is each measure's own AUC, not the card's: on a period without signal it can do
    // worse even there); else the base's measures stay and only the red edge is tuned.
    let fitted_fit_auc = auc_of(&fit, &|r| tuned_score(&fitted, r));
    let kept_base = fitted_fit_auc < base_auc.0 + MIN_GAIN;
    let tuned = if kept_base { base_card.measures.clone() } else { fitted };
    let score = |r: &Row| if kept_base { r.score } else { tuned_score(&tuned, r) };
    let tuned_auc = (auc_of(&fit, &score), auc_of(&validation, &score));
    let edge = search_edge(&fit, &validation, &score, opts.precision, settings.scoring.red_below);
    let report = TuneReport {
        edge,
        fitted_fit_auc,
        kept_base,
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
    std::fs::write(&report.config, tuned_config(settings, &tuned, report.edge.red_below, &text)).with_context(|| format!("writing {}", report.config.display()))?;
    let confirmed = confirm(settings, &report.config, opts, &backtest)?;
    if let Some((b, t)) = &confirmed {
        // Alerts per account per month: over the replayed span, of the accounts with rows.
        let accounts = rows.iter().map(|r| r.account.as_str()).collect::<std::collections::HashSet<_>>().len().max(1) as f64;
        let (first, last) = rows.iter().fold((i32::MAX, i32::MIN), |(a, b), r| (a.min(r.day), b.max(r.day)));
        let months = (f64::from(last.saturating_sub(first) + 1) / 30.44).max(1.0 / 30.44);
        let _ = writeln!(text, "risk alerts against the outcomes after {} (replay --compare), base → tuned:", crate::event::timestamp::format_day(opts.fit_until));
        let p = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.3}"));
        for (fb, ft) in b.iter().zip(t) {
            if fb.alerts + ft.alerts == 0 && fb.rule != "any" {
                continue;
            }
            let rate = |n: u64| n as f64 / accounts / months;
            let _ = writeln!(
                text,
                "  {:<20} alerts {:>5} → {:<5} ({:.3} → {:.3} per account-month)  precision {} → {}  recall {} → {}  lead time median {} → {} days",
                fb.rule, fb.alerts, ft.alerts, rate(fb.alerts), rate(ft.alerts), p(fb.precision), p(ft.precision), p(fb.recall), p(ft.recall), p(fb.lead_time_days.median), p(ft.lead_time_days.median)
            );
        }
        std::fs::write(&report.config, tuned_config(settings, &tuned, report.edge.red_below, &text))?;
    }
    std::fs::write(opts.out.join("report.txt"), &text)?;
    Ok(TuneReport { text, confirmed, ..report })
}

/// Each measure of `base`'s verdict on the fit rows, and the tuned scorecard: the measures better
/// than chance, weights adding up to 100, a critical measure kept critical.
fn fit_card(base: &crate::config::ScorecardConfig, fit: &[&Row]) -> Result<(Vec<MeasureFit>, Vec<WeightedMeasure>)> {
    // A critical measure's red and green are the team's hard floor (at or beyond red, the account
    // is red whatever its score): tune fits its weight and keeps them.
    let base_of = |m: Measure| base.measures.iter().find(|w| w.measure == m.name());
    let fits: Vec<MeasureFit> = base
        .measures
        .iter()
        .filter_map(|m| Measure::from_name(&m.measure))
        .map(|m| {
            let f = fit_measure(m, fit);
            match base_of(m).filter(|w| w.critical) {
                Some(w) => MeasureFit { red: w.red.unwrap_or(f.red), green: w.green.unwrap_or(f.green), critical: true, ..f },
                None => f,
            }
        })
        .collect();
    let total: f64 = fits.iter().map(|f| f.weight).sum();
    if total <= 0.0 {
        bail!("no measure of the default scorecard ranks churn better than chance on the fit period: nothing to tune");
    }
    let tuned = fits
        .iter()
        .filter(|f| f.weight > 0.0)
        .map(|f| WeightedMeasure { measure: f.measure.name().into(), weight: (f.weight / total * 200.0).round() / 2.0, red: Some(f.red), green: Some(f.green), critical: f.critical })
        .collect();
    Ok((fits, tuned))
}

/// Days of an account's first rows its lowest score leaves out: a replay that starts mid-life
/// scores an account's first days on whatever few measures have data yet (and raises no alert on
/// them: alerts wait for two weeks of history).
const SETTLING_DAYS: i32 = 14;

/// Accounts as (lowest score over their rows after their first `SETTLING_DAYS`, positive on any
/// row), lowest first; an account with no row after those, by its last row.
fn accounts_by_lowest(rows: &[&Row], score: &dyn Fn(&Row) -> f64) -> Vec<(f64, bool)> {
    let mut first: std::collections::HashMap<&str, i32> = std::collections::HashMap::new();
    for r in rows {
        let f = first.entry(r.account.as_str()).or_insert(r.day);
        *f = (*f).min(r.day);
    }
    // (lowest settled score, last day and its score, positive)
    let mut by: std::collections::BTreeMap<&str, (f64, i32, f64, bool)> = std::collections::BTreeMap::new();
    for r in rows {
        let e = by.entry(r.account.as_str()).or_insert((f64::INFINITY, i32::MIN, 0.0, false));
        let s = score(r);
        if r.day >= first[r.account.as_str()] + SETTLING_DAYS {
            e.0 = e.0.min(s);
        }
        if r.day >= e.1 {
            (e.1, e.2) = (r.day, s);
        }
        e.3 |= r.positive;
    }
    let mut v: Vec<(f64, bool)> = by.into_values().map(|(low, _, last, p)| (if low.is_finite() { low } else { last }, p)).collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

/// (precision, recall, flagged) of the accounts whose lowest score is below `edge`.
fn flagged(accounts: &[(f64, bool)], edge: f64) -> (f64, f64, usize) {
    let n = accounts.iter().filter(|a| a.0 < edge).count();
    let tp = accounts.iter().filter(|a| a.0 < edge && a.1).count();
    let pos = accounts.iter().filter(|a| a.1).count();
    (if n > 0 { tp as f64 / n as f64 } else { 0.0 }, if pos > 0 { tp as f64 / pos as f64 } else { 0.0 }, n)
}

/// The red band's edge for recall at `precision` on the fit period (see the module's comment),
/// between 5 and 95; `base` (the base configuration's) when no edge reaches it; shown on the
/// validation period too.
fn search_edge(fit: &[&Row], validation: &[&Row], score: &dyn Fn(&Row) -> f64, precision: f64, base: f64) -> Edge {
    let accounts = accounts_by_lowest(fit, score);
    // Each cut between two accounts' lowest scores flags a prefix; the edge sits halfway.
    let cuts: Vec<f64> = accounts.windows(2).filter(|w| w[1].0 > w[0].0).map(|w| (w[0].0 + w[1].0) / 2.0).filter(|e| (5.0..=95.0).contains(e)).collect();
    let best = cuts.iter().copied().filter(|&e| flagged(&accounts, e).0 >= precision).max_by(|a, b| a.total_cmp(b));
    let reached = best.is_some();
    let red_below = best.map_or(base, |e| (e * 10.0).round() / 10.0);
    Edge { red_below, reached, fit: flagged(&accounts, red_below), validation: flagged(&accounts_by_lowest(validation, score), red_below) }
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
) -> Result<Option<(Vec<crate::evaluation::Figures>, Vec<crate::evaluation::Figures>)>> {
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
    let figures = |s: &crate::evaluation::Section| std::iter::once(s.any.clone()).chain(s.rules.iter().cloned()).collect::<Vec<_>>();
    Ok(summary.evaluation.and_then(|r| Some((figures(&r.evaluation.risk), figures(&r.compare?.risk)))))
}

/// The rows of a `--features` file, labelled.
fn read_rows(path: &Path, horizon: i32) -> Result<(Vec<Row>, usize)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().context("an empty features file")?.split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).with_context(|| format!("no `{name}` column"));
    let (account, day, score, outcome, until) = (col("account_id")?, col("day")?, col("score")?, col("outcome")?, col("days_to_outcome")?);
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
        rows.push(Row { account: cells[account].to_string(), day: d, score: num(score).unwrap_or(0.0), values: measures.iter().map(|&i| num(i)).collect(), positive });
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
    MeasureFit { measure: m, auc: a, rows: vals.len(), red, green, weight, critical: false }
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
        let verdict = match (f.weight > 0.0, f.critical) {
            (true, false) => "",
            (true, true) => "  (critical: red and green kept)",
            (false, false) => "  (no better than chance: left out)",
            (false, true) => "  (critical, but no better than chance here: left out — say so to whoever set it)",
        };
        let _ = writeln!(t, "  {:<26} {:.3} {:>7} {:>8.3} → {:<8.3} {:.3}{verdict}", f.measure.name(), f.auc, f.rows, f.red, f.green, f.weight);
    }
    if r.kept_base {
        let _ = writeln!(
            t,
            "the fitted card ranks the fit period at AUC {:.3}, not {MIN_GAIN} above the base's {:.3}: the base scorecard's measures are kept (no signal to add here); only the red edge is tuned",
            r.fitted_fit_auc, r.base_auc.0
        );
    }
    let e = &r.edge;
    let _ = writeln!(
        t,
        "red below {:.1} (scoring.red_below), searched for precision {:.2}{}:",
        e.red_below,
        opts.precision,
        if e.reached { "" } else { " — no edge reaches it on the fit period: the base's edge is kept" }
    );
    for (name, (p, rc, n)) in [("fit", e.fit), ("validation", e.validation)] {
        let _ = writeln!(t, "  {name:<11} accounts ever red {n:>5}  precision {p:.3}  recall {rc:.3}");
    }
    t
}

/// The base configuration with every scorecard but the onboarding one replaced by `card`, its
/// version one above, as TOML with `report` as a comment block on top.
fn tuned_config(settings: &Settings, card: &[WeightedMeasure], red_below: f64, report: &str) -> String {
    let mut s = settings.clone();
    s.scoring.red_below = red_below;
    if s.scoring.green_from <= red_below + 5.0 {
        s.scoring.green_from = (red_below + 15.0).min(100.0);
    }
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
