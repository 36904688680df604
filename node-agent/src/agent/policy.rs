//! Security groups on the node (DESIGN §4): the agent derives every pod interface's policy from
//! the model, keeps the datapath's rule set compiled and applied, attaches each host veth before
//! it comes up (strict start), and publishes its pods' memberships for the other nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use tandem_common::api::{PodInterface, PodRef, Role as IfaceRole};
use tandem_hostnet::NetNs;
use tokio::sync::Notify;

use super::Agent;
use crate::error::{AgentError, AgentResult};
use crate::model::{EndpointSpec, Model, TenantNetwork};
use crate::policy::compile::{self, PolicyInput, PolicySpec};
use crate::policy::datapath::{Datapath, DatapathOptions, Hook, Site};
use crate::policy::model::EnvironmentPolicy;
use crate::policy::{ControlClass, EndpointConfig, Role};
use crate::state::{Allocation, State, LINK_GROUP_BASE};
use crate::wiring::Wired;

/// Changes are gathered this long before a commit: an ADD's membership change then commits
/// after the ADD's own attaches and state write instead of competing with them (measured: ADD
/// p50 64–67 ms with it, 69–73 ms committing at once), and a burst of ADDs costs one commit.
const DEBOUNCE: Duration = Duration::from_millis(10);

/// The loaded datapath and what the agent keeps beside it.
pub struct Enforcement {
    pub(crate) dp: Mutex<Datapath>,
    /// Attaches without holding `dp`.
    kit: crate::policy::datapath::AttachKit,
    /// Node-side name (host veth, or the exclusive ENI's name on the node) → ifindex of every
    /// enforced interface (an exclusive ENI keeps its node ifindex inside the pod).
    pub(crate) ifindex: Mutex<BTreeMap<String, u32>>,
    /// Wakes the recompile task.
    pub(crate) dirty: Notify,
}

impl Enforcement {
    pub fn open(root: PathBuf) -> AgentResult<Enforcement> {
        let err = |e: crate::policy::datapath::DatapathError| AgentError::Policy(e.to_string());
        let dp = Datapath::open(DatapathOptions::new(root)).map_err(err)?;
        let kit = dp.attach_kit().map_err(err)?;
        Ok(Enforcement {
            dp: Mutex::new(dp),
            kit,
            ifindex: Mutex::new(BTreeMap::new()),
            dirty: Notify::new(),
        })
    }

    fn dp(&self) -> std::sync::MutexGuard<'_, Datapath> {
        self.dp.lock().expect("datapath lock")
    }

    /// Enforce on interfaces that are still down: endpoint entries first (an attached link
    /// without one drops everything), then the programs on every hook. Host veths are
    /// attached from here (the node netns); devices inside the pod from a thread in `pod`.
    pub(crate) fn attach_all(&self, pod: &NetNs, entries: &[Entry<'_>]) -> AgentResult<()> {
        // Neither step takes `dp`: an ADD never waits for a rule-set commit (RCU grace
        // periods), nor a commit for an ADD's attaches (each waits for one under RTNL).
        for e in entries {
            self.kit
                .set_endpoint(e.ifindex, &e.cfg)
                .map_err(|err| AgentError::Policy(format!("endpoint of {}: {err}", e.name)))?;
        }
        let attach = |e: &Entry<'_>| {
            for hook in Hook::ALL {
                self.kit
                    .attach(e.ifindex, e.site, hook)
                    .map_err(|err| AgentError::Policy(format!("attach to {}: {err}", e.name)))?;
            }
            Ok::<(), AgentError>(())
        };
        tokio::task::block_in_place(|| {
            for e in entries {
                match e.site {
                    Site::HostVeth => attach(e)?,
                    Site::PodDevice => pod
                        .run(|| attach(e))
                        .map_err(|err| AgentError::Policy(format!("enter the pod: {err}")))??,
                }
            }
            Ok::<(), AgentError>(())
        })?;
        let mut idx = self.ifindex.lock().expect("ifindex lock");
        for e in entries {
            idx.insert(e.name.to_string(), e.ifindex);
        }
        Ok(())
    }

    /// Stop enforcing on an interface (by its node-side name).
    pub(crate) fn detach(&self, name: &str) {
        let idx = self.ifindex.lock().expect("ifindex lock").remove(name);
        if let Some(idx) = idx {
            if let Err(e) = self.dp().detach_endpoint(idx) {
                tracing::warn!(link = name, error = %e, "detach of the datapath failed");
            }
        }
    }
}

/// One interface to enforce on.
pub(crate) struct Entry<'a> {
    /// Node-side name: the host veth, or the exclusive ENI's name on the node.
    pub name: &'a str,
    /// In the netns of `site`.
    pub ifindex: u32,
    pub site: Site,
    pub cfg: EndpointConfig,
}

