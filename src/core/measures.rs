//! The measures (DESIGN §4): what an account's state says at time `now`. One name per measure,
//! used alike in config, code, alerts, scores and the README.

use super::noise;
use super::state::{AccountState, MeasureValues};
use crate::event::timestamp::day_of;

pub const N_MEASURES: usize = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Measure {
    ActiveUsers30d,
    ActiveUsers7d,
    SeatUtilization,
    Stickiness,
    FeatureBreadth30d,
    UsageTrend,
    DaysSinceLastActivity,
    OpenUrgentTickets,
    TicketsOpened30d,
    OldestOpenTicketDays,
    Csat90d,
    DaysToRenewal,
    SeatUtilization7d,
    ActiveUsersTrend,
    Nps90d,
}

/// What a measure is about. An account with no usage in its data earns no points on the usage
/// measures of its scorecard that have no data (they count as 0, not as left out), so it is never
/// scored healthy on support measures alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Usage,
    Support,
    Voice,
    Commercial,
}

/// How a value reads in a sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Ratio,
    Days,
    Csat,
    Nps,
}

impl Measure {
    /// In discriminant order (`Measure::ALL[m as usize] == m`).
    pub const ALL: [Measure; N_MEASURES] = [
        Measure::ActiveUsers30d,
        Measure::ActiveUsers7d,
        Measure::SeatUtilization,
        Measure::Stickiness,
        Measure::FeatureBreadth30d,
        Measure::UsageTrend,
        Measure::DaysSinceLastActivity,
        Measure::OpenUrgentTickets,
        Measure::TicketsOpened30d,
        Measure::OldestOpenTicketDays,
        Measure::Csat90d,
        Measure::DaysToRenewal,
        Measure::SeatUtilization7d,
        Measure::ActiveUsersTrend,
        Measure::Nps90d,
    ];

    pub fn category(self) -> Category {
        match self {
            Measure::ActiveUsers30d
            | Measure::ActiveUsers7d
            | Measure::SeatUtilization
            | Measure::SeatUtilization7d
            | Measure::Stickiness
            | Measure::FeatureBreadth30d
            | Measure::UsageTrend
            | Measure::ActiveUsersTrend
            | Measure::DaysSinceLastActivity => Category::Usage,
            Measure::OpenUrgentTickets | Measure::TicketsOpened30d | Measure::OldestOpenTicketDays | Measure::Csat90d => {
                Category::Support
            }
            Measure::Nps90d => Category::Voice,
            Measure::DaysToRenewal => Category::Commercial,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Measure::ActiveUsers30d => "active_users_30d",
            Measure::ActiveUsers7d => "active_users_7d",
            Measure::SeatUtilization => "seat_utilization",
            Measure::Stickiness => "stickiness",
            Measure::FeatureBreadth30d => "feature_breadth_30d",
            Measure::UsageTrend => "usage_trend",
            Measure::DaysSinceLastActivity => "days_since_last_activity",
            Measure::OpenUrgentTickets => "open_urgent_tickets",
            Measure::TicketsOpened30d => "tickets_opened_30d",
            Measure::OldestOpenTicketDays => "oldest_open_ticket_days",
            Measure::Csat90d => "csat_90d",
            Measure::DaysToRenewal => "days_to_renewal",
            Measure::SeatUtilization7d => "seat_utilization_7d",
            Measure::ActiveUsersTrend => "active_users_trend",
            Measure::Nps90d => "nps_90d",
        }
    }

    pub fn from_name(s: &str) -> Option<Measure> {
        Measure::ALL.into_iter().find(|m| m.name() == s)
    }

