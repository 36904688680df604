//! Root-only: the security-group datapath agrees with the reference evaluator. Random rule
//! sets of both models (with group references and members, port ranges, ICMP type/code,
//! tenant environments, control interfaces, audit and re-check modes) and random packet
//! sequences (new flows both ways, replies, TCP flags, spoofing, non-IPv4, fragments, a rule
//! change mid-flow) run through `tandem_agent::policy::reference` and through the loaded
//! programs with BPF_PROG_TEST_RUN; every verdict and the final conntrack table must match.
//!
//! Seed: `TANDEM_SG_SEED=<n>` replays a run; cases: `TANDEM_SG_CASES` (default 10000).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use ipnet::Ipv4Net;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use tandem_agent::model::{Environment, Metadata};
use tandem_agent::policy::compile::{compile, PolicyInput, PolicySpec};
use tandem_agent::policy::datapath::{pin, Datapath, DatapathOptions, Hook};
use tandem_agent::policy::model::{
    Action, EgressAllow, EnvironmentPolicy, GroupType, IcmpMatch, PeerSpec, PortsSpec, Protocol,
    RuleModel, RuleSpec, SecurityGroup, SecurityGroupSpec,
};
use tandem_agent::policy::packet::{Packet, L3, L4, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
use tandem_agent::policy::reference::{Outcome, Reference};
use tandem_agent::policy::{abi, ControlClass, EndpointConfig, Reason, Role, Timeouts};

/// Every test packet arrives on the loopback device of the test's netns.
const IFINDEX: u32 = 1;
const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;
const POD_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
const PORTS: [u16; 8] = [22, 53, 80, 443, 1024, 8080, 8443, 65535];
const GROUPS: [&str; 4] = ["sg-a", "sg-b", "sg-c", "sg-d"];

/// A private bpffs for this run, unmounted and removed on drop (also after a failure).
struct PinRoot {
    dir: PathBuf,
    root: PathBuf,
}

impl PinRoot {
    fn new() -> PinRoot {
        let dir = PathBuf::from(format!("/run/tandem-test-{:08x}", rand::random::<u32>()));
        let root = dir.join("bpf");
        PinRoot { dir, root }
    }
}

impl Drop for PinRoot {
    fn drop(&mut self) {
        if pin::is_bpffs(&self.root).unwrap_or(false) {
            if let Err(e) = pin::unmount(&self.root) {
                eprintln!("cannot unmount {}: {e}", self.root.display());
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn addr_pool() -> Vec<Ipv4Addr> {
    let mut v = Vec::new();
    for c in 0..2u8 {
        for d in 1..6u8 {
            v.push(Ipv4Addr::new(10, 0, c, d));
        }
    }
    v.extend([
        Ipv4Addr::new(192, 168, 7, 9),
        Ipv4Addr::new(100, 64, 0, 1),
        Ipv4Addr::new(8, 8, 8, 8),
    ]);
    v
}

fn random_net(rng: &mut StdRng, pool: &[Ipv4Addr]) -> Ipv4Net {
    let a = *pool.choose(rng).unwrap();
    let len = *[0u8, 8, 16, 23, 24, 30, 32, 32].choose(rng).unwrap();
    Ipv4Net::new(a, len).unwrap().trunc()
}

fn random_ports(rng: &mut StdRng) -> Option<PortsSpec> {
    match rng.random_range(0..4) {
        0 => None,
        1 => Some(PortsSpec::Number(*PORTS.choose(rng).unwrap())),
        _ => {
            let a = *PORTS.choose(rng).unwrap();
            let b = a.saturating_add(rng.random_range(0..2000));
            let lo = a.saturating_sub(rng.random_range(0..3));
            Some(PortsSpec::Text(format!("{lo}-{b}")))
        }
    }
}

struct Gen<'a> {
    rng: &'a mut StdRng,
    pool: Vec<Ipv4Addr>,
}

impl Gen<'_> {
    fn peer(&mut self, referable: &[String]) -> PeerSpec {
        if !referable.is_empty() && self.rng.random_bool(0.4) {
            let g = referable.choose(self.rng).unwrap().clone();
            PeerSpec {
                cidr: None,
                group: Some(g),
            }
        } else {
            PeerSpec {
                cidr: Some(random_net(self.rng, &self.pool)),
                group: None,
            }
        }
    }

    fn rule(&mut self, model: RuleModel, ingress: bool, referable: &[String]) -> RuleSpec {
        let protocol = *[Protocol::Tcp, Protocol::Udp, Protocol::Icmp, Protocol::All]
            .choose(self.rng)
            .unwrap();
        let (ports, icmp) = match protocol {
            Protocol::Tcp | Protocol::Udp => (random_ports(self.rng), None),
            Protocol::Icmp => {
                let icmp = match self.rng.random_range(0..3) {
                    0 => None,
                    1 => Some(IcmpMatch {
                        icmp_type: *[0u8, 8, 3].choose(self.rng).unwrap(),
                        code: None,
                    }),
                    _ => Some(IcmpMatch {
                        icmp_type: *[0u8, 8, 3].choose(self.rng).unwrap(),
                        code: Some(self.rng.random_range(0..2)),
                    }),
                };
                (None, icmp)
            }
            Protocol::All => (None, None),
        };
        let peer = self.peer(referable);
        let (priority, action) = match model {
            RuleModel::AllowUnion => (1, Action::Accept),
            RuleModel::Priority => (
                self.rng.random_range(1..=4),
                if self.rng.random_bool(0.4) {
                    Action::Drop
                } else {
                    Action::Accept
                },
            ),
        };
        RuleSpec {
            priority,
            action,
            protocol,
            ports,
            icmp,
            from: ingress.then(|| peer.clone()),
            to: (!ingress).then_some(peer),
        }
    }

    fn groups(&mut self, model: RuleModel) -> BTreeMap<String, SecurityGroup> {
        // Types first: references may only point at groups that are not enterprise groups.
        let n = self.rng.random_range(1..=GROUPS.len());
        let mut types = Vec::new();
        for name in &GROUPS[..n] {
            let ty = if model == RuleModel::Priority && self.rng.random_bool(0.3) {
                GroupType::Enterprise
            } else {
                GroupType::Basic
            };
            types.push((name.to_string(), ty));
        }
        let referable: Vec<String> = types
            .iter()
            .filter(|(_, t)| *t == GroupType::Basic || model == RuleModel::AllowUnion)
            .map(|(n, _)| n.clone())
            .collect();
        let mut out = BTreeMap::new();
        for (name, group_type) in types {
            let ni = self.rng.random_range(0..5);
            let ingress = (0..ni)
                .map(|_| self.rule(model, true, &referable))
                .collect();
            let egress = if model == RuleModel::AllowUnion && self.rng.random_bool(0.3) {
                None
            } else {
                let ne = self.rng.random_range(0..4);
                Some(
                    (0..ne)
                        .map(|_| self.rule(model, false, &referable))
                        .collect(),
                )
            };
            let spec = SecurityGroupSpec {
                model,
                group_type,
                inner_access_policy: if self.rng.random_bool(0.3) {
                    Action::Drop
                } else {
                    Action::Accept
                },
                ingress,
                egress,
            };
            let metadata = Metadata {
                name: name.clone(),
                ..Default::default()
            };
            out.insert(name, SecurityGroup { metadata, spec });
        }
        out
    }

    fn members(
        &mut self,
        groups: &BTreeMap<String, SecurityGroup>,
        pod: Ipv4Addr,
        local: &[String],
    ) -> BTreeMap<String, BTreeSet<Ipv4Addr>> {
        let mut m = BTreeMap::new();
        for name in groups.keys() {
            let mut set: BTreeSet<Ipv4Addr> = self
                .pool
                .iter()
                .copied()
                .filter(|_| self.rng.random_bool(0.25))
                .collect();
            if local.contains(name) {
                set.insert(pod);
            }
            m.insert(name.clone(), set);
        }
        m
    }

    fn environment(&mut self) -> EnvironmentPolicy {
        let kind = *[
            Environment::Closed,
            Environment::Controlled,
            Environment::Open,
        ]
        .choose(self.rng)
        .unwrap();
        let internal = (0..self.rng.random_range(0..3))
            .map(|_| random_net(self.rng, &self.pool))
            .collect();
        let egress_allow = (0..self.rng.random_range(0..3))
            .map(|_| EgressAllow {
                cidr: random_net(self.rng, &self.pool),
                protocol: *[Protocol::Tcp, Protocol::Udp, Protocol::All]
                    .choose(self.rng)
                    .unwrap(),
                ports: random_ports(self.rng),
            })
            .collect();
        let exclude = (0..self.rng.random_range(0..2))
            .map(|_| random_net(self.rng, &self.pool))
            .collect();
        EnvironmentPolicy {
            name: "tenant".into(),
            kind,
            internal,
            egress_allow,
            exclude,
        }
    }

    fn input(&mut self, pod: Ipv4Addr) -> PolicyInput {
        let model = if self.rng.random_bool(0.5) {
            RuleModel::AllowUnion
        } else {
            RuleModel::Priority
        };
        let groups = self.groups(model);
        let names: Vec<String> = groups.keys().cloned().collect();
        let k = self.rng.random_range(1..=names.len());
        let local: Vec<String> = names.choose_multiple(self.rng, k).cloned().collect();
        let members = self.members(&groups, pod, &local);
        let spec = PolicySpec {
            groups: local,
            environment: self.environment(),
        };
        PolicyInput {
            groups,
            members,
            policies: vec![spec],
        }
    }

    /// A rule change that keeps the policy's id: new rules and members for the same groups.
    fn change(&mut self, old: &PolicyInput, pod: Ipv4Addr) -> PolicyInput {
        loop {
            let mut next = self.input(pod);
            let spec = &old.policies[0];
            if spec.groups.iter().all(|g| next.groups.contains_key(g)) {
                next.policies = vec![PolicySpec {
                    groups: spec.groups.clone(),
                    environment: self.environment(),
                }];
                for g in &spec.groups {
                    next.members.entry(g.clone()).or_default().insert(pod);
                }
                return next;
            }
        }
    }

    fn l4(&mut self) -> L4 {
        let flags = *[
            TCP_SYN,
            TCP_SYN | TCP_ACK,
            TCP_ACK,
            TCP_FIN | TCP_ACK,
            TCP_RST,
        ]
        .choose(self.rng)
        .unwrap();
        let port = |rng: &mut StdRng| {
            if rng.random_bool(0.8) {
                PORTS
                    .choose(rng)
                    .unwrap()
                    .wrapping_add(rng.random_range(0..2))
            } else {
                rng.random()
            }
        };
        match self.rng.random_range(0..10) {
            0..=3 => L4::Tcp {
                sport: port(self.rng),
                dport: port(self.rng),
                flags,
            },
            4..=6 => L4::Udp {
                sport: port(self.rng),
                dport: port(self.rng),
            },
            7..=8 => L4::Icmp {
                icmp_type: *[8u8, 8, 0, 3].choose(self.rng).unwrap(),
                code: self.rng.random_range(0..2),
                id: self.rng.random_range(1..4),
            },
            _ => L4::Other {
                proto: *[47u8, 132].choose(self.rng).unwrap(),
            },
        }
    }
}

/// The reverse of a packet (a reply), with plausible TCP flags / ICMP type.
fn reply(p: &Packet, rng: &mut StdRng) -> Packet {
    let L3::Ipv4 { src, dst, l4, .. } = p.l3 else {
        return *p;
    };
    let l4 = match l4 {
        L4::Tcp { sport, dport, .. } => L4::Tcp {
            sport: dport,
            dport: sport,
            flags: *[
                TCP_SYN | TCP_ACK,
                TCP_ACK,
                TCP_FIN | TCP_ACK,
                TCP_RST,
                TCP_SYN,
            ]
            .choose(rng)
            .unwrap(),
        },
        L4::Udp { sport, dport } => L4::Udp {
            sport: dport,
            dport: sport,
        },
        L4::Icmp {
            icmp_type: 8,
            code,
            id,
        } => L4::Icmp {
            icmp_type: 0,
            code,
            id,
        },
        other => other,
    };
    Packet {
        src_mac: p.dst_mac,
        dst_mac: p.src_mac,
        l3: L3::Ipv4 {
            src: dst,
            dst: src,
            frag_offset: 0,
            l4,
        },
    }
}

/// What the cases exercised, to show the test is not vacuous.
#[derive(Default)]
struct Tally(Mutex<BTreeMap<String, u64>>);

impl Tally {
    fn count(&self, o: &Outcome, after_change: bool) {
        let mut m = self.0.lock().unwrap();
        let key = match (o.pass, o.tracked, o.reason) {
            (true, true, _) if after_change => {
                "pass: tracked flow, after a rule change".to_string()
            }
            (true, true, _) => "pass: tracked flow".to_string(),
            (true, false, Reason::Pass) => "pass: new flow".to_string(),
            (true, false, r) => format!("pass: audit of {r:?}"),
            (false, _, r) => format!("drop: {r:?}"),
        };
        *m.entry(key).or_default() += 1;
    }
}

struct Case<'a> {
    tally: &'a Tally,
    dp: &'a mut Datapath,
    seed: u64,
    index: u32,
}

impl Case<'_> {
    fn run(&mut self, rng: &mut StdRng) {
        let pool = addr_pool();
        let pod = *pool.choose(rng).unwrap();
        let mut g = Gen {
            rng,
            pool: pool.clone(),
        };
        let input = g.input(pod);
        let spec_id = input.policies[0].id();
        let role = if g.rng.random_bool(0.1) {
            Role::Control
        } else {
            Role::Tenant { policy_id: spec_id }
        };
        let cfg = EndpointConfig {
            endpoint_id: self.index + 1,
            role,
            ip: pod,
            mac: POD_MAC,
            audit: g.rng.random_bool(0.1),
            recheck: g.rng.random_bool(0.4),
        };
        let mut reference = Reference::new(self.dp.options().timeouts);
        let mut control = Vec::new();
        if role == Role::Control {
            for _ in 0..g.rng.random_range(0..4) {
                let net = random_net(g.rng, &pool);
                let class = if g.rng.random_bool(0.6) {
                    ControlClass::Platform
                } else {
                    ControlClass::Pod
                };
                self.dp.set_control_peer(net, class).unwrap();
                reference.set_control_peer(net, class);
                control.push(net);
            }
        }
        self.commit(&mut reference, &input);
        self.dp.set_endpoint(IFINDEX, &cfg).unwrap();
        reference.set_endpoint(IFINDEX, cfg);

        let steps = g.rng.random_range(6..16);
        let change_at = g.rng.random_range(1..steps);
        let mut sent: Vec<Packet> = Vec::new();
        let mut current = input;
        let mut log = Vec::new();
        for step in 0..steps {
            if step == change_at {
                current = g.change(&current, pod);
                self.commit(&mut reference, &current);
                log.push("-- rule change --".to_string());
            }
            let (from_pod, p) = self.packet(&mut g, pod, &sent);
            sent.push(p);
            let want = reference.process(IFINDEX, from_pod, &p, 0);
            self.tally.count(&want, step > change_at);
            let hook = if from_pod { Hook::FromPod } else { Hook::ToPod };
            let got = self.dp.test_run(hook, &p.to_frame()).unwrap();
            log.push(format!(
                "{} {p:?} -> ref {want:?} bpf {got}",
                if from_pod { "from pod" } else { "to pod" }
            ));
            let want_code = if want.pass { TC_ACT_OK } else { TC_ACT_SHOT };
            assert!(
                got == want_code,
                "seed {} case {}: verdicts differ at step {step}\nendpoint {cfg:?}\ninput {:#?}\n{}",
                self.seed, self.index, current, log.join("\n")
            );
        }
        self.compare_conntrack(&reference, &cfg, &log);
        for net in control {
            self.dp.remove_control_peer(net).unwrap();
        }
        self.dp
            .flush_conntrack(Some(&BTreeSet::from([cfg.endpoint_id])))
            .unwrap();
    }

    fn commit(&mut self, reference: &mut Reference, input: &PolicyInput) {
        let compiled =
            compile(input).unwrap_or_else(|e| panic!("seed {}: compile: {e}", self.seed));
        let generation = self.dp.apply(&compiled).unwrap();
        reference.set_policy(input.clone(), generation).unwrap();
    }

    fn packet(&self, g: &mut Gen<'_>, pod: Ipv4Addr, sent: &[Packet]) -> (bool, Packet) {
        let remote = *g.pool.choose(g.rng).unwrap();
        let r = g.rng.random_range(0..100);
        if r < 30 && !sent.is_empty() {
            let p = reply(sent.choose(g.rng).unwrap(), g.rng);
            return (p.src_mac == POD_MAC, p);
        }
        let from_pod = g.rng.random_bool(0.5);
        let l4 = g.l4();
        let (mut src, dst) = if from_pod {
            (pod, remote)
        } else {
            (remote, pod)
        };
        let mut src_mac = if from_pod { POD_MAC } else { HOST_MAC };
        let mut l3 = L3::Ipv4 {
            src,
            dst,
            frag_offset: 0,
            l4,
        };
        match r {
            30..=32 if from_pod => src_mac = [0x02, 9, 9, 9, 9, 9],
            33..=35 => {
                src = if from_pod { remote } else { src };
                l3 = L3::Ipv4 {
                    src,
                    dst,
                    frag_offset: 0,
                    l4,
                };
            }
            36..=37 => {
                l3 = L3::Arp {
                    sender_ip: *[pod, remote].choose(g.rng).unwrap(),
                }
            }
            38 => l3 = L3::Other { ethertype: 0x86dd },
            39 => {
                l3 = L3::Ipv4 {
                    src,
                    dst,
                    frag_offset: 100,
                    l4,
                }
            }
            _ => {}
        }
        let dst_mac = if from_pod { HOST_MAC } else { POD_MAC };
        (
            from_pod,
            Packet {
                src_mac,
                dst_mac,
                l3,
            },
        )
    }

    fn compare_conntrack(&self, reference: &Reference, cfg: &EndpointConfig, log: &[String]) {
        let strip = |e: &abi::CtEntry| abi::CtEntry {
            last_seen_ns: 0,
            ..*e
        };
        let mut got: Vec<(abi::CtKey, abi::CtEntry)> = self
            .dp
            .conntrack_entries()
            .into_iter()
            .filter(|(k, _)| k.endpoint_id == cfg.endpoint_id)
            .map(|(k, e)| (k, strip(&e)))
            .collect();
        let mut want: Vec<(abi::CtKey, abi::CtEntry)> = reference
            .conntrack()
            .iter()
            .map(|(k, e)| (*k, strip(e)))
            .collect();
        let order = |a: &(abi::CtKey, abi::CtEntry)| {
            let k = a.0;
            (
                k.remote_ip,
                k.local_ip,
                k.remote_port,
                k.local_port,
                k.proto,
            )
        };
        got.sort_by_key(order);
        want.sort_by_key(order);
        assert!(
            got == want,
            "seed {} case {}: conntrack differs\nbpf {got:#?}\nref {want:#?}\n{}",
            self.seed,
            self.index,
            log.join("\n")
        );
    }
}

/// Commits swap inner maps, and every outer-map update waits an RCU grace period (DESIGN §4),
/// so cases are mostly waiting: run them on several threads, each with its own datapath.
const THREADS: u32 = 32;

fn case_rng(seed: u64, index: u32) -> StdRng {
    StdRng::seed_from_u64(seed ^ u64::from(index).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

fn worker(seed: u64, next: &AtomicU32, cases: u32, only: Option<u32>, tally: &Tally) {
    let pins = PinRoot::new();
    let mut opts = DatapathOptions::new(&pins.root);
    opts.conntrack_entries = 16_384;
    opts.timeouts = Timeouts::default();
    let mut dp = Datapath::open(opts).unwrap_or_else(|e| panic!("open datapath: {e}"));
    assert!(
        dp.mounted_bpffs,
        "the private pin root was mounted by the datapath"
    );
    loop {
        let index = only.unwrap_or_else(|| next.fetch_add(1, Ordering::Relaxed));
        if index >= cases && only.is_none() {
            break;
        }
        let mut rng = case_rng(seed, index);
        Case {
            tally,
            dp: &mut dp,
            seed,
            index,
        }
        .run(&mut rng);
        if only.is_some() {
            break;
        }
    }
    drop(dp);
    drop(pins);
}

#[test]
fn datapath_agrees_with_reference() {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let env = |name: &str| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
    let seed: u64 = env("TANDEM_SG_SEED").unwrap_or_else(rand::random);
    let cases = env("TANDEM_SG_CASES").map_or(10_000, |n| n as u32);
    let only = env("TANDEM_SG_CASE").map(|n| n as u32);
    eprintln!("sg_differential: seed {seed}, {cases} cases (TANDEM_SG_SEED={seed} replays, TANDEM_SG_CASE=<n> one case)");
    let next = AtomicU32::new(0);
    let tally = Tally::default();
    let start = std::time::Instant::now();
    let threads = if only.is_some() { 1 } else { THREADS };
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| s.spawn(|| worker(seed, &next, cases, only, &tally)))
            .collect();
        for h in handles {
            if let Err(panic) = h.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
    eprintln!(
        "sg_differential: {cases} cases agree in {:.1?}",
        start.elapsed()
    );
    eprintln!("{:<45} {:>8}", "outcome (reference = datapath)", "packets");
    for (k, n) in tally.0.lock().unwrap().iter() {
        eprintln!("{k:<45} {n:>8}");
    }
}
