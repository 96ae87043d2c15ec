//! The bootstrap's steps as data, and running them on a node with a transcript.
//!
//! A steps file lists the tutorial's commands verbatim. A step `on = "jumpbox"` may only be the
//! tutorial's `scp … root@server:<dir>`, carried out as an upload through the Docker archive API from
//! the run's jumpbox directory; a step `on = "server"` runs with `bash -c` in `/root`, as the
//! operator's shell would. Steps do not judge etcd; checks do.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use toml::Spanned;

use crate::engine::{Content, EngineError, UploadFile};
use crate::node::NodeHandle;
use crate::spec::{self, line_of, SpecError};
use crate::transcript::{Entry, Host};

/// How long one server step may run (a unit start waits at most systemd's 90 s start timeout).
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// Errors reading a steps file.
#[derive(Debug, thiserror::Error)]
pub enum StepsError {
    /// The file could not be read, or is malformed.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A step cannot be carried out as written.
    #[error("{file}:{line}: {message}")]
    Step {
        /// The steps file.
        file: PathBuf,
        /// The 1-based line.
        line: usize,
        /// What is wrong, naming the field.
        message: String,
    },
}

/// Errors running steps.
#[derive(Debug, thiserror::Error)]
pub enum RunStepError {
    /// The engine failed (not the command: a command's failure is its exit code).
    #[error("step `{step}`: {source}")]
    Engine {
        /// The step's name.
        step: String,
        /// The engine error.
        source: EngineError,
    },
    /// The step names a node the scenario does not have.
    #[error("step `{step}`: no node has host name `{host}`")]
    UnknownHost {
        /// The step's name.
        step: String,
        /// The host name.
        host: String,
    },
    /// A file the `scp` names is not on the jumpbox.
    #[error("step `{step}`: failed to read jumpbox file {path}: {source}")]
    Jumpbox {
        /// The step's name.
        step: String,
        /// The missing file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `scp <sources…> root@<host>:<dir>`: upload jumpbox files into `dir` on a node. A host of
    /// `{host}` means every node, with `{host}` in the sources naming each in turn
    /// (`scp nodes/{host}/peer.crt root@{host}:~/`).
    Scp {
        /// Paths relative to the jumpbox directory.
        sources: Vec<String>,
        /// The node: a host name, or `{host}` for each.
        to: String,
        /// The destination directory on the node.
        dir: String,
    },
    /// `scp root@<host>:<path> <dir>`: download a node's file into `dir` of the jumpbox, so that
    /// a later `scp` hands it to other nodes (a snapshot taken on one member, say).
    Fetch {
        /// The node.
        from: String,
        /// The file's path on the node (`~/` is `/root/`).
        path: String,
        /// The directory on the jumpbox, relative to it (`.` for its top).
        dir: String,
    },
    /// A shell command run verbatim on the nodes the step names.
    Shell(String),
}

/// Where a step runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The harness host (`scp` only).
    Jumpbox,
    /// Every node at once — as readers do with synchronized terminals, and as a cluster needs:
    /// `systemctl start` of one member waits for a quorum.
    Each,
    /// The node with this host name (`server` is the tutorial's single node).
    Host(String),
}

/// The seed's bootstrap as shipped, and the name its errors would carry.
const SEED_STEPS: &str = include_str!("../../scenarios/steps/seed.toml");
const SEED_FILE: &str = "(built in) scenarios/steps/seed.toml";

/// The placeholder for "each node" in a jumpbox step.
pub const EACH_HOST: &str = "{host}";

/// One step of the bootstrap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Its name, as the tutorial titles it.
    pub name: String,
    /// Where it runs.
    pub on: Target,
    /// The command text, verbatim.
    pub command: String,
    /// The line of its file on which the command text's first line is (1-based), so that what is
    /// said about a line of the command can name the file's line.
    pub line: usize,
    /// What it does.
    pub action: Action,
}

/// A bootstrap: the ordered steps that bring etcd up on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap {
    /// The file it came from.
    pub file: PathBuf,
    /// What it is.
    pub description: String,
    /// Its steps, in order.
    pub steps: Vec<Step>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBootstrap {
    description: String,
    step: Vec<Spanned<RawStep>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: String,
    on: String,
    run: Spanned<String>,
}

