//! Nothing outlives its run: leftovers of a killed run (its process gone) are swept at the next start.

use std::process::Command;

use etcd_harness::engine::{Engine, LABEL, LABEL_PID};
use etcd_harness::image;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_of_a_killed_run_are_swept_and_kept_nodes_are_not() {
    let engine = Engine::connect().await.expect("a Docker engine");
    let image = image::ensure(&engine, &mut |_| {})
        .await
        .unwrap()
        .reference();
    // A pid that cannot be running: what a SIGKILLed run leaves behind.
    let dead_pid = u32::MAX.to_string();
    let create = |extra: &[&str]| {
        let mut args = vec![
            "create".to_owned(),
            "--label".to_owned(),
            format!("{LABEL}=true"),
            "--label".to_owned(),
            format!("{LABEL_PID}={dead_pid}"),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(image.clone());
        let out = Command::new("docker")
            .args(&args)
            .output()
            .expect("docker CLI");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let stale = create(&[]);
    let kept = create(&["--label", "etcd-harness.keep=true"]);

    let swept = engine.sweep_stale().await;

    let exists = |id: &str| {
        Command::new("docker")
            .args(["inspect", id])
            .output()
            .map(|o| o.status.success())
            .unwrap()
    };
    let (stale_exists, kept_exists) = (exists(&stale), exists(&kept));
    let _ = Command::new("docker").args(["rm", "-f", &kept]).output();
    swept.expect("the sweep runs");
    assert!(!stale_exists, "the stale container {stale} was not swept");
    assert!(
        kept_exists,
        "a node kept with --keep must survive the sweep"
    );
}
