//! The HTTP port: `/metrics`, `/healthz`, `/readyz`, and the account API under `/v1`.
//!
//! It runs on its own thread (a single-threaded tokio runtime) that accepts connections and
//! answers the probes, the page and `/metrics` itself; the `/v1` queries (sorting the board,
//! reading RocksDB, all synchronous) run on at most [`QUERY_THREADS`] threads beside it, and past
//! [`MAX_QUERIES`] admitted at once a query gets 503 — so `/healthz` never waits behind a query.
//! Queries read account state through a clone of the RocksDB handle and the [`Board`](crate::engine::board::Board) — never the
//! pipeline's in-memory state — so a query never waits for a batch and never sees state that is
//! not yet durable. Every answer is
//! JSON (or the Prometheus text format); bad input gets a 400 with a message, never a panic.
//! `/v1/*` needs `Authorization: Bearer <http.token>` when a token is configured; the probes
//! and `/metrics` stay open (kubelet and Prometheus reach them without secrets). Without a token,
//! a request naming a `Host` outside `http.allowed_hosts` gets 421, and every answer carries the
//! security headers ([`guard`]). Error bodies are bounded whatever the request. Connections live
//! under the timeouts and the limit of [`server`].

pub mod account;
pub mod actions;
pub mod server;
pub mod evaluation;
pub mod guard;
pub mod page;
pub mod today;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::config::Settings;
use crate::core::{Band, Params, Rule};
use crate::event::timestamp::now_ms;
use crate::metrics::LogBudget;
use crate::runtime::Status;
use crate::engine::board::{Filter, Sort};

/// Largest page of the at-risk queue.
pub const MAX_LIMIT: usize = 1000;
/// Threads that run `/v1` handlers, off the accept loop.
pub const QUERY_THREADS: usize = 4;
/// `/v1` requests admitted at once (running, or waiting for one of the [`QUERY_THREADS`]); one
/// more is answered 503 with `Retry-After: 1` at once, holding no thread.
pub const MAX_QUERIES: usize = 64;

/// What the HTTP port serves from: the instance's [`Status`] (shared with the processing side),
/// and the port's own settings, query slots and log budget.
pub struct Shared {
    pub status: Arc<Status>,
    params: Params,
    token: Option<String>,
    topics: [String; crate::event::N_KINDS],
    stale_after: Option<Duration>,
    limits: server::Limits,
    allowed_hosts: Vec<String>,
    /// One permit per `/v1` request admitted ([`MAX_QUERIES`]).
    queries: Arc<tokio::sync::Semaphore>,
    unauthorized_log: Mutex<LogBudget>,
    /// Where `POST /v1/accounts/{id}/actions` appends (none: a replay, which takes no actions).
    actions: Option<Arc<dyn actions::ActionSink>>,
    /// The input contract's limits, for checking an action as the engine will.
    decode_limits: crate::event::DecodeLimits,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("status", &self.status).finish_non_exhaustive()
    }
}

impl Shared {
    /// The port's state over `status` (which the processing side reports to).
    pub fn new(settings: &Settings, status: Arc<Status>) -> Arc<Shared> {
        let t = &settings.kafka.topics;
        Arc::new(Shared {
            status,
            params: Params::new(settings),
            token: Some(settings.http.token.clone()).filter(|t| !t.is_empty()),
            topics: [t.usage.clone(), t.support.clone(), t.accounts.clone(), t.actions.clone()],
            stale_after: Some(settings.http.stale_after).filter(|d| !d.is_zero()),
            limits: server::Limits::of(&settings.http),
            allowed_hosts: settings.http.allowed_hosts.clone(),
            queries: Arc::new(tokio::sync::Semaphore::new(MAX_QUERIES)),
            unauthorized_log: Mutex::new(LogBudget::new(Instant::now())),
            actions: None,
            decode_limits: settings.events.decode_limits(0),
        })
    }

    /// With the CS team's actions appended to `sink` (`run`, `demo`: the `cs-actions` topic).
    pub fn with_actions(mut self: Arc<Self>, sink: Arc<dyn actions::ActionSink>) -> Arc<Self> {
        if let Some(s) = Arc::get_mut(&mut self) {
            s.actions = Some(sink);
        }
        self
    }

    /// For `replay`: history is old by nature, so no source is ever reported stale.
    pub fn offline(mut self: Arc<Self>) -> Arc<Self> {
        if let Some(s) = Arc::get_mut(&mut self) {
            s.stale_after = None;
        }
        self
    }

    /// Activity topics (usage, support) whose newest event is older than `http.stale_after`:
    /// (topic, age in seconds). Account records are occasional facts, never stale.
    fn stale_sources(&self) -> Vec<(String, f64)> {
        let Some(after) = self.stale_after else { return vec![] };
        let now = now_ms() as f64 / 1000.0;
        let times = self.status.metrics.source_event_times(&self.topics);
        self.topics
            .iter()
            .zip(times)
            .take(2)
            .filter_map(|(t, ts)| ts.map(|ts| (t.clone(), now - ts)))
            .filter(|(_, age)| *age > after.as_secs_f64())
            .collect()
    }
}