impl Bootstrap {
    /// Reads and parses the steps file at `file`.
    pub fn load(file: &Path) -> Result<Self, StepsError> {
        Self::parse(file, &spec::read(file, "steps file")?)
    }

    /// The seed's own bootstrap, built in: the steps a scenario gets when it names none and has
    /// no `steps/seed.toml` beside it (one written outside `scenarios/`).
    pub fn seed() -> Result<Self, StepsError> {
        Self::parse(Path::new(SEED_FILE), SEED_STEPS)
    }

    /// Parses steps `text`, read from `file`.
    fn parse(file: &Path, text: &str) -> Result<Self, StepsError> {
        let text = text.to_owned();
        let step_error = |offset: usize, message: String| StepsError::Step {
            file: file.to_owned(),
            line: line_of(&text, offset),
            message,
        };
        let raw: RawBootstrap = spec::parse(file, &text)?;
        let mut steps = Vec::new();
        for spanned in raw.step {
            let offset = spanned.span().start;
            let raw = spanned.into_inner();
            // A multi-line string's text starts on the line after its opening quotes.
            let run_start = raw.run.span().start;
            let multi_line = ["\"\"\"", "'''"]
                .iter()
                .any(|quotes| text[run_start..].starts_with(quotes));
            let line = line_of(&text, run_start) + usize::from(multi_line);
            let run = raw.run.into_inner();
            let on = match raw.on.as_str() {
                "jumpbox" => Target::Jumpbox,
                "each" => Target::Each,
                host if is_host_name(host) => Target::Host(host.to_owned()),
                other => {
                    return Err(step_error(
                        offset,
                        format!(
                            "step `{}`: field `on`: `{other}` is not `jumpbox`, `each` or a \
                             node's host name (e.g. `server`)",
                            raw.name
                        ),
                    ))
                }
            };
            let action = match on {
                Target::Jumpbox => parse_scp(&run).ok_or_else(|| {
                    step_error(
                        offset,
                        format!(
                            "step `{}`: field `run`: on the jumpbox only `scp <files…> \
                             root@<host>:<dir>` and `scp root@<host>:<file> <dir>` are \
                             supported, got `{}`",
                            raw.name, run
                        ),
                    )
                })?,
                Target::Each | Target::Host(_) => Action::Shell(run.clone()),
            };
            steps.push(Step {
                name: raw.name,
                on,
                command: run,
                line,
                action,
            });
        }
        Ok(Self {
            file: file.to_owned(),
            description: raw.description,
            steps,
        })
    }
}

/// Parses `scp SRC… root@server:DIR` (`~` and an empty DIR mean `/root`), or
/// `scp root@server:FILE DIR` (a download to the jumpbox).
fn parse_scp(command: &str) -> Option<Action> {
    let mut words = command.split_whitespace();
    if words.next()? != "scp" {
        return None;
    }
    let mut words: Vec<&str> = words.collect();
    if let [source, dir] = words.as_slice() {
        if let Some((from, path)) = source.strip_prefix("root@").and_then(|s| s.split_once(':')) {
            let relative = !dir.starts_with('/') && !dir.split('/').any(|part| part == "..");
            if !is_host_name(from) || path.is_empty() || dir.contains(':') || !relative {
                return None;
            }
            let path = match path.strip_prefix('~') {
                Some(rest) => format!("/root{rest}"),
                None if path.starts_with('/') => path.to_owned(),
                None => format!("/root/{path}"),
            };
            return Some(Action::Fetch {
                from: from.to_owned(),
                path,
                dir: (*dir).to_owned(),
            });
        }
    }
    let target = words.pop()?;
    let (to, dir) = target.strip_prefix("root@")?.split_once(':')?;
    if to != EACH_HOST && !is_host_name(to) {
        return None;
    }
    let dir = match dir.trim_start_matches('~') {
        "" | "/" => "/root".to_owned(),
        rest if dir.starts_with('~') => format!("/root{rest}"),
        absolute => absolute.to_owned(),
    };
    if words.is_empty() || words.iter().any(|w| w.starts_with('-')) {
        return None;
    }
    Some(Action::Scp {
        sources: words.into_iter().map(String::from).collect(),
        to: to.to_owned(),
        dir,
    })
}

/// A host name as a node can have it: letters, digits and `-`, not starting with `-`.
fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

