//! The changelog topic: a compacted copy of every account state, so a partition's state can be
//! rebuilt when its local RocksDB copy is lost (or, with scale-out, moves to another instance).
//!
//! Records: key = input partition (4 bytes, big-endian) + account id, value = the versioned state
//! encoding; and per partition a checkpoint, key = partition + `0xFF` (no account id can end so:
//! ids are UTF-8), value = the input offsets and stream time the partition's records cover. Each
//! goes to the changelog partition numbered like its input partition.
//!
//! Why it stays consistent with the outbox and the offsets without Kafka transactions:
//!
//! 1. RocksDB stays the source of truth. A batch writes states, offsets, outbox entries and a
//!    "changelog pending" mark per account in one atomic write.
//! 2. **Outbox first.** A batch's states (and then its checkpoint) are produced to the changelog
//!    only once every outbox entry of that batch and of the batches before it is acknowledged. So
//!    whatever a restore finds in the changelog has had its alerts delivered: restoring never
//!    skips an alert.
//! 3. **Ordered within a partition.** The producer is idempotent and a batch's checkpoint follows
//!    its states in the same partition, so a checkpoint in the log implies every state before it
//!    is there too. A crash can leave states after the last checkpoint (a tail).
//! 4. **Idempotent replay.** Every account state carries the offset after the last record applied
//!    to it, per input topic. A restore takes all states (tail included) and resumes input at the
//!    last checkpoint; records an account already reflects are skipped, so nothing is applied
//!    twice, and the rest is applied in the same order as before, so the same alerts come out
//!    (repeats carry the same `alert_id`).
//! 5. **Coalescing.** Batches ready to go (their outbox acknowledged) are sent together at most
//!    once per `pipeline.changelog_interval`, as one batch holding each account's newest state and
//!    each partition's newest checkpoint: exactly what compaction would keep of the batches sent
//!    one by one, so 2–4 hold as they are. A hot account written by every small batch of a live
//!    stream then costs one changelog record per interval, not one per batch. Revocation and
//!    shutdown send what is queued at once.
//! 6. **Pending marks.** An account's mark is deleted only once its newest state is acknowledged
//!    on the changelog (not when an older one is while a newer one still waits in the queue). At
//!    start, kizashi first gets the outbox it left acknowledged, then produces the current state of every marked account and a checkpoint per partition, so a crash between
//!    a local write and its changelog record never leaves the changelog missing a state.
//!
//! On assignment, a partition whose local state is missing, or behind the changelog's checkpoint
//! on any input topic, is restored from the changelog; local state at or ahead of the checkpoint
//! is kept (it holds everything the changelog has, and its pending marks bring the changelog up).
//!
//! **Corrupt records.** Every record read back (by a restore or a standby) is decoded before it is
//! used; one that does not decode is counted (`kizashi_changelog_corrupt_records_total`), logged
//! and skipped, never a reason to stop. The account (or checkpoint) then keeps the newest earlier
//! version that does decode, if compaction left one: for a checkpoint that is safe (states after
//! it are a tail, point 4); for an account it means the events between that version's applied
//! offsets and the checkpoint are missing from its windows (input resumes at the checkpoint),
//! and with no earlier version the account starts empty there.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use compact_str::CompactString;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rustc_hash::FxHashMap;

use super::outbox::{send_record, Deliveries, DeliveryContext};
use crate::core::AccountState;
use crate::event::timestamp::{MAX_TS_MS, MIN_TS_MS};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::bytes::{Reader, Writer};
use crate::store::codec::{self, CodecError};

/// Input offsets and stream time a partition's changelog covers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checkpoint {
    pub offsets: Vec<(String, i64)>,
    pub stream_time: Option<i64>,
}