/// A running HTTP server; dropping it stops it.
pub struct Server {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Binds `listen` (an error names `http.listen`) and serves on a thread of its own, under the
/// bounds of `http.header_timeout`, `http.idle_timeout` and `http.max_connections`.
pub fn serve(listen: &str, shared: Arc<Shared>) -> Result<Server> {
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("http.listen: cannot listen on {listen}"))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let limits = shared.limits.capped_by(server::open_file_limit());
    if limits.max_connections < shared.limits.max_connections {
        tracing::warn!(
            configured = shared.limits.max_connections, max_connections = limits.max_connections,
            "http.max_connections lowered to half the open-file limit (raise `ulimit -n` to allow more)"
        );
    }
    // With a token a rebinding page cannot read /v1, so the Host is checked only without one.
    let hosts = shared.token.is_none().then(|| Arc::new(guard::AllowedHosts::new(&shared.allowed_hosts, addr)));
    match &hosts {
        Some(h) => tracing::info!(allowed_hosts = ?h.entries(), "no http.token: /v1 and the page answer only these Host values"),
        None => tracing::debug!("http.token set: the Host header is not checked"),
    }
    let app = router(shared.clone(), hosts);
    let server = start(listener, app, shared, limits)?;
    tracing::info!(
        %addr, header_timeout = ?limits.header_timeout, idle_timeout = ?limits.idle_timeout,
        max_connections = limits.max_connections, query_threads = QUERY_THREADS, max_queries = MAX_QUERIES,
        "HTTP port open (/metrics, /healthz, /readyz, /v1/accounts)"
    );
    Ok(server)
}

/// Serves `app` on `listener` (non-blocking) from a thread of its own, with up to
/// [`QUERY_THREADS`] more for the `/v1` handlers ([`off_loop`]).
fn start(listener: std::net::TcpListener, app: Router, shared: Arc<Shared>, limits: server::Limits) -> Result<Server> {
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new().name("kizashi-http".into()).spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(QUERY_THREADS)
            .thread_name("kizashi-http-query")
            .build()
            .expect("tokio runtime");
        rt.block_on(async move {
            match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => server::run(listener, app, shared, limits, rx).await,
                Err(e) => tracing::error!(error = %e, "HTTP listener failed"),
            }
        });
        // The connections are closed (they had `DRAIN` to finish): a query still computing has
        // nothing left to answer, so its thread is not waited for (a second `DRAIN` made a stop
        // under load take ~11 s, docs/api-bench.md).
        rt.shutdown_timeout(std::time::Duration::from_millis(200));
    })?;
    Ok(Server { addr, shutdown: Some(tx), thread: Some(thread) })
}

/// The routes, under (from the outside in) the security headers, the request metrics and, when
/// `hosts` is given, the `Host` check.
pub fn router(shared: Arc<Shared>, hosts: Option<Arc<guard::AllowedHosts>>) -> Router {
    let v1 = Router::new()
        .route("/v1/accounts", get(queue))
        .route("/v1/accounts/{id}", get(account))
        .route("/v1/accounts/{id}/history", get(history))
        .route(
            "/v1/accounts/{id}/actions",
            axum::routing::post(actions::post).layer(axum::extract::DefaultBodyLimit::max(actions::MAX_BODY_BYTES)),
        )
        .route("/v1/summary", get(summary))
        .route("/v1/evaluation", get(evaluation::get))
        .route_layer(middleware::from_fn_with_state(shared.clone(), off_loop))
        .route_layer(middleware::from_fn_with_state(shared.clone(), auth));
    let mut app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .merge(page::routes())
        .merge(v1)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint; see /v1/accounts, /v1/accounts/{id}, /metrics, /healthz, /readyz") });
    if let Some(hosts) = hosts {
        app = app.layer(middleware::from_fn_with_state(hosts, guard::check_host));
    }
    app.layer(middleware::from_fn_with_state(shared.clone(), observe))
        .layer(middleware::map_response(guard::security_headers))
        .with_state(shared)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": status.canonical_reason().unwrap_or("error"), "message": message.into()}))).into_response()
}

/// Problems an error body names at most; the rest are counted ("and 2995 more"), so that a
/// request of thousands of bad parameters cannot make an answer many times its own size.
pub const MAX_PROBLEMS_SHOWN: usize = 5;

/// The problems found in a request: the first [`MAX_PROBLEMS_SHOWN`], and how many more.
#[derive(Debug, Default)]
struct Problems {
    shown: Vec<String>,
    more: usize,
}

