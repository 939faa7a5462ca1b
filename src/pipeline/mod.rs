//! The Kafka pipeline (`kizashi run`): consume the three input topics, drive the engine, and
//! publish alerts, scores and dead letters.
//!
//! Guarantee: **no input event applied twice, none skipped, no alert lost**, across crashes and
//! restarts. The input offsets of every partition are written in the same RocksDB batch as the
//! state they produced and the outbox entries (alerts, score updates, dead letters) it emitted; on
//! assignment, consumption resumes from the offsets in RocksDB, not from Kafka's committed ones
//! (those are committed too, for lag monitoring only). Outbox entries are produced with an
//! idempotent producer and deleted only once acknowledged; after a crash they are sent again.
//! Caveat: a resend after a crash can duplicate a message on the output topics; alert ids are
//! deterministic, so consumers drop repeats by `alert_id`. Kafka transactions are not used.

pub mod changelog;
mod client;
mod standby;
pub mod outbox;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;
use compact_str::CompactString;
use rustc_hash::FxHashMap;

use crate::runtime::Status;
use crate::config::Settings;
use crate::core::Params;
use crate::engine::{Engine, Record, Source};
use crate::flow::merge::{self, Head, Placer};
use crate::flow::Driver;
use crate::event::timestamp::now_ms;
use crate::event::{decode, DecodeLimits, Event, EventKind, Reject};
pub use client::{client_config, Client};
pub use outbox::{OutboxEntry, OutputKind};
use outbox::Outbox;

/// Routes librdkafka's own log lines into `tracing`.
pub(crate) fn log_librdkafka(client: &str, level: RDKafkaLogLevel, fac: &str, msg: &str) {
    match level {
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", client, fac, "{msg}")
        }
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", client, fac, "{msg}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => tracing::info!(target: "librdkafka", client, fac, "{msg}"),
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", client, fac, "{msg}"),
    }
}

/// librdkafka's client-level errors (broker down, ...): it retries by itself, so a warning.
pub(crate) fn log_client_error(client: &str, error: &rdkafka::error::KafkaError, reason: &str) {
    tracing::warn!(target: "librdkafka", client, error = %error, "{reason}");
}

/// A polled record waiting for its turn in its partition's event-time merge.
struct Pending {
    kind: EventKind,
    offset: i64,
    /// Its merge time ([`Placer::place`], set when it is queued).
    at: i64,
    key: Option<Vec<u8>>,
    /// The raw record, for the dead-letter topic should it be rejected: by decoding (then up to
    /// `events.max_record_bytes` and more) or by the engine.
    payload: Vec<u8>,
    decoded: Result<Event<'static>, Reject>,
}

impl Pending {
    /// Bytes of the raw record held.
    fn raw_bytes(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len) + self.payload.len()
    }
}

/// The three input queues of one partition number (co-partitioned topics).
#[derive(Default)]
struct PartitionQueues {
    queues: [VecDeque<Pending>; 3],
    /// Raw bytes held by each queue's records (`Pending::raw_bytes`).
    raw_bytes: [usize; 3],
    /// Since when each queue has been empty.
    empty_since: [Option<Instant>; 3],
    /// Where each queue's records go in the merge.
    placers: [Placer; 3],
    /// Next offset this instance will receive per input topic, when known.
    next_offset: [Option<i64>; 3],
    last_arrival: Option<Instant>,
}

/// What the processing loop and the rebalance callback share (they run on the same thread; the
/// mutex only satisfies the `Sync` bound of librdkafka's context).
struct Core {
    engine: Engine,
    queues: FxHashMap<u32, PartitionQueues>,
    /// The input topics, by kind (shared with each drain, which lends their names to records).
    topics: Arc<[String; 3]>,
    limits: DecodeLimits,
    merge_wait: Duration,
    idle_after: Duration,
    start_without_state: Offset,
    /// The largest dead letter the producer sends (its `message.max.bytes`).
    dead_letter_max: usize,
    /// Persisted outbox entries not yet handed to the producer (with an alert's event time).
    pending: Vec<(u64, OutboxEntry, Option<i64>)>,
    /// Acknowledged outbox entries to delete in the next batch.
    acked: Vec<u64>,
    next_seq: u64,
    /// Next offset per (topic, partition), to commit to Kafka for lag monitoring.
    positions: FxHashMap<(usize, i32), i64>,
    /// Metrics, readiness and the API's account index.
    shared: Arc<Status>,
    /// Duplicates already counted in the metrics.
    duplicates_counted: u64,
    /// Records skipped as already applied (`Stats::already_applied`), already counted.
    already_applied_counted: u64,
    /// The changelog writer (None when `kafka.topics.changelog` is empty).
    changelog: Option<changelog::Changelog>,
    /// Accounts whose newest state is acknowledged on the changelog: their pending marks go.
    changelog_done: Vec<(u32, CompactString)>,
    /// Client config and topic to read the changelog from, on assignment.
    changelog_source: Option<(ClientConfig, String, Duration)>,
    /// The producer of alerts, scores and dead letters (set once created).
    outbox: Option<Outbox>,
    /// Outbox entries left by the last run, by input partition, held until the partition is
    /// assigned: sent if the local state is kept, dropped if the partition is restored from the
    /// changelog (whoever processed it since regenerated them, and stale score updates must not
    /// land after newer ones on the compacted scores topic).
    leftover: FxHashMap<u32, Vec<(u64, OutboxEntry)>>,
    /// Partitions paused while their changelog is read (restoration), with the rebalance
    /// generation that assigned them; their records are dropped until they resume.
    restoring: FxHashMap<u32, u64>,
    /// Where the changelog readers report.
    restore_tx: std::sync::mpsc::Sender<RestoreReport>,
    /// The standby replica's shared state, when `state.standby_replicas` is on.
    standby: Option<Arc<standby::Shared>>,
    /// What to do with a revoked partition's local state.
    drop_on_revoke: bool,
    /// How long a revocation or shutdown waits for acknowledgements.
    grace: Duration,
    /// Batches written early because the accounts they changed went over budget.
    cuts: u64,
    /// Threads giving back restored states' files (`Store::drop_staged_files`), joined at
    /// shutdown: a process that exits while one is inside RocksDB aborts.
    staged_drops: Vec<std::thread::JoinHandle<()>>,
    /// `pipeline.max_buffered_records`.
    max_buffered: usize,
    /// Raw bytes of records the merge may hold (a sixteenth of `state.memory_budget`, as
    /// librdkafka's queues): past it, fetching pauses as past `max_buffered`.
    max_buffered_bytes: usize,
    /// (partition, input topic) whose fetching is paused because too many records wait in the
    /// merge (`Core::bound_buffer`); what arrives for them meanwhile is dropped and read again.
    paused: Vec<(u32, usize)>,
}

