//! The VPC namespace: one bridge per vSwitch (holding the gateway address, so the namespace is
//! the VPC router between vSwitches), a platform network and an internet stand-in.

use super::names::LabNames;
use super::netns::{self, NetnsError};
use super::topology::Topology;

/// Platform network: VPC side, platform host.
pub const PLATFORM_CIDR: &str = "192.168.100.0/24";
pub const PLATFORM_GW: &str = "192.168.100.1";
pub const PLATFORM_HOST: &str = "192.168.100.10";
/// Internet stand-in (TEST-NET-2): VPC side, internet host.
pub const INTERNET_GW: &str = "198.51.100.1";
pub const INTERNET_HOST: &str = "198.51.100.10";

/// Route like a VPC: forward, never redirect (pods on one bridge reach each other via the
/// gateway), and no reverse-path filtering (ENI traffic is asymmetric by design).
const ROUTER_SYSCTLS: [(&str, &str); 5] = [
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv4.conf.all.send_redirects", "0"),
    ("net.ipv4.conf.default.send_redirects", "0"),
    ("net.ipv4.conf.all.rp_filter", "0"),
    ("net.ipv4.conf.default.rp_filter", "0"),
];

/// Build the VPC namespace's bridges and the platform and internet legs. The namespaces
/// (vpc, plat, inet) must exist.
pub fn setup(names: &LabNames, topology: &Topology) -> Result<(), NetnsError> {
    let vpc = names.vpc();
    netns::sysctls(&vpc, &ROUTER_SYSCTLS)?;
    let mut lines = Vec::new();
    for (i, v) in topology.vswitches.iter().enumerate() {
        let br = &v.bridge;
        // A fixed MAC: a bridge otherwise takes its lowest port's, and the gateway's MAC would
        // change under the nodes' neighbour caches whenever an ENI is attached or detached.
        lines.push(format!(
            "link add {br} address 02:00:00:00:{:02x}:01 type bridge",
            i + 1
        ));
        lines.push(format!(
            "addr add {}/{} dev {br}",
            v.gateway,
            v.cidr.prefix_len()
        ));
        lines.push(format!("link set {br} up"));
    }
    for (leg, peer_ns, gw) in [
        ("to-plat", names.plat(), PLATFORM_GW),
        ("to-inet", names.inet(), INTERNET_GW),
    ] {
        lines.push(format!(
            "link add {leg} type veth peer name eth0 netns {peer_ns}"
        ));
        lines.push(format!("addr add {gw}/24 dev {leg}"));
        lines.push(format!("link set {leg} up"));
    }
    netns::ip_batch(&vpc, &lines)?;
    for (ns, host, gw) in [
        (names.plat(), PLATFORM_HOST, PLATFORM_GW),
        (names.inet(), INTERNET_HOST, INTERNET_GW),
    ] {
        let lines = [
            format!("addr add {host}/24 dev eth0"),
            "link set eth0 up".to_owned(),
            format!("route add default via {gw}"),
        ];
        netns::ip_batch(&ns, &lines)?;
    }
    Ok(())
}
