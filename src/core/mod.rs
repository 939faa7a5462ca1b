//! The pure core: events → account state → measures → score → alerts. No Kafka, no RocksDB, no
//! clock: the shell passes stream time in. The same functions serve `run`, `replay`, `demo` and the
//! tests, so a scorecard gives the same scores whichever way the events arrive.

pub mod actions;
pub mod alerts;
pub mod days;
pub mod distinct;
pub mod evaluate;
pub mod ids;
pub mod measures;
pub mod noise;
pub mod people;
pub mod phrases;
pub mod scorecard;
pub mod state;
pub mod tickets;

pub use alerts::{Alert, Rule, ScoreUpdate};
pub use evaluate::{evaluate, Evaluation};
pub use scorecard::Params;
pub use state::{AccountState, Applied, Band};
