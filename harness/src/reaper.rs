//! The reaper: a small process each CLI run starts beside itself, in a process group of its own,
//! that waits for the run to end and then removes whatever the run left — its nodes, networks and
//! run directory. A run that ends normally or is interrupted has removed them already, and the
//! reaper finds nothing; a run killed outright (SIGKILL) cannot, and without the reaper its node
//! would keep running etcd until some later run's sweep.
//!
//! It judges the run by its [`Owner`] (pid and start time), so a reused pid does not fool it. Runs
//! made through the library (`cargo test`) have no reaper; the next run's sweep covers them.

use std::process::Stdio;
use std::time::Duration;

use crate::engine::{Engine, EngineError};
use crate::owner::{Owner, Verdict};
use crate::rundir::RunDir;
use crate::wait::{poll_until, Probe};

/// The hidden command the reaper runs as: `etcd-harness reap <owner>`.
pub const COMMAND: &str = "reap";

/// How long a reaper watches before it gives up (a run longer than a day is not a test run).
const WATCH_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// Starts a reaper for this process. Failing to start one is not fatal: the sweep is still there.
pub fn start() {
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    use std::os::unix::process::CommandExt;
    let _ = std::process::Command::new(exe)
        .args([COMMAND, &Owner::this_process().encode()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C at the terminal is the run's, not the reaper's.
        .process_group(0)
        .spawn();
}

/// Waits until `owner` has ended, then removes what it left. Returns how many containers,
/// networks and directories that was.
pub async fn watch(owner: &Owner) -> Result<usize, EngineError> {
    let judge = Owner::this_process();
    let ended = poll_until(
        "the run to end",
        WATCH_LIMIT,
        Duration::from_millis(250),
        || async {
            Ok::<_, EngineError>(match owner.verdict(judge) {
                Verdict::Dead => Probe::Ready(()),
                Verdict::Alive | Verdict::Foreign => Probe::Pending("running".into()),
            })
        },
    )
    .await?;
    if ended.is_err() {
        return Ok(0);
    }
    let engine = Engine::connect().await?;
    let removed = engine.remove_left_by(owner).await?;
    Ok(removed + RunDir::remove_left_by(owner))
}
