//! Alert rules, explanations and the alert / score-update contracts (DESIGN §5).

use serde::Serialize;

use super::measures::{Measure, Unit};
use super::scorecard::Card;
use super::state::{Band, MeasureValues};
use crate::event::timestamp::format_ms;

pub const N_RULES: usize = 11;

/// Alert rules. The discriminants are stored (alert history, rule marks): new rules go at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    EnteredRed,
    ScoreDrop,
    Inactive,
    SilentDecline,
    TicketSpike,
    UrgentTicketAging,
    UsageDrop,
    NotActivated,
    RenewalAtRisk,
    ExpansionCandidate,
    ChampionQuiet,
}

/// What an alert asks of a CS team: act on a risk, or pursue an opportunity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertKind {
    Risk,
    Opportunity,
}

impl AlertKind {
    pub fn name(self) -> &'static str {
        match self {
            AlertKind::Risk => "risk",
            AlertKind::Opportunity => "opportunity",
        }
    }
}

impl Rule {
    pub const ALL: [Rule; N_RULES] = [
        Rule::EnteredRed,
        Rule::ScoreDrop,
        Rule::Inactive,
        Rule::SilentDecline,
        Rule::TicketSpike,
        Rule::UrgentTicketAging,
        Rule::UsageDrop,
        Rule::NotActivated,
        Rule::RenewalAtRisk,
        Rule::ExpansionCandidate,
        Rule::ChampionQuiet,
    ];

    /// Most specific first: when several risk rules fire in one evaluation, the first names the
    /// alert and the others are listed in its `also` field (one alert per real change). An
    /// opportunity is never folded into a risk alert: it is an alert of its own.
    pub const BY_PRIORITY: [Rule; N_RULES] = [
        Rule::NotActivated,
        Rule::Inactive,
        Rule::SilentDecline,
        Rule::UsageDrop,
        Rule::ChampionQuiet,
        Rule::UrgentTicketAging,
        Rule::TicketSpike,
        Rule::RenewalAtRisk,
        Rule::ScoreDrop,
        Rule::EnteredRed,
        Rule::ExpansionCandidate,
    ];

    pub fn kind(self) -> AlertKind {
        match self {
            Rule::ExpansionCandidate => AlertKind::Opportunity,
            _ => AlertKind::Risk,
        }
    }

    /// Measures the rule's own words already describe (left out of its summary's movers).
    pub fn own_measures(self) -> &'static [Measure] {
        match self {
            Rule::Inactive | Rule::NotActivated => &[Measure::DaysSinceLastActivity],
            Rule::SilentDecline => &[Measure::UsageTrend],
            Rule::UsageDrop => &[Measure::UsageTrend, Measure::ActiveUsersTrend],
            Rule::UrgentTicketAging => &[Measure::OpenUrgentTickets, Measure::OldestOpenTicketDays],
            Rule::TicketSpike => &[Measure::TicketsOpened30d],
            Rule::RenewalAtRisk => &[Measure::DaysToRenewal],
            Rule::ExpansionCandidate => &[Measure::SeatUtilization],
            Rule::ScoreDrop | Rule::EnteredRed | Rule::ChampionQuiet => &[],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Rule::EnteredRed => "entered_red",
            Rule::ScoreDrop => "score_drop",
            Rule::Inactive => "inactive",
            Rule::SilentDecline => "silent_decline",
            Rule::TicketSpike => "ticket_spike",
            Rule::UrgentTicketAging => "urgent_ticket_aging",
            Rule::UsageDrop => "usage_drop",
            Rule::NotActivated => "not_activated",
            Rule::RenewalAtRisk => "renewal_at_risk",
            Rule::ExpansionCandidate => "expansion_candidate",
            Rule::ChampionQuiet => "champion_quiet",
        }
    }

    pub fn from_code(c: u8) -> Option<Rule> {
        Rule::ALL.get(c as usize).copied()
    }
}

/// What every rule has: on/off, the severity its alerts carry, the minimum time between two.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleCommon {
    pub enabled: bool,
    pub severity: String,
    pub cooldown_ms: i64,
}

