//! Prometheus metrics, and the log line that goes with each observable event.
//!
//! Naming follows Prometheus conventions: `kizashi_` prefix, base units (`_seconds`, `_bytes`),
//! `_total` on counters; no label carries an account id. Each method below is the one place
//! where its event moves a metric and, where it is worth a line, writes its log line — so the
//! two never disagree. Every process (or test) has its own registry.

use prometheus::{
    exponential_buckets, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, GaugeVec, Opts, Registry, TextEncoder,
};

use std::time::Instant;

use crate::core::Alert;
use crate::engine::Rejected;
use crate::event::RejectReason;

/// Log lines of one kind that input can cause at any rate (requests refused with 401, rejected
/// records): a burst of [`LogBudget::BURST`], then one a second, each saying how many were not
/// logged. A client retrying a wrong token, or a stream of poison pills, cannot flood the log;
/// the counters (`kizashi_http_requests_total{status="401"}`, `kizashi_events_rejected_total`)
/// count every one.
#[derive(Debug)]
pub(crate) struct LogBudget {
    tokens: f64,
    at: Instant,
    skipped: u64,
}

impl LogBudget {
    const BURST: f64 = 10.0;

    pub(crate) fn new(now: Instant) -> LogBudget {
        LogBudget { tokens: Self::BURST, at: now, skipped: 0 }
    }

    /// `Some(lines skipped since the last one)` if a line may be written now.
    pub(crate) fn take(&mut self, now: Instant) -> Option<u64> {
        let refill = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + refill).min(Self::BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Some(std::mem::take(&mut self.skipped))
        } else {
            self.skipped += 1;
            None
        }
    }
}

/// Why the HTTP server (`api::server`) closed (or refused) a connection on its own: the label
/// of `kizashi_http_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The request head took longer than `http.header_timeout`.
    HeaderTimeout,
    /// No byte moved for `http.idle_timeout`.
    IdleTimeout,
    /// Closed to make room for a new connection at `http.max_connections`.
    Evicted,
    /// A new connection closed at once: at the limit, and every connection had a request in hand.
    Refused,
}

impl Closed {
    pub const ALL: [Closed; 4] = [Closed::HeaderTimeout, Closed::IdleTimeout, Closed::Evicted, Closed::Refused];

    pub fn name(self) -> &'static str {
        match self {
            Closed::HeaderTimeout => "header_timeout",
            Closed::IdleTimeout => "idle_timeout",
            Closed::Evicted => "evicted",
            Closed::Refused => "refused",
        }
    }
}

/// Every metric kizashi exports.
pub struct Metrics {
    registry: Registry,
    /// Log lines of rejected records (each is counted, dead-lettered and kept whole there).
    reject_log: std::sync::Mutex<LogBudget>,
    events_consumed: IntCounterVec,
    bytes_consumed: IntCounterVec,
    events_rejected: IntCounterVec,
    events_duplicate: IntCounter,
    events_already_applied: IntCounter,
    batches: IntCounter,
    batch_records: Histogram,
    batch_seconds: Histogram,
    event_to_alert_seconds: Histogram,
    consumer_lag: IntGaugeVec,
    alerts: IntCounterVec,
    score_updates: IntCounter,
    accounts: IntGaugeVec,
    memory: IntGaugeVec,
    state_bytes: IntGauge,
    state_accounts: IntGauge,
    outbox_entries: IntGauge,
    produced: IntCounterVec,
    producer_errors: IntCounter,
    ready: IntGauge,
    partitions_assigned: IntGauge,
    source_last_event: GaugeVec,
    changelog_records: IntCounter,
    changelog_bytes: IntCounter,
    changelog_pending: IntGauge,
    restored_accounts: IntCounter,
    partitions_restoring: IntGauge,
    buffered_records: IntGauge,
    input_pauses: IntCounter,
    restore_seconds: Histogram,
    changelog_corrupt: IntCounter,
    http_requests: IntCounterVec,
    http_seconds: HistogramVec,
    http_connections: IntGauge,
    http_connections_closed: IntCounterVec,
    http_rejected: IntCounterVec,
}

