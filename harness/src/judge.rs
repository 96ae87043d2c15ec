//! The judges: pure functions from what a run observed — its transcript, the unit's end state, the
//! journal, the diagnosis — and what the scenario expects, to check results. Nothing here touches a
//! node; the runner gathers, these decide, and unit tests pin every rule.

use semver::Version;

use crate::checks::CheckResult;
use crate::diagnose::{Cause, Diagnosis};
use crate::scenario::{ExpectStep, ExpectUnit, Scenario};
use crate::transcript::{Entry, Host, Origin, Transcript};
use crate::unit::UnitState;
use crate::versions::{self, EtcdReq};

/// Why something with requirement `req` does not apply to `version`.
pub fn not_applicable(req: Option<&EtcdReq>, version: Option<&Version>) -> String {
    let req = req.map_or_else(String::new, |r| r.to_string());
    match version {
        Some(version) => format!("not applicable: for etcd {req}, and this is {version}"),
        None => format!("not applicable: for etcd {req}, and etcd did not say its version"),
    }
}

/// Each step must exit as the scenario says (0 unless named), on every node it ran on; an
/// expectation naming a host applies to that node's run of the step only. A step that did not run
/// fails its expectation.
pub fn steps(
    scenario: &Scenario,
    transcript: &Transcript,
    version: Option<&Version>,
) -> Vec<CheckResult> {
    let mut results = Vec::new();
    for step in scenario.all_steps() {
        let wants: Vec<&ExpectStep> = scenario
            .expect_steps
            .iter()
            .filter(|e| step.name.starts_with(e.step.as_str()))
            .collect();
        let (wants, not): (Vec<&ExpectStep>, Vec<&ExpectStep>) = wants
            .into_iter()
            .partition(|e| versions::applies(e.etcd.as_ref(), version));
        for want in not {
            results.push(CheckResult::not_applicable(
                &format!("{} exits {}", step.name, want.exit_code),
                not_applicable(want.etcd.as_ref(), version),
            ));
        }
        let ran: Vec<&Entry> = transcript
            .entries()
            .iter()
            .filter(|e| e.step == step.name && e.origin == Origin::First)
            .collect();
        let several = ran.len() > 1;
        for entry in &ran {
            let host = match &entry.host {
                Host::Node(host) => Some(host.as_str()),
                Host::Jumpbox => None,
            };
            let want = wants
                .iter()
                .find(|e| e.host.is_none() || e.host.as_deref() == host);
            let code = want.map_or(0, |e| e.exit_code);
            let output = want
                .and_then(|e| e.output.as_ref())
                .and_then(|o| o.for_version(version));
            let holds_code = entry.exit_code == code;
            let printed = entry.output();
            let (holds, summary) = match output {
                _ if !holds_code => (false, format!("exit {}", entry.exit_code)),
                Some(texts) => match texts.iter().find(|t| printed.contains(t.as_str())) {
                    Some(text) => (true, format!("exit {code}, printed `{text}`")),
                    None => (
                        false,
                        format!(
                            "exit {code}, but did not print {}",
                            texts
                                .iter()
                                .map(|t| format!("`{t}`"))
                                .collect::<Vec<_>>()
                                .join(" or ")
                        ),
                    ),
                },
                // Steps the scenario says nothing about must simply succeed; only a failure is news.
                None if want.is_none() => continue,
                None => (true, format!("exit {code}")),
            };
            let on = match host {
                Some(host) if several || want.is_some_and(|w| w.host.is_some()) => {
                    format!(" on {host}")
                }
                _ => String::new(),
            };
            results.push(CheckResult::observed(
                &format!("{}{on} exits {code}", step.name),
                holds,
                summary,
                Vec::new(),
            ));
        }
        // An expectation no run of the step met: the step did not run there.
        for want in &wants {
            let ran_there = ran.iter().any(|e| match (&want.host, &e.host) {
                (None, _) => true,
                (Some(want), Host::Node(host)) => want == host,
                (Some(_), Host::Jumpbox) => false,
            });
            if !ran_there {
                let on = want
                    .host
                    .as_ref()
                    .map_or_else(String::new, |h| format!(" on {h}"));
                results.push(CheckResult::observed(
                    &format!("{}{on} exits {}", step.name, want.exit_code),
                    false,
                    "did not run".to_owned(),
                    Vec::new(),
                ));
            }
        }
    }
    results
}

