//! Store ↔ kernel ↔ cloud: what each holds, where they differ, and the start-up repair of the
//! kernel side.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use tandem_common::api::{Inventory, MappingReply};
use tandem_common::vpcsim::DescribeEnisRequest;
use tandem_hostnet::NetNs;

use super::Agent;
use crate::error::{AgentError, AgentResult};
use crate::wiring::{self, RULE_FROM_POD, RULE_TO_POD};

/// What the node's kernel shows of Tandem: pod addresses with their `to <ip>` rule, host
/// veths, and the devices of attached ENIs (by MAC).
struct KernelView {
    pod_ips: BTreeSet<Ipv4Addr>,
    veths: BTreeSet<String>,
    macs: BTreeSet<String>,
    /// Rules of Tandem's priorities, as (priority, ip).
    rules: Vec<(u32, Ipv4Addr)>,
}

impl Agent {
    async fn kernel_view(&self) -> AgentResult<KernelView> {
        let internal = |e: tandem_hostnet::HostnetError| AgentError::Internal(e.to_string());
        let links = self.host.links().await.map_err(internal)?;
        let rules = self.host.rules().await.map_err(internal)?;
        let mut view = KernelView {
            pod_ips: BTreeSet::new(),
            veths: links
                .iter()
                .filter(|l| l.name.starts_with("tdm"))
                .map(|l| l.name.clone())
                .collect(),
            macs: links
                .iter()
                .filter_map(|l| l.mac.map(|m| m.to_string()))
                .collect(),
            rules: Vec::new(),
        };
        for r in rules {
            let ip = match r.priority {
                RULE_TO_POD => r.dst.map(|d| d.addr()),
                RULE_FROM_POD => r.src.map(|s| s.addr()),
                _ => None,
            };
            if let Some(ip) = ip {
                view.rules.push((r.priority, ip));
                if r.priority == RULE_TO_POD {
                    view.pod_ips.insert(ip);
                }
            }
        }
        Ok(view)
    }

    pub async fn mapping(&self) -> AgentResult<MappingReply> {
        let filter = DescribeEnisRequest {
            instance_id: Some(self.cfg.instance_id.clone()),
            ..Default::default()
        };
        let cloud_enis = self.cloud.describe_enis(&filter).await?;
        let kernel = self.kernel_view().await?;
        let state = self.state.lock().await;
        let mut problems = Vec::new();
        let mut store = Inventory::default();
        for e in state.enis.values() {
            store.enis.insert(e.id.clone());
            store.eni_ips.extend(e.ips.iter().copied());
        }
        let mut owners: BTreeMap<Ipv4Addr, usize> = BTreeMap::new();
        let mut kinv = Inventory {
            pod_ips: kernel.pod_ips.clone(),
            ..Inventory::default()
        };
        for a in state.allocations.values() {
            for i in &a.interfaces {
                *owners.entry(i.ip).or_default() += 1;
                if i.exclusive {
                    continue;
                }
                store.pod_ips.insert(i.ip);
                if !kernel.veths.contains(&i.host_ifname) {
                    problems.push(format!(
                        "host veth {} of {} is missing",
                        i.host_ifname, a.key.container_id
                    ));
                }
            }
        }
        for (ip, n) in owners.iter().filter(|(_, n)| **n > 1) {
            problems.push(format!("{ip} is held by {n} pods"));
        }
        let mut cloud = Inventory::default();
        for e in cloud_enis
            .iter()
            .filter(|e| state.enis.contains_key(&e.id) || self.is_managed(e))
        {
            cloud.enis.insert(e.id.clone());
            cloud.eni_ips.extend(e.secondary_ips.iter().copied());
        }
        for e in state.enis.values() {
            let in_pod = e.exclusive && state.used_ips().contains_key(&e.primary_ip);
            if in_pod || kernel.macs.contains(&e.mac) {
                kinv.enis.insert(e.id.clone());
            }
        }
        diff(
            &mut problems,
            "ENIs",
            "store",
            &store.enis,
            "cloud",
            &cloud.enis,
        );
        diff(
            &mut problems,
            "ENIs",
            "store",
            &store.enis,
            "kernel",
            &kinv.enis,
        );
        diff(
            &mut problems,
            "ENI addresses",
            "store",
            &store.eni_ips,
            "cloud",
            &cloud.eni_ips,
        );
        diff(
            &mut problems,
            "pod addresses",
            "store",
            &store.pod_ips,
            "kernel",
            &kinv.pod_ips,
        );
        Ok(MappingReply {
            consistent: problems.is_empty(),
            problems,
            store,
            kernel: kinv,
            cloud,
        })
    }

