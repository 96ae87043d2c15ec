//! Nothing outlives its run: not on panic, not on SIGTERM, and leftovers of a killed run (its
//! process gone) are swept at the next start.

use std::process::Command;
use std::time::Duration;

use etcd_harness::engine::{Engine, LABEL, LABEL_PID};
use etcd_harness::image;
use etcd_harness::node::{Node, NodeSpec};
use etcd_harness::runner::Harness;
use etcd_harness::wait::{poll_until, Probe};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_is_removed_when_its_owner_panics() {
    let harness = Harness::prepare(&mut |_| {})
        .await
        .expect("a Docker engine");
    let owner = harness.clone();
    let joined = tokio::spawn(async move {
        let spec = NodeSpec {
            image: owner.image.clone(),
            keep: false,
        };
        let _node = Node::start(&owner.engine, &owner.labels, &spec)
            .await
            .unwrap();
        panic!("a test failing while it owns a node");
    })
    .await;
    assert!(joined.unwrap_err().is_panic());
    let left = harness.engine.containers_of(&harness.labels).await.unwrap();
    assert!(left.is_empty(), "the node outlived the panic: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_interrupted_by_sigterm_leaves_no_container() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_etcd-harness"))
        .args(["run", "tutorial-tls"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the etcd-harness binary runs");
    let pid = child.id().expect("a running child").to_string();
    let of_child = || {
        let out = Command::new("docker")
            .args(["ps", "-aq", "--filter", &format!("label={LABEL_PID}={pid}")])
            .output()
            .expect("docker CLI");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let node = poll_until(
        "the run's node to exist",
        Duration::from_secs(120),
        Duration::from_millis(100),
        || async {
            Ok::<_, std::convert::Infallible>(match of_child() {
                id if id.is_empty() => Probe::Pending("none yet".into()),
                id => Probe::Ready(id),
            })
        },
    )
    .await
    .unwrap();
    let node = node.expect("the run started a node");
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the run ends after SIGTERM")
        .unwrap();
    assert!(
        !status.success(),
        "an interrupted run must not report success"
    );
    assert_eq!(of_child(), "", "node {node} outlived the interrupted run");
}
