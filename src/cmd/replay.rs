//! `kizashi replay`: back-test a scorecard on history. Reads JSONL files (merged by event time),
//! runs them through the same engine and core as the live pipeline, and writes alerts, final
//! scores and rejects. Deterministic: two runs on the same input give byte-identical outputs.

use std::collections::{BTreeMap, BinaryHeap};
use std::cmp::Reverse;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::api::Shared;
use crate::config::Settings;
use crate::core::alerts::ScoreUpdate;
use crate::core::Params;
use crate::engine::{Engine, Source};
use crate::event::{decode, DecodeLimits, Event, EventKind, Reject};
use crate::partition::partition_for;

/// Options of a replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub usage: Vec<PathBuf>,
    pub support: Vec<PathBuf>,
    pub accounts: Vec<PathBuf>,
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
    /// Records per RocksDB batch.
    pub batch: usize,
    /// Serve the HTTP API on the replayed state (not ready while replaying), until `stop`.
    pub serve: Option<(Arc<Shared>, Arc<AtomicBool>)>,
}

/// Counts printed at the end and returned to callers.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ReplaySummary {
    pub events_read: u64,
    pub events_applied: u64,
    pub events_rejected: u64,
    pub duplicates: u64,
    pub seconds: f64,
    pub events_per_second: f64,
    pub alerts_by_rule: BTreeMap<String, u64>,
    pub accounts_by_band: BTreeMap<String, u64>,
    pub rejects_by_reason: BTreeMap<String, u64>,
    pub peak_rss_bytes: Option<u64>,
}

struct Input {
    path: String,
    kind: EventKind,
    reader: BufReader<File>,
    line_no: i64,
    last_ts: i64,
    current: Option<Item>,
}

struct Item {
    line_no: i64,
    decoded: Result<Event<'static>, Reject>,
    /// The raw line, written to `rejects.jsonl` if the record is rejected.
    line: Vec<u8>,
}

impl Input {
    fn advance(&mut self, limits: &DecodeLimits) -> Result<()> {
        self.current = None;
        let mut line = Vec::with_capacity(256);
        let n = self.reader.read_until(b'\n', &mut line).with_context(|| format!("reading {}", self.path))?;
        if n > 0 {
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line.pop();
            }
            self.line_no += 1;
            let decoded = decode(self.kind, &line, None, limits).map(Event::into_owned);
            if let Ok(e) = &decoded {
                self.last_ts = e.ts_ms();
            }
            self.current = Some(Item { line_no: self.line_no, decoded, line });
        }
        Ok(())
    }
}

#[derive(Serialize)]
struct RejectLine<'a> {
    file: &'a str,
    line: i64,
    reason: &'static str,
    detail: &'a str,
    raw: &'a str,
}

