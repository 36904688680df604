//! The agent: one lock over the state, the store that makes it durable, the cloud, and the
//! node's netlink socket. One file per verb.

mod add;
mod check;
mod del;
mod gc;
mod mapping;
mod observe;
mod policy;
mod pool_view;
mod queue;
mod reconcile;
mod refill;
mod sweep;
mod watch;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use tandem_common::api::{EniInfo, EnisReply, IpUse, PlaneLevels, PodInfo, PodsReply, StatusReply};
use tandem_common::vpcsim::{Instance, VSwitch};
use tandem_hostnet::{NetNs, Netlink};
use tokio::sync::{Mutex, Notify};

use crate::metrics::Metrics;
use crate::model::InterfaceMode;
use crate::provider::guard::{GuardConfig, Guarded};

use crate::config::AgentConfig;
use crate::error::{AgentError, AgentResult};
use crate::model::Model;
use crate::provider::CloudProvider;
use crate::state::{State, CONTROL_PLANE};
use crate::store::StateStore;

pub struct Agent {
    pub(crate) cfg: AgentConfig,
    pub(crate) model: RwLock<Model>,
    pub(crate) state: Mutex<State>,
    pub(crate) store: Arc<dyn StateStore>,
    /// Generation of the state last made durable; a snapshot no newer is not written again.
    pub(crate) committed: Arc<std::sync::Mutex<u64>>,
    pub(crate) cloud: Arc<dyn CloudProvider>,
    pub(crate) host: Netlink,
    pub(crate) instance: Instance,
    pub(crate) vswitches: BTreeMap<String, VSwitch>,
    /// Wakes the refill task.
    pub(crate) refill_wanted: Notify,
    /// Signalled after every refill round, for ADDs waiting on an empty pool.
    pub(crate) refilled: Notify,
    /// ADDs waiting on an empty pool, per plane; the refill sizes its request by them.
    pub(crate) waiting: std::sync::Mutex<BTreeMap<String, u32>>,
    pub(crate) ready: AtomicBool,
    pub metrics: Arc<Metrics>,
    /// The node's own namespace, where exclusive ENIs come back to.
    pub(crate) node_ns: NetNs,
    /// When each plane was last used, and since when it holds more than its target.
    pub(crate) activity: std::sync::Mutex<BTreeMap<String, refill::Activity>>,
    /// ENIs being created and attached right now (they count against the instance limit).
    pub(crate) pending_enis: std::sync::atomic::AtomicU32,
    /// Addresses asked of the cloud per ENI and not arrived yet.
    pub(crate) pending_on_eni: std::sync::Mutex<BTreeMap<String, u32>>,
    /// The security-group datapath; `None` when `bpfRoot` is not configured.
    pub(crate) enforcement: Option<Arc<policy::Enforcement>>,
    /// Datapath events for `tandemctl monitor`.
    pub(crate) observer: observe::Observer,
}

/// A network plane on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plane {
    pub name: String,
    pub vswitch: String,
    pub exclusive: bool,
}

impl Agent {
    /// Connect to the cloud, load the state and reconcile it with the cloud and the kernel.
    pub async fn start(
        cfg: AgentConfig,
        store: Box<dyn StateStore>,
        cloud: Arc<dyn CloudProvider>,
    ) -> AgentResult<Arc<Agent>> {
        let model = Model::load(&cfg.config_dir)
            .map_err(|e| AgentError::Internal(format!("tenant config: {e}")))?;
        let metrics = Arc::new(Metrics::default());
        let guard = GuardConfig {
            rate_per_sec: cfg.cloud.rate_per_sec,
            burst: cfg.cloud.burst,
            max_attempts: cfg.cloud.max_attempts.max(1),
            backoff_base: std::time::Duration::from_millis(100),
            backoff_max: std::time::Duration::from_secs(5),
        };
        let cloud: Arc<dyn CloudProvider> = Arc::new(Guarded::new(cloud, guard, metrics.clone()));
        let instance = cloud.describe_instance(&cfg.instance_id).await?;
        let vswitches = cloud
            .describe_vswitches()
            .await?
            .into_iter()
            .map(|v| (v.id.clone(), v))
            .collect();
        let host = Netlink::connect().map_err(AgentError::wiring("open node netlink"))?;
        let node_ns = NetNs::current().map_err(AgentError::wiring("open the node netns"))?;
        let state = store.load()?;
        let enforcement = match &cfg.bpf_root {
            Some(root) => Some(Arc::new(policy::Enforcement::open(root.clone())?)),
            None => {
                tracing::warn!("bpfRoot is not set: security groups are NOT enforced");
                None
            }
        };
        let agent = Arc::new(Agent {
            cfg,
            model: RwLock::new(model),
            state: Mutex::new(state),
            store: Arc::from(store),
            committed: Arc::new(std::sync::Mutex::new(0)),
            cloud,
            host,
            instance,
            vswitches,
            refill_wanted: Notify::new(),
            refilled: Notify::new(),
            waiting: std::sync::Mutex::new(BTreeMap::new()),
            ready: AtomicBool::new(false),
            metrics,
            node_ns,
            activity: std::sync::Mutex::new(BTreeMap::new()),
            pending_enis: std::sync::atomic::AtomicU32::new(0),
            pending_on_eni: std::sync::Mutex::new(BTreeMap::new()),
            enforcement,
            observer: observe::Observer::default(),
        });
        agent.reconcile().await?;
        agent.repair_kernel().await?;
        agent.adopt_enforcement().await?;
        agent.drain_release_queue().await;
        agent.ready.store(true, Ordering::SeqCst);
        Ok(agent)
    }

