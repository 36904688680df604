//! The other end of the probes: in one namespace, TCP echo listeners on 80 and 443 and a UDP
//! echo on 53 for each of its addresses (a UDP socket bound to one address answers from it;
//! one bound to 0.0.0.0 would answer from whatever the route picks). ICMP echo is the kernel's.
//! Everything stops when the value is dropped.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::probe::{join, spawn_in};
use super::IsolationError;

const POLL: Duration = Duration::from_millis(2);

pub struct EchoServers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl EchoServers {
    /// Listen in `netns` on each of `addrs`.
    pub fn start(netns: &str, addrs: &[Ipv4Addr]) -> Result<EchoServers, IsolationError> {
        let addrs = addrs.to_vec();
        let ns = netns.to_owned();
        let (tcp, udp) = join(spawn_in(netns, move || {
            let mut tcp = Vec::new();
            let mut udp = Vec::new();
            for ip in addrs {
                let io = |what: String| move |source| IsolationError::Io { what, source };
                for port in [80, 443] {
                    let a = SocketAddrV4::new(ip, port);
                    let l = TcpListener::bind(a).map_err(io(format!("listen on {a} in {ns}")))?;
                    l.set_nonblocking(true)
                        .map_err(io(format!("nonblocking {a}")))?;
                    tcp.push(l);
                }
                let a = SocketAddrV4::new(ip, 53);
                let u = UdpSocket::bind(a).map_err(io(format!("bind {a} in {ns}")))?;
                u.set_read_timeout(Some(Duration::from_millis(20)))
                    .map_err(io(format!("timeout {a}")))?;
                udp.push(u);
            }
            Ok((tcp, udp))
        })?)?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for l in tcp {
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || accept_loop(&l, &stop)));
        }
        for u in udp {
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || udp_loop(&u, &stop)));
        }
        Ok(EchoServers { stop, threads })
    }
}

impl Drop for EchoServers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn accept_loop(l: &TcpListener, stop: &Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        match l.accept() {
            Ok((s, _)) => {
                let stop = stop.clone();
                std::thread::spawn(move || echo(s, &stop));
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// Echo until the peer closes or the servers stop (long-lived flows stay up meanwhile).
fn echo(mut s: TcpStream, stop: &AtomicBool) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = [0u8; 1024];
    while !stop.load(Ordering::Relaxed) {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

fn udp_loop(u: &UdpSocket, stop: &AtomicBool) {
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        if let Ok((n, peer)) = u.recv_from(&mut buf) {
            let _ = u.send_to(&buf[..n], peer);
        }
    }
}
