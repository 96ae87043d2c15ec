//! Debian's archive through a private apt configuration: its own sources list, package lists and
//! cache under the harness's cache directory, passed to `apt-get` with `-o Dir::…`, so packages of
//! any suite (bookworm, trixie, sid, …) can be downloaded without touching the host's apt state.
//!
//! It only downloads `.deb` files into a directory; extracting them is [`crate::downloads`]' job.
//! The mirror and keyring are the host's own (its Debian sources), or `ETCD_HARNESS_DEBIAN_MIRROR`.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::cache::{self, CacheError};

/// Environment variable naming the Debian mirror to use instead of the host's.
pub const MIRROR_ENV: &str = "ETCD_HARNESS_DEBIAN_MIRROR";

/// The keyring Debian's archive is signed with, as the `debian-archive-keyring` package installs it.
pub const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Errors downloading from Debian's archive.
#[derive(Debug, thiserror::Error)]
pub enum AptError {
    /// The archive has no such suite.
    #[error(
        "failed to find Debian suite `{suite}` in {mirror}: {detail}\n  remedy: name a suite the \
         archive serves, e.g. `debian:bookworm`, `debian:trixie` or `debian:sid`"
    )]
    UnknownSuite {
        /// The suite asked for.
        suite: String,
        /// The mirror asked.
        mirror: String,
        /// apt's words.
        detail: String,
    },
    /// The suite has no such package.
    #[error(
        "failed to download `{package}` from Debian {suite}: {detail}\n  remedy: this suite does \
         not ship etcd; pick another (`debian:trixie`, `debian:sid`) or pass an upstream release \
         (`--etcd vX.Y.Z`)"
    )]
    NoPackage {
        /// The package.
        package: String,
        /// The suite.
        suite: String,
        /// apt's words.
        detail: String,
    },
    /// No mirror could be found.
    #[error(
        "failed to find a Debian mirror: the host has no Debian apt sources\n  remedy: set \
         {MIRROR_ENV} to a Debian mirror's URL"
    )]
    NoMirror,
    /// `apt-get` failed otherwise.
    #[error(
        "failed to run `{command}`: {detail}\n  remedy: check that Debian's archive is reachable"
    )]
    Command {
        /// The command line (without the private `-o` options).
        command: String,
        /// What it printed, or why it did not run.
        detail: String,
    },
    /// A file of the private configuration could not be written.
    #[error("failed to prepare the private apt configuration in {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The cache directory could not be used.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// A private apt configuration for one Debian suite.
pub struct PrivateApt {
    suite: String,
    mirror: String,
    root: PathBuf,
}

impl PrivateApt {
    /// The configuration for `suite` under the cache directory, created if missing.
    pub fn for_suite(suite: &str) -> Result<Self, AptError> {
        let mirror = mirror()?;
        let root = cache::dir()?.join("apt").join(suite);
        for dir in ["lists/partial", "cache/archives/partial"] {
            let dir = root.join(dir);
            std::fs::create_dir_all(&dir).map_err(|source| AptError::Io { path: dir, source })?;
        }
        let list = root.join("sources.list");
        std::fs::write(
            &list,
            format!("deb [signed-by={KEYRING}] {mirror} {suite} main\n"),
        )
        .map_err(|source| AptError::Io { path: list, source })?;
        let config = root.join("apt.conf");
        std::fs::write(&config, private_config(&root)).map_err(|source| AptError::Io {
            path: config,
            source,
        })?;
        Ok(Self {
            suite: suite.to_owned(),
            mirror,
            root,
        })
    }

    /// Fetches the suite's package lists.
    pub async fn update(&self) -> Result<(), AptError> {
        let out = self.apt_get(&["update"], &self.root).await?;
        // apt-get update exits 0 with only a warning for some missing suites: read what it says.
        let said = format!("{}\n{}", out.stdout, out.stderr);
        if let Some(line) = said
            .lines()
            .find(|l| l.contains("does not have a Release file") || l.contains("404  Not Found"))
        {
            return Err(AptError::UnknownSuite {
                suite: self.suite.clone(),
                mirror: self.mirror.clone(),
                detail: line.trim().to_owned(),
            });
        }
        // …and exits 0 when the mirror could not be reached at all.
        if !out.success
            || said
                .lines()
                .any(|l| l.starts_with("Err:") || l.starts_with("W: Failed to fetch"))
        {
            return Err(self.failed("update", &out));
        }
        Ok(())
    }