/// The rules' parameters, compiled from config by the config layer (the core never reads config).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertParams {
    /// No alert (but `not_activated`) for an account seen for fewer days than this.
    pub min_history_days: u32,
    /// Indexed by `Rule as usize`.
    pub common: [RuleCommon; N_RULES],
    pub score_drop: ScoreDropParams,
    pub inactive_days: u32,
    pub silent_decline: SilentDeclineParams,
    pub usage_drop: UsageDropParams,
    pub ticket_spike: TicketSpikeParams,
    pub urgent_after_ms: i64,
    pub not_activated_days: u32,
    pub renewal_days: u32,
    pub expansion: ExpansionParams,
    pub champion_quiet: ChampionQuietParams,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChampionQuietParams {
    /// Days the champions have not been seen.
    pub days: u32,
    /// Their least share of the account's active user-days before.
    pub share: f64,
    /// Least activity of the others against their own rate.
    pub others_above: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScoreDropParams {
    pub points: f64,
    pub days: u32,
    /// Days in a row the drop must hold.
    pub for_days: u32,
    pub hysteresis: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SilentDeclineParams {
    pub trend_below: f64,
    pub no_ticket_days: u32,
    pub release_above: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UsageDropParams {
    pub share: f64,
    /// Standard deviations of the account's own noise the fall must reach.
    pub evidence: f64,
    pub days: u32,
    pub release_above: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TicketSpikeParams {
    pub tickets_7d: u32,
    pub release_below: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExpansionParams {
    pub seat_share: f64,
    pub days: u32,
}

impl AlertParams {
    pub fn common(&self, rule: Rule) -> &RuleCommon {
        &self.common[rule as usize]
    }
}

/// One line of an explanation: how a measure moved against the baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExplanationItem {
    pub measure: &'static str,
    /// `null` when the measure has no data (its weight went to the others).
    pub value: Option<f64>,
    pub previous: Option<f64>,
    /// Score points gained (+) or lost (−) through this measure since the baseline.
    pub points: f64,
    pub weight: f64,
}

/// An at-risk alert (topic `health-alerts`, key `account_id`).
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub alert_id: String,
    pub account_id: String,
    pub rule: Rule,
    /// Other rules that fired in the same evaluation (folded into this alert).
    pub also: Vec<Rule>,
    pub severity: String,
    pub score: f64,
    pub previous_score: Option<f64>,
    pub band: Band,
    pub previous_band: Option<Band>,
    pub segment: Option<String>,
    /// The account's touch tier (`scoring.tiers`).
    pub tier: super::scorecard::Tier,
    /// Days until the account's renewal date (negative once passed), if known.
    pub days_to_renewal: Option<i64>,
    pub arr: Option<f64>,
    pub scorecard: String,
    /// Stream time at which the rule fired.
    pub event_time_ms: i64,
    /// When the alert left kizashi (wall clock in the pipeline; stream time in `replay`).
    pub emitted_at_ms: i64,
    pub explanation: Vec<ExplanationItem>,
    /// What keeps the score from 100 (see `ScoreUpdate::shortfall`).
    pub shortfall: Vec<Shortfall>,
    pub summary: String,
    /// Where the CS team stands on the account (`core::actions`).
    pub cs: super::actions::CsView,
}

#[derive(Serialize)]
struct AlertJson<'a> {
    alert_id: &'a str,
    account_id: &'a str,
    rule: &'static str,
    kind: &'static str,
    also: Vec<&'static str>,
    severity: &'a str,
    score: f64,
    previous_score: Option<f64>,
    band: &'static str,
    previous_band: Option<&'static str>,
    segment: Option<&'a str>,
    tier: &'static str,
    #[serde(flatten)]
    cs: super::actions::CsJson<'a>,
    days_to_renewal: Option<i64>,
    arr: Option<f64>,
    scorecard: &'a str,
    event_time: String,
    emitted_at: String,
    explanation: &'a [ExplanationItem],
    shortfall: &'a [Shortfall],
    summary: &'a str,
}

impl Alert {
    /// The JSON contract, one line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&AlertJson {
            alert_id: &self.alert_id,
            account_id: &self.account_id,
            rule: self.rule.name(),
            kind: self.rule.kind().name(),
            also: self.also.iter().map(|r| r.name()).collect(),
            severity: &self.severity,
            score: self.score,
            previous_score: self.previous_score,
            band: self.band.name(),
            previous_band: self.previous_band.map(Band::name),
            segment: self.segment.as_deref(),
            tier: self.tier.name(),
            cs: super::actions::CsJson::of(&self.cs),
            days_to_renewal: self.days_to_renewal,
            arr: self.arr,
            scorecard: &self.scorecard,
            event_time: format_ms(self.event_time_ms),
            emitted_at: format_ms(self.emitted_at_ms),
            explanation: &self.explanation,
            shortfall: &self.shortfall,
            summary: &self.summary,
        })
        .expect("alert serialises")
    }
}

