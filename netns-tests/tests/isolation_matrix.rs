//! Root-only: tenant isolation in the shared scheme, end to end (DESIGN.md §3–§4). Tenants
//! umbrella (allow-union groups, closed) and wayne (priority groups, open) share vsw-shared on
//! both nodes (`netns-tests/lab-config/`). With real packets between real pods:
//!
//! - the full matrix (pods, platform, internet × tcp/80, tcp/443, udp/53, icmp × eth1, eth0)
//!   equals what the reference evaluator computes from the same YAML;
//! - forged source IPs and MACs never leave a pod;
//! - SIGKILLing an agent changes nothing (pinned programs keep enforcing), nor does its restart;
//! - a rule change and a membership change take effect within 100 ms, on the pod's node and on
//!   the other one (a new pod's membership too), while an established flow survives the rule
//!   change.

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tandem_lab::demo::{start_all, DemoPod};
use tandem_lab::isolation::matrix::PROBE_TIMEOUT;
use tandem_lab::isolation::probe::TcpFlow;
use tandem_lab::isolation::spoof::{self, Payload, Sniffer};
use tandem_lab::isolation::{self, FlowProbe, Isolation, Service, Via};
use tandem_lab::lab::{netns, Lab};

const PODS: &[(&str, &str, &str)] = &[
    ("umbrella-a", "n1", "umbrella"),
    ("umbrella-b", "n2", "umbrella"),
    ("umbrella-c", "n1", "umbrella"),
    ("wayne-a", "n1", "wayne"),
    ("wayne-b", "n2", "wayne"),
];

/// The contract: a config change is enforced on the node within this long.
const UPDATE_BUDGET: Duration = Duration::from_millis(100);
/// Timeout of one attempt while polling for a flip (also the resolution of denied → allowed).
const FLIP_PROBE: Duration = Duration::from_millis(30);

struct World {
    lab: Lab,
    pods: Vec<DemoPod>,
    iso: Isolation,
}

impl World {
    fn pod(&self, name: &str) -> &DemoPod {
        self.pods.iter().find(|p| p.pod.name == name).expect("pod")
    }

    fn probe(&self, from: &str, to: &str, via: Via, service: Service) -> FlowProbe {
        let cell = isolation::Cell {
            from: self.iso.index(from).expect("party"),
            to: self.iso.index(to).expect("party"),
            via,
            service,
        };
        self.iso.probe(&cell, PROBE_TIMEOUT)
    }

    fn config_dir(&self) -> std::path::PathBuf {
        self.lab.names().config_dir()
    }

    /// Measure the whole matrix, print it beside the expected one, fail on any difference.
    fn check_matrix(&self, when: &str) {
        let t = Instant::now();
        let c = isolation::lab::compare(&self.lab, &self.iso).expect("measure");
        eprintln!(
            "{}{when}: {} probes in {} ms, {} differences",
            c.render(&self.iso, &format!("measured ({when}):")),
            c.measured.len(),
            t.elapsed().as_millis(),
            c.differences.len()
        );
        assert!(
            c.differences.is_empty(),
            "{when}: isolation differs:\n{}",
            c.differences.join("\n")
        );
    }
}

/// Sets the flag when dropped, also while a failed assertion unwinds, so a scoped helper
/// thread always ends and the lab is torn down instead of the test hanging.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Write `text` to `dir/name` atomically (the agent watches the directory).
fn write_config(dir: &Path, name: &str, text: &str) -> Instant {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
    Instant::now()
}

/// Poll `probe` (attempts of [`FLIP_PROBE`]) until its answer is `want`; the start of the
/// first such attempt, after `t0` (the flip happened between the previous attempt's start and
/// this one's). A quick "no answer" may just be a slow answer on a busy machine, so it counts
/// only if a patient probe gets none either.
fn time_to_flip(probe: &FlowProbe, want: bool, t0: Instant) -> Option<Duration> {
    let quick = FlowProbe {
        timeout: FLIP_PROBE,
        ..probe.clone()
    };
    let patient = FlowProbe {
        timeout: PROBE_TIMEOUT,
        ..probe.clone()
    };
    while t0.elapsed() < Duration::from_secs(3) {
        let start = t0.elapsed();
        if quick.run().unwrap() == want && (want || !patient.run().unwrap()) {
            return Some(start);
        }
    }
    None
}

