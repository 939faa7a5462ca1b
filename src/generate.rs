//! Synthetic, realistic account populations: healthy, declining (quietly, or while still filing
//! tickets), inactive (goes silent), support-heavy, shelfware (few seats used), onboarding and
//! never-activated accounts, with weekday/weekend rhythm, week-to-week noise, the odd quiet week
//! of a healthy account and declines of varied speed and depth. A second mix (`Mix::Realistic`,
//! in `realistic.rs`) makes cohorts noisier and closer to real customers; the default mix never
//! changes (same seed, same files). Deterministic for a seed. Writes the three input streams plus `truth.jsonl` (each account's
//! profile), which back-tests and our own tests compare kizashi's verdicts with.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::core::ids::fnv64;
use crate::event::timestamp::{format_day, DAY_MS};

mod realistic;
mod records;

pub use records::Record;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    Healthy,
    Declining,
    Inactive,
    SupportHeavy,
    Shelfware,
    Onboarding,
    /// Usage declines like `Declining`, but the customer keeps opening tickets (about one a week).
    DecliningWithTickets,
    /// Signed (an account record with a start date), but nobody ever uses the product.
    NeverActivated,
    /// Realistic mix: a team of 3–8 seats, one or two power users and the others now and then.
    SmallHealthy,
    /// Realistic mix: stable, but project weeks and quiet weeks (weekly totals vary by ~30%).
    Bursty,
    /// Realistic mix: the busiest fifth of the users (about half the usage) stop on the change day.
    ChampionLeft,
    /// Realistic mix: usage unchanged, but from the change day urgent tickets pile up unanswered.
    SupportCrisis,
    /// Realistic mix: every seat used about once a month, on a few features.
    LowFrequency,
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
            Profile::DecliningWithTickets => "declining_with_tickets",
            Profile::NeverActivated => "never_activated",
            Profile::SmallHealthy => "small_healthy",
            Profile::Bursty => "bursty",
            Profile::ChampionLeft => "champion_left",
            Profile::SupportCrisis => "support_crisis",
            Profile::LowFrequency => "low_frequency",
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
    /// Which population: the default mix, or the realistic cohorts (`docs/populations.md`).
    pub mix: Mix,
}

/// The populations `generate` can make.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mix {
    /// Healthy, declining, inactive, support-heavy, shelfware, onboarding and never-activated
    /// accounts; the same seed gives the same files from release to release.
    #[default]
    Default,
    /// Cohorts that behave like real customers: noisy healthy accounts, small teams, bursty ones,
    /// exponential declines, champions who leave, support crises, low-frequency use.
    Realistic,
}

impl std::str::FromStr for Mix {
    type Err = String;

    fn from_str(s: &str) -> Result<Mix, String> {
        match s {
            "default" => Ok(Mix::Default),
            "realistic" => Ok(Mix::Realistic),
            _ => Err(format!("`{s}` is not a mix: default or realistic")),
        }
    }
}

/// Ground truth of one generated account.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Truth {
    pub account_id: String,
    pub profile: Profile,
    pub segment: String,
    pub seats: u32,
    /// Day (YYYY-MM-DD) the account's usage stops (inactive) or starts to decline.
    pub change_from: Option<String>,
    /// First day (YYYY-MM-DD) on which the account's expected usage is below half its norm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub below_half_from: Option<String>,
    /// The account's start date (YYYY-MM-DD) as its account record gives it.
    pub start_date: String,
    /// The renewal date (YYYY-MM-DD) its account record gives.
    pub renewal_date: String,
    /// Declining accounts: days the decline takes to reach its floor, and the floor (share of
    /// normal activity).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decline: Option<(i32, f64)>,
    /// Realistic declining accounts: days their usage takes to halve after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_life_days: Option<f64>,
}

