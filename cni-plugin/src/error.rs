//! The plugin's errors and, in `code()`, the one place CNI error codes are decided.

use tandem_common::api::{ApiError, ErrorKind};
use tandem_common::cni::CniError;

/// Codes of the CNI spec ("Error" section) and Tandem's own (≥ 100, listed in the README).
pub mod codes {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const INVALID_ENV: u32 = 4;
    pub const DECODE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN_LATER: u32 = 11;
    pub const NOT_AVAILABLE: u32 = 50;
    pub const AGENT_REJECTED: u32 = 100;
    pub const NO_TENANT: u32 = 101;
    pub const BAD_NETNS: u32 = 102;
    pub const WIRING_FAILED: u32 = 103;
    pub const CHECK_FAILED: u32 = 104;
    pub const AGENT_STORE: u32 = 105;
    pub const AGENT_INTERNAL: u32 = 106;
    pub const RELEASE_QUEUE: u32 = 107;
}

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("{0}")]
    IncompatibleVersion(String),
    #[error("unsupported field in network configuration: {0}")]
    UnsupportedField(String),
    #[error("{0}")]
    Env(String),
    #[error("failed to decode {0}")]
    Decode(String),
    #[error("invalid network configuration: {0}")]
    InvalidConfig(String),
    /// The agent could not be reached (ADD, CHECK, GC) or is not ready.
    #[error("the tandem agent is unavailable: {0}")]
    AgentUnavailable(String),
    /// The agent refused the request.
    #[error("{}", .0.message)]
    Agent(ApiError),
    /// The agent answered something that is not its API.
    #[error("unexpected answer from the tandem agent: {0}")]
    AgentProtocol(String),
    #[error("queueing the release failed: {0}")]
    ReleaseQueue(String),
    /// STATUS: the plugin cannot serve ADDs now.
    #[error("{0}")]
    NotAvailable(String),
}

impl PluginError {
    /// The CNI error code of every error, decided here and nowhere else.
    pub fn code(&self) -> u32 {
        use codes::*;
        match self {
            PluginError::IncompatibleVersion(_) => INCOMPATIBLE_VERSION,
            PluginError::UnsupportedField(_) => UNSUPPORTED_FIELD,
            PluginError::Env(_) => INVALID_ENV,
            PluginError::Decode(_) => DECODE,
            PluginError::InvalidConfig(_) => INVALID_CONFIG,
            PluginError::AgentUnavailable(_) => TRY_AGAIN_LATER,
            PluginError::NotAvailable(_) => NOT_AVAILABLE,
            PluginError::Agent(e) => match e.kind {
                ErrorKind::BadRequest => AGENT_REJECTED,
                ErrorKind::UnknownTenant => NO_TENANT,
                ErrorKind::Netns => BAD_NETNS,
                ErrorKind::PoolExhausted | ErrorKind::NotReady => TRY_AGAIN_LATER,
                ErrorKind::Wiring => WIRING_FAILED,
                ErrorKind::CheckFailed => CHECK_FAILED,
                ErrorKind::Store => AGENT_STORE,
                ErrorKind::Internal => AGENT_INTERNAL,
            },
            PluginError::AgentProtocol(_) => AGENT_INTERNAL,
            PluginError::ReleaseQueue(_) => RELEASE_QUEUE,
        }
    }

    pub fn to_cni(&self, cni_version: &str) -> CniError {
        let details = match self {
            PluginError::Agent(e) => e.details.clone(),
            _ => String::new(),
        };
        CniError {
            cni_version: cni_version.to_string(),
            code: self.code(),
            msg: self.to_string(),
            details,
        }
    }
}