impl Problems {
    fn push(&mut self, problem: String) {
        if self.shown.len() < MAX_PROBLEMS_SHOWN {
            self.shown.push(problem);
        } else {
            self.more += 1;
        }
    }

    /// `a; b; c`, then `; and N more` past the bound; `None` when there is no problem.
    fn message(&self) -> Option<String> {
        if self.shown.is_empty() {
            return None;
        }
        let mut m = self.shown.join("; ");
        if self.more > 0 {
            m.push_str(&format!("; and {} more", self.more));
        }
        Some(m)
    }
}

/// Counts and times every request by route.
async fn observe(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().map_or("other", |m| match m.as_str() {
        "/v1/accounts/{id}" => "/v1/accounts/{id}",
        "/v1/accounts/{id}/actions" => "/v1/accounts/{id}/actions",
        "/v1/accounts" => "/v1/accounts",
        "/v1/evaluation" => "/v1/evaluation",
        "/metrics" => "/metrics",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        _ => "other",
    });
    let res = next.run(req).await;
    shared.status.metrics.http(route, res.status().as_u16(), started.elapsed().as_secs_f64());
    res
}

/// Runs a `/v1` handler on one of the runtime's blocking threads ([`QUERY_THREADS`]), off the
/// thread that accepts connections and answers the probes: its sorting and RocksDB reads are
/// synchronous. At most [`MAX_QUERIES`] are admitted at once (running or waiting for a thread);
/// past that the answer is 503 with `Retry-After: 1`, counted in
/// `kizashi_http_rejected_total{reason="busy"}`. Inside the token check, so that requests without
/// the token take no slot.
async fn off_loop(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let Ok(slot) = shared.queries.clone().try_acquire_owned() else {
        shared.status.metrics.http_rejected("busy");
        let mut res = error(StatusCode::SERVICE_UNAVAILABLE, format!("{MAX_QUERIES} queries are being answered; retry in a second"));
        res.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        return res;
    };
    let rt = tokio::runtime::Handle::current();
    // The handlers await nothing that needs the runtime's I/O or timers (they compute, read the
    // store and return), so the blocking thread drives the handler itself.
    let answered = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        rt.block_on(next.run(req))
    });
    answered.await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "an API handler failed");
        error(StatusCode::INTERNAL_SERVER_ERROR, "answering the query failed; see the logs")
    })
}

/// Checks the bearer token in constant time (when one is configured); logs each refusal.
async fn auth(State(shared): State<Arc<Shared>>, headers: HeaderMap, req: Request, next: Next) -> Response {
    if let Some(token) = &shared.token {
        let refused = match headers.get(header::AUTHORIZATION) {
            None => Some("no Authorization header"),
            Some(v) => match bearer_credentials(v.as_bytes()) {
                None => Some("not a Bearer credential"),
                Some(given) => (!constant_time_eq(given, token.as_bytes())).then_some("wrong token"),
            },
        };
        if let Some(reason) = refused {
            shared.unauthorized(&req, reason);
            let mut res = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token (Authorization: Bearer …)");
            res.headers_mut().insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static header"));
            return res;
        }
    }
    next.run(req).await
}

/// The credentials of an `Authorization` value if its scheme is Bearer. The scheme is
/// case-insensitive (RFC 7235: `bearer`, `BEARER`); the credentials are returned as sent.
fn bearer_credentials(value: &[u8]) -> Option<&[u8]> {
    let space = value.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let start = rest.iter().position(|&b| b != b' ')?;
    let end = rest.iter().rposition(|&b| b != b' ' && b != b'\t')?;
    Some(&rest[start..=end])
}

/// Longest method or path written into a log line (they come from the client).
const LOGGED_INPUT_BYTES: usize = 200;

/// `s` cut to at most `max` bytes, at a character boundary.
fn bounded(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl Shared {
    /// A request refused with 401: a warning with the method, the path and the peer (each
    /// input-derived field bounded and `?`-escaped, so that it cannot forge a line), never the
    /// credentials presented.
    fn unauthorized(&self, req: &Request, reason: &'static str) {
        let Some(not_logged) = self.unauthorized_log.lock().expect("log budget lock").take(Instant::now()) else { return };
        let peer = req.extensions().get::<server::Peer>().map(|p| p.0.to_string()).unwrap_or_default();
        tracing::warn!(
            method = ?bounded(req.method().as_str(), LOGGED_INPUT_BYTES),
            path = ?bounded(req.uri().path(), LOGGED_INPUT_BYTES),
            %peer, reason, not_logged, "request refused: 401 Unauthorized"
        );
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, y) in b.iter().enumerate() {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ y);
    }
    diff == 0
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    shared.status.refresh_gauges();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], shared.status.metrics.render()).into_response()
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let r = shared.status.readiness();
    let stale: Vec<Value> = shared
        .stale_sources()
        .into_iter()
        .map(|(topic, age)| json!({"topic": topic, "newest_event_age_seconds": age.round()}))
        .collect();
    if r.ready {
        (StatusCode::OK, Json(json!({"ready": true, "partitions": r.partitions, "stale_sources": stale}))).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"ready": false, "reason": r.reason, "stale_sources": stale})))
            .into_response()
    }
}

