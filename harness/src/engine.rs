//! The Docker engine as etcd-harness uses it: one negotiated bollard connection, the run's labels,
//! and thin typed wrappers for the calls testcontainers does not make (or makes slowly): exec with
//! its exit code, archive upload, inspect, and the sweep of a killed run's leftovers.
//!
//! It does not start nodes (that is [`crate::node`], through testcontainers) and it knows nothing of
//! etcd. Every call has a timeout; every container and network this crate makes carries [`Labels`].

use std::collections::HashMap;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, ListContainersOptions,
    ListNetworksOptions, LogsOptions, RemoveContainerOptions, StartContainerOptions,
    UploadToContainerOptions, WaitContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;
use tokio::io::AsyncWrite;

use crate::owner::{Owner, Verdict};
use crate::wait::{poll_until, Probe};

/// Label present on everything etcd-harness creates (and on nothing else: not on the node image,
/// whose labels every container made from it would inherit).
pub const LABEL: &str = "etcd-harness";
/// Label naming the run (one [`Labels`] value) that created a resource.
pub const LABEL_RUN: &str = "etcd-harness.run";
/// Label holding the creating process's id, for people and `docker ps --filter`.
pub const LABEL_PID: &str = "etcd-harness.pid";
/// Label holding the creating process as an [`Owner`]: what the sweep judges by.
pub const LABEL_OWNER: &str = "etcd-harness.owner";
/// Label naming the creating host, for people (the sweep judges by [`LABEL_OWNER`]).
pub const LABEL_HOST: &str = "etcd-harness.host";
/// Label set on a node kept with `run --keep`: the sweep leaves it alone.
pub const LABEL_KEEP: &str = "etcd-harness.keep";

/// Container creations in flight in this process (see [`create_detached`]).
static CREATING: AtomicUsize = AtomicUsize::new(0);

/// How long a single engine request may take before it is reported as hung.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Errors talking to the Docker engine, each naming what was being done.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No engine answered at the address tried.
    #[error(
        "failed to reach a Docker engine at {address}: {source}\n  remedy: start one \
         (e.g. `apt-get install docker.io && dockerd &`, or `systemctl start docker`) \
         or point DOCKER_HOST at a running engine"
    )]
    Unreachable {
        /// The socket or URL tried (`DOCKER_HOST`, or the default socket).
        address: String,
        /// What the client reported.
        source: bollard::errors::Error,
    },
    /// A request failed.
    #[error("failed to {action}: {source}")]
    Request {
        /// What was being done, as a phrase ("exec in node 3f2a…").
        action: String,
        /// What the engine reported.
        source: bollard::errors::Error,
    },
    /// A request did not finish in time.
    #[error("timed out after {:.0}s trying to {action}", .after.as_secs_f64())]
    Timeout {
        /// What was being done.
        action: String,
        /// How long it was given.
        after: Duration,
    },
    /// Building an archive to upload, or reading a downloaded one, failed.
    #[error("failed to pack or unpack {path}: {source}")]
    Pack {
        /// The file being packed.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl EngineError {
    fn request(action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> Self {
        let action = action.into();
        move |source| Self::Request { action, source }
    }
}

/// Runs `creation` — a future that creates a container — to its end in a task of its own, even if
/// the caller is dropped half-way (an interrupted run): otherwise the engine could create the
/// container a moment after the run stopped looking for what to remove. An interrupted run waits for
/// these before it asks the engine what is left ([`Engine::remove_this_process`]).
pub(crate) async fn create_detached<T: Send + 'static>(
    creation: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    struct InFlight;
    impl Drop for InFlight {
        fn drop(&mut self) {
            CREATING.fetch_sub(1, Ordering::SeqCst);
        }
    }
    CREATING.fetch_add(1, Ordering::SeqCst);
    let in_flight = InFlight;
    let task = tokio::spawn(async move {
        let _in_flight = in_flight;
        creation.await
    });
    match task.await {
        Ok(value) => value,
        // The task cannot be cancelled (nothing aborts it); a panic inside is the caller's panic.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Runs `fut` with a deadline (stretched by `ETCD_HARNESS_TIME_SCALE`), naming `action` if it passes.
pub(crate) async fn within<T>(
    after: Duration,
    action: impl Fn() -> String,
    fut: impl std::future::Future<Output = Result<T, EngineError>>,
) -> Result<T, EngineError> {
    let after = crate::wait::scaled(after);
    tokio::time::timeout(after, fut).await.unwrap_or_else(|_| {
        Err(EngineError::Timeout {
            action: action(),
            after,
        })
    })
}

/// The labels a run puts on everything it creates.
#[derive(Debug, Clone)]
pub struct Labels {
    run: String,
    owner: Owner,
}

impl Labels {
    /// Labels for a fresh run of this process.
    pub fn for_this_process() -> Self {
        Self::owned_by(Owner::this_process().clone())
    }

    /// Labels for a fresh run of `owner` (tests simulate other hosts and dead runs with it).
    pub fn owned_by(owner: Owner) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        Self {
            run: format!("{}-{nanos:08x}", owner.pid),
            owner,
        }
    }

    /// The run's identifier.
    pub fn run_id(&self) -> &str {
        &self.run
    }

    /// The labels as key/value pairs.
    pub fn pairs(&self) -> Vec<(String, String)> {
        vec![
            (LABEL.into(), "true".into()),
            (LABEL_RUN.into(), self.run.clone()),
            (LABEL_PID.into(), self.owner.pid.to_string()),
            (LABEL_OWNER.into(), self.owner.encode()),
            (LABEL_HOST.into(), hostname()),
        ]
    }
}

/// This host's name, for people reading labels.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// What a sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Containers and networks removed: their owner was provably dead.
    pub removed: usize,
    /// Leftovers of other hosts or pid namespaces, left alone: their owners cannot be judged here.
    pub foreign: usize,
}