/// One measure in a score update.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeasureScore {
    pub measure: &'static str,
    pub value: Option<f64>,
    /// 0–100, `null` if the scorecard does not use the measure or it has no data.
    pub points: Option<f64>,
    /// `null` if the scorecard does not use the measure.
    pub weight: Option<f64>,
}

/// The latest score of an account (topic `health-scores`, compacted, key `account_id`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreUpdate {
    pub account_id: String,
    pub score: f64,
    pub band: Band,
    pub segment: Option<String>,
    pub tier: super::scorecard::Tier,
    pub scorecard: String,
    pub measures: Vec<MeasureScore>,
    /// What keeps the score from 100: points lost per measure, largest first.
    pub shortfall: Vec<Shortfall>,
    pub event_time_ms: i64,
    pub emitted_at_ms: i64,
    /// Where the CS team stands on the account; `band` is an override's when one holds.
    pub cs: super::actions::CsView,
}

/// Score points one measure costs the account: what keeps its score from 100.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shortfall {
    pub measure: &'static str,
    /// Score points lost through this measure (0–100 over all of them; they add up to
    /// `100 - score`, within rounding).
    pub points: f64,
}

/// Points lost per measure of `card` at `values`, largest first (ties by name), those above
/// 0.05 only. Measures without data are left out as the score leaves them out, except the usage
/// measures of an account known to have no usage (`no_usage`), which count 0 points in the score
/// and so lose their whole weight here.
pub fn shortfall(card: &Card, values: &MeasureValues, no_usage: bool) -> Vec<Shortfall> {
    let counted = |i: &&crate::core::scorecard::CardItem| {
        values[i.measure as usize].is_some() || (no_usage && i.measure.category() == super::measures::Category::Usage)
    };
    let weights: f64 = card.items.iter().filter(counted).map(|i| i.weight).sum();
    if weights <= 0.0 {
        return Vec::new();
    }
    let mut out: Vec<Shortfall> = card
        .items
        .iter()
        .filter(counted)
        .map(|i| {
            let points = values[i.measure as usize].map_or(0.0, |v| i.points(v));
            Shortfall { measure: i.measure.name(), points: round1(i.weight * (100.0 - points) / weights) + 0.0 }
        })
        .filter(|s| s.points > 0.05)
        .collect();
    out.sort_by(|a, b| b.points.total_cmp(&a.points).then(a.measure.cmp(b.measure)));
    out
}

#[derive(Serialize)]
struct ScoreJson<'a> {
    account_id: &'a str,
    score: f64,
    band: &'static str,
    segment: Option<&'a str>,
    tier: &'static str,
    #[serde(flatten)]
    cs: super::actions::CsJson<'a>,
    scorecard: &'a str,
    measures: &'a [MeasureScore],
    shortfall: &'a [Shortfall],
    event_time: String,
    emitted_at: String,
}

impl ScoreUpdate {
    pub fn to_json(&self) -> String {
        serde_json::to_string(&ScoreJson {
            account_id: &self.account_id,
            score: self.score,
            band: self.band.name(),
            segment: self.segment.as_deref(),
            tier: self.tier.name(),
            cs: super::actions::CsJson::of(&self.cs),
            scorecard: &self.scorecard,
            measures: &self.measures,
            shortfall: &self.shortfall,
            event_time: format_ms(self.event_time_ms),
            emitted_at: format_ms(self.emitted_at_ms),
        })
        .expect("score serialises")
    }

    /// Every measure, scored by `card`.
    pub fn measures(card: &Card, values: &MeasureValues) -> Vec<MeasureScore> {
        Measure::ALL
            .iter()
            .map(|&m| {
                let item = card.item(m);
                let value = values[m as usize];
                MeasureScore {
                    measure: m.name(),
                    value: value.map(round3),
                    points: item.zip(value).map(|(i, v)| round1(i.points(v))),
                    weight: item.map(|i| i.weight),
                }
            })
            .collect()
    }
}

pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The explanation: every measure of the card, how it moved since `baseline` and how many score
/// points that won or lost, most damaging first. Points decompose the score change: a measure with
/// data at both ends contributes `weight × Δpoints / Σweights`; one that gained data joins at the
/// baseline's average; an unchanged measure contributes 0.
pub fn explain(card: &Card, now: &MeasureValues, baseline: Option<&MeasureValues>) -> Vec<ExplanationItem> {
    let weights_now: f64 = card.items.iter().filter(|i| now[i.measure as usize].is_some()).map(|i| i.weight).sum();
    let base_score = baseline.and_then(|b| card.score(b, false)).map(|s| s.score);
    let weights_base: f64 = baseline.map_or(0.0, |b| {
        card.items.iter().filter(|i| b[i.measure as usize].is_some()).map(|i| i.weight).sum()
    });
    let mut items: Vec<ExplanationItem> = card
        .items
        .iter()
        .map(|i| {
            let m = i.measure as usize;
            let before = baseline.and_then(|b| b[m]);
            let points = match (now[m], before, base_score) {
                (Some(v), Some(b), _) if weights_now > 0.0 => i.weight * (i.points(v) - i.points(b)) / weights_now,
                (Some(v), None, Some(avg)) if weights_now > 0.0 => i.weight * (i.points(v) - avg) / weights_now,
                (None, Some(b), Some(avg)) if weights_base > 0.0 => i.weight * (avg - i.points(b)) / weights_base,
                _ => 0.0,
            };
            ExplanationItem {
                measure: i.measure.name(),
                value: now[m].map(round3),
                previous: before.map(round3),
                points: round1(points) + 0.0,
                weight: i.weight,
            }
        })
        .collect();
    items.sort_by(|a, b| {
        (a.value.is_none(), a.points)
            .partial_cmp(&(b.value.is_none(), b.points))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.measure.cmp(b.measure))
    });
    items
}

fn fmt_value(m: Measure, v: f64) -> String {
    match m.unit() {
        Unit::Ratio => format!("{:.0}%", v * 100.0),
        Unit::Csat => format!("{v:.1}"),
        Unit::Nps => format!("{v:+.0}"),
        Unit::Days | Unit::Count => format!("{v:.0}"),
    }
}

/// A phrase for one measure that lost points ("seat utilisation fell from 52% to 18%").
fn phrase(item: &ExplanationItem) -> Option<String> {
    let m = Measure::from_name(item.measure)?;
    let v = item.value?;
    let plural = |n: f64, one: &str, many: &str| if n == 1.0 { one.to_string() } else { many.to_string() };
    Some(match m {
        Measure::DaysSinceLastActivity => format!("no product usage for {} {}", fmt_value(m, v), plural(v, "day", "days")),
        Measure::OpenUrgentTickets => {
            format!("{} urgent {} open", fmt_value(m, v), plural(v, "ticket is", "tickets are"))
        }
        Measure::OldestOpenTicketDays => format!("the oldest open ticket is {} days old", fmt_value(m, v)),
        Measure::TicketsOpened30d => format!("{} tickets were opened in 30 days", fmt_value(m, v)),
        Measure::UsageTrend => format!("usage last week was {} of its norm", fmt_value(m, v)),
        Measure::ActiveUsersTrend => format!("daily active users last week were {} of their norm", fmt_value(m, v)),
        Measure::DaysToRenewal => format!("renewal is {} days away", fmt_value(m, v)),
        _ => match item.previous {
            Some(p) if fmt_value(m, p) != fmt_value(m, v) => {
                let dir = if v < p { "fell" } else { "rose" };
                format!("{} {dir} from {} to {}", m.label(), fmt_value(m, p), fmt_value(m, v))
            }
            _ => format!("{} is {}", m.label(), fmt_value(m, v)),
        },
    })
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Like `summary`, for an account with nothing to compare with (red from the start, never
/// activated): the (at most two) measures of the card furthest from green, weighted, as they are.
pub fn summary_of_weakest(lead: &str, rule: Option<Rule>, card: &Card, values: &MeasureValues) -> String {
    let mut weak: Vec<(f64, ExplanationItem)> = card
        .items
        .iter()
        .filter_map(|i| {
            let v = values[i.measure as usize]?;
            let lost = i.weight * (100.0 - i.points(v));
            let item = ExplanationItem { measure: i.measure.name(), value: Some(v), previous: None, points: -lost, weight: i.weight };
            (lost > 0.0).then_some((lost, item))
        })
        .collect();
    weak.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.measure.cmp(b.1.measure)));
    let items: Vec<ExplanationItem> = weak.into_iter().map(|(_, i)| i).collect();
    summary(lead, rule, &items)
}

