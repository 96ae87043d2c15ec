//! The built-in scenarios, which travel inside the binary, and the [`Catalogue`] a scenario name is
//! looked up in: a directory of the user's own (`--scenarios`) first, then the built-in ones.
//!
//! The build script embeds every file under `scenarios/` (its steps files too) and `docker/units/`.
//! They are laid out again, once, in the cache directory under `builtin-<hash of the files>/`, as
//! in the source tree — so a scenario's `unit = "../docker/units/etcd-tls.service"` and
//! `steps = "steps/….toml"` resolve unchanged, and findings and reports name real files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use crate::cache::{self, CacheError};
use crate::scenario::{self, ScenarioError};

/// The embedded files: the path relative to the source tree's root (`scenarios/tutorial-tls.toml`,
/// `docker/units/etcd-tls.service`) and the contents, sorted by path.
pub const FILES: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/builtin_files.rs"));

/// The first 12 hex digits of a SHA-256 of every embedded path and its contents: the tree's name.
static DIGEST: LazyLock<String> = LazyLock::new(|| {
    let parts: Vec<&[u8]> = FILES
        .iter()
        .flat_map(|(path, contents)| [path.as_bytes(), *contents])
        .collect();
    crate::image::hash12(&parts)
});

/// Errors laying out the built-in scenarios or finding a scenario.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// The cache directory is not usable.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// A file operation laying out the built-in scenarios failed.
    #[error("failed to {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The directory of the user's own scenarios is not there.
    #[error(
        "no scenarios directory {0} (--scenarios or ETCD_HARNESS_SCENARIOS): it does not exist or is not a directory"
    )]
    NoDirectory(PathBuf),
    /// A scenario argument that is a path names no file.
    #[error("no scenario file `{0}`: it does not exist or is not a file")]
    NoFile(String),
    /// A scenario name that is in neither directory.
    #[error("no scenario `{name}`: not a file, and not {looked_in} (known: {})", known.join(", "))]
    NoScenario {
        /// The name asked for.
        name: String,
        /// Where it was looked for, in words.
        looked_in: String,
        /// Every scenario name there is.
        known: Vec<String>,
    },
    /// A scenarios directory could not be listed.
    #[error(transparent)]
    Discover(#[from] ScenarioError),
}

/// The built-in `scenarios/` directory, laid out in the cache directory if it is not there yet.
pub fn scenarios_dir() -> Result<PathBuf, CatalogueError> {
    materialise(&cache::dir()?)
}

/// Lays the embedded files out under `cache/builtin-<hash>/` unless they are there already, and
/// returns its `scenarios/` directory. They are written into a temporary directory beside it and
/// renamed into place, so the tree is complete whenever it exists; if another process renamed its
/// own first, this one's is dropped and theirs (the same files) used.
pub fn materialise(cache: &Path) -> Result<PathBuf, CatalogueError> {
    let tree = cache.join(format!("builtin-{}", *DIGEST));
    if !tree.is_dir() {
        let io = |action, path: &Path| {
            let path = path.to_owned();
            move |source| CatalogueError::Io {
                action,
                path,
                source,
            }
        };
        let staging = tempfile::Builder::new()
            .prefix(".builtin-")
            .tempdir_in(cache)
            .map_err(io("create a temporary directory in", cache))?;
        for (relative, contents) in FILES {
            let file = staging.path().join(relative);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent).map_err(io("create", parent))?;
            }
            std::fs::write(&file, contents).map_err(io("write", &file))?;
        }
        match std::fs::rename(staging.path(), &tree) {
            Ok(()) => {
                // It is the tree now: not to be removed.
                let _ = staging.keep();
            }
            // Another process was first; dropping `staging` removes this one's copy.
            Err(_) if tree.is_dir() => {}
            Err(source) => {
                return Err(CatalogueError::Io {
                    action: "move the built-in scenarios into place at",
                    path: tree,
                    source,
                })
            }
        }
    }
    Ok(tree.join("scenarios"))
}

/// Where scenarios come from: the user's own directory (`--scenarios`), if any, looked at first,
/// then the built-in ones.
#[derive(Debug, Clone)]
pub struct Catalogue {
    extra: Option<PathBuf>,
    builtin: PathBuf,
}

impl Catalogue {
    /// The built-in scenarios (laid out in the cache directory if needed), with `extra` before
    /// them, which must be a directory.
    pub fn new(extra: Option<PathBuf>) -> Result<Self, CatalogueError> {
        Self::with_builtin(extra, scenarios_dir()?)
    }

    /// `extra` (which must be a directory) before the built-in scenarios laid out at `builtin`.
    pub fn with_builtin(extra: Option<PathBuf>, builtin: PathBuf) -> Result<Self, CatalogueError> {
        if let Some(dir) = &extra {
            if !dir.is_dir() {
                return Err(CatalogueError::NoDirectory(dir.clone()));
            }
        }
        Ok(Self { extra, builtin })
    }

    /// The user's own directory, if one was given.
    pub fn extra(&self) -> Option<&Path> {
        self.extra.as_deref()
    }

