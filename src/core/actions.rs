//! What the CS team did about an account (`cs-actions` records): the status of its open alert
//! (acknowledged, snoozed until a day, resolved with a note), whom it is assigned to, and a band
//! set by hand until a day. Applied like any other event, in event-time order, so every
//! instance, a restart and a replay agree on it.
//!
//! The rules:
//! - A status belongs to the alert that was the account's newest when it was set. A new alert
//!   reopens the account (`open`), except that a snooze holds against new alerts no more severe
//!   than the one snoozed, until its day.
//! - A snooze and an override end on their `until` day (the engine's timer re-scores the account
//!   that day); `clear_override` ends an override at once.
//! - An override is the band every output shows (scores, alerts, the queue, the page); the rules
//!   still judge the band the scorecard gives (`override.scored_band`), so the data goes on being
//!   watched while the CSM's judgement is shown.

use serde::Serialize;

use super::state::Band;
use crate::event::timestamp::{format_day, format_ms};
use crate::event::{ActionEvent, ActionKind};

/// Where the team stands on an account's newest alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Acknowledged,
    Snoozed,
    Resolved,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Acknowledged => "acknowledged",
            Status::Snoozed => "snoozed",
            Status::Resolved => "resolved",
        }
    }
    pub fn code(self) -> u8 {
        self as u8 + 1
    }
    /// From `code` (0 is `open`: no status).
    pub fn from_code(c: u8) -> Option<Status> {
        [Status::Acknowledged, Status::Snoozed, Status::Resolved].get(usize::from(c).checked_sub(1)?).copied()
    }
}

/// The status set on an account's alert, by whom, when and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marked {
    pub status: Status,
    pub by: Option<String>,
    pub at_ms: i64,
    /// A snooze's end (the first day the account is back).
    pub until_day: Option<i32>,
    pub note: Option<String>,
    /// The alert it was set on: (rule code, time), the account's newest then.
    pub alert: Option<(u8, i64)>,
}

/// A band set by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub band: Band,
    pub reason: String,
    pub by: Option<String>,
    pub at_ms: i64,
    /// The first day it no longer holds.
    pub until_day: i32,
}

/// Everything the team's actions left on an account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsState {
    pub marked: Option<Marked>,
    pub assignee: Option<String>,
    pub overridden: Option<Override>,
}

impl CsState {
    /// Applies an action; `newest_alert` is the account's newest alert (rule code, time). An
    /// override without a known band or an end day (which the decoder refuses) changes nothing.
    pub fn apply(&mut self, e: &ActionEvent<'_>, newest_alert: Option<(u8, i64)>) {
        let owned = |s: &Option<std::borrow::Cow<'_, str>>| s.as_deref().map(str::to_owned);
        let mark = |status| Marked {
            status,
            by: owned(&e.by),
            at_ms: e.ts_ms,
            until_day: e.until_day.filter(|_| status == Status::Snoozed),
            note: owned(&e.note),
            alert: newest_alert,
        };
        match e.action {
            ActionKind::Acknowledge => self.marked = Some(mark(Status::Acknowledged)),
            ActionKind::Snooze => self.marked = Some(mark(Status::Snoozed)),
            ActionKind::Resolve => self.marked = Some(mark(Status::Resolved)),
            ActionKind::Assign => self.assignee = owned(&e.owner),
            ActionKind::Override => {
                let band = Band::ALL.into_iter().find(|b| e.band.as_deref() == Some(b.name()));
                if let (Some(band), Some(until_day)) = (band, e.until_day) {
                    self.overridden = Some(Override { band, reason: owned(&e.note).unwrap_or_default(), by: owned(&e.by), at_ms: e.ts_ms, until_day });
                }
            }
            ActionKind::ClearOverride => self.overridden = None,
        }
    }

