//! Outcome labels — what customers actually did (churned, downgraded, renewed, expanded) — for
//! back-tests: the input contract of `replay --outcomes`, one JSON object a line, and the typed
//! reason for every line refused. Labels only: nothing here touches account state, scores or alerts.

pub mod synthetic;

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::Serialize;
use serde_json::Value;

use crate::event::timestamp::{format_ms, parse_date_day, parse_rfc3339_ms, ts_in_range, DAY_MS};
use crate::event::RejectReason;

/// What a customer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    Churned,
    Downgraded,
    Renewed,
    Expanded,
}

impl OutcomeKind {
    pub const ALL: [OutcomeKind; 4] = [OutcomeKind::Churned, OutcomeKind::Downgraded, OutcomeKind::Renewed, OutcomeKind::Expanded];

    pub fn name(self) -> &'static str {
        match self {
            OutcomeKind::Churned => "churned",
            OutcomeKind::Downgraded => "downgraded",
            OutcomeKind::Renewed => "renewed",
            OutcomeKind::Expanded => "expanded",
        }
    }

    pub fn from_name(s: &str) -> Option<OutcomeKind> {
        OutcomeKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Churned or downgraded: what risk alerts are meant to foresee.
    pub fn is_bad(self) -> bool {
        matches!(self, OutcomeKind::Churned | OutcomeKind::Downgraded)
    }
}

/// One label: an account's outcome at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub account_id: String,
    pub kind: OutcomeKind,
    pub ts_ms: i64,
}

impl Outcome {
    /// The input contract, one line: `{"account_id":…,"outcome":…,"ts":"…Z"}`.
    pub fn to_json(&self) -> String {
        serde_json::json!({"account_id": self.account_id, "outcome": self.kind.name(), "ts": format_ms(self.ts_ms)}).to_string()
    }
}

/// Why an outcome line was refused. The codes are the `reason` of `rejects.jsonl`: an event's
/// reason where the line fails as an event would (`not_json`, `missing_field`, `too_large`...),
/// and two of the labels' own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OutcomeRejectReason {
    /// As an event's of the same code.
    Event(RejectReason),
    /// The same account, outcome and time as an earlier line (it would be counted twice).
    Duplicate,
    /// The same account and time as an earlier line, with another outcome (both cannot be true).
    Conflict,
}

impl OutcomeRejectReason {
    pub fn code(self) -> &'static str {
        match self {
            OutcomeRejectReason::Event(r) => r.code(),
            OutcomeRejectReason::Duplicate => "duplicate",
            OutcomeRejectReason::Conflict => "conflict",
        }
    }
}

impl From<RejectReason> for OutcomeRejectReason {
    fn from(r: RejectReason) -> Self {
        OutcomeRejectReason::Event(r)
    }
}

/// A refused line: the reason class and a detail naming the field (never more than 64 bytes of
/// the input's own text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeReject {
    pub reason: OutcomeRejectReason,
    pub detail: String,
}

fn reject(reason: impl Into<OutcomeRejectReason>, detail: impl Into<String>) -> OutcomeReject {
    OutcomeReject { reason: reason.into(), detail: detail.into() }
}

fn truncate(s: &str, n: usize) -> &str {
    let mut end = s.len().min(n);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A required field, present and not null.
fn field<'v>(o: &'v serde_json::Map<String, Value>, name: &str) -> Result<&'v Value, OutcomeReject> {
    match o.get(name) {
        None | Some(Value::Null) => Err(reject(RejectReason::MissingField, format!("`{name}` is required"))),
        Some(v) => Ok(v),
    }
}

fn string<'v>(o: &'v serde_json::Map<String, Value>, name: &str) -> Result<&'v str, OutcomeReject> {
    let v = field(o, name)?;
    v.as_str()
        .ok_or_else(|| reject(RejectReason::BadType, format!("`{name}` must be a string, not {}", json_type(v))))
}

/// `ts`: RFC 3339, `YYYY-MM-DD` (midnight UTC) or epoch milliseconds, within 1970..9999.
fn timestamp(o: &serde_json::Map<String, Value>) -> Result<i64, OutcomeReject> {
    let v = field(o, "ts")?;
    let ms = match v {
        Value::String(s) => parse_rfc3339_ms(s)
            .or_else(|| parse_date_day(s).map(|d| i64::from(d) * DAY_MS))
            .ok_or_else(|| {
                reject(
                    RejectReason::BadValue,
                    format!("`ts` \"{}\" is neither RFC 3339, YYYY-MM-DD nor epoch milliseconds", truncate(s, 64)),
                )
            })?,
        Value::Number(n) => n.as_i64().ok_or_else(|| {
            reject(RejectReason::BadValue, format!("`ts` {} is not a whole number of epoch milliseconds", truncate(&n.to_string(), 64)))
        })?,
        other => {
            return Err(reject(
                RejectReason::BadType,
                format!("`ts` must be a string or epoch milliseconds, not {}", json_type(other)),
            ))
        }
    };
    if !ts_in_range(ms) {
        return Err(reject(RejectReason::BadValue, format!("`ts` {ms} is outside 1970-01-01..9999-12-31")));
    }
    Ok(ms)
}

