//! The outbox: alerts, score updates and dead letters are written to RocksDB in the same batch as
//! the state and offsets that produced them, then produced with an idempotent producer, and
//! removed only once Kafka acknowledged them. After a crash, whatever is left is sent again.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use crate::config::TopicsConfig;
use crate::metrics::Metrics;
use crate::bytes::{Reader, Writer};
use crate::store::codec::CodecError;

/// Which output topic an entry goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    Alert = 0,
    Score = 1,
    DeadLetter = 2,
}

/// One message waiting to be produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub kind: OutputKind,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl OutputKind {
    /// The `output` label of `kizashi_produced_total`.
    pub fn label(self) -> &'static str {
        match self {
            OutputKind::Alert => "alert",
            OutputKind::Score => "score",
            OutputKind::DeadLetter => "dead_letter",
        }
    }
}

impl OutboxEntry {
    /// The input partition this entry came from: an alert's or score's account (keys are placed
    /// as Kafka's default partitioner does), a dead letter's source partition header.
    pub fn partition(&self, partitions: u32) -> Option<u32> {
        match self.kind {
            OutputKind::Alert | OutputKind::Score => {
                self.key.as_deref().map(|k| crate::partition::partition_for(k, partitions))
            }
            OutputKind::DeadLetter => self
                .headers
                .iter()
                .find(|(k, _)| k == "kizashi.source.partition")
                .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok()),
        }
    }

    /// Cuts a dead letter to at most `max_bytes` as a record (key, payload, headers and their
    /// framing): a record of the input can be larger than the dead-letter topic takes (a
    /// producer elsewhere may allow more than librdkafka's 1,000,000 bytes, a broker 1,048,588),
    /// and one the producer refuses would be retried for ever. The key is cut to
    /// `MAX_DEAD_LETTER_KEY` bytes, then the payload to what is left; each cut is named by a
    /// header with the size before (`TRUNCATED_KEY`, `TRUNCATED_PAYLOAD`). Other entries are
    /// left alone (kizashi makes them, small).
    pub fn fit(&mut self, max_bytes: usize) {
        if self.kind != OutputKind::DeadLetter {
            return;
        }
        if self.record_bytes() + RECORD_OVERHEAD <= max_bytes {
            return;
        }
        if let Some(k) = self.key.as_mut().filter(|k| k.len() > MAX_DEAD_LETTER_KEY) {
            let before = k.len();
            k.truncate(MAX_DEAD_LETTER_KEY);
            self.mark(TRUNCATED_KEY, before);
        }
        let before = self.payload.len();
        // Room for the header this adds (a name and up to 20 digits).
        let rest = self.record_bytes() - self.payload.len() + RECORD_OVERHEAD + TRUNCATED_PAYLOAD.len() + 20;
        let keep = max_bytes.saturating_sub(rest).min(before);
        if keep < before {
            self.payload.truncate(keep);
            self.mark(TRUNCATED_PAYLOAD, before);
        }
    }

    /// Bytes of the key, the payload and the headers' names and values.
    fn record_bytes(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len) + self.payload.len() + self.headers.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
    }

    /// Sets header `name` to `before`, unless an earlier cut set it (its size is the original).
    fn mark(&mut self, name: &str, before: usize) {
        if !self.headers.iter().any(|(k, _)| k == name) {
            self.headers.push((name.to_string(), before.to_string().into_bytes()));
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(self.kind as u8);
        match &self.key {
            None => w.u8(0),
            Some(k) => {
                w.u8(1);
                w.var(k.len() as u64);
                w.buf.extend_from_slice(k);
            }
        }
        w.var(self.payload.len() as u64);
        w.buf.extend_from_slice(&self.payload);
        w.var(self.headers.len() as u64);
        for (k, v) in &self.headers {
            w.str(k);
            w.var(v.len() as u64);
            w.buf.extend_from_slice(v);
        }
        w.buf
    }

    pub fn decode(buf: &[u8]) -> Result<OutboxEntry, CodecError> {
        let mut r = Reader::new(buf);
        let kind = match r.u8()? {
            0 => OutputKind::Alert,
            1 => OutputKind::Score,
            2 => OutputKind::DeadLetter,
            _ => return Err(CodecError::Invalid("outbox kind")),
        };
        let key = match r.u8()? {
            0 => None,
            _ => Some(r.bytes()?.to_vec()),
        };
        let payload = r.bytes()?.to_vec();
        // A header's name and value lengths: a byte each at least.
        let n = r.count(2)?;
        let mut headers = Vec::with_capacity(n.min(16));
        for _ in 0..n {
            let k = r.str()?.to_string();
            headers.push((k, r.bytes()?.to_vec()));
        }
        if !r.done() {
            return Err(CodecError::Invalid("trailing bytes"));
        }
        Ok(OutboxEntry { kind, key, payload, headers })
    }
}

