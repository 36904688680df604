//! The policy benchmark's path, built fresh for every configuration so no state (conntrack,
//! iptables hooks, ARP, TCX links) carries over:
//!
//! ```text
//!  <prefix>-pod          <prefix>-host (forwards; policy here)         <prefix>-peer
//!  eth0 10.200.0.2 ── hpod 10.200.0.1 [TCX / iptables FORWARD]  hpeer 10.201.0.1 ── eth0 10.201.0.2
//! ```
//!
//! `hpod` plays the pod's host-side veth: the Tandem programs attach to it (TCX ingress sees
//! what the pod sends, TCX egress what it receives). Dropping the topology deletes the three
//! namespaces, which destroys the veths and detaches everything attached to them.

use std::os::fd::AsFd;
use std::process::{Command, Stdio};

use nix::sched::{setns, CloneFlags};

use super::policy_rules::{PEER_IP, POD_IP, POD_MAC};
use crate::lab::netns::{self, NetnsError};

pub struct Topology {
    pub pod: String,
    pub host: String,
    pub peer: String,
    /// ifindex of `hpod` in the host namespace.
    pub hpod_ifindex: u32,
}

impl Topology {
    /// Build the path; on failure whatever was created is deleted again.
    pub fn up(prefix: &str) -> Result<Topology, NetnsError> {
        let mut t = Topology {
            pod: format!("{prefix}-pod"),
            host: format!("{prefix}-host"),
            peer: format!("{prefix}-peer"),
            hpod_ifindex: 0,
        };
        t.build()?;
        Ok(t)
    }

    fn build(&mut self) -> Result<(), NetnsError> {
        for ns in [&self.pod, &self.host, &self.peer] {
            netns::create(ns)?;
        }
        let mac = POD_MAC.map(|b| format!("{b:02x}")).join(":");
        netns::ip_batch(
            &self.host,
            &[
                format!("link add hpod type veth peer name eth0 netns {}", self.pod),
                format!(
                    "link add hpeer type veth peer name eth0 netns {}",
                    self.peer
                ),
                "addr add 10.200.0.1/24 dev hpod".into(),
                "addr add 10.201.0.1/24 dev hpeer".into(),
                "link set hpod up".into(),
                "link set hpeer up".into(),
            ],
        )?;
        netns::ip_batch(
            &self.pod,
            &[
                format!("link set eth0 address {mac}"),
                format!("addr add {POD_IP}/24 dev eth0"),
                "link set eth0 up".into(),
                "route add default via 10.200.0.1".into(),
            ],
        )?;
        netns::ip_batch(
            &self.peer,
            &[
                format!("addr add {PEER_IP}/24 dev eth0"),
                "link set eth0 up".into(),
                "route add default via 10.201.0.1".into(),
            ],
        )?;
        netns::sysctls(&self.host, &[("net.ipv4.ip_forward", "1")])?;
        // The connection-rate loop opens tens of thousands of connections from the peer.
        netns::sysctls(
            &self.peer,
            &[("net.ipv4.ip_local_port_range", "1024 65535")],
        )?;
        self.hpod_ifindex = ifindex(&self.host, "hpod")?;
        Ok(())
    }

    /// Run `f` on a scoped thread inside namespace `ns` (never setns a shared thread).
    pub fn within<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
        let path = netns::netns_path(ns);
        let file = std::fs::File::open(&path).map_err(|source| NetnsError::Open {
            path: path.clone(),
            source,
        })?;
        std::thread::scope(|s| {
            s.spawn(|| {
                setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|source| {
                    NetnsError::Enter {
                        name: ns.to_owned(),
                        source,
                    }
                })?;
                Ok(f())
            })
            .join()
            .map_err(|_| NetnsError::Panicked {
                name: ns.to_owned(),
            })?
        })
    }

    /// `iptables-restore` of a filter-table script in the host namespace.
    pub fn iptables_restore(&self, script: &str) -> Result<(), NetnsError> {
        use std::io::Write;
        let mut cmd = Command::new("iptables-restore");
        netns::enter_on_spawn(&mut cmd, &self.host, false)?;
        let spawn_err = |source| NetnsError::Spawn {
            cmd: "iptables-restore".into(),
            source,
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let written = stdin.write_all(script.as_bytes());
        drop(stdin);
        let out = child.wait_with_output().map_err(spawn_err)?;
        written.map_err(spawn_err)?;
        if !out.status.success() {
            return Err(NetnsError::Failed {
                cmd: format!("iptables-restore in {}", self.host),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(())
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in [&self.pod, &self.host, &self.peer] {
            if let Err(e) = netns::delete(ns) {
                tracing::warn!("policy bench: cannot delete netns {ns}: {e}");
            }
        }
    }
}

/// `ip -n NS -o link show NAME` → ifindex.
fn ifindex(ns: &str, name: &str) -> Result<u32, NetnsError> {
    let out = netns::run(Command::new("ip").args(["-n", ns, "-o", "link", "show", name]))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split(':')
        .next()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| NetnsError::Failed {
            cmd: format!("ip -n {ns} -o link show {name}"),
            status: "unparsable output".into(),
            stderr: text.trim().to_owned(),
        })
}

/// Packets received by `dev` in namespace `ns` (`ip -s -j link`).
pub fn rx_packets(ns: &str, dev: &str) -> Result<u64, NetnsError> {
    let out = netns::run(Command::new("ip").args(["-n", ns, "-s", "-j", "link", "show", dev]))?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v[0]["stats64"]["rx"]["packets"]
        .as_u64()
        .ok_or_else(|| NetnsError::Failed {
            cmd: format!("ip -n {ns} -s -j link show {dev}"),
            status: "no rx packet counter".into(),
            stderr: String::new(),
        })
}