    /// Background work: pool refill and the release-queue drain.
    pub fn spawn_background(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move { me.refill_loop().await });
        let me = self.clone();
        tokio::spawn(async move { me.queue_loop().await });
        let me = self.clone();
        tokio::spawn(async move { me.sweep_loop().await });
        let me = self.clone();
        tokio::spawn(async move { me.watch_loop().await });
        let me = self.clone();
        tokio::spawn(async move { me.policy_loop().await });
        observe::spawn(self);
    }

    /// Make the state durable now (the caller holds the state lock).
    pub(crate) fn commit(&self, state: &mut State) -> AgentResult<()> {
        state.generation += 1;
        write_if_newer(&*self.store, &self.committed, state)
    }

    /// Make a snapshot durable on a blocking thread, so the caller can do other work (wiring)
    /// meanwhile. Snapshots are cumulative: one already overtaken by a newer write is skipped,
    /// which also makes concurrent ADDs share one fsync (group commit).
    pub(crate) async fn commit_snapshot(&self, snapshot: State) -> AgentResult<()> {
        let store = self.store.clone();
        let committed = self.committed.clone();
        tokio::task::spawn_blocking(move || write_if_newer(&*store, &committed, &snapshot))
            .await
            .map_err(|e| AgentError::Internal(format!("commit thread: {e}")))?
    }

    pub(crate) fn vswitch(&self, id: &str) -> AgentResult<&VSwitch> {
        self.vswitches
            .get(id)
            .ok_or_else(|| AgentError::Internal(format!("vSwitch {id} is unknown to the cloud")))
    }

    /// The planes to keep: control, and every tenant plane that has an ENI here or an ADD
    /// waiting for one.
    pub(crate) fn planes(&self, state: &State) -> Vec<Plane> {
        let mut planes = vec![Plane {
            name: CONTROL_PLANE.to_string(),
            vswitch: self.cfg.control.v_switch.clone(),
            exclusive: false,
        }];
        let model = self.model.read().expect("model lock");
        let waiting = self.waiting.lock().expect("waiting lock");
        for t in model.tenants.values() {
            if state.enis_of(&t.name).next().is_some() || waiting.contains_key(&t.name) {
                planes.push(Plane {
                    name: t.name.clone(),
                    vswitch: t.spec.v_switches[0].clone(),
                    exclusive: t.spec.interface_mode == InterfaceMode::Exclusive,
                });
            }
        }
        planes
    }

    pub async fn status(&self) -> StatusReply {
        let state = self.state.lock().await;
        let used = state.used_ips();
        let mut planes: BTreeMap<String, PlaneLevels> = BTreeMap::new();
        for e in state.enis.values() {
            let p = planes
                .entry(e.plane.clone())
                .or_insert_with(|| PlaneLevels {
                    plane: e.plane.clone(),
                    ..Default::default()
                });
            p.enis += 1;
            for ip in &e.ips {
                if used.contains_key(ip) {
                    p.used_ips += 1;
                } else {
                    p.free_ips += 1;
                }
            }
        }
        let pending = tandem_common::release_queue::pending(&self.cfg.release_queue_dir)
            .map(|p| p.len() as u32)
            .unwrap_or(0);
        StatusReply {
            node: self.cfg.node.clone(),
            instance_id: self.cfg.instance_id.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            ready: self.ready.load(Ordering::SeqCst),
            allocations: state.allocations.len() as u32,
            pending_releases: pending,
            planes: planes.into_values().collect(),
        }
    }

    pub async fn pods(&self) -> PodsReply {
        let state = self.state.lock().await;
        PodsReply {
            pods: state
                .allocations
                .values()
                .map(|a| PodInfo {
                    key: a.key.clone(),
                    pod: a.pod.clone(),
                    netns: a.netns.clone(),
                    tenant: a.tenant.clone(),
                    interfaces: a.interfaces.clone(),
                    created_at: a.created_at,
                })
                .collect(),
        }
    }

    pub async fn enis(&self) -> EnisReply {
        let state = self.state.lock().await;
        let used = state.used_ips();
        EnisReply {
            enis: state
                .enis
                .values()
                .map(|e| EniInfo {
                    id: e.id.clone(),
                    plane: e.plane.clone(),
                    vswitch_id: e.vswitch_id.clone(),
                    device: e.device.clone(),
                    mac: e.mac.clone(),
                    primary_ip: e.primary_ip,
                    table: e.table,
                    ips: e
                        .ips
                        .iter()
                        .map(|ip| IpUse {
                            ip: *ip,
                            owner: used.get(ip).cloned(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

fn write_if_newer(
    store: &dyn StateStore,
    committed: &std::sync::Mutex<u64>,
    state: &State,
) -> AgentResult<()> {
    let mut last = committed.lock().expect("commit lock");
    if state.generation > *last {
        store.commit(state)?;
        *last = state.generation;
    }
    Ok(())
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
