//! Test harness: a real Kafka-protocol broker (`nisshi`) over TCP on a free loopback port, and
//! small produce/consume helpers. A test that needs the broker fails loudly if it cannot start one.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::TopicPartitionList;

pub struct Broker {
    child: Child,
    pub addr: String,
    pub dir: tempfile::TempDir,
    storage: String,
    port: u16,
}

fn nisshi() -> PathBuf {
    if let Some(p) = std::env::var_os("KIZASHI_NISSHI") {
        return p.into();
    }
    if let Ok(out) = Command::new("sh").args(["-c", "command -v nisshi"]).output() {
        let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !p.is_empty() {
            return p.into();
        }
    }
    let home = PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo/bin/nisshi");
    if home.exists() {
        return home;
    }
    panic!("the test broker `nisshi` is not installed: run `scripts/broker install` (or set KIZASHI_NISSHI)");
}

/// A topic to create: its name, partitions and topic configs.
pub type TopicSpec<'a> = (&'a str, i32, &'a [(&'a str, &'a str)]);

/// The release binary beside a bench's own executable (`target/release/deps/…` → `target/release/kizashi`),
/// wherever the target directory is (`CARGO_TARGET_DIR` included).
pub fn release_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the bench's own path");
    let dir = exe.parent().and_then(Path::parent).expect("target/release/deps");
    let bin = dir.join("kizashi");
    assert!(bin.exists(), "{} is missing: build the release binary first (cargo build --release, or scripts/bench)", bin.display());
    bin
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Broker {
    /// A broker with in-memory storage.
    pub fn start() -> Broker {
        Self::start_with("memory://nisshi/")
    }

    /// A broker whose data survives a restart (sqlite in its directory).
    pub fn start_persistent() -> Broker {
        Self::start_with("sqlite://nisshi.db")
    }

    fn start_with(storage: &str) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Self::spawn(dir.path(), port, storage);
        let b = Broker { child, addr: format!("127.0.0.1:{port}"), dir, storage: storage.into(), port };
        b.wait_ready();
        b
    }

    fn spawn(dir: &Path, port: u16, storage: &str) -> Child {
        let url = format!("tcp://127.0.0.1:{port}");
        Command::new(nisshi())
            .current_dir(dir)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", storage])
            .args(["--group-initial-rebalance-delay", "100ms"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("broker.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting nisshi: {e}; run `scripts/broker install`"))
    }

    fn wait_ready(&self) {
        let start = Instant::now();
        while TcpStream::connect(&self.addr).is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "broker did not start: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Restarts on the same port and storage.
    pub fn restart(&mut self) {
        self.stop();
        self.child = Self::spawn(self.dir.path(), self.port, &self.storage);
        self.wait_ready();
    }

    pub fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.addr);
        c
    }

    pub fn create_topics(&self, topics: &[(&str, i32)]) {
        let with: Vec<TopicSpec<'_>> = topics.iter().map(|(n, p)| (*n, *p, &[][..])).collect();
        self.create_topics_with(&with);
    }

    /// Creates topics with topic configs (such as `max.message.bytes`).
    pub fn create_topics_with(&self, topics: &[TopicSpec<'_>]) {
        let admin: AdminClient<DefaultClientContext> = self.config().create().unwrap();
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|(n, p, configs)| configs.iter().fold(NewTopic::new(n, *p, TopicReplication::Fixed(1)), |t, (k, v)| t.set(k, v)))
            .collect();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let res = rt.block_on(admin.create_topics(&new, &AdminOptions::new())).unwrap();
        for r in res {
            r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
        }
    }

    /// kizashi's seven default topics: the three inputs with these partition counts (the
    /// `cs-actions` input with the accounts' count), the three outputs with one partition each
    /// (the changelog kizashi creates itself).
    pub fn create_kizashi_topics(&self, input_partitions: [i32; 3]) {
        self.create_topics(&[
            ("product-usage", input_partitions[0]),
            ("support-events", input_partitions[1]),
            ("accounts", input_partitions[2]),
            ("cs-actions", input_partitions[2]),
            ("health-alerts", 1),
            ("health-scores", 1),
            ("kizashi-dead-letter", 1),
        ]);
    }

    /// Produces `(key, payload)` records in order; keys placed with Kafka's murmur2 partitioner.
    pub fn produce(&self, topic: &str, records: &[(Option<Vec<u8>>, Vec<u8>)]) {
        self.produce_with(topic, records, &[]);
    }

    /// [`Broker::produce`] with producer properties (such as a larger `message.max.bytes`).
    pub fn produce_with(&self, topic: &str, records: &[(Option<Vec<u8>>, Vec<u8>)], properties: &[(&str, &str)]) {
        let mut c = self.config();
        for (k, v) in properties {
            c.set(*k, *v);
        }
        let p: ThreadedProducer<DefaultProducerContext> = c
            .set("partitioner", "murmur2_random")
            .set("enable.idempotence", "true")
            .set("linger.ms", "20")
            .create()
            .unwrap();
        for (k, v) in records {
            let mut r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).payload(v.as_slice());
            if let Some(k) = k {
                r = r.key(k.as_slice());
            }
            let mut r = r;
            loop {
                match p.send(r) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        r = back;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
        }
        p.flush(Duration::from_secs(60)).expect("produce flush");
    }

    /// Produces a JSONL file, keyed by each line's `account_id`.
    pub fn produce_file(&self, topic: &str, path: &Path) {
        let records: Vec<(Option<Vec<u8>>, Vec<u8>)> = std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (v["account_id"].as_str().map(|s| s.as_bytes().to_vec()), l.as_bytes().to_vec())
            })
            .collect();
        self.produce(topic, &records);
    }

    /// Every message of `topic` (all partitions), with its headers, reading until quiet.
    pub fn consume_all(&self, topic: &str) -> Vec<Record> {
        let c: BaseConsumer = self.config().set("group.id", "kizashi-test-reader").create().unwrap();
        let md = c.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
        let parts = md.topics()[0].partitions().len() as i32;
        let mut tpl = TopicPartitionList::new();
        let mut ends = Vec::new();
        for p in 0..parts {
            tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning).unwrap();
            ends.push(c.fetch_watermarks(topic, p, Duration::from_secs(10)).unwrap().1);
        }
        c.assign(&tpl).unwrap();
        let total: i64 = ends.iter().sum();
        let mut out = Vec::new();
        let start = Instant::now();
        while (out.len() as i64) < total && start.elapsed() < Duration::from_secs(60) {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
                let headers = m
                    .headers()
                    .map(|h| h.iter().map(|x| (x.key.to_string(), String::from_utf8_lossy(x.value.unwrap_or_default()).to_string())).collect())
                    .unwrap_or_default();
                out.push(Record {
                    partition: m.partition(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).to_string()),
                    payload: String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string(),
                    headers,
                });
            }
        }
        out
    }

    /// Committed offsets of `group` summed over the topics' partitions, and the end offsets.
    pub fn group_progress(&self, group: &str, topics: &[&str]) -> (i64, i64) {
        let c: BaseConsumer = self.config().set("group.id", group).create().unwrap();
        let mut tpl = TopicPartitionList::new();
        let mut end = 0;
        for t in topics {
            let md = c.fetch_metadata(Some(t), Duration::from_secs(10)).unwrap();
            for p in 0..md.topics()[0].partitions().len() as i32 {
                tpl.add_partition(t, p);
                end += c.fetch_watermarks(t, p, Duration::from_secs(10)).unwrap().1;
            }
        }
        let committed = c.committed_offsets(tpl, Duration::from_secs(10)).map(|tpl| {
            tpl.elements().iter().map(|e| e.offset().to_raw().unwrap_or(0).max(0)).sum::<i64>()
        });
        (committed.unwrap_or(0), end)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub key: Option<String>,
    pub payload: String,
    pub headers: Vec<(String, String)>,
}

