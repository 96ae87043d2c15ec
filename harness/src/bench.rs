//! The benchmark: per-phase timings of a scenario (normally `tutorial-tls`) against two baselines
//! measured in the same run — a bare systemd node booting to `running`, and a bare etcd process in a
//! container answering its first request — with the ratio scenario / (boot + etcd).
//!
//! Timing targets live here, not in tests. Medians over rounds after one warm-up round.

use std::fmt;

use futures_util::StreamExt;
use std::time::{Duration, Instant};

use testcontainers::core::{AccessMode, Mount};
use testcontainers::runners::AsyncRunner;
use testcontainers::{GenericImage, ImageExt};

use crate::downloads::{self, EtcdSource};
use crate::engine::short;
use crate::forward::Forward;
use crate::image;
use crate::node::{Node, NodeError, NodeSpec};
use crate::report::{Phase, Report};
use crate::runner::{self, Harness, RunError, RunOptions};
use crate::scenario::{Expect, Scenario};
use crate::wait::{poll_until, Probe};

/// Measured rows: a label and one duration per round.
pub struct BenchTable {
    rows: Vec<(String, Vec<Duration>)>,
    scenario_ok: bool,
    catalogue: Option<Catalogue>,
}

/// The whole scenario directory run at once.
struct Catalogue {
    scenarios: usize,
    failed: Vec<String>,
    wall: Duration,
}

/// How many scenarios the catalogue line runs at a time: they mostly wait on timeouts inside nodes.
pub const CATALOGUE_PARALLELISM: usize = 6;

impl BenchTable {
    fn push(&mut self, label: &str, value: Duration) {
        match self.rows.iter_mut().find(|(l, _)| l == label) {
            Some((_, values)) => values.push(value),
            None => self.rows.push((label.to_owned(), vec![value])),
        }
    }

    fn median(&self, label: &str) -> Option<Duration> {
        self.rows
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, v)| median(v))
    }
}

fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

const TOTAL: &str = "scenario total";
const BASE_BOOT: &str = "baseline: bare systemd node to `running`";
const BASE_ETCD: &str = "baseline: bare etcd container, first answer";
const EXPECTED_FAILURES: &str = "  of which: seed commands that must fail";

impl fmt::Display for BenchTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<46} {:>9} {:>9} {:>9}",
            "phase", "median", "min", "max"
        )?;
        for (label, values) in &self.rows {
            let min = values.iter().min().copied().unwrap_or_default();
            let max = values.iter().max().copied().unwrap_or_default();
            writeln!(
                f,
                "{label:<46} {:>8.3}s {:>8.3}s {:>8.3}s",
                median(values).as_secs_f64(),
                min.as_secs_f64(),
                max.as_secs_f64()
            )?;
        }
        if let (Some(total), Some(boot), Some(etcd)) = (
            self.median(TOTAL),
            self.median(BASE_BOOT),
            self.median(BASE_ETCD),
        ) {
            writeln!(
                f,
                "ratio scenario / (baseline boot + baseline etcd) = {:.3} / ({:.3} + {:.3}) = {:.2}",
                total.as_secs_f64(),
                boot.as_secs_f64(),
                etcd.as_secs_f64(),
                total.as_secs_f64() / (boot + etcd).as_secs_f64()
            )?;
        }
        if let (Some(total), Some(waiting), Some(boot), Some(etcd)) = (
            self.median(TOTAL),
            self.median(EXPECTED_FAILURES),
            self.median(BASE_BOOT),
            self.median(BASE_ETCD),
        ) {
            writeln!(
                f,
                "ratio without the expected failures' client timeouts = {:.2}",
                total.saturating_sub(waiting).as_secs_f64() / (boot + etcd).as_secs_f64()
            )?;
        }
        if let Some(c) = &self.catalogue {
            writeln!(
                f,
                "catalogue: {} scenarios, {CATALOGUE_PARALLELISM} at a time: {:.1}s wall{}",
                c.scenarios,
                c.wall.as_secs_f64(),
                if c.failed.is_empty() {
                    String::new()
                } else {
                    format!("; expectations failed in: {}", c.failed.join(", "))
                }
            )?;
        }
        if !self.scenario_ok {
            writeln!(
                f,
                "warning: the scenario's expectations did not hold in every round"
            )?;
        }
        Ok(())
    }
}

