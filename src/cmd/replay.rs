//! `kizashi replay`: back-test a scorecard on history. Reads JSONL files (merged by event time),
//! runs them through the same engine and core as the live pipeline, and writes alerts, final
//! scores and rejects. Deterministic: two runs on the same input give byte-identical outputs.
//! With outcome labels it also scores the alerts and bands against what customers did
//! (`evaluation.json`), optionally for a second configuration fed the same records (`--compare`).

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::runtime::Status;
use crate::config::Settings;
use crate::core::alerts::ScoreUpdate;
use crate::core::Params;
use super::lines::Lines;
use crate::engine::{Engine, Record, Source};
use crate::flow::merge::{self, Head, Placer};
use crate::flow::Driver;
use crate::evaluation::{self, History, Report};
use crate::event::{decode, DecodeLimits, Event, EventKind, Reject};
use crate::outcome::OutcomeSet;
use crate::partition::partition_for;

/// Options of a replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub usage: Vec<PathBuf>,
    pub support: Vec<PathBuf>,
    pub accounts: Vec<PathBuf>,
    /// The CS team's actions (`cs-actions` records).
    pub actions: Vec<PathBuf>,
    pub out: PathBuf,
    /// Partitions to emulate (accounts placed as Kafka's default partitioner would; each has its
    /// own stream time, as in the live pipeline).
    pub partitions: u32,
    /// At the end, move stream time to this instant (epoch ms) so silent accounts are re-scored.
    pub until_ms: Option<i64>,
    /// The clock for `ts_in_future` (epoch ms).
    pub now_ms: i64,
    /// RocksDB directory; a temporary one if `None`.
    pub state_dir: Option<PathBuf>,
    /// Records between writes of the outputs (account states are written back when the cache is full).
    pub batch: usize,
    /// Serve the HTTP API on the replayed state (not ready while replaying), until `stop`.
    pub serve: Option<(Arc<Status>, Arc<AtomicBool>)>,
    /// Write one CSV row per account per day scored here (`--features`): see `FeatureWriter`.
    pub features: Option<PathBuf>,
}

/// `replay --features FILE`: each account at its first scoring of each day — the day, its score,
/// band, segment, tier, ARR, seats and every measure's value (`days_to_renewal` among them) — and, with
/// `--outcomes`, its next outcome on or after that day and the days until it. Rows come in the
/// order accounts are scored (stream time), each day's before the next's; written as they come.
struct FeatureWriter {
    w: BufWriter<File>,
    /// Each account's outcomes, by day.
    outcomes: FxHashMap<String, Vec<(i32, crate::outcome::OutcomeKind)>>,
    rows: u64,
}

impl FeatureWriter {
    fn create(path: &Path) -> Result<FeatureWriter> {
        let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = BufWriter::new(f);
        let measures: Vec<&str> = crate::core::measures::Measure::ALL.iter().map(|m| m.name()).collect();
        writeln!(w, "account_id,day,score,band,segment,tier,arr,seats,{},outcome,days_to_outcome", measures.join(","))?;
        Ok(FeatureWriter { w, outcomes: FxHashMap::default(), rows: 0 })
    }

    fn outcomes(&mut self, set: &crate::outcome::OutcomeSet) {
        for o in &set.outcomes {
            self.outcomes.entry(o.account_id.clone()).or_default().push((crate::event::timestamp::day_of(o.ts_ms), o.kind));
        }
        for v in self.outcomes.values_mut() {
            v.sort_by_key(|(d, k)| (*d, k.name()));
        }
    }

    fn write(&mut self, r: &crate::engine::FeatureRow) -> Result<()> {
        let opt = |v: Option<f64>| v.map_or(String::new(), |x| crate::core::alerts::round3(x).to_string());
        let text = |s: &Option<String>| s.as_deref().map_or(String::new(), crate::api::csv_text);
        let values: Vec<String> = r.values.iter().map(|v| opt(*v)).collect();
        let next = self.outcomes.get(r.account_id.as_str()).and_then(|v| v.iter().find(|(d, _)| *d >= r.day));
        writeln!(
            self.w,
            "{},{},{},{},{},{},{},{},{},{},{}",
            crate::api::csv_text(&r.account_id),
            crate::event::timestamp::format_day(r.day),
            crate::core::alerts::round1(r.score),
            r.band.name(),
            text(&r.segment),
            r.tier.name(),
            opt(r.arr),
            r.seats.map_or(String::new(), |n| n.to_string()),
            values.join(","),
            next.map_or("", |(_, k)| k.name()),
            next.map_or(String::new(), |(d, _)| (d - r.day).to_string()),
        )?;
        self.rows += 1;
        Ok(())
    }
}

