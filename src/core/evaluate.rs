//! `evaluate(state, now, params) -> (score update, alerts)`: measures → score → band → rules.
//! Pure: the only inputs are the state, the stream time and the compiled config.

use super::alerts::{explain, round1, summary, summary_of_weakest, Alert, AlertKind, ExplanationItem, Rule, ScoreUpdate};
use super::actions::severity_rank;
use super::ids::alert_id;
use super::measures::{self, Category, Measure};
use super::noise::Decline;
use super::people::{quiet_champions, QuietChampions};
use super::scorecard::SupportTrouble;
use super::scorecard::{Card, Params, Scored};
use super::state::{AccountState, AlertRef, Band, MeasureValues, Snapshot, RECENT_ALERTS};
use crate::event::timestamp::{day_of, format_day, DAY_MS};

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
    /// Band and score of the previous evaluation, if any.
    previous: Option<(f64, Band)>,
    /// The account has enough history for alerts (`min_history_days`).
    history_ok: bool,
    /// No evaluation before this one had enough history for alerts.
    first_eligible: bool,
    /// Fall of the score from the baseline, like for like (on the measures with data at both).
    drop: Option<f64>,
    tickets_7d: u64,
    tickets_quiet_window: u64,
    oldest_urgent_ms: Option<i64>,
    now_ms: i64,
    now_day: i32,
    /// Never any usage, and the day its clock started (start date, else first sight), if that is
    /// recent enough (within retention) for "never used" to be known rather than assumed.
    never_used_since: Option<i32>,
    /// Days in a row (today included) with usage unusually far below its norm (`usage_drop`).
    drop_days: i32,
    /// The strongest evidence of a fall in usage, if the account has a norm.
    decline: Option<Decline>,
    /// Champions gone quiet while the others go on (`champion_quiet`'s condition).
    champions: Option<QuietChampions>,
    /// Support trouble holding the account out of green.
    trouble: Option<SupportTrouble>,
    /// Days in a row with the drop at or above `score_drop.points`.
    score_drop_days: i32,
    /// Days in a row at or above `expansion_candidate.seat_share` of seats.
    expansion_days: i32,
    renewal_day: Option<i32>,
    renewal_alerted: Option<i32>,
    seats: Option<u32>,
    arr: Option<f64>,
}

impl Ctx<'_> {
    fn value(&self, m: Measure) -> Option<f64> {
        self.values[m as usize]
    }

    fn days_to_renewal(&self) -> Option<i32> {
        self.renewal_day.map(|r| r - self.now_day)
    }
}

/// Whether a renewal at `day` was already alerted: the alerted date, or one within `window` days
/// after it (a corrected or flapping date is the same renewal; a new term is later than that).
fn renewal_already_alerted(alerted: Option<i32>, day: i32, window: u32) -> bool {
    alerted.is_some_and(|a| day <= a.saturating_add(window as i32))
}

/// `(fires, re-arms)` of a rule: level conditions, with a release threshold for hysteresis.
fn check(rule: Rule, c: &Ctx<'_>, p: &Params) -> (bool, bool) {
    let a = &p.alerts;
    match rule {
        // A transition into red, or red at the first evaluation that may alert at all.
        Rule::EnteredRed => {
            let was_red = c.previous.is_some_and(|(_, b)| b == Band::Red);
            (c.band == Band::Red && (!was_red || c.first_eligible), c.band != Band::Red)
        }
        // A drop that leaves the account green is not something to act on.
        Rule::ScoreDrop => match c.drop {
            Some(drop) => (
                c.score_drop_days >= a.score_drop.for_days as i32 && c.band != Band::Green,
                drop < a.score_drop.points - a.score_drop.hysteresis,
            ),
            None => (false, true),
        },
        Rule::Inactive => match (c.value(Measure::DaysSinceLastActivity), c.never_used_since) {
            (Some(d), None) => (d >= f64::from(a.inactive_days), d < f64::from(a.inactive_days)),
            // An account that never started is `not_activated`, not inactive.
            _ => (false, true),
        },
        Rule::NotActivated => match c.never_used_since {
            Some(since) => (c.now_day - since >= a.not_activated_days as i32, false),
            None => (false, true),
        },
        // A fall `usage_drop` would see, while the customer says nothing.
        Rule::SilentDecline => match (c.decline, c.value(Measure::UsageTrend)) {
            (Some(d), Some(t)) => (
                c.drop_days >= a.usage_drop.days as i32 && d.ratio <= a.silent_decline.trend_below && c.tickets_quiet_window == 0,
                t >= a.silent_decline.release_above,
            ),
            _ => (false, false),
        },
        Rule::UsageDrop => {
            let released = usage_level(c.values).is_none_or(|v| v >= a.usage_drop.release_above);
            (c.drop_days >= a.usage_drop.days as i32, released)
        }
        Rule::TicketSpike => (
            c.tickets_7d >= u64::from(a.ticket_spike.tickets_7d),
            c.tickets_7d < u64::from(a.ticket_spike.release_below),
        ),
        Rule::UrgentTicketAging => {
            let aged = c.oldest_urgent_ms.is_some_and(|t| c.now_ms.saturating_sub(t) >= a.urgent_after_ms);
            (aged, !aged)
        }
        Rule::RenewalAtRisk => {
            let near = c.days_to_renewal().is_some_and(|d| (0..=a.renewal_days as i32).contains(&d));
            let fresh = c.renewal_day.is_some_and(|r| !renewal_already_alerted(c.renewal_alerted, r, a.renewal_days));
            (near && fresh && c.band != Band::Green, true)
        }
        Rule::ExpansionCandidate => {
            let held = c.band == Band::Green && c.expansion_days >= a.expansion.days as i32;
            (held, c.expansion_days == 0)
        }
        Rule::ChampionQuiet => (c.champions.is_some(), c.champions.is_none()),
    }
}

