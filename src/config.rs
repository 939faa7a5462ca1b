//! Typed, layered, validated configuration.
//!
//! Precedence, lowest to highest: the defaults in this file → the TOML file (`--config`) →
//! `KIZASHI__SECTION__KEY` environment variables (`__` separates levels, e.g.
//! `KIZASHI__SCORING__RED_BELOW=35`). Every problem is collected and reported at once, each naming
//! its key; a bad config never reaches the hot loop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::core::measures::Measure;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Where and how account state is kept.
    pub state: StateConfig,
    /// Input decoding, validation and event-time handling.
    pub events: EventsConfig,
    /// Bands, scorecard choice and score updates.
    pub scoring: ScoringConfig,
    /// Scorecards by name. An account uses the scorecard listing its segment, else `scoring.default_scorecard`.
    pub scorecards: BTreeMap<String, ScorecardConfig>,
    /// Alert rules.
    pub alerts: AlertsConfig,
    /// Kafka connection, topics and librdkafka pass-through (`run`).
    pub kafka: KafkaConfig,
    /// The processing loop (`run`).
    pub pipeline: PipelineConfig,
    /// The HTTP port: metrics, health, the account API.
    pub http: HttpConfig,
    /// Logging.
    pub log: LogConfig,
}

/// The HTTP port. (`Debug` masks the token.)
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `host:port` to listen on; empty turns the port off.
    pub listen: String,
    /// Bearer token required on `/v1/*` when not empty. Never logged.
    pub token: String,
    /// An input topic whose newest event is older than this is reported stale in `/readyz`.
    #[serde(with = "humantime_serde")]
    pub stale_after: Duration,
    /// Time a client has to send a whole request head, counted from the connection's accept or
    /// from its first byte after an idle wait; past it the connection is closed (slow-header
    /// clients cannot hold a descriptor).
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// A connection that moves no byte either way for this long is closed: a kept-alive
    /// connection between requests, or a client that stops reading its response.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Open connections at most (capped at half the process's open-file limit). At the limit a new
    /// connection closes the one that has waited longest for a request, so probes still answer.
    pub max_connections: usize,
    /// `Host` values answered when no token is set (a DNS-rebinding page names its own host and
    /// gets 421). Each entry is a host (`kizashi.internal`, `10.0.0.5`, `[::1]`) matching with or
    /// without the bound port, or `host:port` matching exactly. Empty: the bound address,
    /// `localhost`, `127.0.0.1` and `[::1]`. `/healthz`, `/readyz` and `/metrics` answer any `Host`.
    pub allowed_hosts: Vec<String>,
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("listen", &self.listen)
            .field("token", &if self.token.is_empty() { "" } else { "***" })
            .field("stale_after", &self.stale_after)
            .field("header_timeout", &self.header_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_connections", &self.max_connections)
            .field("allowed_hosts", &self.allowed_hosts)
            .finish()
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

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json` (`--log-json` forces json).
    pub format: String,
    /// Filter when `RUST_LOG` is not set, e.g. `info` or `info,librdkafka=warn`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: "text".into(), level: "info".into() }
    }
}

/// Kafka connection and topics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Consumer group. One kizashi instance per group until scale-out lands.
    pub group_id: String,
    pub topics: TopicsConfig,
    /// librdkafka properties for both the consumer and the producer (security, SASL/SSL,
    /// timeouts...). From the environment: `KIZASHI__KAFKA__PROPERTIES__SASL_PASSWORD=…` sets
    /// `sasl.password` (`_` stands for `.`). Values are never logged.
    pub properties: BTreeMap<String, String>,
    /// How long to wait for the brokers at start before giving up with an error.
    #[serde(with = "humantime_serde")]
    pub startup_timeout: Duration,
    /// Where to start reading a partition kizashi holds no state for: `earliest` or `latest`.
    pub start_without_state: String,
    /// Create the changelog topic at start if it is missing (compacted, one partition per input
    /// partition); if false, a missing changelog is an error.
    pub create_changelog: bool,
}

/// Topic names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsConfig {
    pub usage: String,
    pub support: String,
    pub accounts: String,
    pub alerts: String,
    pub scores: String,
    pub dead_letter: String,
    /// Compacted copy of every account state, per input partition, for restoring state that is
    /// lost or moves; `{group_id}` stands for `kafka.group_id` (a changelog belongs to one
    /// consumer group); empty turns it off.
    pub changelog: String,
}

/// The processing loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// A batch holds at most this many records...
    pub batch_records: usize,
    /// ...and waits at most this long for its first one, then takes what has already arrived.
    /// Each batch is one RocksDB write and one produce round.
    #[serde(with = "humantime_serde")]
    pub batch_wait: Duration,
    /// Records of a partition are taken in event-time order across the three input topics. A topic
    /// with nothing buffered is skipped at once if it is caught up (next offset = high watermark);
    /// if that is not known yet, it is waited for at most this long.
    #[serde(with = "humantime_serde")]
    pub merge_wait: Duration,
    /// Records polled and waiting for their turn in that merge, at most, over all partitions
    /// (as Kafka Streams' `buffered.records.per.partition` / `input.buffer.max.bytes`): past it,
    /// fetching pauses for every topic-partition that has records waiting, until half of them
    /// are processed. Without it, one topic running ahead of another (a day's usage arriving
    /// before its support events) is held in memory whole. A poll batch can go past it by up to
    /// `batch_records`.
    pub max_buffered_records: usize,
    /// A partition that received nothing for this long has its stream time driven by the wall
    /// clock, so silent accounts are still re-scored.
    #[serde(with = "humantime_serde")]
    pub idle_after: Duration,
    /// On SIGTERM/SIGINT: finish the batch, flush, commit, and wait at most this long for Kafka
    /// to acknowledge what is in flight.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Account states and checkpoints go to the changelog topic at most this often, each
    /// account's newest state once (0s: after every batch). Longer means less changelog traffic
    /// from hot accounts, and a changelog that lags the local state by up to this much (a
    /// partition taken over after a crash reprocesses that much input; a clean revoke or
    /// shutdown sends everything first).
    #[serde(with = "humantime_serde")]
    pub changelog_interval: Duration,
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

impl KafkaConfig {
    /// The changelog topic's name (`{group_id}` replaced), or `None` when turned off.
    pub fn changelog_topic(&self) -> Option<String> {
        Some(self.topics.changelog.replace("{group_id}", &self.group_id)).filter(|t| !t.is_empty())
    }
}

impl Default for TopicsConfig {
    fn default() -> Self {
        Self {
            usage: "product-usage".into(),
            support: "support-events".into(),
            accounts: "accounts".into(),
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

/// Where and how account state is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// RocksDB directory.
    pub dir: PathBuf,
    /// Memory for account state, in bytes: the decoded-account cache (least recently used
    /// accounts are evicted after each batch) plus RocksDB's block cache and memtables. Written as
    /// bytes or with a unit: `512MiB`, `1GiB`, `800MB`.
    pub memory_budget: ByteSize,
    /// No longer used (the cache was sized in accounts): refused with a pointer to `memory_budget`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_accounts: Option<toml::Value>,
    /// A revoked partition's local state: `keep` (a quick return: used again if the changelog
    /// has not moved past it) or `drop` (deleted once the changelog has caught up).
    pub on_revoke: String,
    /// 0: off. 1 or more: this instance follows the changelog of every partition it does not own
    /// and keeps a warm copy, so taking one over needs no restore.
    pub standby_replicas: u32,
    /// For a rolling upgrade from the release before (whose state encoding, version 4, cannot
    /// read this one's, version 5): `4` writes states, local and on the changelog, in version 4,
    /// so old and new instances can hand partitions to each other. Once every instance runs this
    /// release, remove it and restart them again (one by one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade_from: Option<u8>,
    /// The most an account's users, features and de-duplication ids may take, counted from their
    /// contents as they are encoded at most (`AccountState::growable_bytes`): a usage or support
    /// event for an account over it is rejected (`account_too_large`) until they age out of its
    /// windows, so no stream can grow one state without bound, and every state fits one changelog
    /// record (`Settings::changelog_record_bytes`). 64KiB to 64MiB.
    pub max_account_bytes: ByteSize,
}

/// Input decoding, validation and event-time handling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Longest accepted id (account_id, user_id, ticket_id, feature, event_id), in bytes.
    pub max_id_len: usize,
    /// Longest accepted account `name`, in bytes (a longer one is rejected as `bad_value`).
    pub max_name_len: usize,
    /// Longest accepted record, in bytes: a Kafka record's payload, a line of a replayed file
    /// (whose reader never holds more of one line than this). Longer: `too_large`. 1KiB..=64MiB.
    pub max_record_bytes: ByteSize,
    /// Open tickets kept per account; a support event that would open one more is rejected
    /// (`too_many_tickets`), so a ticketing integration gone wrong cannot grow one state without bound.
    pub max_open_tickets: u32,
    /// Events whose time is further than this ahead of the wall clock are rejected (`ts_in_future`).
    #[serde(with = "humantime_serde")]
    pub max_future: Duration,
    /// How long timers wait behind stream time for late events before re-scoring due accounts.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// Days of history kept per account; usage and support events older than this behind stream
    /// time are rejected (`too_late`). 36 to 3650.
    pub retention_days: u32,
    /// Events carrying an `event_id` already seen for the account within this window are dropped
    /// as duplicates (counted, not dead-lettered). `0s` disables de-duplication.
    #[serde(with = "humantime_serde")]
    pub dedup_window: Duration,
    /// If not empty, `feature_breadth_30d` counts only these features.
    pub key_features: Vec<String>,
}

/// Bands, scorecard choice and score updates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoringConfig {
    /// Scorecard for accounts whose segment no scorecard lists.
    pub default_scorecard: String,
    /// A score below this is red.
    pub red_below: f64,
    /// A score at or above this is green; in between is yellow.
    pub green_from: f64,
    /// Points a score must climb past a band edge before the band improves (no flapping).
    pub band_hysteresis: f64,
    /// If true, an account with any measure at or beyond its red threshold is red whatever its score.
    pub any_red_is_red: bool,
    /// A score update is published when the score moves by at least this many points (or the band changes).
    pub score_step: f64,
    /// Accounts whose `start_date` is less than this many days ago use `onboarding_scorecard`. 0 disables.
    pub onboarding_days: u32,
    /// Scorecard for onboarding accounts.
    pub onboarding_scorecard: String,
    /// Support trouble that keeps an account out of green whatever its usage.
    pub support_cap: SupportCapConfig,
}

/// An account in a support crisis is at best yellow, however well it uses the product: a CSM
/// must not read green while urgent tickets pile up unanswered or the customer says it is unhappy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupportCapConfig {
    /// Set to false to switch the cap off.
    pub enabled: bool,
    /// At least this many urgent tickets open...
    pub urgent_open: u32,
    /// ...the oldest of them open this many days or more; or
    pub urgent_days: u32,
    /// CSAT over 90 days at or below this...
    pub csat_at_most: f64,
    /// ...from at least this many answers.
    pub csat_answers: u32,
}

impl Default for SupportCapConfig {
    fn default() -> Self {
        Self { enabled: true, urgent_open: 2, urgent_days: 7, csat_at_most: 2.5, csat_answers: 2 }
    }
}

/// A weighted set of measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScorecardConfig {
    /// Carried into every score and alert as `name@version`; bump it when you change the scorecard.
    pub version: u32,
    /// Account segments (ASCII case-insensitive) scored with this scorecard.
    pub segments: Vec<String>,
    /// The measures, each mapped to 0–100 between its `red` and `green` values.
    pub measures: Vec<WeightedMeasure>,
}

/// One measure of a scorecard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WeightedMeasure {
    /// A measure name (see the README's measure table).
    pub measure: String,
    /// Relative weight, > 0.
    pub weight: f64,
    /// Value scoring 0 points. May be above `green` for measures where less is better.
    pub red: Option<f64>,
    /// Value scoring 100 points.
    pub green: Option<f64>,
    /// If true, this measure at or beyond its `red` value makes the account red whatever its score
    /// (e.g. no usage for 14 days is red however good the rest looks).
    pub critical: bool,
}

/// Alert rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// No alert for an account with less history than this (its measures are not yet meaningful).
    pub min_history_days: u32,
    /// The band became red.
    pub entered_red: RuleConfig,
    /// The score fell by `points` or more against its maximum over the last `days` days.
    pub score_drop: ScoreDropConfig,
    /// No usage for `days` days (fired by timers).
    pub inactive: InactiveConfig,
    /// Usage trend below `trend_below` with no ticket filed in `no_ticket_days`.
    pub silent_decline: SilentDeclineConfig,
    /// `tickets_7d` or more tickets opened in 7 days.
    pub ticket_spike: TicketSpikeConfig,
    /// An urgent ticket open for longer than `after`.
    pub urgent_ticket_aging: UrgentAgingConfig,
    /// Usage (events or daily active users) below `share` of the account's own norm for `days`
    /// days, whatever its tickets.
    pub usage_drop: UsageDropConfig,
    /// Nobody used the product `days` days after the account's start (or first sight).
    pub not_activated: NotActivatedConfig,
    /// The account is red or yellow and its renewal is `days` days away or less (once per renewal).
    pub renewal_at_risk: RenewalAtRiskConfig,
    /// An opportunity: a green account uses `seat_share` of its seats for `days` days.
    pub expansion_candidate: ExpansionConfig,
    /// The account's most engaged users went quiet for `days` days while the others go on.
    pub champion_quiet: ChampionQuietConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChampionQuietConfig {
    /// Set to false to switch the rule off.
    pub enabled: bool,
    /// `info`, `low`, `medium` or `high`.
    pub severity: String,
    /// Minimum time between two alerts of this rule for one account.
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
    /// Fires when champions (the busiest fifth of the users over the four weeks before, active
    /// on at least 12 of those 28 days) have not been seen for this many days...
    pub days: u32,
    /// ...if they made at least this share of the account's active user-days in those weeks...
    pub share: f64,
    /// ...while the other users are active at least at this share of their own rate.
    pub others_above: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsageDropConfig {
    /// Set to false to switch the rule off.
    pub enabled: bool,
    /// `info`, `low`, `medium` or `high`.
    pub severity: String,
    /// Minimum time between two alerts of this rule for one account.
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
    /// Fires when usage (events and daily active users together) over the last 4, 7 or 14 days
    /// is at most this share of what its norm gives those days...
    pub share: f64,
    /// ...and that is at least this many standard deviations of the account's own noise below
    /// the norm (its usual week-to-week swing and the chance noise of its counts)...
    pub evidence: f64,
    /// ...on this many days in a row.
    pub days: u32,
    /// Re-arms once `usage_trend` and `active_users_trend` are back at or above this ratio.
    pub release_above: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotActivatedConfig {
    /// Set to false to switch the rule off.
    pub enabled: bool,
    /// `info`, `low`, `medium` or `high`.
    pub severity: String,
    /// Minimum time between two alerts of this rule for one account.
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
    /// Days after `start_date` (or first sight) with no usage at all that fire the rule.
    pub days: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RenewalAtRiskConfig {
    /// Set to false to switch the rule off.
    pub enabled: bool,
    /// `info`, `low`, `medium` or `high`.
    pub severity: String,
    /// Minimum time between two alerts of this rule for one account.
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
    /// Fires when `renewal_date` is this many days away or less and the band is red or yellow.
    pub days: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExpansionConfig {
    /// Set to false to switch the rule off.
    pub enabled: bool,
    /// `info`, `low`, `medium` or `high` (default `info`: an opportunity, not a risk).
    pub severity: String,
    /// Minimum time between two alerts of this rule for one account.
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
    /// Fires when `seat_utilization` (30-day active users / seats) is at least this...
    pub seat_share: f64,
    /// ...on this many days in a row while the account is green.
    pub days: u32,
}

/// Settings every rule has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuleConfig {
    pub enabled: bool,
    /// `low`, `medium` or `high`.
    pub severity: String,
    /// Minimum time between two alerts of this rule for one account.
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoreDropConfig {
    /// Set to false to switch the rule off.
    pub enabled: bool,
    /// `low`, `medium` or `high`.
    pub severity: String,
    /// Minimum time between two alerts of this rule for one account.
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
    /// Drop in points that fires the rule.
    pub points: f64,
    /// Days over which the maximum is taken (also the baseline of every explanation).
    pub days: u32,
    /// The drop must hold on this many days in a row (a leading score moves with every week; a
    /// one-off dip is not a drop).
    pub for_days: u32,
    /// The rule re-arms once the drop is back under `points - hysteresis`.
    pub hysteresis: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InactiveConfig {
    /// Set to false to switch the rule off.
    pub enabled: bool,
    /// `low`, `medium` or `high`.
    pub severity: String,
    /// Minimum time between two alerts of this rule for one account.
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
    /// Days without usage that fire the rule.
    pub days: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SilentDeclineConfig {
    /// Set to false to switch the rule off.
    pub enabled: bool,
    /// `low`, `medium` or `high`.
    pub severity: String,
    /// Minimum time between two alerts of this rule for one account.
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
    /// Fires when `usage_drop`'s evidence of a fall holds (whether or not that rule is on) with
    /// usage at most this share of its norm...
    pub trend_below: f64,
    /// ...and no ticket was opened in this many days.
    pub no_ticket_days: u32,
    /// Re-arms once `usage_trend` is back at or above this ratio.
    pub release_above: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TicketSpikeConfig {
    /// Set to false to switch the rule off.
    pub enabled: bool,
    /// `low`, `medium` or `high`.
    pub severity: String,
    /// Minimum time between two alerts of this rule for one account.
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
    /// Tickets opened in the last 7 days that fire the rule.
    pub tickets_7d: u32,
    /// Re-arms once tickets opened in 7 days are below this.
    pub release_below: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UrgentAgingConfig {
    /// Set to false to switch the rule off.
    pub enabled: bool,
    /// `low`, `medium` or `high`.
    pub severity: String,
    /// Minimum time between two alerts of this rule for one account.
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
    /// Age of an open urgent ticket that fires the rule.
    #[serde(with = "humantime_serde")]
    pub after: Duration,
}

const HOUR: Duration = Duration::from_secs(3600);

/// The smallest `state.max_account_bytes` accepted, and the largest.
pub const MIN_MAX_ACCOUNT_BYTES: u64 = 64 << 10;
pub const MAX_MAX_ACCOUNT_BYTES: u64 = 64 << 20;

/// The smallest `state.memory_budget` accepted.
pub const MIN_MEMORY_BUDGET: u64 = 64 << 20;
/// The largest `state.memory_budget`.
pub const MAX_MEMORY_BUDGET: u64 = 1 << 40;

/// A size in bytes, read as a number of bytes or a string with a unit: `B`, `KiB`/`MiB`/`GiB`/
/// `TiB` (powers of 1024) or `KB`/`MB`/`GB`/`TB` (powers of 1000), case-insensitive, e.g.
/// `"512MiB"`, `"1.5GiB"`, `"800 MB"`, `1073741824`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
        let (num, unit) = (&t[..split], t[split..].trim());
        let bad = || format!("`{text}` is not a size such as 512MiB, 1GiB or 800MB");
        let n: f64 = num.parse().map_err(|_| bad())?;
        let mult: f64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1.0,
            "kib" => 1024.0,
            "mib" => 1048576.0,
            "gib" => 1073741824.0,
            "tib" => 1099511627776.0,
            "kb" => 1e3,
            "mb" => 1e6,
            "gb" => 1e9,
            "tb" => 1e12,
            _ => return Err(bad()),
        };
        let bytes = n * mult;
        if !bytes.is_finite() || bytes >= u64::MAX as f64 {
            return Err(bad());
        }
        Ok(ByteSize(bytes.round() as u64))
    }
}

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0;
        for (unit, m) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if b >= m && b % m == 0 {
                return write!(f, "{}{unit}", b / m);
            }
        }
        write!(f, "{b}B")
    }
}

impl Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a size such as \"512MiB\" or a number of bytes")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v).map(ByteSize).map_err(|_| E::custom(format!("{v} is negative")))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<ByteSize, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl StateConfig {
    /// `memory_budget` as the store and engine share it.
    pub fn budget(&self) -> crate::store::Budget {
        crate::store::Budget { total: self.memory_budget.0 }
    }
}

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
        }
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

fn wm(measure: &str, weight: f64, red: f64, green: f64) -> WeightedMeasure {
    WeightedMeasure { measure: measure.into(), weight, red: Some(red), green: Some(green), critical: false }
}

fn critical(m: WeightedMeasure) -> WeightedMeasure {
    WeightedMeasure { critical: true, ..m }
}

fn card(version: u32, segments: &[&str], measures: Vec<WeightedMeasure>) -> ScorecardConfig {
    ScorecardConfig { version, segments: segments.iter().map(|s| s.to_string()).collect(), measures }
}

impl Default for Settings {
    fn default() -> Self {
        let mut scorecards = BTreeMap::new();
        scorecards.insert(
            "default".into(),
            card(
                3,
                &[],
                vec![
                    wm("seat_utilization_7d", 25.0, 0.15, 0.65),
                    critical(wm("seat_utilization", 12.5, 0.15, 0.6)),
                    wm("active_users_trend", 12.5, 0.45, 0.95),
                    wm("usage_trend", 12.5, 0.45, 0.95),
                    wm("feature_breadth_30d", 12.5, 2.0, 10.0),
                    critical(wm("days_since_last_activity", 10.0, 14.0, 2.0)),
                    wm("open_urgent_tickets", 5.0, 3.0, 0.0),
                    wm("csat_90d", 5.0, 2.5, 4.5),
                    wm("nps_90d", 5.0, -30.0, 30.0),
                ],
            ),
        );
        scorecards.insert(
            "enterprise".into(),
            card(
                3,
                &["enterprise"],
                vec![
                    wm("seat_utilization_7d", 25.0, 0.2, 0.7),
                    critical(wm("seat_utilization", 12.5, 0.15, 0.7)),
                    wm("active_users_trend", 12.5, 0.45, 0.95),
                    wm("usage_trend", 7.5, 0.45, 0.95),
                    wm("feature_breadth_30d", 12.5, 3.0, 12.0),
                    critical(wm("days_since_last_activity", 5.0, 10.0, 1.0)),
                    wm("open_urgent_tickets", 5.0, 2.0, 0.0),
                    wm("oldest_open_ticket_days", 5.0, 14.0, 2.0),
                    wm("csat_90d", 10.0, 3.0, 4.5),
                    wm("nps_90d", 5.0, -20.0, 40.0),
                ],
            ),
        );
        scorecards.insert(
            "onboarding".into(),
            card(
                2,
                &[],
                vec![
                    wm("seat_utilization_7d", 25.0, 0.05, 0.4),
                    wm("active_users_7d", 15.0, 1.0, 5.0),
                    wm("feature_breadth_30d", 25.0, 1.0, 5.0),
                    critical(wm("days_since_last_activity", 25.0, 7.0, 1.0)),
                    wm("open_urgent_tickets", 10.0, 2.0, 0.0),
                ],
            ),
        );
        Self {
            state: StateConfig::default(),
            events: EventsConfig::default(),
            scoring: ScoringConfig::default(),
            scorecards,
            alerts: AlertsConfig::default(),
            kafka: KafkaConfig::default(),
            pipeline: PipelineConfig::default(),
            http: HttpConfig::default(),
            log: LogConfig::default(),
        }
    }
}

/// Every problem found in a configuration, each naming its key.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigProblems(pub Vec<String>);

impl std::fmt::Display for ConfigProblems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "configuration has {} problem(s):", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigProblems {}

/// Loads defaults → `file` → `KIZASHI__…` environment, then validates. `env` is the environment
/// to read (pass `std::env::vars()`); taking it as a parameter keeps tests free of global state.
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Settings, ConfigProblems> {
    let defaults = config::Config::try_from(&Settings::default())
        .map_err(|e| ConfigProblems(vec![format!("internal: defaults do not serialise: {e}")]))?;
    let mut builder = config::Config::builder().add_source(defaults);
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigProblems(vec![format!("config file {} does not exist", path.display())]));
        }
        builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
    }
    // librdkafka property names hold dots, which neither environment variable names nor the
    // config crate's keys can carry: KIZASHI__KAFKA__PROPERTIES__SASL_PASSWORD is sasl.password.
    let mut env_properties = Vec::new();
    let env: config::Map<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("KIZASHI__"))
        .filter_map(|(k, v)| match k.strip_prefix("KIZASHI__KAFKA__PROPERTIES__") {
            Some(prop) => {
                env_properties.push((prop.to_ascii_lowercase().replace('_', "."), v));
                None
            }
            None => Some((k, v)),
        })
        .collect();
    let env_raw: Vec<(String, String)> = env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    builder = builder.add_source(
        config::Environment::with_prefix("KIZASHI")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("events.key_features")
            .with_list_parse_key("http.allowed_hosts")
            .source(Some(env)),
    );
    let merged = builder.build().map_err(|e| ConfigProblems(vec![e.to_string()]))?;
    let mut tree: serde_json::Value =
        merged.try_deserialize().map_err(|e| ConfigProblems(vec![e.to_string()]))?;
    keep_env_strings(&mut tree, &env_raw);
    let (mut settings, mut problems) = deserialize_collecting(tree);
    settings.kafka.properties.extend(env_properties);
    problems.extend(settings.problems());
    if problems.is_empty() {
        Ok(settings)
    } else {
        Err(ConfigProblems(problems))
    }
}

/// The environment layer guesses types (`35` is a number, `true` a boolean), which keys that hold
/// numbers need. A key whose default is a string (a token, a topic, a name) gets the variable's
/// text exactly as given instead, so `KIZASHI__HTTP__TOKEN=123456789` is the string "123456789",
/// never a type error that would print the secret. Lists of strings are split on `,`, unparsed.
fn keep_env_strings(tree: &mut serde_json::Value, env: &[(String, String)]) {
    let defaults = serde_json::to_value(Settings::default()).unwrap_or_default();
    for (key, raw) in env {
        let Some(path) = key.strip_prefix("KIZASHI__") else { continue };
        let parts: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
        let default = parts.iter().try_fold(&defaults, |node, p| node.get(p.as_str()));
        let replacement = match default {
            Some(serde_json::Value::String(_)) => serde_json::Value::String(raw.clone()),
            Some(serde_json::Value::Array(_)) => {
                serde_json::Value::Array(raw.split(',').map(|x| serde_json::Value::String(x.trim().to_string())).collect())
            }
            _ => continue,
        };
        let target = parts.iter().try_fold(&mut *tree, |node, p| node.get_mut(p.as_str()));
        if let Some(slot) = target {
            *slot = replacement;
        }
    }
}

/// Deserialises `tree`, and on each error records it (with its key path), removes the offending key
/// and tries again, so that every structural problem is reported, not only the first.
fn deserialize_collecting(mut tree: serde_json::Value) -> (Settings, Vec<String>) {
    let mut problems = Vec::new();
    for _ in 0..200 {
        let attempt: Result<Settings, _> = serde_path_to_error::deserialize(&tree);
        match attempt {
            Ok(s) => return (s, problems),
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner().to_string();
                // For an unknown field the path already ends with the field's name.
                let key = path;
                let msg = match inner.strip_prefix("unknown field `") {
                    Some(_) => format!("unknown key; {}", inner.split_once(", ").map_or("", |x| x.1)),
                    None => inner,
                };
                problems.push(format!("{key}: {msg}"));
                if !remove_path(&mut tree, &key) {
                    return (Settings::default(), problems);
                }
            }
        }
    }
    (Settings::default(), problems)
}

