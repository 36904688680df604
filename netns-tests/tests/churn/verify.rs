//! The end state: agents settled, live pods intact, store = kernel = cloud, and, once every pod
//! is gone and the pools drained, nothing held in the cloud beyond the minimum.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use tandem_common::api::{EnisReply, MappingReply, PATH_ENIS, PATH_MAPPING};
use tandem_common::vpcsim::{DescribeEnisRequest, Eni};
use tandem_lab::lab::{http::block_on, probe, Lab};

use super::common::{agent_get, ip_out, pods, status, wait_for};
use super::driver::{LivePod, NODES};

const PLATFORM: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 10);

/// Both agents ready with an empty release queue; `GET /v1/mapping` consistent on both.
pub fn settled(lab: &Lab, timeout: Duration) -> Vec<String> {
    let mut problems = Vec::new();
    for node in NODES {
        let drained = wait_for(timeout, || {
            let s = status(lab, node);
            s.ready && s.pending_releases == 0
        });
        if !drained {
            problems.push(format!("{node}: not settled: {:?}", status(lab, node)));
        }
        // A refill or release in flight is seen by the cloud before the store: poll.
        let mut last = MappingReply::default();
        let consistent = wait_for(timeout, || {
            last = agent_get(lab, node, PATH_MAPPING);
            last.consistent
        });
        if !consistent {
            problems.push(format!("{node}: mapping: {}", last.problems.join("; ")));
        }
    }
    problems
}

/// Both interfaces in the pod with the result's addresses; the platform reachable over eth0
/// and the tenant vSwitch's gateway over eth1.
pub fn live_pod(lab: &Lab, p: &LivePod) -> Vec<String> {
    let mut problems = Vec::new();
    let name = &p.pod.name;
    for (ifname, ip, len) in &p.ifaces {
        let addrs = ip_out(&p.pod.netns, &["-o", "-4", "addr", "show", "dev", ifname]);
        if !addrs.contains(&format!("inet {ip}/{len} ")) {
            problems.push(format!("{name}: {ifname} lacks {ip}/{len}: {addrs:?}"));
        }
    }
    let gateway = lab
        .topology()
        .vswitch(&format!("vsw-{}", p.tenant))
        .expect("tenant vSwitch")
        .gateway;
    let targets = [("eth0", PLATFORM), ("eth1", gateway)];
    for ((ifname, src, _), (want, dst)) in p.ifaces.iter().zip(targets) {
        assert_eq!(ifname, want, "{name}: interface order");
        // Up to 3 tries: the first may race an ARP resolution.
        let ok = (0..3).any(|_| probe::ping(&p.pod.netns, dst, Some(*src)).unwrap());
        if !ok {
            problems.push(format!("{name} ({}): no ping {src} -> {dst}", p.tenant));
        }
    }
    problems
}

/// What vpcsim says is attached to `instance` (the primary ENI included).
fn cloud_enis(lab: &Lab, instance: Option<&str>) -> Vec<Eni> {
    let c = lab.vpcsim();
    let req = DescribeEnisRequest {
        instance_id: instance.map(str::to_owned),
        ..Default::default()
    };
    block_on(async move { c.describe(&req).await }).expect("DescribeNetworkInterfaces")
}

/// The store's ENIs and addresses are vpcsim's; its pods are exactly the live pods.
pub fn store_matches_cloud(lab: &Lab, node: &str, live: &[&LivePod]) -> Vec<String> {
    let mut problems = Vec::new();
    let instance = &lab.node(node).unwrap().instance_id;
    let store: EnisReply = agent_get(lab, node, PATH_ENIS);
    let cloud = cloud_enis(lab, Some(instance));
    let ids = |v: Vec<String>| v.into_iter().collect::<BTreeSet<_>>();
    let store_ids = ids(store.enis.iter().map(|e| e.id.clone()).collect());
    let cloud_ids = ids(cloud.iter().map(|e| e.id.clone()).collect());
    if store_ids != cloud_ids {
        problems.push(format!(
            "{node}: ENIs: store {store_ids:?} != cloud {cloud_ids:?}"
        ));
    }
    let store_ips: BTreeSet<Ipv4Addr> = store
        .enis
        .iter()
        .flat_map(|e| e.ips.iter().map(|u| u.ip))
        .collect();
    let cloud_ips: BTreeSet<Ipv4Addr> = cloud
        .iter()
        .flat_map(|e| e.secondary_ips.iter().copied())
        .collect();
    if store_ips != cloud_ips {
        let only_store: Vec<_> = store_ips.difference(&cloud_ips).collect();
        let only_cloud: Vec<_> = cloud_ips.difference(&store_ips).collect();
        problems.push(format!(
            "{node}: addresses only in the store {only_store:?}, only in the cloud {only_cloud:?}"
        ));
    }
    let agent_pods = pods(lab, node).pods;
    let held = ids(agent_pods
        .iter()
        .map(|p| p.key.container_id.clone())
        .collect());
    let want = ids(live.iter().map(|p| p.pod.container_id.clone()).collect());
    if held != want {
        problems.push(format!(
            "{node}: agent holds {} pods, {} live; extra {:?}, missing {:?}",
            held.len(),
            want.len(),
            held.difference(&want).collect::<Vec<_>>(),
            want.difference(&held).collect::<Vec<_>>()
        ));
    }
    let agent_ips: BTreeSet<Ipv4Addr> = agent_pods
        .iter()
        .flat_map(|p| p.interfaces.iter().map(|i| i.ip))
        .collect();
    let live_ips: BTreeSet<Ipv4Addr> = live
        .iter()
        .flat_map(|p| p.ifaces.iter().map(|i| i.1))
        .collect();
    if agent_ips != live_ips {
        problems.push(format!(
            "{node}: pod addresses: agent {agent_ips:?} != live {live_ips:?}"
        ));
    }
    problems
}

/// With no pod left and `minIps` 0, vpcsim holds only the instances' primary ENIs, without
/// secondary addresses, and nothing else (no ENI left attached, detached or never attached).
pub fn drained(lab: &Lab, timeout: Duration) -> Result<(), String> {
    let primaries: BTreeSet<String> = NODES
        .iter()
        .map(|n| lab.node(n).unwrap().instance_id.clone())
        .collect();
    let mut last = Vec::new();
    let ok = wait_for(timeout, || {
        last = cloud_enis(lab, None);
        let mut instances = BTreeSet::new();
        let all_primary = last.iter().all(|e| match &e.attachment {
            Some(a) => {
                instances.insert(a.instance_id.clone());
                a.device_index == 0 && e.secondary_ips.is_empty()
            }
            None => false,
        });
        all_primary && last.len() == primaries.len() && instances == primaries
    });
    if ok {
        return Ok(());
    }
    let left: Vec<String> = last
        .iter()
        .map(|e| {
            let at = e.attachment.as_ref();
            let at = at.map(|a| format!("{}#{}", a.instance_id, a.device_index));
            format!(
                "{} ({}, attached {at:?}, {} secondary IPs, tags {:?})",
                e.id,
                e.vswitch_id,
                e.secondary_ips.len(),
                e.tags
            )
        })
        .collect();
    Err(format!("vpcsim still holds: {}", left.join("; ")))
}
