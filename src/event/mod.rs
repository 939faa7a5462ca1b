//! Decoding and validation of the four input event kinds (DESIGN §3): usage, support, account
//! records, and the CS team's actions on an account (`cs-actions`).
//!
//! Owns the input contract: what a valid usage, support or account event is and, for anything
//! else, the typed rejection reason that the dead-letter topic and the rejects file carry.
//! It never touches state: a decoded event is plain data borrowed from the input bytes.

mod decode;
mod reject;
pub mod timestamp;

use std::borrow::Cow;

pub use decode::{decode, decode_with_serde_only, too_large, DecodeLimits};
pub use reject::{Reject, RejectReason};

/// Which input an event comes from; each has its own topic and schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    Usage,
    Support,
    Account,
    /// What the CS team did: acknowledge, snooze, resolve, assign, override (topic `cs-actions`).
    Action,
}

/// How many input kinds there are (arrays indexed by `EventKind as usize`).
pub const N_KINDS: usize = 4;

impl EventKind {
    pub const ALL: [EventKind; N_KINDS] = [EventKind::Usage, EventKind::Support, EventKind::Account, EventKind::Action];

    /// Usage and support: what the customer did. Account records and the CS team's actions are
    /// facts about the account: no retention horizon, no stream time, no size limit.
    pub fn is_activity(self) -> bool {
        matches!(self, EventKind::Usage | EventKind::Support)
    }

    pub fn name(self) -> &'static str {
        match self {
            EventKind::Usage => "usage",
            EventKind::Support => "support",
            EventKind::Account => "account",
            EventKind::Action => "action",
        }
    }
}

/// A product-usage event.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageEvent<'a> {
    pub account_id: Cow<'a, str>,
    pub user_id: Cow<'a, str>,
    pub event: Cow<'a, str>,
    pub feature: Option<Cow<'a, str>>,
    pub ts_ms: i64,
    pub event_id: Option<Cow<'a, str>>,
}

/// What happened to a support ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketKind {
    Opened,
    Updated,
    Closed,
    Reopened,
    Csat,
    /// A Net Promoter Score answer (`score` 0–10); needs no ticket.
    Nps,
}

/// Ticket priority, ordered from least to most pressing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

impl Priority {
    pub fn from_code(c: u8) -> Option<Priority> {
        [Priority::Low, Priority::Normal, Priority::High, Priority::Urgent].get(c as usize).copied()
    }
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// A support event.
#[derive(Debug, Clone, PartialEq)]
pub struct SupportEvent<'a> {
    pub account_id: Cow<'a, str>,
    pub ticket_id: Cow<'a, str>,
    pub kind: TicketKind,
    pub priority: Option<Priority>,
    /// 1..=5, present exactly when `kind` is `Csat`.
    pub csat: Option<u8>,
    /// 0..=10, present exactly when `kind` is `Nps`.
    pub nps: Option<u8>,
    pub ts_ms: i64,
    pub event_id: Option<Cow<'a, str>>,
}

/// Where an account stands with the business (an account record's `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccountStatus {
    #[default]
    Active,
    /// The customer left.
    Churned,
    /// The contract was cancelled (it may run to its end date).
    Cancelled,
}

impl AccountStatus {
    pub fn name(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Churned => "churned",
            AccountStatus::Cancelled => "cancelled",
        }
    }

    /// From a record's `status`, whatever its case (`canceled` too).
    pub fn parse(s: &str) -> Option<AccountStatus> {
        [("active", AccountStatus::Active), ("churned", AccountStatus::Churned), ("cancelled", AccountStatus::Cancelled), ("canceled", AccountStatus::Cancelled)]
            .into_iter()
            .find(|(n, _)| s.eq_ignore_ascii_case(n))
            .map(|(_, v)| v)
    }

    /// The byte the state and the board keep (0: active).
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(c: u8) -> Option<AccountStatus> {
        [AccountStatus::Active, AccountStatus::Churned, AccountStatus::Cancelled].get(usize::from(c)).copied()
    }
}

/// An account record (the latest one per account wins, by `ts`).
#[derive(Debug, Clone, PartialEq)]
pub struct AccountEvent<'a> {
    pub account_id: Cow<'a, str>,
    pub name: Option<Cow<'a, str>>,
    pub seats: Option<u32>,
    pub segment: Option<Cow<'a, str>>,
    /// The CSM responsible for the account.
    pub owner: Option<Cow<'a, str>>,
    pub arr: Option<f64>,
    /// Days since 1970-01-01.
    pub renewal_day: Option<i32>,
    /// Days since 1970-01-01; the customer's start, used for the onboarding scorecard.
    pub start_day: Option<i32>,
    /// `active` unless the record says the account ended.
    pub status: AccountStatus,
    /// Days since 1970-01-01: the day an ended account ended (`end_date`; default: the record's day).
    pub end_day: Option<i32>,
    pub ts_ms: i64,
}

