//! The agent's own configuration file (JSON or YAML).

use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read agent config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("agent config {path} is invalid: {source}")]
    Parse {
        path: PathBuf,
        source: serde_yaml::Error,
    },
    #[error("agent config {path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentConfig {
    /// Kubernetes node name.
    pub node: String,
    /// The cloud's id of this instance.
    pub instance_id: String,
    /// Cluster name, written into the tags of every cloud resource the agent creates.
    pub cluster: String,
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    #[serde(default = "default_release_queue")]
    pub release_queue_dir: PathBuf,
    /// Directory of TenantNetwork / SecurityGroup / Namespace objects (YAML).
    pub config_dir: PathBuf,
    pub cloud: CloudConfig,
    pub control: ControlConfig,
    #[serde(default)]
    pub pool: PoolConfig,
    /// Also serve `GET /metrics` over TCP here (e.g. `127.0.0.1:9190`), for Prometheus.
    #[serde(default)]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// bpffs directory of the security-group datapath (mounted here if it is not a bpffs);
    /// `/sys/fs/bpf/tandem` on a node. Unset: security groups are not enforced.
    #[serde(default)]
    pub bpf_root: Option<PathBuf>,
    /// Where this agent publishes its pods' tenant addresses and groups (`Endpoint`
    /// objects) for the other nodes, when there is no Kubernetes API (the lab: the config
    /// directory).
    #[serde(default)]
    pub membership_dir: Option<PathBuf>,
    #[serde(default)]
    pub policy: PolicyConfig,

    /// Seconds between sweeps for pods whose netns is gone and for leaked ENIs.
    #[serde(default = "default_sweep_secs")]
    pub sweep_secs: u64,
    /// ENIs tagged for this node and left unattached longer than this are deleted (a crash
    /// between create and attach).
    #[serde(default = "default_leak_grace_secs")]
    pub leaked_eni_grace_secs: u64,
}

/// Security-group enforcement knobs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyConfig {
    /// Log would-be drops and pass the traffic.
    #[serde(default)]
    pub audit: bool,
    /// Re-check tracked flows against a changed rule set (default: tracked flows survive a
    /// rule change, as on AWS and Alibaba Cloud).
    #[serde(default)]
    pub recheck: bool,
}

fn default_sweep_secs() -> u64 {
    10
}
fn default_leak_grace_secs() -> u64 {
    120
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloudConfig {
    /// `vpcsim` (the lab's emulated cloud).
    pub provider: String,
    /// For `vpcsim`: its unix socket.
    pub endpoint: PathBuf,
    /// Calls per second per API the agent allows itself (token bucket).
    #[serde(default = "default_rate")]
    pub rate_per_sec: u32,
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Attempts per call, the first included, for throttling and transient faults.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

fn default_rate() -> u32 {
    20
}
fn default_burst() -> u32 {
    40
}
fn default_attempts() -> u32 {
    8
}

/// The platform's control network, cluster-wide.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ControlConfig {
    /// The control vSwitch; the node's control ENI is the one attached in it.
    pub v_switch: String,
    /// Platform networks that reach pods over their control interface.
    #[serde(default)]
    pub platform_cidrs: Vec<Ipv4Net>,
}

/// Warm pool knobs, the same for every plane (DESIGN §5). One meaning throughout: counts are
/// addresses of one plane on this node (ENIs for exclusive planes).
///
/// The target is computed in one step: `clamp(used + cooling + waiting + warm, min, max)`,
/// and the whole gap is asked of the cloud at once (split into calls of `batch`, new ENIs
/// attached in parallel), so a burst never needs several rounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PoolConfig {
    /// Addresses a plane keeps even when idle (shared planes), once it is in use on this node.
    #[serde(default)]
    pub min_ips: u32,
    /// Free addresses a plane keeps ready beyond what its pods use.
    #[serde(default = "default_warm_ips")]
    pub warm_ips: u32,
    /// Upper bound of a plane's addresses; the instance's ENI and IPs-per-ENI limits bound it
    /// too.
    #[serde(default = "default_max_ips")]
    pub max_ips: u32,
    /// Free ENIs an exclusive plane keeps ready.
    #[serde(default = "default_warm_enis")]
    pub warm_enis: u32,
    /// At most this many addresses per cloud call.
    #[serde(default = "default_batch")]
    pub batch: u32,
    /// Free addresses above the target are returned to the cloud after staying unused this
    /// long …
    #[serde(default = "default_idle_release_secs")]
    pub idle_release_secs: u64,
    /// … plus a random extra of up to this share of the delay, so nodes do not release (and
    /// later re-acquire) in lockstep.
    #[serde(default = "default_idle_jitter")]
    pub idle_release_jitter: f64,
    /// A released address is not handed out again for this long, so late packets of the old
    /// pod (and stale conntrack or DNS entries elsewhere) never reach a new one.
    #[serde(default = "default_cooldown_secs")]
    pub cooldown_secs: u64,
    /// How long an ADD waits for the refill when its plane has no free address, before
    /// failing with CNI code 11 (try again later).
    #[serde(default = "default_empty_wait_ms")]
    pub empty_wait_ms: u64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        serde_json::from_str("{}").expect("all pool knobs have defaults")
    }
}

fn default_warm_ips() -> u32 {
    4
}
fn default_max_ips() -> u32 {
    u32::MAX
}
fn default_warm_enis() -> u32 {
    1
}
fn default_batch() -> u32 {
    10
}
fn default_idle_release_secs() -> u64 {
    60
}
fn default_idle_jitter() -> f64 {
    0.2
}
fn default_cooldown_secs() -> u64 {
    10
}
fn default_empty_wait_ms() -> u64 {
    5_000
}

fn default_socket() -> PathBuf {
    "/run/tandem/agent.sock".into()
}
fn default_state_dir() -> PathBuf {
    "/var/lib/tandem".into()
}
fn default_release_queue() -> PathBuf {
    "/var/lib/tandem/release-queue".into()
}

impl AgentConfig {
    /// Read and validate; YAML is a superset of JSON, so both work.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let cfg: AgentConfig =
            serde_yaml::from_str(&text).map_err(|source| ConfigError::Parse {
                path: path.to_path_buf(),
                source,
            })?;
        let invalid = |problem: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            problem: problem.to_string(),
        };
        if cfg.cloud.provider != "vpcsim" {
            return Err(invalid(
                "cloud.provider must be \"vpcsim\" (the only provider so far)",
            ));
        }
        if cfg.pool.batch == 0 {
            return Err(invalid("pool.batch must be at least 1"));
        }
        if cfg.pool.min_ips > cfg.pool.max_ips {
            return Err(invalid("pool.minIps must not exceed pool.maxIps"));
        }
        if !(0.0..=1.0).contains(&cfg.pool.idle_release_jitter) {
            return Err(invalid("pool.idleReleaseJitter must be between 0 and 1"));
        }
        if cfg.node.is_empty() || cfg.instance_id.is_empty() {
            return Err(invalid("node and instanceId must be set"));
        }
        Ok(cfg)
    }
}