/// The names exported, for documentation and the deploy/ consistency test.
pub const NAMES: &[&str] = &[
    "kizashi_build_info",
    "kizashi_events_consumed_total",
    "kizashi_consumed_bytes_total",
    "kizashi_events_rejected_total",
    "kizashi_events_duplicate_total",
    "kizashi_events_already_applied_total",
    "kizashi_batches_total",
    "kizashi_batch_records",
    "kizashi_batch_duration_seconds",
    "kizashi_event_to_alert_seconds",
    "kizashi_consumer_lag_records",
    "kizashi_alerts_total",
    "kizashi_score_updates_total",
    "kizashi_accounts",
    "kizashi_state_size_bytes",
    "kizashi_memory_bytes",
    "kizashi_state_accounts",
    "kizashi_outbox_entries",
    "kizashi_produced_total",
    "kizashi_producer_errors_total",
    "kizashi_ready",
    "kizashi_partitions_assigned",
    "kizashi_source_last_event_timestamp_seconds",
    "kizashi_changelog_records_total",
    "kizashi_changelog_bytes_total",
    "kizashi_changelog_pending_batches",
    "kizashi_restored_accounts_total",
    "kizashi_partitions_restoring",
    "kizashi_buffered_records",
    "kizashi_input_pauses_total",
    "kizashi_restore_duration_seconds",
    "kizashi_changelog_corrupt_records_total",
    "kizashi_http_requests_total",
    "kizashi_http_request_duration_seconds",
    "kizashi_http_connections",
    "kizashi_http_connections_closed_total",
    "kizashi_http_rejected_total",
];

/// The registry, and one way to make and register each kind of metric.
struct Registrar(Registry);