/// What a CS team member did about an account (a `cs-actions` record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    /// Seen, being handled: the open alert stays in the queue, marked.
    Acknowledge,
    /// Out of the today view until `until` (or a new, worse alert).
    Snooze,
    /// Handled, with a note: out of the today view until the next alert.
    Resolve,
    /// The account's owner from now on (`owner`).
    Assign,
    /// The account's band set by hand (`band`, `note` as the reason) until `until`.
    Override,
    /// Ends an override before its date.
    ClearOverride,
}

impl ActionKind {
    pub const ALL: [ActionKind; 6] =
        [ActionKind::Acknowledge, ActionKind::Snooze, ActionKind::Resolve, ActionKind::Assign, ActionKind::Override, ActionKind::ClearOverride];

    pub fn name(self) -> &'static str {
        match self {
            ActionKind::Acknowledge => "acknowledge",
            ActionKind::Snooze => "snooze",
            ActionKind::Resolve => "resolve",
            ActionKind::Assign => "assign",
            ActionKind::Override => "override",
            ActionKind::ClearOverride => "clear_override",
        }
    }

    pub fn parse(s: &str) -> Option<ActionKind> {
        Self::ALL.into_iter().find(|a| a.name() == s)
    }
}

/// A `cs-actions` record.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionEvent<'a> {
    pub account_id: Cow<'a, str>,
    pub action: ActionKind,
    /// Who did it.
    pub by: Option<Cow<'a, str>>,
    /// Why (an override's reason, a resolution's note).
    pub note: Option<Cow<'a, str>>,
    /// Days since 1970-01-01: a snooze's or an override's last day is the day before.
    pub until_day: Option<i32>,
    /// The new owner (`assign`).
    pub owner: Option<Cow<'a, str>>,
    /// The band set by hand (`override`): `green`, `yellow` or `red`.
    pub band: Option<Cow<'a, str>>,
    pub ts_ms: i64,
    pub event_id: Option<Cow<'a, str>>,
}

/// Any decoded event.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    Usage(UsageEvent<'a>),
    Support(SupportEvent<'a>),
    Account(AccountEvent<'a>),
    Action(ActionEvent<'a>),
}

impl<'a> Event<'a> {
    pub fn account_id(&self) -> &str {
        match self {
            Event::Usage(e) => &e.account_id,
            Event::Support(e) => &e.account_id,
            Event::Account(e) => &e.account_id,
            Event::Action(e) => &e.account_id,
        }
    }
    pub fn ts_ms(&self) -> i64 {
        match self {
            Event::Usage(e) => e.ts_ms,
            Event::Support(e) => e.ts_ms,
            Event::Account(e) => e.ts_ms,
            Event::Action(e) => e.ts_ms,
        }
    }
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Usage(_) => EventKind::Usage,
            Event::Support(_) => EventKind::Support,
            Event::Account(_) => EventKind::Account,
            Event::Action(_) => EventKind::Action,
        }
    }
    pub fn event_id(&self) -> Option<&str> {
        match self {
            Event::Usage(e) => e.event_id.as_deref(),
            Event::Support(e) => e.event_id.as_deref(),
            Event::Account(_) => None,
            Event::Action(e) => e.event_id.as_deref(),
        }
    }
    /// Detaches the event from the input buffer.
    pub fn into_owned(self) -> Event<'static> {
        fn o(c: Cow<'_, str>) -> Cow<'static, str> {
            Cow::Owned(c.into_owned())
        }
        match self {
            Event::Usage(e) => Event::Usage(UsageEvent {
                account_id: o(e.account_id),
                user_id: o(e.user_id),
                event: o(e.event),
                feature: e.feature.map(o),
                ts_ms: e.ts_ms,
                event_id: e.event_id.map(o),
            }),
            Event::Support(e) => Event::Support(SupportEvent {
                account_id: o(e.account_id),
                ticket_id: o(e.ticket_id),
                kind: e.kind,
                priority: e.priority,
                csat: e.csat,
                nps: e.nps,
                ts_ms: e.ts_ms,
                event_id: e.event_id.map(o),
            }),
            Event::Account(e) => Event::Account(AccountEvent {
                account_id: o(e.account_id),
                name: e.name.map(o),
                seats: e.seats,
                segment: e.segment.map(o),
                owner: e.owner.map(o),
                arr: e.arr,
                renewal_day: e.renewal_day,
                start_day: e.start_day,
                status: e.status,
                end_day: e.end_day,
                ts_ms: e.ts_ms,
            }),
            Event::Action(e) => Event::Action(ActionEvent {
                account_id: o(e.account_id),
                action: e.action,
                by: e.by.map(o),
                note: e.note.map(o),
                until_day: e.until_day,
                owner: e.owner.map(o),
                band: e.band.map(o),
                ts_ms: e.ts_ms,
                event_id: e.event_id.map(o),
            }),
        }
    }
}