/// Runs one warm-up round and `rounds` measured rounds of `scenario`, then, if given, every scenario
/// of `catalogue` at once.
pub async fn run(
    scenario: &Scenario,
    catalogue: &[Scenario],
    etcd: &EtcdSource,
    rounds: u32,
    progress: &mut dyn FnMut(&str),
) -> Result<BenchTable, RunError> {
    let harness = Harness::prepare(progress).await?;
    let options = RunOptions {
        etcd: etcd.clone(),
        keep: false,
    };
    let mut table = BenchTable {
        rows: Vec::new(),
        scenario_ok: true,
        catalogue: None,
    };
    for round in 0..=rounds {
        let measured = round > 0;
        progress(&format!(
            "{} {round}/{rounds}",
            if measured { "round" } else { "warm-up" }
        ));
        let start = Instant::now();
        image::ensure(&harness.engine, progress).await?;
        let cache_hit = start.elapsed();

        let start = Instant::now();
        let report = runner::run(&harness, scenario, &options).await?;
        let total = start.elapsed();
        table.scenario_ok &= report.holds();

        let boot = baseline_boot(&harness).await?;
        let etcd_first = baseline_etcd(&harness, &options.etcd).await?;
        if measured {
            table.push("node image (cache hit)", cache_hit);
            for (phase, took) in &report.timings {
                table.push(phase.name(), *took);
            }
            table.push(TOTAL, total);
            // An expected failure such as the bare `etcdctl member list` against TLS lasts etcdctl's
            // own 5 s timeout: shown apart, so the harness's overhead can be read without it.
            let waiting = report
                .checks
                .iter()
                .filter(|c| c.expected == Some(Expect::Fail))
                .filter_map(|c| c.entry.as_ref().map(|e| e.duration))
                .max()
                .unwrap_or_default();
            table.push(EXPECTED_FAILURES, waiting);
            table.push(BASE_BOOT, boot);
            table.push(BASE_ETCD, etcd_first);
        }
    }
    if !catalogue.is_empty() {
        progress(&format!("catalogue: {} scenarios", catalogue.len()));
        let start = Instant::now();
        let reports: Vec<Result<Report, RunError>> = futures_util::stream::iter(
            catalogue.iter().map(|s| runner::run(&harness, s, &options)),
        )
        .buffer_unordered(CATALOGUE_PARALLELISM)
        .collect()
        .await;
        let wall = start.elapsed();
        let mut failed = Vec::new();
        for report in reports {
            let report = report?;
            if !report.holds() {
                failed.push(report.scenario);
            }
        }
        table.catalogue = Some(Catalogue {
            scenarios: catalogue.len(),
            failed,
            wall,
        });
    }
    // Keep the table's phase order stable even if a round lacked a phase.
    let order = [
        Phase::Prepare,
        Phase::NodeBoot,
        Phase::Bootstrap,
        Phase::EtcdReady,
    ];
    table.rows.sort_by_key(|(label, _)| {
        order
            .iter()
            .position(|p| p.name() == label)
            .map(|i| i + 1)
            .unwrap_or(if label == "node image (cache hit)" {
                0
            } else {
                10
            })
    });
    Ok(table)
}

/// A bare systemd node from create to `running`, then removed.
async fn baseline_boot(harness: &Harness) -> Result<Duration, RunError> {
    let start = Instant::now();
    let node = Node::start(
        &harness.engine,
        &harness.labels,
        &NodeSpec::server(&harness.image),
    )
    .await?;
    let took = start.elapsed();
    node.remove().await?;
    Ok(took)
}

/// etcd run directly as the container's process (no systemd, no steps, no TLS), from create to its
/// first answered request through the same port-forward the scenario uses.
async fn baseline_etcd(harness: &Harness, etcd: &EtcdSource) -> Result<Duration, RunError> {
    let binaries = downloads::fetch(etcd).await?;
    let start = Instant::now();
    let mut request = GenericImage::new(harness.image.repo.clone(), harness.image.tag.clone())
        .with_cmd([
            "/usr/local/bin/etcd",
            "--data-dir=/tmp/etcd",
            "--listen-client-urls=http://127.0.0.1:2379",
            "--advertise-client-urls=http://127.0.0.1:2379",
        ])
        .with_mount(
            Mount::bind_mount(binaries.etcd.display().to_string(), "/usr/local/bin/etcd")
                .with_access_mode(AccessMode::ReadOnly),
        );
    for (key, value) in harness.labels.pairs() {
        request = request.with_label(key, value);
    }
    let container = request.start().await.map_err(|source| NodeError::Start {
        image: harness.image.reference(),
        source: Box::new(source),
    })?;
    let forward = Forward::start(&harness.engine, container.id(), 2379).await?;
    let answered = poll_until(
        "bare etcd to answer a read",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            let Ok(mut client) = crate::checks::connect(forward.local_addr(), None).await else {
                return Ok::<_, RunError>(Probe::Pending("no connection".into()));
            };
            Ok(match client.get("health", None).await {
                Ok(_) => Probe::Ready(()),
                Err(e) => Probe::Pending(e.to_string()),
            })
        },
    )
    .await?;
    let took = start.elapsed();
    drop(forward);
    let id = short(container.id()).to_owned();
    container.rm().await.map_err(|source| NodeError::Remove {
        node: id,
        source: Box::new(source),
    })?;
    answered.map_err(|timeout| NodeError::BootTimeout {
        node: "bare etcd".into(),
        timeout,
    })?;
    Ok(took)
}
