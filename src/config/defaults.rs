//! The built-in defaults: the `Default` of every section, the bottom layer `load` starts from.
//! The default scorecards are read from the shipped `config/kizashi.toml`; every other default is
//! written here, and a test holds that file to them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use super::*;

const HOUR: Duration = Duration::from_secs(3600);

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("data/state"),
            memory_budget: ByteSize(512 << 20),
            cache_accounts: None,
            on_revoke: "keep".into(),
            standby_replicas: 0,
            upgrade_from: None,
            max_account_bytes: ByteSize(4 << 20),
        }
    }
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            max_id_len: 256,
            max_name_len: 256,
            max_record_bytes: ByteSize(1 << 20),
            max_open_tickets: 1_000,
            max_future: HOUR,
            grace: HOUR,
            retention_days: 90,
            dedup_window: 48 * HOUR,
            key_features: Vec::new(),
        }
    }
}

impl Default for ScoringConfig {
    fn default() -> Self {
        Self {
            default_scorecard: "default".into(),
            red_below: 40.0,
            green_from: 70.0,
            band_hysteresis: 5.0,
            any_red_is_red: false,
            score_step: 2.0,
            onboarding_days: 30,
            onboarding_scorecard: "onboarding".into(),
            support_cap: SupportCapConfig::default(),
            tiers: TiersConfig::default(),
        }
    }
}

impl Default for TiersConfig {
    fn default() -> Self {
        Self {
            high_arr_from: 50_000.0,
            tech_arr_below: 5_000.0,
            high_segments: vec!["enterprise".into()],
            tech_segments: Vec::new(),
            tech_max_severity: String::new(),
            high_min_severity: String::new(),
        }
    }
}

impl Default for SupportCapConfig {
    fn default() -> Self {
        Self { enabled: true, urgent_open: 2, urgent_days: 7, csat_at_most: 2.5, csat_answers: 2 }
    }
}

impl Default for ScorecardConfig {
    fn default() -> Self {
        Self { version: 1, segments: Vec::new(), measures: Vec::new() }
    }
}

impl Default for WeightedMeasure {
    fn default() -> Self {
        Self { measure: String::new(), weight: 1.0, red: None, green: None, critical: false }
    }
}

fn rule(severity: &str, cooldown_hours: u64) -> RuleConfig {
    RuleConfig { enabled: true, severity: severity.into(), cooldown: HOUR * cooldown_hours as u32 }
}

impl Default for RuleConfig {
    fn default() -> Self {
        rule("medium", 24)
    }
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            min_history_days: 14,
            entered_red: rule("high", 72),
            score_drop: ScoreDropConfig::default(),
            inactive: InactiveConfig::default(),
            silent_decline: SilentDeclineConfig::default(),
            ticket_spike: TicketSpikeConfig::default(),
            urgent_ticket_aging: UrgentAgingConfig::default(),
            usage_drop: UsageDropConfig::default(),
            not_activated: NotActivatedConfig::default(),
            renewal_at_risk: RenewalAtRiskConfig::default(),
            expansion_candidate: ExpansionConfig::default(),
            champion_quiet: ChampionQuietConfig::default(),
        }
    }
}

impl Default for UsageDropConfig {
    fn default() -> Self {
        let r = rule("high", 168);
        Self { enabled: r.enabled, severity: r.severity, cooldown: r.cooldown, share: 0.7, evidence: 3.0, days: 2, release_above: 0.85 }
    }
}

impl Default for NotActivatedConfig {
    fn default() -> Self {
        let r = rule("high", 720);
        Self { enabled: r.enabled, severity: r.severity, cooldown: r.cooldown, days: 14 }
    }
}

impl Default for RenewalAtRiskConfig {
    fn default() -> Self {
        let r = rule("high", 24);
        Self { enabled: r.enabled, severity: r.severity, cooldown: r.cooldown, days: 60 }
    }
}

impl Default for ChampionQuietConfig {
    fn default() -> Self {
        let r = rule("high", 720);
        Self { enabled: r.enabled, severity: r.severity, cooldown: r.cooldown, days: 12, share: 0.25, others_above: 0.5 }
    }
}

impl Default for ExpansionConfig {
    fn default() -> Self {
        let r = rule("info", 720);
        Self { enabled: r.enabled, severity: r.severity, cooldown: r.cooldown, seat_share: 0.9, days: 7 }
    }
}

impl Default for ScoreDropConfig {
    fn default() -> Self {
        let r = rule("medium", 72);
        Self { enabled: r.enabled, severity: r.severity, cooldown: r.cooldown, points: 20.0, days: 14, for_days: 3, hysteresis: 5.0 }
    }
}

impl Default for InactiveConfig {
    fn default() -> Self {
        let r = rule("high", 168);
        Self { enabled: r.enabled, severity: r.severity, cooldown: r.cooldown, days: 14 }
    }
}

