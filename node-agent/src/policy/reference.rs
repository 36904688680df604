//! The reference evaluator: the semantics of DESIGN §4 written plainly over the model (rules
//! matched one by one against the packet, group membership looked up directly), with its own
//! conntrack. It mirrors the datapath's decision order so the differential test can compare
//! them packet by packet; it shares only rule normalisation with the compiler.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::abi::{self, CtEntry, CtKey};
use super::compile::{CompileError, PolicyInput, Verdict};
use super::model::{decide, peer_contains, Action, Dir, NormRule, ProtoSlot};
use super::packet::{is_echo, Packet, L3, L4, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
use super::{ControlClass, EndpointConfig, Reason, Role, Timeouts};

/// What happened to one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub pass: bool,
    /// `Pass`, or why it was (or in audit mode would have been) dropped.
    pub reason: Reason,
    pub rule_id: u32,
    /// Passed as part of a tracked flow (a reply, or a later packet of an allowed flow).
    pub tracked: bool,
}

#[derive(Debug, Default)]
pub struct Reference {
    input: PolicyInput,
    policies: BTreeMap<u32, Vec<NormRule>>,
    generation: u32,
    endpoints: BTreeMap<u32, EndpointConfig>,
    control: Vec<(Ipv4Net, ControlClass)>,
    conntrack: HashMap<CtKey, CtEntry>,
    pub timeouts: Timeouts,
}

impl Reference {
    pub fn new(timeouts: Timeouts) -> Reference {
        Reference {
            timeouts,
            ..Default::default()
        }
    }

    /// Replace the rule set; `generation` is what the datapath's commit reported.
    pub fn set_policy(&mut self, input: PolicyInput, generation: u32) -> Result<(), CompileError> {
        let table = input.rule_table()?;
        let mut policies = BTreeMap::new();
        for spec in &input.policies {
            let rules = input
                .policy_rules(&table, spec)?
                .into_iter()
                .cloned()
                .collect();
            policies.insert(spec.id(), rules);
        }
        self.input = input;
        self.policies = policies;
        self.generation = generation;
        Ok(())
    }

    pub fn set_endpoint(&mut self, ifindex: u32, cfg: EndpointConfig) {
        self.endpoints.insert(ifindex, cfg);
    }

    pub fn remove_endpoint(&mut self, ifindex: u32) {
        self.endpoints.remove(&ifindex);
    }

    pub fn set_control_peer(&mut self, net: Ipv4Net, class: ControlClass) {
        self.control.retain(|(n, _)| *n != net);
        self.control.push((net, class));
    }

    pub fn conntrack(&self) -> &HashMap<CtKey, CtEntry> {
        &self.conntrack
    }

    /// The verdict for a new flow in `dir` (Ingress or Egress) with `remote`.
    pub fn new_flow(
        &self,
        policy_id: u32,
        dir: Dir,
        remote: Ipv4Addr,
        ip_proto: u8,
        port: u16,
    ) -> Verdict {
        let deny = |rule_id, by_environment| Verdict {
            allowed: false,
            rule_id,
            by_environment,
        };
        let Some(rules) = self.policies.get(&policy_id) else {
            return deny(0, false);
        };
        let slot = ProtoSlot::of(ip_proto);
        let port = if slot == ProtoSlot::Other { 0 } else { port };
        let decide_dir = |d: Dir| {
            decide(rules.iter().filter(|r| {
                r.dir == d
                    && r.applies_to(slot)
                    && r.covers_port(port)
                    && peer_contains(&r.peer, remote, &self.input.members)
            }))
        };
        let (action, rule_id) = decide_dir(dir).unwrap_or((Action::Drop, 0));
        if action != Action::Accept {
            return deny(rule_id, false);
        }
        if dir == Dir::Egress {
            match decide_dir(Dir::Env) {
                Some((Action::Accept, _)) => {}
                other => return deny(other.map_or(0, |(_, id)| id), true),
            }
        }
        Verdict {
            allowed: true,
            rule_id,
            by_environment: false,
        }
    }

    /// Run one packet arriving on `ifindex` (from the pod, or towards it) at `now_ns`.
    pub fn process(&mut self, ifindex: u32, from_pod: bool, p: &Packet, now_ns: u64) -> Outcome {
        let drop = |reason| Outcome {
            pass: false,
            reason,
            rule_id: 0,
            tracked: false,
        };
        let Some(ep) = self.endpoints.get(&ifindex).copied() else {
            return drop(Reason::NoEndpoint);
        };
        if from_pod && p.src_mac != ep.mac {
            return drop(Reason::SpoofMac);
        }
        let (src, dst, frag_offset, l4) = match p.l3 {
            L3::Other { .. } => return drop(Reason::Unsupported),
            L3::Arp { sender_ip } if from_pod && sender_ip != ep.ip => {
                return drop(Reason::SpoofIp)
            }
            L3::Arp { .. } => return pass(0),
            L3::Ipv4 {
                src,
                dst,
                frag_offset,
                l4,
            } => (src, dst, frag_offset, l4),
        };
        if from_pod && src != ep.ip {
            return drop(Reason::SpoofIp);
        }
        if frag_offset != 0 {
            return drop(Reason::Fragment);
        }
        let remote = if from_pod { dst } else { src };
        match ep.role {
            Role::Control => {
                let class = self
                    .control
                    .iter()
                    .filter(|(n, _)| n.contains(&remote))
                    .max_by_key(|(n, _)| n.prefix_len())
                    .map(|(_, c)| *c);
                if class == Some(ControlClass::Platform) {
                    pass(0)
                } else {
                    deny(&ep, Reason::Control, 0)
                }
            }
            Role::Tenant { policy_id } => {
                self.tenant(&ep, policy_id, from_pod, (src, dst), &l4, now_ns)
            }
        }
    }

