//! Forged packets from a pod and a sniffer that says whether they arrived. A raw IP socket
//! forges the source address (the kernel routes it by destination); an `AF_PACKET` socket sends
//! a whole frame and so forges the source MAC. The sniffer is an `AF_PACKET` socket in the
//! target namespace: it sees a frame before any socket or firewall there could refuse it, and
//! recognises ours by a random marker in the payload.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::probe::{checksum, join, spawn_in};
use super::IsolationError;

/// What to send: UDP to the discard port, or an ICMP echo request, carrying `marker`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    Udp,
    Echo,
}

/// An IPv4 packet (header checksum computed, UDP checksum left 0 as IPv4 allows).
pub fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr, payload: Payload, marker: &[u8; 16]) -> Vec<u8> {
    let l4 = match payload {
        Payload::Udp => {
            let mut u = Vec::new();
            u.extend_from_slice(&31_337u16.to_be_bytes());
            u.extend_from_slice(&9u16.to_be_bytes());
            u.extend_from_slice(&(8 + marker.len() as u16).to_be_bytes());
            u.extend_from_slice(&[0, 0]);
            u.extend_from_slice(marker);
            u
        }
        Payload::Echo => {
            let mut e = vec![8, 0, 0, 0, 0x7a, 0x11, 0, 1];
            e.extend_from_slice(marker);
            let sum = checksum(&e);
            e[2..4].copy_from_slice(&sum.to_be_bytes());
            e
        }
    };
    let proto = if payload == Payload::Udp { 17 } else { 1 };
    let total = 20 + l4.len() as u16;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, proto, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let sum = checksum(&p);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(&l4);
    p
}

/// Send `packet` (its own header, any source) from namespace `netns` through a raw IP socket.
pub fn send_ip(netns: &str, packet: Vec<u8>) -> Result<(), IsolationError> {
    join(spawn_in(netns, move || {
        let io = |source| IsolationError::Io {
            what: "send a raw IP packet".into(),
            source,
        };
        // IPPROTO_RAW implies IP_HDRINCL: the kernel keeps our source address.
        let s = Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(libc::IPPROTO_RAW)),
        )
        .map_err(io)?;
        let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
        s.send_to(&packet, &SocketAddrV4::new(dst, 0).into())
            .map_err(io)?;
        Ok(())
    })?)
}

/// Send an Ethernet frame `src_mac → dst_mac` carrying `packet` out of `ifname` of `netns`.
pub fn send_frame(
    netns: &str,
    ifname: &str,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    packet: Vec<u8>,
) -> Result<(), IsolationError> {
    let ifname = ifname.to_owned();
    join(spawn_in(netns, move || {
        let io = |what: &str| {
            let what = format!("{what} ({ifname})");
            move |source| IsolationError::Io { what, source }
        };
        let idx =
            nix::net::if_::if_nametoindex(ifname.as_str()).map_err(|e| io("look up")(e.into()))?;
        let mut frame = Vec::with_capacity(14 + packet.len());
        frame.extend_from_slice(&dst_mac);
        frame.extend_from_slice(&src_mac);
        frame.extend_from_slice(&0x0800u16.to_be_bytes());
        frame.extend_from_slice(&packet);
        // Protocol 0: this socket only sends.
        // SAFETY: plain socket(2); the fd is owned right away.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        if fd < 0 {
            return Err(io("AF_PACKET socket")(std::io::Error::last_os_error()));
        }
        // SAFETY: fd is a fresh, valid descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = 0x0800u16.to_be();
        sll.sll_ifindex = idx as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&dst_mac);
        // SAFETY: the buffer and the address are valid for the given lengths during the call.
        let n = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io("send a frame")(std::io::Error::last_os_error()));
        }
        Ok(())
    })?)
}

/// A sniffer on every interface of a namespace, started before the packet is sent.
pub struct Sniffer {
    handle: JoinHandle<bool>,
}

impl Sniffer {
    /// Watch `netns` for `window` for a frame containing `marker`.
    pub fn start(
        netns: &str,
        marker: [u8; 16],
        window: Duration,
    ) -> Result<Sniffer, IsolationError> {
        let sock = join(spawn_in(netns, move || {
            let all = (libc::ETH_P_ALL as u16).to_be() as i32;
            Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(all))).map_err(|source| {
                IsolationError::Io {
                    what: "AF_PACKET sniffer".into(),
                    source,
                }
            })
        })?)?;
        let handle = std::thread::spawn(move || {
            let deadline = Instant::now() + window;
            let mut buf = [0u8; 2048];
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() || sock.set_read_timeout(Some(left)).is_err() {
                    return false;
                }
                if let Ok(n) = (&sock).read(&mut buf) {
                    if buf[..n].windows(marker.len()).any(|w| w == marker) {
                        return true;
                    }
                }
            }
        });
        Ok(Sniffer { handle })
    }

    /// Whether the marked packet arrived (waits for the end of the window, or the packet).
    pub fn arrived(self) -> Result<bool, IsolationError> {
        self.handle.join().map_err(|_| IsolationError::Panicked)
    }
}

pub fn marker() -> [u8; 16] {
    rand::random()
}

/// `ip -n NS -j ...`, parsed.
fn ip_json(netns: &str, args: &[&str]) -> Result<serde_json::Value, IsolationError> {
    let fail = |problem: String| IsolationError::Ip {
        netns: netns.to_owned(),
        args: args.join(" "),
        problem,
    };
    let out = std::process::Command::new("ip")
        .args(["-n", netns, "-j"])
        .args(args)
        .output()
        .map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        return Err(fail(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| fail(e.to_string()))
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let v: Vec<u8> = s
        .split(':')
        .map(|x| u8::from_str_radix(x, 16).ok())
        .collect::<Option<_>>()?;
    v.try_into().ok()
}

/// The MAC of `ifname` in `netns`.
pub fn link_mac(netns: &str, ifname: &str) -> Result<[u8; 6], IsolationError> {
    let v = ip_json(netns, &["link", "show", "dev", ifname])?;
    v[0]["address"]
        .as_str()
        .and_then(parse_mac)
        .ok_or_else(|| IsolationError::Ip {
            netns: netns.to_owned(),
            args: format!("link show dev {ifname}"),
            problem: "no MAC".into(),
        })
}

/// The MAC the pod sends to on `ifname`: its (permanent) gateway neighbour, the host veth.
pub fn gateway_mac(netns: &str, ifname: &str) -> Result<[u8; 6], IsolationError> {
    let v = ip_json(netns, &["neigh", "show", "dev", ifname])?;
    v.as_array()
        .into_iter()
        .flatten()
        .find_map(|n| n["lladdr"].as_str().and_then(parse_mac))
        .ok_or_else(|| IsolationError::Ip {
            netns: netns.to_owned(),
            args: format!("neigh show dev {ifname}"),
            problem: "no neighbour with a MAC".into(),
        })
}
