//! Root-only: CHECK with the ADD result as prevResult passes on an intact pod and fails with
//! code 104, naming the problem, once the pod's network was tampered with.

mod common;

use common::{expect_error, expect_ok, pod, result_ips, run};
use serde_json::{json, Value};
use tandem_lab::lab::cni_exec::CniRequest;
use tandem_lab::lab::{netns, Lab, Pod};

/// ADD `p` in spec `version`; the result.
fn add_in(lab: &Lab, p: &Pod, version: &str) -> Value {
    let mut req = lab.cni_request(p, "ADD").unwrap();
    req.config["cniVersion"] = json!(version);
    let out = run(&req);
    assert!(out.success(), "ADD: {out:?}");
    out.json.unwrap()
}

/// The CHECK a runtime sends after `result`.
fn check_req(lab: &Lab, p: &Pod, result: &Value) -> CniRequest {
    let mut req = lab.cni_request(p, "CHECK").unwrap();
    req.config["cniVersion"] = result["cniVersion"].clone();
    req.config["prevResult"] = result.clone();
    req
}

/// CHECK must fail with 104; the message.
fn failed_check(lab: &Lab, p: &Pod, result: &Value) -> String {
    let msg = expect_error(&run(&check_req(lab, p, result)), 104);
    expect_ok(&lab.cni_request(p, "DEL").unwrap());
    common::assert_clean(lab, "n1");
    msg
}

#[test]
fn check_passes_right_after_add() {
    let Some(lab) = common::lab() else { return };
    for version in ["0.4.0", "1.0.0", "1.1.0"] {
        let p = pod(&lab, "n1", "acme");
        let result = add_in(&lab, &p, version);
        expect_ok(&check_req(&lab, &p, &result));
        expect_ok(&check_req(&lab, &p, &result));
        expect_ok(&lab.cni_request(&p, "DEL").unwrap());
    }
    common::assert_clean(&lab, "n1");
}

#[test]
fn check_fails_after_tenant_address_removed() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "acme");
    let result = add_in(&lab, &p, "1.1.0");
    let tenant_ip = result_ips(&result)[1].clone();
    netns::ip(
        &p.netns,
        &["addr", "del", &format!("{tenant_ip}/32"), "dev", "eth1"],
    )
    .unwrap();
    let msg = failed_check(&lab, &p, &result);
    assert!(msg.contains("eth1") && msg.contains(&tenant_ip), "{msg}");
}

#[test]
fn check_fails_after_host_veth_deleted() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "acme");
    let result = add_in(&lab, &p, "1.1.0");
    let host_veth = result["interfaces"][0]["name"].as_str().unwrap().to_owned();
    assert!(host_veth.starts_with("tdm"), "{result}");
    netns::ip(&p.node.netns, &["link", "del", &host_veth]).unwrap();
    // The pod end (eth0) goes with its peer; whichever is noticed first must be named.
    let msg = failed_check(&lab, &p, &result);
    assert!(msg.contains(&host_veth) || msg.contains("eth0"), "{msg}");
}

#[test]
fn check_fails_after_pod_route_deleted() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "acme");
    let result = add_in(&lab, &p, "1.1.0");
    netns::ip(&p.netns, &["route", "del", "192.168.100.0/24"]).unwrap();
    let msg = failed_check(&lab, &p, &result);
    assert!(msg.contains("192.168.100.0/24"), "{msg}");
}

#[test]
fn check_fails_after_per_interface_table_route_deleted() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "acme");
    let result = add_in(&lab, &p, "1.1.0");
    netns::ip(&p.netns, &["route", "del", "default", "table", "101"]).unwrap();
    let msg = failed_check(&lab, &p, &result);
    assert!(msg.contains("table 101"), "{msg}");
}

#[test]
fn check_fails_for_a_container_never_added() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "acme");
    let q = pod(&lab, "n1", "acme");
    let result = add_in(&lab, &q, "1.1.0");
    let netns = p.netns_path().display().to_string();
    let mut forged = result.clone();
    for i in forged["interfaces"].as_array_mut().unwrap() {
        if i.get("sandbox").is_some() {
            i["sandbox"] = json!(netns);
        }
    }
    let msg = expect_error(&run(&check_req(&lab, &p, &forged)), 104);
    assert!(msg.contains(&p.container_id), "{msg}");
    expect_ok(&lab.cni_request(&q, "DEL").unwrap());
}