/// Decodes and validates one outcome line. Unknown fields are ignored (forward compatible).
pub fn decode(bytes: &[u8], max_id_len: usize) -> Result<Outcome, OutcomeReject> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        reject(RejectReason::NotJson, format!("not UTF-8: invalid byte at offset {}", e.valid_up_to()))
    })?;
    let value: Value = serde_json::from_str(text).map_err(|e| reject(RejectReason::NotJson, e.to_string()))?;
    let Value::Object(o) = &value else {
        return Err(reject(RejectReason::NotObject, format!("a line must be a JSON object, not {}", json_type(&value))));
    };
    let account_id = string(o, "account_id")?;
    if account_id.is_empty() {
        return Err(reject(RejectReason::BadValue, "`account_id` is empty"));
    }
    if account_id.len() > max_id_len {
        return Err(reject(
            RejectReason::IdTooLong,
            format!("`account_id` is {} bytes, longer than {max_id_len} (events.max_id_len)", account_id.len()),
        ));
    }
    let name = string(o, "outcome")?;
    let kind = OutcomeKind::from_name(name).ok_or_else(|| {
        reject(
            RejectReason::BadValue,
            format!("`outcome` \"{}\" is not one of churned, downgraded, renewed, expanded", truncate(name, 64)),
        )
    })?;
    let ts_ms = timestamp(o)?;
    Ok(Outcome { account_id: account_id.to_string(), kind, ts_ms })
}

/// How the outcome files were read.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReadStats {
    pub files: Vec<String>,
    pub lines: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub rejects_by_reason: BTreeMap<String, u64>,
}

/// The accepted outcomes of one or more files, in file order, without duplicates or
/// contradictions (the first line for an account and instant wins).
#[derive(Debug, Default)]
pub struct OutcomeSet {
    pub outcomes: Vec<Outcome>,
    pub stats: ReadStats,
    /// (account, instant) → (outcome, where it was read), to refuse repeats.
    seen: FxHashMap<(String, i64), (OutcomeKind, String)>,
}

impl OutcomeSet {
    /// Adds one line (`at` says where it was read, e.g. `outcomes.jsonl line 7`).
    pub fn add(&mut self, bytes: &[u8], max_id_len: usize, at: &str) -> Result<(), OutcomeReject> {
        let r = self.accept(bytes, max_id_len, at);
        self.tally(&r);
        r
    }

    /// Counts a line longer than `max` bytes (`len`; the reader did not hold it) as refused, with
    /// the words of an event record's `too_large`.
    pub fn refuse_too_large(&mut self, len: u64, max: usize) -> OutcomeReject {
        let r = reject(RejectReason::TooLarge, crate::event::too_large(len, max).detail);
        self.stats.lines += 1;
        self.count_reject(&r);
        r
    }

    /// Counts a line's verdict.
    fn tally(&mut self, r: &Result<(), OutcomeReject>) {
        self.stats.lines += 1;
        match r {
            Ok(()) => self.stats.accepted += 1,
            Err(e) => self.count_reject(e),
        }
    }

    fn count_reject(&mut self, e: &OutcomeReject) {
        self.stats.rejected += 1;
        *self.stats.rejects_by_reason.entry(e.reason.code().to_string()).or_default() += 1;
    }

    fn accept(&mut self, bytes: &[u8], max_id_len: usize, at: &str) -> Result<(), OutcomeReject> {
        let o = decode(bytes, max_id_len)?;
        let key = (o.account_id.clone(), o.ts_ms);
        if let Some((kind, first)) = self.seen.get(&key) {
            return Err(if *kind == o.kind {
                reject(OutcomeRejectReason::Duplicate, format!("the same outcome as {first}"))
            } else {
                reject(
                    OutcomeRejectReason::Conflict,
                    format!("{first} says the account {} at the same time", kind.name()),
                )
            });
        }
        self.seen.insert(key, (o.kind, at.to_string()));
        self.outcomes.push(o);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(line: &str) -> &'static str {
        decode(line.as_bytes(), 16).unwrap_err().reason.code()
    }