/// Poll every probe at once (each on its own thread) until it flips to its `want`; assert
/// each is within budget (on the other node too: memberships cross nodes within it).
fn assert_flips(cases: &[(&str, FlowProbe, bool)], t0: Instant) {
    let handles: Vec<_> = cases
        .iter()
        .map(|(_, p, want)| {
            let (p, want) = (p.clone(), *want);
            std::thread::spawn(move || time_to_flip(&p, want, t0))
        })
        .collect();
    for ((what, _, want), h) in cases.iter().zip(handles) {
        let state = if *want { "allowed" } else { "denied" };
        let took = h
            .join()
            .unwrap()
            .unwrap_or_else(|| panic!("{what}: never became {state}"));
        eprintln!("update latency: {what} -> {state}: {} ms", took.as_millis());
        assert_within_budget(what, took);
    }
}

fn assert_within_budget(what: &str, took: Duration) {
    assert!(
        took <= UPDATE_BUDGET + FLIP_PROBE,
        "{what}: took {} ms (budget {} ms + one probe)",
        took.as_millis(),
        UPDATE_BUDGET.as_millis()
    );
}

fn up() -> Option<World> {
    let lab = common::own_lab()?;
    let pods = start_all(&lab, PODS).expect("start pods");
    let iso = isolation::lab::isolation(&lab, pods.iter().map(DemoPod::party));
    Some(World { lab, pods, iso })
}

#[test]
fn shared_scheme_isolation_matches_the_security_groups() {
    let Some(w) = up() else { return };
    let servers = w.iso.serve().expect("echo servers");
    w.check_matrix("at start");
    new_pod(&w);
    spoofing(&w);
    agent_crash(&w);
    let mut flow = rule_change(&w);
    membership_change(&w);
    assert!(
        flow.exchange(Duration::from_millis(300)),
        "the flow set up before the rule change did not survive the membership change"
    );
    w.check_matrix("after the rule and membership changes");
    drop(servers);
    let (prefix, run_dir) = (w.lab.prefix().to_owned(), w.lab.run_dir().to_owned());
    drop(w.pods);
    w.lab.teardown().expect("teardown");
    assert_nothing_left(&prefix, &run_dir);
}

/// A pod added on n2 joins sg-umbrella-web: within the budget after its ADD returned, a member
/// on n1 accepts it (n1 must learn the membership from n2's published endpoints; until then
/// the pod's first packets towards n1 are dropped), and that n2 lets n1's members in at once.
fn new_pod(w: &World) {
    let mut pods = start_all(&w.lab, &[("umbrella-d", "n2", "umbrella")]).expect("ADD umbrella-d");
    let t0 = Instant::now();
    let d = pods.pop().unwrap();
    let ua = w.pod("umbrella-a");
    let _servers = isolation::EchoServers::start(&d.pod.netns, &[d.tenant_ip]).unwrap();
    let probe = |from: &DemoPod, to: &DemoPod| FlowProbe {
        from: from.pod.netns.clone(),
        src: Some(from.tenant_ip),
        dst: to.tenant_ip,
        service: Service::Http,
        timeout: PROBE_TIMEOUT,
    };
    let (d_to_a, a_to_d) = (probe(&d, ua), probe(ua, &d));
    let h = std::thread::spawn(move || time_to_flip(&a_to_d, true, t0));
    let out = time_to_flip(&d_to_a, true, t0).expect("umbrella-a never accepted the new pod");
    let into = h
        .join()
        .unwrap()
        .expect("the new pod never accepted umbrella-a");
    eprintln!(
        "new pod: umbrella-d (n2) -> umbrella-a (n1) tcp/80 allowed {} ms after ADD returned \
         (membership crossing nodes); umbrella-a -> umbrella-d after {} ms",
        out.as_millis(),
        into.as_millis()
    );
    assert_within_budget("new pod: umbrella-d (n2) accepted by umbrella-a (n1)", out);
    assert_within_budget("new pod: umbrella-d (n2) accepts umbrella-a (n1)", into);
    let del = w.lab.cni(&d.pod, "DEL").expect("DEL umbrella-d");
    assert!(del.success(), "DEL umbrella-d: {del:?}");
}

