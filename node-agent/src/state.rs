//! What the agent holds: ENIs with their addresses, and pod allocations. Pure data: the agent
//! changes it under one lock and the store writes it durably.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use tandem_common::api::{AttachmentKey, PodInterface, PodRef};

/// The plane name of the control network; tenant planes are named after their tenant.
pub const CONTROL_PLANE: &str = "control";

/// An ENI attached to this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EniRecord {
    pub id: String,
    pub plane: String,
    pub vswitch_id: String,
    pub cidr: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub mac: String,
    pub device_index: u32,
    /// Device name on the node.
    pub device: String,
    pub primary_ip: Ipv4Addr,
    /// Secondary IPs assigned by the cloud.
    pub ips: BTreeSet<Ipv4Addr>,
    /// Policy routing table of this ENI on the node.
    pub table: u32,
    /// The ENI of an exclusive plane: moved whole into one pod.
    #[serde(default)]
    pub exclusive: bool,
}

/// One pod attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Allocation {
    pub key: AttachmentKey,
    pub pod: PodRef,
    pub netns: PathBuf,
    pub tenant: String,
    pub interfaces: Vec<PodInterface>,
    /// Link group of the host-side links, so DEL removes them in one request.
    pub link_group: u32,
    pub created_at: u64,
}

/// Everything that is persisted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub enis: BTreeMap<String, EniRecord>,
    /// Keyed by `containerId/ifname`.
    pub allocations: BTreeMap<String, Allocation>,
    pub next_link_group: u32,
    /// Released addresses and when (unix ms): not handed out again before the cool-down.
    #[serde(default)]
    pub cooling: BTreeMap<Ipv4Addr, u64>,
    /// Bumped on every change that must be made durable.
    #[serde(skip)]
    pub generation: u64,
}

/// Link groups Tandem hands out start here, far from the small numbers admins use.
pub const LINK_GROUP_BASE: u32 = 0x7a6d_0000;

pub fn key_string(key: &AttachmentKey) -> String {
    format!("{}/{}", key.container_id, key.ifname)
}

impl State {
    pub fn allocation(&self, key: &AttachmentKey) -> Option<&Allocation> {
        self.allocations.get(&key_string(key))
    }

    /// IP → the attachment that uses it.
    pub fn used_ips(&self) -> BTreeMap<Ipv4Addr, AttachmentKey> {
        let mut used = BTreeMap::new();
        for a in self.allocations.values() {
            for i in &a.interfaces {
                used.insert(i.ip, a.key.clone());
            }
        }
        used
    }

    /// Free (assigned, unused, not cooling) IPs of a shared plane, with their ENI.
    pub fn free_ips(&self, plane: &str) -> Vec<(Ipv4Addr, String)> {
        let used = self.used_ips();
        self.enis
            .values()
            .filter(|e| e.plane == plane && !e.exclusive)
            .flat_map(|e| e.ips.iter().map(move |ip| (*ip, e.id.clone())))
            .filter(|(ip, _)| !used.contains_key(ip) && !self.cooling.contains_key(ip))
            .collect()
    }

    /// Free ENIs of an exclusive plane.
    pub fn free_enis(&self, plane: &str) -> Vec<String> {
        let used: BTreeSet<&str> = self
            .allocations
            .values()
            .flat_map(|a| a.interfaces.iter().map(|i| i.eni_id.as_str()))
            .collect();
        self.enis
            .values()
            .filter(|e| e.plane == plane && e.exclusive && !used.contains(e.id.as_str()))
            .map(|e| e.id.clone())
            .collect()
    }

    /// Start the cool-down of addresses a pod gave back.
    pub fn cool(&mut self, ips: impl IntoIterator<Item = Ipv4Addr>, now_ms: u64) {
        for ip in ips {
            self.cooling.insert(ip, now_ms);
        }
    }

    /// End the cool-down of addresses released before `cutoff_ms`, and forget addresses no
    /// ENI holds any more.
    pub fn expire_cooling(&mut self, cutoff_ms: u64) {
        let held: BTreeSet<Ipv4Addr> = self
            .enis
            .values()
            .flat_map(|e| e.ips.iter().copied())
            .collect();
        self.cooling
            .retain(|ip, at| *at >= cutoff_ms && held.contains(ip));
    }

    pub fn enis_of<'a>(&'a self, plane: &'a str) -> impl Iterator<Item = &'a EniRecord> + 'a {
        self.enis.values().filter(move |e| e.plane == plane)
    }

    pub fn take_link_group(&mut self) -> u32 {
        let g = LINK_GROUP_BASE + self.next_link_group;
        self.next_link_group = self.next_link_group.wrapping_add(1) % 0x1_0000;
        g
    }
}
