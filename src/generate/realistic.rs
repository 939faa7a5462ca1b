//! The realistic mix (`generate --mix realistic`): cohorts that behave like real customers, with
//! the noise that makes a scorecard's job hard (week-to-week swings, holidays, small teams,
//! project weeks) beside the changes it must catch (exponential declines, a champion who leaves, a
//! support crisis, silence). Each account draws from its own ChaCha8 stream: deterministic for a seed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{closing_on, draw_features, records, weekday, GenOptions, Profile, Record, Simulated, Truth};
use crate::core::ids::fnv64;
use crate::event::timestamp::{format_day, DAY_MS};

/// The cohorts and their shares of the population.
const COHORTS: [(Profile, f64); 10] = [
    (Profile::Healthy, 0.30),
    (Profile::SmallHealthy, 0.10),
    (Profile::Bursty, 0.10),
    (Profile::Declining, 0.12),
    (Profile::ChampionLeft, 0.06),
    (Profile::SupportCrisis, 0.08),
    (Profile::Inactive, 0.08),
    (Profile::NeverActivated, 0.06),
    (Profile::Shelfware, 0.05),
    (Profile::LowFrequency, 0.05),
];

/// The span the change days are given for (`days 40–56 of 70`); other spans scale them.
const REFERENCE_SPAN: i32 = 70;

struct User {
    id: String,
    /// Chance of being active on a weekday of a normal week.
    p: f64,
    /// Off this week (small teams: each user takes about one week in ten off).
    off: bool,
}

pub(super) struct Account {
    id: String,
    profile: Profile,
    rng: ChaCha8Rng,
    /// Busiest first where the profile has power users.
    users: Vec<User>,
    features: Vec<&'static str>,
    first_day: i32,
    /// The day behaviour changes (`i32::MAX`: never).
    change_day: i32,
    /// Declining: days usage takes to halve, and the floor it decays to (share of normal).
    half_life: f64,
    floor: f64,
    /// Champion left: the busiest users who stop on the change day.
    champions: usize,
    /// A weekend day's share of a weekday's activity.
    weekend: f64,
    /// A public holiday (its Thursday and Friday off, as quiet as a weekend): its week number, and
    /// a share kept for the files' stability (the draw is made as before).
    quiet: Option<(i32, f64)>,
    /// This week's activity factor and the week it was drawn for.
    week: (i32, f64),
    /// Open tickets: id, the day they close (`i32::MAX`: not within the span), opened in a crisis.
    open_tickets: Vec<(String, i32, bool)>,
    ticket_seq: u32,
    event_seq: u64,
    activity: f64,
}

/// Weeks from Monday to Sunday (1970-01-05 was a Monday).
fn week_of(day: i32) -> i32 {
    (day + 3).div_euclid(7)
}

/// `days` days into a span of `REFERENCE_SPAN`, scaled to a span of `span` days.
fn scaled(days: i32, span: i32) -> i32 {
    (f64::from(days) * f64::from(span) / f64::from(REFERENCE_SPAN)).round() as i32
}

/// A change day drawn in days `from..=to` of a 70-day span (scaled to `span`), within the span.
fn change_day(rng: &mut ChaCha8Rng, start_day: i32, span: i32, from: i32, to: i32) -> i32 {
    let (a, b) = (scaled(from, span), scaled(to, span).max(scaled(from, span)));
    start_day + rng.gen_range(a..=b).min(span - 1)
}

/// Activity of a declining account on `day`: 1 before the change, then halving every
/// `half_life` days down to `floor`.
fn decay_level(day: i32, change: i32, half_life: f64, floor: f64) -> f64 {
    if day < change {
        return 1.0;
    }
    0.5f64.powf(f64::from(day - change) / half_life).max(floor)
}

/// A lognormal factor of mean 1 (`sigma` 0.3: a coefficient of variation of about 0.3).
fn lognormal(rng: &mut ChaCha8Rng, sigma: f64) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>();
    let u2: f64 = rng.gen();
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    (sigma * z - sigma * sigma / 2.0).exp()
}