impl Core {
    fn kind_of(&self, topic: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| self.topics[*k as usize] == topic)
    }

    fn enqueue(&mut self, partition: u32, mut p: Pending, now: Instant) {
        let k = p.kind as usize;
        if self.restoring.contains_key(&partition) || self.paused.contains(&(partition, k)) {
            // Paused for restoration, or because the merge holds enough: read again from the
            // right offset once it resumes.
            return;
        }
        let q = self.queues.entry(partition).or_default();
        p.at = q.placers[k].place(p.decoded.as_ref());
        q.next_offset[k] = Some(p.offset + 1);
        q.raw_bytes[k] += p.raw_bytes();
        q.queues[k].push_back(p);
        q.empty_since[k] = None;
        q.last_arrival = Some(now);
    }

    /// Holds the records waiting in the merge to `max_buffered` (Kafka Streams pauses a partition
    /// whose buffer is full the same way). Past it, every topic-partition with records waiting is
    /// paused; one with none is never paused, and one paused that has run empty is resumed at
    /// once (the merge may be waiting for it), so the merge always goes on. At half of it, all
    /// are resumed. A resumed one is sought back to the record after the last one buffered.
    fn bound_buffer(&mut self, consumer: &BaseConsumer<PipelineContext>) -> Result<()> {
        let waiting: usize = self.queues.values().flat_map(|q| q.queues.iter()).map(VecDeque::len).sum();
        // Records are held raw, a rejected one up to a broker's largest record: counted in bytes
        // too, so a stream of large bad records cannot fill memory before the count is reached.
        let held: usize = self.queues.values().flat_map(|q| q.raw_bytes.iter()).sum();
        // A queue keeps its capacity: one a burst grew gives it back once empty.
        for q in self.queues.values_mut().flat_map(|q| q.queues.iter_mut()) {
            if q.is_empty() && q.capacity() > 4096 {
                q.shrink_to_fit();
            }
        }
        let len = |c: &Core, p: u32, k: usize| c.queues.get(&p).map_or(0, |q| q.queues[k].len());
        let all = waiting <= self.max_buffered / 2 && held <= self.max_buffered_bytes / 2;
        let (resume, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.paused).into_iter().partition(|&(p, k)| all || len(self, p, k) == 0);
        self.paused = keep;
        if !resume.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for (p, k) in resume {
                let topic = self.topics[k].clone();
                if let Some(next) = self.queues.get(&p).and_then(|q| q.next_offset[k]) {
                    consumer
                        .seek(&topic, p as i32, Offset::Offset(next), Duration::from_secs(10))
                        .with_context(|| format!("seeking {topic} partition {p} to resume it"))?;
                }
                tpl.add_partition(&topic, p as i32);
            }
            consumer.resume(&tpl).context("resuming input partitions")?;
        }
        let mut paused_now = false;
        if waiting > self.max_buffered || held > self.max_buffered_bytes {
            let mut tpl = TopicPartitionList::new();
            let mut parts: Vec<u32> = self.queues.keys().copied().collect();
            parts.sort_unstable();
            for p in parts {
                for k in 0..3 {
                    if len(self, p, k) > 0 && !self.paused.contains(&(p, k)) && !self.restoring.contains_key(&p) {
                        tpl.add_partition(&self.topics[k], p as i32);
                        self.paused.push((p, k));
                    }
                }
            }
            if tpl.count() > 0 {
                consumer.pause(&tpl).context("pausing input partitions (pipeline.max_buffered_records)")?;
                paused_now = true;
            }
        }
        self.shared.metrics.buffered(waiting, paused_now);
        Ok(())
    }

    /// Processes, per partition, the buffered records in event-time order across the three input
    /// topics (ties: usage, support, accounts — as `replay`). A topic with nothing buffered is
    /// skipped if it is caught up (its next offset is the partition's high watermark), waited for
    /// if it is behind (its records are on their way), and waited for at most `merge_wait` if
    /// that is not known yet (as Kafka Streams' `max.task.idle.ms = 0`).
    /// So the order does not depend on how fetches happen to interleave, and a restart replays
    /// the same order.
    fn drain(&mut self, tails: &FxHashMap<(u32, usize), Tail>) -> Result<()> {
        let now = Instant::now();
        let topics = self.topics.clone();
        let mut parts: Vec<u32> = self.queues.keys().copied().collect();
        parts.sort_unstable();
        for p in parts {
            loop {
                let q = self.queues.get_mut(&p).expect("listed");
                let heads: [Head; 3] = std::array::from_fn(|k| match q.queues[k].front() {
                    Some(r) => Head::At(r.at),
                    None => match tails.get(&(p, k)) {
                        Some(Tail::CaughtUp { .. }) => Head::Done,
                        Some(Tail::Behind) => Head::Waiting,
                        _ if now.duration_since(*q.empty_since[k].get_or_insert(now)) < self.merge_wait => Head::Waiting,
                        _ => Head::Done,
                    },
                });
                let Some(next) = merge::next(heads) else { break };
                let k = next.input;
                let r = q.queues[k].pop_front().expect("non-empty");
                q.raw_bytes[k] -= r.raw_bytes();
                if q.queues[k].is_empty() {
                    q.empty_since[k] = Some(now);
                }
                let source = Source { name: &topics[k], offset: r.offset };
                let record = Record { source, key: r.key.as_deref(), raw: &r.payload, decoded: r.decoded.as_ref().map_err(Reject::clone) };
                crate::flow::apply(self, p, record)?;
                self.positions.insert((k, p as i32), r.offset + 1);
            }
        }
        Ok(())
    }

    /// The offsets committed for lag monitoring, moved to the end of every caught-up input
    /// topic-partition: past the transaction markers that end a transactional producer's topic
    /// (which no record's offset + 1 reaches), so its lag reads 0, not 1 for ever (and a quiet
    /// topic does not look stalled to the `KizashiNoProgress` alert).
    fn pass_markers(&mut self, tails: &FxHashMap<(u32, usize), Tail>) {
        for (&(p, k), tail) in tails {
            if let Tail::CaughtUp { end } = *tail {
                let at = self.positions.entry((k, p as i32)).or_insert(end);
                *at = (*at).max(end);
            }
        }
    }

    /// Moves stream time of idle partitions to the wall clock so silent accounts are re-scored.
    fn drive_idle(&mut self) -> Result<()> {
        let now = Instant::now();
        let wall = now_ms();
        let idle: Vec<u32> = self
            .queues
            .iter()
            .filter(|(_, q)| {
                q.queues.iter().all(VecDeque::is_empty)
                    && q.last_arrival.is_some_and(|t| now.duration_since(t) >= self.idle_after)
            })
            .map(|(p, _)| *p)
            .collect();
        for p in idle {
            if self.engine.stream_time(p).is_some_and(|s| s < wall) {
                crate::flow::advance(self, p, wall)?;
            }
        }
        Ok(())
    }

    /// Writes the batch so far, mid-batch: the accounts it changed went over the budget's
    /// share (a day's timers reach every account). Each write is a batch like any other (its
    /// states with the offsets of the records applied so far), so the guarantees hold.
    fn cut(&mut self) -> Result<()> {
        self.collect()?;
        self.commit_batch()?;
        self.send_pending();
        self.cuts += 1;
        Ok(())
    }

    /// Ends a batch: turns the engine's output into outbox entries and writes state, offsets,
    /// stream time and outbox in one RocksDB batch.
    fn commit_batch(&mut self) -> Result<()> {
        let out = self.engine.take_output();
        let emitted = now_ms();
        let metrics = &self.shared.metrics;
        let mut entries = Vec::with_capacity(out.alerts.len() + out.scores.len() + out.rejected.len());
        for mut a in out.alerts {
            a.emitted_at_ms = emitted;
            metrics.alert(&a);
            entries.push((
                OutboxEntry {
                    kind: OutputKind::Alert,
                    key: Some(a.account_id.clone().into_bytes()),
                    payload: a.to_json().into_bytes(),
                    headers: vec![],
                },
                Some(a.event_time_ms),
            ));
        }
        // health-scores is compacted (latest per account wins): within a batch only each
        // account's last update is worth sending.
        let mut last_of: FxHashMap<&str, usize> = FxHashMap::default();
        for (i, s) in out.scores.iter().enumerate() {
            last_of.insert(s.account_id.as_str(), i);
        }
        let keep: Vec<bool> = (0..out.scores.len()).map(|i| last_of.get(out.scores[i].account_id.as_str()) == Some(&i)).collect();
        drop(last_of);
        let mut scores = 0;
        for (mut s, _) in out.scores.into_iter().zip(keep).filter(|(_, k)| *k) {
            s.emitted_at_ms = emitted;
            scores += 1;
            entries.push((
                OutboxEntry {
                    kind: OutputKind::Score,
                    key: Some(s.account_id.clone().into_bytes()),
                    payload: s.to_json().into_bytes(),
                    headers: vec![],
                },
                None,
            ));
        }
        metrics.score_updates(scores);
        for r in out.rejected {
            metrics.rejected(&r, "dead-letter topic");
            let mut entry = OutboxEntry {
                kind: OutputKind::DeadLetter,
                key: r.key,
                payload: r.raw,
                headers: vec![
                    ("kizashi.reason".into(), r.reject.reason.code().as_bytes().to_vec()),
                    ("kizashi.detail".into(), r.reject.detail.into_bytes()),
                    ("kizashi.source.topic".into(), r.source.into_bytes()),
                    ("kizashi.source.partition".into(), r.partition.to_string().into_bytes()),
                    ("kizashi.source.offset".into(), r.offset.to_string().into_bytes()),
                ],
            };
            entry.fit(self.dead_letter_max);
            entries.push((entry, None));
        }
        metrics.duplicates(self.engine.stats.duplicates - self.duplicates_counted);
        self.duplicates_counted = self.engine.stats.duplicates;
        metrics.already_applied(self.engine.stats.already_applied - self.already_applied_counted);
        self.already_applied_counted = self.engine.stats.already_applied;
        metrics.memory("accounts", self.engine.accounts_bytes() as u64);
        let first = self.next_seq;
        self.next_seq += entries.len() as u64;
        // Marks of accounts acknowledged on the changelog go in a write of their own before this
        // batch's, which may mark some of them again.
        if !self.changelog_done.is_empty() {
            let store = self.engine.store();
            let mut b = store.batch();
            for (p, id) in self.changelog_done.drain(..) {
                b.delete_changelog_pending(p, &id);
            }
            store.write(b)?;
        }
        let acked = std::mem::take(&mut self.acked);
        let encoded: Vec<Vec<u8>> = entries.iter().map(|(e, _)| e.encode()).collect();
        self.engine.flush(|b| {
            for (i, bytes) in encoded.iter().enumerate() {
                b.put_outbox(first + i as u64, bytes);
            }
            for seq in &acked {
                b.delete_outbox(*seq);
            }
        })?;
        self.pending.extend(entries.into_iter().enumerate().map(|(i, (e, t))| (first + i as u64, e, t)));
        if let Some(cl) = &mut self.changelog {
            let states = self.engine.take_captured();
            let mut parts: Vec<u32> = states.iter().map(|(p, _, _)| *p).collect();
            parts.sort_unstable();
            parts.dedup();
            let mut checkpoints = Vec::with_capacity(parts.len());
            for p in parts {
                let (offsets, stream_time) = self.engine.store().offsets(p)?;
                checkpoints.push((p, changelog::Checkpoint { offsets, stream_time }));
            }
            cl.push(self.next_seq, states, checkpoints);
        }
        Ok(())
    }

    /// Hands the written outbox entries to the producer.
    fn send_pending(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        if let Some(outbox) = &mut self.outbox {
            for (seq, e, t) in pending {
                outbox.send(seq, e, t);
            }
            self.shared.metrics.outbox_depth(outbox.in_flight.len());
        }
    }

    /// Collects outbox acknowledgements (deleted with the next batch) and moves the changelog on.
    fn collect(&mut self) -> Result<()> {
        let unacked = match &mut self.outbox {
            Some(outbox) => {
                let acked = outbox.take_acked(&self.shared.metrics);
                self.acked.extend(acked);
                outbox.in_flight.keys().next().copied()
            }
            None => None,
        };
        self.pump_changelog(unacked)
    }

    /// Writes the in-flight batch, then waits up to `grace` until every outbox entry is
    /// acknowledged and the changelog has caught up with it. Returns whether it all settled.
    fn settle(&mut self) -> Result<bool> {
        let deadline = Instant::now() + self.grace;
        self.commit_batch()?;
        self.send_pending();
        loop {
            self.collect()?;
            let outbox_empty = self.outbox.as_ref().is_none_or(|o| o.in_flight.is_empty());
            if outbox_empty {
                break;
            }
            if Instant::now() >= deadline {
                self.commit_batch()?;
                return Ok(false);
            }
            if let Some(o) = &self.outbox {
                o.flush(Duration::from_millis(50));
            }
        }
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
        let mut settled = true;
        if let Some(cl) = &mut self.changelog {
            if let Err(e) = cl.drain(left) {
                tracing::warn!(error = %format!("{e:#}"), "the changelog did not catch up; pending marks stay and are sent again");
                settled = false;
            }
        }
        self.pump_changelog(None)?;
        // Writes the outbox deletions and pending-mark deletions just collected.
        self.commit_batch()?;
        Ok(settled)
    }

    /// Sends the changelog batches whose outbox entries are all acknowledged and collects the
    /// changelog's acknowledgements.
    fn pump_changelog(&mut self, outbox_unacked: Option<u64>) -> Result<()> {
        let unacked = outbox_unacked.unwrap_or(self.next_seq).min(self.next_seq);
        if let Some(cl) = &mut self.changelog {
            cl.pump(unacked);
            cl.collect()?;
            self.changelog_done.extend(cl.take_done());
            self.shared.metrics.changelog(cl.records_acked, cl.bytes_sent, cl.depth());
        }
        Ok(())
    }

    /// Takes over a partition whose standby copy is caught up: its due index is rebuilt, and
    /// what the last run left in the outbox for it is dropped (its owner since regenerated it).
    fn take_over_standby_copy(&mut self, partition: u32) -> Result<()> {
        if let Some(s) = &self.standby {
            s.touched.lock().expect("standby lock").remove(&partition);
        }
        if let Some(stale) = self.leftover.remove(&partition) {
            self.acked.extend(stale.into_iter().map(|(seq, _)| seq));
        }
        self.engine.rebuild_due(partition)?;
        self.shared.load_partition(self.engine.store(), partition)?;
        Ok(())
    }

    /// Sends the outbox entries the last run left for a partition whose local state is kept.
    fn resend_leftover(&mut self, partition: u32) {
        let Some(entries) = self.leftover.remove(&partition) else { return };
        tracing::info!(partition, entries = entries.len(), "resending what the outbox held for this partition");
        if let Some(outbox) = &mut self.outbox {
            for (seq, e) in entries {
                outbox.send(seq, e, None);
            }
        }
    }

    /// Queues for the changelog the local states of a partition still marked pending (a kept
    /// partition whose changelog did not catch up before it was revoked).
    fn requeue_pending(&mut self, partition: u32) -> Result<()> {
        let Some(cl) = &mut self.changelog else { return Ok(()) };
        let store = self.engine.store();
        let mut states = Vec::new();
        for (p, id) in store.changelog_pending()?.into_iter().filter(|(p, _)| *p == partition) {
            if let Some(bytes) = store.get_account_encoded(p, &id)? {
                states.push((p, CompactString::from(id.as_str()), bytes));
            }
        }
        if !states.is_empty() {
            let (offsets, stream_time) = store.offsets(partition)?;
            tracing::info!(partition, accounts = states.len(), "queueing locally kept states the changelog does not have yet");
            cl.push(self.next_seq, states, vec![(partition, changelog::Checkpoint { offsets, stream_time })]);
        }
        Ok(())
    }

    /// On assignment: restores a partition from the changelog if its local state is missing or
    /// behind the changelog's checkpoint (see `changelog`'s header).
    fn apply_restore(&mut self, partition: u32, generation: u64, restored: changelog::Restored, started: Instant) -> Result<()> {
        let touched = self.standby.as_ref().is_some_and(|s| s.touched.lock().expect("standby lock").contains(&partition));
        if touched {
            // A standby copy that was not caught up is never trusted: restore in full.
            if let Some(s) = &self.standby {
                s.touched.lock().expect("standby lock").remove(&partition);
            }
            if let Some(stale) = self.leftover.remove(&partition) {
                self.acked.extend(stale.into_iter().map(|(seq, _)| seq));
            }
            let accounts = self.engine.restore_partition(
                partition,
                generation,
                &restored.checkpoint.as_ref().map(|c| c.offsets.clone()).unwrap_or_default(),
                restored.checkpoint.as_ref().and_then(|c| c.stream_time),
            )?;
            let seconds = started.elapsed().as_secs_f64();
            self.shared.metrics.restored(accounts, seconds);
            tracing::info!(partition, accounts, records = restored.records, seconds, "the standby copy was behind: restored the partition from the changelog");
            return Ok(());
        }
        let (local, _) = self.engine.store().offsets(partition)?;
        let Some(cp) = restored.checkpoint else {
            tracing::info!(partition, records = restored.records, "changelog has no checkpoint for this partition: using local state");
            self.engine.store().clear_staged(partition, generation)?;
            self.resend_leftover(partition);
            return self.requeue_pending(partition);
        };
        if !cp.ahead_of(&local) {
            tracing::info!(partition, ?local, changelog = ?cp.offsets, "local state is at or ahead of the changelog: keeping it");
            self.engine.store().clear_staged(partition, generation)?;
            self.resend_leftover(partition);
            return self.requeue_pending(partition);
        }
        if let Some(stale) = self.leftover.remove(&partition) {
            tracing::info!(partition, entries = stale.len(), "dropping outbox entries left from an older ownership of this partition");
            self.acked.extend(stale.into_iter().map(|(seq, _)| seq));
        }
        let accounts = self.engine.restore_partition(partition, generation, &cp.offsets, cp.stream_time)?;
        let seconds = started.elapsed().as_secs_f64();
        self.shared.metrics.restored(accounts, seconds);
        tracing::info!(
            partition,
            accounts,
            records = restored.records,
            bytes = restored.bytes,
            seconds,
            ?local,
            changelog = ?cp.offsets,
            "local state was missing or behind: restored the partition from the changelog"
        );
        Ok(())
    }

    fn stored_offset(&self, topic: &str, partition: u32) -> Result<Offset> {
        let (offsets, _) = self.engine.store().offsets(partition)?;
        Ok(offsets.into_iter().find(|(t, _)| t == topic).map_or(self.start_without_state, |(_, o)| Offset::Offset(o)))
    }
}


