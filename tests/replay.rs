//! `generate` + `replay` end to end on a synthetic population whose truth is known.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use kizashi::cmd::replay::{run, ReplayOptions, ReplaySummary};
use kizashi::config::Settings;
use kizashi::event::timestamp::DAY_MS;
use kizashi::generate::GenOptions;

const END_DAY: i32 = 20_400;

fn generate(dir: &Path, accounts: usize) -> Vec<kizashi::generate::Truth> {
    let opts = GenOptions { accounts, days: 60, end_day: END_DAY, seed: 11, activity: 0.4, mix: Default::default() };
    kizashi::cmd::generate::to_dir(&opts, dir).unwrap().0
}

fn opts(data: &Path, out: PathBuf, batch: usize, partitions: u32) -> ReplayOptions {
    ReplayOptions { partitions, batch, ..common::replay_options(data, out, i64::from(END_DAY + 1) * DAY_MS) }
}

fn lines(p: PathBuf) -> Vec<serde_json::Value> {
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn generated_population_ends_where_its_story_says() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let truth = generate(&data, 60);
    let summary: ReplaySummary = run(&Settings::default(), &opts(&data, dir.path().join("out"), 5_000, 1)).unwrap();
    assert_eq!(summary.counts.events_rejected, 0);
    assert!(summary.counts.events_applied > 50_000, "{summary:?}");

    let bands: HashMap<String, String> = lines(dir.path().join("out/scores.jsonl"))
        .into_iter()
        .map(|s| (s["account_id"].as_str().unwrap().to_string(), s["band"].as_str().unwrap().to_string()))
        .collect();
    let alerts = lines(dir.path().join("out/alerts.jsonl"));
    let has_alert = |acct: &str, rule: &str| {
        alerts.iter().any(|a| {
            a["account_id"] == acct
                && (a["rule"] == rule || a["also"].as_array().unwrap().iter().any(|r| r == rule))
        })
    };
    let mut seen = HashMap::new();
    for t in &truth {
        let band = bands.get(&t.account_id).map(String::as_str).unwrap_or("none");
        *seen.entry(t.profile.name()).or_insert(0) += 1;
        match t.profile.name() {
            "healthy" => assert!(band == "green" || band == "yellow", "{} ended {band}", t.account_id),
            "inactive" => {
                assert_eq!(band, "red", "{} ({:?}) ended {band}", t.account_id, t.change_from);
                assert!(has_alert(&t.account_id, "inactive"), "{} has no inactive alert", t.account_id);
            }
            _ => {}
        }
    }
    assert!(seen.get("healthy").copied().unwrap_or(0) >= 10 && seen.get("inactive").copied().unwrap_or(0) >= 3, "{seen:?}");
}

#[test]
fn replay_is_byte_identical_across_runs_and_batch_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    generate(&data, 25);
    run(&Settings::default(), &opts(&data, dir.path().join("a"), 100_000, 3)).unwrap();
    run(&Settings::default(), &opts(&data, dir.path().join("b"), 777, 3)).unwrap();
    for f in ["alerts.jsonl", "scores.jsonl", "rejects.jsonl"] {
        let a = std::fs::read(dir.path().join("a").join(f)).unwrap();
        let b = std::fs::read(dir.path().join("b").join(f)).unwrap();
        assert!(a == b, "{f} differs between runs");
    }
    assert!(!std::fs::read(dir.path().join("a/alerts.jsonl")).unwrap().is_empty());
}

