//! Build a pod's interfaces. On error the caller runs `teardown`, which undoes any part.

use tandem_common::api::PodInterface;
use tandem_hostnet::link::VethSpec;
use tandem_hostnet::route::{RouteSpec, TABLE_MAIN};
use tandem_hostnet::{sysctl, Mac, NetNs, Netlink};

use super::{host32, host_rules, pod_rule};
use crate::error::{AgentError, AgentResult};
use crate::policy::datapath::Site;

/// A pod interface that exists and is still down.
pub struct Wired<'a> {
    pub slot: usize,
    pub iface: &'a PodInterface,
    /// The host veth's ifindex on the node, or the exclusive ENI's inside the pod.
    pub ifindex: u32,
    pub site: Site,
}

/// Called once with every interface of the pod (and the pod's netns) after they exist and
/// before any comes up: enforcement goes in first, so an interface never carries a packet
/// unpoliced.
pub type Enforce<'a> = dyn Fn(&NetNs, &[Wired<'_>]) -> AgentResult<()> + Sync + 'a;

/// Wire every interface of `ifaces` between the node (`host`) and the pod netns.
pub async fn setup(
    host: &Netlink,
    pod: &NetNs,
    ifaces: &[PodInterface],
    link_group: u32,
    enforce: &Enforce<'_>,
) -> AgentResult<()> {
    let pod_nl = pod.netlink().await.map_err(|source| AgentError::Netns {
        path: pod.path().to_path_buf(),
        source,
    })?;
    let lo = pod_nl
        .link_by_name("lo")
        .await
        .map_err(AgentError::wiring("find lo in the pod"))?;
    if let Some(lo) = lo {
        pod_nl
            .set_up(lo.index)
            .await
            .map_err(AgentError::wiring("set lo up in the pod"))?;
    }
    let mut wired = Vec::new();
    // Exclusive ENIs first: the pod netns holds nothing but lo yet, so each keeps its ifindex.
    let mut order: Vec<(usize, &PodInterface)> = ifaces.iter().enumerate().collect();
    order.sort_by_key(|(_, i)| !i.exclusive);
    for (slot, i) in order {
        let (ifindex, site) = if i.exclusive {
            (move_eni_in(host, pod, &pod_nl, i).await?, Site::PodDevice)
        } else {
            (create_veth(host, pod, i, link_group).await?, Site::HostVeth)
        };
        wired.push(Wired {
            slot,
            iface: i,
            ifindex,
            site,
        });
    }
    enforce(pod, &wired)?;
    for w in wired.iter().filter(|w| w.site == Site::HostVeth) {
        finish_host_side(host, w.iface, w.ifindex).await?;
    }
    for i in ifaces {
        setup_pod_side(&pod_nl, i).await?;
    }
    Ok(())
}

/// Exclusive mode: `ip link set <eni> netns <pod> name <ifname>`, as `host-device` does. The
/// move takes the ENI down; returns its ifindex inside the pod.
async fn move_eni_in(
    host: &Netlink,
    pod: &NetNs,
    pod_nl: &Netlink,
    i: &PodInterface,
) -> AgentResult<u32> {
    let w = |what: &str| AgentError::wiring(format!("{what} ENI {} ({})", i.eni_id, i.host_ifname));
    let link = host
        .link_by_mac(mac(&i.host_mac)?)
        .await
        .map_err(w("look up"))?
        .ok_or_else(|| {
            AgentError::Internal(format!(
                "ENI {} ({}) is not on the node",
                i.eni_id, i.host_ifname
            ))
        })?;
    host.move_to_netns(link.index, pod, &i.ifname)
        .await
        .map_err(w("move into the pod"))?;
    let moved = pod_nl
        .link_by_name(&i.ifname)
        .await
        .map_err(w("look up in the pod"))?
        .ok_or_else(|| {
            AgentError::Internal(format!("ENI {} did not appear in the pod", i.eni_id))
        })?;
    Ok(moved.index)
}

fn mac(s: &str) -> AgentResult<Mac> {
    s.parse()
        .map_err(|e| AgentError::Internal(format!("bad MAC in plan: {e}")))
}

/// `ip link add <host> type veth peer name <ifname> netns <pod>`, left down; its ifindex.
async fn create_veth(
    host: &Netlink,
    pod: &NetNs,
    i: &PodInterface,
    link_group: u32,
) -> AgentResult<u32> {
    let w = |what: &str| AgentError::wiring(format!("{what} for {} ({})", i.ifname, i.host_ifname));
    host.add_veth(&VethSpec {
        name: &i.host_ifname,
        mac: mac(&i.host_mac)?,
        peer_name: &i.ifname,
        peer_mac: mac(&i.mac)?,
        peer_netns: pod,
        mtu: i.mtu,
        group: link_group,
    })
    .await
    .map_err(w("create veth"))?;
    let link = host
        .link_by_name(&i.host_ifname)
        .await
        .map_err(w("look up host veth"))?
        .ok_or_else(|| {
            AgentError::Internal(format!("{} vanished after creation", i.host_ifname))
        })?;
    Ok(link.index)
}

/// Up, then the routes and rules that send the pod's traffic its way.
async fn finish_host_side(host: &Netlink, i: &PodInterface, index: u32) -> AgentResult<()> {
    let w = |what: &str| AgentError::wiring(format!("{what} for {} ({})", i.ifname, i.host_ifname));
    // Loose reverse-path filtering (DESIGN §3): strict mode drops replies that arrive on an
    // ENI other than the one the main table would use.
    sysctl::write(&format!("net.ipv4.conf.{}.rp_filter", i.host_ifname), "2")
        .map_err(w("set rp_filter"))?;
    host.set_up(index).await.map_err(w("set host veth up"))?;
    host.replace_route(&RouteSpec {
        dst: host32(i.ip),
        gw: None,
        oif: index,
        table: TABLE_MAIN,
        onlink: false,
    })
    .await
    .map_err(w("route to the pod"))?;
    for rule in host_rules(i) {
        host.add_rule(&rule).await.map_err(w("host rule"))?;
    }
    Ok(())
}

async fn setup_pod_side(pod: &Netlink, i: &PodInterface) -> AgentResult<()> {
    let w = |what: &str| AgentError::wiring(format!("{what} for {} in the pod", i.ifname));
    let link = pod
        .link_by_name(&i.ifname)
        .await
        .map_err(w("look up"))?
        .ok_or_else(|| AgentError::Internal(format!("{} did not appear in the pod", i.ifname)))?;
    pod.set_up(link.index).await.map_err(w("set up"))?;
    pod.add_addr(link.index, i.ip, i.prefix_len)
        .await
        .map_err(w("add address"))?;
    if !i.exclusive {
        pod.replace_permanent_neigh(link.index, i.gateway, mac(&i.host_mac)?)
            .await
            .map_err(w("gateway neighbour"))?;
    }
    for r in &i.routes {
        pod.replace_route(&RouteSpec {
            dst: r.dst,
            gw: Some(r.gw),
            oif: link.index,
            table: r.table.unwrap_or(TABLE_MAIN),
            onlink: true,
        })
        .await
        .map_err(w("route"))?;
    }
    pod.add_rule(&pod_rule(i)).await.map_err(w("rule"))?;
    Ok(())
}