fn cohort(roll: f64) -> Profile {
    let mut acc = 0.0;
    for (p, share) in COHORTS {
        acc += share;
        if roll < acc {
            return p;
        }
    }
    COHORTS[COHORTS.len() - 1].0
}

/// Segment and seats of a typical account (small teams and shelfware have their own).
fn segment_and_seats(rng: &mut ChaCha8Rng) -> (&'static str, u32) {
    match rng.gen::<f64>() {
        r if r < 0.15 => ("enterprise", rng.gen_range(100..=400)),
        r if r < 0.55 => ("mid_market", rng.gen_range(20..150)),
        _ => ("smb", rng.gen_range(5..25)),
    }
}

fn users(n: usize, mut p: impl FnMut(usize) -> f64) -> Vec<User> {
    (0..n).map(|u| User { id: format!("u-{u}"), p: p(u), off: false }).collect()
}

/// Segment and seats of an account of `profile`.
fn segment_of(rng: &mut ChaCha8Rng, profile: Profile) -> (&'static str, u32) {
    match profile {
        Profile::SmallHealthy => ("smb", rng.gen_range(3..=8)),
        Profile::Shelfware => (["mid_market", "enterprise"][rng.gen_range(0..2)], rng.gen_range(20..=400)),
        Profile::LowFrequency => (["smb", "mid_market"][rng.gen_range(0..2)], rng.gen_range(5..150)),
        _ => segment_and_seats(rng),
    }
}

/// The users of an account of `profile` with `seats` seats, busiest first, and how many of them
/// are its champions (champion left: the busiest fifth, who stop on the change day).
fn users_of(rng: &mut ChaCha8Rng, profile: Profile, seats: u32) -> (Vec<User>, usize) {
    let seats_f = f64::from(seats);
    let mut champions = 0;
    let users = match profile {
        Profile::NeverActivated => Vec::new(),
        // One or two power users active most weekdays, the others a few days a month.
        Profile::SmallHealthy => {
            let power = if seats >= 5 && rng.gen_bool(0.5) { 2 } else { 1 };
            users(seats as usize, |u| if u < power { rng.gen_range(0.8..0.95) } else { rng.gen_range(0.1..0.25) })
        }
        // The busiest fifth does about half the usage.
        Profile::ChampionLeft => {
            let n = ((seats_f * rng.gen_range(0.6..0.9)).round() as usize).max(1);
            champions = ((n as f64 / 5.0).round() as usize).max(1);
            let others = (0.9 * champions as f64 / (n - champions).max(1) as f64).min(0.6);
            users(n, |u| if u < champions { rng.gen_range(0.85..0.95) } else { others * rng.gen_range(0.5..1.5) })
        }
        Profile::SupportCrisis => {
            users(((seats_f * rng.gen_range(0.75..0.95)).round() as usize).max(1), |_| rng.gen_range(0.6..0.95))
        }
        Profile::Shelfware => users(((seats_f * rng.gen_range(0.04..0.1)).round() as usize).max(1), |_| rng.gen_range(0.45..0.9)),
        // Every seat about once a month (some 22 weekdays).
        Profile::LowFrequency => users(seats as usize, |_| rng.gen_range(0.03..0.06)),
        _ => users(((seats_f * rng.gen_range(0.6..0.9)).round() as usize).max(1), |_| rng.gen_range(0.45..0.9)),
    };
    (users, champions)
}