/// Forged source IP (raw socket) and MAC (AF_PACKET) never arrive; the same packet with the
/// pod's own addresses does (so the sniffer would have seen it).
fn spoofing(w: &World) {
    let (ua, uc, wa) = (w.pod("umbrella-a"), w.pod("umbrella-c"), w.pod("wayne-a"));
    let ub_ip = w.pod("umbrella-b").tenant_ip;
    let inet = w.lab.inet_netns();
    let plat = w.lab.plat_netns();
    let platform: Ipv4Addr = "192.168.100.10".parse().unwrap();
    let internet: Ipv4Addr = "198.51.100.10".parse().unwrap();
    // (what, sender, receiver ns, honest source, forged source, destination, payload)
    let cases = [
        (
            "eth1: wayne-a as 10.20.0.250 to the internet",
            wa,
            &inet,
            wa.tenant_ip,
            "10.20.0.250".parse().unwrap(),
            internet,
            Payload::Udp,
        ),
        (
            "eth1: umbrella-a as group member umbrella-b to umbrella-c",
            ua,
            &uc.pod.netns,
            ua.tenant_ip,
            ub_ip,
            uc.tenant_ip,
            Payload::Echo,
        ),
        (
            "eth0: umbrella-a as wayne-a's control IP to the platform",
            ua,
            &plat,
            ua.control_ip,
            wa.control_ip,
            platform,
            Payload::Udp,
        ),
    ];
    for (what, from, to_ns, honest, forged, dst, payload) in cases {
        for (src, want) in [(honest, true), (forged, false)] {
            let marker = spoof::marker();
            let sniff = Sniffer::start(to_ns, marker, Duration::from_millis(300)).unwrap();
            spoof::send_ip(
                &from.pod.netns,
                spoof::ipv4_packet(src, dst, payload, &marker),
            )
            .unwrap();
            let arrived = sniff.arrived().unwrap();
            assert_eq!(arrived, want, "{what}: source {src} arrived={arrived}");
        }
        eprintln!("spoofing: {what}: dropped (the honest packet arrives)");
    }
    // Forged MAC: a whole frame out of wayne-a's eth1 to the internet.
    let ns = &wa.pod.netns;
    let own = spoof::link_mac(ns, "eth1").unwrap();
    let gw = spoof::gateway_mac(ns, "eth1").unwrap();
    for (mac, want) in [(own, true), ([0x02, 0xde, 0xad, 0xbe, 0xef, 0x01], false)] {
        let marker = spoof::marker();
        let sniff = Sniffer::start(&inet, marker, Duration::from_millis(300)).unwrap();
        let pkt = spoof::ipv4_packet(wa.tenant_ip, internet, Payload::Udp, &marker);
        spoof::send_frame(ns, "eth1", mac, gw, pkt).unwrap();
        assert_eq!(sniff.arrived().unwrap(), want, "frame from MAC {mac:02x?}");
    }
    eprintln!("spoofing: eth1: wayne-a with a forged MAC to the internet: dropped");
}

