//! `kizashi replay --serve` (the real binary) on a generated population, for the tests that query
//! its HTTP port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kizashi::generate::GenOptions;
use serde_json::Value;

use super::{free_port, http_get, replay_args};

/// The generated population's last day (2025-11-08); the replay's clock is the day after.
pub const END_DAY: i32 = 20_400;

/// A running `replay --serve`; dropping it kills it.
pub struct Served {
    pub child: Child,
    pub addr: String,
    /// Where the replay wrote alerts, scores and rejects.
    pub out: PathBuf,
    /// The generated population.
    pub data: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// What kizashi logged (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `/readyz` from the moment the port answers until it says ready; returns every
    /// status seen with the reason given.
    pub fn wait_ready(&mut self) -> Vec<(u16, String)> {
        let start = Instant::now();
        let mut seen = Vec::new();
        loop {
            if let Some((status, body)) = http_get(&self.addr, "/readyz", None) {
                let v: Value = serde_json::from_str(&body).unwrap();
                seen.push((status, v["reason"].as_str().unwrap_or("").to_string()));
                if status == 200 {
                    return seen;
                }
            }
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!("kizashi exited ({st}):\n{}", self.log());
            }
            assert!(start.elapsed() < Duration::from_secs(120), "not ready in 120 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The JSON lines of one of the replay's output files.
    pub fn lines(&self, file: &str) -> Vec<Value> {
        std::fs::read_to_string(self.out.join(file))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// Generates `accounts` accounts (60 days up to [`END_DAY`], seed 11), runs `prepare` on the data
/// directory, and starts `replay --serve` on it with `env` set, logging at `info`; under
/// `ulimit -n` if `open_files` is given.
pub fn serve(accounts: usize, env: &[(&str, &str)], open_files: Option<u32>, prepare: impl FnOnce(&Path)) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = dir.path().join("out");
    kizashi::cmd::generate::to_dir(&GenOptions { accounts, days: 60, end_day: END_DAY, seed: 11, activity: 0.5, mix: Default::default() }, &data)
        .unwrap();
    prepare(&data);
    let addr = format!("127.0.0.1:{}", free_port());
    let log = dir.path().join("kizashi.log");
    let mut cmd = match open_files {
        None => Command::new(env!("CARGO_BIN_EXE_kizashi")),
        Some(n) => {
            let mut c = Command::new("sh");
            c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), env!("CARGO_BIN_EXE_kizashi")]);
            c
        }
    };
    replay_args(&mut cmd, &data, &out, "2025-11-09") // day END_DAY + 1
        .args(["--serve", "--http", &addr])
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    Served { child: cmd.spawn().unwrap(), addr, out, data, log, _dir: dir }
}
