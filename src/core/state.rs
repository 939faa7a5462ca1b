//! Per-account state and how events change it: `apply(state, event)`. No I/O, no clock:
//! the caller says what "now" is (the partition's stream time).

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use super::days::DayCounts;
use super::distinct::Distinct;
use super::ids::fnv64;
use super::measures::N_MEASURES;
use crate::event::timestamp::{day_of, DAY_MS};
use crate::event::{Event, Priority, TicketKind};

/// Account facts from the latest account record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub name: Option<String>,
    pub seats: Option<u32>,
    pub segment: Option<String>,
    /// The CSM responsible for the account.
    pub owner: Option<String>,
    pub arr: Option<f64>,
    pub renewal_day: Option<i32>,
    pub start_day: Option<i32>,
    /// `ts` of the record these facts come from; an older record never overwrites a newer one.
    pub ts_ms: Option<i64>,
    /// The account ended (churned or cancelled) on this day, if the latest record says so.
    pub ended: Option<Ended>,
}

/// How and when an account ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// `Churned` or `Cancelled`, never `Active`.
    pub status: crate::event::AccountStatus,
    pub day: i32,
}

impl Facts {
    /// Whether the account has ended by `day`: no alerts, no timers, out of the queue.
    pub fn ended_by(&self, day: i32) -> bool {
        self.ended.is_some_and(|e| e.day <= day)
    }
}

pub use super::tickets::{Ticket, Tickets};

/// Band of a score, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Band {
    Red,
    Yellow,
    Green,
}

impl Band {
    pub const ALL: [Band; 3] = [Band::Red, Band::Yellow, Band::Green];
    pub fn name(self) -> &'static str {
        match self {
            Band::Red => "red",
            Band::Yellow => "yellow",
            Band::Green => "green",
        }
    }
    pub fn from_code(c: u8) -> Option<Band> {
        Band::ALL.get(c as usize).copied()
    }
}

/// Measure values at one evaluation (indexed by `Measure as usize`).
pub type MeasureValues = [Option<f64>; N_MEASURES];

/// One evaluation, kept as the last one and as the daily bests that explanations compare with.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub at_ms: i64,
    pub score: f64,
    pub band: Band,
    pub values: Values,
}

/// Measure values as a snapshot holds them: which are present (bit `Measure as usize`) and the
/// values, 8 bytes each: half of a `MeasureValues` (`[Option<f64>; N]`, 16 bytes a value). A
/// state keeps a snapshot for each of up to a window's daily bests, so this is most of what a
/// decoded sparse account holds beyond its inline part. Exact: a value keeps its bits (NaN and
/// -0.0 included).
#[derive(Clone, Copy)]
pub struct Values {
    present: u16,
    values: [f64; N_MEASURES],
}

const _: () = assert!(N_MEASURES <= 16, "one presence bit per measure in a u16");

impl Values {
    pub const NONE: Values = Values { present: 0, values: [0.0; N_MEASURES] };

    /// The value of measure `i` (`Measure as usize`), if it had one.
    pub fn get(&self, i: usize) -> Option<f64> {
        (self.present >> i & 1 == 1).then(|| self.values[i])
    }

    pub fn set(&mut self, i: usize, v: Option<f64>) {
        match v {
            Some(x) => {
                self.present |= 1 << i;
                self.values[i] = x;
            }
            None => {
                self.present &= !(1 << i);
                self.values[i] = 0.0;
            }
        }
    }

    pub fn to_array(&self) -> MeasureValues {
        std::array::from_fn(|i| self.get(i))
    }

    pub fn iter(&self) -> impl Iterator<Item = Option<f64>> + '_ {
        (0..N_MEASURES).map(|i| self.get(i))
    }
}

impl From<MeasureValues> for Values {
    fn from(a: MeasureValues) -> Values {
        let mut v = Values::NONE;
        for (i, x) in a.into_iter().enumerate() {
            v.set(i, x);
        }
        v
    }
}