fn pct(v: f64) -> String {
    format!("{:.0}%", v * 100.0)
}

/// The rule's own words for the summary.
fn lead(rule: Rule, c: &Ctx<'_>, p: &Params) -> String {
    match rule {
        Rule::EnteredRed => match c.previous {
            Some((score, band)) if band != Band::Red => {
                format!("health score entered red at {:.1} (was {:.1}, {})", c.score, score, band.name())
            }
            _ => format!("health score is red at {:.1}", c.score),
        },
        Rule::ScoreDrop => format!(
            "health score dropped {:.1} points in {} days to {:.1}",
            c.drop.unwrap_or(0.0),
            p.alerts.score_drop.days,
            c.score
        ),
        Rule::Inactive => {
            format!("no product usage for {:.0} days", c.value(Measure::DaysSinceLastActivity).unwrap_or(0.0))
        }
        Rule::NotActivated => {
            let since = c.never_used_since.unwrap_or(c.now_day);
            format!("nobody has used the product in the {} days since {}", c.now_day - since, format_day(since))
        }
        Rule::SilentDecline => format!(
            "{} and no ticket was filed in {} days",
            decline_words(c.decline),
            p.alerts.silent_decline.no_ticket_days
        ),
        Rule::UsageDrop => decline_words(c.decline),
        Rule::TicketSpike => format!("{} support tickets were opened in 7 days", c.tickets_7d),
        Rule::UrgentTicketAging => format!(
            "an urgent ticket has been open for {} hours",
            c.oldest_urgent_ms.map_or(0, |t| c.now_ms.saturating_sub(t) / 3_600_000)
        ),
        Rule::RenewalAtRisk => {
            let arr = c.arr.map(|a| format!(", ARR {a:.0}")).unwrap_or_default();
            let support = c.trouble.map(|t| format!(", held out of green by support ({})", t.words())).unwrap_or_default();
            format!(
                "renewal in {} days ({}{arr}) with the health score {} at {:.1}{support}",
                c.days_to_renewal().unwrap_or(0),
                c.renewal_day.map(format_day).unwrap_or_default(),
                c.band.name(),
                c.score
            )
        }
        Rule::ChampionQuiet => champion_words(c.champions.as_ref(), p.alerts.champion_quiet.days),
        Rule::ExpansionCandidate => {
            let seats = c.seats.map(|s| format!("its {s} seats")).unwrap_or_else(|| "its seats".into());
            format!(
                "{} of {seats} used in 30 days, {} days running: a candidate for more seats",
                pct(c.value(Measure::SeatUtilization).unwrap_or(0.0)),
                c.expansion_days
            )
        }
    }
}

