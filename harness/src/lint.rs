//! The pre-flight lint: what can be known about a bootstrap before any node boots. The unit as
//! systemd reads it (`systemd-analyze verify` on a copy), and the unit's etcd flags checked against
//! each other, against the files the steps copy and the directories they create, and against the
//! names in the certificates the run's PKI issues. Every finding names the file and the line, what
//! is wrong and the fix, under a stable id ([`Rule`]) that a scenario reproducing the mistake on
//! purpose states (`[lint] expect = ["url-not-in-san"]`); an expected finding that does not occur
//! is reported too, so the expectation stays true.
//!
//! It reads text and runs nothing of the bootstrap: a step's effect is read from its words (`scp`,
//! `cp`, `mv`, `mkdir`, `--data-dir`), and a unit a step writes with a heredoc is read as bash
//! would write it on each member, with `$(hostname -s)` and `$(hostname -I …)` standing for the
//! member's host name and address. What cannot be known that way is said ("not checked"), never
//! guessed. The rules are pure functions of text; only [`lint`] runs a process (systemd-analyze).

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::faults::{Action as FaultAction, At};
use crate::names::{by_name, Named};
use crate::pki::{self, MemberName};
use crate::scenario::Scenario;
use crate::steps::{Action, Bootstrap, Step, Target, EACH_HOST};

/// How long `systemd-analyze verify` may take on one unit (it takes a tenth of a second).
const VERIFY_TIMEOUT: Duration = Duration::from_secs(20);

/// What a finding is about, by the stable id scenarios and reports spell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    /// systemd ignores a line of the unit (`Missing '='`, an assignment outside a section).
    SystemdIgnoredLine,
    /// systemd does not know a key of the unit, and ignores it.
    SystemdUnknownKey,
    /// systemd does not know a section of the unit, and ignores it.
    SystemdUnknownSection,
    /// systemd cannot parse a setting's value, and ignores it.
    SystemdBadSetting,
    /// systemd refuses the unit as a whole (no `ExecStart=`, say).
    SystemdUnitInvalid,
    /// systemd-analyze is not on this host (or failed): the unit was not read as systemd reads it.
    SystemdAnalyzeUnavailable,
    /// A line ending in `\` makes the next `Key=value` line part of ExecStart, silently.
    ContinuationSwallowsKey,
    /// A flag etcd does not define, a spelling or two away from one it does.
    FlagTypo,
    /// A certificate or key the unit names is not where the steps copy it.
    CertFileNotCopied,
    /// The steps copy a certificate or key that neither the unit nor any step uses.
    CertCopiedUnused,
    /// An https URL without the certificate and key etcd needs to serve it.
    HttpsWithoutCert,
    /// A certificate given while every URL it would serve is plain http.
    CertWithoutHttps,
    /// A URL's host is not among the names of the certificate served on it.
    UrlNotInSan,
    /// `--name` is not a key of `--initial-cluster`.
    NameNotInInitialCluster,
    /// An advertised URL etcd does not listen on.
    AdvertisedNotListened,
    /// `--data-dir` is not a directory the steps create.
    DataDirNotCreated,
}

by_name!(Rule {
    "systemd-ignored-line" => SystemdIgnoredLine,
    "systemd-unknown-key" => SystemdUnknownKey,
    "systemd-unknown-section" => SystemdUnknownSection,
    "systemd-bad-setting" => SystemdBadSetting,
    "systemd-unit-invalid" => SystemdUnitInvalid,
    "systemd-analyze-unavailable" => SystemdAnalyzeUnavailable,
    "continuation-swallows-key" => ContinuationSwallowsKey,
    "flag-typo" => FlagTypo,
    "cert-file-not-copied" => CertFileNotCopied,
    "cert-copied-unused" => CertCopiedUnused,
    "https-without-cert" => HttpsWithoutCert,
    "cert-without-https" => CertWithoutHttps,
    "url-not-in-san" => UrlNotInSan,
    "name-not-in-initial-cluster" => NameNotInInitialCluster,
    "advertised-not-listened" => AdvertisedNotListened,
    "data-dir-not-created" => DataDirNotCreated,
});

impl Rule {
    /// True when an unexpected finding of this rule stops a run. Not failing: a host without
    /// systemd-analyze (the unit is merely not read), and certificates copied for nothing (a
    /// plain-http unit works; the copy says TLS was meant).
    pub fn fails(self) -> bool {
        !matches!(
            self,
            Self::SystemdAnalyzeUnavailable | Self::CertCopiedUnused
        )
    }

    /// True for what systemd-analyze reports (and cannot be judged without it).
    fn is_systemds(self) -> bool {
        matches!(
            self,
            Self::SystemdIgnoredLine
                | Self::SystemdUnknownKey
                | Self::SystemdUnknownSection
                | Self::SystemdBadSetting
                | Self::SystemdUnitInvalid
        )
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The findings a scenario expects (`[lint] expect`), and the line that says so.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// The rules expected to find something.
    pub rules: Vec<Rule>,
    /// The scenario file's line of `expect` (1-based).
    pub line: usize,
}

/// One thing found: where, what, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What kind of thing.
    pub rule: Rule,
    /// The file holding the line (the unit file, or the steps file whose step writes or copies).
    pub file: PathBuf,
    /// Its 1-based line.
    pub line: usize,
    /// The member whose unit or steps it is about, in a cluster.
    pub host: Option<String>,
    /// What is wrong, and what it does.
    pub what: String,
    /// How to fix it.
    pub fix: String,
    /// The scenario expects it.
    pub expected: bool,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}: ", self.file.display(), self.line, self.rule)?;
        if let Some(host) = &self.host {
            write!(f, "on {host}: ")?;
        }
        write!(f, "{}\n    fix: {}", self.what, self.fix)
    }
}

/// An expected finding that did not occur.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmet {
    /// The rule expected.
    pub rule: Rule,
    /// The scenario file.
    pub file: PathBuf,
    /// The line of its `[lint] expect`.
    pub line: usize,
}

impl fmt::Display for Unmet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: `[lint] expect` names {}, which the lint did not find\n    fix: remove it from \
             `expect`, or make the scenario reproduce that mistake again",
            self.file.display(),
            self.line,
            self.rule
        )
    }
}

/// What the lint found, what it expected and did not find, and what it could not check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LintReport {
    /// Every finding, expected or not.
    pub findings: Vec<Finding>,
    /// Expected findings that did not occur.
    pub unmet: Vec<Unmet>,
    /// What was not checked, and why.
    pub not_checked: Vec<String>,
}

impl LintReport {
    /// True when nothing stops a run: no unexpected failing finding, no unmet expectation.
    pub fn holds(&self) -> bool {
        self.blocking().next().is_none() && self.unmet.is_empty()
    }

    /// The unexpected findings that stop a run.
    pub fn blocking(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.rule.fails() && !f.expected)
    }
}

impl fmt::Display for LintReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in &self.findings {
            let tag = match (finding.expected, finding.rule.fails()) {
                (true, _) => "expected",
                (false, true) => "error",
                (false, false) => "warning",
            };
            writeln!(f, "  {tag}: {finding}")?;
        }
        for unmet in &self.unmet {
            writeln!(f, "  error: {unmet}")?;
        }
        for what in &self.not_checked {
            writeln!(f, "  not checked: {what}")?;
        }
        let count = |tag: fn(&Finding) -> bool| self.findings.iter().filter(|x| tag(x)).count();
        writeln!(
            f,
            "  lint: {} — {} error(s), {} warning(s), {} expected",
            if self.holds() { "PASS" } else { "FAIL" },
            self.blocking().count() + self.unmet.len(),
            count(|x| !x.expected && !x.rule.fails()),
            count(|x| x.expected),
        )
    }
}

/// Errors linting.
#[derive(Debug, thiserror::Error)]
pub enum LintError {
    /// The unit file could not be read.
    #[error("failed to read unit file {file}: {source}")]
    Read {
        /// The unit file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The unit could not be copied where systemd-analyze reads it.
    #[error("failed to copy the unit into a temporary directory for systemd-analyze: {source}")]
    Copy {
        /// The I/O error.
        source: std::io::Error,
    },
    /// The lint found what would break the bootstrap, and the scenario does not expect it.
    #[error(
        "{}: the pre-flight lint stops this run before any node boots:\n{}  (a scenario that \
         reproduces a mistake on purpose says so: [lint] expect = [\"<id>\"])",
        file.display(),
        blocking(report)
    )]
    Blocked {
        /// The scenario file.
        file: PathBuf,
        /// What the lint found.
        report: LintReport,
    },
}

fn blocking(report: &LintReport) -> String {
    let mut out = String::new();
    for finding in report.blocking() {
        out.push_str(&format!("  error: {finding}\n"));
    }
    for unmet in &report.unmet {
        out.push_str(&format!("  error: {unmet}\n"));
    }
    out
}

/// An `edit_unit` fault made before the unit starts: on which node, and the replacement.
#[derive(Debug, Clone)]
struct Edit {
    on: Option<String>,
    replace: String,
    with: String,
}

/// The names in the certificates the run's PKI issues.
#[derive(Debug, Clone)]
struct Sans {
    /// `kube-apiserver.crt`'s.
    server: Vec<String>,
    /// Each member's `nodes/<host>/kubernetes.crt`, by host.
    members: Vec<(String, Vec<String>)>,
}

/// What the lint reads: the unit file and the faults that edit it before it starts, the steps with
/// their files, the members, their certificates' names, and what the scenario expects.
pub struct LintInput<'a> {
    unit_file: Option<PathBuf>,
    edits: Vec<Edit>,
    steps: Vec<(&'a Path, &'a Step)>,
    members: Vec<MemberName>,
    sans: Sans,
    expected: Expected,
    scenario_file: PathBuf,
}