/// Back-test options: outcome labels to score the replay's alerts and bands against, and
/// optionally a second configuration replayed on the same records.
#[derive(Debug, Clone)]
pub struct BacktestOptions {
    /// Outcome files (JSONL).
    pub outcomes: Vec<PathBuf>,
    /// An alert counts for a churned/downgraded (or expanded) outcome at most this many days after it.
    pub horizon_days: u32,
    /// Bands are read this many days before each outcome.
    pub band_at_days: u32,
    /// How the main configuration is named in the tables (its file, or "built-in defaults").
    pub config_label: String,
    /// A second configuration and its label, replayed with its own temporary state; its alerts,
    /// scores and rejects go to `<out>/compare/`.
    pub compare: Option<(String, Settings)>,
    /// A generated population's `truth.jsonl`: the verdicts per profile are reported
    /// (`profiles` in the summary).
    pub truth: Option<PathBuf>,
}

/// What one configuration's records came to (the main configuration's in [`ReplaySummary`], the
/// second's in [`CompareSummary`]).
#[derive(Debug, Default, Clone, Serialize)]
pub struct LaneCounts {
    pub events_applied: u64,
    pub events_rejected: u64,
    pub duplicates: u64,
}

/// One configuration's alerts, final bands and rejects, by rule, band and reason.
#[derive(Debug, Default, Clone, Serialize)]
pub struct LaneTallies {
    pub alerts_by_rule: BTreeMap<String, u64>,
    pub accounts_by_band: BTreeMap<String, u64>,
    pub rejects_by_reason: BTreeMap<String, u64>,
}

/// The second configuration's counts (`--compare`).
#[derive(Debug, Default, Clone, Serialize)]
pub struct CompareSummary {
    pub config: String,
    #[serde(flatten)]
    pub counts: LaneCounts,
    #[serde(flatten)]
    pub tallies: LaneTallies,
}

/// Counts printed at the end and returned to callers. In the JSON the main configuration's
/// counts and tallies stand at the top level, around `seconds` and `events_per_second`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ReplaySummary {
    pub events_read: u64,
    #[serde(flatten)]
    pub counts: LaneCounts,
    pub seconds: f64,
    pub events_per_second: f64,
    #[serde(flatten)]
    pub tallies: LaneTallies,
    pub peak_rss_bytes: Option<u64>,
    /// What the state store wrote, and the cache (the first configuration's).
    pub store: StoreSummary,
    /// With `--compare`: the second configuration's counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compare: Option<CompareSummary>,
    /// With `--outcomes`: the figures written to `evaluation.json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<Report>,
    /// With `--truth`: kizashi's verdicts per generated profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profiles: Option<Vec<crate::generate::ProfileRow>>,
}

/// The state store's side of a replay: bytes in, bytes RocksDB wrote, the account cache.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct StoreSummary {
    /// Bytes of the input files read.
    pub input_bytes: u64,
    #[serde(flatten)]
    pub writes: crate::store::WriteStats,
    /// RocksDB's bytes written to disk (flushes, compactions, log) per input byte.
    pub disk_bytes_per_input_byte: f64,
    /// Bytes kizashi handed RocksDB per input byte.
    pub user_bytes_per_input_byte: f64,
    /// Times the account cache filled and was written out before the end.
    pub spills: u64,
    /// Daily timers that found their account out of memory and read it from the store.
    pub timer_reads: u64,
    pub cache_budget_bytes: u64,
}

/// One input file, a source of the merge.
struct Input {
    path: String,
    kind: EventKind,
    reader: Lines<File>,
    line_no: i64,
    placer: Placer,
    current: Option<Item>,
}

impl Input {
    fn head(&self) -> Head {
        self.current.as_ref().map_or(Head::Done, |c| Head::At(c.at))
    }
}

/// An input's record waiting for its turn in the merge (the others hold earlier ones).
struct Item {
    line_no: i64,
    /// Its merge time ([`Placer::place`]).
    at: i64,
    decoded: Result<Event<'static>, Reject>,
    /// Where the raw line is in the reader's buffer (valid until the reader reads on), written to
    /// `rejects.jsonl` if the record is rejected.
    line: std::ops::Range<usize>,
}

