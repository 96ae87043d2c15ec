//! Scenarios as data: a TOML file says which unit file and bootstrap steps to use, what etcd's member
//! list must show, and which checks and seed commands must pass or fail (and why).
//!
//! Parsing is strict (unknown keys are errors), then paths are resolved relative to the scenario file
//! and validated; every error names the file, the line and the field. Running a scenario is
//! [`crate::runner`]'s job.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::diagnose::Cause;
use crate::downloads::EtcdSource;
use crate::faults::{Action, At, Fault};
use crate::lint::{Expected, Rule};
use crate::names::by_name;
use crate::network::Subnet;
use crate::node::HOSTNAME;
use crate::pki::{ClientCert, MemberCerts, PeerCert, ServerCert};
use crate::spec::{self, line_of, SpecError, TableOrTables};
use crate::steps::{Bootstrap, StepsError};
use crate::topology::{member_id, TUTORIAL_TOKEN};
use crate::versions::{EtcdReq, Versioned};

/// Errors reading a scenario file.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read, or is not a valid scenario (syntax, unknown or missing field,
    /// wrong type).
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A field's value is well-formed but unusable.
    #[error("{file}:{line}: field `{field}`: {problem}")]
    Invalid {
        /// The scenario file.
        file: PathBuf,
        /// The 1-based line of the field.
        line: usize,
        /// The field.
        field: &'static str,
        /// What is wrong with it and what to do.
        problem: String,
    },
    /// The bootstrap steps file it names is broken.
    #[error(transparent)]
    Steps(#[from] StepsError),
}

/// Whether something is expected to succeed or to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expect {
    /// It must succeed.
    #[default]
    Pass,
    /// It must fail (and an expectation's details say how).
    Fail,
}

by_name!(Expect { "pass" => Pass, "fail" => Fail });

/// A member of the scenario's cluster — its node, and what `member list` must show for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedMember {
    /// Its node's host name (`server`, the tutorial's single node, unless the scenario says).
    pub host: String,
    /// Its node's address on the run's network, when the scenario places it.
    pub address: Option<Ipv4Addr>,
    /// The member's name (`--name`).
    pub name: String,
    /// The member ID as etcdctl prints it: the scenario's, or computed as etcd computes it; `None`
    /// for a member `etcdctl member add` adds (etcd draws its ID from the time: not checked).
    pub id: Option<String>,
    /// The peer URL.
    pub peer_url: String,
    /// The client URL; its scheme decides whether the harness's client speaks TLS.
    pub client_url: String,
}

/// `id = "assigned"`: the member joins by `etcdctl member add`, which draws its ID from the time.
pub const ASSIGNED: &str = "assigned";

/// In a seed command's `output`: the version of the etcd under test (`3.4.23`), as the run knows it.
pub const ETCD_VERSION: &str = "{etcd_version}";

/// The longest a seed command may follow (`follow_for`), in seconds: with the grace after its
/// SIGINT, it stays well inside the time any seed command is given.
pub const MAX_FOLLOW_SECS: u64 = 20;

/// `[member]` as written: the ID may be left out, and is then computed from the peer URL and the
/// cluster token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMember {
    /// The node's host name (default: `server`).
    host: Option<String>,
    /// The node's address on the run's network (default: one Docker picks).
    address: Option<String>,
    name: String,
    id: Option<String>,
    /// `--initial-cluster-token` (default: the tutorial's `etcd-cluster-0`).
    token: Option<String>,
    peer_url: String,
    client_url: String,
}

impl ExpectedMember {
    /// True when clients must use TLS (the client URL is `https://`).
    pub fn tls(&self) -> bool {
        self.client_url.starts_with("https://")
    }

    /// The client port inside the node.
    pub fn client_port(&self) -> Option<u16> {
        self.client_url
            .rsplit(':')
            .next()?
            .trim_end_matches('/')
            .parse()
            .ok()
    }
}

/// The run's network and the members' certificates.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// The subnet the run's network has (members' addresses are in its lower half); default one
    /// Docker picks — the tutorial's is `10.240.0.0/24`.
    pub subnet: Option<String>,
    /// One certificate per member, or one shared by all (`nodes/<host>/kubernetes.{crt,key}` on
    /// the jumpbox either way).
    #[serde(default)]
    pub certs: MemberCerts,
}

/// Expectations of the harness's own checks over etcd-client; a check not named is not run.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Checks {
    /// Member list over the client URL shows exactly the expected member.
    pub member_list: Option<Expect>,
    /// The unit stays active and a linearizable read is served.
    pub health: Option<Expect>,
    /// `/registry/` keys written as an API server would can be read back by prefix.
    pub registry: Option<Expect>,
    /// Text every check that must fail has to fail with (the client's error), or per version.
    pub error: Option<Versioned>,
    /// The identity the harness's client presents.
    #[serde(default)]
    pub client_cert: ClientCert,
    /// Whether the harness's client trusts the run's CA (false: it cannot verify the server).
    #[serde(default = "yes")]
    pub client_trusts_server: bool,
}

fn yes() -> bool {
    true
}

/// What a step must exit with.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExpectStep {
    /// The step, by the start of its name.
    pub step: String,
    /// The node whose run of the step this is about (default: every node it runs on).
    pub host: Option<String>,
    /// Its exit code.
    pub exit_code: i64,
    /// Text its output (stdout and stderr) must contain: one text, a list of texts any of which
    /// will do, or a table of those by etcd version.
    pub output: Option<Versioned>,
    /// The etcd versions this expectation applies to.
    pub etcd: Option<EtcdReq>,
}

