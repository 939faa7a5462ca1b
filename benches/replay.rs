//! Core benchmark: replays a generated population (≥ 1M events by default) through the whole core
//! path (parse + validate + state + score + alerts + RocksDB batches) and compares its rate with
//! loops that only parse the same lines with serde_json.
//!
//! `cargo bench --bench replay` (sizes: KIZASHI_BENCH_ACCOUNTS, KIZASHI_BENCH_DAYS, KIZASHI_BENCH_ACTIVITY).

use std::io::BufRead;
use std::time::Instant;

use kizashi::cmd::replay::{peak_rss_bytes, run, ReplayOptions};
use kizashi::config::Settings;
use kizashi::generate::GenOptions;

#[path = "../tests/common/mod.rs"]
mod common;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn parse_only(files: &[std::path::PathBuf], typed: bool) -> (u64, f64) {
    let lines: Vec<String> = files
        .iter()
        .flat_map(|f| std::io::BufReader::new(std::fs::File::open(f).unwrap()).lines().map(Result::unwrap))
        .collect();
    let start = Instant::now();
    let mut n = 0u64;
    for l in &lines {
        if typed {
            let v: serde::de::IgnoredAny = serde_json::from_str(l).unwrap();
            std::hint::black_box(v);
        } else {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            std::hint::black_box(&v);
        }
        n += 1;
    }
    (n, start.elapsed().as_secs_f64())
}

/// One dataset: generate, replay (whole core path), then the parse-only loops on the same lines.
fn run_case(name: &str, accounts: usize, days: u32, activity: f64) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let gen = GenOptions { accounts, days, end_day: 20_400, seed: 7, activity, mix: Default::default() };
    let (_, counts) = kizashi::cmd::generate::to_dir(&gen, &data).unwrap();
    let total: u64 = counts.iter().sum();
    let files = ["usage.jsonl", "support.jsonl", "accounts.jsonl"].map(|f| data.join(f));
    let opts = ReplayOptions {
        state_dir: Some(dir.path().join("state")),
        batch: env("KIZASHI_BENCH_BATCH", 200_000usize),
        ..common::replay_options(&data, dir.path().join("out"), 20_401 * 86_400_000)
    };
    let s = run(&Settings::default(), &opts).unwrap();
    let rss = peak_rss_bytes().unwrap_or(0) as f64 / 1048576.0;
    let (n, secs) = parse_only(&files, false);
    let parse_value = n as f64 / secs;
    let (n, secs) = parse_only(&files, true);
    let parse_skip = n as f64 / secs;
    println!("== {name}: {accounts} accounts, {days} days, activity {activity}: {total} events");
    println!("  kizashi replay, whole core path: {:>9.0} events/s ({:.2} s)", s.events_per_second, s.seconds);
    println!("  parse only, serde_json::Value:   {parse_value:>9.0} events/s (kizashi / parse = {:.2})", s.events_per_second / parse_value);
    println!("  parse only, serde IgnoredAny:    {parse_skip:>9.0} events/s (kizashi / parse = {:.2})", s.events_per_second / parse_skip);
    println!("  alerts {:?}", s.tallies.alerts_by_rule);
    println!("  bands  {:?}", s.tallies.accounts_by_band);
    println!("  peak RSS after replay: {rss:.0} MiB (process high-water mark)");
}

/// A ticketing integration gone wrong: `n` urgent tickets opened on one account, each followed by
/// a usage event (so every ticket is followed by an evaluation reading the ticket measures).
fn ticket_flood(n: u32) {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t0: i64 = 20_400 * 86_400_000;
    let mut s = std::io::BufWriter::new(std::fs::File::create(d.join("support.jsonl")).unwrap());
    let mut u = std::io::BufWriter::new(std::fs::File::create(d.join("usage.jsonl")).unwrap());
    for i in 0..n {
        let ts = t0 + i64::from(i);
        writeln!(s, r#"{{"account_id":"acme","ticket_id":"T{i}","kind":"opened","priority":"urgent","ts":{ts}}}"#).unwrap();
        writeln!(u, r#"{{"account_id":"acme","user_id":"u{i}","event":"login","ts":{ts}}}"#).unwrap();
    }
    drop((s, u));
    std::fs::write(d.join("accounts.jsonl"), "").unwrap();
    let mut settings = Settings::default();
    settings.events.max_open_tickets = 1_000_000;
    let s = run(&settings, &common::replay_options(d, d.join("out"), t0 + 86_400_000)).unwrap();
    println!(
        "== ticket flood: {n} urgent tickets open on one account (+{n} usage events): {:.2} s, {:.1} µs per event",
        s.seconds,
        s.seconds * 1e6 / f64::from(2 * n)
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    for n in [10_000, 50_000, 100_000] {
        ticket_flood(n);
    }
    // Dense: few accounts, realistic per-account activity (hot accounts stay in CPU caches).
    run_case("dense", env("KIZASHI_BENCH_DENSE_ACCOUNTS", 300), 90, 1.0);
    // Sparse: 10k accounts, a few events per account-day (nearly every event hits a cold account).
    run_case("sparse", env("KIZASHI_BENCH_ACCOUNTS", 10_000), env("KIZASHI_BENCH_DAYS", 60), env("KIZASHI_BENCH_ACTIVITY", 0.05));
}
