//! Fast path: a borrowed, typed parse (`serde` derive over wrapper types that borrow strings from
//! the input); before it, for usage records (most of the input), a flat reading without serde of
//! the common shape (a flat object of plain strings, nulls and integers), which gives way to serde
//! for anything else. Slow path, only for records the fast path refuses: a generic parse that
//! finds which field is wrong, so the rejection names it.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::timestamp::{parse_date_day, parse_rfc3339_ms, ts_in_range};
use super::{
    AccountEvent, AccountStatus, ActionEvent, ActionKind, Event, EventKind, Priority, Reject, RejectReason, SupportEvent, TicketKind, UsageEvent,
};

/// Limits applied while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    pub max_id_len: usize,
    /// Longest accepted account `name`, in bytes.
    pub max_name_len: usize,
    /// Events with `ts > now_ms + max_future_ms` are rejected.
    pub max_future_ms: i64,
    /// The wall clock (or, in a back-test, the clock the user chose).
    pub now_ms: i64,
    /// Longest accepted record (a Kafka record's payload, a line of a replayed file), in bytes.
    pub max_record_bytes: usize,
}

/// The rejection of a record of `len` bytes, longer than `max` (`too_large`): the same words for
/// a Kafka record and for a replayed line (which the reader cuts, see `cmd::lines`).
pub fn too_large(len: u64, max: usize) -> Reject {
    Reject::new(RejectReason::TooLarge, format!("the record is {len} bytes, longer than events.max_record_bytes ({max})"))
}

/// Decodes and validates one record of `kind`. `key` is the message key, if any: when present it
/// must equal the event's `account_id`.
pub fn decode<'a>(
    kind: EventKind,
    bytes: &'a [u8],
    key: Option<&[u8]>,
    limits: &DecodeLimits,
) -> Result<Event<'a>, Reject> {
    decode_reading(kind, bytes, key, limits, true)
}

/// [`decode`] without the flat reading of usage records: serde for every record. What `decode`
/// returns must equal it for every input (the decoder's fuzz target checks).
#[doc(hidden)]
pub fn decode_with_serde_only<'a>(kind: EventKind, bytes: &'a [u8], limits: &DecodeLimits) -> Result<Event<'a>, Reject> {
    decode_reading(kind, bytes, None, limits, false)
}

/// [`decode`], the flat reading of usage records tried first if `flat`.
fn decode_reading<'a>(
    kind: EventKind,
    bytes: &'a [u8],
    key: Option<&[u8]>,
    limits: &DecodeLimits,
    flat: bool,
) -> Result<Event<'a>, Reject> {
    if bytes.len() > limits.max_record_bytes {
        return Err(too_large(bytes.len() as u64, limits.max_record_bytes));
    }
    let mut w = UsageWire::default();
    // A record the flat reading takes is UTF-8 whole (it checks each string, and takes nothing
    // but ASCII between them), so it needs no check of the whole line.
    let event = if flat && kind == EventKind::Usage && flat_usage(bytes, &mut w) {
        validate_usage(w, limits)?
    } else {
        decode_typed(kind, bytes, limits)?
    };
    if let Some(key) = key {
        if key != event.account_id().as_bytes() {
            return Err(Reject::new(
                RejectReason::KeyMismatch,
                format!(
                    "message key `{}` is not account_id `{}`",
                    String::from_utf8_lossy(&key[..key.len().min(64)]),
                    event.account_id()
                ),
            ));
        }
    }
    Ok(event)
}

/// The line checked for UTF-8 whole, then serde's typed parse of `kind`, then the field checks.
fn decode_typed<'a>(kind: EventKind, bytes: &'a [u8], limits: &DecodeLimits) -> Result<Event<'a>, Reject> {
    // The whole record must be UTF-8, ignored fields included (serde skips over those unchecked).
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Reject::new(RejectReason::NotJson, format!("not UTF-8: invalid byte at offset {}", e.valid_up_to()))
    })?;
    match kind {
        EventKind::Usage => match serde_json::from_str::<UsageWire<'a>>(text) {
            Ok(w) => validate_usage(w, limits),
            Err(e) => Err(diagnose(kind, bytes, &e)),
        },
        EventKind::Support => match serde_json::from_str::<SupportWire<'a>>(text) {
            Ok(w) => validate_support(w, limits),
            Err(e) => Err(diagnose(kind, bytes, &e)),
        },
        EventKind::Account => match serde_json::from_str::<AccountWire<'a>>(text) {
            Ok(w) => validate_account(w, limits),
            Err(e) => Err(diagnose(kind, bytes, &e)),
        },
        EventKind::Action => match serde_json::from_str::<ActionWire<'a>>(text) {
            Ok(w) => validate_action(w, limits),
            Err(e) => Err(diagnose(kind, bytes, &e)),
        },
    }
}

/// A JSON value as the flat reading takes it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Flat<'a> {
    /// A string with no escape (its bytes are its value).
    Str(&'a str),
    Null,
    /// A non-negative integer of at most 18 digits.
    Int(i64),
}

/// JSON's whitespace from `i` on.
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The string starting at `b[i] == '"'` and the index after its closing quote; `None` for one
/// with an escape or a control character (serde reads those), for one that is not UTF-8 (the
/// check of the whole record rejects it), or for anything else.
fn flat_str(b: &[u8], i: usize) -> Option<(&str, usize)> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let start = i + 1;
    let (len, ascii) = str_end(&b[start..])?;
    let end = start + len;
    if b[end] != b'"' {
        return None;
    }
    let s = if ascii {
        debug_assert!(b[start..end].is_ascii());
        // SAFETY: every byte of it is ASCII (`str_end` saw no high bit), and ASCII is UTF-8.
        unsafe { std::str::from_utf8_unchecked(&b[start..end]) }
    } else {
        std::str::from_utf8(&b[start..end]).ok()?
    };
    Some((s, end + 1))
}

