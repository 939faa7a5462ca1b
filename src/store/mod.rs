//! RocksDB: account states, the due-time index, input offsets and stream time, and the outbox.
//!
//! Every key starts with the partition (4 bytes, big-endian) so a partition's state can be
//! dropped or shipped on its own. All writes of a processing batch go in one `WriteBatch`:
//! states, offsets and outbox entries land together or not at all. Never decodes on the hot path
//! more than once per account per cache miss.

pub mod board_entry;
pub mod codec;

use std::path::Path;
use std::sync::Arc;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, IteratorMode, Options, WriteBatch, WriteOptions,
    DB,
};

use crate::bytes::Writer;
use crate::core::AccountState;
use codec::CodecError;

const CF_ACCOUNTS: &str = "accounts";
const CF_DUE: &str = "due";
const CF_OFFSETS: &str = "offsets";
const CF_OUTBOX: &str = "outbox";
/// Accounts written locally whose state has not yet been acknowledged on the changelog topic.
const CF_CHANGELOG_PENDING: &str = "changelog_pending";
/// Each account's board entry (score, band, segment, ARR, ...; `board_entry::Entry`), written
/// with its state: a restart loads the API's account index from these, not by decoding states.
const CF_BOARD: &str = "board";
/// Account states read back from the changelog, staged until the restore that read them is
/// applied (`Engine::restore_partition`) or dropped: key = partition + the reading's generation
/// (8 bytes, big-endian) + account id. Written without the write-ahead log and emptied at open:
/// a restore cut short by a crash is read again.
const CF_STAGED: &str = "staged";
const CFS: [&str; 7] = [CF_ACCOUNTS, CF_DUE, CF_OFFSETS, CF_OUTBOX, CF_CHANGELOG_PENDING, CF_BOARD, CF_STAGED];

/// Name under which a partition's stream time is kept beside its offsets.
const STREAM_TIME: &str = "\0stream_time";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("state of account `{account}` in partition {partition} cannot be read: {source}")]
    Codec { partition: u32, account: String, source: CodecError },
    #[error("state store holds a malformed {0} key")]
    BadKey(&'static str),
}

/// How a memory budget (`state.memory_budget`) is split: RocksDB's block cache (data, index and
/// filter blocks) and its memtables take fixed shares; the rest is the engine's cache of decoded
/// accounts. (The Kafka clients' queues are sized beside it, by the pipeline:
/// `pipeline::client::kafka_queue_bytes`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub total: u64,
}

impl Budget {
    /// RocksDB's block cache, shared by every column family: a quarter. (Measured on a
    /// population several times what the cache holds: a tenth, a fifth, a half and 70% ran at
    /// 0.95, 1, 0.85 and 0.79 of the rate, none at 0.14: a decoded account saves more than its
    /// blocks, but index and filter blocks must stay cached.)
    pub fn block_cache(&self) -> u64 {
        self.total / 4
    }

    /// All memtables together (RocksDB's write buffer manager flushes beyond it): an eighth.
    pub fn memtables(&self) -> u64 {
        self.total / 8
    }

    /// Decoded accounts held by the engine: the rest.
    pub fn accounts(&self) -> u64 {
        self.total - self.block_cache() - self.memtables()
    }
}

/// Bytes RocksDB wrote, from its statistics: what kizashi handed it (`user`), its write-ahead
/// log, and what flushes and compactions wrote to SST files. `flush + compaction + wal` is what
/// reached the disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WriteStats {
    pub user_bytes: u64,
    pub wal_bytes: u64,
    pub flush_bytes: u64,
    pub compaction_bytes: u64,
}

impl WriteStats {
    pub fn disk_bytes(&self) -> u64 {
        self.wal_bytes + self.flush_bytes + self.compaction_bytes
    }

    /// Parses the tickers of `Options::get_statistics`' text (`rocksdb.NAME COUNT : N`).
    fn parse(text: &str) -> WriteStats {
        let mut w = WriteStats::default();
        for line in text.lines() {
            let mut it = line.split_whitespace();
            let (Some(name), Some("COUNT"), Some(":"), Some(n)) = (it.next(), it.next(), it.next(), it.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match name {
                "rocksdb.bytes.written" => w.user_bytes = n,
                "rocksdb.wal.bytes" => w.wal_bytes = n,
                "rocksdb.flush.write.bytes" => w.flush_bytes = n,
                "rocksdb.compact.write.bytes" => w.compaction_bytes = n,
                _ => {}
            }
        }
        w
    }
}

/// A handle on the store; clones share one open database (the HTTP API reads through a clone
/// while the pipeline writes).
pub struct Store {
    db: Arc<DB>,
    /// The options the database was opened with: their statistics object counts its writes.
    opts: Arc<Options>,
    cache: Cache,
    write_opts: WriteOptions,
    durable: bool,
    /// The encoding version states are written in (`put_account`): `codec::STATE_VERSION`, or
    /// the one before during a rolling upgrade (`state.upgrade_from`).
    write_version: u8,
}

impl Clone for Store {
    fn clone(&self) -> Self {
        let mut write_opts = WriteOptions::default();
        write_opts.disable_wal(!self.durable);
        Store {
            db: self.db.clone(),
            opts: self.opts.clone(),
            cache: self.cache.clone(),
            write_opts,
            durable: self.durable,
            write_version: self.write_version,
        }
    }
}

/// One batch of writes, applied atomically by `Store::write`.
pub struct StoreBatch<'s> {
    store: &'s Store,
    wb: WriteBatch,
    scratch: Writer,
}

