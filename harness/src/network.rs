//! A run's private network: a switch the run makes for itself, so the same subnet (by default the
//! tutorial's `10.240.0.0/24`) exists in many runs at once and no run waits for another's.
//!
//! The switch is a container of the node image that only sleeps, with no network of the engine's
//! (`--network none`) and no capability: its network namespace holds a Linux bridge and nothing
//! else, so nothing on it has a route anywhere. Each node is created with `--network none` too,
//! with every member's host name in its `/etc/hosts`; the node's one-shot setup container (which
//! already enters the node for its cgroups, see `node.rs`) runs in the switch's network namespace
//! with CAP_NET_ADMIN and links the node in: a veth pair, one end `eth0` in the node at its address,
//! the other a port of the bridge. The harness reaches nodes only through execs, as before.
//!
//! A partition deletes a node's port (its `eth0` goes with it: the node keeps only its loopback);
//! healing links it in again. Labelled like the run's nodes, the switch is removed with them — when
//! the [`RunNetwork`] is dropped, by the reaper, or by the sweep.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use bollard::models::HostConfig;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use crate::engine::{create_detached, short, Engine, EngineError, Labels, LABEL_KEEP};
use crate::image::NodeImage;

/// The tutorial's network.
pub const TUTORIAL_SUBNET: &str = "10.240.0.0/24";

/// Errors making or using the run's network.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The subnet is not an IPv4 `a.b.c.d/n` with room for nodes.
    #[error("failed to use subnet `{subnet}`: expected an IPv4 network such as 10.240.0.0/24 (a /29 or larger)")]
    BadSubnet {
        /// What was given.
        subnet: String,
    },
    /// An address is not in the subnet's lower half, where members live.
    #[error(
        "failed to place a node at {address}: members' addresses are in the lower half of {subnet}"
    )]
    BadAddress {
        /// The address.
        address: Ipv4Addr,
        /// The subnet.
        subnet: String,
    },
    /// More members without an address than the subnet's upper half holds.
    #[error("failed to give {members} members addresses in {subnet}: its upper half, for members the scenario places nowhere, holds {room}\n  remedy: name a larger subnet, or give members addresses")]
    Full {
        /// Members without an address.
        members: usize,
        /// The subnet.
        subnet: String,
        /// How many fit.
        room: u32,
    },
    /// The switch container did not start.
    #[error("failed to start the run's network switch from {image}: {source}")]
    Switch {
        /// The image reference.
        image: String,
        /// testcontainers' error.
        source: Box<testcontainers::TestcontainersError>,
    },
    /// Linking a node in or out failed.
    #[error("failed to {action}: exit {exit_code}: {output}")]
    Link {
        /// What was being done.
        action: String,
        /// The one-shot container's exit code.
        exit_code: i64,
        /// What it printed.
        output: String,
    },
    /// No node of the run has this host name.
    #[error("no node of this run is called `{0}`")]
    NoSuchHost(String),
    /// An engine call failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// An IPv4 subnet: its network address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    network: Ipv4Addr,
    prefix: u8,
}

impl Subnet {
    /// Reads `a.b.c.d/n` (n from 8 to 29), normalised to its network address.
    pub fn parse(text: &str) -> Result<Self, NetworkError> {
        let bad = || NetworkError::BadSubnet {
            subnet: text.to_owned(),
        };
        let (address, prefix) = text.split_once('/').ok_or_else(bad)?;
        let address: Ipv4Addr = address.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if !(8..=29).contains(&prefix) {
            return Err(bad());
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Self {
            network: Ipv4Addr::from(u32::from(address) & mask),
            prefix,
        })
    }

    fn size(self) -> u32 {
        1 << (32 - self.prefix)
    }

    /// The `n`th address of the upper half, where members the scenario places nowhere go.
    fn unplaced(self, n: usize) -> Option<Ipv4Addr> {
        let half = self.size() / 2;
        let n = u32::try_from(n).ok().filter(|n| *n < half - 1)?;
        Some(Ipv4Addr::from(u32::from(self.network) + half + n))
    }

