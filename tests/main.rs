//! The one integration-test binary (one binary links the dependency tree once; many would not).
//!
//! `scenarios` runs every scenario file on a real engine; `cli` checks the command's contract;
//! `cleanup` checks that leftovers of killed runs are swept.

mod cleanup;
mod cli;
mod scenarios;
