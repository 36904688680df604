//! Unit tests of the model, the compiler and the reference evaluator (no root needed).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use super::compile::{aligned_prefixes, compile, PolicyInput, PolicySpec};
use super::model::{Dir, EnvironmentPolicy, SecurityGroup};
use super::packet::{Packet, L3, L4, TCP_ACK, TCP_SYN};
use super::reference::Reference;
use super::{EndpointConfig, Reason, Role, Timeouts};
use crate::model::{Environment, Model};

const GROUPS: &str = r#"
kind: SecurityGroup
metadata: {name: sg-web}
spec:
  model: priority
  type: basic
  innerAccessPolicy: accept
  ingress:
    - {priority: 10, action: accept, protocol: tcp, ports: "80-443", from: {group: sg-lb}}
    - {priority: 10, action: drop, protocol: tcp, ports: "100-200", from: {cidr: 10.0.0.0/8}}
    - {priority: 5, action: accept, protocol: tcp, ports: 150, from: {cidr: 10.0.1.0/24}}
    - {priority: 20, action: accept, protocol: icmp, icmp: {type: 8}, from: {cidr: 0.0.0.0/0}}
  egress:
    - {priority: 1, action: drop, protocol: all, to: {cidr: 100.64.0.0/10}}
---
kind: SecurityGroup
metadata: {name: sg-lb}
spec: {model: priority, type: basic, innerAccessPolicy: drop}
---
kind: SecurityGroup
metadata: {name: sg-ent}
spec:
  model: priority
  type: enterprise
  ingress: [{priority: 1, action: accept, protocol: udp, ports: "53", from: {cidr: 0.0.0.0/0}}]
  egress: [{priority: 1, action: accept, protocol: udp, ports: "53", to: {cidr: 10.0.0.0/8}}]
---
kind: SecurityGroup
metadata: {name: sg-aws}
spec:
  model: allowUnion
  ingress:
    - {protocol: tcp, ports: "22", from: {cidr: 10.0.2.0/24}}
    - {protocol: all, from: {group: sg-aws}}
"#;

const POD: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const LB: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 7);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 9);