    /// True when `address` is a usable member address: in the lower half, not the network address
    /// nor the first host address (a gateway's, by custom; the tutorial's members start at .10).
    pub fn holds_member(self, address: Ipv4Addr) -> bool {
        let offset = u32::from(address).wrapping_sub(u32::from(self.network));
        (2..self.size() / 2).contains(&offset)
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Where a node is linked in: the switch, its address and port, and every member's name.
#[derive(Debug, Clone)]
pub struct Link {
    /// The switch container's id.
    pub switch: String,
    /// The node's address.
    pub address: Ipv4Addr,
    /// The subnet's prefix length.
    pub prefix: u8,
    /// The bridge port's name in the switch (`m0`, `m1`, … by member).
    pub port: String,
    /// Every member's host name and address, for the node's `/etc/hosts`.
    pub hosts: Vec<(String, Ipv4Addr)>,
}

/// Run in the switch's network namespace, sharing the node's pid namespace (PID 1 is the node's),
/// with CAP_NET_ADMIN (and CAP_SYS_ADMIN, for `nsenter` into the node's network namespace): links the node in at `$ADDRESS/$PREFIX`
/// through port `$PORT`. A port left by the node's previous life (a reboot; the kernel removes it
/// with the old namespace, but not always at once) is replaced. The first node makes the bridge.
const LINK: &str = r#"ip link add br0 type bridge 2>/dev/null || true
ip link set br0 up
ip link del "$PORT" 2>/dev/null || true
ip link add "$PORT" type veth peer name eth0 netns 1
ip link set "$PORT" master br0 up
nsenter -t 1 -n sh -c "ip addr add $ADDRESS/$PREFIX dev eth0 && ip link set eth0 up"
"#;

impl Link {
    /// The shell that links the node in, for its setup container: [`LINK`] with its values.
    pub fn script(&self) -> String {
        format!(
            "PORT={} ADDRESS={} PREFIX={}\n{LINK}",
            self.port, self.address, self.prefix
        )
    }

    /// The setup container's network (the switch's namespace) and the capability linking needs.
    pub fn host_config(&self, host: &mut HostConfig) {
        host.network_mode = Some(format!("container:{}", self.switch));
        host.cap_add
            .get_or_insert_with(Vec::new)
            .push("NET_ADMIN".into());
    }
}

/// The run's network: its switch container; dropping it removes the switch.
pub struct RunNetwork {
    engine: Engine,
    switch: ContainerAsync<GenericImage>,
    image: String,
    /// The run's labels, for the one-shot containers that unlink and relink nodes.
    labels: HashMap<String, String>,
    subnet: Subnet,
}

impl RunNetwork {
    /// Starts the run's switch for `subnet` (the tutorial's when `None`), labelled with `labels`.
    pub async fn create(
        engine: &Engine,
        labels: &Labels,
        image: &NodeImage,
        subnet: Option<Subnet>,
        keep: bool,
    ) -> Result<Self, NetworkError> {
        let subnet = match subnet {
            Some(subnet) => subnet,
            None => Subnet::parse(TUTORIAL_SUBNET)?,
        };
        let mut request = GenericImage::new(image.repo.clone(), image.tag.clone())
            .with_cmd(["sleep", "infinity"])
            // The engine's "none" mode, set on the host config: testcontainers' `with_network`
            // would look for a network called `none`, which Podman does not list, and create one.
            .with_host_config_modifier(|host| host.network_mode = Some("none".into()))
            .with_cap_drop("ALL")
            .with_security_opt("no-new-privileges")
            .with_startup_timeout(Duration::from_secs(60));
        for (key, value) in labels.pairs() {
            request = request.with_label(key, value);
        }
        if keep {
            request = request.with_label(LABEL_KEEP, "true");
        }
        // In a task of its own, as nodes are: an interrupted run must not miss it.
        let switch =
            create_detached(request.start())
                .await
                .map_err(|source| NetworkError::Switch {
                    image: image.reference(),
                    source: Box::new(source),
                })?;
        Ok(Self {
            engine: engine.clone(),
            switch,
            image: image.reference(),
            labels: labels.pairs().into_iter().collect(),
            subnet,
        })
    }

    /// The switch container's id.
    pub fn id(&self) -> &str {
        self.switch.id()
    }

    /// The subnet.
    pub fn subnet(&self) -> Subnet {
        self.subnet
    }

    /// Leaves the switch running after this value is gone (its nodes were kept).
    pub fn keep(self) {
        std::mem::forget(self.switch);
    }

    /// Where each of `members` (host name, address if the scenario places it) is linked in, in
    /// their order: a placed member at its address, which must be in the subnet's lower half; the
    /// others in the upper half, in turn.
    pub fn links(&self, members: &[(String, Option<Ipv4Addr>)]) -> Result<Vec<Link>, NetworkError> {
        let mut unplaced = 0;
        let mut hosts = Vec::new();
        for (host, address) in members {
            let address = match address {
                Some(address) if self.subnet.holds_member(*address) => *address,
                Some(address) => {
                    return Err(NetworkError::BadAddress {
                        address: *address,
                        subnet: self.subnet.to_string(),
                    })
                }
                None => {
                    unplaced += 1;
                    self.subnet
                        .unplaced(unplaced - 1)
                        .ok_or_else(|| NetworkError::Full {
                            members: members.iter().filter(|(_, a)| a.is_none()).count(),
                            subnet: self.subnet.to_string(),
                            room: self.subnet.size() / 2 - 1,
                        })?
                }
            };
            hosts.push((host.clone(), address));
        }
        Ok(hosts
            .iter()
            .enumerate()
            .map(|(i, (_, address))| Link {
                switch: self.id().to_owned(),
                address: *address,
                prefix: self.subnet.prefix,
                port: format!("m{i}"),
                hosts: hosts.clone(),
            })
            .collect())
    }

    /// Unlinks the node at `link`: its port goes, and its `eth0` with it, so nothing of the
    /// network reaches it and it reaches nothing (a partition with no capability in the node).
    pub async fn unlink(&self, link: &Link) -> Result<(), NetworkError> {
        let mut host = HostConfig::default();
        link.host_config(&mut host);
        self.once(
            &format!("unlink port {} from switch {}", link.port, short(self.id())),
            &["ip", "link", "del", &link.port],
            host,
        )
        .await
    }

    /// Links node `container` in again at `link` (CAP_SYS_ADMIN for entering the node's network
    /// namespace; unconfined where AppArmor's default profile would refuse it, as for the setup).
    pub async fn relink(&self, container: &str, link: &Link) -> Result<(), NetworkError> {
        let apparmor = self.engine.confines_with_apparmor().await?;
        let mut host = HostConfig {
            cap_add: Some(vec!["SYS_ADMIN".into()]),
            pid_mode: Some(format!("container:{container}")),
            security_opt: apparmor.then(|| vec!["apparmor=unconfined".into()]),
            ..Default::default()
        };
        link.host_config(&mut host);
        let script = link.script();
        self.once(
            &format!("link {} in at {}", short(container), link.address),
            &["sh", "-ec", &script],
            host,
        )
        .await
    }

    async fn once(
        &self,
        action: &str,
        argv: &[&str],
        host: HostConfig,
    ) -> Result<(), NetworkError> {
        let out = self
            .engine
            .run_once(
                &self.image,
                argv,
                host,
                self.labels.clone(),
                Duration::from_secs(30),
            )
            .await?;
        if out.exit_code != 0 {
            return Err(NetworkError::Link {
                action: action.to_owned(),
                exit_code: out.exit_code,
                output: format!("{}{}", out.stdout, out.stderr).trim().to_owned(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subnet_is_read_normalised_and_split_between_members_and_docker() {
        let subnet = Subnet::parse(TUTORIAL_SUBNET).unwrap();
        assert_eq!(subnet.to_string(), "10.240.0.0/24");
        assert_eq!(Subnet::parse("10.240.0.77/24").unwrap(), subnet);
        assert_eq!(subnet.unplaced(0), Some("10.240.0.128".parse().unwrap()));
        assert_eq!(subnet.unplaced(126), Some("10.240.0.254".parse().unwrap()));
        assert_eq!(subnet.unplaced(127), None);
        for member in ["10.240.0.10", "10.240.0.11", "10.240.0.127"] {
            assert!(subnet.holds_member(member.parse().unwrap()), "{member}");
        }
        for not in ["10.240.0.0", "10.240.0.1", "10.240.0.128", "10.240.1.10"] {
            assert!(!subnet.holds_member(not.parse().unwrap()), "{not}");
        }
        for bad in [
            "10.240.0.0",
            "10.240.0.0/30",
            "10.240.0.0/x",
            "fd00::/64",
            "10.240/24",
        ] {
            let err = Subnet::parse(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
    }
}
