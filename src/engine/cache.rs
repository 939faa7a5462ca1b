//! The engine's memory of accounts, within its share of `state.memory_budget`: decoded accounts
//! (the hot tier), and in write-back mode (`replay`) changed accounts kept encoded (the warm
//! tier) until the budget needs their room and they are written to the store. Sizes are
//! measured per account as it changes; the least recently used go first.

use super::*;

/// The byte counts of the accounts held in memory, against the budget's share for them.
pub(super) struct Cache {
    /// Bytes the accounts may take: the budget's share for accounts (`share`) less the API's
    /// account index, if there is one, down to a quarter of the share (see `fit_board`).
    pub(super) limit: usize,
    pub(super) share: usize,
    /// Bytes of the decoded accounts held, as last measured per account.
    pub(super) bytes: usize,
    /// Write-back: bytes of the warm (encoded) accounts, within `limit` with `bytes`.
    pub(super) warm_bytes: usize,
    /// Write-back: warm accounts oldest first, as (seq, partition, id); entries whose seq is not
    /// the account's current one were taken back into the cache.
    pub(super) warm_order: VecDeque<(u64, u32, CompactString)>,
    pub(super) warm_seq: u64,
}

impl Cache {
    pub(super) fn new(share: usize) -> Cache {
        Cache { limit: share, share, bytes: 0, warm_bytes: 0, warm_order: VecDeque::new(), warm_seq: 0 }
    }
}

pub(super) struct Slot {
    pub(super) state: AccountState,
    /// Due time as persisted in the store's index.
    pub(super) stored_due: Option<i64>,
    pub(super) dirty: bool,
    pub(super) last_used: u64,
    /// `AccountState::mem_bytes` when last measured (on load and on each write), as counted in
    /// `Cache::bytes`.
    pub(super) bytes: usize,
}

/// An account moved out of the decoded cache in write-back mode, kept encoded in memory (a
/// quarter to a third of its decoded size) until the budget needs its room; its stored copy, if
/// any, is older.
pub(super) struct WarmEntry {
    /// Position in `Cache::warm_order` (an older position there is a stale one).
    pub(super) seq: u64,
    pub(super) encoded: Box<[u8]>,
    /// Its board entry as the store keeps it (`board::entry_bytes`).
    pub(super) board: Box<[u8]>,
    /// Due time as persisted in the store's index, and as the state has it.
    pub(super) stored_due: Option<i64>,
    pub(super) due: Option<i64>,
}

/// Memory of one warm entry: its bytes, its map entry, its key if on the heap and its place in
/// the order queue.
pub(super) fn warm_bytes(id: &str, w: &WarmEntry) -> usize {
    let key = if id.len() > 24 { id.len() } else { 0 };
    crate::core::ids::alloc_bytes(w.encoded.len())
        + crate::core::ids::alloc_bytes(w.board.len())
        + std::mem::size_of::<(CompactString, WarmEntry)>() * 8 / 7
        + std::mem::size_of::<(u64, u32, CompactString)>()
        + key
}

