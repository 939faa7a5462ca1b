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

/// Escapes control characters (newlines, carriage returns, terminal escapes...) so that no value,
/// whatever input it came from, can start a forged log line or drive the terminal.
pub fn escape_control(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

impl Visit for Collect {
    fn record_str(&mut self, field: &Field, value: &str) {
        let value = escape_control(value);
        if field.name() == "message" {
            self.message.push_str(&value);
        } else if value.is_empty() || value.contains(|c: char| c.is_whitespace() || c == '"' || c == '=') {
            let _ = write!(self.fields, "{}={:?} ", field.name(), value);
        } else {
            let _ = write!(self.fields, "{}={} ", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // `%x` fields arrive here too (as Display): render, then escape.
        let text = format!("{value:?}");
        let text = escape_control(&text);
        if field.name() == "message" {
            self.message.push_str(&text);
        } else if text.contains(|c: char| c.is_whitespace() || c == '=') && !text.starts_with('"') {
            let _ = write!(self.fields, "{}={:?} ", field.name(), text);
        } else {
            let _ = write!(self.fields, "{}={} ", field.name(), text);
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

    /// The text `log` writes, logged as `init` logs text (without colours).
    fn logged_text(log: impl FnOnce()) -> String {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .fmt_fields(FieldsFirst)
            .with_writer(move || WriteTo(sink.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let bytes = buf.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn text_lines_put_fields_before_the_message() {
        let line = logged_text(|| {
            tracing::warn!(reason = "not_json", offset = 12, detail = "expected value", "record rejected");
        });
        assert!(line.contains("reason=not_json offset=12 detail=\"expected value\" record rejected"), "{line}");
    }

    #[test]
    fn input_in_fields_cannot_forge_lines_or_escape_sequences() {
        let hostile = "x\n2026-01-01T00:00:00Z ERROR kizashi: FORGED LINE\u{1b}[31m";
        let text = logged_text(|| {
            tracing::warn!(detail = %hostile, account = hostile, other = ?hostile, "record rejected");
            tracing::warn!("message with {hostile}");
        });
        assert_eq!(text.lines().count(), 2, "one line per event, nothing forged: {text}");
        assert!(!text.contains('\u{1b}'), "no raw terminal escape: {text:?}");
        assert!(text.contains("FORGED LINE\\u{1b}[31m"), "the value is kept, escaped: {text}");
        assert!(text.lines().all(|l| l.contains(" WARN ")), "{text}");
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
