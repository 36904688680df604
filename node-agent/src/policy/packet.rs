//! Packets as the datapath sees them: what the reference evaluator and `trace` take, and the
//! Ethernet frames the differential test feeds to `BPF_PROG_TEST_RUN`.

use std::net::Ipv4Addr;

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IPV6: u16 = 0x86dd;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

pub const ICMP_ECHO_REPLY: u8 = 0;
pub const ICMP_ECHO: u8 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    /// `id` is the echo identifier (echo request/reply only; 0 otherwise).
    Icmp {
        icmp_type: u8,
        code: u8,
        id: u16,
    },
    /// Any other IP protocol, no header parsed.
    Other {
        proto: u8,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L3 {
    Ipv4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        /// Fragment offset in 8-byte units; non-zero means a non-first fragment.
        frag_offset: u16,
        l4: L4,
    },
    /// An ARP packet; only the sender protocol address matters.
    Arp { sender_ip: Ipv4Addr },
    /// Any other ethertype.
    Other { ethertype: u16 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub l3: L3,
}

impl L4 {
    pub fn ip_proto(&self) -> u8 {
        match self {
            L4::Tcp { .. } => 6,
            L4::Udp { .. } => 17,
            L4::Icmp { .. } => 1,
            L4::Other { proto } => *proto,
        }
    }

    /// (source, destination) ports as conntrack sees them: ICMP echo uses the id for both;
    /// other ICMP and other protocols have none.
    pub fn ports(&self) -> (u16, u16) {
        match *self {
            L4::Tcp { sport, dport, .. } | L4::Udp { sport, dport } => (sport, dport),
            L4::Icmp { icmp_type, id, .. } if is_echo(icmp_type) => (id, id),
            _ => (0, 0),
        }
    }

    /// The port slot a new flow is evaluated with: destination port, ICMP type << 8 | code.
    pub fn policy_port(&self) -> u16 {
        match *self {
            L4::Tcp { dport, .. } | L4::Udp { dport, .. } => dport,
            L4::Icmp {
                icmp_type, code, ..
            } => u16::from(icmp_type) << 8 | u16::from(code),
            L4::Other { .. } => 0,
        }
    }
}

pub fn is_echo(icmp_type: u8) -> bool {
    icmp_type == ICMP_ECHO || icmp_type == ICMP_ECHO_REPLY
}

impl Packet {
    /// A complete Ethernet frame (checksums are not computed: the datapath does not check them).
    pub fn to_frame(&self) -> Vec<u8> {
        let mut f = Vec::with_capacity(64);
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        match self.l3 {
            L3::Other { ethertype } => {
                f.extend_from_slice(&ethertype.to_be_bytes());
                f.extend_from_slice(&[0u8; 46]);
            }
            L3::Arp { sender_ip } => {
                f.extend_from_slice(&ETH_P_ARP.to_be_bytes());
                f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]); // Ethernet/IPv4, reply
                f.extend_from_slice(&self.src_mac);
                f.extend_from_slice(&sender_ip.octets());
                f.extend_from_slice(&self.dst_mac);
                f.extend_from_slice(&[0u8; 4]);
                f.extend_from_slice(&[0u8; 18]);
            }
            L3::Ipv4 {
                src,
                dst,
                frag_offset,
                l4,
            } => {
                f.extend_from_slice(&ETH_P_IP.to_be_bytes());
                let payload = l4_bytes(&l4);
                let total = 20 + payload.len() as u16;
                f.extend_from_slice(&[0x45, 0]);
                f.extend_from_slice(&total.to_be_bytes());
                f.extend_from_slice(&[0, 1]);
                f.extend_from_slice(&(frag_offset & 0x1fff).to_be_bytes());
                f.extend_from_slice(&[64, l4.ip_proto(), 0, 0]);
                f.extend_from_slice(&src.octets());
                f.extend_from_slice(&dst.octets());
                f.extend_from_slice(&payload);
            }
        }
        f
    }
}

fn l4_bytes(l4: &L4) -> Vec<u8> {
    let mut b = Vec::with_capacity(20);
    match *l4 {
        L4::Tcp {
            sport,
            dport,
            flags,
        } => {
            b.extend_from_slice(&sport.to_be_bytes());
            b.extend_from_slice(&dport.to_be_bytes());
            b.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        }
        L4::Udp { sport, dport } => {
            b.extend_from_slice(&sport.to_be_bytes());
            b.extend_from_slice(&dport.to_be_bytes());
            b.extend_from_slice(&[0, 16, 0, 0]);
            b.extend_from_slice(&[0u8; 8]);
        }
        L4::Icmp {
            icmp_type,
            code,
            id,
        } => {
            b.extend_from_slice(&[icmp_type, code, 0, 0]);
            b.extend_from_slice(&id.to_be_bytes());
            b.extend_from_slice(&[0, 1]);
            b.extend_from_slice(&[0u8; 8]);
        }
        L4::Other { .. } => b.extend_from_slice(&[0u8; 20]),
    }
    b
}
