//! How unusual an account's recent usage is, judged against its own history: the account's usual
//! week-to-week swing and the chance noise of its counts. A four-seat account whose one power
//! user took a week off is not a decline; a 200-seat account whose usage fell a third in four days
//! is. Pure arithmetic over day counts kizashi already keeps (no state of its own): O(days of the
//! norm, at most 70) per call.
//!
//! The model: a week's total `W` of a steady account is `norm × e^ε`, `ε ~ N(0, v)`, where `v`
//! is the week-level swing τ² plus the count noise `ψ / norm` (ψ: how overdispersed the account's
//! daily counts are against Poisson; bursts of events from one user make it large). Both are
//! estimated from the account's own norm weeks and shrunk towards a prior, so that two quiet weeks
//! of history do not make an account look steadier than accounts are. A recent window is compared
//! with what its days of the week would hold at the norm; its evidence is the log of the ratio in
//! standard deviations (`z`), the norm's own uncertainty included.

/// Most whole weeks of norm (ten: a fall must last five weeks before the median week is the new,
/// lower level); at least `MIN_WEEKS`. Within the default 90 days of retention, with the 14 days
/// of the longest window.
pub const MAX_WEEKS: i32 = 10;
pub const MIN_WEEKS: i32 = 2;
/// Prior week-to-week swing (a log standard deviation: ±13%), and how many weeks it weighs
/// against the account's own.
const PRIOR_SWING: f64 = 0.15;
const PRIOR_WEEKS: f64 = 4.0;
/// Windows the evidence looks at: a sharp fall shows in the last 4 days, a steady one in 7 or 14.
pub const WINDOWS: [i32; 3] = [4, 7, 14];

/// One recent window against the norm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Days in the window (ending with the last complete day).
    pub days: i32,
    /// Observed over expected, with half a count added to both (0 days of usage read as a small
    /// ratio, not as no data).
    pub ratio: f64,
    /// The window's count.
    pub observed: f64,
    /// Standard deviation of `ln(ratio)` for an account whose usage did not change.
    pub sd: f64,
}

impl Window {
    /// Evidence in standard deviations: negative when usage is below its norm.
    pub fn z(&self) -> f64 {
        self.ratio.ln() / self.sd
    }

    /// The ratio discounted by `k` standard deviations of the account's own noise, towards 1:
    /// how far it is off its norm beyond what chance explains.
    pub fn discounted(&self, k: f64) -> f64 {
        let slack = (k * self.sd).exp();
        if self.ratio < 1.0 {
            (self.ratio * slack).min(1.0)
        } else {
            (self.ratio / slack).max(1.0)
        }
    }
}

/// A series' recent windows against its norm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// By `WINDOWS`; `None` where the norm has fewer than `MIN_WEEKS` weeks before the window.
    pub windows: [Option<Window>; 3],
    /// The account's usual week-to-week swing (a log standard deviation) in the 7-day window's
    /// norm, chance noise of its counts included.
    pub swing: Option<f64>,
    /// Days of the week the account normally uses (bit `day.rem_euclid(7)`): at least half an
    /// average day's count in the norm. A weekend or a day the account never works says nothing
    /// about a fall.
    pub working: u8,
    /// The last working day before today against its weekday's norm (half a count added to both).
    pub last: Option<f64>,
    /// Each of the last `RECENT_DAYS` complete days (yesterday first) against its weekday's norm,
    /// as `last`; NaN for a day that is not a working day (or without a norm).
    pub recent: [f32; RECENT_DAYS],
}

/// Complete days whose ratios `Usage::recent` keeps: enough for a run of low working days to
/// outlast a week off.
pub const RECENT_DAYS: usize = 14;

impl Usage {
    pub const NONE: Usage = Usage { windows: [None; 3], swing: None, working: 0, last: None, recent: [f32::NAN; RECENT_DAYS] };

    pub fn week(&self) -> Option<Window> {
        self.windows[1]
    }
}

/// Whether `day` is a working day of `mask` (see `Usage::working`).
pub fn working(mask: u8, day: i32) -> bool {
    mask >> day.rem_euclid(7) & 1 == 1
}