impl<'a> LintInput<'a> {
    /// A scenario's bootstrap as the run will carry it out: its unit file with the `edit_unit`
    /// faults made at a step (not those once etcd is up: they are day-2 changes), its steps less
    /// those it skips, the steps of the steps files its faults run, its PKI faults.
    pub fn scenario(scenario: &'a Scenario) -> Self {
        let skipped = |step: &Step| {
            scenario
                .faults
                .iter()
                .any(|f| f.action == FaultAction::Skip && f.before(step))
        };
        let file = scenario.bootstrap.file.as_path();
        let mut steps: Vec<(&Path, &Step)> = scenario
            .bootstrap
            .steps
            .iter()
            .filter(|s| !skipped(s))
            .map(|s| (file, s))
            .collect();
        let mut edits = Vec::new();
        for fault in &scenario.faults {
            match &fault.action {
                FaultAction::Steps(more) => {
                    steps.extend(more.steps.iter().map(|s| (more.file.as_path(), s)));
                }
                FaultAction::EditUnit { replace, with } if fault.at != At::Ready => {
                    edits.push(Edit {
                        on: fault.on.clone(),
                        replace: replace.clone(),
                        with: with.clone(),
                    });
                }
                _ => {}
            }
        }
        let members: Vec<MemberName> = scenario
            .members
            .iter()
            .map(|m| MemberName {
                host: m.host.clone(),
                address: m.address.map(|a| a.to_string()).unwrap_or_default(),
            })
            .collect();
        let faulty: Vec<(String, pki::PeerCert)> = scenario
            .pki
            .peer
            .iter()
            .map(|f| (f.host.clone(), f.cert))
            .collect();
        let member_sans = pki::member_sans(&members, scenario.certs, &faulty);
        Self {
            unit_file: scenario.unit_file.clone(),
            edits,
            steps,
            sans: Sans {
                server: pki::server_sans(scenario.pki.server),
                members: members
                    .iter()
                    .map(|m| m.host.clone())
                    .zip(member_sans)
                    .collect(),
            },
            members,
            expected: scenario.lint.clone(),
            scenario_file: scenario.file.clone(),
        }
    }

    /// A unit file on its own, with `steps`, on the tutorial's single node `server` (whose address
    /// is not known) with the PKI as issued.
    pub fn unit(unit_file: &Path, steps: &'a Bootstrap) -> Self {
        let members = vec![MemberName {
            host: crate::node::HOSTNAME.to_owned(),
            address: String::new(),
        }];
        let member_sans = pki::member_sans(&members, pki::MemberCerts::PerMember, &[]);
        Self {
            unit_file: Some(unit_file.to_owned()),
            edits: Vec::new(),
            steps: steps
                .steps
                .iter()
                .map(|s| (steps.file.as_path(), s))
                .collect(),
            sans: Sans {
                server: pki::server_sans(pki::ServerCert::Valid),
                members: members
                    .iter()
                    .map(|m| m.host.clone())
                    .zip(member_sans)
                    .collect(),
            },
            members,
            expected: Expected::default(),
            scenario_file: unit_file.to_owned(),
        }
    }
}

/// Lints `input`: every unit it installs, as systemd reads it and against the steps and the PKI.
pub async fn lint(input: &LintInput<'_>) -> Result<LintReport, LintError> {
    let facts = StepFacts::of(&input.steps);
    let mut report = LintReport {
        not_checked: facts.notes.clone(),
        ..LintReport::default()
    };
    let units = units(input, &facts, &mut report.not_checked)?;
    if units.is_empty() {
        report.not_checked.push(
            "every unit rule: no `unit =` file, and no step writes etcd.service with a heredoc"
                .into(),
        );
    }
    let mut systemd_read = true;
    for unit in &units {
        report.findings.extend(unit_findings(
            unit,
            &facts,
            &input.sans,
            &mut report.not_checked,
        ));
        if !systemd_read {
            continue;
        }
        let (findings, notes) = match verify(&unit.text).await? {
            Verified::Said(output) => systemd_findings(&output, unit),
            Verified::Unavailable(why) => {
                // Said once: every other unit would say the same.
                systemd_read = false;
                (vec![unavailable(unit, &why)], Vec::new())
            }
        };
        report.findings.extend(findings);
        report.not_checked.extend(notes);
    }
    report
        .findings
        .extend(unused_copies(&units, &facts, &input.members));
    report.findings.dedup();
    judge(
        &mut report,
        &input.expected,
        &input.scenario_file,
        systemd_read,
    );
    Ok(report)
}

/// Marks expected findings, and reports expected rules that found nothing (a systemd rule is not
/// judged when systemd-analyze could not read the unit).
fn judge(report: &mut LintReport, expected: &Expected, file: &Path, systemd_read: bool) {
    for finding in &mut report.findings {
        finding.expected = expected.rules.contains(&finding.rule);
    }
    for rule in &expected.rules {
        if report.findings.iter().any(|f| f.rule == *rule) {
            continue;
        }
        if rule.is_systemds() && !systemd_read {
            report.not_checked.push(format!(
                "the expected {rule}: systemd-analyze did not read the unit"
            ));
            continue;
        }
        report.unmet.push(Unmet {
            rule: *rule,
            file: file.to_owned(),
            line: expected.line,
        });
    }
}

// ---------------------------------------------------------------------------------------------
// The units a bootstrap installs.

/// A unit as one member's systemd will read it, and where its lines are written.
#[derive(Debug, Clone)]
struct Unit {
    /// Its text.
    text: String,
    /// The member's host.
    host: String,
    /// The file its lines are written in (the unit file, or the steps file of the step writing it).
    file: PathBuf,
    /// The file's line of each of the unit's lines (index 0: its line 1).
    lines: Vec<usize>,
    /// What a finding adds to say which text it is about ("as the scenario's fault edits it").
    how: &'static str,
}

impl Unit {
    /// The file's line of the unit's line `n` (1-based).
    fn file_line(&self, n: usize) -> usize {
        self.lines.get(n.saturating_sub(1)).copied().unwrap_or(n)
    }

    fn finding(&self, rule: Rule, line: usize, what: String, fix: String) -> Finding {
        Finding {
            rule,
            file: self.file.clone(),
            line: self.file_line(line),
            host: Some(self.host.clone()),
            what: format!("{what}{}", self.how),
            fix,
            expected: false,
        }
    }
}

/// The units `input` installs: its unit file on each member a step copies it to (with the edits
/// made there), and each unit a step writes with a heredoc, on each member the step runs on.
fn units(
    input: &LintInput<'_>,
    facts: &StepFacts,
    not_checked: &mut Vec<String>,
) -> Result<Vec<Unit>, LintError> {
    let mut units = Vec::new();
    let first = input
        .members
        .first()
        .map(|m| m.host.clone())
        .unwrap_or_default();
    if let Some(file) = &input.unit_file {
        let file = &tidy(file);
        let text = std::fs::read_to_string(file).map_err(|source| LintError::Read {
            file: file.clone(),
            source,
        })?;
        let mut hosts: Vec<String> = input
            .members
            .iter()
            .filter(|m| facts.unit_copied_to.iter().any(|to| on(to, &m.host)))
            .map(|m| m.host.clone())
            .collect();
        if hosts.is_empty() {
            hosts.push(first.clone());
        }
        for host in hosts {
            let mut text = text.clone();
            let mut edited = false;
            for edit in &input.edits {
                if edit.on.as_deref().unwrap_or(&first) == host {
                    text = text.replace(&edit.replace, &edit.with);
                    edited = true;
                }
            }
            units.push(Unit {
                lines: (1..=text.lines().count()).collect(),
                text,
                host,
                file: file.clone(),
                how: if edited {
                    " (in the unit as the scenario's `edit_unit` fault leaves it)"
                } else {
                    ""
                },
            });
        }
    }
    for written in &facts.written {
        for member in &input.members {
            if !on(&written.host, &member.host) {
                continue;
            }
            let vars: Vec<(String, String)> = written
                .heredoc
                .assignments
                .iter()
                .filter_map(|(name, value)| Some((name.clone(), assigned(value, member)?)))
                .collect();
            let (text, body_lines) = if written.heredoc.expands {
                expand(&written.heredoc.body, &vars)
            } else {
                let body = written.heredoc.body.join("\n");
                let lines = (0..written.heredoc.body.len()).collect();
                (body + "\n", lines)
            };
            let unresolved: BTreeSet<&str> = text
                .lines()
                .flat_map(|l| l.split_whitespace())
                .filter(|w| w.contains('$'))
                .collect();
            if !unresolved.is_empty() {
                not_checked.push(format!(
                    "on {}: what depends on {} in the unit step `{}` writes ({}:{}): not known \
                     before the step runs",
                    member.host,
                    unresolved.into_iter().collect::<Vec<_>>().join(" "),
                    written.step,
                    written.file.display(),
                    written.first_line
                ));
            }
            units.push(Unit {
                text,
                host: member.host.clone(),
                file: written.file.clone(),
                lines: body_lines
                    .into_iter()
                    .map(|l| written.first_line + l)
                    .collect(),
                how: "",
            });
        }
    }
    Ok(units)
}

/// `path` with each `dir/..` folded away, as people write it (`scenarios/../docker/x` is
/// `docker/x`); only the text changes.
fn tidy(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir
                if matches!(
                    out.components().next_back(),
                    Some(std::path::Component::Normal(_))
                ) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// True when something placed on `host` (`None`: on every node) is on node `node`.
fn on(host: &Option<String>, node: &str) -> bool {
    host.as_deref().is_none_or(|h| h == node)
}

// ---------------------------------------------------------------------------------------------
// What the steps do, read from their words.

/// A file a step puts on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Placement {
    /// The node (`None`: every node).
    host: Option<String>,
    /// The directory, absolute, without a trailing `/`.
    dir: String,
    /// The file's name.
    name: String,
    /// For an `scp` from the jumpbox: the jumpbox path (`nodes/{host}/kubernetes.crt`).
    from: Option<String>,
    /// The steps file and line of the command.
    file: PathBuf,
    line: usize,
}

