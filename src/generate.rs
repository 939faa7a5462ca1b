//! Synthetic, realistic account populations: healthy, declining, inactive (goes silent),
//! support-heavy, shelfware (few seats used) and onboarding accounts, with weekday/weekend rhythm.
//! Deterministic for a seed. Writes the three input streams plus `truth.jsonl` (each account's
//! profile), which back-tests and our own tests compare kizashi's verdicts with.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::core::ids::fnv64;
use crate::event::timestamp::{format_day, format_ms, DAY_MS};
use crate::event::EventKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    Healthy,
    Declining,
    Inactive,
    SupportHeavy,
    Shelfware,
    Onboarding,
}

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Profile::Healthy => "healthy",
            Profile::Declining => "declining",
            Profile::Inactive => "inactive",
            Profile::SupportHeavy => "support_heavy",
            Profile::Shelfware => "shelfware",
            Profile::Onboarding => "onboarding",
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenOptions {
    pub accounts: usize,
    pub days: u32,
    /// Last generated day (days since epoch); the population covers `days` days ending here.
    pub end_day: i32,
    pub seed: u64,
    /// Multiplies every user's daily chance of being active (1.0 = realistic).
    pub activity: f64,
}

/// Ground truth of one generated account.
#[derive(Debug, Clone, Serialize)]
pub struct Truth {
    pub account_id: String,
    pub profile: Profile,
    pub segment: &'static str,
    pub seats: u32,
    /// Day (YYYY-MM-DD) the account's usage stops (inactive) or starts to decline.
    pub change_from: Option<String>,
    /// The account record's `renewal_date` (YYYY-MM-DD): where the generated outcome falls.
    pub renewal_date: String,
}

const FEATURES: [&str; 24] = [
    "dashboards.view", "dashboards.edit", "reports.run", "reports.export", "reports.schedule",
    "search.query", "alerts.create", "alerts.ack", "integrations.slack", "integrations.crm",
    "api.call", "users.invite", "billing.view", "workflows.create", "workflows.run",
    "comments.add", "files.upload", "files.share", "tasks.create", "tasks.complete",
    "calendar.sync", "mobile.open", "admin.settings", "audit.view",
];

const NAMES: [&str; 16] = [
    "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Soylent", "Tyrell",
    "Wonka", "Stark", "Wayne", "Cyberdyne", "Gringotts", "Oscorp", "Aperture", "Monarch",
];

struct Gen {
    id: String,
    profile: Profile,
    rng: ChaCha8Rng,
    users: Vec<(String, f64)>,
    features: Vec<&'static str>,
    first_day: i32,
    change_day: i32,
    end_day: i32,
    open_tickets: Vec<(String, i32, bool)>,
    ticket_seq: u32,
    event_seq: u64,
    activity: f64,
}

/// One generated record.
pub struct Record {
    pub kind: EventKind,
    pub ts_ms: i64,
    pub account_id: String,
    pub line: String,
}

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
    arr: u64,
    renewal_date: String,
    start_date: String,
    ts: String,
}

fn weekday(day: i32) -> bool {
    // 1970-01-01 was a Thursday: day % 7 == 2 and 3 are Saturday and Sunday.
    !matches!(day.rem_euclid(7), 2 | 3)
}

