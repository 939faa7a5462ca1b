//! The HTTP accept loop: hyper HTTP/1.1 connections under kizashi's own bounds, so that no client,
//! however slow or hostile, holds a descriptor, a connection slot or the shutdown for long.
//!
//! Every connection has a deadline at all times: a whole request head within `http.header_timeout`
//! (from accept, or from the first byte after an idle wait), some byte moving either way within
//! `http.idle_timeout`, and at shutdown a bounded drain ([`DRAIN`]) for a request being answered —
//! a connection still waiting for a request is closed at once. At `http.max_connections` a new
//! connection closes the one that has waited longest for a request (never one whose request is
//! being handled), so a flood of idle or half-sent connections cannot keep `/healthz` from answering.
//! Hyper's own header timer is not used: it also runs between requests, which would make the idle
//! timeout of a kept-alive connection the header timeout.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, Notify};
use tower_service::Service as _;

use super::Shared;
use crate::config::HttpConfig;
/// Why the server closed a connection: defined with the metric that counts it.
pub use crate::metrics::Closed;

/// Largest request head (request line and headers); a longer one gets a 431 and the connection
/// is closed. Ours are a path and a few headers (a bearer token among them), far below this.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// hyper's read and write buffer per connection: its default (~400 KiB) times 1,024 connections
/// would let slow clients pin 400 MiB.
const MAX_BUF_BYTES: usize = 64 * 1024;
/// At shutdown, how long a request already being answered may take to finish.
pub const DRAIN: Duration = Duration::from_secs(5);
/// Pause after a failed accept (out of descriptors, say), so that the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The bounds every connection lives under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    pub fn of(http: &HttpConfig) -> Limits {
        Limits { header_timeout: http.header_timeout, idle_timeout: http.idle_timeout, max_connections: http.max_connections }
    }

    /// `max_connections`, lowered to half the open-file limit (the rest is for RocksDB and Kafka)
    /// when that is smaller: past the descriptor limit, accept fails for every client, probes too.
    pub fn capped_by(mut self, open_files: Option<u64>) -> Limits {
        if let Some(n) = open_files {
            let half = usize::try_from(n / 2).unwrap_or(usize::MAX).max(1);
            self.max_connections = self.max_connections.min(half);
        }
        self
    }
}

/// The soft open-file limit of this process (Linux; `None` where unknown or unlimited).
pub fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The client's address, put in each request's extensions (for the 401 log line).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// One connection's clock, shared by its I/O wrapper, its request service and its task. Times
/// are milliseconds since the server's start.
struct Conn {
    epoch: Instant,
    /// The last byte read or written, or the end of the last request's handler.
    last_io: AtomicU64,
    /// 1 + when the request head now awaited began; 0 while none is awaited (a request is being
    /// handled, or the connection idles after one).
    head_since: AtomicU64,
    /// Requests whose handler has not returned.
    in_flight: AtomicU32,
    evicting: AtomicBool,
    evict: Notify,
}

impl Conn {
    fn new(epoch: Instant) -> Conn {
        let now = ms_since(epoch);
        // A new connection owes a request head from the start.
        Conn {
            epoch,
            last_io: AtomicU64::new(now),
            head_since: AtomicU64::new(now + 1),
            in_flight: AtomicU32::new(0),
            evicting: AtomicBool::new(false),
            evict: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        ms_since(self.epoch)
    }

    fn read(&self) {
        let now = self.now();
        self.last_io.store(now, Relaxed);
        // The first byte after an idle wait starts the next request's head.
        if self.in_flight.load(Relaxed) == 0 && self.head_since.load(Relaxed) == 0 {
            self.head_since.store(now + 1, Relaxed);
        }
    }

    fn wrote(&self) {
        self.last_io.store(self.now(), Relaxed);
    }

    /// The head is complete and its handler runs until the guard drops.
    fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        self.head_since.store(0, Relaxed);
        self.wrote();
        InFlight(self.clone())
    }

    /// Since when the connection has been waiting for a request, if it is (for eviction).
    fn waiting_since(&self) -> Option<u64> {
        if self.in_flight.load(Relaxed) > 0 || self.evicting.load(Relaxed) {
            return None;
        }
        Some(match self.head_since.load(Relaxed) {
            0 => self.last_io.load(Relaxed),
            h => h - 1,
        })
    }

    fn awaiting_head(&self) -> bool {
        self.in_flight.load(Relaxed) == 0 && self.head_since.load(Relaxed) != 0
    }