async fn account(State(shared): State<Arc<Shared>>, path: Result<Path<String>, axum::extract::rejection::PathRejection>) -> Response {
    let Ok(Path(id)) = path else { return error(StatusCode::BAD_REQUEST, "the account id in the path is not valid UTF-8") };
    let Some(entry) = shared.status.board.get(&id) else {
        return error(StatusCode::NOT_FOUND, format!("unknown account `{}`", bounded(&id, 64)));
    };
    let Some(store) = shared.status.store() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the state store is not open yet");
    };
    match store.get_account(entry.partition, &id) {
        Ok(Some(state)) => Json(account::detail(&id, entry.partition, &state, &shared.params)).into_response(),
        // Moved away between the two reads (a rebalance): as unknown here.
        Ok(None) => error(StatusCode::NOT_FOUND, format!("unknown account `{}`", bounded(&id, 64))),
        Err(e) => {
            tracing::error!(account = %id, error = %e, "reading account state for the API failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "reading the account's state failed; see the logs")
        }
    }
}

type QueryPairs = Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>;

async fn queue(State(shared): State<Arc<Shared>>, query: QueryPairs) -> Response {
    let Ok(Query(pairs)) = query else { return error(StatusCode::BAD_REQUEST, "the query string cannot be decoded") };
    let q = match queue_query(&pairs, &shared.params.tiers) {
        Ok(q) => q,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let board = &shared.status.board;
    let page = match q.sort {
        Some(sort) => board.select(&q.filter, sort, q.offset, q.limit),
        None => {
            let today = today::Today::new(&shared.params, board.newest_alert_ms());
            board.select_by_key(&q.filter, |e| today.priority(e), q.offset, q.limit)
        }
    };
    let next = (q.offset + page.items.len() < page.total).then_some(q.offset + page.items.len());
    let store = shared.status.store();
    let rows: Vec<Value> =
        page.items.iter().enumerate().map(|(i, (id, e))| queue_row(&shared, store, q.offset + i + 1, id, e)).collect();
    if q.csv {
        let headers = [(header::CONTENT_TYPE, "text/csv; charset=utf-8"), (header::CONTENT_DISPOSITION, "attachment; filename=\"kizashi-accounts.csv\"")];
        return (headers, queue_csv(&rows)).into_response();
    }
    Json(json!({"total": page.total, "offset": q.offset, "limit": q.limit, "next_offset": next, "accounts": rows})).into_response()
}

/// What `/v1/accounts` was asked for: which accounts, in which order (`None`: today's, see
/// `today`), which page, as JSON or CSV.
struct QueueQuery<'a> {
    filter: Filter<'a>,
    sort: Option<Sort>,
    csv: bool,
    limit: usize,
    offset: usize,
}

/// Reads `k=v` into `filter` if `k` is one of its parameters (band, segment, owner, rule); a bad
/// value goes to `problems`. Returns whether it was.
fn filter_param<'a>(k: &str, v: &'a str, tiers: &'a crate::core::scorecard::Tiers, filter: &mut Filter<'a>, problems: &mut Problems) -> bool {
    match k {
        "band" => match v {
            "red" => filter.band = Some(Band::Red),
            "yellow" => filter.band = Some(Band::Yellow),
            "green" => filter.band = Some(Band::Green),
            _ => problems.push(format!("band: `{}` is not one of red, yellow, green", bounded(v, 64))),
        },
        "segment" => filter.segment = Some(v),
        "owner" => filter.owner = Some(v),
        "rule" => match Rule::ALL.iter().find(|r| r.name() == v) {
            Some(r) => filter.rule = Some(*r as u8),
            None => problems.push(format!("rule: `{}` is not a rule", bounded(v, 64))),
        },
        "tier" => match crate::core::scorecard::Tier::ALL.iter().find(|t| t.name() == v) {
            Some(t) => filter.tier = Some((*t, tiers)),
            None => problems.push(format!("tier: `{}` is not one of high, low, tech", bounded(v, 64))),
        },
        "status" => match crate::core::actions::name_code(v) {
            Some(c) => filter.status = Some(c),
            None => problems.push(format!("status: `{}` is not one of open, acknowledged, snoozed, resolved", bounded(v, 64))),
        },
        _ => return false,
    }
    true
}