    /// The built-in `scenarios/` directory.
    pub fn builtin(&self) -> &Path {
        &self.builtin
    }

    /// A scenario argument: a file path (it has a `/` or ends in `.toml`), or a plain name of a file
    /// in the user's directory, else among the built-in ones — a name never leads out of them.
    pub fn resolve(&self, arg: &str) -> Result<PathBuf, CatalogueError> {
        if arg.contains('/') || arg.ends_with(".toml") {
            let path = Path::new(arg);
            if path.is_file() {
                return Ok(path.to_owned());
            }
            return Err(CatalogueError::NoFile(arg.to_owned()));
        }
        if !arg.starts_with('.') {
            let file = format!("{arg}.toml");
            if let Some(found) = self
                .dirs()
                .map(|dir| dir.join(&file))
                .find(|named| named.is_file())
            {
                return Ok(found);
            }
        }
        Err(CatalogueError::NoScenario {
            name: arg.to_owned(),
            looked_in: match &self.extra {
                Some(dir) => format!("in {} nor among the built-in ones", dir.display()),
                None => "among the built-in ones".to_owned(),
            },
            known: self.files()?.iter().map(|f| stem(f)).collect(),
        })
    }

    /// Every scenario file (`*.toml`, not descending): the built-in ones and the user's, one per
    /// name — the user's where both have it — sorted by name.
    pub fn files(&self) -> Result<Vec<PathBuf>, CatalogueError> {
        let mut by_name = BTreeMap::new();
        for file in scenario::discover(&self.builtin)? {
            by_name.insert(stem(&file), file);
        }
        if let Some(dir) = &self.extra {
            for file in scenario::discover(dir)? {
                by_name.insert(stem(&file), file);
            }
        }
        Ok(by_name.into_values().collect())
    }

    /// The steps file `steps/<name>` of the user's directory if it has one, else the built-in one.
    pub fn steps(&self, name: &str) -> PathBuf {
        let relative = Path::new("steps").join(name);
        self.dirs()
            .map(|dir| dir.join(&relative))
            .find(|file| file.is_file())
            .unwrap_or_else(|| self.builtin.join(relative))
    }

    /// The directories, in lookup order.
    fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.extra
            .as_deref()
            .into_iter()
            .chain([self.builtin.as_path()])
    }
}