impl Checkpoint {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(1);
        w.var(self.offsets.len() as u64);
        for (t, o) in &self.offsets {
            w.str(t);
            w.int(*o);
        }
        w.opt_int(self.stream_time);
        w.buf
    }

    /// Decodes a checkpoint record's value: offsets are never negative (librdkafka reads those
    /// as "end" or "beginning"), the stream time (an event time) lies within accepted event times.
    pub fn decode(buf: &[u8]) -> Result<Checkpoint, CodecError> {
        let mut r = Reader::new(buf);
        if r.u8()? != 1 {
            return Err(CodecError::Invalid("checkpoint version"));
        }
        // A topic name's length and an offset: a byte each at least.
        let n = r.count(2)?;
        let mut offsets = Vec::with_capacity(n.min(16));
        for _ in 0..n {
            let t = r.str()?.to_string();
            let o = r.int()?;
            if o < 0 {
                return Err(CodecError::Invalid("checkpoint offset"));
            }
            offsets.push((t, o));
        }
        let stream_time = r.opt_int()?;
        if stream_time.is_some_and(|t| !(MIN_TS_MS..=MAX_TS_MS).contains(&t)) {
            return Err(CodecError::Invalid("checkpoint stream time"));
        }
        if !r.done() {
            return Err(CodecError::Invalid("trailing bytes"));
        }
        Ok(Checkpoint { offsets, stream_time })
    }

    /// True if this checkpoint covers records that `local` does not (local behind on a topic).
    pub fn ahead_of(&self, local: &[(String, i64)]) -> bool {
        self.offsets.iter().any(|(t, o)| local.iter().find(|(lt, _)| lt == t).map_or(*o > 0, |(_, lo)| o > lo))
    }
}

fn state_key(partition: u32, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + id.len());
    k.extend_from_slice(&partition.to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

fn checkpoint_key(partition: u32) -> Vec<u8> {
    let mut k = partition.to_be_bytes().to_vec();
    k.push(0xFF);
    k
}

/// One changelog record of a partition, decoded.
#[derive(Debug)]
pub enum Record<'a> {
    State { account: &'a str, state: Box<AccountState> },
    Checkpoint(Checkpoint),
}

/// Decodes (so validates) a record read from changelog partition `partition`.
pub fn decode_record<'a>(partition: u32, key: &'a [u8], value: &[u8]) -> Result<Record<'a>, CodecError> {
    let Some(rest) = key.strip_prefix(&partition.to_be_bytes()) else {
        return Err(CodecError::Invalid("changelog key (not of this partition)"));
    };
    if rest == [0xFF] {
        return Ok(Record::Checkpoint(Checkpoint::decode(value)?));
    }
    let account = std::str::from_utf8(rest).ok().filter(|a| !a.is_empty()).ok_or(CodecError::Invalid("account id"))?;
    Ok(Record::State { account, state: Box::new(codec::decode(value)?) })
}

/// One processing batch's share of the changelog, waiting for its outbox entries.
struct Pending {
    /// Its number among the batches pushed (they are sent in this order).
    number: u64,
    /// Every outbox entry with a sequence number below this belongs to this batch or an earlier one.
    outbox_hi: u64,
    states: Vec<(u32, CompactString, Vec<u8>)>,
    checkpoints: Vec<(u32, Checkpoint)>,
}

/// A sent batch, until every one of its records is acknowledged.
struct Sent {
    unacked: usize,
    accounts: Vec<(u32, CompactString)>,
    /// The number of the last pushed batch it carries.
    last: u64,
}

/// Produces account states and checkpoints to the changelog in the order the argument above
/// needs, and reports which pending marks can go.
pub struct Changelog {
    topic: String,
    producer: ThreadedProducer<DeliveryContext>,
    deliveries: Arc<Mutex<Deliveries>>,
    queue: VecDeque<Pending>,
    next_batch: u64,
    /// Numbers the pushed batches.
    next_pushed: u64,
    /// Per sent batch, what is not acknowledged yet.
    in_flight: FxHashMap<u64, Sent>,
    /// The number of the newest pushed batch that carries each account not yet acknowledged
    /// (sent or still queued: acknowledging an older state leaves the account's mark alone).
    newest: FxHashMap<(u32, CompactString), u64>,
    /// Accounts whose newest changelog state is acknowledged (their marks can be deleted).
    done: Vec<(u32, CompactString)>,
    pub records_acked: u64,
    /// Bytes (keys and values) of the records sent so far.
    pub bytes_sent: u64,
    /// Ready batches are sent together at most this often (see the header, point 5).
    interval: Duration,
    last_send: Option<Instant>,
    /// Bytes of the states queued (not yet handed to the producer), and how many may wait for
    /// the interval: beyond that the ready batches go at once.
    queued_bytes: usize,
    max_queued: usize,
    /// The largest record a state can make (for the error when the topic refuses one).
    record_bytes: u64,
}