    /// Ends what has run out by `day` (a snooze, an override); whether anything ended.
    pub fn expire(&mut self, day: i32) -> bool {
        let mut ended = false;
        if self.marked.as_ref().is_some_and(|m| m.status == Status::Snoozed && m.until_day.is_some_and(|u| u <= day)) {
            self.marked = None;
            ended = true;
        }
        if self.overridden.as_ref().is_some_and(|o| o.until_day <= day) {
            self.overridden = None;
            ended = true;
        }
        ended
    }

    /// A new alert of `severity` (a rule's severity rank, higher is worse) fired: it reopens the
    /// account unless a snooze holds against it (`snoozed_rank`: the rank of the snoozed alert).
    pub fn alert_fired(&mut self, rank: u8, snoozed_rank: Option<u8>) {
        let holds = self.marked.as_ref().is_some_and(|m| m.status == Status::Snoozed) && snoozed_rank.is_some_and(|s| rank <= s);
        if !holds {
            self.marked = None;
        }
    }

    /// The next day something ends (a snooze, an override).
    pub fn next_end(&self) -> Option<i32> {
        let snooze = self.marked.as_ref().filter(|m| m.status == Status::Snoozed).and_then(|m| m.until_day);
        let over = self.overridden.as_ref().map(|o| o.until_day);
        [snooze, over].into_iter().flatten().min()
    }

    pub fn is_empty(&self) -> bool {
        self.marked.is_none() && self.assignee.is_none() && self.overridden.is_none()
    }

    pub fn heap_bytes(&self) -> usize {
        use super::ids::alloc_bytes;
        let opt = |s: &Option<String>| s.as_ref().map_or(0, |s| alloc_bytes(s.capacity()));
        let m = self.marked.as_ref().map_or(0, |m| opt(&m.by) + opt(&m.note));
        let o = self.overridden.as_ref().map_or(0, |o| alloc_bytes(o.reason.capacity()) + opt(&o.by));
        alloc_bytes(std::mem::size_of::<CsState>()) + m + o + opt(&self.assignee)
    }
}

/// A severity name's rank: `high` 3, `medium` 2, `low` 1, anything else 0.
pub fn severity_rank(severity: &str) -> u8 {
    match severity {
        "high" => 3,
        "medium" => 2,
        "low" => 1,
        _ => 0,
    }
}

/// The name of a status code (`Status::code`; 0, or any code no status has, is `open`).
pub fn code_name(code: u8) -> &'static str {
    Status::from_code(code).map_or("open", Status::name)
}

/// The code of a status name (`open`: 0).
pub fn name_code(name: &str) -> Option<u8> {
    (0..=3).find(|&c| code_name(c) == name)
}

/// The status name of `cs` (`open` without one).
pub fn status_name(cs: Option<&CsState>) -> &'static str {
    cs.and_then(|c| c.marked.as_ref()).map_or("open", |m| m.status.name())
}

/// The `action` object of the JSON contract: the status's details.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MarkedJson {
    pub status: &'static str,
    pub by: Option<String>,
    pub at: String,
    pub until: Option<String>,
    pub note: Option<String>,
    pub alert_id: Option<String>,
}

/// The `override` object of the JSON contract.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OverrideJson {
    pub band: &'static str,
    /// The band the scorecard gives.
    pub scored_band: Option<&'static str>,
    pub reason: String,
    pub by: Option<String>,
    pub at: String,
    /// The first day the override no longer holds.
    pub until: String,
}

/// What outputs say of an account's CS state: the JSON objects (see the README's `cs-actions`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CsView {
    pub status: &'static str,
    pub action: Option<MarkedJson>,
    pub assignee: Option<String>,
    pub overridden: Option<OverrideJson>,
}

