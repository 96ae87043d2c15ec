//! The etcd unit as systemd sees it: its state (`systemctl show`), waiting for it to become active
//! or to fail, and its journal.
//!
//! A unit can pass `systemctl start` and die a moment later, so "started" is never taken from an exit
//! status: it is observed here. This module reads state; it never starts or stops the unit.

use std::fmt;
use std::time::{Duration, Instant};

use crate::engine::EngineError;
use crate::node::NodeHandle;
use crate::wait::{poll_until, Probe, Timeout};

/// The unit the tutorial installs.
pub const UNIT: &str = "etcd.service";

/// systemd's `ActiveState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActiveState {
    /// `active`.
    Active,
    /// `reloading`.
    Reloading,
    /// `inactive`.
    Inactive,
    /// `failed`.
    Failed,
    /// `activating`.
    Activating,
    /// `deactivating`.
    Deactivating,
    /// Anything newer systemd versions may report.
    Other,
}

impl ActiveState {
    fn parse(s: &str) -> Self {
        match s {
            "active" => Self::Active,
            "reloading" => Self::Reloading,
            "inactive" => Self::Inactive,
            "failed" => Self::Failed,
            "activating" => Self::Activating,
            "deactivating" => Self::Deactivating,
            _ => Self::Other,
        }
    }
}

/// A snapshot of the unit's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    /// Whether the unit file is loaded (`LoadState`).
    pub load_state: String,
    /// `ActiveState`.
    pub active: ActiveState,
    /// `ActiveState` as systemd spells it.
    pub active_name: String,
    /// `SubState` (`running`, `auto-restart`, `dead`, …).
    pub sub_state: String,
    /// How often systemd restarted it (`NRestarts`).
    pub restarts: u32,
    /// `Result` of the last run (`success`, `exit-code`, `timeout`, …).
    pub result: String,
    /// The main process's PID (0 when none).
    pub main_pid: u32,
    /// `NeedDaemonReload`: the unit file changed on disk since systemd loaded it.
    pub need_daemon_reload: bool,
    /// `UnitFileState` (`enabled`, `disabled`, …; empty when systemd knows no unit file).
    pub unit_file_state: String,
    /// `ExecMainCode`: how the last main process ended (1 exited, 2 killed, 3 dumped; 0 none).
    pub exec_main_code: u32,
    /// `ExecMainStatus`: its exit status, or the signal that ended it.
    pub exec_main_status: u32,
    /// `LoadError`: why systemd could not load the unit (empty when it could).
    pub load_error: String,
}

impl UnitState {
    /// Parses `systemctl show -p …` output (`Key=value` lines).
    pub fn parse(show: &str) -> Self {
        let get = |key: &str| {
            show.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or("")
                .trim()
                .to_owned()
        };
        Self {
            load_state: get("LoadState"),
            active: ActiveState::parse(&get("ActiveState")),
            active_name: get("ActiveState"),
            sub_state: get("SubState"),
            restarts: get("NRestarts").parse().unwrap_or(0),
            result: get("Result"),
            main_pid: get("MainPID").parse().unwrap_or(0),
            need_daemon_reload: get("NeedDaemonReload") == "yes",
            unit_file_state: get("UnitFileState"),
            exec_main_code: get("ExecMainCode").parse().unwrap_or(0),
            exec_main_status: get("ExecMainStatus").parse().unwrap_or(0),
            load_error: get("LoadError"),
        }
    }

    /// True when systemd shows the unit failed, crash-looping, or not started at all: no point
    /// waiting further (after `systemctl start` returns, a unit is activating, active or failed).
    pub fn has_failed(&self) -> bool {
        self.active == ActiveState::Failed
            || self.active == ActiveState::Inactive
            || self.sub_state == "auto-restart"
            || self.load_state == "not-found"
    }
}

impl fmt::Display for UnitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ActiveState={} SubState={} NRestarts={} Result={} NeedDaemonReload={}",
            self.active_name,
            self.sub_state,
            self.restarts,
            self.result,
            if self.need_daemon_reload { "yes" } else { "no" }
        )
    }
}

/// Errors observing the unit.
#[derive(Debug, thiserror::Error)]
pub enum UnitError {
    /// An engine call failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The unit failed or is crash-looping.
    #[error("etcd.service is not running: {state}")]
    Failed {
        /// The state observed.
        state: UnitState,
    },
    /// It neither became active nor failed in time.
    #[error("etcd.service did not become active: {0}")]
    Timeout(Timeout),
}

/// Reads the unit's state.
pub async fn state(node: &NodeHandle) -> Result<UnitState, EngineError> {
    let out = node
        .exec(
            &[
                "systemctl",
                "show",
                UNIT,
                "-p",
                "LoadState,ActiveState,SubState,NRestarts,Result,MainPID,NeedDaemonReload,UnitFileState,ExecMainCode,ExecMainStatus,LoadError",
            ],
            Duration::from_secs(10),
        )
        .await?;
    Ok(UnitState::parse(&out.stdout))
}

