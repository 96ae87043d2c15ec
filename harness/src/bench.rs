//! The benchmark: per-phase timings of a scenario (normally `tutorial-tls`) against two baselines
//! measured in the same run — a bare systemd node booting to `running`, and a bare etcd process in a
//! container answering its first request — with the ratio scenario / (boot + etcd); and, in the same
//! rounds, the cluster scenarios (three and five members), each as a multiple of the single node.
//!
//! Timing targets live here, not in tests: they are printed with `pass` or `miss`, never asserted.
//! Medians over rounds after one warm-up round.

use std::fmt;

use futures_util::StreamExt;
use std::time::{Duration, Instant};

use testcontainers::core::{AccessMode, Mount};
use testcontainers::runners::AsyncRunner;
use testcontainers::{GenericImage, ImageExt};

use crate::checks::SETTLE_WINDOW;
use crate::cpu::Usage;
use crate::downloads::{self, EtcdSource};
use crate::engine::short;
use crate::forward::Forward;
use crate::image;
use crate::node::{Node, NodeError, NodeSpec};
use crate::report::{Phase, Report};
use crate::runner::{self, Fixes, Harness, RunError, RunOptions};
use crate::scenario::{Expect, Scenario};
use crate::wait::{poll_until, Probe};

/// The cluster lines (issue 8) and their targets: a cluster's total may take at most this many times
/// the single node's total without its expected failures' wait.
pub const CLUSTER_TARGETS: [(&str, f64); 2] = [("cluster-3-tls", 2.0), ("cluster-5-tls", 3.0)];

/// A cluster scenario timed in the same rounds as the single node, with its target.
pub struct ClusterLine {
    /// The multi-member scenario.
    pub scenario: Scenario,
    /// The most its total may be, as a multiple of the single node's net total.
    pub target: f64,
}

/// Measured rows: a label, and per round its wall time and the busy CPU meanwhile.
pub struct BenchTable {
    rows: Vec<Row>,
    /// The single-node scenario's name.
    scenario: String,
    /// The cluster lines' scenario names and targets.
    clusters: Vec<(String, f64)>,
    scenario_ok: bool,
    /// Cluster scenarios whose expectations did not hold in some round.
    clusters_failed: Vec<String>,
    catalogue: Option<Catalogue>,
}

/// One row: its label and what each round measured.
struct Row {
    label: String,
    walls: Vec<Duration>,
    cpus: Vec<Usage>,
}

/// The whole scenario directory run at once.
struct Catalogue {
    scenarios: usize,
    failed: Vec<String>,
    wall: Duration,
    cpu: Option<Usage>,
    cores: usize,
}

impl Catalogue {
    /// The least wall time its busy CPU allows on these cores: busy core-seconds ÷ cores.
    fn floor(&self) -> Option<Duration> {
        self.cpu.map(|cpu| cpu.machine / self.cores.max(1) as u32)
    }
}

/// How many scenarios the catalogue line runs at a time: they mostly wait on timeouts inside nodes.
pub const CATALOGUE_PARALLELISM: usize = 6;

impl BenchTable {
    fn new(scenario: &str, clusters: &[ClusterLine]) -> Self {
        Self {
            rows: Vec::new(),
            scenario: scenario.to_owned(),
            clusters: clusters
                .iter()
                .map(|c| (c.scenario.name.clone(), c.target))
                .collect(),
            scenario_ok: true,
            clusters_failed: Vec::new(),
            catalogue: None,
        }
    }

    fn push(&mut self, label: &str, wall: Duration, cpu: Option<Usage>) {
        let row = match self.rows.iter_mut().position(|r| r.label == label) {
            Some(i) => &mut self.rows[i],
            None => {
                self.rows.push(Row {
                    label: label.to_owned(),
                    walls: Vec::new(),
                    cpus: Vec::new(),
                });
                self.rows.last_mut().expect("just pushed")
            }
        };
        row.walls.push(wall);
        row.cpus.extend(cpu);
    }

    fn median(&self, label: &str) -> Option<Duration> {
        self.rows
            .iter()
            .find(|r| r.label == label)
            .map(|r| median(&r.walls))
    }

    /// The median busy CPU of a row, by each account's own median.
    fn median_cpu(&self, label: &str) -> Option<Usage> {
        let row = self.rows.iter().find(|r| r.label == label)?;
        median_usage(&row.cpus)
    }
}

