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

use crate::faults::{Action as FaultAction, At};
use crate::names::{by_name, Named};
use crate::pki::{self, MemberName};
use crate::scenario::Scenario;
use crate::steps::{Bootstrap, Step};

use facts::{on, StepFacts};
use shell::{assigned, expand};
use systemd::Verified;

mod facts;
mod rules;
pub use rules::{edits, nearest_flag};
mod shell;
mod systemd;
mod unit_text;
pub(crate) use unit_text::exec_flag;

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
    /// The node whose unit or steps it is about (`server`, the tutorial's single node).
    pub host: String,
    /// What is wrong, and what it does.
    pub what: String,
    /// How to fix it.
    pub fix: String,
    /// The scenario expects it.
    pub expected: bool,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: on {}: {}\n    fix: {}",
            self.file.display(),
            self.line,
            self.rule,
            self.host,
            self.what,
            self.fix
        )
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

impl Sans {
    /// The server certificate's names as `server` issues it, and each member's (`member_sans`, in
    /// the order of `members`).
    fn of(server: pki::ServerCert, members: &[MemberName], member_sans: Vec<Vec<String>>) -> Self {
        Self {
            server: pki::server_sans(server),
            members: members
                .iter()
                .map(|m| m.host.clone())
                .zip(member_sans)
                .collect(),
        }
    }
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
        let members = scenario.member_names();
        let member_sans = pki::member_sans(&members, scenario.certs, &scenario.peer_faults());
        Self {
            unit_file: scenario.unit_file.clone(),
            edits,
            steps,
            sans: Sans::of(scenario.pki.server, &members, member_sans),
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
            sans: Sans::of(pki::ServerCert::Valid, &members, member_sans),
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
        report.findings.extend(rules::unit_findings(
            unit,
            &facts,
            &input.sans,
            &mut report.not_checked,
        ));
        if !systemd_read {
            continue;
        }
        match systemd::verify(&unit.text).await? {
            Verified::Said(output) => {
                let (found, unplaced) = systemd::findings(&output, &unit.text);
                report
                    .findings
                    .extend(found.into_iter().map(|s| unit.said(s)));
                report.not_checked.extend(unplaced.into_iter().map(|line| {
                    format!("systemd-analyze on {}'s unit also said `{line}`", unit.host)
                }));
            }
            Verified::Unavailable(why) => {
                // Said once: every other unit would say the same.
                systemd_read = false;
                report.findings.push(unit.finding(
                    Rule::SystemdAnalyzeUnavailable,
                    1,
                    format!("the unit was not read as systemd reads it: {why}"),
                    "install systemd-analyze (systemd 252 or later) where the lint runs".into(),
                ));
            }
        }
    }
    report
        .findings
        .extend(rules::unused_copies(&units, &facts, &input.members));
    report.findings.dedup();
    judge(
        &mut report,
        &input.expected,
        &input.scenario_file,
        systemd_read,
    );
    Ok(report)
}

/// Lints `scenario` before it runs: its report, or [`LintError::Blocked`] when a finding would
/// stop the run (an unexpected failing one, or an expected one missing).
pub async fn preflight(scenario: &Scenario) -> Result<LintReport, LintError> {
    let report = lint(&LintInput::scenario(scenario)).await?;
    if !report.holds() {
        return Err(LintError::Blocked {
            file: scenario.file.clone(),
            report,
        });
    }
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
            host: self.host.clone(),
            what: format!("{what}{}", self.how),
            fix,
            expected: false,
        }
    }

    /// What a rule said of one of this unit's lines, placed in its file.
    fn said(&self, said: Said) -> Finding {
        self.finding(said.rule, said.line, said.what, said.fix)
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn expectations_mark_findings_and_an_unmet_one_is_reported() {
        let finding = |rule| Finding {
            rule,
            file: "u".into(),
            line: 1,
            host: "server".into(),
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