/// Delivery reports, collected for the processing loop.
#[derive(Default)]
pub struct Deliveries {
    pub acked: Vec<u64>,
    pub failed: Vec<(u64, rdkafka::error::KafkaError)>,
}

/// librdkafka's `message.max.bytes` when not set.
pub const LIBRDKAFKA_MAX_MESSAGE: usize = 1_000_000;

/// Room a record takes besides its key, payload and headers' bytes (lengths, attributes,
/// timestamps, a batch's header), with a margin.
const RECORD_OVERHEAD: usize = 1 << 10;

/// The header a dead letter whose payload was cut carries: the payload's size before.
pub const TRUNCATED_PAYLOAD: &str = "kizashi.payload.truncated";
/// The header a dead letter whose key was cut carries: the key's size before.
pub const TRUNCATED_KEY: &str = "kizashi.key.truncated";

/// A dead letter refused by its topic is halved, but never below this many bytes of key and
/// payload (see `Outbox::take_acked`).
const MIN_CUT: usize = 64 << 10;

/// Longest key a dead letter keeps.
pub const MAX_DEAD_LETTER_KEY: usize = 4 << 10;

/// Whether a produce error says the record is over a size limit (the producer's or the topic's).
pub fn is_too_large(e: &rdkafka::error::KafkaError) -> bool {
    e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::MessageSizeTooLarge)
}

/// A producer context that collects delivery reports (the opaque is a sequence number) and
/// routes the client's logs; `client` names it in the logs. Used by the outbox and the changelog.
pub struct DeliveryContext {
    pub client: &'static str,
    pub deliveries: Arc<Mutex<Deliveries>>,
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        super::log_librdkafka(self.client, level, fac, log_message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        super::log_client_error(self.client, &error, reason);
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: Self::DeliveryOpaque) {
        let mut d = self.deliveries.lock().expect("deliveries lock");
        match result {
            Ok(_) => d.acked.push(*seq),
            Err((e, _)) => d.failed.push((*seq, e.clone())),
        }
    }
}

/// Sends a record; a full local queue is back-pressure, not an error: wait for deliveries and
/// retry. Any other error is reported as a failed delivery of `seq`.
pub fn send_record(producer: &ThreadedProducer<DeliveryContext>, mut record: BaseRecord<'_, [u8], [u8], Box<u64>>, seq: u64) {
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err((e, _)) => {
                producer.context().deliveries.lock().expect("deliveries lock").failed.push((seq, e));
                return;
            }
        }
    }
}

/// Entries in flight (produced, not yet acknowledged), by sequence number.
pub struct Outbox {
    pub producer: ThreadedProducer<DeliveryContext>,
    pub deliveries: Arc<Mutex<Deliveries>>,
    /// Sent, not yet acknowledged: the entry and, for an alert, the event time that raised it.
    pub in_flight: BTreeMap<u64, (OutboxEntry, Option<i64>)>,
    topics: TopicsConfig,
    /// The producer's config, to make a new one after a fatal error.
    config: rdkafka::ClientConfig,
}

impl Outbox {
    /// An outbox producing with `config` (an idempotent producer's).
    pub fn new(config: rdkafka::ClientConfig, topics: TopicsConfig) -> rdkafka::error::KafkaResult<Self> {
        let deliveries = Arc::new(Mutex::new(Deliveries::default()));
        let producer = config.create_with_context(DeliveryContext { client: "producer", deliveries: deliveries.clone() })?;
        Ok(Self { producer, deliveries, in_flight: BTreeMap::new(), topics, config })
    }

