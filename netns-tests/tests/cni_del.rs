//! Root-only: DEL always succeeds (CNI spec: DEL is idempotent and must tolerate missing
//! state), releases everything, and is queued durably while the agent is down.

mod common;

use std::time::Duration;

use common::{add, assert_clean, assert_no_trace, expect_ok, owners, pod, result_ips, status};
use tandem_lab::lab::{Lab, Pod};

fn del(lab: &Lab, p: &Pod) {
    expect_ok(&lab.cni_request(p, "DEL").unwrap());
}

#[test]
fn del_twice_in_a_row() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "acme");
    let ips = result_ips(&add(&lab, &p));
    del(&lab, &p);
    del(&lab, &p);
    assert_clean(&lab, "n1");
    assert_no_trace(&lab, "n1", &ips);
    assert_eq!(
        owners(&lab, "n1", &ips),
        [None, None],
        "addresses back in the pool"
    );
}

#[test]
fn del_with_netns_empty_or_unset() {
    let Some(lab) = common::lab() else { return };
    let empty = pod(&lab, "n1", "acme");
    let ips = result_ips(&add(&lab, &empty));
    expect_ok(&lab.cni_request(&empty, "DEL").unwrap().env("CNI_NETNS", ""));
    assert_clean(&lab, "n1");
    assert_no_trace(&lab, "n1", &ips);
    let unset = pod(&lab, "n1", "acme");
    let ips = result_ips(&add(&lab, &unset));
    expect_ok(
        &lab.cni_request(&unset, "DEL")
            .unwrap()
            .without_env("CNI_NETNS"),
    );
    assert_clean(&lab, "n1");
    assert_no_trace(&lab, "n1", &ips);
}

#[test]
fn del_after_pod_netns_was_deleted() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "acme");
    let ips = result_ips(&add(&lab, &p));
    let req = lab.cni_request(&p, "DEL").unwrap();
    p.delete().unwrap();
    expect_ok(&req);
    assert_clean(&lab, "n1");
    assert_no_trace(&lab, "n1", &ips);
    assert_eq!(owners(&lab, "n1", &ips), [None, None]);
}

#[test]
fn del_without_prev_result() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "acme");
    let ips = result_ips(&add(&lab, &p));
    let req = lab.cni_request(&p, "DEL").unwrap();
    assert!(req.config.get("prevResult").is_none());
    expect_ok(&req);
    assert_clean(&lab, "n1");
    assert_no_trace(&lab, "n1", &ips);
}

#[test]
fn del_with_prev_result() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "acme");
    let result = add(&lab, &p);
    let mut req = lab.cni_request(&p, "DEL").unwrap();
    req.config["prevResult"] = result.clone();
    expect_ok(&req);
    assert_clean(&lab, "n1");
    assert_no_trace(&lab, "n1", &result_ips(&result));
}

#[test]
fn del_of_a_container_never_added() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "acme");
    del(&lab, &p);
    let stranger = lab
        .cni_request(&p, "DEL")
        .unwrap()
        .env("CNI_CONTAINERID", "never-added");
    expect_ok(&stranger);
    assert_clean(&lab, "n1");
}

#[test]
fn del_while_agent_stopped_is_queued_and_applied_on_start() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "acme");
    let other = pod(&lab, "n1", "acme");
    let ips = result_ips(&add(&lab, &p));
    add(&lab, &other);
    let queue = lab.node("n1").unwrap().release_queue_dir.clone();
    lab.stop_agent("n1").unwrap();
    let out = common::run(&lab.cni_request(&p, "DEL").unwrap());
    let queued: Vec<String> = std::fs::read_dir(&queue)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    lab.start_agent("n1").unwrap();
    assert!(out.success() && out.stdout.trim().is_empty(), "{out:?}");
    assert_eq!(queued, [format!("{}@eth0.json", p.container_id)]);

    let released = common::wait_for(Duration::from_secs(5), || {
        status(&lab, "n1").allocations == 1
    });
    assert!(released, "queued release applied: {:?}", status(&lab, "n1"));
    let st = status(&lab, "n1");
    assert_eq!(st.pending_releases, 0, "{st:?}");
    assert_eq!(
        std::fs::read_dir(&queue).unwrap().count(),
        0,
        "queue drained"
    );
    let pods = common::pods(&lab, "n1").pods;
    assert_eq!(pods.len(), 1);
    assert_eq!(
        pods[0].key.container_id, other.container_id,
        "only the other pod is left"
    );
    assert_eq!(
        owners(&lab, "n1", &ips),
        [None, None],
        "the IPs are free again"
    );
    assert_no_trace(&lab, "n1", &ips);
    assert_eq!(
        common::tdm_links(&lab, "n1").len(),
        2,
        "the other pod's veths stay"
    );
    del(&lab, &other);
    assert_clean(&lab, "n1");
}
