//! Loading: defaults → the TOML file → `KIZASHI__…` environment variables, merged, deserialised
//! with every structural problem collected (not only the first), then validated.

use std::path::Path;

use super::Settings;

/// Every problem found in a configuration, each naming its key.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigProblems(pub Vec<String>);

impl std::fmt::Display for ConfigProblems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "configuration has {} problem(s):", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigProblems {}

/// Loads defaults → `file` → `KIZASHI__…` environment, then validates. `env` is the environment
/// to read (pass `std::env::vars()`); taking it as a parameter keeps tests free of global state.
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Settings, ConfigProblems> {
    let defaults = config::Config::try_from(&Settings::default())
        .map_err(|e| ConfigProblems(vec![format!("internal: defaults do not serialise: {e}")]))?;
    let mut builder = config::Config::builder().add_source(defaults);
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigProblems(vec![format!("config file {} does not exist", path.display())]));
        }
        builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
    }
    // librdkafka property names hold dots, which neither environment variable names nor the
    // config crate's keys can carry: KIZASHI__KAFKA__PROPERTIES__SASL_PASSWORD is sasl.password.
    let mut env_properties = Vec::new();
    let env: config::Map<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("KIZASHI__"))
        .filter_map(|(k, v)| match k.strip_prefix("KIZASHI__KAFKA__PROPERTIES__") {
            Some(prop) => {
                env_properties.push((prop.to_ascii_lowercase().replace('_', "."), v));
                None
            }
            None => Some((k, v)),
        })
        .collect();
    let env_raw: Vec<(String, String)> = env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    builder = builder.add_source(
        config::Environment::with_prefix("KIZASHI")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("events.key_features")
            .with_list_parse_key("http.allowed_hosts")
            .source(Some(env)),
    );
    let merged = builder.build().map_err(|e| ConfigProblems(vec![e.to_string()]))?;
    let mut tree: serde_json::Value =
        merged.try_deserialize().map_err(|e| ConfigProblems(vec![e.to_string()]))?;
    keep_env_strings(&mut tree, &env_raw);
    let (mut settings, mut problems) = deserialize_collecting(tree);
    settings.kafka.properties.extend(env_properties);
    problems.extend(settings.problems());
    if problems.is_empty() {
        Ok(settings)
    } else {
        Err(ConfigProblems(problems))
    }
}

/// The environment layer guesses types (`35` is a number, `true` a boolean), which keys that hold
/// numbers need. A key whose default is a string (a token, a topic, a name) gets the variable's
/// text exactly as given instead, so `KIZASHI__HTTP__TOKEN=123456789` is the string "123456789",
/// never a type error that would print the secret. Lists of strings are split on `,`, unparsed.
fn keep_env_strings(tree: &mut serde_json::Value, env: &[(String, String)]) {
    let defaults = serde_json::to_value(Settings::default()).unwrap_or_default();
    for (key, raw) in env {
        let Some(path) = key.strip_prefix("KIZASHI__") else { continue };
        let parts: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
        let default = parts.iter().try_fold(&defaults, |node, p| node.get(p.as_str()));
        let replacement = match default {
            Some(serde_json::Value::String(_)) => serde_json::Value::String(raw.clone()),
            Some(serde_json::Value::Array(_)) => {
                serde_json::Value::Array(raw.split(',').map(|x| serde_json::Value::String(x.trim().to_string())).collect())
            }
            _ => continue,
        };
        let target = parts.iter().try_fold(&mut *tree, |node, p| node.get_mut(p.as_str()));
        if let Some(slot) = target {
            *slot = replacement;
        }
    }
}

/// Deserialises `tree`, and on each error records it (with its key path), removes the offending key
/// and tries again, so that every structural problem is reported, not only the first.
fn deserialize_collecting(mut tree: serde_json::Value) -> (Settings, Vec<String>) {
    let mut problems = Vec::new();
    for _ in 0..200 {
        let attempt: Result<Settings, _> = serde_path_to_error::deserialize(&tree);
        match attempt {
            Ok(s) => return (s, problems),
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner().to_string();
                // For an unknown field the path already ends with the field's name.
                let key = path;
                let msg = match inner.strip_prefix("unknown field `") {
                    Some(_) => format!("unknown key; {}", inner.split_once(", ").map_or("", |x| x.1)),
                    None => inner,
                };
                problems.push(format!("{key}: {msg}"));
                if !remove_path(&mut tree, &key) {
                    return (Settings::default(), problems);
                }
            }
        }
    }
    (Settings::default(), problems)
}

