//! `kizashi demo` runs with nothing installed: an embedded Kafka (librdkafka's mock cluster), the
//! generator, the pipeline, and alerts printed as they arrive.

use std::process::Command;

#[test]
fn demo_runs_end_to_end_on_the_embedded_kafka() {
    let out = Command::new(env!("CARGO_BIN_EXE_kizashi"))
        .args(["demo", "--accounts", "30", "--days", "35", "--day-seconds", "0.05"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("embedded Kafka at"), "{stdout}");
    assert!(stdout.contains("HTTP API while the demo runs: http://127.0.0.1:"), "the demo prints its API's URL: {stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.starts_with("done in") && last.contains("alerts by rule:"), "{stdout}");
    let alert_lines = stdout.lines().filter(|l| l.starts_with("20") && l.contains("acct-")).count();
    assert!(alert_lines > 0, "alerts were printed as they arrived:\n{stdout}");
    assert!(last.contains("inactive="), "an inactive account was caught: {last}");
}