    /// After a fatal error (an idempotent producer that lost track of its sequence numbers:
    /// librdkafka's `OutOfOrderSequenceNumber` on the oldest request in flight, for one) a
    /// producer fails every record for good. A new producer (a new producer id) takes over and
    /// every entry not acknowledged is sent again, in order: those the broker may have written
    /// already can be published twice (at least once, as after a crash; alerts carry their id).
    /// Before, the failed records were handed back to the dead producer at once, for ever: a loop
    /// that logged a warning per record per round, published nothing, and held a stop past
    /// `pipeline.shutdown_grace`. Returns whether it renewed the producer.
    fn renew_if_fatal(&mut self) -> bool {
        let Some((code, reason)) = self.producer.client().fatal_error() else { return false };
        let deliveries = Arc::new(Mutex::new(Deliveries::default()));
        let producer = match self.config.create_with_context(DeliveryContext { client: "producer", deliveries: deliveries.clone() }) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %code, reason, renew_error = %e, "the producer hit a fatal error and a new one could not be made; trying again");
                std::thread::sleep(std::time::Duration::from_millis(200));
                return false;
            }
        };
        tracing::error!(
            error = %code,
            reason,
            entries = self.in_flight.len(),
            "the producer hit a fatal error: a new producer takes over and sends every unacknowledged output again"
        );
        // The old producer's reports (its purged queue) go to its own list, dropped with it.
        let _old = std::mem::replace(&mut self.producer, producer);
        self.deliveries = deliveries;
        for (seq, (entry, t)) in std::mem::take(&mut self.in_flight) {
            self.send(seq, entry, t);
        }
        true
    }

    fn topic(&self, kind: OutputKind) -> &str {
        match kind {
            OutputKind::Alert => &self.topics.alerts,
            OutputKind::Score => &self.topics.scores,
            OutputKind::DeadLetter => &self.topics.dead_letter,
        }
    }

    /// Hands an entry to the producer (it is already persisted under `seq`).
    pub fn send(&mut self, seq: u64, entry: OutboxEntry, event_time_ms: Option<i64>) {
        let mut headers = OwnedHeaders::new_with_capacity(entry.headers.len());
        for (k, v) in &entry.headers {
            headers = headers.insert(Header { key: k, value: Some(v.as_slice()) });
        }
        let mut record: BaseRecord<'_, [u8], [u8], Box<u64>> =
            BaseRecord::with_opaque_to(self.topic(entry.kind), Box::new(seq)).payload(entry.payload.as_slice()).headers(headers);
        if let Some(k) = &entry.key {
            record = record.key(k.as_slice());
        }
        send_record(&self.producer, record, seq);
        self.in_flight.insert(seq, (entry, event_time_ms));
    }

    /// Takes the delivery reports: acknowledged sequence numbers (to delete from the store), and
    /// re-sends failed ones.
    /// Sequence numbers acknowledged since the last call (each counted in `metrics`); failed
    /// deliveries are counted and sent again.
    pub fn take_acked(&mut self, metrics: &Metrics) -> Vec<u64> {
        let (acked, failed) = {
            let mut d = self.deliveries.lock().expect("deliveries lock");
            (std::mem::take(&mut d.acked), std::mem::take(&mut d.failed))
        };
        let now = crate::event::timestamp::now_ms();
        for seq in &acked {
            if let Some((e, t)) = self.in_flight.remove(seq) {
                metrics.produced(e.kind.label(), t, now);
            }
        }
        for (seq, error) in &failed {
            metrics.producer_error(*seq, &error.to_string());
        }
        if !failed.is_empty() && self.renew_if_fatal() {
            return acked;
        }
        for (seq, error) in failed {
            if let Some((mut entry, t)) = self.in_flight.remove(&seq) {
                if is_too_large(&error) {
                    // The topic takes less than the producer (its `max.message.bytes`): halve
                    // the record, again at each refusal, until it fits. The broker refuses a
                    // batch whole, so records sent with the one too large are refused too:
                    // none is cut below `MIN_CUT`. (The stored entry stays whole; after a
                    // restart it is cut again.)
                    let size = entry.key.as_ref().map_or(0, Vec::len) + entry.payload.len();
                    let headers = entry.record_bytes() - size;
                    entry.fit((size / 2).max(MIN_CUT) + headers + RECORD_OVERHEAD);
                }
                self.send(seq, entry, t);
            }
        }
        acked
    }

    pub fn flush(&self, timeout: std::time::Duration) {
        let _ = self.producer.flush(timeout);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let e = OutboxEntry {
            kind: OutputKind::DeadLetter,
            key: Some(b"acme".to_vec()),
            payload: b"not json".to_vec(),
            headers: vec![("kizashi.reason".into(), b"not_json".to_vec())],
        };
        assert_eq!(OutboxEntry::decode(&e.encode()).unwrap(), e);
        let e = OutboxEntry { kind: OutputKind::Alert, key: None, payload: vec![], headers: vec![] };
        assert_eq!(OutboxEntry::decode(&e.encode()).unwrap(), e);
    }

    #[test]
    fn a_dead_letter_is_cut_to_fit_and_says_so() {
        let dead = |key: usize, payload: usize| OutboxEntry {
            kind: OutputKind::DeadLetter,
            key: Some(vec![b'k'; key]),
            payload: vec![b'p'; payload],
            headers: vec![("kizashi.reason".into(), b"not_json".to_vec())],
        };
        let record = |e: &OutboxEntry| e.record_bytes() + RECORD_OVERHEAD;
        let header = |e: &OutboxEntry, name: &str| e.headers.iter().find(|(k, _)| k == name).map(|(_, v)| String::from_utf8(v.clone()).unwrap());
        // Small enough: untouched.
        let mut e = dead(10, 1_000);
        e.fit(LIBRDKAFKA_MAX_MESSAGE);
        assert_eq!(e, dead(10, 1_000));
        // A large payload is cut to what the record has room for, exactly.
        let mut e = dead(10, 1_500_000);
        e.fit(LIBRDKAFKA_MAX_MESSAGE);
        assert!(record(&e) <= LIBRDKAFKA_MAX_MESSAGE && record(&e) > LIBRDKAFKA_MAX_MESSAGE - 64, "{}", record(&e));
        assert_eq!(header(&e, TRUNCATED_PAYLOAD).as_deref(), Some("1500000"));
        assert_eq!(header(&e, TRUNCATED_KEY), None);
        // Cut again (a topic that takes less): the header keeps the original size, once.
        e.fit(100_000);
        assert!(record(&e) <= 100_000);
        assert_eq!(header(&e, TRUNCATED_PAYLOAD).as_deref(), Some("1500000"));
        assert_eq!(e.headers.iter().filter(|(k, _)| k == TRUNCATED_PAYLOAD).count(), 1);
        // A long key is cut first; the payload only if it still does not fit.
        let mut e = dead(500_000, 100);
        e.fit(100_000);
        assert_eq!(e.key.as_ref().map(Vec::len), Some(MAX_DEAD_LETTER_KEY));
        assert_eq!(e.payload.len(), 100);
        assert_eq!(header(&e, TRUNCATED_KEY).as_deref(), Some("500000"));
        assert_eq!(header(&e, TRUNCATED_PAYLOAD), None);
        // Alerts and scores are kizashi's own: never cut.
        let mut e = OutboxEntry { kind: OutputKind::Alert, ..dead(10, 2_000_000) };
        e.fit(1_000);
        assert_eq!(e.payload.len(), 2_000_000);
    }

    #[test]
    fn corrupt_entries_are_errors() {
        let e = OutboxEntry {
            kind: OutputKind::Score,
            key: Some(b"acme".to_vec()),
            payload: b"{}".to_vec(),
            headers: vec![("a".into(), b"1".to_vec()), ("b".into(), vec![])],
        };
        let bytes = e.encode();
        for n in 0..bytes.len() {
            assert!(OutboxEntry::decode(&bytes[..n]).is_err(), "truncated to {n}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(OutboxEntry::decode(&long), Err(CodecError::Invalid("trailing bytes")));
        assert_eq!(OutboxEntry::decode(&[3, 0]), Err(CodecError::Invalid("outbox kind")));
        // A payload of 2^60 bytes, and 2^60 headers, in a few bytes.
        let mut w = Writer::default();
        w.u8(0);
        w.u8(0);
        w.var(1 << 60);
        assert_eq!(OutboxEntry::decode(&w.buf), Err(CodecError::Truncated));
        let mut w = Writer::default();
        w.u8(0);
        w.u8(0);
        w.var(0);
        w.var(1 << 60);
        w.str("k");
        assert_eq!(OutboxEntry::decode(&w.buf), Err(CodecError::Truncated));
    }
}