/// Decodes the line `reader` last handed out (`line`), unless the reader cut it: longer than
/// `events.max_record_bytes`, it is `too_large` as a Kafka record would be.
fn decode_line<'b>(kind: EventKind, reader: &'b Lines<File>, line: std::ops::Range<usize>, limits: &DecodeLimits) -> Result<Event<'b>, Reject> {
    if let Some(len) = reader.cut() {
        return Err(crate::event::too_large(len, limits.max_record_bytes));
    }
    decode(kind, &reader.buf()[line], None, limits)
}

#[derive(Serialize)]
struct RejectLine<'a> {
    file: &'a str,
    line: i64,
    reason: &'static str,
    detail: &'a str,
    raw: &'a str,
}

/// One configuration being replayed: its engine and state, its output files, and what the
/// evaluation keeps of its alerts and score updates.
struct Lane {
    engine: Engine,
    limits: DecodeLimits,
    out_dir: PathBuf,
    /// Shared with the engine's alert sink when alerts are written as they come (no back-test).
    alerts_w: Arc<std::sync::Mutex<BufWriter<File>>>,
    /// The first error writing an alert from the sink.
    sink_error: Arc<std::sync::Mutex<Option<std::io::Error>>>,
    rejects_w: BufWriter<File>,
    history: Option<History>,
    /// `Stats::score_updates` at the last drain.
    score_updates_drained: u64,
    /// `--features`, on the main configuration's lane.
    features: Option<FeatureWriter>,
    _tmp: Option<tempfile::TempDir>,
}

fn create(dir: &Path, name: &str) -> Result<BufWriter<File>> {
    let p = dir.join(name);
    Ok(BufWriter::new(File::create(&p).with_context(|| format!("creating {}", p.display()))?))
}

/// Writes each alert to `w` (and counts it in `shared`'s metrics); the first error is kept in
/// `err`.
fn alert_sink(w: Arc<std::sync::Mutex<BufWriter<File>>>, err: Arc<std::sync::Mutex<Option<std::io::Error>>>, shared: Option<Arc<Status>>) -> crate::engine::AlertSink {
    crate::engine::AlertSink(Box::new(move |a| {
        if let Some(s) = &shared {
            s.metrics.alert(&a);
        }
        let mut w = w.lock().expect("not poisoned");
        if let Err(e) = writeln!(w, "{}", a.to_json()) {
            err.lock().expect("not poisoned").get_or_insert(e);
        }
    }))
}

