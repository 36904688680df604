//! The topology file the lab writes and `vpcsim` reads: which namespace is the VPC, its
//! vSwitches (and their bridges), and its instances (and their node namespaces).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::names::{LabNames, NODES};

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("read topology {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parse topology {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("write topology {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Topology {
    /// The namespace holding the vSwitch bridges and the VPC router.
    pub vpc_netns: String,
    pub vswitches: Vec<VSwitchSpec>,
    pub instances: Vec<InstanceSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VSwitchSpec {
    pub id: String,
    pub cidr: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// The bridge in the VPC namespace that is this vSwitch.
    pub bridge: String,
    /// Addresses the allocator must never hand out (beyond network, gateway and broadcast).
    #[serde(default)]
    pub reserved: Vec<Ipv4Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceSpec {
    pub id: String,
    /// The namespace that is this instance; attached ENIs appear in it as `eth<index>`.
    pub netns: String,
    pub max_enis: u32,
    pub max_ips_per_eni: u32,
    pub primary_eni: PrimaryEniSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrimaryEniSpec {
    pub vswitch_id: String,
    pub primary_ip: Ipv4Addr,
}

/// What one instance type allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceLimits {
    /// ENIs, the primary one included.
    pub max_enis: u32,
    /// Private IPs per ENI, its primary one included.
    pub max_ips_per_eni: u32,
}

impl Default for InstanceLimits {
    /// An AWS m5.4xlarge: 8 ENIs of 30 addresses.
    fn default() -> Self {
        Self {
            max_enis: 8,
            max_ips_per_eni: 30,
        }
    }
}

impl Topology {
    pub fn load(path: &Path) -> Result<Self, TopologyError> {
        let text = std::fs::read_to_string(path).map_err(|source| TopologyError::Read {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| TopologyError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    pub fn save(&self, path: &Path) -> Result<(), TopologyError> {
        let text = serde_json::to_string_pretty(self).expect("topology serialises");
        std::fs::write(path, text).map_err(|source| TopologyError::Write {
            path: path.to_owned(),
            source,
        })
    }

    pub fn vswitch(&self, id: &str) -> Option<&VSwitchSpec> {
        self.vswitches.iter().find(|v| v.id == id)
    }

    pub fn instance(&self, id: &str) -> Option<&InstanceSpec> {
        self.instances.iter().find(|i| i.id == id)
    }

    /// The standard lab (DESIGN.md §7): a control vSwitch, one per independent tenant (acme,
    /// globex, initech), one shared by umbrella and wayne, two nodes of the given limits.
    pub fn standard(names: &LabNames, limits: InstanceLimits) -> Self {
        let vsw = |id: &str, net: [u8; 3], bridge: &str, reserved: Vec<Ipv4Addr>| VSwitchSpec {
            id: id.to_owned(),
            cidr: Ipv4Net::new(Ipv4Addr::new(net[0], net[1], net[2], 0), 24).expect("valid /24"),
            gateway: Ipv4Addr::new(net[0], net[1], net[2], 1),
            bridge: bridge.to_owned(),
            reserved,
        };
        let node_ips: Vec<Ipv4Addr> = NODES.iter().map(|(_, _, ip)| Ipv4Addr::from(*ip)).collect();
        Self {
            vpc_netns: names.vpc(),
            vswitches: vec![
                vsw("vsw-ctl", [10, 10, 0], "br-ctl", node_ips),
                vsw("vsw-acme", [10, 1, 0], "br-acme", vec![]),
                vsw("vsw-globex", [10, 2, 0], "br-globex", vec![]),
                vsw("vsw-initech", [10, 3, 0], "br-initech", vec![]),
                // The shared scheme: umbrella and wayne both have ENIs here.
                vsw("vsw-shared", [10, 20, 0], "br-shared", vec![]),
            ],
            instances: NODES
                .iter()
                .map(|(node, instance, ip)| InstanceSpec {
                    id: (*instance).to_owned(),
                    netns: names.netns(node),
                    max_enis: limits.max_enis,
                    max_ips_per_eni: limits.max_ips_per_eni,
                    primary_eni: PrimaryEniSpec {
                        vswitch_id: "vsw-ctl".to_owned(),
                        primary_ip: Ipv4Addr::from(*ip),
                    },
                })
                .collect(),
        }
    }
}