/// SIGKILL n1's agent while a flow runs and new flows are tried: nothing changes; the same
/// after it is restarted.
fn agent_crash(w: &World) {
    let (ua, ub) = (w.pod("umbrella-a"), w.pod("umbrella-b"));
    let mut flow = TcpFlow::open(
        &ub.pod.netns,
        ub.tenant_ip,
        ua.tenant_ip,
        80,
        Duration::from_secs(1),
    )
    .expect("umbrella-b -> umbrella-a:80");
    assert!(flow.exchange(Duration::from_secs(1)));
    // Allowed and denied new flows, all towards n1's pods.
    let probes = [
        (
            w.probe("umbrella-c", "umbrella-a", Via::Tenant, Service::Http),
            true,
        ),
        (
            w.probe("umbrella-b", "umbrella-a", Via::Tenant, Service::Ping),
            true,
        ),
        (
            w.probe("platform", "wayne-a", Via::Tenant, Service::Https),
            true,
        ),
        (
            w.probe("platform", "umbrella-c", Via::Control, Service::Dns),
            true,
        ),
        (
            w.probe("umbrella-a", "wayne-a", Via::Tenant, Service::Http),
            true,
        ),
        (
            w.probe("wayne-a", "umbrella-a", Via::Tenant, Service::Http),
            false,
        ),
        (
            w.probe("wayne-b", "wayne-a", Via::Tenant, Service::Dns),
            false,
        ),
        (
            w.probe("umbrella-b", "umbrella-a", Via::Control, Service::Ping),
            false,
        ),
        (
            w.probe("internet", "wayne-a", Via::Tenant, Service::Https),
            false,
        ),
    ];
    let check = |when: &str| {
        for (p, want) in &probes {
            assert_eq!(p.run().unwrap(), *want, "{when}: {p:?}");
        }
    };
    check("before the crash");
    // New flows are tried continuously while the agent is killed, before and after.
    let stop = AtomicBool::new(false);
    let (rounds, wrong) = std::thread::scope(|s| {
        let prober = s.spawn(|| {
            let (mut rounds, mut wrong) = (0, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                // All at once: a round takes one probe timeout.
                let handles: Vec<_> = probes.iter().map(|(p, _)| p.spawn().unwrap()).collect();
                for ((p, want), h) in probes.iter().zip(handles) {
                    if isolation::probe::join(h).unwrap() != *want {
                        wrong.push(format!("{} -> {} {:?}", p.from, p.dst, p.service));
                    }
                }
                rounds += 1;
            }
            (rounds, wrong)
        });
        let stopper = StopOnDrop(&stop);
        std::thread::sleep(Duration::from_millis(150));
        w.lab.kill_agent("n1").expect("SIGKILL agent n1");
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(600) {
            assert!(
                flow.exchange(Duration::from_millis(300)),
                "the flow died with the agent"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(stopper);
        prober.join().unwrap()
    });
    assert!(wrong.is_empty(), "while n1's agent was killed: {wrong:?}");
    w.lab.start_agent("n1").expect("restart agent n1");
    check("agent n1 restarted");
    assert!(
        flow.exchange(Duration::from_millis(300)),
        "the flow died with the restart"
    );
    eprintln!(
        "agent crash: {rounds} rounds of {} new flows across the SIGKILL, all as before; the \
         established flow kept working",
        probes.len()
    );
    w.check_matrix("after n1's agent was SIGKILLed and restarted");
}

/// sg-umbrella-web's web port moves from 80 to 443: new tcp/80 flows are denied and tcp/443
/// allowed within the budget; an established tcp/80 flow survives (no re-check by default).
/// Returns that flow, still working.
fn rule_change(w: &World) -> TcpFlow {
    let (ua, uc) = (w.pod("umbrella-a"), w.pod("umbrella-c"));
    let mut flow = TcpFlow::open(
        &uc.pod.netns,
        uc.tenant_ip,
        ua.tenant_ip,
        80,
        Duration::from_secs(1),
    )
    .expect("umbrella-c -> umbrella-a:80");
    assert!(flow.exchange(Duration::from_secs(1)));
    let path = w.config_dir().join("umbrella.yaml");
    let old = std::fs::read_to_string(&path).unwrap();
    let rule = r#"{protocol: tcp, ports: "80", from: {group: sg-umbrella-web}}"#;
    assert!(
        old.contains(rule),
        "umbrella.yaml changed; update this test"
    );
    let new = old.replacen(rule, &rule.replace("\"80\"", "\"443\""), 1);
    let http = w.probe("umbrella-c", "umbrella-a", Via::Tenant, Service::Http);
    let https = w.probe("umbrella-c", "umbrella-a", Via::Tenant, Service::Https);
    assert!(
        http.run().unwrap() && !https.run().unwrap(),
        "before the rule change"
    );
    let t0 = write_config(&w.config_dir(), "umbrella.yaml", &new);
    assert_flips(
        &[
            (
                "rule change: umbrella-c -> umbrella-a tcp/80 (n1)",
                http,
                false,
            ),
            (
                "rule change: umbrella-c -> umbrella-a tcp/443 (n1)",
                https,
                true,
            ),
        ],
        t0,
    );
    assert!(
        flow.exchange(Duration::from_millis(300)),
        "the established flow was cut by the rule change"
    );
    eprintln!("rule change: the established tcp/80 flow survives");
    flow
}

/// umbrella-c leaves sg-umbrella-web for sg-umbrella-admin (a PodSecurityGroups object): on n1,
/// it loses tcp/443 from umbrella-a (its own policy) and umbrella-a stops accepting it
/// (membership); the platform gains tcp/443 to it. Also reported: n2 learning the membership.
fn membership_change(w: &World) {
    let doc = "apiVersion: tandem.dev/v1alpha1\n\
               kind: PodSecurityGroups\n\
               metadata: {name: umbrella-c}\n\
               spec: {namespace: umbrella, pod: umbrella-c, securityGroups: [sg-umbrella-admin]}\n";
    let into_c = w.probe("umbrella-a", "umbrella-c", Via::Tenant, Service::Https);
    let from_c = w.probe("umbrella-c", "umbrella-a", Via::Tenant, Service::Https);
    let plat = w.probe("platform", "umbrella-c", Via::Tenant, Service::Https);
    let to_n2 = w.probe("umbrella-c", "umbrella-b", Via::Tenant, Service::Https);
    for (p, want) in [
        (&into_c, true),
        (&from_c, true),
        (&plat, false),
        (&to_n2, true),
    ] {
        assert_eq!(
            p.run().unwrap(),
            want,
            "before the membership change: {p:?}"
        );
    }
    // Paths allowed before and after: they must never fail during the switch.
    let steady = [
        w.probe("umbrella-a", "umbrella-c", Via::Tenant, Service::Ping),
        w.probe("umbrella-c", "platform", Via::Tenant, Service::Http),
        w.probe("platform", "umbrella-c", Via::Control, Service::Http),
    ];
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let glitches = std::thread::scope(|s| {
        let h = s.spawn(|| {
            let mut glitches = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                for p in &steady {
                    let at = start.elapsed();
                    if !p.run().unwrap() {
                        glitches.push(format!(
                            "{} -> {} {:?} at {} ms",
                            p.from,
                            p.dst,
                            p.service,
                            at.as_millis()
                        ));
                    }
                }
            }
            glitches
        });
        let stopper = StopOnDrop(&stop);
        std::thread::sleep(Duration::from_millis(100));
        let t0 = write_config(&w.config_dir(), "pod-umbrella-c.yaml", doc);
        eprintln!(
            "membership file written at {} ms",
            start.elapsed().as_millis()
        );
        assert_flips(
            &[
                (
                    "membership: umbrella-a -> umbrella-c tcp/443, its own policy (n1)",
                    into_c,
                    false,
                ),
                (
                    "membership: umbrella-c -> umbrella-a tcp/443, a's members (n1)",
                    from_c,
                    false,
                ),
                (
                    "membership: platform -> umbrella-c tcp/443 (n1)",
                    plat,
                    true,
                ),
                // n1's agent publishes the membership, n2's reads it.
                (
                    "membership: umbrella-c -> umbrella-b tcp/443, seen by n2",
                    to_n2,
                    false,
                ),
            ],
            t0,
        );
        std::thread::sleep(Duration::from_millis(200));
        drop(stopper);
        h.join().unwrap()
    });
    assert!(
        glitches.is_empty(),
        "paths allowed before and after the membership change failed during it: {glitches:?}"
    );
}

/// No namespace, mount or process of the lab is left.
fn assert_nothing_left(prefix: &str, run_dir: &Path) {
    let own = format!("{prefix}-");
    let left: Vec<String> = netns::list()
        .into_iter()
        .filter(|n| n.starts_with(&own))
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = run_dir.display().to_string();
    assert!(!mounts.contains(&dir), "mounts left under {dir}");
    assert!(!run_dir.exists(), "{dir} left");
}