/// As `MeasureValues` compare: the same measures present, with equal values.
impl PartialEq for Values {
    fn eq(&self, other: &Values) -> bool {
        (0..N_MEASURES).all(|i| self.get(i) == other.get(i))
    }
}

impl std::fmt::Debug for Values {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.to_array().fmt(f)
    }
}

/// Bookkeeping of one alert rule for one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleMark {
    /// The rule may fire (it re-arms once its release condition holds).
    pub armed: bool,
    pub last_fired_ms: Option<i64>,
}

impl Default for RuleMark {
    fn default() -> Self {
        Self { armed: true, last_fired_ms: None }
    }
}

/// A past alert, for the API's "last alerts".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRef {
    pub rule: u8,
    pub at_ms: i64,
    /// The alert's summary, cut to `ALERT_SUMMARY_BYTES`, packed.
    pub summary: super::phrases::Packed,
}

impl AlertRef {
    /// The alert's id (`ids::alert_id` of the account, the rule and the time: not kept, made
    /// again); `None` for a rule this build does not know.
    pub fn alert_id(&self, account_id: &str) -> Option<String> {
        super::alerts::Rule::from_code(self.rule).map(|r| super::ids::alert_id(account_id, r.name(), self.at_ms))
    }
}

/// Bytes of an alert's summary kept with the account's recent alerts.
pub const ALERT_SUMMARY_BYTES: usize = 240;

/// What the scorer remembers between evaluations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoreState {
    pub last: Option<Snapshot>,
    /// Scorecard (`name@version`) of the last evaluation.
    pub scorecard: String,
    /// Band held with hysteresis.
    pub band: Option<Band>,
    /// Daily best evaluations over the score-drop window, best first (a monotonic queue).
    pub best: VecDeque<(i32, Snapshot)>,
    pub rules: [RuleMark; super::alerts::N_RULES],
    /// Score and band of the last published score update.
    pub emitted: Option<(f64, Band)>,
    /// When the account must next be re-scored even if it sends nothing.
    pub next_due_ms: Option<i64>,
    /// The most recent alerts, newest last (at most `RECENT_ALERTS`).
    pub recent_alerts: VecDeque<AlertRef>,
    /// Some evaluation already had enough history for alerts (so the next red is a transition).
    pub alerts_live: bool,
    /// First day of the current run of days with usage below `usage_drop.share` of its norm.
    pub drop_since: Option<i32>,
    /// The last evaluation of each of the last `HISTORY_DAYS` days with one, oldest first, for
    /// the account's score history.
    pub history: VecDeque<HistoryDay>,
    /// First day of the current run of days with the score `score_drop.points` below its best.
    pub score_drop_since: Option<i32>,
    /// First day of the current run of days at or above `expansion_candidate.seat_share`.
    pub expansion_since: Option<i32>,
    /// Renewal day a `renewal_at_risk` alert was raised for.
    pub renewal_alerted: Option<i32>,
}

pub const RECENT_ALERTS: usize = 5;

/// Days of score history kept per account.
pub const HISTORY_DAYS: i32 = 90;

/// One day of an account's score history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryDay {
    pub day: i32,
    /// The day's last score, in tenths (0..=1000).
    pub tenths: u16,
    pub band: Band,
    /// Bit `Rule as usize` set: an alert of that rule fired that day.
    pub alerts: u16,
}

impl ScoreState {
    /// Records the day's evaluation in the history (the day's last one wins; the day's alerts
    /// accumulate) and forgets days older than `HISTORY_DAYS`.
    pub fn note_history(&mut self, day: i32, score: f64, band: Band, alerts: u16) {
        let tenths = (score.clamp(0.0, 100.0) * 10.0).round() as u16;
        match self.history.back_mut() {
            Some(last) if last.day == day => *last = HistoryDay { day, tenths, band, alerts: last.alerts | alerts },
            Some(last) if last.day > day => {}
            _ => self.history.push_back(HistoryDay { day, tenths, band, alerts }),
        }
        while self.history.front().is_some_and(|h| h.day <= day - HISTORY_DAYS) {
            self.history.pop_front();
        }
    }
}

