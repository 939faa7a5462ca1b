//! What the data path (`run`, `replay`, `demo`) reports while it works, and what the HTTP port
//! reads: the metrics, the account index ([`Board`]), readiness, the read handle of the state
//! store and the back-test figures. Below `api`: the data path never names the HTTP port's types.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use anyhow::Result;

use crate::config::Settings;
use crate::engine::board::{self, Board};
use crate::metrics::Metrics;
use crate::store::Store;

/// Whether the instance takes traffic (`/readyz`), and if not, why.
#[derive(Debug, Clone)]
pub struct Readiness {
    pub ready: bool,
    /// Why not ready (empty when ready).
    pub reason: String,
    /// The partitions owned when ready.
    pub partitions: Vec<u32>,
}

/// The running instance's status, shared by the processing side and the HTTP port.
pub struct Status {
    pub metrics: Metrics,
    pub board: Arc<Board>,
    /// The back-test figures `replay --serve --outcomes` serves at `/v1/evaluation`.
    pub evaluation: Slot,
    readiness: Mutex<Readiness>,
    store: OnceLock<Store>,
}

impl std::fmt::Debug for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Status").field("accounts", &self.board.len()).field("ready", &self.is_ready()).finish_non_exhaustive()
    }
}

impl Status {
    /// Not ready ("starting"), with the metrics of the configured input topics declared.
    pub fn new(settings: &Settings) -> Arc<Status> {
        let t = &settings.kafka.topics;
        let metrics = Metrics::new();
        metrics.declare_topics(&[t.usage.clone(), t.support.clone(), t.accounts.clone(), t.actions.clone()]);
        Arc::new(Status {
            metrics,
            board: Arc::new(Board::default()),
            evaluation: Slot::default(),
            readiness: Mutex::new(Readiness { ready: false, reason: "starting".into(), partitions: vec![] }),
            store: OnceLock::new(),
        })
    }

    /// Gives the API read access to the store and, if `load`, loads the board with every stored
    /// account (a single owner of all partitions, as `replay`).
    pub fn attach_store(&self, store: &Store, load: bool) -> Result<()> {
        let _ = self.store.set(store.clone());
        if !load {
            return Ok(());
        }
        let started = Instant::now();
        let n = load_entries(&self.board, |f| store.for_each_board_entry(f), None)?;
        tracing::info!(accounts = n, seconds = started.elapsed().as_secs_f64(), "account index loaded from the state store");
        Ok(())
    }

    /// The state store, once attached.
    pub fn store(&self) -> Option<&Store> {
        self.store.get()
    }

    /// Loads the board with the stored accounts of one (newly assigned) partition.
    pub fn load_partition(&self, store: &Store, partition: u32) -> Result<()> {
        let started = Instant::now();
        self.board.drop_partition(partition);
        let n = load_entries(&self.board, |f| store.for_each_board_entry_in(partition, |id, bytes| f(partition, id, bytes)), Some(partition))?;
        tracing::info!(partition, accounts = n, seconds = started.elapsed().as_secs_f64(), "account index of the partition loaded");
        Ok(())
    }

    /// Not ready, and why (logged when the reason changes).
    pub fn not_ready(&self, reason: impl Into<String>) {
        let reason = reason.into();
        let mut r = self.readiness.lock().expect("readiness lock");
        if r.ready || r.reason != reason {
            tracing::info!(%reason, "not ready");
        }
        r.ready = false;
        r.reason = reason;
        self.metrics.set_ready(false);
    }

    /// Not ready, with a progress note (not logged: it changes often).
    pub fn progress(&self, reason: String) {
        let mut r = self.readiness.lock().expect("readiness lock");
        r.ready = false;
        r.reason = reason;
        self.metrics.set_ready(false);
    }

    /// Ready, owning these partitions.
    pub fn ready(&self, partitions: Vec<u32>) {
        let mut r = self.readiness.lock().expect("readiness lock");
        if !r.ready || r.partitions != partitions {
            tracing::info!(?partitions, "ready");
        }
        self.metrics.partitions_assigned(partitions.len());
        r.ready = true;
        r.reason.clear();
        r.partitions = partitions;
        self.metrics.set_ready(true);
    }

    pub fn is_ready(&self) -> bool {
        self.readiness.lock().expect("readiness lock").ready
    }

    /// A copy of the readiness as it is now.
    pub fn readiness(&self) -> Readiness {
        self.readiness.lock().expect("readiness lock").clone()
    }

    /// Refreshes the gauges that are read rather than pushed.
    /// The board's gauges keep their last values while the board is busy (see
    /// [`Board::try_counts_and_bytes`]): this runs on the HTTP port's accept loop.
    pub fn refresh_gauges(&self) {
        if let Some((counts, bytes)) = self.board.try_counts_and_bytes() {
            self.metrics.accounts_by_band(counts);
            self.metrics.memory("board", bytes as u64);
        }
        self.metrics.allocator();
        if let Some(s) = self.store.get() {
            self.metrics.state_size(s.size_bytes());
            self.metrics.memory("store", s.memory_bytes());
        }
    }
}

/// Loads stored board entries (`each` walks them) into `board` in bulk (`Board::load`). Entries
/// that do not decode are counted and logged; those accounts are missing from the index until
/// next written. Returns the entries loaded.
fn load_entries(
    board: &Board,
    each: impl FnOnce(&mut dyn FnMut(u32, &str, &[u8])) -> Result<(), crate::store::StoreError>,
    partition: Option<u32>,
) -> Result<usize> {
    let mut bad = 0u64;
    let n = board.load(|push| {
        each(&mut |p, id, bytes| match board::Entry::decode(p, bytes) {
            Ok(e) => push(id.into(), e),
            Err(_) => bad += 1,
        })
    })?;
    if bad > 0 {
        tracing::warn!(?partition, entries = bad, "board entries in the state store do not decode: those accounts are missing from the index until next written");
    }
    Ok(n)
}

/// Where a back-test stands, for `/v1/evaluation`.
#[derive(Debug, Default, Clone)]
pub enum Stage {
    /// No outcomes were given: there is nothing to evaluate.
    #[default]
    Off,
    /// Outcomes were given; the replay is still running.
    Pending,
    /// The evaluation, as JSON.
    Ready(Arc<str>),
}

/// Where the replay leaves its evaluation for the API. Read-only to the API: the replay sets it
/// once at the end.
#[derive(Debug, Default)]
pub struct Slot(Mutex<Stage>);

impl Slot {
    /// An evaluation will come when the replay is done.
    pub fn pending(&self) {
        *self.0.lock().expect("evaluation lock") = Stage::Pending;
    }

    /// The evaluation, as JSON.
    pub fn set(&self, json: String) {
        *self.0.lock().expect("evaluation lock") = Stage::Ready(json.into());
    }

    /// Where it stands now.
    pub fn stage(&self) -> Stage {
        self.0.lock().expect("evaluation lock").clone()
    }
}
