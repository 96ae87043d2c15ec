//! The transcript of a run: every step and command executed in the node, in order, with its exit
//! code, output and duration — what an operator would have seen in their terminal.
//!
//! It records; it does not judge. Whether an exit code was expected is the scenario's business.

use std::fmt;
use std::time::Duration;

use crate::engine::ExecOutput;

/// Where a command ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// The harness host, playing the tutorial's jumpbox (the `scp` step).
    Jumpbox,
    /// Inside a node container (`root@server`), by its host name.
    Node(String),
}

/// Why a command ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Origin {
    /// Its step's first run — or a check, a fault, a harness action.
    #[default]
    First,
    /// A bootstrap step run again (the reader re-running the tutorial).
    Rerun,
    /// Run in a second terminal while the command before it followed (`journalctl -f`).
    Meanwhile,
}

/// One executed command.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The step this command belongs to, as the bootstrap names it.
    pub step: String,
    /// Where it ran.
    pub host: Host,
    /// The command text, verbatim.
    pub command: String,
    /// The exit code (0 for a successful upload).
    pub exit_code: i64,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
    /// Wall time from start to exit.
    pub duration: Duration,
    /// Why it ran.
    pub origin: Origin,
    /// For a command that follows (`journalctl -f`): it was still running after this long, and was
    /// stopped with SIGINT, as a reader's Ctrl-C stops it. `exit_code` is then `timeout`'s 124.
    pub stopped_after: Option<Duration>,
}

impl Entry {
    /// A command that ran in node `host`, with what it printed.
    pub fn of_exec(
        step: impl Into<String>,
        host: &str,
        command: impl Into<String>,
        out: ExecOutput,
    ) -> Self {
        Self {
            step: step.into(),
            host: Host::Node(host.to_owned()),
            command: command.into(),
            exit_code: out.exit_code,
            stdout: out.stdout,
            stderr: out.stderr,
            duration: out.duration,
            origin: Origin::First,
            stopped_after: None,
        }
    }

    /// An action the harness carried out that prints nothing and cannot exit non-zero (an upload, a
    /// skipped step): it either happened, or the run failed with an error.
    pub fn done(
        step: impl Into<String>,
        host: Host,
        command: impl Into<String>,
        duration: Duration,
    ) -> Self {
        Self {
            step: step.into(),
            host,
            command: command.into(),
            exit_code: 0,
            stdout: String::new(),
            stderr: String::new(),
            duration,
            origin: Origin::First,
            stopped_after: None,
        }
    }

    /// Standard output then standard error, as a terminal would show them.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// True when the command exited 0, or followed until it was stopped.
    pub fn succeeded(&self) -> bool {
        self.exit_code == 0 || self.stopped_after.is_some()
    }
}

/// The ordered record of a run.
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    entries: Vec<Entry>,
}

impl Transcript {
    /// Appends one executed command.
    pub fn push(&mut self, entry: Entry) {
        self.entries.push(entry);
    }

    /// The entries, in execution order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The first entry that did not exit 0, if any.
    pub fn first_failure(&self) -> Option<&Entry> {
        self.entries.iter().find(|e| !e.succeeded())
    }

    /// The earliest command that exited non-zero on node `host` or on the jumpbox (which serves
    /// every node).
    pub fn first_failure_on(&self, host: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| {
            !e.succeeded()
                && match &e.host {
                    Host::Jumpbox => true,
                    Host::Node(h) => h == host,
                }
        })
    }
}

