//! The processing driver shared by `replay` and the Kafka pipeline: takes decoded records of a
//! partition in order, keeps stream time and the due-time index, applies and evaluates through
//! the pure core, and writes one RocksDB batch per processing batch (each touched account once,
//! with the input offsets and stream time of the batch). It never talks to Kafka or files;
//! `crate::flow` drives it. How it runs (write-through or write-back, durable, ...) is fixed at
//! [`Engine::open`] by [`Options`]. Its rooms: this file (records in, stream time and timers,
//! evaluation, output), `cache` (accounts in memory within the budget), `persist` (writing to
//! and restoring from the store), `board` (the API's account index).

use std::collections::{BTreeSet, VecDeque};
use std::path::Path;
use std::sync::Arc;

use compact_str::CompactString;
use rustc_hash::FxHashMap;

pub mod board;
mod cache;
mod persist;

use cache::{load_slot, remeasure, slot_bytes, Slot, WarmEntry, WRITE_BACK_SLICE};

use board::{Board, Entry};
use crate::core::ids::KeyedMap;
use crate::core::{evaluate, AccountState, Alert, Applied, Params, ScoreUpdate};
use crate::event::timestamp::day_of;
use crate::event::{Event, EventKind, Reject, RejectReason};
use crate::store::{Budget, Store, StoreBatch, StoreError};

/// Where a record came from: its source (topic, or file in `replay`) and offset (or line).
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub name: &'a str,
    pub offset: i64,
}

/// One input record as the engine takes it: where it came from, its raw bytes (kept only if it
/// is rejected, for the dead-letter topic or the rejects file) and what decoding made of it.
#[derive(Debug)]
pub struct Record<'a, 'e> {
    pub source: Source<'a>,
    /// The Kafka record's key (none in `replay`).
    pub key: Option<&'a [u8]>,
    /// The Kafka record's payload, or the file's line.
    pub raw: &'a [u8],
    pub decoded: Result<&'a Event<'e>, Reject>,
}

impl<'a, 'e> Record<'a, 'e> {
    /// A record without a key whose raw bytes are `raw`.
    pub fn new(source: Source<'a>, raw: &'a [u8], decoded: &'a Result<Event<'e>, Reject>) -> Self {
        Record { source, key: None, raw, decoded: decoded.as_ref().map_err(Reject::clone) }
    }
}

/// A record that was not applied, with where it came from and its raw bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub partition: u32,
    pub source: String,
    pub offset: i64,
    pub reject: Reject,
    pub key: Option<Vec<u8>>,
    pub raw: Vec<u8>,
}

/// How an engine runs, fixed when it is opened.
pub struct Options {
    /// Sync RocksDB's log on each write (the pipeline; `replay` throws its store away).
    pub durable: bool,
    pub budget: Budget,
    /// Write changed accounts only when the cache is over its budget and at `finish`, not at
    /// every `flush` (for `replay`: its store is thrown away and its offsets are not resumed, so
    /// only the states must be right, and an account touched in many batches is written once).
    /// Off: write-through (the pipeline, whose offsets and outbox must land with the states).
    pub write_back: bool,
    /// Track per-account applied offsets and skip records below them (the Kafka pipeline, whose
    /// offsets are per topic-partition; `replay`'s line numbers are per file).
    pub track_applied: bool,
    /// Each flush keeps the encoded states it wrote for `take_captured` (the changelog).
    pub capture_flushed_states: bool,
    /// The API's account index, kept up to date with every account written.
    pub board: Option<Arc<Board>>,
    /// Write account states in this encoding version (`state.upgrade_from`: the release
    /// before's, during a rolling upgrade).
    pub state_write_version: Option<u8>,
    /// Keep score updates in the output; off, they are only counted (`Stats::score_updates`), for
    /// a replay that uses nothing of them but their number.
    pub keep_score_updates: bool,
    /// Alerts go here as they are produced, in order, instead of the output: a timer sweep over
    /// a million accounts can raise hundreds of thousands of alerts within one record, which the
    /// output would hold all at once.
    pub alerts_to: Option<AlertSink>,
    /// Keep a `FeatureRow` of each account's first scoring of each day in the output
    /// (`replay --features`).
    pub feature_rows: bool,
}

