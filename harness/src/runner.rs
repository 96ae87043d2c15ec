//! Runs a scenario end to end: the jumpbox's files and PKI, a fresh node, the bootstrap's steps, the
//! unit observed active, then the checks — producing a [`Report`]. Data flows one way: scenario in,
//! report out; nothing here prints.
//!
//! Infrastructure failures (no engine, no image, no etcd binaries) are [`RunError`]s. A bootstrap or
//! etcd that fails is not an error: it is what the report shows, with the seed's troubleshooting
//! output and a diagnosis.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::checks::{self, CheckResult};
use crate::diagnose::{self, Diagnosis};
use crate::downloads::{self, Downloads, DownloadsError, EtcdSource};
use crate::engine::{Engine, EngineError, Labels};
use crate::forward::{Forward, ForwardError};
use crate::image::{self, ImageError, NodeImage};
use crate::node::{Node, NodeError, NodeSpec};
use crate::pki::{Pki, PkiError};
use crate::scenario::Scenario;
use crate::steps::{self, RunStepError};
use crate::transcript::{Entry, Host, Transcript};
use crate::unit::{self, UnitError};

/// How long the unit gets to become active after the bootstrap (systemd's own start timeout is 90 s;
/// a crash loop or failure ends the wait at once).
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(95);

/// Why a scenario could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The node image could not be made.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The etcd binaries could not be had.
    #[error(transparent)]
    Downloads(#[from] DownloadsError),
    /// The PKI could not be issued.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The node did not start or boot.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// A step could not be carried out (not: a step's command failed).
    #[error(transparent)]
    Step(#[from] RunStepError),
    /// The port-forward could not listen.
    #[error(transparent)]
    Forward(#[from] ForwardError),
    /// The jumpbox directory could not be prepared.
    #[error("failed to prepare the jumpbox directory {path}: {source}")]
    Jumpbox {
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A phase of a run, for timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Finding the etcd binaries and issuing the PKI.
    Prepare,
    /// Creating the node and waiting for systemd.
    NodeBoot,
    /// The bootstrap's steps.
    Bootstrap,
    /// From the steps' end to etcd.service observed active.
    EtcdReady,
    /// All checks.
    Checks,
    /// Removing the node.
    Teardown,
}

impl Phase {
    /// The phase's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Prepare => "prepare (binaries, PKI)",
            Self::NodeBoot => "node boot",
            Self::Bootstrap => "bootstrap steps",
            Self::EtcdReady => "etcd ready",
            Self::Checks => "checks",
            Self::Teardown => "teardown",
        }
    }
}

/// What it takes to run scenarios: an engine connection, the run's labels and the node image.
/// Prepared once, shared by every scenario of a process.
#[derive(Clone)]
pub struct Harness {
    /// The engine.
    pub engine: Engine,
    /// The labels every container of this process carries.
    pub labels: Labels,
    /// The node image.
    pub image: NodeImage,
}

impl Harness {
    /// Connects to the engine, sweeps leftovers of killed runs, and makes sure the node image exists.
    pub async fn prepare(progress: &mut dyn FnMut(&str)) -> Result<Self, RunError> {
        let engine = Engine::connect().await?;
        let swept = engine.sweep_stale().await?;
        if swept > 0 {
            progress(&format!(
                "removed {swept} leftover(s) of killed etcd-harness runs"
            ));
        }
        let image = image::ensure(&engine, progress).await?;
        Ok(Self {
            engine,
            labels: Labels::for_this_process(),
            image,
        })
    }
}

/// How to run a scenario.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Where etcd comes from.
    pub etcd: EtcdSource,
    /// Leave the node (and the jumpbox directory) after the run.
    pub keep: bool,
}

/// A node left running on purpose.
#[derive(Debug, Clone)]
pub struct Kept {
    /// The container id.
    pub container: String,
    /// The jumpbox directory with the PKI.
    pub jumpbox: PathBuf,
}