impl Lane {
    /// A lane writing to `out_dir`, with its state in `state_dir` (or a temporary directory).
    /// `evaluate`: a back-test, which keeps the alerts and score updates for the evaluation;
    /// otherwise each alert is written to `alerts.jsonl` (and counted in `shared`'s metrics) as it
    /// is produced, so a day's timers over a million accounts never hold their alerts in memory.
    #[allow(clippy::too_many_arguments)]
    fn open(settings: &Settings, state_dir: Option<&Path>, out_dir: PathBuf, now_ms: i64, evaluate: bool, shared: Option<&Arc<Status>>, features: Option<&Path>) -> Result<Lane> {
        std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
        let (tmp, dir) = match state_dir {
            Some(d) => (None, d.to_path_buf()),
            None => {
                let t = tempfile::tempdir().context("creating a temporary state directory")?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let alerts_w = Arc::new(std::sync::Mutex::new(create(&out_dir, "alerts.jsonl")?));
        let sink_error: Arc<std::sync::Mutex<Option<std::io::Error>>> = Arc::default();
        let options = crate::engine::Options {
            write_back: true,
            board: shared.map(|s| s.board.clone()),
            // Only a back-test reads the score updates; the rest needs their number.
            keep_score_updates: evaluate,
            alerts_to: (!evaluate).then(|| alert_sink(alerts_w.clone(), sink_error.clone(), shared.cloned())),
            feature_rows: features.is_some(),
            ..crate::engine::Options::new(settings.state.budget())
        };
        let engine = Engine::open(&dir, Params::new(settings), options).with_context(|| format!("opening state store at {}", dir.display()))?;
        Ok(Lane {
            engine,
            limits: settings.events.decode_limits(now_ms),
            alerts_w,
            sink_error,
            rejects_w: create(&out_dir, "rejects.jsonl")?,
            out_dir,
            history: evaluate.then(History::default),
            score_updates_drained: 0,
            features: features.map(FeatureWriter::create).transpose()?,
            _tmp: tmp,
        })
    }

    fn process(&mut self, partition: u32, source: Source<'_>, decoded: Result<&Event<'_>, Reject>, line: &[u8]) -> Result<()> {
        crate::flow::apply(self, partition, Record { source, key: None, raw: line, decoded })
    }

    fn drain(&mut self, shared: Option<&Status>) -> Result<()> {
        self.engine.flush(|_| {})?;
        let updates_before = self.score_updates_drained;
        self.score_updates_drained = self.engine.stats.score_updates;
        let out = self.engine.take_output();
        if let Some(s) = shared {
            for a in &out.alerts {
                s.metrics.alert(a);
            }
            for r in &out.rejected {
                s.metrics.rejected(r, "rejects file");
            }
            s.metrics.score_updates(self.score_updates_drained - updates_before);
        }
        if let Some(h) = &mut self.history {
            for a in &out.alerts {
                h.record_alert(a);
            }
            for s in &out.scores {
                h.record_score(s);
            }
        }
        if let Some(e) = self.sink_error.lock().expect("not poisoned").take() {
            return Err(e).context("writing alerts.jsonl");
        }
        let mut w = self.alerts_w.lock().expect("not poisoned");
        for a in &out.alerts {
            writeln!(w, "{}", a.to_json())?;
        }
        drop(w);
        if let Some(f) = &mut self.features {
            for r in &out.features {
                f.write(r).context("writing the --features file")?;
            }
        }
        for r in &out.rejected {
            let line = RejectLine {
                file: &r.source,
                line: r.offset,
                reason: r.reject.reason.code(),
                detail: &r.reject.detail,
                raw: &String::from_utf8_lossy(&r.raw),
            };
            writeln!(self.rejects_w, "{}", serde_json::to_string(&line)?)?;
        }
        Ok(())
    }

    /// Flushes the outputs and writes `scores.jsonl`. Returns the accounts by final band and the
    /// accounts the replay saw (those with stored state).
    fn finish(&mut self) -> Result<(BTreeMap<String, u64>, rustc_hash::FxHashSet<String>)> {
        if let Some(e) = self.sink_error.lock().expect("not poisoned").take() {
            return Err(e).context("writing alerts.jsonl");
        }
        self.alerts_w.lock().expect("not poisoned").flush()?;
        self.rejects_w.flush()?;
        if let Some(f) = &mut self.features {
            f.w.flush().context("writing the --features file")?;
        }
        let mut by_band = BTreeMap::new();
        let mut known = rustc_hash::FxHashSet::default();
        self.engine.finish()?;
        // Streamed in account id order, never all held at once (a million accounts).
        let mut scores_w = create(&self.out_dir, "scores.jsonl")?;
        let mut write_err = None;
        let params = self.engine.params().clone();
        let keep_known = self.history.is_some();
        self.engine.for_each_account_by_id(|_, id, state| {
            if keep_known {
                known.insert(id.to_string());
            }
            let Some(last) = &state.score.last else { return };
            *by_band.entry(state.shown_band(last.band).name().to_string()).or_default() += 1;
            let card = params.cards.iter().find(|c| c.id == state.score.scorecard);
            let update = ScoreUpdate {
                account_id: id.to_string(),
                score: crate::core::alerts::round1(last.score),
                band: state.shown_band(last.band),
                segment: state.facts.segment.clone(),
                tier: params.tiers.of(state.facts.segment.as_deref(), state.facts.arr),
                scorecard: state.score.scorecard.clone(),
                measures: card.map(|c| ScoreUpdate::measures(c, &last.values.to_array())).unwrap_or_default(),
                shortfall: card
                    .map(|c| {
                        let absent = crate::core::measures::usage_known_absent(&state, crate::event::timestamp::day_of(last.at_ms), params.state.retention_days);
                        crate::core::alerts::shortfall(c, &last.values.to_array(), absent)
                    })
                    .unwrap_or_default(),
                event_time_ms: last.at_ms,
                emitted_at_ms: last.at_ms,
                cs: state.cs_view(id, Some(last.band)),
            };
            if write_err.is_none() {
                write_err = writeln!(scores_w, "{}", update.to_json()).err();
            }
        })?;
        if let Some(e) = write_err {
            return Err(e.into());
        }
        scores_w.flush()?;
        if let Some(h) = &mut self.history {
            let end = self.engine.partitions().into_iter().filter_map(|p| self.engine.stream_time(p)).max();
            h.set_end(end);
        }
        Ok((by_band, known))
    }
}

impl Driver for Lane {
    fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// Never asked: a replay's engine writes back (`Engine::spill_if_full`) and is never over
    /// budget. Making room is what a cut would be for, so it makes room.
    fn cut(&mut self) -> Result<()> {
        Ok(self.engine.spill_if_full()?)
    }
}

/// Reads the outcome files; every refused line goes to `rejects` with its file and line.
/// A line longer than `max_line` is refused (`too_large`) without being held.
fn read_outcomes(paths: &[PathBuf], max_id_len: usize, max_line: usize, rejects: &mut impl Write) -> Result<OutcomeSet> {
    let mut set = OutcomeSet::default();
    for p in paths {
        let name = p.display().to_string();
        set.stats.files.push(name.clone());
        let mut reader = Lines::new(File::open(p).with_context(|| format!("opening {name}"))?, 64 << 10, max_line);
        let mut line_no = 0i64;
        while let Some(range) = reader.next_line().with_context(|| format!("reading {name}"))? {
            let line = &reader.buf()[range];
            line_no += 1;
            let refused = match reader.cut() {
                Some(len) => Err(set.refuse_too_large(len, max_line)),
                None => set.add(line, max_id_len, &format!("{name} line {line_no}")),
            };
            if let Err(r) = refused {
                let reject = RejectLine {
                    file: &name,
                    line: line_no,
                    reason: r.reason.code(),
                    detail: &r.detail,
                    raw: &String::from_utf8_lossy(line),
                };
                writeln!(rejects, "{}", serde_json::to_string(&reject)?)?;
            }
        }
    }
    Ok(set)
}

/// Bytes of rejected lines a lane holds before they are written to `rejects.jsonl`.
const RAWS_HELD_BYTES: usize = 16 << 20;

/// Where replay's records go, in merge order: every lane (configuration), the metrics, and a
/// drain of the lanes' outputs every `batch` records.
struct Feed<'l> {
    lanes: &'l mut [Lane],
    shared: Option<&'l Status>,
    topics: [&'l String; crate::event::N_KINDS],
    partitions: u32,
    batch: usize,
    in_batch: usize,
}

impl Feed<'_> {
    /// `cut`: the whole length of a line the reader cut (longer than every configuration's
    /// `events.max_record_bytes`), of which `line` is the first bytes.
    fn record(&mut self, kind: EventKind, source: Source<'_>, decoded: &Result<Event<'_>, Reject>, line: &[u8], cut: Option<u64>) -> Result<()> {
        let topic = self.topics[kind as usize];
        if let Some(s) = self.shared {
            s.metrics.consumed(topic, 1, cut.unwrap_or(line.len() as u64));
            if let Ok(e) = &decoded {
                s.metrics.source_event(topic, e.ts_ms());
            }
        }
        let partitions = self.partitions;
        let place = |d: &Result<Event<'_>, Reject>| match d {
            Ok(e) => partition_for(e.account_id().as_bytes(), partitions),
            Err(_) => 0,
        };
        let (first, others) = self.lanes.split_first_mut().expect("a lane per configuration");
        // The other configuration gets the same record, decoded again only if its limits differ.
        // The event is handed on by reference: copying its 144 bytes at each step took ~4% of a
        // replay's samples (`perf`, quick-start population). A reject is the engine's to keep.
        for lane in others {
            let own = match cut {
                Some(len) => Err(crate::event::too_large(len, lane.limits.max_record_bytes)),
                None if lane.limits == first.limits => {
                    lane.process(place(decoded), source, decoded.as_ref().map_err(Reject::clone), line)?;
                    continue;
                }
                None => decode(kind, line, None, &lane.limits),
            };
            let partition = place(&own);
            match own {
                Ok(e) => lane.process(partition, source, Ok(&e), line)?,
                Err(r) => lane.process(partition, source, Err(r), line)?,
            }
        }
        first.process(place(decoded), source, decoded.as_ref().map_err(Reject::clone), line)?;
        self.in_batch += 1;
        // A batch of bad lines is held until it is written: each up to events.max_record_bytes,
        // so a file of long bad lines is written out as it goes, not held a batch at a time.
        let batch_done = self.in_batch >= self.batch;
        if batch_done {
            self.in_batch = 0;
        }
        if batch_done || self.lanes.iter().any(|l| l.engine.pending_reject_bytes() > RAWS_HELD_BYTES) {
            for (i, lane) in self.lanes.iter_mut().enumerate() {
                lane.drain(self.shared.filter(|_| i == 0))?;
            }
        }
        Ok(())
    }
}