/// Everything kizashi keeps about one account.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountState {
    pub facts: Facts,
    /// First day kizashi saw activity for the account (alert warm-up counts from here).
    pub first_day: Option<i32>,
    pub last_usage_ms: Option<i64>,
    /// Last stream day `advance` ran for; retention and de-duplication windows end there.
    pub day: i32,
    /// Usage events per day.
    pub usage: DayCounts,
    pub users: Distinct,
    pub features: Distinct,
    pub tickets: Tickets,
    /// Tickets opened per day.
    pub opened: DayCounts,
    pub csat_sum: DayCounts,
    pub csat_count: DayCounts,
    /// NPS answers per day: all, promoters (9–10), detractors (0–6).
    pub nps_count: DayCounts,
    pub nps_promoters: DayCounts,
    pub nps_detractors: DayCounts,
    /// Hashes of recent `event_id`s with their event time, for de-duplication.
    pub seen_ids: FxHashMap<u64, i64>,
    pub score: ScoreState,
    /// The day's usage trends, computed once a day (never stored; see `TrendsMemo`).
    pub trends_memo: super::measures::TrendsMemo,
    /// Per input kind (usage, support, account): the offset after the last record of this
    /// account's partition applied to it (0: none). Used only when state is restored from the
    /// changelog, to skip records already reflected (see `pipeline::changelog`).
    pub applied: [i64; crate::event::N_KINDS],
    /// What the CS team's actions left on the account (`core::actions`); `None` until one.
    pub cs: Option<Box<super::actions::CsState>>,
}

/// State parameters that come from config.
#[derive(Debug, Clone, Copy)]
pub struct StateParams {
    pub retention_days: u32,
    /// Open tickets kept per account; an event that would open one more is refused.
    pub max_open_tickets: u32,
    /// 0 disables de-duplication.
    pub dedup_window_ms: i64,
    /// Over this many bytes (`AccountState::growable_bytes`), an account's usage and support
    /// events are refused.
    pub max_account_bytes: usize,
}

/// What `apply` did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Applied, and some measure may have moved: the account must be re-scored.
    Changed,
    /// Applied, but no measure can have moved (e.g. another event of a user already active that
    /// day, on a feature already used that day): re-scoring would give the same result.
    Unchanged,
    /// Same `event_id` seen within the de-duplication window: ignored.
    Duplicate,
    /// Would open a ticket beyond `StateParams::max_open_tickets`: not applied (the caller
    /// rejects the record as `too_many_tickets`).
    TooManyTickets,
}

impl AccountState {
    /// Bytes the state holds in memory, estimated from its parts' capacities (the cache's
    /// memory budget counts these). The inline part is `size_of::<AccountState>()`.
    pub fn mem_bytes(&self) -> usize {
        use super::ids::{alloc_bytes, map_heap_bytes};
        let opt = |s: &Option<String>| s.as_ref().map_or(0, |s| alloc_bytes(s.capacity()));
        let f = &self.facts;
        let facts = opt(&f.name) + opt(&f.segment) + opt(&f.owner);
        let days = [&self.usage, &self.opened, &self.csat_sum, &self.csat_count, &self.nps_count, &self.nps_promoters, &self.nps_detractors]
            .iter()
            .map(|d| d.heap_bytes())
            .sum::<usize>();
        let sc = &self.score;
        let score = alloc_bytes(sc.scorecard.capacity())
            + alloc_bytes(sc.best.capacity() * std::mem::size_of::<(i32, Snapshot)>())
            + alloc_bytes(sc.history.capacity() * std::mem::size_of::<HistoryDay>())
            + alloc_bytes(sc.recent_alerts.capacity() * std::mem::size_of::<AlertRef>())
            + sc.recent_alerts.iter().map(|a| alloc_bytes(a.summary.as_bytes().len())).sum::<usize>();
        std::mem::size_of::<AccountState>()
            + facts
            + days
            + self.users.heap_bytes()
            + self.features.heap_bytes()
            + self.tickets.heap_bytes()
            + map_heap_bytes::<u64, i64>(self.seen_ids.capacity())
            + self.trends_memo.heap_bytes()
            + score
            + self.cs.as_ref().map_or(0, |c| c.heap_bytes())
    }

