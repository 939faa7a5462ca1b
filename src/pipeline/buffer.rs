//! The records polled from Kafka waiting in their partition's merge (`crate::flow::merge`):
//! queued per partition and input topic, held to a bound (fetching pauses past it), taken in
//! merge order once no topic that may bring an earlier record is still expected, and applied
//! through `crate::flow::apply`. Also the tails of the input topics (caught up, or behind).

use super::*;
use crate::event::N_KINDS;

/// A polled record waiting for its turn in its partition's event-time merge.
pub(super) struct Pending {
    pub(super) kind: EventKind,
    pub(super) offset: i64,
    /// Its merge time ([`Placer::place`], set when it is queued).
    pub(super) at: i64,
    pub(super) key: Option<Vec<u8>>,
    /// The raw record, for the dead-letter topic should it be rejected: by decoding (then up to
    /// `events.max_record_bytes` and more) or by the engine.
    pub(super) payload: Vec<u8>,
    pub(super) decoded: Result<Event<'static>, Reject>,
}

impl Pending {
    /// Bytes of the raw record held.
    pub(super) fn raw_bytes(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len) + self.payload.len()
    }
}

/// The three input queues of one partition number (co-partitioned topics).
#[derive(Default)]
pub(super) struct PartitionQueues {
    pub(super) queues: [VecDeque<Pending>; N_KINDS],
    /// Raw bytes held by each queue's records (`Pending::raw_bytes`).
    pub(super) raw_bytes: [usize; N_KINDS],
    /// Since when each queue has been empty.
    pub(super) empty_since: [Option<Instant>; N_KINDS],
    /// Where each queue's records go in the merge.
    pub(super) placers: [Placer; N_KINDS],
    /// Next offset this instance will receive per input topic, when known.
    pub(super) next_offset: [Option<i64>; N_KINDS],
    pub(super) last_arrival: Option<Instant>,
}

impl Core {
    pub(super) fn enqueue(&mut self, partition: u32, mut p: Pending, now: Instant) {
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
    pub(super) fn bound_buffer(&mut self, consumer: &BaseConsumer<PipelineContext>) -> Result<()> {
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
                for k in 0..N_KINDS {
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
    pub(super) fn drain(&mut self, tails: &FxHashMap<(u32, usize), Tail>) -> Result<()> {
        let now = Instant::now();
        let topics = self.topics.clone();
        let mut parts: Vec<u32> = self.queues.keys().copied().collect();
        parts.sort_unstable();
        for p in parts {
            loop {
                let q = self.queues.get_mut(&p).expect("listed");
                let heads: [Head; N_KINDS] = std::array::from_fn(|k| match q.queues[k].front() {
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
    pub(super) fn pass_markers(&mut self, tails: &FxHashMap<(u32, usize), Tail>) {
        for (&(p, k), tail) in tails {
            if let Tail::CaughtUp { end } = *tail {
                let at = self.positions.entry((k, p as i32)).or_insert(end);
                *at = (*at).max(end);
            }
        }
    }

    /// Moves stream time of idle partitions to the wall clock so silent accounts are re-scored.
    pub(super) fn drive_idle(&mut self) -> Result<()> {
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

}

/// Where an empty input queue stands against its topic-partition's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tail {
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
pub(super) fn tails(consumer: &BaseConsumer<PipelineContext>, core: &Core) -> FxHashMap<(u32, usize), Tail> {
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
        for k in 0..N_KINDS {
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
pub(super) fn cached_watermarks(consumer: &BaseConsumer<PipelineContext>, topic: &str, partition: i32) -> Option<(i64, i64)> {
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
