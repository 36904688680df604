//! Talking to the node agent over its unix socket.

use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tandem_common::api::ApiError;
use tandem_common::http::{ClientError, UdsClient};

use crate::error::PluginError;

pub struct AgentClient {
    client: UdsClient,
    timeout: Duration,
}

/// Why a call did not succeed; the verb decides what that means for it.
pub enum CallError {
    /// Nothing listens, or the agent went away mid-call.
    Unreachable(String),
    /// The agent answered with an error document.
    Rejected(ApiError),
    Protocol(String),
}

impl From<CallError> for PluginError {
    fn from(e: CallError) -> PluginError {
        match e {
            CallError::Unreachable(m) => PluginError::AgentUnavailable(m),
            CallError::Rejected(api) => PluginError::Agent(api),
            CallError::Protocol(m) => PluginError::AgentProtocol(m),
        }
    }
}

impl AgentClient {
    pub fn new(socket: &Path, timeout: Duration) -> AgentClient {
        AgentClient {
            client: UdsClient::new(socket),
            timeout,
        }
    }

    pub async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R, CallError> {
        self.finish(tokio::time::timeout(self.timeout, self.client.post(path, body)).await)
    }

    pub async fn get<R: DeserializeOwned>(&self, path: &str) -> Result<R, CallError> {
        self.finish(tokio::time::timeout(self.timeout, self.client.get(path)).await)
    }

    fn finish<R>(
        &self,
        res: Result<Result<R, ClientError>, tokio::time::error::Elapsed>,
    ) -> Result<R, CallError> {
        match res {
            Err(_) => Err(CallError::Unreachable(format!(
                "no answer from {} within {:?}",
                self.client.socket().display(),
                self.timeout
            ))),
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(match e {
                ClientError::Connect { .. } | ClientError::Http { .. } => {
                    CallError::Unreachable(e.to_string())
                }
                ClientError::Status { ref body, .. } => {
                    match serde_json::from_slice::<ApiError>(body) {
                        Ok(api) => CallError::Rejected(api),
                        Err(_) => CallError::Protocol(e.to_string()),
                    }
                }
                ClientError::Decode { .. } => CallError::Protocol(e.to_string()),
            }),
        }
    }
}
