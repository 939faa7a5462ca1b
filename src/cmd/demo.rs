//! `kizashi demo`: zero set-up. An in-process Kafka (librdkafka's mock cluster), the generated
//! population fed in accelerated time, the full pipeline (`run`), and alerts printed as they arrive.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::mocking::MockCluster;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::config::{Settings, TopicsConfig};
use crate::event::timestamp::{format_day, now_ms, day_of};
use crate::generate::GenOptions;

/// What the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub accounts: usize,
    pub days: u32,
    /// Wall seconds per simulated day.
    pub day_seconds: f64,
    pub partitions: i32,
    pub seed: u64,
    /// Where the HTTP API listens (a free port if this one is taken).
    pub http: String,
}

/// Runs the demo until the population has been fed and processed (or `stop` is set).
pub fn run(opts: &DemoOptions, stop: Arc<AtomicBool>) -> Result<()> {
    // The mock cluster lives inside this producer's client; it is also the feeder.
    let host: ThreadedProducer<DefaultProducerContext> =
        ClientConfig::new().set("test.mock.num.brokers", "1").create().context("starting the embedded Kafka")?;
    let mock = host.client().mock_cluster().context("the embedded Kafka did not start")?;
    // SAFETY: the pointer comes from a live client that owns the mock cluster; the call only sets
    // the group coordinator's join delay (3 s by default) to 0.
    unsafe {
        let cluster = rdkafka::bindings::rd_kafka_handle_mock_cluster(host.client().native_ptr());
        if !cluster.is_null() {
            rdkafka::bindings::rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, 0);
        }
    }
    let mut settings = Settings::default();
    settings.kafka.group_id = "kizashi-demo".into();
    create_topics(&mock, &settings, opts.partitions)?;
    let brokers = mock.bootstrap_servers();
    let state = tempfile::tempdir().context("creating a temporary state directory")?;
    configure(&mut settings, &brokers, state.path());

    println!("kizashi demo: embedded Kafka at {brokers}; {} accounts, {} days at {:.2} s a day", opts.accounts, opts.days, opts.day_seconds);
    println!("alerts as they arrive (simulated day, account, rule, score, summary):\n");

    let shared = crate::runtime::Status::new(&settings);
    let actions = Arc::new(super::actions::KafkaActions::new(&settings)?);
    let api = crate::api::Shared::new(&settings, shared.clone()).with_actions(actions);
    // The HTTP port: the configured address, or any free one if it is taken.
    let server = crate::api::serve(&opts.http, api.clone())
        .or_else(|_| crate::api::serve("127.0.0.1:0", api))?;
    let url = server.url();
    println!("The page (queue, heatmap, accounts) while the demo runs: {url}/");
    println!("HTTP API while the demo runs: {url}/v1/accounts?band=red  {url}/metrics  {url}/readyz\n");

    let pipeline_stop = Arc::new(AtomicBool::new(false));
    let pipeline = {
        let (settings, stop, shared) = (settings.clone(), pipeline_stop.clone(), shared.clone());
        std::thread::spawn(move || crate::pipeline::run_with(&settings, stop, shared))
    };

    let fed = Arc::new(AtomicU64::new(0));
    let sim_day = Arc::new(AtomicI64::new(0));
    let feeding_done = Arc::new(AtomicBool::new(false));
    let t = &settings.kafka.topics;
    let watcher = {
        let (brokers, t, stop, fed, sim_day, done) =
            (brokers.clone(), t.clone(), stop.clone(), fed.clone(), sim_day.clone(), feeding_done.clone());
        std::thread::spawn(move || watch(&brokers, &t.alerts, &t.scores, &stop, &fed, &sim_day, &done))
    };

    feed(opts, &brokers, t, &stop, &fed, &sim_day)?;
    feeding_done.store(true, Ordering::Relaxed);
    let summary = watcher.join().map_err(|_| anyhow::anyhow!("the alert watcher panicked"))?;
    pipeline_stop.store(true, Ordering::Relaxed);
    pipeline.join().map_err(|_| anyhow::anyhow!("the pipeline panicked"))??;
    println!("\n{summary}");
    drop(server);
    drop(mock);
    drop(host);
    Ok(())
}

/// The demo's topics in the embedded Kafka: the inputs and the changelog with `partitions`
/// partitions, the outputs with one.
fn create_topics(mock: &MockCluster<'_, DefaultProducerContext>, settings: &Settings, partitions: i32) -> Result<()> {
    let t = &settings.kafka.topics;
    for name in [&t.usage, &t.support, &t.accounts, &t.actions] {
        mock.create_topic(name, partitions, 1).with_context(|| format!("creating topic {name}"))?;
    }
    if let Some(changelog) = settings.kafka.changelog_topic() {
        mock.create_topic(&changelog, partitions, 1).with_context(|| format!("creating topic {changelog}"))?;
    }
    for name in [&t.alerts, &t.scores, &t.dead_letter] {
        mock.create_topic(name, 1, 1).with_context(|| format!("creating topic {name}"))?;
    }
    Ok(())
}