/// Unique per interface on the node: from the allocation's link group and the slot.
pub(crate) fn endpoint_id(alloc_link_group: u32, slot: usize) -> u32 {
    ((alloc_link_group.wrapping_sub(LINK_GROUP_BASE) & 0x7fff_ffff) << 1 | slot as u32) + 1
}

fn mac_bytes(mac: &str) -> [u8; 6] {
    mac.parse::<tandem_hostnet::Mac>()
        .map(|m| m.0)
        .unwrap_or_default()
}

impl Agent {
    pub(crate) fn enforcement(&self) -> Option<&Enforcement> {
        self.enforcement.as_deref()
    }

    /// The tenant environment as the compiler takes it: internal = the tenant's vSwitches and
    /// the platform.
    fn environment(&self, t: &TenantNetwork) -> EnvironmentPolicy {
        let mut internal: Vec<Ipv4Net> = t
            .spec
            .v_switches
            .iter()
            .filter_map(|v| self.vswitches.get(v).map(|v| v.cidr))
            .collect();
        internal.extend(self.cfg.control.platform_cidrs.iter().copied());
        EnvironmentPolicy {
            name: t.name.clone(),
            kind: t.spec.environment,
            internal,
            egress_allow: t.spec.egress_allow.clone(),
            // The control vSwitch: the nodes' own addresses and the other pods' control
            // interfaces are never a tenant's to reach, even in an open environment.
            exclude: self
                .vswitches
                .get(&self.cfg.control.v_switch)
                .map(|v| vec![v.cidr])
                .unwrap_or_default(),
        }
    }

    /// The policy of a pod's tenant interface: its groups and its tenant's environment.
    pub(crate) fn pod_policy(
        &self,
        model: &Model,
        tenant: &str,
        pod: &PodRef,
    ) -> Option<PolicySpec> {
        let t = model.tenants.get(tenant)?;
        Some(PolicySpec {
            groups: model.pod_security_groups(t, &pod.namespace, &pod.name),
            environment: self.environment(t),
        })
    }

    /// The endpoint entry of one pod interface.
    pub(crate) fn endpoint_config(
        &self,
        alloc_link_group: u32,
        slot: usize,
        i: &PodInterface,
        policy_id: u32,
    ) -> EndpointConfig {
        EndpointConfig {
            endpoint_id: endpoint_id(alloc_link_group, slot),
            role: match i.role {
                IfaceRole::Control => Role::Control,
                IfaceRole::Tenant => Role::Tenant { policy_id },
            },
            ip: i.ip,
            mac: mac_bytes(&i.mac),
            audit: self.cfg.policy.audit,
            recheck: self.cfg.policy.recheck,
        }
    }

    /// Everything the node enforces: every group, its members on all nodes, and the policies
    /// of the local pods (plus `extra`, one being added).
    fn policy_input(
        &self,
        state: &State,
        model: &Model,
        extra: Option<&PolicySpec>,
    ) -> PolicyInput {
        let mut members: BTreeMap<String, BTreeSet<Ipv4Addr>> = BTreeMap::new();
        let mut policies: BTreeMap<u32, PolicySpec> = BTreeMap::new();
        for a in state.allocations.values() {
            let Some(spec) = self.pod_policy(model, &a.tenant, &a.pod) else {
                continue;
            };
            for i in a.interfaces.iter().filter(|i| i.role == IfaceRole::Tenant) {
                for g in &spec.groups {
                    members.entry(g.clone()).or_default().insert(i.ip);
                }
            }
            policies.insert(spec.id(), spec);
        }
        for e in model.endpoints.iter().filter(|e| e.node != self.cfg.node) {
            for g in &e.security_groups {
                members.entry(g.clone()).or_default().insert(e.ip);
            }
        }
        if let Some(spec) = extra {
            policies.insert(spec.id(), spec.clone());
        }
        PolicyInput {
            groups: model.security_groups.clone(),
            members,
            policies: policies.into_values().collect(),
        }
    }

