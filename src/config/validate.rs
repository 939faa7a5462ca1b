//! Validation: the semantic checks (`Settings::problems`) run after the types are right, each
//! problem naming its key, and the bounds they enforce.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Settings;
use crate::core::measures::Measure;


/// The smallest `state.max_account_bytes` accepted, and the largest.
pub const MIN_MAX_ACCOUNT_BYTES: u64 = 64 << 10;
pub const MAX_MAX_ACCOUNT_BYTES: u64 = 64 << 20;

/// The smallest `state.memory_budget` accepted.
pub const MIN_MEMORY_BUDGET: u64 = 64 << 20;
/// The largest `state.memory_budget`.
pub const MAX_MEMORY_BUDGET: u64 = 1 << 40;

const SEVERITIES: [&str; 4] = ["info", "low", "medium", "high"];

/// Longest duration a rule or limit accepts (ten years), so no duration can overflow the
/// millisecond arithmetic of the core.
const MAX_DURATION: Duration = Duration::from_secs(3650 * 86_400);
/// Most days a day count in config may be (the longest retention).
const MAX_DAYS: u32 = 3650;
/// `pipeline.batch_records` at most: a batch's records are reserved at start.
pub const MAX_BATCH_RECORDS: usize = 1_000_000;
/// `pipeline.max_buffered_records` at most.
pub const MAX_BUFFERED_RECORDS: usize = 10_000_000;
/// `http.allowed_hosts` entries at most.
pub const MAX_ALLOWED_HOSTS: usize = 100;

/// Why an `http.allowed_hosts` entry is not `host` or `host:port` (a DNS name or IPv4 address of
/// letters, digits, `.` and `-`, or a bracketed IPv6 address; a port in 1..=65535).
fn check_host_entry(entry: &str) -> Result<(), &'static str> {
    let entry = entry.trim();
    let (host, port) = match entry.strip_prefix('[') {
        Some(rest) => {
            let Some((v6, after)) = rest.split_once(']') else { return Err("has a `[` without its `]`") };
            if v6.parse::<std::net::Ipv6Addr>().is_err() {
                return Err("is not a bracketed IPv6 address such as [::1]");
            }
            match after {
                "" => (v6, None),
                _ => (v6, Some(after.strip_prefix(':').ok_or("has text after the `]` that is not a :port")?)),
            }
        }
        None => match entry.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (entry, None),
        },
    };
    if !entry.starts_with('[') {
        if host.is_empty() || host.len() > 253 {
            return Err("needs a host name of 1 to 253 characters, such as kizashi.internal");
        }
        if !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
            return Err("is not a host name (letters, digits, `.`, `-`), an IPv4 address or a bracketed IPv6 address, with an optional :port");
        }
    }
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || !matches!(p.parse::<u16>(), Ok(1..)) {
            return Err("has a port outside 1..=65535");
        }
    }
    Ok(())
}