/// Where the first `"`, `\\` or control byte (< 0x20) of `b` is, eight bytes at a time, and
/// whether every byte before it is ASCII.
fn str_end(b: &[u8]) -> Option<(usize, bool)> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte that is zero, or below `n`; exact for the lowest such byte (the
    // only one read), where no borrow from a lower byte can reach. A byte of 0x80 or more is
    // never one: its own high bit is set.
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH;
    let mut at = 0;
    // The high bits of the bytes before the end.
    let mut high = 0;
    while let Some(chunk) = b.get(at..at + 8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let hits = below(w ^ (ONES * u64::from(b'"')), 1) | below(w ^ (ONES * u64::from(b'\\')), 1) | below(w, 0x20);
        if hits != 0 {
            let bit = hits.trailing_zeros();
            // The bytes below the hit: bits 0..8k of the word for the hit at byte k.
            high |= w & HIGH & ((1u64 << (bit & !7)) - 1);
            return Some((at + bit as usize / 8, high == 0));
        }
        high |= w & HIGH;
        at += 8;
    }
    let p = b[at..].iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
    Some((at + p, high == 0 && b[at..at + p].is_ascii()))
}

/// The value at `b[i]` and the index after it, if it is one the flat reading takes.
fn flat_value(b: &[u8], i: usize) -> Option<(Flat<'_>, usize)> {
    match *b.get(i)? {
        b'"' => flat_str(b, i).map(|(s, j)| (Flat::Str(s), j)),
        b'n' => (b.get(i..i + 4) == Some(b"null")).then_some((Flat::Null, i + 4)),
        b'0'..=b'9' => {
            let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            // A leading zero, a fraction, an exponent or a long number: serde's to read.
            let leading_zero = b[i] == b'0' && digits > 1;
            if leading_zero || digits > 18 || matches!(b.get(i + digits), Some(b'.' | b'e' | b'E')) {
                return None;
            }
            // At most 18 digits: below i64::MAX.
            let n = b[i..i + digits].iter().fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'));
            Some((Flat::Int(n), i + digits))
        }
        _ => None,
    }
}

/// A usage record of the common shape, read without serde: one flat object whose values are
/// strings without escapes, `null`s and non-negative integers. Anything else (nesting, escapes,
/// a repeated field, a fraction…) is `None`, and serde reads it, so the result and every
/// rejection are the same (tested against serde on generated records, and fuzzed). Fills `w`
/// (given empty) and says whether it could; `w` is then what serde would have made.
fn flat_usage<'a>(b: &'a [u8], w: &mut UsageWire<'a>) -> bool {
    flat_usage_into(b, w).is_some()
}

fn flat_usage_into<'a>(b: &'a [u8], w: &mut UsageWire<'a>) -> Option<()> {
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    let mut seen = 0u8;
    loop {
        let (key, j) = flat_str(b, i)?;
        i = skip_ws(b, j);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let (value, j) = flat_value(b, skip_ws(b, i + 1))?;
        i = skip_ws(b, j);
        let field = match key {
            "account_id" => 0,
            "user_id" => 1,
            "event" => 2,
            "feature" => 3,
            "event_id" => 4,
            "ts" => 5,
            _ => u8::MAX,
        };
        if field != u8::MAX {
            if seen & (1 << field) != 0 {
                return None;
            }
            seen |= 1 << field;
        }
        match (field, value) {
            (u8::MAX, _) | (_, Flat::Null) => {}
            (5, Flat::Str(s)) => w.ts = Some(TsWire::Text(Cow::Borrowed(s))),
            (5, Flat::Int(n)) => w.ts = Some(TsWire::Ms(n)),
            (_, Flat::Int(_)) => return None,
            (f, Flat::Str(s)) => {
                let slot = match f {
                    0 => &mut w.account_id,
                    1 => &mut w.user_id,
                    2 => &mut w.event,
                    3 => &mut w.feature,
                    _ => &mut w.event_id,
                };
                *slot = Some(Str(Cow::Borrowed(s)));
            }
        }
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => break,
            _ => return None,
        }
    }
    (skip_ws(b, i + 1) == b.len()).then_some(())
}

/// A string borrowed from the input when it holds no escapes.
#[derive(Debug, PartialEq)]
struct Str<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// `ts`: epoch milliseconds or an RFC 3339 string.
#[derive(Debug, PartialEq)]
enum TsWire<'a> {
    Ms(i64),
    Text(Cow<'a, str>),
}

impl<'de: 'a, 'a> Deserialize<'de> for TsWire<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TsWire<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("epoch milliseconds or an RFC 3339 string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(TsWire::Ms(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                i64::try_from(v).map(TsWire::Ms).map_err(|_| E::custom("ts out of range"))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(TsWire::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(TsWire::Text(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize, Debug, Default, PartialEq)]
struct UsageWire<'a> {
    #[serde(borrow, default)]
    account_id: Option<Str<'a>>,
    #[serde(borrow, default)]
    user_id: Option<Str<'a>>,
    #[serde(borrow, default)]
    event: Option<Str<'a>>,
    #[serde(borrow, default)]
    feature: Option<Str<'a>>,
    #[serde(borrow, default)]
    ts: Option<TsWire<'a>>,
    #[serde(borrow, default)]
    event_id: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct SupportWire<'a> {
    #[serde(borrow, default)]
    account_id: Option<Str<'a>>,
    #[serde(borrow, default)]
    ticket_id: Option<Str<'a>>,
    #[serde(borrow, default)]
    kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    priority: Option<Str<'a>>,
    #[serde(default)]
    csat: Option<u64>,
    #[serde(default)]
    score: Option<u64>,
    #[serde(borrow, default)]
    ts: Option<TsWire<'a>>,
    #[serde(borrow, default)]
    event_id: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct AccountWire<'a> {
    #[serde(borrow, default)]
    account_id: Option<Str<'a>>,
    #[serde(borrow, default)]
    name: Option<Str<'a>>,
    #[serde(default)]
    seats: Option<u32>,
    #[serde(borrow, default)]
    segment: Option<Str<'a>>,
    #[serde(borrow, default)]
    owner: Option<Str<'a>>,
    #[serde(default)]
    arr: Option<f64>,
    #[serde(borrow, default)]
    renewal_date: Option<Str<'a>>,
    #[serde(borrow, default)]
    start_date: Option<Str<'a>>,
    #[serde(borrow, default)]
    status: Option<Str<'a>>,
    #[serde(borrow, default)]
    end_date: Option<Str<'a>>,
    #[serde(borrow, default)]
    ts: Option<TsWire<'a>>,
}