impl Driver for Core {
    fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }

    fn cut(&mut self) -> Result<()> {
        Core::cut(self)
    }
}

/// A changelog reader's result for one partition.
struct RestoreReport {
    partition: u32,
    generation: u64,
    started: Instant,
    /// The standby copy was caught up with the changelog: taken over without reading it.
    standby_caught_up: bool,
    restored: Result<changelog::Restored>,
}

impl Core {
    /// Applies a changelog reader's result (if the partition is still ours from the same
    /// assignment): restores or keeps the local state, seeks the partition's three topics to the
    /// offsets the state covers, and resumes it.
    fn finish_restore(&mut self, consumer: &BaseConsumer<PipelineContext>, report: RestoreReport) -> Result<()> {
        let p = report.partition;
        if self.restoring.get(&p) != Some(&report.generation) {
            // Revoked or reassigned since: a newer check is under way or not needed.
            self.engine.store().clear_staged(p, report.generation)?;
            return Ok(());
        }
        let restored = match report.restored {
            Ok(r) => r,
            // Processing on stale local state would apply records twice or skip them: stop
            // instead (a restart tries again).
            Err(e) => bail!("reading the changelog for partition {p} failed: {e:#}"),
        };
        if report.standby_caught_up {
            tracing::info!(partition = p, "the standby copy is caught up with the changelog: taken over without a restore");
            self.take_over_standby_copy(p)?;
        } else {
            self.apply_restore(p, report.generation, restored, report.started)?;
        }
        self.restoring.remove(&p);
        let mut tpl = TopicPartitionList::new();
        for k in 0..3 {
            let topic = self.topics[k].clone();
            let offset = self.stored_offset(&topic, p)?;
            consumer
                .seek(&topic, p as i32, offset, Duration::from_secs(10))
                .with_context(|| format!("seeking {topic} partition {p} after restoration"))?;
            if let Offset::Offset(o) = offset {
                self.queues.entry(p).or_default().next_offset[k] = Some(o);
                self.positions.insert((k, p as i32), o);
            }
            tpl.add_partition(&topic, p as i32);
        }
        consumer.resume(&tpl).with_context(|| format!("resuming partition {p}"))?;
        self.shared.metrics.restoring(self.restoring.len());
        if self.restoring.is_empty() {
            // The staged files' disk back, off the main loop: a million accounts' take ~12 s.
            let store = self.engine.store().clone();
            let spawned = std::thread::Builder::new().name("kizashi-staged".into()).spawn(move || store.drop_staged_files());
            match spawned {
                Ok(handle) => {
                    self.staged_drops.retain(|h| !h.is_finished());
                    self.staged_drops.push(handle);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "starting the thread that drops restored states' files failed; they go at the next start")
                }
            }
            self.shared.ready(self.engine.partitions());
        }
        Ok(())
    }
}