/// Replays `opts` with `settings`.
pub fn run(settings: &Settings, opts: &ReplayOptions) -> Result<ReplaySummary> {
    run_backtest(settings, opts, None)
}

/// Replays `opts` with `settings` and, if `backtest`, evaluates against its outcomes (and replays
/// the same records through its `compare` configuration too).
pub fn run_backtest(settings: &Settings, opts: &ReplayOptions, backtest: Option<&BacktestOptions>) -> Result<ReplaySummary> {
    let started = Instant::now();
    let evaluate = backtest.is_some();
    let shared = opts.serve.as_ref().map(|(s, _)| s.clone());
    let mut lanes = vec![Lane::open(settings, opts.state_dir.as_deref(), opts.out.clone(), opts.now_ms, evaluate, shared.as_ref(), opts.features.as_deref())?];
    if let Some((_, other)) = backtest.and_then(|b| b.compare.as_ref()) {
        lanes.push(Lane::open(other, None, opts.out.join("compare"), opts.now_ms, true, None, None)?);
    }
    if let Some(s) = &shared {
        s.not_ready("replaying");
        s.attach_store(lanes[0].engine.store(), true)?;
        lanes[0].engine.index_loaded();
        if evaluate {
            s.evaluation.pending();
        }
    }
    let limits = lanes[0].limits;
    // The longest line any configuration takes (with `--compare`, another's may be longer).
    let max_line = lanes.iter().map(|l| l.limits.max_record_bytes).max().unwrap_or(limits.max_record_bytes);
    let outcomes = match backtest {
        Some(b) if !b.outcomes.is_empty() => Some(read_outcomes(&b.outcomes, settings.events.max_id_len, max_line, &mut lanes[0].rejects_w)?),
        _ => None,
    };
    if let (Some(f), Some(o)) = (&mut lanes[0].features, &outcomes) {
        f.outcomes(o);
    }
    let t = &settings.kafka.topics;
    let topics = [&t.usage, &t.support, &t.accounts, &t.actions];

    let mut inputs = open_inputs(opts, max_line, &limits)?;
    let mut summary = ReplaySummary::default();
    let mut feed = Feed { lanes: &mut lanes, shared: shared.as_deref(), topics, partitions: opts.partitions, batch: opts.batch, in_batch: 0 };
    summary.events_read = merge_inputs(&mut inputs, &mut feed, &limits)?;
    for (i, lane) in lanes.iter_mut().enumerate() {
        if let Some(until) = opts.until_ms {
            for p in 0..opts.partitions {
                crate::flow::advance(lane, p, until)?;
            }
        }
        lane.drain(shared.as_deref().filter(|_| i == 0))?;
    }
    let mut finished = Vec::new();
    for lane in &mut lanes {
        finished.push(lane.finish()?);
    }

    (summary.counts, summary.tallies) = lane_summary(&lanes[0], &finished[0]);
    summary.store = store_summary(opts, &lanes[0].engine);
    if let (Some(lane), Some((label, _))) = (lanes.get(1), backtest.and_then(|b| b.compare.as_ref())) {
        let (counts, tallies) = lane_summary(lane, &finished[1]);
        summary.compare = Some(CompareSummary { config: label.clone(), counts, tallies });
    }
    if let (Some(b), Some(outcomes)) = (backtest, &outcomes) {
        let report = evaluate_lanes(b, outcomes, &lanes, &finished);
        let p = opts.out.join("evaluation.json");
        let json = serde_json::to_string_pretty(&report)? + "\n";
        std::fs::write(&p, &json).with_context(|| format!("writing {}", p.display()))?;
        if let Some(s) = &shared {
            s.evaluation.set(json);
        }
        summary.evaluation = Some(report);
    }

    if let (Some(path), Some(h)) = (backtest.and_then(|b| b.truth.as_ref()), lanes[0].history.as_ref()) {
        summary.profiles = Some(profiles(path, h)?);
    }

    summary.seconds = started.elapsed().as_secs_f64();
    summary.events_per_second = summary.events_read as f64 / summary.seconds.max(1e-9);
    summary.peak_rss_bytes = peak_rss_bytes();
    if let Some((shared, stop)) = &opts.serve {
        serve_until_stopped(shared, stop, &summary, opts.partitions);
    }
    Ok(summary)
}

