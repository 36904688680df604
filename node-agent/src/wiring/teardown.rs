//! Remove a pod's host-side wiring. Best effort: every step runs even if an earlier one failed,
//! and things already gone count as removed (DEL is idempotent).

use tandem_common::api::PodInterface;
use tandem_hostnet::{HostnetError, Mac, NetNs, Netlink};

use super::{host_names, host_rules};

/// Where a teardown works: the node, and the pod's netns if it still exists.
pub struct Namespaces<'a> {
    pub host: &'a Netlink,
    pub node: &'a NetNs,
    pub pod: Option<&'a NetNs>,
}

/// Move exclusive ENIs back to the node under their own names, remove rules, then the host
/// veths (their pod ends and routes go with them). Returns the errors met, empty when
/// everything is gone.
pub async fn teardown(
    ns: &Namespaces<'_>,
    container_id: &str,
    ifaces: &[PodInterface],
    link_group: u32,
) -> Vec<HostnetError> {
    let host = ns.host;
    let mut errors = Vec::new();
    for i in ifaces.iter().filter(|i| i.exclusive) {
        if let Some(pod) = ns.pod {
            if let Err(e) = move_eni_out(pod, ns.node, i).await {
                errors.push(e);
            }
        }
    }
    for i in ifaces {
        for rule in host_rules(i) {
            if let Err(e) = host.del_rule(&rule).await {
                errors.push(e);
            }
        }
    }
    // One request for all the pod's links: they share one RCU grace period.
    if link_group != 0 {
        if let Err(e) = host.del_group(link_group).await {
            errors.push(e);
        }
    }
    // Links not in the group (an ADD that failed before setting it) are found by name.
    for i in ifaces.iter().filter(|i| !i.exclusive) {
        let name = host_names(container_id, &i.ifname).host_ifname;
        match host.link_by_name(&name).await {
            Ok(Some(link)) => {
                if let Err(e) = host.del_link(link.index).await {
                    errors.push(e);
                }
            }
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    errors
}

/// `ip -n <pod> link set <ifname> netns <node> name <original>`; an ENI no longer in the pod is
/// not an error here (the sweep finds ENIs that vanished).
async fn move_eni_out(pod: &NetNs, node: &NetNs, i: &PodInterface) -> Result<(), HostnetError> {
    let nl = pod.netlink().await?;
    let Ok(mac) = i.mac.parse::<Mac>() else {
        return Ok(());
    };
    match nl.link_by_mac(mac).await? {
        Some(link) => nl.move_to_netns(link.index, node, &i.host_ifname).await,
        None => Ok(()),
    }
}