/// How far usage fell and how unusual that is for the account ("usage over the last 7 days 45%
/// below its norm (events 40% below, daily active users 50% below); its weeks usually swing ±12%").
fn decline_words(d: Option<Decline>) -> String {
    let Some(d) = d else { return "usage fell below its norm".into() };
    let below = |r: f64| format!("{:.0}%", (1.0 - r).max(0.0) * 100.0);
    let parts: Vec<String> = [d.events.map(|r| format!("events {} below", below(r))), d.users.map(|r| format!("daily active users {} below", below(r)))]
        .into_iter()
        .flatten()
        .collect();
    // A swing of 100% or more reads as a factor: a week cannot be more than 100% below.
    let swing = d
        .swing
        .map(|s| if s < 1.0 { format!("; its weeks usually swing ±{:.0}%", s * 100.0) } else { format!("; its weeks usually vary by a factor of {:.1}", 1.0 + s) })
        .unwrap_or_default();
    format!("usage over the last {} days {} below its norm ({}){swing}", d.days, below(d.ratio), parts.join(", "))
}

/// "2 of the account's 3 most engaged users (u-1, u-7) have not been seen for 12 days while the
/// others go on (46% of its activity)".
fn champion_words(q: Option<&QuietChampions>, days: u32) -> String {
    let Some(q) = q else { return "the account's most engaged users went quiet".into() };
    let names: Vec<&str> = q.quiet.iter().take(3).map(|c| c.user_id.as_str()).collect();
    let more = q.quiet.len() - names.len();
    let more = if more > 0 { format!(" and {more} more") } else { String::new() };
    let who = match (q.quiet.len(), q.champions) {
        (1, 1) => "the account's most engaged user".to_string(),
        (n, c) if n == c => format!("the account's {n} most engaged users"),
        (n, c) => format!("{n} of the account's {c} most engaged users"),
    };
    let verb = if q.quiet.len() == 1 { "has" } else { "have" };
    format!(
        "{who} ({}{more}) {verb} not been seen for {days} days while the others go on ({:.0}% of its activity)",
        names.join(", "),
        q.share * 100.0
    )
}

/// The usage measures of `card` that have no data, for the summary of an account never used.
fn no_usage_note(card: &Card, values: &MeasureValues) -> String {
    let missing: Vec<&str> = card
        .items
        .iter()
        .filter(|i| i.measure.category() == Category::Usage && values[i.measure as usize].is_none())
        .map(|i| i.measure.name())
        .collect();
    if missing.is_empty() {
        " No product usage recorded.".to_string()
    } else {
        format!(" No product usage recorded ({} have no data and count 0 points).", missing.join(", "))
    }
}

/// Usage against the account's own norm, events and people together: the geometric mean of
/// `usage_trend` and `active_users_trend` (either alone if the other has no data). A fall in
/// either shows; a chance dip of one with the other near normal does not read as a collapse.
fn usage_level(values: &MeasureValues) -> Option<f64> {
    match (values[Measure::UsageTrend as usize], values[Measure::ActiveUsersTrend as usize]) {
        (Some(u), Some(a)) => Some((u * a).sqrt()),
        (x, y) => x.or(y),
    }
}

/// How much of a week off a fall in an account's usage must outlast before it alerts, from the
/// people of its usual week (`people`, `None` before kizashi knows it): 1 for a team of
/// `SMALL_TEAM` or fewer, 0 from `LARGE_TEAM`, linear between.
///
/// Why: people take weeks off, alone or together. If each of a team's regular users is away a
/// given week with chance 0.1, half a team of four is away in 5% of its weeks (two accounts in
/// five see such a week in ten weeks), half a team of eight in 0.5% and of twelve in 0.05%. The
/// account's swing, estimated from a few weeks that held no such week, cannot know it; one week's
/// fall of a small team is chance, a fall that outlasts it is not.
fn small_team_wait(people: Option<f64>) -> f64 {
    people.map_or(0.0, |n| ((LARGE_TEAM - n) / (LARGE_TEAM - SMALL_TEAM)).clamp(0.0, 1.0))
}

/// See `small_team_wait`.
const SMALL_TEAM: f64 = 6.0;
const LARGE_TEAM: f64 = 12.0;
/// Working days of a week a small team's fall in usage must first outlast.
const SMALL_TEAM_WORKING_DAYS: i32 = 5;

/// Whether a fall has outlasted what a week off of the account's team explains: `days` working
/// days plus the team's wait in a row at most `share` of their norm. Always, for a team large
/// enough to wait nothing.
fn outlasted(s: &Scoring<'_>, days: i32, share: f64) -> bool {
    let extra = extra_days(SMALL_TEAM_WORKING_DAYS, s.team_wait);
    extra == 0 || s.decline.is_some_and(|d| d.low_days(share) >= days + extra)
}

/// `days` scaled by a team's wait, rounded.
fn extra_days(days: i32, wait: f64) -> i32 {
    (f64::from(days) * wait).round() as i32
}

/// A score drop must be at least this many times the score's usual day-to-day spread.
const SCORE_DROP_SPREADS: f64 = 3.0;

