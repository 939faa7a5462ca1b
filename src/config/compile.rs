//! What validated settings compile into: the core's parameters (`Params::new`), the decoder's
//! limits, the store's memory budget, the changelog topic's name and its largest record.

use std::time::Duration;

use super::*;
use crate::core::measures::Measure;

impl EventsConfig {
    /// The decoder's limits, with `now_ms` as the clock `ts_in_future` is judged against.
    pub fn decode_limits(&self, now_ms: i64) -> crate::event::DecodeLimits {
        crate::event::DecodeLimits {
            max_id_len: self.max_id_len,
            max_name_len: self.max_name_len,
            max_future_ms: i64::try_from(self.max_future.as_millis()).unwrap_or(i64::MAX),
            now_ms,
            max_record_bytes: usize::try_from(self.max_record_bytes.0).unwrap_or(usize::MAX),
        }
    }
}

impl AlertsConfig {
    /// `(enabled, severity, cooldown)` of a rule.
    pub fn common(&self, rule: crate::core::alerts::Rule) -> (bool, &str, Duration) {
        use crate::core::alerts::Rule;
        macro_rules! c {
            ($r:expr) => {
                ($r.enabled, $r.severity.as_str(), $r.cooldown)
            };
        }
        match rule {
            Rule::EnteredRed => c!(self.entered_red),
            Rule::ScoreDrop => c!(self.score_drop),
            Rule::Inactive => c!(self.inactive),
            Rule::SilentDecline => c!(self.silent_decline),
            Rule::TicketSpike => c!(self.ticket_spike),
            Rule::UrgentTicketAging => c!(self.urgent_ticket_aging),
            Rule::UsageDrop => c!(self.usage_drop),
            Rule::NotActivated => c!(self.not_activated),
            Rule::RenewalAtRisk => c!(self.renewal_at_risk),
            Rule::ExpansionCandidate => c!(self.expansion_candidate),
            Rule::ChampionQuiet => c!(self.champion_quiet),
        }
    }

    /// The core's rule parameters (validated settings only: `problems()` bounds every duration).
    pub fn params(&self) -> crate::core::alerts::AlertParams {
        use crate::core::alerts::*;
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        AlertParams {
            min_history_days: self.min_history_days,
            common: Rule::ALL.map(|r| {
                let (enabled, severity, cooldown) = self.common(r);
                RuleCommon { enabled, severity: severity.to_string(), cooldown_ms: ms(cooldown) }
            }),
            score_drop: ScoreDropParams {
                points: self.score_drop.points,
                days: self.score_drop.days,
                for_days: self.score_drop.for_days,
                hysteresis: self.score_drop.hysteresis,
            },
            inactive_days: self.inactive.days,
            silent_decline: SilentDeclineParams {
                trend_below: self.silent_decline.trend_below,
                no_ticket_days: self.silent_decline.no_ticket_days,
                release_above: self.silent_decline.release_above,
            },
            usage_drop: UsageDropParams {
                share: self.usage_drop.share,
                evidence: self.usage_drop.evidence,
                days: self.usage_drop.days,
                release_above: self.usage_drop.release_above,
            },
            ticket_spike: TicketSpikeParams {
                tickets_7d: self.ticket_spike.tickets_7d,
                release_below: self.ticket_spike.release_below,
            },
            urgent_after_ms: ms(self.urgent_ticket_aging.after),
            not_activated_days: self.not_activated.days,
            renewal_days: self.renewal_at_risk.days,
            expansion: ExpansionParams { seat_share: self.expansion_candidate.seat_share, days: self.expansion_candidate.days },
            champion_quiet: ChampionQuietParams {
                days: self.champion_quiet.days,
                share: self.champion_quiet.share,
                others_above: self.champion_quiet.others_above,
            },
        }
    }
}

