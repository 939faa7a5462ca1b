//! Per-day counters over a bounded span of days: the building block of every rolling window.
//! A `DayCounts` never holds more than `MAX_SPAN_DAYS` days, whatever days it is given.

/// Most days one `DayCounts` holds, from its first day to its last. Callers prune to
/// `events.retention_days` (at most 3,650, see `config.rs`), so in normal operation a span is at
/// most that; the 50 days above it leave room for a state restored ahead of its partition's stream
/// time. A day that would stretch the span further pushes the oldest days out (they are older
/// than any retention horizon), and a day older than the span can reach is ignored. The state
/// decoder refuses a longer span, so a corrupt length cannot make it allocate more.
pub const MAX_SPAN_DAYS: usize = 3_700;

/// Counts per UTC day, stored densely from the earliest day with a count to the latest.
/// Callers prune days that fall out of retention; `MAX_SPAN_DAYS` bounds the span regardless.
#[derive(Debug, Clone, Default)]
pub struct DayCounts {
    start: i32,
    counts: Vec<u32>,
}

/// Equal when they hold the same non-zero counts (zero padding is not significant).
impl PartialEq for DayCounts {
    fn eq(&self, other: &Self) -> bool {
        self.iter().filter(|x| x.1 != 0).eq(other.iter().filter(|x| x.1 != 0))
    }
}

impl Eq for DayCounts {}

impl DayCounts {
    /// Heap bytes held (for the cache's memory budget).
    pub fn heap_bytes(&self) -> usize {
        super::ids::alloc_bytes(self.counts.capacity() * std::mem::size_of::<u32>())
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// First day held (meaningless when empty).
    pub fn start(&self) -> i32 {
        self.start
    }

    pub fn iter(&self) -> impl Iterator<Item = (i32, u32)> + '_ {
        // The span ends at or before i32::MAX (see `add` and `from_parts`).
        self.counts.iter().enumerate().map(move |(i, c)| (self.start.wrapping_add(i as i32), *c))
    }

    /// Index of `day` in `counts`, if the span holds it.
    fn index(&self, day: i32) -> Option<usize> {
        let i = i64::from(day) - i64::from(self.start);
        usize::try_from(i).ok().filter(|&i| i < self.counts.len())
    }

    /// Last day held (meaningless when empty).
    fn end(&self) -> i64 {
        i64::from(self.start) + self.counts.len() as i64 - 1
    }

