//! The trace logic without root: compiled tables from YAML groups, hand-made interfaces.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use tandem_common::api::{Role, TraceRequest};

use super::endpoints::{ControlPeers, LocalIface};
use super::trace::{parse_flow, resolve, steps, Flow};
use crate::model::{EndpointSpec, Environment};
use crate::policy::compile::{compile, CompiledPolicy, PolicyInput, PolicySpec};
use crate::policy::model::{EnvironmentPolicy, SecurityGroup};
use crate::policy::ControlClass;

const APP: &str = "metadata: {name: sg-app}
spec:
  model: priority
  type: basic
  innerAccessPolicy: accept
  ingress:
    - {priority: 5, action: drop, protocol: udp, ports: \"53\", from: {group: sg-app}}
    - {priority: 10, action: accept, protocol: tcp, ports: \"443\", from: {cidr: 192.168.100.0/24}}
";
const WEB: &str = "metadata: {name: sg-web}
spec:
  model: allowUnion
  ingress:
    - {protocol: tcp, ports: \"80\", from: {group: sg-web}}
";

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn spec(group: &str, env: Environment) -> PolicySpec {
    PolicySpec {
        groups: vec![group.into()],
        environment: EnvironmentPolicy {
            name: "acme".into(),
            kind: env,
            internal: vec![
                "10.1.0.0/16".parse().unwrap(),
                "192.168.100.0/24".parse().unwrap(),
            ],
            egress_allow: vec![],
            exclude: vec![],
        },
    }
}

fn iface(pod: &str, ip_: &str, role: Role, policy: Option<PolicySpec>) -> LocalIface {
    LocalIface {
        pod: format!("acme/{pod}"),
        tenant: "acme".into(),
        host_ifname: format!("tdm-{pod}"),
        role,
        ip: ip(ip_),
        endpoint_id: 1,
        policy,
    }
}

/// Pods a, b in sg-app (10.1.0.10, .11), c in sg-web (10.1.0.12); closed environment.
fn setup() -> (CompiledPolicy, Vec<LocalIface>) {
    let mut groups = BTreeMap::new();
    for y in [APP, WEB] {
        let g: SecurityGroup = serde_yaml::from_str(y).unwrap();
        groups.insert(g.metadata.name.clone(), g);
    }
    let members = BTreeMap::from([
        (
            "sg-app".to_string(),
            BTreeSet::from([ip("10.1.0.10"), ip("10.1.0.11")]),
        ),
        ("sg-web".to_string(), BTreeSet::from([ip("10.1.0.12")])),
    ]);
    let app = spec("sg-app", Environment::Closed);
    let web = spec("sg-web", Environment::Closed);
    let input = PolicyInput {
        groups,
        members,
        policies: vec![app.clone(), web.clone()],
    };
    let ifaces = vec![
        iface("a", "10.1.0.10", Role::Tenant, Some(app.clone())),
        iface("b", "10.1.0.11", Role::Tenant, Some(app)),
        iface("c", "10.1.0.12", Role::Tenant, Some(web)),
        iface("a", "10.0.0.10", Role::Control, None),
        iface("b", "10.0.0.11", Role::Control, None),
    ];
    (compile(&input).unwrap(), ifaces)
}

fn control() -> ControlPeers {
    ControlPeers(vec![
        ("10.0.0.0/24".parse().unwrap(), ControlClass::Pod),
        ("192.168.100.0/24".parse().unwrap(), ControlClass::Platform),
        ("10.0.0.5/32".parse().unwrap(), ControlClass::Platform),
    ])
}

fn flow(src: &str, dst: &str, proto: u8, port: u16) -> Flow {
    Flow {
        src: ip(src),
        dst: ip(dst),
        proto,
        port,
    }
}

#[test]
fn both_local_both_decide_and_the_receivers_drop_rule_is_named() {
    let (c, i) = setup();
    let s = steps(
        Some(&c),
        &control(),
        Some(&i[0]),
        Some(&i[1]),
        &flow("10.1.0.10", "10.1.0.11", 17, 53),
    );
    assert_eq!(s.len(), 2);
    assert_eq!((s[0].direction.as_str(), s[0].allowed), ("egress", true));
    assert!(
        s[0].rule
            .contains("sg-app implicit basic group default egress"),
        "{}",
        s[0].rule
    );
    assert!(
        s[0].notes.iter().any(|n| n.contains("anti-spoofing")),
        "{:?}",
        s[0].notes
    );
    assert!(
        s[0].notes.iter().any(
            |n| n.contains("environment acme allows internal 10.1.0.0/16")
                && n.contains("(closed environment)")
        ),
        "{:?}",
        s[0].notes
    );
    assert_eq!((s[1].direction.as_str(), s[1].allowed), ("ingress", false));
    assert_eq!(s[1].decided_by, "group");
    assert_eq!(
        s[1].rule,
        "sg-app ingress[0]: drop udp 53 from group sg-app (priority 5)"
    );
    assert_ne!(s[1].rule_id, 0);

    let s = steps(
        Some(&c),
        &control(),
        Some(&i[0]),
        Some(&i[1]),
        &flow("10.1.0.10", "10.1.0.11", 6, 8080),
    );
    assert!(s.iter().all(|s| s.allowed));
    assert!(
        s[1].rule.contains("basic group inner accept"),
        "{}",
        s[1].rule
    );
}

#[test]
fn closed_environment_and_default_deny_are_said_in_words() {
    let (c, i) = setup();
    let s = steps(
        Some(&c),
        &control(),
        Some(&i[0]),
        None,
        &flow("10.1.0.10", "8.8.8.8", 6, 443),
    );
    assert!(!s[0].allowed);
    assert_eq!(s[0].decided_by, "environment");
    assert!(s[0].rule.contains("closed"), "{}", s[0].rule);

    let s = steps(
        Some(&c),
        &control(),
        None,
        Some(&i[2]),
        &flow("10.1.0.10", "10.1.0.12", 6, 80),
    );
    assert_eq!(
        (s[0].allowed, s[0].decided_by.as_str()),
        (false, "default-deny")
    );
    assert_eq!(s[0].rule, "default deny: no rule of sg-web matches");

    let s = steps(
        Some(&c),
        &control(),
        None,
        Some(&i[1]),
        &flow("192.168.100.7", "10.1.0.11", 6, 443),
    );
    assert!(s[0].allowed);
    assert!(s[0]
        .rule
        .starts_with("sg-app ingress[1]: accept tcp 443 from 192.168.100.0/24"));
}

#[test]
fn control_interfaces_admit_the_platform_and_the_node_only() {
    let (c, i) = setup();
    let s = steps(
        Some(&c),
        &control(),
        None,
        Some(&i[3]),
        &flow("192.168.100.7", "10.0.0.10", 6, 22),
    );
    assert!(s[0].allowed && s[0].decided_by == "control");
    let s = steps(
        Some(&c),
        &control(),
        None,
        Some(&i[3]),
        &flow("10.0.0.5", "10.0.0.10", 1, 8 << 8),
    );
    assert!(s[0].allowed, "the node is a platform peer");
    let s = steps(
        Some(&c),
        &control(),
        Some(&i[4]),
        Some(&i[3]),
        &flow("10.0.0.11", "10.0.0.10", 1, 8 << 8),
    );
    assert!(s.iter().all(|s| !s.allowed));
    assert!(
        s[1].rule.contains("pods never reach each other"),
        "{}",
        s[1].rule
    );
    let s = steps(
        Some(&c),
        &control(),
        None,
        Some(&i[3]),
        &flow("172.16.0.1", "10.0.0.10", 6, 22),
    );
    assert!(
        s[0].rule.contains("only the platform CIDRs and the node"),
        "{}",
        s[0].rule
    );
}

#[test]
fn nothing_committed_means_no_policy_and_nothing_local_means_no_steps() {
    let (_, i) = setup();
    let s = steps(
        None,
        &control(),
        Some(&i[0]),
        None,
        &flow("10.1.0.10", "10.1.0.99", 6, 80),
    );
    assert_eq!(
        (s[0].allowed, s[0].decided_by.as_str()),
        (false, "no-policy")
    );
    let s = steps(
        None,
        &control(),
        None,
        None,
        &flow("10.9.0.1", "10.9.0.2", 6, 80),
    );
    assert!(s.is_empty());
}

#[test]
fn ends_resolve_from_addresses_and_pod_names() {
    let (_, i) = setup();
    let remote = vec![EndpointSpec {
        node: "n2".into(),
        namespace: "acme".into(),
        pod: "z".into(),
        tenant: "acme".into(),
        ip: ip("10.1.0.50"),
        security_groups: vec!["sg-app".into()],
    }];
    let (a, end, local) = resolve("a", &i, &remote).unwrap();
    assert_eq!(
        (a, end.local, local.unwrap().role),
        (ip("10.1.0.10"), true, Role::Tenant)
    );
    let (a, end, _) = resolve("acme/b", &i, &remote).unwrap();
    assert_eq!((a, end.pod.as_deref()), (ip("10.1.0.11"), Some("acme/b")));
    let (_, end, local) = resolve("10.0.0.10", &i, &remote).unwrap();
    assert_eq!((end.role, local.is_some()), (Some(Role::Control), true));
    let (a, end, local) = resolve("z", &i, &remote).unwrap();
    assert_eq!(
        (a, end.node.as_deref(), local),
        (ip("10.1.0.50"), Some("n2"), None)
    );
    let (_, end, local) = resolve("1.2.3.4", &i, &remote).unwrap();
    assert!(!end.local && end.pod.is_none() && local.is_none());
    assert!(resolve("nobody", &i, &remote).is_err());
}

#[test]
fn icmp_defaults_to_echo_request() {
    let req = |proto: &str| TraceRequest {
        from: String::new(),
        to: String::new(),
        proto: proto.into(),
        port: 80,
        icmp_type: None,
        icmp_code: None,
    };
    assert_eq!(parse_flow(&req("icmp")), Ok((1, 8 << 8)));
    assert_eq!(parse_flow(&req("TCP")), Ok((6, 80)));
    assert!(parse_flow(&req("sctp")).is_err());
}