const FEATURES: [&str; 24] = [
    "dashboards.view", "dashboards.edit", "reports.run", "reports.export", "reports.schedule",
    "search.query", "alerts.create", "alerts.ack", "integrations.slack", "integrations.crm",
    "api.call", "users.invite", "billing.view", "workflows.create", "workflows.run",
    "comments.add", "files.upload", "files.share", "tasks.create", "tasks.complete",
    "calendar.sync", "mobile.open", "admin.settings", "audit.view",
];

struct Gen {
    id: String,
    profile: Profile,
    rng: ChaCha8Rng,
    users: Vec<(String, f64)>,
    features: Vec<&'static str>,
    first_day: i32,
    change_day: i32,
    /// Days a decline takes to reach its floor, and the floor (share of normal activity).
    decline_days: i32,
    floor: f64,
    /// A quiet week (holidays): its first day and its activity share.
    quiet: Option<(i32, f64)>,
    /// This week's activity multiplier (week-to-week noise) and the week it was drawn for.
    week_noise: (i32, f64),
    open_tickets: Vec<(String, i32, bool)>,
    ticket_seq: u32,
    event_seq: u64,
    activity: f64,
}

fn weekday(day: i32) -> bool {
    // 1970-01-01 was a Thursday: day % 7 == 2 and 3 are Saturday and Sunday.
    !matches!(day.rem_euclid(7), 2 | 3)
}

/// Generates the population; `emit` receives each day's records sorted by time.
pub fn generate(opts: &GenOptions, mut emit: impl FnMut(&Record)) -> Vec<Truth> {
    match opts.mix {
        Mix::Default => simulate(opts, &mut emit, Gen::new),
        Mix::Realistic => simulate(opts, &mut emit, realistic::Account::new),
    }
}

/// One account of a mix, simulated day by day.
trait Simulated {
    /// The first day it can generate records on.
    fn first_day(&self) -> i32;
    /// Pushes its records of `day` to `out`, in any order.
    fn day(&mut self, day: i32, out: &mut Vec<Record>);
}

/// Makes every account of the population with `new` (its simulation, truth and account record),
/// then emits the records day by day; returns the truths.
fn simulate<A: Simulated>(opts: &GenOptions, emit: &mut impl FnMut(&Record), new: impl Fn(&GenOptions, usize, i32) -> (A, Truth, Record)) -> Vec<Truth> {
    let start_day = opts.end_day - opts.days as i32 + 1;
    let mut accounts = Vec::with_capacity(opts.accounts);
    let mut truths = Vec::with_capacity(opts.accounts);
    // Each account record is emitted on its own day (an onboarding account's arrives when it starts).
    let mut account_records = Vec::with_capacity(opts.accounts);
    for i in 0..opts.accounts {
        let (account, truth, record) = new(opts, i, start_day);
        account_records.push(record);
        truths.push(truth);
        accounts.push(account);
    }
    run_days(start_day, opts.end_day, account_records, emit, |day, out| {
        for a in accounts.iter_mut() {
            if day >= a.first_day() {
                a.day(day, out);
            }
        }
    });
    truths
}

