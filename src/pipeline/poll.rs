//! Polling one batch of input records from Kafka: decoded (a keyless record checked against its
//! account's partition), counted, and kept with their raw bytes for the merge.

use super::*;

/// Polls batches: waits up to `pipeline.batch_wait` for a first record, then takes what is
/// already fetched, up to `pipeline.batch_records` (or the merge's bound in raw bytes).
pub(super) struct Poller {
    /// The records of the last poll, by partition (the caller drains them).
    pub(super) polled: Vec<(u32, Pending)>,
    /// Time spent waiting for a first record (nothing had arrived).
    pub(super) waited: Duration,
    batch_records: usize,
    batch_wait: Duration,
    /// Bumped by each rebalance: records polled before one are dropped (read again).
    generation: Arc<std::sync::atomic::AtomicU64>,
    partitions: i32,
}

impl Poller {
    pub(super) fn new(settings: &Settings, generation: Arc<std::sync::atomic::AtomicU64>, partitions: i32) -> Poller {
        Poller {
            polled: Vec::with_capacity(settings.pipeline.batch_records),
            waited: Duration::ZERO,
            batch_records: settings.pipeline.batch_records,
            batch_wait: settings.pipeline.batch_wait,
            generation,
            partitions,
        }
    }

    /// Polls one batch into `polled` and counts it in the metrics.
    pub(super) fn poll(&mut self, consumer: &BaseConsumer<PipelineContext>, core: &Mutex<Core>, metrics: &crate::metrics::Metrics) {
        let deadline = Instant::now() + self.batch_wait;
        let (kinds, limits, paused, max_polled_raw) = {
            let c = core.lock().expect("core lock");
            (c.topics.clone(), DecodeLimits { now_ms: now_ms(), ..c.limits }, c.paused.clone(), c.max_buffered_bytes)
        };
        let mut tally = Tally::default();
        let mut batch_generation = self.generation.load(Ordering::SeqCst);
        // Raw bytes of the records polled: a batch of large bad records ends early, at the
        // merge's own bound in bytes.
        let mut polled_raw = 0usize;
        while self.polled.len() < self.batch_records && polled_raw <= max_polled_raw {
            // Wait for the first record only: then take what is already here, so a quiet stream
            // is processed at once and a backlog in large batches.
            let left = if self.polled.is_empty() { deadline.saturating_duration_since(Instant::now()) } else { Duration::ZERO };
            let asked = (!left.is_zero()).then(Instant::now);
            let got = consumer.poll(left);
            if let Some(asked) = asked {
                self.waited += asked.elapsed();
            }
            let m = match got {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "consumer error");
                    break;
                }
                Some(Ok(m)) => m,
            };
            // A rebalance ran inside this poll (the callback is called from it): what was polled
            // before belongs to the old assignment and was not processed, so its offsets were not
            // stored; it is read again from where the state is.
            let g = self.generation.load(Ordering::SeqCst);
            if g != batch_generation {
                self.polled.clear();
                polled_raw = 0;
                tally = Tally::default();
                batch_generation = g;
            }
            let Some(kind) = EventKind::ALL.into_iter().find(|k| kinds[*k as usize] == m.topic()) else { continue };
            if paused.contains(&(m.partition() as u32, kind as usize)) {
                // Fetched before its pause: read again after the resume's seek.
                continue;
            }
            let pending = self.pending(&m, kind, &limits);
            tally.count(&pending);
            polled_raw += pending.raw_bytes();
            self.polled.push((m.partition() as u32, pending));
        }
        if self.generation.load(Ordering::SeqCst) != batch_generation {
            // The last poll ran a rebalance and returned nothing after it.
            self.polled.clear();
            tally = Tally::default();
        }
        for k in 0..crate::event::N_KINDS {
            metrics.consumed(&kinds[k], tally.consumed[k], tally.bytes[k]);
            if tally.newest[k] != i64::MIN {
                metrics.source_event(&kinds[k], tally.newest[k]);
            }
        }
    }

    /// A polled message decoded (a keyless one checked against its account's partition), kept
    /// with its raw bytes: should it be rejected, by decoding or by the engine, the dead-letter
    /// topic gets it as it came.
    fn pending(&self, m: &rdkafka::message::BorrowedMessage<'_>, kind: EventKind, limits: &DecodeLimits) -> Pending {
        let payload = m.payload().unwrap_or_default();
        let mut decoded = decode(kind, payload, m.key(), limits).map(Event::into_owned);
        if m.key().is_none() {
            decoded = decoded.and_then(|e| on_its_partition(e, m.partition(), self.partitions));
        }
        Pending { kind, offset: m.offset(), at: i64::MIN, key: m.key().map(<[u8]>::to_vec), payload: payload.to_vec(), decoded }
    }
}

/// Records, bytes and the newest event time polled per input topic, for the metrics.
struct Tally {
    consumed: [u64; crate::event::N_KINDS],
    bytes: [u64; crate::event::N_KINDS],
    newest: [i64; crate::event::N_KINDS],
}

impl Default for Tally {
    fn default() -> Self {
        Tally { consumed: [0; crate::event::N_KINDS], bytes: [0; crate::event::N_KINDS], newest: [i64::MIN; crate::event::N_KINDS] }
    }
}

impl Tally {
    fn count(&mut self, p: &Pending) {
        let k = p.kind as usize;
        self.consumed[k] += 1;
        self.bytes[k] += p.raw_bytes() as u64;
        if let Ok(e) = &p.decoded {
            self.newest[k] = self.newest[k].max(e.ts_ms());
        }
    }
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