    /// Compile and apply the whole rule set, then point every local endpoint at its (possibly
    /// new) policy. `extra` is the policy of a pod being added.
    pub(crate) async fn recompile(&self, extra: Option<PolicySpec>) -> AgentResult<()> {
        let Some(enf) = self.enforcement() else {
            return Ok(());
        };
        let started = Instant::now();
        let (input, allocs) = {
            let state = self.state.lock().await;
            let model = self.model.read().expect("model lock");
            (
                self.policy_input(&state, &model, extra.as_ref()),
                state.allocations.values().cloned().collect::<Vec<_>>(),
            )
        };
        let compiled = compile::compile(&input).map_err(|e| AgentError::Policy(e.to_string()))?;
        let endpoints: Vec<(String, u32, EndpointConfig)> = {
            let model = self.model.read().expect("model lock");
            let idx = enf.ifindex.lock().expect("ifindex lock");
            allocs
                .iter()
                .flat_map(|a| self.endpoints_of(a, &model, &idx))
                .collect()
        };
        let compiled_at = started.elapsed();
        // The apply waits for RCU grace periods: off the runtime's workers, so ADDs and the
        // API go on meanwhile.
        let applied = tokio::task::block_in_place(|| {
            let mut dp = enf.dp();
            // A membership change that no rule refers to leaves the tables as they are; an
            // apply would only cost RCU grace periods while ADDs wait for this lock.
            let unchanged = dp.current().is_some_and(|c| {
                c.identities == compiled.identities
                    && c.policies == compiled.policies
                    && c.specs == compiled.specs
                    && c.rules.rules == compiled.rules.rules
            });
            if !unchanged {
                dp.apply(&compiled)
                    .map_err(|e| AgentError::Policy(e.to_string()))?;
            }
            for (name, ifindex, cfg) in &endpoints {
                if let Err(e) = dp.set_endpoint(*ifindex, cfg) {
                    tracing::warn!(link = %name, error = %e, "cannot update an endpoint");
                }
            }
            Ok::<bool, AgentError>(!unchanged)
        })?;
        // Where a change's time goes on this node: compiling (with the state lock), then
        // waiting for the datapath and applying (RCU grace periods when the tables changed).
        tracing::debug!(
            rules = compiled.rules.rules.len(),
            policies = compiled.policies.len(),
            applied,
            compile_us = compiled_at.as_micros() as u64,
            total_us = started.elapsed().as_micros() as u64,
            "security groups applied"
        );
        Ok(())
    }

    fn endpoints_of(
        &self,
        a: &Allocation,
        model: &Model,
        idx: &BTreeMap<String, u32>,
    ) -> Vec<(String, u32, EndpointConfig)> {
        let policy_id = self
            .pod_policy(model, &a.tenant, &a.pod)
            .map(|s| s.id())
            .unwrap_or(0);
        a.interfaces
            .iter()
            .enumerate()
            .filter_map(|(slot, i)| {
                let ifindex = *idx.get(&i.host_ifname)?;
                Some((
                    i.host_ifname.clone(),
                    ifindex,
                    self.endpoint_config(a.link_group, slot, i, policy_id),
                ))
            })
            .collect()
    }