/// The output of a finished exec.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    /// The command's exit code.
    pub exit_code: i64,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Wall time from create to exit.
    pub duration: Duration,
}

/// What a container was made from.
#[derive(Debug, Clone)]
pub struct MadeOf {
    /// Its image, as the engine names it.
    pub image: String,
    /// Its labels.
    pub labels: HashMap<String, String>,
    /// Its host name.
    pub hostname: String,
}

/// An exec whose standard streams are attached, for byte streaming (the port-forward).
pub struct AttachedExec {
    /// Frames the command writes (stdout and stderr).
    pub output: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>,
    >,
    /// The command's standard input.
    pub input: std::pin::Pin<Box<dyn AsyncWrite + Send>>,
}

/// A file to place in a container.
#[derive(Debug, Clone)]
pub struct UploadFile {
    /// The file name inside the destination directory.
    pub name: String,
    /// Its content.
    pub content: Content,
    /// Its mode bits.
    pub mode: u32,
}

/// What an uploaded file holds.
#[derive(Debug, Clone)]
pub enum Content {
    /// Bytes the harness made in memory (a certificate, an edited unit).
    Bytes(Vec<u8>),
    /// A file on the jumpbox (symlinks followed), read in chunks while the archive is sent: the
    /// harness's memory does not grow with its size (etcd's binaries are 15–30 MB each).
    File(PathBuf),
}

impl UploadFile {
    /// What a packing error names: the file on disk, or the name of bytes made in memory.
    fn shown(&self) -> String {
        match &self.content {
            Content::Bytes(_) => self.name.clone(),
            Content::File(path) => path.display().to_string(),
        }
    }
}

/// What an engine says of itself ([`Engine::facts`]).
#[derive(Debug, Clone)]
pub struct EngineFacts {
    /// "Docker Engine", "Podman Engine".
    pub product: String,
    /// The engine's version.
    pub version: String,
    /// The newest API version it speaks.
    pub api_version: String,
    /// The host it runs on, as it names it.
    pub operating_system: String,
    /// "1" or "2".
    pub cgroup_version: String,
    /// "cgroupfs" or "systemd".
    pub cgroup_driver: String,
    /// Where it keeps images and containers, on its host.
    pub root_dir: Option<String>,
}

/// A negotiated connection to the engine.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    /// Whether the engine confines containers with AppArmor, asked once.
    apparmor: std::sync::Arc<tokio::sync::OnceCell<bool>>,
}

impl Engine {
    /// Connects to the engine `DOCKER_HOST` names (default: the local socket), negotiates the API
    /// version, and checks that it answers.
    pub async fn connect() -> Result<Self, EngineError> {
        let address = std::env::var("DOCKER_HOST")
            .unwrap_or_else(|_| "unix:///var/run/docker.sock".to_owned());
        let unreachable = |source| EngineError::Unreachable {
            address: address.clone(),
            source,
        };
        let docker = Docker::connect_with_defaults().map_err(unreachable)?;
        let docker = within(
            Duration::from_secs(10),
            || format!("negotiate an API version with {address}"),
            async { docker.negotiate_version().await.map_err(unreachable) },
        )
        .await?;
        within(
            Duration::from_secs(10),
            || format!("ping {address}"),
            async { docker.ping().await.map_err(unreachable) },
        )
        .await?;
        Ok(Self {
            docker,
            apparmor: Default::default(),
        })
    }

    /// Whether the engine confines containers with an AppArmor profile (it lists `name=apparmor`
    /// among its security options: Ubuntu's and Debian's Docker with AppArmor loaded). Docker's
    /// `docker-default` profile denies `mount`, which the cgroup setup container needs.
    pub async fn confines_with_apparmor(&self) -> Result<bool, EngineError> {
        let action = || "ask the engine for its security options".to_owned();
        let confined = self
            .apparmor
            .get_or_try_init(|| {
                within(Duration::from_secs(10), action, async {
                    let info = self
                        .docker
                        .info()
                        .await
                        .map_err(EngineError::request(action()))?;
                    Ok(info
                        .security_options
                        .iter()
                        .flatten()
                        .any(|o| o.split(',').any(|part| part == "name=apparmor")))
                })
            })
            .await?;
        Ok(*confined)
    }

