//! Compact, versioned binary encoding of `AccountState`: a version byte, then varints,
//! zig-zag integers and length-prefixed strings (`crate::bytes`). Decoding an unknown version is
//! an error, not garbage.
//!
//! This file is the current version, `STATE_VERSION`, section by section in the order they are
//! stored: the account's facts, its activity (days, usage, users and features, tickets, CSAT,
//! event ids), its scores (last snapshot, daily bests, the first rules' marks), its recent alerts,
//! the applied offsets, NPS answers and the later rules' marks, the owner, the score history, the
//! recent alerts' summaries and whether the account ended. Version 5 is the same without the last
//! section (read here, and written for a rolling upgrade); older versions are read by `legacy`,
//! into the current structure.
//!
//! The bytes may be corrupt (a bad disk, a changelog record written by something else): decoding
//! bounds every length, count and day before it allocates or computes with it, and returns a
//! `CodecError` rather than panicking or allocating more than a small multiple of the input.

mod legacy;

use std::collections::VecDeque;

use crate::bytes::{Reader, Writer};
use crate::core::days::{DayCounts, MAX_SPAN_DAYS};
use crate::core::distinct::{Distinct, Seen};
use crate::core::measures::N_MEASURES;
use crate::core::phrases::Packed;
use crate::core::state::{AccountState, AlertRef, Band, Facts, HistoryDay, RuleMark, ScoreState, Snapshot, Ticket, HISTORY_DAYS};
use crate::event::Priority;

/// Version 2 added the per-account applied offsets, version 3 NPS answers, the rules added with
/// it and their marks, version 4 the account's owner and score history, version 5 the compact
/// snapshots and alert ids (see `WriteState::snapshot`), version 6 whether the account ended
/// (churned or cancelled, and the day), version 7 the CS team's actions (`core::actions`) and
/// the offset of the `cs-actions` input applied; versions 1 to 6 are still read.
pub const STATE_VERSION: u8 = 7;

/// The version `encode_version` writes besides `STATE_VERSION`: the release before's, which
/// cannot read this one's (`state.upgrade_from`, for a rolling upgrade).
pub const PREVIOUS_VERSION: u8 = 6;

/// The oldest version `decode_current` reads (the sections it shares with this one); older ones
/// are `legacy`'s.
const FIRST_CURRENT_VERSION: u8 = 5;

/// The inputs whose applied offsets version 2 and later keep in their middle section (usage,
/// support, accounts); the `cs-actions` offset is version 7's.
const FIRST_INPUTS: usize = 3;

/// A snapshot's score and measure values, as the previous snapshot of a state left them (its
/// slots are what a version-5 snapshot's "same as before" refers to).
type Slots = [Option<f64>; N_MEASURES + 1];

// Two bits per slot in a `u32`: the score and each measure.
const _: () = assert!(N_MEASURES < 16);

/// How a version-5 snapshot slot is written.
const SLOT_ABSENT: u32 = 0;
const SLOT_SAME: u32 = 1;
const SLOT_INT: u32 = 2;
const SLOT_F64: u32 = 3;

/// Largest magnitude an integral value may have to be written as an integer: every integer up to
/// it is an exact `f64`, so the round trip is exact.
const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// Rule marks stored in place by versions 1 and 2 (the rules that existed then); later rules'
/// marks follow at the end.
const LEGACY_RULES: usize = 6;

/// Smallest day number (days since 1970-01-01) a state may hold: -9999-01-01, the first day of
/// `time::Date`. Below `timestamp::MIN_DAY` (1970-01-01, the first day of an accepted event
/// time) because account records' dates (`renewal_date`, `start_date`) may lie before 1970. A
/// day outside `MIN_STORED_DAY..=MAX_STORED_DAY` is corruption, and refusing it also keeps the
/// core's day arithmetic far from overflow.
pub const MIN_STORED_DAY: i32 = -4_371_587;
/// Largest day number a state may hold: 9999-12-31 (`timestamp::MAX_DAY`, the last day of
/// `time::Date` and of an accepted event time).
pub const MAX_STORED_DAY: i32 = crate::event::timestamp::MAX_DAY;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("state encoded with unknown version {0} (this build reads version {STATE_VERSION})")]
    UnknownVersion(u8),
    #[error("state truncated")]
    Truncated,
    #[error("state holds an invalid {0}")]
    Invalid(&'static str),
}

