//! Scale-out benchmark against nisshi on loopback: (1) restoring partitions from the changelog
//! after the local state is lost (accounts/s, MB/s, time from assignment to processing), and
//! (2) throughput of 1, 2 and 3 instances of one group on the same pre-loaded data.
//! `scripts/bench scaleout`
//! (KIZASHI_BENCH_RESTORE_ACCOUNTS, default 100,000; KIZASHI_BENCH_SCALE_ACCOUNTS, _DAYS for (2)).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Broker;
use kizashi::event::timestamp::{day_of, now_ms};
use kizashi::generate::GenOptions;

const INPUTS: [&str; 3] = ["product-usage", "support-events", "accounts"];

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn start(exe: &Path, b: &Broker, group: &str, state: &Path, log: &Path) -> Child {
    Command::new(exe)
        .arg("run")
        .env("KIZASHI__KAFKA__BROKERS", &b.addr)
        .env("KIZASHI__KAFKA__GROUP_ID", group)
        .env("KIZASHI__STATE__DIR", state)
        .env("KIZASHI__PIPELINE__IDLE_AFTER", "1d")
        .env("KIZASHI__HTTP__LISTEN", "")
        .env("KIZASHI__KAFKA__PROPERTIES__SESSION_TIMEOUT_MS", "6000")
        .env("KIZASHI__KAFKA__PROPERTIES__HEARTBEAT_INTERVAL_MS", "500")
        .env("RUST_LOG", "info,librdkafka=warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn stop(mut c: Child) {
    Command::new("kill").args(["-TERM", &c.id().to_string()]).status().unwrap();
    let _ = c.wait();
}

/// Seconds from the first to the last commit that completes the input.
fn caught_up(b: &Broker, group: &str, total: i64) -> f64 {
    let t0 = Instant::now();
    while b.group_progress(group, &INPUTS).0 < total {
        assert!(t0.elapsed() < Duration::from_secs(900), "{group} did not catch up");
        std::thread::sleep(Duration::from_millis(50));
    }
    t0.elapsed().as_secs_f64()
}

fn field(line: &str, name: &str) -> Option<f64> {
    let at = line.find(&format!(" {name}="))? + name.len() + 2;
    line[at..].split_whitespace().next()?.trim_matches('"').parse().ok()
}

fn load(b: &Broker, dir: &Path, accounts: usize, days: u32, activity: f64, parts: i32) -> i64 {
    b.create_kizashi_topics([parts; 3]);
    let gen = GenOptions { accounts, days, end_day: day_of(now_ms()) - 1, seed: 9, activity, mix: Default::default() };
    kizashi::cmd::generate::to_dir(&gen, dir).unwrap();
    for (t, f) in INPUTS.iter().zip(["usage.jsonl", "support.jsonl", "accounts.jsonl"]) {
        b.produce_file(t, &dir.join(f));
    }
    b.group_progress("nobody", &INPUTS).1
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let exe = common::release_binary();
    let dir = tempfile::tempdir().unwrap();

    // (1) Restoration: process a population, stop, lose the disk, start again.
    let accounts = env("KIZASHI_BENCH_RESTORE_ACCOUNTS", 100_000usize);
    let b = Broker::start();
    let t = Instant::now();
    let total = load(&b, &dir.path().join("restore-data"), accounts, 2, 0.1, 3);
    eprintln!("pre-loaded {total} records for {accounts} accounts in {:.1} s", t.elapsed().as_secs_f64());
    let state = dir.path().join("restore-state");
    let k = start(&exe, &b, "restore", &state, &dir.path().join("restore-1.log"));
    let first = caught_up(&b, "restore", total);
    stop(k);
    std::fs::remove_dir_all(&state).unwrap();
    let log = dir.path().join("restore-2.log");
    let started = Instant::now();
    let k = start(&exe, &b, "restore", &state, &log);
    let mut restored = Vec::new();
    while restored.len() < 3 && started.elapsed() < Duration::from_secs(600) {
        std::thread::sleep(Duration::from_millis(100));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        restored = text.lines().filter(|l| l.contains("restored the partition from the changelog")).map(str::to_string).collect();
    }
    let to_ready = started.elapsed().as_secs_f64();
    stop(k);
    // Partitions restore in parallel: the slowest one is the wall time.
    let (mut n, mut bytes, mut secs) = (0.0, 0.0, 0.0f64);
    for l in &restored {
        n += field(l, "accounts").unwrap_or(0.0);
        bytes += field(l, "bytes").unwrap_or(0.0);
        secs = secs.max(field(l, "seconds").unwrap_or(0.0));
    }
    println!("(1) {accounts} accounts ({total} records) processed in {first:.1} s; after losing the disk:");
    println!(
        "    restored {n:.0} accounts, {:.1} MB from the changelog, {} partitions in parallel, in {secs:.2} s: {:.0} accounts/s, {:.1} MB/s; process start to all partitions restored: {to_ready:.1} s",
        bytes / 1e6,
        restored.len(),
        n / secs.max(1e-9),
        bytes / 1e6 / secs.max(1e-9)
    );
    drop(b);

    // (2) 1, 2 and 3 instances of one group on the same pre-loaded data (6 partitions).
    let b = Broker::start();
    let sa = env("KIZASHI_BENCH_SCALE_ACCOUNTS", 600usize);
    let sd = env("KIZASHI_BENCH_SCALE_DAYS", 45u32);
    let total = load(&b, &dir.path().join("scale-data"), sa, sd, 0.3, 6);
    for n in 1..=3 {
        let group = format!("scale-{n}");
        let kids: Vec<Child> = (0..n)
            .map(|i| start(&exe, &b, &group, &dir.path().join(format!("{group}-{i}")), &dir.path().join(format!("{group}-{i}.log"))))
            .collect();
        let secs = caught_up(&b, &group, total);
        println!("(2) {n} instance(s): {total} records in {secs:.1} s = {:.0} events/s (group join included)", total as f64 / secs);
        for k in kids {
            stop(k);
        }
    }
}