/// Every step of a second bootstrap must exit 0 (re-running the tutorial must be harmless).
pub fn rerun(transcript: &Transcript) -> CheckResult {
    let again: Vec<&Entry> = transcript
        .entries()
        .iter()
        .filter(|e| e.origin == Origin::Rerun)
        .collect();
    let failed: Vec<String> = again
        .iter()
        .filter(|e| !e.succeeded())
        .map(|e| format!("{}: exit {}", e.step, e.exit_code))
        .collect();
    CheckResult::observed(
        "the bootstrap run a second time: every step exits 0",
        !again.is_empty() && failed.is_empty(),
        format!(
            "{} of {} steps exit 0",
            again.len() - failed.len(),
            again.len()
        ),
        failed,
    )
}

/// A unit's end state, on node `host`, as an `[expect_unit]` says.
pub fn unit(want: &ExpectUnit, host: &str, state: &UnitState) -> CheckResult {
    let mut mismatches = Vec::new();
    let mut compare = |field: &str, want: Option<String>, got: String| {
        if let Some(want) = want {
            if want != got {
                mismatches.push(format!("{field}: expected {want}, got {got}"));
            }
        }
    };
    compare(
        "ActiveState",
        want.active_state.clone(),
        state.active_name.clone(),
    );
    compare("SubState", want.sub_state.clone(), state.sub_state.clone());
    compare(
        "NRestarts",
        want.restarts.map(|r| r.to_string()),
        state.restarts.to_string(),
    );
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
    compare(
        "NeedDaemonReload",
        want.need_daemon_reload.map(yes_no),
        yes_no(state.need_daemon_reload),
    );
    let name = match &want.host {
        Some(_) => format!("etcd.service state on {host}"),
        None => "etcd.service state".to_owned(),
    };
    CheckResult::observed(&name, mismatches.is_empty(), state.to_string(), mismatches)
}

/// Every `[[journal]]` expectation that applies to `version`, against its member's journal
/// (`journals`: host and text, in the members' order).
pub fn journal(
    scenario: &Scenario,
    journals: &[(String, String)],
    version: Option<&Version>,
) -> Vec<CheckResult> {
    scenario
        .journal
        .iter()
        .map(|want| {
            let on = want
                .host
                .as_ref()
                .map_or_else(String::new, |h| format!(" on {h}"));
            let name = format!("{}{on}", want.pattern);
            if !versions::applies(want.etcd.as_ref(), version) {
                return CheckResult::not_applicable(
                    &name,
                    not_applicable(want.etcd.as_ref(), version),
                );
            }
            let journal = match &want.host {
                Some(host) => journals.iter().find(|(h, _)| h == host),
                None => journals.first(),
            };
            let found = journal.is_some_and(|(_, text)| want.pattern.found_in(text));
            CheckResult::observed(
                &name,
                found,
                if found {
                    "found".into()
                } else {
                    "not found in the run's journal".into()
                },
                Vec::new(),
            )
        })
        .collect()
}

