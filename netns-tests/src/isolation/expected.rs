//! The matrix the security groups imply, computed by the agent's reference evaluator
//! (`tandem_agent::policy::reference`) from the lab's config files: every probe is replayed
//! packet by packet (handshake, data, replies) through the endpoints it crosses — the source
//! pod's interface on the way out, the destination pod's on the way in, and back — with the
//! evaluator's own conntrack. Nothing about the expected answers is written by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use tandem_agent::policy::compile::{PolicyInput, PolicySpec};
use tandem_agent::policy::packet::{Packet, L3, L4, TCP_ACK, TCP_SYN};
use tandem_agent::policy::reference::Reference;
use tandem_agent::policy::{ControlClass, EndpointConfig, Role, Timeouts};

use super::config::LabPolicy;
use super::matrix::{Cell, Isolation, Outcomes, Via};
use super::probe::Service;
use super::IsolationError;

/// The control network as the agents configure it: the control vSwitch is pods (never reach
/// each other), the platform CIDRs and the node's own address may talk to control interfaces.
#[derive(Debug, Clone)]
pub struct ControlNet {
    pub vswitch: Ipv4Net,
    pub platform: Vec<Ipv4Net>,
    /// Node name → its address.
    pub node_ips: BTreeMap<String, Ipv4Addr>,
}

/// The policy spec of each pod of the matrix (`None` for hosts).
pub fn pod_specs(
    iso: &Isolation,
    policy: &LabPolicy,
) -> Result<Vec<Option<PolicySpec>>, IsolationError> {
    iso.parties
        .iter()
        .map(|p| {
            let Some(p) = p.pod() else { return Ok(None) };
            policy
                .pod_policy(&p.tenant, &p.k8s_namespace, &p.name)
                .map(Some)
                .ok_or_else(|| IsolationError::NoTenant {
                    pod: p.name.clone(),
                    tenant: p.tenant.clone(),
                })
        })
        .collect()
}

/// The expected outcome of every cell of `iso`.
pub fn expected(
    iso: &Isolation,
    policy: &LabPolicy,
    control: &ControlNet,
) -> Result<Outcomes, IsolationError> {
    let specs = pod_specs(iso, policy)?;
    let mut members: BTreeMap<String, BTreeSet<Ipv4Addr>> = BTreeMap::new();
    let mut policies: BTreeMap<u32, PolicySpec> = BTreeMap::new();
    for (party, spec) in iso.parties.iter().zip(&specs) {
        let (Some(pod), Some(spec)) = (party.pod(), spec) else {
            continue;
        };
        for g in &spec.groups {
            members.entry(g.clone()).or_default().insert(pod.tenant_ip);
        }
        policies.insert(spec.id(), spec.clone());
    }
    let input = PolicyInput {
        groups: policy.groups.clone(),
        members,
        policies: policies.into_values().collect(),
    };
    // One evaluator per node, as each node has its own datapath (and conntrack).
    let mut refs = BTreeMap::new();
    for (node, node_ip) in &control.node_ips {
        let mut r = Reference::new(Timeouts::default());
        r.set_policy(input.clone(), 1)?;
        r.set_control_peer(control.vswitch, ControlClass::Pod);
        for c in &control.platform {
            r.set_control_peer(*c, ControlClass::Platform);
        }
        r.set_control_peer(Ipv4Net::from(*node_ip), ControlClass::Platform);
        refs.insert(node.clone(), r);
    }
    for (i, (party, spec)) in iso.parties.iter().zip(&specs).enumerate() {
        let (Some(pod), Some(spec)) = (party.pod(), spec) else {
            continue;
        };
        let r = refs
            .get_mut(&pod.node)
            .ok_or_else(|| IsolationError::NoNode(pod.node.clone()))?;
        for via in Via::ALL {
            let (ip, role) = match via {
                Via::Tenant => (
                    pod.tenant_ip,
                    Role::Tenant {
                        policy_id: spec.id(),
                    },
                ),
                Via::Control => (pod.control_ip, Role::Control),
            };
            let ifindex = ifindex(i, via);
            r.set_endpoint(
                ifindex,
                EndpointConfig {
                    endpoint_id: ifindex,
                    role,
                    ip,
                    mac: mac(ifindex),
                    audit: false,
                    recheck: false,
                },
            );
        }
    }
    let mut sim = Sim {
        refs,
        now: 0,
        port: 40_000,
    };
    Ok(iso.cells.iter().map(|c| (*c, sim.cell(iso, c))).collect())
}

