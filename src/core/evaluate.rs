//! `evaluate(state, now, params) -> (score update, alerts)`: measures → score → band → rules.
//! Pure: the only inputs are the state, the stream time and the compiled config.

use super::alerts::{explain, round1, summary, Alert, Rule, ScoreUpdate};
use super::ids::alert_id;
use super::measures::{self, Measure};
use super::scorecard::Params;
use super::state::{AccountState, AlertRef, Band, MeasureValues, Snapshot, RECENT_ALERTS};
use crate::event::timestamp::{day_of, DAY_MS};

/// What one evaluation produced.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Evaluation {
    pub alerts: Vec<Alert>,
    pub score_update: Option<ScoreUpdate>,
}

/// Facts the rules look at, gathered once per evaluation.
struct Ctx<'a> {
    values: &'a MeasureValues,
    score: f64,
    band: Band,
    /// Best score of the earlier evaluations in the score-drop window.
    baseline: Option<&'a Snapshot>,
    tickets_7d: u64,
    tickets_quiet_window: u64,
    oldest_urgent_ms: Option<i64>,
    now_ms: i64,
}

impl Ctx<'_> {
    fn value(&self, m: Measure) -> Option<f64> {
        self.values[m as usize]
    }
}

/// `(fires, re-arms)` of a rule: level conditions, with a release threshold for hysteresis.
fn check(rule: Rule, c: &Ctx<'_>, p: &Params) -> (bool, bool) {
    let a = &p.alerts;
    match rule {
        Rule::EnteredRed => (c.band == Band::Red, c.band != Band::Red),
        Rule::ScoreDrop => match c.baseline {
            Some(b) => {
                let drop = b.score - c.score;
                (drop >= a.score_drop.points, drop < a.score_drop.points - a.score_drop.hysteresis)
            }
            None => (false, true),
        },
        Rule::Inactive => match c.value(Measure::DaysSinceLastActivity) {
            Some(d) => (d >= f64::from(a.inactive.days), d < f64::from(a.inactive.days)),
            None => (false, true),
        },
        Rule::SilentDecline => match c.value(Measure::UsageTrend) {
            Some(t) => (
                t < a.silent_decline.trend_below && c.tickets_quiet_window == 0,
                t >= a.silent_decline.release_above,
            ),
            None => (false, false),
        },
        Rule::TicketSpike => (
            c.tickets_7d >= u64::from(a.ticket_spike.tickets_7d),
            c.tickets_7d < u64::from(a.ticket_spike.release_below),
        ),
        Rule::UrgentTicketAging => {
            let aged = c
                .oldest_urgent_ms
                .is_some_and(|t| c.now_ms - t >= a.urgent_ticket_aging.after.as_millis() as i64);
            (aged, !aged)
        }
    }
}

/// The rule's own words for the summary.
fn lead(rule: Rule, c: &Ctx<'_>, p: &Params) -> String {
    match rule {
        Rule::EnteredRed => match c.baseline {
            Some(b) => format!("health score entered red at {:.1} (was {:.1}, {})", c.score, b.score, b.band.name()),
            None => format!("health score entered red at {:.1}", c.score),
        },
        Rule::ScoreDrop => format!(
            "health score dropped {:.1} points in {} days to {:.1}",
            c.baseline.map_or(0.0, |b| b.score - c.score),
            p.alerts.score_drop.days,
            c.score
        ),
        Rule::Inactive => {
            format!("no product usage for {:.0} days", c.value(Measure::DaysSinceLastActivity).unwrap_or(0.0))
        }
        Rule::SilentDecline => format!(
            "usage last week fell to {:.0}% of its 4-week average and no ticket was filed in {} days",
            c.value(Measure::UsageTrend).unwrap_or(0.0) * 100.0,
            p.alerts.silent_decline.no_ticket_days
        ),
        Rule::TicketSpike => format!("{} support tickets were opened in 7 days", c.tickets_7d),
        Rule::UrgentTicketAging => format!(
            "an urgent ticket has been open for {} hours",
            c.oldest_urgent_ms.map_or(0, |t| (c.now_ms - t) / 3_600_000)
        ),
    }
}

