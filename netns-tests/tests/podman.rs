//! Root-only: a real runtime drives the plugin. podman 4.3 (CNI backend), started inside lab
//! node n1's namespace, runs a container on network `tandem`; the container gets both
//! interfaces, reaches its tenant peer on n2 and the platform, and `podman rm -f` gives both
//! addresses back.
//!
//! podman passes no Kubernetes namespace (its CNI_ARGS are `IgnoreUnknown=1;K8S_POD_NAME=<name>`)
//! and does not turn a conflist's `args.cni` into CNI_ARGS, so the tenant comes from the
//! plugin config's `tenant` field: one podman network per tenant.

mod common;
#[path = "podman/sandbox.rs"]
mod sandbox;

use std::process::{Command, Stdio};

use common::{add, lab, pods, result_ips, status};
use sandbox::Podman;
use serde_json::Value;
use tandem_lab::lab::netns;

const PLATFORM: &str = "192.168.100.10";

fn podman_installed() -> bool {
    let found = Command::new("podman")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("skipped: podman is not installed (apt-get install -y podman)");
    }
    found
}

/// Namespaces podman creates for its containers (`netns-<uuid>`).
fn podman_netns() -> Vec<String> {
    netns::list()
        .into_iter()
        .filter(|n| n.starts_with("netns-"))
        .collect()
}

/// The n1 conflist's plugin entry, pinned to tenant acme.
fn acme_plugin(conflist: &std::path::Path) -> Value {
    let list: Value = serde_json::from_str(&std::fs::read_to_string(conflist).unwrap()).unwrap();
    let mut plugin = list["plugins"][0].clone();
    plugin["tenant"] = "acme".into();
    plugin
}

#[test]
fn podman_container_on_tandem() {
    let Some(lab) = lab() else { return };
    if !podman_installed() {
        return;
    }
    let netns_before = podman_netns();

    // The same-tenant peer on the other node, wired the way kubelet would.
    let peer = common::pod(&lab, "n2", "acme");
    let peer_ips = result_ips(&add(&lab, &peer));
    let peer_tenant_ip = peer_ips[1].clone();

    let n1 = lab.node("n1").unwrap().clone();
    let allocations_before = status(&lab, "n1").allocations;
    let tandem = lab.cni_bin_dir().unwrap().join("tandem");
    let podman = Podman::new(&n1.netns, &tandem, acme_plugin(&n1.conflist));
    let podman_dir = podman.dir().to_path_buf();
    podman.import_busybox();

    let id = podman.ok(&[
        "run",
        "--detach",
        "--network",
        "tandem",
        "--cap-add",
        "NET_RAW",
        "localhost/busybox",
        "sleep",
        "600",
    ]);
    assert_eq!(status(&lab, "n1").allocations, allocations_before + 1);
    let listed = pods(&lab, "n1");
    let info = listed
        .pods
        .iter()
        .find(|p| p.key.container_id == id)
        .unwrap_or_else(|| panic!("agent does not list container {id}: {listed:?}"));
    assert_eq!(info.tenant, "acme");
    assert_eq!(info.interfaces.len(), 2);

    // Both interfaces, with the addresses the agent handed out.
    let addrs = podman.ok(&["exec", &id, "ip", "-o", "-4", "addr"]);
    eprintln!("container {id} on n1:\n{addrs}");
    for (ifname, iface) in ["eth0", "eth1"].iter().zip(&info.interfaces) {
        assert_eq!(&iface.ifname, ifname);
        let want = format!("{ifname}    inet {}/", iface.ip);
        assert!(
            addrs.lines().any(|l| l.contains(&want)),
            "{want:?} in:\n{addrs}"
        );
    }

    // Tenant traffic over eth1 to the peer on n2, platform traffic over eth0.
    for (dst, dev) in [(peer_tenant_ip.as_str(), "eth1"), (PLATFORM, "eth0")] {
        let route = podman.ok(&["exec", &id, "ip", "route", "get", dst]);
        assert!(route.contains(&format!("dev {dev}")), "{dst}: {route}");
        eprintln!("{route}");
        let ping = podman.run(&["exec", &id, "ping", "-c1", "-W1", dst]);
        assert!(
            ping.status.success(),
            "ping {dst} from the container: {}",
            String::from_utf8_lossy(&ping.stdout)
        );
    }

    // `podman rm -f` runs CNI DEL: both addresses go back, the pod is gone.
    podman.ok(&["rm", "--force", "--time", "0", &id]);
    assert_eq!(status(&lab, "n1").allocations, allocations_before);
    assert!(
        !pods(&lab, "n1")
            .pods
            .iter()
            .any(|p| p.key.container_id == id),
        "container {id} still listed"
    );

    drop(podman);
    assert_eq!(sandbox::leftovers(&podman_dir), Vec::<String>::new());
    assert_eq!(podman_netns(), netns_before, "podman's netns left behind");
    let out = lab.cni(&peer, "DEL").unwrap();
    assert!(out.success(), "DEL peer: {out:?}");
}
