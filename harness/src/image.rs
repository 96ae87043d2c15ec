//! The node image: a systemd Debian bookworm machine without etcd, built from `docker/node/` and
//! tagged by a hash of its inputs, so it is built once per change and reused (a cache hit is one
//! inspect call).
//!
//! Two ways to build, chosen automatically: `FROM debian:bookworm` where that image is present or can
//! be pulled, else `FROM` a base imported from an `mmdebstrap` rootfs (no registry needed; the host's
//! mmdebstrap, or Debian's fetched into the cache). Concurrent processes share one build through a
//! lock file in the cache directory. This module does not start containers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::LazyLock;
use std::time::Duration;

use bollard::query_parameters::{BuildImageOptions, CreateImageOptions};
use futures_util::StreamExt;
use regex::Regex;
use sha2::{Digest, Sha256};

use crate::cache::{self, CacheError};
use crate::engine::{within, Engine, EngineError};

/// The node image's Dockerfile, compiled in so the binary builds the image it was tested with.
const DOCKERFILE: &str = include_str!("../../docker/node/Dockerfile");
/// The registry base used when it can be had.
const DEBIAN_BASE: &str = "debian:bookworm";
/// What the mmdebstrap base holds: the same packages the Dockerfile installs on `debian:bookworm`.
const MMDEBSTRAP_PACKAGES: &str = "systemd,systemd-sysv,dbus,iproute2,procps,ca-certificates";
/// The Debian suite of both bases.
const SUITE: &str = "bookworm";
/// Repository part of the node image's tag.
pub const NODE_REPO: &str = "etcd-harness-node";

/// Errors making the node image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// An engine call failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The cache directory could not be used.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// Neither way to get a base is available.
    #[error(
        "failed to find a base for the node image: `{DEBIAN_BASE}` is not present and cannot be \
         pulled ({pull_error}), no mmdebstrap is installed, and Debian's could not be fetched \
         ({fetch_error})\n  remedy: either make `{DEBIAN_BASE}` available (`docker pull \
         {DEBIAN_BASE}` where a registry is reachable, or `docker load` it) or install mmdebstrap \
         (`apt-get install mmdebstrap`) so the base is built from Debian's packages"
    )]
    NoBase {
        /// Why the pull failed.
        pull_error: String,
        /// Why Debian's mmdebstrap could not be fetched.
        fetch_error: String,
    },
    /// mmdebstrap ran and failed.
    #[error("failed to build the base rootfs with `{command}` (exit {status}):\n{stderr}")]
    Mmdebstrap {
        /// The command line run.
        command: String,
        /// Its exit status.
        status: String,
        /// The tail of its standard error.
        stderr: String,
    },
    /// The Dockerfile build reported an error.
    #[error("failed to build {tag} from docker/node/Dockerfile: {message}")]
    Build {
        /// The tag being built.
        tag: String,
        /// The builder's error message.
        message: String,
    },
    /// A local file operation failed.
    #[error("failed to {action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// How the node image was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provenance {
    /// It was already present.
    Cached,
    /// Built now `FROM debian:bookworm`.
    BuiltFromDebian,
    /// Built now from an mmdebstrap rootfs.
    BuiltFromMmdebstrap,
}

/// The node image, ready to run.
#[derive(Debug, Clone)]
pub struct NodeImage {
    /// Repository (`etcd-harness-node`).
    pub repo: String,
    /// Tag: the hash of the build inputs.
    pub tag: String,
    /// How it was obtained in this call.
    pub provenance: Provenance,
}

impl NodeImage {
    /// `repo:tag`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.repo, self.tag)
    }
}

/// The label the node image carries (and containers made from it inherit).
pub const IMAGE_LABEL: &str = "etcd-harness.image";

/// The tag the node image has for the current inputs.
pub fn node_tag() -> String {
    tag_of(DOCKERFILE, SUITE, IMAGE_LABEL)
}