impl Settings {
    /// Semantic checks (types are already right). Returns every problem found.
    ///
    /// One function per section, mostly. The order is the order problems are reported in, kept
    /// from when this was one function: a few checks sit with the group they were written with
    /// (durations bounded together, sizes together), each function's doc says which.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        self.events_problems(&mut p);
        self.http_problems(&mut p);
        self.log_problems(&mut p);
        self.state_problems(&mut p);
        self.byte_size_problems(&mut p);
        self.scoring_problems(&mut p);
        self.scorecards_problems(&mut p);
        self.alert_rules_problems(&mut p);
        self.alert_params_problems(&mut p);
        self.kafka_problems(&mut p);
        self.loop_bounds_problems(&mut p);
        p
    }

    /// `events`: id, name and ticket limits, and the windows measured against `events.retention_days`.
    fn events_problems(&self, p: &mut Vec<String>) {
        let e = &self.events;
        if e.max_id_len == 0 || e.max_id_len > 4096 {
            p.push(format!("events.max_id_len: {} is outside 1..=4096", e.max_id_len));
        }
        if e.max_name_len == 0 || e.max_name_len > 65_536 {
            p.push(format!("events.max_name_len: {} is outside 1..=65536", e.max_name_len));
        }
        if e.max_open_tickets == 0 || e.max_open_tickets > 1_000_000 {
            p.push(format!("events.max_open_tickets: {} is outside 1..=1000000", e.max_open_tickets));
        }
        if e.dedup_window.as_millis() > u128::from(e.retention_days) * 86_400_000 {
            p.push(format!(
                "events.dedup_window: {} is longer than events.retention_days ({} days); ids cannot be remembered longer than the state is kept",
                humantime::format_duration(e.dedup_window),
                e.retention_days
            ));
        }
        if !(36..=3650).contains(&e.retention_days) {
            p.push(format!(
                "events.retention_days: {} is outside 36..=3650 (usage_trend needs 35 days of history)",
                e.retention_days
            ));
        }
        if e.grace.as_millis() >= u128::from(e.retention_days) * 86_400_000 {
            p.push("events.grace: must be shorter than events.retention_days".into());
        }
    }

    /// `http`: the address, timeouts, connection limit and `Host` allow-list.
    fn http_problems(&self, p: &mut Vec<String>) {
        if !self.http.listen.is_empty() && self.http.listen.parse::<std::net::SocketAddr>().is_err() {
            p.push(format!("http.listen: `{}` is not an address such as 127.0.0.1:9460 (empty turns the port off)", self.http.listen));
        }
        for (key, d, max) in [
            ("http.header_timeout", self.http.header_timeout, Duration::from_secs(3600)),
            ("http.idle_timeout", self.http.idle_timeout, Duration::from_secs(24 * 3600)),
        ] {
            if d.is_zero() || d > max {
                p.push(format!("{key}: {} is outside 1ms..={}", humantime::format_duration(d), humantime::format_duration(max)));
            }
        }
        if !(1..=100_000).contains(&self.http.max_connections) {
            p.push(format!("http.max_connections: {} is outside 1..=100000", self.http.max_connections));
        }
        if self.http.allowed_hosts.len() > MAX_ALLOWED_HOSTS {
            p.push(format!("http.allowed_hosts: {} entries, more than {MAX_ALLOWED_HOSTS}", self.http.allowed_hosts.len()));
        }
        for h in self.http.allowed_hosts.iter().take(MAX_ALLOWED_HOSTS) {
            if let Err(why) = check_host_entry(h) {
                p.push(format!("http.allowed_hosts: `{}` {why}", h.chars().take(80).collect::<String>()));
            }
        }
    }

    /// `log`: the format and the filter.
    fn log_problems(&self, p: &mut Vec<String>) {
        if !["text", "json"].contains(&self.log.format.as_str()) {
            p.push(format!("log.format: `{}` is neither text nor json", self.log.format));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            p.push(format!("log.level: `{}` is not a filter such as info or info,librdkafka=warn: {e}", self.log.level));
        }
    }

    /// `state`: what to do on revoke, the retired `cache_accounts`, and `upgrade_from`.
    fn state_problems(&self, p: &mut Vec<String>) {
        if !["keep", "drop"].contains(&self.state.on_revoke.as_str()) {
            p.push(format!("state.on_revoke: `{}` is neither keep nor drop", self.state.on_revoke));
        }
        if self.state.cache_accounts.is_some() {
            p.push("state.cache_accounts: no longer used; the cache is sized in bytes by state.memory_budget (e.g. \"512MiB\")".into());
        }
        if let Some(v) = self.state.upgrade_from.filter(|v| *v != crate::store::codec::PREVIOUS_VERSION) {
            p.push(format!(
                "state.upgrade_from: {v} is not a state version this release can write for an older one (only {})",
                crate::store::codec::PREVIOUS_VERSION
            ));
        }
    }

    /// The sizes written as `ByteSize`: `state.memory_budget`, `events.max_record_bytes` and
    /// `state.max_account_bytes`, each within its range.
    fn byte_size_problems(&self, p: &mut Vec<String>) {
        if self.state.memory_budget.0 < MIN_MEMORY_BUDGET {
            p.push(format!("state.memory_budget: {} is below the smallest budget, 64MiB", self.state.memory_budget));
        }
        if self.state.memory_budget.0 > MAX_MEMORY_BUDGET {
            p.push(format!("state.memory_budget: {} is above the largest budget, 1TiB", self.state.memory_budget));
        }
        let r = self.events.max_record_bytes;
        if !((1 << 10)..=(64 << 20)).contains(&r.0) {
            p.push(format!("events.max_record_bytes: {r} is outside 1KiB..=64MiB"));
        }
        let m = self.state.max_account_bytes;
        if !(MIN_MAX_ACCOUNT_BYTES..=MAX_MAX_ACCOUNT_BYTES).contains(&m.0) {
            p.push(format!("state.max_account_bytes: {m} is outside 64KiB..=64MiB"));
        }
    }

    /// `scoring`: bands, hysteresis, the support cap, score steps, and the scorecards it names.
    fn scoring_problems(&self, p: &mut Vec<String>) {
        let s = &self.scoring;
        for (key, v) in [
            ("scoring.red_below", s.red_below),
            ("scoring.green_from", s.green_from),
        ] {
            if !(0.0..=100.0).contains(&v) {
                p.push(format!("{key}: {v} is outside 0..=100"));
            }
        }
        if s.red_below > s.green_from {
            p.push(format!(
                "scoring.red_below: {} is above scoring.green_from ({}); red must be below green",
                s.red_below, s.green_from
            ));
        }
        if !(0.0..=50.0).contains(&s.band_hysteresis) {
            p.push(format!("scoring.band_hysteresis: {} is outside 0..=50", s.band_hysteresis));
        }
        let cap = &s.support_cap;
        if cap.urgent_days > self.events.retention_days {
            p.push(format!("scoring.support_cap.urgent_days: {} is over events.retention_days", cap.urgent_days));
        }
        if !(0.0..=5.0).contains(&cap.csat_at_most) {
            p.push(format!("scoring.support_cap.csat_at_most: {} is outside 0..=5 (0: no CSAT holds the cap)", cap.csat_at_most));
        }
        if cap.urgent_open > self.events.max_open_tickets {
            p.push(format!("scoring.support_cap.urgent_open: {} is over events.max_open_tickets", cap.urgent_open));
        }
        let t = &s.tiers;
        let usable = |x: f64| x >= 0.0 && x.is_finite();
        if !usable(t.high_arr_from) || !usable(t.tech_arr_below) {
            p.push(format!("scoring.tiers: high_arr_from ({}) and tech_arr_below ({}) must be numbers ≥ 0", t.high_arr_from, t.tech_arr_below));
        } else if t.tech_arr_below > t.high_arr_from {
            p.push(format!("scoring.tiers.tech_arr_below: {} is above scoring.tiers.high_arr_from ({})", t.tech_arr_below, t.high_arr_from));
        }
        if !t.tech_max_severity.is_empty() && !SEVERITIES.contains(&t.tech_max_severity.as_str()) {
            p.push(format!("scoring.tiers.tech_max_severity: `{}` is not one of info, low, medium, high (or empty)", t.tech_max_severity));
        }
        if !t.high_min_severity.is_empty() && !["low", "medium", "high"].contains(&t.high_min_severity.as_str()) {
            p.push(format!("scoring.tiers.high_min_severity: `{}` is not one of low, medium, high (or empty)", t.high_min_severity));
        }
        for seg in &t.high_segments {
            if t.tech_segments.iter().any(|x| x.eq_ignore_ascii_case(seg)) {
                p.push(format!("scoring.tiers: segment `{seg}` is in both high_segments and tech_segments"));
            }
        }
        if !(s.score_step >= 0.0 && s.score_step <= 100.0) {
            p.push(format!("scoring.score_step: {} is outside 0..=100", s.score_step));
        }
        if !self.scorecards.contains_key(&s.default_scorecard) {
            p.push(format!(
                "scoring.default_scorecard: `{}` is not a scorecard (have: {})",
                s.default_scorecard,
                self.scorecard_names()
            ));
        }
        if s.onboarding_days > 0 && !self.scorecards.contains_key(&s.onboarding_scorecard) {
            p.push(format!(
                "scoring.onboarding_scorecard: `{}` is not a scorecard (have: {}); set scoring.onboarding_days = 0 to disable onboarding",
                s.onboarding_scorecard,
                self.scorecard_names()
            ));
        }
    }

    /// `scorecards`: names, segments each listed once, and every measure known, weighted, with
    /// distinct finite `red` and `green`.
    fn scorecards_problems(&self, p: &mut Vec<String>) {
        let mut segment_owner: BTreeMap<String, &str> = BTreeMap::new();
        for (name, card) in &self.scorecards {
            let key = format!("scorecards.{name}");
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                p.push(format!("{key}: a scorecard name may only hold letters, digits, '_' and '-'"));
            }
            if card.measures.is_empty() {
                p.push(format!("{key}.measures: a scorecard needs at least one measure"));
            }
            for seg in &card.segments {
                let low = seg.to_ascii_lowercase();
                if let Some(other) = segment_owner.insert(low, name) {
                    p.push(format!("{key}.segments: segment `{seg}` is also listed by scorecards.{other}"));
                }
            }
            let mut seen = Vec::new();
            for (i, m) in card.measures.iter().enumerate() {
                let mk = format!("{key}.measures[{i}]");
                match Measure::from_name(&m.measure) {
                    None => p.push(format!(
                        "{mk}.measure: `{}` is not a measure (one of: {})",
                        m.measure,
                        Measure::ALL.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
                    )),
                    Some(meas) => {
                        if seen.contains(&meas) {
                            p.push(format!("{mk}.measure: `{}` appears twice in this scorecard", m.measure));
                        }
                        seen.push(meas);
                    }
                }
                if !(m.weight > 0.0 && m.weight.is_finite()) {
                    p.push(format!("{mk}.weight: {} must be a positive number", m.weight));
                }
                match (m.red, m.green) {
                    (None, _) => p.push(format!("{mk}.red: missing; the value that scores 0 points")),
                    (_, None) => p.push(format!("{mk}.green: missing; the value that scores 100 points")),
                    (Some(r), Some(g)) if r == g || !r.is_finite() || !g.is_finite() => {
                        p.push(format!("{mk}: red ({r}) and green ({g}) must be different finite numbers"))
                    }
                    _ => {}
                }
            }
        }
    }

    /// `alerts.*`: what every rule has, a severity and a cooldown; then the other durations held to
    /// the cooldowns' ten-year bound (so no millisecond sum overflows):
    /// `alerts.urgent_ticket_aging.after` and `events.max_future`.
    fn alert_rules_problems(&self, p: &mut Vec<String>) {
        let e = &self.events;
        let a = &self.alerts;
        for rule in crate::core::alerts::Rule::ALL {
            let (_, severity, cooldown) = a.common(rule);
            if !SEVERITIES.contains(&severity) {
                p.push(format!("alerts.{}.severity: `{severity}` is not one of info, low, medium, high", rule.name()));
            }
            if cooldown > MAX_DURATION {
                p.push(format!("alerts.{}.cooldown: must be at most 3650 days", rule.name()));
            }
        }
        if a.urgent_ticket_aging.after > MAX_DURATION {
            p.push("alerts.urgent_ticket_aging.after: must be at most 3650 days".into());
        }
        if e.max_future > MAX_DURATION {
            p.push("events.max_future: must be at most 3650 days".into());
        }
    }

    /// `alerts.*`: each rule's own parameters.
    fn alert_params_problems(&self, p: &mut Vec<String>) {
        let e = &self.events;
        let a = &self.alerts;
        if !(a.score_drop.points > 0.0 && a.score_drop.points <= 100.0) {
            p.push(format!("alerts.score_drop.points: {} is outside (0, 100]", a.score_drop.points));
        }
        if a.score_drop.days == 0 || a.score_drop.days > e.retention_days {
            p.push(format!("alerts.score_drop.days: {} is outside 1..=events.retention_days", a.score_drop.days));
        }
        if a.score_drop.for_days == 0 || a.score_drop.for_days > a.score_drop.days {
            p.push("alerts.score_drop.for_days: must be in 1..=alerts.score_drop.days".into());
        }
        if !(a.score_drop.hysteresis >= 0.0 && a.score_drop.hysteresis < a.score_drop.points) {
            p.push("alerts.score_drop.hysteresis: must be at least 0 and below alerts.score_drop.points".into());
        }
        if a.inactive.days == 0 {
            p.push("alerts.inactive.days: must be at least 1".into());
        }
        let sd = &a.silent_decline;
        if !(sd.trend_below > 0.0 && sd.trend_below < 1.0) {
            p.push(format!("alerts.silent_decline.trend_below: {} is outside (0, 1)", sd.trend_below));
        }
        if sd.release_above < sd.trend_below {
            p.push("alerts.silent_decline.release_above: must be at least alerts.silent_decline.trend_below".into());
        }
        if sd.no_ticket_days == 0 || sd.no_ticket_days > e.retention_days {
            p.push("alerts.silent_decline.no_ticket_days: must be in 1..=events.retention_days".into());
        }
        let ud = &a.usage_drop;
        if !(ud.share > 0.0 && ud.share < 1.0) {
            p.push(format!("alerts.usage_drop.share: {} is outside (0, 1)", ud.share));
        }
        if !(ud.release_above >= ud.share && ud.release_above.is_finite()) {
            p.push("alerts.usage_drop.release_above: must be at least alerts.usage_drop.share".into());
        }
        if !(ud.evidence >= 0.0 && ud.evidence <= 10.0) {
            p.push(format!("alerts.usage_drop.evidence: {} is outside 0..=10 (standard deviations)", ud.evidence));
        }
        if ud.days == 0 || ud.days > 28 {
            p.push(format!("alerts.usage_drop.days: {} is outside 1..=28", ud.days));
        }
        if a.not_activated.days == 0 || a.not_activated.days > e.retention_days {
            p.push(format!("alerts.not_activated.days: {} is outside 1..=events.retention_days", a.not_activated.days));
        }
        if a.renewal_at_risk.days == 0 || a.renewal_at_risk.days > 730 {
            p.push(format!("alerts.renewal_at_risk.days: {} is outside 1..=730", a.renewal_at_risk.days));
        }
        let cq = &a.champion_quiet;
        if cq.days < 2 || cq.days > 28 {
            p.push(format!("alerts.champion_quiet.days: {} is outside 2..=28", cq.days));
        }
        if !(cq.share > 0.0 && cq.share <= 1.0) {
            p.push(format!("alerts.champion_quiet.share: {} is outside (0, 1]", cq.share));
        }
        if !(cq.others_above >= 0.0 && cq.others_above.is_finite()) {
            p.push(format!("alerts.champion_quiet.others_above: {} must be at least 0", cq.others_above));
        }
        let ex = &a.expansion_candidate;
        if !(ex.seat_share > 0.0 && ex.seat_share <= 10.0) {
            p.push(format!("alerts.expansion_candidate.seat_share: {} is outside (0, 10]", ex.seat_share));
        }
        if ex.days == 0 || ex.days > e.retention_days {
            p.push(format!("alerts.expansion_candidate.days: {} is outside 1..=events.retention_days", ex.days));
        }
        let ts = &a.ticket_spike;
        if ts.tickets_7d == 0 || ts.release_below > ts.tickets_7d {
            p.push("alerts.ticket_spike: tickets_7d must be at least 1 and release_below at most tickets_7d".into());
        }
    }

    /// `kafka`: brokers, group, where to start, topic names (none empty, none twice), and the
    /// librdkafka properties kizashi sets itself.
    fn kafka_problems(&self, p: &mut Vec<String>) {
        let k = &self.kafka;
        if k.brokers.trim().is_empty() {
            p.push("kafka.brokers: must name at least one broker (host:port)".into());
        }
        if k.group_id.trim().is_empty() {
            p.push("kafka.group_id: must not be empty".into());
        }
        if !["earliest", "latest"].contains(&k.start_without_state.as_str()) {
            p.push(format!("kafka.start_without_state: `{}` is not earliest or latest", k.start_without_state));
        }
        let t = &k.topics;
        let names = [
            ("usage", &t.usage),
            ("support", &t.support),
            ("accounts", &t.accounts),
            ("actions", &t.actions),
            ("alerts", &t.alerts),
            ("scores", &t.scores),
            ("dead_letter", &t.dead_letter),
        ];
        for (i, (key, name)) in names.iter().enumerate() {
            if name.trim().is_empty() {
                p.push(format!("kafka.topics.{key}: must not be empty"));
            }
            if let Some((other, _)) = names[..i].iter().find(|(_, n)| n == name) {
                p.push(format!("kafka.topics.{key}: `{name}` is also kafka.topics.{other}"));
            }
        }
        for reserved in ["bootstrap.servers", "group.id", "enable.auto.commit", "enable.auto.offset.store"] {
            if k.properties.contains_key(reserved) {
                p.push(format!("kafka.properties.{reserved}: set by kizashi; use kafka.brokers / kafka.group_id"));
            }
        }
    }

    /// Sizes and durations the loop uses: `pipeline.*`, `kafka.startup_timeout`, `http.stale_after`,
    /// the day counts `alerts.min_history_days` and `scoring.onboarding_days`; and last,
    /// `alerts.urgent_ticket_aging.after` above zero (its upper bound is in `alert_rules_problems`).
    fn loop_bounds_problems(&self, p: &mut Vec<String>) {
        let s = &self.scoring;
        let a = &self.alerts;
        let pl = &self.pipeline;
        // Counts that size buffers at start (a batch's Vec is reserved whole) and durations that
        // are added to a clock or handed to librdkafka as milliseconds: an absurd value must stop
        // the start here, naming its key, not panic or wait for ever later.
        for (key, v, max) in [
            ("pipeline.batch_records", pl.batch_records, MAX_BATCH_RECORDS),
            ("pipeline.max_buffered_records", pl.max_buffered_records, MAX_BUFFERED_RECORDS),
        ] {
            if !(1..=max).contains(&v) {
                p.push(format!("{key}: {v} is outside 1..={max}"));
            }
        }
        const DAY: Duration = Duration::from_secs(86_400);
        for (key, d, min, max) in [
            ("pipeline.batch_wait", pl.batch_wait, Duration::from_millis(1), Duration::from_secs(3600)),
            ("pipeline.merge_wait", pl.merge_wait, Duration::ZERO, DAY),
            ("pipeline.idle_after", pl.idle_after, Duration::ZERO, MAX_DURATION),
            ("pipeline.shutdown_grace", pl.shutdown_grace, Duration::ZERO, DAY),
            ("pipeline.changelog_interval", pl.changelog_interval, Duration::ZERO, DAY),
            ("kafka.startup_timeout", self.kafka.startup_timeout, Duration::from_millis(1), DAY),
            ("http.stale_after", self.http.stale_after, Duration::ZERO, MAX_DURATION),
        ] {
            if d < min || d > max {
                p.push(format!(
                    "{key}: {} is outside {}..={}",
                    humantime::format_duration(d),
                    if min.is_zero() { "0s".to_string() } else { humantime::format_duration(min).to_string() },
                    match max.as_secs() / 86_400 {
                        days if days > 1 && max.as_secs() % 86_400 == 0 => format!("{days}days"),
                        _ => humantime::format_duration(max).to_string(),
                    }
                ));
            }
        }
        for (key, v) in [("alerts.min_history_days", self.alerts.min_history_days), ("scoring.onboarding_days", s.onboarding_days)] {
            if v > MAX_DAYS {
                p.push(format!("{key}: {v} is outside 0..={MAX_DAYS}"));
            }
        }
        if a.urgent_ticket_aging.after.is_zero() {
            p.push("alerts.urgent_ticket_aging.after: must be longer than 0s".into());
        }
    }

    fn scorecard_names(&self) -> String {
        self.scorecards.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{env, load, ByteSize, Settings, MAX_ALLOWED_HOSTS};

    #[test]
    fn support_cap_and_usage_drop_evidence_are_bounded_naming_the_key() {
        let mut st = Settings::default();
        st.scoring.support_cap.csat_at_most = f64::NAN;
        st.scoring.support_cap.urgent_days = 100_000;
        st.alerts.usage_drop.evidence = -1.0;
        st.alerts.champion_quiet.days = 1;
        let p = st.problems().join("\n");
        for key in ["scoring.support_cap.csat_at_most", "scoring.support_cap.urgent_days", "alerts.usage_drop.evidence", "alerts.champion_quiet.days"] {
            assert!(p.contains(key), "{key} named: {p}");
        }
    }

    #[test]
    fn tiers_are_checked_naming_the_key() {
        let mut st = Settings::default();
        st.scoring.tiers.tech_arr_below = 100_000.0;
        st.scoring.tiers.tech_max_severity = "urgent".into();
        st.scoring.tiers.high_min_severity = "info".into();
        st.scoring.tiers.tech_segments = vec!["Enterprise".into()];
        let p = st.problems().join("\n");
        for key in ["scoring.tiers.tech_arr_below", "scoring.tiers.tech_max_severity", "scoring.tiers.high_min_severity", "segment `enterprise` is in both"] {
            assert!(p.contains(key), "{key} named: {p}");
        }
        st.scoring.tiers.high_arr_from = f64::NAN;
        assert!(st.problems().join("\n").contains("scoring.tiers: high_arr_from (NaN)"));
    }

    #[test]
    fn allowed_hosts_are_hosts_with_an_optional_port_and_come_from_the_environment_as_a_list() {
        let s = load(None, env(&[("KIZASHI__HTTP__ALLOWED_HOSTS", "kizashi.internal, 10.0.0.5:9460,[::1]:8080")])).unwrap();
        assert_eq!(s.http.allowed_hosts, vec!["kizashi.internal", "10.0.0.5:9460", "[::1]:8080"]);
        let mut s = Settings::default();
        assert!(s.http.allowed_hosts.is_empty() && s.problems().is_empty());
        for bad in ["", "http://kizashi", "a b", "kizashi:0", "kizashi:65536", "kizashi:", "user@kizashi", "[::1", "[nope]", "[::1]x", "kizashi:80:80"] {
            s.http.allowed_hosts = vec![bad.to_string()];
            let p = s.problems();
            assert!(p.len() == 1 && p[0].starts_with("http.allowed_hosts: "), "{bad:?}: {p:?}");
        }
        s.http.allowed_hosts = vec!["x".to_string(); MAX_ALLOWED_HOSTS + 1];
        assert_eq!(s.problems().len(), 1, "{:?}", s.problems());
    }

    #[test]
    fn oversized_durations_and_windows_are_problems() {
        let err = load(
            None,
            env(&[
                ("KIZASHI__EVENTS__DEDUP_WINDOW", "100000years"),
                ("KIZASHI__ALERTS__INACTIVE__COOLDOWN", "20000days"),
                ("KIZASHI__EVENTS__MAX_OPEN_TICKETS", "0"),
            ]),
        )
        .unwrap_err();
        let text = err.0.join("\n");
        for key in ["events.dedup_window", "alerts.inactive.cooldown", "events.max_open_tickets"] {
            assert!(text.contains(key), "{key} missing in {text}");
        }
    }

    /// Values that used to pass the checks and then panic, abort or wait for ever: a batch's
    /// records reserved at start ("capacity overflow"), a duration added to a clock ("overflow
    /// when adding duration to instant"), a consumer queue librdkafka refuses.
    #[test]
    fn sizes_and_durations_the_loop_uses_are_bounded() {
        let err = load(
            None,
            env(&[
                ("KIZASHI__PIPELINE__BATCH_RECORDS", "100000000000000000"),
                ("KIZASHI__PIPELINE__MAX_BUFFERED_RECORDS", "10000001"),
                ("KIZASHI__PIPELINE__BATCH_WAIT", "300000000000y"),
                ("KIZASHI__PIPELINE__MERGE_WAIT", "2days"),
                ("KIZASHI__PIPELINE__IDLE_AFTER", "20000days"),
                ("KIZASHI__PIPELINE__SHUTDOWN_GRACE", "100000years"),
                ("KIZASHI__PIPELINE__CHANGELOG_INTERVAL", "25h"),
                ("KIZASHI__KAFKA__STARTUP_TIMEOUT", "0s"),
                ("KIZASHI__HTTP__STALE_AFTER", "20000days"),
                ("KIZASHI__ALERTS__MIN_HISTORY_DAYS", "4000000000"),
                ("KIZASHI__SCORING__ONBOARDING_DAYS", "3651"),
                ("KIZASHI__STATE__MEMORY_BUDGET", "2TiB"),
            ]),
        )
        .unwrap_err();
        let text = err.0.join("\n");
        for key in [
            "pipeline.batch_records: 100000000000000000 is outside 1..=1000000",
            "pipeline.max_buffered_records: 10000001 is outside 1..=10000000",
            "pipeline.batch_wait: ",
            "pipeline.merge_wait: 2days is outside 0s..=1day",
            "pipeline.idle_after: 54years 9months 2days 12h 57m 36s is outside 0s..=3650days",
            "pipeline.shutdown_grace: ",
            "pipeline.changelog_interval: 1day 1h is outside 0s..=1day",
            "kafka.startup_timeout: 0s is outside 1ms..=1day",
            "http.stale_after: ",
            "alerts.min_history_days: 4000000000 is outside 0..=3650",
            "scoring.onboarding_days: 3651 is outside 0..=3650",
            "state.memory_budget: 2048GiB is above the largest budget, 1TiB",
        ] {
            assert!(text.contains(key), "`{key}` missing in\n{text}");
        }
        assert_eq!(err.0.len(), 12, "one problem each:\n{text}");
        // The limits themselves are fine.
        let s = load(
            None,
            env(&[
                ("KIZASHI__PIPELINE__BATCH_RECORDS", "1000000"),
                ("KIZASHI__PIPELINE__MERGE_WAIT", "0s"),
                ("KIZASHI__PIPELINE__SHUTDOWN_GRACE", "1day"),
                ("KIZASHI__STATE__MEMORY_BUDGET", "1TiB"),
            ]),
        );
        assert!(s.is_ok(), "{s:?}");
    }

    #[test]
    fn max_account_bytes_is_bytes_within_its_range() {
        let mut s = Settings::default();
        assert_eq!(s.state.max_account_bytes, ByteSize(4 << 20));
        // Default settings: 4 MiB of users, features and ids, 1,000 open tickets of 256-byte ids.
        assert_eq!(s.changelog_record_bytes(), (4 << 20) + 3 * 1_000 * 288 + 90 * 2048 + 2 * 256 + 2 * 256 + (64 << 10));
        for (v, ok) in [(1 << 10, false), (64 << 10, true), (64 << 20, true), ((64 << 20) + 1, false)] {
            s.state.max_account_bytes = ByteSize(v);
            let p = s.problems();
            assert_eq!(p.is_empty(), ok, "{v}: {p:?}");
            assert!(ok || p.iter().any(|p| p.starts_with("state.max_account_bytes: ") && p.ends_with("is outside 64KiB..=64MiB")), "{p:?}");
        }
        let s = load(None, env(&[("KIZASHI__STATE__MAX_ACCOUNT_BYTES", "1MiB")])).unwrap();
        assert_eq!(crate::core::Params::new(&s).state.max_account_bytes, 1 << 20);
    }
}
