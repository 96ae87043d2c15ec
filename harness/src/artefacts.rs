//! A failed run's artefacts, kept for whoever reads CI's results: per node, etcd's journal, the
//! unit as systemd loaded it, `systemctl status`, `ss -tlnp` and the certificates of `/etc/etcd`
//! (never a private key); beside them the report as text and JSON. One directory per run, under
//! `$ETCD_HARNESS_ARTEFACTS` (default `target/artefacts` in the repository); the report prints it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cluster::Cluster;
use crate::engine::EngineError;
use crate::report::{self, Report};

/// Errors keeping artefacts.
#[derive(Debug, thiserror::Error)]
pub enum ArtefactsError {
    /// A file could not be written.
    #[error("failed to write artefact {path}: {source}\n  remedy: make ETCD_HARNESS_ARTEFACTS a writable directory")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A node could not be asked for its evidence.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Where runs keep their artefacts: `$ETCD_HARNESS_ARTEFACTS`; else, for a binary run from its
/// build tree (`cargo run`, `cargo test`), that tree's `target/artefacts`; else (a binary copied
/// elsewhere or `cargo install`ed) `etcd-harness-artefacts` in the current directory.
pub fn root() -> PathBuf {
    if let Some(dir) = std::env::var_os("ETCD_HARNESS_ARTEFACTS") {
        return PathBuf::from(dir);
    }
    let built_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    if built_in.is_dir() {
        built_in.join("artefacts")
    } else {
        PathBuf::from("etcd-harness-artefacts")
    }
}

/// What is kept of each node: a file name and the command whose output it holds.
const FROM_NODE: [(&str, &str); 4] = [
    ("journal.log", "journalctl -u etcd --no-pager -o short-iso"),
    ("unit.txt", "systemctl cat etcd --no-pager"),
    ("status.txt", "systemctl status etcd --no-pager"),
    ("ss.txt", "ss -tlnp"),
];

/// Keeps every node's evidence in `dir` (`nodes/<host>/…`), and returns `dir`.
pub async fn collect(cluster: &Cluster, dir: &Path) -> Result<PathBuf, ArtefactsError> {
    for node in cluster.nodes() {
        let node_dir = dir.join("nodes").join(node.host());
        for (file, command) in FROM_NODE {
            let out = node.shell(command, Duration::from_secs(15)).await?;
            write(
                &node_dir.join(file),
                format!("{}{}", out.stdout, out.stderr).as_bytes(),
            )?;
        }
        // Certificates only: a key is a secret, even a throwaway one.
        let listed = node
            .shell("ls /etc/etcd/*.crt 2>/dev/null", Duration::from_secs(10))
            .await?;
        for path in listed
            .stdout
            .lines()
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            if let Some((content, _)) = node.engine().download(node.id(), path).await? {
                let name = Path::new(path).file_name().unwrap_or_default();
                write(&node_dir.join("certs").join(name), &content)?;
            }
        }
    }
    Ok(dir.to_owned())
}

/// Writes the report, as text and JSON, beside the nodes' artefacts.
pub fn write_report(report: &Report, dir: &Path) -> Result<(), ArtefactsError> {
    write(&dir.join("report.txt"), report::render(report).as_bytes())?;
    let json = serde_json::to_vec_pretty(&report::to_json(report)).unwrap_or_default();
    write(&dir.join("report.json"), &json)
}

fn write(path: &Path, content: &[u8]) -> Result<(), ArtefactsError> {
    let error = |source| ArtefactsError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    std::fs::write(path, content).map_err(error)
}