impl Gen {
    /// Account number `i` of the default mix: its generator, its truth and its account record.
    /// Everything is drawn from the account's own stream, in an order the files depend on (the
    /// default mix is unchanged from release to release: tests and benchmarks rely on its files).
    fn new(opts: &GenOptions, i: usize, start_day: i32) -> (Gen, Truth, Record) {
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ fnv64(&[&(i as u64).to_le_bytes()]));
        let profile = default_profile(rng.gen());
        let (segment, seats) = default_segment(&mut rng);
        let users = default_users(&mut rng, profile, seats);
        let n_features = match profile {
            Profile::Shelfware => rng.gen_range(2..5),
            _ => rng.gen_range(9..18),
        };
        let features = draw_features(&mut rng, n_features);
        let (first_day, change_day) = default_days(&mut rng, profile, opts, start_day);
        // Declines of varied speed (one to six weeks to the floor) and depth (a trickle of 2–15%).
        let decline_days = rng.gen_range(7..43);
        let floor = rng.gen_range(0.02..0.15);
        // A quarter of the healthy accounts have one quiet week (each user 70–90% as active).
        let span = opts.days as i32;
        let quiet = (profile == Profile::Healthy && rng.gen_bool(0.25))
            .then(|| (start_day + rng.gen_range(0..span.max(1)), rng.gen_range(0.7..0.9)));
        let account_start = match profile {
            Profile::Onboarding | Profile::NeverActivated => first_day,
            _ => start_day - rng.gen_range(200..1500),
        };
        let (record, renewal_date) = records::account(i, segment, seats, account_start, first_day, opts.end_day, &mut rng);
        let gen = Gen {
            id: record.account_id.clone(),
            profile,
            rng,
            users,
            features,
            first_day,
            change_day,
            decline_days,
            floor,
            quiet,
            week_noise: (i32::MIN, 1.0),
            open_tickets: Vec::new(),
            ticket_seq: 0,
            event_seq: 0,
            activity: opts.activity,
        };
        let truth = gen.truth(segment, seats, account_start, renewal_date, opts.end_day);
        (gen, truth, record)
    }

    /// What the account is, for the tests and back-tests to compare kizashi's verdicts with.
    fn truth(&self, segment: &str, seats: u32, account_start: i32, renewal_date: String, end_day: i32) -> Truth {
        let declining = matches!(self.profile, Profile::Declining | Profile::DecliningWithTickets);
        let (change_day, decline_days, floor) = (self.change_day, self.decline_days, self.floor);
        let below_half = match self.profile {
            Profile::Inactive => Some(change_day),
            _ if declining => {
                let norm = expected_usage(&self.users, 1.0, self.activity);
                (change_day..=end_day).find(|&d| {
                    expected_usage(&self.users, decline_level(d, change_day, decline_days, floor), self.activity) < 0.5 * norm
                })
            }
            Profile::NeverActivated => Some(self.first_day),
            _ => None,
        };
        Truth {
            account_id: self.id.clone(),
            profile: self.profile,
            segment: segment.to_string(),
            seats,
            change_from: (change_day != i32::MAX).then(|| format_day(change_day)),
            below_half_from: below_half.map(format_day),
            start_date: format_day(account_start),
            renewal_date,
            decline: declining.then_some((decline_days, (floor * 100.0).round() / 100.0)),
            half_life_days: None,
        }
    }
}

/// The default mix's profiles and their shares, for a roll in 0..1.
fn default_profile(roll: f64) -> Profile {
    match roll {
        r if r < 0.46 => Profile::Healthy,
        r if r < 0.56 => Profile::Declining,
        r if r < 0.62 => Profile::DecliningWithTickets,
        r if r < 0.71 => Profile::Inactive,
        r if r < 0.80 => Profile::SupportHeavy,
        r if r < 0.89 => Profile::Shelfware,
        r if r < 0.95 => Profile::Onboarding,
        _ => Profile::NeverActivated,
    }
}

/// Segment and seats.
fn default_segment(rng: &mut ChaCha8Rng) -> (&'static str, u32) {
    let seg_roll: f64 = rng.gen();
    match seg_roll {
        r if r < 0.15 => ("enterprise", rng.gen_range(100..600)),
        r if r < 0.50 => ("mid_market", rng.gen_range(20..150)),
        _ => ("smb", rng.gen_range(3..25)),
    }
}

/// The users (60–90% of the seats; 4–10% for shelfware), each with its chance of being active on
/// a weekday.
fn default_users(rng: &mut ChaCha8Rng, profile: Profile, seats: u32) -> Vec<(String, f64)> {
    let adoption = match profile {
        Profile::Shelfware => rng.gen_range(0.04..0.1),
        _ => rng.gen_range(0.6..0.9),
    };
    let n_users = ((f64::from(seats) * adoption).round() as usize).max(1);
    (0..n_users).map(|u| (format!("u-{u}"), rng.gen_range(0.45..0.9))).collect::<Vec<_>>()
}

