//! The one integration-test binary (one binary links the dependency tree once; many would not).
//!
//! `scenarios` runs every scenario file on a real engine; `cli` checks the command's contract;
//! `cleanup` checks that nothing outlives a run; `privilege` what a node may not do.

mod cleanup;
mod cli;
mod network;
mod privilege;
mod scenarios;
mod sources;
mod support;