/// An account at its first scoring of a day (`Options::feature_rows`): every measure, the score
/// and band, the facts a model of churn reads. A row of `replay --features`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRow {
    pub account_id: CompactString,
    pub day: i32,
    pub score: f64,
    pub band: crate::core::Band,
    pub segment: Option<String>,
    pub tier: crate::core::scorecard::Tier,
    pub arr: Option<f64>,
    pub seats: Option<u32>,
    pub values: crate::core::state::MeasureValues,
}

impl Options {
    /// Write-through, not durable, nothing else on: the base the callers adjust.
    pub fn new(budget: Budget) -> Options {
        Options {
            durable: false,
            budget,
            write_back: false,
            track_applied: false,
            capture_flushed_states: false,
            board: None,
            state_write_version: None,
            keep_score_updates: true,
            alerts_to: None,
            feature_rows: false,
        }
    }
}

/// Takes each alert as it is produced (`Options::alerts_to`).
pub struct AlertSink(pub Box<dyn FnMut(Alert) + Send>);

impl std::fmt::Debug for AlertSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AlertSink")
    }
}

/// What processing produced since the last `take_output`.
#[derive(Debug, Default)]
pub struct Output {
    pub alerts: Vec<Alert>,
    pub scores: Vec<ScoreUpdate>,
    pub rejected: Vec<Rejected>,
    /// Raw bytes of `rejected` (keys and payloads).
    pub rejected_bytes: usize,
    /// Score updates are counted (`Stats::score_updates`) but not kept (`discard_score_updates`).
    discard_scores: bool,
    /// Alerts go here instead of `alerts` (`send_alerts_to`).
    sink: Option<AlertSink>,
    /// Each account's first scoring of each day, with `Options::feature_rows`.
    pub features: Vec<FeatureRow>,
    keep_features: bool,
}

/// Counters since start.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub applied: [u64; crate::event::N_KINDS],
    pub duplicates: u64,
    pub rejected: FxHashMap<RejectReason, u64>,
    pub alerts: FxHashMap<&'static str, u64>,
    pub timer_evaluations: u64,
    /// Timer evaluations whose account was not in memory (read from the store).
    pub timer_reads: u64,
    /// Records skipped because the account's restored state already reflected them.
    pub already_applied: u64,
    /// Stored account states that did not decode: logged, and the account started afresh.
    pub corrupt_states: u64,
    /// Score updates produced (kept in the output or not).
    pub score_updates: u64,
    /// Write-back replays: times the accounts held filled the budget.
    pub spills: u64,
    /// Write-back: changed accounts encoded into the warm tier, and warm accounts written to the
    /// store before the end (the budget needed their room).
    pub demoted: u64,
    pub written_early: u64,
}

#[derive(Default)]
struct PartitionState {
    /// Boxed: a state is ~1.4 KB inline, and a map of them would reserve that per empty bucket.
    accounts: KeyedMap<CompactString, Box<Slot>>,
    /// Write-back only: accounts out of `accounts` whose changes are not in the store yet.
    warm: KeyedMap<CompactString, WarmEntry>,
    due: BTreeSet<(i64, CompactString)>,
    stream_time: Option<i64>,
    stream_time_dirty: bool,
    /// Next offset to read per source, not yet written.
    offsets: FxHashMap<String, i64>,
    dirty: Vec<CompactString>,
}