struct PipelineContext {
    core: Arc<Mutex<Core>>,
    /// Bumped by every rebalance: records polled before one belong to the old assignment.
    generation: Arc<std::sync::atomic::AtomicU64>,
}

impl ClientContext for PipelineContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_librdkafka("consumer", level, fac, log_message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        log_client_error("consumer", &error, reason);
    }
}

impl ConsumerContext for PipelineContext {
    /// Assigns each partition once, at the offset stored with its state (assigning first and
    /// seeking after is the trap: two assigns, the first at the wrong offsets). On revoke, the
    /// in-flight batch is written before the partitions go.
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        let mut core = self.core.lock().expect("core lock");
        self.generation.fetch_add(1, Ordering::SeqCst);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let elems: Vec<(String, i32)> =
                    tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
                let mut parts: Vec<u32> = elems.iter().map(|(_, p)| *p as u32).collect();
                parts.sort_unstable();
                parts.dedup();
                let generation = self.generation.load(Ordering::SeqCst);
                for p in parts {
                    if let Err(e) = core.shared.load_partition(core.engine.store(), p) {
                        tracing::error!(partition = p, error = %e, "loading the account index failed");
                    }
                    // Each partition is checked against the changelog (and restored if behind)
                    // on a thread of its own while it is paused; the others go on.
                    if let Some((config, topic, timeout)) = core.changelog_source.clone() {
                        core.restoring.insert(p, generation);
                        // The standby stops writing this partition before anything reads it; a
                        // copy is used only if it had applied the changelog up to its end.
                        let standby_at = core.standby.as_ref().and_then(|s| {
                            s.owned.lock().expect("standby lock").insert(p);
                            s.touched.lock().expect("standby lock").contains(&p).then(|| s.position(p)).flatten()
                        });
                        let (tx, shared) = (core.restore_tx.clone(), core.shared.clone());
                        let store = core.engine.store().clone();
                        let spawned = std::thread::Builder::new().name(format!("kizashi-restore-{p}")).spawn(move || {
                            let started = Instant::now();
                            if let Some(at) = standby_at {
                                let end = changelog::end_offset(&config, &topic, p, timeout);
                                if end.as_ref().is_ok_and(|e| at >= *e) {
                                    let _ = tx.send(RestoreReport {
                                        partition: p,
                                        generation,
                                        started,
                                        standby_caught_up: true,
                                        restored: Ok(changelog::Restored::default()),
                                    });
                                    return;
                                }
                            }
                            let r = changelog::read_partition(&config, &topic, p, &store, generation, timeout, &shared.metrics, |read, total| {
                                shared.progress(format!("restoring partition {p} from the changelog: {read} of {total} records read"));
                            });
                            let _ = tx.send(RestoreReport { partition: p, generation, started, standby_caught_up: false, restored: r });
                        });
                        if let Err(e) = spawned {
                            tracing::error!(partition = p, error = %e, "starting a changelog reader failed; stopping");
                            std::process::exit(2);
                        }
                    }
                }
                for (topic, partition) in &elems {
                    let p = *partition as u32;
                    let offset = match core.stored_offset(topic, p) {
                        Ok(o) => o,
                        Err(e) => {
                            tracing::error!(error = %e, "reading stored offsets failed");
                            core.start_without_state
                        }
                    };
                    if let Err(e) = tpl.set_partition_offset(topic, *partition, offset) {
                        tracing::error!(%topic, partition, error = %e, "setting the start offset failed");
                    }
                    if let Err(e) = core.engine.open_partition(p) {
                        tracing::error!(partition = p, error = %e, "opening partition state failed");
                    }
                    if let (Some(k), Offset::Offset(o)) = (core.kind_of(topic), offset) {
                        core.queues.entry(p).or_default().next_offset[k as usize] = Some(o);
                        // Kafka's committed offsets (lag monitoring) follow the stored ones.
                        core.positions.insert((k as usize, *partition), o);
                    }
                    tracing::info!(%topic, partition, ?offset, "partition assigned");
                }
                let r = if cooperative { consumer.incremental_assign(tpl) } else { consumer.assign(tpl) };
                if let Err(e) = r {
                    tracing::error!(error = %e, "assign failed");
                }
                if let Some(s) = &core.standby {
                    s.started.store(true, Ordering::SeqCst);
                }
                if core.restoring.is_empty() {
                    core.shared.ready(core.engine.partitions());
                } else {
                    if let Err(e) = consumer.pause(tpl) {
                        tracing::error!(error = %e, "pausing partitions for restoration failed");
                    }
                    core.shared.progress(format!("checking {} partition(s) against the changelog", core.restoring.len()));
                    core.shared.metrics.restoring(core.restoring.len());
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                // The processed part of the batch is written, its outbox acknowledged and the
                // changelog caught up, so whoever owns these partitions next starts from exactly
                // here. Buffered, unprocessed records are dropped: their offsets are not stored,
                // so they are read again.
                let settled = match core.settle() {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "writing the in-flight batch on revoke failed");
                        false
                    }
                };
                let revoked: Vec<(String, i32)> =
                    tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
                for (topic, partition) in &revoked {
                    tracing::info!(%topic, partition, "partition revoked");
                    if let Some(k) = core.kind_of(topic) {
                        if let Some(q) = core.queues.get_mut(&(*partition as u32)) {
                            q.queues[k as usize].clear();
                            q.raw_bytes[k as usize] = 0;
                        }
                    }
                }
                let revoked_kinds: Vec<(usize, i32)> = revoked
                    .iter()
                    .filter_map(|(t, p)| core.kind_of(t).map(|k| (k as usize, *p)))
                    .collect();
                core.positions.retain(|k, _| !revoked_kinds.contains(k));
                // Paused for the merge's bound: resumed before they go, so a later assignment
                // of them fetches.
                let mut resume = TopicPartitionList::new();
                for (k, p) in &revoked_kinds {
                    if let Some(i) = core.paused.iter().position(|x| *x == (*p as u32, *k)) {
                        core.paused.swap_remove(i);
                        resume.add_partition(&core.topics[*k], *p);
                    }
                }
                if resume.count() > 0 {
                    if let Err(e) = consumer.resume(&resume) {
                        tracing::warn!(error = %e, "resuming revoked partitions failed");
                    }
                }
                let mut parts: Vec<u32> = revoked.iter().map(|(_, p)| *p as u32).collect();
                parts.dedup();
                for p in parts {
                    core.queues.remove(&p);
                    core.restoring.remove(&p);
                    core.engine.close_partition(p);
                    if let Some(s) = &core.standby {
                        s.owned.lock().expect("standby lock").remove(&p);
                    }
                    core.shared.board.drop_partition(p);
                    if core.drop_on_revoke && settled && core.changelog.is_some() {
                        let store = core.engine.store();
                        let mut b = store.batch();
                        b.delete_partition(p);
                        match store.write(b) {
                            Ok(()) => tracing::info!(partition = p, "revoked partition's local state dropped (state.on_revoke = drop)"),
                            Err(e) => tracing::warn!(partition = p, error = %e, "dropping a revoked partition's local state failed"),
                        }
                    }
                }
                for (topic, partition) in &revoked {
                    core.shared.metrics.forget_lag(topic, *partition);
                }
                match core.engine.partitions() {
                    left if left.is_empty() => core.shared.not_ready("waiting for partition assignment (rebalancing)"),
                    left => core.shared.ready(left),
                }
                let r = if cooperative { consumer.incremental_unassign(tpl) } else { consumer.unassign() };
                if let Err(e) = r {
                    tracing::error!(error = %e, "unassign failed");
                }
            }
            other => {
                tracing::error!(error = ?other, "rebalance error; dropping the assignment");
                let _ = consumer.unassign();
            }
        }
    }
}

