//! Proves fixes: once a scenario's failure is reproduced and diagnosed, applies the fix — the seed's
//! own first when the scenario asks whether it works, then the diagnosis's — on the nodes as the
//! reader would, and runs a healthy bootstrap's checks after each ([`Scenario::healthy`]). Each
//! becomes a [`FixRound`] of the report, beside the failure it repairs (or does not).

use std::path::Path;
use std::time::{Duration, Instant};

use semver::Version;

use crate::checks::CheckResult;
use crate::cluster::Cluster;
use crate::diagnose::Diagnosis;
use crate::fix::{self, Fix, FixStep, Reissue};
use crate::pki::Pki;
use crate::report::{FixRound, Report};
use crate::runner::{self, RunError};
use crate::scenario::{Repairs, Scenario};
use crate::steps::{self, Step, Target};
use crate::transcript::{Entry, Host, Transcript};
use crate::unit::{self, UnitError};

/// How long one of a fix's commands may run (a `systemctl restart` waits for etcd's readiness).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// How long each member's unit gets to be active after a fix (a unit that fails or crash-loops
/// ends the wait at once).
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(95);

/// What proving a fix works with: the run's nodes, its scenario and jumpbox, the PKI that issues a
/// certificate anew, and the etcd version under test.
struct Proof<'a> {
    cluster: &'a Cluster,
    scenario: &'a Scenario,
    jumpbox: &'a Path,
    pki: &'a mut Pki,
    version: Option<&'a Version>,
}

/// Applies the fixes the scenario's `[fix]` asks for (the diagnosis's alone when it has none, as
/// `run --fix` does) after its failure, and records each round in `report`.
pub async fn prove(
    cluster: &Cluster,
    scenario: &Scenario,
    jumpbox: &Path,
    pki: &mut Pki,
    version: Option<&Version>,
    report: &mut Report,
) -> Result<(), RunError> {
    let spec = scenario.fix.clone().unwrap_or_default();
    if let Some(why) = spec.none {
        report.no_fix = Some(format!("the scenario says no fix applies: {why}"));
        return Ok(());
    }
    let Some(diagnosis) = diagnosed(report) else {
        if scenario.fix.is_some() {
            report.fixes.push(FixRound {
                title: "the diagnosis's fix".into(),
                fix: Fix::Advice(
                    "nothing failed, so nothing was diagnosed and there is no fix to prove".into(),
                ),
                expect: Repairs::Repairs,
                checks: Vec::new(),
            });
        } else {
            report.no_fix = Some("nothing failed: there is nothing to fix".into());
        }
        return Ok(());
    };
    let mut proof = Proof {
        cluster,
        scenario,
        jumpbox,
        pki,
        version,
    };
    let host = diagnosed_host(&diagnosis.fix).unwrap_or_else(|| cluster.first().host().to_owned());
    if let Some(expect) = spec.seed {
        match fix::seed_fix(diagnosis.cause, &host) {
            Some(seed) => {
                let round = proof
                    .round(report, "the seed's own fix".into(), seed, expect, None)
                    .await?;
                report.fixes.push(round);
            }
            None => report.checks.push(CheckResult::observed(
                "the seed's own fix",
                false,
                format!(
                    "the scenario says whether the seed's fix repairs the failure, but the seed \
                     gives no fix for `{}`",
                    diagnosis.cause
                ),
                vec!["remove `seed` from `[fix]`".into()],
            )),
        }
    }
    let title = format!("the diagnosis's fix ({})", diagnosis.cause);
    let round = proof
        .round(
            report,
            title,
            diagnosis.fix.clone(),
            Repairs::Repairs,
            spec.name.as_deref(),
        )
        .await?;
    report.fixes.push(round);
    Ok(())
}

/// The failure's diagnosis: the run's, or else that of the first check that failed and was
/// diagnosed (a seed command a client's mistake made fail).
fn diagnosed(report: &Report) -> Option<Diagnosis> {
    report
        .diagnosis
        .clone()
        .or_else(|| report.checks.iter().find_map(|c| c.diagnosis.clone()))
}

/// The member a fix's first step acts on.
fn diagnosed_host(fix: &Fix) -> Option<String> {
    let Fix::Steps(steps) = fix else {
        return None;
    };
    steps.iter().find_map(|step| match step {
        FixStep::Run { on, .. } | FixStep::Scp { on, .. } => Some(on.clone()),
        FixStep::Reissue(Reissue::Member(host)) => Some(host.clone()),
        _ => None,
    })
}

