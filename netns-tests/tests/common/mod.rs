//! Shared by the root-only CNI tests: one lab per test binary, used by one test at a time, and
//! what a runtime can observe (the plugin's stdout and exit code, the agent's API, the node's
//! links).
//!
//! The lab lives in a static so every test of a file reuses it; it is torn down by an `atexit`
//! handler when the test binary exits (pass or fail), so no namespace or process survives.
//! Each test starts from a clean lab: both agents up, every allocation released by GC.
#![allow(dead_code, reason = "each test file uses a different subset")]

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hyper::Method;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tandem_common::api::{PodsReply, StatusReply, PATH_PODS, PATH_STATUS};
use tandem_lab::lab::cni_exec::{self, CniOutcome, CniRequest};
use tandem_lab::lab::{http, process, Lab, LabOptions, Pod};

pub const NODES: [&str; 2] = ["n1", "n2"];

static LAB: Mutex<Option<Lab>> = Mutex::new(None);
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Exclusive use of the file's lab for one test.
pub struct TestLab(MutexGuard<'static, Option<Lab>>);

impl std::ops::Deref for TestLab {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        self.0.as_ref().expect("lab is up")
    }
}

extern "C" fn teardown_at_exit() {
    let lab = LAB.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(lab) = lab {
        if let Err(e) = lab.teardown() {
            eprintln!("lab teardown: {e}");
        }
    }
}

/// The file's lab, clean; `None` (the test is skipped) when not root.
pub fn lab() -> Option<TestLab> {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return None;
    }
    let mut guard = LAB.lock().unwrap_or_else(|p| p.into_inner());
    if guard.is_none() {
        let bin_dir = Path::new(env!("CARGO_BIN_EXE_tandem-lab"))
            .parent()
            .unwrap();
        for exe in ["tandem", "tandem-agent"] {
            assert!(
                bin_dir.join(exe).exists(),
                "{exe} is not built in {}: run `cargo build` first",
                bin_dir.display()
            );
        }
        let opts = LabOptions {
            bin_dir: Some(bin_dir.to_path_buf()),
            ..LabOptions::default()
        };
        *guard = Some(Lab::up(opts).expect("lab up"));
        // SAFETY: registers a plain extern "C" function that takes no arguments.
        assert_eq!(unsafe { libc::atexit(teardown_at_exit) }, 0);
    }
    let lab = TestLab(guard);
    reset(&lab);
    Some(lab)
}

/// A lab of the calling test's own, torn down when it is dropped and also on Ctrl-C or a
/// timeout's SIGTERM; `None` (the test is skipped) when not root.
pub fn own_lab() -> Option<Lab> {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return None;
    }
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_tandem-lab"))
        .parent()
        .unwrap();
    let lab = Lab::up(LabOptions {
        bin_dir: Some(bin_dir.to_path_buf()),
        ..LabOptions::default()
    })
    .expect("lab up");
    tandem_lab::lab::teardown_on_signal(&lab);
    Some(lab)
}

