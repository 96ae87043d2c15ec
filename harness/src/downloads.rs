//! The jumpbox's `downloads/`: the `etcd` and `etcdctl` binaries the tutorial copies to the server.
//!
//! By default they are extracted from Debian's `etcd-server`/`etcd-client` packages (fetched with
//! `apt-get download`, never installed) and cached on the host; a user may instead bring an upstream
//! `etcd-vX.Y.Z-linux-amd64.tar.gz` or a directory holding both binaries. This module only finds and
//! caches files; which version they are is read from the node (`etcd --version`).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::cache::{self, CacheError};

/// Where the etcd binaries come from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EtcdSource {
    /// Debian's `etcd-server` and `etcd-client` packages for the host's apt sources.
    #[default]
    Debian,
    /// An upstream release tarball (`etcd-vX.Y.Z-linux-amd64.tar.gz`).
    Tarball(PathBuf),
    /// A directory holding `etcd` and `etcdctl`.
    Directory(PathBuf),
}

impl EtcdSource {
    /// Interprets a user's `--etcd` argument: a `.tar.gz` file or a directory. A relative path is
    /// made absolute, since the jumpbox links to the binaries from elsewhere.
    pub fn from_arg(arg: &Path) -> Result<Self, DownloadsError> {
        let absolute = std::fs::canonicalize(arg).unwrap_or_else(|_| arg.to_owned());
        if absolute.is_dir() {
            Ok(Self::Directory(absolute))
        } else if absolute.is_file() && arg.to_string_lossy().ends_with(".tar.gz") {
            Ok(Self::Tarball(absolute))
        } else {
            Err(DownloadsError::BadSource {
                path: arg.to_owned(),
            })
        }
    }
}

/// Errors getting the binaries.
#[derive(Debug, thiserror::Error)]
pub enum DownloadsError {
    /// `--etcd` named neither a tarball nor a directory.
    #[error(
        "failed to use {path} as the etcd source: expected an upstream \
         etcd-vX.Y.Z-linux-amd64.tar.gz file or a directory holding `etcd` and `etcdctl`"
    )]
    BadSource {
        /// The argument given.
        path: PathBuf,
    },
    /// A binary is missing from the source.
    #[error("failed to find `{binary}` in {source_path}\n  remedy: {remedy}")]
    Missing {
        /// Which binary.
        binary: &'static str,
        /// Where it was looked for.
        source_path: PathBuf,
        /// What to do.
        remedy: &'static str,
    },
    /// A host command failed.
    #[error("failed to {action}: `{command}` exited {status}: {stderr}\n  remedy: {remedy}")]
    Command {
        /// What was being done.
        action: &'static str,
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// Its standard error, trimmed.
        stderr: String,
        /// What to do.
        remedy: &'static str,
    },
    /// A file operation failed.
    #[error("failed to {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The cache directory could not be used.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// The two binaries, ready to copy to the node.
#[derive(Debug, Clone)]
pub struct Downloads {
    /// `downloads/controller/etcd`.
    pub etcd: PathBuf,
    /// `downloads/client/etcdctl`.
    pub etcdctl: PathBuf,
    /// Where they came from, for the report ("Debian etcd-server 3.4.23-4+b4").
    pub origin: String,
}

const APT_REMEDY: &str = "on a Debian host run `apt-get update` so `apt-get download etcd-server \
                          etcd-client` works, or pass --etcd with an upstream tarball or a \
                          directory holding etcd and etcdctl";

/// Finds (and on first use extracts and caches) the binaries `source` names.
pub async fn fetch(source: &EtcdSource) -> Result<Downloads, DownloadsError> {
    match source {
        EtcdSource::Directory(dir) => {
            let found = |binary: &'static str| {
                let path = dir.join(binary);
                if path.is_file() {
                    Ok(path)
                } else {
                    Err(DownloadsError::Missing {
                        binary,
                        source_path: dir.clone(),
                        remedy: "put both `etcd` and `etcdctl` in that directory",
                    })
                }
            };
            Ok(Downloads {
                etcd: found("etcd")?,
                etcdctl: found("etcdctl")?,
                origin: format!("directory {}", dir.display()),
            })
        }
        EtcdSource::Tarball(tarball) => from_tarball(tarball).await,
        EtcdSource::Debian => from_debian().await,
    }
}

async fn from_debian() -> Result<Downloads, DownloadsError> {
    let dir = cache::dir()?.join("etcd-debian");
    let origin_file = dir.join("ORIGIN");
    let _lock = cache::lock("etcd-debian.lock").await?;
    if let Ok(origin) = std::fs::read_to_string(&origin_file) {
        return Ok(Downloads {
            etcd: dir.join("etcd"),
            etcdctl: dir.join("etcdctl"),
            origin,
        });
    }
    let partial = Partial::create(&dir)?;
    let work = partial.path().to_owned();
    run(
        "download Debian's etcd packages",
        &work,
        "apt-get",
        &["download", "etcd-server", "etcd-client"],
    )
    .await?;
    let mut origin = Vec::new();
    for (package, binary) in [("etcd-server", "etcd"), ("etcd-client", "etcdctl")] {
        let deb = find_deb(&work, package)?;
        let deb_str = deb.display().to_string();
        let version = run(
            "read a package's version",
            &work,
            "dpkg-deb",
            &["-f", &deb_str, "Version"],
        )
        .await?;
        origin.push(format!("{package} {}", version.trim()));
        let tree = work.join(package);
        run(
            "extract a Debian package",
            &work,
            "dpkg-deb",
            &["-x", &deb_str, &tree.display().to_string()],
        )
        .await?;
        let from = tree.join("usr/bin").join(binary);
        if !from.is_file() {
            return Err(DownloadsError::Missing {
                binary,
                source_path: deb,
                remedy: "the package layout changed; pass --etcd with a directory instead",
            });
        }
        rename(&from, &work.join(binary))?;
    }
    let origin = format!("Debian {}", origin.join(", "));
    write(&work.join("ORIGIN"), &origin)?;
    partial.commit()?;
    Ok(Downloads {
        etcd: dir.join("etcd"),
        etcdctl: dir.join("etcdctl"),
        origin,
    })
}

