//! Logging: human-readable by default, JSON on request; level from `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

/// `default` is the filter when `RUST_LOG` is not set (e.g. `info`).
pub fn init(json: bool, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