    /// What the engine says of itself: product, versions, cgroups, where it keeps its data.
    pub async fn facts(&self) -> Result<EngineFacts, EngineError> {
        let action = || "ask the engine for its version and info".to_owned();
        let (version, info) = within(Duration::from_secs(10), action, async {
            let version = self
                .docker
                .version()
                .await
                .map_err(EngineError::request(action()))?;
            let info = self
                .docker
                .info()
                .await
                .map_err(EngineError::request(action()))?;
            Ok((version, info))
        })
        .await?;
        let text = |v: Option<String>| v.unwrap_or_else(|| "unknown".to_owned());
        // Docker names its daemon's component "Engine"; Podman's compatible API, "Podman Engine".
        let product = version
            .components
            .iter()
            .flatten()
            .map(|c| c.name.clone())
            .find(|n| n.contains("Engine"))
            .map(|n| {
                if n == "Engine" {
                    "Docker Engine".to_owned()
                } else {
                    n
                }
            })
            .unwrap_or_else(|| "an engine".to_owned());
        Ok(EngineFacts {
            product,
            version: text(version.version),
            api_version: text(version.api_version),
            operating_system: text(info.operating_system),
            cgroup_version: text(info.cgroup_version.map(|v| v.to_string())),
            cgroup_driver: text(info.cgroup_driver.map(|d| d.to_string())),
            root_dir: info.docker_root_dir,
        })
    }

    /// The bollard client, for the modules that mirror one area of the API (image, forward).
    pub(crate) fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Runs `argv` in `container` (working directory `workdir`) to completion and returns its exit
    /// code and output; fails if it does not finish within `timeout`.
    pub async fn exec(
        &self,
        container: &str,
        argv: &[&str],
        workdir: &str,
        timeout: Duration,
    ) -> Result<ExecOutput, EngineError> {
        self.exec_telling(container, argv, workdir, timeout, None)
            .await
    }

    /// [`Engine::exec`], telling `printed` as soon as the command writes its first output (a
    /// follower such as `journalctl -f` has shown its backlog: whatever is logged from then on, it
    /// prints by following). Dropping `printed` unsent says the command printed nothing.
    pub async fn exec_telling_first_output(
        &self,
        container: &str,
        argv: &[&str],
        workdir: &str,
        timeout: Duration,
        printed: tokio::sync::oneshot::Sender<()>,
    ) -> Result<ExecOutput, EngineError> {
        self.exec_telling(container, argv, workdir, timeout, Some(printed))
            .await
    }