    /// When the next bound falls due.
    fn deadline(&self, l: &Limits) -> Instant {
        let idle = self.last_io.load(Relaxed).saturating_add(millis(l.idle_timeout));
        let due = match self.head_since.load(Relaxed) {
            0 => idle,
            h => idle.min((h - 1).saturating_add(millis(l.header_timeout))),
        };
        self.epoch + Duration::from_millis(due)
    }

    /// The bound this connection has passed, if any.
    fn expired(&self, l: &Limits) -> Option<Closed> {
        let now = self.now();
        let head = self.head_since.load(Relaxed);
        if head != 0 && now >= (head - 1).saturating_add(millis(l.header_timeout)) {
            return Some(Closed::HeaderTimeout);
        }
        (now >= self.last_io.load(Relaxed).saturating_add(millis(l.idle_timeout))).then_some(Closed::IdleTimeout)
    }
}

struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
        self.0.wrote();
    }
}

fn ms_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The connection waiting longest for a request, among `(id, waiting since)`.
fn victim(candidates: impl IntoIterator<Item = (u64, Option<u64>)>) -> Option<u64> {
    candidates.into_iter().filter_map(|(id, since)| since.map(|s| (s, id))).min().map(|(_, id)| id)
}

/// The open connections.
#[derive(Default)]
struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
}

impl Registry {
    fn len(&self) -> usize {
        self.conns.lock().expect("connection registry").len()
    }

    fn add(self: &Arc<Self>, conn: Arc<Conn>) -> Registered {
        let id = self.next_id.fetch_add(1, Relaxed);
        self.conns.lock().expect("connection registry").insert(id, conn);
        Registered(self.clone(), id)
    }

    /// Tells the connection waiting longest for a request to close; false if none is waiting.
    fn evict_one(&self) -> bool {
        let conns = self.conns.lock().expect("connection registry");
        let Some(id) = victim(conns.iter().map(|(id, c)| (*id, c.waiting_since()))) else { return false };
        let c = &conns[&id];
        c.evicting.store(true, Relaxed);
        c.evict.notify_one();
        true
    }
}

/// Removes a connection from the registry when its task ends (or is aborted).
struct Registered(Arc<Registry>, u64);

impl Drop for Registered {
    fn drop(&mut self) {
        self.0.conns.lock().expect("connection registry").remove(&self.1);
    }
}

/// Serves `app` on `listener` until `stop` fires, then closes every connection within [`DRAIN`].
pub async fn run(listener: TcpListener, app: Router, shared: Arc<Shared>, limits: Limits, stop: oneshot::Receiver<()>) {
    let epoch = Instant::now();
    let registry = Arc::new(Registry::default());
    let metrics = || &shared.status.metrics;
    let (down_tx, down_rx) = watch::channel(());
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {
                metrics().http_connections(registry.len());
                continue;
            }
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors (EMFILE, ENFILE: 24 and 23 on Linux and macOS): free one held
                // by a waiting connection, so that the next client in the backlog (a probe) is served.
                if matches!(e.raw_os_error(), Some(23 | 24)) {
                    registry.evict_one();
                }
                tracing::debug!(error = %e, "accepting an HTTP connection failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        if registry.len() >= limits.max_connections {
            if !registry.evict_one() {
                metrics().http_connection_closed(Closed::Refused, peer);
                continue;
            }
            // Let the evicted connection close before this one opens.
            tokio::task::yield_now().await;
        }
        let conn = Arc::new(Conn::new(epoch));
        let registered = registry.add(conn.clone());
        metrics().http_connections(registry.len());
        let served = serve_connection(stream, peer, conn, app.clone(), limits, down_rx.clone());
        let counted = shared.status.clone();
        tasks.spawn(async move {
            let _registered = registered;
            if let Some(reason) = served.await {
                counted.metrics.http_connection_closed(reason, peer);
            }
        });
    }
    drop(listener);
    drop(down_tx);
    let drained = tokio::time::timeout(DRAIN + Duration::from_secs(1), async { while tasks.join_next().await.is_some() {} });
    if drained.await.is_err() {
        tasks.abort_all();
        tracing::warn!("HTTP connections still open after the shutdown drain were dropped");
    }
    metrics().http_connections(0);
}