    /// Words for a sentence ("seat utilisation").
    pub fn label(self) -> &'static str {
        match self {
            Measure::ActiveUsers30d => "active users (30 d)",
            Measure::ActiveUsers7d => "active users (7 d)",
            Measure::SeatUtilization => "seat utilisation",
            Measure::Stickiness => "stickiness (daily/monthly users)",
            Measure::FeatureBreadth30d => "features used (30 d)",
            Measure::UsageTrend => "usage trend",
            Measure::DaysSinceLastActivity => "days since last activity",
            Measure::OpenUrgentTickets => "open urgent tickets",
            Measure::TicketsOpened30d => "tickets opened (30 d)",
            Measure::OldestOpenTicketDays => "oldest open ticket age",
            Measure::Csat90d => "CSAT (90 d)",
            Measure::DaysToRenewal => "days to renewal",
            Measure::SeatUtilization7d => "weekly seat utilisation",
            Measure::ActiveUsersTrend => "daily active users against their norm",
            Measure::Nps90d => "NPS (90 d)",
        }
    }

    pub fn unit(self) -> Unit {
        match self {
            Measure::SeatUtilization
            | Measure::SeatUtilization7d
            | Measure::Stickiness
            | Measure::UsageTrend
            | Measure::ActiveUsersTrend => Unit::Ratio,
            Measure::Nps90d => Unit::Nps,
            Measure::DaysSinceLastActivity | Measure::OldestOpenTicketDays | Measure::DaysToRenewal => Unit::Days,
            Measure::Csat90d => Unit::Csat,
            _ => Unit::Count,
        }
    }
}

/// Inputs to the measures that come from config.
#[derive(Debug, Clone, Default)]
pub struct MeasureParams {
    /// If not empty, `feature_breadth_30d` counts only these. Sorted, without repeats (see
    /// [`MeasureParams::new`]).
    pub key_features: Vec<String>,
    /// Days of history kept (bounds `days_since_last_activity` of an account never used).
    pub retention_days: u32,
}

impl MeasureParams {
    pub fn new(key_features: &[String], retention_days: u32) -> Self {
        let mut key_features = key_features.to_vec();
        key_features.sort_unstable();
        key_features.dedup();
        Self { key_features, retention_days }
    }
}

/// `feature_breadth_30d` with key features: how many of them the account used on or after
/// `from`. Looked up from the shorter side, so its cost is neither the account's features times
/// the list (up to ~200,000 features within `state.max_account_bytes`, on every re-score) nor
/// the list's length for an account with few features.
fn key_feature_breadth(features: &super::distinct::Distinct, key_features: &[String], from: i32) -> u64 {
    debug_assert!(key_features.windows(2).all(|w| w[0] < w[1]), "sorted, without repeats");
    if key_features.len() <= features.len() {
        key_features.iter().filter(|f| features.seen_since(f, from)).count() as u64
    } else {
        features.keys_since(from).filter(|k| key_features.binary_search_by(|f| f.as_str().cmp(k)).is_ok()).count() as u64
    }
}

/// Trend measures are last week's usage against the account's own norm (see `noise`), discounted
/// towards 1 by this many standard deviations of the account's own noise: a slow week within the
/// account's usual swing costs no points, a fall beyond it costs what lies beyond.
pub const TREND_DISCOUNT: f64 = 1.5;
/// Least overdispersion assumed of daily event counts (an active user makes several events at
/// once); daily active users are counted as people (1).
pub const EVENT_DISPERSION: f64 = 2.0;

/// Last week against the norm, discounted; a week without any usage reads 0.
fn trend(u: &noise::Usage) -> Option<f64> {
    u.week().map(|w| if w.observed == 0.0 { 0.0 } else { w.discounted(TREND_DISCOUNT) })
}

/// The account's usual week of distinct users: the median over the whole weeks before the last 7
/// days (`now - 6 ..= now`) that kizashi watched within retention, at least two of them. O(users),
/// once a day (kept in the day's memo).
fn usual_week_users(s: &AccountState, now: i32, retention_days: u32) -> Option<f64> {
    let horizon = now - retention_days as i32 + 1;
    let mut weeks: Vec<u64> = (1..=SEAT_NORM_WEEKS)
        .map(|k| (now - 6 - 7 * k, now - 7 * k))
        .take_while(|&(from, _)| from >= horizon && window_observed(s, from, now))
        .map(|(from, to)| s.users.count_between(from, to))
        .collect();
    if weeks.len() < 2 {
        return None;
    }
    weeks.sort_unstable();
    let n = weeks.len();
    Some(if n % 2 == 1 { weeks[n / 2] as f64 } else { (weeks[n / 2 - 1] + weeks[n / 2]) as f64 / 2.0 })
}

