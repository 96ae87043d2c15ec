//! A run's outcome — the [`Report`] the runner fills: transcript, checks, diagnosis, timings — and
//! its rendering for people: the header (scenario, etcd version, image), the transcript, the checks
//! with their results and diagnoses, a failure's diagnosis, and the verdict.
//!
//! Two renderings: text for people ([`render`]) and JSON with the same facts for machines
//! ([`to_json`]); JUnit comes from the test runner (nextest's profile `ci`).

use std::fmt::Write;
use std::path::PathBuf;
use std::time::Duration;

use crate::checks::CheckResult;
use crate::cpu::Usage;
use crate::diagnose::{Cause, Diagnosis};
use crate::fix::Fix;
use crate::scenario::Repairs;
use crate::transcript::{Host, Transcript};

/// One phase's wall time, and the busy CPU meanwhile (the whole machine's, so other work running
/// beside the run counts too: the bench runs one thing at a time).
#[derive(Debug, Clone, Copy)]
pub struct Lap {
    /// The phase.
    pub phase: Phase,
    /// Its wall time.
    pub wall: Duration,
    /// Busy core-seconds during it, where `/proc` can be read.
    pub cpu: Option<Usage>,
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
    /// Fixes applied after the failure, and the checks after each.
    Fixes,
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
            Self::Fixes => "fixes and checks after them",
            Self::Teardown => "teardown",
        }
    }
}

/// A node left running on purpose.
#[derive(Debug, Clone)]
pub struct Kept {
    /// The nodes' container ids.
    pub containers: Vec<String>,
    /// The run network's switch container, which the nodes are linked to.
    pub switch: String,
    /// The jumpbox directory with the PKI.
    pub jumpbox: PathBuf,
}

/// A member's node at the end of the run, for its summary line.
#[derive(Debug, Clone)]
pub struct MemberOutcome {
    /// The node's host name.
    pub host: String,
    /// Its address on the run's network, when the scenario places it.
    pub address: Option<std::net::Ipv4Addr>,
    /// etcd.service's `ActiveState (SubState)` at the end.
    pub unit: String,
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
    /// Why the scenario does not apply to the etcd under test, when it does not (nothing ran).
    pub not_applicable: Option<String>,
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
    /// Each member's node at the end, in the members' order (a cluster's report summarises them).
    pub members: Vec<MemberOutcome>,
    /// The node kept with `--keep`.
    pub kept: Option<Kept>,
    /// Time spent in each phase, and the busy CPU meanwhile.
    pub timings: Vec<Lap>,
    /// Where the failure's artefacts were written (transcript, journals, units, `ss`, certificates).
    pub artefacts: Option<PathBuf>,
    /// The fixes applied after the failure, in order, each with the checks run after it.
    pub fixes: Vec<FixRound>,
    /// Why no fix was applied, when one was asked for (nothing failed; the scenario says none
    /// applies).
    pub no_fix: Option<String>,
}

/// A fix applied after the failure, and a healthy bootstrap's checks run after it.
#[derive(Debug, Clone)]
pub struct FixRound {
    /// Whose fix it is: the seed's own, or the diagnosis's.
    pub title: String,
    /// The fix, as applied.
    pub fix: Fix,
    /// Whether the scenario expects it to repair the failure.
    pub expect: Repairs,
    /// The checks after it (none when the fix could not be applied).
    pub checks: Vec<CheckResult>,
}

impl FixRound {
    /// True when a healthy bootstrap's checks all pass after the fix.
    pub fn repaired(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.holds)
    }

    /// True when the fix did what the scenario expects of it.
    pub fn holds(&self) -> bool {
        self.repaired() == (self.expect == Repairs::Repairs)
    }

    /// The round's verdict in one line.
    pub fn verdict(&self) -> String {
        let what = if self.repaired() {
            "repairs the failure"
        } else if self.checks.is_empty() {
            "could not be applied"
        } else {
            "does not repair the failure"
        };
        let expected = match (self.expect, self.holds()) {
            (_, true) => "as the scenario says",
            (Repairs::Repairs, false) => "but must repair it",
            (Repairs::DoesNotRepair, false) => "but the scenario says it does not",
        };
        format!("{} {what}, {expected}", self.title)
    }
}

impl Report {
    /// True when every expectation of the scenario held (or the scenario does not apply to this
    /// etcd, which the report says).
    pub fn holds(&self) -> bool {
        self.not_applicable.is_some()
            || (self.failure.is_none()
                && !self.checks.is_empty()
                && self.checks.iter().all(|c| c.holds)
                && self.fixes.iter().all(FixRound::holds))
    }
}

/// Evidence lines shown per diagnosis and node (the same rejection is often logged once per retry;
/// an unexplained failure shows etcd's last two errors, the unit's state and the port's holder).
pub const MAX_EVIDENCE: usize = 4;