impl fmt::Display for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut step = None;
        for entry in &self.entries {
            if step != Some((&entry.step, entry.origin)) {
                match entry.origin {
                    Origin::First => writeln!(f, "── {}", entry.step)?,
                    Origin::Rerun => writeln!(f, "── Again: {}", entry.step)?,
                    Origin::Meanwhile => writeln!(f, "── Meanwhile, in a second terminal")?,
                }
                step = Some((&entry.step, entry.origin));
            }
            let prompt = match &entry.host {
                Host::Jumpbox => "jumpbox$".to_owned(),
                Host::Node(host) => format!("root@{host}:~#"),
            };
            let mut lines = entry.command.lines();
            writeln!(f, "{prompt} {}", lines.next().unwrap_or_default())?;
            for line in lines {
                writeln!(f, "> {line}")?;
            }
            for line in entry.stdout.lines().chain(entry.stderr.lines()) {
                writeln!(f, "  {line}")?;
            }
            match entry.stopped_after {
                Some(after) => writeln!(
                    f,
                    "  ^C\n  [still running after {}s: stopped with SIGINT, as Ctrl-C does]",
                    after.as_secs()
                )?,
                None => writeln!(
                    f,
                    "  [exit {} in {:.2}s]",
                    entry.exit_code,
                    entry.duration.as_secs_f64()
                )?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(step: &str, command: &str, exit_code: i64, stdout: &str) -> Entry {
        Entry {
            step: step.into(),
            host: Host::Node("server".into()),
            command: command.into(),
            exit_code,
            stdout: stdout.into(),
            stderr: String::new(),
            duration: Duration::from_millis(120),
            origin: Origin::First,
            stopped_after: None,
        }
    }

    #[test]
    fn a_rerun_step_is_headed_as_run_again() {
        let mut t = Transcript::default();
        t.push(entry("Step 2", "mv etcd etcdctl /usr/local/bin/", 0, ""));
        t.push(Entry {
            origin: Origin::Rerun,
            ..entry("Step 2", "mv etcd etcdctl /usr/local/bin/", 0, "")
        });
        let text = t.to_string();
        assert_eq!(text.matches("── Step 2\n").count(), 1, "{text}");
        assert_eq!(text.matches("── Again: Step 2\n").count(), 1, "{text}");
    }

    #[test]
    fn renders_steps_once_with_prompt_output_and_exit() {
        let mut t = Transcript::default();
        t.push(entry("Step 2", "mv etcd etcdctl /usr/local/bin/", 0, ""));
        t.push(entry("Step 5", "{\n  systemctl start etcd\n}", 0, "ok\n"));
        t.push(entry("Step 5", "true", 0, ""));
        let text = t.to_string();
        assert_eq!(text.matches("── Step 5").count(), 1, "{text}");
        assert!(
            text.contains("root@server:~# mv etcd etcdctl /usr/local/bin/\n  [exit 0 in 0.12s]")
        );
        assert!(text.contains("root@server:~# {\n>   systemctl start etcd\n> }\n  ok\n"));
    }

    #[test]
    fn a_stopped_follower_shows_ctrl_c_and_what_ran_meanwhile_is_headed_so() {
        let mut t = Transcript::default();
        t.push(Entry {
            stopped_after: Some(Duration::from_secs(3)),
            ..entry("Step 6", "journalctl -u etcd -f", 124, "a line\n")
        });
        t.push(Entry {
            origin: Origin::Meanwhile,
            ..entry("Step 6", "etcdctl defrag", 0, "")
        });
        let text = t.to_string();
        assert!(
            text.contains(
                "root@server:~# journalctl -u etcd -f\n  a line\n  ^C\n  [still running after \
                 3s: stopped with SIGINT, as Ctrl-C does]\n── Meanwhile, in a second terminal\n\
                 root@server:~# etcdctl defrag\n"
            ),
            "{text}"
        );
        assert!(
            t.first_failure().is_none(),
            "stopped while following is no failure"
        );
    }

    #[test]
    fn first_failure_is_the_earliest_nonzero_exit() {
        let mut t = Transcript::default();
        t.push(entry("a", "true", 0, ""));
        t.push(entry("b", "false", 1, ""));
        t.push(entry("c", "exit 3", 3, ""));
        assert_eq!(t.first_failure().map(|e| e.step.as_str()), Some("b"));
        let mut elsewhere = entry("d", "false", 1, "");
        elsewhere.host = Host::Node("controller-2".into());
        let mut t = Transcript::default();
        t.push(elsewhere);
        t.push(entry("e", "exit 3", 3, ""));
        assert_eq!(t.first_failure().map(|e| e.step.as_str()), Some("d"));
        let here = match &t.entries()[1].host {
            Host::Node(host) => host.clone(),
            Host::Jumpbox => unreachable!("entries run in a node"),
        };
        assert_eq!(
            t.first_failure_on(&here).map(|e| e.step.as_str()),
            Some("e")
        );
    }
}