/// Weekly seat utilisation as scored: `active` of `seats` people used the account in the last 7
/// days, read against its usual week (`usual` people) with the chance noise of counting people.
/// A week below the usual one by less than `TREND_DISCOUNT` binomial standard deviations reads as
/// the usual week, a fall beyond that costs what lies beyond: one of four people away for a week
/// is chance, a quarter of 300 is not. A week that nobody used reads 0; a rise is taken as it is.
pub fn weekly_seat_use(active: u64, seats: f64, usual: Option<f64>) -> f64 {
    let seen = active as f64 / seats;
    let Some(usual) = usual else { return seen };
    let p = (usual / seats).min(1.0);
    if active == 0 || seen >= p {
        return seen;
    }
    // The chance a seat is used, estimated with one used and one unused seat added (a team of
    // four that used all four seats a few weeks running has not shown it never takes a week off).
    let q = ((usual + 1.0) / (seats + 2.0)).min(1.0);
    let sd = (q * (1.0 - q) / seats).sqrt();
    (seen + TREND_DISCOUNT * sd).min(p)
}

/// The usage series the trends and the decline evidence judge: events a day and people a day.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trends {
    pub events: noise::Usage,
    pub users: noise::Usage,
}

impl Trends {
    /// `retention_days`: days before the retention horizon are pruned, so they are no data
    /// (not days without usage).
    pub fn of(s: &AccountState, now: i32, retention_days: u32) -> Trends {
        let first = s.first_day.map(|f| f.max(now - retention_days as i32 + 1));
        Trends {
            events: noise::usage(first, now, EVENT_DISPERSION, |d| s.usage.get(d)),
            users: noise::usage(first, now, 1.0, |d| s.users.daily(d)),
        }
    }
}

/// What a day's usage evidence gives the measures and the rules: the two trend measures, the
/// strongest evidence of a fall, and the account's usual week of distinct users.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DailyUsage {
    pub usage_trend: Option<f64>,
    pub active_users_trend: Option<f64>,
    pub decline: Option<noise::Decline>,
    /// The median of the distinct users of the (up to) `SEAT_NORM_WEEKS` whole weeks before the
    /// last 7 days that kizashi watched (at least two), or `None`.
    pub week_users: Option<f64>,
}

/// Weeks before the last 7 days whose distinct users make an account's usual week.
pub const SEAT_NORM_WEEKS: i32 = 4;

impl DailyUsage {
    pub fn of(s: &AccountState, now: i32, retention_days: u32) -> DailyUsage {
        let t = Trends::of(s, now, retention_days);
        DailyUsage {
            usage_trend: trend(&t.events),
            active_users_trend: trend(&t.users),
            decline: noise::decline(&t.events, &t.users),
            week_users: usual_week_users(s, now, retention_days),
        }
    }

    /// `of`, kept in the state's memo for the rest of the day: the windows end with the last
    /// complete day, so only a new day or a late event (a past day's count moved, which clears
    /// the memo) can change them, and a busy account is re-scored many times a day.
    pub fn memo(s: &AccountState, now: i32, retention_days: u32) -> DailyUsage {
        if let Some((day, t)) = s.trends_memo.get() {
            if day == now {
                return t;
            }
        }
        let t = DailyUsage::of(s, now, retention_days);
        s.trends_memo.set(now, t);
        t
    }
}

/// What an account's day of evaluations shares: its `DailyUsage` and its quiet champions (both
/// read only complete days), for the day they are for.
#[derive(Debug, Clone)]
struct Memo {
    day: i32,
    usage: Option<DailyUsage>,
    champions: Option<Option<super::people::QuietChampions>>,
}

/// The day's memo of an account: a cache, never stored, equal to any other (a state's contents do
/// not include it). Boxed, so a state that holds none (every account at rest, in the warm tier or
/// read back) pays a pointer for it.
#[derive(Default)]
pub struct TrendsMemo(std::cell::Cell<Option<Box<Memo>>>);

impl TrendsMemo {
    fn with<R>(&self, f: impl FnOnce(&mut Option<Box<Memo>>) -> R) -> R {
        let mut b = self.0.take();
        let r = f(&mut b);
        self.0.set(b);
        r
    }

    fn get(&self) -> Option<(i32, DailyUsage)> {
        self.with(|b| b.as_ref().and_then(|m| m.usage.map(|u| (m.day, u))))
    }

