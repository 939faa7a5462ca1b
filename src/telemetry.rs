//! Logging: readable text by default, JSON on request (`log.format` or `--log-json`); the filter
//! comes from `RUST_LOG`, else `log.level`. In text, structured fields come before the message
//! (`reason=not_json offset=12 record rejected`), so lines of one kind line up; librdkafka's own
//! log lines arrive through the clients' contexts under the target `librdkafka`.

use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::EnvFilter;

/// `level` is the filter when `RUST_LOG` is not set (e.g. `info`).
pub fn init(json: bool, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = if json { builder.json().try_init() } else { builder.fmt_fields(FieldsFirst).try_init() };
}

/// Text fields as `key=value …` followed by the message.
pub struct FieldsFirst;

#[derive(Default)]
struct Collect {
    fields: String,
    message: String,
}

impl Visit for Collect {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else if value.is_empty() || value.contains(|c: char| c.is_whitespace() || c == '"' || c == '=') {
            let _ = write!(self.fields, "{}={:?} ", field.name(), value);
        } else {
            let _ = write!(self.fields, "{}={} ", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, "{}={:?} ", field.name(), value);
        }
    }
}

impl<'writer> FormatFields<'writer> for FieldsFirst {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'writer>, fields: R) -> std::fmt::Result {
        let mut c = Collect::default();
        fields.record(&mut c);
        write!(writer, "{}{}", c.fields, c.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lines_put_fields_before_the_message() {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .fmt_fields(FieldsFirst)
            .with_writer(move || WriteTo(sink.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(reason = "not_json", offset = 12, detail = "expected value", "record rejected");
        });
        let line = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        assert!(line.contains("reason=not_json offset=12 detail=\"expected value\" record rejected"), "{line}");
    }

    struct WriteTo(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for WriteTo {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
