//! The run's directory on the host — the jumpbox of each scenario, with the private keys rcgen
//! issued — owned like the nodes: private (0700) from its creation, removed when the run ends (also
//! on panic, and on Ctrl-C/SIGTERM, when the CLI drops the run), kept only with `--keep`, and swept
//! by the next run when its owner was killed outright.
//!
//! Its name says who owns it (`etcd-harness-run-<pid>-<start time>-<random>`) so that even a run
//! killed right after creating it can be judged; an `OWNER` file inside adds the pid namespace. It
//! does not decide what goes inside: the runner lays out the jumpbox.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::owner::{Owner, Verdict};

/// The start of every run directory's name in the temporary directory.
pub const PREFIX: &str = "etcd-harness-run-";
const OWNER_FILE: &str = "OWNER";
const KEPT_FILE: &str = "KEPT";

/// Errors making or using the run directory.
#[derive(Debug, thiserror::Error)]
#[error(
    "failed to {action} {path}: {source}\n  remedy: make the temporary directory (TMPDIR) writable"
)]
pub struct RunDirError {
    /// What was being done.
    action: &'static str,
    /// The path involved.
    path: PathBuf,
    /// The I/O error.
    source: std::io::Error,
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RunDirError {
    let path = path.to_owned();
    move |source| RunDirError {
        action,
        path,
        source,
    }
}

/// A run's private directory; dropping it removes it unless it was kept.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Creates this process's run directory in the temporary directory, mode 0700.
    pub fn create() -> Result<Self, RunDirError> {
        let me = Owner::this_process();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{}-{}-", me.pid, me.start))
            .permissions(std::fs::Permissions::from_mode(0o700))
            .disable_cleanup(true)
            .tempdir()
            .map_err(io("create a run directory in", &std::env::temp_dir()))?;
        let run = Self {
            path: dir.path().to_owned(),
        };
        let owner = run.path.join(OWNER_FILE);
        std::fs::write(&owner, me.encode()).map_err(io("write", &owner))?;
        Ok(run)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A fresh private directory inside, for one scenario's jumpbox; removed when dropped.
    pub fn jumpbox(&self) -> Result<tempfile::TempDir, RunDirError> {
        tempfile::Builder::new()
            .prefix("jumpbox-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(&self.path)
            .map_err(io("create a jumpbox directory in", &self.path))
    }

    /// Keeps the directory after the run (`--keep`); the sweep leaves it alone too.
    pub fn keep(&self) -> Result<(), RunDirError> {
        let marker = self.path.join(KEPT_FILE);
        std::fs::write(&marker, "kept with --keep\n").map_err(io("write", &marker))
    }

    /// Removes the run directories in the temporary directory whose owner `judge` can prove dead,
    /// except kept ones. Returns how many were removed.
    pub fn sweep_stale(judge: &Owner) -> usize {
        Self::remove_where(judge, false, |owner| owner.verdict(judge) == Verdict::Dead)
    }

    /// Removes the run directories `owner` left, except kept ones: what the reaper does once the
    /// run it watches has died.
    pub fn remove_left_by(owner: &Owner) -> usize {
        Self::remove_where(owner, false, |o| o == owner)
    }

    /// Removes the directories runs kept with `--keep` whose run has ended (`clean --kept`).
    pub fn remove_kept(judge: &Owner) -> usize {
        Self::remove_where(judge, true, |owner| owner.verdict(judge) == Verdict::Dead)
    }

    /// Removes the run directories whose owner is `doomed`: the kept ones when `kept`, else the
    /// others.
    fn remove_where(judge: &Owner, kept: bool, mut doomed: impl FnMut(&Owner) -> bool) -> usize {
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
            return 0;
        };
        entries
            .filter_map(Result::ok)
            .filter(|entry| {
                let path = entry.path();
                let owner = entry
                    .file_name()
                    .to_str()
                    .and_then(|name| owner_from_name(name, judge, &path));
                owner.is_some_and(|o| doomed(&o))
                    && path.join(KEPT_FILE).exists() == kept
                    && std::fs::remove_dir_all(&path).is_ok()
            })
            .count()
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.path.join(KEPT_FILE).exists() {
            // Nothing to report to from a drop; a directory that could not be removed is found by
            // the next run's sweep.
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The owner of run directory `name` at `path`: pid and start time from the name, the namespace from
/// its `OWNER` file — or the judge's when the run was killed before writing it (the directory is in
/// the judge's own temporary directory).
fn owner_from_name(name: &str, judge: &Owner, path: &Path) -> Option<Owner> {
    let mut parts = name.strip_prefix(PREFIX)?.splitn(3, '-');
    let pid = parts.next()?.parse().ok()?;
    let start = parts.next()?.parse().ok()?;
    let namespace = std::fs::read_to_string(path.join(OWNER_FILE))
        .ok()
        .and_then(|text| Owner::decode(text.trim()))
        .map(|o| o.namespace)
        .unwrap_or_else(|| judge.namespace.clone());
    Some(Owner {
        namespace,
        pid,
        start,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_run_directory_is_private_and_removed_when_dropped() {
        let run = RunDir::create().unwrap();
        let path = run.path().to_owned();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o700);
        let jumpbox = run.jumpbox().unwrap();
        assert_eq!(
            std::fs::metadata(jumpbox.path()).unwrap().mode() & 0o777,
            0o700
        );
        drop(jumpbox);
        drop(run);
        assert!(!path.exists(), "{} outlived its run", path.display());
    }

    #[test]
    fn a_run_directory_names_its_owner() {
        let run = RunDir::create().unwrap();
        let me = Owner::this_process();
        let name = run.path().file_name().unwrap().to_str().unwrap().to_owned();
        assert_eq!(owner_from_name(&name, me, run.path()).as_ref(), Some(me));
    }

    #[test]
    fn the_sweep_removes_dead_owners_directories_only() {
        let me = Owner::this_process();
        let tmp = std::env::temp_dir();
        let make = |name: String, owner: Option<&Owner>, kept: bool| {
            let path = tmp.join(name);
            std::fs::create_dir_all(&path).unwrap();
            if let Some(owner) = owner {
                std::fs::write(path.join(OWNER_FILE), owner.encode()).unwrap();
            }
            if kept {
                std::fs::write(path.join(KEPT_FILE), "").unwrap();
            }
            path
        };
        let unique = format!("{:x}", std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos());
        // A SIGKILLed run, killed before (or after) it wrote its OWNER file.
        let dead = make(format!("{PREFIX}{}-1-{unique}a", u32::MAX), None, false);
        let foreign_owner = Owner {
            namespace: "another-host:pid:[1]".into(),
            pid: u32::MAX,
            start: 1,
        };
        let foreign = make(
            format!("{PREFIX}{}-1-{unique}b", u32::MAX),
            Some(&foreign_owner),
            false,
        );
        let kept = make(format!("{PREFIX}{}-1-{unique}c", u32::MAX), None, true);
        let live = RunDir::create().unwrap();

        RunDir::sweep_stale(me);

        let (dead_left, foreign_left, kept_left) = (dead.exists(), foreign.exists(), kept.exists());
        let _ = std::fs::remove_dir_all(&foreign);
        let _ = std::fs::remove_dir_all(&kept);
        assert!(!dead_left, "a dead run's directory was not swept");
        assert!(foreign_left, "another host's directory must be left alone");
        assert!(kept_left, "a kept run's directory must be left alone");
        assert!(live.path().exists(), "a live run's directory was swept");
    }
}