/// Removes the value at a dotted path (`a.b[2].c`) from a JSON tree. Returns false if absent.
fn remove_path(tree: &mut serde_json::Value, path: &str) -> bool {
    let mut parts: Vec<String> = Vec::new();
    for seg in path.split('.') {
        match seg.find('[') {
            Some(i) => {
                if i > 0 {
                    parts.push(seg[..i].to_string());
                }
                for idx in seg[i..].split(['[', ']']).filter(|s| !s.is_empty()) {
                    parts.push(format!("[{idx}"));
                }
            }
            None => parts.push(seg.to_string()),
        }
    }
    let Some((last, parents)) = parts.split_last() else { return false };
    let mut node = tree;
    for p in parents {
        node = match (p.strip_prefix('['), node) {
            (Some(i), serde_json::Value::Array(a)) => match i.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(n) => n,
                None => return false,
            },
            (None, serde_json::Value::Object(m)) => match m.get_mut(p) {
                Some(n) => n,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last.strip_prefix('['), node) {
        (Some(i), serde_json::Value::Array(a)) => match i.parse::<usize>() {
            Ok(i) if i < a.len() => {
                // Replace rather than remove so later indexes in messages stay right.
                a[i] = serde_json::Value::Object(Default::default());
                true
            }
            _ => false,
        },
        (None, serde_json::Value::Object(m)) => m.remove(last.as_str()).is_some(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::config::{env, load};

    #[test]
    fn environment_overrides_file() {
        let s = load(
            None,
            env(&[
                ("KIZASHI__SCORING__RED_BELOW", "35"),
                ("KIZASHI__EVENTS__GRACE", "10m"),
                ("KIZASHI__EVENTS__KEY_FEATURES", "reports.export,dashboards.view"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(s.scoring.red_below, 35.0);
        assert_eq!(s.events.grace, Duration::from_secs(600));
        assert_eq!(s.events.key_features, vec!["reports.export", "dashboards.view"]);
    }

    #[test]
    fn every_problem_is_listed_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(
            &path,
            r#"
            [events]
            retention_days = 10
            grace = "soon"
            colour = "blue"
            [scoring]
            red_below = 80
            default_scorecard = "nope"
            [scorecards.x]
            measures = [{ measure = "happiness", weight = -1, red = 1, green = 2 }, { measure = "csat_90d" }]
            [alerts.inactive]
            severity = "urgent"
            [state]
            upgrade_from = 3
            "#,
        )
        .unwrap();
        let err = load(Some(&path), env(&[("KIZASHI__SCORING__GREEN_FROM", "abc")])).unwrap_err();
        let text = err.0.join("\n");
        for needle in [
            "events.retention_days: 10",
            "events.grace:",
            "events.colour: unknown key",
            "scoring.green_from:",
            "scoring.default_scorecard: `nope`",
            "scorecards.x.measures[0].measure: `happiness`",
            "scorecards.x.measures[0].weight",
            "scorecards.x.measures[1].red: missing",
            "alerts.inactive.severity: `urgent`",
            "state.upgrade_from: 3 is not a state version",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }

    #[test]
    fn kafka_properties_pass_through_and_secrets_are_masked() {
        let s = load(
            None,
            env(&[
                ("KIZASHI__KAFKA__PROPERTIES__SASL_PASSWORD", "hunter2"),
                ("KIZASHI__KAFKA__PROPERTIES__SECURITY_PROTOCOL", "SASL_SSL"),
            ]),
        )
        .unwrap();
        assert_eq!(s.kafka.properties["sasl.password"], "hunter2");
        assert_eq!(s.kafka.properties["security.protocol"], "SASL_SSL");
        let shown = s.to_toml();
        assert!(!shown.contains("hunter2") && shown.contains("***") && shown.contains("SASL_SSL"), "{shown}");
    }

    #[test]
    fn environment_values_of_string_keys_stay_strings() {
        for v in ["123456789", "true", "1.5e3", "0"] {
            let s = load(None, env(&[("KIZASHI__HTTP__TOKEN", v), ("KIZASHI__KAFKA__GROUP_ID", v)]))
                .unwrap_or_else(|e| panic!("{v}: {e}"));
            assert_eq!((s.http.token.as_str(), s.kafka.group_id.as_str()), (v, v));
            let shown = load(None, env(&[("KIZASHI__HTTP__TOKEN", v)])).unwrap().to_toml();
            assert!(shown.contains("token = \"***\""), "the token is masked: {shown}");
        }
        let s = load(None, env(&[("KIZASHI__EVENTS__KEY_FEATURES", "42,reports.export")])).unwrap();
        assert_eq!(s.events.key_features, vec!["42", "reports.export"]);
        // Numeric keys still parse, and a bad one names the key without echoing secrets.
        let s = load(None, env(&[("KIZASHI__SCORING__RED_BELOW", "35")])).unwrap();
        assert_eq!(s.scoring.red_below, 35.0);
        let s = load(None, env(&[("KIZASHI__STATE__UPGRADE_FROM", "6")])).unwrap();
        assert_eq!(s.state.upgrade_from, Some(6));
    }

    #[test]
    fn missing_file_is_a_problem() {
        let err = load(Some(Path::new("/nonexistent/k.toml")), env(&[])).unwrap_err();
        assert!(err.0[0].contains("does not exist"));
    }
}