    async fn exec_telling(
        &self,
        container: &str,
        argv: &[&str],
        workdir: &str,
        timeout: Duration,
        mut printed: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> Result<ExecOutput, EngineError> {
        let action = || format!("run {:?} in {}", argv.join(" "), short(container));
        within(timeout, action, async {
            let start = Instant::now();
            let exec = self
                .docker
                .create_exec(
                    container,
                    CreateExecOptions {
                        cmd: Some(argv.iter().map(|s| s.to_string()).collect()),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        working_dir: Some(workdir.to_owned()),
                        ..Default::default()
                    },
                )
                .await
                .map_err(EngineError::request(action()))?;
            let started = self
                .docker
                .start_exec(&exec.id, None::<StartExecOptions>)
                .await
                .map_err(EngineError::request(action()))?;
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            if let StartExecResults::Attached { mut output, .. } = started {
                while let Some(frame) = output.next().await {
                    match frame.map_err(EngineError::request(action()))? {
                        LogOutput::StdOut { message } | LogOutput::Console { message } => {
                            stdout.extend_from_slice(&message)
                        }
                        LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                        LogOutput::StdIn { .. } => continue,
                    }
                    if let Some(printed) = printed.take() {
                        // The receiver may have stopped listening; the exec goes on regardless.
                        let _ = printed.send(());
                    }
                }
            }
            let inspected = self
                .docker
                .inspect_exec(&exec.id)
                .await
                .map_err(EngineError::request(action()))?;
            Ok(ExecOutput {
                // A finished exec always has an exit code; -1 marks one the engine did not report.
                exit_code: inspected.exit_code.unwrap_or(-1),
                stdout: String::from_utf8_lossy(&stdout).into_owned(),
                stderr: String::from_utf8_lossy(&stderr).into_owned(),
                duration: start.elapsed(),
            })
        })
        .await
    }

    /// Starts `argv` in `container` with stdin, stdout and stderr attached, for streaming.
    pub async fn exec_attached(
        &self,
        container: &str,
        argv: &[&str],
    ) -> Result<AttachedExec, EngineError> {
        let action = || format!("attach {:?} in {}", argv.join(" "), short(container));
        within(REQUEST_TIMEOUT, action, async {
            let exec = self
                .docker
                .create_exec(
                    container,
                    CreateExecOptions {
                        cmd: Some(argv.iter().map(|s| s.to_string()).collect()),
                        attach_stdin: Some(true),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        ..Default::default()
                    },
                )
                .await
                .map_err(EngineError::request(action()))?;
            match self
                .docker
                .start_exec(&exec.id, None::<StartExecOptions>)
                .await
                .map_err(EngineError::request(action()))?
            {
                StartExecResults::Attached { output, input } => Ok(AttachedExec { output, input }),
                StartExecResults::Detached => Err(EngineError::Request {
                    action: action(),
                    source: bollard::errors::Error::DockerStreamError {
                        error: "the engine started the exec detached".into(),
                    },
                }),
            }
        })
        .await
    }

    /// The content and mode of regular file `path` in `container`, through the archive API; `None`
    /// when there is no such file.
    pub async fn download(
        &self,
        container: &str,
        path: &str,
    ) -> Result<Option<(Vec<u8>, u32)>, EngineError> {
        let action = || format!("download {}:{path}", short(container));
        let archive = within(REQUEST_TIMEOUT, action, async {
            let mut stream = self.docker.download_from_container(
                container,
                Some(DownloadFromContainerOptions {
                    path: path.to_owned(),
                }),
            );
            let mut archive = Vec::new();
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(bytes) => archive.extend_from_slice(&bytes),
                    Err(e) if is_not_found(&e) => return Ok(None),
                    Err(e) => return Err(EngineError::request(action())(e)),
                }
            }
            Ok(Some(archive))
        })
        .await?;
        let Some(archive) = archive else {
            return Ok(None);
        };
        let unpack = |source| EngineError::Pack {
            path: path.to_owned(),
            source,
        };
        let mut archive = tar::Archive::new(archive.as_slice());
        for entry in archive.entries().map_err(unpack)? {
            let mut entry = entry.map_err(unpack)?;
            if entry.header().entry_type().is_file() {
                let mode = entry.header().mode().map_err(unpack)?;
                let mut content = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut content).map_err(unpack)?;
                return Ok(Some((content, mode)));
            }
        }
        // A directory, or something else that is not a regular file.
        Ok(None)
    }

    /// Places `files` into directory `dir` of `container` (owned by root) through the archive API.
    /// The archive is packed while it is sent (see [`archive`]); a file that cannot be read fails
    /// the upload with its path, though the files before it in the archive may already be placed.
    pub async fn upload(
        &self,
        container: &str,
        dir: &str,
        files: Vec<UploadFile>,
    ) -> Result<(), EngineError> {
        let count = files.len();
        let action = || format!("upload {count} file(s) to {}:{dir}", short(container));
        let (chunks, packer) = archive(files);
        let sent = within(REQUEST_TIMEOUT, action, async {
            self.docker
                .upload_to_container(
                    container,
                    Some(UploadToContainerOptions {
                        path: dir.to_owned(),
                        ..Default::default()
                    }),
                    bollard::body_try_stream(chunks.map(|chunk| chunk.map(Into::into))),
                )
                .await
                .map_err(EngineError::request(action()))
        })
        .await;
        // A file that could not be read is why the engine saw a broken archive: name it first.
        match packer.await {
            Ok(packed) => packed?,
            // The packer is never cancelled; a panic inside it is this caller's panic.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
        sent
    }

    /// Runs a one-shot container of `image` with `argv` as its entrypoint and `host` settings, carrying
    /// `labels`, to its end; returns its exit code and output, and removes it.
    pub async fn run_once(
        &self,
        image: &str,
        argv: &[&str],
        host: HostConfig,
        labels: HashMap<String, String>,
        timeout: Duration,
    ) -> Result<ExecOutput, EngineError> {
        let action = || {
            format!(
                "run {:?} in a one-shot container of {image}",
                argv.join(" ")
            )
        };
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            entrypoint: Some(argv.iter().map(|a| a.to_string()).collect()),
            cmd: Some(Vec::new()),
            labels: Some(labels),
            host_config: Some(host),
            ..Default::default()
        };
        let docker = self.docker.clone();
        let created = create_detached(async move {
            docker
                .create_container(None::<CreateContainerOptions>, body)
                .await
        });
        let id = within(REQUEST_TIMEOUT, action, async {
            created.await.map_err(EngineError::request(action()))
        })
        .await?
        .id;
        let ran = within(timeout, action, async {
            let start = Instant::now();
            self.docker
                .start_container(&id, None::<StartContainerOptions>)
                .await
                .map_err(EngineError::request(action()))?;
            let mut waited = self
                .docker
                .wait_container(&id, None::<WaitContainerOptions>);
            let mut exit_code = -1;
            while let Some(status) = waited.next().await {
                exit_code = match status {
                    Ok(status) => status.status_code,
                    // bollard reports a non-zero exit as an error carrying the code.
                    Err(bollard::errors::Error::DockerContainerWaitError { code, .. }) => code,
                    Err(e) => return Err(EngineError::request(action())(e)),
                };
            }
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            let mut logs = self.docker.logs(
                &id,
                Some(LogsOptions {
                    stdout: true,
                    stderr: true,
                    ..Default::default()
                }),
            );
            while let Some(frame) = logs.next().await {
                match frame.map_err(EngineError::request(action()))? {
                    LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                    other => stdout.extend_from_slice(&other.into_bytes()),
                }
            }
            Ok(ExecOutput {
                exit_code,
                stdout: String::from_utf8_lossy(&stdout).into_owned(),
                stderr: String::from_utf8_lossy(&stderr).into_owned(),
                duration: start.elapsed(),
            })
        })
        .await;
        let removed = self
            .docker
            .remove_container(
                &id,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await
            .map_err(EngineError::request(format!(
                "remove one-shot container {}",
                short(&id)
            )));
        let out = ran?;
        removed?;
        Ok(out)
    }

    /// Restarts `container` (a reboot of the node: the engine sends the image's stop signal, waits at
    /// most `grace`, then starts it again).
    pub async fn restart(&self, container: &str, grace: Duration) -> Result<(), EngineError> {
        let action = || format!("restart {}", short(container));
        within(REQUEST_TIMEOUT + grace, action, async {
            self.docker
                .restart_container(
                    container,
                    Some(bollard::query_parameters::RestartContainerOptions {
                        t: Some(grace.as_secs() as i32),
                        ..Default::default()
                    }),
                )
                .await
                .map_err(EngineError::request(action()))
        })
        .await
    }

    /// The image and labels of `container` (an id or name).
    pub async fn made_of(&self, container: &str) -> Result<MadeOf, EngineError> {
        let action = || format!("inspect container `{container}`");
        within(REQUEST_TIMEOUT, action, async {
            let config = self
                .docker
                .inspect_container(container, None)
                .await
                .map_err(EngineError::request(action()))?
                .config
                .unwrap_or_default();
            Ok(MadeOf {
                image: config.image.unwrap_or_default(),
                labels: config.labels.unwrap_or_default(),
                hostname: config.hostname.unwrap_or_default(),
            })
        })
        .await
    }

    /// Ids of the containers that carry `labels`' run label: after a run has cleaned up, none.
    pub async fn containers_of(&self, labels: &Labels) -> Result<Vec<String>, EngineError> {
        self.containers_labelled(LABEL_RUN, labels.run_id()).await
    }

    async fn containers_labelled(
        &self,
        key: &str,
        value: &str,
    ) -> Result<Vec<String>, EngineError> {
        let filters = HashMap::from([("label".to_owned(), vec![format!("{key}={value}")])]);
        let action = || format!("list containers labelled {key}={value}");
        within(REQUEST_TIMEOUT, action, async {
            let listed = self
                .docker
                .list_containers(Some(ListContainersOptions {
                    all: true,
                    filters: Some(filters.clone()),
                    ..Default::default()
                }))
                .await
                .map_err(EngineError::request(action()))?;
            Ok(listed.into_iter().filter_map(|c| c.id).collect())
        })
        .await
    }

    /// Removes, at once (no graceful stop), every container and network of this process: what an
    /// interrupted run does before it exits. Repeats until the engine lists none twice in a row, so
    /// a container whose create request was in flight, or whose removal another caller started, is
    /// waited for too.
    pub async fn remove_this_process(&self) -> Result<(), EngineError> {
        let me = Owner::this_process();
        let creations = poll_until(
            "this process's container creations in flight to finish",
            Duration::from_secs(10),
            Duration::from_millis(20),
            || async {
                Ok::<_, EngineError>(match CREATING.load(Ordering::SeqCst) {
                    0 => Probe::Ready(()),
                    n => Probe::Pending(format!("{n} in flight")),
                })
            },
        )
        .await?;
        // Past the deadline, remove what can be seen anyway.
        drop(creations);
        let quiet = std::cell::Cell::new(0);
        let waited = poll_until(
            "the engine to list no container or network of this process",
            Duration::from_secs(10),
            Duration::from_millis(100),
            || async {
                let listed = self
                    .remove_where(|labels| owner_of(labels).as_ref() == Some(me))
                    .await?;
                quiet.set(if listed == 0 { quiet.get() + 1 } else { 0 });
                Ok::<_, EngineError>(if quiet.get() >= 2 {
                    Probe::Ready(())
                } else {
                    Probe::Pending(format!("{listed} listed"))
                })
            },
        )
        .await?;
        waited.map_err(|timeout| EngineError::Timeout {
            action: format!("remove this process's containers ({timeout})"),
            after: Duration::from_secs(10),
        })
    }

    /// Removes the containers and networks `owner` left, except nodes kept on purpose: what the
    /// reaper does once a run it watches has died. Returns how many.
    pub async fn remove_left_by(&self, owner: &Owner) -> Result<usize, EngineError> {
        self.remove_where(|labels| {
            owner_of(labels).as_ref() == Some(owner) && !labels.contains_key(LABEL_KEEP)
        })
        .await
    }

    /// Removes containers and networks of etcd-harness runs that `judge` can prove dead (same pid
    /// namespace; the pid gone or reused), except nodes kept on purpose. Leftovers of other hosts or
    /// namespaces are counted and left alone.
    pub async fn sweep_stale(&self, judge: &Owner) -> Result<Swept, EngineError> {
        let mut foreign = 0;
        let removed = self
            .remove_where(|labels| {
                let Some(owner) = owner_of(labels) else {
                    return false;
                };
                match owner.verdict(judge) {
                    Verdict::Dead => !labels.contains_key(LABEL_KEEP),
                    Verdict::Foreign => {
                        foreign += 1;
                        false
                    }
                    Verdict::Alive => false,
                }
            })
            .await?;
        Ok(Swept { removed, foreign })
    }

    /// Removes the nodes kept with `run --keep` whose run has ended, and their networks
    /// (`clean --kept`). Returns how many containers and networks.
    pub async fn remove_kept(&self, judge: &Owner) -> Result<usize, EngineError> {
        let (containers, _) = self.labelled().await?;
        let owners: Vec<Owner> = containers
            .iter()
            .filter(|(_, labels)| labels.contains_key(LABEL_KEEP))
            .filter_map(|(_, labels)| owner_of(labels))
            .filter(|owner| owner.verdict(judge) == Verdict::Dead)
            .collect();
        self.remove_where(|labels| owner_of(labels).is_some_and(|o| owners.contains(&o)))
            .await
    }

    /// Counts the labelled containers and networks whose labels `matches` accepts.
    pub async fn count_labelled(
        &self,
        mut matches: impl FnMut(&HashMap<String, String>) -> bool,
    ) -> Result<(usize, usize), EngineError> {
        let (containers, networks) = self.labelled().await?;
        let mut count = |found: &[(String, HashMap<String, String>)]| {
            found.iter().filter(|(_, labels)| matches(labels)).count()
        };
        Ok((count(&containers), count(&networks)))
    }

    /// The id and labels of every container, then every network, that carries [`LABEL`].
    async fn labelled(&self) -> Result<(Labelled, Labelled), EngineError> {
        let filters = HashMap::from([("label".to_owned(), vec![LABEL.to_owned()])]);
        let action = || "list etcd-harness containers and networks".to_owned();
        within(REQUEST_TIMEOUT, action, async {
            let containers = self
                .docker
                .list_containers(Some(ListContainersOptions {
                    all: true,
                    filters: Some(filters.clone()),
                    ..Default::default()
                }))
                .await
                .map_err(EngineError::request(action()))?
                .into_iter()
                .filter_map(|c| Some((c.id?, c.labels?)))
                .collect();
            let networks = self
                .docker
                .list_networks(Some(ListNetworksOptions {
                    filters: Some(filters.clone()),
                }))
                .await
                .map_err(EngineError::request(action()))?
                .into_iter()
                .filter_map(|n| Some((n.id?, n.labels?)))
                .collect();
            Ok((containers, networks))
        })
        .await
    }

    /// Force-removes every labelled container, then network, whose labels `doomed` accepts; returns
    /// how many it found (a removal another caller started counts, since it is still listed).
    /// Removes `container` at once, with its anonymous volumes; one already gone is no error.
    async fn remove_container_now(&self, id: &str) -> Result<(), EngineError> {
        let action = || format!("remove container {}", short(id));
        within(REQUEST_TIMEOUT, action, async {
            match self
                .docker
                .remove_container(
                    id,
                    Some(RemoveContainerOptions {
                        force: true,
                        v: true,
                        ..Default::default()
                    }),
                )
                .await
            {
                // Another remover (a drop, a concurrent sweep) may have been first.
                Err(e) if !is_not_found(&e) => Err(EngineError::request(action())(e)),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn remove_where(
        &self,
        mut doomed: impl FnMut(&HashMap<String, String>) -> bool,
    ) -> Result<usize, EngineError> {
        let (containers, networks) = self.labelled().await?;
        let mut removed = 0;
        let doomed_containers: Vec<String> = containers
            .into_iter()
            .filter(|(_, labels)| doomed(labels))
            .map(|(id, _)| id)
            .collect();
        // A container another one depends on (a node whose pid namespace a cgroup setup container
        // shares) cannot be removed before it on Podman: what failed is tried again once the
        // others are gone, and only a second failure is an error.
        let mut failed = Vec::new();
        for id in doomed_containers {
            match self.remove_container_now(&id).await {
                Ok(()) => removed += 1,
                Err(e) => failed.push((id, e)),
            }
        }
        for (id, first) in failed {
            self.remove_container_now(&id).await.map_err(|_| first)?;
            removed += 1;
        }
        for (id, labels) in networks {
            if !doomed(&labels) {
                continue;
            }
            let action = || format!("remove network {}", short(&id));
            let gone = within(REQUEST_TIMEOUT, action, async {
                match self.docker.remove_network(&id).await {
                    // Nodes kept with --keep are still attached: the network goes with them, at
                    // a later sweep.
                    Err(bollard::errors::Error::DockerResponseServerError {
                        status_code: 403,
                        message,
                    }) if message.contains("active endpoints") => Ok(false),
                    Err(e) if !is_not_found(&e) => Err(EngineError::request(action())(e)),
                    _ => Ok(true),
                }
            })
            .await?;
            removed += usize::from(gone);
        }
        Ok(removed)
    }
}

/// Ids and labels of labelled resources.
type Labelled = Vec<(String, HashMap<String, String>)>;

/// The owner a resource's labels name, if they name one.
fn owner_of(labels: &HashMap<String, String>) -> Option<Owner> {
    labels.get(LABEL_OWNER).and_then(|v| Owner::decode(v))
}

/// True when the engine answered 404 (or 409 for a removal already in progress).
fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404 | 409,
            ..
        }
    )
}

/// The first 12 characters of a container id, as `docker ps` shows it.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// The size of the pieces an upload's archive is sent in.
const CHUNK: usize = 64 * 1024;
/// How many packed chunks may wait for the engine: the packer blocks beyond them, so a fast disk
/// never runs ahead of a slow engine by more than `CHUNK × QUEUED` bytes.
const QUEUED: usize = 4;

/// The tar archive of `files`, as a stream of chunks packed on a blocking thread while the stream
/// is read, and that thread's outcome. If packing fails while the stream is read, the stream ends
/// with an error (so the engine discards a truncated archive instead of taking it as complete) and
/// the outcome names the file; if the reader goes away first, the outcome is `Ok`: the reader's own
/// error says why.
fn archive(
    files: Vec<UploadFile>,
) -> (
    impl futures_util::Stream<Item = std::io::Result<Vec<u8>>>,
    tokio::task::JoinHandle<Result<(), EngineError>>,
) {
    let (to_body, from_packer) = tokio::sync::mpsc::channel(QUEUED);
    let packer = tokio::task::spawn_blocking(move || {
        let mut chunks = Chunks {
            pending: Vec::with_capacity(CHUNK),
            to_body,
        };
        match pack(&files, &mut chunks) {
            Ok(()) => Ok(()),
            // The reader went away (the request was refused or timed out): its error says why.
            Err(_) if chunks.to_body.is_closed() => Ok(()),
            Err(e) => {
                let broken = std::io::Error::other(format!("the archive is incomplete: {e}"));
                // Had the reader gone meanwhile, `e` is still what the caller reports.
                let _ = chunks.to_body.blocking_send(Err(broken));
                Err(e)
            }
        }
    });
    let chunks = futures_util::stream::unfold(from_packer, |mut from_packer| async move {
        let chunk = from_packer.recv().await?;
        Some((chunk, from_packer))
    });
    (chunks, packer)
}

/// Writes the tar archive of `files` to `out`, reading each file on disk as it goes. Headers are
/// GNU ones carrying the file's name, size, mode and the current time, as `tar::Builder` makes them.
fn pack(files: &[UploadFile], out: impl Write) -> Result<(), EngineError> {
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let mut archive = tar::Builder::new(out);
    for file in files {
        let mut header = tar::Header::new_gnu();
        header.set_mode(file.mode);
        header.set_mtime(mtime);
        let appended = match &file.content {
            Content::Bytes(bytes) => {
                header.set_size(bytes.len() as u64);
                archive.append_data(&mut header, &file.name, bytes.as_slice())
            }
            Content::File(path) => append_file(&mut archive, &mut header, &file.name, path),
        };
        appended.map_err(|source| EngineError::Pack {
            path: file.shown(),
            source,
        })?;
    }
    archive
        .into_inner()
        .and_then(|mut out| out.flush())
        .map_err(|source| EngineError::Pack {
            path: "the archive's end".into(),
            source,
        })
}

/// Appends the file at `path` to `archive` as `name`, read in pieces as the archive is written.
fn append_file(
    archive: &mut tar::Builder<impl Write>,
    header: &mut tar::Header,
    name: &str,
    path: &std::path::Path,
) -> std::io::Result<()> {
    let mut opened = std::fs::File::open(path)?;
    let size = opened.metadata()?.len();
    header.set_size(size);
    archive.append_data(header, name, (&mut opened).take(size))?;
    // The header promised `size` bytes: had the file shrunk meanwhile, every later header would be
    // out of place.
    if opened.stream_position()? != size {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the file shrank while it was being uploaded",
        ));
    }
    Ok(())
}