/// Loads an account into the cache. A stored state that does not decode (a corrupt byte on disk)
/// must not stop the partition for good, as every restart would read it again: it is logged,
/// counted, and the account starts afresh from the records that follow. Also returns whether the
/// account was read from the store (neither decoded nor in the warm tier).
#[allow(clippy::too_many_arguments)]
pub(super) fn load_slot<'a>(
    store: &Store,
    accounts: &'a mut KeyedMap<CompactString, Box<Slot>>,
    warm: &mut KeyedMap<CompactString, WarmEntry>,
    dirty: &mut Vec<CompactString>,
    partition: u32,
    id: &str,
    corrupt: &mut u64,
    cache_bytes: &mut usize,
    warm_total: &mut usize,
) -> Result<(&'a mut Slot, bool), StoreError> {
    let mut from_store = false;
    if !accounts.contains_key(id) {
        let (state, stored_due, changed) = match warm.remove(id) {
            // Taken back from the warm tier: its changes are still not in the store.
            Some(w) => {
                *warm_total -= warm_bytes(id, &w);
                let state = crate::store::codec::decode(&w.encoded).unwrap_or_else(|e| {
                    *corrupt += 1;
                    tracing::warn!(partition, account = ?id, error = %e, "a warm account state does not decode: the account starts afresh");
                    AccountState::default()
                });
                (state, w.stored_due, true)
            }
            None => {
                from_store = true;
                let state = match store.get_account(partition, id) {
                    Ok(s) => s.unwrap_or_default(),
                    Err(StoreError::Codec { source, .. }) => {
                        *corrupt += 1;
                        tracing::warn!(partition, account = ?id, error = %source, "stored account state does not decode: the account starts afresh");
                        AccountState::default()
                    }
                    Err(e) => return Err(e),
                };
                let due = state.score.next_due_ms;
                (state, due, false)
            }
        };
        let bytes = slot_bytes(id, &state);
        *cache_bytes += bytes;
        if changed {
            dirty.push(id.into());
        }
        accounts.insert(id.into(), Box::new(Slot { state, stored_due, dirty: changed, last_used: 0, bytes }));
    }
    Ok((accounts.get_mut(id).expect("just inserted"), from_store))
}

/// Measures a slot again after its state changed, keeping the cache's total right.
pub(super) fn remeasure(slot: &mut Slot, id: &str, cache_bytes: &mut usize) {
    let now = slot_bytes(id, &slot.state);
    *cache_bytes = *cache_bytes + now - slot.bytes;
    slot.bytes = now;
}

/// Bytes per RocksDB write when write-back spills the cache.
pub(super) const WRITE_BACK_SLICE: usize = 4 << 20;

/// Write-back: once the accounts' budget is full, decoded accounts are encoded into the warm tier
/// (several times as many per byte) until the decoded ones are down to 1/`HOT_FLOOR` of it; only
/// then are the oldest warm accounts written to the store.
pub(super) const HOT_FLOOR: usize = 8;

pub(super) fn slot_bytes(id: &str, state: &AccountState) -> usize {
    let key = if id.len() > 24 { id.len() } else { 0 };
    // The box, the map's entry (at the 7/8 load a full map has), the key if on the heap.
    state.mem_bytes() + crate::core::ids::alloc_bytes(std::mem::size_of::<Slot>()) - std::mem::size_of::<AccountState>()
        + std::mem::size_of::<(CompactString, Box<Slot>)>() * 8 / 7
        + key
}

impl Engine {
    /// The account index counts in the accounts' share (a million accounts' index is ~270 MB,
    /// most of the default share): the cache gets what it leaves, but at least a quarter of the
    /// share. Called whenever the index changes size (each write, and when it is set).
    /// The API's account index was loaded from the store: the cache makes room for it now
    /// rather than at the next flush.
    pub fn index_loaded(&mut self) {
        self.fit_board();
    }

    pub(super) fn fit_board(&mut self) {
        let board = self.board.as_ref().map_or(0, |b| b.approx_bytes());
        self.cache.limit = self.cache.share.saturating_sub(board).max(self.cache.share / 4);
    }

    /// Write-through only: the decoded accounts held are over the budget's share. Accounts a
    /// batch changed cannot be dropped before the batch is written, so the caller writes it
    /// (which leaves every account clean, and the cache is trimmed) before going on.
    pub fn over_budget(&self) -> bool {
        !self.write_back && self.cache.bytes > self.cache.limit
    }

    /// Bytes of accounts held in memory (decoded, and in write-back mode encoded), and the
    /// budget for them.
    pub fn cache_usage(&self) -> (usize, usize) {
        (self.cache.bytes + self.cache.warm_bytes, self.cache.limit)
    }

    /// Write-back accounts held encoded in memory.
    pub fn warm_accounts(&self) -> usize {
        self.partitions.values().map(|p| p.warm.len()).sum()
    }