/// Generates the population; `emit` receives each day's records sorted by time.
pub fn generate(opts: &GenOptions, mut emit: impl FnMut(&Record)) -> Vec<Truth> {
    let start_day = opts.end_day - opts.days as i32 + 1;
    let mut gens = Vec::with_capacity(opts.accounts);
    let mut truths = Vec::with_capacity(opts.accounts);
    let mut day_records: Vec<Record> = Vec::new();
    // Each account record is emitted on its own day (an onboarding account's arrives when it starts).
    let mut account_records: Vec<Record> = Vec::new();
    for i in 0..opts.accounts {
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ fnv64(&[&(i as u64).to_le_bytes()]));
        let roll: f64 = rng.gen();
        let profile = match roll {
            r if r < 0.50 => Profile::Healthy,
            r if r < 0.65 => Profile::Declining,
            r if r < 0.75 => Profile::Inactive,
            r if r < 0.85 => Profile::SupportHeavy,
            r if r < 0.95 => Profile::Shelfware,
            _ => Profile::Onboarding,
        };
        let seg_roll: f64 = rng.gen();
        let (segment, seats) = match seg_roll {
            r if r < 0.15 => ("enterprise", rng.gen_range(100..600)),
            r if r < 0.50 => ("mid_market", rng.gen_range(20..150)),
            _ => ("smb", rng.gen_range(3..25)),
        };
        let adoption = match profile {
            Profile::Shelfware => rng.gen_range(0.04..0.1),
            _ => rng.gen_range(0.6..0.9),
        };
        let n_users = ((f64::from(seats) * adoption).round() as usize).max(1);
        let users = (0..n_users)
            .map(|u| (format!("u-{u}"), rng.gen_range(0.45..0.9)))
            .collect::<Vec<_>>();
        let n_features = match profile {
            Profile::Shelfware => rng.gen_range(2..5),
            _ => rng.gen_range(9..18),
        };
        let mut features: Vec<&'static str> = FEATURES.to_vec();
        features.shuffle(&mut rng);
        features.truncate(n_features);
        let span = opts.days as i32;
        let (first_day, change_day) = match profile {
            Profile::Declining => (start_day, start_day + span * 2 / 5 + rng.gen_range(0..(span / 5).max(1))),
            Profile::Inactive => (start_day, opts.end_day - rng.gen_range(16..(30.min(span - 1).max(17)))),
            Profile::Onboarding => (opts.end_day - rng.gen_range(10..20.min(span).max(11)), i32::MAX),
            _ => (start_day, i32::MAX),
        };
        let id = format!("acct-{i:05}");
        let name = format!("{} {}", NAMES[i % NAMES.len()], ["Corp", "Labs", "Inc", "GmbH", "Ltd"][i / NAMES.len() % 5]);
        let account_start = if profile == Profile::Onboarding { first_day } else { start_day - rng.gen_range(200..1500) };
        let record = AccountOut {
            account_id: &id,
            name,
            seats,
            segment,
            arr: u64::from(seats) * rng.gen_range(300..900),
            renewal_date: format_day(opts.end_day + rng.gen_range(20..365)),
            start_date: format_day(account_start),
            ts: format_ms(i64::from(first_day) * DAY_MS + 60_000),
        };
        account_records.push(Record {
            kind: EventKind::Account,
            ts_ms: i64::from(first_day) * DAY_MS + 60_000,
            account_id: id.clone(),
            line: serde_json::to_string(&record).expect("serialises"),
        });
        truths.push(Truth {
            account_id: id.clone(),
            profile,
            segment,
            seats,
            change_from: (change_day != i32::MAX).then(|| format_day(change_day)),
            renewal_date: record.renewal_date.clone(),
        });
        gens.push(Gen {
            id,
            profile,
            rng,
            users,
            features,
            first_day,
            change_day,
            end_day: opts.end_day,
            open_tickets: Vec::new(),
            ticket_seq: 0,
            event_seq: 0,
            activity: opts.activity,
        });
    }
    account_records.sort_by_key(|r| std::cmp::Reverse(r.ts_ms));
    for day in start_day..=opts.end_day {
        while account_records.last().is_some_and(|r| crate::event::timestamp::day_of(r.ts_ms) <= day) {
            day_records.push(account_records.pop().expect("non-empty"));
        }
        for g in gens.iter_mut() {
            if day >= g.first_day {
                g.day(day, &mut day_records);
            }
        }
        day_records.sort_by_key(|r| r.ts_ms);
        for r in day_records.drain(..) {
            emit(&r);
        }
    }
    truths
}

impl Gen {
    /// Multiplier on activity for the day (decline, silence).
    fn level(&self, day: i32) -> f64 {
        match self.profile {
            Profile::Declining if day >= self.change_day => {
                let total = (self.end_day - self.change_day).max(1) as f64;
                1.0 - 0.9 * (f64::from(day - self.change_day) / total).min(1.0)
            }
            Profile::Inactive if day >= self.change_day => 0.0,
            _ => 1.0,
        }
    }