/// What etcd.service's state must be at the end of the run (`systemctl show`).
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExpectUnit {
    /// The node whose unit this is (default: the first member's).
    pub host: Option<String>,
    /// `ActiveState`, as systemd spells it (`active`, `activating`, `failed`, `inactive`).
    pub active_state: Option<String>,
    /// `SubState` (`running`, `auto-restart`, `dead`, …).
    pub sub_state: Option<String>,
    /// `NRestarts`.
    pub restarts: Option<u32>,
    /// `NeedDaemonReload` (the unit file changed on disk since systemd loaded it).
    pub need_daemon_reload: Option<bool>,
}

/// A line etcd's journal (or systemd's lines about the unit) must hold during the run.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExpectJournal {
    /// Text a line must contain.
    pub contains: Option<String>,
    /// A regular expression a line must match.
    pub matches: Option<String>,
    /// The etcd versions this expectation applies to.
    pub etcd: Option<EtcdReq>,
    /// The member whose journal it is (default: the first member's).
    pub host: Option<String>,
}

/// A journal expectation, compiled: a line of node `host`'s journal (`None`: the first member's)
/// must match, for the etcd versions `etcd` names.
#[derive(Debug, Clone)]
pub struct JournalLine {
    /// What the line must hold.
    pub pattern: JournalPattern,
    /// The etcd versions it applies to.
    pub etcd: Option<EtcdReq>,
    /// The member's node.
    pub host: Option<String>,
}

/// The server-side faults of the PKI.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PkiFaults {
    /// What `kube-apiserver.crt/key` on the jumpbox are.
    #[serde(default)]
    pub server: ServerCert,
    /// Members whose certificate (`nodes/<host>/kubernetes.{crt,key}`) is wrong, and how.
    #[serde(default)]
    pub peer: Vec<PeerFault>,
}