impl Proof<'_> {
    /// Applies `fix` and runs a healthy bootstrap's checks after it (the first member named
    /// `name`, where the fix renames it).
    async fn round(
        &mut self,
        report: &mut Report,
        title: String,
        fix: Fix,
        expect: Repairs,
        name: Option<&str>,
    ) -> Result<FixRound, RunError> {
        let Fix::Steps(steps) = &fix else {
            return Ok(FixRound {
                title,
                fix,
                expect,
                checks: Vec::new(),
            });
        };
        let label = format!("Fix: {title}");
        let transcript = &mut report.transcript;
        let mut checks = self.apply(steps, &label, transcript).await?;
        let healthy = self.scenario.healthy(fix.retry(), name);
        checks.extend(recheck(self.cluster, &healthy, self.pki, self.version, transcript).await?);
        Ok(FixRound {
            title,
            fix,
            expect,
            checks,
        })
    }

    /// Carries out a fix's steps in order; a command that exits non-zero is a failed check (the steps
    /// after it still run, as a reader would go on).
    async fn apply(
        &mut self,
        steps: &[FixStep],
        label: &str,
        transcript: &mut Transcript,
    ) -> Result<Vec<CheckResult>, RunError> {
        let (cluster, jumpbox) = (self.cluster, self.jumpbox);
        let nodes: Vec<_> = cluster.nodes().collect();
        let mut failed = Vec::new();
        for step in steps {
            let entries = match step {
                FixStep::Run { on, command } => {
                    let node = cluster.node(on).unwrap_or_else(|| cluster.first());
                    let out = node.shell(command, COMMAND_TIMEOUT).await?;
                    vec![Entry::of_exec(label, node.host(), command, out)]
                }
                FixStep::Scp { on, files } => {
                    let scp = Step {
                        name: label.to_owned(),
                        on: Target::Jumpbox,
                        command: format!("scp {} root@{on}:~/", files.join(" ")),
                        line: 0,
                        action: steps::Action::Scp {
                            sources: files.clone(),
                            to: on.clone(),
                            dir: "/root".into(),
                        },
                    };
                    steps::run_on(&scp, &nodes, jumpbox).await?
                }
                FixStep::Reissue(which) => {
                    let start = Instant::now();
                    reissue(which, self.scenario, jumpbox, self.pki)?;
                    vec![Entry::done(
                        label,
                        Host::Jumpbox,
                        step.to_string(),
                        start.elapsed(),
                    )]
                }
                // The client's fix changes the failing command, which the checks run again.
                FixStep::Retry { .. } => Vec::new(),
            };
            for entry in entries {
                if !entry.succeeded() {
                    failed.push(CheckResult::observed(
                        &format!("fix step `{}`", entry.command),
                        false,
                        format!("exit {}", entry.exit_code),
                        entry.output().lines().take(3).map(String::from).collect(),
                    ));
                }
                transcript.push(entry);
            }
        }
        Ok(failed)
    }
}

/// Issues a certificate anew with the run's CA and writes it where the bootstrap copies it from.
fn reissue(
    which: &Reissue,
    scenario: &Scenario,
    jumpbox: &Path,
    pki: &mut Pki,
) -> Result<(), RunError> {
    match which {
        Reissue::Server => {
            pki.reissue_server()?;
            pki.write_to(jumpbox)?;
        }
        Reissue::Member(host) => {
            if let Some(identity) =
                pki.reissue_member(&scenario.member_names(), scenario.certs, host)?
            {
                identity.write_to(&jumpbox.join("nodes").join(host), "kubernetes")?;
            }
        }
    }
    Ok(())
}

/// A healthy bootstrap's checks: every member's unit active, running the definition on disk, then
/// the harness's checks and the seed commands of `healthy`.
async fn recheck(
    cluster: &Cluster,
    healthy: &Scenario,
    pki: &Pki,
    version: Option<&Version>,
    transcript: &mut Transcript,
) -> Result<Vec<CheckResult>, RunError> {
    let waits = futures_util::future::join_all(
        cluster
            .nodes()
            .map(|node| unit::wait_active(node, ACTIVE_TIMEOUT, false)),
    )
    .await;
    let mut results = Vec::new();
    let mut first = None;
    let mut down = Vec::new();
    for (node, waited) in cluster.nodes().zip(waits) {
        let name = format!("etcd.service on {} after the fix", node.host());
        let result = match waited {
            Ok(state) => {
                let result = if state.need_daemon_reload {
                    CheckResult::observed(
                        &name,
                        false,
                        format!("active, but runs an old definition: {state}"),
                        vec![
                            "systemd still runs the unit it loaded before the file changed".into(),
                        ],
                    )
                } else {
                    CheckResult::observed(&name, true, format!("{state}"), Vec::new())
                };
                if node.host() == cluster.first().host() {
                    first = Some(state);
                }
                result
            }
            Err(UnitError::Engine(e)) => return Err(e.into()),
            Err(e) => {
                down.push(node.host().to_owned());
                CheckResult::observed(&name, false, e.to_string(), Vec::new())
            }
        };
        results.push(result);
    }
    if !down.is_empty() {
        // The fix did not get etcd running: what listens on its port now may not be etcd at all.
        results.push(CheckResult::observed(
            "a healthy bootstrap's checks",
            false,
            format!("not run: etcd.service is not active on {}", down.join(", ")),
            Vec::new(),
        ));
        return Ok(results);
    }
    let tls = runner::client_tls(healthy, pki)?;
    let checks = runner::run_checks(
        cluster,
        healthy,
        tls.as_ref(),
        first.as_ref(),
        Instant::now(),
        version,
    )
    .await?;
    for entry in checks.iter().filter_map(|c| c.entry.clone()) {
        transcript.push(entry);
    }
    results.extend(checks);
    Ok(results)
}