/// Reads the queue's query parameters; the error names every problem (up to a bound).
fn queue_query<'a>(pairs: &'a [(String, String)], tiers: &'a crate::core::scorecard::Tiers) -> Result<QueueQuery<'a>, String> {
    let (mut filter, mut sort, mut csv, mut limit, mut offset) = (Filter::default(), Some(Sort::Risk), false, 50usize, 0usize);
    let mut problems = Problems::default();
    for (k, v) in pairs {
        if filter_param(k, v, tiers, &mut filter, &mut problems) {
            continue;
        }
        match k.as_str() {
            "sort" => match v.as_str() {
                "risk" => sort = Some(Sort::Risk),
                "arr_at_risk" => sort = Some(Sort::ArrAtRisk),
                "renewal" => sort = Some(Sort::Renewal),
                "today" => sort = None,
                _ => problems.push(format!("sort: `{}` is not one of today, risk, arr_at_risk, renewal", bounded(v, 64))),
            },
            "format" => match v.as_str() {
                "json" => csv = false,
                "csv" => csv = true,
                _ => problems.push(format!("format: `{}` is not json or csv", bounded(v, 64))),
            },
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => limit = n,
                _ => problems.push(format!("limit: `{}` is not an integer in 1..={MAX_LIMIT}", bounded(v, 64))),
            },
            "offset" => match v.parse::<usize>() {
                Ok(n) => offset = n,
                _ => problems.push(format!("offset: `{}` is not a non-negative integer", bounded(v, 64))),
            },
            other => problems.push(format!(
                "{}: unknown parameter (known: band, segment, owner, rule, tier, status, sort, format, limit, offset)",
                bounded(other, 64)
            )),
        }
    }
    // The today view is whom to call: snoozed and resolved accounts wait, unless asked for.
    filter.hide_set_aside = sort.is_none() && filter.status.is_none();
    match problems.message() {
        Some(message) => Err(message),
        None => Ok(QueueQuery { filter, sort, csv, limit, offset }),
    }
}

/// One row of the queue: the account's entry on the board, ranked, with its measures.
fn queue_row(shared: &Shared, store: Option<&crate::store::Store>, rank: usize, id: &str, e: &crate::engine::board::Entry) -> Value {
    let state = store.and_then(|st| st.get_account(e.partition, id).ok().flatten());
    json!({
        "rank": rank,
        "account_id": id,
        "name": e.name.as_deref(),
        "score": e.score.map(crate::core::alerts::round1),
        "band": e.band.map(Band::name),
        "segment": e.segment.as_deref(),
        "tier": shared.params.tiers.of(e.segment.as_deref(), e.arr).name(),
        "owner": e.owner.as_deref(),
        "arr": e.arr,
        "seats": e.seats,
        "renewal_date": e.renewal_day.map(crate::event::timestamp::format_day),
        "last_alert": e.alerts.last().and_then(|a| Rule::from_code(a.0)).map(Rule::name),
        "status": crate::core::actions::code_name(e.status),
        "snoozed_until": e.snoozed_until.map(crate::event::timestamp::format_day),
        "scored_band": e.scored_band.map(Band::name),
        "reason": reason(shared, state.as_ref()),
        "measures": heatmap_row(shared, state.as_ref()),
    })
}

/// Why the account is where it is, in words: its newest risk alert's rule and summary, else the
/// measure that loses it the most points (what keeps it from 100); `null` for an account at 100
/// without alerts, or whose state cannot be read.
fn reason(shared: &Shared, state: Option<&crate::core::AccountState>) -> Value {
    let Some(s) = state else { return Value::Null };
    let risk = s.score.recent_alerts.iter().rev().find_map(|a| {
        let rule = Rule::from_code(a.rule).filter(|r| r.kind() == crate::core::alerts::AlertKind::Risk)?;
        Some((rule, a.summary.text()))
    });
    if let Some((rule, text)) = risk {
        return json!({"rule": rule.name(), "text": bounded(&text, 240)});
    }
    let (Some(last), Some(card)) = (s.score.last.as_ref(), shared.params.cards.iter().find(|c| c.id == s.score.scorecard)) else {
        return Value::Null;
    };
    let values = last.values.to_array();
    let no_usage = crate::core::measures::usage_known_absent(s, crate::event::timestamp::day_of(last.at_ms), shared.params.state.retention_days);
    crate::core::alerts::shortfall(card, &values, no_usage).first().map_or(Value::Null, |f| {
        let label = crate::core::measures::Measure::from_name(f.measure).map_or(f.measure, |m| m.label());
        json!({"rule": null, "text": format!("{label} loses {} points", f.points)})
    })
}