/// One member's certificate made wrong.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PeerFault {
    /// The member, by host name.
    pub host: String,
    /// What is wrong with its certificate.
    pub cert: PeerCert,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    /// The node it is injected on (default: the first member's).
    on: Option<String>,
    before: Option<String>,
    after: Option<String>,
    run: Option<String>,
    edit_unit: Option<RawEdit>,
    skip: Option<bool>,
    hold_port: Option<u16>,
    chmod: Option<RawChmod>,
    chown: Option<RawChown>,
    reboot: Option<bool>,
    rerun_bootstrap: Option<bool>,
    steps: Option<PathBuf>,
    stop: Option<bool>,
    start: Option<bool>,
    pause: Option<bool>,
    resume: Option<bool>,
    isolate: Option<bool>,
    heal: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEdit {
    replace: String,
    with: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChmod {
    path: String,
    mode: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChown {
    path: String,
    owner: String,
}

impl RawFault {
    /// The one action this fault names, or the names of all it names (an error unless exactly one).
    /// A steps file is read relative to `dir`.
    fn action(self, dir: &Path) -> Result<Action, FaultProblem> {
        let mut actions: Vec<(&'static str, Action)> = Vec::new();
        if let Some(file) = self.steps {
            let steps = Bootstrap::load(&dir.join(file)).map_err(FaultProblem::Steps)?;
            actions.push(("steps", Action::Steps(steps)));
        }
        if let Some(script) = self.run {
            actions.push(("run", Action::Run(script)));
        }
        if let Some(edit) = self.edit_unit {
            actions.push((
                "edit_unit",
                Action::EditUnit {
                    replace: edit.replace,
                    with: edit.with,
                },
            ));
        }
        if self.skip == Some(true) {
            actions.push(("skip", Action::Skip));
        }
        if let Some(port) = self.hold_port {
            actions.push(("hold_port", Action::HoldPort(port)));
        }
        if let Some(c) = self.chmod {
            actions.push((
                "chmod",
                Action::Chmod {
                    path: c.path,
                    mode: c.mode,
                },
            ));
        }
        if let Some(c) = self.chown {
            actions.push((
                "chown",
                Action::Chown {
                    path: c.path,
                    owner: c.owner,
                },
            ));
        }
        if self.reboot == Some(true) {
            actions.push(("reboot", Action::Reboot));
        }
        if self.rerun_bootstrap == Some(true) {
            actions.push(("rerun_bootstrap", Action::RerunBootstrap));
        }
        for (name, given, action) in [
            ("stop", self.stop, Action::Stop),
            ("start", self.start, Action::Start),
            ("pause", self.pause, Action::Pause),
            ("resume", self.resume, Action::Resume),
            ("isolate", self.isolate, Action::Isolate),
            ("heal", self.heal, Action::Heal),
        ] {
            if given == Some(true) {
                actions.push((name, action));
            }
        }
        if actions.len() == 1 {
            Ok(actions.remove(0).1)
        } else {
            Err(FaultProblem::Actions(
                actions.into_iter().map(|(name, _)| name).collect(),
            ))
        }
    }
}

/// What is wrong with a fault's action.
enum FaultProblem {
    /// Not exactly one action: the names of those given.
    Actions(Vec<&'static str>),
    /// Its steps file cannot be used.
    Steps(StepsError),
}

/// One of the seed's commands, run verbatim in the node, with what it must print.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SeedCommand {
    /// The command text exactly as the seed writes it.
    pub run: String,
    /// Whether it must succeed (exit 0) or fail.
    #[serde(default)]
    pub expect: Expect,
    /// Lines it must print (stdout and stderr together), in order, as the seed shows them; `{*}`
    /// stands for any text (a latency, say).
    #[serde(default)]
    pub output: Vec<String>,
    /// For an expected failure: text its output must contain.
    #[serde(default)]
    pub error: Option<String>,
    /// For an expected failure: the cause the diagnosis must name.
    #[serde(default)]
    pub cause: Option<Cause>,
    /// The etcd versions this command's expectation applies to.
    #[serde(default)]
    pub etcd: Option<EtcdReq>,
    /// For a command that follows (`journalctl -f`): the seconds it runs before the harness stops
    /// it with SIGINT, as a reader's Ctrl-C does. It must still be running then.
    #[serde(default)]
    pub follow_for: Option<u64>,
    /// For a command that follows: a command run in the node once it has printed its backlog, so
    /// that what it logs is printed by following.
    #[serde(default)]
    pub meanwhile: Option<String>,
}

impl SeedCommand {
    /// How long it follows before it is stopped, if it follows.
    pub fn follow(&self) -> Option<std::time::Duration> {
        self.follow_for.map(std::time::Duration::from_secs)
    }

    /// What is wrong with the command's table, as its field and the problem.
    fn problem(&self) -> Option<(&'static str, String)> {
        if self.expect == Expect::Pass {
            let described = [
                ("seed_command.error", self.error.is_some()),
                ("seed_command.cause", self.cause.is_some()),
            ];
            if let Some((field, _)) = described.into_iter().find(|(_, present)| *present) {
                return Some((
                    field,
                    "describes a failure, but this command has expect = \"pass\"".into(),
                ));
            }
        }
        if let Some(placeholder) = self.output.iter().find_map(|l| unknown_placeholder(l)) {
            return Some((
                "seed_command.output",
                format!(
                    "`{placeholder}` is no placeholder: `{{*}}` stands for any text, \
                     `{ETCD_VERSION}` for the version under test"
                ),
            ));
        }
        match (self.follow_for, &self.meanwhile) {
            (Some(secs), _) if !(1..=MAX_FOLLOW_SECS).contains(&secs) => Some((
                "seed_command.follow_for",
                format!("{secs} s: a command may follow for 1 to {MAX_FOLLOW_SECS} seconds"),
            )),
            (Some(_), _) if self.expect == Expect::Fail => Some((
                "seed_command.follow_for",
                "a command that follows is stopped, not failed: it must have expect = \"pass\""
                    .into(),
            )),
            (None, Some(_)) => Some((
                "seed_command.meanwhile",
                "runs while a command follows: give `follow_for` too".into(),
            )),
            _ => None,
        }
    }
}

/// The first `{name}` in an expected output line that is not a known placeholder (`{*}` and JSON
/// braces are not names).
fn unknown_placeholder(line: &str) -> Option<&str> {
    line.match_indices('{').find_map(|(open, _)| {
        let after = &line[open + 1..];
        let name_len = after.find(|c: char| !(c.is_ascii_lowercase() || c == '_'))?;
        if name_len == 0 || !after[name_len..].starts_with('}') {
            return None;
        }
        let placeholder = &line[open..open + name_len + 2];
        (placeholder != ETCD_VERSION).then_some(placeholder)
    })
}

/// Whether a fix repairs the failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repairs {
    /// Once it is applied, a healthy bootstrap's checks pass.
    Repairs,
    /// Once it is applied, a healthy bootstrap's checks still fail.
    DoesNotRepair,
}

by_name!(Repairs { "repairs" => Repairs, "does-not-repair" => DoesNotRepair });

/// `[fix]`: the scenario proves the fix of its diagnosis — applied after the failure, then a
/// healthy bootstrap's checks must pass — or says why no fix applies.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FixSpec {
    /// The seed's own fix for the cause, applied first: whether it repairs the failure.
    pub seed: Option<Repairs>,
    /// The first member's name in member list after the fix, where the fix changes it (a unit
    /// edit that takes effect at last); default the `[member]`'s.
    pub name: Option<String>,
    /// Why no fix applies (nothing fails: etcd only warns, say); nothing is applied.
    pub none: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    description: String,
    #[serde(default)]
    etcd: Option<EtcdReq>,
    #[serde(default)]
    second_etcd: Option<Spanned<String>>,
    #[serde(default)]
    unit: Option<Spanned<PathBuf>>,
    #[serde(default = "default_steps")]
    steps: Spanned<PathBuf>,
    /// `[member]` for the single node, or `[[member]]` once per member of a cluster.
    member: Spanned<TableOrTables<RawMember>>,
    #[serde(default)]
    network: NetworkSpec,
    #[serde(default)]
    checks: Checks,
    #[serde(default)]
    seed_command: Vec<Spanned<SeedCommand>>,
    #[serde(default)]
    pki: PkiFaults,
    #[serde(default)]
    fault: Vec<Spanned<RawFault>>,
    #[serde(default)]
    expect_step: Vec<Spanned<ExpectStep>>,
    #[serde(default)]
    expect_unit: TableOrTables<ExpectUnit>,
    #[serde(default)]
    journal: Vec<Spanned<ExpectJournal>>,
    diagnosis: Option<Cause>,
    #[serde(default)]
    keys_survive: bool,
    #[serde(default)]
    lint: RawLint,
    fix: Option<Spanned<FixSpec>>,
}

/// `[lint]`: the findings of the pre-flight lint the scenario reproduces on purpose.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLint {
    expect: Option<Spanned<Vec<Rule>>>,
}

fn default_steps() -> Spanned<PathBuf> {
    Spanned::new(0..0, PathBuf::from("steps/seed.toml"))
}

