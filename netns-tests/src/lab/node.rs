//! Emulated nodes: their namespace's sysctls, `eth0` once vpcsim plugged it, and the files the
//! node's agent and CNI plugin read (`agent.json`, the conflist, the shared config directory).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::names::LabNames;
use super::netns::{self, NetnsError};
use super::topology::InstanceSpec;
use super::vpc::PLATFORM_CIDR;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One emulated node as tests see it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// `n1`, `n2`.
    pub name: String,
    pub instance_id: String,
    pub netns: String,
    /// The primary ENI's address on the control vSwitch.
    pub ip: Ipv4Addr,
    pub agent_socket: PathBuf,
    pub agent_config: PathBuf,
    pub conflist: PathBuf,
    pub release_queue_dir: PathBuf,
}

/// Set before vpcsim creates `eth0`, so the device inherits the `default` values.
pub fn prepare(netns: &str) -> Result<(), NetnsError> {
    netns::sysctls(
        netns,
        &[
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv4.conf.all.rp_filter", "0"),
            ("net.ipv4.conf.default.rp_filter", "0"),
        ],
    )
}

/// Address and route the primary ENI (`eth0`), as cloud-init would on a real instance.
pub fn configure_eth0(
    node: &NodeInfo,
    prefix_len: u8,
    gateway: Ipv4Addr,
) -> Result<(), NetnsError> {
    netns::sysctls(&node.netns, &[("net.ipv4.conf.eth0.rp_filter", "0")])?;
    let lines = [
        format!("addr add {}/{prefix_len} dev eth0", node.ip),
        "link set eth0 up".to_owned(),
        format!("route add default via {gateway}"),
    ];
    netns::ip_batch(&node.netns, &lines)
}

pub fn node_info(names: &LabNames, node: &str, inst: &InstanceSpec) -> NodeInfo {
    NodeInfo {
        name: node.to_owned(),
        instance_id: inst.id.clone(),
        netns: inst.netns.clone(),
        ip: inst.primary_eni.primary_ip,
        agent_socket: names.agent_socket(node),
        agent_config: names.agent_config(node),
        conflist: names.conflist(node),
        release_queue_dir: names.node_dir(node).join("release-queue"),
    }
}

/// `agent.json` (with `pool` as given and the keys of `extra` added) and
/// `net.d/10-tandem.conflist` of one node.
pub fn write_files(
    names: &LabNames,
    node: &NodeInfo,
    pool: Option<&serde_json::Value>,
    extra: Option<&serde_json::Value>,
) -> Result<(), NodeError> {
    let dir = names.node_dir(&node.name);
    let bpf_root = names.bpf_root(&node.name);
    // Structs, not `json!`: serde_json sorts map keys, and these files are read by people too.
    let agent = AgentFile {
        node: &node.name,
        instance_id: &node.instance_id,
        cluster: &names.prefix,
        socket: &node.agent_socket,
        state_dir: &dir.join("state"),
        release_queue_dir: &node.release_queue_dir,
        config_dir: &names.config_dir(),
        cloud: CloudFile {
            provider: "vpcsim",
            endpoint: &names.vpcsim_socket(),
        },
        control: ControlFile {
            v_switch: "vsw-ctl",
            platform_cidrs: &[PLATFORM_CIDR],
        },
        bpf_root: extra
            .is_none_or(|e| e.get("bpfRoot").is_none())
            .then_some(bpf_root.as_path()),
        membership_dir: &names.config_dir(),
        pool,
        extra,
    };
    let conflist = ConflistFile {
        cni_version: "1.1.0",
        name: "tandem",
        plugins: [PluginFile {
            kind: "tandem",
            agent_socket: &node.agent_socket,
            release_queue_dir: &node.release_queue_dir,
            tenant_if_name: "eth1",
        }],
    };
    let agent = serde_json::to_string(&agent).expect("json");
    let conflist = serde_json::to_string_pretty(&conflist).expect("json");
    for d in [
        dir.join("state"),
        node.release_queue_dir.clone(),
        dir.join("net.d"),
    ] {
        mkdir(&d)?;
    }
    write(&node.agent_config, &agent)?;
    write(&node.conflist, &conflist)
}