/// The account's first day and the day its behaviour changes (`i32::MAX`: never).
fn default_days(rng: &mut ChaCha8Rng, profile: Profile, opts: &GenOptions, start_day: i32) -> (i32, i32) {
    let span = opts.days as i32;
    let declining = matches!(profile, Profile::Declining | Profile::DecliningWithTickets);
    match profile {
        _ if declining => (start_day, start_day + span * 2 / 5 + rng.gen_range(0..(span / 5).max(1))),
        Profile::Inactive => (start_day, opts.end_day - rng.gen_range(16..(30.min(span - 1).max(17)))),
        Profile::Onboarding => (opts.end_day - rng.gen_range(10..20.min(span).max(11)), i32::MAX),
        // Signed 25–45 days before the end (or at the start of a shorter window).
        Profile::NeverActivated => ((opts.end_day - rng.gen_range(25..46)).max(start_day), i32::MAX),
        _ => (start_day, i32::MAX),
    }
}

/// `n` of the features, in a random order.
fn draw_features(rng: &mut ChaCha8Rng, n: usize) -> Vec<&'static str> {
    let mut features: Vec<&'static str> = FEATURES.to_vec();
    features.shuffle(rng);
    features.truncate(n);
    features
}

/// Takes the tickets that close on `day` out of `open` (id, closing day, flag): their ids and flags.
fn closing_on(open: &mut Vec<(String, i32, bool)>, day: i32) -> Vec<(String, bool)> {
    let mut closing = Vec::new();
    open.retain(|t| {
        if t.1 == day {
            closing.push((t.0.clone(), t.2));
            false
        } else {
            true
        }
    });
    closing
}

/// Emits day by day from `start_day` to `end_day`: the account records due that day, then what
/// `day` generates, sorted by time (a stable sort: ties keep the order they were made in).
fn run_days(start_day: i32, end_day: i32, mut account_records: Vec<Record>, emit: &mut impl FnMut(&Record), mut day: impl FnMut(i32, &mut Vec<Record>)) {
    let mut day_records: Vec<Record> = Vec::new();
    account_records.sort_by_key(|r| std::cmp::Reverse(r.ts_ms));
    for d in start_day..=end_day {
        while account_records.last().is_some_and(|r| crate::event::timestamp::day_of(r.ts_ms) <= d) {
            day_records.push(account_records.pop().expect("non-empty"));
        }
        day(d, &mut day_records);
        day_records.sort_by_key(|r| r.ts_ms);
        for r in day_records.drain(..) {
            emit(&r);
        }
    }
}

/// Activity level of a declining account on `day`: 1 until the change, then falling linearly to
/// `floor` over `days` days, and a trickle at the floor after that.
fn decline_level(day: i32, change: i32, days: i32, floor: f64) -> f64 {
    if day < change {
        return 1.0;
    }
    let t = (f64::from(day - change) / f64::from(days.max(1))).min(1.0);
    1.0 - (1.0 - floor) * t
}

/// Expected events of a weekday at an activity level, as `Gen::day` draws them: the first
/// `0.3 + 0.7 × level` of the users can be active, each with probability `p × level × activity`
/// (at most 1), and an active user has 3 events on average.
fn expected_usage(users: &[(String, f64)], level: f64, activity: f64) -> f64 {
    let pool = ((users.len() as f64) * (0.3 + 0.7 * level)).ceil() as usize;
    users.iter().take(pool).map(|(_, p)| (p * level * activity).min(1.0) * 3.0).sum()
}

impl Gen {
    /// Multiplier on activity for the day (decline, silence, a quiet week).
    fn level(&self, day: i32) -> f64 {
        match self.profile {
            Profile::Declining | Profile::DecliningWithTickets => {
                decline_level(day, self.change_day, self.decline_days, self.floor)
            }
            Profile::Inactive if day >= self.change_day => 0.0,
            Profile::NeverActivated => 0.0,
            _ => 1.0,
        }
    }

