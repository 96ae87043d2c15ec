//! The Docker engine as etcd-harness uses it: one negotiated bollard connection, the run's labels,
//! and thin typed wrappers for the calls testcontainers does not make (or makes slowly): exec with
//! its exit code, archive upload, inspect, and the sweep of a killed run's leftovers.
//!
//! It does not start nodes (that is [`crate::node`], through testcontainers) and it knows nothing of
//! etcd. Every call has a timeout; every container and network this crate makes carries [`Labels`].

use std::collections::HashMap;
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

/// Runs `fut` with a deadline, naming `action` if it passes.
pub(crate) async fn within<T>(
    after: Duration,
    action: impl Fn() -> String,
    fut: impl std::future::Future<Output = Result<T, EngineError>>,
) -> Result<T, EngineError> {
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
    pub content: Vec<u8>,
    /// Its mode bits.
    pub mode: u32,
}

/// A negotiated connection to the engine.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
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
        Ok(Self { docker })
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
                        LogOutput::StdIn { .. } => {}
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
    pub async fn upload(
        &self,
        container: &str,
        dir: &str,
        files: &[UploadFile],
    ) -> Result<(), EngineError> {
        let mut archive = tar::Builder::new(Vec::new());
        for file in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(file.content.len() as u64);
            header.set_mode(file.mode);
            header.set_mtime(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or_default(),
            );
            header.set_cksum();
            archive
                .append_data(&mut header, &file.name, file.content.as_slice())
                .map_err(|source| EngineError::Pack {
                    path: file.name.clone(),
                    source,
                })?;
        }
        let body = archive.into_inner().map_err(|source| EngineError::Pack {
            path: dir.to_owned(),
            source,
        })?;
        let action = || {
            format!(
                "upload {} file(s) to {}:{dir}",
                files.len(),
                short(container)
            )
        };
        within(REQUEST_TIMEOUT, action, async {
            self.docker
                .upload_to_container(
                    container,
                    Some(UploadToContainerOptions {
                        path: dir.to_owned(),
                        ..Default::default()
                    }),
                    bollard::body_full(body.into()),
                )
                .await
                .map_err(EngineError::request(action()))
        })
        .await
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
    async fn remove_where(
        &self,
        mut doomed: impl FnMut(&HashMap<String, String>) -> bool,
    ) -> Result<usize, EngineError> {
        let (containers, networks) = self.labelled().await?;
        let mut removed = 0;
        for (id, labels) in containers {
            if !doomed(&labels) {
                continue;
            }
            let action = || format!("remove container {}", short(&id));
            within(REQUEST_TIMEOUT, action, async {
                match self
                    .docker
                    .remove_container(
                        &id,
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
            .await?;
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
}