/// Everything a run observed.
#[derive(Debug, Clone)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// Its description.
    pub description: String,
    /// `etcd --version` as the node reports it.
    pub etcd_version: Option<String>,
    /// Where the binaries came from.
    pub etcd_origin: String,
    /// The node image.
    pub image: String,
    /// Every command run, in order.
    pub transcript: Transcript,
    /// An unexpected failure before the checks (a step, or the unit), if any.
    pub failure: Option<String>,
    /// What the evidence says about that failure.
    pub diagnosis: Option<Diagnosis>,
    /// The checks' results.
    pub checks: Vec<CheckResult>,
    /// The node kept with `--keep`.
    pub kept: Option<Kept>,
    /// Time spent in each phase.
    pub timings: Vec<(Phase, Duration)>,
}

impl Report {
    /// True when every expectation of the scenario held.
    pub fn holds(&self) -> bool {
        self.failure.is_none() && !self.checks.is_empty() && self.checks.iter().all(|c| c.holds)
    }
}

/// Runs `scenario` on a fresh node.
pub async fn run(
    harness: &Harness,
    scenario: &Scenario,
    options: &RunOptions,
) -> Result<Report, RunError> {
    let mut clock = Instant::now();
    let mut lap = |phase: Phase, timings: &mut Vec<(Phase, Duration)>| {
        timings.push((phase, clock.elapsed()));
        clock = Instant::now();
    };
    let mut timings = Vec::new();
    let downloads = downloads::fetch(&options.etcd).await?;
    let pki = Pki::issue()?;
    let jumpbox = jumpbox(&pki, &downloads, &scenario.unit_file)?;
    lap(Phase::Prepare, &mut timings);

    let spec = NodeSpec {
        image: harness.image.clone(),
        keep: options.keep,
    };
    let node = Node::start(&harness.engine, &harness.labels, &spec).await?;
    lap(Phase::NodeBoot, &mut timings);

    let mut report = Report {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        etcd_version: None,
        etcd_origin: downloads.origin.clone(),
        image: harness.image.reference(),
        transcript: Transcript::default(),
        failure: None,
        diagnosis: None,
        checks: Vec::new(),
        kept: None,
        timings: Vec::new(),
    };
    let since = unit::epoch_now();
    let failed_step = steps::run(
        &scenario.bootstrap.steps,
        &node,
        jumpbox.path(),
        &mut report.transcript,
    )
    .await?;
    lap(Phase::Bootstrap, &mut timings);

    report.etcd_version = etcd_version(&node).await?;
    if let Some(index) = failed_step {
        let step = &scenario.bootstrap.steps[index];
        report.failure = Some(format!("bootstrap step `{}` failed", step.name));
        troubleshoot(&node, &mut report, since).await?;
    } else {
        match unit::wait_active(&node, ACTIVE_TIMEOUT).await {
            Ok(active) => {
                let active_since = Instant::now();
                lap(Phase::EtcdReady, &mut timings);
                report.checks = run_checks(&node, scenario, &pki, &active, active_since).await?;
                let seed_entries = report.checks.iter().filter_map(|c| c.entry.clone());
                for entry in seed_entries.collect::<Vec<_>>() {
                    report.transcript.push(entry);
                }
                lap(Phase::Checks, &mut timings);
            }
            Err(UnitError::Engine(e)) => return Err(e.into()),
            Err(unit_error) => {
                report.failure = Some(unit_error.to_string());
                troubleshoot(&node, &mut report, since).await?;
            }
        }
    }

    if options.keep {
        report.kept = Some(Kept {
            container: node.keep(),
            jumpbox: jumpbox.keep(),
        });
    } else {
        node.remove().await?;
        lap(Phase::Teardown, &mut timings);
    }
    report.timings = timings;
    Ok(report)
}