impl Step {
    /// True when the step runs on every node (`on = "each"`, or an `scp` to `root@{host}:`).
    pub fn on_each(&self) -> bool {
        match (&self.on, &self.action) {
            (Target::Each, _) => true,
            (_, Action::Scp { to, .. }) => to == EACH_HOST,
            _ => false,
        }
    }

    /// The host names this step names (its `on`, or an `scp`'s destination), to check against the
    /// scenario's members; none for `each` and `{host}`.
    pub fn hosts(&self) -> Vec<&str> {
        match (&self.on, &self.action) {
            (Target::Host(host), _) => vec![host.as_str()],
            (_, Action::Scp { to, .. }) if to != EACH_HOST => vec![to.as_str()],
            (_, Action::Fetch { from, .. }) => vec![from.as_str()],
            _ => Vec::new(),
        }
    }
}

/// Carries out `step` on the nodes it names, of `nodes` (all at once when several), and returns
/// their transcript entries in the nodes' order.
pub async fn run_on(
    step: &Step,
    nodes: &[&NodeHandle],
    jumpbox: &Path,
) -> Result<Vec<Entry>, RunStepError> {
    let targets: Vec<&NodeHandle> =
        if step.on_each() {
            nodes.to_vec()
        } else {
            let host = step.hosts().first().copied().unwrap_or_default().to_owned();
            let node = nodes.iter().find(|n| n.host() == host).ok_or_else(|| {
                RunStepError::UnknownHost {
                    step: step.name.clone(),
                    host,
                }
            })?;
            vec![*node]
        };
    futures_util::future::try_join_all(targets.into_iter().map(|node| run_one(step, node, jumpbox)))
        .await
}

