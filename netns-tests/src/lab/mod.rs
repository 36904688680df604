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
    /// vpcsim `--attach-latency-ms`.
    pub attach_latency_ms: u64,
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