/// A heredoc a step writes etcd.service with.
#[derive(Debug, Clone)]
struct Written {
    host: Option<String>,
    step: String,
    file: PathBuf,
    /// The steps file's line of the heredoc's first body line.
    first_line: usize,
    heredoc: Heredoc,
}

/// What the steps do, as far as their words say.
#[derive(Debug, Default)]
struct StepFacts {
    placements: Vec<Placement>,
    /// Directories created, by node (`mkdir`, a restore's `--data-dir`).
    dirs: Vec<(Option<String>, String)>,
    /// Every step's command text less heredoc bodies, by node: what else names a file.
    texts: Vec<(Option<String>, String)>,
    /// The nodes `units/etcd.service` is copied to.
    unit_copied_to: Vec<Option<String>>,
    /// Units written by heredocs.
    written: Vec<Written>,
    /// What the lint does not follow (a `sed` on the unit).
    notes: Vec<String>,
}

impl StepFacts {
    fn of(steps: &[(&Path, &Step)]) -> Self {
        let mut facts = Self::default();
        for (file, step) in steps {
            match &step.action {
                Action::Scp { sources, to, dir } => {
                    let host = (to != EACH_HOST).then(|| to.clone());
                    for source in sources {
                        if source == "units/etcd.service" {
                            facts.unit_copied_to.push(host.clone());
                        }
                        facts.placements.push(Placement {
                            host: host.clone(),
                            dir: absolute(dir),
                            name: base_name(source).to_owned(),
                            from: Some(source.clone()),
                            file: file.to_path_buf(),
                            line: step.line,
                        });
                    }
                }
                Action::Fetch { .. } => {}
                Action::Shell(script) => facts.read_script(file, step, script),
            }
        }
        facts
    }

    fn read_script(&mut self, file: &Path, step: &Step, script: &str) {
        let host = match &step.on {
            Target::Host(host) => Some(host.clone()),
            Target::Each | Target::Jumpbox => None,
        };
        let read = read_script(script);
        for command in &read.commands {
            let line = step.line + command.line;
            let args: Vec<&str> = command.words[1..]
                .iter()
                .map(String::as_str)
                .filter(|w| !w.starts_with('-') && !w.contains('$'))
                .collect();
            match command.words[0].as_str() {
                "mkdir" => self
                    .dirs
                    .extend(args.iter().map(|d| (host.clone(), absolute(d)))),
                "cp" | "mv" => {
                    for (dir, name) in copies(&args) {
                        self.placements.push(Placement {
                            host: host.clone(),
                            dir,
                            name,
                            from: None,
                            file: file.to_owned(),
                            line,
                        });
                    }
                }
                "sed" if command.words.iter().any(|w| w.ends_with("etcd.service")) => {
                    self.notes.push(format!(
                        "the `sed` of step `{}` ({}:{line}) on etcd.service: the unit is checked \
                         as first written",
                        step.name,
                        file.display()
                    ));
                }
                _ => {}
            }
        }
        self.dirs
            .extend(data_dirs(&read.text).into_iter().map(|d| (host.clone(), d)));
        self.texts.push((host.clone(), read.text));
        for heredoc in read.heredocs {
            if base_name(&heredoc.target) == "etcd.service" {
                self.written.push(Written {
                    host: host.clone(),
                    step: step.name.clone(),
                    file: file.to_owned(),
                    first_line: step.line + heredoc.first_line,
                    heredoc,
                });
            }
        }
    }

    fn placed_on<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Placement> {
        self.placements.iter().filter(move |p| on(&p.host, node))
    }
}

/// What `cp`/`mv` with arguments `args` (flags left out) put where: `(dir, name)`. With one source
/// and a target not ending in `/`, the target is a directory or the file's new name: both count.
fn copies(args: &[&str]) -> Vec<(String, String)> {
    let Some((target, sources)) = args.split_last() else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = sources
        .iter()
        .map(|s| (absolute(target), base_name(s).to_owned()))
        .collect();
    if let ([_], false) = (sources, target.ends_with('/')) {
        let path = absolute(target);
        if let Some((dir, name)) = path.rsplit_once('/') {
            out.push((
                if dir.is_empty() { "/" } else { dir }.to_owned(),
                name.to_owned(),
            ));
        }
    }
    out
}

/// Directories a command creates as etcd's data directory (`snapshot restore --data-dir …`).
fn data_dirs(text: &str) -> Vec<String> {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == '"' || c == '\'')
        .filter(|w| !w.is_empty())
        .collect();
    let mut dirs = Vec::new();
    for (i, word) in words.iter().enumerate() {
        let dir = match word.strip_prefix("--data-dir") {
            Some("") => words.get(i + 1).copied(),
            Some(rest) => rest.strip_prefix('='),
            None => None,
        };
        if let Some(dir) = dir.filter(|d| !d.contains('$')) {
            dirs.push(absolute(dir));
        }
    }
    dirs
}

/// A path as the node sees it from a step's working directory, `/root`: absolute, no trailing `/`.
fn absolute(path: &str) -> String {
    let path = path.trim_matches(|c| c == '"' || c == '\'');
    let path = match path.strip_prefix('~') {
        Some(rest) => format!("/root{rest}"),
        None if path.starts_with('/') => path.to_owned(),
        None => format!("/root/{path}"),
    };
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() { "/" } else { trimmed }
        .trim_end_matches("/.")
        .to_owned()
}

fn base_name(path: &str) -> &str {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path)
}

/// A script's simple commands (by line), its heredocs, and its text without heredoc bodies.
#[derive(Debug, Default)]
struct Script {
    commands: Vec<Command>,
    heredocs: Vec<Heredoc>,
    text: String,
}

/// One simple command: its words (quotes removed) and its line in the script (0-based).
#[derive(Debug, PartialEq, Eq)]
struct Command {
    words: Vec<String>,
    line: usize,
}

/// `cat <<EOF > target`: what it writes where, and the variables assigned before it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Heredoc {
    target: String,
    /// False for a quoted delimiter (`<<'EOF'`): bash writes the body as it is.
    expands: bool,
    body: Vec<String>,
    /// The script's line of the body's first line (0-based).
    first_line: usize,
    /// `NAME=value` lines before it, in order.
    assignments: Vec<(String, String)>,
}

/// Reads a step's shell text: simple commands split at `&&`, `||`, `;`, `|` and braces; heredocs
/// with their bodies and target.
fn read_script(script: &str) -> Script {
    let mut out = Script::default();
    let mut assignments: Vec<(String, String)> = Vec::new();
    let mut lines = script.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        out.text.push_str(line);
        out.text.push('\n');
        if let Some((name, value)) = assignment(line) {
            assignments.push((name, value));
        }
        let opener = heredoc_opener(line);
        let code = opener.as_ref().map_or(line, |o| &line[..o.at]);
        for words in simple_commands(code) {
            out.commands.push(Command { words, line: n });
        }
        let Some(opener) = opener else { continue };
        let mut body = Vec::new();
        for (_, line) in lines.by_ref() {
            if line.trim() == opener.delimiter {
                break;
            }
            body.push(line.to_owned());
        }
        if let Some(target) = opener.target {
            out.heredocs.push(Heredoc {
                target,
                expands: opener.expands,
                body,
                first_line: n + 1,
                assignments: assignments.clone(),
            });
        }
    }
    out
}

/// The simple commands of a line of shell, as words with their quotes removed: split at `&&`,
/// `||`, `;`, `|`, braces and parentheses outside quotes.
fn simple_commands(line: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_default().push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_default();
            }
            (None, c) if c.is_whitespace() || "&|;{}()".contains(c) => {
                words.extend(word.take());
                if !c.is_whitespace() && !words.is_empty() {
                    commands.push(std::mem::take(&mut words));
                }
            }
            (None, c) => word.get_or_insert_default().push(c),
        }
    }
    words.extend(word);
    if !words.is_empty() {
        commands.push(words);
    }
    commands
}

/// `NAME=value` (or `export NAME=value`) as a whole line.
fn assignment(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    let line = line.strip_prefix("export ").unwrap_or(line);
    let (name, value) = line.split_once('=')?;
    let is_name = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    is_name.then(|| (name.to_owned(), value.to_owned()))
}

/// A heredoc's start on a line: where `<<` is, the delimiter, whether the body expands, and the
/// file it is written to (`> path`, `tee path`).
struct Opener {
    at: usize,
    delimiter: String,
    expands: bool,
    target: Option<String>,
}