impl Account {
    /// Account number `i` of the realistic mix: its simulation, its truth and its account record.
    /// Everything is drawn from the account's own stream, in an order the files depend on.
    pub(super) fn new(opts: &GenOptions, i: usize, start_day: i32) -> (Account, Truth, Record) {
        let span = opts.days as i32;
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ fnv64(&[b"realistic", &(i as u64).to_le_bytes()]));
        let profile = cohort(rng.gen());
        let (segment, seats) = segment_of(&mut rng, profile);
        let (users, champions) = users_of(&mut rng, profile, seats);
        let n_features = match profile {
            Profile::Shelfware => rng.gen_range(2..=4),
            Profile::LowFrequency => rng.gen_range(2..=4),
            _ => rng.gen_range(9..18),
        };
        let features = draw_features(&mut rng, n_features);
        let change = match profile {
            Profile::Declining | Profile::ChampionLeft => change_day(&mut rng, start_day, span, 40, 56),
            Profile::SupportCrisis => change_day(&mut rng, start_day, span, 30, 50),
            Profile::Inactive => change_day(&mut rng, start_day, span, 30, 56),
            _ => i32::MAX,
        };
        let first_day = match profile {
            // Signed 25–45 days before the end (or at the start of a shorter window).
            Profile::NeverActivated => (opts.end_day - rng.gen_range(25..46)).max(start_day),
            _ => start_day,
        };
        let half_life = (rng.gen_range(5.0..18.0f64) * 10.0).round() / 10.0;
        let floor = rng.gen_range(0.05..0.15);
        let weekend = rng.gen_range(0.10..0.15);
        // Public holidays: a third of the healthy accounts take a Thursday and a Friday off (as
        // quiet as a weekend). A week-long shutdown (year-end) is a calendar matter: see
        // docs/populations.md.
        let quiet = (profile == Profile::Healthy && rng.gen_bool(0.35))
            .then(|| (week_of(start_day + rng.gen_range(0..span.max(1))), rng.gen_range(0.4..0.7)));
        let account_start = match profile {
            Profile::NeverActivated => first_day,
            _ => start_day - rng.gen_range(200..1500),
        };
        let (record, renewal_date) = records::account(i, segment, seats, account_start, first_day, opts.end_day, &mut rng);
        let account = Account {
            id: record.account_id.clone(),
            profile,
            rng,
            users,
            features,
            first_day,
            change_day: change,
            half_life,
            floor,
            champions,
            weekend,
            quiet,
            week: (i32::MIN, 1.0),
            open_tickets: Vec::new(),
            ticket_seq: 0,
            event_seq: 0,
            activity: opts.activity,
        };
        let truth = account.truth(segment, seats, account_start, renewal_date, opts.end_day);
        (account, truth, record)
    }

    /// What the account is, for the tests and back-tests to compare kizashi's verdicts with.
    fn truth(&self, segment: &str, seats: u32, account_start: i32, renewal_date: String, end_day: i32) -> Truth {
        let (change, half_life, floor) = (self.change_day, self.half_life, self.floor);
        let below_half = match self.profile {
            Profile::Inactive => Some(change),
            Profile::NeverActivated => Some(self.first_day),
            Profile::Declining => (change..=end_day).find(|&d| decay_level(d, change, half_life, floor) < 0.5),
            Profile::ChampionLeft => {
                let left: f64 = self.users.iter().take(self.champions).map(|u| u.p).sum();
                let all: f64 = self.users.iter().map(|u| u.p).sum();
                (left > 0.5 * all).then_some(change)
            }
            _ => None,
        };
        let declining = self.profile == Profile::Declining;
        Truth {
            account_id: self.id.clone(),
            profile: self.profile,
            segment: segment.to_string(),
            seats,
            change_from: (change != i32::MAX).then(|| format_day(change)),
            below_half_from: below_half.map(format_day),
            start_date: format_day(account_start),
            renewal_date,
            decline: declining.then(|| ((half_life * (1.0 / floor).log2()).ceil() as i32, (floor * 100.0).round() / 100.0)),
            half_life_days: declining.then_some(half_life),
        }
    }

    /// The account's activity on `day` against its normal (decline, silence).
    fn level(&self, day: i32) -> f64 {
        match self.profile {
            Profile::NeverActivated => 0.0,
            Profile::Inactive if day >= self.change_day => 0.0,
            Profile::Declining => decay_level(day, self.change_day, self.half_life, self.floor),
            _ => 1.0,
        }
    }

    /// This week's factor: uniform 0.75–1.25, lognormal (sigma 0.3) for bursty accounts.
    fn new_week(&mut self, week: i32) {
        let factor = match self.profile {
            Profile::Bursty => lognormal(&mut self.rng, 0.3),
            _ => self.rng.gen_range(0.75..1.25),
        };
        self.week = (week, factor);
        if self.profile == Profile::SmallHealthy {
            for u in &mut self.users {
                u.off = self.rng.gen_bool(0.1);
            }
        }
    }
}