pub struct Engine {
    params: Params,
    store: Store,
    partitions: FxHashMap<u32, PartitionState>,
    /// What the accounts held in memory take, and may take (the accounts themselves are kept
    /// per partition).
    cache: cache::Cache,
    /// Write dirty accounts only when the cache is full or on `finish` (`replay`), instead of at
    /// every `flush` (the pipeline, whose offsets and outbox must land with the states).
    write_back: bool,
    tick: u64,
    out: Output,
    pub stats: Stats,
    /// The API's account index, updated with every account a flush writes.
    board: Option<Arc<Board>>,
    /// Track per-account applied offsets and skip records below them (the Kafka pipeline, whose
    /// offsets are per topic-partition; `replay`'s line numbers are per file, so it leaves this off).
    track_applied: bool,
    /// Encoded states of the accounts written by the last flush (for the changelog), if asked.
    capture: Option<Vec<(u32, CompactString, Vec<u8>)>>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Memory of one cached account: its state, its key and its map entry.
/// A partition's stream time once an event of `kind` at `ts_ms` is taken: the largest event time
/// seen, except that account records are facts "as of" their ts, not activity, and never move
/// it (a record dated ahead of the activity streams would otherwise fire everyone's timers); nor
/// do the CS team's actions.
fn stream_time_after(current: Option<i64>, kind: EventKind, ts_ms: i64) -> i64 {
    match (current, kind) {
        (Some(s), EventKind::Account | EventKind::Action) => s,
        (Some(s), _) => s.max(ts_ms),
        (None, _) => ts_ms,
    }
}

impl Engine {
    /// Opens the engine on the store at `dir`, its memory held within `budget` (decoded accounts,
    /// RocksDB's block cache and memtables).
    pub fn open(dir: &Path, params: Params, options: Options) -> Result<Engine, EngineError> {
        let Options { durable, budget, write_back, track_applied, capture_flushed_states, board, state_write_version, keep_score_updates, alerts_to, feature_rows } = options;
        let mut store = Store::open(dir, durable, budget)?;
        if let Some(v) = state_write_version {
            store.set_write_version(v);
        }
        let mut engine = Engine {
            params,
            store,
            partitions: FxHashMap::default(),
            cache: cache::Cache::new(budget.accounts() as usize),
            write_back,
            tick: 0,
            out: Output { discard_scores: !keep_score_updates, sink: alerts_to, keep_features: feature_rows, ..Output::default() },
            stats: Stats::default(),
            board,
            track_applied,
            capture: capture_flushed_states.then(Vec::new),
        };
        engine.fit_board();
        Ok(engine)
    }

