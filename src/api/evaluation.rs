//! `/v1/evaluation`: the back-test figures of `replay --serve --outcomes` (the content of
//! `evaluation.json`), once the replay is done. Read-only: the replay sets it once at the end.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{error, Shared};

#[derive(Debug, Default)]
enum Stage {
    /// No outcomes were given: there is nothing to evaluate.
    #[default]
    Off,
    /// Outcomes were given; the replay is still running.
    Pending,
    Ready(Arc<str>),
}

/// Where the replay leaves its evaluation for the API.
#[derive(Debug, Default)]
pub struct Slot(Mutex<Stage>);

impl Slot {
    /// An evaluation will come when the replay is done.
    pub fn pending(&self) {
        *self.0.lock().expect("evaluation lock") = Stage::Pending;
    }

    /// The evaluation, as JSON.
    pub fn set(&self, json: String) {
        *self.0.lock().expect("evaluation lock") = Stage::Ready(json.into());
    }
}

pub async fn get(State(shared): State<Arc<Shared>>) -> Response {
    let stage = match &*shared.evaluation.0.lock().expect("evaluation lock") {
        Stage::Off => None,
        Stage::Pending => Some(None),
        Stage::Ready(json) => Some(Some(json.clone())),
    };
    match stage {
        None => error(StatusCode::NOT_FOUND, "no evaluation: run `kizashi replay --serve` with --outcomes"),
        Some(None) => error(StatusCode::SERVICE_UNAVAILABLE, "replaying: the evaluation is ready when the replay is done"),
        Some(Some(json)) => ([(header::CONTENT_TYPE, "application/json")], json.to_string()).into_response(),
    }
}
