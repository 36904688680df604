//! The lab: namespaces for a VPC, a platform network, an internet stand-in and two nodes, the
//! `vpcsim` cloud and (optionally) one `tandem-agent` per node. DESIGN.md §7.
//!
//! [`Lab::up`] builds it and [`Lab`]'s `Drop` tears it down; `lab.json` in the run directory
//! records every step first, so [`down`] can clean up after a run that crashed half-way.

pub mod cni_exec;
pub mod http;
mod lifecycle;
pub mod names;
pub mod netns;
pub mod node;
pub mod pod;
pub mod probe;
pub mod process;
pub mod record;
mod teardown;
pub mod topology;
pub mod vpc;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use lifecycle::Lab;
pub use node::NodeInfo;
pub use pod::Pod;
pub use teardown::{down, down_all, teardown_on_signal};
pub use topology::InstanceLimits;

use names::RUN_ROOT;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("invalid prefix {0:?}: use 1-12 lowercase letters and digits")]
    BadPrefix(String),
    #[error("lab {prefix} already exists ({what}); run `tandem-lab down --prefix {prefix}`")]
    Exists { prefix: String, what: String },
    #[error("create {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no node named {0}")]
    NoNode(String),
    #[error("pod {0} already exists")]
    PodExists(String),
    #[error(transparent)]
    Netns(#[from] netns::NetnsError),
    #[error(transparent)]
    Process(#[from] process::ProcessError),
    #[error(transparent)]
    Record(#[from] record::RecordError),
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
    #[error(transparent)]
    Node(#[from] node::NodeError),
    #[error(transparent)]
    Cni(#[from] cni_exec::CniExecError),
    #[error("teardown of {prefix} left: {}", .errors.join("; "))]
    Teardown { prefix: String, errors: Vec<String> },
}

/// How to build a lab.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// `None`: `tl` + 4 random hex digits.
    pub prefix: Option<String>,
    /// Parent of the run directory (default `/run/tandem-lab`).
    pub run_root: PathBuf,
    /// Start `tandem-agent` on every node and wait for its socket.
    pub start_agents: bool,
    /// Where `tandem`, `tandem-agent` and `tandem-lab` are; default: `$TANDEM_BIN_DIR`, then
    /// beside the running executable.
    pub bin_dir: Option<PathBuf>,
    /// vpcsim `--attach-latency-ms` (default 0 here, for fast tests; the CLI's is 2000).
    pub attach_latency_ms: u64,
    /// vpcsim `--throttle-rate`: calls per second per API action; 0 (default): no throttling.
    pub throttle_rate: f64,
    /// vpcsim `--throttle-burst` (default 10).
    pub throttle_burst: u32,
    /// vpcsim `--fail-rate` (default 0).
    pub fail_rate: f64,
    /// vpcsim `--partial-rate` (default 0).
    pub partial_rate: f64,
    /// vpcsim `--seed`.
    pub seed: Option<u64>,
    /// Every instance's limits (default 8 ENIs of 30 IPs, like an m5.4xlarge).
    pub limits: InstanceLimits,
    /// Merged as the `"pool"` key of every node's `agent.json` (the agent's camelCase pool
    /// knobs, e.g. `{"warmIps": 4}`); `None`: the agent's defaults.
    pub agent_pool: Option<serde_json::Value>,
    /// Top-level keys added to every node's `agent.json` (e.g. `{"sweepSecs": 2}`); they
    /// must not repeat a key the lab writes.
    pub agent_extra: Option<serde_json::Value>,
    /// Extra environment for the agents (e.g. `RUST_LOG`).
    pub agent_env: Vec<(String, String)>,
    /// How long vpcsim and each agent may take to answer on their socket.
    pub ready_timeout: Duration,
}

impl Default for LabOptions {
    fn default() -> Self {
        Self {
            prefix: None,
            run_root: PathBuf::from(RUN_ROOT),
            start_agents: true,
            bin_dir: None,
            attach_latency_ms: 0,
            throttle_rate: 0.0,
            throttle_burst: 10,
            fail_rate: 0.0,
            partial_rate: 0.0,
            seed: None,
            limits: InstanceLimits::default(),
            agent_pool: None,
            agent_extra: None,
            agent_env: Vec::new(),
            ready_timeout: Duration::from_secs(10),
        }
    }
}

impl LabOptions {
    /// The run directory of a lab with this prefix.
    pub fn run_dir(&self, prefix: &str) -> PathBuf {
        Path::new(&self.run_root).join(prefix)
    }
}
