//! Golden files for the alert and score-update JSON contracts (DESIGN §5). A change to these
//! bytes breaks consumers: update the golden files only on purpose (`KIZASHI_BLESS=1 cargo test`).

use std::path::Path;

use kizashi::config::Settings;
use kizashi::core::Params;
use kizashi::engine::{Engine, Options, Record, Source};
use kizashi::event::timestamp::DAY_MS;
use kizashi::event::{decode, EventKind};

fn check_golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("KIZASHI_BLESS").is_some() {
        std::fs::write(&path, format!("{actual}\n")).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(actual, expected.trim_end(), "{name} differs from the golden file");
}

/// A small, fixed story: an account with 6 users goes silent; the inactive alert and the score
/// updates it produces are the golden outputs.
fn story() -> (Vec<String>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = Engine::open(dir.path(), Params::new(&Settings::default()), Options::new(kizashi::store::Budget { total: 256 << 20 })).unwrap();
    let limits = Settings::default().events.decode_limits(i64::MAX / 2);
    let day0 = 20_400i64;
    let mut lines: Vec<(EventKind, String)> = vec![(
        EventKind::Account,
        r#"{"account_id":"acme","name":"ACME Corp","seats":8,"segment":"enterprise","arr":120000,"renewal_date":"2026-03-31","ts":"2025-11-08T00:00:00Z"}"#.into(),
    )];
    for d in 0..30 {
        for u in 0..6 {
            let ts = (day0 + d) * DAY_MS + 9 * 3_600_000 + u * 60_000;
            lines.push((
                EventKind::Usage,
                format!(r#"{{"account_id":"acme","user_id":"u-{u}","event":"feature_used","feature":"f{}","ts":{ts}}}"#, (u + d) % 7),
            ));
        }
    }
    lines.push((
        EventKind::Support,
        format!(r#"{{"account_id":"acme","ticket_id":"T-1","kind":"opened","priority":"urgent","ts":{}}}"#, (day0 + 29) * DAY_MS + 15 * 3_600_000),
    ));
    let (mut alerts, mut scores) = (Vec::new(), Vec::new());
    for (i, (kind, line)) in lines.iter().enumerate() {
        let decoded = decode(*kind, line.as_bytes(), None, &limits);
        engine.process(0, Record::new(Source { name: "golden", offset: i as i64 }, b"", &decoded)).unwrap();
    }
    for d in 30..46 {
        while engine.advance_time(0, (day0 + d) * DAY_MS + 12 * 3_600_000).unwrap() {}
    }
    engine.flush(|_| {}).unwrap();
    let out = engine.take_output();
    alerts.extend(out.alerts.iter().map(|a| a.to_json()));
    scores.extend(out.scores.iter().map(|s| s.to_json()));
    (alerts, scores)
}

#[test]
fn alert_json_matches_the_golden_file() {
    let (alerts, _) = story();
    let inactive = alerts.iter().find(|a| a.contains(r#""rule":"inactive""#)).expect("an inactive alert");
    check_golden("alert_inactive.json", inactive);
    let v: serde_json::Value = serde_json::from_str(inactive).unwrap();
    assert_eq!((v["kind"].as_str(), v["arr"].as_f64(), v["tier"].as_str()), (Some("risk"), Some(120000.0), Some("high")));
    assert_eq!(v["status"], "open", "no action taken: `action`, `assignee` and `override` are left out");
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut want = vec![
        "alert_id", "account_id", "rule", "kind", "also", "severity", "score", "previous_score", "band", "previous_band",
        "segment", "tier", "status", "days_to_renewal", "arr", "scorecard", "event_time", "emitted_at", "explanation", "shortfall", "summary",
    ];
    want.sort();
    assert_eq!(keys, want);
    for e in v["explanation"].as_array().unwrap() {
        let mut k: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        k.sort();
        assert_eq!(k, ["measure", "points", "previous", "value", "weight"]);
    }
    // What keeps the score from 100: per measure, largest first, adding up to 100 - score.
    let lost: Vec<f64> = v["shortfall"].as_array().unwrap().iter().map(|s| s["points"].as_f64().unwrap()).collect();
    assert!(!lost.is_empty() && lost.windows(2).all(|w| w[0] >= w[1]), "{lost:?}");
    let score = v["score"].as_f64().unwrap();
    assert!((100.0 - score - lost.iter().sum::<f64>()).abs() < 0.5, "{score} {lost:?}");
}

#[test]
fn score_json_matches_the_golden_file() {
    let (_, scores) = story();
    check_golden("score_last.json", scores.last().expect("score updates"));
}

#[test]
fn the_story_is_deterministic() {
    assert_eq!(story(), story());
}