/// Judges the series whose count on day `d` is `count(d)` on `now` (the windows end on `now - 1`,
/// the last complete day), for an account kizashi first saw on `first_day` (or whose counts
/// before it are gone: the retention horizon). `dispersion`: the
/// least overdispersion to assume (1 for a count of people a day, more for events, of which a
/// user makes several at once).
pub fn usage(first_day: Option<i32>, now: i32, dispersion: f64, count: impl Fn(i32) -> u32) -> Usage {
    let Some(first) = first_day else { return Usage::NONE };
    // The weeks before today, oldest first: every window and norm below lies in them.
    const SPAN: i32 = 7 * (MAX_WEEKS + 2);
    let from = now - SPAN;
    let mut y = [0.0; SPAN as usize];
    for (i, d) in (from.max(first)..now).enumerate() {
        y[i + (from.max(first) - from) as usize] = f64::from(count(d));
    }
    // Days before the account was first seen are never read: every norm starts after it.
    let at = |d: i32| y[(d - from) as usize];
    let mut out = Usage::NONE;
    // Two norms: whole weeks ending the day before the last 7 days (for the 4- and 7-day windows,
    // so that the 4 days compare with the same days of the week) and before the last 14.
    let mut norms: [Option<(Norm, i32)>; 2] = [None, None];
    for (slot, end) in norms.iter_mut().zip([now - 8, now - 15]) {
        let weeks = ((end - first + 1) / 7).clamp(0, MAX_WEEKS);
        if weeks >= MIN_WEEKS {
            let norm = Norm::of(end, weeks, at, dispersion);
            *slot = (norm.weekly > 0.0).then_some((norm, weeks));
        }
    }
    for (slot, &n) in out.windows.iter_mut().zip(WINDOWS.iter()) {
        let Some((norm, weeks)) = &norms[usize::from(n > 7)] else { continue };
        let expected: f64 = (now - n..now).map(|d| norm.by_weekday[(d.rem_euclid(7)) as usize]).sum();
        let observed: f64 = (now - n..now).map(at).sum();
        // Count noise over the window; the week-level swing applies whole to a window within one
        // week and averages over two.
        let weeks_in = f64::from(n.max(7)) / 7.0;
        let var = norm.tau2 / weeks_in + norm.psi / expected.max(0.5);
        // The norm's mean is estimated (1/k), and so is its spread: with `df` weeks of evidence
        // about it, a t distribution's wider tails (its variance is df / (df - 2)).
        let k = f64::from(*weeks);
        let df = PRIOR_WEEKS + k - 1.0;
        let var = var * (1.0 + 1.0 / k) * df / (df - 2.0);
        *slot = Some(Window { days: n, ratio: (observed + 0.5) / (expected + 0.5), observed, sd: var.sqrt() });
    }
    if let Some((norm, _)) = &norms[0] {
        out.swing = Some((norm.tau2 + norm.psi / norm.weekly.max(0.5)).sqrt());
        let average = norm.weekly / 7.0;
        out.working = (0..7).filter(|&w| norm.by_weekday[w] >= 0.5 * average).fold(0u8, |m, w| m | 1 << w);
        out.last = (now - 7..now)
            .rev()
            .find(|&d| working(out.working, d))
            .map(|d| (at(d) + 0.5) / (norm.by_weekday[d.rem_euclid(7) as usize] + 0.5));
        // A day more than a week back against the norm before the last 14 days, when there is
        // one (the other reaches into the days it would judge).
        for (i, r) in out.recent.iter_mut().enumerate() {
            let d = now - 1 - i as i32;
            let norm = if i >= 7 { norms[1].as_ref().map_or(norm, |(n, _)| n) } else { norm };
            if working(out.working, d) && d >= first {
                *r = ((at(d) + 0.5) / (norm.by_weekday[d.rem_euclid(7) as usize] + 0.5)) as f32;
            }
        }
    }
    out
}

/// Events and people a day read together: a fall in either shows, a chance dip of one with the
/// other near normal does not read as a collapse. The two move together in a steady account's
/// slow week, hence the correlation assumed between their noise.
const SERIES_CORRELATION: f64 = 0.8;