/// One sentence a CS manager can read: the rule's own words, then the (at most two) measures that
/// cost the most points.
pub fn summary(lead: &str, rule: Option<Rule>, explanation: &[ExplanationItem]) -> String {
    let own = rule.map_or(&[][..], Rule::own_measures);
    let movers: Vec<String> = explanation
        .iter()
        .filter(|i| i.points < 0.0)
        .filter(|i| !own.iter().any(|m| m.name() == i.measure))
        .filter_map(phrase)
        .filter(|p| !lead.contains(p.as_str()))
        .take(2)
        .collect();
    if movers.is_empty() {
        format!("{}.", capitalise(lead))
    } else {
        format!("{}: {}.", capitalise(lead), movers.join(" and "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::measures::N_MEASURES;
    use crate::core::scorecard::CardItem;

    #[test]
    fn the_shortfall_says_what_keeps_the_score_from_100_and_adds_up() {
        let card = Card {
            id: "c@1".into(),
            items: vec![
                CardItem { measure: Measure::SeatUtilization, weight: 25.0, red: 0.2, green: 0.6, critical: false },
                CardItem { measure: Measure::UsageTrend, weight: 25.0, red: 0.45, green: 0.95, critical: false },
                CardItem { measure: Measure::OpenUrgentTickets, weight: 10.0, red: 3.0, green: 0.0, critical: false },
                CardItem { measure: Measure::Csat90d, weight: 10.0, red: 2.5, green: 4.5, critical: false },
            ],
        };
        let mut v = [None; N_MEASURES];
        v[Measure::SeatUtilization as usize] = Some(0.3);
        v[Measure::UsageTrend as usize] = Some(1.0);
        v[Measure::OpenUrgentTickets as usize] = Some(2.0);
        let s = shortfall(&card, &v, false);
        assert_eq!(s.iter().map(|x| x.measure).collect::<Vec<_>>(), ["seat_utilization", "open_urgent_tickets"], "largest first, none for a full measure");
        let score = card.score(&v, false).unwrap().score;
        let lost: f64 = s.iter().map(|x| x.points).sum();
        assert!((100.0 - score - lost).abs() < 0.11, "{score} + {lost}");
        // Known unused: the usage measures without data lose their whole weight, as in the score.
        let mut none = [None; N_MEASURES];
        none[Measure::OpenUrgentTickets as usize] = Some(0.0);
        let s = shortfall(&card, &none, true);
        assert_eq!(s.iter().map(|x| (x.measure, x.points)).collect::<Vec<_>>(), [("seat_utilization", 41.7), ("usage_trend", 41.7)]);
    }

    #[test]
    fn explanation_is_sorted_by_damage_and_summarised() {
        let card = Card {
            id: "c@1".into(),
            items: vec![
                CardItem { measure: Measure::SeatUtilization, weight: 25.0, red: 0.2, green: 0.6, critical: false },
                CardItem { measure: Measure::OpenUrgentTickets, weight: 10.0, red: 3.0, green: 0.0, critical: false },
                CardItem { measure: Measure::Csat90d, weight: 10.0, red: 2.5, green: 4.5, critical: false },
            ],
        };
        let mut before = [None; N_MEASURES];
        before[Measure::SeatUtilization as usize] = Some(0.52);
        before[Measure::OpenUrgentTickets as usize] = Some(0.0);
        let mut now = before;
        now[Measure::SeatUtilization as usize] = Some(0.18);
        now[Measure::OpenUrgentTickets as usize] = Some(2.0);
        let ex = explain(&card, &now, Some(&before));
        assert_eq!(ex[0].measure, "seat_utilization");
        assert!(ex[0].points < ex[1].points && ex[1].points < 0.0);
        assert_eq!(ex[2].measure, "csat_90d");
        assert_eq!(ex[2].value, None, "no data goes last");
        assert_eq!(
            summary("health score entered red at 34.5 (was 58.0, yellow)", Some(Rule::EnteredRed), &ex),
            "Health score entered red at 34.5 (was 58.0, yellow): seat utilisation fell from 52% to 18% and 2 urgent tickets are open."
        );
    }
}