impl Simulated for Account {
    fn first_day(&self) -> i32 {
        self.first_day
    }

    fn day(&mut self, day: i32, out: &mut Vec<Record>) {
        let week = week_of(day);
        if self.week.0 != week {
            self.new_week(week);
        }
        let level = self.level(day);
        if level > 0.0 {
            let holiday = self.quiet.is_some_and(|(w, _)| w == week && matches!(day.rem_euclid(7), 0 | 1));
            let rhythm = if weekday(day) && !holiday { 1.0 } else { self.weekend };
            // A decline loses users as well as activity: the first √level of the users stay, each
            // √level as active, so the usage follows the level.
            let keep = level.sqrt();
            let pool = ((self.users.len() as f64 * keep).ceil() as usize).min(self.users.len());
            let n_features = ((self.features.len() as f64 * keep).ceil() as usize).clamp(1, self.features.len());
            let scale = rhythm * self.week.1 * keep * self.activity;
            let gone = if self.profile == Profile::ChampionLeft && day >= self.change_day { self.champions } else { 0 };
            for u in gone..pool {
                if self.users[u].off || !self.rng.gen_bool((self.users[u].p * scale).clamp(0.0, 1.0)) {
                    continue;
                }
                for _ in 0..self.rng.gen_range(1..=5) {
                    let rec = self.usage(u, day, n_features);
                    out.push(rec);
                }
            }
        }
        self.support(day, out);
    }
}

impl Account {
    fn usage(&mut self, user: usize, day: i32, n_features: usize) -> Record {
        let ts = i64::from(day) * DAY_MS + self.rng.gen_range(7 * 3_600_000..20 * 3_600_000);
        let feature = self.rng.gen_bool(0.7).then(|| self.features[self.rng.gen_range(0..n_features)]);
        records::usage(&self.id, &self.users[user].id, feature, ts)
    }

    fn support_line(&mut self, ticket: &str, kind: &str, priority: Option<&str>, csat: Option<u8>, ts: i64) -> Record {
        records::support(&self.id, &mut self.event_seq, ticket, kind, priority, csat, ts)
    }

    fn open_ticket(&mut self, day: i32, priority: &str, closes: i32, crisis: bool, out: &mut Vec<Record>) {
        self.ticket_seq += 1;
        let ticket = records::ticket_id(&self.id, self.ticket_seq);
        let ts = i64::from(day) * DAY_MS + self.rng.gen_range(8 * 3_600_000..18 * 3_600_000);
        let rec = self.support_line(&ticket, "opened", Some(priority), None, ts);
        out.push(rec);
        self.open_tickets.push((ticket, closes, crisis));
    }

