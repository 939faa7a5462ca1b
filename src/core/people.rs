//! The people of an account: who uses it most, and whether they went quiet while others go on.
//! Read from what `Distinct` already keeps per user (the last 64 days each was active, as a
//! bitmap), so it costs no state of its own. A champion is one of the busiest fifth of the
//! account's users over four reference weeks, active on at least `REGULAR_DAYS` of them.

use super::distinct::{Distinct, Seen};

/// Days of the reference period, before the quiet span.
pub const REFERENCE_DAYS: i32 = 28;
/// Active days in the reference period that make a user a regular: three a week (about 60% of
/// the working days), so that twelve days of silence are unlikely by chance (0.4^8 ≈ 0.07%).
pub const REGULAR_DAYS: u32 = 12;

/// Days of `from..=to` on which a user was active.
fn active_days(s: &Seen, from: i32, to: i32) -> u32 {
    // Bit i: seen on last_day - i.
    let lo = i64::from(s.last_day) - i64::from(to);
    let hi = i64::from(s.last_day) - i64::from(from);
    if hi < 0 || lo > 63 {
        return 0;
    }
    let (lo, hi) = (lo.max(0) as u32, hi.min(63) as u32);
    let width = hi - lo + 1;
    let mask = if width >= 64 { u64::MAX } else { ((1u64 << width) - 1) << lo };
    (s.days & mask).count_ones()
}

/// One of an account's most engaged users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Champion {
    pub user_id: String,
    /// Active days in the reference period.
    pub active_days: u32,
    pub last_day: i32,
}

/// Champions who went quiet.
#[derive(Debug, Clone, PartialEq)]
pub struct QuietChampions {
    /// The quiet ones, busiest first.
    pub quiet: Vec<Champion>,
    /// Champions in all.
    pub champions: usize,
    /// The quiet ones' share of the account's active user-days in the reference period.
    pub share: f64,
    /// Everyone else's active user-days over the quiet span against their reference rate.
    pub others_level: f64,
}

/// The busiest fifth of the users active in the 28 days ending on `to` (at least one), who were
/// active on at least `REGULAR_DAYS` of them, busiest first (ties by id: a stable order).
pub fn champions(users: &Distinct, to: i32) -> (Vec<Champion>, u64) {
    let from = to - REFERENCE_DAYS + 1;
    // Borrowed ids while ranking; only the champions' are copied.
    let mut active: Vec<(u32, &str, i32)> = users
        .seen
        .iter()
        .filter(|(_, s)| s.last_day >= from)
        .map(|(k, s)| (active_days(s, from, to), k.as_str(), s.last_day))
        .filter(|c| c.0 > 0)
        .collect();
    let total: u64 = active.iter().map(|c| u64::from(c.0)).sum();
    let n = active.len().div_ceil(5).max(1);
    // Ids are distinct, so the order is total whatever the map's.
    let busiest = |a: &(u32, &str, i32), b: &(u32, &str, i32)| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1));
    if n < active.len() {
        active.select_nth_unstable_by(n - 1, busiest);
        active.truncate(n);
    }
    active.sort_unstable_by(busiest);
    let champions = active
        .into_iter()
        .filter(|c| c.0 >= REGULAR_DAYS)
        .map(|(active_days, id, last_day)| Champion { user_id: id.to_string(), active_days, last_day })
        .collect();
    (champions, total)
}

/// How engaged one user is, as CS teams rank them: `SS` a champion (the busiest fifth, at least
/// `REGULAR_DAYS` active days of 28), `S` a regular (at least 8), `A` the others.
pub fn rank(active_days: u32, champion: bool) -> &'static str {
    match active_days {
        _ if champion => "SS",
        8.. => "S",
        _ => "A",
    }
}

/// The (at most `n`) users most active in the 28 days ending on `to`, busiest first (ties by id),
/// each with whether it is a champion. O(users log users): for the API's account view.
pub fn top_users(users: &Distinct, to: i32, n: usize) -> Vec<(Champion, bool)> {
    let from = to - REFERENCE_DAYS + 1;
    let (champions, _) = champions(users, to);
    let mut all: Vec<Champion> = users
        .seen
        .iter()
        .filter(|(_, s)| s.last_day >= from)
        .map(|(k, s)| Champion { user_id: k.to_string(), active_days: active_days(s, from, to), last_day: s.last_day })
        .collect();
    all.sort_by(|a, b| b.active_days.cmp(&a.active_days).then_with(|| a.user_id.cmp(&b.user_id)));
    all.truncate(n);
    all.into_iter()
        .map(|c| {
            let champion = champions.iter().any(|x| x.user_id == c.user_id);
            (c, champion)
        })
        .collect()
}

