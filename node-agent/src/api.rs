//! The agent's HTTP/1.1 + JSON API on a unix socket (paths in `tandem_common::api`).

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use tandem_common::api::*;

use crate::agent::Agent;
use crate::error::AgentResult;

pub fn router(agent: Arc<Agent>) -> Router {
    Router::new()
        .route(PATH_ADD, post(add))
        .route(PATH_DEL, post(del))
        .route(PATH_CHECK, post(check))
        .route(PATH_GC, post(gc))
        .route(PATH_STATUS, get(status))
        .route(PATH_PODS, get(pods))
        .route(PATH_ENIS, get(enis))
        .route(PATH_POOL, get(pool))
        .route(PATH_MAPPING, get(mapping))
        .route(PATH_METRICS, get(metrics))
        .route(PATH_TRACE, post(trace))
        .route(PATH_SG, get(sg))
        .route(PATH_CONNTRACK, get(conntrack))
        .route(PATH_MONITOR, get(monitor))
        .route(PATH_DATAPATH_STATS, get(datapath_stats))
        .with_state(agent)
}

async fn add(
    State(a): State<Arc<Agent>>,
    Json(req): Json<AddRequest>,
) -> AgentResult<Json<AddReply>> {
    let started = std::time::Instant::now();
    let res = a.add(req).await.map(Json);
    a.metrics
        .add_seconds
        .observe(started.elapsed().as_secs_f64());
    res
}

async fn del(
    State(a): State<Arc<Agent>>,
    Json(req): Json<DelRequest>,
) -> AgentResult<Json<DelReply>> {
    let started = std::time::Instant::now();
    let res = a.del(req).await.map(Json);
    a.metrics
        .del_seconds
        .observe(started.elapsed().as_secs_f64());
    res
}

async fn check(
    State(a): State<Arc<Agent>>,
    Json(req): Json<CheckRequest>,
) -> AgentResult<Json<serde_json::Value>> {
    a.check(req).await.map(|()| Json(serde_json::json!({})))
}

async fn gc(State(a): State<Arc<Agent>>, Json(req): Json<GcRequest>) -> AgentResult<Json<GcReply>> {
    a.gc(req).await.map(Json)
}

async fn pool(State(a): State<Arc<Agent>>) -> Json<PoolReply> {
    Json(a.pool().await)
}

async fn mapping(State(a): State<Arc<Agent>>) -> AgentResult<Json<MappingReply>> {
    a.mapping().await.map(Json)
}

async fn metrics(State(a): State<Arc<Agent>>) -> String {
    a.refresh_datapath_metrics().await;
    a.metrics_text().await
}

async fn trace(
    State(a): State<Arc<Agent>>,
    Json(req): Json<TraceRequest>,
) -> AgentResult<Json<TraceReply>> {
    a.trace(req).await.map(Json)
}

async fn sg(State(a): State<Arc<Agent>>) -> Json<SgReply> {
    Json(a.security_groups().await)
}

/// `?pod=NAME` (`name` or `namespace/name`) narrows conntrack and monitor to one pod.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodFilter {
    pod: Option<String>,
    #[serde(default)]
    drops_only: bool,
}

async fn conntrack(
    State(a): State<Arc<Agent>>,
    Query(f): Query<PodFilter>,
) -> Json<ConntrackReply> {
    Json(a.conntrack(f.pod.as_deref()).await)
}

async fn datapath_stats(State(a): State<Arc<Agent>>) -> Json<DatapathStats> {
    Json(a.datapath_stats().await)
}

/// JSON lines until the client goes away: a `start` line with the lost-event count, then
/// every (matching) event as the ring-buffer reader resolves it.
async fn monitor(State(a): State<Arc<Agent>>, Query(f): Query<PodFilter>) -> Response {
    let rx = a.observer.subscribe();
    let start = MonitorLine::Start {
        events_lost: a.datapath_stats().await.events_lost,
    };
    let first =
        futures::stream::once(async move { Ok::<_, std::convert::Infallible>(line(&start)) });
    let events = futures::stream::unfold((rx, f), |(mut rx, f)| async move {
        loop {
            let l = match rx.recv().await {
                Ok(e) if monitor_wants(&f, &e) => MonitorLine::Event(e),
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    MonitorLine::Lagged { missed }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            };
            return Some((Ok(line(&l)), (rx, f)));
        }
    });
    let body = Body::from_stream(futures::StreamExt::chain(first, events));
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(body)
        .expect("a response with a valid header")
}

fn monitor_wants(f: &PodFilter, e: &MonitorEvent) -> bool {
    let pod_ok = f
        .pod
        .as_deref()
        .is_none_or(|p| e.pod == p || e.pod.split_once('/').is_some_and(|(_, n)| n == p));
    pod_ok && (!f.drops_only || e.verdict != "new-flow")
}

fn line(l: &MonitorLine) -> String {
    serde_json::to_string(l).expect("monitor lines serialise") + "\n"
}

/// `GET /metrics` over TCP, for Prometheus.
pub async fn serve_metrics(agent: Arc<Agent>, addr: std::net::SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving metrics");
    let app = Router::new()
        .route(PATH_METRICS, get(metrics))
        .with_state(agent);
    axum::serve(listener, app).await
}

async fn status(State(a): State<Arc<Agent>>) -> Json<StatusReply> {
    Json(a.status().await)
}

async fn pods(State(a): State<Arc<Agent>>) -> Json<PodsReply> {
    Json(a.pods().await)
}

async fn enis(State(a): State<Arc<Agent>>) -> Json<EnisReply> {
    Json(a.enis().await)
}

/// Serve until SIGTERM or SIGINT. A stale socket file from a previous run is replaced.
pub async fn serve(agent: Arc<Agent>, socket: &Path) -> std::io::Result<()> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(socket) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = tokio::net::UnixListener::bind(socket)?;
    tracing::info!(socket = %socket.display(), "serving");
    axum::serve(listener, router(agent))
        .with_graceful_shutdown(shutdown())
        .await
}

async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::info!("shutting down");
}