    /// The `wiring::setup` hook: enforce on a pod's interfaces before they come up.
    pub(crate) fn enforce(
        &self,
        alloc: &Allocation,
        pod: &NetNs,
        wired: &[Wired<'_>],
    ) -> AgentResult<()> {
        let Some(enf) = self.enforcement() else {
            return Ok(());
        };
        let policy_id = {
            let model = self.model.read().expect("model lock");
            self.pod_policy(&model, &alloc.tenant, &alloc.pod)
                .map(|s| s.id())
                .unwrap_or(0)
        };
        let entries: Vec<_> = wired
            .iter()
            .map(|w| Entry {
                name: w.iface.host_ifname.as_str(),
                ifindex: w.ifindex,
                site: w.site,
                cfg: self.endpoint_config(alloc.link_group, w.slot, w.iface, policy_id),
            })
            .collect();
        enf.attach_all(pod, &entries)
    }

    /// Stop enforcing on a pod's interfaces (after they are deleted, or out of the pod).
    pub(crate) fn unenforce(&self, alloc: &Allocation) {
        if let Some(enf) = self.enforcement() {
            for i in &alloc.interfaces {
                enf.detach(&i.host_ifname);
            }
        }
    }

    /// Make sure the datapath knows `spec` before an interface points at it.
    pub(crate) async fn ensure_policy(&self, spec: &PolicySpec) -> AgentResult<()> {
        let Some(enf) = self.enforcement() else {
            return Ok(());
        };
        let known = enf
            .dp()
            .current()
            .is_some_and(|c| c.specs.contains_key(&spec.id()));
        if known {
            return Ok(());
        }
        self.recompile(Some(spec.clone())).await
    }

    /// At start: control-network classes, the ifindex of every enforced veth, and the rule
    /// set (applied over the pinned one without a gap: the datapath kept enforcing meanwhile).
    pub(crate) async fn adopt_enforcement(&self) -> AgentResult<()> {
        let Some(enf) = self.enforcement() else {
            return Ok(());
        };
        self.set_control_peers().await?;
        let allocs: Vec<Allocation> = {
            let state = self.state.lock().await;
            state.allocations.values().cloned().collect()
        };
        for a in &allocs {
            for i in &a.interfaces {
                if let Some(ifindex) = self.find_enforced(a, i).await {
                    enf.ifindex
                        .lock()
                        .expect("ifindex lock")
                        .insert(i.host_ifname.clone(), ifindex);
                }
            }
        }
        self.recompile(None).await?;
        self.publish_membership().await;
        Ok(())
    }

    /// The ifindex of a running pod's interface: its host veth on the node, or the exclusive
    /// ENI in the pod's netns (found by MAC). `None` when it is gone.
    async fn find_enforced(&self, a: &Allocation, i: &PodInterface) -> Option<u32> {
        if !i.exclusive {
            let l = self.host.link_by_name(&i.host_ifname).await.ok()??;
            return Some(l.index);
        }
        let pod = NetNs::open(&a.netns).ok()?;
        let mac = i.mac.parse().ok()?;
        let l = pod.netlink().await.ok()?.link_by_mac(mac).await.ok()??;
        Some(l.index)
    }

    /// Recompile whenever the model or the membership changed, [`DEBOUNCE`] after the first
    /// change; a change that arrives during a compile leaves a permit in `dirty` for the next.
    pub(crate) async fn policy_loop(&self) {
        let Some(enf) = self.enforcement() else {
            return;
        };
        loop {
            enf.dirty.notified().await;
            tokio::time::sleep(DEBOUNCE).await;
            // The other nodes first: writing the file takes well under a millisecond, the
            // local apply waits for RCU grace periods, and the two do not depend on each other.
            self.publish_membership().await;
            if let Err(e) = self.recompile(None).await {
                tracing::error!(error = %e, "security groups not applied; the previous rule set stays");
            }
        }
    }

    pub(crate) fn policy_changed(&self) {
        if let Some(enf) = self.enforcement() {
            enf.dirty.notify_one();
        }
    }

    /// The classes of the control network: platform CIDRs and the node itself may talk to
    /// pods' control interfaces; the rest of the control vSwitch (other pods) may not.
    pub(crate) async fn set_control_peers(&self) -> AgentResult<()> {
        let Some(enf) = self.enforcement() else {
            return Ok(());
        };
        let node_ips: Vec<Ipv4Addr> = {
            let state = self.state.lock().await;
            state
                .enis
                .values()
                .filter(|e| e.device_index == 0)
                .map(|e| e.primary_ip)
                .collect()
        };
        let control = self.vswitch(&self.cfg.control.v_switch)?.cidr;
        let mut dp = enf.dp();
        let err = |e: crate::policy::datapath::DatapathError| AgentError::Policy(e.to_string());
        dp.set_control_peer(control, ControlClass::Pod)
            .map_err(err)?;
        for c in &self.cfg.control.platform_cidrs {
            dp.set_control_peer(*c, ControlClass::Platform)
                .map_err(err)?;
        }
        for ip in node_ips {
            dp.set_control_peer(Ipv4Net::from(ip), ControlClass::Platform)
                .map_err(err)?;
        }
        Ok(())
    }

    /// Write this node's pods as `Endpoint` objects for the other agents (lab only).
    pub(crate) async fn publish_membership(&self) {
        let Some(dir) = &self.cfg.membership_dir else {
            return;
        };
        let docs: Vec<String> = {
            let state = self.state.lock().await;
            let model = self.model.read().expect("model lock");
            state
                .allocations
                .values()
                .filter_map(|a| {
                    let spec = self.pod_policy(&model, &a.tenant, &a.pod)?;
                    let ip = a
                        .interfaces
                        .iter()
                        .find(|i| i.role == IfaceRole::Tenant)?
                        .ip;
                    let e = EndpointSpec {
                        node: self.cfg.node.clone(),
                        namespace: a.pod.namespace.clone(),
                        pod: a.pod.name.clone(),
                        tenant: a.tenant.clone(),
                        ip,
                        security_groups: spec.groups,
                    };
                    let body =
                        serde_yaml::to_string(&serde_json::json!({"kind": "Endpoint", "spec": e}))
                            .ok()?;
                    Some(body)
                })
                .collect()
        };
        let path = dir.join(format!("endpoints-{}.yaml", self.cfg.node));
        let tmp = dir.join(format!(".endpoints-{}.tmp", self.cfg.node));
        let text = docs.join("---\n");
        let same = std::fs::read_to_string(&path).is_ok_and(|old| old == text);
        if same {
            return;
        }
        match std::fs::write(&tmp, &text).and_then(|()| std::fs::rename(&tmp, &path)) {
            Ok(()) => tracing::debug!(endpoints = docs.len(), "pod memberships published"),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot publish pod memberships")
            }
        }
    }
}