impl From<crate::bytes::Error> for CodecError {
    fn from(e: crate::bytes::Error) -> Self {
        match e {
            crate::bytes::Error::Truncated => CodecError::Truncated,
            crate::bytes::Error::Invalid(what) => CodecError::Invalid(what),
        }
    }
}

/// Encodes a state in this build's version, `STATE_VERSION` (version byte first).
pub fn encode(s: &AccountState, w: &mut Writer) {
    encode_v6_sections(s, w, STATE_VERSION);
    write_cs(w, s);
}

/// The sections version 6 has, after `version`'s byte.
fn encode_v6_sections(s: &AccountState, w: &mut Writer, version: u8) {
    encode_v5_sections(s, w, version);
    // Whether the account ended: 0, or the status's code and the day.
    match s.facts.ended {
        None => w.u8(0),
        Some(e) => {
            w.u8(e.status.code());
            w.int(i64::from(e.day));
        }
    }
}

/// The sections version 5 has (all but the last), after `version`'s byte.
fn encode_v5_sections(s: &AccountState, w: &mut Writer, version: u8) {
    w.u8(version);
    write_facts(w, &s.facts);
    // A user's or feature's last day as days before the state's: a byte for any key seen in the
    // last two months.
    write_activity(w, s, |last_day| i64::from(s.day) - i64::from(last_day));
    let mut prev: Slots = [None; N_MEASURES + 1];
    write_scores(w, &s.score, |w, snap| w.snapshot(snap, &mut prev));
    // The recent alerts' rules and times: their ids are made again from them (`AlertRef::alert_id`).
    w.var(s.score.recent_alerts.len() as u64);
    for a in &s.score.recent_alerts {
        w.u8(a.rule);
        w.int(a.at_ms);
    }
    write_applied_nps_and_marks(w, s);
    write_opt_str(w, s.facts.owner.as_deref());
    write_history(w, &s.score.history);
    // The recent alerts' summaries, in their order, packed (see `core::phrases`).
    for a in &s.score.recent_alerts {
        w.var(a.summary.as_bytes().len() as u64);
        w.buf.extend_from_slice(a.summary.as_bytes());
    }
}

/// Encodes a state in `version`: `STATE_VERSION`, or `PREVIOUS_VERSION` for instances of the
/// release before to read.
pub fn encode_version(s: &AccountState, version: u8, w: &mut Writer) {
    debug_assert!(version == STATE_VERSION || version == PREVIOUS_VERSION);
    match version {
        // Version 6 cannot hold the CS team's actions: the release before shows the account
        // as if none were taken (they come back with the `cs-actions` topic's replay only).
        PREVIOUS_VERSION => encode_v6_sections(s, w, PREVIOUS_VERSION),
        _ => encode(s, w),
    }
}

pub fn encode_to_vec(s: &AccountState) -> Vec<u8> {
    let mut w = Writer::default();
    encode(s, &mut w);
    w.buf
}

/// Decodes a state of any version this build reads: `STATE_VERSION`, or an older one
/// (`legacy`), upgraded.
pub fn decode(buf: &[u8]) -> Result<AccountState, CodecError> {
    let mut r = Reader::new(buf);
    let s = match r.u8()? {
        v @ FIRST_CURRENT_VERSION..=STATE_VERSION => decode_current(&mut r, v)?,
        v @ 1..FIRST_CURRENT_VERSION => legacy::decode(&mut r, v)?,
        v => return Err(CodecError::UnknownVersion(v)),
    };
    if !r.done() {
        return Err(CodecError::Invalid("trailing bytes"));
    }
    Ok(s)
}

