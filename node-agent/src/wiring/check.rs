//! CHECK: does the pod's network still look like what ADD built and the runtime recorded?

use tandem_common::api::{ExpectedInterface, PodInterface, PodRoute};
use tandem_hostnet::route::TABLE_MAIN;
use tandem_hostnet::{NetNs, Netlink};

use super::{host32, host_rules, pod_rule};
use crate::error::{AgentError, AgentResult};

fn failed(msg: String) -> AgentError {
    AgentError::CheckFailed(msg)
}

/// Compare the kernel with the allocation (`ifaces`) and the previous result (`expected`,
/// `routes`). The first difference is the error.
pub async fn check(
    host: &Netlink,
    pod: &NetNs,
    ifaces: &[PodInterface],
    expected: &[ExpectedInterface],
    routes: &[PodRoute],
) -> AgentResult<()> {
    let pod_nl = pod.netlink().await.map_err(|source| AgentError::Netns {
        path: pod.path().to_path_buf(),
        source,
    })?;
    let internal = |e: tandem_hostnet::HostnetError| AgentError::Internal(e.to_string());
    for e in expected {
        let link = pod_nl
            .link_by_name(&e.name)
            .await
            .map_err(internal)?
            .ok_or_else(|| failed(format!("interface {} is missing from the pod", e.name)))?;
        let mac = link.mac.map(|m| m.to_string()).unwrap_or_default();
        if !e.mac.is_empty() && !e.mac.eq_ignore_ascii_case(&mac) {
            return Err(failed(format!(
                "interface {} has MAC {mac}, expected {}",
                e.name, e.mac
            )));
        }
        if !link.up {
            return Err(failed(format!("interface {} is down", e.name)));
        }
        let addrs = pod_nl.addrs(link.index).await.map_err(internal)?;
        for a in &e.addresses {
            if !addrs.contains(a) {
                return Err(failed(format!("interface {} lost address {a}", e.name)));
            }
        }
    }
    for i in ifaces {
        let pod_rules = pod_nl.rules().await.map_err(internal)?;
        if !pod_rules.contains(&pod_rule(i)) {
            return Err(failed(format!(
                "rule from {} lookup {} is missing in the pod",
                i.ip, i.pod_table
            )));
        }
    }
    for i in ifaces.iter().filter(|i| !i.exclusive) {
        let host_link = host
            .link_by_name(&i.host_ifname)
            .await
            .map_err(internal)?
            .ok_or_else(|| {
                failed(format!(
                    "host veth {} of {} is missing",
                    i.host_ifname, i.ifname
                ))
            })?;
        let main = host.routes(TABLE_MAIN).await.map_err(internal)?;
        if !main
            .iter()
            .any(|r| r.dst == host32(i.ip) && r.oif == host_link.index)
        {
            return Err(failed(format!(
                "host route {}/32 dev {} is missing",
                i.ip, i.host_ifname
            )));
        }
        let rules = host.rules().await.map_err(internal)?;
        for want in host_rules(i) {
            if !rules.contains(&want) {
                return Err(failed(format!("host rule {want:?} is missing")));
            }
        }
    }
    for r in routes {
        let table = r.table.unwrap_or(TABLE_MAIN);
        let have = pod_nl.routes(table).await.map_err(internal)?;
        if !have.iter().any(|h| h.dst == r.dst && h.gw == Some(r.gw)) {
            return Err(failed(format!(
                "route {} via {} (table {table}) is missing in the pod",
                r.dst, r.gw
            )));
        }
    }
    Ok(())
}