/// A parsed and validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Its name: the file's stem.
    pub name: String,
    /// The file it came from.
    pub file: PathBuf,
    /// One line saying what it shows.
    pub description: String,
    /// The etcd versions the scenario applies to (all when `None`).
    pub etcd: Option<EtcdReq>,
    /// A second etcd the scenario's steps switch to (an upgrade or a downgrade), laid out on the
    /// jumpbox as `downloads/second/`.
    pub second_etcd: Option<EtcdSource>,
    /// The unit file the jumpbox holds as `units/etcd.service` (a cluster's steps may write the
    /// unit on each node instead).
    pub unit_file: Option<PathBuf>,
    /// The bootstrap's steps.
    pub bootstrap: Bootstrap,
    /// The cluster's members, in the file's order; the tutorial's single node is a cluster of one.
    pub members: Vec<ExpectedMember>,
    /// The run's network's subnet (`None`: one the engine picks).
    pub network: Option<Subnet>,
    /// Whose certificates the members present.
    pub certs: MemberCerts,
    /// Expectations of the harness's checks.
    pub checks: Checks,
    /// The seed's commands to run verbatim, in order.
    pub seed_commands: Vec<SeedCommand>,
    /// Faulty certificate material.
    pub pki: PkiFaults,
    /// Faults to inject, in file order.
    pub faults: Vec<Fault>,
    /// Exit codes steps must have (a step not named must exit 0).
    pub expect_steps: Vec<ExpectStep>,
    /// etcd.service's state at the end.
    pub expect_unit: Vec<ExpectUnit>,
    /// Journal lines that must appear, each for the etcd versions it names.
    pub journal: Vec<JournalLine>,
    /// The cause the diagnosis of the run must name.
    pub diagnosis: Option<Cause>,
    /// Keys written once etcd is up must still be there at the end.
    pub keys_survive: bool,
    /// The pre-flight lint's findings it reproduces on purpose (`[lint] expect`).
    pub lint: Expected,
    /// Whether the run proves the fix of its diagnosis (`[fix]`), and how.
    pub fix: Option<FixSpec>,
}

impl Scenario {
    /// The first member: the tutorial's single node, or the member a cluster's faults and
    /// troubleshooting address until they can name another.
    pub fn member(&self) -> &ExpectedMember {
        &self.members[0]
    }

    /// True when the scenario expects the unit on node `host` to end other than active (a member
    /// stopped on purpose).
    pub fn expects_down(&self, host: &str) -> bool {
        self.expect_unit.iter().any(|e| {
            e.host.as_deref() == Some(host)
                && e.active_state.as_deref().is_some_and(|s| s != "active")
        })
    }

    /// Each member's host and address, as the PKI names them in certificates.
    pub fn member_names(&self) -> Vec<crate::pki::MemberName> {
        self.members
            .iter()
            .map(|m| crate::pki::MemberName {
                host: m.host.clone(),
                address: m.address.map(|a| a.to_string()).unwrap_or_default(),
            })
            .collect()
    }

    /// The members whose certificate `[[pki.peer]]` makes wrong, and how.
    pub fn peer_faults(&self) -> Vec<(String, PeerCert)> {
        self.pki
            .peer
            .iter()
            .map(|f| (f.host.clone(), f.cert))
            .collect()
    }

    /// The expectations of a healthy bootstrap, to judge a fix by: every check passes through the
    /// scenario's members (the first named `name` when given), every member is up, and each seed
    /// command that had to fail now succeeds — changed by `retry` when the fix is the client's.
    pub fn healthy(&self, retry: Option<&crate::fix::FixStep>, name: Option<&str>) -> Self {
        let mut healthy = self.clone();
        healthy.checks = Checks {
            member_list: Some(Expect::Pass),
            health: Some(Expect::Pass),
            registry: Some(Expect::Pass),
            client_trusts_server: true,
            ..Checks::default()
        };
        if let (Some(name), Some(first)) = (name, healthy.members.first_mut()) {
            first.name = name.to_owned();
        }
        healthy.seed_commands = self
            .seed_commands
            .iter()
            .filter(|c| c.expect == Expect::Fail)
            .map(|c| SeedCommand {
                run: match retry {
                    Some(step) if c.run.contains("etcdctl") => step.rewrite(&c.run),
                    _ => c.run.clone(),
                },
                expect: Expect::Pass,
                output: Vec::new(),
                error: None,
                cause: None,
                ..c.clone()
            })
            .collect();
        healthy.expect_unit = Vec::new();
        healthy.expect_steps = Vec::new();
        healthy.journal = Vec::new();
        healthy.diagnosis = None;
        healthy.keys_survive = false;
        healthy
    }

    /// Every step the scenario runs: the bootstrap's, then those of steps files its faults run.
    pub fn all_steps(&self) -> impl Iterator<Item = &crate::steps::Step> {
        self.bootstrap
            .steps
            .iter()
            .chain(self.faults.iter().flat_map(|f| match &f.action {
                Action::Steps(more) => more.steps.as_slice(),
                _ => &[],
            }))
    }
}

/// A journal expectation, compiled.
#[derive(Debug, Clone)]
pub enum JournalPattern {
    /// A line contains this text.
    Contains(String),
    /// A line matches this expression.
    Matches(regex::Regex),
}

impl JournalPattern {
    /// True when some line of `journal`, as etcd rendered it or as text ([`crate::etcdlog`]),
    /// satisfies the pattern.
    pub fn found_in(&self, journal: &str) -> bool {
        crate::etcdlog::lines(journal).any(|(raw, readable)| {
            [raw, readable.as_ref()].iter().any(|line| match self {
                Self::Contains(text) => line.contains(text.as_str()),
                Self::Matches(re) => re.is_match(line),
            })
        })
    }
}

impl std::fmt::Display for JournalPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Contains(text) => write!(f, "a journal line contains `{text}`"),
            Self::Matches(re) => write!(f, "a journal line matches /{re}/"),
        }
    }
}

impl Scenario {
    /// Reads, parses and validates the scenario file at `file`.
    pub fn load(file: &Path) -> Result<Self, ScenarioError> {
        Self::parse(file, &spec::read(file, "scenario")?)
    }

