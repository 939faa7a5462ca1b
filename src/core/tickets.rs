//! An account's support tickets with the aggregates the measures and rules read kept up to date
//! as tickets change, so an evaluation costs O(log n) whatever the number of open tickets.
//!
//! The map holds every ticket still relevant: open ones, and closed ones whose last event is
//! within retention (so a late event of a closed ticket is ordered against its newer close).
//! Two ordered indexes hold the open tickets (and the open urgent ones) by opening time. Indexes
//! are derived, never stored: `insert` rebuilds them when a state is decoded.

use std::collections::BTreeSet;

use compact_str::CompactString;
use super::ids::KeyedMap;

use crate::event::Priority;

/// One support ticket as known from its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub priority: Priority,
    pub opened_ms: i64,
    /// `ts` of the latest event applied to the ticket (older ones do not change its status).
    pub last_ms: i64,
    pub open: bool,
}

impl Ticket {
    fn urgent_open(&self) -> bool {
        self.open && self.priority == Priority::Urgent
    }
}

#[derive(Debug, Clone, Default)]
pub struct Tickets {
    all: KeyedMap<CompactString, Ticket>,
    /// Open tickets by (opened_ms, id).
    open: BTreeSet<(i64, CompactString)>,
    /// Open urgent tickets by (opened_ms, id).
    urgent: BTreeSet<(i64, CompactString)>,
}

/// Equal when they hold the same tickets (the indexes are derived).
impl PartialEq for Tickets {
    fn eq(&self, other: &Self) -> bool {
        self.all == other.all
    }
}

impl Tickets {
    /// Heap bytes held, estimated in O(1) (for the cache's memory budget): the map, and the two
    /// ordered indexes at ~1.5× their elements (B-tree nodes are rarely full). Ticket ids longer
    /// than 24 bytes, kept on the heap, are not counted.
    pub fn heap_bytes(&self) -> usize {
        let elem = std::mem::size_of::<(i64, CompactString)>();
        super::ids::map_heap_bytes::<CompactString, Ticket>(self.all.capacity())
            + (self.open.len() + self.urgent.len()) * elem * 3 / 2
    }

    pub fn len(&self) -> usize {
        self.all.len()
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&Ticket> {
        self.all.get(id)
    }

    /// Every ticket kept, in no particular order (for the codec).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Ticket)> {
        self.all.iter().map(|(k, t)| (k.as_str(), t))
    }

    /// Adds or replaces a ticket. O(log n).
    pub fn insert(&mut self, id: &str, t: Ticket) {
        let key = CompactString::from(id);
        if let Some(old) = self.all.insert(key.clone(), t) {
            self.unindex(&key, &old);
        }
        self.index(key, &t);
    }

    /// Changes a known ticket through `f`, keeping the indexes right. Returns false if unknown.
    pub fn update(&mut self, id: &str, f: impl FnOnce(&mut Ticket)) -> bool {
        let Some(t) = self.all.get_mut(id) else { return false };
        let before = *t;
        f(t);
        let after = *t;
        if before != after {
            let key = CompactString::from(id);
            self.unindex(&key, &before);
            self.index(key, &after);
        }
        true
    }

    fn index(&mut self, key: CompactString, t: &Ticket) {
        if t.urgent_open() {
            self.urgent.insert((t.opened_ms, key.clone()));
        }
        if t.open {
            self.open.insert((t.opened_ms, key));
        }
    }

    fn unindex(&mut self, key: &CompactString, t: &Ticket) {
        // Removing by a borrowed tuple would need the owned key anyway: the sets are keyed by it.
        let k = (t.opened_ms, key.clone());
        self.open.remove(&k);
        self.urgent.remove(&k);
    }