    /// At most the bytes the parts of the state that grow with the stream alone take encoded: its
    /// users and features (a key, its last day and its days, at most 16 bytes besides the key)
    /// and its de-duplication ids (8 bytes and an event time, at most 18). Everything else is
    /// bounded by the configuration (tickets by `max_open_tickets`, day counts and the score's
    /// history by retention), and this by `max_account_bytes`. O(1), and a function of the
    /// contents alone (not of the maps' spare room), so the same events give the same verdicts.
    pub fn growable_bytes(&self) -> usize {
        self.users.key_bytes() + self.features.key_bytes() + 16 * (self.users.len() + self.features.len()) + 18 * self.seen_ids.len()
    }

    /// Forgets what fell out of retention as of `now_day`. Cheap when called again on the same day.
    pub fn advance(&mut self, now_day: i32, p: &StateParams) {
        if now_day <= self.day {
            return;
        }
        self.day = now_day;
        let horizon = now_day - p.retention_days as i32 + 1;
        self.usage.prune_before(horizon);
        self.users.prune_before(horizon);
        self.features.prune_before(horizon);
        self.opened.prune_before(horizon);
        self.csat_sum.prune_before(horizon);
        self.csat_count.prune_before(horizon);
        self.nps_count.prune_before(horizon);
        self.nps_promoters.prune_before(horizon);
        self.nps_detractors.prune_before(horizon);
        let horizon_ms = i64::from(horizon) * DAY_MS;
        self.tickets.forget_closed_before(horizon_ms);
        if p.dedup_window_ms > 0 {
            let keep_from = i64::from(now_day) * DAY_MS - p.dedup_window_ms;
            self.seen_ids.retain(|_, ts| *ts >= keep_from);
        }
    }

    /// Applies one event. The caller has checked it is within retention and called `advance`.
    pub fn apply(&mut self, event: &Event<'_>, now_day: i32, p: &StateParams) -> Applied {
        if let Event::Support(e) = event {
            if self.would_open_ticket(e) && self.tickets.open_count() >= p.max_open_tickets as usize {
                return Applied::TooManyTickets;
            }
        }
        let changed = self.apply_event(event, now_day, p);
        match changed {
            None => Applied::Duplicate,
            Some(true) => Applied::Changed,
            Some(false) => Applied::Unchanged,
        }
    }

