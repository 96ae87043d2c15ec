//! `etcd-harness doctor`: what this machine has of what a run needs, on one screen, before any
//! work — the engine and its API, its cgroups, where the node image will come from, the etcd
//! source, free disk — and for each missing piece the exact remedy. It changes nothing: no pull,
//! no build, no download.

use std::path::Path;

use crate::downloads::EtcdSource;
use crate::engine::{Engine, EngineFacts};
use crate::image::{self, Plan};

/// Less free space than this where the harness writes stops a run (the node image is ~210 MB, a
/// Debian etcd ~30 MB, a run's files a few MB).
const DISK_NEEDED: u64 = 1 << 30;
/// Less than this is worth a word.
const DISK_LOW: u64 = 5 << 30;

/// How one finding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Present and usable.
    Ok,
    /// Usable, but worth knowing (a fallback will be tried, an optional piece is missing).
    Note,
    /// A run cannot work without it.
    Missing,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Finding {
    /// What was looked at ("engine", "node image").
    pub what: &'static str,
    /// How it stands.
    pub status: Status,
    /// What was found.
    pub found: String,
    /// What to do, for a note or a missing piece.
    pub remedy: Option<String>,
}

impl Finding {
    fn ok(what: &'static str, found: impl Into<String>) -> Self {
        Self {
            what,
            status: Status::Ok,
            found: found.into(),
            remedy: None,
        }
    }

    fn with(what: &'static str, status: Status, found: String, remedy: String) -> Self {
        Self {
            what,
            status,
            found,
            remedy: Some(remedy),
        }
    }
}

/// Everything the doctor found.
#[derive(Debug, Clone)]
pub struct Report {
    /// In the order they were looked at.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Whether nothing a run needs is missing.
    pub fn ready(&self) -> bool {
        self.findings.iter().all(|f| f.status != Status::Missing)
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for finding in &self.findings {
            let mark = match finding.status {
                Status::Ok => "ok     ",
                Status::Note => "note   ",
                Status::Missing => "MISSING",
            };
            writeln!(f, "{mark} {:<13} {}", finding.what, finding.found)?;
            if let Some(remedy) = &finding.remedy {
                writeln!(f, "{:21} → {remedy}", "")?;
            }
        }
        let missing = self
            .findings
            .iter()
            .filter(|f| f.status == Status::Missing)
            .count();
        if missing == 0 {
            writeln!(f, "ready: a run has what it needs")
        } else {
            writeln!(
                f,
                "not ready: {missing} missing piece(s), each with its remedy above"
            )
        }
    }
}

/// Looks at everything a run of `source` needs.
pub async fn examine(source: &EtcdSource) -> Report {
    let mut findings = Vec::new();
    match Engine::connect().await {
        Ok(engine) => {
            match engine.facts().await {
                Ok(facts) => {
                    findings.push(engine_finding(&facts));
                    findings.push(cgroup_finding(&facts));
                    if let Some(dir) = facts.root_dir.as_deref().filter(|d| Path::new(d).is_dir()) {
                        findings.push(disk("engine's disk", Path::new(dir)));
                    }
                }
                Err(e) => findings.push(Finding::with(
                    "engine",
                    Status::Missing,
                    format!("answers, but not its version and info: {e}"),
                    "use an engine with Docker's API 1.41 or newer (Docker 20.10+, Podman 4+)"
                        .into(),
                )),
            }
            findings.push(match image::plan(&engine).await {
                Ok(plan) => image_finding(&plan),
                Err(e) => Finding::with(
                    "node image",
                    Status::Missing,
                    format!("could not ask the engine: {e}"),
                    "see the engine's line above".into(),
                ),
            });
        }
        Err(e) => findings.push(Finding::with(
            "engine",
            Status::Missing,
            // The error's first line: its own remedy is the one below, with Podman's.
            e.to_string().lines().next().unwrap_or_default().to_owned(),
            "start one: Docker (`apt-get install docker.io && dockerd &`, or `systemctl start \
             docker`), or Podman's Docker-compatible socket (`systemctl start podman.socket`, then \
             DOCKER_HOST=unix:///run/podman/podman.sock); DOCKER_HOST names a non-default one"
                .into(),
        )),
    }
    findings.extend(etcd_findings(source));
    match crate::cache::dir() {
        Ok(dir) => findings.push(disk("cache", &dir)),
        Err(e) => findings.push(Finding::with(
            "cache",
            Status::Missing,
            e.to_string(),
            "set ETCD_HARNESS_CACHE to a writable directory".into(),
        )),
    }
    findings.push(disk("temp dir", &std::env::temp_dir()));
    findings.push(if image::which("systemd-analyze").is_some() {
        Finding::ok(
            "lint",
            "systemd-analyze: the unit is checked as systemd reads it",
        )
    } else {
        Finding::with(
            "lint",
            Status::Note,
            "no systemd-analyze: the lint skips its systemd checks".into(),
            "install systemd (Debian: apt-get install systemd) for them".into(),
        )
    });
    findings.push(nodes_finding(crate::cluster::inotify_limit()));
    findings.push(Finding::ok(
        "time scale",
        match std::env::var(crate::wait::TIME_SCALE_VAR) {
            Ok(v) => format!("{}={v}: every deadline × {v}", crate::wait::TIME_SCALE_VAR),
            Err(_) => format!(
                "1 (set {} on an emulated or loaded host)",
                crate::wait::TIME_SCALE_VAR
            ),
        },
    ));
    Report { findings }
}

