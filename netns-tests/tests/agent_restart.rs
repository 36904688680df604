//! Root-only: a real restart of `tandem-agent` (process stopped and started again) between a
//! pod's ADD and DEL: the datapath keeps working, the agent adopts the pod, never hands its
//! addresses out twice, and DEL still frees it.

mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use common::{add, expect_ok, owners, pod, result_ips};
use tandem_lab::lab::{probe, Lab, Pod};

const PLATFORM: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 10);

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// `p` reaches the platform over its control interface and `peer_tenant_ip` over its tenant
/// interface (each ping bound to that interface's address).
fn assert_reaches(p: &Pod, ips: &[String], peer_tenant_ip: &str, when: &str) {
    // Up to 3 tries: a pod's group membership reaches the other node's agent some 30-100 ms
    // after its ADD (published endpoints, polled), and a ping sent before that is dropped.
    let ping = |dst, src| (0..3).any(|_| probe::ping(&p.netns, dst, Some(ip(src))).unwrap());
    assert!(ping(PLATFORM, &ips[0]), "{when}: platform over eth0");
    assert!(ping(ip(peer_tenant_ip), &ips[1]), "{when}: peer over eth1");
}

fn restart(lab: &Lab, node: &str) {
    let before = lab.record().processes.len();
    lab.stop_agent(node).unwrap();
    assert!(!common::agent_up(lab, node), "agent {node} is down");
    assert_eq!(lab.record().processes.len(), before - 1);
    lab.start_agent(node).unwrap();
}

#[test]
fn pod_survives_an_agent_restart_and_del_frees_it() {
    let Some(lab) = common::lab() else { return };
    let a = pod(&lab, "n1", "acme");
    let b = pod(&lab, "n2", "acme");
    let a_ips = result_ips(&add(&lab, &a));
    let b_ips = result_ips(&add(&lab, &b));
    let before = common::pods(&lab, "n1").pods;
    assert_reaches(&a, &a_ips, &b_ips[1], "before the restart");

    lab.stop_agent("n1").unwrap();
    assert_reaches(&a, &a_ips, &b_ips[1], "while the agent is down");
    lab.start_agent("n1").unwrap();
    assert_reaches(&a, &a_ips, &b_ips[1], "after the restart");
    assert_eq!(
        common::pods(&lab, "n1").pods,
        before,
        "the agent adopted the pod as it was"
    );
    assert_eq!(common::tdm_links(&lab, "n1").len(), 2);

    // The restarted agent still knows the pod is intact.
    let mut check = lab.cni_request(&a, "CHECK").unwrap();
    check.config["prevResult"] = add(&lab, &a);
    expect_ok(&check);

    expect_ok(&lab.cni_request(&a, "DEL").unwrap());
    assert_eq!(owners(&lab, "n1", &a_ips), [None, None]);
    common::assert_clean(&lab, "n1");
    expect_ok(&lab.cni_request(&b, "DEL").unwrap());
    common::assert_clean(&lab, "n2");
}

#[test]
fn no_address_is_allocated_twice_after_a_restart() {
    let Some(lab) = common::lab() else { return };
    let old: Vec<Pod> = (0..2).map(|_| pod(&lab, "n1", "acme")).collect();
    let mut seen = BTreeSet::new();
    for p in &old {
        seen.extend(result_ips(&add(&lab, p)));
    }
    restart(&lab, "n1");
    // Few enough that one ENI per plane holds them all (see `warm_pool_starves` below).
    let new: Vec<Pod> = (0..4).map(|_| pod(&lab, "n1", "acme")).collect();
    for p in &new {
        for ip in result_ips(&add(&lab, p)) {
            assert!(
                seen.insert(ip.clone()),
                "{ip} handed out twice after the restart"
            );
        }
    }
    assert_eq!(common::status(&lab, "n1").allocations, 6);
    for p in &old {
        let owner = owners(&lab, "n1", &result_ips(&add(&lab, p)));
        assert!(
            owner.iter().all(|o| o.as_deref() == Some(&p.container_id)),
            "{owner:?}"
        );
    }
    for p in old.iter().chain(&new) {
        expect_ok(&lab.cni_request(p, "DEL").unwrap());
    }
    common::assert_clean(&lab, "n1");
}

#[test]
fn del_of_a_pod_added_before_two_restarts() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n2", "globex");
    let ips = result_ips(&add(&lab, &p));
    restart(&lab, "n2");
    restart(&lab, "n2");
    let pods = common::pods(&lab, "n2").pods;
    assert_eq!(pods.len(), 1);
    let held: Vec<String> = pods[0]
        .interfaces
        .iter()
        .map(|i| i.ip.to_string())
        .collect();
    assert_eq!(held, ips, "same IPs after restarts");
    expect_ok(&lab.cni_request(&p, "DEL").unwrap());
    assert_eq!(owners(&lab, "n2", &ips), [None, None]);
    common::assert_no_trace(&lab, "n2", &ips);
    common::assert_clean(&lab, "n2");
}

#[test]
fn concurrent_adds_right_after_a_restart_get_distinct_addresses() {
    let Some(lab) = common::lab() else { return };
    let held = pod(&lab, "n1", "globex");
    let mut seen: BTreeSet<String> = result_ips(&add(&lab, &held)).into_iter().collect();
    restart(&lab, "n1");
    let pods: Vec<Pod> = (0..4).map(|_| pod(&lab, "n1", "globex")).collect();
    let results: Vec<Vec<String>> = std::thread::scope(|s| {
        let lab = &*lab;
        let handles: Vec<_> = pods
            .iter()
            .map(|p| s.spawn(move || result_ips(&add(lab, p))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for ip in results.into_iter().flatten() {
        assert!(seen.insert(ip.clone()), "{ip} handed out twice");
    }
    assert_eq!(common::status(&lab, "n1").allocations, 5);
    for p in std::iter::once(&held).chain(&pods) {
        expect_ok(&lab.cni_request(p, "DEL").unwrap());
    }
    common::assert_clean(&lab, "n1");
}