/// The account's champions (over the 28 days before the last `quiet_days`) not seen in the last
/// `quiet_days` days nor today, if they made at least `min_share` of the account's activity then
/// and the others still use the product (`others_level`). O(1) when too few users went quiet for
/// that share; else O(users).
pub fn quiet_champions(users: &Distinct, now: i32, quiet_days: i32, min_share: f64) -> Option<QuietChampions> {
    let to = now - quiet_days - 1;
    let from = to - REFERENCE_DAYS + 1;
    // Users whose last day lies in the reference period: the only ones who can be quiet now.
    let went_quiet = users.last_seen.sum(from, to);
    let total = users.per_day.sum(from, to);
    if total == 0 || (went_quiet * REFERENCE_DAYS as u64) < (min_share * total as f64) as u64 {
        return None;
    }
    let (champions, total) = champions(users, to);
    if total == 0 {
        return None;
    }
    let count = champions.len();
    let quiet: Vec<Champion> = champions.iter().filter(|c| c.last_day <= to).cloned().collect();
    let share = quiet.iter().map(|c| f64::from(c.active_days)).sum::<f64>() / total as f64;
    if quiet.is_empty() || share < min_share {
        return None;
    }
    // The others: every user-day of the quiet span (quiet champions have none) against the
    // reference user-days of everyone but the quiet champions, at the same rate per day.
    let recent = users.per_day.sum(to + 1, now - 1) as f64;
    let reference = (total as f64 * (1.0 - share)) * f64::from(quiet_days) / f64::from(REFERENCE_DAYS);
    let others_level = if reference > 0.0 { recent / reference } else { 0.0 };
    Some(QuietChampions { quiet, champions: count, share, others_level })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `users` people: the first `busy` active every weekday, the rest one weekday in four.
    fn account(users: usize, busy: usize, days: i32, busy_stop: i32) -> Distinct {
        let mut d = Distinct::default();
        for day in 0..days {
            if matches!(day.rem_euclid(7), 2 | 3) {
                continue;
            }
            for u in 0..users {
                let active = if u < busy { day < busy_stop } else { (day + u as i32) % 4 == 0 };
                if active {
                    d.observe(&format!("u-{u}"), day);
                }
            }
        }
        d
    }

    #[test]
    fn active_days_reads_the_bitmap() {
        let s = Seen { last_day: 100, days: 0b1011 };
        assert_eq!(active_days(&s, 97, 100), 3);
        assert_eq!(active_days(&s, 99, 100), 2);
        assert_eq!(active_days(&s, 101, 120), 0);
        assert_eq!(active_days(&s, 0, 36), 0, "older than the bitmap");
        assert_eq!(active_days(&Seen { last_day: 100, days: u64::MAX }, -1000, 1000), 64);
    }

    #[test]
    fn the_busiest_users_going_quiet_shows_while_others_go_on() {
        let d = account(10, 2, 70, 50);
        let q = quiet_champions(&d, 70, 12, 0.25).expect("the two busiest stopped on day 50");
        assert_eq!(q.quiet.iter().map(|c| c.user_id.as_str()).collect::<Vec<_>>(), ["u-0", "u-1"]);
        assert!(q.share > 0.3 && q.others_level > 0.7, "{q:?}");
        // Ten days of silence is not yet twelve.
        assert!(quiet_champions(&d, 60, 12, 0.25).is_none());
        // Nobody stopped.
        assert!(quiet_champions(&account(10, 2, 70, 999), 70, 12, 0.25).is_none());
    }

    #[test]
    fn top_users_are_ranked_busiest_first_with_their_champions() {
        let d = account(10, 2, 40, 999);
        let top = top_users(&d, 39, 4);
        assert_eq!(top.len(), 4);
        assert_eq!((top[0].0.user_id.as_str(), top[0].1), ("u-0", true));
        assert_eq!((top[1].0.user_id.as_str(), top[1].1), ("u-1", true));
        assert!(!top[2].1 && top[2].0.active_days <= top[1].0.active_days);
        assert_eq!(rank(top[0].0.active_days, top[0].1), "SS");
        assert_eq!(rank(top[2].0.active_days, false), "A", "one weekday in four: {:?}", top[2]);
        assert_eq!(rank(9, false), "S");
    }

    #[test]
    fn champions_are_the_busiest_fifth_and_regular() {
        let d = account(10, 2, 40, 999);
        let (c, total) = champions(&d, 39);
        assert_eq!(c.len(), 2);
        assert!(c[0].active_days >= c[1].active_days && c[1].active_days >= REGULAR_DAYS);
        assert!(total > 0);
        // Nobody regular: no champion.
        let (c, _) = champions(&account(10, 0, 40, 999), 39);
        assert!(c.is_empty(), "{c:?}");
    }
}