/// The tag for these build inputs: the Dockerfile, the suite and the image's label.
fn tag_of(dockerfile: &str, suite: &str, label: &str) -> String {
    hash12(&[dockerfile.as_bytes(), suite.as_bytes(), label.as_bytes()])
}

/// Returns the node image, building it (and its base) if it is missing. `progress` receives the
/// build's output lines.
pub async fn ensure(
    engine: &Engine,
    progress: &mut dyn FnMut(&str),
) -> Result<NodeImage, ImageError> {
    let image = NodeImage {
        repo: NODE_REPO.into(),
        tag: node_tag(),
        provenance: Provenance::Cached,
    };
    if exists(engine, &image.reference()).await? {
        return Ok(image);
    }
    // Another process may be building the same image: the lock serialises builds, and whoever gets
    // it second finds the image present.
    let _lock = cache::lock("node-image.lock").await?;
    if exists(engine, &image.reference()).await? {
        return Ok(image);
    }
    let (base, provenance) = base(engine, progress).await?;
    progress(&format!(
        "building {} FROM {base} (docker/node/Dockerfile)",
        image.reference()
    ));
    build(engine, &image.reference(), &base, progress).await?;
    Ok(NodeImage {
        provenance,
        ..image
    })
}

async fn exists(engine: &Engine, reference: &str) -> Result<bool, EngineError> {
    let action = || format!("inspect image {reference}");
    within(Duration::from_secs(30), action, async {
        match engine.docker().inspect_image(reference).await {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(source) => Err(EngineError::Request {
                action: action(),
                source,
            }),
        }
    })
    .await
}

/// Picks the base image: `debian:bookworm` if present or pullable, else an mmdebstrap import.
async fn base(
    engine: &Engine,
    progress: &mut dyn FnMut(&str),
) -> Result<(String, Provenance), ImageError> {
    if exists(engine, DEBIAN_BASE).await? {
        return Ok((DEBIAN_BASE.into(), Provenance::BuiltFromDebian));
    }
    progress(&format!("{DEBIAN_BASE} is not present; trying to pull it"));
    let pull_error = match pull(engine, DEBIAN_BASE).await {
        Ok(()) => return Ok((DEBIAN_BASE.into(), Provenance::BuiltFromDebian)),
        Err(message) => message,
    };
    progress(&format!("pull failed ({pull_error}); using mmdebstrap"));
    let base_tag = base_tag();
    if exists(engine, &base_tag).await? {
        return Ok((base_tag, Provenance::BuiltFromMmdebstrap));
    }
    let program = match which("mmdebstrap") {
        Some(program) => program,
        None => {
            progress(&format!(
                "no mmdebstrap on PATH: fetching Debian {SUITE}'s with apt-get download (private \
                 configuration, kept in the cache)"
            ));
            crate::downloads::mmdebstrap()
                .await
                .map_err(|source| ImageError::NoBase {
                    pull_error,
                    fetch_error: source.to_string(),
                })?
        }
    };
    // The tarball is only a vehicle for the import (the imported image is the cache): it lives in a
    // directory removed when this function ends, however it ends.
    let work = tempfile::Builder::new()
        .prefix("rootfs-")
        .tempdir_in(cache::dir()?)
        .map_err(|source| ImageError::Io {
            action: "create a directory for the rootfs in the cache".into(),
            source,
        })?;
    let rootfs = work.path().join("rootfs.tar");
    mmdebstrap(&program, &rootfs, progress).await?;
    import(engine, &rootfs, &base_tag).await?;
    Ok((base_tag, Provenance::BuiltFromMmdebstrap))
}

/// The tag of the base imported from an mmdebstrap rootfs.
fn base_tag() -> String {
    format!(
        "etcd-harness-base:{}",
        hash12(&[MMDEBSTRAP_PACKAGES.as_bytes(), SUITE.as_bytes()])
    )
}

