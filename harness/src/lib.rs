//! etcd-harness boots real etcd the way the tutorial's operator does — a throwaway PKI, a systemd
//! Debian node in a container, the tutorial's steps verbatim — and proves it works over mutual TLS,
//! or shows exactly why it doesn't.
//!
//! Data flows one way: a [`scenario::Scenario`] file is parsed, [`runner::run`] starts a
//! [`cluster::Cluster`] (a [`network`] and a [`node::Node`] per member; the tutorial's single node is
//! a cluster of one), runs the [`steps`], observes the [`unit`](mod@unit), runs the [`checks`], has the
//! [`judge`] decide, and returns a [`report::Report`] that [`report`] renders. The [`engine`] layer
//! talks to Docker; nothing below the runner knows about scenarios.

pub mod agent;
pub mod apt;
pub mod artefacts;
pub mod bench;
pub mod builtin;
pub mod cache;
pub mod cause;
pub mod causes;
pub mod checks;
pub mod cli;
pub mod cluster;
pub mod config_fix;
pub mod cpu;
pub mod diagnose;
pub mod doctor;
pub mod downloads;
pub mod engine;
pub mod etcdlog;
pub mod faults;
pub mod fix;
pub mod forward;
pub mod image;
pub mod judge;
pub mod lint;
pub mod matrix;
pub mod messages;
pub mod names;
pub mod network;
pub mod node;
pub mod owner;
pub mod pki;
pub mod reaper;
pub mod release;
pub mod repair;
pub mod report;
pub mod rundir;
pub mod runner;
pub mod scenario;
pub mod settings;
pub mod soak;
pub mod spec;
pub mod statements;
pub mod steps;
pub mod topology;
pub mod transcript;
pub mod unit;
pub mod versions;
pub mod wait;
