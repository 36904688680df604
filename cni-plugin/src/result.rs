//! Turning the agent's answer into the CNI result, shaped for the config's version, and merged
//! after a previous plugin's result when chained.

use tandem_common::api::{AddReply, PodRoute};
use tandem_common::cni::{self, CniResult, Interface, IpConfig, Route};

use crate::error::PluginError;

/// The result of ADD. Each pod interface contributes its host veth and its pod end (in that
/// order, as the reference `ptp` plugin reports them) and one address.
pub fn build(
    reply: &AddReply,
    netns: &str,
    version: &str,
    prev: Option<&serde_json::Value>,
) -> Result<CniResult, PluginError> {
    let mut result = match prev {
        Some(p) => parse_prev(p)?,
        None => CniResult {
            cni_version: version.to_string(),
            interfaces: vec![],
            ips: vec![],
            routes: vec![],
            dns: Default::default(),
        },
    };
    let with_tables = cni::parse_version(version) >= cni::parse_version("1.1.0");
    for i in &reply.interfaces {
        // A moved ENI has no host side left to report (as with `host-device`).
        if !i.exclusive {
            result.interfaces.push(Interface {
                name: i.host_ifname.clone(),
                mac: i.host_mac.clone(),
                mtu: Some(i.mtu),
                sandbox: None,
            });
        }
        result.interfaces.push(Interface {
            name: i.ifname.clone(),
            mac: i.mac.clone(),
            mtu: Some(i.mtu),
            sandbox: Some(netns.to_string()),
        });
        result.ips.push(IpConfig {
            version: None,
            address: format!("{}/{}", i.ip, i.prefix_len),
            gateway: Some(i.gateway),
            interface: Some(result.interfaces.len() - 1),
        });
        // Routes of other tables exist only from 1.1.0 on; before that only the main table's
        // can be expressed without misleading the runtime.
        for r in i.routes.iter().filter(|r| with_tables || r.table.is_none()) {
            result.routes.push(route(r));
        }
    }
    Ok(result.shaped_for(version))
}

fn route(r: &PodRoute) -> Route {
    Route {
        dst: r.dst.to_string(),
        gw: Some(r.gw),
        table: r.table,
        scope: None,
    }
}

pub fn parse_prev(prev: &serde_json::Value) -> Result<CniResult, PluginError> {
    serde_json::from_value(prev.clone())
        .map_err(|e| PluginError::Decode(format!("prevResult: {e}")))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use tandem_common::api::{PodInterface, Role, POD_GATEWAY};

    use super::*;

    fn reply() -> AddReply {
        let iface = |role, name: &str, ip, routes| PodInterface {
            role,
            ifname: name.into(),
            mac: "02:00:00:00:00:02".into(),
            host_ifname: format!("tdm{name}"),
            host_mac: "02:00:00:00:00:01".into(),
            mtu: 1500,
            ip,
            prefix_len: 32,
            gateway: POD_GATEWAY,
            routes,
            eni_id: "eni-1".into(),
            host_table: 3000,
            pod_table: 100,
            plane: "control".into(),
            exclusive: false,
        };
        let main = PodRoute {
            dst: "0.0.0.0/0".parse().unwrap(),
            gw: POD_GATEWAY,
            table: None,
        };
        let table = PodRoute {
            table: Some(101),
            ..main.clone()
        };
        AddReply {
            interfaces: vec![
                iface(Role::Control, "eth0", Ipv4Addr::new(10, 10, 0, 5), vec![]),
                iface(
                    Role::Tenant,
                    "eth1",
                    Ipv4Addr::new(10, 1, 0, 5),
                    vec![table, main],
                ),
            ],
        }
    }

    #[test]
    fn lists_both_interfaces_with_sandbox_and_addresses() {
        let r = build(&reply(), "/run/netns/p", "1.1.0", None).unwrap();
        assert_eq!(r.interfaces.len(), 4);
        assert_eq!(r.interfaces[1].sandbox.as_deref(), Some("/run/netns/p"));
        assert!(r.interfaces[0].sandbox.is_none());
        assert_eq!(r.ips[0].address, "10.10.0.5/32");
        assert_eq!(r.ips[0].interface, Some(1));
        assert_eq!(r.ips[1].interface, Some(3));
        assert_eq!(r.routes.len(), 2);
        let old = build(&reply(), "/run/netns/p", "0.4.0", None).unwrap();
        assert_eq!(old.routes.len(), 1, "table routes are dropped before 1.1.0");
        assert_eq!(old.ips[0].version.as_deref(), Some("4"));
    }

    #[test]
    fn chained_results_append_after_prev() {
        let prev = serde_json::json!({"cniVersion":"1.0.0","interfaces":[{"name":"lo0"}],"ips":[{"address":"192.0.2.1/24","interface":0}]});
        let r = build(&reply(), "/run/netns/p", "1.0.0", Some(&prev)).unwrap();
        assert_eq!(r.interfaces[0].name, "lo0");
        assert_eq!(r.ips[1].interface, Some(2));
        assert_eq!(r.ips.len(), 3);
    }
}
