//! Faults: the mistakes a tutorial reader makes, injected at a named point of the bootstrap — before
//! or after a step, or once etcd is up — so a scenario can reproduce a failure on demand.
//!
//! A fault is data ([`Fault`]); [`apply`] carries it out on a node and returns the transcript entry
//! of what it did. Certificate faults are not here: the PKI issues faulty material
//! ([`crate::pki::ServerCert`], [`crate::pki::ClientCert`]).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::cluster::Cluster;
use crate::engine::{Content, EngineError, UploadFile};
use crate::node::{NodeError, NodeHandle};
use crate::steps::{self, Bootstrap, RunStepError, Step};
use crate::transcript::{Entry, Host, Origin, Transcript};
use crate::wait::{poll_until, Probe, Timeout};

/// Where a fault is injected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum At {
    /// Before the step whose name starts with this.
    Before(String),
    /// After the step whose name starts with this.
    After(String),
    /// Once the bootstrap is done and etcd.service has been observed active.
    Ready,
}

/// What a fault does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Runs a shell command in the node.
    Run(String),
    /// Replaces text in the etcd unit file where it is at that point (`/root/etcd.service` before
    /// step 4 installs it, `/etc/systemd/system/etcd.service` after).
    EditUnit {
        /// Text to find (must occur).
        replace: String,
        /// Its replacement.
        with: String,
    },
    /// Skips the step (with [`At::Before`] only).
    Skip,
    /// Another process listens on `127.0.0.1:<port>` in the node.
    HoldPort(u16),
    /// Changes a path's mode.
    Chmod {
        /// The path in the node.
        path: String,
        /// The mode, octal as chmod takes it.
        mode: String,
    },
    /// Changes a path's owner.
    Chown {
        /// The path in the node.
        path: String,
        /// `user[:group]`.
        owner: String,
    },
    /// Reboots the node (container restart).
    Reboot,
    /// Runs the whole bootstrap again.
    RerunBootstrap,
    /// Stops the member's etcd (`systemctl stop etcd`).
    Stop,
    /// Starts the member's etcd (`systemctl start etcd`; with `Type=notify` it returns once etcd
    /// is ready, which a cluster member is only with a quorum).
    Start,
    /// Freezes the member's etcd process (SIGSTOP): it holds its ports and connections but answers
    /// nothing — a stalled disk or a long GC pause, as its peers see it.
    Pause,
    /// Thaws a paused etcd (SIGCONT).
    Resume,
    /// Cuts the member's node off the run's network (see [`crate::cluster::Cluster::isolate`]).
    Isolate,
    /// Puts an isolated node back on the network at its address.
    Heal,
    /// Runs the steps of another steps file (day-2 work: a snapshot, an upgrade), each recorded
    /// under its own name; a failing step does not stop the next.
    Steps(Bootstrap),
}

/// A fault at a point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Where.
    pub at: At,
    /// The node it is injected on, by host name (`None`: the first member's).
    pub on: Option<String>,
    /// What.
    pub action: Action,
}

impl Fault {
    /// True when this fault is injected before `step`.
    pub fn before(&self, step: &Step) -> bool {
        matches!(&self.at, At::Before(prefix) if step.name.starts_with(prefix.as_str()))
    }

    /// True when this fault is injected after `step`.
    pub fn after(&self, step: &Step) -> bool {
        matches!(&self.at, At::After(prefix) if step.name.starts_with(prefix.as_str()))
    }
}