/// Checks that the input topics exist and are co-partitioned, and that the output topics exist.
/// Returns the input partition count.
pub fn check_topics(settings: &Settings, consumer: &BaseConsumer<impl ConsumerContext>) -> Result<i32> {
    let md = consumer.fetch_metadata(None, settings.kafka.startup_timeout).with_context(|| {
        format!(
            "cannot reach Kafka at {} within {} (kafka.startup_timeout)",
            settings.kafka.brokers,
            humantime::format_duration(settings.kafka.startup_timeout)
        )
    })?;
    let count = |name: &str| md.topics().iter().find(|t| t.name() == name && t.error().is_none()).map(|t| t.partitions().len() as i32);
    let t = &settings.kafka.topics;
    let missing: Vec<&str> = [&t.usage, &t.support, &t.accounts, &t.alerts, &t.scores, &t.dead_letter]
        .into_iter()
        .filter(|n| count(n).is_none())
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        bail!("these topics do not exist: {} (create them; see the README's topic table)", missing.join(", "));
    }
    let inputs = [&t.usage, &t.support, &t.accounts].map(|n| (n.as_str(), count(n).unwrap_or(0)));
    if inputs.iter().any(|(_, n)| *n != inputs[0].1) {
        bail!(
            "input topics are not co-partitioned: {}; all three must have the same partition count so one instance owns an account on every topic",
            inputs.iter().map(|(n, c)| format!("{n} has {c}")).collect::<Vec<_>>().join(", ")
        );
    }
    let partitions = inputs[0].1;
    if let Some(changelog) = settings.kafka.changelog_topic() {
        match count(&changelog) {
            Some(n) if n == partitions => {
                // In the background: a broker that does not answer DescribeConfigs (librdkafka's
                // mock cluster) must not hold the start up.
                let (settings, changelog) = (settings.clone(), changelog.clone());
                let _ = std::thread::Builder::new()
                    .name("kizashi-changelog-check".into())
                    .spawn(move || warn_if_changelog_too_small(&settings, &changelog));
            }
            Some(n) => bail!(
                "the changelog topic {changelog} has {n} partitions; it needs {partitions}, one per input partition"
            ),
            None if settings.kafka.create_changelog => create_changelog(settings, partitions)?,
            None => bail!(
                "the changelog topic {changelog} does not exist: create it compacted with {partitions} partitions, or set kafka.create_changelog = true"
            ),
        }
    }
    Ok(partitions)
}

