//! Pipeline benchmark against a real Kafka-protocol broker (nisshi on loopback), in one run:
//! (a) a plain consumer that only counts the pre-loaded messages, (b) `kizashi run` end to end on
//! the same topics, (c) event-to-alert latency while events arrive live at about half of (b)'s
//! rate, beside the broker's own produce → consume latency for the same records under the same
//! load, and (d) (b) again while a client queries `/v1/accounts/{id}` at a fixed rate and the
//! workspace page refreshes: the API's latency and what serving costs ingestion, as the median of
//! alternating pairs of runs without and with them. `scripts/bench pipeline`
//! (KIZASHI_BENCH_PIPELINE_ACCOUNTS, _DAYS to size it; KIZASHI_BENCH_LIVE_RATE for (c);
//! KIZASHI_BENCH_API_RATE and KIZASHI_BENCH_API_PAIRS for (d)).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Broker;
use kizashi::event::timestamp::{day_of, now_ms};
use kizashi::generate::GenOptions;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Message, Offset, TopicPartitionList};

const INPUTS: [&str; 3] = ["product-usage", "support-events", "accounts"];

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let exe = common::release_binary();
    let b = Broker::start();
    let parts = 3;
    b.create_kizashi_topics([parts; 3]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // History ending yesterday, so live events (now) continue it.
    let end_day = day_of(now_ms()) - 1;
    let accounts = env("KIZASHI_BENCH_PIPELINE_ACCOUNTS", 800usize);
    let days = env("KIZASHI_BENCH_PIPELINE_DAYS", 45u32);
    let gen = GenOptions { accounts, days, end_day, seed: 3, activity: 0.3, mix: Default::default() };
    kizashi::cmd::generate::to_dir(&gen, &data).unwrap();
    let t = Instant::now();
    b.produce_file(INPUTS[0], &data.join("usage.jsonl"));
    b.produce_file(INPUTS[1], &data.join("support.jsonl"));
    b.produce_file(INPUTS[2], &data.join("accounts.jsonl"));
    let (_, total) = b.group_progress("nobody", &INPUTS);
    eprintln!("pre-loaded {total} records in {:.1} s", t.elapsed().as_secs_f64());

    // (a) plain consumer: count every message of the three topics.
    // With kizashi's own fetch tuning (fetch.queue.backoff.ms), so the comparison is fair.
    let c: BaseConsumer =
        b.config().set("group.id", "bench-count").set("fetch.queue.backoff.ms", "10").create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for t in INPUTS {
        for p in 0..parts {
            tpl.add_partition_offset(t, p, Offset::Beginning).unwrap();
        }
    }
    c.assign(&tpl).unwrap();
    let (mut n, start) = (0i64, Instant::now());
    while n < total && start.elapsed() < Duration::from_secs(300) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            n += 1;
            std::hint::black_box(m.payload());
        }
    }
    let plain = n as f64 / start.elapsed().as_secs_f64();
    drop(c);

    // (b) kizashi end to end, from its first commit to its last (HTTP port open, no queries).
    let start_kizashi = |group: &str, http: &str| {
        Command::new(&exe)
            .arg("run")
            .env("KIZASHI__KAFKA__BROKERS", &b.addr)
            .env("KIZASHI__KAFKA__GROUP_ID", group)
            .env("KIZASHI__STATE__DIR", dir.path().join(group))
            .env("KIZASHI__PIPELINE__IDLE_AFTER", "1d")
            .env("KIZASHI__HTTP__LISTEN", http)
            .env("RUST_LOG", "warn")
            .env("KIZASHI__PIPELINE__MERGE_WAIT", std::env::var("BENCH_MERGE_WAIT").unwrap_or("1s".into()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // Records processed and written, from kizashi's own metrics (polled every 10 ms), from its
    // first written batch to the one that completes the pre-load.
    let caught_up = |http: &str| {
        let written = || {
            common::http_get(http, "/metrics", None)
                .and_then(|(_, text)| common::metric(&text, "kizashi_batch_records_sum"))
                .unwrap_or(0.0) as i64
        };
        let (mut first, mut t_first) = (0i64, Instant::now());
        loop {
            let done = written();
            if done > 0 && first == 0 {
                (first, t_first) = (done, Instant::now());
            }
            if done >= total {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        (total - first) as f64 / t_first.elapsed().as_secs_f64()
    };
    let http_b = format!("127.0.0.1:{}", common::free_port());
    let mut child = start_kizashi("bench", &http_b);
    let e2e = caught_up(&http_b);

    // (d) the same on a fresh state and group, with a client querying random accounts at a
    // fixed rate over one keep-alive connection (latency from each request's scheduled time: no
    // coordinated omission) and the workspace page open, refreshing once a second (five times as
    // often as the page does: the page itself, the summary, a queue page of 50 with its heatmap,
    // one account's view and history). A run of ~1.5 s varies by ±15% by itself here, so (d) is
    // `KIZASHI_BENCH_API_PAIRS` (5) pairs of runs, each a run without queries and one with them
    // on fresh groups, in alternating order; the slowdown is the median of the pairs'.
    let api_rate = env("KIZASHI_BENCH_API_RATE", 500.0f64);
    let pairs = env("KIZASHI_BENCH_API_PAIRS", 5usize).max(1);
    let ingest = |group: &str, queries: bool| {
        let http = format!("127.0.0.1:{}", common::free_port());
        let mut child = start_kizashi(group, &http);
        let stop_load = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let load = queries.then(|| {
            let (addr, stop) = (http.clone(), stop_load.clone());
            let (addr2, stop2) = (http.clone(), stop_load.clone());
            (
                std::thread::spawn(move || query_load(&addr, accounts, api_rate, &stop)),
                std::thread::spawn(move || page_load(&addr2, accounts, &stop2)),
            )
        });
        let rate = caught_up(&http);
        stop_load.store(true, std::sync::atomic::Ordering::Relaxed);
        let answers = load.map(|(q, p)| (q.join().unwrap(), p.join().unwrap()));
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        let _ = child.wait();
        (rate, answers)
    };
    let (mut found, mut all, mut page_refreshes) = (Vec::new(), Vec::new(), 0);
    let mut slowdowns = Vec::new();
    let mut runs = Vec::new();
    for i in 0..pairs {
        let mut one = |queries: bool| {
            let (rate, answers) = ingest(&format!("bench-{}-{i}", if queries { "api" } else { "plain" }), queries);
            if let Some(((f, a), p)) = answers {
                found.extend(f);
                all.extend(a);
                page_refreshes += p;
            }
            rate
        };
        let (without, with) = if i % 2 == 0 {
            let w = one(false);
            (w, one(true))
        } else {
            let q = one(true);
            (one(false), q)
        };
        runs.push((without, with));
        slowdowns.push((with / without - 1.0) * 100.0);
    }
    found.sort_by(f64::total_cmp);
    all.sort_by(f64::total_cmp);
    let mut sorted = slowdowns.clone();
    sorted.sort_by(f64::total_cmp);
    let median_slowdown = percentile(&sorted, 0.5);

    // (c) live: usage at about half of (b)'s rate, plus support tickets that each complete a
    // ticket_spike (6 opened in 7 days) for one account; latency = produce → alert consumed.
    let rate = env("KIZASHI_BENCH_LIVE_RATE", (e2e / 2.0).max(1000.0));
    let batch_stats = || {
        let text = common::http_get(&http_b, "/metrics", None).map(|(_, t)| t).unwrap_or_default();
        let m = |s: &str| common::metric(&text, s).unwrap_or(0.0);
        [m("kizashi_batches_total"), m("kizashi_batch_records_sum"), m("kizashi_batch_duration_seconds_sum"), m("kizashi_event_to_alert_seconds_sum"), m("kizashi_event_to_alert_seconds_count")]
    };
    let before = batch_stats();
    let alerts: BaseConsumer = b.config().set("group.id", "bench-alerts").set("fetch.wait.max.ms", "5").create().unwrap();
    let mut atpl = TopicPartitionList::new();
    atpl.add_partition_offset("health-alerts", 0, Offset::End).unwrap();
    alerts.assign(&atpl).unwrap();
    // The broker's own share: a plain consumer of the support topic sees each sixth ticket; its
    // produce → consume latency, under the same live load, is the floor kizashi's adds to.
    let tickets: BaseConsumer = b.config().set("group.id", "bench-tickets").set("fetch.wait.max.ms", "5").create().unwrap();
    let mut ttpl = TopicPartitionList::new();
    for p in 0..parts {
        ttpl.add_partition_offset(INPUTS[1], p, Offset::End).unwrap();
    }
    tickets.assign(&ttpl).unwrap();
    let producer: ThreadedProducer<DefaultProducerContext> =
        b.config().set("partitioner", "murmur2_random").set("linger.ms", "2").create().unwrap();
    let mut sent_at = std::collections::HashMap::new();
    let mut ticket_sent_at = std::collections::HashMap::new();
    let mut latencies = Vec::new();
    let mut broker_latencies = Vec::new();
    let live_secs = 15.0;
    let start = Instant::now();
    let mut sent = 0u64;
    let mut spikes = 0usize;
    while start.elapsed().as_secs_f64() < live_secs {
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        while sent < due {
            let acct = format!("acct-{:05}", sent as usize % accounts);
            let line = format!(r#"{{"account_id":"{acct}","user_id":"u-{}","event":"login","ts":{}}}"#, sent % 50, now_ms());
            let _ = producer.send(BaseRecord::to(INPUTS[0]).key(acct.as_bytes()).payload(line.as_bytes()));
            sent += 1;
        }
        // Every 100 ms, one account gets six tickets: the sixth fires ticket_spike.
        if (start.elapsed().as_millis() / 100) as usize >= spikes && spikes < accounts {
            let acct = format!("acct-{spikes:05}");
            for i in 0..6 {
                let line = format!(
                    r#"{{"account_id":"{acct}","ticket_id":"B-{spikes}-{i}","kind":"opened","priority":"low","ts":{}}}"#,
                    now_ms()
                );
                let _ = producer.send(BaseRecord::to(INPUTS[1]).key(acct.as_bytes()).payload(line.as_bytes()));
            }
            ticket_sent_at.insert(format!("B-{spikes}-5"), Instant::now());
            sent_at.insert(acct, Instant::now());
            spikes += 1;
        }
        while let Some(Ok(m)) = tickets.poll(Duration::ZERO) {
            let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
            if let Some(t) = v["ticket_id"].as_str().and_then(|id| ticket_sent_at.remove(id)) {
                broker_latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        while let Some(Ok(m)) = alerts.poll(Duration::ZERO) {
            let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
            if v["rule"] == "ticket_spike" || v["also"].as_array().is_some_and(|a| a.iter().any(|r| r == "ticket_spike")) {
                if let Some(t) = sent_at.remove(v["account_id"].as_str().unwrap_or("")) {
                    latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let drain = Instant::now();
    while !sent_at.is_empty() && drain.elapsed() < Duration::from_secs(5) {
        if let Some(Ok(m)) = alerts.poll(Duration::from_millis(50)) {
            let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
            if let Some(t) = sent_at.remove(v["account_id"].as_str().unwrap_or("")) {
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }
    let _ = producer.flush(Duration::from_secs(5));
    let after = batch_stats();
    let d: Vec<f64> = (0..5).map(|i| after[i] - before[i]).collect();
    println!(
        "    during (c): {:.0} batches of {:.0} records on average, {:.2} ms each to process and write; kizashi's own event-to-alert (event time → acknowledged) mean {:.1} ms",
        d[0],
        d[1] / d[0].max(1.0),
        d[2] * 1000.0 / d[0].max(1.0),
        d[3] * 1000.0 / d[4].max(1.0)
    );
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let _ = child.wait();
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    broker_latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("records pre-loaded:          {total} ({accounts} accounts × {days} days, {parts} partitions)");
    println!("(a) plain counting consumer: {plain:>9.0} events/s");
    println!("(b) kizashi end to end:      {e2e:>9.0} events/s  (ratio {:.2})", e2e / plain);
    println!(
        "(d) with {api_rate:.0} queries/s and the page refreshing every second ({page_refreshes} refreshes), {pairs} pairs of runs: median {median_slowdown:+.1}% \
         (each pair, without → with: {})\n    /v1/accounts/{{id}} p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} answers ({} found the account)",
        runs.iter().zip(&slowdowns).map(|((w, q), d)| format!("{w:.0} → {q:.0} {d:+.1}%")).collect::<Vec<_>>().join("; "),
        percentile(&found, 0.5),
        percentile(&found, 0.99),
        found.last().copied().unwrap_or(f64::NAN),
        all.len(),
        found.len(),
    );
    println!(
        "    all answers (incl. 404 before an account exists): p50 {:.2} ms, p99 {:.2} ms",
        percentile(&all, 0.5),
        percentile(&all, 0.99)
    );
    println!(
        "(c) live at {rate:.0} events/s: event-to-alert latency p50 {:.1} ms, p99 {:.1} ms ({} of {spikes} alerts seen)",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.len()
    );
    println!(
        "    the broker alone (same records, produce → plain consumer, same load): p50 {:.1} ms, p99 {:.1} ms ({} seen)",
        percentile(&broker_latencies, 0.5),
        percentile(&broker_latencies, 0.99),
        broker_latencies.len()
    );
}

/// What an open workspace page asks for, once a second, until `stop`; returns the refreshes done.
fn page_load(addr: &str, accounts: usize, stop: &std::sync::atomic::AtomicBool) -> usize {
    let mut n = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let id = format!("acct-{:05}", n % accounts.max(1));
        for path in ["/", "/app.js", "/v1/summary", "/v1/accounts?limit=50&sort=risk", &format!("/v1/accounts/{id}"), &format!("/v1/accounts/{id}/history")] {
            let _ = common::http_get(addr, path, None);
        }
        n += 1;
        std::thread::sleep(Duration::from_secs(1));
    }
    n
}

/// Queries `/v1/accounts/{id}` for random accounts at `rate` per second over one keep-alive
/// connection until `stop`. Returns latencies in ms (from the scheduled send time) of the
/// answers that found the account, and of all answers.
fn query_load(addr: &str, accounts: usize, rate: f64, stop: &std::sync::atomic::AtomicBool) -> (Vec<f64>, Vec<f64>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let (mut found, mut all) = (Vec::new(), Vec::new());
    let connect = || loop {
        if let Ok(s) = std::net::TcpStream::connect(addr) {
            s.set_nodelay(true).unwrap();
            return s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stream = connect();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let start = Instant::now();
    let mut n = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let scheduled = start + Duration::from_secs_f64(n as f64 / rate);
        if let Some(wait) = scheduled.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        n += 1;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let id = format!("acct-{:05}", rng as usize % accounts);
        write!(stream, "GET /v1/accounts/{id} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
        let (mut status, mut len, mut line) = (0u16, 0usize, String::new());
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if line.starts_with("HTTP/1.1 ") {
                status = line[9..12].parse().unwrap();
            } else if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        let ms = scheduled.elapsed().as_secs_f64() * 1000.0;
        all.push(ms);
        if status == 200 {
            found.push(ms);
        }
    }
    (found, all)
}
