//! The versions before `PREVIOUS_VERSION`: states of versions 1 to 4 are read into the current
//! structure, what they lacked defaulted (the tests write version 4 too, to make the older ones).
//!
//! Where they differ from the current version (see `super`): version 1 has no applied offsets,
//! versions 1 and 2 nothing of what version 3 added (NPS answers, the later rules' marks, whether
//! alerts are live, the runs' first days), versions 1 to 3 no owner, score history or alert
//! summaries. Versions 1 to 4 write a user's or feature's last day as it is, a snapshot's values
//! as `f64`s behind a mask (`write_snapshot`), each recent alert's id, each day of the score
//! history as four fields, and the alerts' summaries as plain text.

use super::*;

/// A state of version `v` (1 to 4), after its version byte, upgraded to the current structure.
pub(super) fn decode(r: &mut Reader<'_>, v: u8) -> Result<AccountState, CodecError> {
    let mut s = AccountState { facts: read_facts(r)?, ..AccountState::default() };
    read_activity(r, &mut s, |r, _| r.day())?;
    // A day, then a snapshot: its time, 8-byte score, band and mask.
    read_scores(r, &mut s.score, 12, read_snapshot)?;
    // Rule, time and id length at least.
    let n = r.count(3)?;
    let mut recent_alerts = VecDeque::with_capacity(n);
    for _ in 0..n {
        let rule = r.u8()?;
        let at_ms = r.int()?;
        // The id `ids::alert_id` made of the account, rule and time (made again since).
        r.str()?;
        recent_alerts.push_back(AlertRef { rule, at_ms, summary: Default::default() });
    }
    s.score.recent_alerts = recent_alerts;
    if v >= 2 {
        read_applied(r, &mut s)?;
    }
    // An account scored before version 3 had its alerts live once it had been scored.
    s.score.alerts_live = s.score.last.is_some();
    if v >= 3 {
        read_nps_and_marks(r, &mut s)?;
    }
    if v >= 4 {
        s.facts.owner = read_opt_str(r)?;
        s.score.history = read_history(r, 4, |r, _| Ok((r.var()?, r.var()?, r.band()?, r.var()?)))?;
        for a in s.score.recent_alerts.iter_mut() {
            a.summary = Packed::new(r.str()?);
        }
    }
    Ok(s)
}

/// Encodes a state in version 4, its recent alerts' ids made again from `account_id` (what the
/// release before the one before wrote; the tests make versions 1 to 4 from it).
#[cfg(test)]
pub(super) fn encode_v4(s: &AccountState, account_id: &str, w: &mut Writer) {
    w.u8(4);
    write_facts(w, &s.facts);
    write_activity(w, s, i64::from);
    write_scores(w, &s.score, write_snapshot);
    // The recent alerts' rules, times and ids.
    w.var(s.score.recent_alerts.len() as u64);
    for a in &s.score.recent_alerts {
        w.u8(a.rule);
        w.int(a.at_ms);
        w.str(&a.alert_id(account_id).unwrap_or_default());
    }
    write_applied_nps_and_marks(w, s);
    write_opt_str(w, s.facts.owner.as_deref());
    write_history_v4(w, &s.score.history);
    for a in &s.score.recent_alerts {
        w.str(&a.summary.text());
    }
}

/// A snapshot as versions 1 to 4 wrote it: time, score, band, the measures' mask and their
/// `f64`s.
#[cfg(test)]
fn write_snapshot(w: &mut Writer, s: &Snapshot) {
    w.int(s.at_ms);
    w.f64(s.score);
    w.u8(s.band as u8);
    let mask = s.values.iter().enumerate().fold(0u64, |m, (i, v)| m | u64::from(v.is_some()) << i);
    w.var(mask);
    for v in s.values.iter().flatten() {
        w.f64(v);
    }
}

/// What `write_snapshot` wrote.
fn read_snapshot(r: &mut Reader<'_>) -> Result<Snapshot, CodecError> {
    let at_ms = r.int()?;
    let score = r.f64()?;
    let band = r.band()?;
    let mask = r.var()?;
    let mut values = [None; N_MEASURES];
    for (i, v) in values.iter_mut().enumerate() {
        if mask & (1 << i) != 0 {
            *v = Some(r.f64()?);
        }
    }
    Ok(Snapshot { at_ms, score, band, values: values.into() })
}

/// A score history as version 4 wrote it: count, first day, then each day's gap from the day
/// before, score in tenths, band and alerts' bits.
#[cfg(test)]
fn write_history_v4(w: &mut Writer, history: &VecDeque<HistoryDay>) {
    w.var(history.len() as u64);
    w.int(i64::from(history.front().map_or(0, |h| h.day)));
    let mut prev = history.front().map_or(0, |h| h.day);
    for h in history {
        w.var(u64::try_from(h.day - prev).unwrap_or(0));
        w.var(u64::from(h.tenths));
        w.u8(h.band as u8);
        w.var(u64::from(h.alerts));
        prev = h.day;
    }
}