    /// Parses and validates scenario `text`, read from `file` (paths resolve against its directory).
    pub fn parse(file: &Path, text: &str) -> Result<Self, ScenarioError> {
        let raw: RawScenario = spec::parse(file, text)?;
        let invalid =
            |span: std::ops::Range<usize>, field, problem: String| ScenarioError::Invalid {
                file: file.to_owned(),
                line: line_of(text, span.start),
                field,
                problem,
            };
        let dir = file.parent().unwrap_or(Path::new("."));
        let unit_file = match &raw.unit {
            Some(unit) => {
                let unit_file = dir.join(unit.get_ref());
                if !unit_file.is_file() {
                    return Err(invalid(
                        unit.span(),
                        "unit",
                        format!(
                            "no unit file at {} (paths are relative to the scenario file)",
                            unit_file.display()
                        ),
                    ));
                }
                Some(unit_file)
            }
            None => None,
        };
        let steps_file = dir.join(raw.steps.get_ref());
        // A scenario written outside scenarios/ that names no steps file gets the seed's.
        let built_in = raw.steps.span() == (0..0) && !steps_file.is_file();
        if !built_in && !steps_file.is_file() {
            return Err(invalid(
                raw.steps.span(),
                "steps",
                format!(
                    "no steps file at {} (paths are relative to the scenario file)",
                    steps_file.display()
                ),
            ));
        }
        let member_span = raw.member.span();
        let raw_members = raw.member.into_inner().0;
        let network = match &raw.network.subnet {
            Some(text) => Some(
                Subnet::parse(text)
                    .map_err(|e| invalid(member_span.clone(), "network.subnet", e.to_string()))?,
            ),
            None => None,
        };
        let several = raw_members.len() > 1;
        let mut members: Vec<ExpectedMember> = Vec::new();
        for member in raw_members {
            let field = |name: &str| -> &'static str {
                match name {
                    "host" => "member.host",
                    "address" => "member.address",
                    "id" => "member.id",
                    _ => "member.client_url",
                }
            };
            let host = match member.host {
                Some(host) => host,
                None if several => {
                    return Err(invalid(
                        member_span,
                        field("host"),
                        format!(
                            "member `{}` of a cluster needs its node's host name",
                            member.name
                        ),
                    ))
                }
                None => HOSTNAME.to_owned(),
            };
            if members
                .iter()
                .any(|m| m.host == host || m.name == member.name)
            {
                return Err(invalid(
                    member_span,
                    field("host"),
                    format!("two members share host `{host}` or name `{}`", member.name),
                ));
            }
            let address = match member.address {
                Some(text) => {
                    let address: Ipv4Addr = text.parse().map_err(|_| {
                        invalid(
                            member_span.clone(),
                            field("address"),
                            format!("`{text}` is not an IPv4 address"),
                        )
                    })?;
                    let Some(subnet) = network else {
                        return Err(invalid(
                            member_span,
                            field("address"),
                            "a member's address needs `[network] subnet`".into(),
                        ));
                    };
                    if !subnet.holds_member(address) {
                        return Err(invalid(
                            member_span,
                            field("address"),
                            format!("{address} is not in the lower half of {subnet}, where members live"),
                        ));
                    }
                    Some(address)
                }
                None => None,
            };
            let token = member.token.as_deref().unwrap_or(TUTORIAL_TOKEN);
            let id = member
                .id
                .unwrap_or_else(|| member_id(&[&member.peer_url], token));
            let assigned = id == ASSIGNED;
            if !assigned
                && (id.is_empty() || id.len() > 16 || !id.chars().all(|c| c.is_ascii_hexdigit()))
            {
                return Err(invalid(
                    member_span,
                    field("id"),
                    format!(
                        "`{id}` is not a member ID as etcdctl prints it (up to 16 hex digits), \
                         nor `{ASSIGNED}` (a member `etcdctl member add` adds)"
                    ),
                ));
            }
            let member = ExpectedMember {
                host,
                address,
                name: member.name,
                id: (!assigned).then_some(id),
                peer_url: member.peer_url,
                client_url: member.client_url,
            };
            if member.client_port().is_none() {
                return Err(invalid(
                    member_span,
                    field("client_url"),
                    format!(
                        "`{}` has no port (expected e.g. https://127.0.0.1:2379)",
                        member.client_url
                    ),
                ));
            }
            members.push(member);
        }
        let mut seed_commands = Vec::new();
        for spanned in raw.seed_command {
            let span = spanned.span();
            let command = spanned.into_inner();
            if let Some((field, problem)) = command.problem() {
                return Err(invalid(span, field, problem));
            }
            seed_commands.push(command);
        }
        let second_etcd = match raw.second_etcd {
            Some(spanned) => Some(
                EtcdSource::parse(spanned.get_ref())
                    .map_err(|e| invalid(spanned.span(), "second_etcd", e.to_string()))?,
            ),
            None => None,
        };
        let bootstrap = if built_in {
            Bootstrap::seed()?
        } else {
            Bootstrap::load(&steps_file)?
        };
        let step_named = |prefix: &str| bootstrap.steps.iter().any(|s| s.name.starts_with(prefix));
        // A host a field names must be a member's.
        let a_member = |span: std::ops::Range<usize>, field, host: Option<&str>| match host {
            Some(host) if !members.iter().any(|m| m.host == host) => Err(invalid(
                span,
                field,
                format!("`{host}` is no member's host"),
            )),
            _ => Ok(()),
        };
        let mut faults = Vec::new();
        for spanned in raw.fault {
            let span = spanned.span();
            let mut fault = spanned.into_inner();
            let on = fault.on.take();
            a_member(span.clone(), "fault.on", on.as_deref())?;
            let at = match (fault.before.clone(), fault.after.clone()) {
                (Some(step), None) => At::Before(step),
                (None, Some(point)) if point == "ready" => At::Ready,
                (None, Some(step)) => At::After(step),
                _ => return Err(invalid(
                    span,
                    "fault.before",
                    "give exactly one of `before = \"<step>\"` or `after = \"<step>\"|\"ready\"`"
                        .into(),
                )),
            };
            if let At::Before(step) | At::After(step) = &at {
                if !step_named(step) {
                    return Err(invalid(
                        span,
                        if fault.before.is_some() {
                            "fault.before"
                        } else {
                            "fault.after"
                        },
                        format!(
                            "no step of {} starts with `{step}`",
                            bootstrap.file.display()
                        ),
                    ));
                }
            }
            let action = fault.action(dir).map_err(|problem| match problem {
                FaultProblem::Steps(e) => ScenarioError::Steps(e),
                FaultProblem::Actions(named) => invalid(
                    span.clone(),
                    "fault",
                    format!(
                        "name exactly one action (run, edit_unit, skip, hold_port, chmod, chown, \
                         reboot, rerun_bootstrap, steps, stop, start, pause, resume, isolate, \
                         heal); found {}",
                        if named.is_empty() {
                            "none".to_owned()
                        } else {
                            named.join(", ")
                        }
                    ),
                ),
            })?;
            if action == Action::Skip && !matches!(at, At::Before(_)) {
                return Err(invalid(
                    span,
                    "fault.skip",
                    "`skip` goes with `before = \"<step>\"`".into(),
                ));
            }
            faults.push(Fault { at, on, action });
        }
        // Every node a step names is a member's.
        let fault_steps = faults.iter().flat_map(|f: &Fault| match &f.action {
            Action::Steps(more) => more.steps.as_slice(),
            _ => &[],
        });
        for step in bootstrap.steps.iter().chain(fault_steps) {
            for host in step.hosts() {
                if !members.iter().any(|m| m.host == host) {
                    let hosts: Vec<&str> = members.iter().map(|m| m.host.as_str()).collect();
                    return Err(invalid(
                        member_span,
                        "member.host",
                        format!(
                            "step `{}` runs on `{host}`, which is no member's host (members: {})",
                            step.name,
                            hosts.join(", ")
                        ),
                    ));
                }
            }
        }
        for fault in &raw.pki.peer {
            a_member(member_span.clone(), "pki.peer.host", Some(&fault.host))?;
        }
        let expect_unit = raw.expect_unit.0;
        for want in &expect_unit {
            a_member(
                member_span.clone(),
                "expect_unit.host",
                want.host.as_deref(),
            )?;
        }
        let mut expect_steps = Vec::new();
        for spanned in raw.expect_step {
            let span = spanned.span();
            let expect = spanned.into_inner();
            a_member(span.clone(), "expect_step.host", expect.host.as_deref())?;
            let in_faults = faults.iter().any(|f: &Fault| match &f.action {
                Action::Steps(more) => more.steps.iter().any(|s| s.name.starts_with(&expect.step)),
                _ => false,
            });
            if !step_named(&expect.step) && !in_faults {
                return Err(invalid(
                    span,
                    "expect_step.step",
                    format!(
                        "no step of {} starts with `{}`",
                        bootstrap.file.display(),
                        expect.step
                    ),
                ));
            }
            expect_steps.push(expect);
        }
        let mut journal = Vec::new();
        for spanned in raw.journal {
            let span = spanned.span();
            let want = spanned.into_inner();
            a_member(span.clone(), "journal.host", want.host.as_deref())?;
            let pattern = match (want.contains, want.matches) {
                (Some(text), None) => JournalPattern::Contains(text),
                (None, Some(expr)) => JournalPattern::Matches(
                    regex::Regex::new(&expr)
                        .map_err(|e| invalid(span.clone(), "journal.matches", e.to_string()))?,
                ),
                _ => {
                    return Err(invalid(
                        span,
                        "journal",
                        "give exactly one of `contains` or `matches`".into(),
                    ))
                }
            };
            journal.push(JournalLine {
                pattern,
                etcd: want.etcd,
                host: want.host,
            });
        }
        let fix = match raw.fix {
            Some(spanned) => {
                let span = spanned.span();
                let fix = spanned.into_inner();
                if fix.none.is_some() && (fix.seed.is_some() || fix.name.is_some()) {
                    return Err(invalid(
                        span,
                        "fix.none",
                        "says no fix applies, so `seed` and `name` have nothing to describe: \
                         give `none` alone"
                            .into(),
                    ));
                }
                Some(fix)
            }
            None => None,
        };
        Ok(Self {
            fix,
            name: file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            file: file.to_owned(),
            description: raw.description,
            etcd: raw.etcd,
            second_etcd,
            unit_file,
            bootstrap,
            members,
            network,
            certs: raw.network.certs,
            checks: raw.checks,
            seed_commands,
            pki: raw.pki,
            faults,
            expect_steps,
            expect_unit,
            journal,
            diagnosis: raw.diagnosis,
            keys_survive: raw.keys_survive,
            lint: raw
                .lint
                .expect
                .map_or_else(Expected::default, |expect| Expected {
                    line: line_of(text, expect.span().start),
                    rules: expect.into_inner(),
                }),
        })
    }
}

