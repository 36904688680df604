//! Root-only: the endpoint programs attach with TCX to a veth inside a namespace this test
//! creates, their links are pinned, a reopened datapath adopts them (maps and links) and
//! enforcement keeps working, and detach removes everything.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::Command;

use nix::sched::{setns, CloneFlags};
use tandem_agent::policy::datapath::{pin, Datapath, DatapathOptions, Site};
use tandem_agent::policy::{EndpointConfig, Role};

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
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let tag = format!("{:06x}", rand::random::<u32>() & 0xffffff);
    let lab = Lab {
        netns: format!("tlsg{tag}-node"),
        dir: PathBuf::from(format!("/run/tandem-test-{tag}")),
    };
    ip(&["netns", "add", &lab.netns]);
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
