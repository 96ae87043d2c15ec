//! The tutorial's "server": a node container running systemd as PID 1, owned by testcontainers so
//! it is removed when dropped — also after a panic; on Ctrl-C/SIGTERM the CLI drops the run.
//!
//! A node runs a reader's steps and etcd binaries they bring, possibly downloaded, as root: it gets
//! the least privilege systemd needs. No capability beyond Docker's defaults (three of those
//! dropped), `no-new-privileges`, Docker's seccomp profile, and a private cgroup namespace, so the
//! node sees only its own cgroups — never the host's tree, another container's cgroups, or a
//! hierarchy's `release_agent`. systemd needs its cgroups writable, which Docker mounts read-only:
//! a one-shot setup container holding CAP_SYS_ADMIN enters the node's mount and cgroup namespaces,
//! mounts them writable, and ends; PID 1 waits for it, then becomes systemd (see `CGROUP_SETUP`).
//!
//! Starting a node and waiting for systemd are here; what runs inside (the bootstrap, checks) is not.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bollard::models::HostConfig;
use testcontainers::core::{CgroupnsMode, Host, Mount};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};
use tokio::sync::Mutex;

use crate::agent::Agent;
use crate::engine::{
    create_detached, short, Engine, EngineError, ExecOutput, Labels, LABEL_KEEP, LABEL_OWNER,
};
use crate::image::NodeImage;
use crate::network::Link;
use crate::wait::{poll_until, Probe, Timeout};

/// The node's hostname, as the tutorial's `root@server` names it.
pub const HOSTNAME: &str = "server";

/// Run in the node's mount and cgroup namespaces by the one-shot setup container, which has
/// CAP_SYS_ADMIN (the node has not). In a private cgroup namespace Docker mounts the node's own
/// cgroups, read-only; a fresh cgroup mount there is rooted at the node's own cgroup too.
const CGROUP_SETUP: &str = r#"if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
  # cgroup v2: one mount, the node's own subtree; systemd delegates from there.
  mount -o remount,rw /sys/fs/cgroup
else
  # cgroup v1 (hybrid): systemd wants a cgroup2 mount for its own tracking and a writable
  # name=systemd hierarchy (it has no controllers); the controllers stay read-only.
  mount -o remount,rw /sys/fs/cgroup
  mkdir -p /sys/fs/cgroup/unified
  mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup/unified
  mount -o remount,bind,rw /sys/fs/cgroup/systemd
  mount -o remount,ro /sys/fs/cgroup
fi
# What the image's PID 1 waits for before it becomes systemd (/run is new at every start).
mkdir -p /run/etcd-harness
touch /run/etcd-harness/cgroups-ready
"#;

/// How long systemd gets to reach `running`.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// Errors starting or reaching a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// testcontainers failed to create or start the container.
    #[error("failed to start a node from {image}: {source}")]
    Start {
        /// The image reference.
        image: String,
        /// testcontainers' error.
        source: Box<testcontainers::TestcontainersError>,
    },
    /// The cgroup setup for systemd failed.
    #[error("failed to set up cgroups for systemd in node {node}: exit {exit_code}: {output}")]
    CgroupSetup {
        /// The container id (short).
        node: String,
        /// The setup's exit code.
        exit_code: i64,
        /// What it printed.
        output: String,
    },
    /// testcontainers failed to remove the container.
    #[error("failed to remove node {node}: {source}")]
    Remove {
        /// The container id (short).
        node: String,
        /// testcontainers' error.
        source: Box<testcontainers::TestcontainersError>,
    },
    /// An engine call failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// systemd did not reach `running` in time.
    #[error("node {node} did not boot: {timeout}")]
    BootTimeout {
        /// The container id (short).
        node: String,
        /// What the wait saw last.
        timeout: Timeout,
    },
    /// The container was not made by an etcd-harness run.
    #[error(
        "container `{node}` was not created by an etcd-harness run (it has no `{LABEL_OWNER}` \
         label)\n  remedy: diagnose a node kept with `etcd-harness run --keep`"
    )]
    NotOurs {
        /// The container as the user named it.
        node: String,
    },
    /// systemd is not PID 1 in the container, so there is no systemd or journal to ask.
    #[error(
        "systemd is not PID 1 in `{node}` (PID 1 is `{pid1}`): the diagnosis reads systemd's and \
         the journal's view of etcd.service\n  remedy: diagnose a node kept with \
         `etcd-harness run --keep`"
    )]
    NoSystemd {
        /// The container as the user named it.
        node: String,
        /// What PID 1 is.
        pid1: String,
    },
    /// systemd came up `degraded`: some unit failed.
    #[error("node {node} booted degraded; failed units:\n{failed}")]
    Degraded {
        /// The container id (short).
        node: String,
        /// `systemctl --failed` output.
        failed: String,
    },
}

