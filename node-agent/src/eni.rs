//! Node-side setup of an attached ENI: find its device by MAC, bring it up, give it its policy
//! routing table (`default via <vSwitch gateway> dev <eni> table <3000+device index>`).

use std::time::Duration;

use ipnet::Ipv4Net;
use tandem_hostnet::route::RouteSpec;
use tandem_hostnet::{sysctl, Mac, Netlink};

use crate::error::{AgentError, AgentResult};
use crate::state::EniRecord;

/// How long an attached ENI may take to show up as a device (udev renames, slow hotplug).
const APPEAR_TIMEOUT: Duration = Duration::from_secs(10);

/// Configure `eni` on the node and return its device name. The primary ENI (device index 0)
/// already carries the node's own address and default route; it only gets its table.
pub async fn configure(nl: &Netlink, eni: &EniRecord) -> AgentResult<String> {
    let mac: Mac = eni
        .mac
        .parse()
        .map_err(|e| AgentError::Internal(format!("ENI {}: {e}", eni.id)))?;
    let deadline = tokio::time::Instant::now() + APPEAR_TIMEOUT;
    let link = loop {
        let found = nl
            .link_by_mac(mac)
            .await
            .map_err(AgentError::wiring(format!("look for ENI {}", eni.id)))?;
        if let Some(link) = found {
            break link;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(AgentError::Internal(format!(
                "ENI {} ({mac}) is attached but no device with that MAC appeared within {APPEAR_TIMEOUT:?}",
                eni.id
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    if eni.exclusive {
        // Moved whole into a pod later; nothing of it is used on the node.
        return Ok(link.name);
    }
    let w = |what: &str| AgentError::wiring(format!("{what} of ENI {} ({})", eni.id, link.name));
    sysctl::write(&format!("net.ipv4.conf.{}.rp_filter", link.name), "2")
        .map_err(w("set rp_filter"))?;
    if eni.device_index != 0 {
        nl.set_up(link.index).await.map_err(w("set up"))?;
        // A /32: the ENI's subnet must not become a connected route of the main table, or
        // node traffic to that subnet would leave through a tenant's ENI.
        nl.add_addr(link.index, eni.primary_ip, 32)
            .await
            .map_err(w("add primary address"))?;
    }
    nl.replace_route(&RouteSpec {
        dst: Ipv4Net::default(),
        gw: Some(eni.gateway),
        oif: link.index,
        table: eni.table,
        onlink: true,
    })
    .await
    .map_err(w("default route"))?;
    Ok(link.name)
}