    /// `None` for a duplicate, else whether any measure input changed.
    fn apply_event(&mut self, event: &Event<'_>, now_day: i32, p: &StateParams) -> Option<bool> {
        if let (Some(id), true) = (event.event_id(), p.dedup_window_ms > 0) {
            let h = fnv64(&[&[event.kind() as u8], id.as_bytes()]);
            if self.seen_ids.insert(h, event.ts_ms()).is_some() {
                return None;
            }
        }
        Some(match event {
            Event::Usage(e) => {
                let day = day_of(e.ts_ms);
                let mut changed = self.note_first_day(day);
                if day < now_day || changed {
                    // A complete day's counts (or the first day) moved: the trends must be made anew.
                    self.trends_memo.clear();
                }
                self.usage.add(day, 1);
                // Today's usage count feeds no measure until the day is complete.
                changed |= day < now_day;
                changed |= self.users.observe(&e.user_id, day);
                if let Some(f) = &e.feature {
                    changed |= self.features.observe(f, day);
                }
                let last_day = self.last_usage_ms.map(day_of);
                self.last_usage_ms = Some(self.last_usage_ms.map_or(e.ts_ms, |t| t.max(e.ts_ms)));
                changed | (last_day != self.last_usage_ms.map(day_of))
            }
            Event::Support(e) => {
                let day = day_of(e.ts_ms);
                self.note_first_day(day);
                self.apply_support(e, day, p);
                true
            }
            Event::Account(e) => {
                self.note_first_day(now_day);
                if self.facts.ts_ms.is_none_or(|t| e.ts_ms >= t) {
                    // A start date decides which past weeks were watched (the usual week of users).
                    self.trends_memo.clear();
                    self.facts = Facts {
                        name: e.name.as_deref().map(str::to_owned),
                        seats: e.seats,
                        segment: e.segment.as_deref().map(str::to_owned),
                        owner: e.owner.as_deref().map(str::to_owned),
                        arr: e.arr,
                        renewal_day: e.renewal_day,
                        start_day: e.start_day,
                        ts_ms: Some(e.ts_ms),
                        ended: match e.status {
                            crate::event::AccountStatus::Active => None,
                            status => Some(Ended { status, day: e.end_day.unwrap_or_else(|| day_of(e.ts_ms)) }),
                        },
                    };
                }
                true
            }
            Event::Action(e) => {
                let newest = self.score.recent_alerts.back().map(|a| (a.rule, a.at_ms));
                self.cs.get_or_insert_with(Default::default).apply(e, newest);
                // The next score update says what changed (even if the score did not move).
                self.score.emitted = None;
                true
            }
        })
    }

    /// Returns whether the first day moved.
    fn note_first_day(&mut self, day: i32) -> bool {
        let before = self.first_day;
        self.first_day = Some(before.map_or(day, |f| f.min(day)));
        if before != self.first_day {
            self.trends_memo.clear();
        }
        before != self.first_day
    }

    /// Whether applying `e` can add an open ticket.
    fn would_open_ticket(&self, e: &crate::event::SupportEvent<'_>) -> bool {
        match self.tickets.get(&e.ticket_id) {
            None => !matches!(e.kind, TicketKind::Csat | TicketKind::Nps),
            Some(t) => !t.open && matches!(e.kind, TicketKind::Opened | TicketKind::Reopened | TicketKind::Updated) && e.ts_ms >= t.last_ms,
        }
    }

    fn apply_support(&mut self, e: &crate::event::SupportEvent<'_>, day: i32, p: &StateParams) {
        if e.kind == TicketKind::Nps {
            if let Some(score) = e.nps {
                self.nps_count.add(day, 1);
                self.nps_promoters.add(day, u32::from(score >= 9));
                self.nps_detractors.add(day, u32::from(score <= 6));
            }
            return;
        }
        if e.kind == TicketKind::Csat {
            if let Some(c) = e.csat {
                self.csat_sum.add(day, u32::from(c));
                self.csat_count.add(day, 1);
            }
            return;
        }
        let ts = e.ts_ms;
        let known = self.tickets.get(&e.ticket_id).is_some();
        if !known {
            // A ticket first seen through a later event is taken as opened then.
            self.tickets.insert(
                &e.ticket_id,
                Ticket {
                    priority: e.priority.unwrap_or(Priority::Normal),
                    opened_ms: ts,
                    last_ms: i64::MIN,
                    open: true,
                },
            );
            if matches!(e.kind, TicketKind::Opened) {
                self.opened.add(day, 1);
            }
        }
        self.tickets.update(&e.ticket_id, |t| {
            if e.kind == TicketKind::Opened && known && ts < t.opened_ms {
                t.opened_ms = ts;
            }
            if ts < t.last_ms {
                // An older event arriving late: the ticket has moved on since.
                return;
            }
            t.last_ms = ts;
            if let Some(pr) = e.priority {
                t.priority = pr;
            }
            match e.kind {
                TicketKind::Opened | TicketKind::Reopened | TicketKind::Updated => t.open = true,
                TicketKind::Closed => t.open = false,
                TicketKind::Csat | TicketKind::Nps => {}
            }
        });
        if e.kind == TicketKind::Closed {
            self.tickets.trim_closed(p.max_open_tickets as usize);
        }
    }

