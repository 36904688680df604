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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloudConfig {
    /// `vpcsim` (the lab's emulated cloud).
    pub provider: String,
    /// For `vpcsim`: its unix socket.
    pub endpoint: PathBuf,
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

/// Warm pool knobs, per plane.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PoolConfig {
    /// Free IPs each plane keeps ready (refilled in the background).
    #[serde(default = "default_warm_ips")]
    pub warm_ips: u32,
    /// IPs asked of the cloud in one call.
    #[serde(default = "default_batch")]
    pub batch: u32,
    /// How long an ADD waits for a refill when its plane's pool is empty, before failing with
    /// CNI code 11 (try again later).
    #[serde(default = "default_empty_wait_ms")]
    pub empty_wait_ms: u64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            warm_ips: default_warm_ips(),
            batch: default_batch(),
            empty_wait_ms: default_empty_wait_ms(),
        }
    }
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
fn default_warm_ips() -> u32 {
    4
}
fn default_batch() -> u32 {
    4
}
fn default_empty_wait_ms() -> u64 {
    5_000
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
        if cfg.node.is_empty() || cfg.instance_id.is_empty() {
            return Err(invalid("node and instanceId must be set"));
        }
        Ok(cfg)
    }
}
