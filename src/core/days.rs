//! Per-day counters over a bounded span of days: the building block of every rolling window.

/// Counts per UTC day, stored densely from the earliest day with a count to the latest.
/// Callers prune days that fall out of retention, so the span stays bounded.
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
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// First day held (meaningless when empty).
    pub fn start(&self) -> i32 {
        self.start
    }

    pub fn iter(&self) -> impl Iterator<Item = (i32, u32)> + '_ {
        self.counts.iter().enumerate().map(move |(i, c)| (self.start + i as i32, *c))
    }

    /// Adds `n` to `day`.
    pub fn add(&mut self, day: i32, n: u32) {
        if n == 0 {
            return;
        }
        if self.counts.is_empty() {
            self.start = day;
            self.counts.push(n);
            return;
        }
        if day < self.start {
            // Rare: an out-of-order event before the first day held.
            let gap = (self.start - day) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, gap));
            self.counts[0] = n;
            self.start = day;
            return;
        }
        let idx = (day - self.start) as usize;
        if idx >= self.counts.len() {
            self.counts.resize(idx + 1, 0);
        }
        self.counts[idx] += n;
    }

    /// Subtracts `n` from `day` (saturating; a day outside the span is ignored).
    pub fn sub(&mut self, day: i32, n: u32) {
        if day < self.start {
            return;
        }
        if let Some(c) = self.counts.get_mut((day - self.start) as usize) {
            *c = c.saturating_sub(n);
        }
    }

    pub fn get(&self, day: i32) -> u32 {
        if day < self.start {
            return 0;
        }
        self.counts.get((day - self.start) as usize).copied().unwrap_or(0)
    }

    /// Sum over `from..=to`.
    pub fn sum(&self, from: i32, to: i32) -> u64 {
        if self.counts.is_empty() || to < from {
            return 0;
        }
        let lo = from.max(self.start);
        let hi = to.min(self.start + self.counts.len() as i32 - 1);
        if hi < lo {
            return 0;
        }
        let (a, b) = ((lo - self.start) as usize, (hi - self.start) as usize);
        self.counts[a..=b].iter().map(|&c| u64::from(c)).sum()
    }

    /// Drops every day before `day`, and zero days at both ends.
    pub fn prune_before(&mut self, day: i32) {
        let mut drop = 0;
        while let Some(&c) = self.counts.get(drop) {
            if self.start < day || c == 0 {
                drop += 1;
                self.start += 1;
            } else {
                break;
            }
        }
        self.counts.drain(..drop);
        while self.counts.last() == Some(&0) {
            self.counts.pop();
        }
    }

    /// Rebuilds from `(start, counts)`, as stored.
    pub fn from_parts(start: i32, counts: Vec<u32>) -> Self {
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
}