impl Record {
    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers.iter().find(|(h, _)| h == k).map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 GET over loopback (one request per connection): status and body.
/// `None` if nothing listens there (yet).
pub fn http_get(addr: &str, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_string() };
    Some((status, body))
}

/// A minimal HTTP/1.1 POST of a JSON body over loopback: status and body (which must be JSON).
pub fn post_json(addr: &str, path: &str, body: &serde_json::Value, token: Option<&str>) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("no HTTP port at {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let body = body.to_string();
    write!(s, "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP answer: {text}"));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_string() };
    (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}")))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// `http_get` that must answer, parsed as JSON.
pub fn get_json(addr: &str, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let (status, body) = http_get(addr, path, token).unwrap_or_else(|| panic!("no HTTP answer from {addr}{path}"));
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"));
    (status, v)
}

/// Value of a Prometheus sample (`name{labels}` exactly as exposed, or a bare name).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.rsplit_once(' ').filter(|(k, _)| *k == series).and_then(|(_, v)| v.parse().ok()))
}

/// Files under `deploy/` (recursively) with one of these extensions.
pub fn deploy_files(exts: &[&str]) -> Vec<PathBuf> {
    fn walk(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, exts, out);
            } else if p.extension().and_then(|x| x.to_str()).is_some_and(|x| exts.contains(&x)) {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy"), exts, &mut out);
    out.sort();
    out
}

