//! Scenarios as data: a TOML file says which unit file and bootstrap steps to use, what etcd's member
//! list must show, and which checks and seed commands must pass or fail (and why).
//!
//! Parsing is strict (unknown keys are errors), then paths are resolved relative to the scenario file
//! and validated; every error names the file, the line and the field. Running a scenario is
//! [`crate::runner`]'s job.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::diagnose::Cause;
use crate::steps::{Bootstrap, StepsError};

/// Errors reading a scenario file.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("failed to read scenario {file}: {source}")]
    Read {
        /// The scenario file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid scenario (syntax, unknown or missing field, wrong type).
    #[error("{file}:{line}: {message}")]
    Parse {
        /// The scenario file.
        file: PathBuf,
        /// The 1-based line of the error.
        line: usize,
        /// What is wrong, naming the field.
        message: String,
    },
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// It must succeed.
    #[default]
    Pass,
    /// It must fail (and an expectation's details say how).
    Fail,
}

/// What `member list` must show for the single member.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExpectedMember {
    /// The member's name (`--name`).
    pub name: String,
    /// The member ID, 16 hex digits as etcdctl prints it.
    pub id: String,
    /// The peer URL.
    pub peer_url: String,
    /// The client URL; its scheme decides whether the harness's client speaks TLS.
    pub client_url: String,
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

/// Expectations of the harness's own checks over etcd-client.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Checks {
    /// Member list over the client URL shows exactly the expected member.
    #[serde(default)]
    pub member_list: Expect,
    /// The unit stays active and a linearizable read is served.
    #[serde(default)]
    pub health: Expect,
    /// `/registry/` keys written as an API server would can be read back by prefix.
    #[serde(default)]
    pub registry: Expect,
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    description: String,
    unit: Spanned<PathBuf>,
    #[serde(default = "default_steps")]
    steps: Spanned<PathBuf>,
    member: Spanned<ExpectedMember>,
    #[serde(default)]
    checks: Checks,
    #[serde(default)]
    seed_command: Vec<Spanned<SeedCommand>>,
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
    /// The unit file installed as `etcd.service`.
    pub unit_file: PathBuf,
    /// The bootstrap's steps.
    pub bootstrap: Bootstrap,
    /// What member list must show.
    pub member: ExpectedMember,
    /// Expectations of the harness's checks.
    pub checks: Checks,
    /// The seed's commands to run verbatim, in order.
    pub seed_commands: Vec<SeedCommand>,
}

impl Scenario {
    /// Reads, parses and validates the scenario file at `file`.
    pub fn load(file: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(file).map_err(|source| ScenarioError::Read {
            file: file.to_owned(),
            source,
        })?;
        Self::parse(file, &text)
    }

    /// Parses and validates scenario `text`, read from `file` (paths resolve against its directory).
    pub fn parse(file: &Path, text: &str) -> Result<Self, ScenarioError> {
        let raw: RawScenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            file: file.to_owned(),
            line: e.span().map(|s| line_of(text, s.start)).unwrap_or(1),
            message: e.message().trim().to_owned(),
        })?;
        let invalid =
            |span: std::ops::Range<usize>, field, problem: String| ScenarioError::Invalid {
                file: file.to_owned(),
                line: line_of(text, span.start),
                field,
                problem,
            };
        let dir = file.parent().unwrap_or(Path::new("."));
        let unit_file = dir.join(raw.unit.get_ref());
        if !unit_file.is_file() {
            return Err(invalid(
                raw.unit.span(),
                "unit",
                format!(
                    "no unit file at {} (paths are relative to the scenario file)",
                    unit_file.display()
                ),
            ));
        }
        let steps_file = dir.join(raw.steps.get_ref());
        if !steps_file.is_file() {
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
        let member = raw.member.into_inner();
        if member.id.len() != 16 || !member.id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(invalid(
                member_span,
                "member.id",
                format!(
                    "`{}` is not 16 hex digits as etcdctl prints a member ID",
                    member.id
                ),
            ));
        }
        if member.client_port().is_none() {
            return Err(invalid(
                member_span,
                "member.client_url",
                format!(
                    "`{}` has no port (expected e.g. https://127.0.0.1:2379)",
                    member.client_url
                ),
            ));
        }
        let mut seed_commands = Vec::new();
        for spanned in raw.seed_command {
            let span = spanned.span();
            let command = spanned.into_inner();
            if command.expect == Expect::Pass {
                let described = [
                    ("seed_command.error", command.error.is_some()),
                    ("seed_command.cause", command.cause.is_some()),
                ];
                if let Some((field, _)) = described.into_iter().find(|(_, present)| *present) {
                    return Err(invalid(
                        span,
                        field,
                        "describes a failure, but this command has expect = \"pass\"".into(),
                    ));
                }
            }
            seed_commands.push(command);
        }
        Ok(Self {
            name: file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            file: file.to_owned(),
            description: raw.description,
            unit_file,
            bootstrap: Bootstrap::load(&steps_file)?,
            member,
            checks: raw.checks,
            seed_commands,
        })
    }
}

/// The 1-based line holding byte `offset` of `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The scenario files of `dir` (`*.toml`, not descending), sorted by name.
pub fn discover(dir: &Path) -> Result<Vec<PathBuf>, ScenarioError> {
    let read = |source| ScenarioError::Read {
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
cause = "tls-required"
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
        assert_eq!(scenario.unit_file, dir.path().join("unit.service"));
        assert!(scenario.member.tls());
        assert_eq!(scenario.member.client_port(), Some(2379));
        assert_eq!(scenario.checks, Checks::default());
        assert_eq!(scenario.seed_commands[0].cause, Some(Cause::TlsRequired));
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
    fn an_unknown_cause_is_refused() {
        let err = error_of(&GOOD.replace("tls-required", "gremlins"));
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
}