/// A state of this build's version or the two before (`version`, 5 to 7), after its version
/// byte: the sections `encode` writes.
fn decode_current(r: &mut Reader<'_>, version: u8) -> Result<AccountState, CodecError> {
    let mut s = AccountState { facts: read_facts(r)?, ..AccountState::default() };
    read_activity(r, &mut s, |r, day| {
        i64::from(day)
            .checked_sub(r.int()?)
            .and_then(|d| i32::try_from(d).ok())
            .filter(|d| (MIN_STORED_DAY..=MAX_STORED_DAY).contains(d))
            .ok_or(CodecError::Invalid("day"))
    })?;
    let mut prev: Slots = [None; N_MEASURES + 1];
    // A day, then a snapshot: its time, band and slot codes (4 bytes).
    read_scores(r, &mut s.score, 7, |r| r.snapshot(&mut prev))?;
    // Rule and time.
    let n = r.count(2)?;
    let mut recent_alerts = VecDeque::with_capacity(n);
    for _ in 0..n {
        let rule = r.u8()?;
        let at_ms = r.int()?;
        recent_alerts.push_back(AlertRef { rule, at_ms, summary: Default::default() });
    }
    s.score.recent_alerts = recent_alerts;
    read_applied_nps_and_marks(r, &mut s)?;
    s.facts.owner = read_opt_str(r)?;
    s.score.history = read_history(r, 1, |r, i| {
        // The score in tenths and the band, and whether the gap and the alerts' bits follow (see
        // `write_history`).
        let code = r.var()?;
        let (tenths, band) = ((code >> 1) / 3, Band::from_code(((code >> 1) % 3) as u8).expect("a band code below 3"));
        Ok(match code & 1 {
            0 => (u64::from(i > 0), tenths, band, 0),
            _ => (r.var()?, tenths, band, r.var()?),
        })
    })?;
    for a in s.score.recent_alerts.iter_mut() {
        a.summary = Packed::from_bytes(r.bytes()?).ok_or(CodecError::Invalid("summary"))?;
    }
    if version >= 6 {
        s.facts.ended = match r.u8()? {
            0 => None,
            code => {
                let status = crate::event::AccountStatus::from_code(code)
                    .filter(|s| *s != crate::event::AccountStatus::Active)
                    .ok_or(CodecError::Invalid("status"))?;
                Some(crate::core::state::Ended { status, day: r.day()? })
            }
        };
    }
    if version >= 7 {
        read_cs(r, &mut s)?;
    }
    Ok(s)
}

/// The `cs-actions` offset applied, then what the team's actions left (0: nothing).
fn write_cs(w: &mut Writer, s: &AccountState) {
    w.int(s.applied[FIRST_INPUTS]);
    let Some(cs) = s.cs.as_deref().filter(|c| !c.is_empty()) else { return w.u8(0) };
    w.u8(1);
    match &cs.marked {
        None => w.u8(0),
        Some(m) => {
            w.u8(m.status.code());
            write_opt_str(w, m.by.as_deref());
            w.int(m.at_ms);
            w.opt_int(m.until_day.map(i64::from));
            write_opt_str(w, m.note.as_deref());
            match m.alert {
                None => w.u8(0),
                Some((rule, at)) => {
                    w.u8(1);
                    w.u8(rule);
                    w.int(at);
                }
            }
        }
    }
    write_opt_str(w, cs.assignee.as_deref());
    match &cs.overridden {
        None => w.u8(0),
        Some(o) => {
            w.u8(o.band as u8 + 1);
            w.str(&o.reason);
            write_opt_str(w, o.by.as_deref());
            w.int(o.at_ms);
            w.int(i64::from(o.until_day));
        }
    }
}

