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

mod buffer;
pub mod changelog;
mod client;
mod commit;
mod rebalance;
mod topics;
mod standby;
pub mod outbox;
mod poll;

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
use buffer::{cached_watermarks, tails, PartitionQueues, Pending};
use commit::positions_tpl;
use rebalance::{PipelineContext, RestoreReport};
pub use topics::check_topics;
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

/// What the processing loop and the rebalance callback share (they run on the same thread; the
/// mutex only satisfies the `Sync` bound of librdkafka's context).
struct Core {
    engine: Engine,
    queues: FxHashMap<u32, PartitionQueues>,
    /// The input topics, by kind (shared with each drain, which lends their names to records).
    topics: Arc<[String; crate::event::N_KINDS]>,
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
    /// An error met inside librdkafka's rebalance callback, which cannot return one: the loop
    /// stops with it after the poll.
    fatal: Option<anyhow::Error>,
}

impl Core {
    fn kind_of(&self, topic: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| self.topics[*k as usize] == topic)
    }

}

/// Runs until `stop` is set (SIGTERM/SIGINT in `kizashi run`), reporting to `shared` (metrics,
/// readiness, the API's index); serves no HTTP itself ([`crate::cmd::run`] opens the port).
pub fn run_with(settings: &Settings, stop: Arc<AtomicBool>, shared: Arc<Status>) -> Result<()> {
    let (core, leftover, restore_rx) = open_core(settings, &shared)?;
    let generation = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let consumer = create_consumer(settings, &core, &generation)?;
    shared.not_ready(format!("connecting to Kafka at {}", settings.kafka.brokers));
    let partitions = check_topics(settings, &consumer)?;
    tracing::info!(partitions, brokers = %settings.kafka.brokers, "input topics are co-partitioned");
    let standby_stop = Arc::new(AtomicBool::new(false));
    start_outputs(settings, &core, leftover, partitions, &shared, &standby_stop)?;

    shared.not_ready("waiting for partition assignment");
    let t = &settings.kafka.topics;
    consumer.subscribe(&[&t.usage, &t.support, &t.accounts, &t.actions]).context("subscribing to the input topics")?;
    let mut poller = poll::Poller::new(settings, generation, partitions);
    let mut clock = LoopClock::default();
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        poller.poll(&consumer, &core, &shared.metrics);
        if let Some(e) = core.lock().expect("core lock").fatal.take() {
            return Err(e);
        }
        let t1 = Instant::now();
        clock.poll += t1 - t0;
        clock.records += poller.polled.len() as u64;
        let commit = process_batch(&core, &consumer, &restore_rx, &mut poller.polled, &mut clock, t1)?;
        // Kafka's committed offsets only serve lag monitoring: once a second is plenty.
        if let Some(tpl) = commit.filter(|_| clock.last_commit.elapsed() >= Duration::from_secs(1)) {
            clock.last_commit = Instant::now();
            if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
                tracing::debug!(error = %e, "offset commit failed (lag monitoring only)");
            }
        }
    }
    clock.poll_wait = poller.waited;
    shut_down(settings, &core, &consumer, &standby_stop, &clock, &shared)
}

/// Where the loop's time goes (logged at shutdown): polling (of which waiting for a first
/// record), processing, writing and producing.
struct LoopClock {
    poll: Duration,
    poll_wait: Duration,
    process: Duration,
    commit: Duration,
    records: u64,
    last_lag: Instant,
    last_commit: Instant,
}

impl Default for LoopClock {
    fn default() -> Self {
        LoopClock {
            poll: Duration::ZERO,
            poll_wait: Duration::ZERO,
            process: Duration::ZERO,
            commit: Duration::ZERO,
            records: 0,
            last_lag: Instant::now(),
            last_commit: Instant::now(),
        }
    }
}

