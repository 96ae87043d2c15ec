//! The soak: runs of this very command killed at random moments — SIGINT, SIGTERM and SIGKILL, a
//! third of them in the first 0.3 s, while the node is being created — then one normal run, and a
//! count of what they all left behind: containers, networks and run directories. It must count zeros.
//!
//! Not part of `cargo test` (it takes minutes); CI runs it with a small number of runs. It only
//! starts and signals child processes and counts; cleaning up is the runs' own job.

use std::collections::HashSet;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::engine::{Engine, EngineError, LABEL_PID};
use crate::rundir;

/// How long a signalled run may take to end before the soak gives up on it (and kills it).
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

/// Errors running the soak (not: leftovers, which are its findings).
#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    /// The engine could not be asked what is left.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A run could not be started or signalled.
    #[error("failed to {action}: {source}")]
    Process {
        /// What was being done.
        action: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// What to soak.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// How many interrupted runs.
    pub runs: u32,
    /// The scenario each run runs (a name or a file).
    pub scenario: String,
    /// Arguments passed to every run after the scenario (`--etcd …`, `--scenarios …`).
    pub run_args: Vec<String>,
    /// Seed of the random moments; the report prints it, so a soak can be repeated.
    pub seed: u64,
    /// The latest moment a signal is sent.
    pub latest: Duration,
}

/// A signal the soak sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Int,
    Term,
    Kill,
}

impl Signal {
    fn number(self) -> i32 {
        match self {
            Self::Int => 2,
            Self::Term => 15,
            Self::Kill => 9,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Int => "SIGINT",
            Self::Term => "SIGTERM",
            Self::Kill => "SIGKILL",
        }
    }
}

/// One interrupted run.
struct Attempt {
    pid: u32,
    signal: Signal,
    /// When the signal was sent, from the run's start; `None` if the run ended before.
    sent_at: Option<Duration>,
    status: ExitStatus,
    /// From the signal to the run's end.
    exit_after: Duration,
}

impl Attempt {
    /// The exit code a shell reports (128 + the signal for a process the signal ended).
    fn shell_code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| 128 + self.status.signal().unwrap_or(0))
    }

    /// Whether the run ended as an interrupted run must: 130 on SIGINT, 143 on SIGTERM (SIGKILL
    /// cannot be handled; the next run sweeps what it left). A run that ended before its signal
    /// must have ended normally (0 or 1).
    fn ended_right(&self) -> bool {
        match (self.sent_at, self.signal) {
            (None, _) => matches!(self.status.code(), Some(0 | 1)),
            (Some(_), signal) => self.shell_code() == 128 + signal.number(),
        }
    }
}

/// The soak's findings.
pub struct SoakReport {
    seed: u64,
    attempts: Vec<Attempt>,
    final_status: ExitStatus,
    left_containers: usize,
    left_networks: usize,
    left_dirs: Vec<PathBuf>,
}

impl SoakReport {
    /// True when every run ended as it must and nothing was left.
    pub fn clean(&self) -> bool {
        self.attempts.iter().all(Attempt::ended_right)
            && self.final_status.code() == Some(0)
            && self.left_containers + self.left_networks + self.left_dirs.len() == 0
    }
}

impl std::fmt::Display for SoakReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "soak: {} interrupted runs, seed {}",
            self.attempts.len(),
            self.seed
        )?;
        writeln!(
            f,
            "{:>3}  {:<8} {:>9}  {:>5}  {:>12}  ok",
            "#", "signal", "sent at", "exit", "exit after"
        )?;
        for (i, a) in self.attempts.iter().enumerate() {
            let sent = a
                .sent_at
                .map(|d| format!("{:.3} s", d.as_secs_f64()))
                .unwrap_or_else(|| "(ended)".into());
            writeln!(
                f,
                "{:>3}  {:<8} {:>9}  {:>5}  {:>10.3} s  {}",
                i + 1,
                a.signal.name(),
                sent,
                a.shell_code(),
                a.exit_after.as_secs_f64(),
                if a.ended_right() { "yes" } else { "NO" }
            )?;
        }
        for signal in [Signal::Int, Signal::Term, Signal::Kill] {
            let of: Vec<&Attempt> = self
                .attempts
                .iter()
                .filter(|a| a.signal == signal && a.sent_at.is_some())
                .collect();
            let slowest = of.iter().map(|a| a.exit_after).max().unwrap_or_default();
            let early = of
                .iter()
                .filter(|a| a.sent_at.is_some_and(|t| t < Duration::from_millis(300)))
                .count();
            writeln!(
                f,
                "{}: {} runs ({early} in the first 0.3 s), {} ended right, slowest exit {:.3} s after the signal",
                signal.name(),
                of.len(),
                of.iter().filter(|a| a.ended_right()).count(),
                slowest.as_secs_f64()
            )?;
        }
        writeln!(
            f,
            "normal run afterwards: exit {}",
            self.final_status.code().unwrap_or(-1)
        )?;
        writeln!(
            f,
            "left behind: {} containers, {} networks, {} run directories",
            self.left_containers,
            self.left_networks,
            self.left_dirs.len()
        )?;
        for dir in &self.left_dirs {
            writeln!(f, "  {}", dir.display())?;
        }
        Ok(())
    }
}

/// A small deterministic generator (xorshift64*): the soak needs repeatable moments, not security.
struct Moments(u64);

impl Moments {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A moment in `[from, to)`.
    fn between(&mut self, from: Duration, to: Duration) -> Duration {
        let span = to.saturating_sub(from).as_micros().max(1) as u64;
        from + Duration::from_micros(self.next() % span)
    }
}

