//! Security groups → the datapath's tables (DESIGN §4): peer prefixes → remote identities
//! (interned label sets), and per policy an LPM trie of disjoint port segments carrying final
//! verdicts, so the datapath needs at most two lookups per direction slot of a new flow.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use sha2::{Digest, Sha256};

use super::model::{
    decide, Action, Dir, EnvironmentPolicy, NormRule, Peer, PolicyModelError, ProtoSlot, RuleModel,
    RuleTable, SecurityGroup,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CompileError {
    #[error(transparent)]
    Model(#[from] PolicyModelError),
    #[error("policy {groups:?} mixes the allow-union and priority rule models")]
    MixedModels { groups: Vec<String> },
    #[error("policy ids of {a:?} and {b:?} collide; rename a group")]
    IdCollision { a: Vec<String>, b: Vec<String> },
    #[error("{count} remote identities exceed the datapath's limit")]
    TooManyIdentities { count: usize },
}

/// What one interface enforces: its security groups and its tenant environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySpec {
    pub groups: Vec<String>,
    pub environment: EnvironmentPolicy,
}

impl PolicySpec {
    /// Stable across rule changes (it hashes names only), so endpoint entries keep pointing at
    /// the right policy while its rules are swapped underneath.
    pub fn id(&self) -> u32 {
        let mut names: Vec<&str> = self.groups.iter().map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        let mut h = Sha256::new();
        for n in names {
            h.update(n.as_bytes());
            h.update([0]);
        }
        h.update(b"env\0");
        h.update(self.environment.name.as_bytes());
        let d = h.finalize();
        u32::from_be_bytes([d[0], d[1], d[2], d[3]]).max(1)
    }
}

/// Everything the node enforces: all groups, their members' addresses, and the distinct
/// policies its interfaces use.
#[derive(Debug, Clone, Default)]
pub struct PolicyInput {
    pub groups: BTreeMap<String, SecurityGroup>,
    pub members: BTreeMap<String, BTreeSet<Ipv4Addr>>,
    pub policies: Vec<PolicySpec>,
}

impl PolicyInput {
    pub fn rule_table(&self) -> Result<RuleTable, PolicyModelError> {
        RuleTable::build(&self.groups, self.policies.iter().map(|p| &p.environment))
    }

    /// The rules of one policy, all directions.
    pub fn policy_rules<'a>(
        &self,
        table: &'a RuleTable,
        spec: &PolicySpec,
    ) -> Result<Vec<&'a NormRule>, CompileError> {
        let mut models = BTreeSet::new();
        let mut idx = Vec::new();
        for g in &spec.groups {
            let group = self
                .groups
                .get(g)
                .ok_or_else(|| PolicyModelError::UnknownGroup(g.clone()))?;
            models.insert(group.spec.model == RuleModel::Priority);
            idx.extend(table.by_group.get(g).into_iter().flatten().copied());
        }
        if models.len() > 1 {
            return Err(CompileError::MixedModels {
                groups: spec.groups.clone(),
            });
        }
        idx.extend(
            table
                .by_env
                .get(&spec.environment.name)
                .into_iter()
                .flatten(),
        );
        idx.sort_unstable();
        idx.dedup();
        Ok(idx.into_iter().map(|i| &table.rules[i]).collect())
    }
}

/// One entry of a policy trie: `(dir, remote, proto, port/port_len)` → verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyEntry {
    pub dir: Dir,
    /// 0: any peer (looked up second).
    pub remote: u32,
    pub proto: ProtoSlot,
    pub port: u16,
    /// Significant leading bits of `port` (0–16).
    pub port_len: u8,
    pub action: Action,
    pub rule_id: u32,
}

impl PolicyEntry {
    fn covers(&self, port: u16) -> bool {
        let mask = if self.port_len == 0 {
            0
        } else {
            u16::MAX << (16 - self.port_len)
        };
        port & mask == self.port & mask
    }
}

/// Why a flow was decided the way it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// The deciding rule; 0 when no rule matched (default deny) or the policy is unknown.
    pub rule_id: u32,
    /// For a denied egress flow: the environment (not a group) denied it.
    pub by_environment: bool,
}

/// The compiled form of a `PolicyInput`, ready for `Datapath::apply`.
#[derive(Debug, Clone, Default)]
pub struct CompiledPolicy {
    pub rules: RuleTable,
    /// Peer prefix → remote identity (1..).
    pub identities: Vec<(Ipv4Net, u32)>,
    /// Policy id → trie entries.
    pub policies: BTreeMap<u32, Vec<PolicyEntry>>,
    pub specs: BTreeMap<u32, PolicySpec>,
}

