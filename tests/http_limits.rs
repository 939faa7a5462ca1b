//! The HTTP port under hostile clients, over real TCP: half-sent requests are closed after
//! `http.header_timeout`, idle connections after `http.idle_timeout`, a full house of
//! connections does not keep `/healthz` from answering, and none of it holds up shutdown.
//! The server runs in-process (no Kafka, no store); the timeouts are short so each test is.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{http_get, metric};
use kizashi::api::{Server, Shared};
use kizashi::config::Settings;
use kizashi::runtime::Status;

const HALF_SENT: &str = "GET /healthz HTTP/1.1\r\nHost: kizashi\r\n";

fn start(header_timeout: Duration, idle_timeout: Duration, max_connections: usize) -> (Server, Arc<Shared>) {
    let mut settings = Settings::default();
    settings.http.header_timeout = header_timeout;
    settings.http.idle_timeout = idle_timeout;
    settings.http.max_connections = max_connections;
    assert!(settings.problems().is_empty(), "{:?}", settings.problems());
    let shared = Shared::new(&settings, Status::new(&settings));
    let server = kizashi::api::serve("127.0.0.1:0", shared.clone()).unwrap();
    (server, shared)
}

fn scrape(shared: &Shared, series: &str) -> f64 {
    metric(&shared.status.metrics.render(), series).unwrap_or_else(|| panic!("no {series}"))
}

/// Waits (at most `within`) until the metric reaches `want`.
fn wait_metric(shared: &Shared, series: &str, want: f64, within: Duration) {
    let start = Instant::now();
    while scrape(shared, series) != want {
        assert!(start.elapsed() < within, "{series} is {} after {within:?}, not {want}", scrape(shared, series));
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn half_sent(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(HALF_SENT.as_bytes()).unwrap();
    s
}

/// True once the server has closed the socket (end of stream or reset) within `within`; false if
/// it is still open then.
fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            // An answer (a 408 or similar) before the close is fine; keep reading.
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return false,
            Err(_) => return true, // reset
        }
    }
}

fn still_open(s: &mut TcpStream) -> bool {
    !closed_by_server(s, Duration::from_millis(50))
}

fn healthz(addr: &str) -> u16 {
    http_get(addr, "/healthz", None).map_or(0, |(status, _)| status)
}