/// How to start a node.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// The image to run.
    pub image: NodeImage,
    /// Keep the node after the run (it is labelled so the stale sweep leaves it alone).
    pub keep: bool,
    /// Its host name (the tutorial's single node is `server`).
    pub hostname: String,
    /// Where it is linked into the run's network (`None`: the engine's default bridge).
    pub link: Option<Link>,
}

impl NodeSpec {
    /// The tutorial's single node, `server`, on the engine's default network.
    pub fn server(image: &NodeImage) -> Self {
        Self {
            image: image.clone(),
            keep: false,
            hostname: HOSTNAME.to_owned(),
            link: None,
        }
    }
}

/// A node reached by container id: running commands in it. Diagnosis uses it on nodes this
/// process did not start (kept with `run --keep`). Clones share one command agent.
#[derive(Clone)]
pub struct NodeHandle {
    engine: Engine,
    id: String,
    host: String,
    agent: Arc<Mutex<AgentSlot>>,
    /// Where the node is linked into the run's network, to link it again after a reboot.
    link: Option<Link>,
}

/// Whether commands go through the node's [`Agent`], and the running one.
#[derive(Default)]
struct AgentSlot {
    /// Off while systemd boots: the agent is started once it runs, so that, on cgroup v2, no
    /// process of ours sits in the node's root cgroup while systemd sets up its controllers.
    enabled: bool,
    running: Option<Arc<Agent>>,
}

impl NodeHandle {
    /// A handle on container `id` of `engine`, whose host name is `host`.
    pub fn new(engine: &Engine, id: &str, host: &str) -> Self {
        Self {
            engine: engine.clone(),
            id: id.to_owned(),
            host: host.to_owned(),
            agent: Arc::default(),
            link: None,
        }
    }

    /// The running agent, started if need be; `None` while it is off, or where it cannot start
    /// (then the command takes an engine exec of its own).
    async fn agent(&self) -> Option<Arc<Agent>> {
        let mut slot = self.agent.lock().await;
        if !slot.enabled {
            return None;
        }
        if let Some(agent) = slot.running.as_ref().filter(|a| a.is_alive()) {
            return Some(agent.clone());
        }
        slot.running = Agent::start(&self.engine, &self.id)
            .await
            .ok()
            .map(Arc::new);
        slot.running.clone()
    }

    /// Turns the agent on (`true`, systemd is up) or off (the node is about to restart).
    async fn set_agent(&self, enabled: bool) {
        let mut slot = self.agent.lock().await;
        slot.enabled = enabled;
        if !enabled {
            slot.running = None;
        }
    }

