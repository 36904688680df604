//! The HTTP face of vpcsim: `POST /<Action>` with a JSON body, on a unix socket (axum 0.8).
//!
//! Every call first passes admission ([`Sim::admit`]: per-action token buckets, injected
//! failures; see [`super::faults`]). Calls on one ENI (`ops.rs`) hold that ENI's lock, change
//! the books under the global state lock only briefly, apply the dataplane effect outside it and
//! roll the books back if that fails, so the books and the namespaces never disagree for long
//! and calls on different ENIs run concurrently. Slow cloud operations (attach, detach) sleep
//! before taking any lock.
//!
//! Besides the cloud API, `POST /_admin/SetFaults` changes the fault knobs at run time and
//! `GET /_admin/Stats` reports per-action counts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tandem_common::vpcsim::{
    codes, CloudError, CreateEniRequest, DescribeEnisReply, DescribeEnisRequest,
    DescribeInstanceRequest, DescribeVSwitchesReply, Eni, EniIdRequest, Faults, SetFaultsRequest,
};
use tokio::net::UnixListener;
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::dataplane::{self, Plug};
use super::faults::{Chaos, FaultsError, Verdict};
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
    #[error("fault knobs: {0}")]
    Faults(#[from] FaultsError),
}

/// Knobs of the emulation.
#[derive(Debug, Clone, Default)]
pub struct SimOptions {
    /// Latency, throttling and failures from the start (all off by default).
    pub faults: Faults,
    /// Seeds ENI ids and MACs and the fault decisions; `None`: from the OS.
    pub seed: Option<u64>,
}

/// Every action of the cloud API.
pub const ACTIONS: [&str; 9] = [
    "CreateNetworkInterface",
    "AttachNetworkInterface",
    "DetachNetworkInterface",
    "DeleteNetworkInterface",
    "AssignPrivateIpAddresses",
    "UnassignPrivateIpAddresses",
    "DescribeNetworkInterfaces",
    "DescribeInstance",
    "DescribeVSwitches",
];

/// A cloud error on its way to the wire.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: CloudError,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        let body = CloudError {
            code: code.to_owned(),
            message: message.into(),
        };
        Self { status, body }
    }
    /// The error as the wire carries it.
    pub fn body(&self) -> &CloudError {
        &self.body
    }
    pub(super) fn internal(message: impl std::fmt::Display) -> Self {
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
    pub(super) state: Mutex<CloudState>,
    chaos: std::sync::Mutex<Chaos>,
    /// One lock per ENI id, held by every call on that ENI for its whole length.
    eni_locks: std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl Sim {
    pub fn new(topology: Topology, options: SimOptions) -> Result<Self, ServerError> {
        let state = match options.seed {
            Some(seed) => CloudState::with_seed(&topology, seed),
            None => CloudState::new(&topology),
        };
        // A different stream than the ids', so turning faults on does not change the ids.
        let chaos = Chaos::new(options.faults, options.seed.map(|s| s ^ 0xfa17))?;
        Ok(Self {
            topology,
            state: Mutex::new(state),
            chaos: std::sync::Mutex::new(chaos),
            eni_locks: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// How long attach and detach take right now.
    pub(super) fn latency(&self) -> Duration {
        Duration::from_millis(lock(&self.chaos).faults().attach_latency_ms)
    }

    /// Wait for exclusive use of one ENI.
    pub(super) async fn eni_guard(&self, eni_id: &str) -> OwnedMutexGuard<()> {
        let m = lock(&self.eni_locks)
            .entry(eni_id.to_owned())
            .or_default()
            .clone();
        m.lock_owned().await
    }

    /// Forget the lock of a deleted ENI.
    pub(super) fn forget_eni(&self, eni_id: &str) {
        lock(&self.eni_locks).remove(eni_id);
    }

    /// Where an ENI attached to `instance` plugs in.
    pub(super) fn plug(&self, eni: &Eni, instance: &str) -> Result<Plug, ApiError> {
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

    /// Admission control: the action's token bucket, then an injected failure. `Ok(true)`:
    /// do the work, then answer `InternalError` (a partial failure).
    fn admit(&self, action: &str) -> Result<bool, ApiError> {
        match lock(&self.chaos).admit(action, Instant::now()) {
            Verdict::Go { partial } => Ok(partial),
            Verdict::Throttled => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                codes::THROTTLED,
                format!("request limit exceeded for {action}"),
            )),
            Verdict::Failed => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                codes::INTERNAL,
                format!("{action}: an internal error occurred (injected)"),
            )),
        }
    }

    async fn handle(&self, action: &str, body: &[u8]) -> Result<Value, ApiError> {
        if !ACTIONS.contains(&action) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::BAD_REQUEST,
                format!("unknown action {action}"),
            ));
        }
        let partial = self.admit(action)?;
        let reply = self.perform(action, body).await?;
        if partial {
            lock(&self.chaos).count_partial(action);
            tracing::info!(%action, "partial failure injected after the work was done");
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                codes::INTERNAL,
                format!("{action}: an internal error occurred (injected)"),
            ));
        }
        Ok(reply)
    }

    async fn perform(&self, action: &str, body: &[u8]) -> Result<Value, ApiError> {
        match action {
            "CreateNetworkInterface" => {
                let req: CreateEniRequest = parse(body)?;
                to_value(self.state.lock().await.create_eni(&req)?)
            }
            "AttachNetworkInterface" => self.attach(parse(body)?).await,
            "DetachNetworkInterface" => self.detach(parse(body)?).await,
            "DeleteNetworkInterface" => {
                let req: EniIdRequest = parse(body)?;
                self.delete(&req.eni_id).await
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
}

pub(super) async fn blocking<F>(f: F) -> Result<(), ApiError>
where
    F: FnOnce() -> Result<(), crate::lab::netns::NetnsError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(res) => res.map_err(ApiError::internal),
        Err(join) => Err(ApiError::internal(join)),
    }
}

pub(super) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
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

pub(super) fn to_value<T: serde::Serialize>(v: T) -> Result<Value, ApiError> {
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

async fn set_faults(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let res = parse::<SetFaultsRequest>(&body).and_then(|req| {
        lock(&sim.chaos)
            .set(&req)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, e.to_string()))
    });
    match res {
        Ok(faults) => {
            tracing::info!(?faults, "faults set");
            Json(faults).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn stats(State(sim): State<Arc<Sim>>) -> Response {
    Json(lock(&sim.chaos).stats()).into_response()
}

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/_admin/SetFaults", post(set_faults))
        .route("/_admin/Stats", get(stats))
        .route("/{action}", post(dispatch))
        .with_state(sim)
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Plug the primary ENIs, then serve on `socket` until SIGINT/SIGTERM.
pub async fn run(
    topology: Topology,
    socket: &Path,
    options: SimOptions,
) -> Result<(), ServerError> {
    let sim = Arc::new(Sim::new(topology, options)?);
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
