//! One file per CNI verb.

pub mod add;
pub mod check;
pub mod del;
pub mod gc;
pub mod status;
pub mod version;

use std::time::Duration;

use crate::agent::AgentClient;
use crate::config::NetConf;

/// What a verb prints on success.
pub enum Reply {
    Json(serde_json::Value),
    Nothing,
}

pub(crate) fn client(conf: &NetConf) -> AgentClient {
    AgentClient::new(&conf.agent_socket, Duration::from_millis(conf.timeout_ms))
}