impl Default for SilentDeclineConfig {
    fn default() -> Self {
        let r = rule("high", 168);
        Self { enabled: r.enabled, severity: r.severity, cooldown: r.cooldown, trend_below: 0.7, no_ticket_days: 30, release_above: 0.85 }
    }
}

impl Default for TicketSpikeConfig {
    fn default() -> Self {
        let r = rule("medium", 72);
        Self { enabled: r.enabled, severity: r.severity, cooldown: r.cooldown, tickets_7d: 6, release_below: 3 }
    }
}

impl Default for UrgentAgingConfig {
    fn default() -> Self {
        let r = rule("high", 24);
        Self { enabled: r.enabled, severity: r.severity, cooldown: r.cooldown, after: 48 * HOUR }
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            group_id: "kizashi".into(),
            topics: TopicsConfig::default(),
            properties: BTreeMap::new(),
            startup_timeout: Duration::from_secs(30),
            start_without_state: "earliest".into(),
            create_changelog: true,
        }
    }
}

impl Default for TopicsConfig {
    fn default() -> Self {
        Self {
            usage: "product-usage".into(),
            support: "support-events".into(),
            accounts: "accounts".into(),
            actions: "cs-actions".into(),
            alerts: "health-alerts".into(),
            scores: "health-scores".into(),
            dead_letter: "kizashi-dead-letter".into(),
            changelog: "{group_id}-changelog".into(),
        }
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            batch_records: 50_000,
            batch_wait: Duration::from_millis(50),
            merge_wait: Duration::from_secs(1),
            max_buffered_records: 100_000,
            idle_after: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(30),
            changelog_interval: Duration::from_millis(500),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9460".into(),
            token: String::new(),
            stale_after: Duration::from_secs(3600),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            allowed_hosts: Vec::new(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: "text".into(), level: "info".into() }
    }
}

/// The shipped `config/kizashi.toml`: every key with its default value and a comment. The
/// default scorecards are kept there only (where operators read and copy them) and read from it
/// here; every other default is written in this file, and the tests below hold the two together.
const SHIPPED_TOML: &str = include_str!("../../config/kizashi.toml");

/// The default scorecards: the `[scorecards.*]` tables of the shipped `config/kizashi.toml`,
/// parsed once. It is compiled in, so it cannot be missing; a bad edit to it fails the tests below
/// (and every `Settings::default()` would panic, naming the file).
fn default_scorecards() -> BTreeMap<String, ScorecardConfig> {
    #[derive(serde::Deserialize)]
    struct Shipped {
        scorecards: BTreeMap<String, ScorecardConfig>,
    }
    static CARDS: OnceLock<BTreeMap<String, ScorecardConfig>> = OnceLock::new();
    CARDS
        .get_or_init(|| match toml::from_str::<Shipped>(SHIPPED_TOML) {
            Ok(shipped) => shipped.scorecards,
            Err(e) => panic!("config/kizashi.toml: its [scorecards] are the default scorecards and do not parse: {e}"),
        })
        .clone()
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            state: StateConfig::default(),
            events: EventsConfig::default(),
            scoring: ScoringConfig::default(),
            scorecards: default_scorecards(),
            alerts: AlertsConfig::default(),
            kafka: KafkaConfig::default(),
            pipeline: PipelineConfig::default(),
            http: HttpConfig::default(),
            log: LogConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::SHIPPED_TOML;
    use crate::config::{env, load, Settings};

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Settings::default().problems(), Vec::<String>::new());
        assert_eq!(load(None, env(&[])).unwrap(), Settings::default());
    }

    #[test]
    fn checked_in_config_equals_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/kizashi.toml");
        let loaded = load(Some(&path), env(&[])).expect("config/kizashi.toml is valid");
        assert_eq!(loaded, Settings::default(), "config/kizashi.toml must document the real defaults");
    }

    /// The shipped file read alone (no defaults beneath it) is the defaults, and it lists every
    /// key: so a default changed in code, or a key added without its line in the file, fails here.
    #[test]
    fn shipped_config_parses_alone_to_the_defaults_and_lists_every_key() {
        let parsed: Settings = toml::from_str(SHIPPED_TOML).expect("config/kizashi.toml parses");
        assert_eq!(parsed, Settings::default(), "config/kizashi.toml must equal the built-in defaults");
        fn keys(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
            for (k, v) in table {
                let key = format!("{prefix}{k}");
                if let toml::Value::Table(t) = v {
                    keys(t, &format!("{key}."), out);
                }
                out.push(key);
            }
        }
        let (mut in_code, mut in_file) = (Vec::new(), Vec::new());
        keys(&toml::Table::try_from(Settings::default()).expect("the defaults serialise"), "", &mut in_code);
        keys(&SHIPPED_TOML.parse::<toml::Table>().expect("config/kizashi.toml parses"), "", &mut in_file);
        let missing: Vec<&String> = in_code.iter().filter(|k| !in_file.contains(k)).collect();
        assert!(missing.is_empty(), "config/kizashi.toml must list every key with its default; missing: {missing:?}");
    }
}