/// The shortest window is the noisiest and is looked at every day: its evidence counts for this
/// share (it must be a third stronger to weigh as much as a week's).
const SHORT_WINDOW_WEIGHT: f64 = 0.75;

/// The strongest evidence of a fall over the windows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decline {
    /// Days of the window with the strongest evidence.
    pub days: i32,
    /// Usage over that window against its norm: the geometric mean of the two series' ratios.
    pub ratio: f64,
    /// In standard deviations (negative: below the norm), the 4-day window's weighed down by
    /// `SHORT_WINDOW_WEIGHT`.
    pub z: f64,
    /// The two series' ratios over that window.
    pub events: Option<f64>,
    pub users: Option<f64>,
    /// The account's usual week-to-week swing, as a share (0.12: ±12%).
    pub swing: Option<f64>,
    /// The last working day against its norm, both series together: is the fall still going on?
    pub last: Option<f64>,
    /// Working days of the week, either series (see `Usage::working`).
    pub working: u8,
    /// The last `RECENT_DAYS` days against their norm, both series together (NaN: not a
    /// working day).
    pub recent: [f32; RECENT_DAYS],
}

impl Decline {
    /// Working days in a row, ending with the last working day, at most `share` of their norm: how
    /// long the fall has lasted so far (days that are not working days neither count nor end it).
    pub fn low_days(&self, share: f64) -> i32 {
        let mut n = 0;
        for &r in &self.recent {
            if r.is_nan() {
                continue;
            }
            if f64::from(r) > share {
                break;
            }
            n += 1;
        }
        n
    }
}

/// Combines the evidence of the events and the people a day; `None` without a norm.
pub fn decline(events: &Usage, users: &Usage) -> Option<Decline> {
    let swing = match (events.swing, users.swing) {
        (Some(a), Some(b)) => Some((a + b) / 2.0),
        (a, b) => a.or(b),
    };
    let last = match (events.last, users.last) {
        (Some(a), Some(b)) => Some((a * b).sqrt()),
        (a, b) => a.or(b),
    };
    let working = events.working | users.working;
    let mut recent = [f32::NAN; RECENT_DAYS];
    for (i, r) in recent.iter_mut().enumerate() {
        let (a, b) = (events.recent[i], users.recent[i]);
        *r = match (a.is_nan(), b.is_nan()) {
            (false, false) => (a * b).sqrt(),
            (false, true) => a,
            (true, false) => b,
            (true, true) => f32::NAN,
        };
    }
    let mut best: Option<Decline> = None;
    for (i, &days) in WINDOWS.iter().enumerate() {
        let (e, u) = (events.windows[i], users.windows[i]);
        let (log, sd) = match (e, u) {
            (Some(e), Some(u)) => {
                let var = (e.sd * e.sd + u.sd * u.sd + 2.0 * SERIES_CORRELATION * e.sd * u.sd) / 4.0;
                ((e.ratio.ln() + u.ratio.ln()) / 2.0, var.sqrt())
            }
            (Some(w), None) | (None, Some(w)) => (w.ratio.ln(), w.sd),
            (None, None) => continue,
        };
        let weight = if i == 0 { SHORT_WINDOW_WEIGHT } else { 1.0 };
        let d = Decline { days, ratio: log.exp(), z: weight * log / sd, events: e.map(|w| w.ratio), users: u.map(|w| w.ratio), swing: swing.map(|s| s.exp_m1()), last, working, recent };
        if best.is_none_or(|b| d.z < b.z) {
            best = Some(d);
        }
    }
    best
}

/// An account's norm over whole weeks.
struct Norm {
    /// Mean weekly total.
    weekly: f64,
    /// Mean count on each day of the week (`day.rem_euclid(7)`).
    by_weekday: [f64; 7],
    /// Week-level swing (variance of a week's log total beyond count noise), shrunk to the prior.
    tau2: f64,
    /// Overdispersion of daily counts against Poisson, at least the floor given.
    psi: f64,
}

