//! The background pool refill: ADD never calls the cloud; this task does, one plane at a time.

use std::collections::BTreeMap;
use std::time::Duration;

use tandem_common::vpcsim::CreateEniRequest;

use super::reconcile::{CREATOR, TAG_CLUSTER, TAG_CREATOR, TAG_NODE, TAG_PLANE};
use super::Agent;
use crate::eni;
use crate::error::AgentResult;
use crate::pool::{self, RefillAction};

const TICK: Duration = Duration::from_secs(1);
const ERROR_BACKOFF: Duration = Duration::from_millis(500);

impl Agent {
    pub(crate) async fn refill_loop(&self) {
        loop {
            let _ = tokio::time::timeout(TICK, self.refill_wanted.notified()).await;
            let planes = self.planes(&*self.state.lock().await);
            let mut failed = false;
            for (plane, vswitch) in planes {
                if let Err(e) = self.refill_plane(&plane, &vswitch).await {
                    tracing::warn!(plane = %plane, error = %e, "pool refill failed; will retry");
                    failed = true;
                }
            }
            self.refilled.notify_waiters();
            if failed {
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }

    /// Bring one plane to its target, one cloud call per step.
    async fn refill_plane(&self, plane: &str, vswitch: &str) -> AgentResult<()> {
        for _ in 0..8 {
            let demand = self
                .waiting
                .lock()
                .expect("waiting lock")
                .get(plane)
                .copied()
                .unwrap_or(0);
            let action = {
                let state = self.state.lock().await;
                pool::plan(
                    &state,
                    plane,
                    vswitch,
                    &self.instance,
                    &self.cfg.pool,
                    demand,
                )
            };
            match action {
                RefillAction::Nothing => return Ok(()),
                RefillAction::AtLimit => {
                    tracing::debug!(plane, "pool at the instance's ENI/IP limit");
                    return Ok(());
                }
                RefillAction::AssignIps { eni_id, count } => {
                    let ips = self.cloud.assign_ips(&eni_id, count).await?;
                    let mut state = self.state.lock().await;
                    if let Some(e) = state.enis.get_mut(&eni_id) {
                        e.ips.extend(ips.iter().copied());
                    }
                    self.commit(&state)?;
                    tracing::info!(plane, eni = %eni_id, added = ips.len(), "pool refilled");
                }
                RefillAction::NewEni { vswitch_id } => self.add_eni(plane, &vswitch_id).await?,
            }
            self.refilled.notify_waiters();
        }
        Ok(())
    }

    async fn add_eni(&self, plane: &str, vswitch_id: &str) -> AgentResult<()> {
        let tags: BTreeMap<String, String> = [
            (TAG_CLUSTER, self.cfg.cluster.as_str()),
            (TAG_NODE, self.cfg.node.as_str()),
            (TAG_CREATOR, CREATOR),
            (TAG_PLANE, plane),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let created = self
            .cloud
            .create_eni(&CreateEniRequest {
                vswitch_id: vswitch_id.to_string(),
                tags,
                client_token: None,
            })
            .await?;
        let attached = match self
            .cloud
            .attach_eni(&created.id, &self.cfg.instance_id)
            .await
        {
            Ok(e) => e,
            Err(err) => {
                if let Err(e) = self.cloud.delete_eni(&created.id).await {
                    tracing::warn!(eni = %created.id, error = %e, "could not delete an ENI that failed to attach; GC will");
                }
                return Err(err.into());
            }
        };
        let mut rec = self.record_for(&attached, plane)?;
        rec.device = eni::configure(&self.host, &rec).await?;
        tracing::info!(plane, eni = %rec.id, device = %rec.device, "ENI attached");
        let mut state = self.state.lock().await;
        state.enis.insert(rec.id.clone(), rec);
        self.commit(&state)?;
        Ok(())
    }
}
