//! The workspace page in a real browser: Debian's headless `chromium` against `kizashi replay
//! --serve` (the real binary) on a generated population. The DOM chromium dumps after running the
//! page's JavaScript is checked for the queue's order, the heatmap's classes and values, sorting,
//! filtering and the account view; a screenshot of each page goes to
//! `$CARGO_TARGET_TMPDIR/page-screenshots/`. Without chromium the test fails, naming the install.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, http_get};
use kizashi::generate::GenOptions;

const END_DAY: i32 = 20_400;
const CHROMIUM: &str = "chromium";

struct Served {
    child: Child,
    addr: String,
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
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Some((200, _)) = http_get(&self.addr, "/readyz", None) {
                return;
            }
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!("kizashi exited ({st}):\n{}", self.log());
            }
            assert!(start.elapsed() < Duration::from_secs(120), "not ready in 120 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Generates a population and starts `replay --serve` on it (as tests/api.rs does).
fn serve(accounts: usize) -> Served {
    serve_with(accounts, &[])
}

fn serve_with(accounts: usize, env: &[(&str, &str)]) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = dir.path().join("out");
    kizashi::cmd::generate::to_dir(&GenOptions { accounts, days: 60, end_day: END_DAY, seed: 11, activity: 0.5 }, &data)
        .unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let log = dir.path().join("kizashi.log");
    let child = Command::new(env!("CARGO_BIN_EXE_kizashi"))
        .arg("replay")
        .args(["--usage", data.join("usage.jsonl").to_str().unwrap()])
        .args(["--support", data.join("support.jsonl").to_str().unwrap()])
        .args(["--accounts", data.join("accounts.jsonl").to_str().unwrap()])
        .args(["--out", out.to_str().unwrap()])
        .args(["--now", "2025-11-09"]) // day END_DAY + 1
        .args(["--serve", "--http", &addr])
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Served { child, addr, log, _dir: dir }
}

fn require_chromium() {
    let found = Command::new(CHROMIUM).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    assert!(
        matches!(found, Ok(s) if s.success()),
        "the browser test needs Debian's chromium on PATH: run `apt-get install -y chromium` (scripts/setup installs it)"
    );
}

/// Runs headless chromium with `args` on `url` (killed after 60 s); its stdout and stderr.
fn chromium(args: &[&str], url: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new(CHROMIUM)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000"])
        .arg(format!("--user-data-dir={}", dir.path().join("profile").display()))
        .args(args)
        .arg(url)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("start chromium");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish in 60 s on {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (std::fs::read_to_string(out).unwrap_or_default(), std::fs::read_to_string(err).unwrap_or_default())
}

/// The DOM after the page's scripts ran, with console errors checked: chromium logs every console
/// message and uncaught exception of the page to stderr as `…:CONSOLE…] "message", source: URL`;
/// the page logs nothing, so any such line from the page's origin fails the test.
fn dom(base: &str, hash: &str) -> String {
    let url = format!("{base}/{hash}");
    let (dom, stderr) = chromium(&["--enable-logging=stderr", "--v=0", "--dump-dom"], &url);
    let console: Vec<&str> = stderr
        .lines()
        .filter(|l| (l.contains(":CONSOLE") && l.contains(base)) || l.contains("Uncaught"))
        .collect();
    assert!(console.is_empty(), "console messages on {url}:\n{}", console.join("\n"));
    assert!(dom.contains("<tbody") || dom.contains("id=\"account\""), "no page rendered on {url}:\n{dom}");
    dom
}

fn screenshot(base: &str, hash: &str, file: &Path) {
    let url = format!("{base}/{hash}");
    chromium(&[&format!("--screenshot={}", file.display()), "--window-size=1280,800", "--hide-scrollbars"], &url);
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    assert!(size > 1000, "no screenshot of {url} at {}", file.display());
}

/// The text between `start` (after it) and the next `end`.
fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let i = s.find(start)? + start.len();
    Some(&s[i..i + s[i..].find(end)?])
}