impl Norm {
    /// The `weeks` whole weeks ending on day `end`. The level is the median week, so a few odd
    /// weeks (a holiday, the first weeks of a fall the norm now reaches into) do not move it much.
    fn of(end: i32, weeks: i32, at: impl Fn(i32) -> f64, dispersion: f64) -> Norm {
        let start = end - 7 * weeks + 1;
        let k = f64::from(weeks);
        let mut by_weekday = [0.0; 7];
        let mut totals = [0.0; MAX_WEEKS as usize];
        for d in start..=end {
            by_weekday[d.rem_euclid(7) as usize] += at(d) / k;
            totals[((d - start) / 7) as usize] += at(d);
        }
        let totals = &totals[..weeks as usize];
        let mean_week = totals.iter().sum::<f64>() / k;
        let weekly = median(totals);
        // The weekday shape of the mean week, at the median week's level.
        if mean_week > 0.0 {
            by_weekday.iter_mut().for_each(|x| *x *= weekly / mean_week);
        }
        // Dispersion: daily counts against each week's level times the weekday shape.
        let (mut resid, mut expect) = (0.0, 0.0);
        for d in start..=end {
            let w = totals[((d - start) / 7) as usize];
            let e = if weekly > 0.0 { by_weekday[d.rem_euclid(7) as usize] * w / weekly } else { 0.0 };
            resid += (at(d) - e).powi(2);
            expect += e;
        }
        // Fitting the week levels and the weekday shape used up weeks + 6 of the 7k days.
        let dof = (7.0 * k - k - 6.0).max(1.0) / (7.0 * k);
        let psi = if expect > 0.0 { (resid / expect / dof).max(dispersion) } else { dispersion };
        // Week-level swing: the variance of the weeks' log totals, less what count noise explains
        // (not a robust spread: with a handful of weeks that would read most accounts as steadier
        // than they are).
        let logs = totals.iter().map(|t| (t + 0.5).ln());
        let mean = logs.clone().sum::<f64>() / k;
        let var = logs.map(|l| (l - mean).powi(2)).sum::<f64>() / (k - 1.0);
        let own = (var - psi / weekly.max(0.5)).max(0.0);
        let tau2 = (PRIOR_WEEKS * PRIOR_SWING * PRIOR_SWING + (k - 1.0) * own) / (PRIOR_WEEKS + k - 1.0);
        Norm { weekly, by_weekday, tau2, psi }
    }
}