    #[test]
    fn accepts_the_three_time_forms_and_ignores_unknown_fields() {
        let a = decode(br#"{"account_id":"acme","outcome":"churned","ts":"2026-10-31T00:00:00Z","note":"x"}"#, 16).unwrap();
        assert_eq!(a, Outcome { account_id: "acme".into(), kind: OutcomeKind::Churned, ts_ms: 1_793_404_800_000 });
        let b = decode(br#"{"account_id":"acme","outcome":"churned","ts":"2026-10-31"}"#, 16).unwrap();
        let c = decode(br#"{"account_id":"acme","outcome":"churned","ts":1793404800000}"#, 16).unwrap();
        assert_eq!((b.ts_ms, c.ts_ms), (a.ts_ms, a.ts_ms));
        assert_eq!(a.to_json(), r#"{"account_id":"acme","outcome":"churned","ts":"2026-10-31T00:00:00.000Z"}"#);
    }

    #[test]
    fn every_bad_line_class_has_its_reason() {
        assert_eq!(code("not json"), "not_json");
        assert_eq!(code(""), "not_json");
        assert_eq!(decode(b"{\"account_id\":\"a\xff\"}", 16).unwrap_err().reason.code(), "not_json");
        assert_eq!(code("[1]"), "not_object");
        assert_eq!(code(r#"{"outcome":"churned","ts":1}"#), "missing_field");
        assert_eq!(code(r#"{"account_id":null,"outcome":"churned","ts":1}"#), "missing_field");
        assert_eq!(code(r#"{"account_id":"a","ts":1}"#), "missing_field");
        assert_eq!(code(r#"{"account_id":"a","outcome":"churned"}"#), "missing_field");
        assert_eq!(code(r#"{"account_id":7,"outcome":"churned","ts":1}"#), "bad_type");
        assert_eq!(code(r#"{"account_id":"a","outcome":["churned"],"ts":1}"#), "bad_type");
        assert_eq!(code(r#"{"account_id":"a","outcome":"churned","ts":true}"#), "bad_type");
        assert_eq!(code(r#"{"account_id":"","outcome":"churned","ts":1}"#), "bad_value");
        assert_eq!(code(r#"{"account_id":"a","outcome":"cancelled","ts":1}"#), "bad_value");
        assert_eq!(code(r#"{"account_id":"a","outcome":"churned","ts":"last week"}"#), "bad_value");
        assert_eq!(code(r#"{"account_id":"a","outcome":"churned","ts":-5}"#), "bad_value");
        assert_eq!(code(r#"{"account_id":"a","outcome":"churned","ts":1.5}"#), "bad_value");
        assert_eq!(code(r#"{"account_id":"a","outcome":"churned","ts":"2026-02-30"}"#), "bad_value");
        assert_eq!(code(r#"{"account_id":"aaaaaaaaaaaaaaaaa","outcome":"churned","ts":1}"#), "id_too_long");
        let long = format!(r#"{{"account_id":"a","outcome":"{}","ts":1}}"#, "x".repeat(10_000));
        assert!(decode(long.as_bytes(), 16).unwrap_err().detail.len() < 200, "details never echo unbounded input");
    }

    #[test]
    fn repeats_are_refused_as_duplicate_or_conflict_and_the_first_wins() {
        let mut set = OutcomeSet::default();
        let l = |o: &str, ts: &str| format!(r#"{{"account_id":"a","outcome":"{o}","ts":"{ts}"}}"#);
        set.add(l("renewed", "2026-01-01").as_bytes(), 16, "f line 1").unwrap();
        let dup = set.add(l("renewed", "2026-01-01T00:00:00Z").as_bytes(), 16, "f line 2").unwrap_err();
        assert_eq!((dup.reason.code(), dup.detail.as_str()), ("duplicate", "the same outcome as f line 1"));
        let c = set.add(l("churned", "2026-01-01").as_bytes(), 16, "f line 3").unwrap_err();
        assert_eq!((c.reason.code(), c.detail.as_str()), ("conflict", "f line 1 says the account renewed at the same time"));
        set.add(l("churned", "2026-06-01").as_bytes(), 16, "f line 4").unwrap();
        set.add(b"nope", 16, "f line 5").unwrap_err();
        assert_eq!(set.outcomes.len(), 2);
        assert_eq!((set.stats.lines, set.stats.accepted, set.stats.rejected), (5, 2, 3));
        let reasons: Vec<(&str, u64)> = set.stats.rejects_by_reason.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(reasons, vec![("conflict", 1), ("duplicate", 1), ("not_json", 1)]);
    }
}