    /// The node's host name (`server`, `controller-0`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// A handle on an existing node by id or name — refused unless an etcd-harness run created it
    /// and systemd is its PID 1.
    pub async fn adopt(engine: &Engine, node: &str) -> Result<Self, NodeError> {
        let made_of = engine.made_of(node).await?;
        if !made_of.labels.contains_key(LABEL_OWNER) {
            return Err(NodeError::NotOurs {
                node: node.to_owned(),
            });
        }
        let handle = Self::new(engine, node, &made_of.hostname);
        let pid1 = handle
            .exec(&["cat", "/proc/1/comm"], Duration::from_secs(10))
            .await?;
        match pid1.stdout.trim() {
            "systemd" => {
                handle.set_agent(true).await;
                Ok(handle)
            }
            other => Err(NodeError::NoSystemd {
                node: node.to_owned(),
                pid1: other.to_owned(),
            }),
        }
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The engine this node runs on.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Runs `argv` in the node as root in `/root` and returns its output; the caller judges the
    /// exit code.
    pub async fn exec(&self, argv: &[&str], timeout: Duration) -> Result<ExecOutput, EngineError> {
        match self.agent().await {
            Some(agent) => agent.run(argv, "/root", timeout, None).await,
            None => self.engine.exec(&self.id, argv, "/root", timeout).await,
        }
    }

    /// [`NodeHandle::exec`], telling `printed` when the command first writes output (see
    /// [`Engine::exec_telling_first_output`]).
    pub async fn exec_telling_first_output(
        &self,
        argv: &[&str],
        timeout: Duration,
        printed: tokio::sync::oneshot::Sender<()>,
    ) -> Result<ExecOutput, EngineError> {
        match self.agent().await {
            Some(agent) => agent.run(argv, "/root", timeout, Some(printed)).await,
            None => {
                self.engine
                    .exec_telling_first_output(&self.id, argv, "/root", timeout, printed)
                    .await
            }
        }
    }

    /// Runs `script` with `bash -c` in the node as root in `/root` — how an operator's terminal
    /// runs the seed's commands.
    pub async fn shell(&self, script: &str, timeout: Duration) -> Result<ExecOutput, EngineError> {
        self.exec(&["bash", "-c", script], timeout).await
    }

    /// Reboots the node (a container restart, systemd shutting down cleanly on `SIGRTMIN+3`) and
    /// waits for systemd again.
    pub async fn reboot(&self) -> Result<(), NodeError> {
        self.set_agent(false).await;
        self.engine
            .restart(&self.id, Duration::from_secs(10))
            .await?;
        // The restarted node has fresh mounts (its cgroups are read-only again) and a fresh
        // network namespace (its link to the switch is gone).
        let made_of = self.engine.made_of(&self.id).await?;
        self.set_up_cgroups(&made_of.image, made_of.labels).await?;
        self.wait_booted().await?;
        self.set_agent(true).await;
        Ok(())
    }

    /// Makes the node's own cgroups writable for systemd with a one-shot container that holds
    /// CAP_SYS_ADMIN, shares the node's pid namespace and has no network ([`CGROUP_SETUP`]); for a
    /// node on a run's network, it runs in the switch's network namespace with CAP_NET_ADMIN too,
    /// and first links the node in ([`Link::script`]), before systemd starts.
    async fn set_up_cgroups(
        &self,
        image: &str,
        labels: HashMap<String, String>,
    ) -> Result<(), NodeError> {
        // Where the engine confines containers with AppArmor, its default profile denies the
        // remount: this one-shot container (not the node) runs unconfined there.
        let apparmor = self.engine.confines_with_apparmor().await?;
        let mut host = HostConfig {
            cap_add: Some(vec!["SYS_ADMIN".into()]),
            pid_mode: Some(format!("container:{}", self.id)),
            network_mode: Some("none".into()),
            security_opt: apparmor.then(|| vec!["apparmor=unconfined".into()]),
            ..Default::default()
        };
        let mut script = String::from("set -eu\n");
        if let Some(link) = &self.link {
            link.host_config(&mut host);
            script.push_str(&link.script());
        }
        script.push_str(CGROUP_SETUP);
        let argv = ["nsenter", "-t", "1", "-m", "-C", "--", "sh", "-c", &script];
        let out = self
            .engine
            .run_once(image, &argv, host, labels, Duration::from_secs(30))
            .await?;
        if out.exit_code != 0 {
            return Err(NodeError::CgroupSetup {
                node: short(&self.id).to_owned(),
                exit_code: out.exit_code,
                output: format!("{}{}", out.stdout, out.stderr).trim().to_owned(),
            });
        }
        Ok(())
    }

    /// Waits until `systemctl is-system-running` answers `running`; `degraded` is an error that
    /// shows `systemctl --failed`. The polling runs inside the node ([`BOOT_WAIT`]): one engine
    /// exec for the whole boot rather than one per poll.
    pub async fn wait_booted(&self) -> Result<(), NodeError> {
        let node = short(self.id()).to_owned();
        let waited = poll_until(
            "systemd to report `running` (systemctl is-system-running)",
            BOOT_TIMEOUT,
            Duration::from_millis(100),
            || async {
                let out = self.exec(&["bash", "-c", BOOT_WAIT], BOOT_TIMEOUT).await?;
                let state = out.stdout.trim();
                Ok::<_, NodeError>(match state {
                    "running" => Probe::Ready(()),
                    "degraded" => {
                        let failed = self
                            .exec(
                                &["systemctl", "--failed", "--no-pager"],
                                Duration::from_secs(10),
                            )
                            .await?;
                        return Err(NodeError::Degraded {
                            node: node.clone(),
                            failed: failed.stdout,
                        });
                    }
                    // Right after start systemctl cannot reach the bus yet; that is "not yet".
                    "" => Probe::Pending(out.stderr.trim().to_owned()),
                    other => Probe::Pending(other.to_owned()),
                })
            },
        )
        .await?;
        waited.map_err(|timeout| NodeError::BootTimeout { node, timeout })
    }
}

/// Asks `systemctl is-system-running` every 50 ms, inside the node, until systemd has left its
/// start-up (`initializing`, `starting`, or no answer while PID 1 is not systemd yet) or about a
/// minute has passed; prints the last answer (or lets systemctl say why it has none).
const BOOT_WAIT: &str = r#"for _ in $(seq 1200); do
  state=$(systemctl is-system-running 2>/dev/null)
  case "$state" in ""|initializing|starting) sleep 0.05 ;; *) break ;; esac