/// Carries out one step on `node` and returns its transcript entry (a failed command is an entry,
/// not an error).
pub async fn run_one(
    step: &Step,
    node: &NodeHandle,
    jumpbox: &Path,
) -> Result<Entry, RunStepError> {
    let start = Instant::now();
    let engine_error = |source| RunStepError::Engine {
        step: step.name.clone(),
        source,
    };
    match &step.action {
        Action::Scp { sources, dir, .. } => {
            let mut files = Vec::new();
            for source in sources {
                let source = &source.replace(EACH_HOST, node.host());
                let path = jumpbox.join(source);
                let jumpbox_error = |source| RunStepError::Jumpbox {
                    step: step.name.clone(),
                    path: path.clone(),
                    source,
                };
                // Its mode is read now, so that a missing file is named with its step before the
                // upload starts; its content is read as it is sent.
                let mode = std::fs::metadata(&path)
                    .map_err(jumpbox_error)?
                    .permissions()
                    .mode();
                files.push(UploadFile {
                    name: Path::new(source)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|| source.clone()),
                    content: Content::File(path),
                    mode: mode & 0o7777,
                });
            }
            node.engine()
                .upload(node.id(), dir, files)
                .await
                .map_err(engine_error)?;
            Ok(Entry::done(
                &step.name,
                Host::Jumpbox,
                &step.command,
                start.elapsed(),
            ))
        }
        Action::Fetch { path, dir, .. } => {
            let Some((content, mode)) = node
                .engine()
                .download(node.id(), path)
                .await
                .map_err(engine_error)?
            else {
                // As scp says it: the reader named a file the node does not have.
                return Ok(Entry {
                    exit_code: 1,
                    stderr: format!("scp: {path}: No such file or directory\n"),
                    ..Entry::done(&step.name, Host::Jumpbox, &step.command, start.elapsed())
                });
            };
            let name = Path::new(path).file_name().unwrap_or_default();
            let target = jumpbox.join(dir).join(name);
            let jumpbox_error = |source| RunStepError::Jumpbox {
                step: step.name.clone(),
                path: target.clone(),
                source,
            };
            std::fs::create_dir_all(jumpbox.join(dir)).map_err(jumpbox_error)?;
            std::fs::write(&target, content).map_err(jumpbox_error)?;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode & 0o777))
                .map_err(jumpbox_error)?;
            Ok(Entry::done(
                &step.name,
                Host::Jumpbox,
                &step.command,
                start.elapsed(),
            ))
        }
        Action::Shell(script) => {
            let out = node
                .shell(script, STEP_TIMEOUT)
                .await
                .map_err(engine_error)?;
            Ok(Entry::of_exec(&step.name, node.host(), &step.command, out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_scp_becomes_an_upload_to_root() {
        let action = parse_scp(
            "scp   downloads/controller/etcd   downloads/client/etcdctl   units/etcd.service   root@server:~/",
        );
        assert_eq!(
            action,
            Some(Action::Scp {
                sources: vec![
                    "downloads/controller/etcd".into(),
                    "downloads/client/etcdctl".into(),
                    "units/etcd.service".into()
                ],
                to: "server".into(),
                dir: "/root".into()
            })
        );
    }

    #[test]
    fn scp_names_its_node_or_each_and_flags_are_not_understood() {
        assert_eq!(parse_scp("scp -r a root@server:~/"), None);
        assert_eq!(parse_scp("rsync a root@server:~/"), None);
        assert_eq!(parse_scp("scp a root@bad_host!:~/"), None);
        assert_eq!(
            parse_scp("scp a root@server:/etc/etcd"),
            Some(Action::Scp {
                sources: vec!["a".into()],
                to: "server".into(),
                dir: "/etc/etcd".into()
            })
        );
        assert_eq!(
            parse_scp("scp nodes/{host}/peer.crt root@{host}:~/"),
            Some(Action::Scp {
                sources: vec!["nodes/{host}/peer.crt".into()],
                to: EACH_HOST.into(),
                dir: "/root".into()
            })
        );
    }

    #[test]
    fn scp_from_a_node_downloads_one_file_into_the_jumpbox() {
        let fetch = |path: &str, dir: &str| {
            Some(Action::Fetch {
                from: "server".into(),
                path: path.into(),
                dir: dir.into(),
            })
        };
        assert_eq!(
            parse_scp("scp root@server:~/snapshot.db ."),
            fetch("/root/snapshot.db", ".")
        );
        assert_eq!(
            parse_scp("scp root@server:snapshot.db backups"),
            fetch("/root/snapshot.db", "backups")
        );
        assert_eq!(
            parse_scp("scp root@server:/var/lib/etcd/x ."),
            fetch("/var/lib/etcd/x", ".")
        );
        // Out of the jumpbox, node to node, or no file: not understood.
        assert_eq!(parse_scp("scp root@server:x /tmp"), None);
        assert_eq!(parse_scp("scp root@server:x ../up"), None);
        assert_eq!(parse_scp("scp root@server:x root@other:~/"), None);
        assert_eq!(parse_scp("scp root@server: ."), None);
    }

    #[test]
    fn a_jumpbox_step_that_is_not_scp_is_an_error_naming_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("steps.toml");
        std::fs::write(
            &file,
            "description = \"x\"\n\n[[step]]\nname = \"copy\"\non = \"jumpbox\"\nrun = \"cp a b\"\n",
        )
        .unwrap();
        let err = Bootstrap::load(&file).unwrap_err().to_string();
        assert!(err.contains("steps.toml:3:"), "{err}");
        assert!(err.contains("field `run`"), "{err}");
    }

    #[test]
    fn the_shipped_seed_steps_parse_and_follow_the_seed() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/steps/seed.toml");
        let bootstrap = Bootstrap::load(&file).unwrap();
        let commands: Vec<&str> = bootstrap.steps.iter().map(|s| s.command.as_str()).collect();
        assert!(commands.contains(&"mv etcd etcdctl /usr/local/bin/"));
        assert!(commands.contains(&"mv etcd.service /etc/systemd/system/"));
        assert!(commands
            .iter()
            .any(|c| c.contains("chmod 700 /var/lib/etcd")));
        assert!(commands.last().unwrap().contains("systemctl start etcd"));
    }

    #[test]
    fn a_step_knows_the_line_its_command_text_starts_on() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/steps/seed.toml");
        let text = std::fs::read_to_string(&file).unwrap();
        let bootstrap = Bootstrap::load(&file).unwrap();
        let multi_line = bootstrap.steps.iter().filter(|s| s.command.contains('\n'));
        assert_eq!(multi_line.count(), 2, "steps 3 and 5 are `run = \"\"\"…`");
        for step in &bootstrap.steps {
            let first = step.command.lines().next().unwrap();
            let line = text.lines().nth(step.line - 1).unwrap();
            assert!(line.contains(first), "{}: line {}", step.name, step.line);
        }
    }
}
