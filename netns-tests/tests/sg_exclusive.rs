//! Root-only: security groups on exclusive ENIs (DESIGN.md §4). In exclusive mode the tenant
//! interface is the ENI itself, moved into the pod: there is no host veth, so the programs
//! run on the ENI inside the pod's netns. Tenant initech (exclusive, one basic group, closed)
//! next to acme (shared), on two nodes:
//!
//! - the matrix (pods, nodes, platform, internet × tcp/80, tcp/443, udp/53, icmp × eth1, eth0)
//!   measured with real packets equals what the reference evaluator computes from the YAML;
//! - after initech's group turns its inner policy to drop, the matrix follows;
//! - a forged source IP or MAC never leaves an exclusive ENI;
//! - after DEL the ENI is back on the node with no program attached, and serves a new pod.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use tandem_lab::demo::{start_all, DemoPod};
use tandem_lab::isolation::spoof::{self, Payload, Sniffer};
use tandem_lab::isolation::{self, Isolation, IsolationError};
use tandem_lab::lab::Lab;

const PODS: &[(&str, &str, &str)] = &[
    ("initech-a", "n1", "initech"),
    ("initech-b", "n2", "initech"),
    ("initech-c", "n1", "initech"),
    ("acme-a", "n1", "acme"),
];

/// initech's group, its members no longer admitted (tenant files: `lab::node::write_config`).
const INITECH_DROP: &str = "apiVersion: tandem.dev/v1alpha1
kind: SecurityGroup
metadata: {name: sg-initech}
spec:
  model: priority
  type: basic
  innerAccessPolicy: drop
  ingress:
    - {priority: 10, action: accept, protocol: tcp, ports: \"443\", from: {group: sg-initech}}
";

fn isolation_of(lab: &Lab, pods: &[DemoPod]) -> Isolation {
    isolation::lab::isolation(lab, pods.iter().map(DemoPod::party))
}

/// Measure the whole matrix, print it beside the expected one, fail on any difference.
fn check_matrix(lab: &Lab, iso: &Isolation, when: &str) {
    let c = isolation::lab::compare(lab, iso).expect("measure");
    eprintln!(
        "{}{when}: {} probes, {} differences",
        c.render(iso, &format!("measured ({when}):")),
        c.measured.len(),
        c.differences.len()
    );
    assert!(
        c.differences.is_empty(),
        "{when}: isolation differs:\n{}",
        c.differences.join("\n")
    );
}

/// The links pinned on `node` for interface `ifname` of `netns` (`<ifindex>-<program>`;
/// Debian's bpftool predates TCX).
fn pinned(lab: &Lab, node: &str, netns: &str, ifname: &str) -> Vec<String> {
    let ifindex = link_json(netns)
        .into_iter()
        .find(|l| l["ifname"] == ifname)
        .and_then(|l| l["ifindex"].as_u64())
        .expect("the interface");
    pins_of(lab, node, ifindex)
}

/// Every link pinned on `node` for `ifindex`.
fn pins_of(lab: &Lab, node: &str, ifindex: u64) -> Vec<String> {
    let dir = lab.names().bpf_root(node).join("links");
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{ifindex}-")))
        .collect();
    v.sort();
    v
}

fn link_json(netns: &str) -> Vec<serde_json::Value> {
    let out = std::process::Command::new("ip")
        .args(["-j", "-n", netns, "link", "show"])
        .output()
        .expect("ip link");
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j");
    links.as_array().cloned().unwrap_or_default()
}

/// The name of the link with `mac` in `netns`.
fn link_by_mac(netns: &str, mac: [u8; 6]) -> Option<String> {
    let want = mac.map(|b| format!("{b:02x}")).join(":");
    link_json(netns).into_iter().find_map(|l| {
        (l["address"].as_str() == Some(&want)).then(|| l["ifname"].as_str().unwrap().to_string())
    })
}

#[test]
fn exclusive_enis_enforce_security_groups_inside_the_pod() {
    let Some(lab) = common::own_lab() else {
        return;
    };
    let mut pods = start_all(&lab, PODS).expect("start pods");
    for p in pods.iter().filter(|p| p.pod.name.starts_with("initech")) {
        let pins = pinned(&lab, &p.pod.node.name, &p.pod.netns, "eth1");
        assert!(
            pins.len() == 2 && pins[0].ends_with("-from_pod") && pins[1].ends_with("-to_pod"),
            "{}: eth1 (the ENI, inside the pod) has both programs: {pins:?}",
            p.pod.name
        );
    }
    {
        let iso = isolation_of(&lab, &pods);
        let _servers = iso.serve().expect("echo servers");
        check_matrix(&lab, &iso, "at start");
        spoofing(&pods);
        let dir = lab.names().config_dir();
        let tenant = std::fs::read_to_string(dir.join("initech.yaml")).unwrap();
        let without_group = tenant
            .split("\n---\n")
            .filter(|doc| !doc.contains("kind: SecurityGroup"))
            .collect::<Vec<_>>()
            .join("\n---\n");
        std::fs::write(dir.join("initech.yaml"), without_group).unwrap();
        std::fs::write(dir.join("sg-initech.yaml"), INITECH_DROP).unwrap();
        // Applied within 100 ms (isolation_matrix measures it); leave room on a busy machine.
        std::thread::sleep(Duration::from_millis(500));
        check_matrix(&lab, &iso, "after sg-initech drops its members but https");
    }
    eni_returns_clean(&lab, &mut pods);
    let (prefix, run_dir) = (lab.prefix().to_owned(), lab.run_dir().to_owned());
    drop(pods);
    lab.teardown().expect("teardown");
    assert!(
        !tandem_lab::lab::netns::list()
            .iter()
            .any(|n| n.starts_with(&format!("{prefix}-"))),
        "namespaces left"
    );
    assert!(!run_dir.exists(), "{} left", run_dir.display());
}

fn pod<'a>(pods: &'a [DemoPod], name: &str) -> &'a DemoPod {
    pods.iter().find(|p| p.pod.name == name).expect("pod")
}

