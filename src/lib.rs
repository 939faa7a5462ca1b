//! kizashi: scores every customer account's health from its product-usage and support events,
//! as they arrive, and raises explained at-risk alerts.
//!
//! `core` is the pure heart (no I/O); `event` decodes input; `store` keeps state in RocksDB;
//! `engine` drives the core over partitions of records; `cmd` holds the subcommands.

pub mod api;
pub mod bytes;
pub mod cmd;
pub mod config;
pub mod core;
pub mod engine;
pub mod evaluation;
pub mod event;
pub mod flow;
pub mod generate;
pub mod metrics;
pub mod outcome;
pub mod partition;
pub mod pipeline;
pub mod runtime;
pub mod store;
pub mod telemetry;
