//! The rule sets of the policy benchmark: N security-group rules, and the same rules as
//! iptables FORWARD rules (stateless and stateful).
//!
//! The measured flows (TCP and UDP to the pod's port 5201, new TCP connections to 5300, all
//! from the peer's /24) are allowed by three rules placed in the middle of the list, so a
//! linear evaluator (iptables) walks about half the rules for them, and every other rule has
//! its own peer CIDR and port: nothing can be merged away.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use tandem_agent::model::{Environment, Metadata};
use tandem_agent::policy::compile::{PolicyInput, PolicySpec};
use tandem_agent::policy::model::{
    Action, EnvironmentPolicy, GroupType, PeerSpec, PortsSpec, Protocol, RuleModel, RuleSpec,
    SecurityGroup, SecurityGroupSpec,
};
use tandem_agent::policy::{EndpointConfig, Role};

/// The pod, its gateway on the host veth, the peer and its gateway (see `policy_topo`).
pub const POD_IP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);
/// The pod's MAC (anti-spoofing checks it).
pub const POD_MAC: [u8; 6] = [0x02, 0, 0x0a, 0xc8, 0, 0x02];
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 2);
/// iperf3 (TCP throughput, and its UDP test's data and control connection).
pub const IPERF_PORT: u16 = 5201;
/// The connect/accept loop.
pub const CONN_PORT: u16 = 5300;

const GROUP: &str = "bench-sg";

/// The pod's tenant interface under the benchmark's policy.
pub fn endpoint(endpoint_id: u32) -> EndpointConfig {
    EndpointConfig {
        endpoint_id,
        role: Role::Tenant {
            policy_id: spec().id(),
        },
        ip: POD_IP,
        mac: POD_MAC,
        audit: false,
        recheck: false,
    }
}

/// One generated rule: peer CIDR, protocol (tcp/udp), destination port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchRule {
    pub peer: Ipv4Net,
    pub udp: bool,
    pub lo: u16,
    pub hi: u16,
}

/// `n` rules (at least the 3 matching ones); `variant` changes every non-matching rule's
/// CIDR and port, which is how the rule-set change is made.
pub fn rules(n: usize, variant: u32) -> Vec<BenchRule> {
    let peer_net = Ipv4Net::new(PEER_IP, 24).expect("/24").trunc();
    let matching =
        [(false, IPERF_PORT), (true, IPERF_PORT), (false, CONN_PORT)].map(|(udp, port)| {
            BenchRule {
                peer: peer_net,
                udp,
                lo: port,
                hi: port,
            }
        });
    let others = n.saturating_sub(matching.len());
    let mut out = Vec::with_capacity(others + matching.len());
    // 172.16.0.0/12 and up: never contains the peer or the pod.
    let base = u32::from(Ipv4Addr::new(172, 16, 0, 0)) + (variant % 8) * 0x0004_0000;
    for i in 0..others as u32 {
        if i as usize == others / 2 {
            out.extend(matching);
        }
        let len = if i % 4 == 0 { 28 } else { 32 };
        let peer = Ipv4Net::new(Ipv4Addr::from(base + i * 16), len).expect("valid prefix");
        let lo = 1024 + ((i * 7 + variant * 13) % 60_000) as u16;
        let hi = if i % 5 == 0 { lo + 15 } else { lo };
        out.push(BenchRule {
            peer,
            udp: i % 3 == 2,
            lo,
            hi,
        });
    }
    if out.len() < matching.len() {
        out.extend(matching);
    }
    out
}

/// The rules as one allow-union group on the pod (ingress; egress is the group's default
/// allow-all, replies pass by conntrack), in an open tenant environment.
pub fn policy_input(rules: &[BenchRule]) -> PolicyInput {
    let ingress = rules
        .iter()
        .map(|r| RuleSpec {
            priority: 1,
            action: Action::Accept,
            protocol: if r.udp { Protocol::Udp } else { Protocol::Tcp },
            ports: Some(if r.lo == r.hi {
                PortsSpec::Number(r.lo)
            } else {
                PortsSpec::Text(format!("{}-{}", r.lo, r.hi))
            }),
            icmp: None,
            from: Some(PeerSpec {
                cidr: Some(r.peer),
                group: None,
            }),
            to: None,
        })
        .collect();
    let group = SecurityGroup {
        metadata: Metadata {
            name: GROUP.into(),
            ..Default::default()
        },
        spec: SecurityGroupSpec {
            model: RuleModel::AllowUnion,
            group_type: GroupType::Basic,
            inner_access_policy: Action::Accept,
            ingress,
            egress: None,
        },
    };
    PolicyInput {
        groups: BTreeMap::from([(GROUP.to_string(), group)]),
        members: BTreeMap::new(),
        policies: vec![spec()],
    }
}