fn median_usage(cpus: &[Usage]) -> Option<Usage> {
    if cpus.is_empty() {
        return None;
    }
    let of = |f: fn(&Usage) -> Duration| median(&cpus.iter().map(f).collect::<Vec<_>>());
    Some(Usage {
        machine: of(|u| u.machine),
        harness: of(|u| u.harness),
        engine: of(|u| u.engine),
    })
}

fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

const TOTAL: &str = "scenario total";
const EXPECTED_FAILURES: &str = "  of which: expected failures' wait";
const NET: &str = "  scenario total without that wait";
const BASE_BOOT: &str = "baseline: bare systemd node to `running`";
const BASE_ETCD: &str = "baseline: bare etcd container, first answer";

/// The row of a cluster scenario's total.
fn cluster_total(name: &str) -> String {
    format!("{name} total")
}

/// The wall time a run spent only because some seed commands must fail — in `tutorial-tls`, the
/// seed's bare `etcdctl member list`, which etcdctl gives up on after its own 5 s dial timeout.
///
/// `seed` holds each seed command's duration (from its transcript entry) and whether its expectation
/// is `fail`; `checks` is the run's checks phase, where they ran. The seed commands run side by side,
/// so the failures add only what the slowest of them outlasts the slowest of the others. And the
/// checks phase cannot end before the health check's settle window has passed since etcd was seen
/// active, failures or not: of the phase, at least [`SETTLE_WINDOW`] would remain without them.
fn expected_failures_wait(
    seed: impl IntoIterator<Item = (bool, Duration)>,
    checks: Duration,
) -> Duration {
    let (mut failing, mut others) = (Duration::ZERO, Duration::ZERO);
    for (must_fail, took) in seed {
        let slowest = if must_fail { &mut failing } else { &mut others };
        *slowest = (*slowest).max(took);
    }
    failing
        .saturating_sub(others)
        .min(checks.saturating_sub(SETTLE_WINDOW))
}

/// [`expected_failures_wait`] of a finished run.
fn expected_failures_wait_of(report: &Report) -> Duration {
    let seed = report.checks.iter().filter_map(|c| {
        let entry = c.entry.as_ref()?;
        Some((c.expected == Some(Expect::Fail), entry.duration))
    });
    let checks = report
        .timings
        .iter()
        .find(|lap| lap.phase == Phase::Checks)
        .map(|lap| lap.wall)
        .unwrap_or_default();
    expected_failures_wait(seed, checks)
}