/// A writer handing what it is given to an upload's body in chunks of [`CHUNK`] bytes, waiting
/// while [`QUEUED`] chunks are not yet taken.
struct Chunks {
    pending: Vec<u8>,
    to_body: tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>,
}

impl Chunks {
    fn send(&mut self) -> std::io::Result<()> {
        let chunk = std::mem::replace(&mut self.pending, Vec::with_capacity(CHUNK));
        self.to_body.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the engine stopped reading the archive",
            )
        })
    }
}

impl Write for Chunks {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let taken = data.len().min(CHUNK - self.pending.len());
        self.pending.extend_from_slice(&data[..taken]);
        if self.pending.len() == CHUNK {
            self.send()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_labelled_with_its_owner_and_an_unlabelled_resource_has_none() {
        let labels: HashMap<String, String> =
            Labels::for_this_process().pairs().into_iter().collect();
        assert_eq!(owner_of(&labels).as_ref(), Some(Owner::this_process()));
        assert_eq!(labels.get(LABEL_PID), Some(&std::process::id().to_string()));
        assert_eq!(owner_of(&HashMap::new()), None, "never ours to judge");
    }

    /// This process's peak resident set so far, in KiB.
    fn peak_rss_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .expect("/proc/self/status is readable")
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("/proc/self/status gives VmHWM")
    }