async fn from_tarball(tarball: &Path) -> Result<Downloads, DownloadsError> {
    let name = tarball
        .file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".tar.gz").to_owned())
        .unwrap_or_default();
    // Keyed by content too: a re-downloaded archive of the same name must not reuse stale binaries.
    let bytes = std::fs::read(tarball).map_err(|source| DownloadsError::Io {
        action: "read",
        path: tarball.to_owned(),
        source,
    })?;
    let key = format!("etcd-upstream-{name}-{}", crate::image::hash12(&[&bytes]));
    let dir = cache::dir()?.join(&key);
    let _lock = cache::lock(&format!("{key}.lock")).await?;
    if !dir.join("etcdctl").is_file() {
        let partial = Partial::create(&dir)?;
        let work = partial.path().to_owned();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
        let entries = archive.entries().map_err(|source| DownloadsError::Io {
            action: "read",
            path: tarball.to_owned(),
            source,
        })?;
        for entry in entries {
            let mut entry = entry.map_err(|source| DownloadsError::Io {
                action: "read",
                path: tarball.to_owned(),
                source,
            })?;
            let path = entry.path().map(|p| p.into_owned()).unwrap_or_default();
            let Some(binary) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if binary == "etcd" || binary == "etcdctl" {
                let target = work.join(binary);
                entry.unpack(&target).map_err(|source| DownloadsError::Io {
                    action: "extract",
                    path: target,
                    source,
                })?;
            }
        }
        for binary in ["etcd", "etcdctl"] {
            if !work.join(binary).is_file() {
                return Err(DownloadsError::Missing {
                    binary,
                    source_path: tarball.to_owned(),
                    remedy: "use an upstream etcd-vX.Y.Z-linux-amd64.tar.gz release archive",
                });
            }
        }
        partial.commit()?;
    }
    Ok(Downloads {
        etcd: dir.join("etcd"),
        etcdctl: dir.join("etcdctl"),
        origin: format!("upstream {}", tarball.display()),
    })
}

/// A cache directory being filled beside its final place (`<name>.partial`): removed when dropped
/// unless committed, so a failure or an interruption leaves nothing half-made in the cache.
struct Partial {
    work: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Partial {
    fn create(target: &Path) -> Result<Self, DownloadsError> {
        let mut name = target.file_name().unwrap_or_default().to_owned();
        name.push(".partial");
        let work = target.with_file_name(name);
        // A leftover of a process killed outright: this process holds the cache lock now.
        let _ = std::fs::remove_dir_all(&work);
        create_dir(&work)?;
        Ok(Self {
            work,
            target: target.to_owned(),
            committed: false,
        })
    }

    fn path(&self) -> &Path {
        &self.work
    }

    /// Moves the finished directory into its place.
    fn commit(mut self) -> Result<(), DownloadsError> {
        let _ = std::fs::remove_dir_all(&self.target);
        rename(&self.work, &self.target)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.work);
        }
    }
}

fn find_deb(dir: &Path, package: &'static str) -> Result<PathBuf, DownloadsError> {
    let prefix = format!("{package}_");
    std::fs::read_dir(dir)
        .map_err(|source| DownloadsError::Io {
            action: "list",
            path: dir.to_owned(),
            source,
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy().starts_with(&prefix))
                .unwrap_or(false)
        })
        .ok_or_else(|| DownloadsError::Missing {
            binary: package,
            source_path: dir.to_owned(),
            remedy: APT_REMEDY,
        })
}

async fn run(
    action: &'static str,
    cwd: &Path,
    program: &str,
    args: &[&str],
) -> Result<String, DownloadsError> {
    let command = format!("{program} {}", args.join(" "));
    let out = tokio::process::Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        // An interrupted run must not leave a download running behind it.
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| DownloadsError::Command {
            action,
            command: command.clone(),
            status: "not at all".into(),
            stderr: e.to_string(),
            remedy: APT_REMEDY,
        })?;
    if !out.status.success() {
        return Err(DownloadsError::Command {
            action,
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            remedy: APT_REMEDY,
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn create_dir(path: &Path) -> Result<(), DownloadsError> {
    std::fs::create_dir_all(path).map_err(|source| DownloadsError::Io {
        action: "create",
        path: path.to_owned(),
        source,
    })
}

fn rename(from: &Path, to: &Path) -> Result<(), DownloadsError> {
    std::fs::rename(from, to).map_err(|source| DownloadsError::Io {
        action: "move into place",
        path: to.to_owned(),
        source,
    })
}

fn write(path: &Path, content: &str) -> Result<(), DownloadsError> {
    std::fs::write(path, content).map_err(|source| DownloadsError::Io {
        action: "write",
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_argument_that_is_neither_tarball_nor_directory_is_refused_with_the_remedy() {
        let err = EtcdSource::from_arg(Path::new("/nonexistent/etcd.zip")).unwrap_err();
        assert!(err.to_string().contains("etcd-vX.Y.Z-linux-amd64.tar.gz"));
    }

    #[tokio::test]
    async fn a_directory_without_etcdctl_is_refused_naming_the_binary() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("etcd"), b"").unwrap();
        let source = EtcdSource::from_arg(dir.path()).unwrap();
        let err = fetch(&source).await.unwrap_err().to_string();
        assert!(err.contains("`etcdctl`"), "{err}");
    }
}