impl fmt::Display for BenchTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<46} {:>9} {:>9} {:>9}   {:>8} {:>8} {:>8} {:>8}",
            "phase", "median", "min", "max", "busy", "harness", "engine", "nodes+"
        )?;
        for row in &self.rows {
            let min = row.walls.iter().min().copied().unwrap_or_default();
            let max = row.walls.iter().max().copied().unwrap_or_default();
            write!(
                f,
                "{:<46} {:>8.3}s {:>8.3}s {:>8.3}s",
                row.label,
                median(&row.walls).as_secs_f64(),
                min.as_secs_f64(),
                max.as_secs_f64()
            )?;
            match median_usage(&row.cpus) {
                Some(cpu) => writeln!(
                    f,
                    "   {:>7.2}s {:>7.2}s {:>7.2}s {:>7.2}s",
                    cpu.machine.as_secs_f64(),
                    cpu.harness.as_secs_f64(),
                    cpu.engine.as_secs_f64(),
                    cpu.nodes_and_rest().as_secs_f64()
                )?,
                None => writeln!(f)?,
            }
        }
        writeln!(
            f,
            "busy: core-seconds of the whole machine (/proc/stat); harness: this process; engine: its \
             daemons (dockerd, containerd); nodes+: the rest (the nodes, their shims and runc)"
        )?;
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
        if let (Some(net), Some(boot), Some(etcd)) = (
            self.median(NET),
            self.median(BASE_BOOT),
            self.median(BASE_ETCD),
        ) {
            writeln!(
                f,
                "ratio without the expected failures' client timeouts = {:.2}",
                net.as_secs_f64() / (boot + etcd).as_secs_f64()
            )?;
        }
        if let (Some(total), Some(boot), Some(etcd)) = (
            self.median_cpu(TOTAL),
            self.median_cpu(BASE_BOOT),
            self.median_cpu(BASE_ETCD),
        ) {
            let floor = boot.machine + etcd.machine;
            writeln!(
                f,
                "busy CPU scenario / (baseline boot + baseline etcd) = {:.2} / ({:.2} + {:.2}) = {:.2}",
                total.machine.as_secs_f64(),
                boot.machine.as_secs_f64(),
                etcd.machine.as_secs_f64(),
                total.machine.as_secs_f64() / floor.as_secs_f64().max(0.001)
            )?;
        }
        if self.median(NET).is_some() && !self.clusters.is_empty() {
            writeln!(
                f,
                "clusters / {} without its expected failures' wait (the slowest seed command that \
                 must fail less the slowest other one beside it, keeping the {:.0} s settle window \
                 in checks):",
                self.scenario,
                SETTLE_WINDOW.as_secs_f64()
            )?;
        }
        for (name, target) in &self.clusters {
            if let (Some(total), Some(net)) = (self.median(&cluster_total(name)), self.median(NET))
            {
                let ratio = total.as_secs_f64() / net.as_secs_f64();
                writeln!(
                    f,
                    "  {name} / {} = {:.3} / {:.3} = {ratio:.2} (target ≤ {target}×: {})",
                    self.scenario,
                    total.as_secs_f64(),
                    net.as_secs_f64(),
                    if ratio <= *target { "pass" } else { "miss" }
                )?;
            }
        }
        if let Some(c) = &self.catalogue {
            write!(
                f,
                "catalogue: {} scenarios, {CATALOGUE_PARALLELISM} at a time: {:.1}s wall",
                c.scenarios,
                c.wall.as_secs_f64(),
            )?;
            if let (Some(cpu), Some(floor)) = (c.cpu, c.floor()) {
                write!(
                    f,
                    ", {:.1} busy core-seconds (harness {:.1}, engine {:.1}), CPU floor on {} cores \
                     {:.1}s: wall = {:.2}× floor",
                    cpu.machine.as_secs_f64(),
                    cpu.harness.as_secs_f64(),
                    cpu.engine.as_secs_f64(),
                    c.cores,
                    floor.as_secs_f64(),
                    c.wall.as_secs_f64() / floor.as_secs_f64().max(0.001)
                )?;
            }
            if c.failed.is_empty() {
                writeln!(f)?;
            } else {
                writeln!(f, "; expectations failed in: {}", c.failed.join(", "))?;
            }
        }
        if !self.scenario_ok {
            writeln!(
                f,
                "warning: the scenario's expectations did not hold in every round"
            )?;
        }
        if !self.clusters_failed.is_empty() {
            writeln!(
                f,
                "warning: expectations did not hold in every round of {}",
                self.clusters_failed.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Runs one warm-up round and `rounds` measured rounds of `scenario`, the baselines and each of
/// `clusters`, then, if given, every scenario of `catalogue` at once.
pub async fn run(
    scenario: &Scenario,
    clusters: &[ClusterLine],
    catalogue: &[Scenario],
    etcd: &EtcdSource,
    rounds: u32,
    progress: &mut dyn FnMut(&str),
) -> Result<BenchTable, RunError> {
    let harness = Harness::prepare(progress).await?;
    let options = RunOptions {
        etcd: etcd.clone(),
        keep: false,
        artefacts: None,
        // The bench times the bootstrap and its checks, not the proof of a fix.
        fixes: Fixes::Never,
    };
    let mut table = BenchTable::new(&scenario.name, clusters);
    for round in 0..=rounds {
        let measured = round > 0;
        progress(&format!(
            "{} {round}/{rounds}",
            if measured { "round" } else { "warm-up" }
        ));
        let start = Instant::now();
        image::ensure(&harness.engine, progress).await?;
        let cache_hit = start.elapsed();

        let (report, total, total_cpu) = measure(runner::run(&harness, scenario, &options)).await;
        let report = report?;
        table.scenario_ok &= report.holds();

        // The baselines' rows are their time to `running` and to the first answer; their CPU is
        // their whole life, create to removal, like the scenario's.
        let (boot, _, boot_cpu) = measure(baseline_boot(&harness)).await;
        let boot = boot?;
        let (etcd_first, _, etcd_cpu) = measure(baseline_etcd(&harness, &options.etcd)).await;
        let etcd_first = etcd_first?;
        if measured {
            table.push("node image (cache hit)", cache_hit, None);
            for lap in &report.timings {
                table.push(lap.phase.name(), lap.wall, lap.cpu);
            }
            table.push(TOTAL, total, total_cpu);
            let waiting = expected_failures_wait_of(&report);
            table.push(EXPECTED_FAILURES, waiting, None);
            table.push(NET, total.saturating_sub(waiting), None);
            table.push(BASE_BOOT, boot, boot_cpu);
            table.push(BASE_ETCD, etcd_first, etcd_cpu);
        }
        // In the same rounds as the single node, so the ratios compare like with like.
        for cluster in clusters {
            let name = &cluster.scenario.name;
            let (report, total, cpu) =
                measure(runner::run(&harness, &cluster.scenario, &options)).await;
            let report = report?;
            if !report.holds() && !table.clusters_failed.contains(name) {
                table.clusters_failed.push(name.clone());
            }
            if measured {
                for lap in &report.timings {
                    table.push(&format!("{name}: {}", lap.phase.name()), lap.wall, lap.cpu);
                }
                table.push(&cluster_total(name), total, cpu);
            }
        }
    }
    if !catalogue.is_empty() {
        progress(&format!("catalogue: {} scenarios", catalogue.len()));
        let (reports, wall, cpu): (Vec<Result<Report, RunError>>, _, _) = measure(
            futures_util::stream::iter(
                catalogue.iter().map(|s| runner::run(&harness, s, &options)),
            )
            .buffer_unordered(CATALOGUE_PARALLELISM)
            .collect(),
        )
        .await;
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
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        });
    }
    // Keep the table's phase order stable even if a round lacked a phase.
    let order = [
        Phase::Prepare,
        Phase::NodeBoot,
        Phase::Bootstrap,
        Phase::EtcdReady,
    ];
    table.rows.sort_by_key(|Row { label, .. }| {
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

/// `work`'s outcome, its wall time and the busy CPU meanwhile.
async fn measure<T>(work: impl std::future::Future<Output = T>) -> (T, Duration, Option<Usage>) {
    let (start, before) = (Instant::now(), Usage::now());
    let out = work.await;
    let cpu = Usage::now()
        .zip(before)
        .map(|(after, before)| after - before);
    (out, start.elapsed(), cpu)
}

/// A bare systemd node from create to `running`, then removed (the time is to `running`).
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

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_millis((s * 1000.0).round() as u64)
    }

    #[test]
    fn the_expected_failures_wait_is_what_they_outlast_the_other_seed_commands_by() {
        // tutorial-tls: the bare member list times out beside a fast TLS read.
        let seed = [(true, secs(5.1)), (false, secs(0.1))];
        assert_eq!(expected_failures_wait(seed, secs(6.5)), secs(5.0));
        // No failures, or failures no slower than the rest: nothing to take away.
        assert_eq!(
            expected_failures_wait([(false, secs(0.1))], secs(1.5)),
            secs(0.0)
        );
        assert_eq!(
            expected_failures_wait([(true, secs(0.2)), (false, secs(0.3))], secs(1.5)),
            secs(0.0)
        );
    }

    #[test]
    fn the_expected_failures_wait_leaves_the_settle_window_in_the_checks_phase() {
        let seed = [(true, secs(5.1))];
        assert_eq!(
            expected_failures_wait(seed, secs(5.5)),
            secs(5.5) - SETTLE_WINDOW
        );
    }

    #[test]
    fn the_table_prints_each_clusters_ratio_to_the_net_single_node_with_pass_or_miss() {
        let mut table = BenchTable {
            rows: Vec::new(),
            scenario: "tutorial-tls".into(),
            clusters: vec![("cluster-3-tls".into(), 2.0), ("cluster-5-tls".into(), 3.0)],
            scenario_ok: true,
            clusters_failed: Vec::new(),
            catalogue: None,
        };
        for (total, waiting) in [(9.0, 5.0), (8.0, 5.0), (10.0, 5.0)] {
            table.push(TOTAL, secs(total), None);
            table.push(EXPECTED_FAILURES, secs(waiting), None);
            table.push(NET, secs(total - waiting), None);
        }
        for (three, five) in [(7.0, 13.0), (8.0, 12.0), (9.0, 14.0)] {
            table.push(&cluster_total("cluster-3-tls"), secs(three), None);
            table.push(&cluster_total("cluster-5-tls"), secs(five), None);
        }
        let text = table.to_string();
        assert!(
            text.contains(
                "  cluster-3-tls / tutorial-tls = 8.000 / 4.000 = 2.00 (target ≤ 2×: pass)"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "  cluster-5-tls / tutorial-tls = 13.000 / 4.000 = 3.25 (target ≤ 3×: miss)"
            ),
            "{text}"
        );
        assert!(
            text.contains("without its expected failures' wait"),
            "{text}"
        );
    }
}
