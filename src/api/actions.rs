//! `POST /v1/accounts/{id}/actions`: the CS team acts on an account (acknowledge, snooze,
//! resolve, assign, override, clear_override). The request becomes a `cs-actions` record — the
//! same contract as any producer's, checked by the same decoder — appended to the `cs-actions`
//! topic, keyed by the account. The engine applies it like any other event, in event-time order:
//! every instance, a restart and a replay of the topic agree on what the team did. The answer
//! (202) comes once the broker has the record; the account shows it once its instance has taken
//! it from the topic (usually within a second).
//!
//! Safe against cross-site requests: the body must be `application/json` (a form cannot send
//! it without a CORS preflight, which this server never grants), and a configured token is
//! checked as for every `/v1` route.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::{bounded, error, Shared};
use crate::event::timestamp::{format_ms, now_ms};
use crate::event::{decode, EventKind};

/// Where the API appends the team's actions: the `cs-actions` topic in `run` and `demo`.
pub trait ActionSink: Send + Sync {
    /// Appends `payload` keyed by `key`; returns once the broker acknowledged it (or why not).
    fn send(&self, key: &str, payload: &[u8]) -> Result<(), String>;
}

/// The fields a request may carry (the record's others are the server's: the account, the time).
const FIELDS: [&str; 7] = ["action", "by", "note", "until", "owner", "band", "event_id"];

/// Largest request body, in bytes: a note of `MAX_NOTE_BYTES` and the rest, escaped.
pub const MAX_BODY_BYTES: usize = 16 << 10;

pub async fn post(
    State(shared): State<Arc<Shared>>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    let Ok(Path(id)) = path else { return error(StatusCode::BAD_REQUEST, "the account id in the path is not valid UTF-8") };
    let body = match body {
        Ok(Json(v)) => v,
        Err(e) => return error(e.status(), format!("the body must be a JSON object sent as application/json: {}", bounded(&e.body_text(), 200))),
    };
    let Value::Object(fields) = body else { return error(StatusCode::BAD_REQUEST, "the body must be a JSON object") };
    let unknown: Vec<&str> = fields.keys().map(String::as_str).filter(|k| !FIELDS.contains(k)).collect();
    if !unknown.is_empty() {
        let shown: Vec<&str> = unknown.iter().take(5).map(|k| bounded(k, 64)).collect();
        return error(StatusCode::BAD_REQUEST, format!("unknown field(s) {} (known: {})", shown.join(", "), FIELDS.join(", ")));
    }
    let now = now_ms();
    let mut record = Map::new();
    record.insert("account_id".into(), json!(id));
    record.extend(fields);
    record.insert("ts".into(), json!(format_ms(now)));
    let record = Value::Object(record);
    let line = record.to_string();
    let limits = crate::event::DecodeLimits { now_ms: now, ..shared.decode_limits };
    if let Err(reject) = decode(EventKind::Action, line.as_bytes(), Some(id.as_bytes()), &limits) {
        return error(StatusCode::BAD_REQUEST, format!("{}: {}", reject.reason, reject.detail));
    }
    if shared.status.board.get(&id).is_none() {
        return error(StatusCode::NOT_FOUND, format!("unknown account `{}`", bounded(&id, 64)));
    }
    let Some(sink) = &shared.actions else {
        return error(
            StatusCode::CONFLICT,
            "this instance serves a replay and takes no actions: add the record to a file given to replay --actions",
        );
    };
    // The handler runs on one of the API's blocking threads (`off_loop`): waiting for the
    // broker's acknowledgement holds that thread only.
    match sink.send(&id, line.as_bytes()) {
        Ok(()) => {
            (StatusCode::ACCEPTED, Json(json!({"accepted": record, "topic": shared.topics[EventKind::Action as usize]}))).into_response()
        }
        Err(e) => {
            // Debug-formatted: the id is the client's (control characters escaped).
            tracing::warn!(account = ?bounded(&id, 64), error = %e, "appending a CS action failed");
            error(StatusCode::SERVICE_UNAVAILABLE, format!("the action could not be written to the cs-actions topic: {}", bounded(&e, 200)))
        }
    }
}
