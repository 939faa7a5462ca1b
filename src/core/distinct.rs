//! Exact distinct counts over rolling windows without rescanning keys.
//!
//! Each key keeps its last-seen day and a 64-day bitmap of the days it was seen; a per-day count
//! of "keys last seen on this day" makes a window's distinct count a sum of buckets (valid for
//! windows ending at or after every key's last day, i.e. ending at stream time), and a per-day
//! count of "keys seen on this day" gives daily actives. Out-of-order events are exact as long as
//! they are within 64 days of the key's last day; older ones can no longer fall in a 30-day window.

use compact_str::CompactString;
use super::ids::KeyedMap;

use super::days::DayCounts;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub last_day: i32,
    /// Bit `i` set: seen on `last_day - i`.
    pub days: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Distinct {
    pub(crate) seen: KeyedMap<CompactString, Seen>,
    pub(crate) last_seen: DayCounts,
    pub(crate) per_day: DayCounts,
    /// Bytes of the keys held (kept as keys come and go, for `AccountState::growable_bytes`).
    pub(crate) key_bytes: usize,
}

impl Distinct {
    /// Heap bytes held, estimated in O(1) (for the cache's memory budget; keys longer than 24
    /// bytes, kept on the heap, are not counted).
    pub fn heap_bytes(&self) -> usize {
        super::ids::map_heap_bytes::<CompactString, Seen>(self.seen.capacity())
            + self.last_seen.heap_bytes()
            + self.per_day.heap_bytes()
    }

    /// Records `key` seen on `day`. O(1). Returns whether any count changed (a key already seen
    /// that day changes nothing).
    pub fn observe(&mut self, key: &str, day: i32) -> bool {
        match self.seen.get_mut(key) {
            None => {
                self.seen.insert(key.into(), Seen { last_day: day, days: 1 });
                self.key_bytes += key.len();
                self.last_seen.add(day, 1);
                self.per_day.add(day, 1);
                true
            }
            Some(s) if day > s.last_day => {
                let shift = (day - s.last_day) as u32;
                self.last_seen.sub(s.last_day, 1);
                self.last_seen.add(day, 1);
                s.days = if shift >= 64 { 1 } else { (s.days << shift) | 1 };
                s.last_day = day;
                self.per_day.add(day, 1);
                true
            }
            Some(s) => {
                let back = (s.last_day - day) as u32;
                if back < 64 && s.days & (1u64 << back) == 0 {
                    s.days |= 1u64 << back;
                    self.per_day.add(day, 1);
                    true
                } else {
                    false
                }
            }
        }
    }

    /// Distinct keys seen on or after `from` (for windows ending at stream time).
    pub fn count_since(&self, from: i32) -> u64 {
        self.last_seen.sum(from, i32::MAX)
    }

    /// Keys seen on `day`.
    pub fn daily(&self, day: i32) -> u32 {
        self.per_day.get(day)
    }

    /// Distinct keys seen in `from..=to`, from each key's 64-day bitmap: exact for days within 63
    /// of the key's last day (older days are gone). O(keys).
    pub fn count_between(&self, from: i32, to: i32) -> u64 {
        self.seen
            .values()
            .filter(|s| {
                // Bit `i` is day `last_day - i`: the days `from..=to` are bits `last_day - to ..= last_day - from`.
                let (lo, hi) = ((s.last_day - to).max(0), s.last_day - from);
                if hi < 0 || lo > 63 {
                    return false;
                }
                let width = (hi.min(63) - lo + 1) as u32;
                let mask = if width >= 64 { u64::MAX } else { (1u64 << width) - 1 };
                (s.days >> lo) & mask != 0
            })
            .count() as u64
    }

    /// Sum over `from..=to` of the keys seen each day.
    pub fn daily_sum(&self, from: i32, to: i32) -> u64 {
        self.per_day.sum(from, to)
    }

    /// Whether `key` was seen on or after `from`. O(1).
    pub fn seen_since(&self, key: &str, from: i32) -> bool {
        self.seen.get(key).is_some_and(|s| s.last_day >= from)
    }

    /// Keys with last day on or after `from`.
    pub fn keys_since(&self, from: i32) -> impl Iterator<Item = &str> {
        self.seen.iter().filter(move |(_, s)| s.last_day >= from).map(|(k, _)| k.as_ref())
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Bytes of the keys held. O(1).
    pub fn key_bytes(&self) -> usize {
        self.key_bytes
    }

    /// Counts the keys' bytes anew (after the keys were set directly, as decoding does).
    pub(crate) fn recount_key_bytes(&mut self) {
        self.key_bytes = self.seen.keys().map(|k| k.len()).sum();
    }

    /// Forgets keys and days before `horizon`. O(keys); callers do it once per day.
    pub fn prune_before(&mut self, horizon: i32) {
        let mut gone = 0;
        self.seen.retain(|k, s| {
            let keep = s.last_day >= horizon;
            if !keep {
                gone += k.len();
            }
            keep
        });
        self.key_bytes -= gone;
        self.last_seen.prune_before(horizon);
        self.per_day.prune_before(horizon);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    proptest! {
        /// The incremental counts equal a brute-force recount, in any arrival order.
        #[test]
        fn windows_equal_brute_force(
            events in prop::collection::vec((0u8..20, 0i32..60), 1..300),
            windows in prop::collection::vec(1i32..40, 1..4),
        ) {
            let mut d = Distinct::default();
            let mut truth: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
            let mut now = 0;
            for (user, day) in &events {
                let key = format!("u{user}");
                d.observe(&key, *day);
                truth.entry(key).or_default().insert(*day);
                now = now.max(*day);
            }
            for w in windows {
                let from = now - w + 1;
                let brute = truth.values().filter(|days| days.iter().any(|&x| x >= from)).count() as u64;
                prop_assert_eq!(d.count_since(from), brute);
                let brute_daily: u64 = (from..=now)
                    .map(|day| truth.values().filter(|days| days.contains(&day)).count() as u64)
                    .sum();
                prop_assert_eq!(d.daily_sum(from, now), brute_daily);
            }
        }

        /// A past span's distinct count equals a brute-force recount (days within 63 of a key's
        /// last day, which every span here is: the days run 0..60).
        #[test]
        fn past_spans_equal_brute_force(
            events in prop::collection::vec((0u8..20, 0i32..60), 1..300),
            spans in prop::collection::vec((0i32..60, 0i32..14), 1..6),
        ) {
            let mut d = Distinct::default();
            let mut truth: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
            for (user, day) in &events {
                let key = format!("u{user}");
                d.observe(&key, *day);
                truth.entry(key).or_default().insert(*day);
            }
            for (from, len) in spans {
                let to = from + len;
                let brute = truth.values().filter(|days| days.range(from..=to).next().is_some()).count() as u64;
                prop_assert_eq!(d.count_between(from, to), brute, "{}..={}", from, to);
            }
        }
    }

    #[test]
    fn prune_forgets_old_keys() {
        let mut d = Distinct::default();
        d.observe("a", 1);
        d.observe("b", 5);
        d.prune_before(3);
        assert_eq!(d.len(), 1);
        assert_eq!(d.count_since(0), 1);
        d.observe("a", 6);
        assert_eq!(d.count_since(0), 2);
    }
}