#[derive(Deserialize)]
struct ActionWire<'a> {
    #[serde(borrow, default)]
    account_id: Option<Str<'a>>,
    #[serde(borrow, default)]
    action: Option<Str<'a>>,
    #[serde(borrow, default)]
    by: Option<Str<'a>>,
    #[serde(borrow, default)]
    note: Option<Str<'a>>,
    #[serde(borrow, default)]
    until: Option<Str<'a>>,
    #[serde(borrow, default)]
    owner: Option<Str<'a>>,
    #[serde(borrow, default)]
    band: Option<Str<'a>>,
    #[serde(borrow, default)]
    ts: Option<TsWire<'a>>,
    #[serde(borrow, default)]
    event_id: Option<Str<'a>>,
}

/// Longest note an action may carry (an override's reason, a resolution's note), in bytes.
pub const MAX_NOTE_BYTES: usize = 1000;

fn missing(field: &str) -> Reject {
    Reject::new(RejectReason::MissingField, format!("`{field}` is required"))
}

/// A required id: present, not empty, not too long.
fn id<'a>(field: &str, v: Option<Str<'a>>, l: &DecodeLimits) -> Result<Cow<'a, str>, Reject> {
    let s = v.ok_or_else(|| missing(field))?.0;
    check_id(field, s, l)
}

fn check_id<'a>(field: &str, s: Cow<'a, str>, l: &DecodeLimits) -> Result<Cow<'a, str>, Reject> {
    if s.is_empty() {
        return Err(Reject::new(RejectReason::BadValue, format!("`{field}` is empty")));
    }
    if s.len() > l.max_id_len {
        return Err(Reject::new(
            RejectReason::IdTooLong,
            format!("`{field}` is {} bytes, longer than {}", s.len(), l.max_id_len),
        ));
    }
    Ok(s)
}

fn opt_id<'a>(field: &str, v: Option<Str<'a>>, l: &DecodeLimits) -> Result<Option<Cow<'a, str>>, Reject> {
    v.map(|s| check_id(field, s.0, l)).transpose()
}

fn ts(v: Option<TsWire<'_>>, l: &DecodeLimits) -> Result<i64, Reject> {
    let ms = match v.ok_or_else(|| missing("ts"))? {
        TsWire::Ms(ms) => ms,
        TsWire::Text(s) => parse_rfc3339_ms(&s).ok_or_else(|| {
            Reject::new(
                RejectReason::BadValue,
                format!("`ts` \"{}\" is neither RFC 3339 nor epoch milliseconds", truncate(&s, 64)),
            )
        })?,
    };
    if !ts_in_range(ms) {
        return Err(Reject::new(
            RejectReason::BadValue,
            format!("`ts` {ms} is outside 1970-01-01T00:00:00Z..9999-12-31T23:59:59.999Z (epoch ms 0..=253402300799999)"),
        ));
    }
    if ms > l.now_ms.saturating_add(l.max_future_ms) {
        return Err(Reject::new(
            RejectReason::TsInFuture,
            format!("`ts` {} is more than {} s ahead of the clock", ms, l.max_future_ms / 1000),
        ));
    }
    Ok(ms)
}

fn truncate(s: &str, n: usize) -> &str {
    let mut end = s.len().min(n);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn validate_usage<'a>(w: UsageWire<'a>, l: &DecodeLimits) -> Result<Event<'a>, Reject> {
    let account_id = id("account_id", w.account_id, l)?;
    let user_id = id("user_id", w.user_id, l)?;
    let event = id("event", w.event, l)?;
    let feature = opt_id("feature", w.feature, l)?;
    let event_id = opt_id("event_id", w.event_id, l)?;
    let ts_ms = ts(w.ts, l)?;
    Ok(Event::Usage(UsageEvent { account_id, user_id, event, feature, ts_ms, event_id }))
}

fn validate_support<'a>(w: SupportWire<'a>, l: &DecodeLimits) -> Result<Event<'a>, Reject> {
    let account_id = id("account_id", w.account_id, l)?;
    let kind_s = w.kind.ok_or_else(|| missing("kind"))?.0;
    let kind = match kind_s.as_ref() {
        "opened" => TicketKind::Opened,
        "updated" => TicketKind::Updated,
        "closed" => TicketKind::Closed,
        "reopened" => TicketKind::Reopened,
        "csat" => TicketKind::Csat,
        "nps" => TicketKind::Nps,
        other => {
            return Err(Reject::new(
                RejectReason::BadValue,
                format!("`kind` {:?} is not one of opened, updated, closed, reopened, csat, nps", truncate(other, 64)),
            ))
        }
    };
    // An NPS answer is about the account, not a ticket: `ticket_id` is optional there.
    let ticket_id = match (kind, w.ticket_id) {
        (TicketKind::Nps, None) => Cow::Borrowed(""),
        (_, t) => id("ticket_id", t, l)?,
    };
    let priority = match w.priority.as_ref().map(|p| p.0.as_ref()) {
        None => None,
        Some("low") => Some(Priority::Low),
        Some("normal") => Some(Priority::Normal),
        Some("high") => Some(Priority::High),
        Some("urgent") => Some(Priority::Urgent),
        Some(other) => {
            return Err(Reject::new(
                RejectReason::BadValue,
                format!("`priority` \"{}\" is not one of low, normal, high, urgent", truncate(other, 64)),
            ))
        }
    };
    let csat = match (kind, w.csat) {
        (TicketKind::Csat, None) => return Err(missing("csat")),
        (TicketKind::Csat, Some(c @ 1..=5)) => Some(c as u8),
        (TicketKind::Csat, Some(c)) => {
            return Err(Reject::new(RejectReason::BadValue, format!("`csat` {c} is not in 1..=5")))
        }
        _ => None,
    };
    let nps = match (kind, w.score) {
        (TicketKind::Nps, None) => return Err(missing("score")),
        (TicketKind::Nps, Some(c @ 0..=10)) => Some(c as u8),
        (TicketKind::Nps, Some(c)) => {
            return Err(Reject::new(RejectReason::BadValue, format!("`score` {c} is not in 0..=10")))
        }
        _ => None,
    };
    let event_id = opt_id("event_id", w.event_id, l)?;
    let ts_ms = ts(w.ts, l)?;
    Ok(Event::Support(SupportEvent { account_id, ticket_id, kind, priority, csat, nps, ts_ms, event_id }))
}

