//! Security groups as Kubernetes-shaped objects (`kind: SecurityGroup`, DESIGN §5), the tenant
//! environment of an interface, and their normalisation into flat rules with stable ids.
//! Normalisation is where the rule models' defaults live (DESIGN §4): the reference evaluator
//! and the compiler both start from it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::model::{Environment, Metadata};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyModelError {
    #[error("security group {group}: {problem}")]
    Invalid { group: String, problem: String },
    #[error("unknown security group {0}")]
    UnknownGroup(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RuleModel {
    /// AWS-like: allow rules only, all groups of an interface merged.
    AllowUnion,
    /// Alibaba-Cloud-like: priority 1–100 (smaller wins), accept/drop, drop wins ties.
    Priority,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GroupType {
    #[default]
    Basic,
    Enterprise,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    #[default]
    Accept,
    Drop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
    All,
}

/// A peer: exactly one of a CIDR or another security group (its members' addresses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<Ipv4Net>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Peer {
    Cidr(Ipv4Net),
    Group(String),
}

impl Peer {
    /// `0.0.0.0/0`: every address, encoded as the wildcard remote identity.
    pub fn is_any(&self) -> bool {
        matches!(self, Peer::Cidr(n) if n.prefix_len() == 0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IcmpMatch {
    #[serde(rename = "type")]
    pub icmp_type: u8,
    #[serde(default)]
    pub code: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PortsSpec {
    Number(u16),
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleSpec {
    #[serde(default = "default_priority")]
    pub priority: u8,
    #[serde(default)]
    pub action: Action,
    pub protocol: Protocol,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<PortsSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp: Option<IcmpMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<PeerSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<PeerSpec>,
}

fn default_priority() -> u8 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityGroupSpec {
    pub model: RuleModel,
    #[serde(default, rename = "type")]
    pub group_type: GroupType,
    #[serde(default)]
    pub inner_access_policy: Action,
    #[serde(default)]
    pub ingress: Vec<RuleSpec>,
    /// Allow-union: absent means the default "allow all outbound" rule of a new group.
    #[serde(default)]
    pub egress: Option<Vec<RuleSpec>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub metadata: Metadata,
    pub spec: SecurityGroupSpec,
}

impl SecurityGroup {
    pub fn name(&self) -> &str {
        &self.metadata.name
    }
}

/// One entry of a controlled environment's egress allow-list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressAllow {
    pub cidr: Ipv4Net,
    #[serde(default = "all_protocols")]
    pub protocol: Protocol,
    #[serde(default)]
    pub ports: Option<PortsSpec>,
}

fn all_protocols() -> Protocol {
    Protocol::All
}

/// The tenant environment of a tenant interface (egress only): `closed` reaches `internal`
/// (tenant VPC + platform CIDRs), `controlled` also the allow-list, `open` everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentPolicy {
    /// Names the environment in rule ids and traces (the tenant's name).
    pub name: String,
    pub kind: Environment,
    pub internal: Vec<Ipv4Net>,
    pub egress_allow: Vec<EgressAllow>,
    /// Never reachable on egress, whatever the kind (a drop that wins over every allowance):
    /// the control network, so a tenant interface is no side door to the nodes and their
    /// kubelets.
    pub exclude: Vec<Ipv4Net>,
}

/// The direction slot a rule lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dir {
    /// Towards the pod.
    Ingress = 0,
    /// From the pod.
    Egress = 1,
    /// From the pod: the tenant environment, which must allow too.
    Env = 2,
}

/// The protocol slot of a flow: tcp, udp, icmp, everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProtoSlot {
    Other = 0,
    Icmp = 1,
    Tcp = 6,
    Udp = 17,
}

impl ProtoSlot {
    pub const ALL: [ProtoSlot; 4] = [
        ProtoSlot::Tcp,
        ProtoSlot::Udp,
        ProtoSlot::Icmp,
        ProtoSlot::Other,
    ];

    pub fn of(ip_proto: u8) -> ProtoSlot {
        match ip_proto {
            1 => ProtoSlot::Icmp,
            6 => ProtoSlot::Tcp,
            17 => ProtoSlot::Udp,
            _ => ProtoSlot::Other,
        }
    }

    /// The highest port slot value: protocols without ports only use 0.
    pub fn max_port(self) -> u16 {
        if self == ProtoSlot::Other {
            0
        } else {
            u16::MAX
        }
    }
}

/// Where a normalised rule came from, for traces and counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleOrigin {
    /// `spec.ingress[index]` / `spec.egress[index]` of a group.
    Group { group: String, index: usize },
    /// A default of the group's model (allow-all egress, basic inner accept).
    Implicit { group: String, what: &'static str },
    /// An environment's allowance.
    Environment { name: String, what: String },
}

/// A rule with its defaults applied and an id (1-based; 0 means "no rule matched").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormRule {
    pub id: u32,
    pub dir: Dir,
    /// 1–100 explicit, 101 for a model's implicit defaults (any explicit rule beats them).
    pub priority: u8,
    pub action: Action,
    pub protocol: Protocol,
    /// Inclusive range of the port slot (destination port, or ICMP type << 8 | code).
    pub lo: u16,
    pub hi: u16,
    pub peer: Peer,
    pub origin: RuleOrigin,
}

pub const IMPLICIT_PRIORITY: u8 = 101;

impl NormRule {
    pub fn applies_to(&self, slot: ProtoSlot) -> bool {
        match self.protocol {
            Protocol::All => true,
            Protocol::Tcp => slot == ProtoSlot::Tcp,
            Protocol::Udp => slot == ProtoSlot::Udp,
            Protocol::Icmp => slot == ProtoSlot::Icmp,
        }
    }

    pub fn covers_port(&self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }
}

/// Parse `"80"`, `"80-443"`, or a number.
pub fn parse_ports(spec: &PortsSpec) -> Result<(u16, u16), String> {
    let text = match spec {
        PortsSpec::Number(n) => return Ok((*n, *n)),
        PortsSpec::Text(t) => t.trim(),
    };
    let (a, b) = text.split_once('-').unwrap_or((text, text));
    let lo: u16 = a
        .trim()
        .parse()
        .map_err(|_| format!("bad port range {text:?}"))?;
    let hi: u16 = b
        .trim()
        .parse()
        .map_err(|_| format!("bad port range {text:?}"))?;
    if lo > hi {
        return Err(format!("port range {text:?} is empty"));
    }
    Ok((lo, hi))
}

fn port_slot_range(
    protocol: Protocol,
    ports: Option<&PortsSpec>,
    icmp: Option<&IcmpMatch>,
) -> Result<(u16, u16), String> {
    match protocol {
        Protocol::All => Ok((0, u16::MAX)),
        Protocol::Tcp | Protocol::Udp => ports.map_or(Ok((0, u16::MAX)), parse_ports),
        Protocol::Icmp => Ok(match icmp {
            None => (0, u16::MAX),
            Some(IcmpMatch {
                icmp_type,
                code: None,
            }) => {
                let t = u16::from(*icmp_type) << 8;
                (t, t | 0xff)
            }
            Some(IcmpMatch {
                icmp_type,
                code: Some(c),
            }) => {
                let v = u16::from(*icmp_type) << 8 | u16::from(*c);
                (v, v)
            }
        }),
    }
}

/// All rules of the given groups and environments, normalised, with ids assigned in a stable
/// order (groups by name, ingress before egress, then implicit rules; then environments).
#[derive(Debug, Clone, Default)]
pub struct RuleTable {
    pub rules: Vec<NormRule>,
    /// Rule indexes (into `rules`) of each group and environment, by name.
    pub by_group: BTreeMap<String, Vec<usize>>,
    pub by_env: BTreeMap<String, Vec<usize>>,
}

impl RuleTable {
    pub fn build<'a>(
        groups: &BTreeMap<String, SecurityGroup>,
        envs: impl IntoIterator<Item = &'a EnvironmentPolicy>,
    ) -> Result<RuleTable, PolicyModelError> {
        let mut t = RuleTable::default();
        for (name, g) in groups {
            let start = t.rules.len();
            t.add_group(name, g, groups)?;
            t.by_group
                .insert(name.clone(), (start..t.rules.len()).collect());
        }
        for env in envs {
            if t.by_env.contains_key(&env.name) {
                continue;
            }
            let start = t.rules.len();
            t.add_env(env)?;
            t.by_env
                .insert(env.name.clone(), (start..t.rules.len()).collect());
        }
        Ok(t)
    }

    pub fn get(&self, id: u32) -> Option<&NormRule> {
        id.checked_sub(1).and_then(|i| self.rules.get(i as usize))
    }

    fn push(&mut self, mut r: NormRule) {
        r.id = self.rules.len() as u32 + 1;
        self.rules.push(r);
    }

    fn add_group(
        &mut self,
        name: &str,
        g: &SecurityGroup,
        groups: &BTreeMap<String, SecurityGroup>,
    ) -> Result<(), PolicyModelError> {
        let invalid = |problem: String| PolicyModelError::Invalid {
            group: name.to_string(),
            problem,
        };
        let spec = &g.spec;
        let egress = spec.egress.as_deref().unwrap_or(&[]);
        let dirs = [(Dir::Ingress, &spec.ingress[..]), (Dir::Egress, egress)];
        for (dir, rules) in dirs {
            for (index, r) in rules.iter().enumerate() {
                let peer_spec = if dir == Dir::Ingress { &r.from } else { &r.to };
                let field = if dir == Dir::Ingress { "from" } else { "to" };
                let peer = match peer_spec {
                    Some(PeerSpec {
                        cidr: Some(c),
                        group: None,
                    }) => Peer::Cidr(c.trunc()),
                    Some(PeerSpec {
                        cidr: None,
                        group: Some(gr),
                    }) => {
                        let target = groups
                            .get(gr)
                            .ok_or_else(|| invalid(format!("rule refers to unknown group {gr}")))?;
                        if target.spec.group_type == GroupType::Enterprise
                            && target.spec.model == RuleModel::Priority
                        {
                            return Err(invalid(format!(
                                "enterprise group {gr} cannot be referenced"
                            )));
                        }
                        Peer::Group(gr.clone())
                    }
                    _ => {
                        return Err(invalid(format!(
                        "{dir:?} rule {index} needs `{field}` with exactly one of cidr or group"
                    )))
                    }
                };
                let (lo, hi) = port_slot_range(r.protocol, r.ports.as_ref(), r.icmp.as_ref())
                    .map_err(&invalid)?;
                let (priority, action) = match spec.model {
                    RuleModel::AllowUnion if r.action == Action::Drop => {
                        return Err(invalid("allow-union groups have allow rules only".into()))
                    }
                    RuleModel::AllowUnion => (1, Action::Accept),
                    RuleModel::Priority if !(1..=100).contains(&r.priority) => {
                        return Err(invalid(format!("priority {} is not in 1-100", r.priority)))
                    }
                    RuleModel::Priority => (r.priority, r.action),
                };
                self.push(NormRule {
                    id: 0,
                    dir,
                    priority,
                    action,
                    protocol: r.protocol,
                    lo,
                    hi,
                    peer,
                    origin: RuleOrigin::Group {
                        group: name.to_string(),
                        index,
                    },
                });
            }
        }
        let implicit = |dir, peer, what| NormRule {
            id: 0,
            dir,
            priority: IMPLICIT_PRIORITY,
            action: Action::Accept,
            protocol: Protocol::All,
            lo: 0,
            hi: u16::MAX,
            peer,
            origin: RuleOrigin::Implicit {
                group: name.to_string(),
                what,
            },
        };
        let any = Peer::Cidr(Ipv4Net::default());
        match (spec.model, spec.group_type) {
            (RuleModel::AllowUnion, _) => {
                if spec.egress.is_none() {
                    self.push(implicit(Dir::Egress, any, "default allow-all egress"));
                }
            }
            (RuleModel::Priority, GroupType::Basic) => {
                self.push(implicit(Dir::Egress, any, "basic group default egress"));
                if spec.inner_access_policy == Action::Accept {
                    self.push(implicit(
                        Dir::Ingress,
                        Peer::Group(name.to_string()),
                        "basic group inner accept",
                    ));
                }
            }
            (RuleModel::Priority, GroupType::Enterprise) => {}
        }
        Ok(())
    }

    fn add_env(&mut self, env: &EnvironmentPolicy) -> Result<(), PolicyModelError> {
        let rule = |peer, protocol, (lo, hi), what: String| NormRule {
            id: 0,
            dir: Dir::Env,
            priority: 1,
            action: Action::Accept,
            protocol,
            lo,
            hi,
            peer,
            origin: RuleOrigin::Environment {
                name: env.name.clone(),
                what,
            },
        };
        for c in &env.exclude {
            let mut r = rule(
                Peer::Cidr(c.trunc()),
                Protocol::All,
                (0, u16::MAX),
                format!("excluded {c}"),
            );
            r.action = Action::Drop;
            self.push(r);
        }
        if env.kind == Environment::Open {
            let r = rule(
                Peer::Cidr(Ipv4Net::default()),
                Protocol::All,
                (0, u16::MAX),
                "open".into(),
            );
            self.push(r);
            return Ok(());
        }
        for c in &env.internal {
            let r = rule(
                Peer::Cidr(c.trunc()),
                Protocol::All,
                (0, u16::MAX),
                format!("internal {c}"),
            );
            self.push(r);
        }
        if env.kind == Environment::Controlled {
            for a in &env.egress_allow {
                let range =
                    port_slot_range(a.protocol, a.ports.as_ref(), None).map_err(|problem| {
                        PolicyModelError::Invalid {
                            group: env.name.clone(),
                            problem,
                        }
                    })?;
                let r = rule(
                    Peer::Cidr(a.cidr.trunc()),
                    a.protocol,
                    range,
                    format!("allow {}", a.cidr),
                );
                self.push(r);
            }
        }
        Ok(())
    }
}

/// The winner among matching rules: smallest priority, drop wins ties, lowest id within the
/// winning action. `None`: nothing matched (default deny, rule id 0).
pub fn decide<'a>(matching: impl IntoIterator<Item = &'a NormRule>) -> Option<(Action, u32)> {
    let mut best: Option<(u8, bool, u32)> = None; // (priority, is_accept, id): smallest wins
    for r in matching {
        let cand = (r.priority, r.action == Action::Accept, r.id);
        if best.is_none_or(|b| cand < b) {
            best = Some(cand);
        }
    }
    best.map(|(_, accept, id)| (if accept { Action::Accept } else { Action::Drop }, id))
}

/// Does `peer` contain `addr`, given group memberships?
pub fn peer_contains(
    peer: &Peer,
    addr: Ipv4Addr,
    members: &BTreeMap<String, std::collections::BTreeSet<Ipv4Addr>>,
) -> bool {
    match peer {
        Peer::Cidr(n) => n.contains(&addr),
        Peer::Group(g) => members.get(g).is_some_and(|m| m.contains(&addr)),
    }
}
