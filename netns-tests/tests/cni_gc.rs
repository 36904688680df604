//! Root-only: GC (spec 1.1.0) releases exactly the attachments the runtime no longer lists;
//! STATUS succeeds while the agent is up.

mod common;

use common::{add, assert_no_trace, expect_ok, node_request, owners, pod, result_ips};
use serde_json::json;

#[test]
fn gc_releases_attachments_not_in_valid_attachments() {
    let Some(lab) = common::lab() else { return };
    let keep = pod(&lab, "n1", "acme");
    let stale = pod(&lab, "n1", "globex");
    let kept_ips = result_ips(&add(&lab, &keep));
    let stale_ips = result_ips(&add(&lab, &stale));
    assert_eq!(common::tdm_links(&lab, "n1").len(), 4);

    let valid = json!([{"containerID": keep.container_id, "ifname": "eth0"}]);
    expect_ok(&node_request(&lab, "n1", "GC", valid));

    let pods = common::pods(&lab, "n1").pods;
    assert_eq!(pods.len(), 1, "{pods:?}");
    assert_eq!(pods[0].key.container_id, keep.container_id);
    assert_eq!(
        common::tdm_links(&lab, "n1").len(),
        2,
        "the kept pod's veths stay"
    );
    assert_no_trace(&lab, "n1", &stale_ips);
    assert_eq!(
        owners(&lab, "n1", &stale_ips),
        [None, None],
        "stale IPs are free"
    );
    let kept = owners(&lab, "n1", &kept_ips);
    assert!(
        kept.iter()
            .all(|o| o.as_deref() == Some(&keep.container_id)),
        "{kept:?}"
    );
    // The kept pod is still whole.
    let mut check = lab.cni_request(&keep, "CHECK").unwrap();
    check.config["prevResult"] = add(&lab, &keep);
    expect_ok(&check);

    expect_ok(&lab.cni_request(&keep, "DEL").unwrap());
    common::assert_clean(&lab, "n1");
}

#[test]
fn gc_on_another_node_leaves_this_one_alone() {
    let Some(lab) = common::lab() else { return };
    let p = pod(&lab, "n1", "acme");
    add(&lab, &p);
    expect_ok(&node_request(&lab, "n2", "GC", json!([])));
    assert_eq!(common::status(&lab, "n1").allocations, 1);
    expect_ok(&lab.cni_request(&p, "DEL").unwrap());
    common::assert_clean(&lab, "n1");
}

#[test]
fn status_succeeds_when_agent_is_up() {
    let Some(lab) = common::lab() else { return };
    for node in common::NODES {
        expect_ok(&node_request(&lab, node, "STATUS", json!(null)));
    }
}
