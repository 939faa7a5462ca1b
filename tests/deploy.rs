//! `deploy/` cannot be run here (no container engine), so what can be checked is checked: every
//! file parses, every metric the rules and dashboard name is one kizashi exports, every
//! `KIZASHI__…` variable is a real config key with a valid value, and the ConfigMap's config loads.

mod common;

use std::collections::BTreeSet;

use common::{deploy_files, deploy_metric_names};
use kizashi::config::{self, Settings};
use serde::Deserialize;
use serde_json::Value;

/// Every YAML document of every YAML file under deploy/.
fn yaml_documents() -> Vec<(String, serde_yaml::Value)> {
    let mut docs = Vec::new();
    for f in deploy_files(&["yml", "yaml"]) {
        let text = std::fs::read_to_string(&f).unwrap();
        for d in serde_yaml::Deserializer::from_str(&text) {
            let v = serde_yaml::Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            docs.push((f.display().to_string(), v));
        }
    }
    docs
}

#[test]
fn every_yaml_and_json_file_parses() {
    let docs = yaml_documents();
    assert!(docs.len() >= 9, "{} YAML documents", docs.len());
    let json = deploy_files(&["json"]);
    assert!(!json.is_empty());
    for f in json {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let panels = v["panels"].as_array().expect("a dashboard has panels");
        assert!(panels.iter().all(|p| p["targets"].as_array().is_some_and(|t| !t.is_empty())));
    }
    let kinds: BTreeSet<String> =
        docs.iter().filter_map(|(_, d)| d.get("kind").and_then(|k| k.as_str()).map(str::to_string)).collect();
    for k in ["ConfigMap", "StatefulSet", "Service", "Kustomization"] {
        assert!(kinds.contains(k), "no {k} in deploy/k8s");
    }
}

#[test]
fn rules_and_dashboard_name_only_metrics_kizashi_exports() {
    let named = deploy_metric_names();
    for want in ["kizashi_consumer_lag_records", "kizashi_events_rejected_total", "kizashi_outbox_entries", "kizashi_ready"] {
        assert!(named.contains(want), "deploy/ does not use {want}");
    }
    let exported: BTreeSet<&str> = kizashi::metrics::NAMES.iter().copied().collect();
    let unknown: Vec<&String> = named.iter().filter(|n| !exported.contains(n.as_str())).collect();
    assert!(unknown.is_empty(), "deploy/ names metrics kizashi does not export: {unknown:?}");
    // (The pipeline tests also check each of these against a live /metrics scrape.)
}

#[test]
fn alert_rules_cover_lag_progress_dead_letters_outbox_and_readiness() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus/alerts.yml")).unwrap();
    let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let rules = v["groups"][0]["rules"].as_sequence().unwrap();
    let names: Vec<&str> = rules.iter().map(|r| r["alert"].as_str().unwrap()).collect();
    for want in ["KizashiConsumerLagGrowing", "KizashiNoProgress", "KizashiDeadLetterRate", "KizashiOutboxBacklog", "KizashiNotReady"] {
        assert!(names.contains(&want), "missing rule {want}");
    }
    for r in rules {
        assert!(r["expr"].as_str().is_some_and(|e| e.contains("kizashi_")), "{r:?}");
        assert!(r["annotations"]["summary"].as_str().is_some(), "{r:?}");
    }
}

/// `KIZASHI__A__B` → `["a", "b"]`.
fn key_path(var: &str) -> Vec<String> {
    var.trim_start_matches("KIZASHI__").split("__").map(str::to_ascii_lowercase).collect()
}

#[test]
fn every_kizashi_variable_in_the_manifests_is_a_real_config_key() {
    let defaults = serde_json::to_value(Settings::default()).unwrap();
    let mut seen = 0;
    let mut check = |var: &str, value: Option<&str>, file: &str| {
        seen += 1;
        let path = key_path(var);
        if path.len() >= 3 && path[0] == "kafka" && path[1] == "properties" {
            return; // librdkafka pass-through: any property.
        }
        let mut node = &defaults;
        for p in &path {
            node = node.get(p).unwrap_or_else(|| panic!("{file}: {var} is not a config key ({})", path.join(".")));
        }
        assert!(!node.is_object(), "{file}: {var} names a section, not a key");
        if let Some(v) = value {
            config::load(None, [(var.to_string(), v.to_string())])
                .unwrap_or_else(|e| panic!("{file}: {var}={v} is not accepted: {e}"));
        }
    };
    for (file, doc) in yaml_documents() {
        // Kubernetes env lists and compose environment maps.
        walk(&doc, &mut |name, value| check(name, value, &file));
    }
    let dockerfile = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/Dockerfile")).unwrap();
    for tok in dockerfile.split_whitespace() {
        if let Some((k, v)) = tok.trim_end_matches('\\').split_once('=').filter(|(k, _)| k.starts_with("KIZASHI__")) {
            check(k, Some(v), "Dockerfile");
        }
    }
    assert!(seen >= 10, "only {seen} KIZASHI__ variables found");
}

/// Calls `f(name, literal value)` for every KIZASHI__ variable in a YAML tree.
fn walk(v: &serde_yaml::Value, f: &mut dyn FnMut(&str, Option<&str>)) {
    match v {
        serde_yaml::Value::Mapping(m) => {
            if let Some(name) = m.get("name").and_then(|n| n.as_str()).filter(|n| n.starts_with("KIZASHI__")) {
                f(name, m.get("value").and_then(|x| x.as_str()));
            }
            for (k, x) in m {
                if let Some(k) = k.as_str().filter(|k| k.starts_with("KIZASHI__")) {
                    f(k, x.as_str());
                }
                walk(x, f);
            }
        }
        serde_yaml::Value::Sequence(s) => s.iter().for_each(|x| walk(x, f)),
        _ => {}
    }
}

#[test]
fn the_configmap_holds_a_valid_config() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/k8s/configmap.yaml")).unwrap();
    let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let toml = v["data"]["kizashi.toml"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("kizashi.toml");
    std::fs::write(&f, toml).unwrap();
    let s = config::load(Some(&f), Vec::new()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.http.listen, "0.0.0.0:9460", "the port must be reachable by the kubelet's probes");
    assert_eq!(s.state.dir.to_str(), Some("/var/lib/kizashi/state"), "state on the volume");
    let sts = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/k8s/statefulset.yaml")).unwrap();
    let sts: serde_yaml::Value = serde_yaml::from_str(&sts).unwrap();
    let c = &sts["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["livenessProbe"]["httpGet"]["path"].as_str(), Some("/healthz"));
    assert_eq!(c["readinessProbe"]["httpGet"]["path"].as_str(), Some("/readyz"));
    assert_eq!(c["volumeMounts"][0]["mountPath"].as_str(), Some("/var/lib/kizashi"));
    assert!(sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"].is_string());
}