/// The tenants of the standard lab and their interface modes.
pub const TENANTS: [(&str, &str); 3] = [
    ("acme", "shared"),
    ("globex", "shared"),
    ("initech", "exclusive"),
];

/// The shared-scheme tenants (both in `vsw-shared`), with their security groups: files people
/// can read, `netns-tests/lab-config/`.
pub const SHARED_TENANTS: [(&str, &str); 2] = [
    (
        "umbrella.yaml",
        include_str!("../../lab-config/umbrella.yaml"),
    ),
    ("wayne.yaml", include_str!("../../lab-config/wayne.yaml")),
];

/// The tenants of the standard lab, as the agent's file config source reads them. Each
/// independent tenant has one basic group whose members reach each other and may send
/// anywhere the (closed) environment allows, so its pods keep working once groups are
/// enforced.
pub fn write_config(names: &LabNames) -> Result<(), NodeError> {
    let dir = names.config_dir();
    mkdir(&dir)?;
    for (tenant, mode) in TENANTS {
        let yaml = format!(
            "apiVersion: tandem.dev/v1alpha1\n\
             kind: TenantNetwork\n\
             metadata: {{name: {tenant}}}\n\
             spec: {{scheme: independent, interfaceMode: {mode}, environment: closed, \
             vSwitches: [vsw-{tenant}], securityGroups: [sg-{tenant}], \
             namespaceSelector: {{matchLabels: {{tenant: {tenant}}}}}}}\n\
             ---\n\
             apiVersion: v1\n\
             kind: Namespace\n\
             metadata: {{name: {tenant}, labels: {{tenant: {tenant}}}}}\n\
             ---\n\
             apiVersion: tandem.dev/v1alpha1\n\
             kind: SecurityGroup\n\
             metadata: {{name: sg-{tenant}}}\n\
             spec: {{model: priority, type: basic, innerAccessPolicy: accept}}\n"
        );
        write(&dir.join(format!("{tenant}.yaml")), &yaml)?;
    }
    for (file, yaml) in SHARED_TENANTS {
        write(&dir.join(file), yaml)?;
    }
    Ok(())
}

fn mkdir(path: &Path) -> Result<(), NodeError> {
    std::fs::create_dir_all(path).map_err(|source| NodeError::Write {
        path: path.to_owned(),
        source,
    })
}

fn write(path: &Path, text: &str) -> Result<(), NodeError> {
    std::fs::write(path, text).map_err(|source| NodeError::Write {
        path: path.to_owned(),
        source,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AgentFile<'a> {
    node: &'a str,
    instance_id: &'a str,
    cluster: &'a str,
    socket: &'a Path,
    state_dir: &'a Path,
    release_queue_dir: &'a Path,
    config_dir: &'a Path,
    cloud: CloudFile<'a>,
    control: ControlFile<'a>,
    /// A bpffs per node (the agent mounts it; the lab's teardown unmounts it), so the two
    /// agents' pinned maps never meet. Left out when `extra` sets `bpfRoot` itself (`null`:
    /// no security-group datapath, for comparisons).
    #[serde(skip_serializing_if = "Option::is_none")]
    bpf_root: Option<&'a Path>,
    /// Each agent publishes its pods' groups here as `endpoints-<node>.yaml` and reads the
    /// other's.
    membership_dir: &'a Path,
    #[serde(skip_serializing_if = "Option::is_none")]
    pool: Option<&'a serde_json::Value>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    extra: Option<&'a serde_json::Value>,
}

#[derive(Serialize)]
struct CloudFile<'a> {
    provider: &'a str,
    endpoint: &'a Path,
}

#[derive(Serialize)]
struct ControlFile<'a> {
    #[serde(rename = "vSwitch")]
    v_switch: &'a str,
    #[serde(rename = "platformCidrs")]
    platform_cidrs: &'a [&'a str],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConflistFile<'a> {
    cni_version: &'a str,
    name: &'a str,
    plugins: [PluginFile<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PluginFile<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    agent_socket: &'a Path,
    release_queue_dir: &'a Path,
    tenant_if_name: &'a str,
}
