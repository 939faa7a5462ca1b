//! An account's board entry as the store keeps it beside the account's state (column family
//! `board`): what the board (`engine::board`) holds of an account, so a restart loads the board
//! without decoding every state. The store writes it with each state (`StoreBatch::put_account`).

use compact_str::CompactString;

use crate::bytes::{Reader, Writer};
use crate::core::{AccountState, Band};
use crate::store::codec::CodecError;

/// Version byte of a stored board entry; an entry of an account that ended is written in
/// `ENDED_VERSION` (the same with the status and day after it), one the CS team acted on in
/// `CS_VERSION` (the end or 0, then the status, the snooze's day and the band scored under an
/// override), every other one as before.
const ENTRY_VERSION: u8 = 1;
const ENDED_VERSION: u8 = 2;
const CS_VERSION: u8 = 3;

/// An account's board entry as the store keeps it (see `Entry::encode`).
pub fn entry_bytes(partition: u32, state: &AccountState) -> Vec<u8> {
    let mut w = Writer::default();
    Entry::of(partition, state).encode(&mut w);
    w.buf
}

/// What the board keeps of one account.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub partition: u32,
    pub score: Option<f64>,
    pub band: Option<Band>,
    pub segment: Option<CompactString>,
    pub arr: Option<f64>,
    pub seats: Option<u32>,
    pub name: Option<CompactString>,
    pub owner: Option<CompactString>,
    pub renewal_day: Option<i32>,
    /// Rules of the account's most recent alerts (at most `RECENT_ALERTS`), with their times.
    pub alerts: Vec<(u8, i64)>,
    /// The account ended (churned or cancelled) on this day: out of the queue.
    pub ended: Option<(crate::event::AccountStatus, i32)>,
    /// The CS team's status on the account (`core::actions::Status::code`; 0: open).
    pub status: u8,
    /// A snooze's end (the day the account is back).
    pub snoozed_until: Option<i32>,
    /// The band the scorecard gives while an override holds (`band` is the override's).
    pub scored_band: Option<Band>,
}

/// `Entry::status` of a snoozed and of a resolved account: out of the today view.
pub fn set_aside(status: u8) -> bool {
    use crate::core::actions::Status;
    matches!(Status::from_code(status), Some(Status::Snoozed | Status::Resolved))
}

impl Entry {
    pub fn of(partition: u32, s: &AccountState) -> Entry {
        let cs = s.cs.as_deref();
        let marked = cs.and_then(|c| c.marked.as_ref());
        let overridden = cs.and_then(|c| c.overridden.as_ref()).is_some();
        Entry {
            partition,
            score: s.score.last.as_ref().map(|l| l.score),
            band: s.score.band.map(|b| s.shown_band(b)),
            segment: s.facts.segment.as_deref().map(CompactString::from),
            arr: s.facts.arr,
            seats: s.facts.seats,
            name: s.facts.name.as_deref().map(CompactString::from),
            // Whom the account is assigned to, else the account record's owner.
            owner: cs.and_then(|c| c.assignee.as_deref()).or(s.facts.owner.as_deref()).map(CompactString::from),
            renewal_day: s.facts.renewal_day,
            alerts: s.score.recent_alerts.iter().map(|a| (a.rule, a.at_ms)).collect(),
            // Once its day has come (a contract cancelled to run on stays until then).
            ended: s.facts.ended.filter(|_| s.facts.ended_by(s.day)).map(|e| (e.status, e.day)),
            status: marked.map_or(0, |m| m.status.code()),
            snoozed_until: marked.filter(|m| m.status == crate::core::actions::Status::Snoozed).and_then(|m| m.until_day),
            scored_band: s.score.band.filter(|_| overridden),
        }
    }

    fn acted_on(&self) -> bool {
        self.status != 0 || self.snoozed_until.is_some() || self.scored_band.is_some()
    }

    /// The entry as kept in the store beside the account's state (so a restart loads the board
    /// without decoding every state). The partition is the key's.
    pub fn encode(&self, w: &mut Writer) {
        let opt_f64 = |w: &mut Writer, v: Option<f64>| match v {
            None => w.u8(0),
            Some(x) => {
                w.u8(1);
                w.f64(x);
            }
        };
        let opt_str = |w: &mut Writer, v: &Option<CompactString>| match v {
            None => w.u8(0),
            Some(x) => {
                w.u8(1);
                w.str(x);
            }
        };
        let version = match (self.acted_on(), self.ended.is_some()) {
            (true, _) => CS_VERSION,
            (false, true) => ENDED_VERSION,
            (false, false) => ENTRY_VERSION,
        };
        w.u8(version);
        opt_f64(w, self.score);
        w.u8(self.band.map_or(0, |b| b as u8 + 1));
        opt_str(w, &self.segment);
        opt_f64(w, self.arr);
        w.opt_int(self.seats.map(i64::from));
        opt_str(w, &self.name);
        opt_str(w, &self.owner);
        w.opt_int(self.renewal_day.map(i64::from));
        w.var(self.alerts.len() as u64);
        for &(rule, at) in &self.alerts {
            w.u8(rule);
            w.int(at);
        }
        match self.ended {
            Some((status, day)) => {
                w.u8(status.code());
                w.int(i64::from(day));
            }
            None if version == CS_VERSION => w.u8(0),
            None => {}
        }
        if version == CS_VERSION {
            w.u8(self.status);
            w.opt_int(self.snoozed_until.map(i64::from));
            w.u8(self.scored_band.map_or(0, |b| b as u8 + 1));
        }
    }

