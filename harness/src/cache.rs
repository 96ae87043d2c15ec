//! The host-side cache directory (extracted etcd binaries, lock files) and the lock that lets
//! several processes — test binaries, CLI runs — share one build of anything slow.
//!
//! Location: `$ETCD_HARNESS_CACHE`, else `$XDG_CACHE_HOME/etcd-harness`, else
//! `~/.cache/etcd-harness`. Images live in the engine, not here.

use std::fs::File;
use std::path::PathBuf;

/// Errors using the cache directory.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// No location could be derived from the environment.
    #[error("failed to locate a cache directory: set ETCD_HARNESS_CACHE (or HOME)")]
    NoLocation,
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
}

/// The cache directory, created if missing.
pub fn dir() -> Result<PathBuf, CacheError> {
    let dir = if let Some(dir) = std::env::var_os("ETCD_HARNESS_CACHE") {
        PathBuf::from(dir)
    } else if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME") {
        PathBuf::from(xdg).join("etcd-harness")
    } else if let Some(home) = std::env::var_os("HOME") {
        PathBuf::from(home).join(".cache").join("etcd-harness")
    } else {
        return Err(CacheError::NoLocation);
    };
    std::fs::create_dir_all(&dir).map_err(|source| CacheError::Io {
        action: "create",
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}

/// An exclusive lock on a file of the cache directory, held until dropped.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Takes the exclusive lock `name` in the cache directory, waiting for another holder to finish.
pub async fn lock(name: &str) -> Result<Lock, CacheError> {
    let path = dir()?.join(name);
    tokio::task::spawn_blocking(move || {
        let io = |action, source| CacheError::Io {
            action,
            path: path.clone(),
            source,
        };
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io("open", e))?;
        file.lock().map_err(|e| io("lock", e))?;
        Ok(Lock { _file: file })
    })
    .await
    .unwrap_or_else(|join| {
        Err(CacheError::Io {
            action: "lock",
            path: PathBuf::from(name),
            source: std::io::Error::other(join),
        })
    })
}