/// Removes the value at a dotted path (`a.b[2].c`) from a JSON tree. Returns false if absent.
fn remove_path(tree: &mut serde_json::Value, path: &str) -> bool {
    let mut parts: Vec<String> = Vec::new();
    for seg in path.split('.') {
        match seg.find('[') {
            Some(i) => {
                if i > 0 {
                    parts.push(seg[..i].to_string());
                }
                for idx in seg[i..].split(['[', ']']).filter(|s| !s.is_empty()) {
                    parts.push(format!("[{idx}"));
                }
            }
            None => parts.push(seg.to_string()),
        }
    }
    let Some((last, parents)) = parts.split_last() else { return false };
    let mut node = tree;
    for p in parents {
        node = match (p.strip_prefix('['), node) {
            (Some(i), serde_json::Value::Array(a)) => match i.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(n) => n,
                None => return false,
            },
            (None, serde_json::Value::Object(m)) => match m.get_mut(p) {
                Some(n) => n,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last.strip_prefix('['), node) {
        (Some(i), serde_json::Value::Array(a)) => match i.parse::<usize>() {
            Ok(i) if i < a.len() => {
                // Replace rather than remove so later indexes in messages stay right.
                a[i] = serde_json::Value::Object(Default::default());
                true
            }
            _ => false,
        },
        (None, serde_json::Value::Object(m)) => m.remove(last.as_str()).is_some(),
        _ => false,
    }
}

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
            alerts: s.alerts.params(),
            grace_ms: ms(s.events.grace),
        }
    }
}

