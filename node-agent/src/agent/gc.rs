//! GC (CNI 1.1.0): release every attachment the runtime no longer lists as valid.

use std::collections::BTreeSet;

use tandem_common::api::{DelRequest, GcReply, GcRequest};

use super::Agent;
use crate::error::AgentResult;

impl Agent {
    pub async fn gc(&self, req: GcRequest) -> AgentResult<GcReply> {
        let valid: BTreeSet<_> = req.valid.into_iter().collect();
        let stale: Vec<_> = {
            let state = self.state.lock().await;
            state
                .allocations
                .values()
                .filter(|a| !valid.contains(&a.key))
                .map(|a| a.key.clone())
                .collect()
        };
        let mut released = Vec::new();
        for key in stale {
            let req = DelRequest {
                key: key.clone(),
                netns: None,
            };
            match self.del(req).await {
                Ok(_) => released.push(key),
                Err(e) => {
                    tracing::warn!(container = %key.container_id, error = %e, "GC could not release")
                }
            }
        }
        Ok(GcReply { released })
    }
}
