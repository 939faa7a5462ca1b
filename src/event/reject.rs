//! Why an input record was not applied. The reason codes are a contract: they appear in the
//! dead-letter header `kizashi.reason`, in `rejects.jsonl` and in the `reason` metric label.

use std::fmt;

/// The class of a rejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// Not valid JSON (or not UTF-8).
    NotJson,
    /// Valid JSON but not an object.
    NotObject,
    /// A required field is absent or null.
    MissingField,
    /// A field has the wrong JSON type.
    BadType,
    /// A field has the right type but a value outside its domain (unknown `kind`, CSAT 9, empty id...).
    BadValue,
    /// An id is longer than `events.max_id_len`.
    IdTooLong,
    /// `ts` is further ahead of the wall clock than `events.max_future`.
    TsInFuture,
    /// `ts` is older than the retention horizon behind stream time.
    TooLate,
    /// The message key is not the event's `account_id` (would break co-partitioning).
    KeyMismatch,
    /// A support event would open a ticket while the account already has
    /// `events.max_open_tickets` open.
    TooManyTickets,
    /// A record longer than `events.max_record_bytes`.
    TooLarge,
    /// A usage or support event for an account whose state already holds more than
    /// `state.max_account_bytes`.
    AccountTooLarge,
}

impl RejectReason {
    pub const ALL: [RejectReason; 12] = [
        RejectReason::NotJson,
        RejectReason::NotObject,
        RejectReason::MissingField,
        RejectReason::BadType,
        RejectReason::BadValue,
        RejectReason::IdTooLong,
        RejectReason::TsInFuture,
        RejectReason::TooLate,
        RejectReason::KeyMismatch,
        RejectReason::TooManyTickets,
        RejectReason::TooLarge,
        RejectReason::AccountTooLarge,
    ];

    pub fn code(self) -> &'static str {
        match self {
            RejectReason::NotJson => "not_json",
            RejectReason::NotObject => "not_object",
            RejectReason::MissingField => "missing_field",
            RejectReason::BadType => "bad_type",
            RejectReason::BadValue => "bad_value",
            RejectReason::IdTooLong => "id_too_long",
            RejectReason::TsInFuture => "ts_in_future",
            RejectReason::TooLate => "too_late",
            RejectReason::KeyMismatch => "key_mismatch",
            RejectReason::TooManyTickets => "too_many_tickets",
            RejectReason::TooLarge => "too_large",
            RejectReason::AccountTooLarge => "account_too_large",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A rejected record: the reason class and a human-readable detail naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub reason: RejectReason,
    pub detail: String,
}

impl Reject {
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Self { reason, detail: detail.into() }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}