impl CsView {
    pub fn of(account_id: &str, cs: Option<&CsState>, scored_band: Option<Band>) -> CsView {
        let Some(cs) = cs else { return CsView { status: "open", ..CsView::default() } };
        CsView {
            status: status_name(Some(cs)),
            action: cs.marked.as_ref().map(|m| MarkedJson {
                status: m.status.name(),
                by: m.by.clone(),
                at: format_ms(m.at_ms),
                until: m.until_day.map(format_day),
                note: m.note.clone(),
                alert_id: m.alert.and_then(|(rule, at)| super::Rule::from_code(rule).map(|r| super::ids::alert_id(account_id, r.name(), at))),
            }),
            assignee: cs.assignee.clone(),
            overridden: cs.overridden.as_ref().map(|o| OverrideJson {
                band: o.band.name(),
                scored_band: scored_band.map(Band::name),
                reason: o.reason.clone(),
                by: o.by.clone(),
                at: format_ms(o.at_ms),
                until: format_day(o.until_day),
            }),
        }
    }
}

/// The CS team's part of an alert, a score or the account view: `status` always; `action`,
/// `assignee` and `override` when there is one.
#[derive(Serialize)]
pub struct CsJson<'a> {
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'a MarkedJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignee: Option<&'a str>,
    #[serde(rename = "override", skip_serializing_if = "Option::is_none")]
    pub overridden: Option<&'a OverrideJson>,
}

impl<'a> CsJson<'a> {
    pub fn of(v: &'a CsView) -> CsJson<'a> {
        CsJson { status: v.status, action: v.action.as_ref(), assignee: v.assignee.as_deref(), overridden: v.overridden.as_ref() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn action(kind: ActionKind, until: Option<i32>) -> ActionEvent<'static> {
        ActionEvent {
            account_id: Cow::Borrowed("a"),
            action: kind,
            by: Some(Cow::Borrowed("dana")),
            note: Some(Cow::Borrowed("called them")),
            until_day: until,
            owner: Some(Cow::Borrowed("lee")),
            band: Some(Cow::Borrowed("red")),
            ts_ms: 5,
        event_id: None,
        }
    }

    #[test]
    fn a_snooze_holds_against_alerts_no_worse_and_ends_on_its_day() {
        let mut cs = CsState::default();
        cs.apply(&action(ActionKind::Snooze, Some(100)), Some((3, 1)));
        cs.alert_fired(2, Some(2));
        assert_eq!(status_name(Some(&cs)), "snoozed", "as severe: still snoozed");
        cs.alert_fired(3, Some(2));
        assert_eq!(status_name(Some(&cs)), "open", "worse: reopened");
        cs.apply(&action(ActionKind::Snooze, Some(100)), Some((3, 1)));
        assert_eq!(cs.next_end(), Some(100));
        assert!(!cs.expire(99));
        assert!(cs.expire(100));
        assert_eq!(status_name(Some(&cs)), "open");
    }

    #[test]
    fn acknowledged_and_resolved_reopen_on_any_new_alert() {
        for kind in [ActionKind::Acknowledge, ActionKind::Resolve] {
            let mut cs = CsState::default();
            cs.apply(&action(kind, None), None);
            assert_ne!(status_name(Some(&cs)), "open");
            cs.alert_fired(0, Some(3));
            assert_eq!(status_name(Some(&cs)), "open", "{kind:?}");
        }
    }

    #[test]
    fn an_override_holds_until_its_day_or_until_cleared_and_assignment_stays() {
        let mut cs = CsState::default();
        cs.apply(&action(ActionKind::Override, Some(50)), None);
        cs.apply(&action(ActionKind::Assign, None), None);
        assert_eq!(cs.overridden.as_ref().map(|o| (o.band, o.reason.as_str())), Some((Band::Red, "called them")));
        assert!(cs.expire(50));
        assert!(cs.overridden.is_none());
        cs.apply(&action(ActionKind::Override, Some(80)), None);
        cs.apply(&action(ActionKind::ClearOverride, None), None);
        assert!(cs.overridden.is_none());
        assert_eq!(cs.assignee.as_deref(), Some("lee"));
    }
}