/// Per-measure values and points (the heatmap) from the account's stored state; none if it
/// cannot be read, is not scored, or its scorecard is no longer configured.
fn heatmap_row(shared: &Shared, state: Option<&crate::core::AccountState>) -> Vec<Value> {
    state
        .and_then(|s| {
            let last = s.score.last.as_ref()?;
            let card = shared.params.cards.iter().find(|c| c.id == s.score.scorecard)?;
            Some(
                card.items
                    .iter()
                    .map(|it| {
                        let v = last.values.get(it.measure as usize);
                        json!({"measure": it.measure.name(), "value": v.map(crate::core::alerts::round3), "points": v.map(|x| crate::core::alerts::round1(it.points(x)))})
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .unwrap_or_default()
}

/// `/v1/accounts/{id}/history`: the account's daily score and band over the last 90 days, and
/// the alerts of each day (rule names; the most recent ones also with their ids).
async fn history(State(shared): State<Arc<Shared>>, path: Result<Path<String>, axum::extract::rejection::PathRejection>) -> Response {
    let Ok(Path(id)) = path else { return error(StatusCode::BAD_REQUEST, "the account id in the path is not valid UTF-8") };
    let Some(entry) = shared.status.board.get(&id) else {
        return error(StatusCode::NOT_FOUND, format!("unknown account `{}`", bounded(&id, 64)));
    };
    let Some(store) = shared.status.store() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the state store is not open yet");
    };
    let state = match store.get_account(entry.partition, &id) {
        Ok(Some(s)) => s,
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("unknown account `{}`", bounded(&id, 64))),
        Err(e) => {
            tracing::error!(account = ?id, error = %e, "reading account state for the API failed");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "reading the account's state failed; see the logs");
        }
    };
    let fmt = crate::event::timestamp::format_day;
    let days: Vec<Value> = state
        .score
        .history
        .iter()
        .map(|h| json!({"day": fmt(h.day), "score": f64::from(h.tenths) / 10.0, "band": h.band.name()}))
        .collect();
    let mut alerts: Vec<Value> = Vec::new();
    for h in &state.score.history {
        for rule in Rule::ALL.iter().filter(|r| h.alerts & (1 << **r as u16) != 0) {
            let known = state.score.recent_alerts.iter().find(|a| a.rule == *rule as u8 && crate::event::timestamp::day_of(a.at_ms) == h.day);
            alerts.push(json!({
                "day": fmt(h.day),
                "rule": rule.name(),
                "alert_id": known.and_then(|a| a.alert_id(&id)),
                "event_time": known.map(|a| crate::event::timestamp::format_ms(a.at_ms)),
            }));
        }
    }
    Json(json!({"account_id": id, "days": days, "alerts": alerts})).into_response()
}

/// One CSV field: quoted when it holds a comma, a quote or a line break (quotes doubled, RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A text cell that came from outside (an account's id, name, segment, owner): one starting with
/// `=`, `+`, `-`, `@`, a tab or a carriage return gets a `'` first, so that a spreadsheet shows it
/// as text instead of running it as a formula (OWASP's advice for CSV injection); then quoted as
/// [`csv_field`]. Numbers are ours and written as they are.
pub fn csv_text(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        csv_field(&format!("'{s}"))
    } else {
        csv_field(s)
    }
}

/// The queue's rows as CSV: the account columns, then `<measure>` and `<measure>_points` for every
/// measure any row's scorecard has, in the order first seen.
fn queue_csv(rows: &[Value]) -> String {
    let cols = ["rank", "account_id", "name", "score", "band", "segment", "owner", "arr", "seats", "renewal_date", "last_alert", "tier", "status", "snoozed_until", "scored_band"];
    let mut measures: Vec<String> = Vec::new();
    for r in rows {
        for m in r["measures"].as_array().into_iter().flatten() {
            let name = m["measure"].as_str().unwrap_or_default().to_string();
            if !measures.contains(&name) {
                measures.push(name);
            }
        }
    }
    let text = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let cell = |v: &Value| match v {
        Value::String(s) => csv_text(s),
        other => csv_field(&text(other)),
    };
    let mut out = cols.join(",");
    for m in &measures {
        out.push_str(&format!(",{m},{m}_points"));
    }
    out.push_str("\r\n");
    for r in rows {
        let mut fields: Vec<String> = cols.iter().map(|c| cell(&r[*c])).collect();
        for m in &measures {
            let cell = r["measures"].as_array().and_then(|ms| ms.iter().find(|x| x["measure"] == m.as_str()));
            fields.push(cell.map(|c| text(&c["value"])).unwrap_or_default());
            fields.push(cell.map(|c| text(&c["points"])).unwrap_or_default());
        }
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

fn unit_name(u: crate::core::measures::Unit) -> &'static str {
    use crate::core::measures::Unit;
    match u {
        Unit::Count => "count",
        Unit::Ratio => "ratio",
        Unit::Days => "days",
        Unit::Csat => "csat",
        Unit::Nps => "nps",
    }
}

/// The portfolio strip: accounts and ARR by band, and alerts today (the day of the newest alert,
/// or `?day=YYYY-MM-DD`) by rule.
async fn summary(State(shared): State<Arc<Shared>>, query: QueryPairs) -> Response {
    let Ok(Query(pairs)) = query else { return error(StatusCode::BAD_REQUEST, "the query string cannot be decoded") };
    let mut day = shared.status.board.newest_alert_ms().map(crate::event::timestamp::day_of);
    let (mut filter, mut problems, tiers) = (Filter::default(), Problems::default(), &shared.params.tiers);
    for (k, v) in &pairs {
        if filter_param(k, v, tiers, &mut filter, &mut problems) {
            continue;
        }
        match k.as_str() {
            "day" => match crate::event::timestamp::parse_date_day(v) {
                Some(d) => day = Some(d),
                None => problems.push(format!("day: `{}` is not a YYYY-MM-DD date", bounded(v, 64))),
            },
            other => problems.push(format!("{}: unknown parameter (known: day, band, segment, owner, rule, tier, status)", bounded(other, 64))),
        }
    }
    if let Some(message) = problems.message() {
        return error(StatusCode::BAD_REQUEST, message);
    }
    let s = shared.status.board.summary_of(day.unwrap_or(i32::MIN), &filter);
    let names = ["red", "yellow", "green", "unscored"];
    let by = |xs: &[f64; 4]| names.iter().zip(xs).map(|(n, x)| ((*n).to_string(), json!(x))).collect::<serde_json::Map<_, _>>();
    let counts: [f64; 4] = s.accounts.map(|n| n as f64);
    let alerts: serde_json::Map<String, Value> = s
        .alerts_by_rule
        .iter()
        .filter_map(|(code, n)| Some((Rule::from_code(*code)?.name().to_string(), json!(n))))
        .collect();
    Json(json!({
        "accounts": by(&counts),
        "arr": by(&s.arr),
        "day": day.map(crate::event::timestamp::format_day),
        "alerts_by_rule": alerts,
        // Accounts that ended (churned, cancelled): in no band and no queue.
        "ended": {"accounts": s.ended, "arr": s.ended_arr},
        // Accounts by what the team did (`cs-actions`).
        "status": {"open": s.by_status[0], "acknowledged": s.by_status[1], "snoozed": s.by_status[2], "resolved": s.by_status[3]},
        // Every rule the server knows, in its order (the page's rule filter is built from it).
        "rules": Rule::ALL.iter().map(|r| r.name()).collect::<Vec<_>>(),
        // The owners and segments of the accounts counted (the page's suggestions), and every
        // measure's name for people and unit (one table for the page's labels and formats).
        "owners": s.owners,
        "segments": s.segments,
        "measures": crate::core::measures::Measure::ALL.iter().map(|m| (m.name().to_string(), json!({"label": m.label(), "unit": unit_name(m.unit())}))).collect::<serde_json::Map<_, _>>(),
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_the_token_is_taken_as_sent() {
        for v in ["Bearer t0k", "bearer t0k", "BEARER t0k", "bEaReR   t0k", "Bearer t0k "] {
            assert_eq!(bearer_credentials(v.as_bytes()), Some(&b"t0k"[..]), "{v}");
        }
        assert_eq!(bearer_credentials(b"Bearer T0K"), Some(&b"T0K"[..]), "the token keeps its case");
        for v in ["Basic dXNlcjpwdw==", "Bearert0k", "Bearer", "Bearer ", "t0k", "", "Bear t0k"] {
            assert_eq!(bearer_credentials(v.as_bytes()), None, "{v}");
        }
    }

    #[test]
    fn csv_fields_with_commas_quotes_and_line_breaks_are_quoted() {
        assert_eq!(csv_field("Acme"), "Acme");
        assert_eq!(csv_field("Acme, Inc"), "\"Acme, Inc\"");
        assert_eq!(csv_field("The \"Best\" Co"), "\"The \"\"Best\"\" Co\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        let rows = vec![json!({"rank": 1, "account_id": "a,1", "name": "Q \"x\"\r\ny", "score": 12.5, "band": "red",
            "segment": null, "owner": "Ana", "arr": 10.0, "seats": 3, "renewal_date": null, "last_alert": "inactive", "tier": "tech",
            "measures": [{"measure": "usage_trend", "value": 0.5, "points": 10.0}]})];
        let text = queue_csv(&rows);
        let mut lines = text.split("\r\n");
        assert_eq!(
            lines.next().unwrap(),
            "rank,account_id,name,score,band,segment,owner,arr,seats,renewal_date,last_alert,tier,status,snoozed_until,scored_band,usage_trend,usage_trend_points"
        );
        assert_eq!(text.matches("\"a,1\"").count(), 1);
        assert!(text.contains("\"Q \"\"x\"\"\r\ny\""), "{text}");
        assert!(text.ends_with(",Ana,10.0,3,,inactive,tech,,,,0.5,10.0\r\n"), "{text}");
    }

    #[test]
    fn csv_cells_that_a_spreadsheet_would_run_as_formulas_are_prefixed_with_a_quote() {
        for (name, want) in [
            ("=HYPERLINK(\"http://x\")", "\"'=HYPERLINK(\"\"http://x\"\")\""),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tTab", "'\tTab"),
            ("\rCR", "\"'\rCR\""),
            ("Acme = Co", "Acme = Co"),
            ("", ""),
        ] {
            assert_eq!(csv_text(name), want, "{name:?}");
        }
        let rows = vec![json!({"rank": 1, "account_id": "-acct", "name": "=1+1", "score": -2.5, "band": "red", "segment": "@smb",
            "owner": "+Ana", "arr": 10.0, "seats": 3, "renewal_date": null, "last_alert": null, "tier": "low",
            "measures": [{"measure": "usage_trend", "value": -0.5, "points": 0.0}]})];
        let text = queue_csv(&rows);
        let row = text.split("\r\n").nth(1).unwrap();
        assert_eq!(row, "1,'-acct,'=1+1,-2.5,red,'@smb,'+Ana,10.0,3,,,low,,,,-0.5,0.0", "text cells prefixed, numbers as they are");
    }

    #[test]
    fn an_error_names_the_first_problems_and_counts_the_rest() {
        let mut p = Problems::default();
        assert_eq!(p.message(), None);
        for i in 0..3 {
            p.push(format!("p{i}"));
        }
        assert_eq!(p.message().unwrap(), "p0; p1; p2");
        for i in 3..3000 {
            p.push(format!("p{i}"));
        }
        assert_eq!(p.message().unwrap(), "p0; p1; p2; p3; p4; and 2995 more");
    }

    /// GET `path` on a new connection: the status and the lower-cased head.
    fn get_head(addr: SocketAddr, path: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(c, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
        let mut raw = String::new();
        c.read_to_string(&mut raw).unwrap_or_else(|e| panic!("no answer to {path} in 10 s: {e}"));
        let status = raw.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, raw.to_ascii_lowercase())
    }

    /// A `/v1` handler that blocks its thread (as a long sort or a slow RocksDB read would) does not
    /// keep `/healthz` waiting, and one query past the bound gets a 503 with `Retry-After` at once.
    #[test]
    fn a_blocked_query_holds_neither_the_probes_nor_the_accept_loop_and_one_past_the_bound_gets_a_503() {
        use std::io::{Read, Write};
        let shared = Shared::new(&Settings::default(), Status::new(&Settings::default()));
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        let app = Router::new()
            .route(
                "/v1/blocked",
                get(move || {
                    let gate = gate.clone();
                    async move {
                        let _ = gate.lock().unwrap().recv();
                        "released"
                    }
                }),
            )
            .route_layer(middleware::from_fn_with_state(shared.clone(), off_loop))
            .route("/healthz", get(|| async { "ok" }));
        // All slots but one are taken: the blocked query takes the last.
        let held = shared.queries.clone().try_acquire_many_owned(u32::try_from(MAX_QUERIES - 1).unwrap()).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let server = start(listener, app, shared.clone(), shared.limits).unwrap();
        // Moved after the server, so that on a failed assertion the gate opens before the server
        // is dropped (dropping a `Server` waits for its thread).
        let release = release;
        let mut blocked = std::net::TcpStream::connect(server.addr).unwrap();
        write!(blocked, "GET /v1/blocked HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let started = Instant::now();
        while shared.queries.available_permits() > 0 {
            assert!(started.elapsed() < Duration::from_secs(10), "the query was not admitted");
            std::thread::sleep(Duration::from_millis(5));
        }
        for _ in 0..3 {
            assert_eq!(get_head(server.addr, "/healthz").0, 200, "the probe answers while a query blocks its thread");
        }
        let (status, head) = get_head(server.addr, "/v1/blocked");
        assert_eq!(status, 503, "{head}");
        assert!(head.contains("\r\nretry-after: 1\r\n"), "{head}");
        let metrics = shared.status.metrics.render();
        assert!(metrics.lines().any(|l| l == "kizashi_http_rejected_total{reason=\"busy\"} 1"), "{metrics}");
        release.send(()).unwrap();
        blocked.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut answer = String::new();
        blocked.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("released"), "{answer}");
        drop(held);
        assert_eq!(shared.queries.available_permits(), MAX_QUERIES, "every slot is given back");
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        for given in [&b"s3cre"[..], b"s3cret!", b"S3CRET", b""] {
            assert!(!constant_time_eq(given, b"s3cret"), "{given:?}");
        }
    }

    #[test]
    fn logged_input_is_bounded_at_a_character_boundary() {
        assert_eq!(bounded("abc", 10), "abc");
        assert_eq!(bounded("abcdef", 3), "abc");
        assert_eq!(bounded("aé", 2), "a");
    }
}