/// Opens the state store and builds the core; returns it with the outbox entries the last run
/// left and where the changelog readers report.
#[allow(clippy::type_complexity)]
fn open_core(settings: &Settings, shared: &Arc<Status>) -> Result<(Arc<Mutex<Core>>, Vec<(u64, Vec<u8>)>, std::sync::mpsc::Receiver<RestoreReport>)> {
    let t = &settings.kafka.topics;
    shared.not_ready("opening the state store");
    let options = crate::engine::Options {
        durable: true,
        track_applied: true,
        capture_flushed_states: settings.kafka.changelog_topic().is_some(),
        board: Some(shared.board.clone()),
        state_write_version: settings.state.upgrade_from,
        ..crate::engine::Options::new(settings.state.budget())
    };
    let engine = Engine::open(&settings.state.dir, Params::new(settings), options)
        .with_context(|| format!("opening state store at {}", settings.state.dir.display()))?;
    if let Some(v) = settings.state.upgrade_from {
        tracing::info!(version = v, "state.upgrade_from: account states are written in the release before's encoding (a rolling upgrade); remove it once every instance runs this release");
    }
    // The account index is loaded per partition as partitions are assigned.
    shared.attach_store(engine.store(), false)?;
    let leftover = engine.store().outbox()?;
    let next_seq = leftover.last().map_or(0, |(s, _)| s + 1);
    let (restore_tx, restore_rx) = std::sync::mpsc::channel::<RestoreReport>();
    let core = Arc::new(Mutex::new(Core {
        engine,
        queues: FxHashMap::default(),
        topics: Arc::new([t.usage.clone(), t.support.clone(), t.accounts.clone(), t.actions.clone()]),
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
        max_buffered_bytes: client::kafka_queue_bytes(settings) as usize,
        paused: Vec::new(),
        fatal: None,
    }));

    Ok((core, leftover, restore_rx))
}

/// The consumer of the three input topics, with the rebalance callback on `core`.
fn create_consumer(settings: &Settings, core: &Arc<Mutex<Core>>, generation: &Arc<std::sync::atomic::AtomicU64>) -> Result<BaseConsumer<PipelineContext>> {
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
    Ok(consumer)
}

/// The producer of alerts, scores and dead letters (sending what the last run left), the
/// changelog writer and the standby replica, as configured.
fn start_outputs(
    settings: &Settings,
    core: &Arc<Mutex<Core>>,
    leftover: Vec<(u64, Vec<u8>)>,
    partitions: i32,
    shared: &Arc<Status>,
    standby_stop: &Arc<AtomicBool>,
) -> Result<()> {
    let t = &settings.kafka.topics;
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
                client::kafka_queue_bytes(settings) as usize,
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
    Ok(())
}

/// One turn of the loop after polling: finished restorations, the polled records queued and
/// applied in merge order, the buffer bounded, idle partitions moved on, the batch written and
/// produced (`polled` is left empty, its capacity kept). Returns the offsets to commit for lag
/// monitoring.
fn process_batch(
    core: &Mutex<Core>,
    consumer: &BaseConsumer<PipelineContext>,
    restore_rx: &std::sync::mpsc::Receiver<RestoreReport>,
    polled: &mut Vec<(u32, Pending)>,
    clock: &mut LoopClock,
    t1: Instant,
) -> Result<Option<TopicPartitionList>> {
    let batch_records = polled.len();
    let mut c = core.lock().expect("core lock");
    while let Ok(report) = restore_rx.try_recv() {
        c.finish_restore(consumer, report)?;
    }
    let now = Instant::now();
    for (p, r) in polled.drain(..) {
        c.enqueue(p, r, now);
    }
    let tails = tails(consumer, &c);
    c.pass_markers(&tails);
    c.drain(&tails)?;
    c.bound_buffer(consumer)?;
    c.drive_idle()?;
    let t2 = Instant::now();
    clock.process += t2 - t1;
    c.collect()?;
    c.commit_batch()?;
    c.send_pending();
    let metrics = &c.shared.metrics;
    if batch_records > 0 {
        metrics.batch(batch_records, t1.elapsed().as_secs_f64());
    }
    if clock.last_lag.elapsed() >= Duration::from_secs(1) {
        clock.last_lag = Instant::now();
        for ((k, p), next) in &c.positions {
            if let Some((_, hi)) = cached_watermarks(consumer, &c.topics[*k], *p) {
                metrics.lag(&c.topics[*k], *p, hi - next);
            }
        }
    }
    let commit = positions_tpl(&c.positions, &c.topics);
    clock.commit += t2.elapsed();
    Ok(commit)
}

/// Writes what was processed, waits for the outbox and changelog (`pipeline.shutdown_grace`),
/// commits the offsets, and stops the standby and background work.
fn shut_down(
    settings: &Settings,
    core: &Mutex<Core>,
    consumer: &BaseConsumer<PipelineContext>,
    standby_stop: &AtomicBool,
    clock: &LoopClock,
    shared: &Status,
) -> Result<()> {
    shared.not_ready("stopping");
    let cuts = core.lock().expect("core lock").cuts;
    tracing::info!(
        records = clock.records,
        batches_written_early = cuts,
        poll_s = clock.poll.as_secs_f64(),
        process_s = clock.process.as_secs_f64(),
        write_and_produce_s = clock.commit.as_secs_f64(),
        of_which_waiting_s = clock.poll_wait.as_secs_f64(),
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

