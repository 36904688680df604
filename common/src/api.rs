//! The node agent's HTTP/1.1 + JSON API on its unix socket (`/run/tandem/agent.sock`).
//!
//! Paths: `POST /v1/cni/add|del|check|gc`, `GET /v1/status`, `GET /v1/pods`, `GET /v1/enis`.
//! Every non-2xx answer carries an [`ApiError`].

use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

pub const PATH_ADD: &str = "/v1/cni/add";
pub const PATH_DEL: &str = "/v1/cni/del";
pub const PATH_CHECK: &str = "/v1/cni/check";
pub const PATH_GC: &str = "/v1/cni/gc";
pub const PATH_STATUS: &str = "/v1/status";
pub const PATH_PODS: &str = "/v1/pods";
pub const PATH_ENIS: &str = "/v1/enis";

/// The gateway every pod interface routes through: the host side of its veth answers for it
/// through a permanent neighbour entry (the pattern of the AWS VPC CNI, Calico and Terway).
pub const POD_GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);

/// The Kubernetes pod behind a CNI request, from `CNI_ARGS`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRef {
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub uid: String,
    #[serde(default)]
    pub infra_container_id: String,
}

/// One attachment is keyed by container id + the control interface's name (CNI_IFNAME).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentKey {
    pub container_id: String,
    pub ifname: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddRequest {
    pub key: AttachmentKey,
    pub netns: PathBuf,
    /// Name of the tenant interface inside the pod.
    pub tenant_ifname: String,
    pub pod: PodRef,
    /// Tenant named explicitly (CNI args `TANDEM_TENANT`); otherwise resolved from the namespace.
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub mtu: Option<u32>,
}

/// Which network an interface is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Control,
    Tenant,
}

/// A route inside the pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRoute {
    pub dst: Ipv4Net,
    pub gw: Ipv4Addr,
    /// `None` for the main table.
    #[serde(default)]
    pub table: Option<u32>,
}

/// One wired pod interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodInterface {
    pub role: Role,
    /// Name inside the pod.
    pub ifname: String,
    /// MAC inside the pod.
    pub mac: String,
    /// Host-side veth (shared mode) or the ENI's original name (exclusive mode).
    pub host_ifname: String,
    pub host_mac: String,
    pub mtu: u32,
    pub ip: Ipv4Addr,
    /// 32 for veth interfaces.
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    pub routes: Vec<PodRoute>,
    /// The ENI whose secondary IP this is.
    pub eni_id: String,
    /// The ENI's policy routing table on the node (`ip rule from <ip> lookup <hostTable>`).
    pub host_table: u32,
    /// This interface's table inside the pod (`ip rule from <ip> lookup <podTable>`), so replies
    /// leave by the interface their request came in on.
    pub pod_table: u32,
    /// "control" or the tenant's name.
    pub plane: String,
    /// The whole ENI was moved into the pod (exclusive mode); `host_ifname` is its name on
    /// the node, where DEL moves it back.
    #[serde(default)]
    pub exclusive: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddReply {
    pub interfaces: Vec<PodInterface>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DelRequest {
    pub key: AttachmentKey,
    /// Empty or missing when the runtime no longer has the netns.
    #[serde(default)]
    pub netns: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DelReply {
    /// False when there was nothing to release (DEL is idempotent).
    pub released: bool,
}

/// What the previous result promised for one interface inside the pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpectedInterface {
    pub name: String,
    #[serde(default)]
    pub mac: String,
    pub addresses: Vec<Ipv4Net>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckRequest {
    pub key: AttachmentKey,
    pub netns: PathBuf,
    pub interfaces: Vec<ExpectedInterface>,
    /// Routes of the previous result (main table unless `table` is set).
    pub routes: Vec<PodRoute>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GcRequest {
    pub valid: Vec<AttachmentKey>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GcReply {
    pub released: Vec<AttachmentKey>,
}

/// Free and used addresses of one network plane.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaneLevels {
    pub plane: String,
    pub enis: u32,
    pub free_ips: u32,
    pub used_ips: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReply {
    pub node: String,
    pub instance_id: String,
    pub version: String,
    /// False while start-up reconciliation runs or the cloud cannot be reached.
    pub ready: bool,
    pub allocations: u32,
    pub pending_releases: u32,
    pub planes: Vec<PlaneLevels>,
}

/// One pod attachment as the agent holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodInfo {
    pub key: AttachmentKey,
    pub pod: PodRef,
    pub netns: PathBuf,
    pub tenant: String,
    pub interfaces: Vec<PodInterface>,
    /// Unix seconds.
    pub created_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodsReply {
    pub pods: Vec<PodInfo>,
}

/// An ENI the agent holds, with who uses each of its secondary IPs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EniInfo {
    pub id: String,
    pub plane: String,
    pub vswitch_id: String,
    /// Device name on the node.
    pub device: String,
    pub mac: String,
    pub primary_ip: Ipv4Addr,
    pub table: u32,
    pub ips: Vec<IpUse>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpUse {
    pub ip: Ipv4Addr,
    /// Container id + ifname of the user, if any.
    #[serde(default)]
    pub owner: Option<AttachmentKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnisReply {
    pub enis: Vec<EniInfo>,
}

/// Why the agent refused a request; the plugin turns it into a CNI error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorKind {
    /// The request itself is malformed.
    BadRequest,
    /// The pod's netns does not exist or cannot be entered.
    Netns,
    /// No tenant network matches the pod.
    UnknownTenant,
    /// No free address now; the runtime should retry.
    PoolExhausted,
    /// The agent is starting or the cloud is unreachable; the runtime should retry.
    NotReady,
    /// Wiring the interfaces failed (and was rolled back).
    Wiring,
    /// CHECK found the pod's network differs from what was set up.
    CheckFailed,
    /// The allocation could not be written durably.
    Store,
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    #[serde(default)]
    pub details: String,
}

pub const PATH_POOL: &str = "/v1/pool";
pub const PATH_MAPPING: &str = "/v1/mapping";
pub const PATH_METRICS: &str = "/metrics";

/// One plane's pool: levels, the one-step target, and the knobs behind it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolPlane {
    pub plane: String,
    /// "shared" (addresses) or "exclusive" (whole ENIs: counts below are ENIs).
    pub mode: String,
    pub enis: u32,
    pub used: u32,
    pub free: u32,
    pub cooling: u32,
    pub waiting: u32,
    /// Used recently; an idle plane shrinks to its minimum.
    pub active: bool,
    pub target: u32,
    pub min: u32,
    pub warm: u32,
    pub max: u32,
    /// The most this plane could hold with the instance's remaining ENI slots.
    pub limit: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolReply {
    pub max_enis: u32,
    pub ips_per_eni: u32,
    pub enis_attached: u32,
    pub planes: Vec<PoolPlane>,
}

/// ENIs and addresses as one source sees them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inventory {
    /// ENIs attached to this node (that Tandem manages).
    pub enis: std::collections::BTreeSet<String>,
    /// Secondary addresses of those ENIs (the store and the cloud) …
    pub eni_ips: std::collections::BTreeSet<Ipv4Addr>,
    /// … and the pod addresses in use (the store and the kernel).
    pub pod_ips: std::collections::BTreeSet<Ipv4Addr>,
}

/// `tandemctl mapping`: store ↔ kernel ↔ cloud.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MappingReply {
    pub consistent: bool,
    pub problems: Vec<String>,
    pub store: Inventory,
    pub kernel: Inventory,
    pub cloud: Inventory,
}
