//! Compact, versioned binary encoding of `AccountState`: a version byte, then varints,
//! zig-zag integers and length-prefixed strings. Decoding an unknown version is an error, not garbage.
//!
//! The bytes may be corrupt (a bad disk, a changelog record written by something else): decoding
//! bounds every length, count and day before it allocates or computes with it, and returns a
//! `CodecError` rather than panicking or allocating more than a small multiple of the input.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::bytes::{Reader, Writer};
use crate::core::alerts::N_RULES;
use crate::core::days::{DayCounts, MAX_SPAN_DAYS};
use crate::core::distinct::{Distinct, Seen};
use crate::core::measures::N_MEASURES;
use crate::core::state::{AccountState, AlertRef, Band, Facts, RuleMark, ScoreState, Snapshot, Ticket};
use crate::event::Priority;

/// Version 2 added the per-account applied offsets, version 3 NPS answers, the rules added with
/// it and their marks, version 4 the account's owner and score history, version 5 the compact
/// snapshots and alert ids (see `WriteState::snapshot`); versions 1 to 4 are still read.
pub const STATE_VERSION: u8 = 5;

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

/// The state's own items, written with the byte helpers.
trait WriteState {
    fn days(&mut self, d: &DayCounts);
    fn snapshot(&mut self, s: &Snapshot, prev: &mut Slots);
    fn snapshot_v4(&mut self, s: &Snapshot);
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
    /// A snapshot as versions 1 to 4 wrote it: time, score, band, the measures' mask and their
    /// `f64`s (see `state.upgrade_from`).
    fn snapshot_v4(&mut self, s: &Snapshot) {
        self.int(s.at_ms);
        self.f64(s.score);
        self.u8(s.band as u8);
        let mask = s.values.iter().enumerate().fold(0u64, |m, (i, v)| m | u64::from(v.is_some()) << i);
        self.var(mask);
        for v in s.values.iter().flatten() {
            self.f64(v);
        }
    }
}

/// The state's own items, read with the byte helpers.
trait ReadState {
    fn day(&mut self) -> Result<i32, CodecError>;
    fn opt_day(&mut self) -> Result<Option<i32>, CodecError>;
    fn days(&mut self) -> Result<DayCounts, CodecError>;
    fn band(&mut self) -> Result<Band, CodecError>;
    fn snapshot(&mut self, prev: &mut Slots) -> Result<Snapshot, CodecError>;
    fn snapshot_v4(&mut self) -> Result<Snapshot, CodecError>;
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
    /// A snapshot of versions 1 to 4: time, score, band, the measures' mask and their `f64`s.
    fn snapshot_v4(&mut self) -> Result<Snapshot, CodecError> {
        let at_ms = self.int()?;
        let score = self.f64()?;
        let band = self.band()?;
        let mask = self.var()?;
        let mut values = [None; N_MEASURES];
        for (i, v) in values.iter_mut().enumerate() {
            if mask & (1 << i) != 0 {
                *v = Some(self.f64()?);
            }
        }
        Ok(Snapshot { at_ms, score, band, values: values.into() })
    }
}

/// Keys with their last day (version 5: as days before `day`, the state's, a byte for any key
/// seen in the last two months; `None`: as they are, version 4) and bitmap, then the per-day
/// counts.
fn write_distinct(w: &mut Writer, d: &Distinct, day: Option<i32>) {
    w.var(d.seen.len() as u64);
    for (k, s) in &d.seen {
        w.str(k);
        match day {
            Some(day) => w.int(i64::from(day) - i64::from(s.last_day)),
            None => w.int(i64::from(s.last_day)),
        }
        w.var(s.days);
    }
    w.days(&d.per_day);
}