/// One line per member: its node, etcd.service at the end, its commands, and what its own evidence
/// shows when the run was diagnosed.
fn write_members(out: &mut String, report: &Report) -> std::fmt::Result {
    let widest = |of: fn(&MemberOutcome) -> usize| report.members.iter().map(of).max();
    let host_width = widest(|m| m.host.len()).unwrap_or(0);
    let unit_width = widest(|m| m.unit.len()).unwrap_or(0);
    for member in &report.members {
        let ran: Vec<_> = report
            .transcript
            .entries()
            .iter()
            .filter(|e| e.host == Host::Node(member.host.clone()))
            .collect();
        let failed = ran.iter().filter(|e| !e.succeeded()).count();
        let address = member.address.map_or_else(String::new, |a| a.to_string());
        write!(
            out,
            "  {:host_width$}  {address:<15} etcd.service {:unit_width$}  {} commands, {failed} failed",
            member.host,
            member.unit,
            ran.len(),
        )?;
        let cause = report
            .diagnosis
            .as_ref()
            .and_then(|d| d.per_node.iter().find(|(h, _)| *h == member.host));
        match cause {
            Some((_, Cause::Unknown))
                if member.unit.to_string().starts_with("active (running)") =>
            {
                writeln!(
                    out,
                    "; fine: running, and its own evidence shows nothing wrong"
                )?
            }
            Some((_, Cause::Unknown)) => writeln!(out, "; its evidence names no cause")?,
            Some((_, cause)) => writeln!(out, "; its evidence shows {cause}")?,
            None => writeln!(out)?,
        }
    }
    Ok(())
}