    /// Peak RSS is the whole process's: measured beside other tests (a table compiled, a panic's
    /// backtrace) it grew with them. So the test runs itself again, alone in a process of its own,
    /// and that run measures.
    #[test]
    fn a_file_is_uploaded_as_it_is_read_so_memory_does_not_follow_its_size() {
        const ALONE: &str = "ETCD_HARNESS_TEST_ALONE";
        const NAME: &str =
            "engine::tests::a_file_is_uploaded_as_it_is_read_so_memory_does_not_follow_its_size";
        if std::env::var_os(ALONE).is_some() {
            tokio::runtime::Runtime::new()
                .expect("a runtime")
                .block_on(upload_a_large_file_and_measure());
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().expect("this test binary"))
            .args(["--exact", NAME, "--test-threads=1", "--nocapture"])
            .env(ALONE, "1")
            .output()
            .expect("the test run alone");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        assert!(text.contains("1 passed"), "the run alone ran it: {text}");
    }

    async fn upload_a_large_file_and_measure() {
        const SIZE: u64 = 256 << 20;
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("etcd");
        // Sparse: ten times etcd's size, costing no disk.
        std::fs::File::create(&path)
            .and_then(|file| file.set_len(SIZE))
            .expect("a sparse file");
        let before = peak_rss_kib();
        let (chunks, packer) = archive(vec![UploadFile {
            name: "etcd".into(),
            content: Content::File(path),
            mode: 0o755,
        }]);
        let mut chunks = std::pin::pin!(chunks);
        let (mut sent, mut header) = (0, None);
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.expect("every chunk packed");
            assert!(chunk.len() <= CHUNK, "a chunk of {} bytes", chunk.len());
            header.get_or_insert_with(|| chunk[..512].to_vec());
            sent += chunk.len() as u64;
        }
        packer.await.expect("the packer ends").expect("packed");
        let grown_mib = (peak_rss_kib() - before) / 1024;