#[test]
fn half_sent_requests_are_closed_after_the_header_timeout_while_healthz_answers() {
    let (server, shared) = start(Duration::from_millis(300), Duration::from_secs(30), 1024);
    let addr = server.addr.to_string();
    let mut clients: Vec<TcpStream> = (0..200).map(|_| half_sent(&addr)).collect();
    // A trickler: one more header byte every 50 ms is progress, but not a whole head in time.
    let mut trickler = half_sent(&addr);
    let trickle = {
        let mut t = trickler.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in 0..100 {
                if t.write_all(b"X").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    assert_eq!(healthz(&addr), 200, "answers while 201 half-sent requests are open");
    for (i, c) in clients.iter_mut().enumerate() {
        assert!(closed_by_server(c, Duration::from_secs(10)), "half-sent request {i} still open 10 s after a 300 ms header timeout");
    }
    assert!(closed_by_server(&mut trickler, Duration::from_secs(10)), "a trickled head outlives the header timeout");
    trickle.join().unwrap();
    assert_eq!(healthz(&addr), 200);
    wait_metric(&shared, "kizashi_http_connections_closed_total{reason=\"header_timeout\"}", 201.0, Duration::from_secs(5));
    assert_eq!(scrape(&shared, "kizashi_http_connections_closed_total{reason=\"idle_timeout\"}"), 0.0);
}

#[test]
fn a_kept_alive_connection_waits_for_the_idle_timeout_not_the_header_timeout() {
    let (server, shared) = start(Duration::from_millis(200), Duration::from_secs(3), 1024);
    let addr = server.addr.to_string();
    let mut c = TcpStream::connect(&addr).unwrap();
    let request = "GET /healthz HTTP/1.1\r\nHost: kizashi\r\n\r\n";
    let answered = |c: &mut TcpStream| {
        c.write_all(request.as_bytes()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        let n = c.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200")
    };
    assert!(answered(&mut c));
    // Well past the header timeout, well before the idle timeout: open, and serving.
    std::thread::sleep(Duration::from_millis(600));
    assert!(still_open(&mut c), "a kept-alive connection was closed by the header timeout");
    assert!(answered(&mut c), "a second request on the kept-alive connection");
    assert!(closed_by_server(&mut c, Duration::from_secs(10)), "an idle connection outlives the idle timeout");
    wait_metric(&shared, "kizashi_http_connections_closed_total{reason=\"idle_timeout\"}", 1.0, Duration::from_secs(5));
    assert_eq!(scrape(&shared, "kizashi_http_connections_closed_total{reason=\"header_timeout\"}"), 0.0);
}

#[test]
fn at_the_connection_limit_a_new_connection_closes_the_longest_waiting_and_healthz_answers() {
    // Timeouts far beyond the test: only the limit can close these connections.
    let (server, shared) = start(Duration::from_secs(60), Duration::from_secs(60), 20);
    let addr = server.addr.to_string();
    let mut held: Vec<TcpStream> = Vec::new();
    for _ in 0..20 {
        held.push(half_sent(&addr));
        // Accepted in this order (the oldest is evicted first).
        wait_metric(&shared, "kizashi_http_connections", held.len() as f64, Duration::from_secs(5));
    }
    // Each probe makes room by closing the oldest; then a new half-sent request fills the house again.
    for i in 0..5 {
        assert_eq!(healthz(&addr), 200, "probe {i} at the connection limit");
        assert!(closed_by_server(&mut held[i], Duration::from_secs(5)), "connection {i}, the oldest, was not evicted");
        held.push(half_sent(&addr));
        wait_metric(&shared, "kizashi_http_connections", 20.0, Duration::from_secs(5));
    }
    wait_metric(&shared, "kizashi_http_connections_closed_total{reason=\"evicted\"}", 5.0, Duration::from_secs(5));
    for (i, c) in held.iter_mut().enumerate().skip(5) {
        assert!(still_open(c), "connection {i} was closed though only the 5 oldest had to be");
    }
    assert!(scrape(&shared, "kizashi_http_connections") <= 20.0);
    assert_eq!(scrape(&shared, "kizashi_http_connections_closed_total{reason=\"refused\"}"), 0.0);
}

#[test]
fn half_sent_and_idle_connections_do_not_hold_up_shutdown() {
    let (server, shared) = start(Duration::from_secs(60), Duration::from_secs(60), 1024);
    let addr = server.addr.to_string();
    let mut half = half_sent(&addr);
    // A kept-alive connection idle after one answer.
    let mut idle = TcpStream::connect(&addr).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: kizashi\r\n\r\n").unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(idle.read(&mut [0u8; 512]).unwrap() > 0);
    wait_metric(&shared, "kizashi_http_connections", 2.0, Duration::from_secs(5));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(server); // signals shutdown and joins the server thread
        let _ = tx.send(());
    });
    assert!(
        rx.recv_timeout(Duration::from_secs(10)).is_ok(),
        "the server did not stop within 10 s with a half-sent request and an idle connection open"
    );
    assert!(closed_by_server(&mut half, Duration::from_secs(1)));
    assert!(closed_by_server(&mut idle, Duration::from_secs(1)));
    assert!(TcpStream::connect(&addr).is_err(), "still listening after shutdown");
}

#[test]
fn out_of_range_bounds_are_config_problems_that_name_their_keys() {
    let mut settings = Settings::default();
    settings.http.header_timeout = Duration::ZERO;
    settings.http.idle_timeout = Duration::from_secs(2 * 24 * 3600);
    settings.http.max_connections = 0;
    let problems = settings.problems();
    for key in ["http.header_timeout:", "http.idle_timeout:", "http.max_connections:"] {
        assert!(problems.iter().any(|p| p.starts_with(key)), "no problem for {key} in {problems:?}");
    }
    assert_eq!(problems.len(), 3, "{problems:?}");
}

#[test]
fn an_oversized_request_head_gets_a_431_and_the_server_keeps_answering() {
    let (server, _shared) = start(Duration::from_secs(10), Duration::from_secs(10), 1024);
    let addr = server.addr.to_string();
    let mut c = TcpStream::connect(&addr).unwrap();
    let big = "a".repeat(kizashi::api::server::MAX_HEAD_BYTES + 1);
    c.write_all(format!("GET /healthz HTTP/1.1\r\nHost: kizashi\r\nX-Big: {big}\r\n\r\n").as_bytes()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer); // the server may reset once it has answered
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 431"), "{}", String::from_utf8_lossy(&answer));
    assert_eq!(healthz(&addr), 200);
}

/// One request with these extra header lines (each ending in `\r\n`): status, lower-cased head,
/// body. `host` is the `Host` header sent (none if `None`).
fn request(addr: &str, path: &str, host: Option<&str>, extra: &str) -> (u16, String, String) {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let host = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
    c.write_all(format!("GET {path} HTTP/1.1\r\n{host}{extra}Connection: close\r\n\r\n").as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = c.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no answer to {path}: {raw}"));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

fn start_with(configure: impl FnOnce(&mut Settings)) -> (Server, Arc<Shared>) {
    let mut settings = Settings::default();
    configure(&mut settings);
    assert!(settings.problems().is_empty(), "{:?}", settings.problems());
    let shared = Shared::new(&settings, Status::new(&settings));
    let server = kizashi::api::serve("127.0.0.1:0", shared.clone()).unwrap();
    (server, shared)
}

fn assert_security_headers(what: &str, head: &str) {
    for (name, value) in kizashi::api::guard::SECURITY_HEADERS {
        assert!(head.contains(&format!("\r\n{name}: {}\r\n", value.to_ascii_lowercase())), "{what}: no `{name}: {value}` in\n{head}");
    }
}

#[test]
fn every_kind_of_answer_carries_the_security_headers() {
    let (server, _shared) = start_with(|_| {});
    let addr = server.addr.to_string();
    let host = Some(addr.as_str());
    for (path, host, status) in [
        ("/v1/accounts", host, 200),                 // JSON
        ("/v1/accounts?format=csv", host, 200),      // CSV
        ("/v1/summary", host, 200),
        ("/metrics", host, 200),                     // Prometheus text
        ("/healthz", host, 200),
        ("/readyz", host, 503),                      // not ready: never started a pipeline
        ("/", host, 200),                            // the page and its assets
        ("/app.js", host, 200),
        ("/style.css", host, 200),
        ("/v1/accounts?band=purple", host, 400),     // errors
        ("/v1/accounts/nobody", host, 404),
        ("/no-such-endpoint", host, 404),
        ("/v1/accounts", Some("evil.example"), 421),
    ] {
        let (st, head, _) = request(&addr, path, host, "");
        assert_eq!(st, status, "{path} with Host {host:?}: {head}");
        assert_security_headers(path, &head);
    }
    let (server, _shared) = start_with(|s| s.http.token = "s3cret".into());
    let addr = server.addr.to_string();
    let (st, head, _) = request(&addr, "/v1/accounts", Some(&addr), "");
    assert_eq!(st, 401, "{head}");
    assert_security_headers("a 401", &head);
}

#[test]
fn without_a_token_a_wrong_or_missing_host_gets_421_except_on_the_probes() {
    let (server, _shared) = start_with(|_| {});
    let addr = server.addr.to_string();
    let port = server.addr.port();
    for host in [addr.clone(), format!("localhost:{port}"), "localhost".into(), "127.0.0.1".into(), format!("[::1]:{port}"), format!("LocalHost:{port}")] {
        assert_eq!(request(&addr, "/v1/accounts", Some(&host), "").0, 200, "Host: {host}");
        assert_eq!(request(&addr, "/", Some(&host), "").0, 200, "Host: {host}");
    }
    for host in [Some("evil.example"), Some(&*format!("evil.example:{port}")), Some(&*format!("localhost:{}", port.wrapping_add(1))), None] {
        let (st, head, body) = request(&addr, "/v1/accounts", host, "");
        assert_eq!(st, 421, "Host: {host:?}: {head}");
        assert!(body.len() < 300 && body.contains("http.allowed_hosts"), "a short body naming the key: {body}");
        assert_eq!(request(&addr, "/", host, "").0, 421, "the page, Host: {host:?}");
        assert_eq!(request(&addr, "/nothing", host, "").0, 421, "Host: {host:?}");
        // Probes and metrics answer whatever the Host (kubelet sends the pod's IP).
        assert_eq!(request(&addr, "/healthz", host, "").0, 200, "Host: {host:?}");
        assert_eq!(request(&addr, "/metrics", host, "").0, 200, "Host: {host:?}");
        assert_eq!(request(&addr, "/readyz", host, "").0, 503, "not ready, but not refused either");
    }
    // Two Host headers: 421 (or hyper's own 400), never an answer.
    let (st, _, _) = request(&addr, "/v1/accounts", Some(&addr), "Host: evil.example\r\n");
    assert!(st == 421 || st == 400, "{st}");
    // An absolute-form target names the host instead of Host.
    let (st, _, _) = request(&addr, "http://evil.example/v1/accounts", Some(&addr), "");
    assert_eq!(st, 421);

    // Configured hosts replace the defaults.
    let (server, _shared) = start_with(|s| s.http.allowed_hosts = vec!["kizashi.internal".into()]);
    let addr = server.addr.to_string();
    assert_eq!(request(&addr, "/v1/accounts", Some("kizashi.internal"), "").0, 200);
    assert_eq!(request(&addr, "/v1/accounts", Some(&format!("kizashi.internal:{}", server.addr.port())), "").0, 200);
    assert_eq!(request(&addr, "/v1/accounts", Some(&addr), "").0, 421);

    // With a token the Host is not checked: the token is what guards /v1.
    let (server, _shared) = start_with(|s| s.http.token = "s3cret".into());
    let addr = server.addr.to_string();
    assert_eq!(request(&addr, "/v1/accounts", Some("evil.example"), "Authorization: Bearer s3cret\r\n").0, 200);
    assert_eq!(request(&addr, "/v1/accounts", Some("evil.example"), "").0, 401);
    assert_eq!(request(&addr, "/", Some("evil.example"), "").0, 200);
}

#[test]
fn thousands_of_unknown_parameters_get_a_small_400_naming_the_first_few_and_the_count() {
    let (server, _shared) = start_with(|_| {});
    let addr = server.addr.to_string();
    let query = "x=1&".repeat(3000);
    assert!(query.len() >= 12_000 && query.len() < kizashi::api::server::MAX_HEAD_BYTES - 200);
    let (st, head, body) = request(&addr, &format!("/v1/accounts?{query}"), Some(&addr), "");
    assert_eq!(st, 400, "{head}");
    assert!(body.len() < 4096, "a {} byte body for a {} byte query", body.len(), query.len());
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let message = v["message"].as_str().unwrap();
    assert_eq!(message.matches("x: unknown parameter").count(), kizashi::api::MAX_PROBLEMS_SHOWN, "{message}");
    assert!(message.ends_with(&format!("; and {} more", 3000 - kizashi::api::MAX_PROBLEMS_SHOWN)), "{message}");
    // A few problems are all named.
    let (st, _, body) = request(&addr, "/v1/accounts?band=purple&limit=0", Some(&addr), "");
    assert_eq!(st, 400);
    assert!(body.contains("band: `purple`") && body.contains("limit: `0`") && !body.contains("more"), "{body}");
}