fn it_status(iters: &[(u32, rocksdb::DBRawIterator<'_>)]) -> Result<(), StoreError> {
    for (_, it) in iters {
        it.status()?;
    }
    Ok(())
}

fn account_key(partition: u32, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + id.len());
    k.extend_from_slice(&partition.to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

/// Sign-flipped big-endian so keys sort by time, negative times included.
fn time_bytes(ms: i64) -> [u8; 8] {
    ((ms as u64) ^ (1 << 63)).to_be_bytes()
}

fn staged_prefix(partition: u32, generation: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&partition.to_be_bytes());
    k[4..].copy_from_slice(&generation.to_be_bytes());
    k
}

fn due_key(partition: u32, due_ms: i64, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(12 + id.len());
    k.extend_from_slice(&partition.to_be_bytes());
    k.extend_from_slice(&time_bytes(due_ms));
    k.extend_from_slice(id.as_bytes());
    k
}

/// Block caches smaller than this get a partitioned index and filter (see `Store::open`): the
/// default budget's (128 MiB) does not.
pub const PARTITIONED_INDEX_BELOW: u64 = 128 << 20;

impl Store {
    /// Opens (creating if needed) the store at `dir`, with RocksDB's memory held within
    /// `budget`'s block-cache and memtable shares. `durable = false` skips the write-ahead log
    /// (for throwaway stores such as `replay`'s).
    ///
    /// Long on purpose: RocksDB's options are one list, read top to bottom with the reason for
    /// each setting beside it; split, the memory they add up to would be hard to see at once.
    pub fn open(dir: &Path, durable: bool, budget: Budget) -> Result<Store, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.increase_parallelism(2);
        opts.enable_statistics();
        // Every memtable of every column family together; RocksDB flushes the largest beyond it.
        opts.set_db_write_buffer_size(budget.memtables() as usize);
        // Index and filter blocks live in the block cache too, so they count in the budget.
        let cache = Cache::new_lru_cache(budget.block_cache() as usize)?;
        let cf_opts = |name: &str| {
            let mut table = BlockBasedOptions::default();
            table.set_block_cache(&cache);
            table.set_cache_index_and_filter_blocks(true);
            table.set_pin_l0_filter_and_index_blocks_in_cache(true);
            table.set_format_version(5);
            let mut o = Options::default();
            if name == CF_STAGED {
                // Written once, read once in key order, then dropped whole: never compacted (a
                // restore would spend its time compacting versions it is about to drop), and so
                // never stalled for its count of level-0 files.
                table.set_bloom_filter(10.0, false);
                o.set_block_based_table_factory(&table);
                o.set_disable_auto_compactions(true);
                // So each level-0 file holds every version it was given: reading in key order
                // steps over an account's older versions rather than seek past them (a seek in
                // hundreds of overlapping files per account, with ~15 versions each, made a
                // million accounts' restore take 285 s instead of 82 s).
                o.set_max_sequential_skip_in_iterations(1 << 12);
                o.set_write_buffer_size((budget.memtables() / 4) as usize);
                o.set_compression_type(DBCompressionType::None);
                return o;
            }
            if name == CF_ACCOUNTS {
                // Point lookups of accounts (most miss on a new account): a bloom filter spares
                // the data-block read.
                table.set_bloom_filter(10.0, false);
                o.set_write_buffer_size((budget.memtables() / 2) as usize);
            } else {
                o.set_write_buffer_size(((budget.memtables() / 16) as usize).max(1 << 20));
            }
            // Below `PARTITIONED_INDEX_BELOW` of block cache, a partitioned index and filter: a
            // file's index is a tree of 4 KiB blocks, its top level pinned, so a lookup reads
            // one small index block. With one index block per file, every lookup read and
            // decompressed a file's index again (likely: the cache's shards, 1/64 of it each,
            // 512 KiB at a 128 MiB budget, do not keep a big file's): 250,000 accounts at a
            // 128 MiB budget replayed at under 5,000 events/s, 78% of the time in ZSTD; 22,100
            // with this. Where there is no such cliff it measured ~10% slower (100,000 accounts
            // at 64 MiB); on a million at the default budget, no difference beyond the machine's
            // day-to-day swing (README, Performance).
            if budget.block_cache() < PARTITIONED_INDEX_BELOW {
                table.set_index_type(rocksdb::BlockBasedIndexType::TwoLevelIndexSearch);
                table.set_partition_filters(true);
                table.set_metadata_block_size(4096);
                table.set_pin_top_level_index_and_filter(true);
            }
            o.set_block_based_table_factory(&table);
            // LZ4 (ZSTD at the bottom level): a third of the bytes to disk of no compression, for
            // ~10% of the rate when the population is far larger than the cache.
            o.set_compression_type(DBCompressionType::Lz4);
            o.set_bottommost_compression_type(DBCompressionType::Zstd);
            o.set_level_compaction_dynamic_level_bytes(true);
            o
        };
        let cfs: Vec<ColumnFamilyDescriptor> = CFS.iter().map(|n| ColumnFamilyDescriptor::new(*n, cf_opts(n))).collect();
        // A store written before the board entries were kept gets them once, from its states.
        let without_board = DB::list_cf(&Options::default(), dir).is_ok_and(|cfs| !cfs.iter().any(|c| c == CF_BOARD));
        let db = DB::open_cf_descriptors(&opts, dir, cfs)?;
        let mut write_opts = WriteOptions::default();
        write_opts.disable_wal(!durable);
        let store = Store { db: Arc::new(db), opts: Arc::new(opts), cache, write_opts, durable, write_version: codec::STATE_VERSION };
        if without_board {
            store.build_board()?;
        }
        // Whatever a restore staged before a crash or a shutdown is read again if needed; files
        // a stop left behind (their states already deleted) go too.
        if store.db.iterator_cf(store.cf(CF_STAGED), IteratorMode::Start).next().is_some() || store.staged_file_bytes() > 0 {
            let mut clear = store.batch();
            clear.wb.delete_range_cf(store.cf(CF_STAGED), &[0u8; 0][..], &[0xFFu8; 13][..]);
            store.write_unlogged(clear)?;
            // No reading runs yet, so whole files can go without a look inside.
            store.db.delete_file_in_range_cf(store.cf(CF_STAGED), &[0u8; 0][..], &[0xFFu8; 13][..])?;
            store.drop_staged_files();
        }
        Ok(store)
    }

    /// Writes every stored account's board entry (a store from before they were kept).
    fn build_board(&self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let mut batch = self.batch();
        let mut n = 0u64;
        let mut corrupt = 0u64;
        self.each(CF_ACCOUNTS, "account", None, |partition, id, v| {
            // A state that does not decode gets no entry: the engine starts that account afresh
            // when it next sees it, and writes both then.
            let Ok(state) = codec::decode(v) else {
                corrupt += 1;
                return Ok(());
            };
            batch.put_board(partition, id, &state);
            n += 1;
            if batch.size_in_bytes() > 4 << 20 {
                let full = std::mem::replace(&mut batch, self.batch());
                self.write(full)?;
            }
            Ok(())
        })?;
        self.write(batch)?;
        self.db.flush_cf(self.cf(CF_BOARD))?;
        tracing::info!(accounts = n, undecodable = corrupt, seconds = started.elapsed().as_secs_f64(), "state store from an earlier release: wrote each account's board entry (once)");
        Ok(())
    }

    /// Writes states in `version` from now on: `codec::STATE_VERSION` or, for instances of the
    /// release before to read them, `codec::PREVIOUS_VERSION`.
    pub fn set_write_version(&mut self, version: u8) {
        self.write_version = version;
    }

    /// What RocksDB has written since the store was opened.
    pub fn write_stats(&self) -> WriteStats {
        self.opts.get_statistics().map(|t| WriteStats::parse(&t)).unwrap_or_default()
    }

    /// Bytes held now by RocksDB's block cache and memtables (both within the budget).
    pub fn memory_bytes(&self) -> u64 {
        let mem: u64 = CFS
            .iter()
            .map(|n| self.db.property_int_value_cf(self.cf(n), "rocksdb.cur-size-all-mem-tables").ok().flatten().unwrap_or(0))
            .sum();
        self.cache.get_usage() as u64 + mem
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(name).expect("column family created at open")
    }

    pub fn get_account(&self, partition: u32, id: &str) -> Result<Option<AccountState>, StoreError> {
        match self.db.get_pinned_cf(self.cf(CF_ACCOUNTS), account_key(partition, id))? {
            None => Ok(None),
            Some(bytes) => codec::decode(&bytes)
                .map(Some)
                .map_err(|source| StoreError::Codec { partition, account: id.to_string(), source }),
        }
    }

    /// Every stored account, in key order (partition, then account id).
    pub fn for_each_account(&self, mut f: impl FnMut(u32, &str, AccountState)) -> Result<(), StoreError> {
        self.each(CF_ACCOUNTS, "account", None, |partition, id, v| {
            let state = codec::decode(v).map_err(|source| StoreError::Codec { partition, account: id.to_string(), source })?;
            f(partition, id, state);
            Ok(())
        })
    }

    /// Each key and value of a column family keyed by (partition, account id), in key order; of
    /// one partition only if `partition`.
    fn each(
        &self,
        cf: &str,
        what: &'static str,
        partition: Option<u32>,
        mut f: impl FnMut(u32, &str, &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let prefix = partition.map(u32::to_be_bytes);
        let mode = match &prefix {
            Some(p) => IteratorMode::From(p, rocksdb::Direction::Forward),
            None => IteratorMode::Start,
        };
        for item in self.db.iterator_cf(self.cf(cf), mode) {
            let (k, v) = item?;
            if prefix.is_some_and(|p| !k.starts_with(&p)) {
                break;
            }
            if k.len() < 4 {
                return Err(StoreError::BadKey(what));
            }
            let p = u32::from_be_bytes(k[..4].try_into().expect("4 bytes"));
            let id = std::str::from_utf8(&k[4..]).map_err(|_| StoreError::BadKey(what))?;
            f(p, id, &v)?;
        }
        Ok(())
    }

    /// Every stored account in account id order across partitions (ids are unique: an account
    /// lives in one partition), streaming: one iterator per partition, merged.
    pub fn for_each_account_by_id(&self, mut f: impl FnMut(u32, &str, AccountState)) -> Result<(), StoreError> {
        let cf = self.cf(CF_ACCOUNTS);
        // The partitions present: seek to each next prefix.
        let mut iters = Vec::new();
        let mut next: Option<u32> = Some(0);
        while let Some(from) = next {
            let mut it = self.db.raw_iterator_cf(cf);
            it.seek(from.to_be_bytes());
            let Some(k) = it.key() else { break };
            if k.len() < 4 {
                return Err(StoreError::BadKey("account"));
            }
            let p = u32::from_be_bytes(k[..4].try_into().expect("4 bytes"));
            next = p.checked_add(1);
            iters.push((p, it));
        }
        it_status(&iters)?;
        let mut heap = std::collections::BinaryHeap::new();
        let id_of = |k: &[u8]| k[4..].to_vec();
        for (i, (_, it)) in iters.iter().enumerate() {
            heap.push(std::cmp::Reverse((id_of(it.key().expect("valid")), i)));
        }
        while let Some(std::cmp::Reverse((id, i))) = heap.pop() {
            let (partition, it) = &mut iters[i];
            let partition = *partition;
            let id = std::str::from_utf8(&id).map_err(|_| StoreError::BadKey("account"))?;
            let state = codec::decode(it.value().expect("valid"))
                .map_err(|source| StoreError::Codec { partition, account: id.to_string(), source })?;
            f(partition, id, state);
            it.next();
            it.status()?;
            if let Some(k) = it.key().filter(|k| k.starts_with(&partition.to_be_bytes())) {
                heap.push(std::cmp::Reverse((id_of(k), i)));
            }
        }
        Ok(())
    }

    /// Every stored account of one partition, in account id order.
    pub fn for_each_account_in(&self, partition: u32, mut f: impl FnMut(&str, AccountState)) -> Result<(), StoreError> {
        self.each(CF_ACCOUNTS, "account", Some(partition), |partition, id, v| {
            let state = codec::decode(v).map_err(|source| StoreError::Codec { partition, account: id.to_string(), source })?;
            f(id, state);
            Ok(())
        })
    }

    /// Every stored board entry, in key order (partition, then account id), undecoded.
    pub fn for_each_board_entry(&self, mut f: impl FnMut(u32, &str, &[u8])) -> Result<(), StoreError> {
        self.each(CF_BOARD, "board", None, |p, id, v| {
            f(p, id, v);
            Ok(())
        })
    }

    /// The board entries of one partition, in account id order, undecoded.
    pub fn for_each_board_entry_in(&self, partition: u32, mut f: impl FnMut(&str, &[u8])) -> Result<(), StoreError> {
        self.each(CF_BOARD, "board", Some(partition), |_, id, v| {
            f(id, v);
            Ok(())
        })
    }

    /// The due-time index of a partition: `(due_ms, account_id)`.
    pub fn due_entries(&self, partition: u32) -> Result<Vec<(i64, compact_str::CompactString)>, StoreError> {
        let prefix = partition.to_be_bytes();
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(self.cf(CF_DUE), IteratorMode::From(&prefix, rocksdb::Direction::Forward));
        for item in iter {
            let (k, _) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            if k.len() < 12 {
                return Err(StoreError::BadKey("due"));
            }
            let t = u64::from_be_bytes(k[4..12].try_into().expect("8 bytes")) ^ (1 << 63);
            let id = std::str::from_utf8(&k[12..]).map_err(|_| StoreError::BadKey("due"))?;
            out.push((t as i64, id.into()));
        }
        Ok(out)
    }

    /// Next offsets to read per source of a partition, and the partition's stream time.
    pub fn offsets(&self, partition: u32) -> Result<(Vec<(String, i64)>, Option<i64>), StoreError> {
        let prefix = partition.to_be_bytes();
        let mut offsets = Vec::new();
        let mut stream_time = None;
        let iter =
            self.db.iterator_cf(self.cf(CF_OFFSETS), IteratorMode::From(&prefix, rocksdb::Direction::Forward));
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            let name = std::str::from_utf8(&k[4..]).map_err(|_| StoreError::BadKey("offset"))?;
            let value = i64::from_be_bytes(v.as_ref().try_into().map_err(|_| StoreError::BadKey("offset"))?);
            if name == STREAM_TIME {
                stream_time = Some(value);
            } else {
                offsets.push((name.to_string(), value));
            }
        }
        Ok((offsets, stream_time))
    }

    /// Outbox entries in the order they were written.
    pub fn outbox(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_OUTBOX), IteratorMode::Start) {
            let (k, v) = item?;
            let seq = u64::from_be_bytes(k.as_ref().try_into().map_err(|_| StoreError::BadKey("outbox"))?);
            out.push((seq, v.to_vec()));
        }
        Ok(out)
    }

    /// Accounts whose state is not yet known to be on the changelog: (partition, account).
    pub fn changelog_pending(&self) -> Result<Vec<(u32, String)>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_CHANGELOG_PENDING), IteratorMode::Start) {
            let (k, _) = item?;
            if k.len() < 4 {
                return Err(StoreError::BadKey("changelog_pending"));
            }
            let partition = u32::from_be_bytes(k[..4].try_into().expect("4 bytes"));
            let id = std::str::from_utf8(&k[4..]).map_err(|_| StoreError::BadKey("changelog_pending"))?;
            out.push((partition, id.to_string()));
        }
        Ok(out)
    }

    /// The raw encoded state of an account.
    pub fn get_account_encoded(&self, partition: u32, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(CF_ACCOUNTS), account_key(partition, id))?)
    }

    /// Approximate bytes of all column families: live data in SST files plus memtables.
    pub fn size_bytes(&self) -> u64 {
        let prop = |n: &str, p: &str| self.db.property_int_value_cf(self.cf(n), p).ok().flatten().unwrap_or(0);
        CFS.iter()
            .map(|n| prop(n, "rocksdb.estimate-live-data-size") + prop(n, "rocksdb.cur-size-all-mem-tables"))
            .sum()
    }

    pub fn batch(&self) -> StoreBatch<'_> {
        StoreBatch { store: self, wb: WriteBatch::default(), scratch: Writer::default() }
    }

    pub fn write(&self, batch: StoreBatch<'_>) -> Result<(), StoreError> {
        self.db.write_opt(batch.wb, &self.write_opts)?;
        Ok(())
    }

    /// Writes without the write-ahead log: for staged states only (a crash loses them, and the
    /// restore that staged them is read again).
    pub fn write_unlogged(&self, batch: StoreBatch<'_>) -> Result<(), StoreError> {
        let mut opts = WriteOptions::default();
        opts.disable_wal(true);
        self.db.write_opt(batch.wb, &opts)?;
        Ok(())
    }

    /// Each state staged for `partition` by the reading numbered `generation`, in account id
    /// order: `f(id, encoded)`.
    pub fn for_each_staged(
        &self,
        partition: u32,
        generation: u64,
        mut f: impl FnMut(&str, &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let prefix = staged_prefix(partition, generation);
        let mode = IteratorMode::From(&prefix, rocksdb::Direction::Forward);
        // Read once: kept out of the block cache the accounts use.
        let mut opts = rocksdb::ReadOptions::default();
        opts.fill_cache(false);
        for item in self.db.iterator_cf_opt(self.cf(CF_STAGED), opts, mode) {
            let (k, v) = item?;
            let Some(id) = k.strip_prefix(&prefix) else { break };
            let id = std::str::from_utf8(id).map_err(|_| StoreError::BadKey("staged"))?;
            f(id, &v)?;
        }
        Ok(())
    }

    /// Gives back the disk of staged states already dropped (`clear_staged`), by compacting the
    /// column family (never compacted otherwise). Safe while a reading stages: compaction drops
    /// only what a deletion covers. It takes a while (a million accounts' ~5 GB: ~12 s), so
    /// `run` calls it off its main loop.
    pub fn drop_staged_files(&self) {
        self.db.compact_range_cf(self.cf(CF_STAGED), None::<&[u8]>, None::<&[u8]>);
    }

    /// Stops RocksDB's background work for good (shutdown only): a running compaction, manual
    /// ones included (`drop_staged_files`), ends early and returns; memtables written without the
    /// log are flushed first. The store takes no writes after this.
    pub fn stop_background_work(&self) {
        self.db.cancel_all_background_work(true);
    }

    /// Bytes of the staged column family's files on disk (restored states not given back yet).
    pub fn staged_file_bytes(&self) -> u64 {
        self.db.property_int_value_cf(self.cf(CF_STAGED), "rocksdb.live-sst-files-size").ok().flatten().unwrap_or(0)
    }

    /// Drops what the reading numbered `generation` staged for `partition`.
    pub fn clear_staged(&self, partition: u32, generation: u64) -> Result<(), StoreError> {
        let mut batch = self.batch();
        let from = staged_prefix(partition, generation);
        let mut to = from.to_vec();
        to.push(0xFF); // no account id is 0xFF or starts so (UTF-8)
        batch.wb.delete_range_cf(self.cf(CF_STAGED), &from[..], &to[..]);
        self.write_unlogged(batch)
    }
}

