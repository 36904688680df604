//! The HTTP face of vpcsim: `POST /<Action>` with a JSON body, on a unix socket (axum 0.8).
//!
//! Every mutating call takes the state lock, changes the books, applies the dataplane effect and
//! rolls the books back if that fails, so the books and the namespaces never disagree. Calls that
//! emulate slow cloud operations (attach, detach) sleep *before* taking the lock.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tandem_common::vpcsim::{
    codes, AssignIpsReply, AssignIpsRequest, AttachEniRequest, CloudError, CreateEniRequest,
    DescribeEnisReply, DescribeEnisRequest, DescribeInstanceRequest, DescribeVSwitchesReply, Eni,
    EniIdRequest, UnassignIpsRequest,
};
use tokio::net::UnixListener;
use tokio::sync::Mutex;

use super::dataplane::{self, Plug};
use super::state::{CloudState, StateError};
use crate::lab::topology::Topology;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("bind {path}: {source}")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("serve on {path}: {source}")]
    Serve {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("create primary eni of {instance}: {message}")]
    Primary { instance: String, message: String },
}

/// Knobs of the emulation; more (throttling, failure injection) will join them.
#[derive(Debug, Clone, Default)]
pub struct SimOptions {
    /// How long attach and detach take before they reply.
    pub attach_latency: Duration,
}

/// A cloud error on its way to the wire.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: CloudError,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        let body = CloudError {
            code: code.to_owned(),
            message: message.into(),
        };
        Self { status, body }
    }
    fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            message.to_string(),
        )
    }
}