/// A cell's text with tags dropped and the few entities the DOM dump uses decoded.
fn text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").trim().to_string()
}

#[derive(Debug)]
struct Row {
    id: String,
    score: Option<f64>,
    band: String,
    owner: String,
    arr: f64,
    /// (class, text) of every measure cell.
    cells: Vec<(String, String)>,
}

/// The queue's rows as rendered.
fn rows(dom: &str) -> Vec<Row> {
    let body = between(dom, "<tbody>", "</tbody>").unwrap_or_else(|| panic!("no queue table in:\n{dom}"));
    body.split("<tr ")
        .skip(1)
        .map(|tr| {
            assert!(tr.contains("tabindex=\"0\""), "rows are focusable: {tr}");
            let cell = |class: &str| text(between(tr, &format!("<td class=\"{class}\">"), "</td>").unwrap_or(""));
            let cells = tr
                .split("<td class=\"m ")
                .skip(1)
                .map(|c| {
                    let class = c[..c.find('"').unwrap()].to_string();
                    let inner = &c[c.find('>').unwrap() + 1..c.find("</td>").unwrap()];
                    (class, text(inner))
                })
                .collect();
            Row {
                id: between(tr, "data-id=\"", "\"").unwrap().to_string(),
                score: cell("num score").parse().ok(),
                band: text(between(tr, "<td class=\"band ", "</td>").map(|s| &s[s.find('>').unwrap() + 1..]).unwrap_or("")),
                owner: cell("owner"),
                arr: cell("num arr").trim_start_matches('$').replace(',', "").parse().unwrap_or(0.0),
                cells,
            }
        })
        .collect()
}

