//! The measures (DESIGN §4): what an account's state says at time `now`. One name per measure,
//! used alike in config, code, alerts, scores and the README.

use super::state::{AccountState, MeasureValues};
use crate::event::timestamp::day_of;

pub const N_MEASURES: usize = 12;

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
}

/// How a value reads in a sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Ratio,
    Days,
    Csat,
}

impl Measure {
    pub const ALL: [Measure; 12] = [
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
    ];

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
        }
    }

    pub fn unit(self) -> Unit {
        match self {
            Measure::SeatUtilization | Measure::Stickiness | Measure::UsageTrend => Unit::Ratio,
            Measure::DaysSinceLastActivity | Measure::OldestOpenTicketDays | Measure::DaysToRenewal => Unit::Days,
            Measure::Csat90d => Unit::Csat,
            _ => Unit::Count,
        }
    }
}

/// Inputs to the measures that come from config.
#[derive(Debug, Clone, Default)]
pub struct MeasureParams {
    /// If not empty, `feature_breadth_30d` counts only these.
    pub key_features: Vec<String>,
}

/// Computes every measure at `now_ms` (the partition's stream time). `None` means "no data".
pub fn compute(s: &AccountState, now_ms: i64, p: &MeasureParams) -> MeasureValues {
    let now = day_of(now_ms);
    let mut v: MeasureValues = [None; N_MEASURES];
    let mut set = |m: Measure, x: Option<f64>| v[m as usize] = x;

    let au30 = s.users.count_since(now - 29);
    set(Measure::ActiveUsers30d, Some(au30 as f64));
    set(Measure::ActiveUsers7d, Some(s.users.count_since(now - 6) as f64));
    set(
        Measure::SeatUtilization,
        s.facts.seats.filter(|&n| n > 0).map(|n| au30 as f64 / f64::from(n)),
    );
    let observed_days = s.first_day.map_or(30, |f| (now - f + 1).clamp(1, 30));
    set(
        Measure::Stickiness,
        (au30 > 0).then(|| s.users.daily_sum(now - 29, now) as f64 / f64::from(observed_days) / au30 as f64),
    );
    let breadth = if p.key_features.is_empty() {
        s.features.count_since(now - 29)
    } else {
        s.features.keys_since(now - 29).filter(|k| p.key_features.iter().any(|f| f == k)).count() as u64
    };
    set(Measure::FeatureBreadth30d, Some(breadth as f64));
    // Complete days only: the last 7 full days against the weekly mean of the 28 before them.
    let recent = s.usage.sum(now - 7, now - 1) as f64;
    let base = s.usage.sum(now - 35, now - 8) as f64 / 4.0;
    let enough_history = s.first_day.is_some_and(|f| f <= now - 35);
    set(Measure::UsageTrend, (enough_history && base > 0.0).then(|| recent / base));
    set(Measure::DaysSinceLastActivity, s.last_usage_ms.map(|t| f64::from((now - day_of(t)).max(0))));

    let oldest = s.tickets.oldest_open_ms();
    set(Measure::OpenUrgentTickets, Some(s.tickets.open_urgent_count() as f64));
    set(Measure::TicketsOpened30d, Some(s.opened.sum(now - 29, now) as f64));
    set(Measure::OldestOpenTicketDays, Some(oldest.map_or(0.0, |o| f64::from((now - day_of(o)).max(0)))));
    let n = s.csat_count.sum(now - 89, now);
    set(Measure::Csat90d, (n > 0).then(|| s.csat_sum.sum(now - 89, now) as f64 / n as f64));
    set(Measure::DaysToRenewal, s.facts.renewal_day.map(|d| f64::from(d - now)));
    v
}