/// Feeds every input's records to `feed` in merge order ([`merge::next`]); returns how many.
fn merge_inputs(inputs: &mut [Input], feed: &mut Feed<'_>, limits: &DecodeLimits) -> Result<u64> {
    let mut read = 0u64;
    while let Some(next) = merge::next(inputs.iter().map(Input::head)) {
        let idx = next.input;
        let input = &mut inputs[idx];
        let item = input.current.take().expect("an input with a head has an item");
        read += 1;
        // The reader has not moved since it handed out this item's line.
        let cut = input.reader.cut();
        feed.record(input.kind, Source { name: &input.path, offset: item.line_no }, &item.decoded, &input.reader.buf()[item.line], cut)?;
        // The input's next records, as long as each goes before every other input's: applied
        // as they are decoded, borrowed from the reader's buffer.
        loop {
            let Input { reader, path, kind, line_no, placer, current } = &mut *input;
            let Some(line) = reader.next_line().with_context(|| format!("reading {path}"))? else { break };
            *line_no += 1;
            let decoded = decode_line(*kind, reader, line.clone(), limits);
            let at = placer.place(decoded.as_ref());
            if next.goes_before(at) {
                read += 1;
                feed.record(*kind, Source { name: path, offset: *line_no }, &decoded, &reader.buf()[line], reader.cut())?;
                continue;
            }
            *current = Some(Item { line_no: *line_no, at, decoded: decoded.map(Event::into_owned), line });
            break;
        }
    }
    Ok(read)
}

