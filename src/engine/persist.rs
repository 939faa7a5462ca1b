//! Persistence: the batch written to the store (write-through), the end of a write-back replay,
//! a partition restored from the changelog, and reading every stored account.

use super::*;

/// Bytes per RocksDB write of a restore.
pub(super) const RESTORE_SLICE: usize = 4 << 20;

impl Engine {
    /// Writes the batch: every touched account once, due-index moves, offsets and stream time,
    /// plus whatever `extra` adds (the outbox), in one atomic RocksDB write. Then trims the cache.
    /// In write-back mode (`write_back`) the accounts are not written here (see `spill_if_full`
    /// and `finish`), only what `extra` adds; the board still learns of every touched account.
    pub fn flush(&mut self, extra: impl FnOnce(&mut StoreBatch<'_>)) -> Result<usize, EngineError> {
        if !self.write_back {
            return self.write_dirty(extra);
        }
        if let Some(b) = &self.board {
            let mut entries = Vec::new();
            for (&partition, ps) in &self.partitions {
                for id in &ps.dirty {
                    if let Some(slot) = ps.accounts.get(id) {
                        entries.push((id.clone(), Entry::of(partition, &slot.state)));
                    }
                }
            }
            b.update(entries);
            self.fit_board();
        }
        let mut batch = self.store.batch();
        extra(&mut batch);
        if !batch.is_empty() {
            self.store.write(batch)?;
        }
        self.spill_if_full()?;
        Ok(0)
    }

    /// In write-back mode, writes every changed account, warm or decoded (the end of a replay).
    pub fn finish(&mut self) -> Result<usize, EngineError> {
        tracing::debug!(
            accounts = self.cached_accounts(),
            bytes = self.cache.bytes,
            warm_accounts = self.warm_accounts(),
            warm_bytes = self.cache.warm_bytes,
            rocksdb_bytes = self.store.memory_bytes(),
            "account cache at the end"
        );
        let warm = self.write_warm(0)?;
        Ok(warm + self.write_dirty(|_| {})?)
    }

    pub(super) fn write_dirty(&mut self, extra: impl FnOnce(&mut StoreBatch<'_>)) -> Result<usize, EngineError> {
        let mut batch = self.store.batch();
        let mut written = 0;
        let mut entries = Vec::new();
        for (&partition, ps) in self.partitions.iter_mut() {
            for id in ps.dirty.drain(..) {
                let Some(slot) = ps.accounts.get_mut(&id) else { continue };
                remeasure(slot, &id, &mut self.cache.bytes);
                let bytes = batch.put_account(partition, &id, &slot.state);
                if let Some(c) = &mut self.capture {
                    c.push((partition, id.clone(), bytes.to_vec()));
                    batch.put_changelog_pending(partition, &id);
                }
                if self.board.is_some() {
                    entries.push((id.clone(), Entry::of(partition, &slot.state)));
                }
                batch.move_due(partition, &id, slot.stored_due, slot.state.score.next_due_ms);
                slot.stored_due = slot.state.score.next_due_ms;
                slot.dirty = false;
                written += 1;
                // Write-back has no batch to keep atomic: write in slices, so a spill of the
                // whole cache does not also build a second copy of it as one write batch.
                if self.write_back && batch.size_in_bytes() > WRITE_BACK_SLICE {
                    let full = std::mem::replace(&mut batch, self.store.batch());
                    self.store.write(full)?;
                }
            }
            for (source, next) in ps.offsets.drain() {
                batch.put_offset(partition, &source, next);
            }
            if ps.stream_time_dirty {
                batch.put_stream_time(partition, ps.stream_time.expect("dirty implies set"));
                ps.stream_time_dirty = false;
            }
        }
        extra(&mut batch);
        if !batch.is_empty() {
            self.store.write(batch)?;
        }
        if let Some(b) = &self.board {
            b.update(entries);
        }
        self.fit_board();
        self.evict();
        Ok(written)
    }

    /// Replaces everything stored for `partition` with the states a changelog reading staged
    /// (`Store::stage`, under `generation`) and the input offsets and stream time they cover;
    /// rebuilds the due-time index and the board's entries from the states. Returns the
    /// accounts restored.
    ///
    /// Written in slices, so memory holds one slice at a time. What the partition had goes
    /// first, its offsets with it, and the offsets come back last: a crash part way leaves the
    /// partition without offsets, so the next start restores it again.
    pub fn restore_partition(
        &mut self,
        partition: u32,
        generation: u64,
        offsets: &[(String, i64)],
        stream_time: Option<i64>,
    ) -> Result<usize, EngineError> {
        if let Some(ps) = self.remove_partition(partition) {
            debug_assert!(ps.dirty.is_empty(), "restoring over unflushed state");
        }
        let mut batch = self.store.batch();
        batch.delete_partition(partition);
        self.store.write(batch)?;
        let board = self.board.as_deref();
        if let Some(b) = board {
            b.drop_partition(partition);
        }
        let store = &self.store;
        let mut batch = store.batch();
        let mut entries = Vec::new();
        let mut restored = 0usize;
        let mut scratch = crate::bytes::Writer::default();
        store.for_each_staged(partition, generation, |id, bytes| {
            let state = crate::store::codec::decode(bytes)
                .map_err(|source| StoreError::Codec { partition, account: id.to_string(), source })?;
            let entry = Entry::of(partition, &state);
            scratch.buf.clear();
            entry.encode(&mut scratch);
            batch.put_account_encoded(partition, id, bytes, &scratch.buf);
            batch.move_due(partition, id, None, state.score.next_due_ms);
            if board.is_some() {
                entries.push((CompactString::from(id), entry));
            }
            restored += 1;
            if batch.size_in_bytes() >= RESTORE_SLICE {
                store.write(std::mem::replace(&mut batch, store.batch()))?;
                if let Some(b) = board {
                    b.update(entries.drain(..));
                }
            }
            Ok(())
        })?;
        for (source, next) in offsets {
            batch.put_offset(partition, source, *next);
        }
        if let Some(t) = stream_time {
            batch.put_stream_time(partition, t);
        }
        self.store.write(batch)?;
        if let Some(b) = board {
            b.update(entries);
        }
        self.store.clear_staged(partition, generation)?;
        self.open_partition(partition)?;
        self.fit_board();
        Ok(restored)
    }

    /// Rebuilds a partition's due-time index from its stored states (after a standby copy was
    /// written without one) and reloads the partition.
    pub fn rebuild_due(&mut self, partition: u32) -> Result<(), EngineError> {
        if let Some(ps) = self.remove_partition(partition) {
            debug_assert!(ps.dirty.is_empty(), "rebuilding over unflushed state");
        }
        let mut due = Vec::new();
        self.store.for_each_account_in(partition, |id, s| {
            if let Some(t) = s.score.next_due_ms {
                due.push((id.to_string(), t));
            }
        })?;
        let mut batch = self.store.batch();
        batch.delete_due(partition);
        for (id, t) in &due {
            batch.move_due(partition, id, None, Some(*t));
        }
        self.store.write(batch)?;
        self.open_partition(partition)
    }

    /// Flushed state of every stored account (for final scores and the API).
    pub fn for_each_account(&self, f: impl FnMut(u32, &str, AccountState)) -> Result<(), EngineError> {
        Ok(self.store.for_each_account(f)?)
    }

    /// Flushed state of every stored account in account id order, streamed.
    pub fn for_each_account_by_id(&self, f: impl FnMut(u32, &str, AccountState)) -> Result<(), EngineError> {
        Ok(self.store.for_each_account_by_id(f)?)
    }
}
