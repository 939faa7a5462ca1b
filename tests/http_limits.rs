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

const HALF_SENT: &str = "GET /healthz HTTP/1.1\r\nHost: kizashi\r\n";

fn start(header_timeout: Duration, idle_timeout: Duration, max_connections: usize) -> (Server, Arc<Shared>) {
    let mut settings = Settings::default();
    settings.http.header_timeout = header_timeout;
    settings.http.idle_timeout = idle_timeout;
    settings.http.max_connections = max_connections;
    assert!(settings.problems().is_empty(), "{:?}", settings.problems());
    let shared = Shared::new(&settings);
    let server = kizashi::api::serve("127.0.0.1:0", shared.clone()).unwrap();
    (server, shared)
}

fn scrape(shared: &Shared, series: &str) -> f64 {
    metric(&shared.metrics.render(), series).unwrap_or_else(|| panic!("no {series}"))
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
