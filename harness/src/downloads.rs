//! The jumpbox's `downloads/`: the `etcd` and `etcdctl` binaries the tutorial copies to the server
//! (and `etcdutl`, which etcd 3.5+ ships and 3.6 needs for `snapshot restore`).
//!
//! Sources, as `--etcd` or `ETCD_HARNESS_ETCD` name them:
//! - `debian:<suite>` — Debian's `etcd-server`/`etcd-client` of that suite, downloaded through a
//!   private apt configuration ([`crate::apt`]) and never installed; the default is the node's own
//!   suite, bookworm (etcd 3.4);
//! - `vX.Y.Z` — upstream's release archive, verified against the release's SHA256SUMS
//!   ([`crate::release`]);
//! - a path: an upstream `etcd-vX.Y.Z-linux-amd64.tar.gz`, or a directory holding the binaries.
//!
//! Everything fetched is extracted into the cache, keyed by content (a Debian suite by name: its
//! lists are not fetched again once its binaries are cached). Binaries that need a newer C library
//! than the node has are refused here, with a clear message. Which version they are is read from
//! the node (`etcd --version`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::apt::{AptError, PrivateApt};
use crate::cache::{self, CacheError};
use crate::release::{self, ReleaseError};

/// Environment variable naming the etcd source when `--etcd` is not given (so `cargo test` can
/// take one).
pub const ETCD_ENV: &str = "ETCD_HARNESS_ETCD";

/// The node's Debian suite, whose etcd is the default.
pub const NODE_SUITE: &str = "bookworm";

/// The C library the node (Debian bookworm) has: binaries needing a newer one cannot run there.
const NODE_GLIBC: (u32, u32) = (2, 36);

/// Where the etcd binaries come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtcdSource {
    /// Debian's `etcd-server` and `etcd-client` packages of a suite.
    Debian {
        /// The suite (`bookworm`, `trixie`, `sid`, …).
        suite: String,
    },
    /// An upstream release, by version (`v3.6.5`).
    Release {
        /// The version, `vX.Y.Z`.
        version: String,
    },
    /// An upstream release archive on disk (`etcd-vX.Y.Z-linux-amd64.tar.gz`).
    Tarball(PathBuf),
    /// A directory holding `etcd` and `etcdctl` (and perhaps `etcdutl`).
    Directory(PathBuf),
}

impl Default for EtcdSource {
    fn default() -> Self {
        Self::Debian {
            suite: NODE_SUITE.to_owned(),
        }
    }
}

impl std::fmt::Display for EtcdSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Debian { suite } => write!(f, "debian:{suite}"),
            Self::Release { version } => f.write_str(version),
            Self::Tarball(path) | Self::Directory(path) => write!(f, "{}", path.display()),
        }
    }
}

impl EtcdSource {
    /// `arg` as [`EtcdSource::parse`] reads it, or the default (`debian:bookworm`) without one.
    pub fn parse_or_default(arg: Option<&str>) -> Result<Self, DownloadsError> {
        arg.map_or_else(|| Ok(Self::default()), Self::parse)
    }

    /// Reads a source as a user writes it: `debian:<suite>`, `vX.Y.Z`, a `.tar.gz` file or a
    /// directory. A relative path is made absolute, since the jumpbox links to the binaries.
    pub fn parse(arg: &str) -> Result<Self, DownloadsError> {
        if let Some(suite) = arg.strip_prefix("debian:") {
            let valid = !suite.is_empty()
                && suite
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid {
                return Err(DownloadsError::BadSource {
                    given: arg.to_owned(),
                });
            }
            return Ok(Self::Debian {
                suite: suite.to_owned(),
            });
        }
        if arg.starts_with('v') && !Path::new(arg).exists() {
            release::archive_name(arg)?;
            return Ok(Self::Release {
                version: arg.to_owned(),
            });
        }
        let path = Path::new(arg);
        let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        if absolute.is_dir() {
            Ok(Self::Directory(absolute))
        } else if absolute.is_file() && arg.ends_with(".tar.gz") {
            Ok(Self::Tarball(absolute))
        } else {
            Err(DownloadsError::BadSource {
                given: arg.to_owned(),
            })
        }
    }

