//! What an ENI looks like on the wire in the lab.
//!
//! An attached ENI is a veth pair: the node end, named `eth<device index>` and carrying the ENI's
//! MAC, is created directly in the instance's namespace and left down (configuring it is the
//! agent's job); the other end, `v-<eni hex>`, is a port of the vSwitch's bridge in the VPC
//! namespace. Permanent neighbour entries on that bridge map each of the ENI's IPs to its MAC:
//! they stand in for the cloud fabric's IP → ENI map, so a node never has to answer ARP for the
//! pod IPs it holds (it could not: those IPs live in pod namespaces).

use std::net::Ipv4Addr;

use tandem_common::vpcsim::Eni;

use crate::lab::netns::{self, NetnsError};

/// Where one ENI plugs in: the VPC namespace, its vSwitch's bridge, the instance's namespace.
#[derive(Debug, Clone)]
pub struct Plug {
    pub vpc_netns: String,
    pub bridge: String,
    pub node_netns: String,
}

/// The VPC-side veth of an ENI: `v-` and the id's hex part (fits IFNAMSIZ).
pub fn vpc_ifname(eni_id: &str) -> String {
    format!("v-{}", eni_id.trim_start_matches("eni-"))
}

/// Create the veth pair of an attached ENI and publish all its addresses.
pub fn attach(plug: &Plug, eni: &Eni, device_index: u32) -> Result<(), NetnsError> {
    let veth = vpc_ifname(&eni.id);
    let mut lines = vec![
        format!(
            "link add {veth} type veth peer name eth{device_index} address {} netns {}",
            eni.mac, plug.node_netns
        ),
        format!("link set {veth} master {} up", plug.bridge),
    ];
    lines.extend(neigh_lines("replace", plug, &all_ips(eni), Some(&eni.mac)));
    let res = netns::ip_batch(&plug.vpc_netns, &lines);
    if res.is_err() {
        // Roll back a half-made pair so a retried attach starts clean.
        let _ = netns::ip(&plug.vpc_netns, &["link", "del", &veth]);
    }
    res
}

/// Withdraw an ENI's addresses and delete its veth pair; best effort, keeps going on errors.
///
/// Only the VPC end is deleted by name: the node end may have been renamed or moved into a pod
/// namespace (exclusive mode), and it dies with its peer. If that pod namespace was deleted, the
/// pair is already gone; what is already gone counts as removed.
pub fn detach(plug: &Plug, eni: &Eni) -> Result<(), NetnsError> {
    let mut lines = neigh_lines("del", plug, &all_ips(eni), None);
    lines.push(format!("link del {}", vpc_ifname(&eni.id)));
    let mut first_err = None;
    for line in &lines {
        let args: Vec<&str> = line.split(' ').collect();
        match netns::ip(&plug.vpc_netns, &args) {
            Err(e) if !is_gone(&e) => {
                first_err.get_or_insert(e);
            }
            _ => {}
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// iproute2's answer for a link or neighbour entry that does not exist.
fn is_gone(e: &NetnsError) -> bool {
    matches!(e, NetnsError::Failed { stderr, .. }
        if stderr.contains("Cannot find device") || stderr.contains("No such file or directory"))
}

/// Publish (`replace`) or withdraw (`del`) addresses of an attached ENI.
pub fn neighbours(plug: &Plug, verb: &str, ips: &[Ipv4Addr], mac: &str) -> Result<(), NetnsError> {
    if ips.is_empty() {
        return Ok(());
    }
    let mac = (verb != "del").then_some(mac);
    netns::ip_batch(&plug.vpc_netns, &neigh_lines(verb, plug, ips, mac))
}

fn all_ips(eni: &Eni) -> Vec<Ipv4Addr> {
    std::iter::once(eni.primary_ip)
        .chain(eni.secondary_ips.iter().copied())
        .collect()
}

fn neigh_lines(verb: &str, plug: &Plug, ips: &[Ipv4Addr], mac: Option<&str>) -> Vec<String> {
    ips.iter()
        .map(|ip| match mac {
            Some(mac) => format!(
                "neigh {verb} {ip} lladdr {mac} dev {} nud permanent",
                plug.bridge
            ),
            None => format!("neigh {verb} {ip} dev {}", plug.bridge),
        })
        .collect()
}