fn groups() -> BTreeMap<String, SecurityGroup> {
    // Through the agent's model loader: the same parser as TenantNetwork objects.
    let dir = std::env::temp_dir().join(format!("tandem-sg-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("sg.yaml"), GROUPS).unwrap();
    let m = Model::load(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    m.unwrap().security_groups
}

fn env(kind: Environment) -> EnvironmentPolicy {
    EnvironmentPolicy {
        name: "acme".into(),
        kind,
        internal: vec!["10.0.0.0/8".parse().unwrap()],
        egress_allow: vec![],
        exclude: vec![],
    }
}

fn input(local: &[&str], kind: Environment) -> PolicyInput {
    let members = BTreeMap::from([
        (
            "sg-web".to_string(),
            BTreeSet::from([POD, Ipv4Addr::new(10, 0, 0, 2)]),
        ),
        ("sg-lb".to_string(), BTreeSet::from([LB])),
        ("sg-aws".to_string(), BTreeSet::from([POD, PEER])),
    ]);
    PolicyInput {
        groups: groups(),
        members,
        policies: vec![PolicySpec {
            groups: local.iter().map(|s| s.to_string()).collect(),
            environment: env(kind),
        }],
    }
}

fn reference(input: &PolicyInput) -> Reference {
    let mut r = Reference::new(Timeouts::default());
    r.set_policy(input.clone(), 1).unwrap();
    r
}

#[test]
fn aligned_prefixes_cover_exactly() {
    assert_eq!(aligned_prefixes(0, u16::MAX), vec![(0, 0)]);
    assert_eq!(aligned_prefixes(80, 80), vec![(80, 16)]);
    for (lo, hi) in [(1u16, 65534u16), (80, 443), (1024, 2047), (7, 9), (0, 0)] {
        let p = aligned_prefixes(lo, hi);
        assert!(p.len() <= 30, "{lo}-{hi}: {} prefixes", p.len());
        let covered: u32 = p.iter().map(|(_, len)| 1u32 << (16 - len)).sum();
        assert_eq!(covered, u32::from(hi - lo) + 1);
        assert_eq!(p[0].0, lo);
    }
}

#[test]
fn priority_model_semantics() {
    let inp = input(&["sg-web"], Environment::Open);
    let r = reference(&inp);
    let id = inp.policies[0].id();
    let v = |remote, proto, port| r.new_flow(id, Dir::Ingress, remote, proto, port).allowed;
    assert!(v(LB, 6, 80), "accept from a referenced group");
    assert!(!v(LB, 6, 120), "drop wins the tie at priority 10");
    assert!(v(LB, 6, 150), "priority 5 beats the drop at 10");
    assert!(
        !v(Ipv4Addr::new(10, 0, 3, 3), 6, 80),
        "not a member of sg-lb"
    );
    assert!(
        v(Ipv4Addr::new(10, 0, 0, 2), 17, 9),
        "basic group: members accept each other"
    );
    assert!(
        v(Ipv4Addr::new(8, 8, 8, 8), 1, 8 << 8),
        "icmp echo request from anywhere"
    );
    assert!(
        !v(Ipv4Addr::new(8, 8, 8, 8), 1, 3 << 8),
        "other icmp types are denied"
    );
    let e = |remote| r.new_flow(id, Dir::Egress, remote, 6, 443).allowed;
    assert!(
        e(Ipv4Addr::new(1, 1, 1, 1)),
        "basic group: egress allowed by default"
    );
    assert!(!e(Ipv4Addr::new(100, 64, 1, 1)), "explicit egress drop");
}

#[test]
fn enterprise_and_allow_union_defaults() {
    let inp = input(&["sg-ent"], Environment::Open);
    let r = reference(&inp);
    let id = inp.policies[0].id();
    assert!(r.new_flow(id, Dir::Ingress, LB, 17, 53).allowed);
    assert!(!r.new_flow(id, Dir::Ingress, LB, 17, 54).allowed);
    assert!(
        !r.new_flow(id, Dir::Egress, Ipv4Addr::new(1, 1, 1, 1), 17, 53)
            .allowed,
        "enterprise: egress denied by default"
    );
    assert!(r.new_flow(id, Dir::Egress, LB, 17, 53).allowed);

    let inp = input(&["sg-aws"], Environment::Closed);
    let r = reference(&inp);
    let id = inp.policies[0].id();
    assert!(r.new_flow(id, Dir::Ingress, PEER, 6, 22).allowed);
    assert!(
        r.new_flow(id, Dir::Ingress, PEER, 47, 0).allowed,
        "self reference, all protocols"
    );
    assert!(!r.new_flow(id, Dir::Ingress, LB, 6, 22).allowed);
    assert!(
        r.new_flow(id, Dir::Egress, LB, 6, 1).allowed,
        "default egress, closed environment inside the VPC"
    );
    let out = r.new_flow(id, Dir::Egress, Ipv4Addr::new(1, 1, 1, 1), 6, 1);
    assert!(
        !out.allowed && out.by_environment,
        "closed environment blocks the internet"
    );
}

#[test]
fn invalid_groups_are_rejected() {
    let mut inp = input(&["sg-web", "sg-aws"], Environment::Open);
    assert!(compile(&inp).is_err(), "mixed rule models");
    let mut bad = inp.groups["sg-web"].clone();
    bad.spec.ingress[0].from = Some(super::model::PeerSpec {
        cidr: None,
        group: Some("sg-ent".into()),
    });
    inp.groups.insert("sg-web".into(), bad);
    inp.policies[0].groups = vec!["sg-web".into()];
    assert!(
        compile(&inp).is_err(),
        "enterprise groups cannot be referenced"
    );
}

/// The compiled tables (as `trace` walks them) agree with the reference on a grid of flows.
#[test]
fn compiled_tables_agree_with_reference() {
    for (local, kind) in [
        (&["sg-web", "sg-lb"][..], Environment::Open),
        (&["sg-web"][..], Environment::Closed),
        (&["sg-ent"][..], Environment::Controlled),
        (&["sg-aws"][..], Environment::Closed),
    ] {
        let inp = input(local, kind);
        let r = reference(&inp);
        let c = compile(&inp).unwrap();
        let id = inp.policies[0].id();
        let remotes = [
            POD,
            LB,
            PEER,
            Ipv4Addr::new(10, 0, 0, 2),
            Ipv4Addr::new(100, 64, 0, 9),
            Ipv4Addr::new(8, 8, 8, 8),
        ];
        for remote in remotes {
            for dir in [Dir::Ingress, Dir::Egress] {
                for (proto, ports) in [
                    (
                        6u8,
                        &[22u16, 53, 79, 80, 99, 100, 150, 200, 201, 443, 444][..],
                    ),
                    (17, &[53, 54]),
                    (1, &[0, 8 << 8, 3 << 8 | 1]),
                    (47, &[0]),
                ] {
                    for &port in ports {
                        assert_eq!(
                            c.evaluate(id, dir, remote, proto, port),
                            r.new_flow(id, dir, remote, proto, port),
                            "{local:?} {dir:?} {remote} proto {proto} port {port}"
                        );
                    }
                }
            }
        }
    }
}

fn tcp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, flags: u8, from_pod: bool) -> Packet {
    let (pod_mac, host_mac) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    Packet {
        src_mac: if from_pod { pod_mac } else { host_mac },
        dst_mac: if from_pod { host_mac } else { pod_mac },
        l3: L3::Ipv4 {
            src,
            dst,
            frag_offset: 0,
            l4: L4::Tcp {
                sport,
                dport,
                flags,
            },
        },
    }
}

#[test]
fn conntrack_replies_rule_changes_and_recheck() {
    let inp = input(&["sg-web"], Environment::Open);
    let id = inp.policies[0].id();
    for recheck in [false, true] {
        let mut r = reference(&inp);
        let cfg = EndpointConfig {
            endpoint_id: 7,
            role: Role::Tenant { policy_id: id },
            ip: POD,
            mac: [2, 0, 0, 0, 0, 1],
            audit: false,
            recheck,
        };
        r.set_endpoint(3, cfg);
        let syn = tcp(LB, POD, 40000, 80, TCP_SYN, false);
        assert!(r.process(3, false, &syn, 0).pass);
        let reply = tcp(POD, LB, 80, 40000, TCP_SYN | TCP_ACK, true);
        let o = r.process(3, true, &reply, 1);
        assert!(o.pass && o.tracked, "the reply of an allowed flow passes");
        // sg-lb loses its member: new flows from LB are denied, the tracked one survives
        // unless re-check is on.
        let mut changed = inp.clone();
        changed.members.insert("sg-lb".into(), BTreeSet::new());
        r.set_policy(changed, 2).unwrap();
        let ack = tcp(LB, POD, 40000, 80, TCP_ACK, false);
        assert_eq!(r.process(3, false, &ack, 2).pass, !recheck);
        assert!(
            !r.process(3, false, &tcp(LB, POD, 40001, 80, TCP_SYN, false), 3)
                .pass
        );
    }
}

#[test]
fn spoofing_strict_start_and_timeouts() {
    let inp = input(&["sg-web"], Environment::Open);
    let id = inp.policies[0].id();
    let mut r = reference(&inp);
    let syn = tcp(POD, LB, 1000, 443, TCP_SYN, true);
    assert_eq!(
        r.process(3, true, &syn, 0).reason,
        Reason::NoEndpoint,
        "no entry: everything drops"
    );
    let cfg = EndpointConfig {
        endpoint_id: 1,
        role: Role::Tenant { policy_id: id },
        ip: POD,
        mac: [2, 0, 0, 0, 0, 1],
        audit: false,
        recheck: false,
    };
    r.set_endpoint(3, cfg);
    let spoof_ip = tcp(LB, PEER, 1000, 443, TCP_SYN, true);
    assert_eq!(r.process(3, true, &spoof_ip, 0).reason, Reason::SpoofIp);
    let mut spoof_mac = syn;
    spoof_mac.src_mac = [2, 9, 9, 9, 9, 9];
    assert_eq!(r.process(3, true, &spoof_mac, 0).reason, Reason::SpoofMac);
    assert!(r.process(3, true, &syn, 0).pass);
    let reply = tcp(LB, POD, 443, 1000, TCP_SYN | TCP_ACK, false);
    let syn_timeout = u64::from(Timeouts::default().tcp_syn) * 1_000_000_000;
    assert!(
        !r.process(3, false, &reply, syn_timeout + 1).pass,
        "an expired entry no longer admits replies"
    );
}