    /// Downloads `packages` (their candidate versions in the suite) into `into`.
    pub async fn download(&self, packages: &[&str], into: &Path) -> Result<(), AptError> {
        let mut args = vec!["download"];
        args.extend_from_slice(packages);
        let out = self.apt_get(&args, into).await?;
        if out.success {
            return Ok(());
        }
        let said = format!("{}\n{}", out.stdout, out.stderr);
        if let Some(line) = said
            .lines()
            .find(|l| l.contains("Unable to locate package"))
        {
            return Err(AptError::NoPackage {
                package: line.rsplit(' ').next().unwrap_or_default().to_owned(),
                suite: self.suite.clone(),
                detail: line.trim().to_owned(),
            });
        }
        Err(self.failed(&args.join(" "), &out))
    }

    fn failed(&self, args: &str, out: &AptOutput) -> AptError {
        AptError::Command {
            command: format!(
                "apt-get {args} (Debian {}, private configuration)",
                self.suite
            ),
            detail: format!("{}{}", out.stdout, out.stderr).trim().to_owned(),
        }
    }

    async fn apt_get(&self, args: &[&str], cwd: &Path) -> Result<AptOutput, AptError> {
        let out = tokio::process::Command::new("apt-get")
            .arg("-c")
            .arg(self.root.join("apt.conf"))
            .args(["-q"])
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| AptError::Command {
                command: format!("apt-get {}", args.join(" ")),
                detail: format!("{e} (is this a Debian host with apt?)"),
            })?;
        Ok(AptOutput {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// The private configuration, read after the host's own (whose settings for reaching the archive,
/// proxies say, still apply): its own sources, lists and cache, and none of the host's hooks, which
/// would refresh host-wide caches after an update.
fn private_config(root: &Path) -> String {
    let root = root.display();
    format!(
        "Dir::Etc::SourceList \"{root}/sources.list\";\n\
         Dir::Etc::SourceParts \"/dev/null\";\n\
         Dir::State::Lists \"{root}/lists\";\n\
         Dir::Cache \"{root}/cache\";\n\
         // The directories live in the user's cache, where apt's `_apt` user may not enter.\n\
         APT::Sandbox::User \"root\";\n\
         #clear APT::Update::Pre-Invoke;\n\
         #clear APT::Update::Post-Invoke;\n\
         #clear APT::Update::Post-Invoke-Success;\n"
    )
}

struct AptOutput {
    success: bool,
    stdout: String,
    stderr: String,
}

/// The Debian mirror: `ETCD_HARNESS_DEBIAN_MIRROR`, else the host's first Debian source that is
/// not the security archive.
fn mirror() -> Result<String, AptError> {
    if let Ok(mirror) = std::env::var(MIRROR_ENV) {
        if !mirror.is_empty() {
            return Ok(mirror);
        }
    }
    let mut texts = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for entry in entries.filter_map(Result::ok) {
            texts.push(std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    texts.push(std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default());
    texts
        .iter()
        .find_map(|text| mirror_in(text))
        .ok_or(AptError::NoMirror)
}

/// The Debian archive's URI in a sources file (one-line `deb …` or deb822 `URIs:`): one whose path
/// ends in `/debian` — not the security archive, which has no etcd, nor another vendor's.
fn mirror_in(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .flat_map(|line| {
            let uris: Vec<&str> = if let Some(rest) = line.strip_prefix("URIs:") {
                rest.split_whitespace().collect()
            } else if let Some(rest) = line.strip_prefix("deb ") {
                // `deb [options] uri suite components…`
                let rest = match rest.trim_start().strip_prefix('[') {
                    Some(options) => options.split_once(']').map_or("", |(_, r)| r),
                    None => rest,
                };
                rest.split_whitespace().take(1).collect()
            } else {
                Vec::new()
            };
            uris.into_iter().map(str::to_owned).collect::<Vec<_>>()
        })
        .find(|uri| uri.contains("://") && uri.trim_end_matches('/').ends_with("/debian"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirror_is_read_from_either_sources_format_skipping_security() {
        let deb822 = "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n\
                      Types: deb\nURIs: https://vendor.example/node_20.x\nSuites: nodistro\n\n\
                      Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n";
        assert_eq!(
            mirror_in(deb822).as_deref(),
            Some("http://mirror.example/debian")
        );
        let one_line =
            "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main\n";
        assert_eq!(
            mirror_in(one_line).as_deref(),
            Some("http://m.example/debian")
        );
        assert_eq!(
            mirror_in("deb-src http://m.example/debian bookworm main"),
            None
        );
    }
}