    fn set(&self, day: i32, t: DailyUsage) {
        self.with(|b| match b {
            Some(m) if m.day == day => m.usage = Some(t),
            _ => *b = Some(Box::new(Memo { day, usage: Some(t), champions: None })),
        })
    }

    /// The account's quiet champions on `day`, computed by `compute` once a day.
    pub fn champions(&self, day: i32, compute: impl FnOnce() -> Option<super::people::QuietChampions>) -> Option<super::people::QuietChampions> {
        if let Some(c) = self.with(|b| b.as_ref().filter(|m| m.day == day).and_then(|m| m.champions.clone())) {
            return c;
        }
        let c = compute();
        let keep = c.clone();
        self.with(|b| match b {
            Some(m) if m.day == day => m.champions = Some(keep),
            _ => *b = Some(Box::new(Memo { day, usage: None, champions: Some(keep) })),
        });
        c
    }

    /// Forgets the cached figures (a past day's counts moved).
    pub fn clear(&mut self) {
        *self.0.get_mut() = None;
    }

    /// Heap bytes held (for the cache's memory budget).
    pub fn heap_bytes(&self) -> usize {
        use super::ids::alloc_bytes;
        self.with(|b| {
            b.as_ref().map_or(0, |m| {
                let champions = m.champions.as_ref().and_then(Option::as_ref).map_or(0, |q| {
                    alloc_bytes(q.quiet.capacity() * std::mem::size_of::<super::people::Champion>())
                        + q.quiet.iter().map(|c| alloc_bytes(c.user_id.capacity())).sum::<usize>()
                });
                alloc_bytes(std::mem::size_of::<Memo>()) + champions
            })
        })
    }
}

impl Clone for TrendsMemo {
    fn clone(&self) -> Self {
        TrendsMemo(std::cell::Cell::new(self.with(|b| b.clone())))
    }
}

impl PartialEq for TrendsMemo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for TrendsMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TrendsMemo")
    }
}

/// Whether a window starting on `from` has data: kizashi watched the account over all of it, or
/// the account started while kizashi was watching and is a week old (its windows then count from
/// its start: a young account's 30 days are the days it has lived).
pub fn window_observed(s: &AccountState, from: i32, now: i32) -> bool {
    let Some(first) = s.first_day else { return false };
    match s.facts.start_day {
        Some(start) if start >= first => now - 6 >= start,
        _ => first <= from,
    }
}

/// Whether kizashi knows the account used nothing in retention: no usage event within it, and a
/// week watched without one (or a start date more than a week ago, within retention). A customer
/// who signed today has not had the time to use anything yet.
pub fn usage_known_absent(s: &AccountState, now: i32, retention_days: u32) -> bool {
    let horizon = now - retention_days as i32 + 1;
    let used = s.last_usage_ms.is_some_and(|t| day_of(t) >= horizon);
    let watched_a_week = s.first_day.is_some_and(|f| f <= now - 6);
    let started_long_ago = s.facts.start_day.is_some_and(|st| st >= horizon && now - st >= 7);
    !used && (watched_a_week || started_long_ago)
}

/// Days without any usage of an account that never had any: since its start date when that is
/// within retention (a customer signed recently who never started), else since kizashi first
/// saw it (of an older customer it knows only what it watched).
pub fn days_without_any_usage(s: &AccountState, now: i32, retention_days: u32) -> Option<f64> {
    let basis = s.never_used_since(now - retention_days as i32 + 1)?;
    Some(f64::from((now - basis).clamp(0, retention_days as i32)))
}

/// Computes every measure at `now_ms` (the partition's stream time). `None` means "no data".
pub fn compute(s: &AccountState, now_ms: i64, p: &MeasureParams) -> MeasureValues {
    compute_with_trends(s, now_ms, p).0
}