/// Where the node image will come from, as [`ensure`] would decide it now (without pulling).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The engine has it.
    Present(String),
    /// It will be built from a base the engine has (`debian:bookworm` or an mmdebstrap import).
    FromBase(String),
    /// `debian:bookworm` will be pulled; if that fails, an mmdebstrap rootfs is the base.
    PullOrMmdebstrap,
    /// `debian:bookworm` will be pulled; if that fails, an mmdebstrap rootfs is the base, with
    /// Debian's mmdebstrap fetched first (none is on PATH).
    PullOrFetchedMmdebstrap,
}

/// What [`ensure`] would do now, asked without pulling or building anything.
pub async fn plan(engine: &Engine) -> Result<Plan, EngineError> {
    let node = format!("{NODE_REPO}:{}", node_tag());
    if exists(engine, &node).await? {
        return Ok(Plan::Present(node));
    }
    for base in [DEBIAN_BASE.to_owned(), base_tag()] {
        if exists(engine, &base).await? {
            return Ok(Plan::FromBase(base));
        }
    }
    Ok(if which("mmdebstrap").is_some() {
        Plan::PullOrMmdebstrap
    } else {
        Plan::PullOrFetchedMmdebstrap
    })
}

async fn pull(engine: &Engine, reference: &str) -> Result<(), String> {
    let mut stream = engine.docker().create_image(
        Some(CreateImageOptions {
            from_image: Some(reference.into()),
            ..Default::default()
        }),
        None,
        None,
    );
    let pulled = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                return Err(e.to_string());
            }
        }
        Ok(())
    })
    .await;
    pulled.unwrap_or_else(|_| Err("no answer within 120 s".into()))
}

