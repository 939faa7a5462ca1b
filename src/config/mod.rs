//! Typed, layered, validated configuration.
//!
//! Precedence, lowest to highest: the built-in defaults → the TOML file (`--config`) →
//! `KIZASHI__SECTION__KEY` environment variables (`__` separates levels, e.g.
//! `KIZASHI__SCORING__RED_BELOW=35`). Every problem is collected and reported at once, each naming
//! its key; a bad config never reaches the hot loop.
//!
//! Where things are, each file one idea (everything is reachable as `crate::config::X`):
//! - `schema`: the serde structs, one per section, each field documented;
//! - `defaults`: the `Default` of every section;
//! - `bytesize`: `ByteSize`, sizes written as bytes or with a unit;
//! - `load`: defaults → file → environment, merged and deserialised, every problem collected;
//! - `validate`: `Settings::problems`, the semantic checks and their bounds;
//! - `compile`: what validated settings become: the core's `Params`, the decoder's limits...;
//! - `display`: `check-config`'s TOML and `Debug`, secrets masked.

mod bytesize;
mod compile;
mod defaults;
mod display;
mod load;
mod schema;
mod validate;

pub use bytesize::ByteSize;
pub use display::is_secret;
pub use load::{load, ConfigProblems};
pub use schema::*;
pub use validate::{
    MAX_ALLOWED_HOSTS, MAX_BATCH_RECORDS, MAX_BUFFERED_RECORDS, MAX_MAX_ACCOUNT_BYTES, MAX_MEMORY_BUDGET,
    MIN_MAX_ACCOUNT_BYTES, MIN_MEMORY_BUDGET,
};

/// The environment a test hands to `load`.
#[cfg(test)]
fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}