async fn run_checks(
    node: &Node,
    scenario: &Scenario,
    pki: &Pki,
    active: &unit::UnitState,
    active_since: Instant,
) -> Result<Vec<CheckResult>, RunError> {
    let member = &scenario.member;
    // Validated when the scenario was parsed.
    let port = member.client_port().unwrap_or(2379);
    let forward = Forward::start(node.engine(), node.id(), port).await?;
    let mut client = checks::connect(forward.local_addr(), member.tls(), pki)
        .await
        .map_err(|e| e.to_string());
    let expect = scenario.checks;
    let mut results = vec![
        checks::member_list(client_ref(&mut client), expect.member_list, member).await,
        checks::registry(client_ref(&mut client), expect.registry).await,
    ];
    // The seed's commands are independent reads: run them side by side, so one that must time out
    // (etcdctl waits 5 s) does not delay the others.
    let seed = futures_util::future::join_all(
        scenario
            .seed_commands
            .iter()
            .map(|command| checks::seed_command(node, command)),
    )
    .await;
    results.extend(seed);
    // Last, so the settle window spans all the work above: a unit that died meanwhile is caught.
    results.push(
        checks::health(
            client_ref(&mut client),
            expect.health,
            node,
            active,
            active_since,
        )
        .await,
    );
    Ok(results)
}

fn client_ref(
    client: &mut Result<etcd_client::Client, String>,
) -> Result<&mut etcd_client::Client, &str> {
    client.as_mut().map_err(|e| e.as_str())
}

/// Runs the seed's troubleshooting commands, records them in the transcript, and diagnoses.
async fn troubleshoot(node: &Node, report: &mut Report, since: u64) -> Result<(), RunError> {
    let commands = [
        "systemctl status etcd --no-pager",
        "journalctl -u etcd -n 50 --no-pager",
        "ss -tlnp",
    ];
    for command in commands {
        let out = node.shell(command, Duration::from_secs(15)).await?;
        report.transcript.push(Entry {
            step: "Troubleshooting (the seed's commands)".to_owned(),
            host: Host::Server,
            command: command.to_owned(),
            exit_code: out.exit_code,
            stdout: out.stdout,
            stderr: out.stderr,
            duration: out.duration,
        });
    }
    let failed = report.transcript.first_failure().cloned();
    let (command, output) = failed
        .map(|e| (e.command, format!("{}{}", e.stdout, e.stderr)))
        .unwrap_or_default();
    let evidence = diagnose::gather(node, &command, &output, since).await?;
    report.diagnosis = Some(diagnose::classify(&evidence));
    Ok(())
}

/// `etcd --version`'s version line, if etcd is installed where the tutorial puts it.
async fn etcd_version(node: &Node) -> Result<Option<String>, EngineError> {
    let out = node
        .exec(
            &["/usr/local/bin/etcd", "--version"],
            Duration::from_secs(10),
        )
        .await?;
    Ok(out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("etcd Version:"))
        .map(|v| v.trim().to_owned()))
}

/// Lays out the jumpbox as the tutorial has it: the earlier sections' certificates, `downloads/` and
/// `units/etcd.service` (the scenario's unit file, whatever its name).
fn jumpbox(
    pki: &Pki,
    downloads: &Downloads,
    unit_file: &Path,
) -> Result<tempfile::TempDir, RunError> {
    let dir = tempfile::Builder::new()
        .prefix("etcd-harness-jumpbox-")
        .tempdir()
        .map_err(|source| RunError::Jumpbox {
            path: std::env::temp_dir(),
            source,
        })?;
    let root = dir.path();
    pki.write_to(root)?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| RunError::Jumpbox { path, source }
    };
    for (sub, binary) in [
        ("controller", &downloads.etcd),
        ("client", &downloads.etcdctl),
    ] {
        let target_dir = root.join("downloads").join(sub);
        std::fs::create_dir_all(&target_dir).map_err(io(&target_dir))?;
        let name = binary.file_name().unwrap_or_default();
        std::os::unix::fs::symlink(binary, target_dir.join(name)).map_err(io(binary))?;
    }
    let units = root.join("units");
    std::fs::create_dir_all(&units).map_err(io(&units))?;
    std::fs::copy(unit_file, units.join("etcd.service")).map_err(io(unit_file))?;
    Ok(dir)
}
