//! Runs a scenario end to end: the jumpbox's files and PKI, a fresh node, the bootstrap's steps, the
//! unit observed active, then the checks — producing a [`Report`]. Data flows one way: scenario in,
//! report out; nothing here prints.
//!
//! Infrastructure failures (no engine, no image, no etcd binaries) are [`RunError`]s. A bootstrap or
//! etcd that fails is not an error: it is what the report shows, with the seed's troubleshooting
//! output and a diagnosis.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::artefacts::{self, ArtefactsError};
use crate::checks::{self, CheckResult, ClientTls};
use crate::cluster::{Cluster, ClusterError, Member};
use crate::cpu::Usage;
use crate::diagnose;
use crate::downloads::{self, Downloads, DownloadsError, EtcdSource};
use crate::engine::{Content, Engine, EngineError, Labels, UploadFile};
use crate::faults::{self, At, Fault, FaultError};
use crate::forward::{Forward, ForwardError};
use crate::image::{self, ImageError, NodeImage};
use crate::judge;
use crate::lint::{self, LintError};
use crate::node::{NodeError, NodeHandle};
use crate::owner::Owner;
use crate::pki::{ClientCert, Identity, Pki, PkiError};
use crate::report::{Kept, Lap, MemberOutcome, Phase, Report};
use crate::rundir::{RunDir, RunDirError};
use crate::scenario::{Expect, ExpectedMember, Scenario};
use crate::steps::{self, RunStepError};
use crate::transcript::{Entry, Host, Transcript};
use crate::unit::{self, UnitError};
use crate::versions;
use crate::wait::{self, Probe};
use semver::Version;

/// How long the unit gets to become active after the bootstrap (systemd's own start timeout is 90 s;
/// a crash loop or failure ends the wait at once).
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(95);