pub fn compile(input: &PolicyInput) -> Result<CompiledPolicy, CompileError> {
    let rules = input.rule_table()?;
    let (identities, labels) = identities(input, &rules);
    if labels.len() >= super::abi::MAX_IDENTITY as usize {
        return Err(CompileError::TooManyIdentities {
            count: labels.len(),
        });
    }
    let mut out = CompiledPolicy {
        identities,
        ..Default::default()
    };
    for spec in &input.policies {
        let id = spec.id();
        if let Some(other) = out.specs.get(&id) {
            if other.groups != spec.groups || other.environment.name != spec.environment.name {
                return Err(CompileError::IdCollision {
                    a: other.groups.clone(),
                    b: spec.groups.clone(),
                });
            }
            continue;
        }
        let prules = input.policy_rules(&rules, spec)?;
        out.policies.insert(id, policy_entries(&prules, &labels));
        out.specs.insert(id, spec.clone());
    }
    out.rules = rules;
    Ok(out)
}

/// Prefixes of every peer CIDR and member address, each with the set of labels (CIDRs that
/// contain it, groups it is a member of) an address whose longest match it is carries. Equal
/// label sets share one identity.
fn identities(
    input: &PolicyInput,
    rules: &RuleTable,
) -> (Vec<(Ipv4Net, u32)>, Vec<BTreeSet<Peer>>) {
    let cidrs: BTreeSet<Ipv4Net> = rules
        .rules
        .iter()
        .filter_map(|r| match &r.peer {
            Peer::Cidr(c) if c.prefix_len() > 0 => Some(*c),
            _ => None,
        })
        .collect();
    let groups: BTreeSet<&String> = rules
        .rules
        .iter()
        .filter_map(|r| match &r.peer {
            Peer::Group(g) => Some(g),
            _ => None,
        })
        .collect();
    let mut prefixes: BTreeMap<Ipv4Net, BTreeSet<Peer>> = BTreeMap::new();
    for c in &cidrs {
        prefixes.entry(*c).or_default();
    }
    for g in &groups {
        for a in input.members.get(*g).into_iter().flatten() {
            let p = Ipv4Net::new(*a, 32).expect("/32 is valid");
            prefixes
                .entry(p)
                .or_default()
                .insert(Peer::Group((*g).clone()));
        }
    }
    let mut interned: HashMap<BTreeSet<Peer>, u32> = HashMap::new();
    let mut labels = vec![BTreeSet::new()]; // identity 0: no labels (any peer)
    let mut out = Vec::with_capacity(prefixes.len());
    for (p, mut l) in prefixes {
        // The CIDRs containing `p` are its own prefixes of length 1..=len: ≤ 32 set lookups
        // instead of a scan of every CIDR (10,000 rules: 0.3 s → milliseconds).
        l.extend((1..=p.prefix_len()).filter_map(|len| {
            let c = Ipv4Net::new(p.network(), len).expect("len ≤ 32").trunc();
            cidrs.contains(&c).then_some(Peer::Cidr(c))
        }));
        let id = *interned.entry(l.clone()).or_insert_with(|| {
            labels.push(l);
            labels.len() as u32 - 1
        });
        out.push((p, id));
    }
    (out, labels)
}

fn policy_entries(rules: &[&NormRule], labels: &[BTreeSet<Peer>]) -> Vec<PolicyEntry> {
    let mut out = Vec::new();
    for dir in [Dir::Ingress, Dir::Egress, Dir::Env] {
        let in_dir: Vec<&NormRule> = rules.iter().copied().filter(|r| r.dir == dir).collect();
        let mut by_peer: BTreeMap<&Peer, Vec<&NormRule>> = BTreeMap::new();
        for r in in_dir.iter().filter(|r| !r.peer.is_any()) {
            by_peer.entry(&r.peer).or_default().push(r);
        }
        for slot in ProtoSlot::ALL {
            let wild: Vec<&NormRule> = in_dir
                .iter()
                .copied()
                .filter(|r| r.peer.is_any() && r.applies_to(slot))
                .collect();
            let base = Seg {
                dir,
                remote: 0,
                slot,
            };
            base.emit(&wild, |_| true, &mut out);
            for (remote, l) in labels.iter().enumerate().skip(1) {
                let mut set: Vec<&NormRule> = l
                    .iter()
                    .filter_map(|p| by_peer.get(p))
                    .flatten()
                    .copied()
                    .filter(|r| r.applies_to(slot))
                    .collect();
                if set.is_empty() {
                    continue;
                }
                set.extend(wild.iter().copied());
                let seg = Seg {
                    dir,
                    remote: remote as u32,
                    slot,
                };
                // Where only wildcard rules match, the second lookup gives the same answer.
                seg.emit(&set, |c| c.iter().any(|r| !r.peer.is_any()), &mut out);
            }
        }
    }
    out
}