/// A lane's counts and tallies, with its accounts by final band (`finished`).
fn lane_summary(lane: &Lane, (by_band, _): &(BTreeMap<String, u64>, rustc_hash::FxHashSet<String>)) -> (LaneCounts, LaneTallies) {
    let st = &lane.engine.stats;
    let counts = LaneCounts {
        events_applied: st.applied.iter().sum::<u64>(),
        events_rejected: st.rejected.values().sum::<u64>(),
        duplicates: st.duplicates,
    };
    let tallies = LaneTallies {
        alerts_by_rule: st.alerts.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
        accounts_by_band: by_band.clone(),
        rejects_by_reason: st.rejected.iter().map(|(r, n)| (r.code().to_string(), *n)).collect(),
    };
    (counts, tallies)
}

/// What the state store was handed and wrote, per input byte.
fn store_summary(opts: &ReplayOptions, engine: &Engine) -> StoreSummary {
    let input_bytes: u64 = [&opts.usage, &opts.support, &opts.accounts]
        .iter()
        .flat_map(|v| v.iter())
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let writes = engine.store().write_stats();
    let per_input = |b: u64| b as f64 / (input_bytes.max(1)) as f64;
    StoreSummary {
        input_bytes,
        writes,
        disk_bytes_per_input_byte: per_input(writes.disk_bytes()),
        user_bytes_per_input_byte: per_input(writes.user_bytes),
        spills: engine.stats.spills,
        timer_reads: engine.stats.timer_reads,
        cache_budget_bytes: engine.cache_usage().1 as u64,
    }
}

/// `--serve`: the API serves the replayed state until `stop`.
fn serve_until_stopped(shared: &Status, stop: &AtomicBool, summary: &ReplaySummary, partitions: u32) {
    shared.metrics.duplicates(summary.counts.duplicates);
    shared.ready((0..partitions).collect());
    eprint!("{}", summary.render());
    eprintln!("replay done; serving the API until interrupted (Ctrl-C)");
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Opens the input files, usage first, then support, account records and the CS team's actions
/// (the merge's order of ties), each with its first record read.
fn open_inputs(opts: &ReplayOptions, max_line: usize, limits: &DecodeLimits) -> Result<Vec<Input>> {
    let mut inputs = Vec::new();
    let files = [(EventKind::Usage, &opts.usage), (EventKind::Support, &opts.support), (EventKind::Account, &opts.accounts), (EventKind::Action, &opts.actions)];
    for (kind, paths) in files {
        for p in paths {
            let f = File::open(p).with_context(|| format!("opening {}", p.display()))?;
            let mut input = Input {
                path: p.display().to_string(),
                kind,
                reader: Lines::new(f, 1 << 20, max_line),
                line_no: 0,
                placer: Placer::default(),
                current: None,
            };
            if let Some(line) = input.reader.next_line().with_context(|| format!("reading {}", input.path))? {
                input.line_no = 1;
                let decoded = decode_line(kind, &input.reader, line.clone(), limits);
                let at = input.placer.place(decoded.as_ref());
                input.current = Some(Item { line_no: 1, at, decoded: decoded.map(Event::into_owned), line });
            }
            inputs.push(input);
        }
    }
    Ok(inputs)
}

/// Verdicts per generated profile: the truth file against the replay's alerts and bands.
fn profiles(path: &Path, h: &History) -> Result<Vec<crate::generate::ProfileRow>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let truths: Vec<crate::generate::Truth> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{} line {}", path.display(), i + 1)))
        .collect::<Result<_>>()?;
    let (alerts, bands) = h.alerts_and_bands();
    let seen: Vec<crate::generate::AlertSeen<'_>> = alerts
        .into_iter()
        .map(|(account_id, at_ms, risk, rules)| crate::generate::AlertSeen { account_id, rules, risk, at_ms })
        .collect();
    Ok(crate::generate::profile_report(&truths, &seen, &bands))
}