/// A changelog topic made before kizashi set its record limit (or by hand) may take smaller
/// records than a state can be: the first state over it would stop `run`. Says so at start, with
/// what to set; never stops or delays the start (a broker that cannot describe configs is only
/// logged).
fn warn_if_changelog_too_small(settings: &Settings, name: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    let need = settings.changelog_record_bytes();
    let described = (|| -> Result<Option<u64>> {
        let admin: AdminClient<rdkafka::client::DefaultClientContext> = client_config(settings, Client::Producer).create()?;
        let opts = AdminOptions::new().request_timeout(Some(settings.kafka.startup_timeout));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let results = rt.block_on(admin.describe_configs([&ResourceSpecifier::Topic(name)], &opts))?;
        let resource = results.into_iter().next().context("no answer")?.map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(resource.get("max.message.bytes").and_then(|e| e.value.as_deref()?.parse().ok()))
    })();
    match described {
        Ok(Some(limit)) if limit < need => tracing::warn!(
            topic = %name,
            max_message_bytes = limit,
            needed = need,
            "the changelog topic takes smaller records than an account's state can be (state.max_account_bytes and the ticket and retention limits): a state over it would stop kizashi; raise the topic's max.message.bytes to at least the needed size"
        ),
        Ok(_) => {}
        Err(e) => tracing::info!(topic = %name, error = %format!("{e:#}"), "could not read the changelog topic's max.message.bytes"),
    }
}

/// Creates the changelog topic: compacted, one partition per input partition.
fn create_changelog(settings: &Settings, partitions: i32) -> Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let name = &settings.kafka.changelog_topic().unwrap_or_default();
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        client_config(settings, Client::Producer).create().context("creating the Kafka admin client")?;
    // Room for the largest state (a broker's default is about 1 MB).
    let max_message = settings.changelog_record_bytes().to_string();
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(-1))
        .set("cleanup.policy", "compact")
        .set("max.message.bytes", &max_message);
    let opts = AdminOptions::new().operation_timeout(Some(settings.kafka.startup_timeout));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let results = rt
        .block_on(admin.create_topics([&topic], &opts))
        .with_context(|| format!("creating the changelog topic {name}"))?;
    for r in results {
        match r {
            Ok(_) => tracing::info!(topic = %name, partitions, "created the changelog topic (compacted)"),
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => bail!("creating the changelog topic {t}: {e} (create it compacted with {partitions} partitions, or set kafka.create_changelog = false and kafka.topics.changelog = \"\")"),
        }
    }
    Ok(())
}