/// What `write_cs` wrote, into `s`.
fn read_cs(r: &mut Reader<'_>, s: &mut AccountState) -> Result<(), CodecError> {
    use crate::core::actions::{CsState, Marked, Override, Status};
    s.applied[FIRST_INPUTS] = r.int()?;
    if r.u8()? == 0 {
        return Ok(());
    }
    let marked = match r.u8()? {
        0 => None,
        code => Some(Marked {
            status: Status::from_code(code).ok_or(CodecError::Invalid("status"))?,
            by: read_opt_str(r)?,
            at_ms: r.int()?,
            until_day: match r.opt_int()? {
                None => None,
                Some(d) => Some(i32::try_from(d).ok().filter(|d| (MIN_STORED_DAY..=MAX_STORED_DAY).contains(d)).ok_or(CodecError::Invalid("day"))?),
            },
            note: read_opt_str(r)?,
            alert: match r.u8()? {
                0 => None,
                _ => Some((r.u8()?, r.int()?)),
            },
        }),
    };
    let assignee = read_opt_str(r)?;
    let overridden = match r.u8()? {
        0 => None,
        code => Some(Override {
            band: Band::from_code(code - 1).ok_or(CodecError::Invalid("band"))?,
            reason: r.str()?.to_owned(),
            by: read_opt_str(r)?,
            at_ms: r.int()?,
            until_day: r.day()?,
        }),
    };
    s.cs = Some(Box::new(CsState { marked, assignee, overridden }));
    Ok(())
}

/// The state's own items, written with the byte helpers.
trait WriteState {
    fn days(&mut self, d: &DayCounts);
    fn snapshot(&mut self, s: &Snapshot, prev: &mut Slots);
}

impl WriteState for Writer {
    fn days(&mut self, d: &DayCounts) {
        let items: Vec<(i32, u32)> = d.iter().collect();
        self.int(items.first().map_or(0, |x| i64::from(x.0)));
        self.var(items.len() as u64);
        for (_, c) in items {
            self.var(u64::from(c));
        }
    }
    /// A snapshot (version 5): its time, band, then two bits per slot (the score, then each
    /// measure) in four bytes, then the slots' values. A slot is absent, the same bits as in the
    /// state's previous snapshot (`prev`: the last one, then each daily best in order), an
    /// integer (a varint: most measures count users, days or tickets), or the 8 bytes of an
    /// `f64`. Exact: a value decodes to the same bits.
    fn snapshot(&mut self, s: &Snapshot, prev: &mut Slots) {
        self.int(s.at_ms);
        self.u8(s.band as u8);
        let mut slots: Slots = [None; N_MEASURES + 1];
        slots[0] = Some(s.score);
        slots[1..].copy_from_slice(&s.values.to_array());
        let code = |i: usize, v: Option<f64>| match v {
            None => SLOT_ABSENT,
            Some(v) if prev[i].is_some_and(|p| p.to_bits() == v.to_bits()) => SLOT_SAME,
            Some(v) if v.fract() == 0.0 && v.abs() <= MAX_EXACT_INT && !(v == 0.0 && v.is_sign_negative()) => SLOT_INT,
            Some(_) => SLOT_F64,
        };
        let codes = slots.iter().enumerate().fold(0u32, |c, (i, v)| c | code(i, *v) << (2 * i));
        self.fixed32(codes);
        for (i, v) in slots.iter().enumerate() {
            match (codes >> (2 * i) & 3, v) {
                (SLOT_INT, Some(v)) => self.int(*v as i64),
                (SLOT_F64, Some(v)) => self.f64(*v),
                _ => {}
            }
        }
        *prev = slots;
    }
}

/// The state's own items, read with the byte helpers.
trait ReadState {
    fn day(&mut self) -> Result<i32, CodecError>;
    fn opt_day(&mut self) -> Result<Option<i32>, CodecError>;
    fn days(&mut self) -> Result<DayCounts, CodecError>;
    fn band(&mut self) -> Result<Band, CodecError>;
    fn snapshot(&mut self, prev: &mut Slots) -> Result<Snapshot, CodecError>;
}