/// The scenario files of `dir` (`*.toml`, not descending), sorted by name.
pub fn discover(dir: &Path) -> Result<Vec<PathBuf>, ScenarioError> {
    let read = |source| SpecError::Read {
        kind: "scenarios directory",
        file: dir.to_owned(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every catalogue scenario that diagnoses a cause proves its fix (or says why none applies),
    /// and says whether the seed's own fix repairs it wherever the seed gives one.
    #[test]
    fn every_diagnosed_catalogue_scenario_proves_its_fix() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut proven = 0;
        for file in discover(&dir).unwrap() {
            let scenario = Scenario::load(&file).unwrap_or_else(|e| panic!("{e}"));
            let name = &scenario.name;
            let cause = scenario
                .diagnosis
                .or_else(|| scenario.seed_commands.iter().find_map(|c| c.cause));
            let Some(cause) = cause else {
                continue;
            };
            let fix = scenario.fix.as_ref().unwrap_or_else(|| {
                panic!("{name} diagnoses `{cause}`: it must prove its fix with [fix]")
            });
            if fix.none.is_none() {
                let seed_gives_one = crate::fix::seed_fix(cause, "server").is_some();
                assert_eq!(
                    fix.seed.is_some(),
                    seed_gives_one,
                    "{name}: [fix] seed must say whether the seed's own fix repairs `{cause}` \
                     exactly where the seed gives one"
                );
                proven += 1;
            }
        }
        assert!(proven >= 26, "{proven} scenarios prove a fix");
    }

    #[test]
    fn a_fix_that_applies_none_describes_nothing_else() {
        let err = error_of(&format!(
            "{GOOD}\n[fix]\nnone = \"nothing fails\"\nseed = \"repairs\"\n"
        ));
        assert!(err.contains("case.toml:"), "{err}");
        assert!(err.contains("field `fix.none`"), "{err}");
        let err = error_of(&format!("{GOOD}\n[fix]\nseed = \"works\"\n"));
        assert!(err.contains("repairs"), "{err}");
    }

    const GOOD: &str = r#"description = "d"
unit = "unit.service"
steps = "steps.toml"

[member]
name = "controller"
id = "6702b0a34e2cfd39"
peer_url = "http://127.0.0.1:2380"
client_url = "https://127.0.0.1:2379"

[[seed_command]]
run = "etcdctl member list"
expect = "fail"
error = "context deadline exceeded"
cause = "tls-plain-http"
"#;

    /// A directory with a unit file and a steps file, and a scenario path inside it.
    fn fixture() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("unit.service"), "[Service]\n").unwrap();
        std::fs::write(
            dir.path().join("steps.toml"),
            "description = \"s\"\n[[step]]\nname = \"n\"\non = \"server\"\nrun = \"true\"\n",
        )
        .unwrap();
        let file = dir.path().join("case.toml");
        (dir, file)
    }

    fn error_of(text: &str) -> String {
        let (_dir, file) = fixture();
        Scenario::parse(&file, text).unwrap_err().to_string()
    }

    #[test]
    fn a_valid_scenario_parses_with_its_name_paths_and_expectations() {
        let (dir, file) = fixture();
        let scenario = Scenario::parse(&file, GOOD).unwrap();
        assert_eq!(scenario.name, "case");
        assert_eq!(scenario.unit_file, Some(dir.path().join("unit.service")));
        assert!(scenario.member().tls());
        assert_eq!(scenario.member().client_port(), Some(2379));
        assert_eq!(scenario.checks.member_list, None);
        assert_eq!(scenario.seed_commands[0].cause, Some(Cause::TlsPlainHttp));
        assert_eq!(scenario.bootstrap.steps.len(), 1);
    }

    #[test]
    fn an_unknown_key_names_file_line_and_field() {
        let text = GOOD.replace("peer_url", "peer_ulr");
        let err = error_of(&text);
        assert!(err.contains("case.toml:8:"), "{err}");
        assert!(err.contains("unknown field `peer_ulr`"), "{err}");
    }

    #[test]
    fn a_missing_field_is_named() {
        let err = error_of(&GOOD.replace("description = \"d\"\n", ""));
        assert!(err.contains("missing field `description`"), "{err}");
    }

    #[test]
    fn a_bad_expectation_value_names_its_line() {
        let err = error_of(&GOOD.replace("expect = \"fail\"", "expect = \"maybe\""));
        assert!(err.contains("case.toml:13:"), "{err}");
        assert!(err.contains("maybe"), "{err}");
    }

    #[test]
    fn a_value_of_the_wrong_type_names_the_field_and_the_accepted_values() {
        let err = error_of(&format!("{GOOD}[checks]\nhealth = true\n"));
        assert!(err.contains("field `checks.health`"), "{err}");
        assert!(err.contains("`pass` or `fail`"), "{err}");
        let err = error_of(&format!("keys_survive = \"yes\"\n{GOOD}"));
        assert!(err.contains(":1: field `keys_survive`"), "{err}");
        assert!(err.contains("(`true` or `false`)"), "{err}");
        let err = error_of(&format!("{GOOD}[pki]\nserver = 3\n"));
        assert!(err.contains("field `pki.server`"), "{err}");
        assert!(err.contains("`no-loopback-san`"), "{err}");
        let err = error_of(&format!(
            "{GOOD}[[fault]]\nafter = \"ready\"\nhold_port = \"2379\"\n"
        ));
        assert!(err.contains("field `fault.hold_port`"), "{err}");
    }

    #[test]
    fn an_unknown_cause_is_refused() {
        let err = error_of(&GOOD.replace("tls-plain-http", "gremlins"));
        assert!(err.contains("case.toml:15:"), "{err}");
        assert!(err.contains("gremlins"), "{err}");
    }

    #[test]
    fn a_missing_unit_file_names_the_field_and_the_path() {
        let err = error_of(&GOOD.replace("unit.service", "nope.service"));
        assert!(err.contains("case.toml:2: field `unit`"), "{err}");
        assert!(err.contains("nope.service"), "{err}");
    }

    #[test]
    fn a_member_id_left_out_is_computed_as_etcd_computes_it() {
        let (_dir, file) = fixture();
        let text = GOOD.replace("id = \"6702b0a34e2cfd39\"\n", "");
        assert!(!text.contains("id = "), "{text}");
        let scenario = Scenario::parse(&file, &text).unwrap();
        assert_eq!(scenario.member().id.as_deref(), Some("6702b0a34e2cfd39"));
        let text = text.replace(
            "peer_url = \"http:",
            "token = \"other\"\npeer_url = \"http:",
        );
        let scenario = Scenario::parse(&file, &text).unwrap();
        assert_eq!(
            scenario.member().id,
            Some(member_id(&["http://127.0.0.1:2380"], "other"))
        );
        let text = GOOD.replace("id = \"6702b0a34e2cfd39\"", "id = \"assigned\"");
        let scenario = Scenario::parse(&file, &text).unwrap();
        assert_eq!(
            scenario.member().id,
            None,
            "assigned by `member add`: not checked"
        );
    }

    #[test]
    fn a_malformed_member_id_is_refused() {
        let err = error_of(&GOOD.replace("6702b0a34e2cfd39", "controller-1"));
        assert!(err.contains("field `member.id`"), "{err}");
    }

    #[test]
    fn failure_details_on_a_command_that_must_pass_are_refused() {
        let err = error_of(&GOOD.replace("expect = \"fail\"\n", ""));
        assert!(err.contains("field `seed_command.error`"), "{err}");
        assert!(err.contains("case.toml:11:"), "{err}");
    }

    #[test]
    fn a_command_that_follows_parses_with_its_time_what_runs_meanwhile_and_the_version() {
        let (_dir, file) = fixture();
        let text = format!(
            "{GOOD}\n[[seed_command]]\nrun = \"journalctl -u etcd -f\"\nfollow_for = 3\n\
             meanwhile = \"etcdctl defrag\"\noutput = [\"etcd {ETCD_VERSION}: {{*}}\", \
             '{{\"level\":\"info\"}}']\n"
        );
        let scenario = Scenario::parse(&file, &text).unwrap();
        let follower = &scenario.seed_commands[1];
        assert_eq!(follower.follow(), Some(std::time::Duration::from_secs(3)));
        assert_eq!(follower.meanwhile.as_deref(), Some("etcdctl defrag"));
        assert_eq!(
            scenario.seed_commands[0].follow(),
            None,
            "others run to exit"
        );
    }

    #[test]
    fn an_unknown_placeholder_in_a_commands_output_is_refused() {
        let err = error_of(&format!(
            "{GOOD}\n[[seed_command]]\nrun = \"etcd --version\"\noutput = [\"{{etcd_verison}}\"]\n"
        ));
        assert!(
            err.contains("case.toml:17: field `seed_command.output`"),
            "{err}"
        );
        assert!(err.contains("`{etcd_verison}` is no placeholder"), "{err}");
        assert_eq!(
            unknown_placeholder("a {*} b {\"k\":1} {} {etcd_version}"),
            None
        );
        assert_eq!(unknown_placeholder("{*}{x_y}"), Some("{x_y}"));
    }

    #[test]
    fn following_too_long_following_a_failure_and_meanwhile_without_following_are_refused() {
        let with = |table: &str| {
            error_of(&format!(
                "{GOOD}\n[[seed_command]]\nrun = \"journalctl -u etcd -f\"\n{table}\n"
            ))
        };
        for secs in [0, MAX_FOLLOW_SECS + 1] {
            let err = with(&format!("follow_for = {secs}"));
            assert!(err.contains("field `seed_command.follow_for`"), "{err}");
            assert!(err.contains("1 to 20 seconds"), "{err}");
        }
        let err = with("follow_for = 3\nexpect = \"fail\"");
        assert!(err.contains("stopped, not failed"), "{err}");
        let err = with("meanwhile = \"etcdctl defrag\"");
        assert!(
            err.contains("case.toml:17: field `seed_command.meanwhile`"),
            "{err}"
        );
        let err = with("follow_for = 3\nfollow_four = 3");
        assert!(err.contains("follow_four"), "an unknown key: {err}");
    }

    #[test]
    fn a_fault_names_a_known_step_and_exactly_one_action() {
        let with = |fault: &str| error_of(&format!("{GOOD}\n[[fault]]\n{fault}\n"));
        let none = with("before = \"n\"");
        assert!(none.contains("field `fault`"), "{none}");
        assert!(none.contains("found none"), "{none}");
        let two = with("before = \"n\"\nskip = true\nrun = \"true\"");
        assert!(two.contains("found run, skip"), "{two}");
        let unknown_step = with("after = \"Step 9\"\nrun = \"true\"");
        assert!(
            unknown_step.contains("field `fault.after`"),
            "{unknown_step}"
        );
        assert!(unknown_step.contains("no step of"), "{unknown_step}");
        let skip_after = with("after = \"n\"\nskip = true");
        assert!(skip_after.contains("field `fault.skip`"), "{skip_after}");
        let both = with("before = \"n\"\nafter = \"n\"\nrun = \"true\"");
        assert!(both.contains("exactly one of `before"), "{both}");
    }

    #[test]
    fn faults_and_expectations_parse_into_their_types() {
        let (_dir, file) = fixture();
        let text = format!(
            "{GOOD}\n[[fault]]\nafter = \"ready\"\nhold_port = 2379\n\n\
             [[expect_step]]\nstep = \"n\"\nexit_code = 1\n\n\
             [[journal]]\nmatches = \"bind: .* in use\"\n"
        );
        let scenario = Scenario::parse(&file, &text).unwrap();
        assert_eq!(
            scenario.faults,
            [Fault {
                at: At::Ready,
                on: None,
                action: Action::HoldPort(2379)
            }]
        );
        assert_eq!(scenario.expect_steps[0].exit_code, 1);
        assert!(scenario.journal[0]
            .pattern
            .found_in("listen: bind: address already in use"));
        assert!(!scenario.journal[0].pattern.found_in("listening"));
    }

    #[test]
    fn a_bad_journal_regex_names_the_field() {
        let err = error_of(&format!("{GOOD}\n[[journal]]\nmatches = \"(unclosed\"\n"));
        assert!(err.contains("field `journal.matches`"), "{err}");
    }

    #[test]
    fn lint_expectations_parse_with_their_line_and_an_unknown_id_is_refused() {
        let (_dir, file) = fixture();
        let text = format!("{GOOD}\n[lint]\nexpect = [\"url-not-in-san\", \"flag-typo\"]\n");
        let scenario = Scenario::parse(&file, &text).unwrap();
        assert_eq!(scenario.lint.rules, [Rule::UrlNotInSan, Rule::FlagTypo]);
        assert_eq!(scenario.lint.line, text.lines().count());
        let err = error_of(&format!("{GOOD}\n[lint]\nexpect = [\"gremlins\"]\n"));
        assert!(err.contains("field `lint.expect`"), "{err}");
        assert!(err.contains("`url-not-in-san`"), "{err}");
    }
}