    fn is_managed(&self, e: &tandem_common::vpcsim::Eni) -> bool {
        e.tags.get(super::reconcile::TAG_CLUSTER) == Some(&self.cfg.cluster)
            && e.tags.get(super::reconcile::TAG_NODE) == Some(&self.cfg.node)
    }

    /// Start-up repair of the node: re-wire pods whose host side is missing, remove Tandem
    /// veths and rules that no allocation explains. Each repair is logged.
    pub(crate) async fn repair_kernel(&self) -> AgentResult<()> {
        let kernel = self.kernel_view().await?;
        let allocs: Vec<_> = self
            .state
            .lock()
            .await
            .allocations
            .values()
            .cloned()
            .collect();
        let mut known_veths = BTreeSet::new();
        let mut known_ips = BTreeSet::new();
        for a in &allocs {
            for i in a.interfaces.iter().filter(|i| !i.exclusive) {
                known_veths.insert(i.host_ifname.clone());
                known_ips.insert(i.ip);
            }
            let missing = a
                .interfaces
                .iter()
                .any(|i| !i.exclusive && !kernel.veths.contains(&i.host_ifname));
            let Ok(pod) = NetNs::open(&a.netns) else {
                continue; // the sweep releases pods whose netns is gone
            };
            if missing {
                tracing::warn!(container = %a.key.container_id, "repair: re-wiring a pod whose host side is missing");
                let ns = wiring::Namespaces {
                    host: &self.host,
                    node: &self.node_ns,
                    pod: Some(&pod),
                };
                let shared: Vec<_> = a
                    .interfaces
                    .iter()
                    .filter(|i| !i.exclusive)
                    .cloned()
                    .collect();
                for e in wiring::teardown(&ns, &a.key.container_id, &shared, a.link_group).await {
                    tracing::warn!(error = %e, "repair teardown");
                }
                self.unenforce(a);
                let enforce =
                    |pod: &NetNs, wired: &[wiring::Wired<'_>]| self.enforce(a, pod, wired);
                wiring::setup(&self.host, &pod, &shared, a.link_group, &enforce).await?;
            }
        }
        for v in kernel.veths.difference(&known_veths) {
            tracing::warn!(link = %v, "repair: deleting a host veth no pod owns");
            if let Ok(Some(l)) = self.host.link_by_name(v).await {
                let _ = self.host.del_link(l.index).await;
                if let Some(enf) = self.enforcement() {
                    if let Err(e) = enf
                        .dp
                        .lock()
                        .expect("datapath lock")
                        .detach_endpoint(l.index)
                    {
                        tracing::warn!(link = %v, error = %e, "cannot unpin its links");
                    }
                }
            }
        }
        let rules = self
            .host
            .rules()
            .await
            .map_err(|e| AgentError::Internal(e.to_string()))?;
        for r in rules {
            let ip = match r.priority {
                RULE_TO_POD => r.dst.map(|d| d.addr()),
                RULE_FROM_POD => r.src.map(|s| s.addr()),
                _ => None,
            };
            if ip.is_some_and(|ip| !known_ips.contains(&ip)) {
                tracing::warn!(rule = ?r, "repair: deleting a rule no pod owns");
                let _ = self.host.del_rule(&r).await;
            }
        }
        Ok(())
    }
}

fn diff<T: Ord + std::fmt::Display>(
    problems: &mut Vec<String>,
    what: &str,
    a_name: &str,
    a: &BTreeSet<T>,
    b_name: &str,
    b: &BTreeSet<T>,
) {
    let only_a: Vec<String> = a.difference(b).map(|x| x.to_string()).collect();
    let only_b: Vec<String> = b.difference(a).map(|x| x.to_string()).collect();
    if !only_a.is_empty() {
        problems.push(format!(
            "{what} in the {a_name} but not the {b_name}: {}",
            only_a.join(", ")
        ));
    }
    if !only_b.is_empty() {
        problems.push(format!(
            "{what} in the {b_name} but not the {a_name}: {}",
            only_b.join(", ")
        ));
    }
}
