//! The workspace page at `/`: static HTML, CSS and JavaScript compiled into the binary. The page
//! holds no data; it reads `/v1/*` from the browser (with the bearer token when one is set), so
//! it sits outside the `/v1` auth layer.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("index.html");
const APP: &str = include_str!("app.js");
const STYLE: &str = include_str!("style.css");

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body)
}

/// `/`, `/app.js` and `/style.css`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX) }))
        .route("/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP) }))
        .route("/style.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
}