        assert_eq!(sent, 512 + SIZE + 1024, "a header, the file, the end");
        let header = tar::Header::from_byte_slice(header.as_deref().expect("a first chunk"));
        assert_eq!(header.size().ok(), Some(SIZE));
        assert_eq!(header.mode().ok(), Some(0o755));
        assert!(
            grown_mib < 32,
            "the peak RSS grew by {grown_mib} MiB while a {} MiB file was sent",
            SIZE >> 20
        );
    }

    #[test]
    fn an_archive_holds_each_file_and_bytes_with_its_name_content_and_mode() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("etcd");
        std::fs::write(&path, b"an etcd binary").expect("a file");
        let files = [
            UploadFile {
                name: "etcd".into(),
                content: Content::File(path),
                mode: 0o755,
            },
            UploadFile {
                name: "kubernetes.key".into(),
                content: Content::Bytes(b"a key".to_vec()),
                mode: 0o600,
            },
        ];
        let mut packed = Vec::new();
        pack(&files, &mut packed).expect("packed");

        let mut archive = tar::Archive::new(packed.as_slice());
        let unpacked: Vec<(String, Vec<u8>, u32)> = archive
            .entries()
            .expect("a tar archive")
            .map(|entry| {
                let mut entry = entry.expect("an entry");
                let mut content = Vec::new();
                entry.read_to_end(&mut content).expect("its content");
                let name = entry.path().expect("a name").display().to_string();
                (name, content, entry.header().mode().expect("a mode"))
            })
            .collect();
        assert_eq!(
            unpacked,
            [
                ("etcd".into(), b"an etcd binary".to_vec(), 0o755),
                ("kubernetes.key".into(), b"a key".to_vec(), 0o600),
            ]
        );
    }

    #[tokio::test]
    async fn a_file_that_cannot_be_read_breaks_the_archive_and_is_named() {
        let missing = PathBuf::from("/nonexistent/etcd");
        let (chunks, packer) = archive(vec![
            UploadFile {
                name: "ca.crt".into(),
                content: Content::Bytes(b"a certificate".to_vec()),
                mode: 0o644,
            },
            UploadFile {
                name: "etcd".into(),
                content: Content::File(missing.clone()),
                mode: 0o755,
            },
        ]);
        let ends: Vec<bool> = chunks.map(|chunk| chunk.is_ok()).collect().await;
        assert_eq!(
            ends.last(),
            Some(&false),
            "the engine must see a broken body"
        );
        match packer.await.expect("the packer ends") {
            Err(EngineError::Pack { path, .. }) => assert_eq!(path, missing.display().to_string()),
            other => panic!("expected the missing file named, got {other:?}"),
        }
    }
}