/// Interfaces of the simulated node(s): two per party index.
fn ifindex(party: usize, via: Via) -> u32 {
    party as u32 * 2 + if via == Via::Tenant { 1 } else { 2 }
}

fn mac(ifindex: u32) -> [u8; 6] {
    let b = ifindex.to_be_bytes();
    [0x02, 0, b[0], b[1], b[2], b[3]]
}

struct Sim {
    /// Node name → its evaluator.
    refs: BTreeMap<String, Reference>,
    now: u64,
    port: u16,
}

/// One packet of an exchange: `forward` is from the probe's source to its destination.
struct Step {
    forward: bool,
    l4: L4,
}

impl Sim {
    fn cell(&mut self, iso: &Isolation, c: &Cell) -> bool {
        let (a, b) = (&iso.parties[c.from], &iso.parties[c.to]);
        let a_ep = a.pod().map(|p| (p.node.as_str(), ifindex(c.from, c.via)));
        let b_ep = b.pod().map(|p| (p.node.as_str(), ifindex(c.to, c.via)));
        let (a_ip, b_ip) = (a.addr(c.via), b.addr(c.via));
        self.port += 1;
        let (sport, dport) = (self.port, c.service.port());
        let tcp = |forward, flags| Step {
            forward,
            l4: if forward {
                L4::Tcp {
                    sport,
                    dport,
                    flags,
                }
            } else {
                L4::Tcp {
                    sport: dport,
                    dport: sport,
                    flags,
                }
            },
        };
        let steps = match c.service {
            Service::Http | Service::Https => vec![
                tcp(true, TCP_SYN),
                tcp(false, TCP_SYN | TCP_ACK),
                tcp(true, TCP_ACK),
                tcp(false, TCP_ACK),
            ],
            Service::Dns => vec![
                Step {
                    forward: true,
                    l4: L4::Udp { sport, dport },
                },
                Step {
                    forward: false,
                    l4: L4::Udp {
                        sport: dport,
                        dport: sport,
                    },
                },
            ],
            Service::Ping => [(true, 8), (false, 0)]
                .into_iter()
                .map(|(forward, icmp_type)| Step {
                    forward,
                    l4: L4::Icmp {
                        icmp_type,
                        code: 0,
                        id: sport,
                    },
                })
                .collect(),
        };
        steps.iter().all(|s| {
            let (src, dst, out_ep, in_ep) = if s.forward {
                (a_ip, b_ip, a_ep, b_ep)
            } else {
                (b_ip, a_ip, b_ep, a_ep)
            };
            self.hop(out_ep, true, src, dst, s.l4) && self.hop(in_ep, false, src, dst, s.l4)
        })
    }

    /// The packet through endpoint `ep` of a node (none: no datapath on that side).
    fn hop(
        &mut self,
        ep: Option<(&str, u32)>,
        from_pod: bool,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        l4: L4,
    ) -> bool {
        let Some((node, ep)) = ep else { return true };
        let Some(r) = self.refs.get_mut(node) else {
            return false;
        };
        self.now += 1_000_000;
        let p = Packet {
            src_mac: if from_pod {
                mac(ep)
            } else {
                [2, 0xff, 0, 0, 0, 1]
            },
            dst_mac: if from_pod {
                [2, 0xff, 0, 0, 0, 1]
            } else {
                mac(ep)
            },
            l3: L3::Ipv4 {
                src,
                dst,
                frag_offset: 0,
                l4,
            },
        };
        r.process(ep, from_pod, &p, self.now).pass
    }
}
