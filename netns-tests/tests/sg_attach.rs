//! Root-only: the endpoint programs attach with TCX to a veth inside a namespace this test
//! creates, their links are pinned, a reopened datapath adopts them (maps and links) and
//! enforcement keeps working, and detach removes everything, the endpoint's conntrack flows
//! included.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::Command;

use std::collections::BTreeSet;

use nix::sched::{setns, CloneFlags};
use tandem_agent::policy::compile::compile;
use tandem_agent::policy::datapath::{pin, Datapath, DatapathOptions, Hook, Site};
use tandem_agent::policy::packet::{Packet, L3, L4, TCP_SYN};
use tandem_agent::policy::{EndpointConfig, Role};
use tandem_lab::bench::policy_rules::{self, CONN_PORT, PEER_IP, POD_IP, POD_MAC};

struct Lab {
    netns: String,
    dir: PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
        let root = self.dir.join("bpf");
        if pin::is_bpffs(&root).unwrap_or(false) {
            let _ = pin::unmount(&root);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A namespace and a pin root of this test's own (`None` when not root: skipped).
fn lab(kind: &str) -> Option<Lab> {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return None;
    }
    let tag = format!("{:06x}", rand::random::<u32>() & 0xffffff);
    let lab = Lab {
        netns: format!("{kind}{tag}-node"),
        dir: PathBuf::from(format!("/run/tandem-test-{tag}")),
    };
    ip(&["netns", "add", &lab.netns]);
    Some(lab)
}

fn ip(args: &[&str]) {
    let ok = Command::new("ip")
        .args(args)
        .status()
        .expect("ip runs")
        .success();
    assert!(ok, "ip {args:?} failed");
}

/// Run `f` on a thread inside the lab namespace (never setns a shared thread).
fn in_netns<T: Send>(netns: &str, f: impl FnOnce() -> T + Send) -> T {
    let file = std::fs::File::open(format!("/run/netns/{netns}")).expect("netns exists");
    std::thread::scope(|s| {
        s.spawn(|| {
            setns(file.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("netns thread")
    })
}

fn ifindex(netns: &str, name: &str) -> u32 {
    let out = Command::new("ip")
        .args(["-n", netns, "-o", "link", "show", name])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split(':').next().unwrap().trim().parse().unwrap()
}

#[test]
fn attach_adopt_detach() {
    let Some(lab) = lab("tlsg") else { return };
    ip(&[
        "-n", &lab.netns, "link", "add", "hveth0", "type", "veth", "peer", "name", "pod0",
    ]);
    let ifx = ifindex(&lab.netns, "hveth0");
    let root = lab.dir.join("bpf");
    let cfg = EndpointConfig {
        endpoint_id: 1,
        role: Role::Control,
        ip: "10.9.0.2".parse().unwrap(),
        mac: [2, 0, 0, 0, 0, 1],
        audit: false,
        recheck: false,
    };
    let links = pin::links_dir(&root);
    let pins = || {
        let mut v: Vec<String> = std::fs::read_dir(&links)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    in_netns(&lab.netns, || {
        let mut dp = Datapath::open(DatapathOptions::new(&root)).expect("open");
        dp.attach_endpoint(ifx, Site::HostVeth, &cfg)
            .expect("attach");
        dp.attach_endpoint(ifx, Site::HostVeth, &cfg)
            .expect("attach is idempotent");
    });
    assert_eq!(pins(), [format!("{ifx}-from_pod"), format!("{ifx}-to_pod")]);
    let show = Command::new("bpftool")
        .args(["link", "show"])
        .output()
        .unwrap();
    // Debian 12's bpftool predates TCX and prints its link type as a number (11).
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        text.lines()
            .filter(|l| l.contains("tcx") || l.contains("type 11"))
            .count()
            >= 2,
        "links survive the agent: {text}"
    );
    in_netns(&lab.netns, || {
        let mut dp = Datapath::open(DatapathOptions::new(&root)).expect("adopt");
        assert!(
            !dp.mounted_bpffs,
            "the second open adopts the mounted bpffs"
        );
        dp.detach_endpoint(ifx).expect("detach");
        dp.detach_endpoint(ifx).expect("detach is idempotent");
    });
    assert!(pins().is_empty());
}

/// A SYN from the bench's peer to the bench's pod port, from `sport`.
fn syn(sport: u16) -> Vec<u8> {
    Packet {
        src_mac: [2, 0, 0, 0, 0, 9],
        dst_mac: POD_MAC,
        l3: L3::Ipv4 {
            src: PEER_IP,
            dst: POD_IP,
            frag_offset: 0,
            l4: L4::Tcp {
                sport,
                dport: CONN_PORT,
                flags: TCP_SYN,
            },
        },
    }
    .to_frame()
}

/// The conntrack map is listed and flushed in batches (a walk spans several): 10,000 flows
/// of one endpoint and 100 of another are all listed, flushing the first endpoint deletes
/// exactly its flows, and detaching the second leaves none.
#[test]
fn conntrack_is_listed_and_flushed_per_endpoint() {
    let Some(lab) = lab("tlct") else { return };
    let root = lab.dir.join("bpf");
    let per_endpoint = |dp: &Datapath, id: u32| {
        dp.conntrack_entries()
            .iter()
            .filter(|(k, _)| k.endpoint_id == id)
            .count()
    };
    in_netns(&lab.netns, || {
        let mut dp = Datapath::open(DatapathOptions::new(&root)).expect("open");
        let rules = compile(&policy_rules::policy_input(&policy_rules::rules(10, 0))).unwrap();
        dp.apply(&rules).expect("apply");
        // Frames from BPF_PROG_TEST_RUN arrive on the netns's loopback, ifindex 1.
        for (id, flows) in [(1, 10_000u16), (2, 100)] {
            dp.set_endpoint(1, &policy_rules::endpoint(id))
                .expect("endpoint");
            for sport in 1..=flows {
                assert_eq!(
                    dp.test_run(Hook::ToPod, &syn(sport)).unwrap(),
                    0,
                    "TC_ACT_OK"
                );
            }
        }
        assert_eq!(dp.conntrack_entries().len(), 10_100);
        assert_eq!(per_endpoint(&dp, 1), 10_000);
        assert_eq!(
            dp.flush_conntrack(Some(&BTreeSet::from([1]))).unwrap(),
            10_000
        );
        assert_eq!(per_endpoint(&dp, 1), 0);
        assert_eq!(per_endpoint(&dp, 2), 100, "another endpoint's flows stay");
        // ifindex 1 now carries endpoint 2.
        dp.detach_endpoint(1).expect("detach");
        assert!(dp.conntrack_entries().is_empty());
    });
}