/// The report as JSON: the same facts as the text, for CI tools.
pub fn to_json(report: &Report) -> serde_json::Value {
    use serde_json::json;
    let secs = |d: &Duration| d.as_secs_f64();
    let diagnosis = |d: &Diagnosis| {
        json!({
            "cause": d.cause.to_string(),
            "explanation": d.cause.explanation(),
            "fix": d.fix.lines(),
            "fix_steps": fix_steps(&d.fix),
            "evidence": d.shown_by,
            "per_node": d.per_node.iter().map(|(host, cause)| json!({"host": host, "cause": cause.to_string()})).collect::<Vec<_>>(),
        })
    };
    let check = |c: &CheckResult| {
        json!({
            "name": c.name,
            "expected": c.expected.map(crate::names::Named::name),
            "holds": c.holds,
            "applies": c.applies,
            "summary": c.summary,
            "details": c.details,
            "diagnosis": c.diagnosis.as_ref().map(diagnosis),
        })
    };
    json!({
        "scenario": report.scenario,
        "description": report.description,
        "holds": report.holds(),
        "etcd_version": report.etcd_version,
        "etcd_origin": report.etcd_origin,
        "image": report.image,
        "not_applicable": report.not_applicable,
        "failure": report.failure,
        "transcript": report.transcript.entries().iter().map(|e| json!({
            "step": e.step,
            "host": match &e.host { Host::Jumpbox => "jumpbox", Host::Node(host) => host.as_str() },
            "command": e.command,
            "exit_code": e.exit_code,
            "stdout": e.stdout,
            "stderr": e.stderr,
            "seconds": secs(&e.duration),
            "rerun": e.origin == crate::transcript::Origin::Rerun,
            "meanwhile": e.origin == crate::transcript::Origin::Meanwhile,
            "stopped_after_seconds": e.stopped_after.as_ref().map(secs),
        })).collect::<Vec<_>>(),
        "checks": report.checks.iter().map(check).collect::<Vec<_>>(),
        "fixes": report.fixes.iter().map(|round| json!({
            "fix": round.title,
            "steps": round.fix.lines(),
            "fix_steps": fix_steps(&round.fix),
            "expected": crate::names::Named::name(round.expect),
            "repaired": round.repaired(),
            "holds": round.holds(),
            "checks": round.checks.iter().map(check).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "no_fix": report.no_fix,
        "members": report.members.iter().map(|m| json!({
            "host": m.host,
            "address": m.address.map(|a| a.to_string()),
            "unit": m.unit,
            "cause": report.diagnosis.as_ref().and_then(|d| d.per_node.iter().find(|(h, _)| *h == m.host)).map(|(_, c)| c.to_string()),
        })).collect::<Vec<_>>(),
        "diagnosis": report.diagnosis.as_ref().map(diagnosis),
        "timings": report.timings.iter().map(|lap| json!({
            "phase": lap.phase.name(),
            "seconds": secs(&lap.wall),
            "busy_core_seconds": lap.cpu.map(|cpu| json!({
                "machine": secs(&cpu.machine),
                "harness": secs(&cpu.harness),
                "engine": secs(&cpu.engine),
            })),
        })).collect::<Vec<_>>(),
        "kept": report.kept.as_ref().map(|k| json!({
            "containers": k.containers,
            "switch": k.switch,
            "jumpbox": k.jumpbox,
        })),
        "artefacts": report.artefacts,
    })
}

/// A fix's steps for machines: what each does and where (none for advice, which is not applied).
fn fix_steps(fix: &Fix) -> serde_json::Value {
    use crate::fix::FixStep;
    use serde_json::json;
    let Fix::Steps(steps) = fix else {
        return json!([]);
    };
    steps
        .iter()
        .map(|step| match step {
            FixStep::Run { on, command } => json!({"kind": "run", "on": on, "command": command}),
            FixStep::Scp { on, files } => json!({"kind": "scp", "on": on, "files": files}),
            FixStep::Reissue(which) => json!({"kind": "reissue", "files": which.files()}),
            FixStep::Retry {
                command,
                set,
                remove,
            } => json!({
                "kind": "retry",
                "command": (!command.is_empty()).then(|| step.rewrite(command)),
                "set": set,
                "remove": remove,
            }),
        })
        .collect()
}

/// The report as text.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_report(&mut out, report);
    out
}

fn write_report(out: &mut String, report: &Report) -> std::fmt::Result {
    writeln!(
        out,
        "scenario: {} — {}",
        report.scenario, report.description
    )?;
    writeln!(
        out,
        "etcd:     {} ({})",
        report.etcd_version.as_deref().unwrap_or("not installed"),
        report.etcd_origin
    )?;
    writeln!(out, "node:     {}", report.image)?;
    if let Some(why) = &report.not_applicable {
        return writeln!(out, "\nN/A: the scenario is {why}; nothing ran");
    }
    writeln!(out, "\ntranscript:")?;
    write!(out, "{}", report.transcript)?;
    if let Some(failure) = &report.failure {
        writeln!(out, "\nunexpected failure: {failure}")?;
    }
    if !report.checks.is_empty() {
        writeln!(out, "\nchecks:")?;
        for check in &report.checks {
            write!(out, "{check}")?;
        }
    }
    if report.members.len() > 1 {
        writeln!(out, "\nmembers:")?;
        write_members(out, report)?;
    }
    if let Some(d) = &report.diagnosis {
        writeln!(out, "\ndiagnosis: {} — {}", d.cause, d.cause.explanation())?;
        // A few lines per node: each retry logs the same rejection again.
        let mut shown: Vec<(&str, usize)> = Vec::new();
        for line in &d.shown_by {
            let node = line.split_once(": ").map_or("", |(node, _)| node);
            let node = if d.per_node.iter().any(|(h, _)| h == node) {
                node
            } else {
                ""
            };
            match shown.iter_mut().find(|(n, _)| *n == node) {
                Some((_, count)) if *count >= MAX_EVIDENCE => continue,
                Some((_, count)) => *count += 1,
                None => shown.push((node, 1)),
            }
            writeln!(out, "  evidence: {line}")?;
        }
        for line in d.fix.lines() {
            writeln!(out, "  fix: {line}")?;
        }
    }
    for (n, round) in report.fixes.iter().enumerate() {
        writeln!(out, "\nfix {} — {}:", n + 1, round.title)?;
        for line in round.fix.lines() {
            writeln!(out, "  {line}")?;
        }
        if !round.checks.is_empty() {
            writeln!(out, "checks after it (a healthy bootstrap's):")?;
            for check in &round.checks {
                write!(out, "{check}")?;
            }
        }
        writeln!(
            out,
            "{} {}",
            if round.holds() { "ok:" } else { "FAIL:" },
            round.verdict()
        )?;
    }
    if let Some(why) = &report.no_fix {
        writeln!(out, "\nno fix applied: {why}")?;
    }
    if let Some(dir) = &report.artefacts {
        writeln!(out, "\nartefacts: {}", dir.display())?;
    }
    if let Some(kept) = &report.kept {
        let ids: Vec<&str> = kept
            .containers
            .iter()
            .map(|c| crate::engine::short(c))
            .collect();
        writeln!(out)?;
        // The engine the run used, for a shell that may not have DOCKER_HOST set.
        let docker = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .map_or_else(
                || "docker".to_owned(),
                |host| format!("DOCKER_HOST={host} docker"),
            );
        for id in &ids {
            writeln!(out, "node kept: {docker} exec -it {id} bash")?;
        }
        writeln!(out, "PKI and jumpbox: {}", kept.jumpbox.display())?;
        writeln!(
            out,
            "remove with: etcd-harness clean --kept (or {docker} rm -f {} {})",
            ids.join(" "),
            kept.switch
        )?;
    }
    let applicable: Vec<_> = report.checks.iter().filter(|c| c.applies).collect();
    let held = applicable.iter().filter(|c| c.holds).count();
    let not_applicable = report.checks.len() - applicable.len();
    writeln!(
        out,
        "\n{}: {held} of {} checks hold{}{}{}",
        if report.holds() { "PASS" } else { "FAIL" },
        applicable.len(),
        if not_applicable > 0 {
            format!(" ({not_applicable} not applicable to this etcd)")
        } else {
            String::new()
        },
        if report.failure.is_some() {
            "; the bootstrap did not get etcd running"
        } else {
            ""
        },
        match report.fixes.iter().filter(|r| !r.holds()).count() {
            _ if report.fixes.is_empty() => String::new(),
            0 => format!(
                "; {} fix(es) did what the scenario says",
                report.fixes.len()
            ),
            failed => format!(
                "; {failed} of {} fix(es) did not do what the scenario says",
                report.fixes.len()
            ),
        }
    )
}