/// The same rules split over `groups` groups, and `groups` policies of two neighbouring groups
/// each (pods with different security-group combinations on one node): every rule lands in
/// two policy tries.
pub fn spread_input(rules: &[BenchRule], groups: usize) -> PolicyInput {
    let groups = groups.max(1);
    let per = rules.len().div_ceil(groups).max(1);
    let mut input = PolicyInput::default();
    let mut names = Vec::new();
    for (i, chunk) in rules.chunks(per).enumerate() {
        let one = policy_input(chunk);
        let mut g = one.groups.into_values().next().expect("one group");
        g.metadata.name = format!("{GROUP}-{i}");
        names.push(g.metadata.name.clone());
        input.groups.insert(g.metadata.name.clone(), g);
    }
    for (k, name) in names.iter().enumerate() {
        let mut p = spec();
        p.groups = vec![name.clone(), names[(k + 1) % names.len()].clone()];
        p.groups.dedup();
        input.policies.push(p);
    }
    input
}

/// The pod's policy (its id is stable across rule changes).
pub fn spec() -> PolicySpec {
    PolicySpec {
        groups: vec![GROUP.into()],
        environment: EnvironmentPolicy {
            name: "bench".into(),
            kind: Environment::Open,
            internal: Vec::new(),
            egress_allow: Vec::new(),
            exclude: Vec::new(),
        },
    }
}

/// How iptables enforces the rules in the FORWARD chain of the host namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IptablesMode {
    /// Every packet walks the rules: each rule is followed by its reply rule (`-s pod
    /// --sport`), so 2·N rules, then DROP.
    Stateless,
    /// `ESTABLISHED,RELATED` accepted first; only a flow's first packet walks the N rules.
    Stateful,
}

/// An `iptables-restore` script for the filter table.
pub fn iptables_script(rules: &[BenchRule], mode: IptablesMode) -> String {
    let mut s = String::with_capacity(rules.len() * 160 + 256);
    s.push_str("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    if mode == IptablesMode::Stateful {
        s.push_str("-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n");
    }
    let pod = Ipv4Net::new(POD_IP, 32).expect("/32");
    for r in rules {
        let proto = if r.udp { "udp" } else { "tcp" };
        let ports = if r.lo == r.hi {
            r.lo.to_string()
        } else {
            format!("{}:{}", r.lo, r.hi)
        };
        let (peer, state) = (r.peer, mode == IptablesMode::Stateful);
        let _ = writeln!(
            s,
            "-A FORWARD -s {peer} -d {pod} -p {proto} -m {proto} --dport {ports}{} -j ACCEPT",
            if state {
                " -m conntrack --ctstate NEW"
            } else {
                ""
            }
        );
        if mode == IptablesMode::Stateless {
            let _ = writeln!(
                s,
                "-A FORWARD -s {pod} -d {peer} -p {proto} -m {proto} --sport {ports} -j ACCEPT"
            );
        }
    }
    s.push_str("-A FORWARD -j DROP\nCOMMIT\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_rules_sit_in_the_middle() {
        let r = rules(1000, 0);
        assert_eq!(r.len(), 1000);
        let pos: Vec<usize> = r
            .iter()
            .enumerate()
            .filter(|(_, r)| r.peer.contains(&PEER_IP))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(pos, [498, 499, 500]);
        assert!(r.iter().all(|r| !r.peer.contains(&POD_IP)));
        assert_eq!(rules(10, 0).len(), 10);
        assert_eq!(rules(2, 0).len(), 3);
    }

    #[test]
    fn a_variant_changes_every_other_rule() {
        let (a, b) = (rules(100, 0), rules(100, 1));
        let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
        assert_eq!(same, 3);
    }

    #[test]
    fn spread_over_groups_and_policies() {
        let input = spread_input(&rules(100, 0), 10);
        assert_eq!(input.groups.len(), 10);
        assert_eq!(input.policies.len(), 10);
        let rules: usize = input.groups.values().map(|g| g.spec.ingress.len()).sum();
        assert_eq!(rules, 100);
    }

    #[test]
    fn iptables_scripts() {
        let r = rules(10, 0);
        let stateless = iptables_script(&r, IptablesMode::Stateless);
        assert_eq!(stateless.matches("-j ACCEPT").count(), 20);
        assert!(stateless.contains(
            "-A FORWARD -s 10.201.0.0/24 -d 10.200.0.2/32 -p udp -m udp --dport 5201 -j ACCEPT"
        ));
        let stateful = iptables_script(&r, IptablesMode::Stateful);
        assert_eq!(stateful.matches("-j ACCEPT").count(), 11);
        assert!(stateful.ends_with("-A FORWARD -j DROP\nCOMMIT\n"));
    }
}