/// `compute`, and the day's usage evidence the trends come from (the rules judge it too).
pub fn compute_with_trends(s: &AccountState, now_ms: i64, p: &MeasureParams) -> (MeasureValues, DailyUsage) {
    let now = day_of(now_ms);
    let mut v: MeasureValues = [None; N_MEASURES];
    let mut set = |m: Measure, x: Option<f64>| v[m as usize] = x;

    let au30 = s.users.count_since(now - 29);
    let au7 = s.users.count_since(now - 6);
    // A window kizashi has not watched whole has no data yet: counting only the part it saw would
    // make every account look half-adopted in its first days.
    let (full7, full30) = (window_observed(s, now - 6, now), window_observed(s, now - 29, now));
    set(Measure::ActiveUsers30d, full30.then_some(au30 as f64));
    set(Measure::ActiveUsers7d, full7.then_some(au7 as f64));
    let seats = s.facts.seats.filter(|&n| n > 0).map(f64::from);
    set(Measure::SeatUtilization, seats.filter(|_| full30).map(|n| au30 as f64 / n));
    let daily = DailyUsage::memo(s, now, p.retention_days);
    set(Measure::SeatUtilization7d, seats.filter(|_| full7).map(|n| weekly_seat_use(au7, n, daily.week_users)));
    // Days of the 30 the account existed (all 30 unless it started within them).
    let lived_days = s.facts.start_day.map_or(30, |st| (now - st + 1).clamp(1, 30));
    set(
        Measure::Stickiness,
        (full30 && au30 > 0).then(|| s.users.daily_sum(now - 29, now) as f64 / f64::from(lived_days) / au30 as f64),
    );
    let breadth = if p.key_features.is_empty() {
        s.features.count_since(now - 29)
    } else {
        key_feature_breadth(&s.features, &p.key_features, now - 29)
    };
    set(Measure::FeatureBreadth30d, full30.then_some(breadth as f64));
    set(Measure::UsageTrend, daily.usage_trend);
    set(Measure::ActiveUsersTrend, daily.active_users_trend);
    set(
        Measure::DaysSinceLastActivity,
        match s.last_usage_ms {
            Some(t) => Some(f64::from((now - day_of(t)).max(0))),
            // A customer who signed today has not had the time to use anything: no data yet.
            None if usage_known_absent(s, now, p.retention_days) => days_without_any_usage(s, now, p.retention_days),
            None => None,
        },
    );

    let oldest = s.tickets.oldest_open_ms();
    set(Measure::OpenUrgentTickets, Some(s.tickets.open_urgent_count() as f64));
    set(Measure::TicketsOpened30d, Some(s.opened.sum(now - 29, now) as f64));
    set(Measure::OldestOpenTicketDays, Some(oldest.map_or(0.0, |o| f64::from((now - day_of(o)).max(0)))));
    let n = s.csat_count.sum(now - 89, now);
    set(Measure::Csat90d, (n > 0).then(|| s.csat_sum.sum(now - 89, now) as f64 / n as f64));
    let responses = s.nps_count.sum(now - 89, now);
    set(
        Measure::Nps90d,
        (responses > 0).then(|| {
            let promoters = s.nps_promoters.sum(now - 89, now) as f64;
            let detractors = s.nps_detractors.sum(now - 89, now) as f64;
            (promoters - detractors) / responses as f64 * 100.0
        }),
    );
    set(Measure::DaysToRenewal, s.facts.renewal_day.map(|d| f64::from(d - now)));
    (v, daily)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::distinct::Distinct;

    #[test]
    fn weekly_seat_use_discounts_a_small_teams_chance_week_and_not_a_large_ones() {
        // Four seats, three people a usual week: one away is chance, three away is not all chance.
        assert_eq!(weekly_seat_use(2, 4.0, Some(3.0)), 0.75);
        let one_left = weekly_seat_use(1, 4.0, Some(3.0));
        assert!(one_left > 0.25 && one_left < 0.75, "{one_left}");
        // Every seat used every week still leaves room for a week off (one used and one unused
        // seat are added to the estimate).
        assert!(weekly_seat_use(2, 4.0, Some(4.0)) > 0.75);
        // 300 seats, 180 people a usual week, 120 this week: hardly discounted.
        let large = weekly_seat_use(120, 300.0, Some(180.0));
        assert!(large > 0.4 && large < 0.45, "{large}");
        // Nobody at all, a rise, or no usual week yet: as seen.
        assert_eq!(weekly_seat_use(0, 4.0, Some(3.0)), 0.0);
        assert_eq!(weekly_seat_use(4, 4.0, Some(3.0)), 1.0);
        assert_eq!(weekly_seat_use(1, 4.0, None), 0.25);
    }

    #[test]
    fn the_usual_week_of_users_is_the_median_of_the_watched_weeks() {
        let mut s = AccountState { first_day: Some(0), ..AccountState::default() };
        // Weeks ending on day 62 (the one before the last 7 days of day 69), 55, 48, 41: 2, 4, 6
        // and 3 distinct people.
        for (week_end, people) in [(62, 2), (55, 4), (48, 6), (41, 3)] {
            for u in 0..people {
                s.users.observe(&format!("u{u}-{week_end}"), week_end - (u % 7));
            }
        }
        assert_eq!(usual_week_users(&s, 69, 365), Some(3.5));
        // Watched only since day 49: two weeks, 2 and 4.
        s.first_day = Some(49);
        assert_eq!(usual_week_users(&s, 69, 365), Some(3.0));
        s.first_day = Some(56);
        assert_eq!(usual_week_users(&s, 69, 365), None, "one week is no usual week");
    }

    #[test]
    fn all_is_in_discriminant_order() {
        for (i, m) in Measure::ALL.iter().enumerate() {
            assert_eq!(*m as usize, i);
            assert_eq!(Measure::from_name(m.name()), Some(*m));
        }
    }

    #[test]
    fn windows_have_data_once_watched_whole() {
        let mut s = AccountState::default();
        assert!(!window_observed(&s, 0, 6), "never seen");
        s.first_day = Some(100);
        assert!(window_observed(&s, 100, 106) && window_observed(&s, 120, 149));
        assert!(!window_observed(&s, 99, 105), "kizashi was not watching on day 99");
        s.facts.start_day = Some(100);
        assert!(!window_observed(&s, 80, 105), "started while watched, but not a week old");
        assert!(window_observed(&s, 80, 106), "a week old: its windows count from its start");
        s.facts.start_day = Some(50);
        assert!(!window_observed(&s, 80, 109), "it existed before kizashi saw it");
        let v = compute(&s, 105 * crate::event::timestamp::DAY_MS, &MeasureParams::default());
        assert_eq!(v[Measure::ActiveUsers7d as usize], None);
        assert_eq!(v[Measure::FeatureBreadth30d as usize], None);
    }

    proptest::proptest! {
        /// Either side of the lookup counts what a scan of the account's features would.
        #[test]
        fn key_feature_breadth_is_a_scans_count(
            seen in proptest::collection::vec((0u8..40, 0i32..60), 0..120),
            keys in proptest::collection::vec(0u8..50, 0..80),
            from in 0i32..60,
        ) {
            let mut d = Distinct::default();
            for (f, day) in &seen {
                d.observe(&format!("f{f}"), *day);
            }
            let list: Vec<String> = keys.iter().map(|k| format!("f{k}")).collect();
            let p = MeasureParams::new(&list, 90);
            let scan = d.keys_since(from).filter(|k| list.iter().any(|f| f == k)).count() as u64;
            proptest::prop_assert_eq!(key_feature_breadth(&d, &p.key_features, from), scan);
        }
    }

    #[test]
    fn key_feature_breadth_counts_the_listed_features_used_in_the_window() {
        let mut d = Distinct::default();
        for i in 0..200_000 {
            d.observe(&format!("feature-{i}"), 10);
        }
        let p = MeasureParams::new(&["feature-7".into(), "absent".into(), "feature-7".into(), "feature-199999".into()], 90);
        assert_eq!(p.key_features, ["absent", "feature-199999", "feature-7"], "sorted, without repeats");
        assert_eq!(key_feature_breadth(&d, &p.key_features, 0), 2);
        assert_eq!(key_feature_breadth(&d, &p.key_features, 11), 0, "seen before the window");
    }

    #[test]
    fn an_account_never_used_counts_days_since_its_start() {
        let mut s = AccountState { first_day: Some(90), ..AccountState::default() };
        assert_eq!(days_without_any_usage(&s, 100, 90), Some(10.0));
        s.facts.start_day = Some(70);
        assert_eq!(days_without_any_usage(&s, 100, 90), Some(30.0));
        s.facts.start_day = Some(-1000);
        assert_eq!(days_without_any_usage(&s, 100, 90), Some(10.0), "an old customer: what kizashi watched");
        s.users = Distinct::default();
        s.last_usage_ms = Some(0);
        assert_eq!(days_without_any_usage(&s, 100, 90), None);
    }
}
