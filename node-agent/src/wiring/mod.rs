//! Pod network wiring on the node: veth pairs, addresses, routes and policy-routing rules
//! (DESIGN §3). `setup` builds, `teardown` removes (best effort, idempotent), `check` compares.
//!
//! Host side, per pod interface:
//! `ip route add <podIP>/32 dev <hostveth>`, `ip rule add to <podIP> lookup main prio 1100`,
//! `ip rule add from <podIP> lookup <ENI table> prio 1200`.
//! Pod side: `<podIP>/32`, `169.254.1.1` as a permanent neighbour with the host veth's MAC, the
//! interface's own table (`default via 169.254.1.1`) selected by `from <podIP>`, and main-table
//! routes (default via the tenant interface, platform CIDRs via the control interface).

mod check;
mod setup;
mod teardown;

pub use check::check;
pub use setup::{setup, Enforce, Wired};
pub use teardown::{teardown, Namespaces};

use ipnet::Ipv4Net;
use sha2::{Digest, Sha256};
use tandem_common::api::PodInterface;
use tandem_hostnet::rule::RuleSpec;
use tandem_hostnet::{route, Mac};

/// `ip rule` priorities on the node. Chosen clear of the AWS VPC CNI (512/1536), Terway
/// (512/2048) and Cilium (20/111) so Tandem can share a node with them during a migration.
pub const RULE_TO_POD: u32 = 1100;
pub const RULE_FROM_POD: u32 = 1200;
/// Inside the pod: rule priority base (one per interface).
pub const POD_RULE_BASE: u32 = 1000;
/// Inside the pod: table of the first interface; the next gets +1.
pub const POD_TABLE_BASE: u32 = 100;
/// ENI tables on the node: base + the ENI's device index.
pub const ENI_TABLE_BASE: u32 = 3000;

/// Host-side names and MACs derive from container id + pod ifname, so a DEL that lost every
/// record can still find them.
pub struct HostNames {
    pub host_ifname: String,
    pub host_mac: Mac,
    pub pod_mac: Mac,
}

pub fn host_names(container_id: &str, ifname: &str) -> HostNames {
    let digest = Sha256::digest(format!("{container_id}/{ifname}").as_bytes());
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    HostNames {
        host_ifname: format!("tdm{hex}"),
        host_mac: Mac::local_from(&digest[6..12]),
        pod_mac: Mac::local_from(&digest[12..18]),
    }
}

fn host32(ip: std::net::Ipv4Addr) -> Ipv4Net {
    Ipv4Net::new(ip, 32).expect("/32 is a valid prefix")
}

/// The host rules of one pod interface (none for an exclusive ENI: it is not routed by the
/// node).
pub(crate) fn host_rules(i: &PodInterface) -> Vec<RuleSpec> {
    if i.exclusive {
        return Vec::new();
    }
    vec![
        RuleSpec {
            priority: RULE_TO_POD,
            src: None,
            dst: Some(host32(i.ip)),
            table: route::TABLE_MAIN,
        },
        RuleSpec {
            priority: RULE_FROM_POD,
            src: Some(host32(i.ip)),
            dst: None,
            table: i.host_table,
        },
    ]
}

/// The pod-side rule of one interface.
pub(crate) fn pod_rule(i: &PodInterface) -> RuleSpec {
    RuleSpec {
        priority: POD_RULE_BASE + (i.pod_table - POD_TABLE_BASE),
        src: Some(host32(i.ip)),
        dst: None,
        table: i.pod_table,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_stable_and_fit_ifnamsiz() {
        let a = host_names("abc", "eth0");
        let b = host_names("abc", "eth0");
        let c = host_names("abc", "eth1");
        assert_eq!(a.host_ifname, b.host_ifname);
        assert_ne!(a.host_ifname, c.host_ifname);
        assert_eq!(a.host_ifname.len(), 15);
        assert_ne!(a.host_mac, a.pod_mac);
    }
}
