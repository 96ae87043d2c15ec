//! A run's private network: a Docker bridge network the run creates, `internal` (no route out of
//! the engine's host), labelled like the run's nodes so the sweep finds it when the run was killed,
//! with the subnet a scenario names — by default the tutorial's `10.240.0.0/24` — and each node at
//! its address, reachable by its host name.
//!
//! Docker refuses two networks with overlapping subnets on one engine, so a run whose subnet is in
//! use waits for it (polling, with a deadline) rather than failing. Addresses from the subnet's upper
//! half are Docker's to hand out; the lower half is the scenario's, so a node Docker attaches first
//! never takes a member's address. Dropping the [`RunNetwork`] removes it. It does not start nodes.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bollard::models::{
    EndpointIpamConfig, EndpointSettings, Ipam, IpamConfig, NetworkConnectRequest,
    NetworkCreateRequest, NetworkDisconnectRequest,
};

use crate::engine::{short, within, Engine, EngineError, Labels};
use crate::wait::{poll_until, Probe};

/// The tutorial's network.
pub const TUTORIAL_SUBNET: &str = "10.240.0.0/24";

/// How long a run waits for its subnet to be free on the engine.
const SUBNET_WAIT: Duration = Duration::from_secs(300);

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
    /// The subnet stayed in use by another network.
    #[error("failed to create a network with subnet {subnet}: {detail}\n  remedy: remove the network that holds it (`docker network ls`), or name another subnet")]
    SubnetBusy {
        /// The subnet.
        subnet: String,
        /// What the engine said last.
        detail: String,
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

    /// The first host address, the bridge's own.
    fn gateway(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// The upper half, which Docker hands out to nodes attached without an address.
    fn dynamic_range(self) -> String {
        let half = self.size() / 2;
        format!(
            "{}/{}",
            Ipv4Addr::from(u32::from(self.network) + half),
            self.prefix + 1
        )
    }

    /// True when `address` is a usable member address: in the lower half, not the network address
    /// nor the gateway (the first host address).
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

/// The run's network; dropping it removes it.
pub struct RunNetwork {
    engine: Engine,
    id: String,
    name: String,
    subnet: Option<Subnet>,
}

impl RunNetwork {
    /// Creates an internal network with `subnet` (or one the engine picks), labelled with
    /// `labels`, waiting while another network holds the subnet.
    pub async fn create(
        engine: &Engine,
        labels: &Labels,
        subnet: Option<Subnet>,
    ) -> Result<Self, NetworkError> {
        // Several runs of one process (the matrix) share their labels: a counter tells them apart.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "etcd-harness-{}-{}",
            labels.run_id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let ipam = subnet.map(|subnet| Ipam {
            config: Some(vec![IpamConfig {
                subnet: Some(subnet.to_string()),
                ip_range: Some(subnet.dynamic_range()),
                gateway: Some(subnet.gateway().to_string()),
                ..Default::default()
            }]),
            ..Default::default()
        });
        let shown = subnet.map_or_else(|| "any subnet".to_owned(), |s| s.to_string());
        let request = NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".into()),
            // No route out: nodes talk to each other, and the harness reaches them through exec.
            internal: Some(true),
            labels: Some(labels.pairs().into_iter().collect()),
            ipam,
            ..Default::default()
        };
        let docker = engine.docker().clone();
        let created = poll_until(
            &format!("{shown} to be free on the engine"),
            SUBNET_WAIT,
            Duration::from_millis(500),
            || {
                let (docker, request, shown) = (docker.clone(), request.clone(), shown.clone());
                async move {
                    let created = crate::engine::create_detached(async move {
                        docker.create_network(request).await
                    })
                    .await;
                    match created {
                        Ok(response) => Ok(Probe::Ready(response.id)),
                        // The engine says so two ways: IPAM's "Pool overlaps with other one on
                        // this address space", and the bridge driver's "conflicts with network …:
                        // networks have overlapping IPv4" (measured on 20.10, in a race between two
                        // runs asking for the same subnet).
                        Err(e) if e.to_string().contains("overlap") => {
                            Ok(Probe::Pending(e.to_string()))
                        }
                        Err(source) => Err(NetworkError::Engine(EngineError::Request {
                            action: format!("create a network with {shown}"),
                            source,
                        })),
                    }
                }
            },
        )
        .await?;
        let id = created.map_err(|timeout| NetworkError::SubnetBusy {
            subnet: shown,
            detail: timeout.to_string(),
        })?;
        Ok(Self {
            engine: engine.clone(),
            id,
            name,
            subnet,
        })
    }

    /// The network's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The network's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Leaves the network after this value is gone (its nodes were kept).
    pub fn keep(self) {
        std::mem::forget(self);
    }

    /// Puts `container` (attached to this network when created) at `address`, reachable by
    /// `host`: Docker cannot be told an address at creation through testcontainers, so the
    /// container is detached and attached again with it, before it starts.
    pub async fn place(
        &self,
        container: &str,
        address: Ipv4Addr,
        host: &str,
    ) -> Result<(), NetworkError> {
        if !self.subnet.is_some_and(|s| s.holds_member(address)) {
            return Err(NetworkError::BadAddress {
                address,
                subnet: self
                    .subnet
                    .map_or_else(|| "a subnet the engine picked".into(), |s| s.to_string()),
            });
        }
        self.disconnect(container).await?;
        self.connect(container, Some(address), host).await
    }

    /// Detaches `container` from the network: it keeps only its loopback, so nothing of the
    /// network reaches it and it reaches nothing (a partition with no capability in the node).
    pub async fn disconnect(&self, container: &str) -> Result<(), NetworkError> {
        let action = format!("detach {} from {}", short(container), short(&self.id));
        let request = NetworkDisconnectRequest {
            container: container.to_owned(),
            force: Some(true),
        };
        within(Duration::from_secs(60), || action.clone(), async {
            self.engine
                .docker()
                .disconnect_network(&self.id, request)
                .await
                .map_err(|source| EngineError::Request {
                    action: action.clone(),
                    source,
                })
        })
        .await?;
        Ok(())
    }

    /// Attaches `container` to the network at `address` (or one the engine picks), reachable by
    /// `host`.
    pub async fn connect(
        &self,
        container: &str,
        address: Option<Ipv4Addr>,
        host: &str,
    ) -> Result<(), NetworkError> {
        let action = format!(
            "attach {} to {} at {}",
            short(container),
            short(&self.id),
            address.map_or_else(|| "any address".to_owned(), |a| a.to_string())
        );
        let request = NetworkConnectRequest {
            container: container.to_owned(),
            endpoint_config: Some(EndpointSettings {
                ipam_config: address.map(|address| EndpointIpamConfig {
                    ipv4_address: Some(address.to_string()),
                    ..Default::default()
                }),
                aliases: Some(vec![host.to_owned()]),
                ..Default::default()
            }),
        };
        within(Duration::from_secs(60), || action.clone(), async {
            self.engine
                .docker()
                .connect_network(&self.id, request)
                .await
                .map_err(|source| EngineError::Request {
                    action: action.clone(),
                    source,
                })
        })
        .await?;
        Ok(())
    }
}

impl Drop for RunNetwork {
    fn drop(&mut self) {
        // Removal is async and Drop is not: a thread with a runtime of its own does it, whatever
        // runtime (if any) drops the network. A network that outlives this is the sweep's.
        let id = self.id.clone();
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(engine) = Engine::connect().await {
                    let _ = engine.docker().remove_network(&id).await;
                }
            });
        })
        .join();
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
        assert_eq!(subnet.dynamic_range(), "10.240.0.128/25");
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