fn engine_finding(facts: &EngineFacts) -> Finding {
    let found = format!(
        "{} {} (API {}) on {}; DOCKER_HOST={}",
        facts.product,
        facts.version,
        facts.api_version,
        facts.operating_system,
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unset (/var/run/docker.sock)".into())
    );
    let old = version_below(&facts.api_version, (1, 41));
    if old {
        Finding::with(
            "engine",
            Status::Missing,
            found,
            "the harness needs API 1.41 or newer: Docker 20.10+ or Podman 4+".into(),
        )
    } else {
        Finding::ok("engine", found)
    }
}

fn cgroup_finding(facts: &EngineFacts) -> Finding {
    Finding::ok(
        "cgroups",
        format!(
            "v{} with the {} driver: each node gets its own cgroup namespace, made writable for \
             systemd by a one-shot setup container",
            facts.cgroup_version, facts.cgroup_driver
        ),
    )
}

fn image_finding(plan: &Plan) -> Finding {
    match plan {
        Plan::Present(tag) => Finding::ok("node image", format!("{tag}, present")),
        Plan::FromBase(base) => Finding::ok(
            "node image",
            format!("built at the first run FROM {base}, which the engine has"),
        ),
        Plan::PullOrMmdebstrap => Finding::with(
            "node image",
            Status::Note,
            "built at the first run: FROM debian:bookworm if it can be pulled, else from an \
             mmdebstrap rootfs (mmdebstrap is installed)"
                .into(),
            "nothing to do; the first run takes a minute or two longer".into(),
        ),
        Plan::PullOrFetchedMmdebstrap => Finding::with(
            "node image",
            Status::Note,
            "built at the first run: FROM debian:bookworm if it can be pulled, else from an \
             mmdebstrap rootfs, with Debian's mmdebstrap fetched first (none is installed; it runs \
             with this host's perl, apt and dpkg, as root)"
                .into(),
            "nothing to do where a registry or Debian's archive answers; else `docker load` a \
             debian:bookworm image"
                .into(),
        ),
    }
}

/// The etcd source's pieces: for Debian's packages, apt and the archive's keyring; for a file or
/// a directory, that it is there.
fn etcd_findings(source: &EtcdSource) -> Vec<Finding> {
    match source {
        EtcdSource::Debian { suite } => {
            let cached = crate::cache::dir()
                .map(|d| d.join(format!("etcd-debian-{suite}")).is_dir())
                .unwrap_or(false);
            if cached {
                return vec![Finding::ok(
                    "etcd",
                    format!("{source}: fetched before, in the cache"),
                )];
            }
            let mut findings = Vec::new();
            let keyring = Path::new(crate::apt::KEYRING);
            if image::which("apt-get").is_none() {
                findings.push(Finding::with(
                    "etcd",
                    Status::Missing,
                    format!("{source} needs apt-get, and there is none"),
                    "on a host without apt, use --etcd vX.Y.Z (an upstream release), a release \
                     .tar.gz or a directory holding etcd and etcdctl"
                        .into(),
                ));
            } else if !keyring.is_file() {
                findings.push(Finding::with(
                    "etcd",
                    Status::Missing,
                    format!(
                        "{source} needs Debian's archive keyring, {}",
                        keyring.display()
                    ),
                    "apt-get install debian-archive-keyring".into(),
                ));
            } else {
                findings.push(Finding::ok(
                    "etcd",
                    format!("{source}: fetched at the first run with apt-get download"),
                ));
            }
            findings
        }
        EtcdSource::Release { .. } => vec![Finding::ok(
            "etcd",
            format!("{source}: downloaded at the first run and verified against SHA256SUMS"),
        )],
        EtcdSource::Tarball(path) | EtcdSource::Directory(path) => vec![if path.exists() {
            Finding::ok("etcd", format!("{source}"))
        } else {
            Finding::with(
                "etcd",
                Status::Missing,
                format!("{} does not exist", path.display()),
                "name an existing release .tar.gz or a directory holding etcd and etcdctl".into(),
            )
        }],
    }
}