impl StoreBatch<'_> {
    /// Writes an account's state and its board entry; returns the state's encoding.
    pub fn put_account(&mut self, partition: u32, id: &str, state: &AccountState) -> &[u8] {
        self.put_board(partition, id, state);
        self.scratch.buf.clear();
        codec::encode_version(state, self.store.write_version, &mut self.scratch);
        self.wb.put_cf(self.store.cf(CF_ACCOUNTS), account_key(partition, id), &self.scratch.buf);
        &self.scratch.buf
    }

    /// Writes an already encoded account state with its encoded board entry
    /// (`board_entry`).
    pub fn put_account_encoded(&mut self, partition: u32, id: &str, encoded: &[u8], board_entry: &[u8]) {
        let key = account_key(partition, id);
        self.wb.put_cf(self.store.cf(CF_BOARD), &key, board_entry);
        self.wb.put_cf(self.store.cf(CF_ACCOUNTS), key, encoded);
    }

    fn put_board(&mut self, partition: u32, id: &str, state: &AccountState) {
        self.scratch.buf.clear();
        board_entry::Entry::of(partition, state).encode(&mut self.scratch);
        self.wb.put_cf(self.store.cf(CF_BOARD), account_key(partition, id), &self.scratch.buf);
    }

    /// Stages an account state read back from the changelog (see `CF_STAGED`); a later one of
    /// the same account replaces it.
    pub fn stage(&mut self, partition: u32, generation: u64, id: &str, encoded: &[u8]) {
        let mut key = staged_prefix(partition, generation).to_vec();
        key.extend_from_slice(id.as_bytes());
        self.wb.put_cf(self.store.cf(CF_STAGED), key, encoded);
    }

    /// Marks an account as written locally but not yet in the changelog.
    pub fn put_changelog_pending(&mut self, partition: u32, id: &str) {
        self.wb.put_cf(self.store.cf(CF_CHANGELOG_PENDING), account_key(partition, id), []);
    }

    pub fn delete_changelog_pending(&mut self, partition: u32, id: &str) {
        self.wb.delete_cf(self.store.cf(CF_CHANGELOG_PENDING), account_key(partition, id));
    }

    /// Deletes every key of `partition` in one column family (keys start with the partition).
    fn delete_partition_in(&mut self, cf: &str, partition: u32) {
        // No key range ends after u32::MAX, and Kafka never numbers a partition so.
        if partition == u32::MAX {
            return;
        }
        let from = partition.to_be_bytes();
        let to = (partition + 1).to_be_bytes();
        self.wb.delete_range_cf(self.store.cf(cf), from, to);
    }

    /// Deletes a partition's input offsets and stream time.
    pub fn delete_offsets(&mut self, partition: u32) {
        self.delete_partition_in(CF_OFFSETS, partition);
    }

    /// Deletes a partition's due-time index.
    pub fn delete_due(&mut self, partition: u32) {
        self.delete_partition_in(CF_DUE, partition);
    }

    /// Deletes everything stored for a partition (before restoring it from the changelog).
    pub fn delete_partition(&mut self, partition: u32) {
        for cf in [CF_ACCOUNTS, CF_BOARD, CF_DUE, CF_OFFSETS, CF_CHANGELOG_PENDING] {
            self.delete_partition_in(cf, partition);
        }
    }

    pub fn move_due(&mut self, partition: u32, id: &str, from: Option<i64>, to: Option<i64>) {
        if from == to {
            return;
        }
        if let Some(t) = from {
            self.wb.delete_cf(self.store.cf(CF_DUE), due_key(partition, t, id));
        }
        if let Some(t) = to {
            self.wb.put_cf(self.store.cf(CF_DUE), due_key(partition, t, id), []);
        }
    }

    pub fn put_offset(&mut self, partition: u32, source: &str, next_offset: i64) {
        self.wb.put_cf(self.store.cf(CF_OFFSETS), account_key(partition, source), next_offset.to_be_bytes());
    }

    pub fn put_stream_time(&mut self, partition: u32, ms: i64) {
        self.put_offset(partition, STREAM_TIME, ms);
    }

    pub fn put_outbox(&mut self, seq: u64, entry: &[u8]) {
        self.wb.put_cf(self.store.cf(CF_OUTBOX), seq.to_be_bytes(), entry);
    }

    pub fn delete_outbox(&mut self, seq: u64) {
        self.wb.delete_cf(self.store.cf(CF_OUTBOX), seq.to_be_bytes());
    }

    pub fn is_empty(&self) -> bool {
        self.wb.is_empty()
    }

    /// Bytes of the batch so far.
    pub fn size_in_bytes(&self) -> usize {
        self.wb.size_in_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::StateParams;
    use crate::event::{Event, UsageEvent};
    use proptest::prelude::*;
    use std::borrow::Cow;

    fn usage(user: u8, feature: u8, ts: i64) -> Event<'static> {
        Event::Usage(UsageEvent {
            account_id: Cow::Borrowed("acme"),
            user_id: Cow::Owned(format!("u{user}")),
            event: Cow::Borrowed("feature_used"),
            feature: Some(Cow::Owned(format!("f{feature}"))),
            ts_ms: ts,
            event_id: Some(Cow::Owned(format!("e{ts}"))),
        })
    }

    fn state_from(events: &[(u8, u8, i64)]) -> AccountState {
        let p = StateParams { retention_days: 90, max_open_tickets: 1000, dedup_window_ms: 86_400_000, max_account_bytes: usize::MAX };
        let mut s = AccountState::default();
        for &(u, f, ts) in events {
            s.advance(crate::event::timestamp::day_of(ts), &p);
            s.apply(&usage(u, f, ts), 0, &p);
        }
        s.score.next_due_ms = Some(42);
        s
    }

    proptest! {
        #[test]
        fn encode_decode_is_the_identity(events in prop::collection::vec((0u8..30, 0u8..10, 0i64..100 * 86_400_000), 0..200)) {
            let s = state_from(&events);
            let bytes = codec::encode_to_vec(&s);
            prop_assert_eq!(codec::decode(&bytes).unwrap(), s);
        }
    }

    #[test]
    fn unknown_version_and_truncation_are_errors() {
        let mut bytes = codec::encode_to_vec(&state_from(&[(1, 1, 5)]));
        assert!(matches!(codec::decode(&bytes[..bytes.len() - 1]), Err(CodecError::Truncated | CodecError::Invalid(_))));
        bytes[0] = 9;
        assert_eq!(codec::decode(&bytes), Err(CodecError::UnknownVersion(9)));
    }

    #[test]
    fn reopening_gives_the_same_state() {
        let dir = tempfile::tempdir().unwrap();
        let s = state_from(&[(1, 1, 1_000), (2, 3, 90_000_000), (1, 2, 200_000_000)]);
        {
            let store = Store::open(dir.path(), true, Budget { total: 64 << 20 }).unwrap();
            let mut b = store.batch();
            b.put_account(3, "acme", &s);
            b.move_due(3, "acme", None, Some(-5));
            b.put_offset(3, "product-usage", 17);
            b.put_stream_time(3, 99);
            b.put_outbox(1, b"x");
            store.write(b).unwrap();
        }
        let store = Store::open(dir.path(), true, Budget { total: 64 << 20 }).unwrap();
        assert_eq!(store.get_account(3, "acme").unwrap(), Some(s.clone()));
        assert_eq!(store.get_account(2, "acme").unwrap(), None);
        assert_eq!(store.due_entries(3).unwrap(), vec![(-5, "acme".into())]);
        assert_eq!(store.offsets(3).unwrap(), (vec![("product-usage".to_string(), 17)], Some(99)));
        assert_eq!(store.outbox().unwrap(), vec![(1, b"x".to_vec())]);
        let mut board = Vec::new();
        store.for_each_board_entry(|p, id, bytes| board.push((p, id.to_string(), bytes.to_vec()))).unwrap();
        assert_eq!(board, vec![(3, "acme".to_string(), board_entry::entry_bytes(3, &s))]);
    }

    /// Stages three flushed files of states for `(partition 0, generation)` and deletes them,
    /// leaving the files (no compaction runs on the staged column family by itself).
    fn stage_and_clear(store: &Store, generation: u64, encoded: &[u8]) {
        for round in 0..3 {
            let mut b = store.batch();
            for i in 0..5_000 {
                b.stage(0, generation, &format!("acct-{round}-{i:05}"), encoded);
            }
            store.write_unlogged(b).unwrap();
            store.db.flush_cf(store.cf(CF_STAGED)).unwrap();
        }
        store.clear_staged(0, generation).unwrap();
        let mut n = 0;
        store
            .for_each_staged(0, generation, |_, _| {
                n += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(n, 0);
        assert!(store.staged_file_bytes() > 0);
    }

    /// A stop during the compaction that gives back a restore's staged files (see `run`'s
    /// shutdown) ends it early and its thread returns; files a stop left, their states deleted,
    /// go at the next open.
    #[test]
    fn staged_files_a_stop_left_go_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let s = state_from(&[(1, 1, 1_000), (2, 3, 90_000_000)]);
        let encoded = codec::encode_to_vec(&s);
        let budget = Budget { total: 64 << 20 };
        {
            let store = Store::open(dir.path(), true, budget).unwrap();
            let mut b = store.batch();
            b.put_account(0, "kept", &s);
            store.write(b).unwrap();
            stage_and_clear(&store, 7, &encoded);
        }
        {
            let store = Store::open(dir.path(), true, budget).unwrap();
            assert_eq!(store.staged_file_bytes(), 0, "the files of deleted states are gone at open");
            stage_and_clear(&store, 8, &encoded);
            let store = Arc::new(store);
            let dropping = {
                let store = store.clone();
                std::thread::spawn(move || store.drop_staged_files())
            };
            store.stop_background_work();
            dropping.join().expect("the compaction's thread returns");
        }
        let store = Store::open(dir.path(), true, budget).unwrap();
        assert_eq!(store.staged_file_bytes(), 0);
        assert_eq!(store.get_account(0, "kept").unwrap(), Some(s));
    }

    /// A state directory written before board entries were kept (no `board` column family) gets
    /// one per decodable account when it is first opened, and keeps its states.
    #[test]
    fn a_store_without_board_entries_gets_them_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let a = state_from(&[(1, 1, 1_000), (2, 3, 90_000_000)]);
        let b = state_from(&[(4, 2, 5_000)]);
        {
            let mut opts = Options::default();
            opts.create_if_missing(true);
            opts.create_missing_column_families(true);
            let old = [CF_ACCOUNTS, CF_DUE, CF_OFFSETS, CF_OUTBOX, CF_CHANGELOG_PENDING];
            let db = DB::open_cf(&opts, dir.path(), old).unwrap();
            let cf = db.cf_handle(CF_ACCOUNTS).unwrap();
            db.put_cf(cf, account_key(0, "a"), codec::encode_to_vec(&a)).unwrap();
            db.put_cf(cf, account_key(2, "b"), codec::encode_to_vec(&b)).unwrap();
            db.put_cf(cf, account_key(2, "broken"), [200u8, 1, 2]).unwrap();
        }
        let store = Store::open(dir.path(), true, Budget { total: 64 << 20 }).unwrap();
        let mut board = Vec::new();
        store.for_each_board_entry(|p, id, bytes| board.push((p, id.to_string(), bytes.to_vec()))).unwrap();
        let want = vec![
            (0, "a".to_string(), board_entry::entry_bytes(0, &a)),
            (2, "b".to_string(), board_entry::entry_bytes(2, &b)),
        ];
        assert_eq!(board, want);
        assert_eq!(store.get_account(2, "b").unwrap(), Some(b));
        drop(store);
        // Built once: a second open finds the column family and leaves it as it is.
        let store = Store::open(dir.path(), true, Budget { total: 64 << 20 }).unwrap();
        let mut n = 0;
        store.for_each_board_entry_in(2, |_, _| n += 1).unwrap();
        assert_eq!(n, 1);
    }

    /// At a small budget an account file's index and filter are partitioned (small blocks under
    /// a pinned top level): with one index block per file, the cache's shards could not keep it
    /// and every lookup read and decompressed it whole again. At the default budget, one block.
    #[test]
    fn account_files_have_a_partitioned_index_at_a_small_budget() {
        assert!(index_partitions(Budget { total: 64 << 20 }) > 1);
        let default = Budget { total: 512 << 20 };
        assert!(default.block_cache() >= PARTITIONED_INDEX_BELOW);
        assert_eq!(index_partitions(default), 0);
    }

    fn index_partitions(budget: Budget) -> u64 {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false, budget).unwrap();
        let s = state_from(&[(1, 1, 0), (2, 3, 86_400_000), (4, 5, 2 * 86_400_000)]);
        let mut b = store.batch();
        for i in 0..20_000 {
            b.put_account(0, &format!("account-{i:06}"), &s);
        }
        store.write(b).unwrap();
        store.db.flush_cf(store.cf(CF_ACCOUNTS)).unwrap();
        let props = store.db.property_value_cf(store.cf(CF_ACCOUNTS), "rocksdb.aggregated-table-properties").unwrap().unwrap();
        assert!(props.contains("# entries=20000"), "{props}");
        // A single-block index has no partitions to count.
        let partitions: u64 = props
            .split(';')
            .find_map(|p| p.trim().strip_prefix("# index partitions="))
            .map_or(0, |n| n.trim().parse().unwrap());
        assert_eq!(store.get_account(0, "account-012345").unwrap(), Some(s));
        partitions
    }
}
