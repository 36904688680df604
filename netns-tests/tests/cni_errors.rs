//! Root-only: every CNI error code of the real `tandem` binary, as a runtime sees it (an error
//! document on stdout, a non-zero exit), and that a failed ADD leaves nothing behind.

mod common;

use common::{assert_clean, expect_error, node_request, pod, run};
use serde_json::{json, Value};
use tandem_lab::lab::cni_exec::CniRequest;
use tandem_lab::lab::{netns, Lab};

/// ADD `req` (for a pod on n1) must fail with `code`, and leave n1 clean.
fn failed_add(lab: &Lab, req: &CniRequest, code: u64) -> String {
    let msg = expect_error(&run(req), code);
    assert_clean(lab, "n1");
    msg
}

fn add_req(lab: &Lab, p: &tandem_lab::lab::Pod) -> CniRequest {
    lab.cni_request(p, "ADD").unwrap()
}

fn with_config(mut req: CniRequest, key: &str, value: Value) -> CniRequest {
    req.config[key] = value;
    req
}

#[test]
fn code1_unsupported_cni_versions() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "acme");
    let req = with_config(add_req(&lab, &p), "cniVersion", json!("0.2.0"));
    let msg = failed_add(&lab, &req, 1);
    assert!(msg.contains("0.2.0"), "{msg}");
    // CHECK exists from 0.4.0 on, GC and STATUS from 1.1.0 on.
    let check = with_config(
        lab.cni_request(&p, "CHECK").unwrap(),
        "cniVersion",
        json!("0.3.1"),
    );
    let out = run(&check);
    expect_error(&out, 1);
    assert_eq!(
        out.json.unwrap()["cniVersion"],
        "0.3.1",
        "answers in the caller's version"
    );
    for cmd in ["GC", "STATUS"] {
        let req = with_config(
            node_request(&lab, "n1", cmd, json!([])),
            "cniVersion",
            json!("1.0.0"),
        );
        let msg = expect_error(&run(&req), 1);
        assert!(msg.contains(cmd), "{cmd}: {msg}");
    }
}

#[test]
fn code2_ipam_section_is_unsupported() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "acme");
    let req = with_config(add_req(&lab, &p), "ipam", json!({"type": "host-local"}));
    let msg = failed_add(&lab, &req, 2);
    assert!(msg.contains("ipam"), "{msg}");
}

#[test]
fn code4_missing_cni_path() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "acme");
    let msg = failed_add(&lab, &add_req(&lab, &p).without_env("CNI_PATH"), 4);
    assert!(msg.contains("CNI_PATH"), "{msg}");
}

#[test]
fn code4_missing_netns_on_add() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "acme");
    let msg = failed_add(&lab, &add_req(&lab, &p).without_env("CNI_NETNS"), 4);
    assert!(msg.contains("CNI_NETNS"), "{msg}");
    failed_add(&lab, &add_req(&lab, &p).env("CNI_NETNS", ""), 4);
}

#[test]
fn code4_bad_container_id() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "acme");
    for id in ["-x", "a/b"] {
        let msg = failed_add(&lab, &add_req(&lab, &p).env("CNI_CONTAINERID", id), 4);
        assert!(msg.contains("CNI_CONTAINERID"), "{id}: {msg}");
    }
}

#[test]
fn code4_bad_ifname() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "acme");
    for name in ["eth0123456789abc", "eth:0"] {
        let msg = failed_add(&lab, &add_req(&lab, &p).env("CNI_IFNAME", name), 4);
        assert!(msg.contains(name), "{name}: {msg}");
    }
}

#[test]
fn code4_unknown_command() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "acme");
    let msg = failed_add(&lab, &add_req(&lab, &p).env("CNI_COMMAND", "BOGUS"), 4);
    assert!(msg.contains("BOGUS"), "{msg}");
}