    /// A quiet week's share of the usual activity (the same users, each less active), else 1.
    fn quiet_share(&self, day: i32) -> f64 {
        match self.quiet {
            Some((from, share)) if (from..from + 7).contains(&day) => share,
            _ => 1.0,
        }
    }
}

impl Simulated for Gen {
    fn first_day(&self) -> i32 {
        self.first_day
    }

    fn day(&mut self, day: i32, out: &mut Vec<Record>) {
        let level = self.level(day);
        // Week-to-week noise: busy and slow weeks (±20%).
        let week_no = day.div_euclid(7);
        if self.week_noise.0 != week_no {
            self.week_noise = (week_no, self.rng.gen_range(0.8..1.2));
        }
        let week = if weekday(day) { 1.0 } else { 0.12 } * self.week_noise.1 * self.quiet_share(day);
        let base = i64::from(day) * DAY_MS;
        // Usage: declining accounts also lose users and narrow to fewer features.
        let n_users = ((self.users.len() as f64) * (0.3 + 0.7 * level)).ceil() as usize;
        let n_features = ((self.features.len() as f64) * (0.3 + 0.7 * level)).ceil() as usize;
        for u in 0..n_users.min(self.users.len()) {
            let p = (self.users[u].1 * week * level * self.activity).clamp(0.0, 1.0);
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
                out.push(records::usage(&self.id, &self.users[u].0, feature, ts));
            }
        }
        self.support(day, level, out);
    }
}

impl Gen {
    fn support_line(&mut self, ticket: &str, kind: &str, priority: Option<&str>, csat: Option<u8>, ts: i64) -> Record {
        records::support(&self.id, &mut self.event_seq, ticket, kind, priority, csat, ts)
    }