/// The standard deviation of the account's daily scores over the four weeks before the last
/// `window` days (its score history), if it has two weeks of them.
fn score_spread(history: &std::collections::VecDeque<super::state::HistoryDay>, now_day: i32, window: i32) -> Option<f64> {
    let (from, to) = (now_day - window - 28, now_day - window - 1);
    let (mut n, mut sum, mut sq) = (0.0, 0.0, 0.0);
    for h in history.iter().filter(|h| (from..=to).contains(&h.day)) {
        let x = f64::from(h.tenths) / 10.0;
        n += 1.0;
        sum += x;
        sq += x * x;
    }
    (n >= 14.0).then(|| ((sq - sum * sum / n) / (n - 1.0)).max(0.0).sqrt())
}

/// Updates a "days in a row" mark: the first day of the current run while `holds`.
fn run_since(mark: &mut Option<i32>, holds: bool, day: i32) -> i32 {
    if holds {
        let since = *mark.get_or_insert(day);
        day - since + 1
    } else {
        *mark = None;
        0
    }
}

/// Re-scores `state` at `now_ms` (the partition's stream time), updates its bookkeeping and returns
/// the score update (if the score moved by `score_step` or the band changed) and the alerts fired.
///
/// In phases, each below: the band and what caps it; the best score of the drop window; the
/// "days in a row" marks; the rules; the alerts; the score update and the bookkeeping.
pub fn evaluate(state: &mut AccountState, account_id: &str, now_ms: i64, p: &Params) -> Evaluation {
    let now_day = day_of(now_ms);
    state.advance(now_day, &p.state);
    // An account that ended (churned, cancelled) is no longer watched: no alerts, no score
    // updates, no timers; its state and history stay, and a record saying it is active again
    // brings it back.
    if state.facts.ended_by(now_day) {
        state.score.next_due_ms = None;
        return Evaluation::default();
    }
    // A snooze or an override whose day has come ends; the next score update says so.
    if state.cs.as_mut().is_some_and(|c| c.expire(now_day)) {
        state.score.emitted = None;
    }
    let (values, usage) = measures::compute_with_trends(state, now_ms, &p.measures);
    let (decline, team_wait) = (usage.decline, small_team_wait(usage.week_users));
    let card = p.card_for(state, now_ms);
    let Some(scored) = card.score(&values, measures::usage_known_absent(state, now_day, p.state.retention_days)) else {
        state.score.next_due_ms = next_due(state, now_ms, p);
        return Evaluation::default();
    };
    let s = Scoring { now_ms, now_day, values, decline, team_wait, card, scored };
    let caps = band_with_caps(state, &s, p);
    let band = caps.band;
    let snap = Snapshot { at_ms: now_ms, score: s.scored.score, band, values: s.values.into() };
    let baseline = window_baseline(state, now_day, p);
    let runs = run_marks(state, &s, caps.drop_days, baseline.as_ref(), p);
    let ctx = context(state, &s, caps, runs, p);
    let fired = fire_rules(state, &ctx, p);
    let alerts = alerts(state, account_id, &s, &ctx, &fired, baseline.as_ref(), p);
    let score_update = score_update(state, account_id, &s, band, p);
    keep_books(state, &s, snap, &fired, p);
    Evaluation { alerts, score_update }
}

/// The account scored at one stream time: what every phase of `evaluate` starts from.
struct Scoring<'a> {
    now_ms: i64,
    now_day: i32,
    values: MeasureValues,
    /// The strongest evidence of a fall in usage, if the account has a norm.
    decline: Option<Decline>,
    /// How much of a week a fall must outlast because the account's team is small (0 to 1).
    team_wait: f64,
    card: &'a Card,
    scored: Scored,
}

/// The band, and the facts that may hold it out of green.
struct Caps {
    band: Band,
    /// Working days in a row (today included) that usage has been falling unusually with the
    /// last working day still low; 0 when it is not falling.
    drop_days: i32,
    champions: Option<QuietChampions>,
    trouble: Option<SupportTrouble>,
}

/// The best score of the `score_drop` window: what a drop is measured against, and an alert's
/// previous score and band.
struct Baseline {
    score: f64,
    band: Band,
    values: MeasureValues,
}

/// The "days in a row" counts as of today, and the drop from the baseline.
struct Runs {
    drop: Option<f64>,
    drop_days: i32,
    score_drop_days: i32,
    expansion_days: i32,
}

