//! Root-only: the security-group debug CLI against a live lab (issue 4, "Must show").
//! Pods a, b on n1 and c on n2 share `sg-cli` (a basic priority group whose members accept
//! each other, except tcp 22 which is dropped at priority 5). `tandemctl trace` names the
//! deciding rule and exits 0/1, `sg` lists local and remote members, `conntrack` shows the
//! flow of a ping, `monitor` shows a drop within a second.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tandem_lab::lab::{probe, Lab, Pod};

use common::{add, lab, pod, result_ips, wait_for};

fn tandemctl_bin() -> PathBuf {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_tandem-lab"))
        .parent()
        .unwrap()
        .join("tandemctl");
    assert!(
        bin.exists(),
        "tandemctl is not built: run `cargo build` first"
    );
    bin
}

/// `tandemctl --socket <n1's> args…`: (exit code, stdout).
fn ctl(lab: &Lab, node: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(tandemctl_bin())
        .arg("--socket")
        .arg(&lab.node(node).unwrap().agent_socket)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "$ tandemctl {}\n{stdout}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), stdout)
}

fn ctl_json(lab: &Lab, node: &str, args: &[&str]) -> Value {
    let mut a = vec!["-o", "json"];
    a.extend_from_slice(args);
    let (_, out) = ctl(lab, node, &a);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The lab's shared config directory gets `sg-cli` and puts the given pods in it.
fn write_groups(lab: &Lab, pods: &[&Pod]) -> PathBuf {
    let mut yaml = String::from(
        "apiVersion: tandem.dev/v1alpha1\n\
         kind: SecurityGroup\n\
         metadata: {name: sg-cli}\n\
         spec:\n\
         \x20 model: priority\n\
         \x20 type: basic\n\
         \x20 innerAccessPolicy: accept\n\
         \x20 ingress:\n\
         \x20   - {priority: 5, action: drop, protocol: tcp, ports: \"22\", from: {group: sg-cli}}\n",
    );
    for p in pods {
        yaml += &format!(
            "---\napiVersion: tandem.dev/v1alpha1\nkind: PodSecurityGroups\n\
             spec: {{namespace: {}, pod: {}, securityGroups: [sg-cli]}}\n",
            p.k8s_namespace, p.name
        );
    }
    let path = lab.names().config_dir().join("sg-cli-test.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// `tandemctl monitor` as a child whose stdout lines arrive on a channel.
struct Monitor {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Monitor {
    fn start(lab: &Lab, node: &str, pod: &str) -> Monitor {
        let mut child = Command::new(tandemctl_bin())
            .arg("--socket")
            .arg(&lab.node(node).unwrap().agent_socket)
            .args(["-o", "json", "monitor", "--drops-only", "--pod", pod])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Monitor { child, lines }
    }

    fn next(&self, timeout: Duration) -> Option<Value> {
        let l = self.lines.recv_timeout(timeout).ok()?;
        eprintln!("monitor: {l}");
        serde_json::from_str(&l).ok()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        // Our own child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn trace_sg_conntrack_monitor() {
    let Some(lab) = lab() else { return };
    let (a, b) = (pod(&lab, "n1", "acme"), pod(&lab, "n1", "acme"));
    let c = pod(&lab, "n2", "acme");
    let (ra, rb, rc) = (add(&lab, &a), add(&lab, &b), add(&lab, &c));
    let (ia, ib) = (result_ips(&ra), result_ips(&rb));
    let (a_ctl, a_ten): (Ipv4Addr, Ipv4Addr) = (ia[0].parse().unwrap(), ia[1].parse().unwrap());
    let (b_ctl, b_ten): (Ipv4Addr, Ipv4Addr) = (ib[0].parse().unwrap(), ib[1].parse().unwrap());
    let c_ten = result_ips(&rc)[1].clone();
    let config = write_groups(&lab, &[&a, &b, &c]);

    // sg: both local members and c, published by n2, once the agents caught up.
    let members_ok = wait_for(Duration::from_secs(15), || {
        let sg = ctl_json(&lab, "n1", &["sg"]);
        let g = sg["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "sg-cli")
            .cloned()
            .unwrap_or_default();
        let pods: Vec<(String, bool)> = g["members"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|m| (m["pod"].as_str().unwrap().to_owned(), m["local"] == true))
                    .collect()
            })
            .unwrap_or_default();
        pods.contains(&(format!("acme/{}", a.name), true))
            && pods.contains(&(format!("acme/{}", b.name), true))
            && pods.contains(&(format!("acme/{}", c.name), false))
            && g["usedBy"].as_array().is_some_and(|u| u.len() == 2)
    });
    let (code, table) = ctl(&lab, "n1", &["sg"]);
    assert!(members_ok, "sg-cli members never showed: {table}");
    assert_eq!(code, 0);
    assert!(
        table.contains(&format!("member {c_ten} acme/{} (n2)", c.name)),
        "{table}"
    );

    // trace: the drop rule decides tcp 22, the inner accept tcp 80.
    let a_ten_s = a_ten.to_string();
    let (code, out) = ctl(
        &lab,
        "n1",
        &[
            "trace", "--from", &a.name, "--to", &b.name, "--proto", "tcp", "--port", "22",
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "decided by group: sg-cli ingress[0]: drop tcp 22 from group sg-cli (priority 5)"
        ),
        "{out}"
    );
    assert!(out.contains("verdict: DENIED"), "{out}");
    let (code, out) = ctl(
        &lab,
        "n1",
        &[
            "trace", "--from", &a_ten_s, "--to", &b.name, "--proto", "tcp", "--port", "80",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("sg-cli implicit basic group inner accept"),
        "{out}"
    );
    // Towards a pod on n2: only a's egress is decided here.
    let (code, out) = ctl(
        &lab,
        "n1",
        &[
            "trace", "--from", &a.name, "--to", &c.name, "--proto", "icmp",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("on node n2"), "{out}");
    // Control network: pod to pod is dropped.
    let (code, out) = ctl(
        &lab,
        "n1",
        &[
            "trace",
            "--from",
            &a_ctl.to_string(),
            "--to",
            &b_ctl.to_string(),
            "--proto",
            "tcp",
            "--port",
            "22",
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("pods never reach each other"), "{out}");
    // Neither side here.
    let (code, out) = ctl(
        &lab,
        "n1",
        &[
            "trace",
            "--from",
            "10.250.0.1",
            "--to",
            "10.250.0.2",
            "--proto",
            "udp",
            "--port",
            "53",
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not on this node"), "{out}");
    // JSON: the deciding rule id is the datapath's.
    let t = ctl_json(
        &lab,
        "n1",
        &[
            "trace", "--from", &a.name, "--to", &b.name, "--proto", "tcp", "--port", "22",
        ],
    );
    assert_eq!(t["allowed"], false);
    assert!(t["steps"][1]["ruleId"].as_u64().unwrap() > 0, "{t}");

    // conntrack: a ping from a to b is tracked on a's tenant veth, opened by the pod.
    assert!(
        probe::ping(&a.netns, b_ten, Some(a_ten)).unwrap(),
        "a pings b"
    );
    let ct = ctl_json(&lab, "n1", &["conntrack", "--pod", &a.name]);
    let flows = ct["flows"].as_array().unwrap();
    let icmp = flows
        .iter()
        .find(|f| {
            f["proto"] == "icmp" && f["remoteIp"] == b_ten.to_string() && f["origin"] == "pod"
        })
        .unwrap_or_else(|| panic!("no icmp flow of a: {ct}"));
    assert!(
        icmp["ruleId"].as_u64().unwrap() > 0 && icmp["generation"].as_u64().unwrap() > 0,
        "{icmp}"
    );
    assert!(
        ct["capacity"].as_u64().unwrap() > 0 && ct["entries"].as_u64().unwrap() >= 1,
        "{ct}"
    );
    let (code, table) = ctl(&lab, "n1", &["conntrack"]);
    assert_eq!(code, 0);
    assert!(
        table.contains("conntrack: ") && table.contains("icmp"),
        "{table}"
    );

    // monitor: a's SYN to b:22 is dropped at b; the event arrives within a second.
    let m = Monitor::start(&lab, "n1", &b.name);
    let start = m.next(Duration::from_secs(5)).expect("monitor start line");
    assert_eq!(start["type"], "start", "{start}");
    let sent = Instant::now();
    let dst = SocketAddr::from((b_ten, 22));
    assert_eq!(
        probe::tcp_connect(&a.netns, dst, Duration::from_millis(300)).unwrap(),
        None
    );
    let ev = loop {
        let ev = m
            .next(Duration::from_secs(1))
            .expect("a drop event within 1 s");
        if ev["type"] == "event" && ev["dport"] == 22 {
            break ev;
        }
    };
    let waited = sent.elapsed();
    assert!(
        waited < Duration::from_millis(1300),
        "drop shown after {waited:?}"
    );
    assert_eq!(ev["verdict"], "drop", "{ev}");
    assert_eq!(ev["reason"], "policy", "{ev}");
    assert_eq!(ev["direction"], "ingress", "{ev}");
    assert_eq!(ev["pod"], format!("acme/{}", b.name), "{ev}");
    assert_eq!(ev["src"], a_ten.to_string(), "{ev}");
    assert!(ev["rule"].as_str().unwrap().contains("drop tcp 22"), "{ev}");
    drop(m);

    // metrics: policy drops and the conntrack fill are exported.
    let (status, body) = {
        let socket = lab.node("n1").unwrap().agent_socket.clone();
        tandem_lab::lab::http::block_on(async move {
            tandem_lab::lab::http::request(&socket, hyper::Method::GET, "/metrics", None).await
        })
        .unwrap()
    };
    assert!(status.is_success());
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("tandem_datapath_drops_total{reason=\"policy\"}"),
        "{text}"
    );
    assert!(text.contains("tandem_conntrack_capacity"), "{text}");
    assert!(text.contains("tandem_rule_packets{"), "{text}");

    std::fs::remove_file(config).unwrap();
    for p in [&a, &b, &c] {
        common::expect_ok(&lab.cni_request(p, "DEL").unwrap());
    }
}
