//! Root-only: vpcsim's injected latency, throttling, failures and partial failures, set at start
//! and at run time, seen through its API and in the lab's namespaces. Agents off: these tests
//! drive the cloud directly. One lab per test, so they run in parallel.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tandem_common::vpcsim::{codes, CreateEniRequest, DescribeEnisRequest, Eni, SetFaultsRequest};
use tandem_lab::lab::{http::block_on, Lab, LabOptions};
use tandem_lab::vpcsim::{ClientError, VpcsimClient};

fn lab_with(f: impl FnOnce(&mut LabOptions)) -> Option<Lab> {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return None;
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_tandem-lab"));
    let mut opts = LabOptions {
        start_agents: false,
        bin_dir: bin.parent().map(Path::to_path_buf),
        ..LabOptions::default()
    };
    f(&mut opts);
    Some(Lab::up(opts).unwrap())
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

fn create_req(token: &str) -> CreateEniRequest {
    CreateEniRequest {
        vswitch_id: "vsw-acme".into(),
        tags: [("test".to_owned(), token.to_owned())].into(),
        client_token: Some(token.into()),
    }
}

fn faults(f: impl FnOnce(&mut SetFaultsRequest)) -> SetFaultsRequest {
    let mut req = SetFaultsRequest::default();
    f(&mut req);
    req
}

fn status_code(e: &ClientError) -> (u16, &str) {
    match e {
        ClientError::Cloud { status, error, .. } => (*status, error.code.as_str()),
        other => panic!("not a cloud error: {other}"),
    }
}

async fn by_tag(c: &VpcsimClient, token: &str) -> Vec<Eni> {
    let req = DescribeEnisRequest {
        tags: [("test".to_owned(), token.to_owned())].into(),
        ..Default::default()
    };
    c.describe(&req).await.unwrap()
}

#[test]
fn throttling_answers_at_the_configured_rate_and_recovers() {
    let Some(lab) = lab_with(|o| {
        o.throttle_rate = 5.0;
        o.throttle_burst = 3;
    }) else {
        return;
    };
    let c = lab.vpcsim();
    block_on(async move {
        // The burst, then 503 RequestLimitExceeded.
        let mut results = Vec::new();
        for _ in 0..6 {
            results.push(c.describe_instance("i-n1").await);
        }
        assert!(results[..3].iter().all(Result::is_ok), "{results:?}");
        for r in &results[3..] {
            let e = r.as_ref().unwrap_err();
            assert_eq!(status_code(e), (503, codes::THROTTLED));
        }
        // Another action has its own bucket.
        c.create_eni(&create_req("other-bucket")).await.unwrap();
        // Hammering for 2 s gets about rate × 2 s through.
        let start = Instant::now();
        let mut ok = 0;
        while start.elapsed() < Duration::from_secs(2) {
            ok += u32::from(c.describe_instance("i-n1").await.is_ok());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!((8..=12).contains(&ok), "{ok} calls in 2 s at 5/s");
        // Left alone, the bucket refills (to its burst) and calls pass again.
        tokio::time::sleep(Duration::from_millis(700)).await;
        for _ in 0..3 {
            c.describe_instance("i-n1").await.unwrap();
        }
        let stats = c.stats().await.unwrap();
        let s = stats.actions["DescribeInstance"];
        assert_eq!(s.calls - s.throttled, 3 + u64::from(ok) + 3, "{s:?}");
        assert!(s.throttled >= 3, "{s:?}");
        assert_eq!(stats.faults.throttle_rate, 5.0);
        // Turned off at run time.
        c.set_faults(&faults(|f| f.throttle_rate = Some(0.0)))
            .await
            .unwrap();
        for _ in 0..20 {
            c.describe_instance("i-n1").await.unwrap();
        }
    });
    lab.teardown().unwrap();
}

#[test]
fn fail_rate_one_fails_every_call_without_side_effects() {
    let Some(lab) = lab_with(|_| {}) else { return };
    let c = lab.vpcsim();
    let vpc = lab.vpc_netns();
    let links_before = ip_out(&vpc, &["-o", "link"]);
    let c2 = c.clone();
    let eni = block_on(async move {
        let eni = c2.create_eni(&create_req("existing")).await.unwrap();
        let set = c2
            .set_faults(&faults(|f| f.fail_rate = Some(1.0)))
            .await
            .unwrap();
        assert_eq!(set.fail_rate, 1.0);
        let errs = [
            c2.create_eni(&create_req("never")).await.unwrap_err(),
            c2.attach(&eni.id, "i-n1").await.unwrap_err(),
            c2.assign(&eni.id, 2).await.unwrap_err(),
            c2.delete(&eni.id).await.unwrap_err(),
            c2.describe_vswitches().await.unwrap_err(),
        ];
        for e in &errs {
            assert_eq!(status_code(e), (500, codes::INTERNAL), "{e}");
        }
        c2.clear_faults().await.unwrap();
        eni
    });
    block_on(async move {
        assert!(by_tag(&c, "never").await.is_empty(), "nothing created");
        let now = by_tag(&c, "existing").await;
        assert_eq!(now, vec![eni], "not attached, no IPs, not deleted");
        let stats = c.stats().await.unwrap();
        assert_eq!(stats.actions["CreateNetworkInterface"].failed, 1);
        assert_eq!(stats.actions["AttachNetworkInterface"].failed, 1);
    });
    assert_eq!(ip_out(&vpc, &["-o", "link"]), links_before, "no veth");
    lab.teardown().unwrap();
}

#[test]
fn partial_create_then_retry_with_the_token_yields_one_eni() {
    let Some(lab) = lab_with(|_| {}) else { return };
    let c = lab.vpcsim();
    block_on(async move {
        c.set_faults(&faults(|f| f.partial_rate = Some(1.0)))
            .await
            .unwrap();
        let e = c.create_eni(&create_req("tok-p")).await.unwrap_err();
        assert_eq!(status_code(&e), (500, codes::INTERNAL));
        let made = by_tag(&c, "tok-p").await;
        assert_eq!(made.len(), 1, "created although it answered 500");
        assert!(made[0].attachment.is_none());
        // Still partial: the retry finds the ENI and fails again, creating nothing new.
        c.create_eni(&create_req("tok-p")).await.unwrap_err();
        c.set_faults(&faults(|f| f.partial_rate = Some(0.0)))
            .await
            .unwrap();
        let again = c.create_eni(&create_req("tok-p")).await.unwrap();
        assert_eq!(again.id, made[0].id);
        assert_eq!(by_tag(&c, "tok-p").await.len(), 1);
        let s = c.stats().await.unwrap().actions["CreateNetworkInterface"];
        assert_eq!((s.calls, s.partial, s.failed), (3, 2, 0));
    });
    lab.teardown().unwrap();
}

#[test]
fn partial_attach_and_assign_are_done_but_reported_failed() {
    let Some(lab) = lab_with(|o| o.seed = Some(42)) else {
        return;
    };
    let c = lab.vpcsim();
    let (n1, vpc) = (lab.node("n1").unwrap().netns.clone(), lab.vpc_netns());
    let eni = block_on(async move {
        let eni = c.create_eni(&create_req("pa")).await.unwrap();
        c.set_faults(&faults(|f| f.partial_rate = Some(1.0)))
            .await
            .unwrap();
        let e = c.attach(&eni.id, "i-n1").await.unwrap_err();
        assert_eq!(status_code(&e), (500, codes::INTERNAL));
        let e = c.assign(&eni.id, 2).await.unwrap_err();
        assert_eq!(status_code(&e), (500, codes::INTERNAL));
        // A retried attach learns the truth: it is attached already.
        c.set_faults(&faults(|f| f.partial_rate = Some(0.0)))
            .await
            .unwrap();
        let e = c.attach(&eni.id, "i-n1").await.unwrap_err();
        assert_eq!(e.code(), Some(codes::IN_USE));
        let now = by_tag(&c, "pa").await.remove(0);
        assert_eq!(now.attachment.as_ref().unwrap().instance_id, "i-n1");
        assert_eq!(now.secondary_ips.len(), 2);
        let stats = c.stats().await.unwrap();
        assert_eq!(stats.actions["AttachNetworkInterface"].partial, 1);
        assert_eq!(stats.actions["AssignPrivateIpAddresses"].partial, 1);
        now
    });
    // The dataplane did it too: the device is in n1, every address is published.
    let link = ip_out(&n1, &["-o", "link", "show", "eth1"]);
    assert!(link.contains(&eni.mac), "{link}");
    let neigh = ip_out(&vpc, &["neigh", "show", "dev", "br-acme"]);
    for ip in &eni.secondary_ips {
        assert!(
            neigh.contains(&format!("{ip} lladdr {}", eni.mac)),
            "{neigh}"
        );
    }
    lab.teardown().unwrap();
}

#[test]
fn concurrent_attaches_take_one_latency_and_block_nothing() {
    let Some(lab) = lab_with(|_| {}) else { return };
    let c = lab.vpcsim();
    block_on(async move {
        let a = c.create_eni(&create_req("la")).await.unwrap();
        let b = c.create_eni(&create_req("lb")).await.unwrap();
        let set = c
            .set_faults(&faults(|f| f.attach_latency_ms = Some(1000)))
            .await
            .unwrap();
        assert_eq!(set.attach_latency_ms, 1000);
        let start = Instant::now();
        let (c1, c2, c3) = (c.clone(), c.clone(), c.clone());
        let (ida, idb) = (a.id.clone(), b.id.clone());
        let ta = tokio::spawn(async move { c1.attach(&ida, "i-n1").await });
        let tb = tokio::spawn(async move { c2.attach(&idb, "i-n1").await });
        // Meanwhile other calls are answered at once.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = Instant::now();
        c3.describe(&DescribeEnisRequest::default()).await.unwrap();
        c3.create_eni(&create_req("lc")).await.unwrap();
        assert!(
            t.elapsed() < Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
        let (ra, rb) = (ta.await.unwrap().unwrap(), tb.await.unwrap().unwrap());
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(1000) && took < Duration::from_millis(1700),
            "two attaches took {took:?}"
        );
        let mut idx = [ra, rb].map(|e| e.attachment.unwrap().device_index);
        idx.sort_unstable();
        assert_eq!(idx, [1, 2]);
        let start = Instant::now();
        let (d1, d2) = tokio::join!(c.detach(&a.id), c.detach(&b.id));
        d1.unwrap();
        d2.unwrap();
        let took = start.elapsed();
        assert!(
            took < Duration::from_millis(1700),
            "two detaches took {took:?}"
        );
    });
    lab.teardown().unwrap();
}

#[test]
fn detach_copes_with_a_moved_or_destroyed_device() {
    let Some(lab) = lab_with(|_| {}) else { return };
    let n1 = lab.node("n1").unwrap().netns.clone();
    let vpc = lab.vpc_netns();
    let c = lab.vpcsim();
    let (moved, destroyed) = block_on(async move {
        let mut out = Vec::new();
        for t in ["moved", "destroyed"] {
            let eni = c.create_eni(&create_req(t)).await.unwrap();
            out.push(c.attach(&eni.id, "i-n1").await.unwrap());
        }
        (out.remove(0), out.remove(0))
    });
    // Exclusive mode: the ENI's device goes into a pod, renamed.
    let pod_a = lab.new_pod("n1", "ex-a", "initech").unwrap();
    let pod_b = lab.new_pod("n1", "ex-b", "initech").unwrap();
    for (eni, pod) in [(&moved, &pod_a), (&destroyed, &pod_b)] {
        let dev = format!("eth{}", eni.attachment.as_ref().unwrap().device_index);
        let out = Command::new("ip")
            .args([
                "-n", &n1, "link", "set", &dev, "netns", &pod.netns, "name", "eth9",
            ])
            .status()
            .unwrap();
        assert!(out.success());
    }
    assert!(ip_out(&pod_a.netns, &["-o", "link"]).contains(&moved.mac));
    // The pod holding `destroyed` is deleted: the veth pair dies with it.
    pod_b.delete().unwrap();
    let c = lab.vpcsim();
    let (m, d) = (moved.id.clone(), destroyed.id.clone());
    block_on(async move {
        for id in [&m, &d] {
            let after = c.detach(id).await.unwrap();
            assert!(after.attachment.is_none());
            c.delete(id).await.unwrap();
        }
    });
    assert!(!ip_out(&pod_a.netns, &["-o", "link"]).contains(&moved.mac));
    let links = ip_out(&vpc, &["-o", "link"]);
    for eni in [&moved, &destroyed] {
        let veth = tandem_lab::vpcsim::dataplane::vpc_ifname(&eni.id);
        assert!(!links.contains(&veth), "{veth} left: {links}");
    }
    drop(pod_a);
    lab.teardown().unwrap();
}

#[test]
fn the_lab_has_initech_realistic_limits_and_agent_pool_overrides() {
    let Some(lab) = lab_with(|o| o.agent_pool = Some(serde_json::json!({"warmIps": 3}))) else {
        return;
    };
    let c = lab.vpcsim();
    let (inst, vsws) = block_on(async move {
        (
            c.describe_instance("i-n2").await.unwrap(),
            c.describe_vswitches().await.unwrap(),
        )
    });
    assert_eq!((inst.max_enis, inst.max_ips_per_eni), (8, 30));
    let initech = vsws.iter().find(|v| v.id == "vsw-initech").unwrap();
    assert_eq!(initech.cidr.to_string(), "10.3.0.0/24");
    let br = ip_out(
        &lab.vpc_netns(),
        &["-o", "addr", "show", "dev", "br-initech"],
    );
    assert!(br.contains("10.3.0.1/24"), "{br}");
    let yaml = std::fs::read_to_string(lab.names().config_dir().join("initech.yaml")).unwrap();
    assert!(yaml.contains("interfaceMode: exclusive"), "{yaml}");
    assert!(yaml.contains("labels: {tenant: initech}"), "{yaml}");
    let agent: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&lab.node("n1").unwrap().agent_config).unwrap(),
    )
    .unwrap();
    assert_eq!(agent["pool"]["warmIps"], 3);
    assert_eq!(agent["cloud"]["provider"], "vpcsim");
    lab.teardown().unwrap();
}

#[test]
fn bad_knobs_are_refused() {
    let Some(lab) = lab_with(|_| {}) else { return };
    let c = lab.vpcsim();
    block_on(async move {
        let e = c
            .set_faults(&faults(|f| f.fail_rate = Some(2.0)))
            .await
            .unwrap_err();
        assert_eq!(status_code(&e), (400, codes::BAD_REQUEST));
        assert_eq!(c.stats().await.unwrap().faults.fail_rate, 0.0);
    });
    lab.teardown().unwrap();
}