/// The band the score gives, at best yellow while usage is falling (or fell and has not come
/// back), champions have gone quiet or support holds the account in trouble.
fn band_with_caps(state: &mut AccountState, s: &Scoring<'_>, p: &Params) -> Caps {
    let now_day = s.now_day;
    let a = &p.alerts;
    let trouble = p.support_cap.and_then(|c| c.trouble(state, s.now_ms));
    // A fall: strong enough evidence over some window, and the last working day still low (a
    // dip that is over, a holiday, a past quiet week still inside the 14 days, is no fall).
    let falling = s.decline.is_some_and(|d| {
        d.z <= -a.usage_drop.evidence && d.ratio <= a.usage_drop.share && d.last.is_some_and(|l| l <= a.usage_drop.share)
    });
    // Days of the fall, counting only evaluations whose last complete day is a working day: a
    // weekend adds no evidence, and a two-day holiday (then a weekend) must not read as two days.
    let drop_days = {
        run_since(&mut state.score.drop_since, falling, now_day);
        let mask = s.decline.map_or(0x7f, |d| d.working);
        state.score.drop_since.map_or(0, |since| (since..=now_day).filter(|&d| super::noise::working(mask, d - 1)).count() as i32)
    };
    // A small team's fall must first outlast a week off (see `small_team_wait`).
    let fell = falling && outlasted(s, a.usage_drop.days as i32, a.usage_drop.share);
    let cq = &a.champion_quiet;
    let champions = if a.common(Rule::ChampionQuiet).enabled {
        // Once a day (it reads complete days only); a champion seen again today ends it at once.
        let to = now_day - cq.days as i32 - 1;
        let users = &state.users;
        let q = state.trends_memo.champions(now_day, || quiet_champions(users, now_day, cq.days as i32, cq.share));
        q.filter(|q| q.others_level >= cq.others_above && q.quiet.iter().all(|c| !users.seen_since(&c.user_id, to + 1)))
    } else {
        None
    };
    // Alerts and bands agree: an account whose usage is falling unusually (or fell and has not
    // come back: `usage_drop` not re-armed), whose champions went quiet, or in a support crisis
    // is at best yellow, whatever its level measures (30-day windows lag a fall by weeks).
    let usage_risk = fell || !state.score.rules[Rule::UsageDrop as usize].armed || champions.is_some();
    let band = match p.bands.next(state.score.band, &s.scored) {
        Band::Green if trouble.is_some() || usage_risk => Band::Yellow,
        band => band,
    };
    Caps { band, drop_days, champions, trouble }
}

/// The best score of the `score_drop` window ending today, after the days before it are dropped.
fn window_baseline(state: &mut AccountState, now_day: i32, p: &Params) -> Option<Baseline> {
    let window_from = now_day - p.alerts.score_drop.days as i32 + 1;
    while state.score.best.front().is_some_and(|(d, _)| *d < window_from) {
        state.score.best.pop_front();
    }
    state.score.best.front().map(|(_, b)| Baseline { score: b.score, band: b.band, values: b.values.to_array() })
}

/// Moves the "days in a row" marks on to today: of the fall in usage, of the score drop, of
/// the seat use that makes an expansion candidate.
fn run_marks(state: &mut AccountState, s: &Scoring<'_>, drop_days: i32, baseline: Option<&Baseline>, p: &Params) -> Runs {
    let now_day = s.now_day;
    let a = &p.alerts;
    // A small team's fall must first outlast a week off: in working days of low usage for the
    // fall in usage, in days for the score drop it causes.
    let drop_days = if outlasted(s, a.usage_drop.days as i32, a.usage_drop.share) { drop_days } else { 0 };
    let drop = baseline.and_then(|b| s.card.drop_like_for_like(&b.values, &s.values));
    // A small account's score swings with one person's week off: a drop counts once it is
    // `score_drop.points` and beyond the score's own usual spread; without two weeks of score
    // history before the window that spread is unknown, and a drop is no evidence yet
    // (`usage_drop` judges a young account's usage against its own norm meanwhile).
    let dropped = drop.is_some_and(|d| {
        d >= a.score_drop.points
            && score_spread(&state.score.history, now_day, a.score_drop.days as i32).is_some_and(|sd| d >= SCORE_DROP_SPREADS * sd)
    });
    let score_drop_days = run_since(&mut state.score.score_drop_since, dropped, now_day) - extra_days(7, s.team_wait);
    let seat_use = s.values[Measure::SeatUtilization as usize];
    let expansion_days =
        run_since(&mut state.score.expansion_since, seat_use.is_some_and(|v| v >= a.expansion.seat_share), now_day);
    Runs { drop, drop_days, score_drop_days, expansion_days }
}

