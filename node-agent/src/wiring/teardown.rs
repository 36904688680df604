//! Remove a pod's host-side wiring. Best effort: every step runs even if an earlier one failed,
//! and things already gone count as removed (DEL is idempotent).

use tandem_common::api::PodInterface;
use tandem_hostnet::{HostnetError, Netlink};

use super::{host_names, host_rules};

/// Remove rules, then the host veths (their pod ends and routes go with them). Returns the
/// errors met, empty when everything is gone.
pub async fn teardown(
    host: &Netlink,
    container_id: &str,
    ifaces: &[PodInterface],
    link_group: u32,
) -> Vec<HostnetError> {
    let mut errors = Vec::new();
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
    for i in ifaces {
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