/// Runs the soak and counts what is left.
pub async fn run(
    options: &SoakOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<SoakReport, SoakError> {
    let exe = std::env::current_exe().map_err(|source| SoakError::Process {
        action: "find this program's path".into(),
        source,
    })?;
    let mut moments = Moments(options.seed.max(1));
    let mut attempts = Vec::new();
    for i in 0..options.runs {
        let signal = [Signal::Int, Signal::Term, Signal::Kill][i as usize % 3];
        // Every third pair of runs is interrupted in the first 0.3 s, while the engine creates the node.
        let at = if (i / 3) % 3 == 0 {
            moments.between(Duration::ZERO, Duration::from_millis(300))
        } else {
            moments.between(Duration::from_millis(300), options.latest)
        };
        let attempt = interrupt(&exe, options, signal, at).await?;
        progress(&format!(
            "run {}/{}: {} at {:.3} s → exit {}",
            i + 1,
            options.runs,
            signal.name(),
            at.as_secs_f64(),
            attempt.shell_code()
        ));
        attempts.push(attempt);
    }
    progress("one normal run (the reapers, and its sweep, remove what SIGKILLed runs left)");
    let mut last = start(&exe, options)?;
    let last_pid = last.id().unwrap_or_default();
    let final_status = last.wait().await.map_err(|source| SoakError::Process {
        action: "wait for the normal run".into(),
        source,
    })?;

    let pids: HashSet<u32> = attempts.iter().map(|a| a.pid).chain([last_pid]).collect();
    let engine = Engine::connect().await?;
    let (left_containers, left_networks) = engine
        .count_labelled(|labels| {
            labels
                .get(LABEL_PID)
                .and_then(|p| p.parse().ok())
                .is_some_and(|pid| pids.contains(&pid))
        })
        .await?;
    let left_dirs = std::fs::read_dir(std::env::temp_dir())
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    let name = p.file_name().unwrap_or_default().to_string_lossy();
                    pids.iter()
                        .any(|pid| name.starts_with(&format!("{}{pid}-", rundir::PREFIX)))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(SoakReport {
        seed: options.seed,
        attempts,
        final_status,
        left_containers,
        left_networks,
        left_dirs,
    })
}

fn start(exe: &std::path::Path, options: &SoakOptions) -> Result<tokio::process::Child, SoakError> {
    tokio::process::Command::new(exe)
        .arg("run")
        .arg(&options.scenario)
        .args(&options.run_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| SoakError::Process {
            action: format!("start `{} run {}`", exe.display(), options.scenario),
            source,
        })
}

/// Starts a run, sends `signal` `at` after its start, and waits for it to end.
async fn interrupt(
    exe: &std::path::Path,
    options: &SoakOptions,
    signal: Signal,
    at: Duration,
) -> Result<Attempt, SoakError> {
    let started = Instant::now();
    let mut child = start(exe, options)?;
    let pid = child.id().unwrap_or_default();
    let waited = |source| SoakError::Process {
        action: format!("wait for run {pid}"),
        source,
    };
    // The random moment is the point of the soak: the run either ends first or is signalled then.
    if let Ok(status) = tokio::time::timeout(at, child.wait()).await {
        return Ok(Attempt {
            pid,
            signal,
            sent_at: None,
            status: status.map_err(waited)?,
            exit_after: Duration::ZERO,
        });
    }
    let sent_at = started.elapsed();
    let sent = Instant::now();
    let status = std::process::Command::new("kill")
        .arg(format!("-{}", signal.number()))
        .arg(pid.to_string())
        .status()
        .map_err(|source| SoakError::Process {
            action: format!("send {} to run {pid} with `kill`", signal.name()),
            source,
        })?;
    if !status.success() {
        return Err(SoakError::Process {
            action: format!("send {} to run {pid}", signal.name()),
            source: std::io::Error::other(format!("`kill` exited {status}")),
        });
    }
    let status = match tokio::time::timeout(EXIT_TIMEOUT, child.wait()).await {
        Ok(status) => status.map_err(waited)?,
        Err(_) => {
            let _ = child.kill().await;
            child.wait().await.map_err(waited)?
        }
    };
    Ok(Attempt {
        pid,
        signal,
        sent_at: Some(sent_at),
        status,
        exit_after: sent.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_are_repeatable_and_within_their_bounds() {
        let draw = |seed| {
            let mut m = Moments(seed);
            (0..50)
                .map(|_| m.between(Duration::from_millis(300), Duration::from_secs(8)))
                .collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7));
        assert_ne!(a, draw(8));
        assert!(a
            .iter()
            .all(|d| *d >= Duration::from_millis(300) && *d < Duration::from_secs(8)));
    }

    #[test]
    fn an_interrupted_run_must_end_with_the_shells_code_for_its_signal() {
        let attempt = |signal, sent, status| Attempt {
            pid: 1,
            signal,
            sent_at: sent,
            status: ExitStatus::from_raw(status),
            exit_after: Duration::ZERO,
        };
        let at = Some(Duration::from_millis(10));
        // Raw wait statuses: an exit code sits in the second byte, a terminating signal in the first.
        assert!(attempt(Signal::Term, at, 143 << 8).ended_right());
        assert!(
            attempt(Signal::Term, at, 15).ended_right(),
            "killed by it before the handler"
        );
        assert!(attempt(Signal::Int, at, 130 << 8).ended_right());
        assert!(!attempt(Signal::Int, at, 2 << 8).ended_right());
        assert!(attempt(Signal::Kill, at, 9).ended_right());
        assert!(
            attempt(Signal::Kill, None, 0).ended_right(),
            "ended before its signal"
        );
        assert!(
            !attempt(Signal::Kill, None, 101 << 8).ended_right(),
            "a panic"
        );
    }
}
