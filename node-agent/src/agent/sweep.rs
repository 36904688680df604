//! Periodic sweeps: pods whose netns is gone (the runtime lost a DEL), exclusive ENIs whose
//! device vanished with a pod's netns, and ENIs this node created but never attached (a crash
//! between create and attach).

use std::time::Duration;

use tandem_common::api::DelRequest;
use tandem_common::vpcsim::DescribeEnisRequest;

use super::reconcile::{TAG_CLUSTER, TAG_NODE};
use super::{now_ms, Agent};

impl Agent {
    pub(crate) async fn sweep_loop(&self) {
        loop {
            tokio::time::sleep(Duration::from_secs(self.cfg.sweep_secs.max(1))).await;
            self.sweep_gone_pods().await;
            self.sweep_vanished_enis().await;
            self.sweep_leaked_enis().await;
        }
    }

    /// Release allocations whose pod netns no longer exists.
    pub(crate) async fn sweep_gone_pods(&self) {
        let gone: Vec<_> = {
            let state = self.state.lock().await;
            state
                .allocations
                .values()
                .filter(|a| !a.netns.exists())
                .map(|a| a.key.clone())
                .collect()
        };
        for key in gone {
            tracing::info!(container = %key.container_id, "repair: the pod's netns is gone; releasing");
            if let Err(e) = self.del(DelRequest { key, netns: None }).await {
                tracing::warn!(error = %e, "sweep could not release");
            }
        }
    }

    /// Free exclusive ENIs must be on the node; one that is not (it vanished with a pod's
    /// netns) is given back to the cloud and never handed out.
    pub(crate) async fn sweep_vanished_enis(&self) {
        let free: Vec<_> = {
            let state = self.state.lock().await;
            let planes: Vec<String> = state
                .enis
                .values()
                .filter(|e| e.exclusive)
                .map(|e| e.plane.clone())
                .collect();
            planes
                .iter()
                .flat_map(|p| state.free_enis(p))
                .filter_map(|id| state.enis.get(&id).cloned())
                .collect()
        };
        for e in free {
            let Ok(mac) = e.mac.parse() else { continue };
            if let Ok(None) = self.host.link_by_mac(mac).await {
                self.forget_eni(&e.id, "its device is gone from the node", true)
                    .await;
            }
        }
    }

    /// Drop an ENI from the state at once (it is never handed out again), then detach and
    /// delete it in the cloud in the background.
    pub(crate) async fn forget_eni(&self, eni_id: &str, why: &str, only_if_free: bool) {
        {
            let mut state = self.state.lock().await;
            // The sweep saw the ENI free and its device gone; an ADD may have taken it (and
            // moved its device into the pod) since: then it is not vanished but in use.
            let in_use = state
                .allocations
                .values()
                .any(|a| a.interfaces.iter().any(|i| i.eni_id == eni_id));
            if only_if_free && in_use {
                return;
            }
            if state.enis.remove(eni_id).is_none() {
                return;
            }
            tracing::warn!(eni = %eni_id, why, "repair: giving the ENI back to the cloud");
            if let Err(e) = self.commit(&mut state) {
                tracing::warn!(error = %e, "cannot commit");
            }
        }
        let cloud = self.cloud.clone();
        let id = eni_id.to_string();
        tokio::spawn(async move {
            if let Err(e) = cloud.detach_eni(&id).await {
                tracing::warn!(eni = %id, error = %e, "detach failed; the leaked-ENI sweep retries");
            }
            if let Err(e) = cloud.delete_eni(&id).await {
                tracing::warn!(eni = %id, error = %e, "delete failed; the leaked-ENI sweep retries");
            }
        });
    }

    /// Detach ENIs tagged for this node that are attached but no longer held (a release whose
    /// detach failed), and delete those that stayed unattached past the grace period.
    pub(crate) async fn sweep_leaked_enis(&self) {
        let filter = DescribeEnisRequest {
            tags: [
                (TAG_CLUSTER.to_string(), self.cfg.cluster.clone()),
                (TAG_NODE.to_string(), self.cfg.node.clone()),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        let Ok(enis) = self.cloud.describe_enis(&filter).await else {
            return;
        };
        let cutoff = now_ms().saturating_sub(self.cfg.leaked_eni_grace_secs * 1000);
        // While an ENI is being created and attached it is attached but not yet in the state.
        let creating = self.pending_enis.load(std::sync::atomic::Ordering::SeqCst) > 0;
        let known: std::collections::BTreeSet<String> =
            self.state.lock().await.enis.keys().cloned().collect();
        for e in enis {
            let ours = e
                .attachment
                .as_ref()
                .is_some_and(|a| a.instance_id == self.cfg.instance_id);
            if ours && !creating && !known.contains(&e.id) {
                // Released (or forgotten) but its detach failed: finish the release; the next
                // sweep deletes it once it is unattached.
                tracing::warn!(eni = %e.id, "detaching an ENI the agent no longer holds");
                if let Err(err) = self.cloud.detach_eni(&e.id).await {
                    tracing::warn!(eni = %e.id, error = %err, "cannot detach a released ENI");
                }
                continue;
            }
            if e.attachment.is_none() && e.created_at_ms <= cutoff {
                tracing::warn!(eni = %e.id, "deleting a leaked ENI (created, never attached)");
                if let Err(err) = self.cloud.delete_eni(&e.id).await {
                    tracing::warn!(eni = %e.id, error = %err, "cannot delete a leaked ENI");
                }
            }
        }
    }
}