fn validate_account<'a>(w: AccountWire<'a>, l: &DecodeLimits) -> Result<Event<'a>, Reject> {
    let account_id = id("account_id", w.account_id, l)?;
    let name = text("name", w.name, l.max_name_len, "events.max_name_len")?;
    let segment = opt_id("segment", w.segment, l)?;
    let owner = text("owner", w.owner, l.max_name_len, "events.max_name_len")?;
    if let Some(arr) = w.arr {
        if !(arr >= 0.0 && arr.is_finite()) {
            return Err(Reject::new(RejectReason::BadValue, format!("`arr` {arr} must be a number ≥ 0")));
        }
    }
    let date = |field: &str, v: Option<Str<'_>>| -> Result<Option<i32>, Reject> {
        v.map(|s| {
            parse_date_day(&s.0).ok_or_else(|| {
                Reject::new(
                    RejectReason::BadValue,
                    format!("`{field}` \"{}\" is not a YYYY-MM-DD date", truncate(&s.0, 64)),
                )
            })
        })
        .transpose()
    };
    let renewal_day = date("renewal_date", w.renewal_date)?;
    let start_day = date("start_date", w.start_date)?;
    let status = match &w.status {
        None => AccountStatus::Active,
        Some(s) => AccountStatus::parse(&s.0).ok_or_else(|| {
            Reject::new(
                RejectReason::BadValue,
                format!("`status` \"{}\" is not active, churned or cancelled", truncate(&s.0, 64)),
            )
        })?,
    };
    let end_day = date("end_date", w.end_date)?;
    let ts_ms = ts(w.ts, l)?;
    Ok(Event::Account(AccountEvent {
        account_id,
        name,
        seats: w.seats,
        segment,
        owner,
        arr: w.arr,
        renewal_day,
        start_day,
        status,
        end_day,
        ts_ms,
    }))
}

/// An optional text (a name, an owner, a note) of at most `max` bytes, the bound `what` says.
fn text<'a>(field: &str, v: Option<Str<'a>>, max: usize, what: &str) -> Result<Option<Cow<'a, str>>, Reject> {
    let v = v.map(|s| s.0);
    if let Some(n) = &v {
        if n.len() > max {
            return Err(Reject::new(RejectReason::BadValue, format!("`{field}` is {} bytes, longer than {what} ({max})", n.len())));
        }
    }
    Ok(v)
}

fn validate_action<'a>(w: ActionWire<'a>, l: &DecodeLimits) -> Result<Event<'a>, Reject> {
    let account_id = id("account_id", w.account_id, l)?;
    let asked = w.action.ok_or_else(|| missing("action"))?.0;
    let action = ActionKind::parse(&asked).ok_or_else(|| {
        let names: Vec<&str> = ActionKind::ALL.iter().map(|a| a.name()).collect();
        Reject::new(RejectReason::BadValue, format!("`action` \"{}\" is not one of {}", truncate(&asked, 64), names.join(", ")))
    })?;
    let by = text("by", w.by, l.max_name_len, "events.max_name_len")?;
    let owner = text("owner", w.owner, l.max_name_len, "events.max_name_len")?;
    let note = text("note", w.note, MAX_NOTE_BYTES, "a note's limit")?.filter(|n| !n.trim().is_empty());
    let until_day = w
        .until
        .map(|s| {
            parse_date_day(&s.0).ok_or_else(|| {
                Reject::new(RejectReason::BadValue, format!("`until` \"{}\" is not a YYYY-MM-DD date", truncate(&s.0, 64)))
            })
        })
        .transpose()?;
    let band = w.band.map(|s| s.0);
    if let Some(b) = &band {
        if !["green", "yellow", "red"].contains(&b.as_ref()) {
            return Err(Reject::new(RejectReason::BadValue, format!("`band` \"{}\" is not green, yellow or red", truncate(b, 64))));
        }
    }
    // What each action needs.
    let needs: &[(&str, bool)] = match action {
        ActionKind::Snooze => &[("until", until_day.is_some())],
        ActionKind::Resolve => &[("note", note.is_some())],
        ActionKind::Assign => &[("owner", owner.as_ref().is_some_and(|o| !o.is_empty()))],
        ActionKind::Override => &[("band", band.is_some()), ("note", note.is_some()), ("until", until_day.is_some())],
        ActionKind::Acknowledge | ActionKind::ClearOverride => &[],
    };
    if let Some((field, _)) = needs.iter().find(|(_, ok)| !ok) {
        return Err(Reject::new(RejectReason::MissingField, format!("`{field}` is required for `{}`", action.name())));
    }
    let event_id = opt_id("event_id", w.event_id, l)?;
    let ts_ms = ts(w.ts, l)?;
    Ok(Event::Action(ActionEvent { account_id, action, by, note, until_day, owner, band, ts_ms, event_id }))
}

/// What a field must hold, for the slow-path diagnosis.
#[derive(Clone, Copy)]
enum Expect {
    Str,
    Ts,
    /// A non-negative integer up to this maximum.
    UInt(u64),
    Number,
}

