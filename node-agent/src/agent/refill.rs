//! The background pool refill and release: ADD never calls the cloud; this task does. Each
//! round computes every plane's one-step plan and carries it out, new ENIs attached in
//! parallel.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use rand::Rng;
use tandem_common::vpcsim::{CreateEniRequest, DescribeEnisRequest};

use super::reconcile::{CREATOR, TAG_CLUSTER, TAG_CREATOR, TAG_NODE, TAG_PLANE};
use super::{now_ms, Agent, Plane};
use crate::eni;
use crate::error::{AgentError, AgentResult};
use crate::pool::{self, Levels, Limits, Plan};
use crate::state::State;

const TICK: Duration = Duration::from_secs(1);
const ERROR_BACKOFF: Duration = Duration::from_millis(500);

/// Per-plane timing the plan needs but the persisted state does not.
#[derive(Debug, Clone)]
pub(crate) struct Activity {
    pub last_used: Instant,
    /// Since when the plane holds more than its target, and how long it must last (the idle
    /// delay with its jitter) before the excess goes back.
    pub excess_since: Option<(Instant, Duration)>,
    /// Addresses (or exclusive ENIs) asked of the cloud and not arrived yet.
    pub pending: u32,
    /// Room left on this plane's ENIs being attached.
    pub pending_eni_room: u32,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            last_used: Instant::now(),
            excess_since: None,
            pending: 0,
            pending_eni_room: 0,
        }
    }
}