/// Errors carrying out a fault.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// An engine call failed.
    #[error("fault: {0}")]
    Engine(#[from] EngineError),
    /// The node did not come back from a reboot.
    #[error("fault: {0}")]
    Node(#[from] NodeError),
    /// Re-running the bootstrap could not be carried out.
    #[error("fault: {0}")]
    Step(#[from] RunStepError),
    /// The unit file to edit is not where the fault's point implies, or lacks the text.
    #[error("fault edit_unit: {0}")]
    Edit(String),
    /// The network could not isolate or heal the node.
    #[error("fault: {0}")]
    Network(#[from] crate::network::NetworkError),
    /// The port holder did not start listening.
    #[error("fault hold_port: {0}")]
    Hold(Timeout),
}

/// The unit file's place before and after step 4.
const UNIT_PATHS: [&str; 2] = ["/etc/systemd/system/etcd.service", "/root/etcd.service"];

/// Carries out `action` on `node` and returns what it did, as a transcript entry.
/// Node-local actions act on the node `on` names (default: the first member's); steps run where
/// they say.
pub async fn apply(
    action: &Action,
    on: Option<&str>,
    cluster: &Cluster,
    bootstrap: &[Step],
    jumpbox: &Path,
    transcript: &mut Transcript,
) -> Result<(), FaultError> {
    let nodes: Vec<&NodeHandle> = cluster.nodes().collect();
    let node = on
        .and_then(|host| cluster.node(host))
        .unwrap_or(cluster.first());
    let start = Instant::now();
    let timeout = Duration::from_secs(60);
    let (command, out) = match action {
        Action::Run(script) => (script.clone(), Some(node.shell(script, timeout).await?)),
        Action::Chmod { path, mode } => (
            format!("chmod {mode} {path}"),
            Some(node.exec(&["chmod", mode, path], timeout).await?),
        ),
        Action::Chown { path, owner } => (
            format!("chown {owner} {path}"),
            Some(node.exec(&["chown", owner, path], timeout).await?),
        ),
        Action::EditUnit { replace, with } => {
            let path = edit_unit(node, replace, with).await?;
            (format!("edit {path}: `{replace}` → `{with}`"), None)
        }
        Action::HoldPort(port) => {
            let script = hold_port_script(*port);
            let out = node.shell(&script, timeout).await?;
            if out.exit_code == 0 {
                wait_listening(node, *port).await?;
            }
            (
                format!("hold 127.0.0.1:{port} with another process"),
                Some(out),
            )
        }
        Action::Stop | Action::Start => {
            let verb = if *action == Action::Stop {
                "stop"
            } else {
                "start"
            };
            let out = node.exec(&["systemctl", verb, "etcd"], timeout).await?;
            (format!("systemctl {verb} etcd"), Some(out))
        }
        Action::Pause | Action::Resume => {
            let signal = if *action == Action::Pause {
                "STOP"
            } else {
                "CONT"
            };
            let script = format!("kill -{signal} \"$(systemctl show -p MainPID --value etcd)\"");
            let out = node.shell(&script, timeout).await?;
            (script, Some(out))
        }
        Action::Isolate => {
            cluster.isolate(node.host()).await?;
            (
                "isolate the node: detach it from the run's network".to_owned(),
                None,
            )
        }
        Action::Heal => {
            cluster.heal(node.host()).await?;
            (
                "heal the node: attach it to the run's network again, at its address".to_owned(),
                None,
            )
        }
        Action::Reboot => {
            node.reboot().await?;
            ("reboot the node (docker restart)".to_owned(), None)
        }
        Action::RerunBootstrap => {
            for step in bootstrap {
                for entry in steps::run_on(step, &nodes, jumpbox).await? {
                    transcript.push(Entry {
                        origin: Origin::Rerun,
                        ..entry
                    });
                }
            }
            return Ok(());
        }
        Action::Steps(more) => {
            for step in &more.steps {
                for entry in steps::run_on(step, &nodes, jumpbox).await? {
                    transcript.push(entry);
                }
            }
            return Ok(());
        }
        Action::Skip => return Ok(()),
    };
    const STEP: &str = "Fault (injected by the scenario)";
    let entry = match out {
        Some(out) => Entry::of_exec(STEP, node.host(), command, out),
        None => Entry::done(
            STEP,
            Host::Node(node.host().to_owned()),
            command,
            Duration::ZERO,
        ),
    };
    // The fault's whole time (a reboot, waiting for a port holder), not only its command's.
    transcript.push(Entry {
        duration: start.elapsed(),
        ..entry
    });
    Ok(())
}

/// A listener on the port, run as a transient systemd service so it outlives the exec.
fn hold_port_script(port: u16) -> String {
    format!(
        "systemd-run --quiet --unit=port-holder-{port} perl -MIO::Socket::INET -e \
         'my $s = IO::Socket::INET->new(LocalAddr => \"127.0.0.1\", LocalPort => {port}, Listen => 5, \
         ReuseAddr => 1) or die \"listen: $!\\n\"; sleep'"
    )
}

async fn wait_listening(node: &NodeHandle, port: u16) -> Result<(), FaultError> {
    let needle = format!("127.0.0.1:{port} ");
    let waited = poll_until(
        "the port holder to listen",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async {
            let out = node.exec(&["ss", "-Htln"], Duration::from_secs(10)).await?;
            Ok::<_, FaultError>(if out.stdout.contains(&needle) {
                Probe::Ready(())
            } else {
                Probe::Pending(out.stdout.trim().to_owned())
            })
        },
    )
    .await?;
    waited.map_err(FaultError::Hold)
}

async fn edit_unit(node: &NodeHandle, replace: &str, with: &str) -> Result<String, FaultError> {
    for path in UNIT_PATHS {
        let out = node.exec(&["cat", path], Duration::from_secs(10)).await?;
        if out.exit_code != 0 {
            continue;
        }
        if !out.stdout.contains(replace) {
            return Err(FaultError::Edit(format!(
                "{path} does not contain `{replace}`"
            )));
        }
        let (dir, name) = path.rsplit_once('/').unwrap_or(("/", path));
        node.engine()
            .upload(
                node.id(),
                dir,
                vec![UploadFile {
                    name: name.to_owned(),
                    content: Content::Bytes(out.stdout.replace(replace, with).into_bytes()),
                    mode: 0o644,
                }],
            )
            .await?;
        return Ok(path.to_owned());
    }
    Err(FaultError::Edit(format!(
        "no unit file at {} (is the fault placed after step 1?)",
        UNIT_PATHS.join(" or ")
    )))
}
