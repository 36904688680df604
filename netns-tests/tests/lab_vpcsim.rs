//! Root-only: a lab with agents off, driven through vpcsim's API, checked in the namespaces.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tandem_common::vpcsim::{codes, CreateEniRequest, DescribeEnisRequest, Eni};
use tandem_lab::lab::{self, http::block_on, netns, probe, Lab, LabOptions};

fn options() -> Option<LabOptions> {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return None;
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_tandem-lab"));
    Some(LabOptions {
        start_agents: false,
        bin_dir: bin.parent().map(Path::to_path_buf),
        ..LabOptions::default()
    })
}

fn ip_out(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .arg("-n")
        .arg(ns)
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn leftovers(prefix: &str) -> Vec<String> {
    let own = format!("{prefix}-");
    netns::list()
        .into_iter()
        .filter(|n| n.starts_with(&own))
        .collect()
}

#[test]
fn eni_attach_assign_reach_detach() {
    let Some(opts) = options() else { return };
    let lab = Lab::up(opts).unwrap();
    let prefix = lab.prefix().to_owned();
    let (n1, vpc, plat) = (
        lab.node("n1").unwrap().netns.clone(),
        lab.vpc_netns(),
        lab.plat_netns(),
    );

    let c = lab.vpcsim();
    let (eni, ips): (Eni, Vec<Ipv4Addr>) = block_on(async move {
        let req = CreateEniRequest {
            vswitch_id: "vsw-acme".into(),
            tags: [("tenant".to_owned(), "acme".to_owned())].into(),
            client_token: Some("t1".into()),
        };
        let eni = c.create_eni(&req).await.unwrap();
        assert_eq!(c.create_eni(&req).await.unwrap().id, eni.id, "idempotent");
        let eni = c.attach(&eni.id, "i-n1").await.unwrap();
        let again = c.attach(&eni.id, "i-n2").await.unwrap_err();
        assert_eq!(again.code(), Some(codes::IN_USE));
        let ips = c.assign(&eni.id, 3).await.unwrap();
        (eni, ips)
    });
    assert_eq!(eni.primary_ip, Ipv4Addr::new(10, 1, 0, 2));
    assert_eq!(eni.attachment.as_ref().unwrap().device_index, 1);
    assert_eq!(ips.len(), 3);

    // The ENI appears in n1 as eth1 with its MAC, down; the VPC maps all its IPs to that MAC.
    let link = ip_out(&n1, &["-o", "link", "show", "eth1"]);
    assert!(link.contains(&eni.mac), "{link}");
    assert!(link.contains("state DOWN"), "{link}");
    let neigh = ip_out(
        &vpc,
        &["neigh", "show", "dev", "br-acme", "nud", "permanent"],
    );
    for ip in std::iter::once(eni.primary_ip).chain(ips.iter().copied()) {
        assert!(
            neigh.contains(&format!("{ip} lladdr {}", eni.mac)),
            "{ip}: {neigh}"
        );
    }

    // Configure it as the agent would (crudely) and reach it.
    let primary = format!("{}/24", eni.primary_ip);
    let secondary = format!("{}/32", ips[0]);
    netns::ip(&n1, &["addr", "add", &primary, "dev", "eth1"]).unwrap();
    netns::ip(&n1, &["addr", "add", &secondary, "dev", "eth1"]).unwrap();
    netns::ip(&n1, &["link", "set", "eth1", "up"]).unwrap();
    assert!(probe::ping(&n1, Ipv4Addr::new(10, 1, 0, 1), Some(eni.primary_ip)).unwrap());
    assert!(probe::ping(&plat, eni.primary_ip, None).unwrap());
    assert!(
        probe::ping(&plat, ips[0], None).unwrap(),
        "secondary IP via its neighbour entry"
    );
    assert!(!probe::ping(&plat, Ipv4Addr::new(10, 1, 0, 99), None).unwrap());

    // TCP from a node to the platform host; the server reports the source it saw.
    let server = probe::TcpServer::start(&plat, "192.168.100.10:0".parse().unwrap()).unwrap();
    let dst = SocketAddr::new([192, 168, 100, 10].into(), server.addr().port());
    let seen = probe::tcp_connect(&n1, dst, Duration::from_secs(2)).unwrap();
    assert_eq!(seen.as_deref(), Some("10.10.0.11"));
    drop(server);
    assert_eq!(
        probe::tcp_connect(&n1, dst, Duration::from_secs(1)).unwrap(),
        None
    );

    // Unassign, detach and delete undo the dataplane.
    let (c, id, gone) = (lab.vpcsim(), eni.id.clone(), ips[2]);
    let after = block_on(async move {
        c.unassign(&id, &[gone]).await.unwrap();
        let detached = c.detach(&id).await.unwrap();
        assert!(detached.attachment.is_none());
        c.delete(&id).await.unwrap();
        let err = c.delete(&id).await.unwrap_err();
        assert_eq!(err.code(), Some(codes::ENI_NOT_FOUND));
        c.describe(&DescribeEnisRequest::default()).await.unwrap()
    });
    assert_eq!(after.len(), 2, "only the primaries remain: {after:?}");
    assert!(ip_out(&n1, &["-o", "link", "show", "eth1"]).is_empty());
    let neigh = ip_out(
        &vpc,
        &["neigh", "show", "dev", "br-acme", "nud", "permanent"],
    );
    assert!(neigh.trim().is_empty(), "{neigh}");

    // A pod namespace is created like a runtime does, and removed with the lab.
    let pod = lab.new_pod("n2", "web-1", "acme").unwrap();
    assert!(ip_out(&pod.netns, &["-o", "link", "show", "lo"]).contains("UP"));
    assert_eq!(pod.container_id.len(), 64);

    // cni_exec with a stand-in plugin: the env, stdin and namespace a runtime would give.
    let plugin = lab.run_dir().join("fake-plugin");
    let script = "#!/bin/sh\nread -r cfg\nprintf '{\"cmd\":\"%s\",\"args\":\"%s\",\"ns\":\"%s\",\"links\":\"%s\",\"cfg\":%s}' \
        \"$CNI_COMMAND\" \"$CNI_ARGS\" \"$CNI_NETNS\" \"$(ip -o link | grep -c eth0)\" \"$cfg\"\n";
    std::fs::write(&plugin, script).unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&plugin)
        .status()
        .unwrap();
    let config = lab::cni_exec::plugin_config(&pod.node.conflist).unwrap();
    let mut req = lab::cni_exec::CniRequest::for_pod(plugin, "ADD", &pod, config);
    req.config["extra"] = serde_json::json!(1);
    let out = lab::cni_exec::run(&req).unwrap();
    assert!(out.success(), "{out:?}");
    let json = out.json.expect("json on stdout");
    assert_eq!(json["cmd"], "ADD");
    assert!(json["args"]
        .as_str()
        .unwrap()
        .contains("K8S_POD_NAME=web-1;"));
    assert_eq!(json["ns"], pod.netns_path().display().to_string());
    assert_eq!(
        json["links"], "1",
        "runs in the node netns (which has eth0)"
    );
    assert_eq!(json["cfg"]["name"], "tandem");
    assert_eq!(json["cfg"]["cniVersion"], "1.1.0");
    assert_eq!(json["cfg"]["type"], "tandem");
    let out = lab::cni_exec::run(&req.clone().env("CNI_COMMAND", "BOGUS")).unwrap();
    assert_eq!(out.json.unwrap()["cmd"], "BOGUS");
    std::mem::forget(pod);

    lab.teardown().unwrap();
    assert_eq!(leftovers(&prefix), Vec::<String>::new());
    assert!(!Path::new(lab::names::RUN_ROOT).join(&prefix).exists());
}

#[test]
fn down_cleans_a_detached_lab() {
    let Some(opts) = options() else { return };
    let run_root = opts.run_root.clone();
    let lab = Lab::up(opts).unwrap();
    let record = lab.detach();
    assert_eq!(record.namespaces.len(), 5);
    let vpcsim = record.processes[0].clone();
    assert!(lab::process::is_alive(&vpcsim));
    lab::down(&run_root, &record.prefix).unwrap();
    assert!(!lab::process::is_alive(&vpcsim));
    assert_eq!(leftovers(&record.prefix), Vec::<String>::new());
    assert!(!record.run_dir.exists());
}