fn stem(file: &Path) -> String {
    file.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source_tree() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    /// Every embedded file, as the source tree has it, and nothing else of the cache's.
    #[test]
    fn the_tree_holds_the_source_trees_scenarios_steps_and_units() {
        let cache = tempfile::tempdir().unwrap();
        let scenarios = materialise(cache.path()).unwrap();
        let tree = scenarios.parent().unwrap();
        for relative in [
            "scenarios/tutorial-tls.toml",
            "scenarios/steps/seed.toml",
            "docker/units/etcd-tls.service",
            "docker/units/etcd.service",
        ] {
            assert!(FILES.iter().any(|(p, _)| *p == relative), "{relative}");
        }
        for (relative, contents) in FILES {
            assert_eq!(
                std::fs::read(tree.join(relative)).unwrap(),
                std::fs::read(source_tree().join(relative)).unwrap(),
                "{relative}"
            );
            assert_eq!(*contents, std::fs::read(tree.join(relative)).unwrap());
        }
        assert!(FILES.windows(2).all(|w| w[0].0 < w[1].0), "sorted");
        // Catalogue scenarios load from there, their units and steps found beside them.
        let tls = scenario::Scenario::load(&scenarios.join("tutorial-tls.toml")).unwrap();
        assert_eq!(
            tls.unit_file,
            Some(scenarios.join("../docker/units/etcd-tls.service"))
        );
        let cluster = scenario::Scenario::load(&scenarios.join("cluster-3-tls.toml")).unwrap();
        assert_eq!(
            cluster.bootstrap.file,
            scenarios.join("steps/cluster-2021.toml")
        );
    }

    #[test]
    fn materialising_twice_gives_the_same_directory_and_leaves_no_temporary_one() {
        let cache = tempfile::tempdir().unwrap();
        let first = materialise(cache.path()).unwrap();
        let second = materialise(cache.path()).unwrap();
        assert_eq!(first, second);
        assert_eq!(
            first
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy(),
            format!("builtin-{}", *DIGEST)
        );
        let entries: Vec<_> = std::fs::read_dir(cache.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries.len(), 1, "{entries:?}");
    }

    #[test]
    fn processes_materialising_at_once_share_one_tree() {
        let cache = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| s.spawn(|| materialise(cache.path()).unwrap()))
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        assert!(dirs.iter().all(|d| *d == dirs[0]), "{dirs:?}");
        let entries: Vec<_> = std::fs::read_dir(cache.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            entries.len(),
            1,
            "the losers' copies are removed: {entries:?}"
        );
        assert!(dirs[0].join("tutorial-tls.toml").is_file());
    }

    #[test]
    fn a_scenario_of_the_users_directory_overrides_the_builtin_one_of_the_same_name() {
        let cache = tempfile::tempdir().unwrap();
        let builtin = materialise(cache.path()).unwrap();
        let mine = tempfile::tempdir().unwrap();
        std::fs::write(
            mine.path().join("tutorial-tls.toml"),
            "description = \"mine\"\n",
        )
        .unwrap();
        std::fs::write(mine.path().join("my-own.toml"), "description = \"new\"\n").unwrap();
        let catalogue =
            Catalogue::with_builtin(Some(mine.path().to_owned()), builtin.clone()).unwrap();

        assert_eq!(
            catalogue.resolve("tutorial-tls").unwrap(),
            mine.path().join("tutorial-tls.toml")
        );
        assert_eq!(
            catalogue.resolve("my-own").unwrap(),
            mine.path().join("my-own.toml")
        );
        assert_eq!(
            catalogue.resolve("cluster-3-tls").unwrap(),
            builtin.join("cluster-3-tls.toml")
        );

        let files = catalogue.files().unwrap();
        let builtin_files = scenario::discover(&builtin).unwrap();
        assert_eq!(files.len(), builtin_files.len() + 1, "{files:?}");
        let named =
            |name: &str| -> Vec<&PathBuf> { files.iter().filter(|f| stem(f) == name).collect() };
        assert_eq!(
            named("tutorial-tls"),
            [&mine.path().join("tutorial-tls.toml")]
        );
        assert_eq!(named("my-own"), [&mine.path().join("my-own.toml")]);
        assert_eq!(
            named("cluster-3-tls"),
            [&builtin.join("cluster-3-tls.toml")]
        );
        let stems: Vec<String> = files.iter().map(|f| stem(f)).collect();
        assert!(stems.windows(2).all(|w| w[0] < w[1]), "sorted: {stems:?}");

        // A steps file of the user's directory wins too; else the built-in one is used.
        assert_eq!(
            catalogue.steps("seed.toml"),
            builtin.join("steps/seed.toml")
        );
        std::fs::create_dir(mine.path().join("steps")).unwrap();
        std::fs::write(mine.path().join("steps/seed.toml"), "").unwrap();
        assert_eq!(
            catalogue.steps("seed.toml"),
            mine.path().join("steps/seed.toml")
        );
    }

    #[test]
    fn an_unknown_name_is_refused_listing_the_known_ones() {
        let cache = tempfile::tempdir().unwrap();
        let builtin = materialise(cache.path()).unwrap();
        let mine = tempfile::tempdir().unwrap();
        std::fs::write(mine.path().join("my-own.toml"), "description = \"new\"\n").unwrap();

        let only_builtin = Catalogue::with_builtin(None, builtin.clone()).unwrap();
        let err = only_builtin.resolve("no-such-scenario").unwrap_err();
        assert!(matches!(err, CatalogueError::NoScenario { .. }), "{err:?}");
        let said = err.to_string();
        assert!(
            said.starts_with("no scenario `no-such-scenario`: not a file, and not among the built-in ones (known: "),
            "{said}"
        );
        assert!(said.contains("tutorial-tls, "), "{said}");
        assert!(!said.contains("my-own"), "{said}");

        let both = Catalogue::with_builtin(Some(mine.path().to_owned()), builtin).unwrap();
        let said = both.resolve("no-such-scenario").unwrap_err().to_string();
        assert!(
            said.contains(&format!("in {} nor among", mine.path().display())),
            "{said}"
        );
        assert!(said.contains("my-own"), "{said}");
        assert!(said.contains("tutorial-tls"), "{said}");
    }

    #[test]
    fn a_name_never_leads_out_of_the_directories_and_a_path_must_be_a_file() {
        let cache = tempfile::tempdir().unwrap();
        let builtin = materialise(cache.path()).unwrap();
        // From steps/, `..` or `../tutorial-tls` must not reach scenarios/tutorial-tls.toml.
        let catalogue =
            Catalogue::with_builtin(Some(builtin.join("steps")), builtin.join("steps")).unwrap();
        for arg in ["..", ".hidden"] {
            let err = catalogue.resolve(arg).unwrap_err();
            assert!(
                matches!(err, CatalogueError::NoScenario { .. }),
                "{arg}: {err:?}"
            );
        }
        let err = catalogue.resolve("../tutorial-tls").unwrap_err();
        assert_eq!(
            err.to_string(),
            "no scenario file `../tutorial-tls`: it does not exist or is not a file"
        );
        let file = builtin.join("tutorial-tls.toml");
        assert_eq!(catalogue.resolve(file.to_str().unwrap()).unwrap(), file);
    }

    #[test]
    fn a_users_directory_that_is_not_there_is_refused_naming_it() {
        let cache = tempfile::tempdir().unwrap();
        let builtin = materialise(cache.path()).unwrap();
        let missing = cache.path().join("no-such-dir");
        let err = Catalogue::with_builtin(Some(missing.clone()), builtin).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("no scenarios directory {}", missing.display())),
            "{err}"
        );
    }
}
