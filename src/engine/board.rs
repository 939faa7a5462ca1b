//! The board: the at-risk index, a read model the engine maintains beside its store: every stored
//! account's partition, score, band, segment, ARR and seats, which the HTTP API ranks and pages
//! without touching RocksDB (the API only reads it). The engine updates it after each batch is
//! written, so it never shows state that is not durable; at start it is loaded from the store.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::sync::RwLock;

use compact_str::CompactString;
use rustc_hash::FxHashMap;

use crate::core::Band;
pub use crate::store::board_entry::{entry_bytes, Entry};

/// Risk order: lowest score first; on a tie the larger ARR, then more seats (more at stake),
/// then the account id (a stable order for paging).
#[derive(Debug, Clone)]
struct Rank {
    score: f64,
    arr: f64,
    seats: u32,
    id: CompactString,
}

impl Rank {
    /// Where account `id`, of entry `e`, ranks; `None` if it is not scored or has ended.
    fn of(e: &Entry, id: &CompactString) -> Option<Rank> {
        if e.ended.is_some() {
            return None;
        }
        Some(Rank {
            score: e.score?,
            arr: e.arr.unwrap_or(0.0),
            seats: e.seats.unwrap_or(0),
            id: id.clone(),
        })
    }
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
    /// Boxed: the map keeps room for up to twice its entries, and an entry is ~150 bytes.
    by_id: FxHashMap<CompactString, Box<Entry>>,
    /// Scored accounts in risk order, per band: red, yellow, green, and scored without a band
    /// (none, normally). All of them in risk order is the four merged (`ranked`): a set of all
    /// as well would cost ~70 bytes an account more (a million accounts: ~70 MB).
    bands: [BTreeSet<Rank>; 4],
    unscored: usize,
    /// Accounts that ended (churned, cancelled): on the board for the API, in no queue.
    ended: usize,
}

fn band_index(b: Band) -> usize {
    match b {
        Band::Red => 0,
        Band::Yellow => 1,
        Band::Green => 2,
    }
}

/// Which ranked set a scored account is in.
fn set_index(b: Option<Band>) -> usize {
    b.map_or(3, band_index)
}

/// Ranked accounts in risk order: one band's set, or every set merged.
struct Ranked<'a> {
    sets: Vec<std::iter::Peekable<std::collections::btree_set::Iter<'a, Rank>>>,
}

impl<'a> Iterator for Ranked<'a> {
    type Item = &'a Rank;

    fn next(&mut self) -> Option<&'a Rank> {
        let mut best: Option<(usize, &'a Rank)> = None;
        for (i, s) in self.sets.iter_mut().enumerate() {
            if let Some(&r) = s.peek() {
                if best.is_none_or(|(_, b)| r < b) {
                    best = Some((i, r));
                }
            }
        }
        self.sets[best?.0].next()
    }
}

impl Inner {
    /// See [`Board::approx_bytes`].
    fn approx_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(CompactString, Box<Entry>)>() + 1;
        let ranks = self.bands.iter().map(|b| b.len()).sum::<usize>();
        self.by_id.capacity() * slot
            + self.by_id.len() * crate::core::ids::alloc_bytes(std::mem::size_of::<Entry>())
            + ranks * std::mem::size_of::<Rank>() * 3 / 2
    }

    /// Scored accounts of `band` (or all) in risk order.
    fn ranked(&self, band: Option<Band>) -> Ranked<'_> {
        let sets = match band {
            Some(b) => vec![self.bands[band_index(b)].iter().peekable()],
            None => self.bands.iter().map(|s| s.iter().peekable()).collect(),
        };
        Ranked { sets }
    }

    fn ranked_len(&self, band: Option<Band>) -> usize {
        match band {
            Some(b) => self.bands[band_index(b)].len(),
            None => self.bands.iter().map(BTreeSet::len).sum(),
        }
    }

    fn remove(&mut self, id: &CompactString) -> Option<Entry> {
        let old = *self.by_id.remove(id)?;
        match Rank::of(&old, id) {
            Some(r) => {
                self.bands[set_index(old.band)].remove(&r);
            }
            None => *self.unranked(&old) -= 1,
        }
        Some(old)
    }

    fn insert(&mut self, id: CompactString, e: Entry) {
        match Rank::of(&e, &id) {
            Some(r) => {
                self.bands[set_index(e.band)].insert(r);
            }
            None => *self.unranked(&e) += 1,
        }
        self.by_id.insert(id, Box::new(e));
    }

    /// The count an account that is not ranked is in: ended, or unscored.
    fn unranked(&mut self, e: &Entry) -> &mut usize {
        if e.ended.is_some() {
            &mut self.ended
        } else {
            &mut self.unscored
        }
    }
}