/// Why a scenario could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A failed run's artefacts could not be kept.
    #[error(transparent)]
    Artefacts(#[from] ArtefactsError),
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
    /// The run's network or nodes could not be made.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// A step could not be carried out (not: a step's command failed).
    #[error(transparent)]
    Step(#[from] RunStepError),
    /// A fault could not be injected.
    #[error(transparent)]
    Fault(#[from] FaultError),
    /// The port-forward could not listen.
    #[error(transparent)]
    Forward(#[from] ForwardError),
    /// The run directory could not be made.
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    /// The pre-flight lint stopped the run, or could not lint.
    #[error(transparent)]
    Lint(#[from] LintError),
    /// The jumpbox directory could not be prepared.
    #[error("failed to prepare the jumpbox directory {path}: {source}")]
    Jumpbox {
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// What it takes to run scenarios: an engine connection, the run's labels, the node image and the
/// run's private directory on the host. Prepared once, shared by every scenario of a process; the
/// directory goes when the last clone does.
#[derive(Clone)]
pub struct Harness {
    /// The engine.
    pub engine: Engine,
    /// The labels every container of this process carries.
    pub labels: Labels,
    /// The node image.
    pub image: NodeImage,
    /// Where the scenarios' jumpboxes (and their private keys) live.
    pub run_dir: Arc<RunDir>,
}

impl Harness {
    /// Connects to the engine, sweeps leftovers of killed runs (containers, networks and run
    /// directories whose owner is provably dead), and makes sure the node image exists.
    pub async fn prepare(progress: &mut dyn FnMut(&str)) -> Result<Self, RunError> {
        let engine = Engine::connect().await?;
        let me = Owner::this_process();
        let swept = engine.sweep_stale(me).await?;
        let dirs = RunDir::sweep_stale(me);
        if swept.removed + dirs > 0 {
            progress(&format!(
                "removed leftovers of killed etcd-harness runs: {} container(s) or network(s), \
                 {dirs} run directory(ies)",
                swept.removed
            ));
        }
        if swept.foreign > 0 {
            progress(&format!(
                "left {} etcd-harness container(s) or network(s) of other hosts alone",
                swept.foreign
            ));
        }
        let image = image::ensure(&engine, progress).await?;
        Ok(Self {
            engine,
            labels: Labels::for_this_process(),
            image,
            run_dir: Arc::new(RunDir::create()?),
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
    /// Where a failed run keeps its artefacts (a directory per run under it); `None`: nowhere.
    pub artefacts: Option<PathBuf>,
    /// Whether fixes are applied after the failure.
    pub fixes: Fixes,
}

/// Whether a run applies the diagnosis's fix after the failure, then runs a healthy bootstrap's
/// checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fixes {
    /// As the scenario says (`[fix]`).
    #[default]
    AsScenario,
    /// Always (`run --fix`), also for a scenario without `[fix]`.
    Always,
    /// Never: the bootstrap and its failure alone (the bench times them).
    Never,
}

/// Times the phases of a run.
struct Stopwatch {
    clock: Instant,
    cpu: Option<Usage>,
    laps: Vec<Lap>,
}

impl Stopwatch {
    fn start() -> Self {
        Self {
            clock: Instant::now(),
            cpu: Usage::now(),
            laps: Vec::new(),
        }
    }

    /// Records the time and busy CPU since the previous lap as `phase`.
    fn lap(&mut self, phase: Phase) {
        let cpu = Usage::now();
        self.laps.push(Lap {
            phase,
            wall: self.clock.elapsed(),
            cpu: cpu.zip(self.cpu).map(|(now, then)| now - then),
        });
        self.clock = Instant::now();
        self.cpu = cpu;
    }
}

/// Runs `scenario` on a fresh node.
pub async fn run(
    harness: &Harness,
    scenario: &Scenario,
    options: &RunOptions,
) -> Result<Report, RunError> {
    let mut watch = Stopwatch::start();
    // Before anything is fetched or booted: a bootstrap the lint finds broken, where the scenario
    // does not say it is broken on purpose, is not run.
    lint::preflight(scenario).await?;
    let downloads = downloads::fetch(&options.etcd).await?;
    let version = downloads.version.clone();
    let mut report = Report {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        etcd_version: version.as_ref().map(|v| v.to_string()),
        not_applicable: None,
        etcd_origin: downloads.origin.clone(),
        image: harness.image.reference(),
        transcript: Transcript::default(),
        failure: None,
        diagnosis: None,
        checks: Vec::new(),
        members: Vec::new(),
        kept: None,
        timings: Vec::new(),
        artefacts: None,
        fixes: Vec::new(),
        no_fix: None,
    };
    if !versions::applies(scenario.etcd.as_ref(), version.as_ref()) {
        report.not_applicable = Some(judge::not_applicable(
            scenario.etcd.as_ref(),
            version.as_ref(),
        ));
        return Ok(report);
    }
    let mut pki = Pki::issue_with(scenario.pki.server)?;
    let client_tls = client_tls(scenario, &pki)?;
    let second = match &scenario.second_etcd {
        Some(source) => Some(downloads::fetch(source).await?),
        None => None,
    };
    let jumpbox = jumpbox(
        &harness.run_dir,
        &pki,
        &downloads,
        second.as_ref(),
        scenario.unit_file.as_deref(),
        &member_identities(scenario, &pki)?,
    )?;
    watch.lap(Phase::Prepare);

    let members: Vec<Member> = scenario
        .members
        .iter()
        .map(|m| Member {
            host: m.host.clone(),
            address: m.address,
        })
        .collect();
    let cluster = Cluster::start(
        &harness.engine,
        &harness.labels,
        &harness.image,
        &members,
        scenario.network,
        options.keep,
    )
    .await?;
    watch.lap(Phase::NodeBoot);
    if let Some(etcdutl) = &downloads.etcdutl {
        for node in cluster.nodes() {
            place_etcdutl(node, etcdutl, &mut report.transcript).await?;
        }
    }

    // One directory per run, should it fail (a matrix runs a scenario several times per process).
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let artefacts = options.artefacts.as_ref().map(|root| {
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        root.join(format!("{}-{}-{n}", scenario.name, harness.labels.run_id()))
    });
    exercise(
        &cluster,
        scenario,
        jumpbox.path(),
        client_tls.as_ref(),
        version.as_ref(),
        &mut report,
        &mut watch,
    )
    .await?;
    let fix = match options.fixes {
        Fixes::AsScenario => scenario.fix.is_some(),
        Fixes::Always => true,
        Fixes::Never => false,
    };
    if fix {
        crate::repair::prove(
            &cluster,
            scenario,
            jumpbox.path(),
            &mut pki,
            version.as_ref(),
            &mut report,
        )
        .await?;
        watch.lap(Phase::Fixes);
    }
    if let Some(dir) = artefacts.filter(|_| !report.holds()) {
        report.artefacts = Some(artefacts::collect(&cluster, &dir).await?);
    }

    if options.keep {
        harness.run_dir.keep()?;
        let (containers, switch) = cluster.keep();
        report.kept = Some(Kept {
            containers,
            switch,
            jumpbox: jumpbox.keep(),
        });
    } else {
        cluster.remove().await?;
        watch.lap(Phase::Teardown);
    }
    report.timings = watch.laps;
    if let Some(dir) = &report.artefacts {
        artefacts::write_report(&report, dir)?;
    }
    Ok(report)
}

/// Everything a scenario does on its node: faults, the bootstrap, the unit observed, checks and
/// expectations judged, troubleshooting when something went wrong. Fills `report`.
async fn exercise(
    cluster: &Cluster,
    scenario: &Scenario,
    jumpbox: &Path,
    client_tls: Option<&ClientTls>,
    version: Option<&Version>,
    report: &mut Report,
    watch: &mut Stopwatch,
) -> Result<(), RunError> {
    let since = unit::epoch_now();
    let nodes: Vec<&NodeHandle> = cluster.nodes().collect();
    // Faults, troubleshooting and the single-node checks address the first member.
    let node = cluster.first();
    // The nodes the bootstrap, and then the faults' steps, set up: a node no step has run on yet
    // (one a later step adds to the cluster) is not waited for.
    let bootstrapped_hosts = touched(scenario.bootstrap.steps.iter(), &nodes);
    let touched_hosts = touched(scenario.all_steps(), &nodes);
    if let Some(identity) = client_tls.and_then(|t| t.identity.as_ref()) {
        if scenario.checks.client_cert == ClientCert::OtherCa {
            place_client_identity(node, identity, &mut report.transcript).await?;
        }
    }
    let bootstrapped = bootstrap(cluster, scenario, jumpbox, &mut report.transcript).await?;
    let completed = bootstrapped.completed();
    watch.lap(Phase::Bootstrap);
    report.etcd_version = etcd_version(node).await?;
    // Nor is a member the scenario expects down (`[[expect_unit]] host = …`), or one whose last
    // step failed (its start timed out, say); the others are, when the first member's went through.
    let watched: Vec<&NodeHandle> = nodes
        .iter()
        .copied()
        .filter(|n| n.host() == node.host() || !scenario.expects_down(n.host()))
        .filter(|n| !bootstrapped.failed_on.iter().any(|h| h == n.host()))
        .collect();

    let mut results = Vec::new();
    let mut active = None;
    if bootstrapped.ran_all && watched.iter().any(|n| n.host() == node.host()) {
        active = observe_unit(&among(&watched, &bootstrapped_hosts), false).await?;
        watch.lap(Phase::EtcdReady);
    }
    let ready_faults: Vec<&Fault> = scenario
        .faults
        .iter()
        .filter(|f| f.at == At::Ready)
        .collect();
    let marker = match (&active, scenario.keys_survive) {
        (Some(_), true) => Some(write_marker(node, scenario.member(), client_tls).await),
        _ => None,
    };
    if active.is_some() && !ready_faults.is_empty() {
        inject(
            &ready_faults,
            cluster,
            &scenario.bootstrap.steps,
            jumpbox,
            &mut report.transcript,
        )
        .await?;
        // After a fault the unit may be restarting on purpose (kill -9, reboot): wait through it.
        active = observe_unit(&among(&watched, &touched_hosts), true).await?;
    }
    // Judged once every step has run: the bootstrap's and those the faults ran.
    results.extend(judge::steps(scenario, &report.transcript, version));
    if scenario
        .faults
        .iter()
        .any(|f| f.action == faults::Action::RerunBootstrap)
    {
        results.push(judge::rerun(&report.transcript));
    }
    if completed && active.is_none() && scenario.expect_unit.is_empty() {
        report.failure = Some("etcd.service did not become active".to_owned());
    }
    let active_since = Instant::now();
    results.extend(
        run_checks(
            cluster,
            scenario,
            client_tls,
            active.as_ref(),
            active_since,
            version,
        )
        .await?,
    );
    if let Some(marker) = marker {
        results.push(check_marker(node, scenario.member(), client_tls, marker).await);
    }
    for entry in results
        .iter()
        .flat_map(|c| c.entry.iter().chain(&c.meanwhile))
    {
        report.transcript.push(entry.clone());
    }
    watch.lap(Phase::Checks);

    let journals = settled_journals(cluster, node, scenario, since, version).await?;
    // Every member's unit at the end, read until the expectations hold (a crash-looping unit is
    // briefly `activating (start)` between two `auto-restart`s): for the expectations,
    // troubleshooting and the report's summary lines.
    let states = settled_states(cluster, node, scenario).await?;
    results.extend(unit_results(cluster, node, scenario, &states));
    results.extend(judge::journal(scenario, &journals, version));
    // Troubleshoot when something went wrong, or when the scenario asks what went wrong.
    let something_failed = !completed
        || active.is_none()
        || scenario.diagnosis.is_some()
        || results.iter().any(|r| !r.holds);
    if something_failed {
        troubleshoot(cluster, &states, report, since).await?;
    }
    if let Some(want) = scenario.diagnosis {
        results.push(judge::diagnosis(want, report.diagnosis.as_ref()));
    }
    for (member, state) in scenario.members.iter().zip(&states) {
        report.members.push(MemberOutcome {
            host: member.host.clone(),
            address: member.address,
            unit: format!("{} ({})", state.active_name, state.sub_state),
        });
    }
    report.checks = results;
    Ok(())
}

/// The identity and trust the harness's client uses, or `None` for plain http.
pub(crate) fn client_tls(scenario: &Scenario, pki: &Pki) -> Result<Option<ClientTls>, RunError> {
    if !scenario.member().tls() {
        return Ok(None);
    }
    let mut tls = ClientTls::seed(pki);
    tls.identity = match scenario.checks.client_cert {
        ClientCert::KubeApiserver => tls.identity,
        ClientCert::OtherCa => Some(Pki::other_ca_client()?),
        ClientCert::None => None,
    };
    if !scenario.checks.client_trusts_server {
        tls.ca_pem = None;
    }
    Ok(Some(tls))
}

/// Puts another CA's client certificate where a scenario's etcdctl commands can use it.
async fn place_client_identity(
    node: &NodeHandle,
    identity: &crate::pki::Identity,
    transcript: &mut Transcript,
) -> Result<(), RunError> {
    let start = Instant::now();
    let files = vec![
        UploadFile {
            name: "other-ca-client.crt".into(),
            content: Content::Bytes(identity.cert_pem.clone().into_bytes()),
            mode: 0o644,
        },
        UploadFile {
            name: "other-ca-client.key".into(),
            content: Content::Bytes(identity.key_pem.clone().into_bytes()),
            mode: 0o600,
        },
    ];
    node.exec(&["mkdir", "-p", FAULTY_DIR], Duration::from_secs(10))
        .await?;
    node.engine().upload(node.id(), FAULTY_DIR, files).await?;
    transcript.push(Entry::done(
        "Fault (injected by the scenario)",
        Host::Jumpbox,
        format!("place another CA's client certificate in {FAULTY_DIR}/"),
        start.elapsed(),
    ));
    Ok(())
}

/// Each member's host and certificate, as the scenario's `[network] certs` says.
fn member_identities(scenario: &Scenario, pki: &Pki) -> Result<Vec<(String, Identity)>, RunError> {
    let names = scenario.member_names();
    let faulty = scenario.peer_faults();
    let identities = pki.member_identities(&names, scenario.certs, &faulty)?;
    Ok(names.into_iter().map(|n| n.host).zip(identities).collect())
}

/// Puts `etcdutl` (etcd 3.5+; on 3.6 `snapshot restore` lives only there) beside where the seed
/// installs etcd and etcdctl, so day-2 steps find it.
async fn place_etcdutl(
    node: &NodeHandle,
    etcdutl: &Path,
    transcript: &mut Transcript,
) -> Result<(), RunError> {
    let start = Instant::now();
    let file = UploadFile {
        name: "etcdutl".into(),
        content: Content::File(etcdutl.to_owned()),
        mode: 0o755,
    };
    node.engine()
        .upload(node.id(), "/usr/local/bin", vec![file])
        .await?;
    transcript.push(Entry::done(
        "Harness: etcdutl",
        Host::Jumpbox,
        "place etcdutl in /usr/local/bin (the seed installs only etcd and etcdctl)",
        start.elapsed(),
    ));
    Ok(())
}

/// Where faulty client material goes in the node.
pub const FAULTY_DIR: &str = "/root/faulty";

/// How the bootstrap ended.
struct Bootstrapped {
    /// Every step ran (none failed before the last).
    ran_all: bool,
    /// The nodes on which a step exited non-zero (every node when a jumpbox step did).
    failed_on: Vec<String>,
}

impl Bootstrapped {
    /// Every step ran and exited 0 everywhere.
    fn completed(&self) -> bool {
        self.ran_all && self.failed_on.is_empty()
    }
}

/// The nodes of `nodes` whose host is one of `hosts`.
fn among<'a>(nodes: &[&'a NodeHandle], hosts: &[String]) -> Vec<&'a NodeHandle> {
    nodes
        .iter()
        .copied()
        .filter(|n| hosts.iter().any(|h| h == n.host()))
        .collect()
}

/// The host names of the nodes `steps` run on.
fn touched<'a>(steps: impl Iterator<Item = &'a steps::Step>, nodes: &[&NodeHandle]) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::new();
    for step in steps {
        let on: Vec<&str> = if step.on_each() {
            nodes.iter().map(|n| n.host()).collect()
        } else {
            step.hosts()
        };
        for host in on {
            if !hosts.iter().any(|h| h == host) {
                hosts.push(host.to_owned());
            }
        }
    }
    hosts
}

/// Runs the bootstrap's steps with the scenario's faults around them. Stops after the first step
/// that fails anywhere.
async fn bootstrap(
    cluster: &Cluster,
    scenario: &Scenario,
    jumpbox: &Path,
    transcript: &mut Transcript,
) -> Result<Bootstrapped, RunError> {
    let steps = &scenario.bootstrap.steps;
    let nodes: Vec<&NodeHandle> = cluster.nodes().collect();
    let node = cluster.first();
    for step in steps {
        let before: Vec<&Fault> = scenario.faults.iter().filter(|f| f.before(step)).collect();
        inject(&before, cluster, steps, jumpbox, transcript).await?;
        if before.iter().any(|f| f.action == faults::Action::Skip) {
            transcript.push(Entry::done(
                &step.name,
                Host::Node(node.host().to_owned()),
                format!("# skipped by the scenario: {}", step.command),
                Duration::ZERO,
            ));
            continue;
        }
        let entries = steps::run_on(step, &nodes, jumpbox).await?;
        let mut failed_on: Vec<String> = Vec::new();
        for entry in entries.iter().filter(|e| !e.succeeded()) {
            match &entry.host {
                Host::Node(host) => failed_on.push(host.clone()),
                Host::Jumpbox => failed_on.extend(nodes.iter().map(|n| n.host().to_owned())),
            }
        }
        for entry in entries {
            transcript.push(entry);
        }
        if !failed_on.is_empty() {
            let last = std::ptr::eq(step, steps.last().unwrap_or(step));
            return Ok(Bootstrapped {
                ran_all: last,
                failed_on,
            });
        }
        let after: Vec<&Fault> = scenario.faults.iter().filter(|f| f.after(step)).collect();
        inject(&after, cluster, steps, jumpbox, transcript).await?;
    }
    Ok(Bootstrapped {
        ran_all: true,
        failed_on: Vec::new(),
    })
}

/// Injects `faults` in order, each on the node it names.
async fn inject(
    faults: &[&Fault],
    cluster: &Cluster,
    steps: &[steps::Step],
    jumpbox: &Path,
    transcript: &mut Transcript,
) -> Result<(), RunError> {
    for fault in faults {
        faults::apply(
            &fault.action,
            fault.on.as_deref(),
            cluster,
            steps,
            jumpbox,
            transcript,
        )
        .await?;
    }
    Ok(())
}

/// Waits for etcd.service to be active; `None` when it is not. With `through_restarts` a unit in
/// `auto-restart` is waited for (a deliberate kill), else it ends the wait at once.
/// Every node's unit is watched at once; the first member's state is the one returned.
async fn observe_unit(
    nodes: &[&NodeHandle],
    through_restarts: bool,
) -> Result<Option<unit::UnitState>, RunError> {
    let states = futures_util::future::join_all(
        nodes
            .iter()
            .map(|node| unit::wait_active(node, ACTIVE_TIMEOUT, through_restarts)),
    )
    .await;
    let mut first = None;
    for state in states {
        match state {
            Ok(state) => {
                first.get_or_insert(state);
            }
            Err(UnitError::Engine(e)) => return Err(e.into()),
            Err(_) => return Ok(None),
        }
    }
    Ok(first)
}

const MARKER: (&str, &str) = (
    "/registry/configmaps/default/survivor",
    "written before the fault",
);

/// A port-forward to the member's client port and an etcd-client through it; the forward must live
/// as long as the client is used.
async fn open_client(
    node: &NodeHandle,
    member: &ExpectedMember,
    tls: Option<&ClientTls>,
) -> Result<(Forward, Result<etcd_client::Client, String>), RunError> {
    // The port was validated when the scenario was parsed.
    let port = member.client_port().unwrap_or(2379);
    let forward = Forward::start(node.engine(), node.id(), port).await?;
    let client = checks::connect(forward.local_addr(), tls)
        .await
        .map_err(|e| e.to_string());
    Ok((forward, client))
}

async fn write_marker(
    node: &NodeHandle,
    member: &ExpectedMember,
    tls: Option<&ClientTls>,
) -> Result<(), String> {
    let (_forward, client) = open_client(node, member, tls)
        .await
        .map_err(|e| e.to_string())?;
    client?
        .put(MARKER.0, MARKER.1, None)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn check_marker(
    node: &NodeHandle,
    member: &ExpectedMember,
    tls: Option<&ClientTls>,
    written: Result<(), String>,
) -> CheckResult {
    let read = async {
        written.map_err(|e| format!("could not write {} before the fault: {e}", MARKER.0))?;
        let (_forward, client) = open_client(node, member, tls)
            .await
            .map_err(|e| e.to_string())?;
        let got = client?
            .get(MARKER.0, None)
            .await
            .map_err(|e| e.to_string())?;
        match got.kvs().first() {
            Some(kv) if kv.value() == MARKER.1.as_bytes() => Ok(()),
            Some(_) => Err(format!("{} holds another value", MARKER.0)),
            None => Err(format!("{} is gone", MARKER.0)),
        }
    }
    .await;
    CheckResult::observed(
        "keys written before the fault survive",
        read.is_ok(),
        match read {
            Ok(()) => format!("{} still reads `{}`", MARKER.0, MARKER.1),
            Err(e) => e,
        },
        Vec::new(),
    )
}

pub(crate) async fn run_checks(
    cluster: &Cluster,
    scenario: &Scenario,
    tls: Option<&ClientTls>,
    active: Option<&unit::UnitState>,
    active_since: Instant,
    version: Option<&Version>,
) -> Result<Vec<CheckResult>, RunError> {
    let node = cluster.first();
    let member = scenario.member();
    let expect = &scenario.checks;
    let mut results = Vec::new();
    let wants_client =
        expect.member_list.is_some() || expect.health.is_some() || expect.registry.is_some();
    let (_forward, mut client) = if wants_client {
        let (forward, client) = open_client(node, member, tls).await?;
        (Some(forward), client)
    } else {
        (None, Err("not needed".to_owned()))
    };
    if let Some(want) = expect.member_list {
        let check = checks::member_list(client_ref(&mut client), want, &scenario.members);
        results.push(checks::bounded("member list", want, check).await);
    }
    if let Some(want) = expect.registry {
        let check = checks::registry(client_ref(&mut client), want);
        results.push(checks::bounded("/registry/ prefix read", want, check).await);
    }
    // The seed's commands are independent reads: run them side by side, so one that must time out
    // (etcdctl waits 5 s) does not delay the others.
    let (applicable, not): (Vec<_>, Vec<_>) = scenario
        .seed_commands
        .iter()
        .partition(|c| versions::applies(c.etcd.as_ref(), version));
    let seed = futures_util::future::join_all(
        applicable
            .into_iter()
            .map(|command| checks::seed_command(node, command, version)),
    )
    .await;
    results.extend(seed);
    results.extend(not.into_iter().map(|c| {
        CheckResult::not_applicable(&c.run, judge::not_applicable(c.etcd.as_ref(), version))
    }));
    if scenario.members.len() > 1 && expect.health == Some(Expect::Pass) {
        results.extend(across_members(cluster, scenario, tls).await?);
    }
    // Last, so the settle window spans all the work above: a unit that died meanwhile is caught.
    if let Some(want) = expect.health {
        let check = checks::health(client_ref(&mut client), want, node, active, active_since);
        results.push(checks::bounded("health", want, check).await);
    }
    let error = expect.error.as_ref().map(|e| e.for_version(version));
    for result in &mut results {
        if result.entry.is_none() {
            match error {
                Some(None) => result.details.push(format!(
                    "the scenario names no error text for etcd {}: not judged",
                    version.map_or("of unknown version".to_owned(), |v| v.to_string())
                )),
                Some(Some(texts)) => result.expect_error(texts),
                None => {}
            }
        }
    }
    Ok(results)
}

/// A cluster's checks through every member's client URL: member list from each (when the scenario
/// checks the member list), then agreement on leader, cluster and term, then a write through one
/// read through the others.
async fn across_members(
    cluster: &Cluster,
    scenario: &Scenario,
    tls: Option<&ClientTls>,
) -> Result<Vec<CheckResult>, RunError> {
    let mut forwards = Vec::new();
    let mut clients = Vec::new();
    for member in scenario
        .members
        .iter()
        .filter(|m| !scenario.expects_down(&m.host))
    {
        let node = cluster
            .node(&member.host)
            .unwrap_or_else(|| cluster.first());
        let (forward, client) = open_client(node, member, tls).await?;
        forwards.push(forward);
        clients.push((member.name.clone(), client));
    }
    let mut results = Vec::new();
    let lists = scenario.checks.member_list == Some(Expect::Pass);
    for (name, client) in clients.iter_mut().skip(1).filter(|_| lists) {
        let name = format!("member list through {name}");
        let check = checks::member_list(
            client.as_mut().map_err(|e| e.as_str()),
            Expect::Pass,
            &scenario.members,
        );
        let mut result = checks::bounded(&name, Expect::Pass, check).await;
        result.name = name;
        results.push(result);
    }
    let agrees = checks::cluster_agrees(&mut clients);
    results.push(checks::bounded("one leader, one cluster, one term", Expect::Pass, agrees).await);
    let replicated = checks::replicated(&mut clients);
    results.push(
        checks::bounded(
            "a write through one member is read through every other",
            Expect::Pass,
            replicated,
        )
        .await,
    );
    drop(forwards);
    Ok(results)
}

fn client_ref(
    client: &mut Result<etcd_client::Client, String>,
) -> Result<&mut etcd_client::Client, &str> {
    client.as_mut().map_err(|e| e.as_str())
}

/// How long journal expectations wait for lines still on their way: journald can write a line
/// after its process has exited, and systemd's verdict on a unit comes after etcd's last words
/// (measured: `status=203/EXEC` asserted before it arrived, in a loaded run).
const JOURNAL_SETTLE: Duration = Duration::from_secs(10);

/// The first member's journal, and those of members an expectation names, read until every
/// journal expectation that applies holds or [`JOURNAL_SETTLE`] has passed: the last reading is
/// what the expectations are judged on, so a line that never comes fails with what was there.
async fn settled_journals(
    cluster: &Cluster,
    node: &NodeHandle,
    scenario: &Scenario,
    since: u64,
    version: Option<&Version>,
) -> Result<Vec<(String, String)>, RunError> {
    let read = || async {
        let mut journals = Vec::new();
        for each in cluster.nodes() {
            let named = scenario
                .journal
                .iter()
                .any(|j| j.host.as_deref() == Some(each.host()));
            if each.host() == node.host() || named {
                journals.push((each.host().to_owned(), unit::journal(each, since).await?));
            }
        }
        Ok::<_, EngineError>(journals)
    };
    settled("the journal lines the scenario expects", read, |journals| {
        judge::journal(scenario, journals, version)
            .into_iter()
            .filter(|r| r.applies && !r.holds)
            .map(|r| r.name)
            .collect()
    })
    .await
}

/// Reads with `read` until `unmet` finds nothing unmet in the reading or [`JOURNAL_SETTLE`] has
/// passed, and returns the last reading: one that misses an expectation is kept, and judged, if no
/// later one meets it.
async fn settled<T, F, Fut>(
    what: &str,
    read: F,
    unmet: impl Fn(&T) -> Vec<String>,
) -> Result<T, RunError>
where
    T: Default,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, EngineError>>,
{
    let last = std::cell::RefCell::new(T::default());
    let _ = wait::poll_until(what, JOURNAL_SETTLE, Duration::from_millis(250), || async {
        let reading = read().await?;
        let missing = unmet(&reading);
        *last.borrow_mut() = reading;
        Ok::<_, EngineError>(if missing.is_empty() {
            Probe::Ready(())
        } else {
            Probe::Pending(missing.join("; "))
        })
    })
    .await?;
    Ok(last.into_inner())
}

/// Each `[[expect_unit]]` judged on the members' states, in the order of `cluster.nodes()`.
fn unit_results(
    cluster: &Cluster,
    node: &NodeHandle,
    scenario: &Scenario,
    states: &[unit::UnitState],
) -> Vec<CheckResult> {
    let state_of = |host: &str| {
        cluster
            .nodes()
            .zip(states)
            .find(|(n, _)| n.host() == host)
            .map(|(_, state)| state)
    };
    scenario
        .expect_unit
        .iter()
        .filter_map(|want| {
            let host = want.host.as_deref().unwrap_or(node.host());
            state_of(host).map(|state| judge::unit(want, host, state))
        })
        .collect()
}

/// Every member's unit state, read until every `[[expect_unit]]` holds or [`JOURNAL_SETTLE`] has
/// passed: the last reading is what is judged, so a state that never comes fails with what was.
async fn settled_states(
    cluster: &Cluster,
    node: &NodeHandle,
    scenario: &Scenario,
) -> Result<Vec<unit::UnitState>, RunError> {
    let read = || futures_util::future::try_join_all(cluster.nodes().map(unit::state));
    if scenario.expect_unit.is_empty() {
        return Ok(read().await?);
    }
    settled("the unit states the scenario expects", read, |states| {
        unit_results(cluster, node, scenario, states)
            .into_iter()
            .filter(|r| !r.holds)
            .map(|r| r.details.join("; "))
            .collect()
    })
    .await
}

/// Runs the seed's troubleshooting commands on the first member and on every member whose etcd is
/// not active, records them in the transcript, gathers every member's evidence, and diagnoses.
async fn troubleshoot(
    cluster: &Cluster,
    states: &[unit::UnitState],
    report: &mut Report,
    since: u64,
) -> Result<(), RunError> {
    let mut evidence = Vec::new();
    for (node, state) in cluster.nodes().zip(states) {
        let troubled =
            node.host() == cluster.first().host() || state.active != unit::ActiveState::Active;
        let state = Some(state.clone());
        let found = if troubled {
            diagnose::troubleshoot(node, &mut report.transcript, since, state).await?
        } else {
            let known = diagnose::Known {
                state,
                ..diagnose::Known::default()
            };
            diagnose::gather(node, "", "", since, known).await?
        };
        evidence.push(found);
    }
    // The facts a cluster's diagnosis checks its causes against: each member's own probe, side by
    // side.
    let healthy = futures_util::future::try_join_all(
        cluster
            .nodes()
            .zip(&evidence)
            .map(|(node, e)| diagnose::probe(node, e)),
    )
    .await?;
    for (e, healthy) in evidence.iter_mut().zip(healthy) {
        e.healthy = healthy;
    }
    report.diagnosis = Some(diagnose::classify_nodes(&evidence));
    Ok(())
}

/// `etcd --version`'s version line, if etcd is installed where the tutorial puts it.
async fn etcd_version(node: &NodeHandle) -> Result<Option<String>, EngineError> {
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
/// A second etcd, when the scenario names one (an upgrade, a downgrade), goes to `downloads/second/`.
fn jumpbox(
    run_dir: &RunDir,
    pki: &Pki,
    downloads: &Downloads,
    second: Option<&Downloads>,
    unit_file: Option<&Path>,
    members: &[(String, Identity)],
) -> Result<tempfile::TempDir, RunError> {
    let dir = run_dir.jumpbox()?;
    let root = dir.path();
    pki.write_to(root)?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| RunError::Jumpbox { path, source }
    };
    let mut binaries = vec![
        ("controller", &downloads.etcd),
        ("client", &downloads.etcdctl),
    ];
    if let Some(second) = second {
        binaries.extend([("second", &second.etcd), ("second", &second.etcdctl)]);
        binaries.extend(second.etcdutl.iter().map(|etcdutl| ("second", etcdutl)));
    }
    for (sub, binary) in binaries {
        let target_dir = root.join("downloads").join(sub);
        std::fs::create_dir_all(&target_dir).map_err(io(&target_dir))?;
        let name = binary.file_name().unwrap_or_default();
        std::os::unix::fs::symlink(binary, target_dir.join(name)).map_err(io(binary))?;
    }
    if let Some(unit_file) = unit_file {
        let units = root.join("units");
        std::fs::create_dir_all(&units).map_err(io(&units))?;
        std::fs::copy(unit_file, units.join("etcd.service")).map_err(io(unit_file))?;
    }
    // Each member's certificate where a cluster's steps copy it from (`nodes/{host}/`).
    for (host, identity) in members {
        let node_dir = root.join("nodes").join(host);
        std::fs::create_dir_all(&node_dir).map_err(io(&node_dir))?;
        identity.write_to(&node_dir, "kubernetes")?;
    }
    Ok(dir)
}
