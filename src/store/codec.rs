//! Compact, versioned binary encoding of `AccountState`: a version byte, then varints,
//! zig-zag integers and length-prefixed strings. Decoding an unknown version is an error, not garbage.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::core::alerts::N_RULES;
use crate::core::days::DayCounts;
use crate::core::distinct::{Distinct, Seen};
use crate::core::measures::N_MEASURES;
use crate::core::state::{AccountState, AlertRef, Band, Facts, RuleMark, ScoreState, Snapshot, Ticket};
use crate::event::Priority;

/// Version 2 added the per-account applied offsets, version 3 NPS answers, the rules added with
/// it and their marks; versions 1 and 2 are still read.
pub const STATE_VERSION: u8 = 3;

/// Rule marks stored in place by versions 1 and 2 (the rules that existed then); later rules'
/// marks follow at the end.
const LEGACY_RULES: usize = 6;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("state encoded with unknown version {0} (this build reads version {STATE_VERSION})")]
    UnknownVersion(u8),
    #[error("state truncated")]
    Truncated,
    #[error("state holds an invalid {0}")]
    Invalid(&'static str),
}

#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn var(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }
    pub fn int(&mut self, v: i64) {
        self.var(((v << 1) ^ (v >> 63)) as u64);
    }
    pub fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn str(&mut self, s: &str) {
        self.var(s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
    }
    pub fn opt_int(&mut self, v: Option<i64>) {
        match v {
            None => self.u8(0),
            Some(x) => {
                self.u8(1);
                self.int(x);
            }
        }
    }
    fn days(&mut self, d: &DayCounts) {
        let items: Vec<(i32, u32)> = d.iter().collect();
        self.int(items.first().map_or(0, |x| i64::from(x.0)));
        self.var(items.len() as u64);
        for (_, c) in items {
            self.var(u64::from(c));
        }
    }
    fn snapshot(&mut self, s: &Snapshot) {
        self.int(s.at_ms);
        self.f64(s.score);
        self.u8(s.band as u8);
        let mask = s.values.iter().enumerate().fold(0u64, |m, (i, v)| m | (u64::from(v.is_some()) << i));
        self.var(mask);
        for v in s.values.iter().flatten() {
            self.f64(*v);
        }
    }
}

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }
    pub fn u8(&mut self) -> Result<u8, CodecError> {
        let b = *self.buf.get(self.pos).ok_or(CodecError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }
    pub fn var(&mut self) -> Result<u64, CodecError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(CodecError::Invalid("varint"))
    }
    pub fn int(&mut self) -> Result<i64, CodecError> {
        let v = self.var()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }
    fn i32(&mut self) -> Result<i32, CodecError> {
        i32::try_from(self.int()?).map_err(|_| CodecError::Invalid("day"))
    }
    fn len(&mut self) -> Result<usize, CodecError> {
        let n = self.var()? as usize;
        if n > self.buf.len() - self.pos {
            return Err(CodecError::Truncated);
        }
        Ok(n)
    }
    pub fn f64(&mut self) -> Result<f64, CodecError> {
        let bytes = self.buf.get(self.pos..self.pos + 8).ok_or(CodecError::Truncated)?;
        self.pos += 8;
        Ok(f64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }
    pub fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.len()?;
        let b = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(b)
    }
    pub fn fixed64(&mut self) -> Result<u64, CodecError> {
        Ok(self.f64()?.to_bits())
    }
    pub fn str(&mut self) -> Result<&'a str, CodecError> {
        let n = self.len()?;
        let s = std::str::from_utf8(&self.buf[self.pos..self.pos + n]).map_err(|_| CodecError::Invalid("string"))?;
        self.pos += n;
        Ok(s)
    }
    pub fn opt_int(&mut self) -> Result<Option<i64>, CodecError> {
        Ok(match self.u8()? {
            0 => None,
            _ => Some(self.int()?),
        })
    }
    fn opt_i32(&mut self) -> Result<Option<i32>, CodecError> {
        self.opt_int()?.map(|v| i32::try_from(v).map_err(|_| CodecError::Invalid("day"))).transpose()
    }
    fn days(&mut self) -> Result<DayCounts, CodecError> {
        let start = self.i32()?;
        let n = self.len()?;
        let counts = (0..n).map(|_| self.var().map(|c| c as u32)).collect::<Result<Vec<_>, _>>()?;
        Ok(DayCounts::from_parts(start, counts))
    }
    fn band(&mut self) -> Result<Band, CodecError> {
        Band::from_code(self.u8()?).ok_or(CodecError::Invalid("band"))
    }
    fn snapshot(&mut self) -> Result<Snapshot, CodecError> {
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
        Ok(Snapshot { at_ms, score, band, values })
    }
    pub fn done(&self) -> bool {
        self.pos == self.buf.len()
    }
}