/// `day` is the state's (version 5), `None` before (last days written as they are).
fn read_distinct(r: &mut Reader<'_>, day: Option<i32>) -> Result<Distinct, CodecError> {
    // A key's length, last day and bitmap take a byte each at least.
    let n = r.count(3)?;
    let mut d = Distinct::default();
    d.seen.reserve(n);
    let mut newest = None;
    for _ in 0..n {
        let k: compact_str::CompactString = r.str()?.into();
        let last_day = match day {
            Some(day) => i64::from(day)
                .checked_sub(r.int()?)
                .and_then(|d| i32::try_from(d).ok())
                .filter(|d| (MIN_STORED_DAY..=MAX_STORED_DAY).contains(d))
                .ok_or(CodecError::Invalid("day"))?,
            None => r.day()?,
        };
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

/// Encodes a state in this build's version, `STATE_VERSION` (version byte first).
pub fn encode(s: &AccountState, w: &mut Writer) {
    encode_in(s, None, w);
}

/// The version `encode_version` writes besides `STATE_VERSION`: the release before's, which
/// cannot read this one's (`state.upgrade_from`, for a rolling upgrade).
pub const PREVIOUS_VERSION: u8 = 4;

/// Encodes a state in `version`: `STATE_VERSION`, or `PREVIOUS_VERSION` for instances of the
/// release before to read, its recent alerts' ids (which that version keeps) made again from
/// `account_id`, as the alerts were given them.
pub fn encode_version(s: &AccountState, account_id: &str, version: u8, w: &mut Writer) {
    debug_assert!(version == STATE_VERSION || version == PREVIOUS_VERSION);
    encode_in(s, (version == PREVIOUS_VERSION).then_some(account_id), w);
}

/// `v4`: the account's id to write version 4 with, `None` for this build's version.
fn encode_in(s: &AccountState, v4: Option<&str>, w: &mut Writer) {
    w.u8(if v4.is_some() { PREVIOUS_VERSION } else { STATE_VERSION });
    let base = v4.is_none().then_some(s.day);
    let f = &s.facts;
    match &f.name {
        None => w.u8(0),
        Some(n) => {
            w.u8(1);
            w.str(n);
        }
    }
    w.opt_int(f.seats.map(i64::from));
    match &f.segment {
        None => w.u8(0),
        Some(n) => {
            w.u8(1);
            w.str(n);
        }
    }
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
    w.opt_int(s.first_day.map(i64::from));
    w.opt_int(s.last_usage_ms);
    w.int(i64::from(s.day));
    w.days(&s.usage);
    write_distinct(w, &s.users, base);
    write_distinct(w, &s.features, base);
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
    let sc = &s.score;
    let mut prev: Slots = [None; N_MEASURES + 1];
    let mut snapshot = |w: &mut Writer, snap: &Snapshot| match v4 {
        None => w.snapshot(snap, &mut prev),
        Some(_) => w.snapshot_v4(snap),
    };
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
    w.var(sc.recent_alerts.len() as u64);
    for a in &sc.recent_alerts {
        w.u8(a.rule);
        w.int(a.at_ms);
        if let Some(account_id) = v4 {
            w.str(&a.alert_id(account_id).unwrap_or_default());
        }
    }
    for a in s.applied {
        w.int(a);
    }
    // Version 3.
    w.days(&s.nps_count);
    w.days(&s.nps_promoters);
    w.days(&s.nps_detractors);
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
    // Version 4.
    match &f.owner {
        None => w.u8(0),
        Some(o) => {
            w.u8(1);
            w.str(o);
        }
    }
    // Score history: count, first day, then per day the score in tenths and the band as one
    // varint (two bytes) whose low bit says whether the gap from the previous day and the alerts'
    // rule bits follow; a day after the previous one without alerts takes only those two bytes.
    w.var(sc.history.len() as u64);
    w.int(i64::from(sc.history.front().map_or(0, |h| h.day)));
    let mut prev = sc.history.front().map_or(0, |h| h.day);
    for (i, h) in sc.history.iter().enumerate() {
        let gap = u64::try_from(h.day - prev).unwrap_or(0);
        if v4.is_some() {
            // Version 4: the gap, the score in tenths, the band and the alerts' bits, each day.
            w.var(gap);
            w.var(u64::from(h.tenths));
            w.u8(h.band as u8);
            w.var(u64::from(h.alerts));
            prev = h.day;
            continue;
        }
        let plain = gap == u64::from(i > 0) && h.alerts == 0;
        w.var((u64::from(h.tenths) * 3 + h.band as u64) << 1 | u64::from(!plain));
        if !plain {
            w.var(gap);
            w.var(u64::from(h.alerts));
        }
        prev = h.day;
    }
    // The recent alerts' summaries, in their order (version 5: packed, see `core::phrases`).
    for a in &sc.recent_alerts {
        match v4 {
            None => {
                w.var(a.summary.as_bytes().len() as u64);
                w.buf.extend_from_slice(a.summary.as_bytes());
            }
            Some(_) => w.str(&a.summary.text()),
        }
    }
}

pub fn encode_to_vec(s: &AccountState) -> Vec<u8> {
    let mut w = Writer::default();
    encode(s, &mut w);
    w.buf
}

pub fn decode(buf: &[u8]) -> Result<AccountState, CodecError> {
    let mut r = Reader::new(buf);
    let v = r.u8()?;
    if !(1..=STATE_VERSION).contains(&v) {
        return Err(CodecError::UnknownVersion(v));
    }
    let opt_str = |r: &mut Reader<'_>| -> Result<Option<String>, CodecError> {
        Ok(match r.u8()? {
            0 => None,
            _ => Some(r.str()?.to_owned()),
        })
    };
    let name = opt_str(&mut r)?;
    let seats = r.opt_int()?.map(|v| u32::try_from(v).map_err(|_| CodecError::Invalid("seats"))).transpose()?;
    let segment = opt_str(&mut r)?;
    let arr = match r.u8()? {
        0 => None,
        _ => Some(r.f64()?),
    };
    let facts = Facts {
        name,
        seats,
        segment,
        owner: None,
        arr,
        renewal_day: r.opt_day()?,
        start_day: r.opt_day()?,
        ts_ms: r.opt_int()?,
    };
    let first_day = r.opt_day()?;
    let last_usage_ms = r.opt_int()?;
    let day = r.day()?;
    let usage = r.days()?;
    let base = (v >= 5).then_some(day);
    let users = read_distinct(&mut r, base)?;
    let features = read_distinct(&mut r, base)?;
    // Id length, flags, opened and last time: a byte each at least.
    let n = r.count(4)?;
    let mut tickets = crate::core::tickets::Tickets::default();
    for _ in 0..n {
        let id: compact_str::CompactString = r.str()?.into();
        let b = r.u8()?;
        let priority = Priority::from_code(b & 0x0f).ok_or(CodecError::Invalid("priority"))?;
        let opened_ms = r.int()?;
        let last_ms = r.int()?;
        tickets.insert(&id, Ticket { priority, opened_ms, last_ms, open: b & 0x10 != 0 });
    }
    let opened = r.days()?;
    let csat_sum = r.days()?;
    let csat_count = r.days()?;
    // An 8-byte hash and a time.
    let n = r.count(9)?;
    let mut seen_ids = FxHashMap::default();
    for _ in 0..n {
        let h = r.fixed64()?;
        seen_ids.insert(h, r.int()?);
    }
    let mut prev: Slots = [None; N_MEASURES + 1];
    let mut snapshot = |r: &mut Reader<'_>| if v >= 5 { r.snapshot(&mut prev) } else { r.snapshot_v4() };
    let last = match r.u8()? {
        0 => None,
        _ => Some(snapshot(&mut r)?),
    };
    let scorecard = r.str()?.to_owned();
    let band = match r.u8()? {
        0xff => None,
        b => Some(Band::from_code(b).ok_or(CodecError::Invalid("band"))?),
    };
    // A day, then a snapshot: its time, band and slot codes (version 5), or its time, 8-byte
    // score, band and mask.
    let n = r.count(if v >= 5 { 7 } else { 12 })?;
    // Room for the next evaluation's entry: an exact fit would be copied to a new allocation of
    // twice the size by the first one (most loads are followed by one).
    let mut best = VecDeque::with_capacity(n + 1);
    for _ in 0..n {
        let day = r.day()?;
        best.push_back((day, snapshot(&mut r)?));
    }
    let mut rules = [RuleMark::default(); N_RULES];
    for m in rules[..LEGACY_RULES].iter_mut() {
        m.armed = r.u8()? != 0;
        m.last_fired_ms = r.opt_int()?;
    }
    let emitted = match r.u8()? {
        0xff => None,
        b => {
            let band = Band::from_code(b).ok_or(CodecError::Invalid("band"))?;
            Some((r.f64()?, band))
        }
    };
    let next_due_ms = r.opt_int()?;
    // Rule and time (version 5: the id is made again from them), and id length before.
    let n = r.count(if v >= 5 { 2 } else { 3 })?;
    let mut recent_alerts = VecDeque::with_capacity(n);
    for _ in 0..n {
        let rule = r.u8()?;
        let at_ms = r.int()?;
        if v < 5 {
            // The id `ids::alert_id` made of the account, rule and time.
            r.str()?;
        }
        recent_alerts.push_back(AlertRef { rule, at_ms, summary: Default::default() });
    }
    let mut applied = [0i64; 3];
    if v >= 2 {
        for a in &mut applied {
            *a = r.int()?;
        }
    }
    let (mut nps_count, mut nps_promoters, mut nps_detractors) = Default::default();
    // An account scored before version 3 had its alerts live once it had been scored.
    let (mut alerts_live, mut drop_since, mut expansion_since, mut renewal_alerted) = (last.is_some(), None, None, None);
    let mut score_drop_since = None;
    if v >= 3 {
        nps_count = r.days()?;
        nps_promoters = r.days()?;
        nps_detractors = r.days()?;
        // A mark: armed, and an option tag at least.
        let n = r.count(2)?;
        for i in 0..n {
            let armed = r.u8()? != 0;
            let last_fired_ms = r.opt_int()?;
            // Marks of rules this build does not know are skipped (a newer state read back).
            if let Some(m) = rules.get_mut(LEGACY_RULES + i) {
                *m = RuleMark { armed, last_fired_ms };
            }
        }
        alerts_live = r.u8()? != 0;
        drop_since = r.opt_day()?;
        expansion_since = r.opt_day()?;
        renewal_alerted = r.opt_day()?;
        score_drop_since = r.opt_day()?;
    }
    let mut facts = facts;
    let mut history = VecDeque::new();
    if v >= 4 {
        facts.owner = opt_str(&mut r)?;
        let n = r.count(if v >= 5 { 1 } else { 4 })?;
        // As the daily bests: room for the next day's entry.
        history.reserve(n + 1);
        let mut day = r.day()?;
        for i in 0..n {
            let (gap, tenths, band, alerts) = if v >= 5 {
                let code = r.var()?;
                let (tenths, band) = ((code >> 1) / 3, Band::from_code(((code >> 1) % 3) as u8).expect("a band code below 3"));
                match code & 1 {
                    0 => (u64::from(i > 0), tenths, band, 0),
                    _ => (r.var()?, tenths, band, r.var()?),
                }
            } else {
                (r.var()?, r.var()?, r.band()?, r.var()?)
            };
            if i > 0 {
                // Days only go forward, and a history spans at most HISTORY_DAYS.
                let gap = i32::try_from(gap).ok().filter(|g| (1..crate::core::state::HISTORY_DAYS).contains(g));
                day = day.checked_add(gap.ok_or(CodecError::Invalid("history"))?).ok_or(CodecError::Invalid("history"))?;
            }
            let tenths = u16::try_from(tenths).ok().filter(|t| *t <= 1000).ok_or(CodecError::Invalid("history"))?;
            let alerts = u16::try_from(alerts).map_err(|_| CodecError::Invalid("history"))?;
            history.push_back(crate::core::state::HistoryDay { day, tenths, band, alerts });
        }
        for a in recent_alerts.iter_mut() {
            a.summary = if v >= 5 {
                crate::core::phrases::Packed::from_bytes(r.bytes()?).ok_or(CodecError::Invalid("summary"))?
            } else {
                crate::core::phrases::Packed::new(r.str()?)
            };
        }
    }
    if !r.done() {
        return Err(CodecError::Invalid("trailing bytes"));
    }
    Ok(AccountState {
        facts,
        first_day,
        last_usage_ms,
        day,
        usage,
        users,
        features,
        tickets,
        opened,
        csat_sum,
        csat_count,
        nps_count,
        nps_promoters,
        nps_detractors,
        seen_ids,
        score: ScoreState {
            last,
            scorecard,
            band,
            best,
            rules,
            emitted,
            next_due_ms,
            recent_alerts,
            alerts_live,
            drop_since,
            expansion_since,
            renewal_alerted,
            score_drop_since,
            history,
        },
        trends_memo: Default::default(),
        applied,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::Values;
    use proptest::prelude::*;

    /// `AccountState::growable_bytes` bounds what users, features and event ids add to the
    /// encoding, and `Settings::changelog_record_bytes` the whole record, for a state as large as
    /// the settings let one grow: ids of the longest length, every ticket the cap keeps, a day
    /// count, score and history on every day of retention.
    #[test]
    fn the_largest_state_the_settings_allow_fits_its_changelog_record() {
        use crate::config::{ByteSize, Settings};
        let mut settings = Settings::default();
        settings.state.max_account_bytes = ByteSize(256 << 10);
        settings.events.max_open_tickets = 40;
        let params = crate::core::Params::new(&settings);
        // The latest event time accepted (9999-12-31T23:59:59.999Z).
        const MAX_MS: i64 = 253_402_300_799_999;
        let id_len = settings.events.max_id_len;
        let long = |tag: &str, i: usize| format!("{tag}{i:0>w$}", w = id_len - tag.len());
        let name = "n".repeat(settings.events.max_name_len);
        let first = 20_000;
        let last = first + settings.events.retention_days as i32 - 1;
        let mut s = AccountState { facts: Facts { name: Some(name.clone()), owner: Some(name), segment: Some(long("s", 0)), seats: Some(u32::MAX), arr: Some(1e300), renewal_day: Some(last + 30), start_day: Some(first), ts_ms: Some(MAX_MS) }, ..AccountState::default() };
        let max_tickets = 3 * settings.events.max_open_tickets as usize;
        for (n, day) in (first..=last).enumerate() {
            let ms = i64::from(day) * 86_400_000;
            s.advance(day, &params.state);
            s.usage.add(day, u32::MAX);
            for c in [&mut s.opened, &mut s.csat_sum, &mut s.csat_count, &mut s.nps_count, &mut s.nps_promoters, &mut s.nps_detractors] {
                c.add(day, u32::MAX);
            }
            s.last_usage_ms = Some(ms);
            s.first_day.get_or_insert(day);
            if n < max_tickets {
                let open = n < settings.events.max_open_tickets as usize;
                s.tickets.insert(&long("t", n), Ticket { priority: Priority::Urgent, opened_ms: 0, last_ms: MAX_MS - n as i64, open });
            }
            let mut i = 0;
            while s.growable_bytes() <= params.state.max_account_bytes {
                let k = n * 1_000_000 + i;
                s.users.observe(&long("u", k), day);
                s.features.observe(&long("f", k), day);
                s.seen_ids.insert((k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15), MAX_MS - k as i64);
                i += 1;
            }
            crate::core::evaluate(&mut s, &long("a", 0), ms + 86_399_999, &params);
        }
        let encoded = |s: &AccountState| {
            let mut w = Writer::default();
            encode(s, &mut w);
            w.buf.len()
        };
        let whole = encoded(&s);
        let mut bare = s.clone();
        bare.users = Distinct::default();
        bare.features = Distinct::default();
        bare.seen_ids.clear();
        assert!(s.growable_bytes() > params.state.max_account_bytes);
        assert!(whole - encoded(&bare) <= s.growable_bytes(), "{} > {}", whole - encoded(&bare), s.growable_bytes());
        // The key: the partition and the account id.
        let key = 4 + id_len;
        assert!(whole + key <= settings.changelog_record_bytes() as usize, "{whole} + {key} > {}", settings.changelog_record_bytes());
        assert!(whole > 256 << 10, "the state is as large as the bound lets it be ({whole} bytes)");
    }

    /// A state with every field set, some days at the ends of the range.
    fn rich_state() -> AccountState {
        let mut s = AccountState {
            facts: Facts {
                name: Some("Acme \"Corp\"".into()),
                seats: Some(40),
                segment: Some("enterprise".into()),
                owner: Some("Ana Souza".into()),
                arr: Some(125_000.5),
                renewal_day: Some(MAX_STORED_DAY),
                start_day: Some(MIN_STORED_DAY),
                ts_ms: Some(-5),
            },
            first_day: Some(20_000),
            last_usage_ms: Some(20_100 * 86_400_000),
            day: 20_100,
            applied: [7, 0, 1 << 40],
            ..AccountState::default()
        };
        for (i, day) in [20_011, 20_050, 20_100, 20_100].into_iter().enumerate() {
            s.usage.add(day, 3);
            s.users.observe(&format!("u{i}"), day);
            s.features.observe("export", day - i as i32);
            s.opened.add(day, 1);
            s.csat_sum.add(day, 4);
            s.csat_count.add(day, 1);
            s.seen_ids.insert((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15), i64::from(day) * 86_400_000);
        }
        s.tickets.insert("t-1", Ticket { priority: Priority::Urgent, opened_ms: 1, last_ms: 2, open: true });
        s.tickets.insert("t-2", Ticket { priority: Priority::Low, opened_ms: i64::MIN, last_ms: i64::MAX, open: false });
        let snap = |at_ms, score, band| Snapshot { at_ms, score, band, values: {
            let mut v = [None; N_MEASURES];
            v[0] = Some(1.5);
            v[2] = Some(-0.0);
            v[N_MEASURES - 1] = Some(f64::MAX);
            v.into()
        } };
        s.score = ScoreState {
            last: Some(snap(9, 42.5, Band::Yellow)),
            scorecard: "default@1".into(),
            band: Some(Band::Yellow),
            best: [(20_090, snap(8, 80.0, Band::Green)), (20_100, snap(9, 42.5, Band::Yellow))].into(),
            // The fixtures of version 4 (`testdata/state-v4.hex`) were written with the ten rules
            // of that release: the rules added since (champion_quiet) read back as never fired.
            rules: std::array::from_fn(|i| if i < 10 { RuleMark { armed: false, last_fired_ms: Some(3) } } else { RuleMark::default() }),
            emitted: Some((42.5, Band::Yellow)),
            next_due_ms: Some(10),
            recent_alerts: [AlertRef { rule: 1, at_ms: 9, summary: "No product usage for 14 days.".into() }].into(),
            alerts_live: true,
            drop_since: Some(20_090),
            score_drop_since: Some(MIN_STORED_DAY),
            expansion_since: Some(MAX_STORED_DAY),
            renewal_alerted: Some(20_400),
            history: [(20_010, 1000, Band::Green, 0), (20_011, 0, Band::Red, 0b11), (20_099, 425, Band::Yellow, 1 << 9)]
                .map(|(day, tenths, band, alerts)| crate::core::state::HistoryDay { day, tenths, band, alerts })
                .into(),
        };
        s.nps_count.add(20_050, 2);
        s.nps_promoters.add(20_050, 1);
        s.nps_detractors.add(20_100, 1);
        s
    }

    #[test]
    fn a_history_that_goes_back_or_spans_too_long_is_refused() {
        let mut s = rich_state();
        let h = |day, tenths| crate::core::state::HistoryDay { day, tenths, band: Band::Red, alerts: 0 };
        s.score.history = [h(20_010, 10), h(20_200, 20)].into();
        assert_eq!(decode(&encode_to_vec(&s)), Err(CodecError::Invalid("history")), "a gap of 190 days");
        s.score.history = [h(20_010, 1001)].into();
        assert_eq!(decode(&encode_to_vec(&s)), Err(CodecError::Invalid("history")), "a score above 100");
    }

    /// `rich_state` with one more alert.
    fn rich_state_with_a_made_alert_id() -> AccountState {
        let mut s = rich_state();
        let at_ms = 20_100 * 86_400_000;
        s.score.recent_alerts.push_back(AlertRef { rule: 2, at_ms, summary: "Health score 31.0 (red).".into() });
        s
    }

    #[test]
    fn a_state_written_by_version_4_reads_the_same_and_is_written_smaller() {
        // `rich_state_with_a_made_alert_id` as the release before version 5 encoded it (with
        // alert ids "a1" and the one `ids::alert_id` made; version 5 makes them again instead).
        let hex = include_str!("testdata/state-v4.hex").trim();
        let v4: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        assert_eq!(v4[0], 4);
        let s = decode(&v4).unwrap();
        assert_eq!(s, rich_state_with_a_made_alert_id());
        let v5 = encode_to_vec(&s);
        assert_eq!(v5[0], 5);
        assert_eq!(decode(&v5).unwrap(), s);
        // Three snapshots of a score and three values, 35 bytes each before: the daily bests
        // repeat the last one's values, so they take their code word (4 bytes) and at most an
        // integer score. The alert ids take none, not 3 and 33; the summaries 24 fewer (their
        // phrases a byte each: "No product usage for ", " days"); the history's days 5 fewer
        // (each has a gap or an alert here, so only band and score share bytes); the eight
        // user and feature keys' last days 9 fewer (days before the state's day).
        // And champion_quiet's mark, a rule added since, 2 bytes more (armed, never fired).
        assert_eq!(v4.len() - v5.len(), 1108 - 985, "{} bytes, version 4 took {}", v5.len(), v4.len());
    }

    /// `state.upgrade_from = 4` writes what the release before wrote: the fixture it wrote reads
    /// the same and has the same length, but for the first alert's id ("a1", which that release
    /// was handed; ids are now made from the account, rule and time, as the alert was given
    /// it). (Not byte for byte: user and feature maps are written in their hash order, which
    /// is seeded per process.)
    #[test]
    fn version_4_is_written_as_the_release_before_wrote_it() {
        let hex = include_str!("testdata/state-v4.hex").trim();
        let old: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        let s = rich_state_with_a_made_alert_id();
        let mut w = Writer::default();
        encode_version(&s, "acct-1", PREVIOUS_VERSION, &mut w);
        assert_eq!(w.buf[0], 4);
        assert_eq!(decode(&w.buf).unwrap(), s);
        // The made alert id (33 bytes, not "a1"'s 3) and champion_quiet's mark (2 bytes: a rule
        // added since, which that release skips as one it does not know).
        assert_eq!(w.buf.len(), old.len() - 3 + 33 + 2);
        for a in &s.score.recent_alerts {
            let id = a.alert_id("acct-1").unwrap();
            let mut field = vec![id.len() as u8];
            field.extend_from_slice(id.as_bytes());
            assert!(w.buf.windows(field.len()).any(|x| x == field), "alert id {id} written");
        }
        // And this build's version by the same call.
        let mut w = Writer::default();
        encode_version(&s, "acct-1", STATE_VERSION, &mut w);
        assert_eq!(decode(&w.buf).unwrap(), s);
        assert_eq!(w.buf.len(), encode_to_vec(&s).len());
    }

    proptest! {
        /// A state written in version 4 reads back as itself: any score history, snapshot values
        /// and summary text.
        #[test]
        fn version_4_round_trips(
            history in prop::collection::vec((1i32..30, 0u16..=1000, 0u8..3, any::<u16>()), 0..40),
            values in prop::collection::vec(prop::option::of(prop_oneof![-1e6f64..1e6, (-1000i64..1000).prop_map(|v| v as f64)]), N_MEASURES),
            summary in "\\PC{0,80}",
        ) {
            let mut s = rich_state();
            let mut day = 20_000;
            s.score.history = history
                .iter()
                .map(|&(gap, tenths, band, alerts)| {
                    day += gap;
                    crate::core::state::HistoryDay { day, tenths, band: Band::from_code(band).unwrap(), alerts }
                })
                .collect();
            let last = s.score.last.as_mut().unwrap();
            let mut a = [None; N_MEASURES];
            a.copy_from_slice(&values);
            last.values = a.into();
            s.score.best.push_back((20_101, last.clone()));
            s.score.recent_alerts[0].summary = summary.as_str().into();
            let mut w = Writer::default();
            encode_version(&s, "acct-7", PREVIOUS_VERSION, &mut w);
            prop_assert_eq!(w.buf[0], 4);
            prop_assert_eq!(decode(&w.buf).unwrap(), s);
        }
    }

    #[test]
    fn snapshot_values_round_trip_to_the_same_bits() {
        let mut s = rich_state();
        let odd = [f64::NAN, -f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 0.0, -7.0, 2f64.powi(53), 2f64.powi(53) + 2.0, -(2f64.powi(53)), 1e300, 5e-324, 0.1];
        let mut prev = s.score.last.clone().unwrap();
        s.score.best.clear();
        for (day, chunk) in odd.chunks(4).enumerate() {
            let mut snap = prev.clone();
            for (i, v) in chunk.iter().enumerate() {
                snap.values.set(i * 3, Some(*v));
            }
            snap.score = chunk[0];
            s.score.best.push_back((20_090 + day as i32, snap.clone()));
            prev = snap;
        }
        let back = decode(&encode_to_vec(&s)).unwrap();
        let bits = |s: &AccountState| -> Vec<Option<u64>> {
            s.score.best.iter().flat_map(|(_, b)| std::iter::once(Some(b.score.to_bits())).chain(b.values.iter().map(|v| v.map(f64::to_bits)))).collect()
        };
        assert_eq!(bits(&back), bits(&s));
    }

    #[test]
    fn a_snapshot_slot_the_same_as_a_previous_one_that_is_absent_is_refused() {
        let mut s = AccountState::default();
        let snap = Snapshot { at_ms: 1, score: 50.0, band: Band::Yellow, values: Values::NONE };
        s.score.last = Some(snap);
        let bytes = encode_to_vec(&s);
        // The code word follows the time (1 byte) and band of the only snapshot: score as an
        // integer (code 2), the rest absent. Set the first measure's code to "same".
        let at = bytes.windows(4).position(|w| w == 2u32.to_le_bytes()).unwrap();
        let mut bad = bytes.clone();
        bad[at] |= (SLOT_SAME << 2) as u8;
        assert_eq!(decode(&bad), Err(CodecError::Invalid("snapshot")));
        let mut bad = bytes.clone();
        bad[at] = SLOT_SAME as u8;
        assert_eq!(decode(&bad), Err(CodecError::Invalid("snapshot")), "the first snapshot's score the same as none");
        assert!(decode(&bytes).is_ok());
    }

    #[test]
    fn a_rich_state_round_trips_exactly() {
        let s = rich_state();
        assert_eq!(decode(&encode_to_vec(&s)).unwrap(), s);
        assert_eq!(decode(&encode_to_vec(&AccountState::default())).unwrap(), AccountState::default());
    }

    /// A default state whose users were last seen on `days` (one user per day).
    fn users_last_seen_on(days: &[i32]) -> Vec<u8> {
        let mut s = AccountState::default();
        for (i, d) in days.iter().enumerate() {
            s.users.seen.insert(format!("u{i}").into(), Seen { last_day: *d, days: 1 });
        }
        encode_to_vec(&s)
    }

    /// A version-3 encoding whose version-3 fields are all default, as version 2 (the fields are
    /// the same but for that tail; a default state takes 49 bytes in version 2).
    fn as_version_2(v3: &[u8]) -> Vec<u8> {
        let tail = encode_to_vec(&AccountState::default()).len() - 49;
        let mut v2 = v3[..v3.len() - tail].to_vec();
        v2[0] = 2;
        v2
    }

    #[test]
    fn last_seen_days_2e9_apart_are_an_error_not_an_abort() {
        // The corrupt value of the issue (version 2): before, decoding it sized a day array to
        // the distance and aborted.
        let bytes = as_version_2(&users_last_seen_on(&[0, 2_000_000_000]));
        assert_eq!(bytes.len(), 63);
        assert_eq!(decode(&bytes), Err(CodecError::Invalid("day")));
        assert_eq!(decode(&as_version_2(&users_last_seen_on(&[0, 1]))).map(|s| s.users.len()), Ok(2), "the same value with sane days decodes");
        assert_eq!(decode(&users_last_seen_on(&[0, 2_000_000_000])), Err(CodecError::Invalid("day")));
        assert_eq!(decode(&users_last_seen_on(&[-2_000_000_000, 2_000_000_000])), Err(CodecError::Invalid("day")));
        assert_eq!(decode(&users_last_seen_on(&[MIN_STORED_DAY - 1])), Err(CodecError::Invalid("day")));
        assert_eq!(decode(&users_last_seen_on(&[MAX_STORED_DAY + 1])), Err(CodecError::Invalid("day")));
        // Version 5 writes a last day as days before the state's: any i64 there is refused, none
        // overflows.
        let s = encode_to_vec(&AccountState::default());
        let at = 13;
        for before in [i64::MIN, i64::MAX, i64::from(i32::MIN), -i64::from(MAX_STORED_DAY) - 1] {
            let mut w = Writer { buf: s[..at].to_vec() };
            w.var(1);
            w.str("u");
            w.int(before);
            w.var(1);
            w.buf.extend_from_slice(&s[at + 1..]);
            assert_eq!(decode(&w.buf), Err(CodecError::Invalid("day")), "{before}");
        }
    }

    #[test]
    fn last_seen_days_far_apart_in_range_keep_one_span() {
        let s = decode(&users_last_seen_on(&[MIN_STORED_DAY, 0, MAX_STORED_DAY - 10, MAX_STORED_DAY])).unwrap();
        let mut kept: Vec<i32> = s.users.seen.values().map(|s| s.last_day).collect();
        kept.sort_unstable();
        assert_eq!(kept, [MAX_STORED_DAY - 10, MAX_STORED_DAY], "keys more than a span before the newest are dropped");
        assert_eq!(s.users.count_since(MIN_STORED_DAY), 2);
        assert!(s.users.last_seen.iter().count() <= MAX_SPAN_DAYS);
    }

    #[test]
    fn days_out_of_range_or_spans_too_long_are_errors() {
        // Version, no facts, no first day or last usage, day, then `usage` (start, count, counts).
        let prefix = |day: i64| {
            let mut w = Writer::default();
            w.u8(STATE_VERSION);
            for _ in 0..9 {
                w.u8(0);
            }
            w.int(day);
            w
        };
        for day in [-2_000_000_000, 2_000_000_000, i64::from(i32::MAX) + 1, i64::MIN] {
            assert_eq!(decode(&prefix(day).buf), Err(CodecError::Invalid("day")), "{day}");
        }
        let mut w = prefix(0);
        w.int(0);
        w.var(MAX_SPAN_DAYS as u64 + 1);
        w.buf.extend(std::iter::repeat_n(1, MAX_SPAN_DAYS + 1));
        assert_eq!(decode(&w.buf), Err(CodecError::Invalid("day span")));
        let mut w = prefix(0);
        w.int(i64::from(MAX_STORED_DAY));
        w.var(2);
        w.buf.extend([1, 1]);
        assert_eq!(decode(&w.buf), Err(CodecError::Invalid("day span")), "a span past the last day");
        let mut w = prefix(0);
        w.int(0);
        w.var(1);
        w.var(u64::from(u32::MAX) + 1);
        assert_eq!(decode(&w.buf), Err(CodecError::Invalid("day count")));
    }

    #[test]
    fn a_length_or_count_larger_than_the_buffer_is_an_error() {
        // A name of a billion bytes.
        let mut w = Writer::default();
        w.u8(STATE_VERSION);
        w.u8(1);
        w.var(1_000_000_000);
        w.buf.extend_from_slice(b"abc");
        assert_eq!(decode(&w.buf), Err(CodecError::Truncated));
        // A user count of 2^62 after a valid prefix, and one just beyond what the bytes can hold.
        let s = encode_to_vec(&AccountState::default());
        // After the version, nine absent options, the day and the empty usage (start, length).
        let at = 13;
        assert_eq!(s[at], 0, "the users' count");
        for n in [1u64 << 62, u64::MAX, 1 + (s.len() as u64 - 14) / 3] {
            let mut w = Writer { buf: s[..at].to_vec() };
            w.var(n);
            w.buf.extend_from_slice(&s[at + 1..]);
            assert_eq!(decode(&w.buf), Err(CodecError::Truncated), "{n}");
            assert_ne!(w.buf, s);
        }
    }

    #[test]
    fn every_truncation_and_every_byte_flip_is_an_error_or_a_value() {
        let bytes = encode_to_vec(&rich_state());
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "truncated to {n} bytes");
        }
        for i in 0..bytes.len() {
            for x in [0x01, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= x;
                let _ = decode(&b);
            }
        }
    }

    #[test]
    fn the_day_range_is_that_of_time_dates() {
        let epoch = time::Date::from_calendar_date(1970, time::Month::January, 1).unwrap().to_julian_day();
        assert_eq!(MIN_STORED_DAY, time::Date::MIN.to_julian_day() - epoch);
        assert_eq!(MAX_STORED_DAY, time::Date::MAX.to_julian_day() - epoch);
    }
}