/// The run's diagnosis must name `want`.
pub fn diagnosis(want: Cause, got: Option<&Diagnosis>) -> CheckResult {
    let got = got.map(|d| d.cause);
    CheckResult::observed(
        "diagnosis",
        got == Some(want),
        format!(
            "names `{}`",
            got.map(|c| c.name())
                .unwrap_or("nothing: no failure to diagnose")
        ),
        if got == Some(want) {
            Vec::new()
        } else {
            vec![format!("expected `{want}`")]
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ExecOutput;
    use std::time::Duration;

    /// A scenario from `extra` TOML on top of a minimal valid one; its steps file has steps
    /// "Step 1" and "Step 2".
    fn scenario(extra: &str) -> (tempfile::TempDir, Scenario) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("unit.service"), "[Service]\n").unwrap();
        std::fs::write(
            dir.path().join("steps.toml"),
            "description = \"s\"\n[[step]]\nname = \"Step 1\"\non = \"server\"\nrun = \"true\"\n\
             [[step]]\nname = \"Step 2\"\non = \"server\"\nrun = \"true\"\n",
        )
        .unwrap();
        let file = dir.path().join("case.toml");
        let text = format!(
            "description = \"d\"\nunit = \"unit.service\"\nsteps = \"steps.toml\"\n{extra}\n\
             [member]\nname = \"controller\"\npeer_url = \"http://127.0.0.1:2380\"\n\
             client_url = \"http://127.0.0.1:2379\"\n"
        );
        let scenario = Scenario::parse(&file, &text).unwrap_or_else(|e| panic!("{e}"));
        (dir, scenario)
    }

    fn ran(step: &str, exit_code: i64, stdout: &str) -> Entry {
        Entry::of_exec(
            step,
            "server",
            "true",
            ExecOutput {
                exit_code,
                stdout: stdout.into(),
                stderr: String::new(),
                duration: Duration::ZERO,
            },
        )
    }

    fn version(v: &str) -> Version {
        Version::parse(v).unwrap()
    }

    #[test]
    fn a_step_the_scenario_names_must_exit_and_print_as_it_says() {
        let (_dir, scenario) = scenario(
            "[[expect_step]]\nstep = \"Step 2\"\nexit_code = 1\noutput = \"bind: address already in use\"",
        );
        let mut transcript = Transcript::default();
        transcript.push(ran("Step 1", 0, ""));
        transcript.push(ran("Step 2", 1, "listen tcp: bind: address already in use"));
        let results = steps(&scenario, &transcript, None);
        assert_eq!(results.len(), 1, "an unnamed step that exits 0 is no news");
        assert!(results[0].holds, "{}", results[0]);

        let mut transcript = Transcript::default();
        transcript.push(ran("Step 1", 0, ""));
        transcript.push(ran("Step 2", 1, "something else"));
        assert!(!steps(&scenario, &transcript, None)[0].holds);

        let mut transcript = Transcript::default();
        transcript.push(ran("Step 1", 3, ""));
        let results = steps(&scenario, &transcript, None);
        assert!(!results[0].holds, "an unnamed step must exit 0");
        assert_eq!(results[1].summary, "did not run");
        assert!(!results[1].holds);
    }

    #[test]
    fn a_step_expectation_naming_a_host_judges_that_nodes_run_only() {
        let (_dir, mut scenario) = scenario("[[expect_step]]\nstep = \"Step 2\"\nexit_code = 1");
        scenario.expect_steps[0].host = Some("b".into());
        let on = |host: &str, code| Entry {
            host: Host::Node(host.into()),
            ..ran("Step 2", code, "")
        };
        let mut transcript = Transcript::default();
        transcript.push(ran("Step 1", 0, ""));
        transcript.push(on("a", 0));
        transcript.push(on("b", 1));
        let results = steps(&scenario, &transcript, None);
        assert_eq!(results.len(), 1, "{results:?}");
        assert_eq!(results[0].name, "Step 2 on b exits 1");
        assert!(results[0].holds, "{}", results[0]);

        let mut transcript = Transcript::default();
        transcript.push(on("a", 1));
        transcript.push(on("b", 1));
        let results = steps(&scenario, &transcript, None);
        let failed: Vec<&str> = results
            .iter()
            .filter(|r| !r.holds)
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(
            failed,
            ["Step 2 on a exits 0"],
            "the others must still exit 0"
        );

        let mut transcript = Transcript::default();
        transcript.push(on("a", 0));
        let results = steps(&scenario, &transcript, None);
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].name, "Step 2 on b exits 1");
        assert_eq!(results[0].summary, "did not run");
    }

    #[test]
    fn a_step_expectation_for_another_version_is_not_applicable() {
        let (_dir, scenario) =
            scenario("[[expect_step]]\nstep = \"Step 2\"\nexit_code = 1\netcd = \">=3.5\"");
        let mut transcript = Transcript::default();
        transcript.push(ran("Step 1", 0, ""));
        transcript.push(ran("Step 2", 0, ""));
        let results = steps(&scenario, &transcript, Some(&version("3.4.23")));
        assert_eq!(results.len(), 1);
        assert!(!results[0].applies && results[0].holds, "{}", results[0]);
        let results = steps(&scenario, &transcript, Some(&version("3.5.16")));
        assert!(results[0].applies && !results[0].holds, "{}", results[0]);
    }

    #[test]
    fn a_rerun_holds_only_when_it_ran_and_every_step_exited_0() {
        let rerun_of = |codes: &[i64]| {
            let mut transcript = Transcript::default();
            transcript.push(ran("Step 1", 0, ""));
            for code in codes {
                transcript.push(Entry {
                    origin: Origin::Rerun,
                    ..ran("Step 1", *code, "")
                });
            }
            rerun(&transcript)
        };
        assert!(rerun_of(&[0, 0]).holds);
        assert!(!rerun_of(&[0, 1]).holds);
        assert!(
            !rerun_of(&[]).holds,
            "a rerun that did not happen does not hold"
        );
    }

    #[test]
    fn the_unit_state_is_compared_field_by_field_in_systemds_words() {
        let (_dir, scenario) =
            scenario("[expect_unit]\nactive_state = \"activating\"\nsub_state = \"auto-restart\"");
        let want = &scenario.expect_unit[0];
        let crash_loop =
            UnitState::parse("ActiveState=activating\nSubState=auto-restart\nNRestarts=2\n");
        assert!(unit(want, "server", &crash_loop).holds);
        let running = UnitState::parse("ActiveState=active\nSubState=running\nNRestarts=0\n");
        let result = unit(want, "server", &running);
        assert!(!result.holds);
        assert!(
            result
                .details
                .contains(&"ActiveState: expected activating, got active".to_owned()),
            "{result}"
        );
        assert_eq!(result.name, "etcd.service state");
    }

    #[test]
    fn journal_expectations_match_text_and_json_lines_and_respect_versions() {
        let (_dir, scenario) = scenario(
            "[[journal]]\ncontains = \"check file permission: directory\"\n\
             [[journal]]\ncontains = \"only on 3.5\"\netcd = \">=3.5\"",
        );
        let json = r#"etcd[1]: {"level":"warn","msg":"check file permission","error":"directory \"/var/lib/etcd\" exist"}"#;
        let of = |text: &str| [("server".to_owned(), text.to_owned())];
        let results = journal(&scenario, &of(json), Some(&version("3.4.23")));
        assert!(results[0].holds, "{}", results[0]);
        assert!(!results[1].applies);
        let results = journal(&scenario, &of("nothing"), Some(&version("3.5.16")));
        assert!(!results[0].holds && !results[1].holds);
    }

    #[test]
    fn a_journal_expectation_naming_a_member_reads_that_members_journal() {
        let (_dir, mut scenario) = scenario("[[journal]]\ncontains = \"bad certificate\"");
        let journals = [
            ("controller-0".to_owned(), "all quiet".to_owned()),
            ("controller-2".to_owned(), "tls: bad certificate".to_owned()),
        ];
        assert!(
            !journal(&scenario, &journals, None)[0].holds,
            "the first member's by default"
        );
        scenario.journal[0].host = Some("controller-2".into());
        let results = journal(&scenario, &journals, None);
        assert!(results[0].holds, "{}", results[0]);
        assert_eq!(
            results[0].name,
            "a journal line contains `bad certificate` on controller-2"
        );
    }

    #[test]
    fn the_diagnosis_must_name_the_expected_cause() {
        let found = Diagnosis {
            cause: Cause::PortInUse,
            shown_by: vec!["bind: address already in use".into()],
            per_node: Vec::new(),
            fix: crate::fix::Fix::Advice(String::new()),
        };
        assert!(diagnosis(Cause::PortInUse, Some(&found)).holds);
        let wrong = diagnosis(Cause::BadFlag, Some(&found));
        assert!(!wrong.holds);
        assert_eq!(wrong.details, ["expected `bad-flag`"]);
        assert!(!diagnosis(Cause::BadFlag, None).holds);
    }
}
