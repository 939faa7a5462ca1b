//! The board: a small in-memory index of every stored account (partition, score, band, segment,
//! ARR, seats) that the HTTP API ranks and pages without touching RocksDB. The engine updates it
//! after each batch is written, so it never shows state that is not durable; at start it is
//! loaded from the store.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::sync::RwLock;

use compact_str::CompactString;
use rustc_hash::FxHashMap;

use crate::core::{AccountState, Band};

/// What the board keeps of one account.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub partition: u32,
    pub score: Option<f64>,
    pub band: Option<Band>,
    pub segment: Option<String>,
    pub arr: Option<f64>,
    pub seats: Option<u32>,
}

impl Entry {
    pub fn of(partition: u32, s: &AccountState) -> Entry {
        Entry {
            partition,
            score: s.score.last.as_ref().map(|l| l.score),
            band: s.score.band,
            segment: s.facts.segment.clone(),
            arr: s.facts.arr,
            seats: s.facts.seats,
        }
    }

    fn rank(&self, id: &CompactString) -> Option<Rank> {
        Some(Rank {
            score: self.score?,
            arr: self.arr.unwrap_or(0.0),
            seats: self.seats.unwrap_or(0),
            id: id.clone(),
        })
    }
}

/// Risk order: lowest score first; on a tie the larger ARR, then more seats (more at stake),
/// then the account id (a stable order for paging).
#[derive(Debug, Clone)]
struct Rank {
    score: f64,
    arr: f64,
    seats: u32,
    id: CompactString,
}

impl Ord for Rank {
    fn cmp(&self, o: &Self) -> Ordering {
        self.score
            .total_cmp(&o.score)
            .then_with(|| o.arr.total_cmp(&self.arr))
            .then_with(|| o.seats.cmp(&self.seats))
            .then_with(|| self.id.cmp(&o.id))
    }
}
impl PartialOrd for Rank {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl PartialEq for Rank {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Rank {}

#[derive(Default)]
struct Inner {
    by_id: FxHashMap<CompactString, Entry>,
    /// Scored accounts in risk order: all, then per band (red, yellow, green).
    all: BTreeSet<Rank>,
    bands: [BTreeSet<Rank>; 3],
    unscored: usize,
}

fn band_index(b: Band) -> usize {
    match b {
        Band::Red => 0,
        Band::Yellow => 1,
        Band::Green => 2,
    }
}

impl Inner {
    fn remove(&mut self, id: &CompactString) -> Option<Entry> {
        let old = self.by_id.remove(id)?;
        match (old.rank(id), old.band) {
            (Some(r), band) => {
                if let Some(b) = band {
                    self.bands[band_index(b)].remove(&r);
                }
                self.all.remove(&r);
            }
            (None, _) => self.unscored -= 1,
        }
        Some(old)
    }

    fn insert(&mut self, id: CompactString, e: Entry) {
        match e.rank(&id) {
            Some(r) => {
                if let Some(b) = e.band {
                    self.bands[band_index(b)].insert(r.clone());
                }
                self.all.insert(r);
            }
            None => self.unscored += 1,
        }
        self.by_id.insert(id, e);
    }
}

/// A page of the at-risk queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<(String, Entry)>,
    /// Matching accounts in all (before paging).
    pub total: usize,
}

#[derive(Default)]
pub struct Board {
    inner: RwLock<Inner>,
}

impl Board {
    /// Sets the entries of accounts just written (one lock for the whole batch).
    pub fn update(&self, entries: impl IntoIterator<Item = (CompactString, Entry)>) {
        let mut inner = self.inner.write().expect("board lock");
        for (id, e) in entries {
            if inner.by_id.get(&id) == Some(&e) {
                continue;
            }
            inner.remove(&id);
            inner.insert(id, e);
        }
    }

    /// Forgets every account of a partition (its state left this instance).
    pub fn drop_partition(&self, partition: u32) {
        let mut inner = self.inner.write().expect("board lock");
        let ids: Vec<CompactString> =
            inner.by_id.iter().filter(|(_, e)| e.partition == partition).map(|(id, _)| id.clone()).collect();
        for id in ids {
            inner.remove(&id);
        }
    }

    pub fn get(&self, id: &str) -> Option<Entry> {
        self.inner.read().expect("board lock").by_id.get(id).cloned()
    }

    /// Accounts by band: red, yellow, green, unscored.
    pub fn counts(&self) -> [usize; 4] {
        let inner = self.inner.read().expect("board lock");
        [inner.bands[0].len(), inner.bands[1].len(), inner.bands[2].len(), inner.unscored]
    }

    pub fn len(&self) -> usize {
        self.inner.read().expect("board lock").by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Scored accounts in risk order, optionally of one band and one segment, `offset` skipped,
    /// at most `limit`.
    pub fn queue(&self, band: Option<Band>, segment: Option<&str>, offset: usize, limit: usize) -> Page {
        let inner = self.inner.read().expect("board lock");
        let set = match band {
            Some(b) => &inner.bands[band_index(b)],
            None => &inner.all,
        };
        let matches = |r: &&Rank| segment.is_none_or(|s| inner.by_id[&r.id].segment.as_deref() == Some(s));
        let (total, items) = match segment {
            None => (set.len(), set.iter().skip(offset).take(limit).collect::<Vec<_>>()),
            Some(_) => {
                let all: Vec<&Rank> = set.iter().filter(matches).collect();
                (all.len(), all.into_iter().skip(offset).take(limit).collect())
            }
        };
        Page { items: items.into_iter().map(|r| (r.id.to_string(), inner.by_id[&r.id].clone())).collect(), total }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(score: Option<f64>, band: Option<Band>, arr: Option<f64>, segment: &str) -> Entry {
        Entry { partition: 0, score, band, segment: Some(segment.into()), arr, seats: None }
    }

    #[test]
    fn ranks_by_score_then_arr_and_moves_accounts_between_bands() {
        let b = Board::default();
        b.update([
            ("a".into(), e(Some(30.0), Some(Band::Red), Some(10.0), "smb")),
            ("b".into(), e(Some(30.0), Some(Band::Red), Some(500.0), "enterprise")),
            ("c".into(), e(Some(20.0), Some(Band::Red), None, "smb")),
            ("d".into(), e(Some(80.0), Some(Band::Green), None, "smb")),
            ("e".into(), e(None, None, None, "smb")),
        ]);
        let ids = |p: Page| p.items.into_iter().map(|(id, _)| id).collect::<Vec<_>>();
        assert_eq!(ids(b.queue(Some(Band::Red), None, 0, 10)), ["c", "b", "a"]);
        assert_eq!(ids(b.queue(Some(Band::Red), Some("smb"), 0, 10)), ["c", "a"]);
        assert_eq!(ids(b.queue(None, None, 1, 2)), ["b", "a"]);
        assert_eq!(b.queue(None, None, 1, 2).total, 4);
        assert_eq!(b.counts(), [3, 0, 1, 1]);
        // c recovers to green: it leaves the red queue.
        b.update([("c".into(), e(Some(75.0), Some(Band::Green), None, "smb"))]);
        assert_eq!(ids(b.queue(Some(Band::Red), None, 0, 10)), ["b", "a"]);
        assert_eq!(b.counts(), [2, 0, 2, 1]);
        b.drop_partition(0);
        assert_eq!(b.counts(), [0, 0, 0, 0]);
        assert!(b.is_empty());
    }
}