impl From<StateError> for ApiError {
    fn from(e: StateError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
        Self::new(status, e.code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

pub struct Sim {
    topology: Topology,
    options: SimOptions,
    state: Mutex<CloudState>,
}

impl Sim {
    pub fn new(topology: Topology, options: SimOptions) -> Self {
        let state = Mutex::new(CloudState::new(&topology));
        Self {
            topology,
            options,
            state,
        }
    }

    /// Where an ENI attached to `instance` plugs in.
    fn plug(&self, eni: &Eni, instance: &str) -> Result<Plug, ApiError> {
        let vsw = self.topology.vswitch(&eni.vswitch_id);
        let inst = self.topology.instance(instance);
        match (vsw, inst) {
            (Some(v), Some(i)) => Ok(Plug {
                vpc_netns: self.topology.vpc_netns.clone(),
                bridge: v.bridge.clone(),
                node_netns: i.netns.clone(),
            }),
            _ => Err(ApiError::internal(format!(
                "no bridge or netns for {} on {instance}",
                eni.id
            ))),
        }
    }

    /// Create and plug every instance's primary ENI (device index 0, `eth0`).
    pub async fn create_primaries(&self) -> Result<(), ServerError> {
        let mut state = self.state.lock().await;
        for inst in &self.topology.instances {
            let err = |message: String| ServerError::Primary {
                instance: inst.id.clone(),
                message,
            };
            let p = &inst.primary_eni;
            let eni = state
                .create_primary(&inst.id, &p.vswitch_id, p.primary_ip)
                .map_err(|e| err(e.to_string()))?;
            let plug = self.plug(&eni, &inst.id).map_err(|e| err(e.body.message))?;
            blocking(move || dataplane::attach(&plug, &eni, 0))
                .await
                .map_err(|e| err(e.body.message))?;
        }
        Ok(())
    }

    /// Admission control: the place for per-API token buckets and injected failures.
    fn admit(&self, _action: &str) -> Result<(), ApiError> {
        Ok(())
    }

    async fn handle(&self, action: &str, body: &[u8]) -> Result<Value, ApiError> {
        self.admit(action)?;
        match action {
            "CreateNetworkInterface" => {
                let req: CreateEniRequest = parse(body)?;
                to_value(self.state.lock().await.create_eni(&req)?)
            }
            "AttachNetworkInterface" => self.attach(parse(body)?).await,
            "DetachNetworkInterface" => self.detach(parse(body)?).await,
            "DeleteNetworkInterface" => {
                let req: EniIdRequest = parse(body)?;
                self.state.lock().await.delete(&req.eni_id)?;
                Ok(json!({}))
            }
            "AssignPrivateIpAddresses" => self.assign(parse(body)?).await,
            "UnassignPrivateIpAddresses" => self.unassign(parse(body)?).await,
            "DescribeNetworkInterfaces" => {
                let req: DescribeEnisRequest = parse_or_default(body)?;
                let enis = self.state.lock().await.describe(&req)?;
                to_value(DescribeEnisReply { enis })
            }
            "DescribeInstance" => {
                let req: DescribeInstanceRequest = parse(body)?;
                to_value(self.state.lock().await.instance(&req.instance_id)?)
            }
            "DescribeVSwitches" => {
                let vswitches = self.state.lock().await.vswitches();
                to_value(DescribeVSwitchesReply { vswitches })
            }
            other => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::BAD_REQUEST,
                format!("unknown action {other}"),
            )),
        }
    }

    async fn attach(&self, req: AttachEniRequest) -> Result<Value, ApiError> {
        tokio::time::sleep(self.options.attach_latency).await;
        let mut state = self.state.lock().await;
        let eni = state.attach(&req.eni_id, &req.instance_id)?;
        let index = eni.attachment.as_ref().map_or(0, |a| a.device_index);
        let plug = self.plug(&eni, &req.instance_id)?;
        let copy = eni.clone();
        if let Err(e) = blocking(move || dataplane::attach(&plug, &copy, index)).await {
            state.rollback_attach(&req.eni_id);
            return Err(e);
        }
        to_value(eni)
    }

    async fn detach(&self, req: EniIdRequest) -> Result<Value, ApiError> {
        tokio::time::sleep(self.options.attach_latency).await;
        let mut state = self.state.lock().await;
        let before = state.detach(&req.eni_id)?;
        let instance = before.attachment.as_ref().map(|a| a.instance_id.clone());
        let plug = self.plug(&before, instance.as_deref().unwrap_or_default())?;
        let copy = before.clone();
        // The books say detached either way: a leftover veth dies with its namespace.
        if let Err(e) = blocking(move || dataplane::detach(&plug, &copy)).await {
            tracing::warn!(eni = %req.eni_id, error = %e.body.message, "detach dataplane");
        }
        to_value(state.eni(&req.eni_id)?.clone())
    }

    async fn assign(&self, req: AssignIpsRequest) -> Result<Value, ApiError> {
        let mut state = self.state.lock().await;
        let (eni, assigned) = state.assign(&req)?;
        if let Some(a) = &eni.attachment {
            let plug = self.plug(&eni, &a.instance_id)?;
            let (ips, mac) = (assigned.clone(), eni.mac.clone());
            let res = blocking(move || dataplane::neighbours(&plug, "replace", &ips, &mac)).await;
            if let Err(e) = res {
                let undo = UnassignIpsRequest {
                    eni_id: req.eni_id.clone(),
                    ips: assigned,
                };
                let _ = state.unassign(&undo);
                return Err(e);
            }
        }
        to_value(AssignIpsReply { assigned })
    }

    async fn unassign(&self, req: UnassignIpsRequest) -> Result<Value, ApiError> {
        let mut state = self.state.lock().await;
        let eni = state.unassign(&req)?;
        if let Some(a) = &eni.attachment {
            let plug = self.plug(&eni, &a.instance_id)?;
            let (ips, mac) = (req.ips.clone(), eni.mac.clone());
            if let Err(e) = blocking(move || dataplane::neighbours(&plug, "del", &ips, &mac)).await
            {
                tracing::warn!(eni = %req.eni_id, error = %e.body.message, "unassign dataplane");
            }
        }
        Ok(json!({}))
    }
}

async fn blocking<F>(f: F) -> Result<(), ApiError>
where
    F: FnOnce() -> Result<(), crate::lab::netns::NetnsError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(res) => res.map_err(ApiError::internal),
        Err(join) => Err(ApiError::internal(join)),
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::BAD_REQUEST,
            format!("bad request body: {e}"),
        )
    })
}

fn parse_or_default<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse(body)
}

fn to_value<T: serde::Serialize>(v: T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(ApiError::internal)
}

async fn dispatch(
    State(sim): State<Arc<Sim>>,
    UrlPath(action): UrlPath<String>,
    body: Bytes,
) -> Response {
    let res = sim.handle(&action, &body).await;
    match res {
        Ok(v) => {
            tracing::info!(%action, "ok");
            Json(v).into_response()
        }
        Err(e) => {
            tracing::info!(%action, code = %e.body.code, message = %e.body.message, "error");
            e.into_response()
        }
    }
}

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/{action}", post(dispatch))
        .with_state(sim)
}

/// Plug the primary ENIs, then serve on `socket` until SIGINT/SIGTERM.
pub async fn run(
    topology: Topology,
    socket: &Path,
    options: SimOptions,
) -> Result<(), ServerError> {
    let sim = Arc::new(Sim::new(topology, options));
    sim.create_primaries().await?;
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket).map_err(|source| ServerError::Bind {
        path: socket.to_owned(),
        source,
    })?;
    tracing::info!(socket = %socket.display(), "vpcsim listening");
    let res = axum::serve(listener, router(sim))
        .with_graceful_shutdown(shutdown())
        .await;
    let _ = std::fs::remove_file(socket);
    res.map_err(|source| ServerError::Serve {
        path: socket.to_owned(),
        source,
    })
}

async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
