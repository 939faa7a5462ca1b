//! `/v1/evaluation`: the back-test figures of `replay --serve --outcomes` (the content of
//! `evaluation.json`), once the replay is done; the replay leaves it in [`crate::runtime::Slot`].

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{error, Shared};
use crate::runtime::Stage;

pub async fn get(State(shared): State<Arc<Shared>>) -> Response {
    match shared.status.evaluation.stage() {
        Stage::Off => error(StatusCode::NOT_FOUND, "no evaluation: run `kizashi replay --serve` with --outcomes"),
        Stage::Pending => error(StatusCode::SERVICE_UNAVAILABLE, "replaying: the evaluation is ready when the replay is done"),
        Stage::Ready(json) => ([(header::CONTENT_TYPE, "application/json")], json.to_string()).into_response(),
    }
}