impl crate::core::Params {
    /// Compiles validated settings into the core's parameters. Panics only on settings that
    /// `Settings::problems` rejects.
    pub fn new(s: &Settings) -> crate::core::Params {
        use crate::core::scorecard::{Bands, Card, CardItem};
        let mut cards = Vec::new();
        let mut index = std::collections::HashMap::new();
        let mut by_segment = Vec::new();
        for (name, c) in &s.scorecards {
            let items = c
                .measures
                .iter()
                .filter_map(|m| {
                    Some(CardItem {
                        measure: Measure::from_name(&m.measure)?,
                        weight: m.weight,
                        red: m.red?,
                        green: m.green?,
                        critical: m.critical,
                    })
                })
                .collect();
            index.insert(name.clone(), cards.len());
            for seg in &c.segments {
                by_segment.push((seg.clone(), cards.len()));
            }
            cards.push(Card { id: format!("{name}@{}", c.version), items });
        }
        let default_card = index.get(&s.scoring.default_scorecard).copied().unwrap_or(0);
        let onboarding = (s.scoring.onboarding_days > 0)
            .then(|| index.get(&s.scoring.onboarding_scorecard).map(|&c| (c, s.scoring.onboarding_days)))
            .flatten();
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        crate::core::Params {
            state: crate::core::state::StateParams {
                retention_days: s.events.retention_days,
                max_open_tickets: s.events.max_open_tickets,
                dedup_window_ms: ms(s.events.dedup_window),
                max_account_bytes: usize::try_from(s.state.max_account_bytes.0).unwrap_or(usize::MAX),
            },
            measures: crate::core::measures::MeasureParams::new(&s.events.key_features, s.events.retention_days),
            cards,
            by_segment,
            default_card,
            onboarding,
            bands: Bands {
                red_below: s.scoring.red_below,
                green_from: s.scoring.green_from,
                hysteresis: s.scoring.band_hysteresis,
                any_red_is_red: s.scoring.any_red_is_red,
            },
            score_step: s.scoring.score_step,
            support_cap: s.scoring.support_cap.enabled.then(|| {
                let c = &s.scoring.support_cap;
                crate::core::scorecard::SupportCap {
                    urgent_open: c.urgent_open,
                    urgent_after_ms: i64::from(c.urgent_days) * crate::event::timestamp::DAY_MS,
                    csat_at_most: c.csat_at_most,
                    csat_answers: c.csat_answers,
                }
            }),
            tiers: {
                let t = &s.scoring.tiers;
                crate::core::scorecard::Tiers {
                    high_arr_from: t.high_arr_from,
                    tech_arr_below: t.tech_arr_below,
                    high_segments: t.high_segments.clone(),
                    tech_segments: t.tech_segments.clone(),
                    tech_max_severity: (!t.tech_max_severity.is_empty()).then(|| t.tech_max_severity.clone()),
                    high_min_severity: (!t.high_min_severity.is_empty()).then(|| t.high_min_severity.clone()),
                }
            },
            alerts: s.alerts.params(),
            grace_ms: ms(s.events.grace),
        }
    }
}

impl KafkaConfig {
    /// The changelog topic's name (`{group_id}` replaced), or `None` when turned off.
    pub fn changelog_topic(&self) -> Option<String> {
        Some(self.topics.changelog.replace("{group_id}", &self.group_id)).filter(|t| !t.is_empty())
    }
}

impl StateConfig {
    /// `memory_budget` as the store and engine share it.
    pub fn budget(&self) -> crate::store::Budget {
        crate::store::Budget { total: self.memory_budget.0 }
    }
}

impl Settings {
    /// The largest changelog record (key and value) an account's state can make, at most: its
    /// users, features and event ids within `state.max_account_bytes`, its tickets (open ones
    /// within `events.max_open_tickets`, closed ones twice that, each id within
    /// `events.max_id_len`), a generous 2 KiB per day of retention for its day counts and score
    /// history, its facts, and 64 KiB besides. The changelog producer, and a changelog topic
    /// kizashi creates (`max.message.bytes`), take records of this size.
    pub fn changelog_record_bytes(&self) -> u64 {
        let e = &self.events;
        let tickets = 3 * u64::from(e.max_open_tickets) * (e.max_id_len as u64 + 32);
        let days = u64::from(e.retention_days) * 2048;
        let facts = 2 * e.max_name_len as u64 + 2 * e.max_id_len as u64;
        (self.state.max_account_bytes.0 + tickets + days + facts + (64 << 10)).min(1_000_000_000)
    }
}