impl ReadState for Reader<'_> {
    /// A day number within `MIN_STORED_DAY..=MAX_STORED_DAY`.
    fn day(&mut self) -> Result<i32, CodecError> {
        i32::try_from(self.int()?).ok().filter(|d| (MIN_STORED_DAY..=MAX_STORED_DAY).contains(d)).ok_or(CodecError::Invalid("day"))
    }
    fn opt_day(&mut self) -> Result<Option<i32>, CodecError> {
        Ok(match self.u8()? {
            0 => None,
            _ => Some(self.day()?),
        })
    }
    /// A `DayCounts`: its first day, then at most `MAX_SPAN_DAYS` counts, ending by `MAX_STORED_DAY`.
    fn days(&mut self) -> Result<DayCounts, CodecError> {
        let start = self.day()?;
        let n = self.count(1)?;
        if n > MAX_SPAN_DAYS || i64::from(start) + n as i64 - 1 > i64::from(MAX_STORED_DAY) {
            return Err(CodecError::Invalid("day span"));
        }
        let count = |r: &mut Self| u32::try_from(r.var()?).map_err(|_| CodecError::Invalid("day count"));
        let counts = (0..n).map(|_| count(self)).collect::<Result<Vec<_>, _>>()?;
        Ok(DayCounts::from_parts(start, counts))
    }
    fn band(&mut self) -> Result<Band, CodecError> {
        Band::from_code(self.u8()?).ok_or(CodecError::Invalid("band"))
    }
    /// A snapshot as `WriteState::snapshot` writes it (version 5), `prev` the state's previous one.
    fn snapshot(&mut self, prev: &mut Slots) -> Result<Snapshot, CodecError> {
        let at_ms = self.int()?;
        let band = self.band()?;
        let codes = self.fixed32()?;
        if codes.checked_shr(2 * (N_MEASURES as u32 + 1)).unwrap_or(0) != 0 {
            return Err(CodecError::Invalid("snapshot"));
        }
        let mut slots: Slots = [None; N_MEASURES + 1];
        for (i, slot) in slots.iter_mut().enumerate() {
            *slot = match codes >> (2 * i) & 3 {
                SLOT_ABSENT => None,
                SLOT_SAME => Some(prev[i].ok_or(CodecError::Invalid("snapshot"))?),
                SLOT_INT => Some(self.int()? as f64),
                _ => Some(self.f64()?),
            };
        }
        *prev = slots;
        let score = slots[0].ok_or(CodecError::Invalid("snapshot"))?;
        let mut values = [None; N_MEASURES];
        values.copy_from_slice(&slots[1..]);
        Ok(Snapshot { at_ms, score, band, values: values.into() })
    }
}

fn write_opt_str(w: &mut Writer, v: Option<&str>) {
    match v {
        None => w.u8(0),
        Some(s) => {
            w.u8(1);
            w.str(s);
        }
    }
}

fn read_opt_str(r: &mut Reader<'_>) -> Result<Option<String>, CodecError> {
    Ok(match r.u8()? {
        0 => None,
        _ => Some(r.str()?.to_owned()),
    })
}

/// The account's facts but its owner (added by version 4, written further on).
fn write_facts(w: &mut Writer, f: &Facts) {
    write_opt_str(w, f.name.as_deref());
    w.opt_int(f.seats.map(i64::from));
    write_opt_str(w, f.segment.as_deref());
    match f.arr {
        None => w.u8(0),
        Some(a) => {
            w.u8(1);
            w.f64(a);
        }
    }
    w.opt_int(f.renewal_day.map(i64::from));
    w.opt_int(f.start_day.map(i64::from));
    w.opt_int(f.ts_ms);
}

fn read_facts(r: &mut Reader<'_>) -> Result<Facts, CodecError> {
    let name = read_opt_str(r)?;
    let seats = r.opt_int()?.map(|v| u32::try_from(v).map_err(|_| CodecError::Invalid("seats"))).transpose()?;
    let segment = read_opt_str(r)?;
    let arr = match r.u8()? {
        0 => None,
        _ => Some(r.f64()?),
    };
    Ok(Facts {
        name,
        seats,
        segment,
        owner: None,
        arr,
        renewal_day: r.opt_day()?,
        start_day: r.opt_day()?,
        ts_ms: r.opt_int()?,
        ended: None,
    })
}

