//! `kizashi generate`: write a synthetic population as JSONL files.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};

use crate::event::EventKind;
use crate::generate::{generate, GenOptions, Truth};

/// Files written by `generate`, by kind.
pub const FILES: [(EventKind, &str); 3] =
    [(EventKind::Usage, "usage.jsonl"), (EventKind::Support, "support.jsonl"), (EventKind::Account, "accounts.jsonl")];

/// Writes `usage.jsonl`, `support.jsonl`, `accounts.jsonl`, `truth.jsonl` and `outcomes.jsonl`
/// (what each account does at its renewal, for `replay --outcomes`) into `dir`.
/// Returns the truth and the number of records per kind.
pub fn to_dir(opts: &GenOptions, dir: &Path) -> Result<(Vec<Truth>, [u64; 3])> {
    to_dir_with(opts, dir, crate::outcome::synthetic::ChurnModel::Profile)
}

/// [`to_dir`] with the outcomes drawn by `churn` (`generate --churn-model`).
pub fn to_dir_with(opts: &GenOptions, dir: &Path, churn: crate::outcome::synthetic::ChurnModel) -> Result<(Vec<Truth>, [u64; 3])> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut writers = Vec::new();
    for (_, name) in FILES {
        let p = dir.join(name);
        writers.push(BufWriter::new(File::create(&p).with_context(|| format!("creating {}", p.display()))?));
    }
    let mut counts = [0u64; 3];
    let mut err: Option<std::io::Error> = None;
    let mut signals = crate::outcome::synthetic::Signals::new(opts.end_day);
    let truths = generate(opts, |r| {
        signals.observe(r.kind, &r.account_id, r.ts_ms, &r.line);
        let i = r.kind as usize;
        counts[i] += 1;
        if let Err(e) = writeln!(writers[i], "{}", r.line) {
            err.get_or_insert(e);
        }
    });
    if let Some(e) = err {
        return Err(e).context("writing generated events");
    }
    for w in &mut writers {
        w.flush()?;
    }
    let mut t = BufWriter::new(File::create(dir.join("truth.jsonl"))?);
    for truth in &truths {
        writeln!(t, "{}", serde_json::to_string(truth)?)?;
    }
    t.flush()?;
    let mut o = BufWriter::new(File::create(dir.join("outcomes.jsonl"))?);
    for outcome in crate::outcome::synthetic::outcomes_by(&truths, opts.seed, churn, &signals) {
        writeln!(o, "{}", outcome.to_json())?;
    }
    o.flush()?;
    Ok((truths, counts))
}

/// Produces the generated population into Kafka (keyed by `account_id`, placed with Kafka's
/// murmur2 partitioner like any Java producer). `day_seconds`: if set, each simulated day takes
/// that many wall seconds (accelerated time); `on_day` is called as each day starts.
pub fn to_kafka(
    opts: &GenOptions,
    config: &rdkafka::ClientConfig,
    topics: &crate::config::TopicsConfig,
    day_seconds: Option<f64>,
    stop: &std::sync::atomic::AtomicBool,
    mut on_day: impl FnMut(i32, [u64; 3]),
) -> Result<[u64; 3]> {
    use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
    let producer: ThreadedProducer<rdkafka::producer::DefaultProducerContext> = config
        .clone()
        .set("partitioner", "murmur2_random")
        .set("enable.idempotence", "true")
        .set("linger.ms", "10")
        .create()
        .context("creating the Kafka producer")?;
    let names = [&topics.usage, &topics.support, &topics.accounts];
    let started = std::time::Instant::now();
    let first_day = opts.end_day - opts.days as i32 + 1;
    let mut current_day = i32::MIN;
    let mut counts = [0u64; 3];
    generate(opts, |r| {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let day = crate::event::timestamp::day_of(r.ts_ms).max(first_day);
        if day != current_day {
            current_day = day;
            if let Some(secs) = day_seconds {
                let due = std::time::Duration::from_secs_f64(secs * f64::from(day - first_day));
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            on_day(day, counts);
        }
        let mut record = BaseRecord::to(names[r.kind as usize]).key(r.account_id.as_bytes()).payload(r.line.as_bytes());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
            }
        }
        counts[r.kind as usize] += 1;
    });
    producer.flush(std::time::Duration::from_secs(60)).context("flushing generated events to Kafka")?;
    Ok(counts)
}