/// Free space under `dir`.
/// How many nodes may run at once, by the host's inotify limit (every node's systemd takes some).
fn nodes_finding(limit: usize) -> Finding {
    let nodes = crate::cluster::nodes_at_once(limit);
    let found =
        format!("fs.inotify.max_user_instances={limit}: up to {nodes} nodes at once per process");
    if nodes < 12 {
        Finding::with(
            "nodes at once",
            Status::Note,
            format!("{found}; more wait for room"),
            "raise it for more at once: sysctl -w fs.inotify.max_user_instances=1024".into(),
        )
    } else {
        Finding::ok("nodes at once", found)
    }
}

fn disk(what: &'static str, dir: &Path) -> Finding {
    let free = match rustix::fs::statvfs(dir) {
        Ok(stat) => stat.f_bavail.saturating_mul(stat.f_frsize),
        Err(e) => {
            return Finding::with(
                what,
                Status::Note,
                format!("{}: free space unknown ({e})", dir.display()),
                "check it has a few GB free".into(),
            )
        }
    };
    let found = format!("{}: {} free", dir.display(), gib(free));
    if free < DISK_NEEDED {
        Finding::with(
            what,
            Status::Missing,
            found,
            "free at least 1 GB there".into(),
        )
    } else if free < DISK_LOW {
        Finding::with(
            what,
            Status::Note,
            found,
            "a few GB more would be safer".into(),
        )
    } else {
        Finding::ok(what, found)
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / f64::from(1u32 << 30))
}

/// Whether `version` ("1.41") is below `min`; an unreadable one is not.
fn version_below(version: &str, min: (u32, u32)) -> bool {
    let mut parts = version.split('.').map(str::parse::<u32>);
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) < min,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_older_than_1_41_is_missing_and_newer_or_unreadable_ones_are_not() {
        assert!(version_below("1.40", (1, 41)));
        assert!(version_below("0.99", (1, 41)));
        assert!(!version_below("1.41", (1, 41)));
        assert!(!version_below("1.51", (1, 41)));
        assert!(!version_below("unknown", (1, 41)));
    }

    #[test]
    fn a_report_with_a_missing_piece_is_not_ready_and_says_each_remedy() {
        let report = Report {
            findings: vec![
                Finding::ok("engine", "Docker Engine 28.5.2"),
                Finding::with(
                    "etcd",
                    Status::Missing,
                    "debian:bookworm needs apt-get, and there is none".into(),
                    "use --etcd vX.Y.Z".into(),
                ),
            ],
        };
        assert!(!report.ready());
        let text = report.to_string();
        assert!(text.contains("MISSING etcd"), "{text}");
        assert!(text.contains("→ use --etcd vX.Y.Z"), "{text}");
        assert!(text.ends_with("not ready: 1 missing piece(s), each with its remedy above\n"));
    }

    #[test]
    fn a_low_inotify_limit_is_a_note_with_the_sysctl_that_raises_it() {
        let low = nodes_finding(32);
        assert_eq!(low.status, Status::Note);
        assert!(low.found.contains("up to 6 nodes"), "{}", low.found);
        assert!(low
            .remedy
            .unwrap()
            .contains("fs.inotify.max_user_instances=1024"));
        let default = nodes_finding(128);
        assert_eq!(default.status, Status::Ok);
        assert!(
            default.found.contains("up to 24 nodes"),
            "{}",
            default.found
        );
    }

    #[test]
    fn a_directory_that_does_not_exist_is_missing() {
        let findings = etcd_findings(&EtcdSource::Directory("/nonexistent/etcd".into()));
        assert_eq!(findings[0].status, Status::Missing);
        assert!(findings[0].found.contains("/nonexistent/etcd"));
    }
}
