//! The records both mixes generate, and how each kind is written: one JSON line, as the input
//! topics take it.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::event::timestamp::{format_day, format_ms, DAY_MS};
use crate::event::EventKind;

/// One generated record.
pub struct Record {
    pub kind: EventKind,
    pub ts_ms: i64,
    pub account_id: String,
    pub line: String,
}

/// The CS managers accounts are assigned to (by account number, so no random draw changes).
const OWNERS: [&str; 6] = ["Ana Souza", "Ben Okafor", "Chen Wei", "Dana Levi", "Eli Moreau", "Farah Khan"];

const NAMES: [&str; 16] = [
    "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Soylent", "Tyrell",
    "Wonka", "Stark", "Wayne", "Cyberdyne", "Gringotts", "Oscorp", "Aperture", "Monarch",
];

#[derive(Serialize)]
struct UsageOut<'a> {
    account_id: &'a str,
    user_id: &'a str,
    event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    feature: Option<&'a str>,
    ts: String,
}

#[derive(Serialize)]
struct SupportOut<'a> {
    account_id: &'a str,
    ticket_id: &'a str,
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    csat: Option<u8>,
    ts: i64,
    event_id: String,
}

#[derive(Serialize)]
struct AccountOut<'a> {
    account_id: &'a str,
    name: String,
    seats: u32,
    segment: &'a str,
    owner: &'static str,
    arr: u64,
    renewal_date: String,
    start_date: String,
    ts: String,
}

/// A usage event at `ts`: `feature` used, or a login without one.
pub(super) fn usage(account_id: &str, user_id: &str, feature: Option<&str>, ts: i64) -> Record {
    let event = if feature.is_some() { "feature_used" } else { "login" };
    let line = serde_json::to_string(&UsageOut { account_id, user_id, event, feature, ts: format_ms(ts) }).expect("serialises");
    Record { kind: EventKind::Usage, ts_ms: ts, account_id: account_id.to_string(), line }
}

/// A support event of `ticket` at `ts` (`kind`: opened, closed or csat); `event_seq` counts the
/// account's support events and makes the event id.
pub(super) fn support(account_id: &str, event_seq: &mut u64, ticket: &str, kind: &str, priority: Option<&str>, csat: Option<u8>, ts: i64) -> Record {
    *event_seq += 1;
    let line = serde_json::to_string(&SupportOut {
        account_id,
        ticket_id: ticket,
        kind,
        priority,
        csat,
        ts,
        event_id: format!("{account_id}-s{event_seq}"),
    })
    .expect("serialises");
    Record { kind: EventKind::Support, ts_ms: ts, account_id: account_id.to_string(), line }
}

/// The id of the account's `seq`th ticket.
pub(super) fn ticket_id(account_id: &str, seq: u32) -> String {
    format!("T-{}-{}", &account_id[5..], seq)
}

/// The record of account number `i` (`acct-00042`), started on `start_day`, arriving a minute
/// into `first_day`; its ARR, then its renewal date (within a year of `end_day`), are drawn from
/// `rng`. Returns the record and its renewal date.
pub(super) fn account(i: usize, segment: &str, seats: u32, start_day: i32, first_day: i32, end_day: i32, rng: &mut ChaCha8Rng) -> (Record, String) {
    let id = format!("acct-{i:05}");
    let record = AccountOut {
        account_id: &id,
        name: format!("{} {}", NAMES[i % NAMES.len()], ["Corp", "Labs", "Inc", "GmbH", "Ltd"][i / NAMES.len() % 5]),
        seats,
        segment,
        owner: OWNERS[i % OWNERS.len()],
        arr: u64::from(seats) * rng.gen_range(300..900),
        renewal_date: format_day(end_day + rng.gen_range(20..365)),
        start_date: format_day(start_day),
        ts: format_ms(i64::from(first_day) * DAY_MS + 60_000),
    };
    let line = serde_json::to_string(&record).expect("serialises");
    let renewal_date = record.renewal_date;
    (Record { kind: EventKind::Account, ts_ms: i64::from(first_day) * DAY_MS + 60_000, account_id: id, line }, renewal_date)
}
