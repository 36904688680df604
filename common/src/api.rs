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

pub const PATH_TRACE: &str = "/v1/trace";
pub const PATH_SG: &str = "/v1/sg";
pub const PATH_CONNTRACK: &str = "/v1/conntrack";
/// A chunked stream of JSON lines ([`MonitorLine`]); query `pod=NAME&dropsOnly=true`.
pub const PATH_MONITOR: &str = "/v1/monitor";
pub const PATH_DATAPATH_STATS: &str = "/v1/datapath/stats";

/// `tandemctl trace`: would a new flow from `from` to `to` pass?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceRequest {
    /// An address or a pod name (`name` or `namespace/name`).
    pub from: String,
    pub to: String,
    /// tcp, udp or icmp.
    pub proto: String,
    /// Destination port (tcp, udp).
    #[serde(default)]
    pub port: u16,
    /// ICMP type and code (icmp; echo request 8/0 by default).
    #[serde(default)]
    pub icmp_type: Option<u8>,
    #[serde(default)]
    pub icmp_code: Option<u8>,
}

/// One side of a traced flow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceEnd {
    pub ip: Option<Ipv4Addr>,
    /// `namespace/name`, when the address is a pod's (here or on another node).
    #[serde(default)]
    pub pod: Option<String>,
    /// The node of a pod on another node.
    #[serde(default)]
    pub node: Option<String>,
    /// A pod interface on this node.
    pub local: bool,
    #[serde(default)]
    pub role: Option<Role>,
}

/// The verdict of one enforcement point (a local pod interface, one direction).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceStep {
    pub pod: String,
    /// Host veth the datapath runs on.
    pub interface: String,
    pub role: Role,
    /// egress (the pod sends) or ingress (towards the pod).
    pub direction: String,
    pub allowed: bool,
    /// group | environment | control | default-deny | no-policy
    pub decided_by: String,
    /// The deciding rule id in the compiled rule table (0: none).
    pub rule_id: u32,
    /// The deciding rule in words.
    pub rule: String,
    pub policy_id: u32,
    pub groups: Vec<String>,
    #[serde(default)]
    pub environment: String,
    /// Extra facts (anti-spoofing, what was not checked).
    #[serde(default)]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceReply {
    pub from: TraceEnd,
    pub to: TraceEnd,
    pub proto: String,
    /// Destination port, or ICMP type << 8 | code.
    pub port: u16,
    /// Every step allows (and there is at least one).
    pub allowed: bool,
    /// Neither side is a pod interface of this node: nothing was evaluated.
    pub not_local: bool,
    /// The rule-set generation the verdicts come from.
    pub generation: u32,
    pub steps: Vec<TraceStep>,
}

/// A member of a security group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SgMember {
    pub ip: Ipv4Addr,
    pub pod: String,
    pub node: String,
    pub local: bool,
}

/// A local pod interface that enforces a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SgUser {
    pub pod: String,
    pub interface: String,
    pub policy_id: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SgInfo {
    pub name: String,
    /// allowUnion | priority
    pub model: String,
    /// basic | enterprise
    #[serde(rename = "type")]
    pub group_type: String,
    pub inner_access_policy: String,
    pub ingress_rules: u32,
    /// `None`: no egress list (allow-union: allow all outbound).
    pub egress_rules: Option<u32>,
    /// The rules as compiled (explicit and implicit), in words.
    pub rules: Vec<String>,
    pub members: Vec<SgMember>,
    pub used_by: Vec<SgUser>,
}

/// A distinct (groups, environment) combination the local pods use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SgPolicy {
    pub policy_id: u32,
    pub groups: Vec<String>,
    pub environment: String,
    pub trie_entries: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SgReply {
    /// False when `bpfRoot` is not set: groups are not enforced.
    pub enforced: bool,
    pub generation: u32,
    pub groups: Vec<SgInfo>,
    pub policies: Vec<SgPolicy>,
}

/// One tracked flow, seen from the pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CtFlow {
    pub endpoint_id: u32,
    /// `namespace/name` (empty if the endpoint is no longer known).
    pub pod: String,
    pub interface: String,
    pub proto: String,
    pub local_ip: Ipv4Addr,
    pub local_port: u16,
    pub remote_ip: Ipv4Addr,
    pub remote_port: u16,
    /// Who opened the flow: pod | remote.
    pub origin: String,
    /// syn-sent | established | closing | closed (tcp); established otherwise.
    pub state: String,
    /// Seconds since the last packet.
    pub idle_secs: u64,
    /// Idle timeout of its state, in seconds.
    pub timeout_secs: u32,
    pub rule_id: u32,
    pub rule: String,
    pub generation: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConntrackReply {
    pub entries: u32,
    pub capacity: u32,
    pub generation: u32,
    pub flows: Vec<CtFlow>,
}

/// One datapath event, resolved to a pod and a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MonitorEvent {
    /// Unix milliseconds (when the agent read it).
    pub time_ms: u64,
    pub pod: String,
    pub interface: String,
    /// egress (from the pod) | ingress (towards the pod)
    pub direction: String,
    pub proto: String,
    pub src: Ipv4Addr,
    pub sport: u16,
    pub dst: Ipv4Addr,
    /// Destination port, or ICMP type << 8 | code.
    pub dport: u16,
    /// drop | new-flow | audit
    pub verdict: String,
    /// Why (a datapath reason: policy, environment, control, spoof-ip, ...).
    pub reason: String,
    pub rule_id: u32,
    pub rule: String,
}

/// A line of the monitor stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum MonitorLine {
    /// First line: the datapath's lost-event count so far.
    #[serde(rename_all = "camelCase")]
    Start {
        events_lost: u64,
    },
    Event(MonitorEvent),
    /// This subscriber fell behind and missed `missed` events.
    #[serde(rename_all = "camelCase")]
    Lagged {
        missed: u64,
    },
}

/// Datapath counters: drops by reason, new flows, lost events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatapathStats {
    pub passed: u64,
    pub new_flows: u64,
    pub audited: u64,
    pub events_lost: u64,
    pub drops: std::collections::BTreeMap<String, u64>,
}