    /// The source `ETCD_HARNESS_ETCD` names, or the default (Debian bookworm's etcd).
    pub fn from_env() -> Result<Self, DownloadsError> {
        match std::env::var(ETCD_ENV) {
            Ok(value) if !value.is_empty() => {
                Self::parse(&value).map_err(|e| DownloadsError::Env {
                    source: Box::new(e),
                })
            }
            _ => Ok(Self::default()),
        }
    }
}

/// Errors getting the binaries.
#[derive(Debug, thiserror::Error)]
pub enum DownloadsError {
    /// The source named is none of the accepted kinds.
    #[error(
        "failed to use `{given}` as the etcd source: expected `debian:<suite>` (e.g. \
         debian:trixie), an upstream version `vX.Y.Z`, an upstream etcd-vX.Y.Z-linux-amd64.tar.gz \
         file, or a directory holding `etcd` and `etcdctl`"
    )]
    BadSource {
        /// The argument given.
        given: String,
    },
    /// `ETCD_HARNESS_ETCD` names a bad source.
    #[error("failed to read {ETCD_ENV}: {source}")]
    Env {
        /// What is wrong with it.
        source: Box<DownloadsError>,
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
    /// A binary needs a newer C library than the node has.
    #[error(
        "etcd from {source_name} cannot run in the node: `{binary}` needs glibc {}.{}, and the node \
         (Debian {NODE_SUITE}) has {}.{}\n  remedy: use an older suite, or an upstream release \
         (`--etcd vX.Y.Z`, statically linked)",
        .needs.0, .needs.1, NODE_GLIBC.0, NODE_GLIBC.1
    )]
    Glibc {
        /// The source.
        source_name: String,
        /// The binary.
        binary: &'static str,
        /// The glibc version it needs.
        needs: (u32, u32),
    },
    /// A host command failed.
    #[error("failed to {action}: `{command}` exited {status}: {stderr}")]
    Command {
        /// What was being done.
        action: &'static str,
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// Its standard error, trimmed.
        stderr: String,
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
    /// Debian's archive could not give the packages.
    #[error(transparent)]
    Apt(#[from] AptError),
    /// The upstream release could not be had.
    #[error(transparent)]
    Release(#[from] ReleaseError),
    /// The cache directory could not be used.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// The binaries, ready to copy to the node.
#[derive(Debug, Clone)]
pub struct Downloads {
    /// `downloads/controller/etcd`.
    pub etcd: PathBuf,
    /// `downloads/client/etcdctl`.
    pub etcdctl: PathBuf,
    /// `etcdutl`, where the source has it (3.5+).
    pub etcdutl: Option<PathBuf>,
    /// Where they came from, for the report ("Debian trixie: etcd-server 3.5.16-4, …").
    pub origin: String,
    /// The version `etcd --version` reports on the host; `None` when it cannot say (a binary for
    /// another architecture, say). Expectations that depend on the version are judged by it.
    pub version: Option<semver::Version>,
}

impl Downloads {
    /// The binaries found in `dir`; `etcd` and `etcdctl` must be there.
    fn in_dir(dir: &Path, origin: String, remedy: &'static str) -> Result<Self, DownloadsError> {
        let found = |binary: &'static str| {
            let path = dir.join(binary);
            if path.is_file() {
                Ok(path)
            } else {
                Err(DownloadsError::Missing {
                    binary,
                    source_path: dir.to_owned(),
                    remedy,
                })
            }
        };
        Ok(Self {
            etcd: found("etcd")?,
            etcdctl: found("etcdctl")?,
            etcdutl: found("etcdutl").ok(),
            origin,
            version: None,
        })
    }
}

/// Finds (and on first use downloads, extracts and caches) the binaries `source` names, and checks
/// that they can run in the node. Within a process each source is asked for once: the CLI checks
/// `--etcd` before anything starts, and the run then finds it here without another request.
pub async fn fetch(source: &EtcdSource) -> Result<Downloads, DownloadsError> {
    static FOUND: Mutex<Vec<(EtcdSource, Downloads)>> = Mutex::new(Vec::new());
    let known = |found: &Vec<(EtcdSource, Downloads)>| {
        found
            .iter()
            .find(|(s, d)| s == source && d.etcd.is_file())
            .map(|(_, d)| d.clone())
    };
    if let Some(downloads) = FOUND.lock().ok().and_then(|f| known(&f)) {
        return Ok(downloads);
    }
    let mut downloads = find(source).await?;
    downloads.version = version_of(&downloads.etcd).await;
    if let Ok(mut found) = FOUND.lock() {
        found.push((source.clone(), downloads.clone()));
    }
    Ok(downloads)
}

async fn find(source: &EtcdSource) -> Result<Downloads, DownloadsError> {
    let downloads = match source {
        EtcdSource::Directory(dir) => Downloads::in_dir(
            dir,
            format!("directory {}", dir.display()),
            "put both `etcd` and `etcdctl` in that directory",
        )?,
        EtcdSource::Tarball(tarball) => {
            let bytes = std::fs::read(tarball).map_err(|source| DownloadsError::Io {
                action: "read",
                path: tarball.to_owned(),
                source,
            })?;
            let name = tarball.file_name().unwrap_or_default().to_string_lossy();
            let sha256 = hex::encode(Sha256::digest(&bytes));
            from_archive(
                &name,
                &sha256,
                || async { Ok(bytes) },
                format!("upstream {}", tarball.display()),
            )
            .await?
        }
        EtcdSource::Release { version } => {
            let verified = release::expected(version).await?;
            from_archive(
                &verified.file,
                &verified.sha256,
                || async { Ok(release::download(&verified, version).await?) },
                format!("upstream {version} ({})", verified.url),
            )
            .await?
        }
        EtcdSource::Debian { suite } => from_debian(suite).await?,
    };
    for (binary, path) in [("etcd", &downloads.etcd), ("etcdctl", &downloads.etcdctl)] {
        if let Some(needs) = glibc_needed(path)? {
            if needs > NODE_GLIBC {
                return Err(DownloadsError::Glibc {
                    source_name: source.to_string(),
                    binary,
                    needs,
                });
            }
        }
    }
    Ok(downloads)
}

async fn from_debian(suite: &str) -> Result<Downloads, DownloadsError> {
    let dir = cache::dir()?.join(format!("etcd-debian-{suite}"));
    let _lock = cache::lock(&format!("etcd-debian-{suite}.lock")).await?;
    if let Ok(origin) = std::fs::read_to_string(dir.join("ORIGIN")) {
        return Downloads::in_dir(&dir, origin, DEBIAN_REMEDY);
    }
    let partial = Partial::create(&dir)?;
    let work = partial.path().to_owned();
    let apt = PrivateApt::for_suite(suite)?;
    apt.update().await?;
    apt.download(&["etcd-server", "etcd-client"], &work).await?;
    let mut versions = Vec::new();
    for (package, binaries) in [
        ("etcd-server", &["etcd", "etcdutl"][..]),
        ("etcd-client", &["etcdctl", "etcdutl"][..]),
    ] {
        let deb = find_deb(&work, package)?;
        let deb_str = deb.display().to_string();
        let version = run(
            "read a package's version",
            "dpkg-deb",
            &["-f", &deb_str, "Version"],
        )
        .await?;
        versions.push(format!("{package} {}", version.trim()));
        let tree = work.join(package);
        run(
            "extract a Debian package",
            "dpkg-deb",
            &["-x", &deb_str, &tree.display().to_string()],
        )
        .await?;
        for binary in binaries {
            let from = tree.join("usr/bin").join(binary);
            if from.is_file() && !work.join(binary).exists() {
                rename(&from, &work.join(binary))?;
            }
        }
    }
    let origin = format!("Debian {suite}: {}", versions.join(", "));
    write(&work.join("ORIGIN"), &origin)?;
    Downloads::in_dir(&work, origin.clone(), DEBIAN_REMEDY)?;
    partial.commit()?;
    Downloads::in_dir(&dir, origin, DEBIAN_REMEDY)
}

const DEBIAN_REMEDY: &str = "the package layout changed; pass --etcd with a directory instead";

/// Debian's `mmdebstrap` (of the node's suite), for a host that has none: fetched with `apt-get
/// download` through the private apt configuration that fetches etcd, extracted into the cache
/// once, never installed. Returns the script's path; it runs with the host's perl, apt and dpkg.
pub async fn mmdebstrap() -> Result<PathBuf, DownloadsError> {
    let dir = cache::dir()?.join(format!("mmdebstrap-debian-{NODE_SUITE}"));
    let script = |dir: &Path| dir.join("usr/bin/mmdebstrap");
    let _lock = cache::lock(&format!("mmdebstrap-debian-{NODE_SUITE}.lock")).await?;
    if script(&dir).is_file() {
        return Ok(script(&dir));
    }
    let partial = Partial::create(&dir)?;
    let work = partial.path().to_owned();
    let apt = PrivateApt::for_suite(NODE_SUITE)?;
    apt.update().await?;
    apt.download(&["mmdebstrap"], &work).await?;
    let deb = find_deb(&work, "mmdebstrap")?;
    run(
        "extract a Debian package",
        "dpkg-deb",
        &[
            "-x",
            &deb.display().to_string(),
            &work.display().to_string(),
        ],
    )
    .await?;
    if !script(&work).is_file() {
        return Err(DownloadsError::Missing {
            binary: "mmdebstrap",
            source_path: deb,
            remedy: "install mmdebstrap (apt-get install mmdebstrap)",
        });
    }
    partial.commit()?;
    Ok(script(&dir))
}

/// The binaries of an upstream archive with SHA256 `sha256`, extracted into the cache on first use
/// (`bytes` is only called then).
async fn from_archive<F, Fut>(
    name: &str,
    sha256: &str,
    bytes: F,
    origin: String,
) -> Result<Downloads, DownloadsError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<u8>, DownloadsError>>,
{
    let stem = name.trim_end_matches(".tar.gz");
    let key = format!("etcd-upstream-{stem}-{}", &sha256[..12.min(sha256.len())]);
    let dir = cache::dir()?.join(&key);
    if dir.join("etcdctl").is_file() {
        return Downloads::in_dir(&dir, origin, ARCHIVE_REMEDY);
    }
    let bytes = bytes().await?;
    // Judged before any lock or directory is made: a broken archive leaves nothing in the cache.
    let names = binaries_in(&bytes, name)?;
    for binary in ["etcd", "etcdctl"] {
        if !names.iter().any(|n| n == binary) {
            return Err(DownloadsError::Missing {
                binary,
                source_path: PathBuf::from(name),
                remedy: ARCHIVE_REMEDY,
            });
        }
    }
    let _lock = cache::lock(&format!("{key}.lock")).await?;
    if !dir.join("etcdctl").is_file() {
        let partial = Partial::create(&dir)?;
        extract(&bytes, name, Some(partial.path()))?;
        partial.commit()?;
    }
    Downloads::in_dir(&dir, origin, ARCHIVE_REMEDY)
}

const ARCHIVE_REMEDY: &str = "use an upstream etcd-vX.Y.Z-linux-amd64.tar.gz release archive";

/// The etcd binaries an upstream archive's bytes hold, by name; reading them all proves the archive
/// whole.
fn binaries_in(bytes: &[u8], name: &str) -> Result<Vec<String>, DownloadsError> {
    extract(bytes, name, None)
}

/// Walks an upstream archive's bytes and, with `into`, extracts `etcd`, `etcdctl` and `etcdutl`
/// there; returns the names of those it holds.
fn extract(bytes: &[u8], name: &str, into: Option<&Path>) -> Result<Vec<String>, DownloadsError> {
    let unreadable = |source| DownloadsError::Io {
        action: "read the archive",
        path: PathBuf::from(name),
        source,
    };
    let mut found = Vec::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    for entry in archive.entries().map_err(unreadable)? {
        let mut entry = entry.map_err(unreadable)?;
        let path = entry.path().map(|p| p.into_owned()).unwrap_or_default();
        let Some(binary) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        if !["etcd", "etcdctl", "etcdutl"].contains(&binary.as_str()) {
            continue;
        }
        match into {
            Some(dir) => {
                let target = dir.join(&binary);
                entry.unpack(&target).map_err(|source| DownloadsError::Io {
                    action: "extract",
                    path: target,
                    source,
                })?;
            }
            // Reading the entry's bytes is what finds a truncated or corrupt archive.
            None => {
                std::io::copy(&mut entry, &mut std::io::sink()).map_err(unreadable)?;
            }
        }
        found.push(binary);
    }
    Ok(found)
}

/// The version `etcd --version` prints (`etcd Version: 3.5.16`), if it runs here.
async fn version_of(etcd: &Path) -> Option<semver::Version> {
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::process::Command::new(etcd)
            .arg("--version")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .ok()?
    .ok()?;
    parse_version(&String::from_utf8_lossy(&out.stdout))
}

fn parse_version(printed: &str) -> Option<semver::Version> {
    printed
        .lines()
        .find_map(|l| l.strip_prefix("etcd Version:"))
        .and_then(|v| semver::Version::parse(v.trim()).ok())
}

/// How much of a binary [`glibc_needed`] holds at once.
const GLIBC_WINDOW: usize = 64 * 1024;
/// The bytes of one window [`glibc_needed`] scans again with the next: more than any
/// `GLIBC_x.y.z`, so one that straddles two reads is read whole with the second.
const GLIBC_CARRY: usize = 32;

/// The newest glibc symbol version `binary` needs; `None` for a static binary. The binary is read
/// in pieces: the harness's memory does not follow its size.
fn glibc_needed(binary: &Path) -> Result<Option<(u32, u32)>, DownloadsError> {
    let io = |source| DownloadsError::Io {
        action: "read",
        path: binary.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(binary).map_err(io)?;
    let mut window = vec![0; GLIBC_WINDOW];
    let (mut carried, mut newest) = (0, None);
    loop {
        let read = file.read(&mut window[carried..]).map_err(io)?;
        if read == 0 {
            return Ok(newest);
        }
        let filled = carried + read;
        // A version cut off at the window's end reads as an older one (`GLIBC_2.3` of
        // `GLIBC_2.34`), never a newer, so the maximum is unharmed.
        newest = newest.max(glibc_versions(&window[..filled]).max());
        carried = GLIBC_CARRY.min(filled);
        window.copy_within(filled - carried..filled, 0);
    }
}

/// Every `GLIBC_2.N` version string in an ELF file's bytes (the version needs its dynamic symbols
/// name).
fn glibc_versions(bytes: &[u8]) -> impl Iterator<Item = (u32, u32)> + '_ {
    const TAG: &[u8] = b"GLIBC_";
    bytes
        .windows(TAG.len())
        .enumerate()
        .filter_map(|(at, window)| {
            if window != TAG {
                return None;
            }
            let rest = &bytes[at + TAG.len()..];
            let end = rest
                .iter()
                .position(|b| !(b.is_ascii_digit() || *b == b'.'))
                .unwrap_or(rest.len());
            let version = std::str::from_utf8(&rest[..end]).ok()?;
            let mut parts = version.split('.');
            let major = parts.next()?.parse().ok()?;
            let minor = parts.next().unwrap_or("0").parse().ok()?;
            Some((major, minor))
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
        std::fs::create_dir_all(&work).map_err(|source| DownloadsError::Io {
            action: "create",
            path: work.clone(),
            source,
        })?;
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
            remedy: "apt-get download did not leave the package; check Debian's archive",
        })
}

async fn run(action: &'static str, program: &str, args: &[&str]) -> Result<String, DownloadsError> {
    let command = format!("{program} {}", args.join(" "));
    let out = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        // An interrupted run must not leave a command running behind it.
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| DownloadsError::Command {
            action,
            command: command.clone(),
            status: "not at all".into(),
            stderr: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(DownloadsError::Command {
            action,
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
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
    fn sources_are_read_as_users_write_them() {
        assert_eq!(
            EtcdSource::parse("debian:trixie").unwrap(),
            EtcdSource::Debian {
                suite: "trixie".into()
            }
        );
        assert_eq!(
            EtcdSource::parse("v3.6.5").unwrap(),
            EtcdSource::Release {
                version: "v3.6.5".into()
            }
        );
        assert_eq!(EtcdSource::default().to_string(), "debian:bookworm");
        for bad in [
            "debian:",
            "debian:Trixie!",
            "/nonexistent/etcd.zip",
            "v3.six",
        ] {
            assert!(EtcdSource::parse(bad).is_err(), "{bad}");
        }
        let err = EtcdSource::parse("/nonexistent/etcd.zip")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("debian:<suite>") && err.contains("vX.Y.Z"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_directory_without_etcdctl_is_refused_naming_the_binary() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("etcd"), b"").unwrap();
        let source = EtcdSource::parse(dir.path().to_str().unwrap()).unwrap();
        let err = fetch(&source).await.unwrap_err().to_string();
        assert!(err.contains("`etcdctl`"), "{err}");
    }

    #[test]
    fn the_version_is_read_from_etcds_own_words() {
        let printed = "etcd Version: 3.5.16\nGit SHA: Not provided\nGo Version: go1.24.0\n";
        assert_eq!(
            parse_version(printed),
            semver::Version::parse("3.5.16").ok()
        );
        assert_eq!(parse_version("Usage: etcd"), None);
    }

    #[test]
    fn the_newest_glibc_version_a_binary_names_is_found() {
        let elf = b"\x7fELF..GLIBC_2.2.5\0GLIBC_2.34\0GLIBC_PRIVATE\0GLIBC_2.3.4\0";
        assert_eq!(glibc_versions(elf).max(), Some((2, 34)));
        assert_eq!(glibc_versions(b"static go binary").max(), None);
    }

    #[test]
    fn a_glibc_version_across_two_reads_of_a_binary_is_found_whole() {
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("etcd");
        let mut bytes = b"\x7fELF GLIBC_2.2.5\0".to_vec();
        bytes.resize(GLIBC_WINDOW - 4, 0);
        bytes.extend_from_slice(b"GLIBC_2.34\0");
        std::fs::write(&binary, bytes).unwrap();
        assert_eq!(glibc_needed(&binary).unwrap(), Some((2, 34)));
    }

    #[tokio::test]
    async fn binaries_needing_a_newer_glibc_than_the_nodes_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("etcd"), b"\x7fELF GLIBC_2.38\0").unwrap();
        std::fs::write(dir.path().join("etcdctl"), b"\x7fELF GLIBC_2.34\0").unwrap();
        let source = EtcdSource::Directory(dir.path().to_owned());
        let err = fetch(&source).await.unwrap_err().to_string();
        assert!(err.contains("`etcd` needs glibc 2.38"), "{err}");
        assert!(err.contains("has 2.36"), "{err}");
    }
}