#[test]
fn code4_unknown_cni_arg_unless_ignore_unknown() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "acme");
    let args = format!(
        "K8S_POD_NAMESPACE=acme;K8S_POD_NAME={};K8S_POD_UID={};FOO=bar",
        p.name, p.uid
    );
    let msg = failed_add(&lab, &add_req(&lab, &p).env("CNI_ARGS", &args), 4);
    assert!(msg.contains("FOO"), "{msg}");
    let allowed = add_req(&lab, &p).env("CNI_ARGS", &format!("IgnoreUnknown=1;{args}"));
    let out = run(&allowed);
    assert!(out.success(), "IgnoreUnknown=1 allows FOO: {out:?}");
    common::expect_ok(&lab.cni_request(&p, "DEL").unwrap());
    assert_clean(&lab, "n1");
}

#[test]
fn code6_garbage_stdin() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "acme");
    let mut req = add_req(&lab, &p);
    req.raw_stdin = Some(b"{not json".to_vec());
    failed_add(&lab, &req, 6);
}

#[test]
fn code7_missing_name() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "acme");
    let mut req = add_req(&lab, &p);
    req.config.as_object_mut().unwrap().remove("name");
    let msg = failed_add(&lab, &req, 7);
    assert!(msg.contains("name"), "{msg}");
}

#[test]
fn code7_wrong_type() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "acme");
    let req = with_config(add_req(&lab, &p), "type", json!("bridge"));
    let msg = failed_add(&lab, &req, 7);
    assert!(msg.contains("bridge"), "{msg}");
}

#[test]
fn code7_tenant_ifname_equals_cni_ifname() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "acme");
    let req = with_config(add_req(&lab, &p), "tenantIfName", json!("eth0"));
    let msg = failed_add(&lab, &req, 7);
    assert!(msg.contains("eth0"), "{msg}");
}

#[test]
fn code11_add_while_agent_stopped() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "acme");
    lab.stop_agent("n1").unwrap();
    let out = run(&add_req(&lab, &p));
    lab.start_agent("n1").unwrap();
    let msg = expect_error(&out, 11);
    assert!(msg.contains("agent"), "{msg}");
    assert_clean(&lab, "n1");
    assert!(
        common::ip_out(&p.netns, &["-o", "addr"])
            .lines()
            .all(|l| l.contains(" lo ")),
        "the pod netns is untouched"
    );
}

#[test]
fn code50_status_while_agent_stopped() {
    let Some(lab) = common::lab() else { return };
    lab.stop_agent("n1").unwrap();
    let out = run(&node_request(&lab, "n1", "STATUS", json!([])));
    lab.start_agent("n1").unwrap();
    expect_error(&out, 50);
}

#[test]
fn code101_namespace_without_tenant_network() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "nobody");
    let msg = failed_add(&lab, &add_req(&lab, &p), 101);
    assert!(msg.contains("nobody"), "{msg}");
}

#[test]
fn code102_netns_path_does_not_exist() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "acme");
    let missing = format!("/run/netns/{}-does-not-exist", lab.prefix());
    let msg = failed_add(&lab, &add_req(&lab, &p).env("CNI_NETNS", &missing), 102);
    assert!(msg.contains(&missing), "{msg}");
}

#[test]
fn code102_netns_path_is_not_a_netns() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "acme");
    let not_ns = lab.node("n1").unwrap().conflist.display().to_string();
    failed_add(&lab, &add_req(&lab, &p).env("CNI_NETNS", &not_ns), 102);
}

#[test]
fn code103_wiring_failure_is_rolled_back() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "acme");
    // The runtime (or a previous plugin) already put an eth1 in the pod.
    netns::ip(
        &p.netns,
        &["link", "add", "eth1", "type", "veth", "peer", "name", "x1"],
    )
    .unwrap();
    let msg = failed_add(&lab, &add_req(&lab, &p), 103);
    assert!(msg.contains("eth1"), "{msg}");
    let links = common::ip_out(&p.netns, &["-o", "link"]);
    assert!(
        links.contains(" eth1@x1"),
        "the pod's own eth1 is untouched: {links}"
    );
    assert!(
        !links.contains(" eth0@"),
        "our eth0 was rolled back: {links}"
    );
    assert_eq!(
        common::owners(&lab, "n1", &[]),
        Vec::<Option<String>>::new()
    );
    let st = common::status(&lab, "n1");
    assert!(
        st.planes.iter().all(|pl| pl.used_ips == 0),
        "addresses returned: {st:?}"
    );
}
