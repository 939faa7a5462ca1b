//! The configuration's shape: one serde struct per section of `config/kizashi.toml`, each field
//! documented. Values live elsewhere: defaults in `defaults.rs`, checks in `validate.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ByteSize;

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
    /// How closely CS looks after an account: `high`, `low` or `tech` touch.
    pub tiers: TiersConfig,
}

/// An account's touch tier, on every score and alert and a filter of the queue: `high` when its
/// segment is in `high_segments` or its ARR is at least `high_arr_from`; `tech` when its segment
/// is in `tech_segments` or its ARR is below `tech_arr_below`; `low` otherwise (and without ARR).
/// Segments are matched whatever their case and are checked before ARR.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TiersConfig {
    pub high_arr_from: f64,
    pub tech_arr_below: f64,
    pub high_segments: Vec<String>,
    pub tech_segments: Vec<String>,
    /// The highest severity an alert of a tech-touch account carries (`info`, `low`, `medium`,
    /// `high`; empty: as the rule says): what a team that reads tech-touch accounts in a digest
    /// sets, so that they never page anyone.
    pub tech_max_severity: String,
    /// The least severity an alert of a high-touch account carries (`low`, `medium`, `high`;
    /// empty: as the rule says); `info` alerts (opportunities) stay `info`.
    pub high_min_severity: String,
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
    /// What the CS team did (acknowledge, snooze, resolve, assign, override): an input, keyed
    /// and partitioned like the other three.
    pub actions: String,
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

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json` (`--log-json` forces json).
    pub format: String,
    /// Filter when `RUST_LOG` is not set, e.g. `info` or `info,librdkafka=warn`.
    pub level: String,
}
