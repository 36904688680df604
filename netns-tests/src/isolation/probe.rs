//! Flow probes with real sockets: TCP (connect, one byte echoed), UDP (one datagram echoed),
//! ICMP echo. Each probe opens its socket on a thread of its own that entered the source
//! namespace (STYLE.md habit 5), so many run at once; a probe that gets no answer gives up
//! after its timeout.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU16, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::IsolationError;
use crate::lab::netns;

/// What the matrix probes: the web ports, DNS and ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    /// TCP 80.
    Http,
    /// TCP 443.
    Https,
    /// UDP 53.
    Dns,
    /// ICMP echo.
    Ping,
}

impl Service {
    pub const ALL: [Service; 4] = [Service::Http, Service::Https, Service::Dns, Service::Ping];

    /// The IP protocol number.
    pub fn ip_proto(self) -> u8 {
        match self {
            Service::Http | Service::Https => 6,
            Service::Dns => 17,
            Service::Ping => 1,
        }
    }

    /// The destination port (0 for ICMP).
    pub fn port(self) -> u16 {
        match self {
            Service::Http => 80,
            Service::Https => 443,
            Service::Dns => 53,
            Service::Ping => 0,
        }
    }

    /// One letter for matrix cells: `h`ttp, `s` (https), `d`ns, `i`cmp.
    pub fn letter(self) -> char {
        match self {
            Service::Http => 'h',
            Service::Https => 's',
            Service::Dns => 'd',
            Service::Ping => 'i',
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Service::Http => "tcp/80",
            Service::Https => "tcp/443",
            Service::Dns => "udp/53",
            Service::Ping => "icmp",
        }
    }
}

/// Source ports (and ICMP ids) are never reused within a run: an old conntrack entry of the
/// datapath would let a reused 5-tuple through as a tracked flow. Below the kernel's
/// ephemeral range, so no other socket of the lab takes them.
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);
const PORT_BASE: u16 = 20_000;
const PORT_SPAN: u16 = 12_000;

pub fn fresh_port() -> u16 {
    PORT_BASE + NEXT_PORT.fetch_add(1, Ordering::Relaxed) % PORT_SPAN
}

/// Run `f` on a new thread that first enters namespace `name`.
pub fn spawn_in<T, F>(
    name: &str,
    f: F,
) -> Result<JoinHandle<Result<T, IsolationError>>, IsolationError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, IsolationError> + Send + 'static,
{
    let path = netns::netns_path(name);
    let file = std::fs::File::open(&path).map_err(|source| IsolationError::Io {
        what: format!("open netns {}", path.display()),
        source,
    })?;
    let owned = name.to_owned();
    Ok(std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
            IsolationError::Io {
                what: format!("enter netns {owned}"),
                source: e.into(),
            }
        })?;
        f()
    }))
}

/// Join a probe thread.
pub fn join<T>(h: JoinHandle<Result<T, IsolationError>>) -> Result<T, IsolationError> {
    h.join().map_err(|_| IsolationError::Panicked)?
}

/// One probe: from namespace `from` (bound to `src` if given) to `dst`.
#[derive(Debug, Clone)]
pub struct FlowProbe {
    pub from: String,
    pub src: Option<Ipv4Addr>,
    pub dst: Ipv4Addr,
    pub service: Service,
    pub timeout: Duration,
}

impl FlowProbe {
    /// Start the probe on its own thread; [`join`] gives whether it was answered.
    pub fn spawn(&self) -> Result<JoinHandle<Result<bool, IsolationError>>, IsolationError> {
        let p = self.clone();
        spawn_in(&self.from, move || Ok(p.run_here()))
    }

    /// Run it now, blocking.
    pub fn run(&self) -> Result<bool, IsolationError> {
        join(self.spawn()?)
    }

    /// On a thread already in the source namespace: answered or not (any socket error, e.g.
    /// an unreachable route, counts as not answered).
    fn run_here(&self) -> bool {
        let deadline = Instant::now() + self.timeout;
        match self.service {
            Service::Http | Service::Https => {
                tcp(self.src, self.dst, self.service.port(), deadline)
            }
            Service::Dns => udp(self.src, self.dst, self.service.port(), deadline),
            Service::Ping => icmp(self.src, self.dst, deadline),
        }
        .unwrap_or(false)
    }
}

fn left(deadline: Instant) -> std::io::Result<Duration> {
    let d = deadline.saturating_duration_since(Instant::now());
    if d.is_zero() {
        return Err(std::io::ErrorKind::TimedOut.into());
    }
    Ok(d)
}