/// librdkafka properties whose values must never be printed.
pub fn is_secret(key: &str) -> bool {
    // `sasl.oauthbearer.config` holds client credentials (e.g. `clientSecret=…`).
    ["password", "secret", "key.pem", "token", "jaas", "oauthbearer.config", "private.key"].iter().any(|w| key.contains(w))
}

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

    /// Semantic checks (types are already right). Returns every problem found.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
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
        if !["text", "json"].contains(&self.log.format.as_str()) {
            p.push(format!("log.format: `{}` is neither text nor json", self.log.format));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            p.push(format!("log.level: `{}` is not a filter such as info or info,librdkafka=warn: {e}", self.log.level));
        }
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
        p
    }

    fn scorecard_names(&self) -> String {
        self.scorecards.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    /// The resolved configuration as TOML, for `check-config`, with secrets masked.
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        if !shown.http.token.is_empty() {
            shown.http.token = "***".into();
        }
        for (k, v) in shown.kafka.properties.iter_mut() {
            if is_secret(k) {
                *v = "***".into();
            }
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Settings::default().problems(), Vec::<String>::new());
        assert_eq!(load(None, env(&[])).unwrap(), Settings::default());
    }

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
    fn checked_in_config_equals_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/kizashi.toml");
        let loaded = load(Some(&path), env(&[])).expect("config/kizashi.toml is valid");
        assert_eq!(loaded, Settings::default(), "config/kizashi.toml must document the real defaults");
    }

    #[test]
    fn environment_overrides_file() {
        let s = load(
            None,
            env(&[
                ("KIZASHI__SCORING__RED_BELOW", "35"),
                ("KIZASHI__EVENTS__GRACE", "10m"),
                ("KIZASHI__EVENTS__KEY_FEATURES", "reports.export,dashboards.view"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(s.scoring.red_below, 35.0);
        assert_eq!(s.events.grace, Duration::from_secs(600));
        assert_eq!(s.events.key_features, vec!["reports.export", "dashboards.view"]);
    }

    #[test]
    fn every_problem_is_listed_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(
            &path,
            r#"
            [events]
            retention_days = 10
            grace = "soon"
            colour = "blue"
            [scoring]
            red_below = 80
            default_scorecard = "nope"
            [scorecards.x]
            measures = [{ measure = "happiness", weight = -1, red = 1, green = 2 }, { measure = "csat_90d" }]
            [alerts.inactive]
            severity = "urgent"
            [state]
            upgrade_from = 3
            "#,
        )
        .unwrap();
        let err = load(Some(&path), env(&[("KIZASHI__SCORING__GREEN_FROM", "abc")])).unwrap_err();
        let text = err.0.join("\n");
        for needle in [
            "events.retention_days: 10",
            "events.grace:",
            "events.colour: unknown key",
            "scoring.green_from:",
            "scoring.default_scorecard: `nope`",
            "scorecards.x.measures[0].measure: `happiness`",
            "scorecards.x.measures[0].weight",
            "scorecards.x.measures[1].red: missing",
            "alerts.inactive.severity: `urgent`",
            "state.upgrade_from: 3 is not a state version",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }

    #[test]
    fn kafka_properties_pass_through_and_secrets_are_masked() {
        let s = load(
            None,
            env(&[
                ("KIZASHI__KAFKA__PROPERTIES__SASL_PASSWORD", "hunter2"),
                ("KIZASHI__KAFKA__PROPERTIES__SECURITY_PROTOCOL", "SASL_SSL"),
            ]),
        )
        .unwrap();
        assert_eq!(s.kafka.properties["sasl.password"], "hunter2");
        assert_eq!(s.kafka.properties["security.protocol"], "SASL_SSL");
        let shown = s.to_toml();
        assert!(!shown.contains("hunter2") && shown.contains("***") && shown.contains("SASL_SSL"), "{shown}");
    }

    #[test]
    fn environment_values_of_string_keys_stay_strings() {
        for v in ["123456789", "true", "1.5e3", "0"] {
            let s = load(None, env(&[("KIZASHI__HTTP__TOKEN", v), ("KIZASHI__KAFKA__GROUP_ID", v)]))
                .unwrap_or_else(|e| panic!("{v}: {e}"));
            assert_eq!((s.http.token.as_str(), s.kafka.group_id.as_str()), (v, v));
            let shown = load(None, env(&[("KIZASHI__HTTP__TOKEN", v)])).unwrap().to_toml();
            assert!(shown.contains("token = \"***\""), "the token is masked: {shown}");
        }
        let s = load(None, env(&[("KIZASHI__EVENTS__KEY_FEATURES", "42,reports.export")])).unwrap();
        assert_eq!(s.events.key_features, vec!["42", "reports.export"]);
        // Numeric keys still parse, and a bad one names the key without echoing secrets.
        let s = load(None, env(&[("KIZASHI__SCORING__RED_BELOW", "35")])).unwrap();
        assert_eq!(s.scoring.red_below, 35.0);
        let s = load(None, env(&[("KIZASHI__STATE__UPGRADE_FROM", "4")])).unwrap();
        assert_eq!(s.state.upgrade_from, Some(4));
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
    fn oauthbearer_config_is_masked() {
        let s = load(
            None,
            env(&[("KIZASHI__KAFKA__PROPERTIES__SASL_OAUTHBEARER_CONFIG", "principal=kz clientSecret=s3cr3t")]),
        )
        .unwrap();
        assert!(!s.to_toml().contains("s3cr3t"));
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

    #[test]
    fn memory_budget_takes_bytes_or_units_and_refuses_the_old_account_count() {
        for (text, bytes) in [
            ("512MiB", 512u64 << 20),
            ("1GiB", 1 << 30),
            ("1.5GiB", 3 << 29),
            ("800 MB", 800_000_000),
            ("2gb", 2_000_000_000),
            ("67108864", 64 << 20),
        ] {
            let s = load(None, env(&[("KIZASHI__STATE__MEMORY_BUDGET", text)])).unwrap_or_else(|e| panic!("{text}: {e:?}"));
            assert_eq!(s.state.memory_budget, ByteSize(bytes), "{text}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        std::fs::write(&path, "[state]\nmemory_budget = 1073741824\n").unwrap();
        assert_eq!(load(Some(&path), env(&[])).unwrap().state.memory_budget, ByteSize(1 << 30));
        assert_eq!(ByteSize(512 << 20).to_string(), "512MiB");
        assert_eq!(ByteSize(1000).to_string(), "1000B");

        for (text, want) in [("lots", "not a size"), ("12 parsecs", "not a size"), ("1MiB", "below the smallest")] {
            let err = load(None, env(&[("KIZASHI__STATE__MEMORY_BUDGET", text)])).unwrap_err();
            let all = err.0.join("\n");
            assert!(all.contains("state.memory_budget") && all.contains(want), "{text}: {all}");
        }
        std::fs::write(&path, "[state]\ncache_accounts = 200000\n").unwrap();
        let err = load(Some(&path), env(&[])).unwrap_err();
        let all = err.0.join("\n");
        assert!(all.contains("state.cache_accounts") && all.contains("state.memory_budget"), "{all}");
    }

    #[test]
    fn missing_file_is_a_problem() {
        let err = load(Some(Path::new("/nonexistent/k.toml")), env(&[])).unwrap_err();
        assert!(err.0[0].contains("does not exist"));
    }
}