async fn mmdebstrap(
    program: &Path,
    target: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(), ImageError> {
    let args = [
        "--variant=minbase".to_owned(),
        format!("--include={MMDEBSTRAP_PACKAGES}"),
        SUITE.to_owned(),
        target.display().to_string(),
    ];
    let command = format!("{} {}", program.display(), args.join(" "));
    progress(&format!("{command} (about 25 s)"));
    let out = tokio::process::Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        // An interrupted run must not leave mmdebstrap running behind it.
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| ImageError::Io {
            action: format!("run `{command}`"),
            source,
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        return Err(ImageError::Mmdebstrap {
            command,
            status: out.status.to_string(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    Ok(())
}

async fn import(engine: &Engine, rootfs: &Path, tag: &str) -> Result<(), ImageError> {
    let bytes = tokio::fs::read(rootfs)
        .await
        .map_err(|source| ImageError::Io {
            action: format!("read {}", rootfs.display()),
            source,
        })?;
    let (repo, version) = tag.split_once(':').unwrap_or((tag, "latest"));
    let mut stream = engine.docker().create_image(
        Some(CreateImageOptions {
            from_src: Some("-".into()),
            repo: Some(repo.into()),
            tag: Some(version.into()),
            ..Default::default()
        }),
        Some(bollard::body_full(bytes.into())),
        None,
    );
    let action = || format!("import {} as {tag}", rootfs.display());
    within(Duration::from_secs(300), action, async {
        while let Some(item) = stream.next().await {
            item.map_err(|source| EngineError::Request {
                action: action(),
                source,
            })?;
        }
        Ok(())
    })
    .await?;
    Ok(())
}

async fn build(
    engine: &Engine,
    reference: &str,
    base: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<(), ImageError> {
    let mut context = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(DOCKERFILE.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    context
        .append_data(&mut header, "Dockerfile", DOCKERFILE.as_bytes())
        .and_then(|()| context.finish())
        .map_err(|source| ImageError::Io {
            action: "pack the Dockerfile into a build context".into(),
            source,
        })?;
    let context = context.into_inner().map_err(|source| ImageError::Io {
        action: "pack the Dockerfile into a build context".into(),
        source,
    })?;
    let mut stream = engine.docker().build_image(
        BuildImageOptions {
            t: Some(reference.into()),
            rm: true,
            forcerm: true,
            buildargs: Some(HashMap::from([("BASE".to_owned(), base.to_owned())])),
            // Not the `etcd-harness` label itself: containers inherit their image's labels, and every
            // container made from this image would look like one of a run's.
            labels: Some(HashMap::from([(IMAGE_LABEL.to_owned(), "node".to_owned())])),
            ..Default::default()
        },
        None,
        Some(bollard::body_full(context.into())),
    );
    let action = || format!("build {reference}");
    let failed = within(Duration::from_secs(900), action, async {
        while let Some(item) = stream.next().await {
            let info = item.map_err(|source| EngineError::Request {
                action: action(),
                source,
            })?;
            for line in info.stream.as_deref().unwrap_or_default().lines() {
                let line = plain(line);
                if !line.trim().is_empty() {
                    progress(line.trim_end());
                }
            }
            if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                return Ok(Some(detail));
            }
        }
        Ok(None)
    })
    .await?;
    match failed {
        Some(message) => Err(ImageError::Build {
            tag: reference.into(),
            message,
        }),
        None => Ok(()),
    }
}

/// A terminal's control sequences: CSI (colours, cursor moves), character-set designations, the
/// two-byte escapes, and the other control characters but tab and newline.
static CONTROL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()*+][0-9A-Za-z]|\x1b[@-Z\\-_]|[\x00-\x08\x0b-\x1f\x7f]",
    )
    .expect("a valid pattern")
});

/// A build output line as plain text: what a progress bar drew last (after its last carriage
/// return), without colour codes or other control characters, which a log or a CI page would show
/// raw.
fn plain(line: &str) -> String {
    let drawn = line.rsplit('\r').find(|part| !part.trim().is_empty());
    CONTROL
        .replace_all(drawn.unwrap_or_default(), "")
        .into_owned()
}

/// The path of `program` on `PATH`, if it is there.
pub(crate) fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}

/// The first 12 hex digits of the SHA-256 of `parts` (each length-prefixed, so boundaries count).
pub(crate) fn hash12(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hex::encode(hasher.finalize())[..12].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_output_loses_its_colour_codes_and_progress_redraws() {
        assert_eq!(
            plain("\x1b[0;1;31mE: \x1b[0mUnable to fetch\x1b[K"),
            "E: Unable to fetch"
        );
        assert_eq!(
            plain("Progress: [ 10%]\rProgress: [ 90%]\r"),
            "Progress: [ 90%]"
        );
        assert_eq!(plain("\x1b(Bplain\x07"), "plain");
        assert_eq!(
            plain("Step 3/9 : RUN apt-get update"),
            "Step 3/9 : RUN apt-get update"
        );
    }

    #[test]
    fn the_tag_changes_with_each_input() {
        let tag = tag_of(DOCKERFILE, SUITE, IMAGE_LABEL);
        assert_eq!(node_tag(), tag);
        assert_eq!(tag.len(), 12);
        assert_ne!(tag_of(&format!("{DOCKERFILE}\n"), SUITE, IMAGE_LABEL), tag);
        assert_ne!(tag_of(DOCKERFILE, "trixie", IMAGE_LABEL), tag);
        assert_ne!(tag_of(DOCKERFILE, SUITE, "etcd-harness"), tag);
        assert_ne!(hash12(&[b"ab", b"c"]), hash12(&[b"a", b"bc"]));
    }

    #[test]
    fn the_dockerfile_keeps_etcd_out_and_stops_systemd_cleanly() {
        assert!(DOCKERFILE.contains("STOPSIGNAL SIGRTMIN+3"));
        assert!(!DOCKERFILE.contains("etcd-server"));
        for package in MMDEBSTRAP_PACKAGES.split(',') {
            assert!(DOCKERFILE.contains(package), "Dockerfile lacks {package}");
        }
    }
}