fn write_distinct(w: &mut Writer, d: &Distinct) {
    w.var(d.seen.len() as u64);
    for (k, s) in &d.seen {
        w.str(k);
        w.int(i64::from(s.last_day));
        w.var(s.days);
    }
    w.days(&d.per_day);
}

fn read_distinct(r: &mut Reader<'_>) -> Result<Distinct, CodecError> {
    let n = r.len()?;
    let mut d = Distinct::default();
    d.seen.reserve(n);
    for _ in 0..n {
        let k: compact_str::CompactString = r.str()?.into();
        let last_day = r.i32()?;
        let days = r.var()?;
        // "last seen on day" counts are derived, not stored.
        d.last_seen.add(last_day, 1);
        d.seen.insert(k, Seen { last_day, days });
    }
    d.per_day = r.days()?;
    Ok(d)
}

/// Encodes a state (version byte first).
pub fn encode(s: &AccountState, w: &mut Writer) {
    w.u8(STATE_VERSION);
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
    write_distinct(w, &s.users);
    write_distinct(w, &s.features);
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
        w.buf.extend_from_slice(&h.to_le_bytes());
        w.int(*ts);
    }
    let sc = &s.score;
    match &sc.last {
        None => w.u8(0),
        Some(snap) => {
            w.u8(1);
            w.snapshot(snap);
        }
    }
    w.str(&sc.scorecard);
    w.u8(sc.band.map_or(0xff, |b| b as u8));
    w.var(sc.best.len() as u64);
    for (day, snap) in &sc.best {
        w.int(i64::from(*day));
        w.snapshot(snap);
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
        w.str(&a.alert_id);
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
        arr,
        renewal_day: r.opt_i32()?,
        start_day: r.opt_i32()?,
        ts_ms: r.opt_int()?,
    };
    let first_day = r.opt_i32()?;
    let last_usage_ms = r.opt_int()?;
    let day = r.i32()?;
    let usage = r.days()?;
    let users = read_distinct(&mut r)?;
    let features = read_distinct(&mut r)?;
    let n = r.len()?;
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
    let n = r.len()?;
    let mut seen_ids = FxHashMap::default();
    for _ in 0..n {
        let h = r.fixed64()?;
        seen_ids.insert(h, r.int()?);
    }
    let last = match r.u8()? {
        0 => None,
        _ => Some(r.snapshot()?),
    };
    let scorecard = r.str()?.to_owned();
    let band = match r.u8()? {
        0xff => None,
        b => Some(Band::from_code(b).ok_or(CodecError::Invalid("band"))?),
    };
    let n = r.len()?;
    let mut best = VecDeque::with_capacity(n);
    for _ in 0..n {
        let day = r.i32()?;
        best.push_back((day, r.snapshot()?));
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
    let n = r.len()?;
    let mut recent_alerts = VecDeque::with_capacity(n);
    for _ in 0..n {
        let rule = r.u8()?;
        let at_ms = r.int()?;
        recent_alerts.push_back(AlertRef { rule, at_ms, alert_id: r.str()?.to_owned() });
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
        let n = r.len()?;
        for i in 0..n {
            let armed = r.u8()? != 0;
            let last_fired_ms = r.opt_int()?;
            // Marks of rules this build does not know are skipped (a newer state read back).
            if let Some(m) = rules.get_mut(LEGACY_RULES + i) {
                *m = RuleMark { armed, last_fired_ms };
            }
        }
        alerts_live = r.u8()? != 0;
        drop_since = r.opt_i32()?;
        expansion_since = r.opt_i32()?;
        renewal_alerted = r.opt_i32()?;
        score_drop_since = r.opt_i32()?;
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
        },
        applied,
    })
}
