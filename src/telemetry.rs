//! Logging: readable text by default, JSON on request (`log.format` or `--log-json`); the filter
//! comes from `RUST_LOG`, else `log.level`. Structured fields come before the message; librdkafka's
//! own log lines arrive through the clients' contexts under the target `librdkafka`.

use tracing_subscriber::EnvFilter;

/// `level` is the filter when `RUST_LOG` is not set (e.g. `info`).
pub fn init(json: bool, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
