//! `#[repr(C)]` mirrors of `ebpf/lib/abi.h`; the size asserts catch a change on one side only.

#![allow(dead_code)]

pub const DIR_INGRESS: u8 = 0;
pub const DIR_EGRESS: u8 = 1;
pub const DIR_ENV: u8 = 2;

pub const ROLE_CONTROL: u8 = 1;
pub const ROLE_TENANT: u8 = 2;

pub const EP_AUDIT: u8 = 1;
pub const EP_RECHECK: u8 = 2;

pub const CONTROL_PLATFORM: u32 = 1;
pub const CONTROL_POD: u32 = 2;

pub const MAX_RULES: u32 = 65536;
pub const MAX_IDENTITY: u32 = 0x00ff_ffff;

pub const VERDICT_DROP: u8 = 0;
pub const VERDICT_ACCEPT: u8 = 1;

pub const CT_SYN_SENT: u8 = 1;
pub const CT_ESTABLISHED: u8 = 2;
pub const CT_CLOSING: u8 = 3;
pub const CT_CLOSED: u8 = 4;

pub const ORIGIN_REMOTE: u8 = 0;
pub const ORIGIN_POD: u8 = 1;

/// `stats` indexes (TANDEM_STAT_*).
pub const STAT_PASS: u32 = 0;
pub const STAT_DROP_NO_ENDPOINT: u32 = 1;
pub const STAT_DROP_SPOOF_MAC: u32 = 2;
pub const STAT_DROP_SPOOF_IP: u32 = 3;
pub const STAT_DROP_UNSUPPORTED: u32 = 4;
pub const STAT_DROP_MALFORMED: u32 = 5;
pub const STAT_DROP_FRAGMENT: u32 = 6;
pub const STAT_DROP_POLICY: u32 = 7;
pub const STAT_DROP_ENV: u32 = 8;
pub const STAT_DROP_CONTROL: u32 = 9;
pub const STAT_DROP_NO_POLICY: u32 = 10;
pub const STAT_AUDIT: u32 = 11;
pub const STAT_EVENTS_LOST: u32 = 12;
pub const STAT_NEW_FLOW: u32 = 13;
pub const STAT_MAX: u32 = 16;

pub const EVENT_DROP: u8 = 1;
pub const EVENT_NEW_FLOW: u8 = 2;
pub const EVENT_AUDIT: u8 = 3;

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointConfig {
    pub endpoint_id: u32,
    pub policy_id: u32,
    /// Network order.
    pub ip: u32,
    pub mac: [u8; 6],
    pub role: u8,
    pub flags: u8,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DpConfig {
    pub generation: u32,
    pub events_per_sec: u32,
    pub events_burst: u32,
    pub tcp_syn_timeout_s: u32,
    pub tcp_established_timeout_s: u32,
    pub tcp_closing_timeout_s: u32,
    pub udp_timeout_s: u32,
    pub icmp_timeout_s: u32,
    pub other_timeout_s: u32,
    pub _pad: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LpmV4Key {
    pub prefixlen: u32,
    /// Network order.
    pub addr: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyKey {
    pub prefixlen: u32,
    /// Network order: dir << 24 | remote identity.
    pub dir_remote: u32,
    pub proto: u8,
    pub port_hi: u8,
    pub port_lo: u8,
    pub _pad: u8,
}

/// `PolicyKey` without its prefix length, as aya's `lpm_trie::Key` wants it.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyKeyData {
    pub dir_remote: u32,
    pub proto: u8,
    pub port_hi: u8,
    pub port_lo: u8,
    pub _pad: u8,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyValue {
    pub rule_id: u32,
    pub action: u8,
    pub _pad: [u8; 3],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyOuterKey {
    pub policy_id: u32,
    pub epoch: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CtKey {
    pub endpoint_id: u32,
    /// Network order.
    pub remote_ip: u32,
    /// Network order.
    pub local_ip: u32,
    pub remote_port: u16,
    pub local_port: u16,
    pub proto: u8,
    pub _pad: [u8; 3],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CtEntry {
    pub last_seen_ns: u64,
    pub generation: u32,
    pub rule_id: u32,
    pub policy_port: u16,
    pub state: u8,
    pub origin: u8,
    pub _pad: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleCounter {
    pub packets: u64,
    pub bytes: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Event {
    pub ts_ns: u64,
    pub endpoint_id: u32,
    pub ifindex: u32,
    pub rule_id: u32,
    pub saddr: u32,
    pub daddr: u32,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub from_pod: u8,
    pub kind: u8,
    pub reason: u8,
    pub _pad: u32,
}

const _: () = {
    assert!(size_of::<EndpointConfig>() == 20);
    assert!(size_of::<DpConfig>() == 40);
    assert!(size_of::<LpmV4Key>() == 8);
    assert!(size_of::<PolicyKey>() == 12);
    assert!(size_of::<PolicyKeyData>() + 4 == size_of::<PolicyKey>());
    assert!(size_of::<PolicyValue>() == 8);
    assert!(size_of::<PolicyOuterKey>() == 8);
    assert!(size_of::<CtKey>() == 20);
    assert!(size_of::<CtEntry>() == 24);
    assert!(size_of::<RuleCounter>() == 16);
    assert!(size_of::<Event>() == 40);
};

// SAFETY: plain old data, every bit pattern valid, no padding the compiler adds (explicit
// `_pad` fields), as aya requires of map keys and values.
unsafe impl aya::Pod for EndpointConfig {}
// SAFETY: as above.
unsafe impl aya::Pod for DpConfig {}
// SAFETY: as above.
unsafe impl aya::Pod for LpmV4Key {}
// SAFETY: as above.
unsafe impl aya::Pod for PolicyKey {}
// SAFETY: as above.
unsafe impl aya::Pod for PolicyKeyData {}
// SAFETY: as above.
unsafe impl aya::Pod for PolicyValue {}
// SAFETY: as above.
unsafe impl aya::Pod for PolicyOuterKey {}
// SAFETY: as above.
unsafe impl aya::Pod for CtKey {}
// SAFETY: as above.
unsafe impl aya::Pod for CtEntry {}
// SAFETY: as above.
unsafe impl aya::Pod for RuleCounter {}