    /// For an account never used: the day its days without usage count from — its start date if
    /// within retention (`horizon` is retention's first day), else the day kizashi first saw it.
    pub fn never_used_since(&self, horizon: i32) -> Option<i32> {
        if self.last_usage_ms.is_some() {
            return None;
        }
        match self.facts.start_day {
            Some(start) if start >= horizon => Some(start),
            _ => self.first_day,
        }
    }

    /// Whether anything kept still moves as windows slide (so timers must keep re-scoring).
    /// The band outputs show for a scored `band`: an override's while one holds.
    pub fn shown_band(&self, band: Band) -> Band {
        self.cs.as_ref().and_then(|c| c.overridden.as_ref()).map_or(band, |o| o.band)
    }

    /// What outputs say of the CS team's actions on the account (`account_id`), for a scored `band`.
    pub fn cs_view(&self, account_id: &str, band: Option<Band>) -> super::actions::CsView {
        super::actions::CsView::of(account_id, self.cs.as_deref(), band)
    }

    pub fn has_live_data(&self, now_day: i32, p: &StateParams) -> bool {
        let horizon = now_day - p.retention_days as i32 + 1;
        self.last_usage_ms.is_some_and(|t| day_of(t) >= horizon)
            || !self.opened.is_empty()
            || !self.csat_count.is_empty()
            || !self.nps_count.is_empty()
            || self.tickets.open_count() > 0
            // Never used: the days without any usage keep counting (up to the retention).
            || (self.last_usage_ms.is_none() && self.never_used_since(horizon).is_some_and(|b| b >= horizon))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SupportEvent;
    use std::borrow::Cow;

    const P: StateParams = StateParams { retention_days: 90, max_open_tickets: 3, dedup_window_ms: 2 * DAY_MS, max_account_bytes: usize::MAX };

    /// A snapshot's values hold what a `MeasureValues` holds, bit for bit, in half the bytes.
    #[test]
    fn snapshot_values_keep_every_value_and_absence_in_half_the_bytes() {
        let odd = [f64::NAN, -f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 0.0, -7.0, 1e300, 5e-324, 0.1];
        let mut a: MeasureValues = [None; N_MEASURES];
        for (i, v) in odd.iter().enumerate() {
            a[i] = Some(*v);
        }
        let v = Values::from(a);
        let bits = |x: &[Option<f64>]| x.iter().map(|v| v.map(f64::to_bits)).collect::<Vec<_>>();
        assert_eq!(bits(&v.to_array()), bits(&a));
        assert_eq!(bits(&v.iter().collect::<Vec<_>>()), bits(&a));
        assert_eq!(v.get(N_MEASURES - 1), None);
        let mut w = v;
        w.set(3, None);
        assert_eq!((w.get(3), w.get(4).map(f64::to_bits)), (None, Some((-0.0f64).to_bits())));
        // Equality as the arrays': NaN is unequal to itself, -0.0 equals 0.0, absence matters.
        let plain = Values::from([Some(1.0); N_MEASURES]);
        assert_eq!(plain, Values::from([Some(1.0); N_MEASURES]));
        let copy = v;
        assert_ne!(v, copy, "a NaN value");
        assert_eq!(Values::from({ let mut x = [None; N_MEASURES]; x[2] = Some(-0.0); x }), Values::from({ let mut x = [None; N_MEASURES]; x[2] = Some(0.0); x }));
        assert_ne!(Values::from([None; N_MEASURES]), Values::from({ let mut x = [None; N_MEASURES]; x[0] = Some(0.0); x }));
        // The point of it: a sparse account keeps up to a window's days of these.
        assert!(std::mem::size_of::<Values>() * 2 <= std::mem::size_of::<MeasureValues>() + 16);
        assert!(std::mem::size_of::<Snapshot>() <= 152, "{} bytes", std::mem::size_of::<Snapshot>());
    }

    fn support(ticket: &str, kind: TicketKind, prio: Option<Priority>, ts: i64) -> Event<'static> {
        Event::Support(SupportEvent {
            account_id: Cow::Borrowed("a"),
            ticket_id: Cow::Owned(ticket.into()),
            kind,
            priority: prio,
            csat: None,
            nps: None,
            ts_ms: ts,
            event_id: None,
        })
    }

