//! The subcommands, each callable from tests as a library function.

pub mod actions;
pub mod demo;
pub mod generate;
pub mod lines;
pub mod replay;
pub mod run;
pub mod tune;
