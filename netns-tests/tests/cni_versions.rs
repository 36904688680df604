//! Root-only: what VERSION answers, the shape of the ADD result in every supported spec
//! version, and a chained ADD after a previous plugin's result.

mod common;

use common::{expect_ok, pod, result_ips, run};
use serde_json::{json, Value};
use tandem_lab::lab::Lab;

const SUPPORTED: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

#[test]
fn version_lists_supported_versions() {
    let Some(lab) = common::lab() else { return };
    let mut req = common::node_request(&lab, "n1", "VERSION", Value::Null);
    req.config = json!({"cniVersion": "1.1.0"});
    let out = run(&req);
    assert!(out.success(), "{out:?}");
    let json = out.json.expect("VERSION prints JSON");
    assert_eq!(json["cniVersion"], "1.1.0");
    assert_eq!(json["supportedVersions"], json!(SUPPORTED));
}

/// ADD a new acme pod on n1 in spec `version`; check what every version has in common and
/// return the result (the pod is deleted again).
fn add_in(lab: &Lab, version: &str) -> Value {
    let p = pod(lab, "n1", "acme");
    let mut req = lab.cni_request(&p, "ADD").unwrap();
    req.config["cniVersion"] = json!(version);
    let out = run(&req);
    assert!(out.success(), "ADD {version}: {out:?}");
    let r = out.json.expect("a result");
    assert_eq!(r["cniVersion"], version, "{r}");
    let netns = p.netns_path().display().to_string();
    let ifaces = r["interfaces"].as_array().unwrap();
    let in_pod: Vec<&str> = ifaces
        .iter()
        .filter(|i| i["sandbox"] == json!(netns))
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(in_pod, ["eth0", "eth1"], "{r}");
    let ips = r["ips"].as_array().unwrap();
    assert_eq!(ips.len(), 2, "{r}");
    for (ip, name) in ips.iter().zip(["eth0", "eth1"]) {
        assert!(ip["address"].as_str().unwrap().ends_with("/32"), "{ip}");
        assert_eq!(ip["gateway"], "169.254.1.1", "{ip}");
        let idx = ip["interface"].as_u64().unwrap() as usize;
        assert_eq!(
            ifaces[idx]["name"], name,
            "ips point at the pod interfaces: {r}"
        );
        assert_eq!(ifaces[idx]["sandbox"], json!(netns));
    }
    let routes = r["routes"].as_array().unwrap();
    assert!(
        routes
            .iter()
            .any(|rt| rt["dst"] == "0.0.0.0/0" && rt.get("table").is_none()),
        "the main default route is always reported: {r}"
    );
    expect_ok(&lab.cni_request(&p, "DEL").unwrap());
    r
}

fn assert_ip_version(r: &Value, want: Option<&str>) {
    for ip in r["ips"].as_array().unwrap() {
        assert_eq!(ip.get("version").and_then(Value::as_str), want, "{ip}");
    }
}

fn table_routes(r: &Value) -> usize {
    let routes = r["routes"].as_array().unwrap();
    routes.iter().filter(|rt| rt.get("table").is_some()).count()
}

#[test]
fn add_result_0_3_0_has_ip_versions_and_no_tables() {
    let Some(lab) = common::lab() else { return };
    let r = add_in(&lab, "0.3.0");
    assert_ip_version(&r, Some("4"));
    assert_eq!(table_routes(&r), 0, "{r}");
}

#[test]
fn add_result_0_3_1_has_ip_versions_and_no_tables() {
    let Some(lab) = common::lab() else { return };
    let r = add_in(&lab, "0.3.1");
    assert_ip_version(&r, Some("4"));
    assert_eq!(table_routes(&r), 0, "{r}");
}

#[test]
fn add_result_0_4_0_has_ip_versions_and_no_tables() {
    let Some(lab) = common::lab() else { return };
    let r = add_in(&lab, "0.4.0");
    assert_ip_version(&r, Some("4"));
    assert_eq!(table_routes(&r), 0, "{r}");
}

#[test]
fn add_result_1_0_0_has_no_ip_versions_and_no_tables() {
    let Some(lab) = common::lab() else { return };
    let r = add_in(&lab, "1.0.0");
    assert_ip_version(&r, None);
    assert_eq!(table_routes(&r), 0, "{r}");
}

#[test]
fn add_result_1_1_0_has_routes_with_tables() {
    let Some(lab) = common::lab() else { return };
    let r = add_in(&lab, "1.1.0");
    assert_ip_version(&r, None);
    assert_eq!(table_routes(&r), 2, "one per-interface table each: {r}");
    let tables: Vec<&Value> = r["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rt| &rt["table"])
        .collect();
    assert!(
        tables.contains(&&json!(100)) && tables.contains(&&json!(101)),
        "{r}"
    );
}

#[test]
fn chained_add_keeps_previous_interfaces_first() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "acme");
    let netns = p.netns_path().display().to_string();
    let prev = json!({
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "net0", "mac": "02:00:00:00:00:aa", "sandbox": netns}],
        "ips": [{"address": "192.0.2.5/24", "gateway": "192.0.2.1", "interface": 0}],
        "routes": [{"dst": "192.0.2.0/24"}],
        "dns": {"nameservers": ["192.0.2.53"]}
    });
    let mut req = lab.cni_request(&p, "ADD").unwrap();
    req.config["prevResult"] = prev.clone();
    let out = run(&req);
    assert!(out.success(), "{out:?}");
    let r = out.json.unwrap();
    let ifaces = r["interfaces"].as_array().unwrap();
    assert_eq!(ifaces.len(), 5, "{r}");
    assert_eq!(
        ifaces[0], prev["interfaces"][0],
        "the previous plugin's interface stays first"
    );
    let ips = r["ips"].as_array().unwrap();
    assert_eq!(ips.len(), 3, "{r}");
    assert_eq!(ips[0]["address"], "192.0.2.5/24");
    assert_eq!(ips[0]["interface"], 0);
    for (ip, name) in ips[1..].iter().zip(["eth0", "eth1"]) {
        let idx = ip["interface"].as_u64().unwrap() as usize;
        assert_eq!(ifaces[idx]["name"], name, "{r}");
        assert_eq!(ifaces[idx]["sandbox"], json!(netns), "{r}");
    }
    assert_eq!(r["routes"][0]["dst"], "192.0.2.0/24", "{r}");
    assert_eq!(r["dns"], prev["dns"], "{r}");
    // The pod really has our addresses (the previous plugin's interface is only reported).
    let addrs = common::ip_out(&p.netns, &["-o", "addr"]);
    for ip in &result_ips(&json!({"ips": ips[1..]})) {
        assert!(addrs.contains(ip.as_str()), "{ip}: {addrs}");
    }
    expect_ok(&lab.cni_request(&p, "DEL").unwrap());
    common::assert_clean(&lab, "n1");
}