/// Re-scores `state` at `now_ms` (the partition's stream time), updates its bookkeeping and returns
/// the score update (if the score moved by `score_step` or the band changed) and the alerts fired.
pub fn evaluate(state: &mut AccountState, account_id: &str, now_ms: i64, p: &Params) -> Evaluation {
    let now_day = day_of(now_ms);
    state.advance(now_day, &p.state);
    let values = measures::compute(state, now_ms, &p.measures);
    let card = p.card_for(state, now_ms);
    let mut out = Evaluation::default();
    let Some(scored) = card.score(&values) else {
        state.score.next_due_ms = next_due(state, now_ms, p);
        return out;
    };
    let band = p.bands.next(state.score.band, &scored);
    let snap = Snapshot { at_ms: now_ms, score: scored.score, band, values };

    let window_from = now_day - p.alerts.score_drop.days as i32 + 1;
    while state.score.best.front().is_some_and(|(d, _)| *d < window_from) {
        state.score.best.pop_front();
    }
    let baseline = state.score.best.front().map(|(_, s)| s.clone());

    let quiet_days = p.alerts.silent_decline.no_ticket_days as i32;
    let ctx = Ctx {
        values: &snap.values,
        score: scored.score,
        band,
        baseline: baseline.as_ref(),
        tickets_7d: state.opened.sum(now_day - 6, now_day),
        tickets_quiet_window: state.opened.sum(now_day - quiet_days + 1, now_day),
        oldest_urgent_ms: state.tickets.oldest_urgent_ms(),
        now_ms,
    };
    let history_ok = state.first_day.is_some_and(|f| now_day - f >= p.alerts.min_history_days as i32);
    let mut fired: Vec<Rule> = Vec::new();
    for rule in Rule::BY_PRIORITY {
        let (enabled, _, cooldown) = p.alerts.common(rule);
        let (fires, rearms) = check(rule, &ctx, p);
        let mark = &mut state.score.rules[rule as usize];
        let cooled = mark.last_fired_ms.is_none_or(|t| now_ms - t >= cooldown.as_millis() as i64);
        if fires && mark.armed && enabled && history_ok && cooled {
            mark.armed = false;
            mark.last_fired_ms = Some(now_ms);
            fired.push(rule);
        } else if rearms && !fires {
            mark.armed = true;
        }
    }
    if let Some((&rule, also)) = fired.split_first() {
        let explanation = explain(card, &snap.values, baseline.as_ref().map(|b| &b.values));
        let alert = Alert {
            alert_id: alert_id(account_id, rule.name(), now_ms),
            account_id: account_id.to_string(),
            rule,
            also: also.to_vec(),
            severity: p.alerts.common(rule).1.to_string(),
            score: round1(scored.score),
            previous_score: baseline.as_ref().map(|b| round1(b.score)),
            band,
            previous_band: baseline.as_ref().map(|b| b.band),
            segment: state.facts.segment.clone(),
            scorecard: card.id.clone(),
            event_time_ms: now_ms,
            emitted_at_ms: now_ms,
            summary: summary(&lead(rule, &ctx, p), Some(rule), &explanation),
            explanation,
        };
        state.score.recent_alerts.push_back(AlertRef { rule: rule as u8, at_ms: now_ms, alert_id: alert.alert_id.clone() });
        if state.score.recent_alerts.len() > RECENT_ALERTS {
            state.score.recent_alerts.pop_front();
        }
        out.alerts.push(alert);
    }

    let moved = state
        .score
        .emitted
        .is_none_or(|(s, b)| b != band || (s - scored.score).abs() >= p.score_step);
    if moved {
        state.score.emitted = Some((scored.score, band));
        out.score_update = Some(ScoreUpdate {
            account_id: account_id.to_string(),
            score: round1(scored.score),
            band,
            segment: state.facts.segment.clone(),
            scorecard: card.id.clone(),
            measures: ScoreUpdate::measures(card, &snap.values),
            event_time_ms: now_ms,
            emitted_at_ms: now_ms,
        });
    }

    // The daily best: today's entry keeps the day's highest score; older days that are no better
    // than a newer one can never be the window's maximum again.
    let today_better = match state.score.best.back() {
        Some((d, s)) if *d == now_day => snap.score > s.score,
        _ => true,
    };
    if today_better {
        while state.score.best.back().is_some_and(|(_, s)| s.score <= snap.score) {
            state.score.best.pop_back();
        }
        state.score.best.push_back((now_day, snap.clone()));
    }
    state.score.band = Some(band);
    state.score.scorecard.clone_from(&card.id);
    state.score.last = Some(snap);
    state.score.next_due_ms = next_due(state, now_ms, p);
    out
}

/// When the account must next be re-scored though it sends nothing: the next day boundary while
/// any of its windows can still move, or sooner when an urgent ticket will cross the aging limit.
pub fn next_due(state: &AccountState, now_ms: i64, p: &Params) -> Option<i64> {
    let now_day = day_of(now_ms);
    let mut due = state.has_live_data(now_day, &p.state).then(|| i64::from(now_day + 1) * DAY_MS);
    // The next urgent ticket to cross the aging limit: the oldest one opened after now - after.
    let after = p.alerts.urgent_ticket_aging.after.as_millis() as i64;
    if let Some(opened) = state.tickets.first_urgent_opened_after(now_ms.saturating_sub(after)) {
        let at = opened.saturating_add(after);
        due = Some(due.map_or(at, |d| d.min(at)));
    }
    due
}