/// The facts the rules look at.
fn context<'a>(state: &AccountState, s: &'a Scoring<'_>, caps: Caps, runs: Runs, p: &Params) -> Ctx<'a> {
    let (now_ms, now_day) = (s.now_ms, s.now_day);
    let a = &p.alerts;
    let horizon = now_day - p.state.retention_days as i32 + 1;
    let quiet_days = a.silent_decline.no_ticket_days as i32;
    let never_used_since = match (state.last_usage_ms, state.facts.start_day.or(state.first_day)) {
        (None, Some(since)) if since >= horizon => Some(since),
        _ => None,
    };
    let history_ok = state.first_day.is_some_and(|f| now_day - f >= a.min_history_days as i32);
    Ctx {
        values: &s.values,
        score: s.scored.score,
        band: caps.band,
        previous: state.score.last.as_ref().map(|l| (l.score, state.score.band.unwrap_or(l.band))),
        history_ok,
        first_eligible: history_ok && !state.score.alerts_live,
        drop: runs.drop,
        score_drop_days: runs.score_drop_days,
        tickets_7d: state.opened.sum(now_day - 6, now_day),
        tickets_quiet_window: state.opened.sum(now_day - quiet_days + 1, now_day),
        oldest_urgent_ms: state.tickets.oldest_urgent_ms(),
        now_ms,
        now_day,
        never_used_since,
        drop_days: runs.drop_days,
        decline: s.decline,
        champions: caps.champions,
        trouble: caps.trouble,
        expansion_days: runs.expansion_days,
        renewal_day: state.facts.renewal_day,
        renewal_alerted: state.score.renewal_alerted,
        seats: state.facts.seats,
        arr: state.facts.arr,
    }
}

/// Checks every rule in priority order: one that holds fires if it is armed, enabled, past its
/// warm-up and its cooldown, and is then disarmed; one whose condition has released is re-armed.
/// Returns the rules fired.
fn fire_rules(state: &mut AccountState, c: &Ctx<'_>, p: &Params) -> Vec<Rule> {
    let a = &p.alerts;
    let now_ms = c.now_ms;
    let mut fired: Vec<Rule> = Vec::new();
    for rule in Rule::BY_PRIORITY {
        let common = a.common(rule);
        let (fires, rearms) = check(rule, c, p);
        let mark = &mut state.score.rules[rule as usize];
        let cooled = mark.last_fired_ms.is_none_or(|t| now_ms.saturating_sub(t) >= common.cooldown_ms);
        // Warm-up: windows are still filling. A customer who never started needs no history.
        let eligible = c.history_ok || rule == Rule::NotActivated;
        if fires && mark.armed && common.enabled && eligible && cooled {
            mark.armed = false;
            mark.last_fired_ms = Some(now_ms);
            fired.push(rule);
            if rule == Rule::RenewalAtRisk {
                state.score.renewal_alerted = state.facts.renewal_day;
            }
        } else if rearms && !fires {
            mark.armed = true;
        }
    }
    if c.history_ok {
        state.score.alerts_live = true;
    }
    fired
}

/// The alerts of the rules fired: one for the first risk rule, with the other risk rules in
/// `also`, and one for each opportunity. Each is also kept among the account's recent alerts.
fn alerts(
    state: &mut AccountState,
    account_id: &str,
    s: &Scoring<'_>,
    c: &Ctx<'_>,
    fired: &[Rule],
    baseline: Option<&Baseline>,
    p: &Params,
) -> Vec<Alert> {
    let (card, values, now_ms) = (s.card, &s.values, s.now_ms);
    let risks: Vec<Rule> = fired.iter().copied().filter(|r| r.kind() == AlertKind::Risk).collect();
    let opportunities = fired.iter().copied().filter(|r| r.kind() == AlertKind::Opportunity);
    let groups = risks.split_first().map(|(&r, also)| (r, also.to_vec())).into_iter().chain(opportunities.map(|r| (r, Vec::new())));
    let tier = p.tiers.of(state.facts.segment.as_deref(), state.facts.arr);
    let mut out = Vec::new();
    for (rule, also) in groups {
        let explanation = explain(card, values, baseline.map(|b| &b.values));
        let text = alert_summary(rule, s, c, &explanation, p);
        let alert = Alert {
            alert_id: alert_id(account_id, rule.name(), now_ms),
            account_id: account_id.to_string(),
            rule,
            also,
            severity: p.tiers.severity(tier, &p.alerts.common(rule).severity),
            score: round1(s.scored.score),
            previous_score: baseline.map(|b| round1(b.score)),
            band: c.band,
            previous_band: baseline.map(|b| b.band),
            segment: state.facts.segment.clone(),
            tier,
            days_to_renewal: c.days_to_renewal().map(i64::from),
            arr: state.facts.arr,
            scorecard: card.id.clone(),
            event_time_ms: now_ms,
            emitted_at_ms: now_ms,
            summary: text,
            explanation,
            shortfall: super::alerts::shortfall(card, values, s.scored.no_usage),
            cs: Default::default(),
        };
        if rule.kind() == AlertKind::Risk {
            reopen_on(state, tier, &alert.severity, p);
        }
        remember_alert(state, &alert, now_ms);
        out.push(alert);
    }
    // Every alert of the evaluation says where the team stands after all of them.
    for a in &mut out {
        a.cs = state.cs_view(account_id, Some(c.band));
    }
    out
}

