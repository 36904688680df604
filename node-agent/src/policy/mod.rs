//! Security groups on the node (DESIGN §4, issue 4): the model (`model`), a pure reference
//! evaluator (`reference`), the compiler to datapath tables (`compile`), and the eBPF datapath
//! that enforces them on every pod's host veth (`datapath`).
//!
//! The agent's flow: build a [`compile::PolicyInput`] from the SecurityGroup objects, member
//! addresses and the (groups, environment) of every interface → [`compile::compile`] →
//! [`datapath::Datapath::apply`] (one atomic switch of the whole rule set) → per interface
//! [`datapath::Datapath::attach_endpoint`] with an [`EndpointConfig`] naming the policy id.

pub mod abi;
pub mod compile;
pub mod datapath;
pub mod events;
pub mod model;
pub mod packet;
pub mod reference;
#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;

/// What an interface is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Control network: only platform peers (see `Datapath::set_control_peer`), never pods.
    Control,
    /// Tenant network: the policy (groups + environment) with this id
    /// ([`compile::PolicySpec::id`]).
    Tenant { policy_id: u32 },
}

/// The datapath's view of one pod interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointConfig {
    /// Scopes conntrack entries; unique per interface on the node.
    pub endpoint_id: u32,
    pub role: Role,
    /// The only source address and MAC the pod may use.
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
    /// Log would-be policy drops and pass the traffic.
    pub audit: bool,
    /// Re-evaluate tracked flows against a changed rule set (default: tracked flows survive).
    pub recheck: bool,
}

impl EndpointConfig {
    pub fn to_abi(&self) -> abi::EndpointConfig {
        let (role, policy_id) = match self.role {
            Role::Control => (abi::ROLE_CONTROL, 0),
            Role::Tenant { policy_id } => (abi::ROLE_TENANT, policy_id),
        };
        abi::EndpointConfig {
            endpoint_id: self.endpoint_id,
            policy_id,
            ip: u32::from(self.ip).to_be(),
            mac: self.mac,
            role,
            flags: if self.audit { abi::EP_AUDIT } else { 0 }
                | if self.recheck { abi::EP_RECHECK } else { 0 },
        }
    }
}

/// A peer class of the control network; the longest matching prefix decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlClass {
    /// May talk to pods' control interfaces (API gateway, health checkers, collectors).
    Platform,
    /// Pods on the control network: never reach each other.
    Pod,
}

/// Conntrack idle timeouts, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp_syn: u32,
    pub tcp_established: u32,
    pub tcp_closing: u32,
    pub udp: u32,
    pub icmp: u32,
    pub other: u32,
}

impl Default for Timeouts {
    /// Linux conntrack's spirit, with a shorter established timeout because the table is LRU.
    fn default() -> Self {
        Timeouts {
            tcp_syn: 60,
            tcp_established: 3600,
            tcp_closing: 10,
            udp: 60,
            icmp: 30,
            other: 60,
        }
    }
}

impl Timeouts {
    pub fn for_state(&self, proto: u8, state: u8) -> u32 {
        match (proto, state) {
            (6, abi::CT_SYN_SENT) => self.tcp_syn,
            (6, abi::CT_ESTABLISHED) => self.tcp_established,
            (6, _) => self.tcp_closing,
            (17, _) => self.udp,
            (1, _) => self.icmp,
            _ => self.other,
        }
    }
}

/// Why the datapath passed or dropped a packet (the `stats` index of abi.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Pass,
    NoEndpoint,
    SpoofMac,
    SpoofIp,
    Unsupported,
    Malformed,
    Fragment,
    Policy,
    Environment,
    Control,
    NoPolicy,
}

impl Reason {
    pub fn stat_index(self) -> u32 {
        match self {
            Reason::Pass => abi::STAT_PASS,
            Reason::NoEndpoint => abi::STAT_DROP_NO_ENDPOINT,
            Reason::SpoofMac => abi::STAT_DROP_SPOOF_MAC,
            Reason::SpoofIp => abi::STAT_DROP_SPOOF_IP,
            Reason::Unsupported => abi::STAT_DROP_UNSUPPORTED,
            Reason::Malformed => abi::STAT_DROP_MALFORMED,
            Reason::Fragment => abi::STAT_DROP_FRAGMENT,
            Reason::Policy => abi::STAT_DROP_POLICY,
            Reason::Environment => abi::STAT_DROP_ENV,
            Reason::Control => abi::STAT_DROP_CONTROL,
            Reason::NoPolicy => abi::STAT_DROP_NO_POLICY,
        }
    }
}