/// Median of a few values (`MAX_WEEKS` at most).
fn median(xs: &[f64]) -> f64 {
    let mut v = [0.0; MAX_WEEKS as usize];
    let v = &mut v[..xs.len()];
    v.copy_from_slice(xs);
    v.sort_unstable_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A steady account: `users` people each active on a weekday with probability `p`, each week's
    /// level multiplied by a factor in `1 ± swing`.
    fn steady(users: u32, p: f64, swing: f64, days: i32, seed: u64) -> Vec<u32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut level = 1.0;
        (0..days)
            .map(|d| {
                if d % 7 == 0 {
                    level = 1.0 + rng.gen_range(-swing..=swing);
                }
                let weekday = !matches!(d.rem_euclid(7), 2 | 3);
                let q = (p * level * if weekday { 1.0 } else { 0.1 }).min(1.0);
                (0..users).filter(|_| rng.gen_bool(q)).count() as u32
            })
            .collect()
    }

    #[test]
    fn a_fall_shows_and_a_normal_week_does_not() {
        let days = steady(40, 0.6, 0.0, 84, 1);
        let now = 84;
        let u = usage(Some(0), now, 1.0, |d| days.get(d as usize).copied().unwrap_or(0));
        let w = u.week().unwrap();
        assert!(w.z().abs() < 2.5, "steady: {w:?}");
        // The last 4 days at a third of the usual.
        let fell: Vec<u32> = days.iter().enumerate().map(|(d, &c)| if d >= 80 { c / 3 } else { c }).collect();
        let u = usage(Some(0), now, 1.0, |d| fell.get(d as usize).copied().unwrap_or(0));
        let short = u.windows[0].unwrap();
        assert!(short.z() < -4.0, "a sharp fall is strong evidence within 4 days: {short:?}");
    }

    #[test]
    fn evidence_scales_with_counts_and_with_the_accounts_own_swing() {
        let drop = |v: &[u32]| -> Vec<u32> { v.iter().enumerate().map(|(d, &c)| if d >= 77 { c / 2 } else { c }).collect() };
        let z = |v: &[u32]| usage(Some(0), 84, 1.0, |d| v.get(d as usize).copied().unwrap_or(0)).week().unwrap().z();
        let big = steady(200, 0.6, 0.05, 84, 2);
        let small = steady(4, 0.6, 0.05, 84, 2);
        assert!(z(&drop(&big)) < -4.0, "half of a big steady account's usage gone: {}", z(&drop(&big)));
        assert!(z(&drop(&small)) > -3.0, "half of a four-person account's week is within chance: {}", z(&drop(&small)));
        let bursty = steady(200, 0.5, 0.5, 84, 3);
        assert!(z(&drop(&bursty)) > z(&drop(&big)), "an account that swings needs more evidence");
        let u = usage(Some(0), 84, 1.0, |d| bursty.get(d as usize).copied().unwrap_or(0));
        assert!(u.swing.unwrap() > 0.2, "{u:?}");
    }

    #[test]
    fn no_norm_without_two_whole_weeks() {
        let u = usage(Some(70), 84, 1.0, |_| 5);
        assert_eq!(u.windows, [None; 3]);
        let u = usage(Some(63), 84, 1.0, |_| 5);
        assert!(u.windows[0].is_some() && u.windows[1].is_some() && u.windows[2].is_none(), "{u:?}");
        assert_eq!(u.working, 0b111_1111, "every day of the week used alike");
        assert_eq!(usage(None, 84, 1.0, |_| 5).swing, None);
    }

    #[test]
    fn one_odd_week_moves_the_norm_little() {
        let mut days = steady(60, 0.6, 0.05, 84, 4);
        // A holiday week inside the norm.
        for c in &mut days[35..42] {
            *c /= 4;
        }
        let u = usage(Some(0), 84, 1.0, |d| days.get(d as usize).copied().unwrap_or(0));
        let w = u.week().unwrap();
        assert!((w.ratio - 1.0).abs() < 0.15, "the median week is the norm: {w:?}");
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn a_run_of_low_working_days_is_counted_back_from_yesterday_over_weekends() {
        // Weekdays of 40 people (days with `rem_euclid(7)` 2 and 3 are the weekend); from day 76
        // on, a fifth of that.
        let days = steady(40, 0.6, 0.0, 84, 5);
        let fell: Vec<u32> = days.iter().enumerate().map(|(d, &c)| if d >= 76 { c / 5 } else { c }).collect();
        let at = |v: &[u32], d: i32| v.get(d as usize).copied().unwrap_or(0);
        let e = usage(Some(0), 84, 2.0, |d| at(&fell, d));
        let u = usage(Some(0), 84, 1.0, |d| at(&fell, d));
        let d = decline(&e, &u).unwrap();
        // Days 76..=83 are low; 79 and 80 (rem 2, 3) are the weekend and neither count nor end it.
        assert_eq!(d.low_days(0.7), 6, "{:?}", d.recent);
        assert!(d.recent[3].is_nan() && d.recent[4].is_nan(), "days 80 and 79: {:?}", d.recent);
        assert_eq!(d.low_days(0.1), 0, "a fifth is not a tenth");
        let steady = usage(Some(0), 84, 1.0, |d| at(&days, d));
        assert_eq!(decline(&steady, &steady).unwrap().low_days(0.7), 0);
    }

    #[test]
    fn discounting_moves_towards_one_by_the_noise() {
        let w = Window { days: 7, ratio: 0.6, observed: 6.0, sd: 0.2 };
        assert!((w.discounted(1.5) - 0.6 * 0.3f64.exp()).abs() < 1e-12);
        assert_eq!(Window { days: 7, ratio: 0.9, observed: 9.0, sd: 0.2 }.discounted(1.5), 1.0);
        assert_eq!(Window { days: 7, ratio: 1.2, observed: 12.0, sd: 0.2 }.discounted(1.5), 1.0);
    }
}
