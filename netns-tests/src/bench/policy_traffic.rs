//! The three measures, peer → pod through the host namespace:
//!
//! - TCP throughput: one `iperf3` stream (receiver's figure).
//! - UDP packet rate: `iperf3 -u -b 0 -l 18` (18-byte payload = 64-byte Ethernet frames with
//!   FCS), counted as packets the pod's eth0 received per second. The iperf3 receiver socket
//!   drops much of the offered load on 2 cores, so its own count would measure iperf3, not
//!   the path; the veth counter sees what the path delivered.
//! - New TCP connections per second: a connect/accept loop (two client threads, SO_LINGER 0 so
//!   no TIME_WAIT piles up); a connection counts when `connect` returns.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::policy_rules::{CONN_PORT, IPERF_PORT, POD_IP};
use super::policy_topo::{rx_packets, Topology};
use crate::lab::netns::{self, NetnsError};

const CLIENT_THREADS: usize = 2;

/// An `iperf3 -s` in the pod namespace, killed when dropped.
pub struct IperfServer(Child);

impl IperfServer {
    pub fn start(topo: &Topology) -> Result<IperfServer, NetnsError> {
        let mut cmd = Command::new("iperf3");
        cmd.args([
            "-s",
            "-B",
            &POD_IP.to_string(),
            "-p",
            &IPERF_PORT.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        netns::enter_on_spawn(&mut cmd, &topo.pod, false)?;
        let child = cmd.spawn().map_err(|source| NetnsError::Spawn {
            cmd: "iperf3 -s".into(),
            source,
        })?;
        let server = IperfServer(child);
        let filter = format!("sport = :{IPERF_PORT}");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let out = netns::run(Command::new("ss").args(["-N", &topo.pod, "-ltnH", &filter]))?;
            if !out.stdout.is_empty() {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(NetnsError::Failed {
            cmd: "iperf3 -s".into(),
            status: "not listening after 5 s".into(),
            stderr: String::new(),
        })
    }
}

impl Drop for IperfServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn iperf_client(
    topo: &Topology,
    extra: &[&str],
    secs: u32,
) -> Result<serde_json::Value, NetnsError> {
    let mut cmd = Command::new("iperf3");
    cmd.args(["-c", &POD_IP.to_string(), "-p", &IPERF_PORT.to_string()])
        .args(["-t", &secs.to_string(), "-J"])
        .args(extra);
    netns::enter_on_spawn(&mut cmd, &topo.peer, false)?;
    let out = netns::run(&mut cmd)?;
    Ok(serde_json::from_slice(&out.stdout).unwrap_or_default())
}

fn no_figure(what: &str, v: &serde_json::Value) -> NetnsError {
    NetnsError::Failed {
        cmd: format!("iperf3 {what}"),
        status: "no figure in its JSON".into(),
        stderr: v["error"].as_str().unwrap_or_default().to_owned(),
    }
}

/// Gbit/s received by the pod over one TCP stream.
pub fn tcp_gbps(topo: &Topology, secs: u32) -> Result<f64, NetnsError> {
    let v = iperf_client(topo, &[], secs)?;
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .map(|b| b / 1e9)
        .ok_or_else(|| no_figure("tcp", &v))
}

/// Thousands of 64-byte UDP frames per second delivered to the pod's eth0.
pub fn udp_kpps(topo: &Topology, secs: u32) -> Result<f64, NetnsError> {
    let before = rx_packets(&topo.pod, "eth0")?;
    let v = iperf_client(topo, &["-u", "-b", "0", "-l", "18"], secs)?;
    let after = rx_packets(&topo.pod, "eth0")?;
    let seconds = v["end"]["sum_sent"]["seconds"]
        .as_f64()
        .filter(|s| *s > 0.0)
        .ok_or_else(|| no_figure("udp", &v))?;
    Ok(after.saturating_sub(before) as f64 / seconds / 1e3)
}

/// What the connect/accept loop saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnRate {
    pub per_sec: f64,
    /// Connections made, and over how long.
    pub connections: u64,
    pub elapsed: Duration,
    /// `connect` failures (timeouts: a SYN or SYN-ACK lost and not retried within 1 s).
    pub failed: u64,
}

/// New TCP connections per second from the peer to the pod for `secs`.
pub fn conn_rate(topo: &Topology, secs: u32) -> Result<ConnRate, NetnsError> {
    let addr = SocketAddr::from((POD_IP, CONN_PORT));
    let listener = Topology::within(&topo.pod, || TcpListener::bind(addr))?.map_err(|source| {
        NetnsError::Spawn {
            cmd: format!("bind {addr} in {}", topo.pod),
            source,
        }
    })?;
    // std listens with a backlog of 128: a burst of connects overflows it, the SYN is dropped
    // and retried after 1 s, which would measure the retry timer.
    // SAFETY: listen(2) on a socket we own; calling it again only resizes the backlog.
    if unsafe { libc::listen(listener.as_raw_fd(), 4096) } != 0 {
        return Err(NetnsError::Spawn {
            cmd: format!("listen {addr} in {}", topo.pod),
            source: std::io::Error::last_os_error(),
        });
    }
    let stop = AtomicBool::new(false);
    let (done, failed) = (AtomicU64::new(0), AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(u64::from(secs));
    let elapsed = std::thread::scope(|s| -> Result<Duration, NetnsError> {
        for _ in 0..CLIENT_THREADS {
            s.spawn(|| {
                for conn in listener.incoming() {
                    drop(conn);
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
            });
        }
        let clients: Vec<_> = (0..CLIENT_THREADS)
            .map(|_| {
                s.spawn(|| {
                    Topology::within(&topo.peer, || connect_until(addr, deadline, &done, &failed))
                })
            })
            .collect();
        let mut result = Ok(());
        for c in clients {
            if let Ok(Err(e)) = c.join() {
                result = Err(e);
            }
        }
        let elapsed = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        // Wake the acceptors so they see `stop`.
        for _ in 0..CLIENT_THREADS {
            let _ = Topology::within(&topo.peer, || {
                TcpStream::connect_timeout(&addr, Duration::from_secs(1))
            });
        }
        result.map(|()| elapsed)
    })?;
    let connections = done.load(Ordering::Relaxed);
    Ok(ConnRate {
        per_sec: connections as f64 / elapsed.as_secs_f64(),
        connections,
        elapsed,
        failed: failed.load(Ordering::Relaxed),
    })
}

fn connect_until(addr: SocketAddr, deadline: Instant, done: &AtomicU64, failed: &AtomicU64) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    while Instant::now() < deadline {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(s) => {
                // SAFETY: a valid socket fd we own and a linger struct that outlives the call.
                unsafe {
                    libc::setsockopt(
                        s.as_raw_fd(),
                        libc::SOL_SOCKET,
                        libc::SO_LINGER,
                        (&linger as *const libc::linger).cast(),
                        size_of::<libc::linger>() as libc::socklen_t,
                    );
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