    fn support(&mut self, day: i32, out: &mut Vec<Record>) {
        let after = day >= self.change_day;
        if self.profile == Profile::SupportCrisis && after {
            // The crisis: an urgent ticket on its first day, then about two or three a week that
            // nobody closes, and other tickets that close days later with CSAT answers of 1–2.
            if day == self.change_day || (weekday(day) && self.rng.gen_bool(0.5)) {
                self.open_ticket(day, "urgent", i32::MAX, true, out);
            }
            if weekday(day) && self.rng.gen_bool(0.3) {
                let closes = day + self.rng.gen_range(3..10);
                let priority = ["normal", "high"][self.rng.gen_range(0..2)];
                self.open_ticket(day, priority, closes, true, out);
            }
        } else {
            let rate = match self.profile {
                Profile::NeverActivated => 0.0,
                // Silent: no tickets once usage declines or stops.
                Profile::Declining | Profile::Inactive if after => 0.0,
                Profile::Shelfware | Profile::LowFrequency => 0.01,
                _ => 0.06,
            };
            if weekday(day) && rate > 0.0 && self.rng.gen_bool(rate) {
                // Urgent tickets are worked at once (closed the next day).
                let urgent = self.rng.gen_bool(0.05);
                let priority = if urgent { "urgent" } else { ["low", "normal", "normal", "high"][self.rng.gen_range(0..4)] };
                let closes = day + if urgent { 1 } else { self.rng.gen_range(1..4) };
                self.open_ticket(day, priority, closes, false, out);
            }
        }
        let base = i64::from(day) * DAY_MS;
        for (ticket, crisis) in closing_on(&mut self.open_tickets, day) {
            let ts = base + self.rng.gen_range(9 * 3_600_000..19 * 3_600_000);
            let rec = self.support_line(&ticket, "closed", None, None, ts);
            out.push(rec);
            if self.rng.gen_bool(if crisis { 0.7 } else { 0.5 }) {
                let csat = if crisis { self.rng.gen_range(1..=2) } else { self.rng.gen_range(4..=5) };
                let rec = self.support_line(&ticket, "csat", None, Some(csat), ts + 3_600_000);
                out.push(rec);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::OnceLock;

    use super::*;
    use crate::event::timestamp::{day_of, parse_date_day};
    use crate::event::EventKind;
    use crate::generate::{generate, Mix};

    const END_DAY: i32 = 20_400;

    fn options(accounts: usize, seed: u64) -> GenOptions {
        GenOptions { accounts, days: 70, end_day: END_DAY, seed, activity: 1.0, mix: Mix::Realistic }
    }

    /// What the tests read of one generated population.
    struct Population {
        truths: Vec<Truth>,
        /// Usage events per account and day.
        daily: HashMap<String, BTreeMap<i32, u32>>,
        /// Champion-left accounts: usage events per user and day.
        by_user: HashMap<String, HashMap<String, BTreeMap<i32, u32>>>,
        /// Support events per account, as JSON.
        support: HashMap<String, Vec<serde_json::Value>>,
    }

    fn population() -> &'static Population {
        static POP: OnceLock<Population> = OnceLock::new();
        POP.get_or_init(|| {
            let mut records = Vec::new();
            let truths = generate(&options(300, 7), |r| records.push((r.kind, r.ts_ms, r.account_id.clone(), r.line.clone())));
            let champions: Vec<&str> = truths.iter().filter(|t| t.profile == Profile::ChampionLeft).map(|t| t.account_id.as_str()).collect();
            let mut pop = Population { truths: truths.clone(), daily: HashMap::new(), by_user: HashMap::new(), support: HashMap::new() };
            for (kind, ts, account, line) in records {
                match kind {
                    EventKind::Usage => {
                        *pop.daily.entry(account.clone()).or_default().entry(day_of(ts)).or_default() += 1;
                        if champions.contains(&account.as_str()) {
                            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                            let user = v["user_id"].as_str().unwrap().to_string();
                            *pop.by_user.entry(account).or_default().entry(user).or_default().entry(day_of(ts)).or_default() += 1;
                        }
                    }
                    EventKind::Support => pop.support.entry(account).or_default().push(serde_json::from_str(&line).unwrap()),
                    EventKind::Account | EventKind::Action => {}
                }
            }
            pop
        })
    }

    fn of(profile: Profile) -> impl Iterator<Item = &'static Truth> {
        population().truths.iter().filter(move |t| t.profile == profile)
    }

    fn usage(account: &str, days: std::ops::Range<i32>) -> f64 {
        let daily = population().daily.get(account);
        days.map(|d| daily.and_then(|m| m.get(&d)).copied().unwrap_or(0) as f64).sum()
    }

    fn change(t: &Truth) -> i32 {
        parse_date_day(t.change_from.as_deref().expect("a change day")).unwrap()
    }

    /// Coefficient of variation of an account's weekly usage over the full weeks of the span.
    fn weekly_cv(account: &str) -> f64 {
        let start = END_DAY - 69;
        let weeks: Vec<f64> = (week_of(start) + 1..week_of(END_DAY))
            .map(|w| {
                let monday = (start..=END_DAY).find(|&d| week_of(d) == w).unwrap();
                usage(account, monday..monday + 7)
            })
            .collect();
        let mean = weeks.iter().sum::<f64>() / weeks.len() as f64;
        let var = weeks.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / weeks.len() as f64;
        var.sqrt() / mean
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    #[test]
    fn the_realistic_mix_is_deterministic_for_a_seed_and_has_every_cohort() {
        let run = |seed| {
            let mut lines = Vec::new();
            let truths = generate(&options(120, seed), |r| lines.push(r.line.clone()));
            (lines, truths.iter().map(|t| serde_json::to_string(t).unwrap()).collect::<Vec<_>>())
        };
        let a = run(7);
        assert_eq!(a, run(7), "same seed, same population");
        assert_ne!(a.0, run(8).0);
        let truths = &population().truths;
        for (profile, share) in COHORTS {
            let n = truths.iter().filter(|t| t.profile == profile).count() as f64;
            assert!((n / truths.len() as f64 - share).abs() < 0.05, "{profile:?}: {n} of {}", truths.len());
        }
        // Truth: the change day where there is one, the half-life for declines.
        for t in truths {
            let changes = matches!(t.profile, Profile::Declining | Profile::ChampionLeft | Profile::SupportCrisis | Profile::Inactive);
            assert_eq!(t.change_from.is_some(), changes, "{t:?}");
            assert_eq!(t.half_life_days.is_some(), t.profile == Profile::Declining, "{t:?}");
        }
    }

    #[test]
    fn healthy_weeks_swing_by_10_to_30_percent_and_bursty_ones_by_more() {
        let healthy: Vec<f64> = of(Profile::Healthy).map(|t| weekly_cv(&t.account_id)).collect();
        let within = healthy.iter().filter(|cv| (0.1..=0.3).contains(*cv)).count();
        assert!(within as f64 >= 0.8 * healthy.len() as f64, "healthy weekly CVs: {healthy:?}");
        let healthy = median(healthy);
        assert!((0.1..=0.3).contains(&healthy), "median healthy CV {healthy}");
        let bursty = median(of(Profile::Bursty).map(|t| weekly_cv(&t.account_id)).collect());
        assert!(bursty >= 0.2 && bursty > healthy, "median bursty CV {bursty}, healthy {healthy}");
    }

    #[test]
    fn a_declining_account_is_at_a_quarter_of_its_usage_two_half_lives_after_the_change() {
        let mut seen = 0;
        for t in of(Profile::Declining) {
            let (c, h) = (change(t), t.half_life_days.unwrap());
            assert!((5.0..=18.0).contains(&h), "{t:?}");
            let from = c + (2.0 * h).round() as i32;
            if from + 7 > END_DAY + 1 {
                continue;
            }
            seen += 1;
            let before = usage(&t.account_id, c - 28..c) / 28.0;
            let after = usage(&t.account_id, from..from + 7) / 7.0;
            assert!(after <= 0.35 * before, "{t:?}: {after:.1} events a day two half-lives on, {before:.1} before");
            // No tickets once the decline starts.
            let tickets = population().support.get(&t.account_id).map(Vec::as_slice).unwrap_or(&[]);
            assert!(tickets.iter().all(|e| e["kind"] != "opened" || e["ts"].as_i64().unwrap() < i64::from(c) * DAY_MS), "{t:?}");
        }
        assert!(seen >= 3, "only {seen} declines measurable within the span");
    }

    #[test]
    fn champion_left_loses_its_busiest_users_for_good_and_keeps_the_others() {
        let (mut n, mut before_all, mut after_all) = (0, 0.0, 0.0);
        for t in of(Profile::ChampionLeft) {
            n += 1;
            let c = change(t);
            let users = &population().by_user[&t.account_id];
            let before = |u: &BTreeMap<i32, u32>| u.range(..c).map(|(_, n)| *n).sum::<u32>();
            let busiest = users.iter().max_by_key(|(_, u)| before(u)).map(|(id, _)| id).unwrap();
            let after = users[busiest].range(c..).count();
            assert_eq!(after, 0, "{t:?}: its busiest user {busiest} was active on {after} days after the change");
            if users.len() > 1 {
                assert!(users.values().any(|u| u.range(c..).next().is_some()), "{t:?}: the others go on");
            }
            let days = (c + 14).min(END_DAY + 1) - c;
            before_all += usage(&t.account_id, c - days..c);
            after_all += usage(&t.account_id, c..c + days);
        }
        assert!(n >= 5);
        // About half the usage leaves with them (one small account alone swings too much to say).
        assert!((0.3..=0.7).contains(&(after_all / before_all)), "{after_all} events after the changes, {before_all} before");
    }

    #[test]
    fn a_support_crisis_leaves_urgent_tickets_open_and_unhappy_answers() {
        for t in of(Profile::SupportCrisis) {
            let c = i64::from(change(t)) * DAY_MS;
            let events = &population().support[&t.account_id];
            let closed: Vec<&str> = events.iter().filter(|e| e["kind"] == "closed").map(|e| e["ticket_id"].as_str().unwrap()).collect();
            let open_urgent = events
                .iter()
                .filter(|e| e["kind"] == "opened" && e["priority"] == "urgent" && e["ts"].as_i64().unwrap() >= c)
                .filter(|e| !closed.contains(&e["ticket_id"].as_str().unwrap()))
                .count();
            assert!(open_urgent >= 2, "{t:?}: {open_urgent} urgent tickets open at the end");
            for e in events.iter().filter(|e| e["kind"] == "csat" && e["ts"].as_i64().unwrap() >= c + 3 * DAY_MS) {
                assert!(e["csat"].as_u64().unwrap() <= 2, "{t:?}: {e}");
            }
            // Usage unchanged.
            let d = change(t);
            let (before, after) = (usage(&t.account_id, d - 14..d), usage(&t.account_id, d..(d + 14).min(END_DAY + 1)));
            assert!(after > 0.6 * before, "{t:?}: {after} events after, {before} before");
        }
    }

    #[test]
    fn the_quiet_cohorts_are_as_described() {
        let start = END_DAY - 69;
        for t in of(Profile::Inactive) {
            let c = change(t);
            assert_eq!(usage(&t.account_id, c..END_DAY + 1), 0.0, "{t:?}");
            assert!(usage(&t.account_id, start..c) > 0.0, "{t:?}");
        }
        for t in of(Profile::NeverActivated) {
            assert!(!population().daily.contains_key(&t.account_id), "{t:?}");
        }
        // Low frequency: each seat about once a month (an active user has 1–5 events, 3 on average).
        for t in of(Profile::LowFrequency) {
            let per_seat_month = usage(&t.account_id, start..END_DAY + 1) / 3.0 / f64::from(t.seats) * 30.0 / 70.0;
            assert!((0.4..=2.0).contains(&per_seat_month), "{t:?}: {per_seat_month:.2} active days a seat a month");
        }
        for t in of(Profile::SmallHealthy) {
            assert!((3..=8).contains(&t.seats), "{t:?}");
        }
    }
}