/// One connection, until it ends or a bound closes it (the reason, when one did).
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    conn: Arc<Conn>,
    app: Router,
    limits: Limits,
    mut down: watch::Receiver<()>,
) -> Option<Closed> {
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(Tracked { io: stream, conn: conn.clone() });
    let service = hyper::service::service_fn({
        let conn = conn.clone();
        move |mut req: hyper::Request<Incoming>| {
            let in_flight = conn.request();
            req.extensions_mut().insert(Peer(peer));
            let mut app = app.clone();
            async move {
                let res = app.call(req).await;
                drop(in_flight);
                res
            }
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.max_buf_size(MAX_BUF_BYTES).max_header_size(MAX_HEAD_BYTES).header_read_timeout(None).keep_alive(true);
    let http = builder.serve_connection(io, service);
    tokio::pin!(http);
    let mut drain_until = None;
    loop {
        let wake = drain_until.unwrap_or_else(|| conn.deadline(&limits));
        tokio::select! {
            r = http.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
                }
                return None;
            }
            () = conn.evict.notified() => return Some(Closed::Evicted),
            () = tokio::time::sleep_until(wake.into()) => {
                if drain_until.is_some() {
                    return None;
                }
                if let Some(reason) = conn.expired(&limits) {
                    return Some(reason);
                }
            }
            _ = down.changed(), if drain_until.is_none() => {
                // Shutdown. A connection still waiting for a request has nothing to lose; one
                // being answered finishes it (within DRAIN), then closes.
                if conn.awaiting_head() {
                    return None;
                }
                http.as_mut().graceful_shutdown();
                drain_until = Some(Instant::now() + DRAIN);
            }
        }
    }
}

/// The socket, noting each byte moved on the connection's clock.
struct Tracked {
    io: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Tracked {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.conn.read();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.conn.wrote();
        }
        r
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.conn.wrote();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits { header_timeout: Duration::from_millis(100), idle_timeout: Duration::from_millis(1000), max_connections: 10 }
    }

    #[test]
    fn the_victim_is_the_connection_waiting_longest_and_never_one_being_answered() {
        assert_eq!(victim([(1, Some(50)), (2, Some(10)), (3, None), (4, Some(30))]), Some(2));
        assert_eq!(victim([(1, None), (2, None)]), None);
        assert_eq!(victim(Vec::new()), None);
    }

    #[test]
    fn a_new_connection_owes_a_head_and_a_request_in_hand_is_not_evictable() {
        let c = Arc::new(Conn::new(Instant::now()));
        assert!(c.awaiting_head());
        assert!(c.waiting_since().is_some());
        let in_flight = c.request();
        assert!(!c.awaiting_head());
        assert_eq!(c.waiting_since(), None, "a request being handled is never evicted");
        c.read(); // bytes read while a request is handled (a pipelined head) start no head clock
        assert!(!c.awaiting_head());
        drop(in_flight);
        assert!(!c.awaiting_head(), "idle after a response: waiting, but no head owed yet");
        assert!(c.waiting_since().is_some());
        c.read();
        assert!(c.awaiting_head(), "the first byte after the idle wait starts the head clock");
    }

    #[test]
    fn the_deadline_is_the_header_bound_while_a_head_is_owed_and_the_idle_bound_otherwise() {
        let epoch = Instant::now() - Duration::from_secs(10);
        let c = Arc::new(Conn::new(epoch));
        let l = limits();
        let head = c.deadline(&l);
        drop(c.request());
        let idle = c.deadline(&l);
        assert!(idle >= head + Duration::from_millis(800), "{:?}", idle - head);
        let c = Conn::new(epoch);
        c.head_since.store(1, Relaxed); // the head began at epoch, ten seconds ago
        assert_eq!(c.expired(&l), Some(Closed::HeaderTimeout));
        c.head_since.store(0, Relaxed);
        assert_eq!(c.expired(&l), None);
        c.last_io.store(0, Relaxed);
        assert_eq!(c.expired(&l), Some(Closed::IdleTimeout));
    }

    #[test]
    fn the_connection_limit_leaves_half_the_open_file_limit_to_the_rest() {
        let l = limits();
        assert_eq!(Limits { max_connections: 1024, ..l }.capped_by(Some(1024)).max_connections, 512);
        assert_eq!(Limits { max_connections: 1024, ..l }.capped_by(Some(1 << 20)).max_connections, 1024);
        assert_eq!(Limits { max_connections: 1024, ..l }.capped_by(None).max_connections, 1024);
        assert_eq!(Limits { max_connections: 1024, ..l }.capped_by(Some(1)).max_connections, 1);
    }

    #[test]
    fn the_open_file_limit_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(open_file_limit().is_some_and(|n| n > 0));
        }
    }
}
