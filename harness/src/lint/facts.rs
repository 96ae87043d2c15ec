//! What a bootstrap's steps do, as far as their words say: the files they put on which node
//! (an `scp` from the jumpbox, a `cp` or `mv` on a node), the directories they create, and the
//! units they write with a heredoc. Nothing is run.

use std::path::{Path, PathBuf};

use super::shell::{absolute, base_name, copies, data_dirs, read_script, Heredoc};
use crate::steps::{Action, Step, Target, EACH_HOST};

/// A file a step puts on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Placement {
    /// The node (`None`: every node).
    pub(super) host: Option<String>,
    /// The directory, absolute, without a trailing `/`.
    pub(super) dir: String,
    /// The file's name.
    pub(super) name: String,
    /// For an `scp` from the jumpbox: the jumpbox path (`nodes/{host}/kubernetes.crt`).
    pub(super) from: Option<String>,
    /// The steps file and line of the command.
    pub(super) file: PathBuf,
    pub(super) line: usize,
}

/// A heredoc a step writes etcd.service with.
#[derive(Debug, Clone)]
pub(super) struct Written {
    pub(super) host: Option<String>,
    pub(super) step: String,
    pub(super) file: PathBuf,
    /// The steps file's line of the heredoc's first body line.
    pub(super) first_line: usize,
    pub(super) heredoc: Heredoc,
}

/// What the steps do, as far as their words say.
#[derive(Debug, Default)]
pub(super) struct StepFacts {
    pub(super) placements: Vec<Placement>,
    /// Directories created, by node (`mkdir`, a restore's `--data-dir`).
    pub(super) dirs: Vec<(Option<String>, String)>,
    /// Every step's command text less heredoc bodies, by node: what else names a file.
    pub(super) texts: Vec<(Option<String>, String)>,
    /// The nodes `units/etcd.service` is copied to.
    pub(super) unit_copied_to: Vec<Option<String>>,
    /// Units written by heredocs.
    pub(super) written: Vec<Written>,
    /// What the lint does not follow (a `sed` on the unit).
    pub(super) notes: Vec<String>,
}

impl StepFacts {
    pub(super) fn of(steps: &[(&Path, &Step)]) -> Self {
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

    pub(super) fn read_script(&mut self, file: &Path, step: &Step, script: &str) {
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

    pub(super) fn placed_on<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Placement> {
        self.placements.iter().filter(move |p| on(&p.host, node))
    }
}

/// True when something placed on `host` (`None`: on every node) is on node `node`.
pub(super) fn on(host: &Option<String>, node: &str) -> bool {
    host.as_deref().is_none_or(|h| h == node)
}

/// The seed's steps, read as the lint reads them.
#[cfg(test)]
pub(super) fn seed_facts() -> StepFacts {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/steps/seed.toml");
    let seed = crate::steps::Bootstrap::load(&file).unwrap();
    let steps: Vec<(&Path, &Step)> = seed
        .steps
        .iter()
        .map(|s| (seed.file.as_path(), s))
        .collect();
    StepFacts::of(&steps)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