/// Whether two names are the same letters whatever their case ("ana", "Ana", "ANA"; "Ésa", "ésa").
fn same_ignoring_case(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || (!(a.is_ascii() && b.is_ascii()) && a.chars().flat_map(char::to_lowercase).eq(b.chars().flat_map(char::to_lowercase)))
}

/// Which accounts a queue shows (the owner whatever its case).
#[derive(Debug, Clone, Default)]
pub struct Filter<'a> {
    pub band: Option<Band>,
    pub segment: Option<&'a str>,
    pub owner: Option<&'a str>,
    /// Rule code: accounts among whose recent alerts one is of this rule.
    pub rule: Option<u8>,
    /// Accounts of this touch tier, by these tier rules.
    pub tier: Option<(crate::core::scorecard::Tier, &'a crate::core::scorecard::Tiers)>,
    /// Accounts whose CS status is this one (`Entry::status`: 0 open).
    pub status: Option<u8>,
    /// Leaves out snoozed and resolved accounts (the today view's default).
    pub hide_set_aside: bool,
}

impl Filter<'_> {
    fn matches(&self, e: &Entry) -> bool {
        self.segment.is_none_or(|s| e.segment.as_deref() == Some(s))
            && self.owner.is_none_or(|o| e.owner.as_deref().is_some_and(|x| same_ignoring_case(x, o)))
            && self.rule.is_none_or(|r| e.alerts.iter().any(|a| a.0 == r))
            && self.tier.is_none_or(|(t, tiers)| tiers.of(e.segment.as_deref(), e.arr) == t)
            && self.status.is_none_or(|s| e.status == s)
            && !(self.hide_set_aside && crate::store::board_entry::set_aside(e.status))
    }
}

/// Owners and segments a summary lists at most (a datalist of the page; the first in name order
/// when there are more).
pub const SUMMARY_NAMES: usize = 1000;

/// Queue orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Lowest score first (ties: more ARR, more seats, id).
    Risk,
    /// Red and yellow accounts only, the most ARR first.
    ArrAtRisk,
    /// Soonest renewal first.
    Renewal,
}