/// Waits until the unit is `active`; fails as soon as it is failed or crash-looping — unless
/// `through_restarts`, when a unit in `auto-restart` (killed on purpose) is waited for through one
/// restart: failing again after that is a crash loop.
pub async fn wait_active(
    node: &NodeHandle,
    timeout: Duration,
    through_restarts: bool,
) -> Result<UnitState, UnitError> {
    let first_restarts = std::cell::Cell::new(None);
    let waited = poll_until(
        "etcd.service to be active",
        timeout,
        Duration::from_millis(100),
        || async {
            let state = state(node).await?;
            let first = first_restarts.get().unwrap_or(state.restarts);
            first_restarts.set(Some(first));
            // systemd counts a restart as it leaves `auto-restart`, so a unit can be seen there
            // with the count already up by one: a crash loop is a second restart that failed.
            let waiting_out_a_restart = through_restarts
                && state.sub_state == "auto-restart"
                && state.restarts <= first + 1;
            if state.active == ActiveState::Active {
                Ok(Probe::Ready(state))
            } else if state.has_failed() && !waiting_out_a_restart {
                Err(UnitError::Failed { state })
            } else {
                Ok(Probe::Pending(state.to_string()))
            }
        },
    )
    .await?;
    waited.map_err(UnitError::Timeout)
}

/// Confirms the unit stays active with no restart for `window` after `since` (when it was seen
/// active with `baseline` restarts), polling throughout so a death inside the window is caught.
/// The window is short next to etcd's 5 s `RestartSec`, so a crash loop cannot hide in it.
pub async fn stays_active(
    node: &NodeHandle,
    baseline: &UnitState,
    since: Instant,
    window: Duration,
) -> Result<UnitState, UnitError> {
    let remaining = window.saturating_sub(since.elapsed());
    let waited = poll_until(
        "etcd.service to stay active through the settle window",
        remaining + Duration::from_secs(5),
        Duration::from_millis(200),
        || async {
            let state = state(node).await?;
            if state.active != ActiveState::Active || state.restarts != baseline.restarts {
                return Err(UnitError::Failed { state });
            }
            if since.elapsed() >= window {
                Ok(Probe::Ready(state))
            } else {
                Ok(Probe::Pending(state.to_string()))
            }
        },
    )
    .await?;
    waited.map_err(UnitError::Timeout)
}

/// The unit's journal since `since_epoch` (seconds): etcd's own lines and systemd's lines about the
/// unit. etcd's are matched by syslog identifier too, because journald can miss the unit field on the
/// last line before a fast exit. Each line reads `etcd[133]: …` or `systemd[1]: …`: who said it,
/// and what (journalctl's short form without its date and host).
pub async fn journal(node: &NodeHandle, since_epoch: u64) -> Result<String, EngineError> {
    journal_at(node, since_epoch, None).await
}

/// The same journal's lines at priority err and above (etcd 3.4 logs its errors there; 3.5 logs
/// JSON to stderr, all at one priority, and says its level in the line).
pub async fn journal_errors(node: &NodeHandle, since_epoch: u64) -> Result<String, EngineError> {
    journal_at(node, since_epoch, Some("err")).await
}

async fn journal_at(
    node: &NodeHandle,
    since_epoch: u64,
    priority: Option<&str>,
) -> Result<String, EngineError> {
    let since = format!("@{since_epoch}");
    let mut argv = vec![
        "journalctl",
        "--no-pager",
        "-q",
        "-o",
        "short",
        "--since",
        &since,
    ];
    if let Some(priority) = priority {
        argv.extend(["-p", priority]);
    }
    argv.extend([
        "_SYSTEMD_UNIT=etcd.service",
        "+",
        "UNIT=etcd.service",
        "+",
        "SYSLOG_IDENTIFIER=etcd",
    ]);
    let out = node.exec(&argv, Duration::from_secs(15)).await?;
    Ok(out
        .stdout
        .lines()
        .map(without_date_and_host)
        .fold(String::new(), |mut text, line| {
            text.push_str(line);
            text.push('\n');
            text
        }))
}

/// A `journalctl -o short` line without its date and host: `etcd[133]: message`, who said it
/// and what, as the harness shows evidence.
fn without_date_and_host(line: &str) -> &str {
    // `Dec 03 08:00:01 server etcd[133]: …`: three words of date and time, then the host.
    let mut rest = line;
    for _ in 0..4 {
        match rest.split_once(' ') {
            Some((_, after)) => rest = after.trim_start(),
            None => return line,
        }
    }
    if rest
        .split_once(": ")
        .is_some_and(|(who, _)| who.ends_with(']'))
    {
        rest
    } else {
        line
    }
}

/// Seconds since the epoch, for `journalctl --since @…`.
pub fn epoch_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_systemctl_show_and_sees_a_crash_loop() {
        let state = UnitState::parse(
            "LoadState=loaded\nActiveState=activating\nSubState=auto-restart\nNRestarts=3\nResult=exit-code\nMainPID=0\n",
        );
        assert_eq!(state.active, ActiveState::Activating);
        assert_eq!(state.restarts, 3);
        assert!(state.has_failed());
        let running = UnitState::parse("ActiveState=active\nSubState=running\nNRestarts=0\n");
        assert!(!running.has_failed());
        let starting = UnitState::parse("ActiveState=activating\nSubState=start\n");
        assert!(!starting.has_failed());
        let stopped = UnitState::parse("ActiveState=inactive\nSubState=dead\n");
        assert!(stopped.has_failed());
    }
}