    fn day(&mut self, day: i32, out: &mut Vec<Record>) {
        let level = self.level(day);
        let week = if weekday(day) { 1.0 } else { 0.12 };
        let base = i64::from(day) * DAY_MS;
        // Usage: declining accounts also lose users and narrow to fewer features.
        let n_users = ((self.users.len() as f64) * (0.3 + 0.7 * level)).ceil() as usize;
        let n_features = ((self.features.len() as f64) * (0.3 + 0.7 * level)).ceil() as usize;
        for u in 0..n_users.min(self.users.len()) {
            let p = (self.users[u].1 * week * level * self.activity).min(1.0);
            if level == 0.0 || !self.rng.gen_bool(p) {
                continue;
            }
            let n = 1 + self.rng.gen_range(0..5);
            for _ in 0..n {
                let ts = base + self.rng.gen_range(7 * 3_600_000..20 * 3_600_000);
                let feature = if self.rng.gen_bool(0.7) {
                    Some(self.features[self.rng.gen_range(0..n_features.max(1))])
                } else {
                    None
                };
                let event = if feature.is_some() { "feature_used" } else { "login" };
                let line = serde_json::to_string(&UsageOut {
                    account_id: &self.id,
                    user_id: &self.users[u].0,
                    event,
                    feature,
                    ts: format_ms(ts),
                })
                .expect("serialises");
                out.push(Record { kind: EventKind::Usage, ts_ms: ts, account_id: self.id.clone(), line });
            }
        }
        self.support(day, level, out);
    }

    fn support_line(&mut self, ticket: &str, kind: &str, priority: Option<&str>, csat: Option<u8>, ts: i64) -> Record {
        self.event_seq += 1;
        let line = serde_json::to_string(&SupportOut {
            account_id: &self.id,
            ticket_id: ticket,
            kind,
            priority,
            csat,
            ts,
            event_id: format!("{}-s{}", self.id, self.event_seq),
        })
        .expect("serialises");
        Record { kind: EventKind::Support, ts_ms: ts, account_id: self.id.clone(), line }
    }

    fn support(&mut self, day: i32, level: f64, out: &mut Vec<Record>) {
        let base = i64::from(day) * DAY_MS;
        let (rate, urgent_share, close_days, csat_range) = match self.profile {
            Profile::SupportHeavy => (0.6, 0.4, 4..20, 1..4),
            Profile::Inactive | Profile::Shelfware => (0.01, 0.1, 1..4, 3..6),
            _ => (0.06 * level.max(0.2), 0.05, 1..4, 4..6),
        };
        // Silent decline: declining accounts stop filing tickets.
        let rate = if self.profile == Profile::Declining && day >= self.change_day { 0.0 } else { rate };
        if level > 0.0 && weekday(day) && self.rng.gen_bool(rate) {
            self.ticket_seq += 1;
            let ticket = format!("T-{}-{}", &self.id[5..], self.ticket_seq);
            let urgent = self.rng.gen_bool(urgent_share);
            let priority = if urgent { "urgent" } else { ["low", "normal", "normal", "high"][self.rng.gen_range(0..4)] };
            let ts = base + self.rng.gen_range(8 * 3_600_000..18 * 3_600_000);
            let rec = self.support_line(&ticket, "opened", Some(priority), None, ts);
            out.push(rec);
            let close_day = day + self.rng.gen_range(close_days.clone());
            // Support-heavy accounts leave some urgent tickets open.
            let leave_open = self.profile == Profile::SupportHeavy && urgent && self.rng.gen_bool(0.5);
            self.open_tickets.push((ticket, if leave_open { i32::MAX } else { close_day }, urgent));
        }
        let mut closing = Vec::new();
        self.open_tickets.retain(|t| {
            if t.1 == day {
                closing.push(t.0.clone());
                false
            } else {
                true
            }
        });
        for ticket in closing {
            let ts = base + self.rng.gen_range(9 * 3_600_000..19 * 3_600_000);
            let rec = self.support_line(&ticket, "closed", None, None, ts);
            out.push(rec);
            if self.rng.gen_bool(0.5) {
                let csat = self.rng.gen_range(csat_range.clone()) as u8;
                let rec = self.support_line(&ticket, "csat", None, Some(csat), ts + 3_600_000);
                out.push(rec);
            }
        }
    }
}
