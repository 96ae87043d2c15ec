//! The built-in scenarios travel inside the binary: every file under `scenarios/` (its steps files
//! too) and `docker/units/` is written into `$OUT_DIR/builtin_files.rs` as
//! `("scenarios/tutorial-tls.toml", include_bytes!("/abs/…/scenarios/tutorial-tls.toml"))`, sorted by
//! path, for `harness/src/builtin.rs` to lay out again (files whose name starts with `.` — an
//! editor's swap files — are left out).
//!
//! The same directories are also why the integration tests rebuild: they generate one test per
//! scenario file with rstest's `#[files]`, whose glob is expanded at compile time. So rebuild when
//! a scenario, a steps file or a unit is added, removed or changed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The directories embedded, relative to the package root.
const ROOTS: [&str; 2] = ["scenarios", "docker/units"];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let manifest =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for root in ROOTS {
        println!("cargo:rerun-if-changed={root}");
        walk(&manifest, Path::new(root), &mut files);
    }
    files.sort();
    let mut out = String::from("&[\n");
    for relative in &files {
        let absolute = manifest.join(relative);
        let absolute = absolute
            .to_str()
            .unwrap_or_else(|| panic!("{} is not UTF-8", absolute.display()));
        writeln!(out, "    ({relative:?}, include_bytes!({absolute:?})),").unwrap();
    }
    out.push_str("]\n");
    let target =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("builtin_files.rs");
    std::fs::write(&target, out)
        .unwrap_or_else(|e| panic!("failed to write {}: {e}", target.display()));
}

/// Appends every file under `manifest/dir` to `files`, as a `/`-separated path relative to
/// `manifest`.
fn walk(manifest: &Path, dir: &Path, files: &mut Vec<String>) {
    let full = manifest.join(dir);
    let entries = std::fs::read_dir(&full)
        .unwrap_or_else(|e| panic!("failed to read directory {}: {e}", full.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("failed to read {}: {e}", full.display()));
        let name = entry.file_name();
        let name = name
            .to_str()
            .unwrap_or_else(|| panic!("{} holds a name that is not UTF-8", full.display()));
        if name.starts_with('.') {
            continue;
        }
        let relative = dir.join(name);
        // Followed through symlinks, as `include_bytes!` follows them.
        if entry.path().is_dir() {
            walk(manifest, &relative, files);
        } else {
            let relative = relative.to_str().expect("UTF-8 by construction");
            files.push(relative.replace('\\', "/"));
        }
    }
}
