//! One path for events, from Kafka or from files. A source (`crate::pipeline` reads Kafka,
//! `crate::cmd::replay` reads files) decodes records and hands them to the [`merge`], which puts
//! the three input streams of a partition in event-time order (and says where a rejected record
//! goes); [`apply`] then takes each record in that order: the timers due before it first, in
//! slices, with a batch written ([`Driver::cut`]) whenever the engine is over its memory budget,
//! then the record. [`advance`] moves stream time without a record (an idle partition, the end
//! of a replay) the same way. What becomes of the engine's output — an outbox to Kafka, or
//! files — is the caller's; everything between the source and that output is shared, so
//! `replay` gives what `run` gives.

pub mod merge;

use anyhow::Result;

use crate::engine::{Engine, Record};

/// What [`apply`] and [`advance`] drive: an engine, and a way to write the batch so far.
pub trait Driver {
    fn engine(&mut self) -> &mut Engine;

    /// Writes the batch so far: the accounts it changed went over the engine's budget while
    /// timers are still due (a day's timers reach every account). The pipeline writes a batch
    /// like any other (states with the offsets of the records applied so far, so every
    /// guarantee holds); `replay`'s engine writes back on its own (`Engine::spill_if_full`) and
    /// is never over budget.
    fn cut(&mut self) -> Result<()>;
}

/// Applies one record of `partition`, in merge order: moves stream time as the record will and
/// re-scores the accounts due before it, in slices, then processes it.
pub fn apply(d: &mut impl Driver, partition: u32, record: Record<'_, '_>) -> Result<()> {
    if let Ok(e) = record.decoded {
        while d.engine().fire_due_before(partition, e.kind(), e.ts_ms())? {
            d.cut()?;
        }
    }
    if d.engine().over_budget() {
        d.cut()?;
    }
    let engine = d.engine();
    engine.process(partition, record)?;
    engine.spill_if_full()?;
    Ok(())
}

/// Moves `partition`'s stream time to `to_ms` without a record and re-scores the accounts that
/// become due, in slices as [`apply`].
pub fn advance(d: &mut impl Driver, partition: u32, to_ms: i64) -> Result<()> {
    while d.engine().advance_time(partition, to_ms)? {
        d.cut()?;
    }
    Ok(())
}