/// Runs until `stop` is set (SIGTERM/SIGINT in `kizashi run`), reporting to `shared` (metrics,
/// readiness, the API's index); serves no HTTP itself ([`crate::cmd::run`] opens the port).
pub fn run_with(settings: &Settings, stop: Arc<AtomicBool>, shared: Arc<Status>) -> Result<()> {
    let t = &settings.kafka.topics;
    shared.not_ready("opening the state store");
    let mut engine = Engine::open(&settings.state.dir, true, Params::new(settings), settings.state.budget())
        .with_context(|| format!("opening state store at {}", settings.state.dir.display()))?;
    if let Some(v) = settings.state.upgrade_from {
        engine.set_state_write_version(v);
        tracing::info!(version = v, "state.upgrade_from: account states are written in the release before's encoding (a rolling upgrade); remove it once every instance runs this release");
    }
    // The account index is loaded per partition as partitions are assigned.
    shared.attach_store(engine.store(), false)?;
    engine.set_board(shared.board.clone());
    engine.track_applied_offsets();
    if settings.kafka.changelog_topic().is_some() {
        engine.capture_flushed_states();
    }
    let leftover = engine.store().outbox()?;
    let next_seq = leftover.last().map_or(0, |(s, _)| s + 1);
    let (restore_tx, restore_rx) = std::sync::mpsc::channel::<RestoreReport>();
    let standby_stop = Arc::new(AtomicBool::new(false));
    let core = Arc::new(Mutex::new(Core {
        engine,
        queues: FxHashMap::default(),
        topics: Arc::new([t.usage.clone(), t.support.clone(), t.accounts.clone()]),
        limits: settings.events.decode_limits(0),
        merge_wait: settings.pipeline.merge_wait,
        idle_after: settings.pipeline.idle_after,
        start_without_state: if settings.kafka.start_without_state == "latest" { Offset::End } else { Offset::Beginning },
        dead_letter_max: client_config(settings, Client::Producer)
            .get("message.max.bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(outbox::LIBRDKAFKA_MAX_MESSAGE),
        pending: Vec::new(),
        acked: Vec::new(),
        next_seq,
        positions: FxHashMap::default(),
        shared: shared.clone(),
        duplicates_counted: 0,
        already_applied_counted: 0,
        changelog: None,
        changelog_done: Vec::new(),
        changelog_source: None,
        outbox: None,
        leftover: FxHashMap::default(),
        restoring: FxHashMap::default(),
        restore_tx,
        standby: None,
        drop_on_revoke: settings.state.on_revoke == "drop",
        grace: settings.pipeline.shutdown_grace,
        cuts: 0,
        staged_drops: Vec::new(),
        max_buffered: settings.pipeline.max_buffered_records,
        max_buffered_bytes: settings.state.budget().kafka_queue() as usize,
        paused: Vec::new(),
    }));

    let generation = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut consumer_config = client_config(settings, Client::Consumer);
    // Low-latency fetching unless the user says otherwise (a caught-up fetch is parked by the
    // broker for up to fetch.wait.max.ms, 500 ms by default).
    if !settings.kafka.properties.contains_key("fetch.wait.max.ms") {
        consumer_config.set("fetch.wait.max.ms", "20");
    }
    // When a partition's prefetch queue is full (queued.min.messages, 100k records), librdkafka
    // pauses fetching it for fetch.queue.backoff.ms (1 s by default): on a backlog the loop then
    // drains the queue and sits idle for most of that second. Resume fetching soon instead.
    if !settings.kafka.properties.contains_key("fetch.queue.backoff.ms") {
        consumer_config.set("fetch.queue.backoff.ms", "10");
    }
    // The range assignor gives a member the same partition numbers of every input topic:
    // co-partitioning, which the per-partition merge and state rely on.
    if !settings.kafka.properties.contains_key("partition.assignment.strategy") {
        consumer_config.set("partition.assignment.strategy", "range");
    }
    let consumer: BaseConsumer<PipelineContext> = consumer_config
        .set("group.id", &settings.kafka.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create_with_context(PipelineContext { core: core.clone(), generation: generation.clone() })
        .context("creating the Kafka consumer")?;
    shared.not_ready(format!("connecting to Kafka at {}", settings.kafka.brokers));
    let partitions = check_topics(settings, &consumer)?;
    tracing::info!(partitions, brokers = %settings.kafka.brokers, "input topics are co-partitioned");

    let mut producer_config = client_config(settings, Client::Producer);
    producer_config.set("enable.idempotence", "true").set("acks", "all").set("linger.ms", "5");
    let mut outbox = Outbox::new(producer_config, t.clone()).context("creating the Kafka producer")?;
    // What the outbox held at the last stop: without a changelog (one instance) it is all sent
    // now; with one, each partition's entries wait for its assignment (see `Core::leftover`).
    let changelog_on = settings.kafka.changelog_topic().is_some();
    let mut held: FxHashMap<u32, Vec<(u64, OutboxEntry)>> = FxHashMap::default();
    let mut sent = 0;
    for (seq, bytes) in leftover {
        match OutboxEntry::decode(&bytes) {
            Ok(e) => match e.partition(partitions as u32).filter(|_| changelog_on) {
                Some(p) => held.entry(p).or_default().push((seq, e)),
                None => {
                    outbox.send(seq, e, None);
                    sent += 1;
                }
            },
            Err(e) => tracing::error!(seq, error = %e, "unreadable outbox entry left in place"),
        }
    }
    if sent > 0 || !held.is_empty() {
        tracing::info!(sent, held = held.values().map(Vec::len).sum::<usize>(), "outbox entries left by the last run");
    }
    {
        let mut c = core.lock().expect("core lock");
        c.leftover = held;
        c.outbox = Some(outbox);
        if changelog_on {
            let topic = settings.kafka.changelog_topic().unwrap_or_default();
            c.changelog = Some(changelog::Changelog::new(
                &client::changelog_producer_config(settings),
                &topic,
                settings.pipeline.changelog_interval,
                settings.state.budget().kafka_queue() as usize,
                settings.changelog_record_bytes(),
            )?);
            let timeout = settings.kafka.startup_timeout.max(Duration::from_secs(60));
            c.changelog_source = Some((client_config(settings, Client::Consumer), topic.clone(), timeout));
            if settings.state.standby_replicas > 0 {
                let sb = Arc::new(standby::Shared::default());
                c.standby = Some(sb.clone());
                let (config, store, stop) = (client_config(settings, Client::Consumer), c.engine.store().clone(), standby_stop.clone());
                let (parts, api) = (partitions as u32, shared.clone());
                std::thread::Builder::new().name("kizashi-standby".into()).spawn(move || {
                    if let Err(e) = standby::run(config, topic, parts, store, sb, &api.metrics, stop) {
                        tracing::error!(error = %format!("{e:#}"), "the standby replica stopped");
                    }
                })?;
                tracing::info!("standby replica on: following the changelog of the partitions this instance does not own");
            }
        }
    }

    shared.not_ready("waiting for partition assignment");
    consumer.subscribe(&[&t.usage, &t.support, &t.accounts]).context("subscribing to the input topics")?;
    let metrics = &shared.metrics;
    let mut last_lag = Instant::now();
    let batch_wait = settings.pipeline.batch_wait;
    let mut polled: Vec<(u32, Pending)> = Vec::with_capacity(settings.pipeline.batch_records);
    let mut last_commit = Instant::now();
    // Where the loop's time goes (logged at shutdown): polling, processing, writing+producing.
    let (mut t_poll, mut t_process, mut t_commit, mut records) = (Duration::ZERO, Duration::ZERO, Duration::ZERO, 0u64);
    // Of t_poll, the time spent waiting for a first record (nothing had arrived).
    let mut t_wait = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        let deadline = Instant::now() + batch_wait;
        let wall = now_ms();
        let (kinds, limits, paused, max_polled_raw) = {
            let c = core.lock().expect("core lock");
            (c.topics.clone(), DecodeLimits { now_ms: wall, ..c.limits }, c.paused.clone(), c.max_buffered_bytes)
        };
        let mut consumed = [0u64; 3];
        let mut consumed_bytes = [0u64; 3];
        let mut newest = [i64::MIN; 3];
        let mut batch_generation = generation.load(Ordering::SeqCst);
        // Raw bytes of the rejected records polled: a batch of large bad records ends early, at
        // the merge's own bound in bytes.
        let mut polled_raw = 0usize;
        while polled.len() < settings.pipeline.batch_records && polled_raw <= max_polled_raw {
            // Wait for the first record only: then take what is already here, so a quiet stream
            // is processed at once and a backlog in large batches.
            let left = if polled.is_empty() { deadline.saturating_duration_since(Instant::now()) } else { Duration::ZERO };
            let got = if left.is_zero() {
                consumer.poll(left)
            } else {
                let asked = Instant::now();
                let got = consumer.poll(left);
                t_wait += asked.elapsed();
                got
            };
            match got {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "consumer error");
                    break;
                }
                Some(Ok(m)) => {
                    // A rebalance ran inside this poll (the callback is called from it): what
                    // was polled before belongs to the old assignment and was not processed, so
                    // its offsets were not stored; it is read again from where the state is.
                    let g = generation.load(Ordering::SeqCst);
                    if g != batch_generation {
                        polled.clear();
                        polled_raw = 0;
                        consumed = [0; 3];
                        consumed_bytes = [0; 3];
                        newest = [i64::MIN; 3];
                        batch_generation = g;
                    }
                    let Some(kind) = EventKind::ALL.into_iter().find(|k| kinds[*k as usize] == m.topic()) else { continue };
                    if paused.contains(&(m.partition() as u32, kind as usize)) {
                        // Fetched before its pause: read again after the resume's seek.
                        continue;
                    }
                    let payload = m.payload().unwrap_or_default();
                    let mut decoded = decode(kind, payload, m.key(), &limits).map(Event::into_owned);
                    if m.key().is_none() {
                        decoded = decoded.and_then(|e| on_its_partition(e, m.partition(), partitions));
                    }
                    consumed[kind as usize] += 1;
                    consumed_bytes[kind as usize] += (payload.len() + m.key().map_or(0, <[u8]>::len)) as u64;
                    if let Ok(e) = &decoded {
                        newest[kind as usize] = newest[kind as usize].max(e.ts_ms());
                    }
                    // The raw record goes to the dead-letter topic should it be rejected.
                    let (key, payload) = (m.key().map(<[u8]>::to_vec), payload.to_vec());
                    let pending = Pending { kind, offset: m.offset(), at: i64::MIN, key, payload, decoded };
                    polled_raw += pending.raw_bytes();
                    polled.push((m.partition() as u32, pending));
                }
            }
        }
        if generation.load(Ordering::SeqCst) != batch_generation {
            // The last poll ran a rebalance and returned nothing after it.
            polled.clear();
            consumed = [0; 3];
            consumed_bytes = [0; 3];
            newest = [i64::MIN; 3];
        }
        records += polled.len() as u64;
        let batch_records = polled.len();
        for k in 0..3 {
            metrics.consumed(&kinds[k], consumed[k], consumed_bytes[k]);
            if newest[k] != i64::MIN {
                metrics.source_event(&kinds[k], newest[k]);
            }
        }
        let t1 = Instant::now();
        t_poll += t1 - t0;
        let t2;
        let commit = {
            let mut c = core.lock().expect("core lock");
            while let Ok(report) = restore_rx.try_recv() {
                c.finish_restore(&consumer, report)?;
            }
            let now = Instant::now();
            for (p, r) in polled.drain(..) {
                c.enqueue(p, r, now);
            }
            let tails = tails(&consumer, &c);
            c.pass_markers(&tails);
            c.drain(&tails)?;
            c.bound_buffer(&consumer)?;
            c.drive_idle()?;
            t2 = Instant::now();
            t_process += t2 - t1;
            c.collect()?;
            c.commit_batch()?;
            c.send_pending();
            if batch_records > 0 {
                metrics.batch(batch_records, t1.elapsed().as_secs_f64());
            }
            if last_lag.elapsed() >= Duration::from_secs(1) {
                last_lag = Instant::now();
                for ((k, p), next) in &c.positions {
                    if let Some((_, hi)) = cached_watermarks(&consumer, &c.topics[*k], *p) {
                        metrics.lag(&c.topics[*k], *p, hi - next);
                    }
                }
            }
            positions_tpl(&c.positions, &c.topics)
        };
        t_commit += t2.elapsed();
        // Kafka's committed offsets only serve lag monitoring: once a second is plenty.
        if let Some(tpl) = commit.filter(|_| last_commit.elapsed() >= Duration::from_secs(1)) {
            last_commit = Instant::now();
            if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
                tracing::debug!(error = %e, "offset commit failed (lag monitoring only)");
            }
        }
    }

    shared.not_ready("stopping");
    let cuts = core.lock().expect("core lock").cuts;
    tracing::info!(
        records,
        batches_written_early = cuts,
        poll_s = t_poll.as_secs_f64(),
        process_s = t_process.as_secs_f64(),
        write_and_produce_s = t_commit.as_secs_f64(),
        of_which_waiting_s = t_wait.as_secs_f64(),
        "stopping: finishing the batch"
    );
    let commit = {
        // Only what was processed is committed; buffered records are read again at next start.
        let mut c = core.lock().expect("core lock");
        c.grace = settings.pipeline.shutdown_grace;
        c.settle()?;
        let left = c.outbox.as_ref().map_or(0, |o| o.in_flight.len());
        if left > 0 {
            tracing::warn!(entries = left, "unacknowledged outbox entries stay in the store and are sent at next start");
        }
        positions_tpl(&c.positions, &c.topics)
    };
    if let Some(tpl) = commit {
        let _ = consumer.commit(&tpl, CommitMode::Sync);
    }
    standby_stop.store(true, Ordering::Relaxed);
    {
        let mut c = core.lock().expect("core lock");
        let drops = std::mem::take(&mut c.staged_drops);
        if drops.iter().any(|h| !h.is_finished()) {
            // What the compaction has not dropped yet goes at the next start, in moments (no
            // reading runs then, so whole files go without a look inside).
            tracing::info!("stopping the compaction that gives back restored states' files; the rest goes at the next start");
            c.engine.store().stop_background_work();
        }
        for h in drops {
            let _ = h.join();
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// A record without a key was placed by its producer's partitioner for keyless records (random,
/// or sticky), not by its account: on another partition than the account's, it would give the
/// account a second state (two scores, alerts that contradict each other), owned by whichever
/// instance holds that partition. It is taken only where a record keyed by its `account_id`
/// would have gone (Kafka's murmur2 partitioner, as `replay` places accounts), and dead-lettered
/// as `key_mismatch` anywhere else.
fn on_its_partition(e: Event<'static>, partition: i32, partitions: i32) -> Result<Event<'static>, Reject> {
    let home = crate::partition::partition_for(e.account_id().as_bytes(), partitions.max(1) as u32);
    if i64::from(home) == i64::from(partition) {
        return Ok(e);
    }
    Err(Reject::new(
        crate::event::RejectReason::KeyMismatch,
        format!(
            "the message has no key, and account_id `{}` belongs on partition {home}, not {partition}: producers must key every record by its account_id",
            e.account_id()
        ),
    ))
}

/// Where an empty input queue stands against its topic-partition's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tail {
    /// Nothing more to read right now: every record before `end` (the high watermark) was
    /// received and, its queue being empty, processed.
    CaughtUp { end: i64 },
    /// Records exist beyond what was received: they are on their way.
    Behind,
}

/// The tail of every empty input queue, from the high watermark librdkafka learnt from its last
/// fetch (absent when not known yet).
///
/// How far a queue has read is the later of the record after the last one received and the
/// consumer's position: a topic written by transactional producers (Kafka Streams or Flink with
/// exactly-once, a CDC tool) ends each transaction with a marker that takes an offset and is
/// never handed to the application, so after its last record the high watermark stays one or
/// more past it. librdkafka moves the position over the markers it reads. Without it, such a
/// topic looked behind for as long as it was quiet, and the merge held every other topic's
/// records of the partition until its next transaction. A paused topic-partition's position
/// counts records dropped while paused (read again after its resume's seek, which resets it), so
/// it is not used there.
fn tails(consumer: &BaseConsumer<PipelineContext>, core: &Core) -> FxHashMap<(u32, usize), Tail> {
    let mut out = FxHashMap::default();
    let positions = consumer.position().ok();
    let position = |topic: &str, p: u32| match positions.as_ref()?.find_partition(topic, p as i32)?.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    };
    for (&p, q) in &core.queues {
        if core.restoring.contains_key(&p) {
            continue; // paused: nothing is merged until it resumes
        }
        for k in 0..3 {
            if !q.queues[k].is_empty() {
                continue;
            }
            // Not known from a fetch yet (nothing received since the partition was assigned or
            // resumed): ask the broker, so the merge waits for records that exist instead of
            // guessing with merge_wait. Once records arrive, librdkafka's cache has it.
            let known = cached_watermarks(consumer, &core.topics[k], p as i32).or_else(|| {
                q.last_arrival
                    .is_none()
                    .then(|| consumer.fetch_watermarks(&core.topics[k], p as i32, Duration::from_millis(500)).ok())
                    .flatten()
            });
            let Some((lo, hi)) = known else {
                tracing::debug!(topic = %core.topics[k], partition = p, "high watermark not known yet");
                continue;
            };
            let read = match (q.next_offset[k], (!core.paused.contains(&(p, k))).then(|| position(&core.topics[k], p)).flatten()) {
                (Some(n), Some(o)) => Some(n.max(o)),
                (n, o) => n.or(o),
            };
            tracing::trace!(topic = %core.topics[k], partition = p, lo, hi, next = ?q.next_offset[k], ?read, "tail");
            let caught_up = read.map_or(lo == hi, |n| n >= hi);
            out.insert((p, k), if caught_up { Tail::CaughtUp { end: hi } } else { Tail::Behind });
        }
    }
    out
}

/// librdkafka's cached low and high watermarks of a partition (no network round trip).
fn cached_watermarks(consumer: &BaseConsumer<PipelineContext>, topic: &str, partition: i32) -> Option<(i64, i64)> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut lo, mut hi) = (-1i64, -1i64);
    // SAFETY: the client pointer is valid for the consumer's lifetime; the call only reads
    // librdkafka's cached offsets into the two out-parameters.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut lo,
            &mut hi,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && hi >= 0).then_some((lo.max(0), hi))
}

fn positions_tpl(positions: &FxHashMap<(usize, i32), i64>, topics: &[String; 3]) -> Option<TopicPartitionList> {
    if positions.is_empty() {
        return None;
    }
    let mut tpl = TopicPartitionList::new();
    for ((k, p), o) in positions {
        let _ = tpl.add_partition_offset(&topics[*k], *p, Offset::Offset(*o));
    }
    Some(tpl)
}
