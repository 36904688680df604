//! Drain the release queue the plugin writes when DEL cannot reach the agent.

use std::time::Duration;

use tandem_common::api::DelRequest;
use tandem_common::release_queue;

use super::Agent;

const DRAIN_EVERY: Duration = Duration::from_secs(2);

impl Agent {
    pub(crate) async fn drain_release_queue(&self) {
        let dir = &self.cfg.release_queue_dir;
        let pending = match release_queue::pending(dir) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the release queue");
                return;
            }
        };
        for (path, entry) in pending {
            let req = DelRequest {
                key: entry.key.clone(),
                netns: None,
            };
            match self.del(req).await {
                Ok(r) => {
                    tracing::info!(container = %entry.key.container_id, released = r.released, "queued release applied");
                    if let Err(e) = release_queue::remove(&path) {
                        tracing::warn!(error = %e, "cannot remove a drained release");
                    }
                }
                Err(e) => {
                    tracing::warn!(container = %entry.key.container_id, error = %e, "queued release failed; will retry")
                }
            }
        }
    }

    pub(crate) async fn queue_loop(&self) {
        loop {
            tokio::time::sleep(DRAIN_EVERY).await;
            self.drain_release_queue().await;
        }
    }
}