/// A forged source IP (raw socket) or MAC (AF_PACKET) from initech-a's ENI never arrives at
/// initech-c; the same packet with its own addresses does.
fn spoofing(pods: &[DemoPod]) {
    let (a, c) = (pod(pods, "initech-a"), pod(pods, "initech-c"));
    let forged: Ipv4Addr = pod(pods, "initech-b").tenant_ip;
    for (src, want) in [(a.tenant_ip, true), (forged, false)] {
        let marker = spoof::marker();
        let sniff = Sniffer::start(&c.pod.netns, marker, Duration::from_millis(300)).unwrap();
        spoof::send_ip(
            &a.pod.netns,
            spoof::ipv4_packet(src, c.tenant_ip, Payload::Echo, &marker),
        )
        .unwrap();
        assert_eq!(sniff.arrived().unwrap(), want, "source {src}");
    }
    let ns = &a.pod.netns;
    let own = spoof::link_mac(ns, "eth1").unwrap();
    let c_mac = spoof::link_mac(&c.pod.netns, "eth1").unwrap();
    for (mac, want) in [(own, true), ([0x02, 0xde, 0xad, 0xbe, 0xef, 0x02], false)] {
        let marker = spoof::marker();
        let sniff = Sniffer::start(&c.pod.netns, marker, Duration::from_millis(300)).unwrap();
        let pkt = spoof::ipv4_packet(a.tenant_ip, c.tenant_ip, Payload::Echo, &marker);
        // Straight to c's ENI on the vSwitch: the frame needs no router. A program that drops
        // on the sender's own egress makes the send fail with ENOBUFS.
        match spoof::send_frame(ns, "eth1", mac, c_mac, pkt) {
            Ok(()) => {}
            Err(IsolationError::Io { source, .. })
                if !want && source.raw_os_error() == Some(libc::ENOBUFS) => {}
            Err(e) => panic!("send a frame from MAC {mac:02x?}: {e}"),
        }
        assert_eq!(sniff.arrived().unwrap(), want, "frame from MAC {mac:02x?}");
    }
    eprintln!("spoofing: initech-a's ENI: forged IP and MAC dropped (honest packets arrive)");
}

/// DEL initech-c: its ENI goes back to n1 (same ifindex) with no link left; a new pod works.
fn eni_returns_clean(lab: &Lab, pods: &mut Vec<DemoPod>) {
    let i = pods.iter().position(|p| p.pod.name == "initech-c").unwrap();
    let c = pods.remove(i);
    let mac = spoof::link_mac(&c.pod.netns, "eth1").unwrap();
    let ifindex = link_json(&c.pod.netns)
        .into_iter()
        .find(|l| l["ifname"] == "eth1")
        .and_then(|l| l["ifindex"].as_u64())
        .expect("eth1");
    let del = lab.cni(&c.pod, "DEL").expect("DEL initech-c");
    assert!(del.success(), "DEL initech-c: {del:?}");
    let n1 = lab.names().netns("n1");
    let back = link_by_mac(&n1, mac).expect("the ENI is back on n1");
    let on_node = link_json(&n1)
        .into_iter()
        .find(|l| l["ifname"] == back.as_str())
        .and_then(|l| l["ifindex"].as_u64());
    assert_eq!(
        on_node,
        Some(ifindex),
        "the ENI keeps its ifindex in and out of the pod"
    );
    let left = pins_of(lab, "n1", ifindex);
    assert!(
        left.is_empty(),
        "the links of initech-c's ENI ({back} on n1 again) are still pinned: {left:?}"
    );
    let mut fresh = start_all(lab, &[("initech-d", "n1", "initech")]).expect("ADD initech-d");
    pods.append(&mut fresh);
    let iso = isolation_of(lab, pods);
    let _servers = iso.serve().expect("echo servers");
    check_matrix(lab, &iso, "with initech-d, added after the DEL");
}