fn bound(ty: Type, proto: Protocol, src: Option<Ipv4Addr>, port: u16) -> std::io::Result<Socket> {
    let s = Socket::new(Domain::IPV4, ty, Some(proto))?;
    s.set_reuse_address(true)?;
    let ip = src.unwrap_or(Ipv4Addr::UNSPECIFIED);
    s.bind(&SocketAddrV4::new(ip, port).into())?;
    Ok(s)
}

/// Connect and have one byte echoed: the handshake and data both ways passed.
fn tcp(
    src: Option<Ipv4Addr>,
    dst: Ipv4Addr,
    port: u16,
    deadline: Instant,
) -> std::io::Result<bool> {
    let s = bound(Type::STREAM, Protocol::TCP, src, fresh_port())?;
    s.connect_timeout(&SocketAddrV4::new(dst, port).into(), left(deadline)?)?;
    let mut s: TcpStream = s.into();
    s.set_read_timeout(Some(left(deadline)?))?;
    s.write_all(b"?")?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b)?;
    Ok(b == *b"?")
}

fn udp(
    src: Option<Ipv4Addr>,
    dst: Ipv4Addr,
    port: u16,
    deadline: Instant,
) -> std::io::Result<bool> {
    let s: UdpSocket = bound(Type::DGRAM, Protocol::UDP, src, fresh_port())?.into();
    s.connect(SocketAddrV4::new(dst, port))?;
    let nonce: [u8; 8] = rand::random();
    s.send(&nonce)?;
    let mut buf = [0u8; 64];
    loop {
        s.set_read_timeout(Some(left(deadline)?))?;
        let n = s.recv(&mut buf)?;
        if buf[..n] == nonce {
            return Ok(true);
        }
    }
}

/// An echo request with a fresh id; a raw socket sees every ICMP packet of the namespace, so
/// only a reply from `dst` with that id counts.
fn icmp(src: Option<Ipv4Addr>, dst: Ipv4Addr, deadline: Instant) -> std::io::Result<bool> {
    let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?;
    if let Some(src) = src {
        s.bind(&SocketAddrV4::new(src, 0).into())?;
    }
    let id = fresh_port();
    let mut req = vec![8, 0, 0, 0];
    req.extend_from_slice(&id.to_be_bytes());
    req.extend_from_slice(&1u16.to_be_bytes());
    req.extend_from_slice(b"tandem-isolation");
    let sum = checksum(&req);
    req[2..4].copy_from_slice(&sum.to_be_bytes());
    s.send_to(&req, &SocketAddrV4::new(dst, 0).into())?;
    let mut buf = [0u8; 1500];
    loop {
        s.set_read_timeout(Some(left(deadline)?))?;
        let n = (&s).read(&mut buf)?;
        if is_reply(&buf[..n], dst, id) {
            return Ok(true);
        }
    }
}

/// `pkt` (IP header included, as raw sockets deliver it) is an echo reply from `from` with `id`.
fn is_reply(pkt: &[u8], from: Ipv4Addr, id: u16) -> bool {
    if pkt.len() < 20 {
        return false;
    }
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    let src = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
    let icmp = &pkt[ihl.min(pkt.len())..];
    icmp.len() >= 8 && src == from && icmp[0] == 0 && icmp[4..6] == id.to_be_bytes()
}

/// The Internet checksum (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A long-lived TCP connection to an echo server, for flows that must survive something.
pub struct TcpFlow {
    stream: TcpStream,
}

impl TcpFlow {
    /// Connect from `from` (bound to `src`) to `dst:port`.
    pub fn open(
        from: &str,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        port: u16,
        timeout: Duration,
    ) -> Result<TcpFlow, IsolationError> {
        let stream = join(spawn_in(from, move || {
            let io = |source| IsolationError::Io {
                what: format!("connect {src} -> {dst}:{port}"),
                source,
            };
            let s = bound(Type::STREAM, Protocol::TCP, Some(src), fresh_port()).map_err(io)?;
            s.connect_timeout(&SocketAddrV4::new(dst, port).into(), timeout)
                .map_err(io)?;
            Ok(TcpStream::from(s))
        })?)?;
        Ok(TcpFlow { stream })
    }

    /// Send a few bytes and have them echoed within `timeout`.
    pub fn exchange(&mut self, timeout: Duration) -> bool {
        let msg: [u8; 8] = rand::random();
        let mut back = [0u8; 8];
        self.stream.set_read_timeout(Some(timeout)).is_ok()
            && self.stream.write_all(&msg).is_ok()
            && self.stream.read_exact(&mut back).is_ok()
            && back == msg
    }
}