    /// In write-back mode, once the accounts held are over budget: the least recently used
    /// decoded accounts are encoded into the warm tier (or dropped if unchanged), and if that is
    /// not room enough, the oldest warm accounts are written to the store, down to 80% of the
    /// budget. An account is written to the store at
    /// most once per stay in memory, and only if it changed.
    pub fn spill_if_full(&mut self) -> Result<(), EngineError> {
        if !(self.write_back && self.cache.bytes + self.cache.warm_bytes > self.cache.limit) {
            return Ok(());
        }
        self.stats.spills += 1;
        let before = (self.cached_accounts(), self.cache.bytes, self.cache.warm_bytes);
        // Decoded accounts are encoded (several times smaller) until the total is at 90% of the
        // budget, as long as the decoded ones keep their floor.
        let demoted = self.demote_to_warm();
        // Taken-back accounts leave stale places in the order queue: compact it now and then.
        let live = self.warm_accounts();
        if self.cache.warm_order.len() > 2 * live + 4096 {
            let partitions = &self.partitions;
            self.cache.warm_order.retain(|(seq, p, id)| partitions.get(p).and_then(|ps| ps.warm.get(id)).is_some_and(|w| w.seq == *seq));
            self.cache.warm_order.shrink_to_fit();
        }
        let mut written = 0;
        if self.cache.bytes + self.cache.warm_bytes > self.cache.limit {
            let target = (self.cache.limit / 10 * 8).saturating_sub(self.cache.bytes);
            written = self.write_warm(target)?;
        }
        self.stats.demoted += demoted;
        self.stats.written_early += written as u64;
        tracing::debug!(
            accounts = before.0,
            bytes = before.1,
            warm_bytes = before.2,
            demoted,
            written,
            kept = self.cached_accounts(),
            kept_bytes = self.cache.bytes,
            warm_kept = self.cache.warm_bytes,
            rocksdb_bytes = self.store.memory_bytes(),
            "account cache full: least recently used accounts encoded, the oldest encoded ones written"
        );
        Ok(())
    }

    /// The least recently used decoded accounts encoded into the warm tier (an unchanged one is
    /// dropped: the store has it) until the total is at 90% of the budget, the decoded ones
    /// keeping their floor. Returns how many were encoded.
    fn demote_to_warm(&mut self) -> u64 {
        let floor = self.cache.limit / HOT_FLOOR;
        let mut demoted = 0u64;
        if self.cache.bytes > floor {
            let over = (self.cache.bytes + self.cache.warm_bytes).saturating_sub(self.cache.limit / 10 * 9);
            // Encoding keeps about a third of the bytes, so free half again as much.
            let target = self.cache.bytes.saturating_sub(over * 3 / 2).max(floor);
            if let Some(cutoff) = self.lru_cutoff(target, false) {
                let mut entries = Vec::new();
                let mut w = crate::bytes::Writer::default();
                for (&partition, ps) in self.partitions.iter_mut() {
                    let victims: Vec<(CompactString, Box<Slot>)> = ps.accounts.extract_if(|_, s| s.last_used <= cutoff).collect();
                    for (id, slot) in victims {
                        self.cache.bytes -= slot.bytes;
                        if !slot.dirty {
                            continue;
                        }
                        let e = Entry::of(partition, &slot.state);
                        w.buf.clear();
                        e.encode(&mut w);
                        let board: Box<[u8]> = w.buf.as_slice().into();
                        if self.board.is_some() {
                            entries.push((id.clone(), e));
                        }
                        w.buf.clear();
                        crate::store::codec::encode(&slot.state, &mut w);
                        let encoded: Box<[u8]> = w.buf.as_slice().into();
                        self.cache.warm_seq += 1;
                        if slot.last_used == 0 {
                            // Read for its timer only (see `fire_due_bounded`): first to go to the store.
                            self.cache.warm_order.push_front((self.cache.warm_seq, partition, id.clone()));
                        } else {
                            self.cache.warm_order.push_back((self.cache.warm_seq, partition, id.clone()));
                        }
                        let entry = WarmEntry { seq: self.cache.warm_seq, encoded, board, stored_due: slot.stored_due, due: slot.state.score.next_due_ms };
                        self.cache.warm_bytes += warm_bytes(&id, &entry);
                        ps.warm.insert(id, entry);
                        demoted += 1;
                    }
                    let accounts = &ps.accounts;
                    ps.dirty.retain(|id| accounts.contains_key(id));
                    if ps.accounts.capacity() > 4 * ps.accounts.len().max(1024) {
                        ps.accounts.shrink_to_fit();
                    }
                }
                if let Some(b) = &self.board {
                    b.update(entries);
                }
            }
        }
        demoted
    }