    /// Encoded states written by flushes since the last call: (partition, account, bytes).
    pub fn take_captured(&mut self) -> Vec<(u32, CompactString, Vec<u8>)> {
        self.capture.as_mut().map(std::mem::take).unwrap_or_default()
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Loads a partition's due index and stream time (idempotent).
    pub fn open_partition(&mut self, partition: u32) -> Result<(), EngineError> {
        if self.partitions.contains_key(&partition) {
            return Ok(());
        }
        let mut ps = PartitionState::default();
        ps.due = self.store.due_entries(partition)?.into_iter().collect();
        ps.stream_time = self.store.offsets(partition)?.1;
        self.partitions.insert(partition, ps);
        Ok(())
    }

    /// Forgets a partition's in-memory state (after a flush; its state stays in the store).
    pub fn close_partition(&mut self, partition: u32) {
        if let Some(ps) = self.remove_partition(partition) {
            debug_assert!(ps.dirty.is_empty(), "closing a partition with unflushed state");
        }
    }

    /// Stream time of a partition (highest event time seen), if any.
    pub fn stream_time(&self, partition: u32) -> Option<i64> {
        self.partitions.get(&partition).and_then(|p| p.stream_time)
    }

    /// Processes one record of `partition`, in partition order (see `crate::flow::apply`, which
    /// moves stream time and fires the timers due before it first, in slices).
    pub fn process(&mut self, partition: u32, record: Record<'_, '_>) -> Result<(), EngineError> {
        let Record { source, key, raw, decoded } = record;
        self.open_partition(partition)?;
        let offsets = &mut self.partitions.get_mut(&partition).expect("opened").offsets;
        match offsets.get_mut(source.name) {
            Some(o) => *o = source.offset + 1,
            None => {
                offsets.insert(source.name.to_string(), source.offset + 1);
            }
        }
        let raw = (key, raw);
        let event = match decoded {
            Ok(e) => e,
            Err(reject) => {
                self.reject(partition, source, raw, reject);
                return Ok(());
            }
        };
        let ts = event.ts_ms();
        let ps = self.partitions.get_mut(&partition).expect("opened");
        let stream_time = stream_time_after(ps.stream_time, event.kind(), ts);
        if event.kind().is_activity() {
            let horizon = day_of(stream_time) - self.params.state.retention_days as i32 + 1;
            if day_of(ts) < horizon {
                let detail = format!(
                    "event day {} is before the retention horizon {} (stream time {})",
                    crate::event::timestamp::format_day(day_of(ts)),
                    crate::event::timestamp::format_day(horizon),
                    crate::event::timestamp::format_ms(stream_time)
                );
                self.reject(partition, source, raw, Reject::new(RejectReason::TooLate, detail));
                return Ok(());
            }
        }
        self.set_stream_time(partition, stream_time);
        self.fire_due(partition, stream_time)?;
        self.apply_event(partition, source, raw, event, stream_time)
    }

    /// Applies a decoded event in time to its account (loaded if need be) and re-scores it if
    /// a measure input changed. The record may still be refused: already applied (restored from
    /// the changelog with it), its account over `state.max_account_bytes`, too many tickets.
    fn apply_event(&mut self, partition: u32, source: Source<'_>, raw: (Option<&[u8]>, &[u8]), event: &Event<'_>, stream_time: i64) -> Result<(), EngineError> {
        self.tick += 1;
        let PartitionState { accounts, warm, due, dirty, .. } = self.partitions.get_mut(&partition).expect("opened");
        let id = event.account_id();
        let (slot, _) = load_slot(&self.store, accounts, warm, dirty, partition, id, &mut self.stats.corrupt_states, &mut self.cache.bytes, &mut self.cache.warm_bytes)?;
        if self.track_applied {
            let k = event.kind() as usize;
            if source.offset < slot.state.applied[k] {
                // Restored from the changelog with this record already in it.
                self.stats.already_applied += 1;
                return Ok(());
            }
            slot.state.applied[k] = source.offset + 1;
            slot.last_used = self.tick;
            if !slot.dirty {
                slot.dirty = true;
                dirty.push(id.into());
            }
        }
        if event.kind().is_activity() && slot.state.growable_bytes() > self.params.state.max_account_bytes {
            // Windows may have shed users and ids since the last event: forget them first.
            slot.state.advance(day_of(stream_time), &self.params.state);
            remeasure(slot, id, &mut self.cache.bytes);
            let grown = slot.state.growable_bytes();
            if grown > self.params.state.max_account_bytes {
                let detail = format!(
                    "the account's users, features and event ids take {grown} bytes, more than state.max_account_bytes ({}); its usage and support events are refused until they age out of its windows",
                    self.params.state.max_account_bytes
                );
                self.reject(partition, source, raw, Reject::new(RejectReason::AccountTooLarge, detail));
                return Ok(());
            }
        }
        // What an event that changes no measure input can still resize (see `Applied::Unchanged`).
        let sizes = (slot.state.day, slot.state.seen_ids.capacity(), slot.state.usage.heap_bytes());
        slot.state.advance(day_of(stream_time), &self.params.state);
        match slot.state.apply(event, day_of(stream_time), &self.params.state) {
            Applied::Duplicate => {
                self.stats.duplicates += 1;
                return Ok(());
            }
            Applied::TooManyTickets => {
                let detail = format!(
                    "the account already has {} open tickets (events.max_open_tickets)",
                    slot.state.tickets.open_count()
                );
                self.reject(partition, source, raw, Reject::new(RejectReason::TooManyTickets, detail));
                return Ok(());
            }
            Applied::Unchanged => {
                self.stats.applied[event.kind() as usize] += 1;
                // Most events of a busy account are this one: a user and feature already seen
                // today. Such an event only adds to a day count already held, so unless the day
                // moved or the de-duplication map grew, the state's size is what it was.
                if sizes != (slot.state.day, slot.state.seen_ids.capacity(), slot.state.usage.heap_bytes()) {
                    remeasure(slot, id, &mut self.cache.bytes);
                }
                debug_assert_eq!(slot.bytes, slot_bytes(id, &slot.state), "an unchanged event resized the state");
                slot.last_used = self.tick;
                if !slot.dirty {
                    slot.dirty = true;
                    dirty.push(id.into());
                }
                return Ok(());
            }
            Applied::Changed => self.stats.applied[event.kind() as usize] += 1,
        }
        Self::evaluate_slot(&self.params, slot, due, dirty, id, stream_time, self.tick, &mut self.out, &mut self.stats, &mut self.cache.bytes);
        Ok(())
    }

    fn reject(&mut self, partition: u32, source: Source<'_>, (key, raw): (Option<&[u8]>, &[u8]), reject: Reject) {
        *self.stats.rejected.entry(reject.reason).or_default() += 1;
        self.out.rejected_bytes += key.map_or(0, <[u8]>::len) + raw.len();
        self.out.rejected.push(Rejected {
            partition,
            source: source.name.to_string(),
            offset: source.offset,
            reject,
            key: key.map(<[u8]>::to_vec),
            raw: raw.to_vec(),
        });
    }

    /// Re-scores every account of the partition due at or before `stream_time - grace`.
    fn fire_due(&mut self, partition: u32, stream_time: i64) -> Result<(), EngineError> {
        self.fire_due_bounded(partition, stream_time, false).map(|_| ())
    }

    /// Sets a partition's stream time (marking it to be written if it moved).
    fn set_stream_time(&mut self, partition: u32, to_ms: i64) {
        let ps = self.partitions.get_mut(&partition).expect("opened");
        if ps.stream_time != Some(to_ms) {
            ps.stream_time = Some(to_ms);
            ps.stream_time_dirty = true;
        }
    }

    /// What [`Engine::process`] does first for an event of `kind` at `ts_ms`, but in slices: moves
    /// the partition's stream time as that event will and re-scores the accounts that become
    /// due, stopping once [`Engine::over_budget`] (at least one account each call). Returns
    /// whether accounts are still due: the caller writes its batch and calls again, and the
    /// event, processed after, finds none left. The outcome is the same as `process` alone: the
    /// same accounts re-scored at the same stream time, in the same order, before the event.
    /// (A day's timers reach every account, and the pipeline writes a batch whole: without
    /// slices, a million accounts would be decoded at once.)
    pub fn fire_due_before(&mut self, partition: u32, kind: EventKind, ts_ms: i64) -> Result<bool, EngineError> {
        self.open_partition(partition)?;
        let to = stream_time_after(self.stream_time(partition), kind, ts_ms);
        self.set_stream_time(partition, to);
        self.fire_due_bounded(partition, to, true)
    }

    /// Moves a partition's stream time forward to `to_ms` without an event (idle partitions, the
    /// end of a replay) and re-scores the accounts that become due, in slices as
    /// [`Engine::fire_due_before`]: returns whether accounts are still due (write the batch, then
    /// call again; `crate::flow::advance` does).
    pub fn advance_time(&mut self, partition: u32, to_ms: i64) -> Result<bool, EngineError> {
        self.open_partition(partition)?;
        if self.stream_time(partition).is_some_and(|s| s > to_ms) {
            return Ok(false);
        }
        self.set_stream_time(partition, to_ms);
        self.fire_due_bounded(partition, to_ms, true)
    }

    /// Re-scores the partition's accounts due at or before `stream_time - grace`; if `bounded`,
    /// stops once over budget with accounts still due, and says so.
    fn fire_due_bounded(&mut self, partition: u32, stream_time: i64, bounded: bool) -> Result<bool, EngineError> {
        let watermark = stream_time - self.params.grace_ms;
        loop {
            let PartitionState { accounts, warm, due, dirty, .. } = self.partitions.get_mut(&partition).expect("opened");
            let Some((at, _)) = due.first() else { break };
            if *at > watermark {
                break;
            }
            let (_, id) = due.pop_first().expect("non-empty");
            self.tick += 1;
            let (slot, from_store) = load_slot(&self.store, accounts, warm, dirty, partition, &id, &mut self.stats.corrupt_states, &mut self.cache.bytes, &mut self.cache.warm_bytes)?;
            // The index entry is gone; make the slot agree before re-evaluating.
            slot.state.score.next_due_ms = None;
            self.stats.timer_evaluations += 1;
            Self::evaluate_slot(&self.params, slot, due, dirty, &id, stream_time, self.tick, &mut self.out, &mut self.stats, &mut self.cache.bytes);
            if from_store {
                self.stats.timer_reads += 1;
                // Read from the store only for its timer: first to make room again. A day's
                // timers visit every account in the same order day after day, and with plain
                // recency the accounts a sweep reads would push out those it has yet to reach
                // (the next ones it needs), so no sweep over more accounts than memory holds
                // would ever find one in memory; this way the accounts held stay held, and a
                // sweep finds them.
                slot.last_used = 0;
            }
            // A day's timers can reach every account: the cache must not hold them all at once.
            self.spill_if_full()?;
            if bounded && self.over_budget() {
                let ps = self.partitions.get(&partition).expect("opened");
                return Ok(ps.due.first().is_some_and(|(at, _)| *at <= watermark));
            }
        }
        Ok(false)
    }

    /// Re-scores one loaded account and keeps the due index and the batch's dirty list right.
    #[allow(clippy::too_many_arguments)]
    fn evaluate_slot(
        params: &Params,
        slot: &mut Slot,
        due: &mut BTreeSet<(i64, CompactString)>,
        dirty: &mut Vec<CompactString>,
        id: &str,
        now_ms: i64,
        tick: u64,
        out: &mut Output,
        stats: &mut Stats,
        cache_bytes: &mut usize,
    ) {
        let old_due = slot.state.score.next_due_ms;
        let scored_day = slot.state.score.history.back().map(|h| h.day);
        let ev = evaluate(&mut slot.state, id, now_ms, params);
        if out.keep_features {
            let today = day_of(now_ms);
            let s = &slot.state;
            if let (Some(last), Some(h)) = (&s.score.last, s.score.history.back()) {
                if h.day == today && scored_day != Some(today) && day_of(last.at_ms) == today {
                    out.features.push(FeatureRow {
                        account_id: id.into(),
                        day: today,
                        score: last.score,
                        band: last.band,
                        segment: s.facts.segment.clone(),
                        tier: params.tiers.of(s.facts.segment.as_deref(), s.facts.arr),
                        arr: s.facts.arr,
                        seats: s.facts.seats,
                        values: last.values.to_array(),
                    });
                }
            }
        }
        let new_due = slot.state.score.next_due_ms;
        slot.last_used = tick;
        if !slot.dirty {
            slot.dirty = true;
            dirty.push(id.into());
        }
        if old_due != new_due {
            if let Some(t) = old_due {
                due.remove(&(t, CompactString::from(id)));
            }
            if let Some(t) = new_due {
                due.insert((t, id.into()));
            }
        }
        for a in &ev.alerts {
            *stats.alerts.entry(a.rule.name()).or_default() += 1;
        }
        match &mut out.sink {
            Some(sink) => ev.alerts.into_iter().for_each(&mut sink.0),
            None => out.alerts.extend(ev.alerts),
        }
        if let Some(u) = ev.score_update {
            stats.score_updates += 1;
            if !out.discard_scores {
                out.scores.push(u);
            }
        }
        remeasure(slot, id, cache_bytes);
    }

    /// Raw bytes of the rejects produced since the last `take_output` (held until then).
    pub fn pending_reject_bytes(&self) -> usize {
        self.out.rejected_bytes
    }

    /// Alerts, score updates and rejects produced since the last call.
    pub fn take_output(&mut self) -> Output {
        let (discard_scores, keep_features) = (self.out.discard_scores, self.out.keep_features);
        let sink = self.out.sink.take();
        let out = std::mem::take(&mut self.out);
        self.out.discard_scores = discard_scores;
        self.out.keep_features = keep_features;
        self.out.sink = sink;
        out
    }

    /// Takes a partition's in-memory state out, its accounts no longer counted in the cache.
    fn remove_partition(&mut self, partition: u32) -> Option<PartitionState> {
        let ps = self.partitions.remove(&partition)?;
        debug_assert!(ps.warm.is_empty(), "write-back partitions are never removed");
        self.cache.bytes -= ps.accounts.values().map(|s| s.bytes).sum::<usize>();
        Some(ps)
    }

    /// Partitions seen so far.
    pub fn partitions(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.partitions.keys().copied().collect();
        v.sort_unstable();
        v
    }
}