    fn tenant(
        &mut self,
        ep: &EndpointConfig,
        policy_id: u32,
        from_pod: bool,
        (src, dst): (Ipv4Addr, Ipv4Addr),
        l4: &L4,
        now: u64,
    ) -> Outcome {
        let proto = l4.ip_proto();
        let remote = if from_pod { dst } else { src };
        let tracked = !matches!(l4, L4::Icmp { icmp_type, .. } if !is_echo(*icmp_type));
        let tcp_flags = match l4 {
            L4::Tcp { flags, .. } => *flags,
            _ => 0,
        };
        let (sport, dport) = l4.ports();
        let key = CtKey {
            endpoint_id: ep.endpoint_id,
            remote_ip: u32::from(remote).to_be(),
            local_ip: u32::from(if from_pod { src } else { dst }).to_be(),
            remote_port: if from_pod { dport } else { sport },
            local_port: if from_pod { sport } else { dport },
            proto,
            _pad: [0; 3],
        };
        if tracked {
            if let Some(e) = self.conntrack.get(&key).copied() {
                if self.usable(&e, proto, tcp_flags, now) {
                    let mut e = e;
                    if ep.recheck && e.generation != self.generation {
                        let odir = if e.origin == abi::ORIGIN_POD {
                            Dir::Egress
                        } else {
                            Dir::Ingress
                        };
                        let v = self.new_flow(policy_id, odir, remote, proto, e.policy_port);
                        if !v.allowed {
                            if !ep.audit {
                                self.conntrack.remove(&key);
                            }
                            return deny(ep, verdict_reason(&v), v.rule_id);
                        }
                        e.generation = self.generation;
                        e.rule_id = v.rule_id;
                    }
                    advance(&mut e, proto, tcp_flags, from_pod, now);
                    self.conntrack.insert(key, e);
                    return Outcome {
                        tracked: true,
                        ..pass(e.rule_id)
                    };
                }
            }
        }
        let port = l4.policy_port();
        let dir = if from_pod { Dir::Egress } else { Dir::Ingress };
        let v = self.new_flow(policy_id, dir, remote, proto, port);
        if !v.allowed {
            return deny(ep, verdict_reason(&v), v.rule_id);
        }
        if tracked {
            let entry = CtEntry {
                last_seen_ns: now,
                generation: self.generation,
                rule_id: v.rule_id,
                policy_port: port,
                state: initial_state(proto, tcp_flags),
                origin: if from_pod {
                    abi::ORIGIN_POD
                } else {
                    abi::ORIGIN_REMOTE
                },
                _pad: 0,
            };
            self.conntrack.insert(key, entry);
        }
        pass(v.rule_id)
    }

    fn usable(&self, e: &CtEntry, proto: u8, tcp_flags: u8, now: u64) -> bool {
        let timeout = u64::from(self.timeouts.for_state(proto, e.state)) * 1_000_000_000;
        if now.wrapping_sub(e.last_seen_ns) > timeout {
            return false;
        }
        let bare_syn = tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN;
        !(proto == 6 && bare_syn && e.state >= abi::CT_CLOSING)
    }
}

fn pass(rule_id: u32) -> Outcome {
    Outcome {
        pass: true,
        reason: Reason::Pass,
        rule_id,
        tracked: false,
    }
}

/// A policy denial: dropped, or passed and logged in audit mode.
fn deny(ep: &EndpointConfig, reason: Reason, rule_id: u32) -> Outcome {
    Outcome {
        pass: ep.audit,
        reason,
        rule_id,
        tracked: false,
    }
}

fn verdict_reason(v: &Verdict) -> Reason {
    if v.by_environment {
        Reason::Environment
    } else {
        Reason::Policy
    }
}

fn initial_state(proto: u8, flags: u8) -> u8 {
    if proto != 6 {
        abi::CT_ESTABLISHED
    } else if flags & TCP_RST != 0 {
        abi::CT_CLOSED
    } else if flags & TCP_FIN != 0 {
        abi::CT_CLOSING
    } else if flags & (TCP_SYN | TCP_ACK) == TCP_SYN {
        abi::CT_SYN_SENT
    } else {
        abi::CT_ESTABLISHED
    }
}

fn advance(e: &mut CtEntry, proto: u8, flags: u8, from_pod: bool, now: u64) {
    e.last_seen_ns = now;
    if proto != 6 {
        return;
    }
    if flags & TCP_RST != 0 {
        e.state = abi::CT_CLOSED;
    } else if flags & TCP_FIN != 0 && e.state < abi::CT_CLOSING {
        e.state = abi::CT_CLOSING;
    } else if e.state == abi::CT_SYN_SENT && u8::from(from_pod) != e.origin {
        e.state = abi::CT_ESTABLISHED;
    }
}