    #[test]
    fn tickets_follow_their_latest_event_whatever_the_arrival_order() {
        let mut s = AccountState::default();
        s.apply(&support("t1", TicketKind::Closed, None, 2000), 0, &P);
        s.apply(&support("t1", TicketKind::Opened, Some(Priority::Urgent), 1000), 0, &P);
        let t = *s.tickets.get("t1").unwrap();
        assert!(!t.open, "the close is newer than the open");
        assert_eq!(t.opened_ms, 1000);
        s.apply(&support("t1", TicketKind::Reopened, None, 3000), 0, &P);
        assert!(s.tickets.get("t1").unwrap().open);
    }

    #[test]
    fn history_keeps_the_last_evaluation_of_each_of_the_last_90_days() {
        let mut sc = ScoreState::default();
        sc.note_history(10, 50.0, Band::Yellow, 0b10);
        sc.note_history(10, 80.04, Band::Green, 0b1);
        sc.note_history(9, 1.0, Band::Red, 0);
        assert_eq!(
            sc.history,
            [HistoryDay { day: 10, tenths: 800, band: Band::Green, alerts: 0b11 }],
            "the day's last evaluation and all its alerts; an older day is ignored"
        );
        for d in 11..200 {
            sc.note_history(d, 30.0, Band::Red, 0);
        }
        assert_eq!(sc.history.len(), 90);
        assert_eq!(sc.history.front().unwrap().day, 110);
    }

    #[test]
    fn open_tickets_are_capped() {
        let mut s = AccountState::default();
        for i in 0..3 {
            assert_eq!(s.apply(&support(&format!("t{i}"), TicketKind::Opened, None, 1000 + i), 0, &P), Applied::Changed);
        }
        assert_eq!(s.apply(&support("t9", TicketKind::Opened, None, 2000), 0, &P), Applied::TooManyTickets);
        assert_eq!(s.apply(&support("t9", TicketKind::Updated, None, 2000), 0, &P), Applied::TooManyTickets);
        assert_eq!(s.apply(&support("t1", TicketKind::Updated, None, 2000), 0, &P), Applied::Changed, "a known open ticket");
        assert_eq!(s.apply(&support("t1", TicketKind::Closed, None, 3000), 0, &P), Applied::Changed);
        assert_eq!(s.apply(&support("t9", TicketKind::Opened, None, 4000), 0, &P), Applied::Changed, "room again");
        assert_eq!(s.apply(&support("t1", TicketKind::Reopened, None, 5000), 0, &P), Applied::TooManyTickets);
        assert_eq!(s.tickets.open_count(), 3);
        assert_eq!(s.opened.sum(0, 0), 4, "refused events open nothing");
    }

    #[test]
    fn duplicates_by_event_id_are_dropped() {
        let mut s = AccountState::default();
        let mk = |id: &str| {
            Event::Usage(crate::event::UsageEvent {
                account_id: Cow::Borrowed("a"),
                user_id: Cow::Borrowed("u"),
                event: Cow::Borrowed("login"),
                feature: None,
                ts_ms: 1000,
                event_id: Some(Cow::Owned(id.into())),
            })
        };
        assert_eq!(s.apply(&mk("e1"), 0, &P), Applied::Changed);
        assert_eq!(s.apply(&mk("e1"), 0, &P), Applied::Duplicate);
        assert_eq!(s.apply(&mk("e2"), 0, &P), Applied::Unchanged, "same user, same day");
        assert_eq!(s.usage.sum(0, 0), 2);
        s.advance(10, &P);
        assert!(s.seen_ids.is_empty(), "ids older than the window are forgotten");
    }
}
