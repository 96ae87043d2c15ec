//! A run's private network on a real engine: internal (no route out), labelled as the run's, with
//! the scenario's subnet; nodes at their members' addresses, found by host name; a second run
//! wanting the same subnet waits for it; dropping the network removes it.

use std::process::Command;

use etcd_harness::engine::{Engine, Labels, LABEL_OWNER};
use etcd_harness::network::{RunNetwork, Subnet};

use crate::support::docker;

/// A container made by hand on a network; removed when dropped, also if the test panics.
struct Attached(String);

impl Attached {
    fn create(image: &str, network: &str, host: &str) -> Self {
        Self(docker(&[
            "create",
            "--network",
            network,
            "--hostname",
            host,
            image,
            "sleep",
            "300",
        ]))
    }

    fn start(&self) {
        docker(&["start", &self.0]);
    }

    fn exec(&self, script: &str) -> String {
        let out = Command::new("docker")
            .args(["exec", &self.0, "bash", "-c", script])
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

fn inspect(id: &str, format: &str) -> String {
    let out = Command::new("docker")
        .args(["network", "inspect", "--format", format, id])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_sit_at_their_addresses_on_an_internal_labelled_network_removed_with_the_run() {
    let (engine, image) = crate::support::engine_with_image().await;
    let labels = Labels::for_this_process();
    // A subnet of this test's own: the tutorial's may be in use by the scenarios running beside it.
    let subnet = Subnet::parse("10.241.7.0/24").unwrap();
    let network = RunNetwork::create(&engine, &labels, Some(subnet))
        .await
        .unwrap();
    let id = network.id().to_owned();
    assert_eq!(inspect(&id, "{{.Internal}}"), "true");
    assert_eq!(
        inspect(&id, "{{range .IPAM.Config}}{{.Subnet}}{{end}}"),
        "10.241.7.0/24"
    );
    assert!(inspect(&id, "{{json .Labels}}").contains(LABEL_OWNER));

    let one = Attached::create(&image, &id, "controller-0");
    let two = Attached::create(&image, &id, "controller-1");
    network
        .place(&one.0, "10.241.7.10".parse().unwrap(), "controller-0")
        .await
        .unwrap();
    network
        .place(&two.0, "10.241.7.11".parse().unwrap(), "controller-1")
        .await
        .unwrap();
    one.start();
    two.start();
    let seen = two.exec("getent hosts controller-0; ip -4 -o addr show scope global");
    assert!(
        seen.contains("10.241.7.10") && seen.contains("controller-0"),
        "{seen}"
    );
    assert!(seen.contains("inet 10.241.7.11/24"), "{seen}");
    let refused = network
        .place(&one.0, "10.241.7.200".parse().unwrap(), "x")
        .await;
    assert!(refused.unwrap_err().to_string().contains("lower half"));

    drop((one, two));
    drop(network);
    assert_eq!(
        inspect(&id, "{{.Id}}"),
        "",
        "the network outlived its owner"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_subnet_is_taken_waits_for_it() {
    let engine = Engine::connect().await.expect("a Docker engine");
    let subnet = Subnet::parse("10.241.8.0/24").unwrap();
    let first = RunNetwork::create(&engine, &Labels::for_this_process(), Some(subnet))
        .await
        .unwrap();
    let waiting = {
        let engine = engine.clone();
        tokio::spawn(async move {
            RunNetwork::create(&engine, &Labels::for_this_process(), Some(subnet)).await
        })
    };
    // While the first holds the subnet the engine refuses the second, which keeps asking.
    let first_id = first.id().to_owned();
    assert_eq!(inspect(&first_id, "{{.Id}}"), first_id);
    assert!(!waiting.is_finished());
    drop(first);
    let second = waiting
        .await
        .unwrap()
        .expect("the subnet, once the first run let it go");
    assert_ne!(second.id(), first_id);
}