impl Changelog {
    /// `record_bytes`: the largest record a state can make (`Settings::changelog_record_bytes`).
    pub fn new(config: &ClientConfig, topic: &str, interval: Duration, max_queued: usize, record_bytes: u64) -> Result<Changelog> {
        let deliveries = Arc::new(Mutex::new(Deliveries::default()));
        let producer = config
            .clone()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "20")
            .set("compression.type", "lz4")
            .create_with_context(DeliveryContext { client: "changelog", deliveries: deliveries.clone() })
            .context("creating the changelog producer")?;
        Ok(Changelog {
            topic: topic.to_string(),
            producer,
            deliveries,
            queue: VecDeque::new(),
            next_batch: 0,
            next_pushed: 0,
            in_flight: FxHashMap::default(),
            newest: FxHashMap::default(),
            done: Vec::new(),
            records_acked: 0,
            bytes_sent: 0,
            interval,
            last_send: None,
            queued_bytes: 0,
            max_queued,
            record_bytes,
        })
    }

    /// Queues a batch's states and checkpoints behind its outbox entries (`outbox_hi`: the
    /// outbox's next sequence number once the batch's entries were added).
    pub fn push(&mut self, outbox_hi: u64, states: Vec<(u32, CompactString, Vec<u8>)>, checkpoints: Vec<(u32, Checkpoint)>) {
        if states.is_empty() && checkpoints.is_empty() {
            return;
        }
        let number = self.next_pushed;
        self.next_pushed += 1;
        for (partition, id, bytes) in &states {
            self.newest.insert((*partition, id.clone()), number);
            self.queued_bytes += bytes.len();
        }
        self.queue.push_back(Pending { number, outbox_hi, states, checkpoints });
    }

    /// Sends every queued batch whose outbox entries are all acknowledged (`outbox_unacked`:
    /// the lowest outbox sequence number not yet acknowledged), coalesced into one, unless the
    /// last send was less than the interval ago.
    pub fn pump(&mut self, outbox_unacked: u64) {
        if self.last_send.is_some_and(|t| t.elapsed() < self.interval) && self.queued_bytes <= self.max_queued {
            return;
        }
        self.send_ready(outbox_unacked);
    }

    /// [`Changelog::pump`] without the interval.
    fn send_ready(&mut self, outbox_unacked: u64) {
        // Each account once, at its first place, with its newest state.
        let mut states: Vec<(u32, CompactString, Vec<u8>)> = Vec::new();
        let mut at: FxHashMap<(u32, CompactString), usize> = FxHashMap::default();
        let mut checkpoints: std::collections::BTreeMap<u32, Checkpoint> = std::collections::BTreeMap::new();
        let mut last = None;
        while self.queue.front().is_some_and(|p| p.outbox_hi <= outbox_unacked) {
            let p = self.queue.pop_front().expect("non-empty");
            last = Some(p.number);
            for (partition, id, bytes) in p.states {
                self.queued_bytes -= bytes.len();
                let slot = *at.entry((partition, id.clone())).or_insert_with(|| {
                    states.push((partition, id, Vec::new()));
                    states.len() - 1
                });
                states[slot].2 = bytes;
            }
            checkpoints.extend(p.checkpoints);
        }
        let Some(last) = last else { return };
        self.last_send = Some(Instant::now());
        let batch = self.next_batch;
        self.next_batch += 1;
        let mut accounts = Vec::with_capacity(states.len());
        let mut n = 0;
        // States first, then the checkpoints that cover them (point 3).
        for (partition, id, bytes) in states {
            self.send(batch, partition as i32, &state_key(partition, &id), &bytes);
            accounts.push((partition, id));
            n += 1;
        }
        for (partition, cp) in checkpoints {
            self.send(batch, partition as i32, &checkpoint_key(partition), &cp.encode());
            n += 1;
        }
        self.in_flight.insert(batch, Sent { unacked: n, accounts, last });
    }

    fn send(&mut self, batch: u64, partition: i32, key: &[u8], value: &[u8]) {
        self.bytes_sent += (key.len() + value.len()) as u64;
        let record = BaseRecord::with_opaque_to(&self.topic, Box::new(batch)).partition(partition).key(key).payload(value);
        send_record(&self.producer, record, batch);
    }

    /// Collects acknowledgements. A failed changelog write is an error: the pending marks of its
    /// accounts stay, and a restart produces them again.
    pub fn collect(&mut self) -> Result<()> {
        let (acked, failed) = {
            let mut d = self.deliveries.lock().expect("deliveries lock");
            (std::mem::take(&mut d.acked), std::mem::take(&mut d.failed))
        };
        if let Some((_, e)) = failed.first() {
            if super::outbox::is_too_large(e) {
                bail!(
                    "writing the changelog topic `{}` failed: {e}: the topic takes smaller records than an account's state can be; set its max.message.bytes to at least {} bytes (the largest state these settings allow: README, \"Limits and hostile input\"), or lower state.max_account_bytes",
                    self.topic,
                    self.record_bytes
                );
            }
            bail!("writing the changelog topic `{}` failed: {e}", self.topic);
        }
        self.records_acked += acked.len() as u64;
        for batch in acked {
            let Some(entry) = self.in_flight.get_mut(&batch) else { continue };
            entry.unacked -= 1;
            if entry.unacked == 0 {
                let Sent { accounts, last, .. } = self.in_flight.remove(&batch).expect("present");
                for key in accounts {
                    // Done only if no later batch carries the account, sent or queued: its mark
                    // must outlive a crash until that newer state is acknowledged too.
                    if self.newest.get(&key).is_some_and(|n| *n <= last) {
                        self.newest.remove(&key);
                        self.done.push(key);
                    }
                }
            }
        }
        Ok(())
    }

    /// Accounts whose pending marks can be deleted. (The map of accounts in flight is given
    /// back its room once mostly empty: a day's timers put every account in it.)
    pub fn take_done(&mut self) -> Vec<(u32, CompactString)> {
        if self.newest.capacity() > 4 * self.newest.len().max(4096) {
            self.newest.shrink_to_fit();
        }
        std::mem::take(&mut self.done)
    }

    /// Batches queued or in flight.
    pub fn depth(&self) -> usize {
        self.queue.len() + self.in_flight.len()
    }

    pub fn flush(&self, timeout: Duration) {
        let _ = self.producer.flush(timeout);
    }

    /// Sends everything queued regardless of the outbox, then waits up to `timeout` for every
    /// acknowledgement. For start-up catch-up, once the outbox is empty.
    pub fn drain(&mut self, timeout: Duration) -> Result<()> {
        self.send_ready(u64::MAX);
        let deadline = Instant::now() + timeout;
        loop {
            self.collect()?;
            if self.in_flight.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("the changelog topic `{}` did not acknowledge {} batch(es) within {timeout:?}", self.topic, self.in_flight.len());
            }
            self.flush(Duration::from_millis(100));
        }
    }
}

