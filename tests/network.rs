//! A run's private network on a real engine: the same subnet in two runs at once, each run's nodes
//! at their members' addresses and found by host name, reaching each other and nothing else (not
//! the other run's node at the same address); a partition cuts a node off and healing links it in
//! again; the run's switch goes with the run, and no engine network is made at all.

use std::time::Duration;

use etcd_harness::cluster::{Cluster, Member};
use etcd_harness::engine::{Engine, Labels, LABEL_RUN};
use etcd_harness::image;
use etcd_harness::network::Subnet;
use etcd_harness::node::NodeHandle;

use crate::support::docker;

fn members() -> Vec<Member> {
    ["10.240.0.10", "10.240.0.11"]
        .iter()
        .enumerate()
        .map(|(i, address)| Member {
            host: format!("controller-{i}"),
            address: Some(address.parse().unwrap()),
        })
        .collect()
}

async fn sh(node: &NodeHandle, script: &str) -> String {
    let out = node.shell(script, Duration::from_secs(30)).await.unwrap();
    format!("{}{}", out.stdout, out.stderr)
}

/// Whether `node` gets an answer from `address` on `port` (a TCP connect through bash's
/// /dev/tcp, given two seconds).
async fn reaches(node: &NodeHandle, address: &str, port: u16) -> bool {
    let script =
        format!("timeout 2 bash -c 'echo > /dev/tcp/{address}/{port}' 2>/dev/null && echo open");
    sh(node, &script).await.trim() == "open"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_hold_the_same_subnet_at_once_each_reaching_only_its_own_nodes() {
    let engine = Engine::connect().await.expect("a Docker engine");
    let image = image::ensure(&engine, &mut |_| {}).await.unwrap();
    let subnet = Subnet::parse("10.240.0.0/24").unwrap();
    let (one_labels, two_labels) = (Labels::for_this_process(), Labels::for_this_process());
    let members = members();
    let (one, two) = tokio::join!(
        Cluster::start(&engine, &one_labels, &image, &members, Some(subnet), false),
        Cluster::start(&engine, &two_labels, &image, &members, Some(subnet), false),
    );
    let (one, two) = (one.unwrap(), two.unwrap());

    for cluster in [&one, &two] {
        let second = cluster.node("controller-1").unwrap();
        let seen = sh(
            second,
            "getent hosts controller-0; ip -4 -o addr show scope global; ip route",
        )
        .await;
        assert!(
            seen.contains("10.240.0.10") && seen.contains("controller-0"),
            "{seen}"
        );
        assert!(seen.contains("inet 10.240.0.11/24"), "{seen}");
        // One link, to the run's switch, and no route beyond the subnet.
        assert!(!seen.contains("default"), "{seen}");
    }
    // Each run's controller-0 listens on a port of its own; each controller-1 reaches its own
    // run's only, at the very same address.
    let listen = |node: &NodeHandle, port: u16| {
        let node = node.clone();
        async move {
            let script = format!("nohup perl -MIO::Socket::INET -e 'my $s = IO::Socket::INET->new(LocalAddr => \"10.240.0.10:{port}\", Listen => 5, ReuseAddr => 1) or die; sleep 60' >/dev/null 2>&1 & sleep 0.5; ss -tln");
            sh(&node, &script).await
        }
    };
    let shown = listen(one.node("controller-0").unwrap(), 7001).await;
    assert!(shown.contains("10.240.0.10:7001"), "{shown}");
    let shown = listen(two.node("controller-0").unwrap(), 7002).await;
    assert!(shown.contains("10.240.0.10:7002"), "{shown}");
    let (one_1, two_1) = (
        one.node("controller-1").unwrap(),
        two.node("controller-1").unwrap(),
    );
    assert!(reaches(one_1, "10.240.0.10", 7001).await);
    assert!(!reaches(one_1, "10.240.0.10", 7002).await);
    assert!(reaches(two_1, "10.240.0.10", 7002).await);
    assert!(!reaches(two_1, "10.240.0.10", 7001).await);

    // A partition leaves the node its loopback only; healing gives it back its address.
    one.isolate("controller-0").await.unwrap();
    let cut = sh(one.node("controller-0").unwrap(), "ip -4 -o addr show").await;
    assert!(!cut.contains("10.240.0.10"), "{cut}");
    assert!(!reaches(one_1, "10.240.0.10", 7001).await);
    one.heal("controller-0").await.unwrap();
    let healed = sh(one.node("controller-0").unwrap(), "ip -4 -o addr show").await;
    assert!(healed.contains("inet 10.240.0.10/24"), "{healed}");

    // The runs made containers only: their nodes and each its switch, all gone with the run.
    for labels in [&one_labels, &two_labels] {
        let filter = format!("label={LABEL_RUN}={}", labels.run_id());
        assert_eq!(
            docker(&["ps", "-q", "--filter", &filter]).lines().count(),
            3
        );
        assert_eq!(docker(&["network", "ls", "-q", "--filter", &filter]), "");
    }
    drop((one, two));
    for labels in [&one_labels, &two_labels] {
        let filter = format!("label={LABEL_RUN}={}", labels.run_id());
        assert_eq!(
            docker(&["ps", "-aq", "--filter", &filter]),
            "",
            "the run's nodes or switch outlived it"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_outside_the_lower_half_is_refused_naming_the_address_and_subnet() {
    let engine = Engine::connect().await.expect("a Docker engine");
    let image = image::ensure(&engine, &mut |_| {}).await.unwrap();
    let subnet = Subnet::parse("10.241.7.0/24").unwrap();
    let members = [Member {
        host: "controller-0".into(),
        address: Some("10.241.7.200".parse().unwrap()),
    }];
    let labels = Labels::for_this_process();
    let refused = Cluster::start(&engine, &labels, &image, &members, Some(subnet), false).await;
    let Err(err) = refused else {
        panic!("a member at 10.241.7.200 was placed");
    };
    assert!(
        err.to_string().contains("10.241.7.200") && err.to_string().contains("lower half"),
        "{err}"
    );
    let filter = format!("label={LABEL_RUN}={}", labels.run_id());
    assert_eq!(docker(&["ps", "-aq", "--filter", &filter]), "");
}
