//! The evaluation as text tables, for one configuration or two side by side with the differences.

use std::fmt::Write as _;

use super::{BandCounts, BandTable, Evaluation, Figures, Report, Section};
use crate::outcome::OutcomeKind;

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}"))
}

fn signed(x: Option<f64>, digits: usize) -> String {
    x.map_or_else(|| "-".to_string(), |v| format!("{v:+.digits$}"))
}

fn label(f: &Figures, kind: &str) -> String {
    if f.rule == "any" {
        format!("any {kind} alert")
    } else {
        f.rule.clone()
    }
}

fn lead(f: &Figures) -> String {
    let l = &f.lead_time_days;
    format!("{} / {} / {}", opt(l.p10, 1), opt(l.median, 1), opt(l.p90, 1))
}

fn cells(f: &Figures) -> String {
    format!(
        "{:>6} {:>4} {:>4} {:>4} {:>9} {:>6}  {:<21}",
        f.alerts,
        f.true_positives,
        f.false_positives,
        f.false_negatives,
        opt(f.precision, 3),
        opt(f.recall, 3),
        lead(f)
    )
}

const CELLS_HEAD: &str = "alerts   TP   FP   FN precision recall  lead days p10/med/p90";

fn section_head(s: &Section, kind: &str) -> String {
    format!("{kind} alerts vs {} ({} outcomes)\n", s.targets.join("/"), s.outcomes)
}

fn has_alerts(s: &Section) -> bool {
    s.any.alerts > 0
}

fn section(out: &mut String, s: &Section, kind: &str) {
    out.push_str(&section_head(s, kind));
    if !has_alerts(s) {
        let _ = writeln!(out, "  no {kind} alert in this replay: every target outcome is a false negative");
        return;
    }
    let _ = writeln!(out, "  {:<24}{CELLS_HEAD}", "rule");
    for f in std::iter::once(&s.any).chain(&s.rules) {
        let _ = writeln!(out, "  {:<24}{}", label(f, kind), cells(f).trim_end());
    }
}

fn band_cells(c: &BandCounts) -> String {
    format!("{:>5} {:>6} {:>6} {:>5}", c.red, c.yellow, c.green, c.none)
}

fn share_cells(t: &BandTable) -> String {
    let s = &t.churned_or_downgraded_share;
    format!("{:>5} {:>6} {:>6} {:>5}", opt(s.red, 2), opt(s.yellow, 2), opt(s.green, 2), opt(s.none, 2))
}

const BAND_HEAD: &str = "  red yellow  green  none";

fn header(r: &Report, e: &Evaluation) -> String {
    let mut out = String::new();
    let total: u64 = e.outcomes.values().sum();
    let by: Vec<String> = OutcomeKind::ALL.iter().map(|k| format!("{} {}", k.name(), e.outcomes[k.name()])).collect();
    let _ = writeln!(out, "evaluation: {total} outcomes ({}), horizon {} days", by.join(", "), r.horizon_days);
    let s = &r.outcome_files;
    let reasons: Vec<String> = s.rejects_by_reason.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let _ = writeln!(
        out,
        "outcome lines: read {} accepted {} rejected {}{}",
        s.lines,
        s.accepted,
        s.rejected,
        if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(" ")) }
    );
    out
}

fn unknown(out: &mut String, e: &Evaluation, which: &str) {
    let u = &e.unknown_accounts;
    if u.outcomes > 0 {
        let sample: Vec<&str> = u.accounts.iter().take(5).map(String::as_str).collect();
        let _ = writeln!(
            out,
            "{which}{} outcomes name {} accounts the replay never saw (left out; e.g. {}): see unknown_accounts in evaluation.json",
            u.outcomes,
            u.accounts.len(),
            sample.join(", ")
        );
    }
}

fn after_note(t: &BandTable) -> String {
    if t.cutoff_after_history > 0 {
        format!("  ({} cut-offs fall after the last event: their band is the last one scored)\n", t.cutoff_after_history)
    } else {
        String::new()
    }
}