struct Seg {
    dir: Dir,
    remote: u32,
    slot: ProtoSlot,
}

impl Seg {
    /// Split the slot's port space at every rule boundary, decide each piece, merge equal
    /// neighbours, and emit aligned prefixes for the pieces `wanted` keeps.
    fn emit(
        &self,
        rules: &[&NormRule],
        wanted: impl Fn(&[&NormRule]) -> bool,
        out: &mut Vec<PolicyEntry>,
    ) {
        if rules.is_empty() {
            return;
        }
        let max = u32::from(self.slot.max_port());
        let mut cuts: BTreeSet<u32> = BTreeSet::from([0]);
        for r in rules {
            if u32::from(r.lo) <= max {
                cuts.insert(u32::from(r.lo));
            }
            if u32::from(r.hi) < max {
                cuts.insert(u32::from(r.hi) + 1);
            }
        }
        let cuts: Vec<u32> = cuts.into_iter().collect();
        let mut pieces: Vec<(u32, u32, Action, u32)> = Vec::new();
        for (i, &lo) in cuts.iter().enumerate() {
            let hi = cuts.get(i + 1).map_or(max, |n| n - 1);
            let covering: Vec<&NormRule> = rules
                .iter()
                .copied()
                .filter(|r| r.covers_port(lo as u16))
                .collect();
            if covering.is_empty() || !wanted(&covering) {
                continue;
            }
            let (action, id) = decide(covering.iter().copied()).unwrap_or((Action::Drop, 0));
            match pieces.last_mut() {
                Some(last) if last.1 + 1 == lo && last.2 == action && last.3 == id => last.1 = hi,
                _ => pieces.push((lo, hi, action, id)),
            }
        }
        for (lo, hi, action, rule_id) in pieces {
            for (port, port_len) in aligned_prefixes(lo as u16, hi as u16) {
                out.push(PolicyEntry {
                    dir: self.dir,
                    remote: self.remote,
                    proto: self.slot,
                    port,
                    port_len,
                    action,
                    rule_id,
                });
            }
        }
    }
}

/// The minimal set of aligned prefixes covering `lo..=hi` of a 16-bit space (≤ 30).
pub fn aligned_prefixes(lo: u16, hi: u16) -> Vec<(u16, u8)> {
    let (mut lo, hi) = (u32::from(lo), u32::from(hi));
    let mut out = Vec::new();
    while lo <= hi {
        let mut size: u32 = if lo == 0 {
            1 << 16
        } else {
            1 << lo.trailing_zeros()
        };
        while lo + size - 1 > hi {
            size >>= 1;
        }
        out.push((lo as u16, 16 - size.trailing_zeros() as u8));
        lo += size;
    }
    out
}

impl CompiledPolicy {
    /// The remote identity of an address: its longest matching prefix, 0 if none.
    pub fn identity_of(&self, addr: Ipv4Addr) -> u32 {
        self.identities
            .iter()
            .filter(|(p, _)| p.contains(&addr))
            .max_by_key(|(p, _)| p.prefix_len())
            .map_or(0, |(_, id)| *id)
    }

    fn lookup_dir(
        &self,
        entries: &[PolicyEntry],
        dir: Dir,
        remote: u32,
        slot: ProtoSlot,
        port: u16,
    ) -> Option<PolicyEntry> {
        let find = |remote| {
            entries
                .iter()
                .filter(|e| e.dir == dir && e.remote == remote && e.proto == slot && e.covers(port))
                .max_by_key(|e| e.port_len)
                .copied()
        };
        (if remote != 0 { find(remote) } else { None }).or_else(|| find(0))
    }

    /// The verdict for a new flow, computed from the tables exactly as the datapath walks
    /// them (for `tandemctl trace`). `dir` is Ingress (towards the pod) or Egress.
    pub fn evaluate(
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
        let Some(entries) = self.policies.get(&policy_id) else {
            return deny(0, false);
        };
        let slot = ProtoSlot::of(ip_proto);
        let port = if slot == ProtoSlot::Other { 0 } else { port };
        let id = self.identity_of(remote);
        let v = self.lookup_dir(entries, dir, id, slot, port);
        let Some(v) = v.filter(|v| v.action == Action::Accept) else {
            return deny(v.map_or(0, |v| v.rule_id), false);
        };
        if dir == Dir::Egress {
            let e = self.lookup_dir(entries, Dir::Env, id, slot, port);
            if e.is_none_or(|e| e.action != Action::Accept) {
                return deny(e.map_or(0, |e| e.rule_id), true);
            }
        }
        Verdict {
            allowed: true,
            rule_id: v.rule_id,
            by_environment: false,
        }
    }
}
