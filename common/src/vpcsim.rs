//! The emulated cloud API (`vpcsim`): request and response bodies.
//!
//! Shaped after the EC2 / ECS ENI APIs: every call is `POST /<Action>` with a JSON body, answered
//! with JSON; errors carry a cloud-style `code` (`RequestLimitExceeded`, `InvalidNetworkInterfaceID.NotFound`,
//! …) so the agent's provider layer handles them as it would a real cloud's.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// A vSwitch (subnet) of the VPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VSwitch {
    pub id: String,
    pub cidr: Ipv4Net,
    /// The VPC router's address on this vSwitch (first host of the CIDR).
    pub gateway: Ipv4Addr,
}

/// An instance (node) as the cloud sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    pub id: String,
    /// How many ENIs may be attached, the primary one included.
    pub max_enis: u32,
    /// How many private IPs one ENI may hold, its primary one included.
    pub max_ips_per_eni: u32,
}

/// Where an ENI is attached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    pub instance_id: String,
    /// 0 is the instance's primary ENI.
    pub device_index: u32,
}

/// An elastic network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Eni {
    pub id: String,
    pub vswitch_id: String,
    /// `aa:bb:cc:dd:ee:ff`; the device that appears in the node carries this address.
    pub mac: String,
    pub primary_ip: Ipv4Addr,
    /// Secondary private IPs, in assignment order.
    #[serde(default)]
    pub secondary_ips: Vec<Ipv4Addr>,
    #[serde(default)]
    pub attachment: Option<Attachment>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Unix milliseconds of creation, so leaked ENIs can be collected after a grace period.
    #[serde(default)]
    pub created_at_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateEniRequest {
    pub vswitch_id: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Idempotency token: a retried create with the same token returns the same ENI.
    #[serde(default)]
    pub client_token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachEniRequest {
    pub eni_id: String,
    pub instance_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EniIdRequest {
    pub eni_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignIpsRequest {
    pub eni_id: String,
    pub count: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignIpsReply {
    pub assigned: Vec<Ipv4Addr>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnassignIpsRequest {
    pub eni_id: String,
    pub ips: Vec<Ipv4Addr>,
}

/// Filters for `DescribeNetworkInterfaces`; every given field must match.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeEnisRequest {
    #[serde(default)]
    pub instance_id: Option<String>,
    #[serde(default)]
    pub eni_ids: Vec<String>,
    /// Tag key → value.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeEnisReply {
    pub enis: Vec<Eni>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeInstanceRequest {
    pub instance_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeVSwitchesReply {
    pub vswitches: Vec<VSwitch>,
}

/// vpcsim's injectable misbehaviour (DESIGN.md §7), set at start and by `POST /_admin/SetFaults`.
/// All off (zero) by default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Faults {
    /// How long attach and detach take before they reply.
    #[serde(default)]
    pub attach_latency_ms: u64,
    /// Sustained calls per second allowed per API action; 0 turns throttling off.
    #[serde(default)]
    pub throttle_rate: f64,
    /// Calls per action that may come at once before throttling starts (at least 1 when on).
    #[serde(default)]
    pub throttle_burst: u32,
    /// Probability that a call answers `InternalError` without doing anything.
    #[serde(default)]
    pub fail_rate: f64,
    /// Probability that a create, attach or assign does its work and then answers
    /// `InternalError` anyway.
    #[serde(default)]
    pub partial_rate: f64,
}

/// `POST /_admin/SetFaults`: the knobs to change; absent ones keep their value. The reply is
/// the resulting [`Faults`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetFaultsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach_latency_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_burst: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_rate: Option<f64>,
    /// Re-seed the fault RNG, for a reproducible sequence from here on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl SetFaultsRequest {
    /// Every knob of `faults`, so the request replaces all of them.
    pub fn all(faults: &Faults) -> Self {
        Self {
            attach_latency_ms: Some(faults.attach_latency_ms),
            throttle_rate: Some(faults.throttle_rate),
            throttle_burst: Some(faults.throttle_burst),
            fail_rate: Some(faults.fail_rate),
            partial_rate: Some(faults.partial_rate),
            seed: None,
        }
    }
}

/// Counts of one API action since vpcsim started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionStats {
    /// Every call, answered or not.
    pub calls: u64,
    /// Answered `RequestLimitExceeded`.
    pub throttled: u64,
    /// Answered `InternalError` without doing anything (injected).
    pub failed: u64,
    /// Did the work, then answered `InternalError` (injected).
    pub partial: u64,
}

/// `GET /_admin/Stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsReply {
    pub faults: Faults,
    /// Action name → counts.
    pub actions: BTreeMap<String, ActionStats>,
}

/// The body of every non-2xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudError {
    /// Cloud-style error code, e.g. `RequestLimitExceeded`.
    pub code: String,
    pub message: String,
}

/// Error codes the emulated cloud answers with, named as EC2 names them.
pub mod codes {
    pub const THROTTLED: &str = "RequestLimitExceeded";
    pub const ENI_NOT_FOUND: &str = "InvalidNetworkInterfaceID.NotFound";
    pub const INSTANCE_NOT_FOUND: &str = "InvalidInstanceID.NotFound";
    pub const VSWITCH_NOT_FOUND: &str = "InvalidSubnetID.NotFound";
    pub const ENI_LIMIT: &str = "AttachmentLimitExceeded";
    pub const IP_LIMIT: &str = "PrivateIpAddressLimitExceeded";
    pub const SUBNET_FULL: &str = "InsufficientFreeAddressesInSubnet";
    pub const IN_USE: &str = "InvalidNetworkInterface.InUse";
    pub const INCORRECT_STATE: &str = "IncorrectState";
    pub const INTERNAL: &str = "InternalError";
    pub const BAD_REQUEST: &str = "InvalidParameterValue";
}
