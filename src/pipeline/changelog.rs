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
use crate::store::codec::{Reader, Writer};

/// Input offsets and stream time a partition's changelog covers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checkpoint {
    pub offsets: Vec<(String, i64)>,
    pub stream_time: Option<i64>,
}

impl Checkpoint {
    fn encode(&self) -> Vec<u8> {
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

    /// Decodes a checkpoint record's value.
    pub fn decode(buf: &[u8]) -> Result<Checkpoint> {
        let mut r = Reader::new(buf);
        let v = r.u8()?;
        if v != 1 {
            bail!("changelog checkpoint of unknown version {v}");
        }
        let n = r.var()? as usize;
        let mut offsets = Vec::with_capacity(n.min(16));
        for _ in 0..n {
            let t = r.str()?.to_string();
            offsets.push((t, r.int()?));
        }
        Ok(Checkpoint { offsets, stream_time: r.opt_int()? })
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
    /// Ready batches are sent together at most this often (see the header, point 5).
    interval: Duration,
    last_send: Option<Instant>,
}

impl Changelog {
    pub fn new(config: &ClientConfig, topic: &str, interval: Duration) -> Result<Changelog> {
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
            interval,
            last_send: None,
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
        for (partition, id, _) in &states {
            self.newest.insert((*partition, id.clone()), number);
        }
        self.queue.push_back(Pending { number, outbox_hi, states, checkpoints });
    }

    /// Sends every queued batch whose outbox entries are all acknowledged (`outbox_unacked`:
    /// the lowest outbox sequence number not yet acknowledged), coalesced into one, unless the
    /// last send was less than the interval ago.
    pub fn pump(&mut self, outbox_unacked: u64) {
        if self.last_send.is_some_and(|t| t.elapsed() < self.interval) {
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

    fn send(&self, batch: u64, partition: i32, key: &[u8], value: &[u8]) {
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

    /// Accounts whose pending marks can be deleted.
    pub fn take_done(&mut self) -> Vec<(u32, CompactString)> {
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

/// What the changelog holds for one partition.
#[derive(Debug, Default)]
pub struct Restored {
    /// Latest state per account.
    pub states: Vec<(String, Vec<u8>)>,
    pub checkpoint: Option<Checkpoint>,
    pub records: u64,
    pub bytes: u64,
}

/// The current end (high watermark) of a changelog partition.
pub fn end_offset(config: &ClientConfig, topic: &str, partition: u32, timeout: Duration) -> Result<i64> {
    let consumer: BaseConsumer = config.clone().set("group.id", "kizashi-changelog-reader").create()?;
    Ok(consumer.fetch_watermarks(topic, partition as i32, timeout)?.1)
}

/// Reads changelog partition `partition` from its start to its current end, calling
/// `progress(read, total)` every few thousand records.
pub fn read_partition(
    config: &ClientConfig,
    topic: &str,
    partition: u32,
    timeout: Duration,
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
    let mut latest: FxHashMap<Vec<u8>, Vec<u8>> = FxHashMap::default();
    let cp_key = checkpoint_key(partition);
    let deadline = Instant::now() + timeout;
    let mut next = lo;
    while next < hi {
        if Instant::now() >= deadline {
            bail!("reading changelog `{topic}` partition {partition} took longer than {timeout:?} ({next} of {hi})");
        }
        let Some(m) = consumer.poll(Duration::from_millis(100)) else { continue };
        let m = m.with_context(|| format!("reading changelog `{topic}` partition {partition}"))?;
        next = m.offset() + 1;
        if (next - lo) % 5000 == 0 {
            progress(next - lo, hi - lo);
        }
        let (Some(k), Some(v)) = (m.key(), m.payload()) else { continue };
        out.records += 1;
        out.bytes += v.len() as u64;
        latest.insert(k.to_vec(), v.to_vec());
    }
    drop(tpl);
    for (k, v) in latest {
        if k == cp_key {
            out.checkpoint = Some(Checkpoint::decode(&v)?);
        } else if k.len() > 4 && k[..4] == partition.to_be_bytes() {
            let id = String::from_utf8(k[4..].to_vec()).context("changelog key is not an account id")?;
            out.states.push((id, v));
        }
    }
    out.states.sort_unstable_by(|a, b| a.0.cmp(&b.0));
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

    /// Account `id`'s state `v` in partition 0.
    fn st(id: &str, v: &str) -> (u32, CompactString, Vec<u8>) {
        (0, CompactString::from(id), v.as_bytes().to_vec())
    }

    /// A changelog topic `cl` (one partition) on librdkafka's mock cluster, and its writer.
    fn mock_changelog(interval: Duration) -> (rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>, ClientConfig, Changelog) {
        let mock = rdkafka::mocking::MockCluster::new(1).unwrap();
        mock.create_topic("cl", 1, 1).unwrap();
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", mock.bootstrap_servers());
        let cl = Changelog::new(&config, "cl", interval).unwrap();
        (mock, config, cl)
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
            (b"a".to_vec(), b"a2".to_vec()),
            (b"b".to_vec(), b"b1".to_vec()),
            (cp_key.clone(), cp(20).encode()),
            (b"c".to_vec(), b"c1".to_vec()),
            (b"a".to_vec(), b"a3".to_vec()),
            (cp_key, cp(30).encode()),
        ];
        assert_eq!(log(&config, "cl"), want);
        let restored = read_partition(&config, "cl", 0, Duration::from_secs(10), |_, _| {}).unwrap();
        assert_eq!(restored.checkpoint, Some(cp(30)));
        assert_eq!(restored.states, [("a".to_string(), b"a3".to_vec()), ("b".into(), b"b1".to_vec()), ("c".into(), b"c1".to_vec())]);
    }
}