fn heredoc_opener(line: &str) -> Option<Opener> {
    let at = line.find("<<")?;
    let rest = line[at + 2..].trim_start_matches('-').trim_start();
    let quoted = rest.starts_with(['\'', '"']);
    let delimiter: String = rest
        .trim_start_matches(['\'', '"'])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if delimiter.is_empty() {
        return None;
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let target = words
        .iter()
        .enumerate()
        .find_map(|(i, w)| match *w {
            ">" | "tee" => words.get(i + 1).copied(),
            w if w.starts_with('>') && !w.starts_with(">>") && w.len() > 1 => Some(&w[1..]),
            _ => None,
        })
        .map(|t| t.trim_matches(|c| c == '"' || c == '\'').to_owned());
    Some(Opener {
        at,
        delimiter,
        expands: !quoted,
        target,
    })
}

/// What a step's `NAME=value` gives on `member`: `$(hostname -s)` its host name, `$(hostname -I …)`
/// its address (when the scenario places it), a literal itself; anything else is not known.
fn assigned(value: &str, member: &MemberName) -> Option<String> {
    let value = value.trim().trim_matches('"');
    if let Some(inner) = value.strip_prefix("$(").and_then(|v| v.strip_suffix(')')) {
        let mut words = inner.split_whitespace();
        if words.next() != Some("hostname") {
            return None;
        }
        return match words.next() {
            None | Some("-s") | Some("--short") => Some(member.host.clone()),
            Some("-I") | Some("-i") | Some("--all-ip-addresses") if !member.address.is_empty() => {
                Some(member.address.clone())
            }
            _ => None,
        };
    }
    let literal = !value.is_empty() && !value.contains(['$', '`', ' ', '\'', '"']);
    literal.then(|| value.to_owned())
}

/// The text bash writes for an unquoted heredoc `body`: `\\`, `\$` and `` \` `` lose their
/// backslash, a backslash before the end of a line joins the lines, `$NAME` and `${NAME}` of `vars`
/// are replaced (others stay as written). Also, for each line of the text, its line of the body.
fn expand(body: &[String], vars: &[(String, String)]) -> (String, Vec<usize>) {
    let source = body.join("\n") + "\n";
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::new();
    let mut lines = vec![0];
    let mut body_line = 0;
    let mut i = 0;
    while i < chars.len() {
        match (chars[i], chars.get(i + 1)) {
            ('\\', Some('\n')) => {
                body_line += 1;
                i += 2;
            }
            ('\\', Some(c @ ('\\' | '$' | '`'))) => {
                out.push(*c);
                i += 2;
            }
            ('$', Some(_)) => {
                let braced = chars[i + 1] == '{';
                let start = i + 1 + usize::from(braced);
                let end = (start..chars.len())
                    .find(|&j| !(chars[j].is_ascii_alphanumeric() || chars[j] == '_'))
                    .unwrap_or(chars.len());
                let name: String = chars[start..end].iter().collect();
                let closed = !braced || chars.get(end) == Some(&'}');
                match vars.iter().find(|(n, _)| *n == name) {
                    Some((_, value)) if !name.is_empty() && closed => {
                        out.push_str(value);
                        i = end + usize::from(braced);
                    }
                    _ => {
                        out.push('$');
                        i += 1;
                    }
                }
            }
            ('\n', _) => {
                out.push('\n');
                body_line += 1;
                if i + 1 < chars.len() {
                    lines.push(body_line);
                }
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    (out, lines)
}

// ---------------------------------------------------------------------------------------------
// The unit as text: ExecStart's flags, and continuation lines.

/// A flag of ExecStart: its name without dashes, its value, and the unit's line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Flag {
    name: String,
    value: Option<String>,
    line: usize,
}

/// What the unit's text says of etcd: ExecStart's flags, and `Key=value` lines a continuation
/// swallows into the line before.
#[derive(Debug, Default, PartialEq, Eq)]
struct UnitText {
    flags: Vec<Flag>,
    /// The line of `[Service]` (0 if none).
    service_line: usize,
    swallowed: Vec<(usize, String)>,
}

/// Reads the unit as systemd joins its lines: a line ending in `\` continues on the next, comment
/// lines inside a continuation are skipped; the last `ExecStart=` of `[Service]` counts.
fn read_unit(text: &str) -> UnitText {
    let mut out = UnitText::default();
    let mut section = String::new();
    // The words of the logical line being read, each with its line, and whether it is ExecStart.
    let mut words: Vec<(String, usize)> = Vec::new();
    let mut continuing = false;
    let mut exec = false;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        let mut content = line;
        if continuing {
            if line.starts_with(['#', ';']) {
                continue;
            }
            if let Some((key, _)) = line.split_once('=') {
                if is_key(key) {
                    out.swallowed.push((n, line.to_owned()));
                }
            }
        } else {
            words.clear();
            exec = false;
            if line.starts_with('[') {
                section = line.trim_matches(['[', ']']).to_owned();
                if section == "Service" {
                    out.service_line = n;
                }
                continue;
            }
            if line.is_empty() || line.starts_with(['#', ';']) {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            exec = section == "Service" && key.trim() == "ExecStart";
            content = value;
        }
        continuing = content.ends_with('\\');
        let content = content.trim_end_matches('\\');
        words.extend(content.split_whitespace().map(|w| (w.to_owned(), n)));
        if exec && !continuing && !words.is_empty() {
            out.flags = flags(&words);
        }
    }
    out
}

/// A systemd setting's name: a letter, then letters and digits.
fn is_key(key: &str) -> bool {
    key.starts_with(|c: char| c.is_ascii_alphabetic())
        && key.chars().all(|c| c.is_ascii_alphanumeric())
}

/// ExecStart's words after the program, as flags: `--name value`, `--name=value`, or `--name`
/// alone when the next word is a flag too.
fn flags(words: &[(String, usize)]) -> Vec<Flag> {
    let unquote = |w: &str| w.trim_matches(|c| c == '"' || c == '\'').to_owned();
    let mut out = Vec::new();
    let mut i = 1;
    while i < words.len() {
        let (word, line) = &words[i];
        if let Some(name) = word.strip_prefix('-').map(|w| w.trim_start_matches('-')) {
            let (name, value) = match name.split_once('=') {
                Some((name, value)) => (name, Some(unquote(value))),
                None => match words.get(i + 1) {
                    Some((next, _)) if !next.starts_with('-') => {
                        i += 1;
                        (name, Some(unquote(next)))
                    }
                    _ => (name, None),
                },
            };
            out.push(Flag {
                name: name.to_owned(),
                value,
                line: *line,
            });
        }
        i += 1;
    }
    out
}

/// A URL's parts, as far as the lint needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Url<'a> {
    text: &'a str,
    scheme: &'a str,
    host: &'a str,
    port: &'a str,
}

fn parse_url(text: &str) -> Option<Url<'_>> {
    let (scheme, rest) = text.split_once("://")?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, port) = v6.split_once(']')?;
            (host, port.trim_start_matches(':'))
        }
        None => authority.rsplit_once(':').unwrap_or((authority, "")),
    };
    Some(Url {
        text,
        scheme,
        host,
        port,
    })
}

/// etcd's defaults for URL flags left out.
fn default_urls(flag: &str) -> &'static str {
    match flag {
        "listen-client-urls" | "advertise-client-urls" => "http://localhost:2379",
        _ => "http://localhost:2380",
    }
}

/// The unit's etcd flags, looked up as etcd's flag parsing does (the last one given counts).
struct Etcd<'a> {
    flags: &'a [Flag],
}