/// The evaluation of every lane, on the same rows (the union of the rules any of them fired).
fn evaluate_lanes(
    b: &BacktestOptions,
    outcomes: &OutcomeSet,
    lanes: &[Lane],
    finished: &[(BTreeMap<String, u64>, rustc_hash::FxHashSet<String>)],
) -> Report {
    let histories: Vec<&History> = lanes.iter().filter_map(|l| l.history.as_ref()).collect();
    let mut eo = evaluation::Options { horizon_days: b.horizon_days, band_at_days: b.band_at_days, rules: Default::default() };
    for h in &histories {
        eo.rules.extend(h.rules());
    }
    let mut evals = histories
        .iter()
        .zip(finished)
        .map(|(h, (_, known))| evaluation::evaluate(h, &outcomes.outcomes, |a| known.contains(a), &eo));
    let main = evals.next().expect("the main configuration is evaluated");
    let compare = evals.next();
    Report {
        horizon_days: b.horizon_days,
        band_at_days: b.band_at_days,
        outcome_files: outcomes.stats.clone(),
        configs: evaluation::Configs {
            evaluation: b.config_label.clone(),
            compare: b.compare.as_ref().map(|(l, _)| l.clone()),
        },
        differences: compare.as_ref().map(|c| evaluation::differences(&main, c)),
        evaluation: main,
        compare,
    }
}

/// Peak resident set size of this process (Linux), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl ReplaySummary {
    /// The human-readable summary printed at the end of a replay.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let kv = |m: &BTreeMap<String, u64>| {
            if m.is_empty() {
                "none".to_string()
            } else {
                m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
            }
        };
        s += &format!(
            "events: read {} applied {} rejected {} duplicates {}\n",
            self.events_read, self.counts.events_applied, self.counts.events_rejected, self.counts.duplicates
        );
        s += &format!("rate: {:.0} events/s over {:.2} s\n", self.events_per_second, self.seconds);
        s += &format!("rejects by reason: {}\n", kv(&self.tallies.rejects_by_reason));
        s += &format!("alerts by rule: {}\n", kv(&self.tallies.alerts_by_rule));
        s += &format!("accounts by band: {}\n", kv(&self.tallies.accounts_by_band));
        if let Some(rss) = self.peak_rss_bytes {
            s += &format!("peak memory: {:.0} MiB\n", rss as f64 / 1048576.0);
        }
        let st = &self.store;
        s += &format!(
            "state store: wrote {:.1} MiB ({:.2} per input byte), {:.1} MiB to disk ({:.2} per input byte); cache filled {} times\n",
            st.writes.user_bytes as f64 / 1048576.0,
            st.user_bytes_per_input_byte,
            st.writes.disk_bytes() as f64 / 1048576.0,
            st.disk_bytes_per_input_byte,
            st.spills
        );
        if let Some(c) = &self.compare {
            let n = &c.counts;
            s += &format!("compare ({}): applied {} rejected {} duplicates {}\n", c.config, n.events_applied, n.events_rejected, n.duplicates);
            s += &format!("compare alerts by rule: {}\n", kv(&c.tallies.alerts_by_rule));
            s += &format!("compare accounts by band: {}\n", kv(&c.tallies.accounts_by_band));
        }
        if let Some(rows) = &self.profiles {
            s += "\nverdicts by generated profile (alerted: any risk alert; changed: change_from 14+ days before the last score; ≤7d/≤14d of change: share of those alerted from the change day to 7/14 days after):\n";
            s += &crate::generate::render_profile_report(rows);
        }
        if let Some(r) = &self.evaluation {
            s += "\n";
            s += &crate::evaluation::render::report(r);
        }
        s
    }
}
