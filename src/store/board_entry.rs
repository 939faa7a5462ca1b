//! An account's board entry as the store keeps it beside the account's state (column family
//! `board`): what the board (`engine::board`) holds of an account, so a restart loads the board
//! without decoding every state. The store writes it with each state (`StoreBatch::put_account`).

use compact_str::CompactString;

use crate::bytes::{Reader, Writer};
use crate::core::{AccountState, Band};
use crate::store::codec::CodecError;

/// Version byte of a stored board entry; an entry of an account that ended is written in
/// `ENDED_VERSION` (the same with the status and day after it), every other one as before.
const ENTRY_VERSION: u8 = 1;
const ENDED_VERSION: u8 = 2;

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
}

impl Entry {
    pub fn of(partition: u32, s: &AccountState) -> Entry {
        Entry {
            partition,
            score: s.score.last.as_ref().map(|l| l.score),
            band: s.score.band,
            segment: s.facts.segment.as_deref().map(CompactString::from),
            arr: s.facts.arr,
            seats: s.facts.seats,
            name: s.facts.name.as_deref().map(CompactString::from),
            owner: s.facts.owner.as_deref().map(CompactString::from),
            renewal_day: s.facts.renewal_day,
            alerts: s.score.recent_alerts.iter().map(|a| (a.rule, a.at_ms)).collect(),
            // Once its day has come (a contract cancelled to run on stays until then).
            ended: s.facts.ended.filter(|_| s.facts.ended_by(s.day)).map(|e| (e.status, e.day)),
        }
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
        w.u8(if self.ended.is_some() { ENDED_VERSION } else { ENTRY_VERSION });
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
        if let Some((status, day)) = self.ended {
            w.u8(status.code());
            w.int(i64::from(day));
        }
    }

    /// Reads what `encode` wrote.
    pub fn decode(partition: u32, buf: &[u8]) -> Result<Entry, CodecError> {
        let mut r = Reader::new(buf);
        let version = r.u8()?;
        if version != ENTRY_VERSION && version != ENDED_VERSION {
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
        let ended = if version == ENDED_VERSION {
            let status = crate::event::AccountStatus::from_code(r.u8()?)
                .filter(|s| *s != crate::event::AccountStatus::Active)
                .ok_or(CodecError::Invalid("status"))?;
            Some((status, int32(Some(r.int()?), "end day")?.unwrap_or_default()))
        } else {
            None
        };
        if !r.done() {
            return Err(CodecError::Invalid("trailing bytes"));
        }
        Ok(Entry { partition, score, band, segment, arr, seats, name, owner, renewal_day, alerts, ended })
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
        };
        let empty = Entry { partition: 0, score: None, band: None, segment: None, arr: None, seats: None, name: None, owner: None, renewal_day: None, alerts: Vec::new(), ended: None };
        let ended = Entry { ended: Some((crate::event::AccountStatus::Churned, 20_400)), ..full.clone() };
        let mut w = Writer::default();
        full.encode(&mut w);
        assert_eq!(w.buf[0], ENTRY_VERSION, "an entry that did not end is written as before");
        for e in [full, empty, ended] {
            let mut w = Writer::default();
            e.encode(&mut w);
            assert_eq!(Entry::decode(e.partition, &w.buf).unwrap(), e);
            assert!(Entry::decode(e.partition, &w.buf[..w.buf.len() - 1]).is_err(), "truncated");
            let mut longer = w.buf.clone();
            longer.push(0);
            assert!(Entry::decode(e.partition, &longer).is_err(), "trailing bytes");
            let mut other = w.buf.clone();
            other[0] = ENDED_VERSION + 1;
            assert!(Entry::decode(e.partition, &other).is_err(), "unknown version");
        }
    }
}
