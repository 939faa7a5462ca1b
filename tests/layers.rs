//! Arrows point down: a lower layer never imports a higher one. This test reads every source file
//! under `src/` and fails, naming file and line, where a module reaches a layer above it.
//!
//! The layers, lowest first, and what each may import of the crate (any external crate and `std`
//! are fine everywhere):
//!
//! - `bytes` (the byte `Writer`/`Reader`): a leaf, nothing of the crate.
//! - `event` (input records, their decoding, times): `event` and `bytes` only.
//! - `core` (the pure scoring heart): `core`, `event` and `bytes` only. Not `config`: the core
//!   takes its parameters as its own types (`core::Params`, built from the settings by
//!   `config`), so settings sit above it and it builds and tests without them.
//! - `store` (RocksDB, the state codec, the stored board entry): anything but what drives it,
//!   `engine`, `pipeline`, `api` and `cmd`. It may read `config` (data: settings and their
//!   sizes) and `core`/`event` (the state it encodes).
//! - `engine` (records applied to account state, timers, the cache, persistence): not what feeds
//!   it — `flow`, `pipeline`, `api`, `cmd`.
//! - `flow` (the one data path: the event-time merge and the step that applies a record): not
//!   its sources or their callers — `pipeline`, `api`, `cmd`. Kafka and files sit above it.
//! - `metrics`: not `api`, which imports it (why the server closed a connection,
//!   `metrics::Closed`, lives in metrics for that reason).
//!
//! A module "imports" another wherever its code names a path into it: `use crate::x::...`, a
//! `crate::x::...` path in code (tests included), `crate::{x, ...}`, or `super::` paths that climb
//! out of the layer (`super::super::x` from `src/core/a/b.rs`, or `super::x` from
//! `src/core/mod.rs`). Comments and string literals are not code and are skipped.

use std::path::{Path, PathBuf};

/// One import of a top-level module of the crate: where, the path as written, and the module.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Import {
    line: usize,
    path: String,
    target: String,
}

/// Whether a file in top-level module `from` may import top-level module `to`; `Err` says why
/// not.
fn allowed(from: &str, to: &str) -> Result<(), &'static str> {
    let ok = match from {
        "bytes" => to == "bytes",
        "event" => matches!(to, "event" | "bytes"),
        "core" => matches!(to, "core" | "event" | "bytes"),
        "store" => !matches!(to, "engine" | "pipeline" | "api" | "cmd"),
        "engine" => !matches!(to, "flow" | "pipeline" | "api" | "cmd"),
        "flow" => !matches!(to, "pipeline" | "api" | "cmd"),
        "metrics" => to != "api",
        _ => true,
    };
    if ok {
        return Ok(());
    }
    Err(match from {
        "bytes" => "bytes is a leaf: it imports nothing of the crate",
        "event" => "event imports only event and bytes",
        "core" => "core imports only core, event and bytes",
        "store" => "store imports nothing that drives it (engine, pipeline, api, cmd)",
        "engine" => "engine imports nothing that feeds it (flow, pipeline, api, cmd)",
        "flow" => "flow imports none of its sources (pipeline, cmd) nor api",
        _ => "metrics sits below api (api imports it)",
    })
}

#[test]
fn lower_layers_import_nothing_above_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut violations = Vec::new();
    let mut per_layer = std::collections::BTreeMap::<String, usize>::new();
    for file in &files {
        let module = module_path(&src, file);
        let Some(layer) = module.first().cloned() else { continue };
        *per_layer.entry(layer.clone()).or_default() += 1;
        let text = std::fs::read_to_string(file).unwrap();
        for i in imports(&text, &module) {
            if let Err(why) = allowed(&layer, &i.target) {
                let rel = file.strip_prefix(src.parent().unwrap()).unwrap().display();
                violations.push(format!("{rel}:{}: `{}` ({why})", i.line, i.path));
            }
        }
    }
    // The scan did see the layers it guards (a moved directory must not make this pass vacuously).
    for (layer, at_least) in [("core", 5), ("event", 2), ("store", 3), ("bytes", 1), ("metrics", 1), ("engine", 3), ("flow", 2)] {
        let n = per_layer.get(layer).copied().unwrap_or(0);
        assert!(n >= at_least, "found {n} files of `{layer}` under src/, expected {at_least} or more");
    }
    assert!(violations.is_empty(), "imports against the layering (see tests/layers.rs):\n{}", violations.join("\n"));
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module a file is: `src/core/state.rs` is `core::state`, `src/store/codec/mod.rs` is
/// `store::codec`, `src/lib.rs` and `src/main.rs` the crate's root (empty).
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod")) || matches!(parts.as_slice(), [one] if one == "lib" || one == "main") {
        parts.pop();
    }
    parts
}