/// What the account did: its first day, last usage, day, usage per day, users and features
/// (their last days as `last_day` writes them), tickets, tickets opened and CSAT per day, and
/// the recent event ids.
fn write_activity(w: &mut Writer, s: &AccountState, last_day: impl Fn(i32) -> i64) {
    w.opt_int(s.first_day.map(i64::from));
    w.opt_int(s.last_usage_ms);
    w.int(i64::from(s.day));
    w.days(&s.usage);
    write_distinct(w, &s.users, &last_day);
    write_distinct(w, &s.features, &last_day);
    w.var(s.tickets.len() as u64);
    for (id, t) in s.tickets.iter() {
        w.str(id);
        w.u8(t.priority.code() | (u8::from(t.open) << 4));
        w.int(t.opened_ms);
        w.int(t.last_ms);
    }
    w.days(&s.opened);
    w.days(&s.csat_sum);
    w.days(&s.csat_count);
    w.var(s.seen_ids.len() as u64);
    for (h, ts) in &s.seen_ids {
        w.fixed64(*h);
        w.int(*ts);
    }
}

/// What `write_activity` wrote, into `s`; `last_day` reads a user's or feature's last day, given
/// the state's day.
fn read_activity(
    r: &mut Reader<'_>,
    s: &mut AccountState,
    last_day: impl Fn(&mut Reader<'_>, i32) -> Result<i32, CodecError>,
) -> Result<(), CodecError> {
    s.first_day = r.opt_day()?;
    s.last_usage_ms = r.opt_int()?;
    s.day = r.day()?;
    s.usage = r.days()?;
    let day = s.day;
    s.users = read_distinct(r, |r| last_day(r, day))?;
    s.features = read_distinct(r, |r| last_day(r, day))?;
    // Id length, flags, opened and last time: a byte each at least.
    let n = r.count(4)?;
    for _ in 0..n {
        let id: compact_str::CompactString = r.str()?.into();
        let b = r.u8()?;
        let priority = Priority::from_code(b & 0x0f).ok_or(CodecError::Invalid("priority"))?;
        let opened_ms = r.int()?;
        let last_ms = r.int()?;
        s.tickets.insert(&id, Ticket { priority, opened_ms, last_ms, open: b & 0x10 != 0 });
    }
    s.opened = r.days()?;
    s.csat_sum = r.days()?;
    s.csat_count = r.days()?;
    // An 8-byte hash and a time.
    let n = r.count(9)?;
    for _ in 0..n {
        let h = r.fixed64()?;
        s.seen_ids.insert(h, r.int()?);
    }
    Ok(())
}

/// Keys with their last day (as `last_day` writes it) and bitmap, then the per-day counts.
fn write_distinct(w: &mut Writer, d: &Distinct, last_day: impl Fn(i32) -> i64) {
    w.var(d.seen.len() as u64);
    for (k, s) in &d.seen {
        w.str(k);
        w.int(last_day(s.last_day));
        w.var(s.days);
    }
    w.days(&d.per_day);
}

/// What `write_distinct` wrote; `last_day` reads a key's last day.
fn read_distinct(r: &mut Reader<'_>, last_day: impl Fn(&mut Reader<'_>) -> Result<i32, CodecError>) -> Result<Distinct, CodecError> {
    // A key's length, last day and bitmap take a byte each at least.
    let n = r.count(3)?;
    let mut d = Distinct::default();
    d.seen.reserve(n);
    let mut newest = None;
    for _ in 0..n {
        let k: compact_str::CompactString = r.str()?.into();
        let last_day = last_day(r)?;
        let days = r.var()?;
        newest = newest.max(Some(last_day));
        d.seen.insert(k, Seen { last_day, days });
    }
    // Keys last seen more than `MAX_SPAN_DAYS` before the newest are past any retention horizon
    // (the live `last_seen` would have pushed them out too): dropped, so the counts derived
    // below fit one span whatever the input, and do not depend on the keys' order.
    if let Some(newest) = newest {
        let from = newest - (MAX_SPAN_DAYS as i32 - 1);
        d.seen.retain(|_, s| s.last_day >= from);
    }
    // "last seen on day" counts are derived, not stored: counted over the keys' span at once
    // (adding them one by one in map order would grow the span at its front again and again).
    let (lo, hi) = d.seen.values().fold((i32::MAX, i32::MIN), |(lo, hi), s| (lo.min(s.last_day), hi.max(s.last_day)));
    if lo <= hi {
        let mut counts = vec![0u32; (i64::from(hi) - i64::from(lo) + 1) as usize];
        for s in d.seen.values() {
            counts[(i64::from(s.last_day) - i64::from(lo)) as usize] += 1;
        }
        d.last_seen = DayCounts::from_parts(lo, counts);
    }
    d.per_day = r.days()?;
    d.recount_key_bytes();
    Ok(d)
}

