//! The run's nodes as one value: its private network and a node per member, booted side by side.
//! The tutorial's single node is a cluster of one; there is no second code path.
//!
//! Dropping a [`Cluster`] removes its nodes, then its network's switch (also on panic, and when an
//! interrupted run is dropped). What runs on the nodes is not here.

use std::net::Ipv4Addr;
use std::sync::{Arc, OnceLock};

use futures_util::future::try_join_all;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::engine::{Engine, Labels};
use crate::image::NodeImage;
use crate::network::{Link, NetworkError, RunNetwork, Subnet};
use crate::node::{Node, NodeError, NodeHandle, NodeSpec};

/// Errors starting a cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The run's network could not be made or used.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// A node did not start or boot.
    #[error(transparent)]
    Node(#[from] NodeError),
}

/// A node to start: its host name and, when the scenario places it, its address.
#[derive(Debug, Clone)]
pub struct Member {
    /// The node's host name.
    pub host: String,
    /// Its address on the run's network.
    pub address: Option<Ipv4Addr>,
}

/// The run's network and nodes; dropping it removes them.
pub struct Cluster {
    // Declared first so they are dropped first: the nodes, then the switch they were linked to,
    // then their places in the budget.
    nodes: Vec<Node>,
    network: RunNetwork,
    _budget: OwnedSemaphorePermit,
}

/// inotify instances a node holds (systemd 2, dbus-daemon 1, and one to spare for what a step
/// starts; measured on the node image: systemd, dbus-daemon).
const INOTIFY_PER_NODE: usize = 4;

/// How many nodes this process keeps at once. Every systemd on the host takes inotify instances
/// from one per-user limit (`fs.inotify.max_user_instances`, 128 by default), and a node that finds
/// none left boots `degraded`; a quarter of the limit is left to the host and other work. A
/// cluster takes its places all at once, in turn (the semaphore is fair), so clusters waiting for
/// room never hold part of it each. Returns the budget and its size.
fn node_budget() -> &'static (Arc<Semaphore>, usize) {
    static BUDGET: OnceLock<(Arc<Semaphore>, usize)> = OnceLock::new();
    BUDGET.get_or_init(|| {
        let nodes = nodes_at_once(inotify_limit());
        (Arc::new(Semaphore::new(nodes)), nodes)
    })
}

/// The host's `fs.inotify.max_user_instances` (128, Linux's default, where it cannot be read).
pub fn inotify_limit() -> usize {
    std::fs::read_to_string("/proc/sys/fs/inotify/max_user_instances")
        .ok()
        .and_then(|l| l.trim().parse::<usize>().ok())
        .unwrap_or(128)
}

/// How many nodes a process keeps at once under an inotify limit of `limit` (five at least: a
/// five-member cluster must fit).
pub fn nodes_at_once(limit: usize) -> usize {
    (limit * 3 / 4 / INOTIFY_PER_NODE).max(5)
}

impl Cluster {
    /// Creates the run's network (with `subnet`, or the tutorial's) and boots a node per member
    /// on it, all at once.
    pub async fn start(
        engine: &Engine,
        labels: &Labels,
        image: &NodeImage,
        members: &[Member],
        subnet: Option<Subnet>,
        keep: bool,
    ) -> Result<Self, ClusterError> {
        let (budget, size) = node_budget();
        // A cluster larger than the whole budget takes all of it.
        let wanted = u32::try_from(members.len().clamp(1, *size)).unwrap_or(u32::MAX);
        let places = budget
            .clone()
            .acquire_many_owned(wanted)
            .await
            .expect("the node budget is never closed");
        let network = RunNetwork::create(engine, labels, image, subnet, keep).await?;
        let placed: Vec<_> = members
            .iter()
            .map(|m| (m.host.clone(), m.address))
            .collect();
        let links = network.links(&placed)?;
        let nodes = try_join_all(members.iter().zip(links).map(|(member, link)| {
            let spec = NodeSpec {
                image: image.clone(),
                keep,
                hostname: member.host.clone(),
                link: Some(link),
            };
            async move { Node::start(engine, labels, &spec).await }
        }))
        .await?;
        Ok(Self {
            nodes,
            network,
            _budget: places,
        })
    }

    /// The first member's node: the tutorial's single node.
    pub fn first(&self) -> &NodeHandle {
        &self.nodes[0]
    }

    /// Every node, in the members' order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeHandle> {
        self.nodes.iter().map(|n| &**n)
    }

    /// The node whose host name is `host`.
    pub fn node(&self, host: &str) -> Option<&NodeHandle> {
        self.nodes().find(|n| n.host() == host)
    }

    /// Cuts node `host` off the run's network: the other members cannot reach it, nor it them.
    /// Its port on the switch is deleted rather than a firewall set up in the node: that needs no
    /// capability in the node (nftables would need NET_ADMIN), and it partitions every protocol.
    pub async fn isolate(&self, host: &str) -> Result<(), NetworkError> {
        let (_, link) = self.linked(host)?;
        self.network.unlink(link).await
    }

    /// Puts node `host` back on the run's network at its address, under its host name.
    pub async fn heal(&self, host: &str) -> Result<(), NetworkError> {
        let (node, link) = self.linked(host)?;
        self.network.relink(node.id(), link).await
    }

    fn linked(&self, host: &str) -> Result<(&Node, &Link), NetworkError> {
        self.nodes
            .iter()
            .find(|n| n.host() == host)
            .and_then(|n| Some((n, n.link()?)))
            .ok_or_else(|| NetworkError::NoSuchHost(host.to_owned()))
    }

    /// Leaves the nodes and the network's switch running after this value is gone; returns the
    /// nodes' container ids and the switch's.
    pub fn keep(self) -> (Vec<String>, String) {
        let ids = self.nodes.into_iter().map(Node::keep).collect();
        let switch = self.network.id().to_owned();
        self.network.keep();
        (ids, switch)
    }

    /// Removes the nodes now (rather than on drop), reporting a failure to do so; the switch goes
    /// with this value.
    pub async fn remove(self) -> Result<(), NodeError> {
        for node in self.nodes {
            node.remove().await?;
        }
        Ok(())
    }
}