/// The imports of top-level modules in a file's text, the file being module `module`.
fn imports(text: &str, module: &[String]) -> Vec<Import> {
    let tokens = tokens(&code_only(text));
    let mut out = Vec::new();
    // Inline modules open (`mod tests { ... }`), with the brace depth inside each.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let (line, t) = (tokens[i].0, tokens[i].1.as_str());
        match t {
            "{" => depth += 1,
            "}" => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            "mod" if tokens.get(i + 2).is_some_and(|x| x.1 == "{") => {
                inline.push((tokens[i + 1].1.clone(), depth + 1));
            }
            "crate" | "super" if tokens.get(i + 1).is_some_and(|x| x.1 == "::") && !(i > 0 && tokens[i - 1].1 == "::") => {
                let here: Vec<String> = module.iter().cloned().chain(inline.iter().map(|(m, _)| m.clone())).collect();
                let (path, targets, next) = path_at(&tokens, i, &here);
                out.extend(targets.into_iter().map(|target| Import { line, path: path.clone(), target }));
                i = next;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The path starting at `tokens[i]` (`crate` or `super`), in module `here`: the path as written,
/// the top-level modules it names (several for a `{...}` group), and the index after it.
fn path_at(tokens: &[(usize, String)], mut i: usize, here: &[String]) -> (String, Vec<String>, usize) {
    let start = i;
    // Where the path starts: the root (`crate`), or `here` less one module per `super`.
    let mut base: Option<usize> = Some(here.len());
    if tokens[i].1 == "crate" {
        base = Some(0);
        i += 2;
    } else {
        while tokens.get(i).is_some_and(|t| t.1 == "super") && tokens.get(i + 1).is_some_and(|t| t.1 == "::") {
            base = base.and_then(|b| b.checked_sub(1));
            i += 2;
        }
    }
    let mut names = Vec::new();
    let end;
    if tokens.get(i).is_some_and(|t| t.1 == "{") {
        // A group: the first name of each item at its top level.
        let mut level = 0;
        let mut item_start = true;
        let mut j = i;
        loop {
            let Some(t) = tokens.get(j) else { break };
            match t.1.as_str() {
                "{" => {
                    level += 1;
                    if level == 1 {
                        item_start = true;
                    }
                }
                "}" => {
                    level -= 1;
                    if level == 0 {
                        j += 1;
                        break;
                    }
                }
                "," if level == 1 => item_start = true,
                name if level == 1 && item_start => {
                    names.push(name.to_string());
                    item_start = false;
                }
                _ => {}
            }
            j += 1;
        }
        end = j;
    } else {
        names.extend(tokens.get(i).map(|t| t.1.clone()));
        end = (i + 1).min(tokens.len());
    }
    let written: String = tokens[start..end].iter().map(|t| t.1.as_str()).collect::<Vec<_>>().join("").replace(',', ", ");
    let targets = match base {
        // Within the top-level module the path starts in.
        Some(b) if b > 0 => vec![here[0].clone()],
        // From the root: each name is a top-level module (`self` in a group: the root itself).
        Some(_) => names.into_iter().filter(|n| n != "self" && n != "*").collect(),
        // Above the root: not Rust; reported as such.
        None => vec!["<above the crate root>".to_string()],
    };
    (written, targets, end)
}

/// Tokens with their line (from 1): identifiers, `::`, and single punctuation characters.
fn tokens(code: &[char]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < code.len() {
        let c = code[i];
        if c == '\n' {
            line += 1;
        }
        if c.is_alphanumeric() || c == '_' {
            let s = i;
            while i < code.len() && (code[i].is_alphanumeric() || code[i] == '_') {
                i += 1;
            }
            out.push((line, code[s..i].iter().collect()));
            continue;
        }
        if c == ':' && code.get(i + 1) == Some(&':') {
            out.push((line, "::".to_string()));
            i += 2;
            continue;
        }
        if !c.is_whitespace() {
            out.push((line, c.to_string()));
        }
        i += 1;
    }
    out
}

/// `text` with comments and the contents of string and character literals blanked (newlines
/// kept, so lines keep their numbers).
fn code_only(text: &str) -> Vec<char> {
    let s: Vec<char> = text.chars().collect();
    let mut out = s.clone();
    let blank = |out: &mut Vec<char>, from: usize, to: usize| {
        for c in &mut out[from..to.min(s.len())] {
            if *c != '\n' {
                *c = ' ';
            }
        }
    };
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        let starts = |p: &str| p.chars().enumerate().all(|(k, c)| rest.get(k) == Some(&c));
        let word_before = i > 0 && (s[i - 1].is_alphanumeric() || s[i - 1] == '_');
        if starts("//") {
            let end = s[i..].iter().position(|&c| c == '\n').map_or(s.len(), |p| i + p);
            blank(&mut out, i, end);
            i = end;
        } else if starts("/*") {
            // Block comments nest.
            let (mut level, mut j) = (0, i);
            while j < s.len() {
                if s[j] == '/' && s.get(j + 1) == Some(&'*') {
                    level += 1;
                    j += 2;
                } else if s[j] == '*' && s.get(j + 1) == Some(&'/') {
                    level -= 1;
                    j += 2;
                    if level == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, i, j);
            i = j;
        } else if !word_before && (starts("r\"") || starts("r#") || starts("br\"") || starts("br#")) {
            // A raw string: `r#"...."#`, ended by the quote and as many `#`.
            let mut j = i + if s[i] == 'b' { 2 } else { 1 };
            let hashes = s[j..].iter().take_while(|&&c| c == '#').count();
            j += hashes;
            if s.get(j) != Some(&'"') {
                i += 1;
                continue;
            }
            let close: Vec<char> = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
            let end = (j + 1..s.len()).find(|&k| s[k..].starts_with(&close)).map_or(s.len(), |k| k + close.len());
            blank(&mut out, j + 1, end - close.len());
            i = end;
        } else if s[i] == '"' {
            let mut j = i + 1;
            while j < s.len() && s[j] != '"' {
                j += if s[j] == '\\' { 2 } else { 1 };
            }
            blank(&mut out, i + 1, j);
            i = j + 1;
        } else if s[i] == '\'' {
            // A character literal (`'x'`, `'\n'`, `'\u{..}'`), or a lifetime (`'a`), left as is.
            if s.get(i + 1) == Some(&'\\') {
                // The escaped character (even a quote) is at i + 2; the literal closes after it.
                let end = (i + 3..s.len()).find(|&k| s[k] == '\'').map_or(s.len(), |k| k + 1);
                blank(&mut out, i + 1, end - 1);
                i = end;
            } else if s.get(i + 2) == Some(&'\'') {
                blank(&mut out, i + 1, i + 2);
                i += 3;
            } else {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The scanner itself: what it must find and what it must not.
#[test]
fn the_scanner_finds_crate_paths_and_climbs_out_of_modules() {
    let module: Vec<String> = vec!["core".into(), "state".into()];
    let found = |text: &str| -> Vec<(usize, String)> { imports(text, &module).into_iter().map(|i| (i.line, i.target)).collect() };
    assert_eq!(found("use crate::config::Settings;"), [(1, "config".to_string())]);
    assert_eq!(found("fn f() {\n let x = crate::engine::Engine::open();\n}"), [(2, "engine".to_string())]);
    assert_eq!(found("use crate::{event::Priority, store::{codec, Budget}};"), [(1, "event".to_string()), (1, "store".to_string())]);
    assert_eq!(found("use super::days::DayCounts;"), [(1, "core".to_string())], "a sibling");
    assert_eq!(found("use super::super::api;"), [(1, "api".to_string())], "from core::state, the root's api");
    assert_eq!(found("mod tests {\n use super::super::days;\n use super::super::super::api;\n}"), [(2, "core".to_string()), (3, "api".to_string())]);
    assert_eq!(found("$crate::pipeline::run()"), [(1, "pipeline".to_string())]);
    let none = [
        "// use crate::api;",
        "/* crate::api /* nested */ crate::cmd */",
        "let s = \"crate::api::x\";",
        "let s = r#\"crate::api \"quoted\" \"#;",
        "let c = '\"'; let d = crate_like::api::x; let e = foo::crate::api;",
        "fn f<'a>(x: &'a str) -> &'a str { x } // crate::api",
        "let c = '\\''; // crate::api",
        "let c = '\\''; let s = \"crate::api\";",
    ];
    for text in none {
        assert_eq!(found(text), [], "{text}");
    }
    assert_eq!(found("let c = '\"'; use crate::api::x;"), [(1, "api".to_string())], "a quote in a char literal opens no string");
    assert_eq!(module_path(Path::new("src"), Path::new("src/store/codec/mod.rs")), ["store", "codec"]);
    assert_eq!(module_path(Path::new("src"), Path::new("src/lib.rs")), Vec::<String>::new());
    assert_eq!(allowed("core", "config"), Err("core imports only core, event and bytes"));
    assert_eq!(allowed("store", "config"), Ok(()));
}
