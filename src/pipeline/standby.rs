//! Standby replicas (`state.standby_replicas >= 1`): this instance follows the changelog of every
//! partition it does not own and keeps a warm copy in its own store, so taking a partition over
//! needs no restore.
//!
//! Correctness rests on three rules:
//! - **Owned partitions are never written.** The set of owned partitions and the standby's writes
//!   share one lock; the rebalance callback adds a partition to the set before the engine uses it.
//! - **A copy is used only when caught up.** On takeover the copy is kept only if the standby had
//!   applied its changelog partition up to the current end: then it equals a full restore
//!   (latest state per account, latest checkpoint; states after the checkpoint are a tail, handled
//!   by the per-account applied offsets as in a restore). Otherwise the partition is restored.
//!   Halfway through a compacted log a state can be *older* than the checkpoint read so far
//!   (compaction removed the version it covers; the newer one comes later), so a copy that is
//!   not caught up is never trusted.
//! - **Only what decodes is written.** Each record is decoded before it is written; one that does
//!   not is counted, logged and skipped (the copy keeps the account's previous version, as a
//!   restore would: see `changelog`'s header).
//! - **Following starts from a clean slate.** When a partition starts being followed, its local
//!   offsets and pending changelog marks are deleted (the copy is "unknown" until caught up), and
//!   it is reported as touched: on takeover its due-time index is rebuilt from the states and the
//!   outbox entries the last run left for it are dropped (its new owner regenerated them).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a partition must stay unowned before the standby follows it.
const FOLLOW_AFTER: Duration = Duration::from_secs(10);

use anyhow::{Context as _, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rustc_hash::FxHashSet;

use super::changelog::{decode_record, Record};
use crate::metrics::Metrics;
use crate::store::Store;

/// What the standby shares with the pipeline.
#[derive(Default)]
pub struct Shared {
    /// Partitions this instance owns: never written by the standby. The lock is held for every
    /// standby write.
    pub owned: Mutex<FxHashSet<u32>>,
    /// Per followed partition: the next changelog offset to apply.
    pub position: Mutex<BTreeMap<u32, i64>>,
    /// Partitions the standby has written since they were last owned.
    pub touched: Mutex<FxHashSet<u32>>,
    /// Set at the first assignment: the standby starts only once it knows what is owned.
    pub started: AtomicBool,
}

impl Shared {
    /// The next changelog offset the standby would apply for `partition`, if it follows it.
    pub fn position(&self, partition: u32) -> Option<i64> {
        self.position.lock().expect("standby lock").get(&partition).copied()
    }
}

/// Follows the changelog partitions not in `shared.owned` until `stop`.
pub fn run(
    mut config: ClientConfig,
    topic: String,
    partitions: u32,
    store: Store,
    shared: Arc<Shared>,
    metrics: &Metrics,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let consumer: BaseConsumer = config
        .set("group.id", "kizashi-standby")
        .set("enable.auto.commit", "false")
        .set("fetch.queue.backoff.ms", "10")
        .create()
        .context("creating the standby reader")?;
    let mut followed: FxHashSet<u32> = FxHashSet::default();
    // A partition is followed only once it has been unowned for a while: a rebalance revokes and
    // gives back partitions within a second or two, and following one wipes its local offsets.
    let mut unowned_since: BTreeMap<u32, Instant> = BTreeMap::new();
    while !stop.load(Ordering::Relaxed) {
        if !shared.started.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let want = to_follow(&shared, partitions, &mut unowned_since);
        if want != followed {
            follow(&consumer, &topic, &store, &shared, &want, &followed)?;
            followed = want;
        }
        let Some(m) = consumer.poll(Duration::from_millis(100)) else { continue };
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "standby read error");
                continue;
            }
        };
        let p = m.partition() as u32;
        let owned = shared.owned.lock().expect("standby lock");
        if owned.contains(&p) || !followed.contains(&p) {
            continue;
        }
        if let (Some(k), Some(v)) = (m.key(), m.payload()) {
            apply(&store, metrics, p, m.offset(), k, v)?;
        }
        shared.position.lock().expect("standby lock").insert(p, m.offset() + 1);
        drop(owned);
    }
    Ok(())
}

/// The partitions to follow now: those unowned for `FOLLOW_AFTER` (`unowned_since` keeps since
/// when each partition has been unowned).
fn to_follow(shared: &Shared, partitions: u32, unowned_since: &mut BTreeMap<u32, Instant>) -> FxHashSet<u32> {
    let owned = shared.owned.lock().expect("standby lock");
    let now = Instant::now();
    for p in 0..partitions {
        if owned.contains(&p) {
            unowned_since.remove(&p);
        } else {
            unowned_since.entry(p).or_insert(now);
        }
    }
    unowned_since.iter().filter(|(_, t)| now.duration_since(**t) >= FOLLOW_AFTER).map(|(p, _)| *p).collect()
}

/// Assigns the reader the partitions in `want`: each from its position, a newly followed one
/// from the start (after `start_following`); positions of partitions no longer followed go.
fn follow(consumer: &BaseConsumer, topic: &str, store: &Store, shared: &Shared, want: &FxHashSet<u32>, followed: &FxHashSet<u32>) -> Result<()> {
    let mut tpl = TopicPartitionList::new();
    let mut position = shared.position.lock().expect("standby lock");
    position.retain(|p, _| want.contains(p));
    for &p in want {
        if !followed.contains(&p) {
            start_following(store, shared, p)?;
            position.insert(p, 0);
        }
        let from = position.get(&p).copied().unwrap_or(0);
        tpl.add_partition_offset(topic, p as i32, Offset::Offset(from))?;
    }
    drop(position);
    consumer.assign(&tpl).context("assigning the standby reader")
}

/// Writes one changelog record of partition `p` to the copy, if it decodes (a checkpoint's
/// offsets and stream time, or an account's state); one that does not is counted and logged.
fn apply(store: &Store, metrics: &Metrics, p: u32, offset: i64, k: &[u8], v: &[u8]) -> Result<()> {
    let mut b = store.batch();
    match decode_record(p, k, v) {
        Ok(Record::Checkpoint(cp)) => {
            for (source, next) in &cp.offsets {
                b.put_offset(p, source, *next);
            }
            if let Some(t) = cp.stream_time {
                b.put_stream_time(p, t);
            }
        }
        Ok(Record::State { account, state }) => b.put_account_encoded(p, account, v, &crate::store::board_entry::entry_bytes(p, &state)),
        Err(e) => metrics.changelog_corrupt("standby", p, offset, k, &e),
    }
    if !b.is_empty() {
        store.write(b)?;
    }
    Ok(())
}

/// A partition starts being followed: its copy is unknown until caught up.
fn start_following(store: &Store, shared: &Shared, partition: u32) -> Result<()> {
    let mut b = store.batch();
    b.delete_offsets(partition);
    for (p, id) in store.changelog_pending()?.into_iter().filter(|(p, _)| *p == partition) {
        b.delete_changelog_pending(p, &id);
    }
    store.write(b)?;
    shared.touched.lock().expect("standby lock").insert(partition);
    Ok(())
}