    /// Adds `n` to `day` (saturating). Keeps the span within `MAX_SPAN_DAYS`: a day after the
    /// span pushes out the oldest days if it must; a day before it that cannot fit is ignored.
    pub fn add(&mut self, day: i32, n: u32) {
        const MAX: i64 = MAX_SPAN_DAYS as i64;
        if n == 0 {
            return;
        }
        if self.counts.is_empty() {
            self.start = day;
            self.counts.push(n);
            return;
        }
        let (day64, start, end) = (i64::from(day), i64::from(self.start), self.end());
        if day64 < start {
            // Rare: an out-of-order event before the first day held.
            if end - day64 + 1 > MAX {
                return;
            }
            let gap = (start - day64) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, gap));
            self.counts[0] = n;
            self.start = day;
            return;
        }
        if day64 > end {
            // Days more than the span before `day` go: they are older than any retention horizon.
            let keep_from = day64 - MAX + 1;
            if keep_from > start {
                let drop = usize::try_from(keep_from - start).map_or(self.counts.len(), |d| d.min(self.counts.len()));
                self.counts.drain(..drop);
                self.start = i32::try_from(keep_from).expect("between start and day");
                self.prune_before(i32::MIN);
                if self.counts.is_empty() {
                    self.start = day;
                    self.counts.push(n);
                    return;
                }
            }
            let len = usize::try_from(day64 - i64::from(self.start) + 1).expect("day after start");
            self.counts.resize(len, 0);
        }
        let idx = self.index(day).expect("day within the span");
        self.counts[idx] = self.counts[idx].saturating_add(n);
    }

    /// Subtracts `n` from `day` (saturating; a day outside the span is ignored).
    pub fn sub(&mut self, day: i32, n: u32) {
        if let Some(i) = self.index(day) {
            self.counts[i] = self.counts[i].saturating_sub(n);
        }
    }

    pub fn get(&self, day: i32) -> u32 {
        self.index(day).map_or(0, |i| self.counts[i])
    }

    /// Sum over `from..=to`.
    pub fn sum(&self, from: i32, to: i32) -> u64 {
        if self.counts.is_empty() || to < from {
            return 0;
        }
        let lo = from.max(self.start);
        let hi = i64::from(to).min(self.end());
        if hi < i64::from(lo) {
            return 0;
        }
        let a = (i64::from(lo) - i64::from(self.start)) as usize;
        let b = (hi - i64::from(self.start)) as usize;
        self.counts[a..=b].iter().map(|&c| u64::from(c)).sum()
    }

    /// Drops every day before `day`, and zero days at both ends.
    pub fn prune_before(&mut self, day: i32) {
        let before = usize::try_from(i64::from(day) - i64::from(self.start)).unwrap_or(0).min(self.counts.len());
        let zeros = self.counts[before..].iter().take_while(|&&c| c == 0).count();
        let drop = before + zeros;
        self.counts.drain(..drop);
        while self.counts.last() == Some(&0) {
            self.counts.pop();
        }
        if !self.counts.is_empty() {
            // Still at or before the last day held, so within i32.
            self.start = i32::try_from(i64::from(self.start) + drop as i64).expect("within the span");
        }
    }

    /// Rebuilds from `(start, counts)`, as stored. Of a span longer than `MAX_SPAN_DAYS` only the
    /// newest days are kept (the decoder refuses one before getting here).
    pub fn from_parts(start: i32, mut counts: Vec<u32>) -> Self {
        let mut start = start;
        // No day after i32::MAX.
        let room = usize::try_from(i64::from(i32::MAX) - i64::from(start) + 1).unwrap_or(usize::MAX);
        counts.truncate(room);
        if counts.len() > MAX_SPAN_DAYS {
            let drop = counts.len() - MAX_SPAN_DAYS;
            counts.drain(..drop);
            start = i32::try_from(i64::from(start) + drop as i64).unwrap_or(i32::MAX);
        }
        let mut d = Self { start, counts };
        d.prune_before(i32::MIN);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_sum_prune() {
        let mut d = DayCounts::default();
        d.add(10, 2);
        d.add(12, 3);
        d.add(8, 1);
        assert_eq!(d.sum(0, 100), 6);
        assert_eq!(d.sum(9, 11), 2);
        assert_eq!(d.sum(11, 9), 0);
        assert_eq!(d.get(12), 3);
        d.sub(12, 5);
        assert_eq!(d.get(12), 0);
        d.prune_before(10);
        assert_eq!(d.iter().collect::<Vec<_>>(), vec![(10, 2)]);
        d.prune_before(11);
        assert!(d.is_empty());
    }

    fn span(d: &DayCounts) -> usize {
        d.iter().count()
    }

    #[test]
    fn a_day_after_the_span_pushes_the_oldest_days_out() {
        let mut d = DayCounts::default();
        d.add(100, 1);
        d.add(200, 2);
        d.add(100 + MAX_SPAN_DAYS as i32, 3);
        assert_eq!(d.get(100), 0, "pushed out");
        assert_eq!(d.get(200), 2);
        assert_eq!(d.get(100 + MAX_SPAN_DAYS as i32), 3);
        assert_eq!(d.start(), 200, "no leading zeros kept");
        d.add(200 + 10 * MAX_SPAN_DAYS as i32, 4);
        assert_eq!(d.iter().collect::<Vec<_>>(), [(200 + 10 * MAX_SPAN_DAYS as i32, 4)]);
    }

    #[test]
    fn a_day_before_the_span_that_cannot_fit_is_ignored() {
        let mut d = DayCounts::default();
        d.add(10_000, 1);
        d.add(10_000 - MAX_SPAN_DAYS as i32 + 1, 2);
        assert_eq!(span(&d), MAX_SPAN_DAYS);
        d.add(10_000 - MAX_SPAN_DAYS as i32, 3);
        assert_eq!(d.sum(i32::MIN, i32::MAX), 3, "the day that does not fit changed nothing");
    }

    #[test]
    fn extreme_days_neither_panic_nor_allocate_the_distance() {
        let mut d = DayCounts::default();
        for day in [-2_000_000_000, 2_000_000_000, i32::MIN, i32::MAX, 0, i32::MAX, i32::MIN] {
            d.add(day, u32::MAX);
            d.add(day, 1);
            assert!(span(&d) <= MAX_SPAN_DAYS);
            d.sub(day, 1);
            let _ = (d.get(day), d.sum(i32::MIN, i32::MAX), d.sum(day, day));
        }
        // The last i32::MIN came before a span it cannot join: ignored.
        assert_eq!(d.iter().collect::<Vec<_>>(), [(i32::MAX, u32::MAX - 1)], "saturated, then one subtracted");
        d.prune_before(i32::MAX);
        assert_eq!(span(&d), 1, "the last day is kept");
        let d = DayCounts::from_parts(i32::MAX - 1, vec![1, 2, 3, 4]);
        assert_eq!(d.iter().collect::<Vec<_>>(), [(i32::MAX - 1, 1), (i32::MAX, 2)]);
        let d = DayCounts::from_parts(0, vec![1; MAX_SPAN_DAYS + 5]);
        assert_eq!((d.start(), span(&d)), (5, MAX_SPAN_DAYS), "only the newest days are kept");
    }

    proptest::proptest! {
        /// Within the span, counts equal a brute-force tally; whatever the days, the span stays bounded.
        #[test]
        fn counts_equal_a_tally_and_the_span_stays_bounded(
            near in proptest::collection::vec((0i32..3_000, 1u32..5), 0..200),
            far in proptest::collection::vec(proptest::num::i32::ANY, 0..20),
        ) {
            let mut d = DayCounts::default();
            let mut tally = std::collections::BTreeMap::new();
            for (day, n) in &near {
                d.add(*day, *n);
                *tally.entry(*day).or_insert(0u64) += u64::from(*n);
            }
            for (day, n) in &tally {
                proptest::prop_assert_eq!(u64::from(d.get(*day)), *n);
            }
            proptest::prop_assert_eq!(d.sum(0, 3_000), tally.values().sum::<u64>());
            for day in far {
                d.add(day, 1);
                proptest::prop_assert!(span(&d) <= MAX_SPAN_DAYS);
            }
        }
    }
}
