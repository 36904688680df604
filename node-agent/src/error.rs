//! The agent's error type and how it reaches the plugin.

use std::path::PathBuf;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use tandem_common::api::{ApiError, ErrorKind};
use tandem_hostnet::HostnetError;

use crate::provider::ProviderError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("cannot use network namespace {path}: {source}")]
    Netns { path: PathBuf, source: HostnetError },
    #[error("no TenantNetwork matches pod namespace {namespace:?}{}", explicit.as_ref().map(|t| format!(" (asked for tenant {t:?})")).unwrap_or_default())]
    UnknownTenant {
        namespace: String,
        explicit: Option<String>,
    },
    #[error(
        "no free address on plane {plane} after waiting {waited_ms} ms for the pool to refill"
    )]
    PoolExhausted { plane: String, waited_ms: u64 },
    #[error("agent not ready: {0}")]
    NotReady(String),
    #[error("wiring {what} failed: {source}")]
    Wiring { what: String, source: HostnetError },
    #[error("{0}")]
    CheckFailed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cloud: {0}")]
    Cloud(#[from] ProviderError),
    #[error("security groups: {0}")]
    Policy(String),
    #[error("{0}")]
    Internal(String),
}

impl AgentError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            AgentError::BadRequest(_) => ErrorKind::BadRequest,
            AgentError::Netns { .. } => ErrorKind::Netns,
            AgentError::UnknownTenant { .. } => ErrorKind::UnknownTenant,
            AgentError::PoolExhausted { .. } => ErrorKind::PoolExhausted,
            AgentError::NotReady(_) => ErrorKind::NotReady,
            AgentError::Wiring { .. } => ErrorKind::Wiring,
            AgentError::CheckFailed(_) => ErrorKind::CheckFailed,
            AgentError::Store(_) => ErrorKind::Store,
            AgentError::Cloud(_) => ErrorKind::NotReady,
            AgentError::Policy(_) => ErrorKind::Internal,
            AgentError::Internal(_) => ErrorKind::Internal,
        }
    }

    pub fn wiring(what: impl Into<String>) -> impl FnOnce(HostnetError) -> AgentError {
        let what = what.into();
        move |source| AgentError::Wiring { what, source }
    }
}

impl IntoResponse for AgentError {
    fn into_response(self) -> Response {
        let kind = self.kind();
        let status = match kind {
            ErrorKind::BadRequest | ErrorKind::UnknownTenant | ErrorKind::Netns => {
                StatusCode::BAD_REQUEST
            }
            ErrorKind::PoolExhausted | ErrorKind::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::CheckFailed => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = ApiError {
            kind,
            message: self.to_string(),
            details: String::new(),
        };
        (status, Json(body)).into_response()
    }
}

pub type AgentResult<T> = Result<T, AgentError>;