    /// The `n` oldest open tickets, oldest first.
    pub fn oldest_open(&self, n: usize) -> impl Iterator<Item = (&str, &Ticket)> {
        self.open.iter().take(n).filter_map(|(_, id)| self.all.get(id).map(|t| (id.as_str(), t)))
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    pub fn open_urgent_count(&self) -> usize {
        self.urgent.len()
    }

    /// Opening time of the oldest open ticket.
    pub fn oldest_open_ms(&self) -> Option<i64> {
        self.open.first().map(|(t, _)| *t)
    }

    /// Opening time of the oldest open urgent ticket.
    pub fn oldest_urgent_ms(&self) -> Option<i64> {
        self.urgent.first().map(|(t, _)| *t)
    }

    /// Opening time of the oldest open urgent ticket opened after `ms`.
    pub fn first_urgent_opened_after(&self, ms: i64) -> Option<i64> {
        let from = (ms.saturating_add(1), CompactString::default());
        self.urgent.range(from..).next().map(|(t, _)| *t)
    }

    /// Forgets closed tickets whose last event is before `horizon_ms`. O(n): once a day.
    pub fn forget_closed_before(&mut self, horizon_ms: i64) {
        self.all.retain(|_, t| t.open || t.last_ms >= horizon_ms);
    }

    /// Keeps at most `max` closed tickets, forgetting those with the oldest last event first.
    /// Runs only once there are twice as many, so its O(n log n) is amortised over n inserts.
    pub fn trim_closed(&mut self, max: usize) {
        let closed = self.all.len() - self.open.len();
        if closed <= max.saturating_mul(2) {
            return;
        }
        let mut by_age: Vec<(i64, CompactString)> =
            self.all.iter().filter(|(_, t)| !t.open).map(|(k, t)| (t.last_ms, k.clone())).collect();
        by_age.sort_unstable();
        for (_, k) in by_age.iter().take(closed - max) {
            self.all.remove(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(priority: Priority, opened_ms: i64, open: bool) -> Ticket {
        Ticket { priority, opened_ms, last_ms: opened_ms, open }
    }

    #[test]
    fn indexes_follow_changes() {
        let mut ts = Tickets::default();
        ts.insert("a", t(Priority::Urgent, 10, true));
        ts.insert("b", t(Priority::Normal, 5, true));
        ts.insert("c", t(Priority::Urgent, 20, true));
        assert_eq!((ts.open_count(), ts.open_urgent_count()), (3, 2));
        assert_eq!((ts.oldest_open_ms(), ts.oldest_urgent_ms()), (Some(5), Some(10)));
        assert_eq!(ts.first_urgent_opened_after(10), Some(20));
        assert_eq!(ts.first_urgent_opened_after(20), None);
        ts.update("a", |x| x.open = false);
        assert_eq!((ts.open_count(), ts.oldest_urgent_ms()), (2, Some(20)));
        ts.update("b", |x| x.priority = Priority::Urgent);
        assert_eq!(ts.oldest_urgent_ms(), Some(5));
        ts.forget_closed_before(100);
        assert_eq!(ts.len(), 2, "the closed ticket is forgotten, open ones stay");
        assert!(!ts.update("zz", |_| {}));
    }

    #[test]
    fn trimming_keeps_the_newest_closed_tickets() {
        let mut ts = Tickets::default();
        for i in 0..50 {
            ts.insert(&format!("t{i}"), Ticket { priority: Priority::Low, opened_ms: i, last_ms: i, open: i % 10 == 0 });
        }
        ts.trim_closed(10);
        assert_eq!(ts.open_count(), 5);
        assert_eq!(ts.len(), 15);
        assert!(ts.get("t49").is_some() && ts.get("t1").is_none());
    }

    proptest! {
        /// The indexes always agree with a brute-force scan of the map.
        #[test]
        fn aggregates_equal_a_scan(ops in prop::collection::vec((0u8..12, 0u8..4, 0i64..50, any::<bool>()), 1..200)) {
            let mut ts = Tickets::default();
            for (id, prio, at, open) in ops {
                let id = format!("t{id}");
                let priority = Priority::from_code(prio).unwrap();
                if !ts.update(&id, |x| { x.priority = priority; x.open = open; x.last_ms = at; }) {
                    ts.insert(&id, t(priority, at, open));
                }
                let open_ones: Vec<&Ticket> = ts.iter().map(|x| x.1).filter(|x| x.open).collect();
                prop_assert_eq!(ts.open_count(), open_ones.len());
                prop_assert_eq!(ts.oldest_open_ms(), open_ones.iter().map(|x| x.opened_ms).min());
                let urgent: Vec<i64> = open_ones.iter().filter(|x| x.priority == Priority::Urgent).map(|x| x.opened_ms).collect();
                prop_assert_eq!(ts.open_urgent_count(), urgent.len());
                prop_assert_eq!(ts.oldest_urgent_ms(), urgent.iter().copied().min());
                prop_assert_eq!(ts.first_urgent_opened_after(25), urgent.iter().copied().filter(|&x| x > 25).min());
            }
        }
    }
}