/// The portfolio strip.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Red, yellow, green, unscored (accounts that ended are in none).
    pub accounts: [usize; 4],
    pub arr: [f64; 4],
    /// Accounts that ended (churned, cancelled), and their last ARR.
    pub ended: usize,
    pub ended_arr: f64,
    /// Every owner and segment of the accounts counted, sorted, at most `SUMMARY_NAMES` each.
    pub owners: Vec<String>,
    pub segments: Vec<String>,
    pub alerts_by_rule: std::collections::BTreeMap<u8, usize>,
    /// Accounts by the CS team's status (`Entry::status`: open, acknowledged, snoozed, resolved),
    /// of those in a band or unscored.
    pub by_status: [usize; 4],
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
            if inner.by_id.get(&id).is_some_and(|old| **old == e) {
                continue;
            }
            inner.remove(&id);
            inner.insert(id, e);
        }
    }

    /// Adds many accounts at once (a partition's stored entries when it is assigned, after
    /// `drop_partition`): `fill` gives each entry, under one lock, and the ranked sets are built
    /// from sorted runs and merged in, instead of one insert each (a million accounts: ~4 s one by
    /// one). An account already on the board is updated the ordinary way. Returns the entries given.
    pub fn load<E>(&self, fill: impl FnOnce(&mut dyn FnMut(CompactString, Entry)) -> Result<(), E>) -> Result<usize, E> {
        let mut inner = self.inner.write().expect("board lock");
        let mut bands: [Vec<Rank>; 4] = Default::default();
        let mut n = 0;
        let filled = fill(&mut |id, e| {
            n += 1;
            if inner.by_id.contains_key(&id) {
                inner.remove(&id);
                inner.insert(id, e);
                return;
            }
            match Rank::of(&e, &id) {
                Some(r) => bands[set_index(e.band)].push(r),
                None => *inner.unranked(&e) += 1,
            }
            inner.by_id.insert(id, Box::new(e));
        });
        // What was given is on the board, even if `fill` stopped early.
        for (i, b) in bands.into_iter().enumerate() {
            inner.bands[i].append(&mut b.into_iter().collect());
        }
        filled.map(|_| n)
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
        self.inner.read().expect("board lock").by_id.get(id).map(|e| (**e).clone())
    }

    /// Accounts by band: red, yellow, green, unscored.
    pub fn counts(&self) -> [usize; 4] {
        let inner = self.inner.read().expect("board lock");
        [inner.bands[0].len(), inner.bands[1].len(), inner.bands[2].len(), inner.unscored]
    }

    pub fn len(&self) -> usize {
        self.inner.read().expect("board lock").by_id.len()
    }

    /// Estimated heap bytes: the id map (its capacity, at hashbrown's one control byte per
    /// slot), its boxed entries (at their size class) and the ranked sets (B-tree nodes taken as
    /// two-thirds full); strings longer than CompactString keeps inline and alert lists are left
    /// out (a few percent).
    pub fn approx_bytes(&self) -> usize {
        self.inner.read().expect("board lock").approx_bytes()
    }

    /// [`Board::counts`] and [`Board::approx_bytes`] without waiting: `None` while the board is
    /// being written or a writer waits (as one does behind a long query's read), so that
    /// `/metrics`, answered on the HTTP accept loop, never waits behind a query.
    pub fn try_counts_and_bytes(&self) -> Option<([usize; 4], usize)> {
        let inner = self.inner.try_read().ok()?;
        Some(([inner.bands[0].len(), inner.bands[1].len(), inner.bands[2].len(), inner.unscored], inner.approx_bytes()))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Scored accounts matching `filter`, in the order `sort` asks, `offset` skipped, at most
    /// `limit`. Risk order walks the ranked sets; the other orders sort the matching accounts.
    pub fn select(&self, filter: &Filter<'_>, sort: Sort, offset: usize, limit: usize) -> Page {
        let inner = self.inner.read().expect("board lock");
        let mut hits: Vec<&Rank> = inner.ranked(filter.band).filter(|r| filter.matches(&inner.by_id[&r.id])).collect();
        // Each account's key is read once (not looked up in the map at every comparison), and only
        // the first `offset + limit` are put in order: a page of 1,000 of 100,000 accounts.
        let wanted = offset.saturating_add(limit);
        match sort {
            Sort::Risk => {}
            // ARR at risk: red and yellow accounts only, the most ARR first (then risk order).
            Sort::ArrAtRisk => {
                hits.retain(|r| matches!(inner.by_id[&r.id].band, Some(Band::Red | Band::Yellow)));
                let mut keyed: Vec<(f64, &Rank)> = hits.iter().map(|r| (inner.by_id[&r.id].arr.unwrap_or(0.0), *r)).collect();
                let total = keyed.len();
                first_in_order(&mut keyed, wanted, |a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
                return page(&inner, keyed.into_iter().map(|(_, r)| r), total, offset, limit);
            }
            // Soonest renewal first; accounts without a renewal date last.
            Sort::Renewal => {
                let mut keyed: Vec<(i32, &Rank)> = hits.iter().map(|r| (inner.by_id[&r.id].renewal_day.unwrap_or(i32::MAX), *r)).collect();
                let total = keyed.len();
                first_in_order(&mut keyed, wanted, |a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
                return page(&inner, keyed.into_iter().map(|(_, r)| r), total, offset, limit);
            }
        }
        let total = hits.len();
        page(&inner, hits.into_iter(), total, offset, limit)
    }

    /// Scored accounts matching `filter`, the highest `key` first (ties in risk order),
    /// `offset` skipped, at most `limit`: orders the API computes (`sort=today`).
    pub fn select_by_key(&self, filter: &Filter<'_>, key: impl Fn(&Entry) -> f64, offset: usize, limit: usize) -> Page {
        let inner = self.inner.read().expect("board lock");
        let mut keyed: Vec<(f64, &Rank)> = inner
            .ranked(filter.band)
            .filter_map(|r| {
                let e = &inner.by_id[&r.id];
                filter.matches(e).then(|| (key(e), r))
            })
            .collect();
        let total = keyed.len();
        first_in_order(&mut keyed, offset.saturating_add(limit), |a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        page(&inner, keyed.into_iter().map(|(_, r)| r), total, offset, limit)
    }

    /// Totals for the portfolio strip: accounts and ARR by band (red, yellow, green, unscored),
    /// and alerts on `day` (days since epoch) by rule code.
    pub fn summary(&self, day: i32) -> Summary {
        self.summary_of(day, &Filter::default())
    }

    /// [`Board::summary`] of the accounts `filter` matches (its band too), with their owners and
    /// segments.
    pub fn summary_of(&self, day: i32, filter: &Filter<'_>) -> Summary {
        let inner = self.inner.read().expect("board lock");
        let mut s = Summary::default();
        let (mut owners, mut segments) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
        for e in inner.by_id.values() {
            if !filter.matches(e) || filter.band.is_some_and(|b| e.band != Some(b) || e.score.is_none()) {
                continue;
            }
            // The first `SUMMARY_NAMES` in name order, whatever the order of the map.
            for (set, v) in [(&mut owners, &e.owner), (&mut segments, &e.segment)] {
                if let Some(v) = v {
                    if set.insert(v.as_str()) && set.len() > SUMMARY_NAMES {
                        set.pop_last();
                    }
                }
            }
            if e.ended.is_some() {
                s.ended += 1;
                s.ended_arr += e.arr.unwrap_or(0.0);
                continue;
            }
            let i = match e.band {
                Some(b) if e.score.is_some() => band_index(b),
                _ => 3,
            };
            s.accounts[i] += 1;
            s.arr[i] += e.arr.unwrap_or(0.0);
            s.by_status[usize::from(e.status).min(3)] += 1;
            for &(rule, at) in &e.alerts {
                if crate::event::timestamp::day_of(at) == day {
                    *s.alerts_by_rule.entry(rule).or_default() += 1;
                }
            }
        }
        s.owners = owners.into_iter().map(str::to_string).collect();
        s.segments = segments.into_iter().map(str::to_string).collect();
        s
    }

    /// The newest alert time of any account (the board's "today" when no clock is given).
    pub fn newest_alert_ms(&self) -> Option<i64> {
        let inner = self.inner.read().expect("board lock");
        inner.by_id.values().flat_map(|e| e.alerts.iter().map(|a| a.1)).max()
    }

    /// Scored accounts in risk order, optionally of one band and one segment, `offset` skipped,
    /// at most `limit`.
    pub fn queue(&self, band: Option<Band>, segment: Option<&str>, offset: usize, limit: usize) -> Page {
        let inner = self.inner.read().expect("board lock");
        let matches = |r: &&Rank| segment.is_none_or(|s| inner.by_id[&r.id].segment.as_deref() == Some(s));
        let (total, items) = match segment {
            None => (inner.ranked_len(band), inner.ranked(band).skip(offset).take(limit).collect::<Vec<_>>()),
            Some(_) => {
                let all: Vec<&Rank> = inner.ranked(band).filter(matches).collect();
                (all.len(), all.into_iter().skip(offset).take(limit).collect())
            }
        };
        Page { items: items.into_iter().map(|r| (r.id.to_string(), (*inner.by_id[&r.id]).clone())).collect(), total }
    }
}

/// Puts the first `n` of `v` in the order `cmp` gives and drops the rest (all of them when `n`
/// is at least its length): O(len + n log n), not a sort of the whole.
fn first_in_order<T>(v: &mut Vec<T>, n: usize, cmp: impl Fn(&T, &T) -> std::cmp::Ordering) {
    if n < v.len() {
        if n == 0 {
            v.clear();
            return;
        }
        v.select_nth_unstable_by(n - 1, &cmp);
        v.truncate(n);
    }
    v.sort_unstable_by(cmp);
}

/// The page of `ranks` (already in order, `total` before any cut) from `offset`, at most `limit`.
fn page<'a>(inner: &Inner, ranks: impl Iterator<Item = &'a Rank>, total: usize, offset: usize, limit: usize) -> Page {
    let items = ranks.skip(offset).take(limit).map(|r| (r.id.to_string(), (*inner.by_id[&r.id]).clone())).collect();
    Page { items, total }
}

#[cfg(test)]
mod tests {
    #[test]
    fn first_in_order_keeps_the_first_n_as_a_full_sort_would() {
        for n in [0, 1, 3, 10, 50] {
            let mut v: Vec<(i32, i32)> = (0..20).map(|i: i32| ((i * 7919) % 13, i)).collect();
            let mut all = v.clone();
            all.sort();
            first_in_order(&mut v, n, |a, b| a.cmp(b));
            assert_eq!(v, all[..n.min(20)], "n = {n}");
        }
    }

    use super::*;

    #[test]
    fn the_owner_filter_ignores_case() {
        assert!(same_ignoring_case("Ana", "ana") && same_ignoring_case("ANA", "aNa"));
        assert!(same_ignoring_case("Élodie", "éLODIE"));
        assert!(!same_ignoring_case("Ana", "Anna") && !same_ignoring_case("Ana", "Ana "));
        let e = |owner: &str| Entry { owner: Some(owner.into()), ..e(Some(50.0), Some(Band::Yellow), None, "smb") };
        let f = Filter { owner: Some("ana"), ..Filter::default() };
        assert!(f.matches(&e("Ana")) && f.matches(&e("ANA")) && !f.matches(&e("Bob")));
    }

    fn e(score: Option<f64>, band: Option<Band>, arr: Option<f64>, segment: &str) -> Entry {
        Entry { partition: 0, score, band, segment: Some(segment.into()), arr, seats: None, name: None, owner: None, renewal_day: None, alerts: Vec::new(), ended: None, status: 0, snoozed_until: None, scored_band: None }
    }

    /// The queue of all bands is the bands' sets merged: it must be every scored account (one
    /// scored without a band too) in risk order, as one sort of them all gives it.
    #[test]
    fn all_bands_merged_are_every_scored_account_in_risk_order() {
        let bands = [Some(Band::Red), Some(Band::Yellow), Some(Band::Green), None];
        let mut want = Vec::new();
        let b = Board::default();
        for i in 0..400u32 {
            let score = Some(f64::from(i * 7 % 41)).filter(|_| i % 13 != 0);
            let mut x = e(score, bands[(i * 3 % 4) as usize], Some(f64::from(i % 3) * 50.0), "smb");
            x.seats = Some(i % 2);
            if let Some(r) = Rank::of(&x, &format!("a{i}").into()) {
                want.push(r);
            }
            b.update([(format!("a{i}").into(), x)]);
        }
        want.sort();
        let page = b.queue(None, None, 0, 1000);
        assert_eq!(page.total, want.len());
        let got: Vec<String> = page.items.into_iter().map(|(id, _)| id).collect();
        assert_eq!(got, want.iter().map(|r| r.id.to_string()).collect::<Vec<_>>());
        let page = b.queue(None, None, 17, 5);
        assert_eq!(page.items.into_iter().map(|(id, _)| id).collect::<Vec<_>>(), want[17..22].iter().map(|r| r.id.to_string()).collect::<Vec<_>>());
    }

    #[test]
    fn the_gauges_are_read_without_waiting_for_a_writer() {
        let b = Board::default();
        b.update([("a".into(), e(Some(10.0), Some(Band::Red), None, "smb")), ("b".into(), e(None, None, None, "smb"))]);
        assert_eq!(b.try_counts_and_bytes(), Some((b.counts(), b.approx_bytes())));
        assert_eq!(b.counts(), [1, 0, 0, 1]);
        let writing = b.inner.write().unwrap();
        assert_eq!(b.try_counts_and_bytes(), None, "the board is being written: no wait, no figures");
        drop(writing);
        assert!(b.try_counts_and_bytes().is_some());
    }

    /// A bulk load gives the same board as updates one by one, also over accounts already there.
    #[test]
    fn a_bulk_load_equals_updates_one_by_one() {
        let bands = [Some(Band::Red), Some(Band::Yellow), Some(Band::Green), None];
        let entry = |i: u32| e(Some(f64::from(i % 37)).filter(|_| i % 11 != 0), bands[(i % 4) as usize], Some(f64::from(i % 5) * 100.0), ["smb", "enterprise"][(i % 2) as usize]);
        let one = Board::default();
        let bulk = Board::default();
        let first: Vec<(CompactString, Entry)> = (0..300).map(|i| (format!("a{i}").into(), entry(i))).collect();
        one.update(first.clone());
        bulk.update(first);
        // Some of the loaded ids are on the board already, with other entries.
        let more: Vec<(CompactString, Entry)> = (250..1000).map(|i| (format!("a{i}").into(), entry(i * 7))).collect();
        one.update(more.clone());
        let n = bulk.load(|push| {
            more.into_iter().for_each(|(id, e)| push(id, e));
            Ok::<_, ()>(())
        });
        assert_eq!(n, Ok(750));
        assert_eq!(bulk.counts(), one.counts());
        assert_eq!(bulk.len(), 1000);
        for band in [None, Some(Band::Red), Some(Band::Green)] {
            for segment in [None, Some("smb")] {
                assert_eq!(bulk.queue(band, segment, 3, 500), one.queue(band, segment, 3, 500));
            }
        }
        assert_eq!(bulk.summary(0), one.summary(0));
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