/// The tables for one configuration.
pub fn single(r: &Report) -> String {
    let e = &r.evaluation;
    let mut out = header(r, e);
    unknown(&mut out, e, "");
    section(&mut out, &e.risk, "risk");
    section(&mut out, &e.opportunity, "opportunity");
    let _ = writeln!(out, "band {} days before each outcome", e.bands.cutoff_days);
    let _ = writeln!(out, "  {:<24}{BAND_HEAD}", "outcome");
    for k in OutcomeKind::ALL {
        let _ = writeln!(out, "  {:<24}{}", k.name(), band_cells(e.bands.by_outcome.get(k)));
    }
    let _ = writeln!(out, "  {:<24}{}", "churned or downgraded", share_cells(&e.bands));
    out.push_str(&after_note(&e.bands));
    out
}

fn pair_section(out: &mut String, a: &Section, b: &Section, kind: &str) {
    out.push_str(&section_head(a, kind));
    if !has_alerts(a) && !has_alerts(b) {
        let _ = writeln!(out, "  no {kind} alert in either replay: every target outcome is a false negative");
        return;
    }
    let _ = writeln!(out, "  {:<24}{CELLS_HEAD} | {CELLS_HEAD} | Δprecision Δrecall Δmedian", "rule");
    for fa in std::iter::once(&a.any).chain(&a.rules) {
        let Some(fb) = std::iter::once(&b.any).chain(&b.rules).find(|f| f.rule == fa.rule) else { continue };
        let d = |x: Option<f64>, y: Option<f64>, n| signed(y.zip(x).map(|(y, x)| y - x), n);
        let _ = writeln!(
            out,
            "  {:<24}{} | {} | {:>10} {:>7} {:>7}",
            label(fa, kind),
            cells(fa),
            cells(fb),
            d(fa.precision, fb.precision, 3),
            d(fa.recall, fb.recall, 3),
            d(fa.lead_time_days.median, fb.lead_time_days.median, 1),
        );
    }
}

/// The tables for two configurations side by side, with compare − evaluation.
pub fn compare(r: &Report, b: &Evaluation) -> String {
    let a = &r.evaluation;
    let mut out = header(r, a);
    let _ = writeln!(
        out,
        "left: {}   right (--compare): {}",
        r.configs.evaluation,
        r.configs.compare.as_deref().unwrap_or("-")
    );
    unknown(&mut out, a, "left: ");
    unknown(&mut out, b, "right: ");
    pair_section(&mut out, &a.risk, &b.risk, "risk");
    pair_section(&mut out, &a.opportunity, &b.opportunity, "opportunity");
    let _ = writeln!(out, "band {} days before each outcome", a.bands.cutoff_days);
    let _ = writeln!(out, "  {:<24}{BAND_HEAD:<26}| {BAND_HEAD:<26}| Δred Δyellow Δgreen Δnone", "outcome");
    for k in OutcomeKind::ALL {
        let (x, y) = (a.bands.by_outcome.get(k), b.bands.by_outcome.get(k));
        let d = |p: u64, q: u64| format!("{:+}", q as i64 - p as i64);
        let _ = writeln!(
            out,
            "  {:<24}{:<26}| {:<26}| {:>4} {:>7} {:>6} {:>5}",
            k.name(),
            band_cells(x),
            band_cells(y),
            d(x.red, y.red),
            d(x.yellow, y.yellow),
            d(x.green, y.green),
            d(x.none, y.none)
        );
    }
    let _ = writeln!(out, "  {:<24}{:<26}| {}", "churned or downgraded", share_cells(&a.bands), share_cells(&b.bands));
    out.push_str(&after_note(&a.bands));
    out
}

/// One configuration's tables, or both side by side.
pub fn report(r: &Report) -> String {
    match &r.compare {
        Some(b) => compare(r, b),
        None => single(r),
    }
}
