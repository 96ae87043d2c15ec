//! The run's nodes as one value: its private network and a node per member, booted side by side.
//! The tutorial's single node is a cluster of one; there is no second code path.
//!
//! Dropping a [`Cluster`] removes its nodes, then its network (also on panic, and when an
//! interrupted run is dropped). What runs on the nodes is not here.

use std::net::Ipv4Addr;

use futures_util::future::try_join_all;

use crate::engine::{Engine, Labels};
use crate::image::NodeImage;
use crate::network::{NetworkError, RunNetwork, Subnet};
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
    // Declared first so they are dropped first: a network with nodes attached cannot be removed.
    nodes: Vec<Node>,
    network: RunNetwork,
    members: Vec<Member>,
}

impl Cluster {
    /// Creates the run's network (with `subnet`, or one the engine picks) and boots a node per
    /// member on it, all at once.
    pub async fn start(
        engine: &Engine,
        labels: &Labels,
        image: &NodeImage,
        members: &[Member],
        subnet: Option<Subnet>,
        keep: bool,
    ) -> Result<Self, ClusterError> {
        let network = RunNetwork::create(engine, labels, subnet).await?;
        let nodes = try_join_all(members.iter().map(|member| {
            let network = &network;
            async move {
                let spec = NodeSpec {
                    image: image.clone(),
                    keep,
                    hostname: member.host.clone(),
                    network: Some(network.name().to_owned()),
                };
                let node = Node::start(engine, labels, &spec).await?;
                if let Some(address) = member.address {
                    network.place(node.id(), address, &member.host).await?;
                }
                Ok::<_, ClusterError>(node)
            }
        }))
        .await?;
        Ok(Self {
            nodes,
            network,
            members: members.to_vec(),
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
    /// A Docker network disconnect rather than a firewall in the node: it needs no capability in
    /// the node (nftables would need NET_ADMIN), and it partitions every protocol at once.
    pub async fn isolate(&self, host: &str) -> Result<(), NetworkError> {
        let node = self
            .node(host)
            .ok_or_else(|| NetworkError::NoSuchHost(host.to_owned()))?;
        self.network.disconnect(node.id()).await
    }

    /// Puts node `host` back on the run's network at its address, under its host name.
    pub async fn heal(&self, host: &str) -> Result<(), NetworkError> {
        let node = self
            .node(host)
            .ok_or_else(|| NetworkError::NoSuchHost(host.to_owned()))?;
        let address = self
            .members
            .iter()
            .find(|m| m.host == host)
            .and_then(|m| m.address);
        self.network.connect(node.id(), address, host).await
    }

    /// Leaves the nodes and the network running after this value is gone; returns the nodes'
    /// container ids and the network's name.
    pub fn keep(self) -> (Vec<String>, String) {
        let ids = self.nodes.into_iter().map(Node::keep).collect();
        let network = self.network.name().to_owned();
        self.network.keep();
        (ids, network)
    }

    /// Removes the nodes now (rather than on drop), reporting a failure to do so; the network
    /// goes with this value.
    pub async fn remove(self) -> Result<(), NodeError> {
        for node in self.nodes {
            node.remove().await?;
        }
        Ok(())
    }
}