impl<'a> Etcd<'a> {
    fn flag(&self, name: &str) -> Option<&'a Flag> {
        self.flags.iter().rev().find(|f| f.name == name)
    }

    fn value(&self, name: &str) -> Option<&'a str> {
        self.flag(name)?.value.as_deref()
    }

    /// The URLs of a URL flag, each with its line; etcd's default when it is left out.
    fn urls(&self, name: &str) -> Vec<(Url<'a>, usize)> {
        let (text, line) = match self.flag(name) {
            Some(Flag {
                value: Some(value),
                line,
                ..
            }) => (value.as_str(), *line),
            _ => (default_urls(name), 0),
        };
        text.split(',')
            .filter_map(|u| parse_url(u.trim()))
            .map(|u| (u, line))
            .collect()
    }

    /// `--initial-cluster`'s members: name and URL.
    fn initial_cluster(&self) -> Vec<(&'a str, Url<'a>)> {
        self.value("initial-cluster")
            .unwrap_or_default()
            .split(',')
            .filter_map(|entry| {
                let (name, url) = entry.trim().split_once('=')?;
                Some((name, parse_url(url)?))
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The rules.

/// The files etcd reads its TLS material from.
const TLS_FILES: [&str; 6] = [
    "cert-file",
    "key-file",
    "trusted-ca-file",
    "peer-cert-file",
    "peer-key-file",
    "peer-trusted-ca-file",
];

/// Every flag etcd 3.4.23, 3.5.16 and 3.5.30 list in `etcd --help` (Debian's builds:
/// `etcd --help | grep -oE '^\s+--[a-z0-9-]+'`), and `--config-file` and `--version`.
const ETCD_FLAGS: &[&str] = &[
    "advertise-client-urls",
    "auth-token",
    "auth-token-ttl",
    "auto-compaction-mode",
    "auto-compaction-retention",
    "auto-tls",
    "backend-batch-interval",
    "backend-batch-limit",
    "backend-bbolt-freelist-type",
    "bcrypt-cost",
    "cert-file",
    "cipher-suites",
    "client-cert-allowed-hostname",
    "client-cert-auth",
    "client-cert-file",
    "client-crl-file",
    "client-key-file",
    "config-file",
    "cors",
    "data-dir",
    "debug",
    "discovery",
    "discovery-fallback",
    "discovery-proxy",
    "discovery-srv",
    "discovery-srv-name",
    "election-timeout",
    "enable-grpc-gateway",
    "enable-log-rotation",
    "enable-pprof",
    "enable-v2",
    "experimental-backend-bbolt-freelist-type",
    "experimental-bootstrap-defrag-threshold-megabytes",
    "experimental-compact-hash-check-enabled",
    "experimental-compact-hash-check-time",
    "experimental-compaction-batch-limit",
    "experimental-compaction-sleep-interval",
    "experimental-corrupt-check-time",
    "experimental-distributed-tracing-address",
    "experimental-distributed-tracing-instance-id",
    "experimental-distributed-tracing-sampling-rate",
    "experimental-distributed-tracing-service-name",
    "experimental-downgrade-check-time",
    "experimental-enable-distributed-tracing",
    "experimental-enable-lease-checkpoint",
    "experimental-enable-lease-checkpoint-persist",
    "experimental-enable-v2v3",
    "experimental-initial-corrupt-check",
    "experimental-memory-mlock",
    "experimental-peer-skip-client-san-verification",
    "experimental-stop-grpc-service-on-defrag",
    "experimental-txn-mode-write-with-shared-buffer",
    "experimental-warning-apply-duration",
    "experimental-watch-progress-notify-interval",
    "force-new-cluster",
    "grpc-keepalive-interval",
    "grpc-keepalive-min-time",
    "grpc-keepalive-timeout",
    "heartbeat-interval",
    "host-whitelist",
    "initial-advertise-peer-urls",
    "initial-cluster",
    "initial-cluster-state",
    "initial-cluster-token",
    "initial-election-tick-advance",
    "key-file",
    "listen-client-http-urls",
    "listen-client-urls",
    "listen-metrics-urls",
    "listen-peer-urls",
    "log-level",
    "log-outputs",
    "log-package-levels",
    "log-rotation-config-json",
    "logger",
    "max-concurrent-streams",
    "max-request-bytes",
    "max-snapshots",
    "max-txn-ops",
    "max-wals",
    "metrics",
    "name",
    "peer-auto-tls",
    "peer-cert-allowed-cn",
    "peer-cert-allowed-hostname",
    "peer-cert-file",
    "peer-client-cert-auth",
    "peer-client-cert-file",
    "peer-client-key-file",
    "peer-crl-file",
    "peer-key-file",
    "peer-trusted-ca-file",
    "pre-vote",
    "proxy",
    "proxy-dial-timeout",
    "proxy-failure-wait",
    "proxy-read-timeout",
    "proxy-refresh-interval",
    "proxy-write-timeout",
    "quota-backend-bytes",
    "raft-read-timeout",
    "raft-write-timeout",
    "self-signed-cert-validity",
    "snapshot-count",
    "socket-reuse-address",
    "socket-reuse-port",
    "strict-reconfig-check",
    "tls-max-version",
    "tls-min-version",
    "trusted-ca-file",
    "unsafe-no-fsync",
    "v2-deprecation",
    "version",
    "wal-dir",
];

/// A finding about a line of a unit, before it is placed in its file.
struct Said {
    rule: Rule,
    line: usize,
    what: String,
    fix: String,
}

fn said(rule: Rule, line: usize, what: String, fix: String) -> Said {
    Said {
        rule,
        line,
        what,
        fix,
    }
}

/// Every rule on one member's unit.
fn unit_findings(
    unit: &Unit,
    facts: &StepFacts,
    sans: &Sans,
    not_checked: &mut Vec<String>,
) -> Vec<Finding> {
    let read = read_unit(&unit.text);
    let etcd = Etcd { flags: &read.flags };
    let mut found: Vec<Said> = read
        .swallowed
        .iter()
        .map(|(line, text)| swallowed(*line, text))
        .collect();
    found.extend(flag_typos(&etcd));
    found.extend(tls_files(&etcd, &unit.host, facts));
    found.extend(schemes(&etcd));
    found.extend(san_coverage(&etcd, &unit.host, facts, sans, not_checked));
    found.extend(name_in_initial_cluster(&etcd));
    found.extend(advertised_listened(&etcd));
    found.extend(data_dir(&etcd, &unit.host, facts));
    found
        .into_iter()
        .map(|s| unit.finding(s.rule, s.line, s.what, s.fix))
        .collect()
}

fn swallowed(line: usize, text: &str) -> Said {
    said(
        Rule::ContinuationSwallowsKey,
        line,
        format!(
            "`{text}` follows a line ending in `\\`: systemd reads it as more of that line (etcd \
             gets `{text}` as an argument) and the setting is lost"
        ),
        format!(
            "remove the trailing `\\` of line {} to end ExecStart there",
            line - 1
        ),
    )
}

/// `flag-typo`: a flag etcd does not define, within two edits of one it does.
fn flag_typos(etcd: &Etcd<'_>) -> Vec<Said> {
    etcd.flags
        .iter()
        .filter(|f| !ETCD_FLAGS.contains(&f.name.as_str()))
        .filter_map(|f| {
            let (distance, known) = ETCD_FLAGS.iter().map(|k| (edits(&f.name, k), *k)).min()?;
            (distance <= 2).then(|| {
                said(
                    Rule::FlagTypo,
                    f.line,
                    format!(
                        "`--{}` is not a flag of etcd: it exits at once with `flag provided but \
                         not defined: -{}`",
                        f.name, f.name
                    ),
                    format!("spell it `--{known}`"),
                )
            })
        })
        .collect()
}

/// The edit distance of two short strings.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substituted = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substituted.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

/// `cert-file-not-copied`: each TLS file the unit names is in the directory the steps copy it to.
fn tls_files(etcd: &Etcd<'_>, host: &str, facts: &StepFacts) -> Vec<Said> {
    let mut out = Vec::new();
    for name in TLS_FILES {
        let Some(flag) = etcd.flag(name) else {
            continue;
        };
        let Some(path) = flag
            .value
            .as_deref()
            .filter(|p| p.starts_with('/') && !p.contains('$'))
        else {
            continue;
        };
        let (dir, file) = path.rsplit_once('/').unwrap_or(("/", path));
        let placed: Vec<&Placement> = facts.placed_on(host).collect();
        if placed.iter().any(|p| p.dir == dir && p.name == file) {
            continue;
        }
        let elsewhere: Vec<&str> = placed
            .iter()
            .filter(|p| p.name == file)
            .map(|p| p.dir.as_str())
            .collect();
        let what = if elsewhere.is_empty() {
            format!(
                "--{name} names {path}, but no step copies `{file}` to {host}: etcd cannot open \
                 it and exits (`systemctl start` may still succeed)"
            )
        } else {
            format!(
                "--{name} names {path}, but the steps copy `{file}` to {} only, not {dir}",
                elsewhere.join(", ")
            )
        };
        let extension = file.rsplit_once('.').map_or("", |(_, e)| e);
        // What the steps put there that no other flag names: the file meant, most likely.
        let named_elsewhere = |path: &str| TLS_FILES.iter().any(|f| etcd.value(f) == Some(path));
        let there: Vec<String> = placed
            .iter()
            .filter(|p| p.dir == dir && p.name.ends_with(&format!(".{extension}")))
            .map(|p| format!("{dir}/{}", p.name))
            .filter(|p| !named_elsewhere(p))
            .collect();
        let fix = if there.is_empty() {
            format!("copy `{file}` into {dir} in a step (as the seed's step 3: `cp … {dir}/`)")
        } else {
            format!(
                "name the file the steps put there ({}), or copy `{file}` there",
                there.join(" or ")
            )
        };
        out.push(said(Rule::CertFileNotCopied, flag.line, what, fix));
    }
    out
}

/// `https-without-cert` and `cert-without-https`, for clients and for peers.
fn schemes(etcd: &Etcd<'_>) -> Vec<Said> {
    let mut out = Vec::new();
    let sides = [
        (
            "client",
            vec!["listen-client-urls", "advertise-client-urls"],
            ("cert-file", "key-file"),
        ),
        (
            "peer",
            vec!["listen-peer-urls", "initial-advertise-peer-urls"],
            ("peer-cert-file", "peer-key-file"),
        ),
    ];
    for (side, url_flags, (cert, key)) in sides {
        let mut urls: Vec<(Url<'_>, usize)> = url_flags.iter().flat_map(|f| etcd.urls(f)).collect();
        if side == "peer" {
            let line = etcd.flag("initial-cluster").map_or(0, |f| f.line);
            urls.extend(etcd.initial_cluster().into_iter().map(|(_, u)| (u, line)));
        }
        let has = |name: &str| etcd.value(name).is_some();
        if let Some((url, line)) = urls.iter().find(|(u, _)| u.scheme == "https") {
            if !has(cert) || !has(key) {
                out.push(said(
                    Rule::HttpsWithoutCert,
                    *line,
                    format!(
                        "{side} URL {} is https, but the unit has no --{}: etcd refuses to \
                         start (`TLS key/cert (--{cert}, --{key}) must be provided`)",
                        url.text,
                        if has(cert) { key } else { cert }
                    ),
                    format!("give --{cert} and --{key} (the certificate the steps copy)"),
                ));
            }
        } else if let Some(flag) = etcd.flag(cert) {
            out.push(said(
                Rule::CertWithoutHttps,
                flag.line,
                format!(
                    "--{cert} is given, but every {side} URL is http ({}): etcd serves plain \
                     http and the certificate is never used",
                    urls.iter()
                        .map(|(u, _)| u.text)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                format!(
                    "make the {side} URLs https:// (as --{cert} means), or drop the {side} TLS \
                     flags"
                ),
            ));
        }
    }
    out
}

/// `url-not-in-san`: the host of every https URL etcd serves is a name of the certificate it
/// serves there.
fn san_coverage(
    etcd: &Etcd<'_>,
    host: &str,
    facts: &StepFacts,
    sans: &Sans,
    not_checked: &mut Vec<String>,
) -> Vec<Said> {
    let mut out = Vec::new();
    let sides = [
        ("cert-file", ["listen-client-urls", "advertise-client-urls"]),
        (
            "peer-cert-file",
            ["listen-peer-urls", "initial-advertise-peer-urls"],
        ),
    ];
    for (cert, url_flags) in sides {
        let Some(path) = etcd.value(cert).filter(|p| !p.contains('$')) else {
            continue;
        };
        let Some((names, whose)) = certificate_names(path, host, facts, sans) else {
            not_checked.push(format!(
                "on {host}: the names of {path} (--{cert}): no step copies it from the jumpbox's \
                 PKI, so url-not-in-san is not checked"
            ));
            continue;
        };
        for flag in url_flags {
            for (url, line) in etcd.urls(flag) {
                let wildcard = ["0.0.0.0", "::", ""].contains(&url.host);
                if url.scheme != "https" || wildcard || url.host.contains('$') {
                    continue;
                }
                if names.iter().any(|n| n.eq_ignore_ascii_case(url.host)) {
                    continue;
                }
                out.push(said(
                    Rule::UrlNotInSan,
                    line,
                    format!(
                        "--{flag} {} is served with {path} ({whose}), whose names are {}: a \
                         client dialling {} rejects it (`certificate is not valid for {}`)",
                        url.text,
                        names.join(", "),
                        url.host,
                        url.host
                    ),
                    format!(
                        "issue the certificate with {} among its names, or use a URL whose host \
                         it names",
                        url.host
                    ),
                ));
            }
        }
    }
    out
}

/// The names of the certificate at `path` on `host`, traced by its file name to the jumpbox file
/// an `scp` copies to that node: `kube-apiserver.crt`, or a member's `nodes/<host>/…`.
fn certificate_names<'s>(
    path: &str,
    host: &str,
    facts: &StepFacts,
    sans: &'s Sans,
) -> Option<(&'s [String], String)> {
    let name = base_name(path);
    facts.placed_on(host).find_map(|p| {
        let from = p.from.as_deref().filter(|_| p.name == name)?;
        if from == "kube-apiserver.crt" {
            return Some((
                sans.server.as_slice(),
                "the kube-apiserver certificate".into(),
            ));
        }
        let owner = from.strip_prefix("nodes/")?.split('/').next()?;
        let owner = if owner == EACH_HOST { host } else { owner };
        sans.members
            .iter()
            .find(|(h, _)| h == owner)
            .map(|(_, names)| (names.as_slice(), format!("{owner}'s certificate")))
    })
}

/// `name-not-in-initial-cluster`.
fn name_in_initial_cluster(etcd: &Etcd<'_>) -> Vec<Said> {
    let cluster = etcd.initial_cluster();
    let (Some(flag), false) = (etcd.flag("initial-cluster"), cluster.is_empty()) else {
        return Vec::new();
    };
    let (name, line) = match etcd.flag("name") {
        Some(Flag {
            value: Some(name),
            line,
            ..
        }) => (name.as_str(), *line),
        _ => ("default", flag.line),
    };
    if name.contains('$') || cluster.iter().any(|(n, _)| *n == name) {
        return Vec::new();
    }
    let names: Vec<&str> = cluster.iter().map(|(n, _)| *n).collect();
    vec![said(
        Rule::NameNotInInitialCluster,
        line,
        format!(
            "--name is `{name}`, which --initial-cluster does not name ({}): etcd exits with \
             `couldn't find local name \"{name}\" in the initial cluster configuration`",
            names.join(", ")
        ),
        format!(
            "give --name as --initial-cluster names this member (one of {}), or add \
             `{name}=<its peer URL>` to --initial-cluster",
            names.join(", ")
        ),
    )]
}

/// `advertised-not-listened`: every advertised URL is one etcd listens on (or a wildcard listen
/// URL on its port).
fn advertised_listened(etcd: &Etcd<'_>) -> Vec<Said> {
    let loopback = |h: &str| h == "127.0.0.1" || h.eq_ignore_ascii_case("localhost");
    let same_host = |a: &str, b: &str| a.eq_ignore_ascii_case(b) || (loopback(a) && loopback(b));
    let mut out = Vec::new();
    for (advertise, listen) in [
        ("advertise-client-urls", "listen-client-urls"),
        ("initial-advertise-peer-urls", "listen-peer-urls"),
    ] {
        let listened = etcd.urls(listen);
        if etcd.flag(advertise).is_none() || listened.iter().any(|(u, _)| u.text.contains('$')) {
            continue;
        }
        for (url, line) in etcd.urls(advertise) {
            let served = listened.iter().any(|(l, _)| {
                l.scheme == url.scheme
                    && l.port == url.port
                    && (same_host(l.host, url.host) || ["0.0.0.0", "::", ""].contains(&l.host))
            });
            if served || url.text.contains('$') {
                continue;
            }
            out.push(said(
                Rule::AdvertisedNotListened,
                line,
                format!(
                    "--{advertise} {} is not among --{listen} ({}): whoever is told this URL \
                     cannot reach etcd there",
                    url.text,
                    listened
                        .iter()
                        .map(|(u, _)| u.text)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                format!(
                    "add {} to --{listen} (or listen on {}://0.0.0.0:{}), or advertise a URL \
                     etcd listens on",
                    url.text, url.scheme, url.port
                ),
            ));
        }
    }
    out
}

/// `data-dir-not-created`: `--data-dir` is a directory the steps create on that node.
fn data_dir(etcd: &Etcd<'_>, host: &str, facts: &StepFacts) -> Vec<Said> {
    let Some(flag) = etcd.flag("data-dir") else {
        return Vec::new();
    };
    let Some(dir) = flag.value.as_deref().filter(|d| !d.contains('$')) else {
        return Vec::new();
    };
    let dir = absolute(dir);
    let created: Vec<&str> = facts
        .dirs
        .iter()
        .filter(|(h, _)| on(h, host))
        .map(|(_, d)| d.as_str())
        .collect();
    if created.contains(&dir.as_str()) {
        return Vec::new();
    }
    vec![said(
        Rule::DataDirNotCreated,
        flag.line,
        format!(
            "--data-dir is {dir}, which no step creates on {host} (they create {}): etcd makes \
             it itself, without the steps' `chmod 700`, and the steps prepare a directory etcd \
             never uses",
            if created.is_empty() {
                "none".to_owned()
            } else {
                created.join(", ")
            }
        ),
        format!("create it in a step (`mkdir -p {dir} && chmod 700 {dir}`), or point --data-dir at the directory the steps create"),
    )]
}

/// `cert-copied-unused`: certificates and keys a step copies on a node (`cp`/`mv`) that neither
/// that node's unit nor any step's command names, one finding per command.
fn unused_copies(units: &[Unit], facts: &StepFacts, members: &[MemberName]) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    for member in members {
        let mine: Vec<&Unit> = units.iter().filter(|u| u.host == member.host).collect();
        if mine.is_empty() {
            continue;
        }
        let unit_values: Vec<String> = mine
            .iter()
            .flat_map(|u| read_unit(&u.text).flags)
            .filter_map(|f| f.value)
            .collect();
        let named = |path: &str| {
            unit_values.iter().any(|v| v == path)
                || facts
                    .texts
                    .iter()
                    .any(|(h, text)| on(h, &member.host) && text.contains(path))
        };
        let unused: Vec<&Placement> = facts
            .placed_on(&member.host)
            .filter(|p| p.from.is_none())
            .filter(|p| [".crt", ".pem", ".key"].iter().any(|e| p.name.ends_with(e)))
            .filter(|p| !named(&format!("{}/{}", p.dir, p.name)))
            .collect();
        let mut commands: Vec<(&Path, usize, &str)> = unused
            .iter()
            .map(|p| (p.file.as_path(), p.line, p.dir.as_str()))
            .collect();
        commands.dedup();
        for (file, line, dir) in commands {
            let paths: Vec<String> = unused
                .iter()
                .filter(|p| p.line == line && p.file == file && p.dir == dir)
                .map(|p| format!("{dir}/{}", p.name))
                .collect();
            out.push(Finding {
                rule: Rule::CertCopiedUnused,
                file: file.to_owned(),
                line,
                host: Some(member.host.clone()),
                what: format!(
                    "this copies {}, which neither etcd.service's TLS flags nor any step name: \
                     etcd runs without {}",
                    paths.join(", "),
                    if paths.len() == 1 { "it" } else { "them" }
                ),
                fix: "give the unit the TLS flags and https:// URLs the copy is for (as \
                      docker/units/etcd-tls.service), or drop the copy"
                    .into(),
                expected: false,
            });
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// systemd's reading.

/// What systemd-analyze said of a unit, or why it could not be asked.
enum Verified {
    Said(String),
    Unavailable(String),
}

/// Runs `systemd-analyze verify` on a copy of `text` named `etcd.service` in a temporary
/// directory. What it says about the host rather than the file — the executable is not on this
/// host (the steps install it in the node), a unit it depends on is not here — is told apart by
/// [`systemd_findings`]: file problems come as `<path>:<line>: …`.
async fn verify(text: &str) -> Result<Verified, LintError> {
    let copy_error = |source| LintError::Copy { source };
    let dir = tempfile::tempdir().map_err(copy_error)?;
    let copy = dir.path().join("etcd.service");
    std::fs::write(&copy, text).map_err(copy_error)?;
    let run = tokio::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no", "--generators=no"])
        .arg(&copy)
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(VERIFY_TIMEOUT, run).await {
        Err(_) => {
            return Ok(Verified::Unavailable(format!(
                "`systemd-analyze verify` did not answer within {} s",
                VERIFY_TIMEOUT.as_secs()
            )))
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Verified::Unavailable(
                "systemd-analyze is not installed on this host (Debian: `apt-get install \
                 systemd`)"
                    .into(),
            ))
        }
        Ok(Err(e)) => {
            return Ok(Verified::Unavailable(format!(
                "failed to run systemd-analyze: {e}"
            )))
        }
        Ok(Ok(out)) => out,
    };
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    Ok(Verified::Said(said.replace(&*copy.to_string_lossy(), COPY)))
}

/// How [`verify`]'s output names the copy of the unit.
const COPY: &str = "<unit>";

fn unavailable(unit: &Unit, why: &str) -> Finding {
    unit.finding(
        Rule::SystemdAnalyzeUnavailable,
        1,
        format!("the unit was not read as systemd reads it: {why}"),
        "install systemd-analyze (systemd 252 or later) where the lint runs".into(),
    )
}

/// systemd-analyze's lines about the unit (with `<unit>` for the copy's path) as findings on
/// `unit`'s lines, and the lines it could not place, as notes.
fn systemd_findings(output: &str, unit: &Unit) -> (Vec<Finding>, Vec<String>) {
    let mut findings = Vec::new();
    let mut notes = Vec::new();
    for line in output.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some((n, message)) = line
            .strip_prefix(COPY)
            .and_then(|rest| rest.strip_prefix(':'))
            .and_then(|rest| rest.split_once(':'))
            .and_then(|(n, m)| Some((n.parse::<usize>().ok()?, m.trim())))
        {
            let (rule, fix) = if message.contains("Missing '='")
                || message.contains("outside of section")
            {
                (
                    Rule::SystemdIgnoredLine,
                    "make it `Key=value` in its section, or end the line before it with `\\` if \
                     it continues ExecStart",
                )
            } else if message.starts_with("Unknown key") || message.starts_with("Unknown lvalue") {
                (
                    Rule::SystemdUnknownKey,
                    "spell the key as systemd.unit(5), systemd.service(5) and systemd.exec(5) \
                     do, in the section they name, or remove it",
                )
            } else if message.starts_with("Unknown section") {
                (
                    Rule::SystemdUnknownSection,
                    "use [Unit], [Service] and [Install]",
                )
            } else {
                (
                    Rule::SystemdBadSetting,
                    "give the setting a value systemd accepts",
                )
            };
            findings.push(unit.finding(rule, n, format!("systemd says `{message}`"), fix.into()));
            continue;
        }
        if let Some(message) = line.strip_prefix("etcd.service: ") {
            // About this host, not the file: the node has the executable, the host need not.
            let about_host = (message.starts_with("Command ")
                && message.contains("is not executable"))
                || (message.starts_with("Failed to create") && message.ends_with("not found."));
            if about_host || message.starts_with("Unit configuration has fatal error") {
                continue;
            }
            let service = read_unit(&unit.text).service_line.max(1);
            findings.push(unit.finding(
                Rule::SystemdUnitInvalid,
                service,
                format!("systemd refuses the unit: `{message}`"),
                "give [Service] what systemd requires (an ExecStart=, say)".into(),
            ));
            continue;
        }
        if line.starts_with("Unit etcd.service has a bad unit file setting") {
            continue;
        }
        notes.push(format!(
            "systemd-analyze on {}'s unit also said `{line}`",
            unit.host
        ));
    }
    (findings, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TLS_UNIT: &str = include_str!("../../docker/units/etcd-tls.service");
    const HTTP_UNIT: &str = include_str!("../../docker/units/etcd.service");

    /// The seed's steps, read as the lint reads them.
    fn seed_facts() -> StepFacts {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/steps/seed.toml");
        let seed = Bootstrap::load(&file).unwrap();
        let steps: Vec<(&Path, &Step)> = seed
            .steps
            .iter()
            .map(|s| (seed.file.as_path(), s))
            .collect();
        StepFacts::of(&steps)
    }

    fn server_sans(names: &[&str]) -> Sans {
        Sans {
            server: names.iter().map(|n| n.to_string()).collect(),
            members: vec![("server".into(), vec!["server".into()])],
        }
    }

    fn unit(text: &str) -> Unit {
        Unit {
            text: text.to_owned(),
            host: "server".into(),
            file: PathBuf::from("etcd.service"),
            lines: (1..=text.lines().count()).collect(),
            how: "",
        }
    }

    /// The rules found on `text` with the seed's steps and a PKI whose server names `sans`.
    fn rules_on(text: &str, sans: &[&str]) -> Vec<(Rule, usize)> {
        let mut notes = Vec::new();
        unit_findings(&unit(text), &seed_facts(), &server_sans(sans), &mut notes)
            .into_iter()
            .map(|f| (f.rule, f.line))
            .collect()
    }

    fn rules_of(text: &str) -> Vec<(Rule, usize)> {
        rules_on(text, &pki::KUBE_APISERVER_SANS)
    }

    /// The 1-based line of `text` holding `needle`.
    fn line_of(text: &str, needle: &str) -> usize {
        text.lines().position(|l| l.contains(needle)).unwrap() + 1
    }

    #[test]
    fn the_seeds_units_with_the_seeds_steps_have_no_finding() {
        assert_eq!(rules_of(TLS_UNIT), []);
        assert_eq!(rules_of(HTTP_UNIT), []);
    }

    #[test]
    fn rule_ids_read_back_and_only_two_do_not_fail_a_run() {
        for (name, rule) in Rule::NAMES {
            assert_eq!(rule.name(), *name);
            assert!(name.chars().all(|c| c.is_ascii_lowercase() || c == '-'));
        }
        let lenient: Vec<&str> = Rule::NAMES
            .iter()
            .filter(|(_, r)| !r.fails())
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(
            lenient,
            ["systemd-analyze-unavailable", "cert-copied-unused"]
        );
    }

    #[test]
    fn exec_start_flags_are_read_in_both_spellings_across_continuations() {
        let read = read_unit(
            "[Service]\n# c\nExecStart=/usr/local/bin/etcd --a 1 \\\n  --b=2 \\\n# comment\n  \
             --c \\\n  --d x\nRestart=on-failure\n",
        );
        let flags: Vec<(&str, Option<&str>, usize)> = read
            .flags
            .iter()
            .map(|f| (f.name.as_str(), f.value.as_deref(), f.line))
            .collect();
        assert_eq!(
            flags,
            [
                ("a", Some("1"), 3),
                ("b", Some("2"), 4),
                ("c", None, 6),
                ("d", Some("x"), 7)
            ]
        );
        assert_eq!(read.service_line, 1);
        assert!(read.swallowed.is_empty());
    }

    #[test]
    fn a_key_after_a_trailing_backslash_is_swallowed_into_exec_start() {
        let text = TLS_UNIT.replace("--data-dir=/var/lib/etcd", "--data-dir=/var/lib/etcd \\");
        let line = text
            .lines()
            .position(|l| l == "Restart=on-failure")
            .unwrap()
            + 1;
        assert_eq!(rules_of(&text), [(Rule::ContinuationSwallowsKey, line)]);
    }

    #[test]
    fn a_misspelled_flag_is_a_typo_and_a_flag_far_from_any_is_not_guessed_at() {
        let typo = TLS_UNIT.replace("--client-cert-auth", "--client-cert-auht");
        assert_eq!(
            rules_of(&typo),
            [(Rule::FlagTypo, line_of(&typo, "--client-cert-auht"))]
        );
        let newer = TLS_UNIT.replace("--client-cert-auth", "--feature-gates=X=true");
        assert_eq!(rules_of(&newer), []);
        assert_eq!(edits("client-cert-auht", "client-cert-auth"), 2);
        assert_eq!(edits("", "abc"), 3);
    }

    #[test]
    fn tls_files_must_be_where_the_steps_copy_them() {
        let cases = [
            // (the unit's --cert-file, the rules found)
            ("/etc/etcd/kube-apiserver.crt", vec![]),
            ("/etc/etcd/kubernetes.crt", vec![Rule::CertFileNotCopied]),
            ("/root/kube-apiserver.crt", vec![]),
            ("/var/lib/kube-apiserver.crt", vec![Rule::CertFileNotCopied]),
        ];
        for (path, want) in cases {
            let text = TLS_UNIT.replace("/etc/etcd/kube-apiserver.crt", path);
            let got: Vec<Rule> = rules_of(&text).into_iter().map(|(r, _)| r).collect();
            assert_eq!(got, want, "{path}");
        }
        let mut notes = Vec::new();
        let text = TLS_UNIT.replace("/etc/etcd/kube-apiserver.crt", "/etc/etcd/kubernetes.crt");
        let found = unit_findings(&unit(&text), &seed_facts(), &server_sans(&[]), &mut notes);
        assert_eq!(found[0].line, line_of(&text, "--cert-file"));
        assert!(
            found[0].fix.contains("/etc/etcd/kube-apiserver.crt"),
            "{}",
            found[0].fix
        );
    }

    #[test]
    fn schemes_agree_with_the_tls_flags_for_clients_and_peers() {
        let no_cert = TLS_UNIT
            .replace("  --cert-file=/etc/etcd/kube-apiserver.crt \\\n", "")
            .replace("  --key-file=/etc/etcd/kube-apiserver.key \\\n", "");
        let cert_plain = TLS_UNIT.replace("https://", "http://");
        let peer_https = TLS_UNIT.replace("http://127.0.0.1:2380", "https://127.0.0.1:2380");
        let peer_cert = TLS_UNIT.replace(
            "--client-cert-auth",
            "--client-cert-auth --peer-cert-file=/etc/etcd/kube-apiserver.crt",
        );
        let cases = [
            (no_cert, vec![Rule::HttpsWithoutCert]),
            (cert_plain, vec![Rule::CertWithoutHttps]),
            (peer_https, vec![Rule::HttpsWithoutCert]),
            (peer_cert, vec![Rule::CertWithoutHttps]),
        ];
        for (text, want) in cases {
            let got: Vec<Rule> = rules_of(&text).into_iter().map(|(r, _)| r).collect();
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn https_hosts_must_be_names_of_the_certificate_served() {
        let found = rules_on(
            TLS_UNIT,
            &pki::server_sans(pki::ServerCert::NoLoopbackSan)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        assert_eq!(
            found,
            [
                (Rule::UrlNotInSan, line_of(TLS_UNIT, "--listen-client-urls")),
                (
                    Rule::UrlNotInSan,
                    line_of(TLS_UNIT, "--advertise-client-urls")
                )
            ],
            "listen and advertise client URLs, both 127.0.0.1"
        );
        let wildcard = TLS_UNIT.replace(
            "--listen-client-urls https://127.0.0.1:2379",
            "--listen-client-urls https://0.0.0.0:2379",
        );
        assert_eq!(rules_on(&wildcard, &["127.0.0.1"]), []);
    }

    #[test]
    fn the_name_must_be_a_key_of_the_initial_cluster() {
        let renamed = TLS_UNIT.replace("--name controller", "--name controller-0");
        assert_eq!(
            rules_of(&renamed),
            [(Rule::NameNotInInitialCluster, line_of(TLS_UNIT, "--name"))]
        );
        let unnamed = TLS_UNIT.replace("  --name controller \\\n", "");
        assert_eq!(
            rules_of(&unnamed).len(),
            1,
            "etcd's default name, `default`"
        );
    }

    #[test]
    fn advertised_urls_must_be_listened_on() {
        let elsewhere = TLS_UNIT.replace(
            "--advertise-client-urls https://127.0.0.1:2379",
            "--advertise-client-urls https://10.240.0.10:2379",
        );
        assert_eq!(
            rules_of(&elsewhere),
            [(
                Rule::AdvertisedNotListened,
                line_of(TLS_UNIT, "--advertise-client-urls")
            )]
        );
        let wildcard = elsewhere.replace(
            "--listen-client-urls https://127.0.0.1:2379",
            "--listen-client-urls https://0.0.0.0:2379",
        );
        assert_eq!(rules_of(&wildcard), []);
        let localhost = TLS_UNIT.replace(
            "--advertise-client-urls https://127.0.0.1:2379",
            "--advertise-client-urls https://localhost:2379",
        );
        assert_eq!(rules_of(&localhost), []);
    }

    #[test]
    fn the_data_dir_must_be_one_the_steps_create() {
        let other = TLS_UNIT.replace("--data-dir=/var/lib/etcd", "--data-dir=/var/lib/etcd-data");
        assert_eq!(
            rules_of(&other),
            [(Rule::DataDirNotCreated, line_of(TLS_UNIT, "--data-dir"))]
        );
        assert_eq!(
            data_dirs("FLAGS=\"--name x --data-dir /var/lib/etcd\"\netcdutl --data-dir=/d"),
            ["/var/lib/etcd", "/d"]
        );
    }

    #[test]
    fn certificates_copied_for_a_plain_http_unit_are_a_warning_on_the_copy() {
        let facts = seed_facts();
        let members = [MemberName {
            host: "server".into(),
            address: String::new(),
        }];
        assert_eq!(unused_copies(&[unit(TLS_UNIT)], &facts, &members), []);
        let found = unused_copies(&[unit(HTTP_UNIT)], &facts, &members);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].rule, Rule::CertCopiedUnused);
        assert!(found[0].file.ends_with("scenarios/steps/seed.toml"));
        let seed = include_str!("../../scenarios/steps/seed.toml");
        assert_eq!(found[0].line, line_of(seed, "  cp ca.crt"), "step 3's `cp`");
        assert!(
            found[0].what.contains(
                "/etc/etcd/ca.crt, /etc/etcd/kube-apiserver.key, /etc/etcd/kube-apiserver.crt"
            ),
            "{}",
            found[0].what
        );
    }

    #[test]
    fn steps_place_files_where_scp_and_cp_put_them() {
        let facts = seed_facts();
        let placed: Vec<String> = facts
            .placed_on("server")
            .map(|p| format!("{}/{}", p.dir, p.name))
            .collect();
        for want in [
            "/root/ca.crt",
            "/etc/etcd/ca.crt",
            "/etc/etcd/kube-apiserver.key",
        ] {
            assert!(placed.contains(&want.to_owned()), "{want}: {placed:?}");
        }
        assert_eq!(
            copies(&["a.crt", "/etc/x/b.crt"]),
            [
                ("/etc/x/b.crt".to_owned(), "a.crt".to_owned()),
                ("/etc/x".to_owned(), "b.crt".to_owned())
            ]
        );
        assert_eq!(facts.unit_copied_to, [Some("server".to_owned())]);
        assert!(
            facts.dirs.contains(&(None, "/var/lib/etcd".to_owned()))
                || facts
                    .dirs
                    .contains(&(Some("server".into()), "/var/lib/etcd".into()))
        );
    }

    #[test]
    fn a_heredoc_unit_is_read_as_bash_writes_it_on_each_member() {
        let script = "INTERNAL_IP=$(hostname -I | awk '{print $1}')\nETCD_NAME=$(hostname -s)\n\
                      cat <<EOF > /etc/systemd/system/etcd.service\n[Service]\n\
                      ExecStart=/usr/local/bin/etcd \\\\\n  --name ${ETCD_NAME} \\\\\n  \
                      --listen-peer-urls https://${INTERNAL_IP}:2380 $OTHER\nEOF\nsystemctl \
                      daemon-reload\n";
        let read = read_script(script);
        let heredoc = &read.heredocs[0];
        assert_eq!(heredoc.target, "/etc/systemd/system/etcd.service");
        assert_eq!(heredoc.first_line, 3);
        assert!(heredoc.expands);
        let member = MemberName {
            host: "controller-2".into(),
            address: "10.240.0.12".into(),
        };
        let vars: Vec<(String, String)> = heredoc
            .assignments
            .iter()
            .filter_map(|(n, v)| Some((n.clone(), assigned(v, &member)?)))
            .collect();
        let (text, lines) = expand(&heredoc.body, &vars);
        assert_eq!(
            text,
            "[Service]\nExecStart=/usr/local/bin/etcd \\\n  --name controller-2 \\\n  \
             --listen-peer-urls https://10.240.0.12:2380 $OTHER\n"
        );
        assert_eq!(lines, [0, 1, 2, 3]);
        assert_eq!(
            read.commands.last().unwrap().words,
            ["systemctl", "daemon-reload"]
        );
        assert!(
            !read.text.contains("--name"),
            "heredoc bodies are not commands"
        );
        let joined = expand(&["a \\".into(), "b".into(), "c".into()], &[]);
        assert_eq!(joined, ("a b\nc\n".into(), vec![0, 2]));
        let quoted = heredoc_opener("cat > /x/etcd.service <<'EOF'").unwrap();
        assert_eq!(
            (quoted.expands, quoted.target.as_deref()),
            (false, Some("/x/etcd.service"))
        );
    }

    #[test]
    fn only_known_commands_give_a_host_name_or_an_address() {
        let member = MemberName {
            host: "ip-10-240-0-12".into(),
            address: String::new(),
        };
        assert_eq!(
            assigned("$(hostname -s)", &member).as_deref(),
            Some("ip-10-240-0-12")
        );
        assert_eq!(assigned("$(hostname -I | awk '{print $1}')", &member), None);
        assert_eq!(
            assigned("etcd-cluster-0", &member).as_deref(),
            Some("etcd-cluster-0")
        );
        assert_eq!(assigned("$(cat /etc/name)", &member), None);
    }

    #[test]
    fn systemd_analyze_lines_about_the_file_are_findings_and_about_the_host_are_not() {
        let output = "<unit>:5: Unknown key 'Foo' in section [Service], ignoring.\n\
                      <unit>:9: Missing '=', ignoring line.\n\
                      <unit>:11: Unknown section 'Bogus'. Ignoring.\n\
                      <unit>:2: Failed to parse service type, ignoring: bogus\n\
                      etcd.service: Command /usr/local/bin/etcd is not executable: No such file or directory\n\
                      etcd.service: Failed to create etcd.service/start: Unit nonexist.service not found.\n\
                      etcd.service: Service has no ExecStart=, ExecStop=, or SuccessAction=. Refusing.\n\
                      etcd.service: Unit configuration has fatal error, unit will not be started.\n\
                      Unit etcd.service has a bad unit file setting.\n\
                      something else\n";
        let (found, notes) = systemd_findings(output, &unit(TLS_UNIT));
        let rules: Vec<(Rule, usize)> = found.iter().map(|f| (f.rule, f.line)).collect();
        assert_eq!(
            rules,
            [
                (Rule::SystemdUnknownKey, 5),
                (Rule::SystemdIgnoredLine, 9),
                (Rule::SystemdUnknownSection, 11),
                (Rule::SystemdBadSetting, 2),
                (Rule::SystemdUnitInvalid, line_of(TLS_UNIT, "[Service]")),
            ]
        );
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("something else"));
    }

    #[test]
    fn expectations_mark_findings_and_an_unmet_one_is_reported() {
        let finding = |rule| Finding {
            rule,
            file: "u".into(),
            line: 1,
            host: None,
            what: String::new(),
            fix: String::new(),
            expected: false,
        };
        let expect = |rules: Vec<Rule>| Expected { rules, line: 7 };
        let mut report = LintReport {
            findings: vec![finding(Rule::UrlNotInSan)],
            ..LintReport::default()
        };
        assert!(!report.holds());
        judge(
            &mut report,
            &expect(vec![Rule::UrlNotInSan]),
            Path::new("s.toml"),
            true,
        );
        assert!(report.holds(), "{report}");
        judge(
            &mut report,
            &expect(vec![
                Rule::UrlNotInSan,
                Rule::FlagTypo,
                Rule::SystemdUnknownKey,
            ]),
            Path::new("s.toml"),
            false,
        );
        assert_eq!(
            report.unmet.len(),
            1,
            "a systemd rule is not judged without systemd-analyze"
        );
        assert_eq!(
            report.unmet[0].to_string().lines().next().unwrap(),
            "s.toml:7: `[lint] expect` names flag-typo, which the lint did not find"
        );
        let warning = LintReport {
            findings: vec![finding(Rule::SystemdAnalyzeUnavailable)],
            ..LintReport::default()
        };
        assert!(
            warning.holds(),
            "not finding systemd-analyze does not stop a run"
        );
    }
}