    /// Reads what `encode` wrote.
    pub fn decode(partition: u32, buf: &[u8]) -> Result<Entry, CodecError> {
        let mut r = Reader::new(buf);
        let version = r.u8()?;
        if !(ENTRY_VERSION..=CS_VERSION).contains(&version) {
            return Err(CodecError::Invalid("board entry version"));
        }
        fn opt_f64(r: &mut Reader<'_>) -> Result<Option<f64>, CodecError> {
            Ok(match r.u8()? {
                0 => None,
                _ => Some(r.f64()?),
            })
        }
        fn opt_str(r: &mut Reader<'_>) -> Result<Option<CompactString>, CodecError> {
            Ok(match r.u8()? {
                0 => None,
                _ => Some(CompactString::from(r.str()?)),
            })
        }
        let int32 = |v: Option<i64>, what| v.map(|x| i32::try_from(x).map_err(|_| CodecError::Invalid(what))).transpose();
        let score = opt_f64(&mut r)?;
        let band = match r.u8()? {
            0 => None,
            b => Some(Band::from_code(b - 1).ok_or(CodecError::Invalid("band"))?),
        };
        let segment = opt_str(&mut r)?;
        let arr = opt_f64(&mut r)?;
        let seats = r.opt_int()?.map(|x| u32::try_from(x).map_err(|_| CodecError::Invalid("seats"))).transpose()?;
        let name = opt_str(&mut r)?;
        let owner = opt_str(&mut r)?;
        let renewal_day = int32(r.opt_int()?, "renewal day")?;
        let n = r.count(2)?;
        let mut alerts = Vec::with_capacity(n);
        for _ in 0..n {
            alerts.push((r.u8()?, r.int()?));
        }
        let ended = match (version, if version == ENTRY_VERSION { 0 } else { r.u8()? }) {
            (CS_VERSION, 0) | (ENTRY_VERSION, _) => None,
            (_, code) => {
                let status = crate::event::AccountStatus::from_code(code)
                    .filter(|s| *s != crate::event::AccountStatus::Active)
                    .ok_or(CodecError::Invalid("status"))?;
                Some((status, int32(Some(r.int()?), "end day")?.unwrap_or_default()))
            }
        };
        let (mut status, mut snoozed_until, mut scored_band) = (0, None, None);
        if version == CS_VERSION {
            status = r.u8()?;
            if status != 0 && crate::core::actions::Status::from_code(status).is_none() {
                return Err(CodecError::Invalid("status"));
            }
            snoozed_until = int32(r.opt_int()?, "snooze day")?;
            scored_band = match r.u8()? {
                0 => None,
                b => Some(Band::from_code(b - 1).ok_or(CodecError::Invalid("band"))?),
            };
        }
        if !r.done() {
            return Err(CodecError::Invalid("trailing bytes"));
        }
        Ok(Entry { partition, score, band, segment, arr, seats, name, owner, renewal_day, alerts, ended, status, snoozed_until, scored_band })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn an_entry_reads_back_as_written_and_a_bad_one_is_refused() {
        let full = Entry {
            partition: 7,
            score: Some(41.5),
            band: Some(Band::Yellow),
            segment: Some("enterprise".into()),
            arr: Some(120_000.0),
            seats: Some(250),
            name: Some("Acme, Inc. — 東京".into()),
            owner: Some("dana@example.com".into()),
            renewal_day: Some(-3),
            alerts: vec![(3, 1_700_000_000_000), (0, -1)],
            ended: None,
            status: 0,
            snoozed_until: None,
            scored_band: None,
        };
        let empty = Entry { partition: 0, score: None, band: None, segment: None, arr: None, seats: None, name: None, owner: None, renewal_day: None, alerts: Vec::new(), ended: None, status: 0, snoozed_until: None, scored_band: None };
        let ended = Entry { ended: Some((crate::event::AccountStatus::Churned, 20_400)), ..full.clone() };
        let snoozed = Entry { status: 2, snoozed_until: Some(20_500), scored_band: Some(Band::Red), ..full.clone() };
        let both = Entry { status: 3, ..ended.clone() };
        let mut w = Writer::default();
        full.encode(&mut w);
        assert_eq!(w.buf[0], ENTRY_VERSION, "an entry that did not end is written as before");
        for e in [full, empty, ended, snoozed, both] {
            let mut w = Writer::default();
            e.encode(&mut w);
            assert_eq!(Entry::decode(e.partition, &w.buf).unwrap(), e);
            assert!(Entry::decode(e.partition, &w.buf[..w.buf.len() - 1]).is_err(), "truncated");
            let mut longer = w.buf.clone();
            longer.push(0);
            assert!(Entry::decode(e.partition, &longer).is_err(), "trailing bytes");
            let mut other = w.buf.clone();
            other[0] = CS_VERSION + 1;
            assert!(Entry::decode(e.partition, &other).is_err(), "unknown version");
        }
    }
}