    fn support(&mut self, day: i32, level: f64, out: &mut Vec<Record>) {
        let base = i64::from(day) * DAY_MS;
        let (rate, urgent_share, close_days, csat_range) = match self.profile {
            Profile::SupportHeavy => (0.6, 0.4, 4..20, 1..4),
            Profile::Inactive | Profile::Shelfware => (0.01, 0.1, 1..4, 3..6),
            Profile::NeverActivated => (0.0, 0.0, 1..4, 3..6),
            // About one ticket a week (weekdays only), mostly about what is not working.
            Profile::DecliningWithTickets if day >= self.change_day => (0.28, 0.1, 1..6, 2..5),
            _ => (0.06 * level.max(0.2), 0.05, 1..4, 4..6),
        };
        // Silent decline: declining accounts stop filing tickets.
        let rate = if self.profile == Profile::Declining && day >= self.change_day { 0.0 } else { rate };
        let level = if self.profile == Profile::DecliningWithTickets { level.max(0.2) } else { level };
        if level > 0.0 && weekday(day) && self.rng.gen_bool(rate) {
            self.ticket_seq += 1;
            let ticket = records::ticket_id(&self.id, self.ticket_seq);
            let urgent = self.rng.gen_bool(urgent_share);
            let priority = if urgent { "urgent" } else { ["low", "normal", "normal", "high"][self.rng.gen_range(0..4)] };
            let ts = base + self.rng.gen_range(8 * 3_600_000..18 * 3_600_000);
            let rec = self.support_line(&ticket, "opened", Some(priority), None, ts);
            out.push(rec);
            // Urgent tickets are worked at once (closed the next day) except where support struggles.
            let close_days = if urgent && self.profile != Profile::SupportHeavy { 1..2 } else { close_days.clone() };
            let close_day = day + self.rng.gen_range(close_days);
            // Support-heavy accounts leave some urgent tickets open.
            let leave_open = self.profile == Profile::SupportHeavy && urgent && self.rng.gen_bool(0.5);
            self.open_tickets.push((ticket, if leave_open { i32::MAX } else { close_day }, urgent));
        }
        for (ticket, _) in closing_on(&mut self.open_tickets, day) {
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

/// How kizashi's verdicts compare with a generated population's truth, per profile: what a data
/// team checks before trusting a scorecard (and what `tests/replay.rs` asserts).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProfileRow {
    pub profile: &'static str,
    pub accounts: usize,
    /// Accounts with at least one risk alert.
    pub alerted: usize,
    /// Accounts that were red at any evaluation.
    pub ever_red: usize,
    /// Final band counts: red, yellow, green, unscored.
    pub final_bands: [usize; 4],
    /// Accounts whose usage fell below half its norm at least 7 days before the end (the ones the
    /// two figures below are about).
    pub fell: usize,
    /// Of those: yellow or red at some evaluation within 7 days after the fall.
    pub flagged_within_7d: usize,
    /// Of those: a risk alert within 7 days after the fall.
    pub alerted_within_7d: usize,
    /// Risk alerts by rule (each alert counts under its name and every rule in `also`).
    pub rules: std::collections::BTreeMap<String, usize>,
    /// Accounts whose behaviour changed (`change_from`) at least 14 days before the replay's last
    /// score (the ones the next two figures are about).
    pub changed: usize,
    /// Of those: a risk alert from the start of the change day to 7 days after it.
    pub alerted_within_7d_of_change: usize,
    /// Of those: a risk alert from the start of the change day to 14 days after it.
    pub alerted_within_14d_of_change: usize,
    /// Accounts whose final band is red or yellow.
    pub not_green_at_end: usize,
    /// The changed accounts whose usage halves in 9 days or less (`half_life_days`), and of
    /// those, the ones alerted within 7 and 14 days of the change.
    pub fast_changed: usize,
    pub fast_alerted_within_7d: usize,
    pub fast_alerted_within_14d: usize,
}

/// A decline that halves usage in this many days or less is fast.
pub const FAST_HALF_LIFE_DAYS: f64 = 9.0;

/// One alert, as `profile_report` needs it.
pub struct AlertSeen<'a> {
    pub account_id: &'a str,
    pub rules: Vec<&'a str>,
    pub risk: bool,
    pub at_ms: i64,
}

/// Per-profile figures from the truth, the alerts and every score update (`(account, time, band)`,
/// bands as `red`/`yellow`/`green`), in profile order.
pub fn profile_report(truths: &[Truth], alerts: &[AlertSeen<'_>], bands: &[(&str, i64, &str)]) -> Vec<ProfileRow> {
    use std::collections::HashMap;
    let mut by_account: HashMap<&str, Vec<(i64, &str)>> = HashMap::new();
    for (a, t, b) in bands {
        by_account.entry(a).or_default().push((*t, b));
    }
    let mut alerts_of: HashMap<&str, Vec<&AlertSeen<'_>>> = HashMap::new();
    for a in alerts.iter().filter(|a| a.risk) {
        alerts_of.entry(a.account_id).or_default().push(a);
    }
    // The replay's last score: a change must be 14 days older to be judged.
    let end = bands.iter().map(|(_, t, _)| *t).max();
    let mut rows: Vec<ProfileRow> = Vec::new();
    for t in truths {
        let name = t.profile.name();
        let idx = match rows.iter().position(|r| r.profile == name) {
            Some(i) => i,
            None => {
                rows.push(ProfileRow { profile: name, ..Default::default() });
                rows.len() - 1
            }
        };
        let row = &mut rows[idx];
        row.accounts += 1;
        let updates = by_account.get(t.account_id.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        let mine = alerts_of.get(t.account_id.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        row.alerted += usize::from(!mine.is_empty());
        for a in mine {
            for r in &a.rules {
                *row.rules.entry(r.to_string()).or_default() += 1;
            }
        }
        row.ever_red += usize::from(updates.iter().any(|(_, b)| *b == "red"));
        let last = updates.iter().max_by_key(|(t, _)| *t).map(|(_, b)| *b);
        row.final_bands[match last {
            Some("red") => 0,
            Some("yellow") => 1,
            Some("green") => 2,
            _ => 3,
        }] += 1;
        row.not_green_at_end += usize::from(matches!(last, Some("red" | "yellow")));
        let change = t.change_from.as_deref().and_then(crate::event::timestamp::parse_date_day).map(|d| i64::from(d) * DAY_MS);
        if let (Some(from), Some(end)) = (change, end) {
            if from + 14 * DAY_MS <= end {
                let within = |days: i64| usize::from(mine.iter().any(|a| (from..=from + days * DAY_MS).contains(&a.at_ms)));
                let (d7, d14) = (within(7), within(14));
                row.changed += 1;
                row.alerted_within_7d_of_change += d7;
                row.alerted_within_14d_of_change += d14;
                if t.half_life_days.is_some_and(|h| h <= FAST_HALF_LIFE_DAYS) {
                    row.fast_changed += 1;
                    row.fast_alerted_within_7d += d7;
                    row.fast_alerted_within_14d += d14;
                }
            }
        }
        let (Some(fell), Some(end)) = (t.below_half_from.as_deref(), updates.iter().map(|(t, _)| *t).max()) else {
            continue;
        };
        let Some(fell_day) = crate::event::timestamp::parse_date_day(fell) else { continue };
        let from = i64::from(fell_day) * DAY_MS;
        let to = from + 7 * DAY_MS;
        if to > end {
            continue;
        }
        row.fell += 1;
        // The band in force at the fall, or any band taken within the 7 days after it.
        let at_fall = updates.iter().filter(|(u, _)| *u <= from).max_by_key(|(u, _)| *u).map(|(_, b)| *b);
        let flagged = at_fall.is_some_and(|b| b != "green")
            || updates.iter().any(|(u, b)| (from..=to).contains(u) && *b != "green");
        row.flagged_within_7d += usize::from(flagged);
        row.alerted_within_7d += usize::from(mine.iter().any(|a| (from..=to).contains(&a.at_ms)));
    }
    rows
}

/// The per-profile table, for people: shares of each profile's accounts (of its changed accounts
/// for the two "of change" columns), and under `declining` its fast declines.
pub fn render_profile_report(rows: &[ProfileRow]) -> String {
    let mut s = String::from(
        "profile                    n  changed  alerted  ≤7d of change  ≤14d of change  ends red/yellow/green/none  not green\n",
    );
    let pct = |n: usize, of: usize| if of == 0 { "-".to_string() } else { format!("{:.0}%", 100.0 * n as f64 / of as f64) };
    for r in rows {
        s.push_str(&format!(
            "{:<24} {:>3}  {:>7}  {:>7}  {:>13}  {:>14}  {:>26}  {:>9}\n",
            r.profile,
            r.accounts,
            r.changed,
            pct(r.alerted, r.accounts),
            pct(r.alerted_within_7d_of_change, r.changed),
            pct(r.alerted_within_14d_of_change, r.changed),
            format!("{}/{}/{}/{}", r.final_bands[0], r.final_bands[1], r.final_bands[2], r.final_bands[3]),
            pct(r.not_green_at_end, r.accounts),
        ));
        if r.fast_changed > 0 {
            s.push_str(&format!(
                "{:<24} {:>3}  {:>7}  {:>7}  {:>13}  {:>14}\n",
                "  of which half-life ≤9d",
                "",
                r.fast_changed,
                "",
                pct(r.fast_alerted_within_7d, r.fast_changed),
                pct(r.fast_alerted_within_14d, r.fast_changed),
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY0: i32 = 20_000;

    fn truth(id: &str, profile: Profile, change: Option<i32>, half_life_days: Option<f64>) -> Truth {
        Truth {
            account_id: id.to_string(),
            profile,
            segment: "smb".to_string(),
            seats: 10,
            change_from: change.map(format_day),
            below_half_from: None,
            start_date: format_day(DAY0 - 300),
            renewal_date: format_day(DAY0 + 200),
            decline: None,
            half_life_days,
        }
    }

    fn alert(account_id: &str, risk: bool, at_ms: i64) -> AlertSeen<'_> {
        AlertSeen { account_id, rules: vec![if risk { "usage_drop" } else { "expansion_candidate" }], risk, at_ms }
    }

    #[test]
    fn profile_report_counts_alerts_within_7_and_14_days_of_the_change() {
        let (c, ms) = (DAY0 + 20, |day: i32, hours: i64| i64::from(day) * DAY_MS + hours * 3_600_000);
        let truths = [
            // Fast declines: alerted on day 3, and exactly 7 days after the change day's start.
            truth("fast-3d", Profile::Declining, Some(c), Some(6.0)),
            truth("fast-7d", Profile::Declining, Some(c), Some(9.0)),
            // A slow one alerted on day 10, one alerted only after 14 days, one alerted before.
            truth("slow-10d", Profile::Declining, Some(c), Some(12.0)),
            truth("slow-15d", Profile::Declining, Some(c), Some(15.0)),
            truth("early", Profile::Inactive, Some(c), None),
            // Changed 10 days before the last score: too late to judge.
            truth("recent", Profile::Inactive, Some(DAY0 + 40), None),
            // An opportunity alert right after the change is not a risk alert.
            truth("opportunity", Profile::ChampionLeft, Some(c), None),
            truth("calm", Profile::Healthy, None, None),
        ];
        let alerts = [
            alert("fast-3d", true, ms(c + 3, 10)),
            alert("fast-7d", true, ms(c + 7, 0)),
            alert("slow-10d", true, ms(c + 10, 12)),
            alert("slow-15d", true, ms(c + 14, 1)),
            alert("early", true, ms(c - 1, 23)),
            alert("recent", true, ms(DAY0 + 41, 0)),
            alert("opportunity", false, ms(c + 1, 0)),
            alert("calm", true, ms(DAY0 + 5, 0)),
        ];
        let end = ms(DAY0 + 50, 0);
        let bands = [
            ("fast-3d", end, "red"),
            ("fast-7d", end, "yellow"),
            ("slow-10d", end, "green"),
            ("slow-15d", end - DAY_MS, "red"),
            ("slow-15d", end, "green"),
            ("early", end, "red"),
            ("recent", end, "red"),
            ("opportunity", end, "green"),
            ("calm", end, "green"),
        ];
        let rows = profile_report(&truths, &alerts, &bands);
        let row = |p: &str| rows.iter().find(|r| r.profile == p).unwrap();
        let declining = row("declining");
        assert_eq!((declining.accounts, declining.changed, declining.alerted), (4, 4, 4));
        assert_eq!((declining.alerted_within_7d_of_change, declining.alerted_within_14d_of_change), (2, 3));
        assert_eq!((declining.fast_changed, declining.fast_alerted_within_7d, declining.fast_alerted_within_14d), (2, 2, 2));
        assert_eq!((declining.not_green_at_end, declining.final_bands), (2, [1, 1, 2, 0]));
        let inactive = row("inactive");
        assert_eq!((inactive.accounts, inactive.changed, inactive.alerted), (2, 1, 2));
        assert_eq!((inactive.alerted_within_7d_of_change, inactive.alerted_within_14d_of_change, inactive.fast_changed), (0, 0, 0));
        let champion = row("champion_left");
        assert_eq!((champion.changed, champion.alerted, champion.alerted_within_7d_of_change), (1, 0, 0));
        let calm = row("healthy");
        assert_eq!((calm.changed, calm.alerted, calm.not_green_at_end), (0, 1, 0));
        let table = render_profile_report(&rows);
        assert!(table.starts_with("profile "), "{table}");
        assert!(table.contains("≤14d of change"), "{table}");
        let line = table.lines().find(|l| l.starts_with("declining")).unwrap();
        for cell in ["100%", "50%", "75%", "1/1/2/0"] {
            assert!(line.contains(cell), "{cell} in {line}");
        }
        assert!(table.contains("half-life ≤9d"), "{table}");
    }
}