#[test]
fn bad_lines_go_to_rejects_with_their_reason_and_never_stop_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let usage = dir.path().join("usage.jsonl");
    let day = i64::from(END_DAY) * DAY_MS;
    let good = |u: u32, t: i64| format!(r#"{{"account_id":"a","user_id":"u{u}","event":"login","ts":{t}}}"#);
    let content = [
        good(1, day),
        "this is not json".to_string(),
        r#"{"user_id":"u","event":"login","ts":1}"#.to_string(),
        good(2, day + 1000),
        r#"{"account_id":"a","user_id":"u","event":"login","ts":"2999-01-01T00:00:00Z"}"#.to_string(),
        format!(r#"{{"account_id":"a","user_id":"u","event":"login","ts":{}}}"#, day - 200 * DAY_MS),
        good(3, day + 2000),
    ]
    .join("\n");
    std::fs::write(&usage, content).unwrap();
    let mut o = opts(dir.path(), dir.path().join("out"), 2, 1);
    o.usage = vec![usage];
    o.support = vec![];
    o.accounts = vec![];
    let s = run(&Settings::default(), &o).unwrap();
    assert_eq!((s.events_read, s.counts.events_applied, s.counts.events_rejected), (7, 3, 4));
    let rejects = lines(dir.path().join("out/rejects.jsonl"));
    let got: Vec<(i64, &str)> = rejects.iter().map(|r| (r["line"].as_i64().unwrap(), r["reason"].as_str().unwrap())).collect();
    assert_eq!(got, vec![(2, "not_json"), (3, "missing_field"), (5, "ts_in_future"), (6, "too_late")]);
    assert_eq!(rejects[0]["raw"], "this is not json");
    assert!(rejects[3]["raw"].as_str().unwrap().contains(r#""user_id":"u""#));
    assert!(rejects[1]["detail"].as_str().unwrap().contains("account_id"));
}

#[test]
fn the_cli_runs_generate_replay_and_check_config() {
    let exe = env!("CARGO_BIN_EXE_kizashi");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let st = Command::new(exe)
        .args(["generate", "--accounts", "8", "--days", "20", "--end", "2025-11-08", "--activity", "0.3", "--out"])
        .arg(&data)
        .status()
        .unwrap();
    assert!(st.success());
    let out = common::replay_command(&data, &dir.path().join("out"), "2025-11-09T00:00:00Z").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("accounts by band:") && stdout.contains("events/s"), "{stdout}");
    assert_eq!(lines(dir.path().join("out/scores.jsonl")).len(), 8);

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[scoring]\nred_below = 90\ngreen_from = \"x\"\n[nope]\n").unwrap();
    let out = Command::new(exe).args(["check-config", "--config"]).arg(&bad).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for key in ["scoring.green_from", "nope", "scoring.red_below"] {
        assert!(stderr.contains(key), "{key} missing from: {stderr}");
    }
    let out = Command::new(exe)
        .args(["check-config", "--config"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/kizashi.toml"))
        .env("KIZASHI__SCORING__RED_BELOW", "35")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("red_below = 35.0"));
}

/// Runs a generated population through the engine (one partition, like `replay`), keeping every
/// alert and every score update, and returns the per-profile report.
fn population_report(accounts: usize, days: u32, activity: f64, seed: u64) -> Vec<kizashi::generate::ProfileRow> {
    mix_report(kizashi::generate::Mix::Default, accounts, days, activity, seed)
}

fn mix_report(mix: kizashi::generate::Mix, accounts: usize, days: u32, activity: f64, seed: u64) -> Vec<kizashi::generate::ProfileRow> {
    use kizashi::core::alerts::AlertKind;
    use kizashi::core::{Alert, Params, ScoreUpdate};
    use kizashi::engine::{Engine, Options, Record, Source};
    use kizashi::generate::{profile_report, AlertSeen};
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::default();
    let mut engine = Engine::open(dir.path(), Params::new(&settings), Options::new(kizashi::store::Budget { total: 256 << 20 })).unwrap();
    let limits = settings.events.decode_limits(i64::MAX / 2);
    let (mut alerts, mut scores): (Vec<Alert>, Vec<ScoreUpdate>) = (Vec::new(), Vec::new());
    let mut n = 0i64;
    let opts = GenOptions { accounts, days, end_day: END_DAY, seed, activity, mix };
    let truths = kizashi::generate::generate(&opts, |r| {
        n += 1;
        let decoded = kizashi::event::decode(r.kind, r.line.as_bytes(), None, &limits);
        engine.process(0, Record::new(Source { name: "gen", offset: n }, b"", &decoded)).unwrap();
        if n % 20_000 == 0 {
            engine.flush(|_| {}).unwrap();
            let out = engine.take_output();
            assert!(out.rejected.is_empty(), "{:?}", out.rejected.first());
            alerts.extend(out.alerts);
            scores.extend(out.scores);
        }
    });
    while engine.advance_time(0, i64::from(END_DAY + 1) * DAY_MS).unwrap() {}
    engine.flush(|_| {}).unwrap();
    let out = engine.take_output();
    alerts.extend(out.alerts);
    scores.extend(out.scores);
    let seen: Vec<AlertSeen<'_>> = alerts
        .iter()
        .map(|a| AlertSeen {
            account_id: &a.account_id,
            rules: std::iter::once(a.rule).chain(a.also.iter().copied()).map(|r| r.name()).collect(),
            risk: a.rule.kind() == AlertKind::Risk,
            at_ms: a.event_time_ms,
        })
        .collect();
    let bands: Vec<(&str, i64, &str)> = scores.iter().map(|s| (s.account_id.as_str(), s.event_time_ms, s.band.name())).collect();
    profile_report(&truths, &seen, &bands)
}

/// The default scorecards on the generator's population (its realistic activity): scores lead (a
/// fall in usage shows within a week, whatever the tickets), healthy accounts stay quiet,
/// never-activated ones are seen.
#[test]
fn default_scorecards_lead_on_the_generated_population() {
    let rows = population_report(300, 70, 1.0, 23);
    println!("{}", kizashi::generate::render_profile_report(&rows));
    let row = |p: &str| rows.iter().find(|r| r.profile == p).unwrap_or_else(|| panic!("no {p} accounts"));
    let share = |n: usize, of: usize| n as f64 / of.max(1) as f64;
    let healthy = row("healthy");
    assert!(healthy.accounts >= 100, "{healthy:?}");
    assert!(share(healthy.ever_red, healthy.accounts) <= 0.02, "healthy ever red: {healthy:?}");
    assert!(share(healthy.alerted, healthy.accounts) <= 0.05, "healthy alerted: {healthy:?}");
    assert_eq!(healthy.final_bands[0], 0, "{healthy:?}");
    for p in ["declining", "declining_with_tickets"] {
        let r = row(p);
        assert!(r.fell >= 10, "{r:?}");
        // The misses are accounts of a handful of users, whose week-to-week swings (±20% in this
        // mix, by design) hide a fall for some days: a fall must be 3 standard deviations of the
        // account's own noise (docs/scoring.md, where this mix's figures before and after are).
        assert!(share(r.flagged_within_7d, r.fell) >= 0.75, "{p}: yellow or red within 7 days of falling below half its norm: {r:?}");
        assert!(share(r.alerted_within_7d, r.fell) >= 0.6, "{p}: alerted within 7 days: {r:?}");
        // At most one: a decline that reached its floor four weeks before the end has half of its
        // norm's weeks at the new level (a 70-day population has eight weeks of norm at most),
        // and its trends read it as its new normal (docs/scoring.md).
        assert!(r.final_bands[2] + r.final_bands[3] <= 1, "{p}: ends red or yellow: {r:?}");
    }
    assert!(row("declining_with_tickets").rules.get("usage_drop").copied().unwrap_or(0) > 0);
    let shelf = row("shelfware");
    assert_eq!(shelf.final_bands[2], 0, "shelfware is not green: {shelf:?}");
    let never = row("never_activated");
    assert_eq!(never.rules.get("not_activated").copied(), Some(never.accounts), "{never:?}");
    assert_eq!(never.final_bands[0], never.accounts, "never activated accounts end red: {never:?}");
    let inactive = row("inactive");
    assert_eq!(inactive.final_bands[0], inactive.accounts, "{inactive:?}");
}

/// The realistic mix (noisy healthy accounts, small teams, bursty ones, exponential declines,
/// champions who leave, support crises): what docs/scoring.md reports, as a floor that a change
/// to the scoring must not fall below. Where a bound is looser than the goal of issue #32, the
/// document says by how much and why.
#[test]
fn noise_aware_rules_on_the_realistic_population() {
    let rows = mix_report(kizashi::generate::Mix::Realistic, 300, 70, 1.0, 7);
    println!("{}", kizashi::generate::render_profile_report(&rows));
    let row = |p: &str| rows.iter().find(|r| r.profile == p).unwrap_or_else(|| panic!("no {p} accounts"));
    let share = |n: usize, of: usize| n as f64 / of.max(1) as f64;
    let healthy = row("healthy");
    assert!(share(healthy.alerted, healthy.accounts) <= 0.05, "healthy alerted: {healthy:?}");
    assert!(share(healthy.not_green_at_end, healthy.accounts) <= 0.05, "{healthy:?}");
    let bursty = row("bursty");
    assert!(share(bursty.alerted, bursty.accounts) <= 0.12, "bursty alerted: {bursty:?}");
    let small = row("small_healthy");
    assert!(share(small.alerted, small.accounts) <= 0.15, "small healthy alerted: {small:?}");
    let declining = row("declining");
    assert!(share(declining.not_green_at_end, declining.accounts) >= 0.9, "{declining:?}");
    assert!(share(declining.alerted_within_14d_of_change, declining.changed) >= 0.45, "{declining:?}");
    assert!(share(declining.fast_alerted_within_14d, declining.fast_changed) >= 0.7, "{declining:?}");
    let champion = row("champion_left");
    assert!(share(champion.alerted_within_14d_of_change, champion.changed) >= 0.8, "{champion:?}");
    let crisis = row("support_crisis");
    assert!(share(crisis.not_green_at_end, crisis.accounts) >= 0.9, "{crisis:?}");
    assert!(share(crisis.alerted_within_7d_of_change, crisis.changed) >= 0.95, "{crisis:?}");
    for p in ["inactive", "never_activated", "shelfware"] {
        let r = row(p);
        assert_eq!(r.alerted, r.accounts, "{p}: every one alerted: {r:?}");
        assert_eq!(r.final_bands[2], 0, "{p}: none green: {r:?}");
    }
}

/// `replay` writes accounts back only when its cache is full: with a budget far smaller than the
/// population the cache fills and is written out many times, and every output stays byte-identical
/// to a replay whose cache holds everything (over two partitions, so the final scores are merged
/// from both in id order).
#[test]
fn a_cache_smaller_than_the_population_changes_no_replay_output() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    generate(&data, 40);
    let big = run(&Settings::default(), &opts(&data, dir.path().join("big"), 5_000, 2)).unwrap();
    let mut tiny = Settings::default();
    // Below what config accepts (64MiB): the engine takes any budget, and this one holds ~15 accounts.
    tiny.state.memory_budget = kizashi::config::ByteSize(192 << 10);
    let small = run(&tiny, &opts(&data, dir.path().join("small"), 5_000, 2)).unwrap();
    assert_eq!(big.store.spills, 0, "{:?}", big.store);
    assert!(small.store.spills > 10, "the small cache filled: {:?}", small.store);
    assert!(small.store.writes.user_bytes > big.store.writes.user_bytes, "{:?} vs {:?}", small.store, big.store);
    for f in ["alerts.jsonl", "scores.jsonl", "rejects.jsonl"] {
        let a = std::fs::read(dir.path().join("big").join(f)).unwrap();
        let b = std::fs::read(dir.path().join("small").join(f)).unwrap();
        assert!(a == b, "{f} differs with a small cache");
    }
    assert_eq!(std::fs::read_to_string(dir.path().join("big/scores.jsonl")).unwrap().lines().count(), 40);
    assert_eq!(big.tallies.alerts_by_rule, small.tallies.alerts_by_rule);
}