#[test]
fn the_page_shows_the_queue_the_heatmap_and_an_account_in_a_real_browser() {
    require_chromium();
    let started = Instant::now();
    let mut s = serve(120);
    s.wait_ready();
    let base = format!("http://{}", s.addr);
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("page-screenshots");
    std::fs::create_dir_all(&shots).unwrap();

    // The assets: served outside /v1 with their content types.
    for (path, kind) in [("/", "text/html"), ("/app.js", "text/javascript"), ("/style.css", "text/css")] {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
        write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut raw = String::new();
        c.read_to_string(&mut raw).unwrap();
        let head = raw.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
        assert!(head.contains(&format!("content-type: {kind}")), "{path}: {head}");
    }

    // The queue in risk order: scores non-decreasing.
    let page = dom(&base, "");
    assert!(page.contains("id=\"strip\"") && page.contains("alerts by rule"), "the portfolio strip renders");
    let risk = rows(&page);
    assert!(risk.len() >= 20, "a page of the queue renders: {} rows", risk.len());
    let scores: Vec<f64> = risk.iter().map(|r| r.score.unwrap_or_else(|| panic!("a scored row: {r:?}"))).collect();
    assert!(scores.windows(2).all(|w| w[0] <= w[1]), "risk order (scores non-decreasing): {scores:?}");

    // The heatmap: some red cells, each with its value written; "no data" as text.
    let red: Vec<&(String, String)> = risk.iter().flat_map(|r| &r.cells).filter(|(c, _)| c == "m-red").collect();
    assert!(!red.is_empty(), "at least one m-red cell");
    for (_, v) in &red {
        assert!(v.replace(',', "").parse::<f64>().is_ok(), "an m-red cell holds its value as a number: `{v}`");
    }
    for (class, v) in risk.iter().flat_map(|r| &r.cells) {
        assert!(["m-red", "m-yellow", "m-green", "m-nodata"].contains(&class.as_str()), "{class}");
        assert!(!v.is_empty(), "every measure cell has text ({class})");
        if class != "m-nodata" {
            assert!(v.replace(',', "").parse::<f64>().is_ok(), "a {class} cell holds its value: `{v}`");
        }
    }
    screenshot(&base, "", &shots.join("queue.png"));

    // Sorting by ARR at risk reorders the rows: red and yellow only, the most ARR first.
    let by_arr = rows(&dom(&base, "#sort=arr_at_risk"));
    assert!(!by_arr.is_empty());
    let ids = |rs: &[Row]| rs.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    assert_ne!(ids(&by_arr), ids(&risk), "sort=arr_at_risk changes the order");
    assert!(by_arr.iter().all(|r| r.band == "red" || r.band == "yellow"), "{by_arr:?}");
    let arrs: Vec<f64> = by_arr.iter().map(|r| r.arr).collect();
    assert!(arrs.windows(2).all(|w| w[0] >= w[1]), "the most ARR first: {arrs:?}");

    // The owner filter narrows the rows to that owner's accounts.
    let owner = risk[0].owner.clone();
    assert!(!owner.is_empty() && owner != "—", "generated accounts have owners");
    let mine = rows(&dom(&base, &format!("#owner={}", owner.replace(' ', "%20"))));
    assert!(!mine.is_empty() && mine.len() < risk.len(), "the owner filter narrows {} rows to {}", risk.len(), mine.len());
    assert!(mine.iter().all(|r| r.owner == owner), "only {owner}'s accounts: {mine:?}");

    // A red account's page: facts, score, explanation bars, and the history chart with its alert
    // markers (a red account has had at least its `entered_red` alert within the 90 days).
    let red_account = risk.iter().find(|r| r.band == "red").expect("a red account");
    let hash = format!("#/account/{}", red_account.id);
    let account = dom(&base, &hash);
    let view = &account[account.find("id=\"account\"").unwrap()..];
    assert!(view.contains(&red_account.id) && view.contains("red"), "the account view shows the account:\n{view}");
    assert!(view.contains("class=\"bars\""), "the explanation as bars");
    let chart = view.contains("<svg") && view.contains("class=\"alert-marker\"") && view.contains("<title>");
    assert!(chart, "the history chart with alert markers:\n{view}");
    assert!(!view.contains(">no history yet<"), "{view}");
    assert!(view.contains("class=\"alert-summary\""), "recent alerts with their summaries:\n{view}");
    assert!(view.contains("Open tickets"), "the open tickets panel");
    screenshot(&base, &hash, &shots.join("account.png"));

    // Hand-made copies (docs/screenshots) come from the same run when asked for.
    if let Some(dir) = std::env::var_os("KIZASHI_PAGE_SCREENSHOTS") {
        for f in ["queue.png", "account.png"] {
            std::fs::copy(shots.join(f), Path::new(&dir).join(f)).unwrap();
        }
    }
    eprintln!("page test: screenshots in {}; {:.1} s", shots.display(), started.elapsed().as_secs_f64());
}

/// With `http.token` set the page holds nothing without it: it asks for the token, shows no
/// account, and the API it would call refuses it without the token.
#[test]
fn with_a_token_the_page_asks_for_it_and_shows_nothing_before() {
    require_chromium();
    let mut s = serve_with(30, &[("KIZASHI__HTTP__TOKEN", "s3cret-token")]);
    let base = format!("http://{}", s.addr);
    s.wait_ready();
    let page = dom(&base, "");
    let login = between(&page, "<form id=\"login\"", "</form>").expect("the token form");
    assert!(!login.starts_with(" hidden"), "the form is shown: {login}");
    assert!(login.contains("type=\"password\"") || login.contains("id=\"token\""), "{login}");
    assert!(!page.contains("acct-000"), "no account data without the token");
    let (st, _) = common::http_get(&s.addr, "/v1/accounts", None).unwrap();
    assert_eq!(st, 401);
    let (st, _) = common::http_get(&s.addr, "/", None).unwrap();
    assert_eq!(st, 200, "the page itself needs no token");
}
