//! Isolation between tenants, measured with real packets and compared with what the security
//! groups imply (DESIGN.md §3–§4): flow probes and their echo servers (`probe`, `servers`),
//! forged packets and a sniffer (`spoof`), the lab's policy read from its config directory
//! (`config`), the expected outcome of every probe computed by the agent's reference evaluator
//! (`expected`), and the matrix of both (`matrix`).

pub mod config;
pub mod expected;
pub mod lab;
pub mod matrix;
pub mod probe;
pub mod servers;
pub mod spoof;

use std::path::PathBuf;

pub use config::LabPolicy;
pub use matrix::{Cell, Isolation, Outcomes, Party, PodParty, Via};
pub use probe::{FlowProbe, Service};
pub use servers::EchoServers;

#[derive(Debug, thiserror::Error)]
pub enum IsolationError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{path}: {problem}")]
    Config { path: PathBuf, problem: String },
    #[error("the reference evaluator rejects the lab's policy: {0}")]
    Policy(#[from] tandem_agent::policy::compile::CompileError),
    #[error("pod {pod} (tenant {tenant}) has no policy: unknown tenant")]
    NoTenant { pod: String, tenant: String },
    #[error("`ip {args}` in {netns}: {problem}")]
    Ip {
        netns: String,
        args: String,
        problem: String,
    },
    #[error("pod on node {0}, which the lab does not have")]
    NoNode(String),
    #[error("a probe thread panicked")]
    Panicked,
}