/// A risk alert of `severity` fired: the account is open again unless a snooze holds against it
/// (one set on an alert at least as severe, see `core::actions`); the next score update says so.
fn reopen_on(state: &mut AccountState, tier: super::scorecard::Tier, severity: &str, p: &Params) {
    let Some(cs) = state.cs.as_mut().filter(|c| c.marked.is_some()) else { return };
    let snoozed = cs.marked.as_ref().and_then(|m| m.alert).and_then(|(rule, _)| Rule::from_code(rule));
    let snoozed_rank = snoozed.map(|r| severity_rank(&p.tiers.severity(tier, &p.alerts.common(r).severity)));
    cs.alert_fired(severity_rank(severity), snoozed_rank);
    if cs.marked.is_none() {
        state.score.emitted = None;
    }
}

/// An alert's summary: the rule's own words, then what moved (or, red with nothing to compare
/// and not activated, what makes it red), and a note where there is no usage at all.
fn alert_summary(rule: Rule, s: &Scoring<'_>, c: &Ctx<'_>, explanation: &[ExplanationItem], p: &Params) -> String {
    let lead_text = lead(rule, c, p);
    // Red with nothing to compare (red at its first eligible evaluation, or not activated):
    // name what makes it red, not what moved.
    let absolute = matches!(c.previous, Some((_, Band::Red)) | None) && rule == Rule::EnteredRed
        || rule == Rule::NotActivated;
    let mut text = if absolute {
        summary_of_weakest(&lead_text, Some(rule), s.card, &s.values)
    } else {
        summary(&lead_text, Some(rule), explanation)
    };
    if s.scored.no_usage && rule != Rule::NotActivated {
        text.push_str(&no_usage_note(s.card, &s.values));
    }
    text
}

/// Keeps `alert` among the account's last `RECENT_ALERTS`, its summary cut to
/// `ALERT_SUMMARY_BYTES` (on a character boundary).
fn remember_alert(state: &mut AccountState, alert: &Alert, now_ms: i64) {
    let mut cut = alert.summary.len().min(super::state::ALERT_SUMMARY_BYTES);
    while !alert.summary.is_char_boundary(cut) {
        cut -= 1;
    }
    state.score.recent_alerts.push_back(AlertRef {
        rule: alert.rule as u8,
        at_ms: now_ms,
        summary: super::phrases::Packed::new(&alert.summary[..cut]),
    });
    if state.score.recent_alerts.len() > RECENT_ALERTS {
        state.score.recent_alerts.pop_front();
    }
}

/// The score update, if the score moved by `score_step` or the band changed since the last one.
fn score_update(state: &mut AccountState, account_id: &str, s: &Scoring<'_>, band: Band, p: &Params) -> Option<ScoreUpdate> {
    let (card, values) = (s.card, &s.values);
    let moved = state
        .score
        .emitted
        .is_none_or(|(e, b)| b != band || (e - s.scored.score).abs() >= p.score_step);
    if !moved {
        return None;
    }
    state.score.emitted = Some((s.scored.score, band));
    let shown = state.shown_band(band);
    Some(ScoreUpdate {
        account_id: account_id.to_string(),
        score: round1(s.scored.score),
        band: shown,
        segment: state.facts.segment.clone(),
        tier: p.tiers.of(state.facts.segment.as_deref(), state.facts.arr),
        cs: state.cs_view(account_id, Some(band)),
        scorecard: card.id.clone(),
        measures: ScoreUpdate::measures(card, values),
        shortfall: super::alerts::shortfall(card, values, s.scored.no_usage),
        event_time_ms: s.now_ms,
        emitted_at_ms: s.now_ms,
    })
}