/// What a reading of one changelog partition found. The account states themselves are staged
/// in the store as they are read (`Store::stage`, under the reading's generation), so a restore
/// holds a slice of them in memory at a time, not the partition.
#[derive(Debug, Default)]
pub struct Restored {
    pub checkpoint: Option<Checkpoint>,
    pub records: u64,
    pub bytes: u64,
}

/// Bytes of staged states written to the store at a time.
const STAGE_SLICE: usize = 4 << 20;

/// The current end (high watermark) of a changelog partition.
pub fn end_offset(config: &ClientConfig, topic: &str, partition: u32, timeout: Duration) -> Result<i64> {
    let consumer: BaseConsumer = config.clone().set("group.id", "kizashi-changelog-reader").create()?;
    Ok(consumer.fetch_watermarks(topic, partition as i32, timeout)?.1)
}

/// Reads changelog partition `partition` from its start to its current end (failing if no record
/// comes for `timeout`), staging each
/// account's newest state in `store` under `generation` (see `Restored`), and calling
/// `progress(read, total)` every few thousand records. A record that does not decode is counted
/// in `metrics`, logged and skipped (see the header): it stages nothing, so the account keeps
/// the newest earlier version that decodes.
#[allow(clippy::too_many_arguments)]
pub fn read_partition(
    config: &ClientConfig,
    topic: &str,
    partition: u32,
    store: &Store,
    generation: u64,
    timeout: Duration,
    metrics: &Metrics,
    mut progress: impl FnMut(i64, i64),
) -> Result<Restored> {
    let consumer: BaseConsumer = config
        .clone()
        .set("group.id", "kizashi-changelog-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.queue.backoff.ms", "10")
        .create()
        .context("creating the changelog reader")?;
    let (lo, hi) = consumer
        .fetch_watermarks(topic, partition as i32, timeout)
        .with_context(|| format!("reading the extent of changelog `{topic}` partition {partition}"))?;
    let mut out = Restored::default();
    if hi <= lo {
        return Ok(out);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition as i32, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let mut batch = store.batch();
    // A reading fails only when no record comes for `timeout`: a large partition takes as long
    // as it takes.
    let mut deadline = Instant::now() + timeout;
    let mut next = lo;
    while next < hi {
        if Instant::now() >= deadline {
            bail!("reading changelog `{topic}` partition {partition}: no record for {timeout:?} (at {next} of {hi})");
        }
        let Some(m) = consumer.poll(Duration::from_millis(100)) else { continue };
        deadline = Instant::now() + timeout;
        let m = m.with_context(|| format!("reading changelog `{topic}` partition {partition}"))?;
        next = m.offset() + 1;
        if (next - lo) % 5000 == 0 {
            progress(next - lo, hi - lo);
        }
        let (Some(k), Some(v)) = (m.key(), m.payload()) else { continue };
        out.records += 1;
        out.bytes += v.len() as u64;
        // Decoded as read, so a corrupt record leaves the newest earlier version that decodes.
        match decode_record(partition, k, v) {
            Ok(Record::Checkpoint(cp)) => out.checkpoint = Some(cp),
            Ok(Record::State { account, .. }) => {
                batch.stage(partition, generation, account, v);
                if batch.size_in_bytes() >= STAGE_SLICE {
                    store.write_unlogged(std::mem::replace(&mut batch, store.batch()))?;
                }
            }
            Err(e) => metrics.changelog_corrupt("restore", partition, m.offset(), k, &e),
        }
    }
    drop(tpl);
    store.write_unlogged(batch)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_and_compare() {
        let cp = Checkpoint { offsets: vec![("usage".into(), 10), ("support".into(), 3)], stream_time: Some(77) };
        assert_eq!(Checkpoint::decode(&cp.encode()).unwrap(), cp);
        assert!(cp.ahead_of(&[]), "no local state: the changelog is ahead");
        assert!(cp.ahead_of(&[("usage".into(), 9), ("support".into(), 3)]));
        assert!(!cp.ahead_of(&[("usage".into(), 10), ("support".into(), 3)]));
        assert!(!cp.ahead_of(&[("usage".into(), 12), ("support".into(), 5)]), "local ahead");
        assert_ne!(checkpoint_key(1), state_key(1, "x"));
    }

    /// Every record of changelog partition 0 in log order: (key after the partition, value).
    fn log(config: &ClientConfig, topic: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        let consumer: BaseConsumer = config.clone().set("group.id", "t").create().unwrap();
        let (_, hi) = consumer.fetch_watermarks(topic, 0, Duration::from_secs(10)).unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning).unwrap();
        consumer.assign(&tpl).unwrap();
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while (out.len() as i64) < hi && Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                out.push((m.key().unwrap()[4..].to_vec(), m.payload().unwrap().to_vec()));
            }
        }
        out
    }

    /// Waits until every sent batch is acknowledged.
    fn settle(cl: &mut Changelog) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cl.in_flight.is_empty() {
            assert!(Instant::now() < deadline, "the mock cluster did not acknowledge");
            cl.flush(Duration::from_millis(50));
            cl.collect().unwrap();
        }
    }

    /// A checkpoint at usage offset and stream time `o`.
    fn cp(o: i64) -> Checkpoint {
        Checkpoint { offsets: vec![("usage".into(), o)], stream_time: Some(o) }
    }

    /// A state told apart by its name `v` (a restore decodes what it reads).
    fn enc(v: &str) -> Vec<u8> {
        let s = AccountState { facts: crate::core::state::Facts { name: Some(v.into()), ..Default::default() }, ..Default::default() };
        crate::store::codec::encode_to_vec(&s)
    }

    /// Account `id`'s state `v` in partition 0.
    fn st(id: &str, v: &str) -> (u32, CompactString, Vec<u8>) {
        (0, CompactString::from(id), enc(v))
    }

    /// A changelog topic `cl` (one partition) on librdkafka's mock cluster, and its writer.
    fn mock_changelog(interval: Duration) -> (rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>, ClientConfig, Changelog) {
        let mock = rdkafka::mocking::MockCluster::new(1).unwrap();
        mock.create_topic("cl", 1, 1).unwrap();
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", mock.bootstrap_servers());
        let cl = Changelog::new(&config, "cl", interval, usize::MAX, 1 << 20).unwrap();
        (mock, config, cl)
    }

    /// A throwaway store to stage restored states in.
    fn staging() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false, crate::store::Budget { total: 64 << 20 }).unwrap();
        (dir, store)
    }

    /// What a reading staged for partition 0 under `generation`.
    fn staged(store: &Store, generation: u64) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        store
            .for_each_staged(0, generation, |id, v| {
                out.push((id.to_string(), v.to_vec()));
                Ok(())
            })
            .unwrap();
        out
    }

    /// The value of `kizashi_changelog_corrupt_records_total`.
    fn corrupt_count(m: &Metrics) -> f64 {
        let text = m.render();
        let line = text.lines().find(|l| l.starts_with("kizashi_changelog_corrupt_records_total ")).expect("exported");
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    #[test]
    fn checkpoints_out_of_bounds_are_errors() {
        let mut bad = Checkpoint { offsets: vec![("usage".into(), -1)], stream_time: None };
        assert_eq!(Checkpoint::decode(&bad.encode()), Err(CodecError::Invalid("checkpoint offset")));
        bad.offsets[0].1 = 0;
        bad.stream_time = Some(i64::MAX);
        assert_eq!(Checkpoint::decode(&bad.encode()), Err(CodecError::Invalid("checkpoint stream time")));
        let mut bytes = cp(5).encode();
        bytes.push(0);
        assert_eq!(Checkpoint::decode(&bytes), Err(CodecError::Invalid("trailing bytes")));
        bytes[0] = 2;
        assert_eq!(Checkpoint::decode(&bytes), Err(CodecError::Invalid("checkpoint version")));
        // A topic count of 2^40 in a few bytes.
        let mut w = Writer::default();
        w.u8(1);
        w.var(1 << 40);
        w.str("usage");
        assert_eq!(Checkpoint::decode(&w.buf), Err(CodecError::Truncated));
        let good = cp(5).encode();
        for n in 0..good.len() {
            assert!(Checkpoint::decode(&good[..n]).is_err(), "truncated to {n}");
        }
    }

    #[test]
    fn records_decode_only_for_their_own_partition_and_with_an_account_id() {
        let state = crate::store::codec::encode_to_vec(&AccountState::default());
        assert!(matches!(decode_record(3, &state_key(3, "a"), &state), Ok(Record::State { account: "a", .. })));
        assert!(matches!(decode_record(3, &checkpoint_key(3), &cp(1).encode()), Ok(Record::Checkpoint(c)) if c == cp(1)));
        assert_eq!(decode_record(4, &state_key(3, "a"), &state).unwrap_err(), CodecError::Invalid("changelog key (not of this partition)"));
        assert_eq!(decode_record(3, &[0, 0, 0], &state).unwrap_err(), CodecError::Invalid("changelog key (not of this partition)"));
        assert_eq!(decode_record(3, &[0, 0, 0, 3], &state).unwrap_err(), CodecError::Invalid("account id"));
        assert_eq!(decode_record(3, &[0, 0, 0, 3, 0xC3], &state).unwrap_err(), CodecError::Invalid("account id"));
        assert!(decode_record(3, &checkpoint_key(3), &state).is_err(), "a state is not a checkpoint");
        assert!(decode_record(3, &state_key(3, "a"), &cp(1).encode()).is_err(), "a checkpoint is not a state");
    }

    #[test]
    fn a_restore_skips_and_counts_corrupt_records_keeping_the_newest_version_that_decodes() {
        use rdkafka::producer::BaseProducer;
        let (_mock, config, _cl) = mock_changelog(Duration::ZERO);
        let producer: BaseProducer = config.create().unwrap();
        let state = |day: i32| {
            let s = AccountState { day, ..AccountState::default() };
            crate::store::codec::encode_to_vec(&s)
        };
        let mut corrupt = state(5);
        corrupt.truncate(corrupt.len() - 1);
        let records: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (state_key(0, "a"), state(1)),
            (checkpoint_key(0), cp(10).encode()),
            (state_key(0, "b"), state(2)),
            (state_key(0, "a"), corrupt.clone()),                   // a's newest: corrupt
            (checkpoint_key(0), vec![1, 0x80]),                     // the newest checkpoint: corrupt
            (state_key(0, "c"), b"not a state".to_vec()),           // c has nothing else
            ([0, 0, 0, 0, 0xFF, 0xFE].to_vec(), state(3)),          // not an account id
            (state_key(0, "b"), state(4)),                          // b's newest: fine
        ];
        for (k, v) in &records {
            producer.send(BaseRecord::<Vec<u8>, Vec<u8>>::to("cl").partition(0).key(k).payload(v)).unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();
        let metrics = Metrics::new();
        let (_dir, store) = staging();
        let restored = read_partition(&config, "cl", 0, &store, 7, Duration::from_secs(10), &metrics, |_, _| {}).unwrap();
        assert_eq!(restored.records, records.len() as u64);
        assert_eq!(corrupt_count(&metrics), 4.0);
        assert_eq!(restored.checkpoint, Some(cp(10)), "the newest checkpoint that decodes");
        assert_eq!(staged(&store, 7), [("a".to_string(), state(1)), ("b".into(), state(4))], "a falls back to its older version; c is absent");
        assert!(staged(&store, 6).is_empty(), "staged under the reading's generation only");
    }

    /// A reading fails only when no record comes for its timeout: one that takes longer than
    /// that in all goes on (a million accounts' changelog takes minutes); a broker that stops
    /// answering is an error.
    #[test]
    fn a_reading_fails_only_when_records_stop_coming() {
        use rdkafka::producer::BaseProducer;
        let (mock, config, _cl) = mock_changelog(Duration::ZERO);
        // One record per batch, one batch per fetch, a tenth of a second per request.
        let producer: BaseProducer = config.clone().set("batch.num.messages", "1").set("linger.ms", "0").create().unwrap();
        let n = 30;
        for i in 0..n {
            let key = state_key(0, &format!("a{i:02}"));
            producer.send(BaseRecord::<Vec<u8>, Vec<u8>>::to("cl").partition(0).key(&key).payload(&enc("x"))).unwrap();
            producer.flush(Duration::from_secs(10)).unwrap();
        }
        mock.broker_round_trip_time(1, Duration::from_millis(100)).unwrap();
        let mut slow = config.clone();
        slow.set("max.partition.fetch.bytes", "1");
        let (_dir, store) = staging();
        let started = Instant::now();
        let timeout = Duration::from_millis(1500);
        let read = read_partition(&slow, "cl", 0, &store, 1, timeout, &Metrics::new(), |_, _| {}).unwrap();
        let took = started.elapsed();
        assert_eq!(read.records, n as u64);
        assert_eq!(staged(&store, 1).len(), n);
        assert!(took > timeout, "the reading took {took:?}: longer than its timeout in all, or this shows nothing");
        mock.broker_round_trip_time(1, Duration::from_secs(3)).unwrap();
        assert!(read_partition(&slow, "cl", 0, &store, 2, timeout, &Metrics::new(), |_, _| {}).is_err());
    }

    #[test]
    fn a_mark_stays_while_a_newer_state_of_its_account_waits_in_the_queue() {
        let (_mock, _, mut cl) = mock_changelog(Duration::ZERO);
        cl.push(1, vec![st("a", "a1"), st("b", "b1")], vec![(0, cp(10))]);
        cl.pump(1);
        // A newer state of `a` is written, its outbox not acknowledged yet: it waits.
        cl.push(9, vec![st("a", "a2")], vec![(0, cp(20))]);
        cl.pump(1);
        settle(&mut cl);
        let done: Vec<String> = cl.take_done().into_iter().map(|(_, id)| id.to_string()).collect();
        assert_eq!(done, ["b"], "a's first state is acknowledged, but its newest is only queued");
        cl.pump(9);
        settle(&mut cl);
        let done: Vec<String> = cl.take_done().into_iter().map(|(_, id)| id.to_string()).collect();
        assert_eq!(done, ["a"]);
    }

    #[test]
    fn ready_batches_go_out_together_with_each_accounts_newest_state_once() {
        let (_mock, config, mut cl) = mock_changelog(Duration::from_secs(3600));
        cl.push(1, vec![st("a", "a1"), st("b", "b1")], vec![(0, cp(10))]);
        cl.push(2, vec![st("a", "a2")], vec![(0, cp(20))]);
        cl.push(5, vec![st("c", "c1"), st("a", "a3")], vec![(0, cp(30))]);
        // Outbox acknowledged below 3: the first two batches go, as one.
        cl.pump(3);
        // Within the interval nothing more goes, though the third batch is ready now.
        cl.pump(u64::MAX);
        assert_eq!(cl.queue.len(), 1);
        // A revoke or shutdown sends it at once.
        cl.drain(Duration::from_secs(10)).unwrap();
        let mut done: Vec<String> = cl.take_done().into_iter().map(|(_, id)| id.to_string()).collect();
        done.sort();
        assert_eq!(done, ["a", "b", "c"], "every account's newest state is acknowledged");
        let cp_key = vec![0xFF];
        let want: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b"a".to_vec(), enc("a2")),
            (b"b".to_vec(), enc("b1")),
            (cp_key.clone(), cp(20).encode()),
            (b"c".to_vec(), enc("c1")),
            (b"a".to_vec(), enc("a3")),
            (cp_key, cp(30).encode()),
        ];
        assert_eq!(log(&config, "cl"), want);
        let (_dir, store) = staging();
        let restored = read_partition(&config, "cl", 0, &store, 1, Duration::from_secs(10), &Metrics::new(), |_, _| {}).unwrap();
        assert_eq!(restored.checkpoint, Some(cp(30)));
        assert_eq!(staged(&store, 1), [("a".to_string(), enc("a3")), ("b".into(), enc("b1")), ("c".into(), enc("c1"))]);
    }

    /// Queued states past `max_queued` bytes go without waiting for the interval (a day's timers
    /// would otherwise queue every account's state for it).
    #[test]
    fn queued_states_past_their_bytes_go_before_the_interval() {
        let (_mock, _config, mut cl) = mock_changelog(Duration::from_secs(3600));
        cl.max_queued = enc("a1").len() * 2;
        cl.push(1, vec![st("a", "a1")], vec![(0, cp(10))]);
        cl.pump(u64::MAX);
        cl.push(2, vec![st("b", "b1")], vec![(0, cp(20))]);
        cl.pump(u64::MAX);
        assert_eq!(cl.queue.len(), 1, "within the interval and the bytes, the second batch waits");
        cl.push(3, vec![st("c", "c1"), st("d", "d1")], vec![(0, cp(30))]);
        cl.pump(u64::MAX);
        assert!(cl.queue.is_empty(), "past the bytes, the ready batches go");
        assert_eq!(cl.queued_bytes, 0);
    }
}
