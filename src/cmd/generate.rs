//! `kizashi generate`: write a synthetic population as JSONL files.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};

use crate::event::EventKind;
use crate::generate::{generate, GenOptions, Truth};

/// Files written by `generate`, by kind.
pub const FILES: [(EventKind, &str); 3] =
    [(EventKind::Usage, "usage.jsonl"), (EventKind::Support, "support.jsonl"), (EventKind::Account, "accounts.jsonl")];

/// Writes `usage.jsonl`, `support.jsonl`, `accounts.jsonl` and `truth.jsonl` into `dir`.
/// Returns the truth and the number of records per kind.
pub fn to_dir(opts: &GenOptions, dir: &Path) -> Result<(Vec<Truth>, [u64; 3])> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut writers = Vec::new();
    for (_, name) in FILES {
        let p = dir.join(name);
        writers.push(BufWriter::new(File::create(&p).with_context(|| format!("creating {}", p.display()))?));
    }
    let mut counts = [0u64; 3];
    let mut err: Option<std::io::Error> = None;
    let truths = generate(opts, |r| {
        let i = r.kind as usize;
        counts[i] += 1;
        if let Err(e) = writeln!(writers[i], "{}", r.line) {
            err.get_or_insert(e);
        }
    });
    if let Some(e) = err {
        return Err(e).context("writing generated events");
    }
    for w in &mut writers {
        w.flush()?;
    }
    let mut t = BufWriter::new(File::create(dir.join("truth.jsonl"))?);
    for truth in &truths {
        writeln!(t, "{}", serde_json::to_string(truth)?)?;
    }
    t.flush()?;
    Ok((truths, counts))
}
