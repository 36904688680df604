//! The local pod interfaces as the datapath knows them (endpoint id, policy), and the classes
//! of the control network, gathered once per request from the state and the model.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use tandem_common::api::Role;

use super::super::policy::endpoint_id;
use super::super::Agent;
use crate::model::Model;
use crate::policy::compile::PolicySpec;
use crate::policy::ControlClass;
use crate::state::State;

/// One pod interface on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalIface {
    /// `namespace/name`.
    pub pod: String,
    pub tenant: String,
    pub host_ifname: String,
    pub role: Role,
    pub ip: Ipv4Addr,
    pub endpoint_id: u32,
    /// The policy of a tenant interface (`None`: its tenant is unknown, the datapath drops).
    pub policy: Option<PolicySpec>,
}

impl LocalIface {
    pub fn policy_id(&self) -> u32 {
        self.policy.as_ref().map_or(0, PolicySpec::id)
    }
}

/// Every local pod interface.
pub(crate) fn local_ifaces(agent: &Agent, state: &State, model: &Model) -> Vec<LocalIface> {
    let mut out = Vec::new();
    for a in state.allocations.values() {
        let policy = agent.pod_policy(model, &a.tenant, &a.pod);
        for (slot, i) in a.interfaces.iter().enumerate() {
            out.push(LocalIface {
                pod: format!("{}/{}", a.pod.namespace, a.pod.name),
                tenant: a.tenant.clone(),
                host_ifname: i.host_ifname.clone(),
                role: i.role,
                ip: i.ip,
                endpoint_id: endpoint_id(a.link_group, slot),
                policy: policy.clone(),
            });
        }
    }
    out
}

/// Endpoint id → interface, for conntrack entries and events.
pub(crate) fn by_endpoint(ifaces: &[LocalIface]) -> BTreeMap<u32, LocalIface> {
    ifaces.iter().map(|i| (i.endpoint_id, i.clone())).collect()
}

/// Does `pod` (as the user typed it: `name` or `namespace/name`) name `full`?
pub(crate) fn pod_matches(full: &str, pod: &str) -> bool {
    full == pod || full.split_once('/').is_some_and(|(_, n)| n == pod)
}

/// The control network's classes, as `Agent::set_control_peers` writes them: the control
/// vSwitch is pods, the platform CIDRs and the node's own addresses are platform.
#[derive(Debug, Clone, Default)]
pub(crate) struct ControlPeers(pub Vec<(Ipv4Net, ControlClass)>);

impl ControlPeers {
    /// The longest matching prefix decides (as in the `control_peers` LPM trie).
    pub fn class_of(&self, ip: Ipv4Addr) -> Option<(Ipv4Net, ControlClass)> {
        self.0
            .iter()
            .filter(|(n, _)| n.contains(&ip))
            .max_by_key(|(n, _)| n.prefix_len())
            .copied()
    }
}

pub(crate) fn control_peers(agent: &Agent, state: &State) -> ControlPeers {
    let mut out = Vec::new();
    if let Ok(v) = agent.vswitch(&agent.cfg.control.v_switch) {
        out.push((v.cidr, ControlClass::Pod));
    }
    for c in &agent.cfg.control.platform_cidrs {
        out.push((*c, ControlClass::Platform));
    }
    for e in state.enis.values().filter(|e| e.device_index == 0) {
        out.push((Ipv4Net::from(e.primary_ip), ControlClass::Platform));
    }
    ControlPeers(out)
}