fn schema(kind: EventKind) -> &'static [(&'static str, Expect)] {
    use Expect::*;
    match kind {
        EventKind::Usage => &[
            ("account_id", Str),
            ("user_id", Str),
            ("event", Str),
            ("feature", Str),
            ("ts", Ts),
            ("event_id", Str),
        ],
        EventKind::Support => &[
            ("account_id", Str),
            ("ticket_id", Str),
            ("kind", Str),
            ("priority", Str),
            ("csat", UInt(u64::MAX)),
            ("score", UInt(u64::MAX)),
            ("ts", Ts),
            ("event_id", Str),
        ],
        EventKind::Account => &[
            ("account_id", Str),
            ("name", Str),
            ("seats", UInt(u32::MAX as u64)),
            ("segment", Str),
            ("owner", Str),
            ("arr", Number),
            ("renewal_date", Str),
            ("start_date", Str),
            ("status", Str),
            ("end_date", Str),
            ("ts", Ts),
        ],
        EventKind::Action => &[
            ("account_id", Str),
            ("action", Str),
            ("by", Str),
            ("note", Str),
            ("until", Str),
            ("owner", Str),
            ("band", Str),
            ("ts", Ts),
            ("event_id", Str),
        ],
    }
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(n) if n.is_f64() => "a fractional number",
        serde_json::Value::Number(_) => "an integer",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Finds out why the fast path refused `bytes`.
fn diagnose(kind: EventKind, bytes: &[u8], fast_err: &serde_json::Error) -> Reject {
    let value: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return Reject::new(RejectReason::NotJson, e.to_string()),
    };
    let serde_json::Value::Object(map) = &value else {
        return Reject::new(RejectReason::NotObject, format!("the record is {}, not an object", json_type(&value)));
    };
    for (field, expect) in schema(kind) {
        let Some(v) = map.get(*field) else { continue };
        let bad = |want: &str| {
            Reject::new(RejectReason::BadType, format!("`{field}` is {}, expected {want}", json_type(v)))
        };
        match (expect, v) {
            (_, serde_json::Value::Null) => {}
            (Expect::Str, serde_json::Value::String(_)) => {}
            (Expect::Str, _) => return bad("a string"),
            (Expect::Ts, serde_json::Value::String(_)) => {}
            (Expect::Ts, serde_json::Value::Number(n)) if n.is_i64() => {}
            (Expect::Ts, serde_json::Value::Number(n)) if n.is_u64() => {
                return Reject::new(RejectReason::BadValue, format!("`ts` {n} is out of range"))
            }
            (Expect::Ts, _) => return bad("epoch milliseconds (integer) or an RFC 3339 string"),
            (Expect::UInt(max), serde_json::Value::Number(n)) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) if u <= *max => {}
                (Some(u), _) => return Reject::new(RejectReason::BadValue, format!("`{field}` {u} is too large")),
                (None, Some(i)) => {
                    return Reject::new(RejectReason::BadValue, format!("`{field}` {i} must not be negative"))
                }
                (None, None) => return bad("an integer"),
            },
            (Expect::UInt(_), _) => return bad("an integer"),
            (Expect::Number, serde_json::Value::Number(_)) => {}
            (Expect::Number, _) => return bad("a number"),
        }
    }
    // Valid JSON object with well-typed fields that serde still refused (e.g. a duplicate key).
    Reject::new(RejectReason::BadValue, fast_err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn flat_usage(text: &str) -> Option<UsageWire<'_>> {
        let mut w = UsageWire::default();
        super::flat_usage(text.as_bytes(), &mut w).then_some(w)
    }

    const NOW: i64 = 1_795_300_000_000; // 2026-11-21

    fn limits() -> DecodeLimits {
        DecodeLimits { max_id_len: 16, max_name_len: 32, max_future_ms: 3_600_000, now_ms: NOW, max_record_bytes: 1 << 20 }
    }

    fn dec(kind: EventKind, s: &str) -> Result<Event<'_>, Reject> {
        decode(kind, s.as_bytes(), None, &limits())
    }

    fn reason(kind: EventKind, s: &str) -> (RejectReason, String) {
        let r = dec(kind, s).unwrap_err();
        (r.reason, r.detail)
    }

    #[test]
    fn decodes_the_documented_examples() {
        let u = dec(
            EventKind::Usage,
            r#"{"account_id":"acme","user_id":"u-17","event":"feature_used","feature":"reports.export","ts":"2026-11-20T10:00:00Z","extra":{"x":[1]}}"#,
        )
        .unwrap();
        let Event::Usage(u) = u else { panic!() };
        assert_eq!(u.account_id, "acme");
        assert!(matches!(u.account_id, Cow::Borrowed(_)), "ids borrow from the input");
        assert_eq!(u.feature.as_deref(), Some("reports.export"));
        assert_eq!(u.ts_ms, 1_795_168_800_000);

        let s = dec(
            EventKind::Support,
            r#"{"account_id":"acme","ticket_id":"T-991","kind":"opened","priority":"urgent","ts":1763632800000}"#,
        )
        .unwrap();
        let Event::Support(s) = s else { panic!() };
        assert_eq!((s.kind, s.priority, s.ts_ms), (TicketKind::Opened, Some(Priority::Urgent), 1_763_632_800_000));

        let a = dec(
            EventKind::Account,
            r#"{"account_id":"acme","name":"ACME Corp","seats":250,"segment":"enterprise","arr":120000,"renewal_date":"2027-03-31","ts":"2026-11-01T00:00:00Z"}"#,
        )
        .unwrap();
        let Event::Account(a) = a else { panic!() };
        assert_eq!(a.seats, Some(250));
        assert_eq!(a.renewal_day, Some(parse_date_day("2027-03-31").unwrap()));
        assert_eq!((a.status, a.end_day), (AccountStatus::Active, None), "no status: active");
        for (status, want) in [("churned", AccountStatus::Churned), ("Cancelled", AccountStatus::Cancelled), ("canceled", AccountStatus::Cancelled), ("ACTIVE", AccountStatus::Active)] {
            let line = format!(r#"{{"account_id":"acme","status":"{status}","end_date":"2026-10-31","ts":1}}"#);
            let Ok(Event::Account(a)) = dec(EventKind::Account, &line) else { panic!("{line}") };
            assert_eq!((a.status, a.end_day), (want, Some(parse_date_day("2026-10-31").unwrap())), "{line}");
        }
    }

    #[test]
    fn cs_actions_decode_with_what_each_needs_and_name_what_is_missing() {
        let k = EventKind::Action;
        let Ok(Event::Action(a)) = dec(k, r#"{"account_id":"acme","action":"snooze","until":"2026-12-20","by":"dana","ts":1}"#) else { panic!() };
        assert_eq!((a.action, a.until_day, a.by.as_deref()), (ActionKind::Snooze, Some(parse_date_day("2026-12-20").unwrap()), Some("dana")));
        let Ok(Event::Action(o)) = dec(k, r#"{"account_id":"acme","action":"override","band":"green","note":"exec sponsor renewed verbally","until":"2027-01-15","ts":1}"#) else { panic!() };
        assert_eq!((o.band.as_deref(), o.note.as_deref()), (Some("green"), Some("exec sponsor renewed verbally")));
        for (line, want, says) in [
            (r#"{"account_id":"acme","action":"snooze","ts":1}"#, RejectReason::MissingField, "`until` is required for `snooze`"),
            (r#"{"account_id":"acme","action":"resolve","note":"  ","ts":1}"#, RejectReason::MissingField, "`note` is required for `resolve`"),
            (r#"{"account_id":"acme","action":"assign","ts":1}"#, RejectReason::MissingField, "`owner` is required for `assign`"),
            (r#"{"account_id":"acme","action":"override","band":"red","until":"2027-01-01","ts":1}"#, RejectReason::MissingField, "`note` is required for `override`"),
            (r#"{"account_id":"acme","action":"override","band":"amber","note":"x","until":"2027-01-01","ts":1}"#, RejectReason::BadValue, "`band` \"amber\""),
            (r#"{"account_id":"acme","action":"delete","ts":1}"#, RejectReason::BadValue, "not one of acknowledge, snooze, resolve, assign, override, clear_override"),
            (r#"{"account_id":"acme","action":"snooze","until":"soon","ts":1}"#, RejectReason::BadValue, "`until` \"soon\""),
            (r#"{"account_id":"acme","ts":1}"#, RejectReason::MissingField, "`action`"),
            (r#"{"account_id":"acme","action":7,"ts":1}"#, RejectReason::BadType, "`action` is an integer"),
        ] {
            let (got, detail) = reason(k, line);
            assert_eq!(got, want, "{line}: {detail}");
            assert!(detail.contains(says), "{line}: {detail}");
        }
        let long = format!(r#"{{"account_id":"acme","action":"resolve","note":"{}","ts":1}}"#, "x".repeat(MAX_NOTE_BYTES + 1));
        assert_eq!(reason(k, &long).0, RejectReason::BadValue);
    }

    #[test]
    fn common_usage_records_are_read_flat() {
        for line in [
            r#"{"account_id":"acme","user_id":"u-17","event":"feature_used","feature":"reports.export","ts":"2026-11-20T10:00:00Z"}"#,
            r#"{"account_id":"acct-00072","user_id":"u-8","event":"login","ts":"2025-08-11T07:00:05.599Z"}"#,
            r#" { "account_id" : "acme" , "user_id":"u", "event":"e", "ts": 1763632800000, "event_id": null, "n": 3 } "#,
        ] {
            let w = flat_usage(line).unwrap_or_else(|| panic!("not read flat: {line}"));
            assert_eq!(Some(w), serde_json::from_str::<UsageWire<'_>>(line).ok(), "{line}");
        }
        // Left to serde: an escape, nesting, a repeated field, a fraction, a negative number.
        for line in [
            r#"{"account_id":"a\"b","user_id":"u","event":"e","ts":1}"#,
            r#"{"account_id":"a","user_id":"u","event":"e","ts":1,"extra":{"x":[1]}}"#,
            r#"{"account_id":"a","account_id":"b","user_id":"u","event":"e","ts":1}"#,
            r#"{"account_id":"a","user_id":"u","event":"e","ts":1.5}"#,
            r#"{"account_id":"a","user_id":"u","event":"e","ts":-1}"#,
            r#"["a","u","e",null,1,null]"#,
            r#"{"account_id":"a","user_id":"u","event":"e","ts":1}x"#,
        ] {
            assert!(flat_usage(line).is_none(), "read flat: {line}");
        }
    }

    /// The flat reading checks UTF-8 itself: non-ASCII strings are read flat when they are UTF-8,
    /// and a record with a byte that is not (in a string, a key, an ignored field or between
    /// tokens) gets serde's path, and so the same rejection as before, naming the offset.
    #[test]
    fn the_flat_reading_checks_utf8() {
        let ok = "{\"account_id\":\"café\",\"user_id\":\"ü✓\",\"event\":\"e\",\"ts\":1763632800000,\"ключ\":\"日本\"}";
        let w = flat_usage(ok).expect("UTF-8 read flat");
        assert_eq!(Some(w), serde_json::from_str::<UsageWire<'_>>(ok).ok());
        let l = limits();
        assert!(decode(EventKind::Usage, ok.as_bytes(), None, &l).is_ok());
        let good = br#"{"account_id":"acme-corporation","user_id":"u","event":"e","ts":1763632800000,"x":"abcdefghij"}"#;
        for at in 1..good.len() - 1 {
            for bad in [0xff_u8, 0xc3, 0x80, 0xe2] {
                let mut line = good.to_vec();
                line[at] = bad;
                let mut w = UsageWire::default();
                assert!(!super::flat_usage(&line, &mut w), "read flat with {bad:#x} at {at}");
                let got = decode(EventKind::Usage, &line, None, &l);
                assert_eq!(got, decode_with_serde_only(EventKind::Usage, &line, &l), "{bad:#x} at {at}");
                let Err(r) = got else { panic!("{bad:#x} at {at}: accepted") };
                assert_eq!(r.reason, RejectReason::NotJson, "{bad:#x} at {at}");
            }
        }
    }

    /// A usage-like record from pieces that reach every branch of the flat reading and of serde's:
    /// mostly a whole record (each field present or not, in any order, some repeated), its values
    /// mostly plain strings but also strings with escapes, quotes and control bytes, nulls,
    /// numbers of every JSON form and nesting; unknown fields; whitespace; cut or extended endings.
    fn usage_like() -> impl Strategy<Value = String> {
        let odd_value = || {
            prop::sample::select(vec![
                r#""""#, r#""a\"b""#, r#""a\\b""#, r#""\u0041""#, r#""é✓""#, "\"a\u{1}b\"", r#""2026-11-20T10:00:00.5+09:00""#,
                r#""not a time""#, "null", "nul", "nullx", "0", "00", "01", "1763632800000", "1795168800000", "-1", "-0",
                "1.5", "1e3", "1E3", "99999999999999999999", "123456789012345678", "1234567890123456789", "true", "false",
                r#"{"a":[1,{"b":null}]}"#, "[]", "[1,2]", "{}", r#""a""b""#, r#""acme-corporation""#,
            ])
        };
        let id = || prop_oneof![8 => prop::sample::select(vec![r#""acme""#, r#""u-17""#, r#""login""#, r#""e-1""#]), 1 => odd_value()];
        let time = prop_oneof![8 => prop::sample::select(vec![r#""2026-11-20T10:00:00Z""#, "1795168800000"]), 1 => odd_value()];
        let extra_key = prop::sample::select(vec!["account_id", "user_id", "ts", "feature", "extra", "x", "account\\u005fid", "ts ", ""]);
        let fields = (
            (id(), id(), id(), time),
            (prop::option::weighted(0.5, id()), prop::option::weighted(0.3, id())),
            prop::collection::vec((extra_key, prop_oneof![id(), odd_value()]), 0..3),
            prop::option::weighted(0.1, 0usize..4),
        )
            .prop_map(|((account, user, event, ts), (feature, event_id), extras, dropped)| {
                let mut f = vec![("account_id", account), ("user_id", user), ("event", event), ("ts", ts)];
                if let Some(i) = dropped {
                    f.remove(i);
                }
                f.extend(feature.map(|v| ("feature", v)));
                f.extend(event_id.map(|v| ("event_id", v)));
                f.extend(extras);
                f
            })
            .prop_shuffle();
        let ws = || prop_oneof![8 => Just(""), 1 => Just(" "), 1 => Just("\t"), 1 => Just("\r\n")];
        let end = prop_oneof![12 => Just("}"), 1 => Just(""), 1 => Just("},"), 1 => Just("} x"), 1 => Just("]"), 1 => Just(",}")];
        (fields, prop::collection::vec(ws(), 40), end, prop::bool::weighted(0.03)).prop_map(|(fields, ws, end, array)| {
            if array {
                return format!("[{}]", fields.iter().map(|f| f.1).collect::<Vec<_>>().join(","));
            }
            // Whitespace around every token, from the drawn pieces in turn.
            let mut w = ws.iter().cycle();
            let body: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{}\"{k}\"{}:{}{v}{}", w.next().unwrap(), w.next().unwrap(), w.next().unwrap(), w.next().unwrap()))
                .collect();
            format!("{}{{{}{end}{}", w.next().unwrap(), body.join(","), w.next().unwrap())
        })
    }

    proptest::proptest! {
        /// The word-at-a-time search finds what a byte-at-a-time one does.
        #[test]
        fn str_end_finds_the_first_quote_backslash_or_control_byte(
            b in prop::collection::vec(prop_oneof![8 => 0x20u8..=0xff, 1 => Just(b'"'), 1 => Just(b'\\'), 1 => 0u8..0x20], 0..40),
        ) {
            let end = b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
            proptest::prop_assert_eq!(str_end(&b), end.map(|e| (e, b[..e].is_ascii())));
        }
    }

    /// The records `usage_like` makes reach both readings, and both accept and reject some.
    #[test]
    fn generated_records_reach_both_readings() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = usage_like();
        let l = DecodeLimits { max_id_len: 8, ..limits() };
        let (mut flat_ok, mut flat_rejected, mut serde_ok, mut serde_rejected) = (0, 0, 0, 0);
        for _ in 0..4096 {
            let line = proptest::strategy::ValueTree::current(&strategy.new_tree(&mut runner).unwrap());
            let ok = decode(EventKind::Usage, line.as_bytes(), None, &l).is_ok();
            match (flat_usage(&line).is_some(), ok) {
                (true, true) => flat_ok += 1,
                (true, false) => flat_rejected += 1,
                (false, true) => serde_ok += 1,
                (false, false) => serde_rejected += 1,
            }
        }
        for (what, n) in [("flat, accepted", flat_ok), ("flat, rejected", flat_rejected), ("serde, accepted", serde_ok), ("serde, rejected", serde_rejected)] {
            assert!(n >= 100, "{what}: {n} of 4096");
        }
    }

    proptest::proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]
        /// The flat reading is serde's on whatever it takes, and `decode` (which tries it first)
        /// gives every record the same event or the same rejection as serde alone.
        #[test]
        fn the_flat_reading_agrees_with_serde(line in usage_like()) {
            if let Some(w) = flat_usage(&line) {
                proptest::prop_assert_eq!(Some(w), serde_json::from_str::<UsageWire<'_>>(&line).ok(), "{}", line);
            }
            let l = DecodeLimits { max_id_len: 8, ..limits() };
            proptest::prop_assert_eq!(
                decode(EventKind::Usage, line.as_bytes(), None, &l),
                decode_with_serde_only(EventKind::Usage, line.as_bytes(), &l),
                "{}", line
            );
        }
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let Event::Usage(u) =
            dec(EventKind::Usage, r#"{"account_id":"a\"b","user_id":"u","event":"e","ts":1763632800000}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(u.account_id, "a\"b");
    }

    #[test]
    fn every_rejection_class_is_named() {
        use RejectReason::*;
        let u = EventKind::Usage;
        let s = EventKind::Support;
        let a = EventKind::Account;
        let cases: Vec<(EventKind, &str, RejectReason, &str)> = vec![
            (u, "not json", NotJson, ""),
            (u, "", NotJson, ""),
            (u, "[1,2]", NotObject, "an array"),
            (u, r#"{"user_id":"u","event":"e","ts":1}"#, MissingField, "account_id"),
            (u, r#"{"account_id":null,"user_id":"u","event":"e","ts":1}"#, MissingField, "account_id"),
            (u, r#"{"account_id":"a","user_id":"u","event":"e"}"#, MissingField, "ts"),
            (u, r#"{"account_id":7,"user_id":"u","event":"e","ts":1}"#, BadType, "account_id"),
            (u, r#"{"account_id":"a","user_id":"u","event":"e","ts":1.5}"#, BadType, "ts"),
            (u, r#"{"account_id":"a","user_id":"u","event":"e","ts":true}"#, BadType, "ts"),
            (u, r#"{"account_id":"a","user_id":"u","event":"e","ts":"last tuesday"}"#, BadValue, "ts"),
            (u, r#"{"account_id":"","user_id":"u","event":"e","ts":1}"#, BadValue, "account_id"),
            (u, r#"{"account_id":"a","user_id":"uuuuuuuuuuuuuuuuuuuuu","event":"e","ts":1}"#, IdTooLong, "user_id"),
            (u, r#"{"account_id":"a","user_id":"u","event":"e","ts":"2099-01-01T00:00:00Z"}"#, TsInFuture, "ts"),
            (s, r#"{"account_id":"a","ticket_id":"t","kind":"exploded","ts":1}"#, BadValue, "kind"),
            (s, r#"{"account_id":"a","ticket_id":"t","kind":"opened","priority":"meh","ts":1}"#, BadValue, "priority"),
            (s, r#"{"account_id":"a","ticket_id":"t","kind":"csat","ts":1}"#, MissingField, "csat"),
            (s, r#"{"account_id":"a","ticket_id":"t","kind":"csat","csat":9,"ts":1}"#, BadValue, "csat"),
            (s, r#"{"account_id":"a","ticket_id":"t","kind":"csat","csat":4.5,"ts":1}"#, BadType, "csat"),
            (s, r#"{"account_id":"a","kind":"nps","ts":1}"#, MissingField, "score"),
            (s, r#"{"account_id":"a","kind":"nps","score":11,"ts":1}"#, BadValue, "score"),
            (s, r#"{"account_id":"a","kind":"nps","score":-1,"ts":1}"#, BadValue, "score"),
            (s, r#"{"account_id":"a","kind":"nps","score":7.5,"ts":1}"#, BadType, "score"),
            (s, r#"{"account_id":"a","kind":"nps","score":"9","ts":1}"#, BadType, "score"),
            (s, r#"{"account_id":"a","kind":"opened","ts":1}"#, MissingField, "ticket_id"),
            (a, r#"{"account_id":"a","seats":-3,"ts":1}"#, BadValue, "seats"),
            (a, r#"{"account_id":"a","seats":"many","ts":1}"#, BadType, "seats"),
            (a, r#"{"account_id":"a","renewal_date":"soon","ts":1}"#, BadValue, "renewal_date"),
            (a, r#"{"account_id":"a","status":"paused","ts":1}"#, BadValue, "status"),
            (a, r#"{"account_id":"a","status":true,"ts":1}"#, BadType, "status"),
            (a, r#"{"account_id":"a","status":"churned","end_date":"last week","ts":1}"#, BadValue, "end_date"),
            (a, r#"{"account_id":"a","arr":-1,"ts":1}"#, BadValue, "arr"),
            (a, r#"{"account_id":"a","name":"a name much longer than thirty-two bytes","ts":1}"#, BadValue, "name"),
            (u, r#"{"account_id":"a","user_id":"u","event":"e","ts":-9223372036854775808}"#, BadValue, "ts"),
            (u, r#"{"account_id":"a","user_id":"u","event":"e","ts":-185542595827200000}"#, BadValue, "ts"),
            (u, r#"{"account_id":"a","user_id":"u","event":"e","ts":-370219378464000000}"#, BadValue, "ts"),
            (u, r#"{"account_id":"a","user_id":"u","event":"e","ts":-1}"#, BadValue, "1970-01-01"),
            (s, r#"{"account_id":"a","ticket_id":"t","kind":"updated","ts":-9223372036854775808}"#, BadValue, "ts"),
            (a, r#"{"account_id":"a","ts":"1969-12-31T23:59:59Z"}"#, BadValue, "ts"),
            (u, r#"{"account_id":"a","account_id":"b","user_id":"u","event":"e","ts":1}"#, BadValue, "duplicate"),
        ];
        for (kind, input, want, field) in cases {
            let (got, detail) = reason(kind, input);
            assert_eq!(got, want, "{input} -> {detail}");
            assert!(detail.contains(field), "detail {detail:?} should name {field:?} for {input}");
        }
    }

    #[test]
    fn nps_answers_need_no_ticket() {
        for score in [0u8, 6, 7, 10] {
            let line = format!(r#"{{"account_id":"a","kind":"nps","score":{score},"ts":1}}"#);
            let Ok(Event::Support(e)) = dec(EventKind::Support, &line) else { panic!("{line}") };
            assert_eq!((e.kind, e.nps, e.ticket_id.as_ref()), (TicketKind::Nps, Some(score), ""));
        }
    }

    #[test]
    fn key_must_match_account() {
        let line = br#"{"account_id":"a","user_id":"u","event":"e","ts":1}"#;
        assert!(decode(EventKind::Usage, line, Some(b"a"), &limits()).is_ok());
        let r = decode(EventKind::Usage, line, Some(b"b"), &limits()).unwrap_err();
        assert_eq!(r.reason, RejectReason::KeyMismatch);
    }

    #[test]
    fn invalid_utf8_is_not_json() {
        let r = decode(EventKind::Usage, b"{\"account_id\":\"\xff\"}", None, &limits()).unwrap_err();
        assert_eq!(r.reason, RejectReason::NotJson);
        // Also inside a field the schema ignores.
        let line = b"{\"account_id\":\"a\",\"user_id\":\"u\",\"event\":\"e\",\"ts\":1,\"x\":\"\xc3\x28\"}";
        let r = decode(EventKind::Usage, line, None, &limits()).unwrap_err();
        assert_eq!((r.reason, r.detail.as_str()), (RejectReason::NotJson, "not UTF-8: invalid byte at offset 56"));
    }
}