impl Agent {
    pub(crate) async fn refill_loop(self: std::sync::Arc<Self>) {
        loop {
            let failed = self.clone().refill_round().await;
            self.refilled.notify_waiters();
            if failed {
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
            let _ = tokio::time::timeout(TICK, self.refill_wanted.notified()).await;
        }
    }

    /// One round over every plane; true if anything failed.
    pub(crate) async fn refill_round(self: std::sync::Arc<Self>) -> bool {
        let planes = {
            let mut state = self.state.lock().await;
            state.expire_cooling(now_ms().saturating_sub(self.cfg.pool.cooldown_secs * 1000));
            self.planes(&state)
        };
        let mut failed = false;
        for plane in planes {
            if let Err(e) = self.clone().refill_plane(&plane).await {
                tracing::warn!(plane = %plane.name, error = %e, "pool refill failed; will retry");
                failed = true;
            }
        }
        failed
    }

    pub(crate) fn levels(&self, state: &State, plane: &Plane) -> Levels {
        let used_ips = state.used_ips();
        let waiting = self
            .waiting
            .lock()
            .expect("waiting lock")
            .get(&plane.name)
            .copied()
            .unwrap_or(0);
        let mut l = Levels {
            waiting,
            ..Levels::default()
        };
        for e in state.enis_of(&plane.name) {
            if plane.exclusive {
                if used_ips.contains_key(&e.primary_ip) {
                    l.used += 1;
                } else {
                    l.free += 1;
                }
                continue;
            }
            // Addresses already asked for this ENI count as on it: its room is what is left.
            let asked = self
                .pending_on_eni
                .lock()
                .expect("pending lock")
                .get(&e.id)
                .copied()
                .unwrap_or(0);
            l.enis.push((e.id.clone(), e.ips.len() as u32 + asked));
            for ip in &e.ips {
                if used_ips.contains_key(ip) {
                    l.used += 1;
                } else if state.cooling.contains_key(ip) {
                    l.cooling += 1;
                } else {
                    l.free += 1;
                }
            }
        }
        let idle_for = Duration::from_secs(self.cfg.pool.idle_release_secs);
        let mut act = self.activity.lock().expect("activity lock");
        let a = act.entry(plane.name.clone()).or_insert_with(Activity::new);
        if l.used > 0 || l.waiting > 0 {
            a.last_used = Instant::now();
        }
        l.active = a.last_used.elapsed() < idle_for;
        l.pending = a.pending;
        l.pending_eni_room = a.pending_eni_room;
        l
    }

    fn limits(&self, state: &State) -> Limits {
        let pending = self.pending_enis.load(std::sync::atomic::Ordering::SeqCst);
        Limits {
            spare_enis: self
                .instance
                .max_enis
                .saturating_sub(state.enis.len() as u32 + pending),
            ips_per_eni: self.instance.max_ips_per_eni.saturating_sub(1),
        }
    }

    /// Plan one plane and start carrying the plan out; the next round does not wait for it
    /// (an attach takes seconds), but counts what it asked as pending, so a burst arriving
    /// meanwhile is planned at once for just the rest.
    async fn refill_plane(self: std::sync::Arc<Self>, plane: &Plane) -> AgentResult<()> {
        let plan = {
            let state = self.state.lock().await;
            let levels = self.levels(&state, plane);
            pool::plan(
                &levels,
                self.limits(&state),
                &self.cfg.pool,
                plane.exclusive,
            )
        };
        if plan.excess > 0 {
            return self.maybe_release(plane, plan.excess).await;
        }
        self.activity
            .lock()
            .expect("activity lock")
            .entry(plane.name.clone())
            .and_modify(|a| a.excess_since = None);
        if plan.at_limit {
            tracing::debug!(plane = %plane.name, target = plan.target, "pool held back by the instance's limits");
        }
        let asked = if plane.exclusive {
            plan.new_enis.len() as u32
        } else {
            plan.assign.iter().map(|(_, n)| n).sum::<u32>() + plan.new_enis.iter().sum::<u32>()
        };
        if asked == 0 {
            return Ok(());
        }
        let new_enis = plan.new_enis.len() as u32;
        let per_eni = self.instance.max_ips_per_eni.saturating_sub(1);
        let room: u32 = if plane.exclusive {
            0
        } else {
            plan.new_enis
                .iter()
                .map(|n| per_eni.saturating_sub(*n))
                .sum()
        };
        self.track_pending(&plane.name, asked as i64, new_enis as i64, room as i64);
        for (eni, n) in &plan.assign {
            self.pend_on_eni(eni, *n as i64);
        }
        let me = self.clone();
        let plane = plane.clone();
        tokio::spawn(async move {
            if let Err(e) = me.grow(&plane, plan).await {
                tracing::warn!(plane = %plane.name, error = %e, "pool refill failed; will retry");
            }
            me.track_pending(
                &plane.name,
                -(asked as i64),
                -(new_enis as i64),
                -(room as i64),
            );
            me.refilled.notify_waiters();
            me.refill_wanted.notify_one();
        });
        Ok(())
    }

    fn track_pending(&self, plane: &str, ips: i64, enis: i64, room: i64) {
        let mut act = self.activity.lock().expect("activity lock");
        if let Some(a) = act.get_mut(plane) {
            a.pending = (a.pending as i64 + ips).max(0) as u32;
            a.pending_eni_room = (a.pending_eni_room as i64 + room).max(0) as u32;
        }
        let n = &self.pending_enis;
        let cur = n.load(std::sync::atomic::Ordering::SeqCst) as i64;
        n.store(
            (cur + enis).max(0) as u32,
            std::sync::atomic::Ordering::SeqCst,
        );
    }

    /// Carry out a plan's growth, every call in parallel.
    async fn grow(&self, plane: &Plane, plan: Plan) -> AgentResult<()> {
        let assigns = plan.assign.iter().map(|(eni, n)| async move {
            let res = self.assign_ips_now(eni, *n).await;
            self.pend_on_eni(eni, -(*n as i64));
            res
        });
        let news = plan.new_enis.iter().map(|n| self.add_eni(plane, *n));
        let (a, b) = futures::join!(join_all(assigns), join_all(news));
        a.into_iter().chain(b).collect::<AgentResult<Vec<()>>>()?;
        Ok(())
    }

    async fn assign_ips(&self, eni_id: &str, count: u32) -> AgentResult<()> {
        self.pend_on_eni(eni_id, count as i64);
        let res = self.assign_ips_now(eni_id, count).await;
        self.pend_on_eni(eni_id, -(count as i64));
        res
    }

    fn pend_on_eni(&self, eni_id: &str, delta: i64) {
        let mut p = self.pending_on_eni.lock().expect("pending lock");
        let n = p.entry(eni_id.to_string()).or_insert(0);
        *n = (*n as i64 + delta).max(0) as u32;
        if *n == 0 {
            p.remove(eni_id);
        }
    }

    async fn assign_ips_now(&self, eni_id: &str, count: u32) -> AgentResult<()> {
        match self.cloud.assign_ips(eni_id, count).await {
            Ok(ips) => {
                let mut state = self.state.lock().await;
                if let Some(e) = state.enis.get_mut(eni_id) {
                    e.ips.extend(ips.iter().copied());
                }
                self.commit(&mut state)?;
                drop(state);
                self.refilled.notify_waiters();
                tracing::info!(eni = %eni_id, added = ips.len(), "pool refilled");
                Ok(())
            }
            Err(e) => {
                // The call may have assigned anyway: take the cloud's word for it.
                self.resync_eni(eni_id).await;
                Err(e.into())
            }
        }
    }

    /// Replace an ENI's addresses with what the cloud says it holds.
    pub(crate) async fn resync_eni(&self, eni_id: &str) {
        let filter = DescribeEnisRequest {
            eni_ids: vec![eni_id.to_string()],
            ..Default::default()
        };
        match self.cloud.describe_enis(&filter).await {
            Ok(enis) => {
                let mut state = self.state.lock().await;
                if let (Some(e), Some(cloud)) = (state.enis.get_mut(eni_id), enis.first()) {
                    e.ips = cloud.secondary_ips.iter().copied().collect();
                }
                if let Err(e) = self.commit(&mut state) {
                    tracing::warn!(error = %e, "cannot commit a resync");
                }
            }
            Err(e) => tracing::warn!(eni = %eni_id, error = %e, "cannot resync ENI"),
        }
    }

    fn tags(&self, plane: &str) -> BTreeMap<String, String> {
        [
            (TAG_CLUSTER, self.cfg.cluster.as_str()),
            (TAG_NODE, self.cfg.node.as_str()),
            (TAG_CREATOR, CREATOR),
            (TAG_PLANE, plane),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Create, attach and configure one ENI for `plane`, then give it `ips` addresses.
    async fn add_eni(&self, plane: &Plane, ips: u32) -> AgentResult<()> {
        let started = Instant::now();
        let token: u64 = rand::rng().random();
        let created = self
            .cloud
            .create_eni(&CreateEniRequest {
                vswitch_id: plane.vswitch.clone(),
                tags: self.tags(&plane.name),
                client_token: Some(format!("{}-{}-{token:016x}", self.cfg.node, plane.name)),
            })
            .await?;
        let attached = match self
            .cloud
            .attach_eni(&created.id, &self.cfg.instance_id)
            .await
        {
            Ok(e) => e,
            Err(err) => match self.attached_anyway(&created.id).await {
                Some(e) => e,
                None => {
                    // Left unattached, it is found by the leaked-ENI sweep if this fails too.
                    if let Err(e) = self.cloud.delete_eni(&created.id).await {
                        tracing::warn!(eni = %created.id, error = %e, "cannot delete an ENI that failed to attach");
                    }
                    return Err(err.into());
                }
            },
        };
        let mut rec = self.record_for(&attached, &plane.name)?;
        rec.exclusive = plane.exclusive;
        rec.device = match eni::configure(&self.host, &rec).await {
            Ok(d) => d,
            Err(e) => {
                // Attached but unusable: give it back rather than leak a slot of the instance.
                if let Err(d) = self.cloud.detach_eni(&rec.id).await {
                    tracing::warn!(eni = %rec.id, error = %d, "cannot detach an ENI that failed to configure");
                } else if let Err(d) = self.cloud.delete_eni(&rec.id).await {
                    tracing::warn!(eni = %rec.id, error = %d, "cannot delete an ENI that failed to configure");
                }
                return Err(e);
            }
        };
        self.metrics
            .eni_attach_seconds
            .observe(started.elapsed().as_secs_f64());
        tracing::info!(plane = %plane.name, eni = %rec.id, device = %rec.device, secs = started.elapsed().as_secs_f64(), "ENI attached");
        let id = rec.id.clone();
        {
            let mut state = self.state.lock().await;
            state.enis.insert(rec.id.clone(), rec);
            self.commit(&mut state)?;
        }
        self.refilled.notify_waiters();
        if ips > 0 {
            self.assign_ips(&id, ips).await?;
        }
        Ok(())
    }

    /// An attach that reported failure may have happened ("failed but done").
    async fn attached_anyway(&self, eni_id: &str) -> Option<tandem_common::vpcsim::Eni> {
        let filter = DescribeEnisRequest {
            eni_ids: vec![eni_id.to_string()],
            ..Default::default()
        };
        let enis = self.cloud.describe_enis(&filter).await.ok()?;
        enis.into_iter().find(|e| {
            e.attachment
                .as_ref()
                .is_some_and(|a| a.instance_id == self.cfg.instance_id)
        })
    }

    /// Give back `excess` once it has lasted the idle delay (with jitter).
    async fn maybe_release(&self, plane: &Plane, excess: u32) -> AgentResult<()> {
        let due = {
            let mut act = self.activity.lock().expect("activity lock");
            let a = act.entry(plane.name.clone()).or_insert_with(Activity::new);
            let base = Duration::from_secs(self.cfg.pool.idle_release_secs);
            let (since, wait) = *a.excess_since.get_or_insert_with(|| {
                let jitter = rand::rng().random_range(0.0..=self.cfg.pool.idle_release_jitter);
                (Instant::now(), base.mul_f64(1.0 + jitter))
            });
            let due = since.elapsed() >= wait;
            if due {
                a.excess_since = None;
            }
            due
        };
        if due {
            self.release(plane, excess).await?;
        }
        Ok(())
    }

    /// Return `excess` free addresses (or ENIs) to the cloud: whole idle ENIs first, so they can
    /// be detached, then single addresses. State changes before the cloud call, so a released
    /// address can never be handed out meanwhile.
    pub(crate) async fn release(&self, plane: &Plane, mut excess: u32) -> AgentResult<()> {
        let (whole, single) = {
            let mut state = self.state.lock().await;
            let used = state.used_ips();
            let mut whole = Vec::new();
            let mut candidates: Vec<_> = state.enis_of(&plane.name).cloned().collect();
            candidates.sort_by_key(|e| e.ips.len());
            for e in &candidates {
                let idle = if plane.exclusive {
                    !used.contains_key(&e.primary_ip)
                } else {
                    e.ips
                        .iter()
                        .all(|ip| !used.contains_key(ip) && !state.cooling.contains_key(ip))
                };
                let size = if plane.exclusive {
                    1
                } else {
                    e.ips.len() as u32
                };
                if e.device_index != 0 && idle && size <= excess && excess > 0 {
                    whole.push(e.id.clone());
                    excess -= size;
                }
            }
            for id in &whole {
                state.enis.remove(id);
            }
            let mut single: BTreeMap<String, Vec<std::net::Ipv4Addr>> = BTreeMap::new();
            if !plane.exclusive {
                for (ip, eni) in state.free_ips(&plane.name).into_iter().rev() {
                    if excess == 0 {
                        break;
                    }
                    single.entry(eni).or_default().push(ip);
                    excess -= 1;
                }
                for (eni, ips) in &single {
                    if let Some(e) = state.enis.get_mut(eni) {
                        for ip in ips {
                            e.ips.remove(ip);
                        }
                    }
                }
            }
            self.commit(&mut state)?;
            (whole, single)
        };
        for id in whole {
            tracing::info!(plane = %plane.name, eni = %id, "releasing an idle ENI");
            if let Err(e) = self.cloud.detach_eni(&id).await {
                tracing::warn!(eni = %id, error = %e, "detach failed; the leaked-ENI sweep retries");
                continue;
            }
            if let Err(e) = self.cloud.delete_eni(&id).await {
                tracing::warn!(eni = %id, error = %e, "delete failed; the leaked-ENI sweep retries");
            }
        }
        for (eni, ips) in single {
            tracing::info!(plane = %plane.name, eni = %eni, released = ips.len(), "releasing idle addresses");
            if let Err(e) = self.cloud.unassign_ips(&eni, &ips).await {
                self.resync_eni(&eni).await;
                return Err(AgentError::from(e));
            }
        }
        Ok(())
    }
}