/// Undo what an earlier (maybe failed) test left: agents up, no allocation, empty queues.
fn reset(lab: &Lab) {
    for node in NODES {
        if !agent_up(lab, node) {
            lab.start_agent(node).expect("restart agent");
        }
        let out = cni_exec::run(&node_request(lab, node, "GC", json!([]))).unwrap();
        assert!(out.success(), "reset GC on {node}: {out:?}");
        let queue = &lab.node(node).unwrap().release_queue_dir;
        for e in std::fs::read_dir(queue).unwrap().flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// A pod with a name unique in this lab.
pub fn pod(lab: &Lab, node: &str, k8s_ns: &str) -> Pod {
    let name = format!("p{}", COUNTER.fetch_add(1, Ordering::Relaxed));
    lab.new_pod(node, &name, k8s_ns).unwrap()
}

/// A node-level invocation (GC, STATUS, VERSION) with `cni.dev/valid-attachments` = `valid`.
pub fn node_request(lab: &Lab, node: &str, cmd: &str, valid: Value) -> CniRequest {
    let info = lab.node(node).unwrap();
    let plugin = process::find_binary("tandem", Some(&lab.cni_bin_dir().unwrap())).unwrap();
    let mut config = cni_exec::plugin_config(&info.conflist).unwrap();
    config["cni.dev/valid-attachments"] = valid;
    let env = [
        ("CNI_COMMAND".to_owned(), cmd.to_owned()),
        (
            "CNI_PATH".to_owned(),
            lab.cni_bin_dir().unwrap().display().to_string(),
        ),
    ];
    CniRequest {
        plugin,
        run_in_netns: Some(info.netns.clone()),
        env: env.into_iter().collect(),
        config,
        raw_stdin: None,
    }
}

/// Run `req`; the outcome as a runtime sees it.
pub fn run(req: &CniRequest) -> CniOutcome {
    cni_exec::run(req).unwrap()
}

/// ADD `pod` with the lab's config; the result, asserting success.
pub fn add(lab: &Lab, pod: &Pod) -> Value {
    let out = lab.cni(pod, "ADD").unwrap();
    assert!(out.success(), "ADD {}: {out:?}", pod.name);
    out.json.expect("ADD prints a result")
}

/// Run `req` and assert it exits 0 printing nothing (DEL, CHECK, GC, STATUS).
pub fn expect_ok(req: &CniRequest) {
    let out = run(req);
    assert!(out.success(), "{}: {out:?}", req.env["CNI_COMMAND"]);
    assert!(out.stdout.trim().is_empty(), "nothing on stdout: {out:?}");
}

/// Assert a CNI error: non-zero exit, an error document with `code` and a message on stdout.
pub fn expect_error(out: &CniOutcome, code: u64) -> String {
    assert!(
        !out.success(),
        "expected error {code}, got success: {out:?}"
    );
    let json = out
        .json
        .as_ref()
        .unwrap_or_else(|| panic!("no JSON: {out:?}"));
    assert_eq!(json["code"], code, "{json}");
    assert!(json["cniVersion"].is_string(), "{json}");
    let msg = json["msg"].as_str().unwrap_or_default().to_owned();
    assert!(!msg.is_empty(), "{json}");
    msg
}

pub fn agent_get<T: DeserializeOwned>(lab: &Lab, node: &str, path: &'static str) -> T {
    let socket = lab.node(node).unwrap().agent_socket.clone();
    let (status, body) =
        http::block_on(async move { http::request(&socket, Method::GET, path, None).await })
            .unwrap();
    assert!(status.is_success(), "GET {path}: {status}");
    serde_json::from_slice(&body).unwrap()
}

pub fn agent_up(lab: &Lab, node: &str) -> bool {
    let socket = lab.node(node).unwrap().agent_socket.clone();
    http::block_on(async move {
        http::request(&socket, Method::GET, PATH_STATUS, None)
            .await
            .is_ok_and(|(s, _)| s.is_success())
    })
}

pub fn status(lab: &Lab, node: &str) -> StatusReply {
    agent_get(lab, node, PATH_STATUS)
}

pub fn pods(lab: &Lab, node: &str) -> PodsReply {
    agent_get(lab, node, PATH_PODS)
}

/// `ip -n <ns> <args>`'s stdout.
pub fn ip_out(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .arg("-n")
        .arg(ns)
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Host veths (`tdm*`) in the node's namespace.
pub fn tdm_links(lab: &Lab, node: &str) -> Vec<String> {
    let ns = &lab.node(node).unwrap().netns;
    ip_out(ns, &["-o", "link"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        .filter(|n| n.starts_with("tdm"))
        .collect()
}

/// Nothing of any pod is left on `node`: no allocation, no host veth.
pub fn assert_clean(lab: &Lab, node: &str) {
    assert_eq!(status(lab, node).allocations, 0, "allocations on {node}");
    assert_eq!(
        tdm_links(lab, node),
        Vec::<String>::new(),
        "links on {node}"
    );
}

/// Poll `f` every 50 ms until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The pod's addresses in the ADD result, in order (control, tenant).
pub fn result_ips(result: &Value) -> Vec<String> {
    result["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ip| {
            ip["address"]
                .as_str()
                .unwrap()
                .trim_end_matches("/32")
                .to_owned()
        })
        .collect()
}

/// No host rule, route or link of `ips` is left on `node`.
pub fn assert_no_trace(lab: &Lab, node: &str, ips: &[String]) {
    let ns = &lab.node(node).unwrap().netns;
    let rules = ip_out(ns, &["rule"]);
    let routes = ip_out(ns, &["route", "show", "table", "all"]);
    for ip in ips {
        let needle = format!("{ip} ");
        assert!(!rules.contains(&needle), "rule of {ip} left: {rules}");
        assert!(!routes.contains(&needle), "route of {ip} left: {routes}");
    }
}

/// Owners of `ips` in the agent's `/v1/enis` (`None`: free in the pool).
pub fn owners(lab: &Lab, node: &str, ips: &[String]) -> Vec<Option<String>> {
    let enis: tandem_common::api::EnisReply = agent_get(lab, node, tandem_common::api::PATH_ENIS);
    ips.iter()
        .map(|ip| {
            let uses = enis.enis.iter().flat_map(|e| e.ips.iter());
            let found = uses.clone().find(|u| u.ip.to_string() == *ip);
            let found = found.unwrap_or_else(|| panic!("{ip} is not in the pool: {enis:?}"));
            found.owner.as_ref().map(|k| k.container_id.clone())
        })
        .collect()
}
