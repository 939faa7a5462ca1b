//! Headless chromium for the page tests: Debian's `chromium`, driven over the DevTools protocol.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CHROMIUM: &str = "chromium";

/// Fails, naming the install, without chromium.
pub fn require_chromium() {
    let found = Command::new(CHROMIUM).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    assert!(
        matches!(found, Ok(s) if s.success()),
        "the browser test needs Debian's chromium on PATH: run `apt-get install -y chromium` (scripts/setup installs it)"
    );
}

/// The text between `start` (after it) and the next `end`.
fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let i = s.find(start)? + start.len();
    Some(&s[i..i + s[i..].find(end)?])
}

/// A headless chromium driven over the DevTools protocol (CDP, JSON over a WebSocket), for what a
/// DOM dump cannot do: type into a form, submit it, reload the page.
pub struct Browser {
    child: Child,
    ws: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>,
    next_id: u64,
    /// Uncaught exceptions the page threw (`Runtime.exceptionThrown`).
    pub exceptions: Vec<String>,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    pub fn start() -> Browser {
        use std::io::BufRead;
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-port=0",
                "--window-size=1280,800",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        // Chromium prints `DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID`.
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(i) = line.find("ws://") {
                    let _ = tx.send(line[i..].trim().to_string());
                }
            }
        });
        let browser_ws = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("chromium printed no DevTools address in 30 s");
        // The page chromium opened is at ws://HOST/devtools/page/TARGET; its id from the browser.
        let (mut bws, _) = tungstenite::connect(browser_ws.as_str())
            .expect("connect to chromium's DevTools socket");
        let req = serde_json::json!({"id": 1, "method": "Target.getTargets", "params": {}});
        bws.send(tungstenite::Message::text(req.to_string()))
            .unwrap();
        let targets = loop {
            if let tungstenite::Message::Text(t) = bws.read().expect("chromium's target list") {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                if v["id"] == 1 {
                    break v;
                }
            }
        };
        let page = targets["result"]["targetInfos"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["type"] == "page"))
            .unwrap_or_else(|| panic!("no page target in {targets}"));
        let host = between(&browser_ws, "ws://", "/").unwrap();
        let url = format!(
            "ws://{host}/devtools/page/{}",
            page["targetId"].as_str().unwrap()
        );
        let url = url.as_str();
        let (ws, _) = tungstenite::connect(url).expect("connect to the page's DevTools socket");
        if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        }
        drop(bws);
        let mut b = Browser {
            child,
            ws,
            next_id: 0,
            exceptions: Vec::new(),
            _profile: profile,
        };
        b.call("Runtime.enable", serde_json::json!({}));
        b.call("Page.enable", serde_json::json!({}));
        b
    }

    /// Sends one command and returns its `result`, noting the events that arrive meanwhile.
    pub fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = serde_json::json!({"id": id, "method": method, "params": params});
        self.ws
            .send(tungstenite::Message::text(msg.to_string()))
            .expect("send to chromium");
        loop {
            let m = self
                .ws
                .read()
                .unwrap_or_else(|e| panic!("no answer from chromium to {method}: {e}"));
            let tungstenite::Message::Text(t) = m else {
                continue;
            };
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            if v["method"] == "Runtime.exceptionThrown" {
                self.exceptions
                    .push(v["params"]["exceptionDetails"].to_string());
            }
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method} failed: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluates `js` in the page (awaiting a promise) and returns its value.
    pub fn eval(&mut self, js: &str) -> serde_json::Value {
        let r = self.call(
            "Runtime.evaluate",
            serde_json::json!({"expression": js, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(r.get("exceptionDetails").is_none(), "{js} threw: {r}");
        r["result"]["value"].clone()
    }

    /// Polls `js` until it is true (10 s at most); panics with `what` and the page's text if not.
    /// Until the page has loaded (a navigation is under way) `js` may throw: that counts as false.
    pub fn wait_for(&mut self, js: &str, what: &str) {
        let start = Instant::now();
        let guarded = format!(
            "(() => {{ try {{ return ({js}) === true; }} catch (_) {{ return false; }} }})()"
        );
        while self.eval(&guarded) != serde_json::Value::Bool(true) {
            if start.elapsed() > Duration::from_secs(10) {
                let body = self.eval("document.body.innerText");
                panic!("{what}: not so after 10 s ({js}); the page reads:\n{body}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", serde_json::json!({"url": url}));
    }
}

