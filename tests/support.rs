//! What the integration tests share: an engine with the node image on it.

use etcd_harness::engine::Engine;
use etcd_harness::image;

/// A connected engine and the node image's reference (built on first use, a cache hit after).
pub async fn engine_with_image() -> (Engine, String) {
    let engine = Engine::connect().await.expect("a Docker engine");
    let image = image::ensure(&engine, &mut |_| {})
        .await
        .expect("the node image (see README: what it needs)")
        .reference();
    (engine, image)
}

/// The node image's reference, for tests that make containers with the docker CLI.
pub async fn node_image() -> String {
    engine_with_image().await.1
}

/// Runs the docker CLI with `args`, which must succeed, and returns what it printed, trimmed.
pub fn docker<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI");
    assert!(
        out.status.success(),
        "docker {:?}: {}",
        args.iter()
            .map(|a| a.as_ref().to_string_lossy())
            .collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