done
if [ -n "$state" ]; then echo "$state"; else systemctl is-system-running; fi"#;

/// A running node. Dropping it removes the container.
pub struct Node {
    container: ContainerAsync<GenericImage>,
    handle: NodeHandle,
}

impl std::ops::Deref for Node {
    type Target = NodeHandle;

    fn deref(&self) -> &NodeHandle {
        &self.handle
    }
}

impl Node {
    /// Starts a node with the settings systemd needs as PID 1 in this sandbox, and waits until
    /// `systemctl is-system-running` answers `running`.
    pub async fn start(
        engine: &Engine,
        labels: &Labels,
        spec: &NodeSpec,
    ) -> Result<Self, NodeError> {
        // The image's command waits for the cgroup setup, then becomes systemd (PID 1: what
        // `systemctl` talks to and what runs etcd.service).
        let mut request = GenericImage::new(spec.image.repo.clone(), spec.image.tag.clone())
            .with_hostname(spec.hostname.clone())
            // The node's own cgroups only: not the host's tree, not another container's, and no
            // hierarchy root with its `release_agent`.
            .with_cgroupns_mode(CgroupnsMode::Private)
            // Docker's default capabilities, less three that neither systemd nor etcd use; no
            // CAP_SYS_ADMIN (the cgroup setup container holds it for a moment instead).
            .with_cap_drop("NET_RAW")
            .with_cap_drop("MKNOD")
            .with_cap_drop("AUDIT_WRITE")
            // No process in the node gains privileges through setuid binaries or file capabilities.
            .with_security_opt("no-new-privileges")
            // systemd expects these to be tmpfs; without them it refuses to boot or leaves state behind.
            .with_mount(Mount::tmpfs_mount("/run"))
            .with_mount(Mount::tmpfs_mount("/run/lock"))
            .with_mount(Mount::tmpfs_mount("/tmp"))
            .with_startup_timeout(Duration::from_secs(60));
        for (key, value) in labels.pairs() {
            request = request.with_label(key, value);
        }
        if spec.keep {
            request = request.with_label(LABEL_KEEP, "true");
        }
        if let Some(link) = &spec.link {
            // As for the switch (network.rs): the mode, not a network by that name.
            request =
                request.with_host_config_modifier(|host| host.network_mode = Some("none".into()));
            for (host, address) in &link.hosts {
                request = request.with_host(host.clone(), Host::Addr((*address).into()));
            }
        }
        // Created in a task of its own: an interrupted run must not miss a node created a moment later.
        let container =
            create_detached(request.start())
                .await
                .map_err(|source| NodeError::Start {
                    image: spec.image.reference(),
                    source: Box::new(source),
                })?;
        let node = Self {
            handle: NodeHandle {
                link: spec.link.clone(),
                ..NodeHandle::new(engine, container.id(), &spec.hostname)
            },
            container,
        };
        node.set_up_cgroups(
            &spec.image.reference(),
            labels.pairs().into_iter().collect(),
        )
        .await?;
        node.wait_booted().await?;
        node.set_agent(true).await;
        Ok(node)
    }

    /// Where the node is linked into the run's network.
    pub fn link(&self) -> Option<&Link> {
        self.handle.link.as_ref()
    }

    /// Leaves the node running after this value is gone and returns its container id.
    pub fn keep(self) -> String {
        let id = self.id().to_owned();
        // Dropping a ContainerAsync removes its container; forgetting it is how a node outlives the
        // run on purpose (it carries the keep label, so the stale sweep ignores it too).
        std::mem::forget(self.container);
        id
    }

    /// Removes the node now (rather than on drop), reporting a failure to do so.
    pub async fn remove(self) -> Result<(), NodeError> {
        let id = short(self.id()).to_owned();
        self.container
            .rm()
            .await
            .map_err(|source| NodeError::Remove {
                node: id,
                source: Box::new(source),
            })
    }
}