/// What the next evaluations compare with: the window's daily best, the day's history (score,
/// band, rules fired), the band, scorecard and snapshot of this evaluation, and when it is due next.
fn keep_books(state: &mut AccountState, s: &Scoring<'_>, snap: Snapshot, fired: &[Rule], p: &Params) {
    let now_day = s.now_day;
    // The daily best: today's entry keeps the day's highest score; older days that are no better
    // than a newer one can never be the window's maximum again.
    let today_better = match state.score.best.back() {
        Some((d, b)) if *d == now_day => snap.score > b.score,
        _ => true,
    };
    if today_better {
        while state.score.best.back().is_some_and(|(_, b)| b.score <= snap.score) {
            state.score.best.pop_back();
        }
        state.score.best.push_back((now_day, snap.clone()));
    }
    let fired_mask = fired.iter().fold(0u16, |m, r| m | (1 << *r as u16));
    state.score.note_history(now_day, s.scored.score, snap.band, fired_mask);
    state.score.band = Some(snap.band);
    state.score.scorecard.clone_from(&s.card.id);
    state.score.last = Some(snap);
    state.score.next_due_ms = next_due(state, s.now_ms, p);
}

/// When the account must next be re-scored though it sends nothing: the next day boundary while
/// any of its windows can still move; sooner when an urgent ticket will cross the aging limit;
/// and the lifecycle dates an account record alone sets (its onboarding ends, its renewal comes
/// within the `renewal_at_risk` window).
pub fn next_due(state: &AccountState, now_ms: i64, p: &Params) -> Option<i64> {
    let now_day = day_of(now_ms);
    let mut due: Option<i64> = None;
    let mut at = |t: i64| {
        if t > now_ms {
            due = Some(due.map_or(t, |d| d.min(t)));
        }
    };
    let day_start = |d: i32| i64::from(d) * DAY_MS;
    if state.has_live_data(now_day, &p.state) {
        at(day_start(now_day + 1));
    }
    // The next urgent ticket to cross the aging limit: the oldest one opened after now - after.
    let after = p.alerts.urgent_after_ms;
    if let Some(opened) = state.tickets.first_urgent_opened_after(now_ms.saturating_sub(after)) {
        at(opened.saturating_add(after));
    }
    if let Some(end) = p.onboarding_ends(state, now_day) {
        at(day_start(end));
    }
    if let Some(r) = state.facts.renewal_day {
        let from = r.saturating_sub(p.alerts.renewal_days as i32);
        if from > now_day {
            at(day_start(from));
        }
    }
    // A contract cancelled to run until its end date: it leaves the queue that day.
    if let Some(e) = state.facts.ended {
        at(day_start(e.day));
    }
    // A snooze or an override ends.
    if let Some(d) = state.cs.as_ref().and_then(|c| c.next_end()) {
        at(day_start(d));
    }
    due
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::HistoryDay;

    #[test]
    fn a_swing_of_a_hundred_percent_or_more_reads_as_a_factor() {
        let d = |swing: f64| Decline { days: 7, ratio: 0.3, z: -4.0, events: Some(0.3), users: Some(0.3), swing: Some(swing), last: Some(0.2), working: 0x7f, recent: [f32::NAN; crate::core::noise::RECENT_DAYS] };
        assert!(decline_words(Some(d(0.24))).ends_with("its weeks usually swing ±24%"), "{}", decline_words(Some(d(0.24))));
        assert!(decline_words(Some(d(1.71))).ends_with("its weeks usually vary by a factor of 2.7"), "{}", decline_words(Some(d(1.71))));
    }

    #[test]
    fn the_score_spread_comes_from_the_four_weeks_before_the_window() {
        let day = |d: i32, tenths: u16| HistoryDay { day: d, tenths, band: Band::Green, alerts: 0 };
        // Days 0..=27 alternate 60 and 80; the last 14 days (28..=41) are at 0 and not counted.
        let h: std::collections::VecDeque<HistoryDay> =
            (0..28).map(|d| day(d, if d % 2 == 0 { 600 } else { 800 })).chain((28..42).map(|d| day(d, 0))).collect();
        let sd = score_spread(&h, 42, 14).unwrap();
        assert!((sd - 10.18).abs() < 0.01, "{sd}");
        assert_eq!(score_spread(&h, 27, 14), None, "13 days before the window");
        assert!(score_spread(&h, 28, 14).is_some(), "14 days before the window");
    }
}