pub fn run(settings: &Settings, opts: &ReplayOptions) -> Result<ReplaySummary> {
    let started = Instant::now();
    std::fs::create_dir_all(&opts.out).with_context(|| format!("creating {}", opts.out.display()))?;
    let tmp;
    let state_dir: &Path = match &opts.state_dir {
        Some(d) => d,
        None => {
            tmp = tempfile::tempdir().context("creating a temporary state directory")?;
            tmp.path()
        }
    };
    let params = Params::new(settings);
    let mut engine = Engine::open(state_dir, false, params, settings.state.cache_accounts)
        .with_context(|| format!("opening state store at {}", state_dir.display()))?;
    let shared = opts.serve.as_ref().map(|(s, _)| s.clone());
    if let Some(s) = &shared {
        s.not_ready("replaying");
        s.attach_store(engine.store(), true)?;
        engine.set_board(s.board.clone());
    }
    let topics = [&settings.kafka.topics.usage, &settings.kafka.topics.support, &settings.kafka.topics.accounts];
    let limits = settings.events.decode_limits(opts.now_ms);

    let mut inputs = Vec::new();
    for (kind, paths) in [(EventKind::Usage, &opts.usage), (EventKind::Support, &opts.support), (EventKind::Account, &opts.accounts)] {
        for p in paths {
            let f = File::open(p).with_context(|| format!("opening {}", p.display()))?;
            let mut input = Input {
                path: p.display().to_string(),
                kind,
                reader: BufReader::with_capacity(1 << 20, f),
                line_no: 0,
                last_ts: i64::MIN,
                current: None,
            };
            input.advance(&limits)?;
            inputs.push(input);
        }
    }
    // Merge by event time; a reject sorts at its file's last good time so it stays in place;
    // ties go to the earlier file, so the order is total and repeatable.
    let key = |i: &Input| match &i.current.as_ref().map(|c| &c.decoded) {
        Some(Ok(e)) => e.ts_ms(),
        _ => i.last_ts,
    };
    let mut heap: BinaryHeap<Reverse<(i64, usize)>> = BinaryHeap::new();
    for (idx, i) in inputs.iter().enumerate() {
        if i.current.is_some() {
            heap.push(Reverse((key(i), idx)));
        }
    }

    let out = |name: &str| -> Result<BufWriter<File>> {
        let p = opts.out.join(name);
        Ok(BufWriter::new(File::create(&p).with_context(|| format!("creating {}", p.display()))?))
    };
    let mut alerts_w = out("alerts.jsonl")?;
    let mut rejects_w = out("rejects.jsonl")?;
    let mut summary = ReplaySummary::default();
    let mut raws: Vec<Vec<u8>> = Vec::new();
    let mut in_batch = 0usize;

    while let Some(Reverse((_, idx))) = heap.pop() {
        let input = &mut inputs[idx];
        let item = input.current.take().expect("queued inputs have an item");
        summary.events_read += 1;
        if let Some(s) = &shared {
            s.metrics.consumed(topics[input.kind as usize], 1);
            if let Ok(e) = &item.decoded {
                s.metrics.source_event(topics[input.kind as usize], e.ts_ms());
            }
        }
        let partition = match &item.decoded {
            Ok(e) => partition_for(e.account_id().as_bytes(), opts.partitions),
            Err(_) => 0,
        };
        let rejected_before = engine.pending_rejects();
        engine.process(partition, Source { name: &input.path, offset: item.line_no }, item.decoded)?;
        if engine.pending_rejects() > rejected_before {
            raws.push(item.line);
        }
        input.advance(&limits)?;
        if input.current.is_some() {
            heap.push(Reverse((key(input), idx)));
        }
        in_batch += 1;
        if in_batch >= opts.batch {
            in_batch = 0;
            drain(&mut engine, &mut alerts_w, &mut rejects_w, &mut raws, shared.as_deref())?;
        }
    }
    if let Some(until) = opts.until_ms {
        for p in 0..opts.partitions {
            engine.advance_time(p, until)?;
        }
    }
    drain(&mut engine, &mut alerts_w, &mut rejects_w, &mut raws, shared.as_deref())?;
    alerts_w.flush()?;
    rejects_w.flush()?;

    let mut finals: Vec<(String, String)> = Vec::new();
    let params = engine.params().clone();
    engine.for_each_account(|_, id, state| {
        let Some(last) = &state.score.last else { return };
        *summary.accounts_by_band.entry(last.band.name().to_string()).or_default() += 1;
        let card = params.cards.iter().find(|c| c.id == state.score.scorecard);
        let update = ScoreUpdate {
            account_id: id.to_string(),
            score: crate::core::alerts::round1(last.score),
            band: last.band,
            segment: state.facts.segment.clone(),
            scorecard: state.score.scorecard.clone(),
            measures: card.map(|c| ScoreUpdate::measures(c, &last.values)).unwrap_or_default(),
            event_time_ms: last.at_ms,
            emitted_at_ms: last.at_ms,
        };
        finals.push((id.to_string(), update.to_json()));
    })?;
    finals.sort();
    let mut scores_w = out("scores.jsonl")?;
    for (_, json) in &finals {
        writeln!(scores_w, "{json}")?;
    }
    scores_w.flush()?;

    let st = &engine.stats;
    summary.events_applied = st.applied.iter().sum();
    summary.duplicates = st.duplicates;
    summary.events_rejected = st.rejected.values().sum();
    summary.rejects_by_reason = st.rejected.iter().map(|(r, n)| (r.code().to_string(), *n)).collect();
    summary.alerts_by_rule = st.alerts.iter().map(|(r, n)| (r.to_string(), *n)).collect();
    summary.seconds = started.elapsed().as_secs_f64();
    summary.events_per_second = summary.events_read as f64 / summary.seconds.max(1e-9);
    summary.peak_rss_bytes = peak_rss_bytes();
    if let Some((shared, stop)) = &opts.serve {
        shared.metrics.duplicates(summary.duplicates);
        shared.ready((0..opts.partitions).collect());
        eprint!("{}", summary.render());
        eprintln!("replay done; serving the API until interrupted (Ctrl-C)");
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    Ok(summary)
}

fn drain(
    engine: &mut Engine,
    alerts_w: &mut impl Write,
    rejects_w: &mut impl Write,
    raws: &mut Vec<Vec<u8>>,
    shared: Option<&Shared>,
) -> Result<()> {
    engine.flush(|_| {})?;
    let out = engine.take_output();
    if let Some(s) = shared {
        for a in &out.alerts {
            s.metrics.alert(a);
        }
        for r in &out.rejected {
            s.metrics.rejected(r, "rejects file");
        }
        s.metrics.score_updates(out.scores.len() as u64);
    }
    for a in &out.alerts {
        writeln!(alerts_w, "{}", a.to_json())?;
    }
    // One raw line was queued per reject, in the same order.
    for (r, raw) in out.rejected.iter().zip(raws.drain(..)) {
        let line = RejectLine {
            file: &r.source,
            line: r.offset,
            reason: r.reject.reason.code(),
            detail: &r.reject.detail,
            raw: &String::from_utf8_lossy(&raw),
        };
        writeln!(rejects_w, "{}", serde_json::to_string(&line)?)?;
    }
    Ok(())
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
            self.events_read, self.events_applied, self.events_rejected, self.duplicates
        );
        s += &format!("rate: {:.0} events/s over {:.2} s\n", self.events_per_second, self.seconds);
        s += &format!("rejects by reason: {}\n", kv(&self.rejects_by_reason));
        s += &format!("alerts by rule: {}\n", kv(&self.alerts_by_rule));
        s += &format!("accounts by band: {}\n", kv(&self.accounts_by_band));
        if let Some(rss) = self.peak_rss_bytes {
            s += &format!("peak memory: {:.0} MiB\n", rss as f64 / 1048576.0);
        }
        s
    }
}