/// Every `kizashi_…` metric the Prometheus rules and the Grafana dashboard name (histogram
/// series reduced to their metric).
pub fn deploy_metric_names() -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for f in deploy_files(&["yml", "yaml", "json"]) {
        let text = std::fs::read_to_string(&f).unwrap();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("kizashi_") {
            let tail = &rest[i..];
            let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
            let mut name = &tail[..end];
            for suffix in ["_bucket", "_sum", "_count"] {
                if let Some(base) = name.strip_suffix(suffix) {
                    if base.ends_with("_seconds") || base.ends_with("_records") {
                        name = base;
                    }
                }
            }
            // Only metric references (a config key such as kizashi_… never appears in deploy/).
            let before = rest[..i].chars().last();
            if !matches!(before, Some(c) if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' || c == '/') {
                names.insert(name.to_string());
            }
            rest = &tail[end..];
        }
    }
    names
}

pub mod browser;
pub mod served;

/// Options replaying `data`'s `usage.jsonl`, `support.jsonl` and `accounts.jsonl` into `out`, the
/// clock at `now_ms`: one partition, batches of 50,000, a temporary state directory, no HTTP port
/// (change the rest with `ReplayOptions { partitions: 2, ..replay_options(…) }`).
pub fn replay_options(data: &Path, out: PathBuf, now_ms: i64) -> kizashi::cmd::replay::ReplayOptions {
    kizashi::cmd::replay::ReplayOptions {
        usage: vec![data.join("usage.jsonl")],
        support: vec![data.join("support.jsonl")],
        accounts: vec![data.join("accounts.jsonl")],
        actions: vec![],
        out,
        partitions: 1,
        until_ms: None,
        now_ms,
        state_dir: None,
        batch: 50_000,
        serve: None,
        features: None,
    }
}

/// Adds `replay` of `data`'s `usage.jsonl`, `support.jsonl` and `accounts.jsonl` into `out`, its
/// clock at `now` (`--now`), to `cmd`: the kizashi binary, or a shell that runs it.
pub fn replay_args<'c>(cmd: &'c mut Command, data: &Path, out: &Path, now: &str) -> &'c mut Command {
    cmd.arg("replay")
        .args(["--now", now])
        .arg("--usage")
        .arg(data.join("usage.jsonl"))
        .arg("--support")
        .arg(data.join("support.jsonl"))
        .arg("--accounts")
        .arg(data.join("accounts.jsonl"))
        .arg("--out")
        .arg(out)
}

/// [`replay_args`] on the kizashi binary built for the tests.
pub fn replay_command(data: &Path, out: &Path, now: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kizashi"));
    replay_args(&mut cmd, data, out, now);
    cmd
}