    /// Writes the oldest warm accounts to the store, in key order and in slices, until the warm
    /// tier holds at most `target` bytes. Returns the accounts written.
    pub(super) fn write_warm(&mut self, target: usize) -> Result<usize, EngineError> {
        let mut out: Vec<(u32, CompactString, WarmEntry)> = Vec::new();
        while self.cache.warm_bytes > target {
            let Some((seq, partition, id)) = self.cache.warm_order.pop_front() else { break };
            let Some(ps) = self.partitions.get_mut(&partition) else { continue };
            if ps.warm.get(&id).is_none_or(|w| w.seq != seq) {
                continue;
            }
            let w = ps.warm.remove(&id).expect("just found");
            self.cache.warm_bytes -= warm_bytes(&id, &w);
            out.push((partition, id, w));
        }
        if self.cache.warm_bytes == 0 {
            self.cache.warm_order.clear();
        }
        out.sort_unstable_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let n = out.len();
        let mut batch = self.store.batch();
        for (partition, id, w) in out {
            batch.put_account_encoded(partition, &id, &w.encoded, &w.board);
            batch.move_due(partition, &id, w.stored_due, w.due);
            if batch.size_in_bytes() > WRITE_BACK_SLICE {
                let full = std::mem::replace(&mut batch, self.store.batch());
                self.store.write(full)?;
            }
        }
        if !batch.is_empty() {
            self.store.write(batch)?;
        }
        Ok(n)
    }

    /// The `last_used` tick at or below which accounts go to bring the decoded cache to `target`
    /// bytes, oldest first; only clean accounts when `clean_only`. `None`: nothing to drop.
    pub(super) fn lru_cutoff(&self, target: usize, clean_only: bool) -> Option<u64> {
        let mut slots: Vec<(u64, usize)> = self
            .partitions
            .values()
            .flat_map(|p| p.accounts.values().filter(|s| !(clean_only && s.dirty)).map(|s| (s.last_used, s.bytes)))
            .collect();
        slots.sort_unstable_by_key(|&(t, _)| t);
        let mut held = self.cache.bytes;
        let mut cutoff = None;
        for &(t, b) in &slots {
            if held <= target {
                break;
            }
            held -= b;
            cutoff = Some(t);
        }
        cutoff
    }

    /// Estimated bytes of the accounts held, decoded and encoded (what the budget's account share
    /// bounds).
    pub fn accounts_bytes(&self) -> usize {
        self.cache.bytes + self.cache.warm_bytes
    }

    /// Accounts held decoded in memory.
    pub fn cached_accounts(&self) -> usize {
        self.partitions.values().map(|p| p.accounts.len()).sum()
    }

    /// Once the cache is over its budget in bytes, drops the least recently used clean accounts
    /// until it holds 80% of it (so the next trim is some batches away).
    pub(super) fn evict(&mut self) {
        if self.cache.bytes <= self.cache.limit {
            return;
        }
        let Some(cutoff) = self.lru_cutoff(self.cache.limit / 10 * 8, true) else { return };
        let mut freed = 0;
        for ps in self.partitions.values_mut() {
            ps.accounts.retain(|_, s| {
                let keep = s.dirty || s.last_used > cutoff;
                if !keep {
                    freed += s.bytes;
                }
                keep
            });
            if ps.accounts.capacity() > 4 * ps.accounts.len().max(1024) {
                ps.accounts.shrink_to_fit();
            }
        }
        self.cache.bytes -= freed;
    }
}
