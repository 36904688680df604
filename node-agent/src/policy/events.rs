//! Drop and new-flow events from the datapath's ring buffer (for `tandemctl monitor`).

use std::net::Ipv4Addr;

use super::abi;

/// One decoded ring-buffer record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowEvent {
    pub ts_ns: u64,
    pub endpoint_id: u32,
    pub ifindex: u32,
    pub kind: EventKind,
    /// A `stats` index (abi::STAT_*): why it was dropped / would have been.
    pub reason: u32,
    pub rule_id: u32,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    /// Destination port, or ICMP type << 8 | code.
    pub dport: u16,
    pub proto: u8,
    pub from_pod: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Drop,
    NewFlow,
    /// Audit mode: would have been dropped, passed.
    Audit,
    Unknown(u8),
}

impl FlowEvent {
    /// Decode one record; `None` if it is too short.
    pub fn decode(bytes: &[u8]) -> Option<FlowEvent> {
        if bytes.len() < size_of::<abi::Event>() {
            return None;
        }
        // SAFETY: the length is checked and abi::Event is plain old data; read_unaligned
        // copes with any alignment of the ring-buffer record.
        let e: abi::Event = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        Some(FlowEvent {
            ts_ns: e.ts_ns,
            endpoint_id: e.endpoint_id,
            ifindex: e.ifindex,
            kind: match e.kind {
                abi::EVENT_DROP => EventKind::Drop,
                abi::EVENT_NEW_FLOW => EventKind::NewFlow,
                abi::EVENT_AUDIT => EventKind::Audit,
                k => EventKind::Unknown(k),
            },
            reason: u32::from(e.reason),
            rule_id: e.rule_id,
            src: Ipv4Addr::from(u32::from_be(e.saddr)),
            dst: Ipv4Addr::from(u32::from_be(e.daddr)),
            sport: e.sport,
            dport: e.dport,
            proto: e.proto,
            from_pod: e.from_pod != 0,
        })
    }
}