/// The pipeline's settings for the demo: the embedded Kafka, a temporary state directory, and
/// what accelerated time needs.
fn configure(settings: &mut Settings, brokers: &str, state_dir: &std::path::Path) {
    settings.kafka.brokers = brokers.to_string();
    settings.state.dir = state_dir.to_path_buf();
    // The population ends yesterday; do not let the wall clock push stream time on.
    settings.pipeline.idle_after = Duration::from_secs(24 * 3600);
    // Accelerated time magnifies fetch delays (at 0.4 s a day, 500 ms is 30 simulated hours):
    // fetch eagerly so the three topics stay within the grace period of each other.
    settings.kafka.properties.insert("fetch.wait.max.ms".into(), "10".into());
}

/// Feeds the population (ending yesterday) into the input topics in accelerated time; `sim_day`
/// and `fed` follow its progress.
fn feed(opts: &DemoOptions, brokers: &str, t: &TopicsConfig, stop: &AtomicBool, fed: &AtomicU64, sim_day: &AtomicI64) -> Result<()> {
    let end_day = day_of(now_ms()) - 1;
    let gen = GenOptions { accounts: opts.accounts, days: opts.days, end_day, seed: opts.seed, activity: 0.3, mix: Default::default() };
    let mut feeder_config = ClientConfig::new();
    feeder_config.set("bootstrap.servers", brokers);
    let counts = super::generate::to_kafka(&gen, &feeder_config, t, Some(opts.day_seconds), stop, |day, counts| {
        sim_day.store(i64::from(day), Ordering::Relaxed);
        fed.store(counts.iter().sum(), Ordering::Relaxed);
    })?;
    fed.store(counts.iter().sum(), Ordering::Relaxed);
    Ok(())
}

/// Prints alerts as they arrive and a status line every second; returns a closing summary once
/// feeding is done and no output has arrived for 3 s.
fn watch(
    brokers: &str,
    alerts: &str,
    scores: &str,
    stop: &AtomicBool,
    fed: &AtomicU64,
    sim_day: &AtomicI64,
    feeding_done: &AtomicBool,
) -> String {
    let consumer = match watch_consumer(brokers, alerts, scores) {
        Ok(c) => c,
        Err(e) => return format!("cannot watch the output topics: {e}"),
    };
    let mut seen = Seen::default();
    let (mut last_status, mut last_output) = (Instant::now(), Instant::now());
    let (mut last_fed, mut last_tick) = (0u64, Instant::now());
    let started = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            last_output = Instant::now();
            if !seen.take(&m, alerts) {
                continue;
            }
        }
        if last_status.elapsed() >= Duration::from_secs(1) {
            let now_fed = fed.load(Ordering::Relaxed);
            let rate = (now_fed - last_fed.min(now_fed)) as f64 / last_tick.elapsed().as_secs_f64();
            (last_fed, last_tick) = (now_fed, Instant::now());
            let day = sim_day.load(Ordering::Relaxed);
            eprintln!(
                "-- [{}] {now_fed} events fed ({rate:.0}/s) | accounts: {} green · {} yellow · {} red | {} alerts",
                if day > 0 { format_day(day as i32) } else { "starting".into() },
                seen.count("green"),
                seen.count("yellow"),
                seen.count("red"),
                seen.by_rule.values().sum::<u64>()
            );
            last_status = Instant::now();
        }
        if feeding_done.load(Ordering::Relaxed) && last_output.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    format!(
        "done in {:.0} s: {} events; accounts {} green · {} yellow · {} red; alerts by rule: {}",
        started.elapsed().as_secs_f64(),
        fed.load(Ordering::Relaxed),
        seen.count("green"),
        seen.count("yellow"),
        seen.count("red"),
        seen.by_rule.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
    )
}

/// A reader of the alerts and scores topics from their beginning.
fn watch_consumer(brokers: &str, alerts: &str, scores: &str) -> rdkafka::error::KafkaResult<BaseConsumer> {
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", brokers).set("group.id", "kizashi-demo-watch").create()?;
    let mut tpl = TopicPartitionList::new();
    for t in [alerts, scores] {
        let _ = tpl.add_partition_offset(t, 0, Offset::Beginning);
    }
    consumer.assign(&tpl)?;
    Ok(consumer)
}

/// What the watcher has seen: each account's latest band, and alerts by rule.
#[derive(Default)]
struct Seen {
    bands: BTreeMap<String, String>,
    by_rule: BTreeMap<String, u64>,
}

impl Seen {
    /// Takes one output message: an alert is counted and printed, a score update's band kept.
    /// False if the message is not JSON.
    fn take(&mut self, m: &impl Message, alerts: &str) -> bool {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(m.payload().unwrap_or_default()) else { return false };
        let account = v["account_id"].as_str().unwrap_or("?").to_string();
        if m.topic() == alerts {
            let rule = v["rule"].as_str().unwrap_or("?").to_string();
            *self.by_rule.entry(rule.clone()).or_default() += 1;
            let day = v["event_time"].as_str().unwrap_or("").get(..10).unwrap_or("").to_string();
            println!(
                "{day}  {account:<11} {rule:<20} {:>5.1}  {}",
                v["score"].as_f64().unwrap_or(0.0),
                v["summary"].as_str().unwrap_or("")
            );
        } else if let Some(b) = v["band"].as_str() {
            self.bands.insert(account, b.to_string());
        }
        true
    }

    /// Accounts whose latest band is `band`.
    fn count(&self, band: &str) -> usize {
        self.bands.values().filter(|x| *x == band).count()
    }
}