impl Registrar {
    fn add<T: prometheus::core::Collector + Clone + 'static>(&self, c: T) -> T {
        self.0.register(Box::new(c.clone())).expect("metric names are unique");
        c
    }

    fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.add(IntCounter::new(name, help).unwrap())
    }

    fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.add(IntCounterVec::new(Opts::new(name, help), labels).unwrap())
    }

    fn gauge(&self, name: &str, help: &str) -> IntGauge {
        self.add(IntGauge::new(name, help).unwrap())
    }

    fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels).unwrap())
    }

    fn float_gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        self.add(GaugeVec::new(Opts::new(name, help), labels).unwrap())
    }

    /// A histogram with `count` exponential buckets from `start`, each `factor` times the last.
    fn histogram(&self, name: &str, help: &str, (start, factor, count): (f64, f64, usize)) -> Histogram {
        let buckets = exponential_buckets(start, factor, count).unwrap();
        self.add(Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).unwrap())
    }

    fn histogram_vec(&self, name: &str, help: &str, (start, factor, count): (f64, f64, usize), labels: &[&str]) -> HistogramVec {
        let buckets = exponential_buckets(start, factor, count).unwrap();
        self.add(HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels).unwrap())
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric and makes the labelled series that must exist from the start.
    //
    // Long on purpose: a flat table, one registration (name, help, labels or buckets) per
    // metric, grouped by what they watch. Split into functions, the table would only be scattered
    // across them; every entry stays as plain as it is here.
    pub fn new() -> Metrics {
        let r = Registrar(Registry::new());
        let build = r.gauge_vec("kizashi_build_info", "Always 1; the version as a label", &["version"]);
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let m = Metrics {
            // Input records, and the batches they are processed in.
            events_consumed: r.counter_vec("kizashi_events_consumed_total", "Input records consumed, by topic", &["topic"]),
            bytes_consumed: r.counter_vec("kizashi_consumed_bytes_total", "Bytes of input records consumed (key and value), by topic", &["topic"]),
            events_rejected: r.counter_vec(
                "kizashi_events_rejected_total",
                "Input records rejected (sent to the dead-letter topic, or the rejects file in replay), by reason",
                &["reason"],
            ),
            events_duplicate: r.counter("kizashi_events_duplicate_total", "Events dropped as repeats of an event_id already applied"),
            events_already_applied: r.counter(
                "kizashi_events_already_applied_total",
                "Input records skipped because the account's state, restored from the changelog, already holds them",
            ),
            batches: r.counter("kizashi_batches_total", "Processing batches written to the state store"),
            batch_records: r.histogram("kizashi_batch_records", "Input records per processing batch", (1.0, 4.0, 10)),
            batch_seconds: r.histogram("kizashi_batch_duration_seconds", "Time to process and write one batch", (0.0005, 2.0, 16)),
            event_to_alert_seconds: r.histogram(
                "kizashi_event_to_alert_seconds",
                "From the event time that raised an alert to the broker's acknowledgement of the alert",
                (0.001, 2.0, 24),
            ),
            consumer_lag: r.gauge_vec(
                "kizashi_consumer_lag_records",
                "Records between this instance's position and the partition's end",
                &["topic", "partition"],
            ),
            // Outputs and state.
            alerts: r.counter_vec("kizashi_alerts_total", "Alerts raised, by rule", &["rule"]),
            score_updates: r.counter("kizashi_score_updates_total", "Score updates published (health-scores)"),
            accounts: r.gauge_vec("kizashi_accounts", "Accounts in the state store, by band (unscored: no score yet)", &["band"]),
            memory: r.gauge_vec(
                "kizashi_memory_bytes",
                "Memory by part: allocated and resident (the allocator's, C libraries included), store (RocksDB block cache and memtables), accounts (the engine's decoded and encoded accounts), board (the account index, estimated)",
                &["part"],
            ),
            state_bytes: r.gauge("kizashi_state_size_bytes", "Estimated size of the state store (SST files and memtables)"),
            state_accounts: r.gauge("kizashi_state_accounts", "Accounts in the state store (this instance's partitions)"),
            outbox_entries: r.gauge("kizashi_outbox_entries", "Outbox entries written but not yet acknowledged by Kafka"),
            produced: r.counter_vec("kizashi_produced_total", "Messages acknowledged by Kafka, by output (alert, score, dead_letter)", &["output"]),
            producer_errors: r.counter("kizashi_producer_errors_total", "Failed produce attempts (each is retried)"),
            // Readiness, ownership and freshness.
            ready: r.gauge("kizashi_ready", "1 once the state store is open, the outbox resent and partitions assigned"),
            partitions_assigned: r.gauge("kizashi_partitions_assigned", "Input partitions (partition numbers) this instance owns"),
            source_last_event: r.float_gauge_vec(
                "kizashi_source_last_event_timestamp_seconds",
                "Event time of the newest event seen per input topic",
                &["topic"],
            ),
            // The changelog, restores, and the event-time merge's buffer.
            changelog_records: r.counter("kizashi_changelog_records_total", "Changelog records (account states, checkpoints) acknowledged by Kafka"),
            changelog_bytes: r.counter("kizashi_changelog_bytes_total", "Bytes of changelog records (key and value) sent to Kafka"),
            changelog_pending: r.gauge("kizashi_changelog_pending_batches", "Batches whose states are queued for, or in flight to, the changelog"),
            partitions_restoring: r.gauge(
                "kizashi_partitions_restoring",
                "Assigned partitions paused while checked against (or restored from) the changelog",
            ),
            buffered_records: r.gauge(
                "kizashi_buffered_records",
                "Input records polled and waiting for their turn in the event-time merge (at most pipeline.max_buffered_records, plus one poll batch)",
            ),
            input_pauses: r.counter("kizashi_input_pauses_total", "Times fetching paused because pipeline.max_buffered_records were waiting"),
            restored_accounts: r.counter("kizashi_restored_accounts_total", "Account states restored from the changelog"),
            restore_seconds: r.histogram("kizashi_restore_duration_seconds", "Time to restore one partition from the changelog", (0.01, 2.0, 16)),
            changelog_corrupt: r.counter(
                "kizashi_changelog_corrupt_records_total",
                "Changelog records that did not decode, skipped by a restore or a standby replica",
            ),
            // The HTTP API.
            http_requests: r.counter_vec("kizashi_http_requests_total", "HTTP requests, by route and status", &["route", "status"]),
            http_seconds: r.histogram_vec(
                "kizashi_http_request_duration_seconds",
                "HTTP request handling time, by route",
                (0.0001, 2.0, 16),
                &["route"],
            ),
            http_connections: r.gauge("kizashi_http_connections", "Open HTTP connections"),
            http_connections_closed: r.counter_vec(
                "kizashi_http_connections_closed_total",
                "HTTP connections the server closed or refused on its own, by reason (header_timeout, idle_timeout, evicted or refused at http.max_connections)",
                &["reason"],
            ),
            http_rejected: r.counter_vec(
                "kizashi_http_rejected_total",
                "HTTP requests answered 503 without being handled, by reason (busy: the API's queries at their bound)",
                &["reason"],
            ),
            registry: r.0,
            reject_log: std::sync::Mutex::new(LogBudget::new(Instant::now())),
        };
        m.declare_series();
        m
    }

    /// The labelled series that exist (at 0) before anything happens: every band, reject reason,
    /// rule, output and reason a connection or request is refused for.
    fn declare_series(&self) {
        for band in ["red", "yellow", "green", "unscored"] {
            self.accounts.with_label_values(&[band]).set(0);
        }
        for reason in RejectReason::ALL {
            self.events_rejected.with_label_values(&[reason.code()]).reset();
        }
        for rule in crate::core::alerts::Rule::ALL {
            self.alerts.with_label_values(&[rule.name()]).reset();
        }
        for output in ["alert", "score", "dead_letter"] {
            self.produced.with_label_values(&[output]).reset();
        }
        for reason in Closed::ALL {
            self.http_connections_closed.with_label_values(&[reason.name()]).reset();
        }
        self.http_rejected.with_label_values(&["busy"]).reset();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding");
        String::from_utf8(buf).expect("utf-8")
    }

    /// Makes the per-topic series exist (at 0) before the first record arrives.
    pub fn declare_topics(&self, topics: &[String; crate::event::N_KINDS]) {
        for t in topics {
            self.events_consumed.with_label_values(&[t]).reset();
            self.bytes_consumed.with_label_values(&[t]).reset();
        }
    }

    pub fn consumed(&self, topic: &str, n: u64, bytes: u64) {
        if n > 0 {
            self.events_consumed.with_label_values(&[topic]).inc_by(n);
            self.bytes_consumed.with_label_values(&[topic]).inc_by(bytes);
        }
    }

    /// Newest event time seen on an input topic (data freshness).
    pub fn source_event(&self, topic: &str, ts_ms: i64) {
        let g = self.source_last_event.with_label_values(&[topic]);
        let secs = ts_ms as f64 / 1000.0;
        if secs > g.get() {
            g.set(secs);
        }
    }

    /// Newest event time seen per input topic, in epoch seconds.
    pub fn source_event_times(&self, topics: &[String; crate::event::N_KINDS]) -> [Option<f64>; crate::event::N_KINDS] {
        topics.each_ref().map(|t| {
            let v = self.source_last_event.with_label_values(&[t]).get();
            (v > 0.0).then_some(v)
        })
    }

    /// A record rejected by decoding or the core; it goes to the dead-letter topic (`run`) or
    /// the rejects file (`replay`).
    pub fn rejected(&self, r: &Rejected, to: &str) {
        self.events_rejected.with_label_values(&[r.reject.reason.code()]).inc();
        let Some(not_logged) = self.reject_log.lock().expect("log budget lock").take(Instant::now()) else { return };
        tracing::warn!(
            source = %r.source, partition = r.partition, offset = r.offset, reason = %r.reject.reason,
            detail = %r.reject.detail, to, not_logged, "record rejected"
        );
    }

    pub fn duplicates(&self, n: u64) {
        if n > 0 {
            self.events_duplicate.inc_by(n);
        }
    }

    pub fn already_applied(&self, n: u64) {
        if n > 0 {
            self.events_already_applied.inc_by(n);
        }
    }

    pub fn alert(&self, a: &Alert) {
        self.alerts.with_label_values(&[a.rule.name()]).inc();
        tracing::info!(account = %a.account_id, rule = a.rule.name(), score = a.score, band = a.band.name(), alert_id = %a.alert_id, "alert raised");
    }

    pub fn score_updates(&self, n: u64) {
        if n > 0 {
            self.score_updates.inc_by(n);
        }
    }

    pub fn batch(&self, records: usize, seconds: f64) {
        self.batches.inc();
        self.batch_records.observe(records as f64);
        self.batch_seconds.observe(seconds);
        tracing::trace!(records, seconds, "batch written");
    }

    /// An output message acknowledged by Kafka; `event_time_ms` is set for alerts.
    pub fn produced(&self, output: &'static str, event_time_ms: Option<i64>, now_ms: i64) {
        self.produced.with_label_values(&[output]).inc();
        if let Some(t) = event_time_ms {
            self.event_to_alert_seconds.observe(((now_ms - t).max(0)) as f64 / 1000.0);
        }
    }

    pub fn producer_error(&self, seq: u64, error: &str) {
        self.producer_errors.inc();
        tracing::warn!(seq, error, "producing an output message failed; it stays in the outbox and is retried");
    }

    pub fn outbox_depth(&self, n: usize) {
        self.outbox_entries.set(n as i64);
    }

    pub fn lag(&self, topic: &str, partition: i32, records: i64) {
        self.consumer_lag.with_label_values(&[topic, &partition.to_string()]).set(records.max(0));
    }

    pub fn forget_lag(&self, topic: &str, partition: i32) {
        let _ = self.consumer_lag.remove_label_values(&[topic, &partition.to_string()]);
    }

    pub fn partitions_assigned(&self, n: usize) {
        self.partitions_assigned.set(n as i64);
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    pub fn accounts_by_band(&self, counts: [usize; 4]) {
        self.state_accounts.set(counts.iter().sum::<usize>() as i64);
        for (band, n) in ["red", "yellow", "green", "unscored"].into_iter().zip(counts) {
            self.accounts.with_label_values(&[band]).set(n as i64);
        }
    }

    /// One part of `kizashi_memory_bytes`.
    pub fn memory(&self, part: &'static str, bytes: u64) {
        self.memory.with_label_values(&[part]).set(bytes as i64);
    }

    /// The allocator's totals (`allocated`, `resident`).
    pub fn allocator(&self) {
        use tikv_jemalloc_ctl::{epoch, stats};
        if epoch::advance().is_ok() {
            if let (Ok(a), Ok(r)) = (stats::allocated::read(), stats::resident::read()) {
                self.memory("allocated", a as u64);
                self.memory("resident", r as u64);
            }
        }
    }

    pub fn state_size(&self, bytes: u64) {
        self.state_bytes.set(bytes as i64);
    }

    /// Changelog progress: records acknowledged and bytes sent so far (running totals) and
    /// batches waiting.
    pub fn changelog(&self, records_acked: u64, bytes_sent: u64, pending_batches: usize) {
        let seen = self.changelog_records.get();
        if records_acked > seen {
            self.changelog_records.inc_by(records_acked - seen);
        }
        let seen = self.changelog_bytes.get();
        if bytes_sent > seen {
            self.changelog_bytes.inc_by(bytes_sent - seen);
        }
        self.changelog_pending.set(pending_batches as i64);
    }

    pub fn restoring(&self, partitions: usize) {
        self.partitions_restoring.set(partitions as i64);
    }

    /// Records waiting in the event-time merge; `paused`: fetching was paused for them now.
    pub fn buffered(&self, records: usize, paused: bool) {
        self.buffered_records.set(records as i64);
        if paused {
            self.input_pauses.inc();
        }
    }

    pub fn restored(&self, accounts: usize, seconds: f64) {
        self.restored_accounts.inc_by(accounts as u64);
        self.restore_seconds.observe(seconds);
    }

    /// A changelog record that does not decode, skipped by `reader` (restore or standby). The key
    /// is input: escaped and cut to 68 bytes (a partition and 64 bytes of account id).
    pub fn changelog_corrupt(&self, reader: &'static str, partition: u32, offset: i64, key: &[u8], reason: &dyn std::fmt::Display) {
        self.changelog_corrupt.inc();
        let key = key[..key.len().min(68)].escape_ascii();
        tracing::warn!(reader, partition, offset, %key, %reason, "corrupt changelog record skipped");
    }

    pub fn http(&self, route: &str, status: u16, seconds: f64) {
        self.http_requests.with_label_values(&[route, &status.to_string()]).inc();
        self.http_seconds.with_label_values(&[route]).observe(seconds);
    }

    pub fn http_connections(&self, open: usize) {
        self.http_connections.set(open as i64);
    }

    /// A connection closed (or refused) by the server's own bounds. Logged at debug only: a
    /// flood of slow clients must not become a flood of log lines; the counter is the signal.
    pub fn http_connection_closed(&self, reason: Closed, peer: std::net::SocketAddr) {
        self.http_connections_closed.with_label_values(&[reason.name()]).inc();
        tracing::debug!(%peer, reason = reason.name(), "HTTP connection closed by the server");
    }

    /// A request answered 503 without being handled (`busy`: the API's queries at their bound).
    /// Debug only, like a closed connection: a flood must not become a flood of log lines.
    pub fn http_rejected(&self, reason: &'static str) {
        self.http_rejected.with_label_values(&[reason]).inc();
        tracing::debug!(reason, "HTTP request refused: 503 Service Unavailable");
    }

}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn refusals_are_logged_in_a_burst_then_one_a_second_with_the_count_skipped() {
        let t0 = Instant::now();
        let mut b = LogBudget::new(t0);
        for _ in 0..10 {
            assert_eq!(b.take(t0), Some(0));
        }
        assert_eq!(b.take(t0), None);
        assert_eq!(b.take(t0 + Duration::from_millis(500)), None);
        assert_eq!(b.take(t0 + Duration::from_millis(1100)), Some(2), "the line says how many were not logged");
        assert_eq!(b.take(t0 + Duration::from_millis(1200)), None);
        assert_eq!(b.take(t0 + Duration::from_secs(60)), Some(1));
    }
}