/// The scorer's memory up to the recent alerts: the last snapshot, scorecard and band, the daily
/// bests, the first rules' marks (`LEGACY_RULES`), the last published score and the next due
/// time. `snapshot` writes a snapshot.
fn write_scores(w: &mut Writer, sc: &ScoreState, mut snapshot: impl FnMut(&mut Writer, &Snapshot)) {
    match &sc.last {
        None => w.u8(0),
        Some(snap) => {
            w.u8(1);
            snapshot(w, snap);
        }
    }
    w.str(&sc.scorecard);
    w.u8(sc.band.map_or(0xff, |b| b as u8));
    w.var(sc.best.len() as u64);
    for (day, snap) in &sc.best {
        w.int(i64::from(*day));
        snapshot(w, snap);
    }
    for m in &sc.rules[..LEGACY_RULES] {
        w.u8(u8::from(m.armed));
        w.opt_int(m.last_fired_ms);
    }
    match sc.emitted {
        None => w.u8(0xff),
        Some((score, band)) => {
            w.u8(band as u8);
            w.f64(score);
        }
    }
    w.opt_int(sc.next_due_ms);
}

/// What `write_scores` wrote, into `sc`; `snapshot` reads a snapshot, and a daily best (a day
/// and a snapshot) takes `best_bytes` at least.
fn read_scores(
    r: &mut Reader<'_>,
    sc: &mut ScoreState,
    best_bytes: usize,
    mut snapshot: impl FnMut(&mut Reader<'_>) -> Result<Snapshot, CodecError>,
) -> Result<(), CodecError> {
    sc.last = match r.u8()? {
        0 => None,
        _ => Some(snapshot(r)?),
    };
    sc.scorecard = r.str()?.to_owned();
    sc.band = match r.u8()? {
        0xff => None,
        b => Some(Band::from_code(b).ok_or(CodecError::Invalid("band"))?),
    };
    let n = r.count(best_bytes)?;
    // Room for the next evaluation's entry: an exact fit would be copied to a new allocation of
    // twice the size by the first one (most loads are followed by one).
    let mut best = VecDeque::with_capacity(n + 1);
    for _ in 0..n {
        let day = r.day()?;
        best.push_back((day, snapshot(r)?));
    }
    sc.best = best;
    for m in sc.rules[..LEGACY_RULES].iter_mut() {
        m.armed = r.u8()? != 0;
        m.last_fired_ms = r.opt_int()?;
    }
    sc.emitted = match r.u8()? {
        0xff => None,
        b => {
            let band = Band::from_code(b).ok_or(CodecError::Invalid("band"))?;
            Some((r.f64()?, band))
        }
    };
    sc.next_due_ms = r.opt_int()?;
    Ok(())
}

/// The applied offsets (added by version 2), then what version 3 added: NPS answers per day,
/// the later rules' marks, whether alerts are live and the runs' first days.
fn write_applied_nps_and_marks(w: &mut Writer, s: &AccountState) {
    for &a in &s.applied[..FIRST_INPUTS] {
        w.int(a);
    }
    w.days(&s.nps_count);
    w.days(&s.nps_promoters);
    w.days(&s.nps_detractors);
    let sc = &s.score;
    w.var(sc.rules.len() as u64 - LEGACY_RULES as u64);
    for m in &sc.rules[LEGACY_RULES..] {
        w.u8(u8::from(m.armed));
        w.opt_int(m.last_fired_ms);
    }
    w.u8(u8::from(sc.alerts_live));
    w.opt_int(sc.drop_since.map(i64::from));
    w.opt_int(sc.expansion_since.map(i64::from));
    w.opt_int(sc.renewal_alerted.map(i64::from));
    w.opt_int(sc.score_drop_since.map(i64::from));
}

/// What `write_applied_nps_and_marks` wrote, into `s` (`legacy` reads its two parts apart).
fn read_applied_nps_and_marks(r: &mut Reader<'_>, s: &mut AccountState) -> Result<(), CodecError> {
    read_applied(r, s)?;
    read_nps_and_marks(r, s)
}

fn read_applied(r: &mut Reader<'_>, s: &mut AccountState) -> Result<(), CodecError> {
    for a in &mut s.applied[..FIRST_INPUTS] {
        *a = r.int()?;
    }
    Ok(())
}

fn read_nps_and_marks(r: &mut Reader<'_>, s: &mut AccountState) -> Result<(), CodecError> {
    s.nps_count = r.days()?;
    s.nps_promoters = r.days()?;
    s.nps_detractors = r.days()?;
    let sc = &mut s.score;
    // A mark: armed, and an option tag at least.
    let n = r.count(2)?;
    for i in 0..n {
        let armed = r.u8()? != 0;
        let last_fired_ms = r.opt_int()?;
        // Marks of rules this build does not know are skipped (a newer state read back).
        if let Some(m) = sc.rules.get_mut(LEGACY_RULES + i) {
            *m = RuleMark { armed, last_fired_ms };
        }
    }
    sc.alerts_live = r.u8()? != 0;
    sc.drop_since = r.opt_day()?;
    sc.expansion_since = r.opt_day()?;
    sc.renewal_alerted = r.opt_day()?;
    sc.score_drop_since = r.opt_day()?;
    Ok(())
}

/// Score history: count, first day, then per day the score in tenths and the band as one
/// varint (two bytes) whose low bit says whether the gap from the previous day and the alerts'
/// rule bits follow; a day after the previous one without alerts takes only those two bytes.
fn write_history(w: &mut Writer, history: &VecDeque<HistoryDay>) {
    w.var(history.len() as u64);
    w.int(i64::from(history.front().map_or(0, |h| h.day)));
    let mut prev = history.front().map_or(0, |h| h.day);
    for (i, h) in history.iter().enumerate() {
        let gap = u64::try_from(h.day - prev).unwrap_or(0);
        let plain = gap == u64::from(i > 0) && h.alerts == 0;
        w.var((u64::from(h.tenths) * 3 + h.band as u64) << 1 | u64::from(!plain));
        if !plain {
            w.var(gap);
            w.var(u64::from(h.alerts));
        }
        prev = h.day;
    }
}

/// A score history: its count (each day taking `day_bytes` at least) and first day, then each
/// day as `day` reads it, given its index: the gap from the day before, the score in tenths,
/// the band and the alerts' bits. Days only go forward, within `HISTORY_DAYS`.
fn read_history(
    r: &mut Reader<'_>,
    day_bytes: usize,
    mut entry: impl FnMut(&mut Reader<'_>, usize) -> Result<(u64, u64, Band, u64), CodecError>,
) -> Result<VecDeque<HistoryDay>, CodecError> {
    let n = r.count(day_bytes)?;
    // As the daily bests: room for the next day's entry.
    let mut history = VecDeque::with_capacity(n + 1);
    let mut day = r.day()?;
    for i in 0..n {
        let (gap, tenths, band, alerts) = entry(r, i)?;
        if i > 0 {
            // Days only go forward, and a history spans at most HISTORY_DAYS.
            let gap = i32::try_from(gap).ok().filter(|g| (1..HISTORY_DAYS).contains(g));
            day = day.checked_add(gap.ok_or(CodecError::Invalid("history"))?).ok_or(CodecError::Invalid("history"))?;
        }
        let tenths = u16::try_from(tenths).ok().filter(|t| *t <= 1000).ok_or(CodecError::Invalid("history"))?;
        let alerts = u16::try_from(alerts).map_err(|_| CodecError::Invalid("history"))?;
        history.push_back(HistoryDay { day, tenths, band, alerts });
    }
    Ok(history)
}

#[cfg(test)]
mod tests;
