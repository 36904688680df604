//! Reachability probes between lab namespaces: ICMP with the system `ping`, TCP with sockets
//! created on a thread that entered the namespace (a socket stays in the namespace it was
//! created in, whichever thread uses it later).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::netns::{self, NetnsError};

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("run ping in {netns}: {source} (apt-get install -y iputils-ping)")]
    Ping {
        netns: String,
        source: std::io::Error,
    },
    #[error("listen on {addr} in {netns}: {source}")]
    Listen {
        netns: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// One `ping -c 1 -W 1` from namespace `from` (optionally from source address `src`).
pub fn ping(from: &str, dst: Ipv4Addr, src: Option<Ipv4Addr>) -> Result<bool, ProbeError> {
    let mut cmd = Command::new("ping");
    cmd.args(["-n", "-q", "-c", "1", "-W", "1"]);
    if let Some(src) = src {
        cmd.arg("-I").arg(src.to_string());
    }
    cmd.arg(dst.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    netns::enter_on_spawn(&mut cmd, from, false)?;
    let status = cmd.status().map_err(|source| ProbeError::Ping {
        netns: from.to_owned(),
        source,
    })?;
    Ok(status.success())
}

/// A TCP server in a namespace that answers every connection with the address it saw the
/// client come from (`"10.1.0.5\n"`), handy to check SNAT. Stops on drop.
pub struct TcpServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TcpServer {
    pub fn start(netns_name: &str, addr: SocketAddr) -> Result<Self, ProbeError> {
        let listen_err = |source| ProbeError::Listen {
            netns: netns_name.to_owned(),
            addr,
            source,
        };
        let listener =
            netns::in_netns(netns_name, move || TcpListener::bind(addr))?.map_err(listen_err)?;
        listener.set_nonblocking(true).map_err(listen_err)?;
        let addr = listener.local_addr().map_err(listen_err)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, peer)) => {
                        let _ = writeln!(s, "{}", peer.ip());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connect from namespace `from` to `dst`; `Some(reply)` if connected (the reply of a
/// [`TcpServer`] is the client address it saw), `None` if refused, unreachable or timed out.
pub fn tcp_connect(
    from: &str,
    dst: SocketAddr,
    timeout: Duration,
) -> Result<Option<String>, ProbeError> {
    Ok(netns::in_netns(from, move || {
        let mut s = TcpStream::connect_timeout(&dst, timeout).ok()?;
        s.set_read_timeout(Some(timeout)).ok()?;
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        Some(reply.trim().to_owned())
    })?)
}
