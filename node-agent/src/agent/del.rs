//! DEL: remove the pod's wiring, then return its addresses. Idempotent: an unknown or
//! half-built attachment succeeds.

use tandem_common::api::{DelReply, DelRequest};

use super::Agent;
use crate::error::{AgentError, AgentResult};
use crate::state::key_string;
use crate::wiring;

impl Agent {
    pub async fn del(&self, req: DelRequest) -> AgentResult<DelReply> {
        let alloc = self.state.lock().await.allocation(&req.key).cloned();
        let Some(alloc) = alloc else {
            return Ok(DelReply { released: false });
        };
        // Tear down before the addresses go back to the pool, so a new pod can never get an
        // address whose old routes and rules still exist.
        let errors = wiring::teardown(
            &self.host,
            &req.key.container_id,
            &alloc.interfaces,
            alloc.link_group,
        )
        .await;
        if !errors.is_empty() {
            let all: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            return Err(AgentError::Internal(format!(
                "could not remove the network of container {}: {}",
                req.key.container_id,
                all.join("; ")
            )));
        }
        let mut state = self.state.lock().await;
        state.allocations.remove(&key_string(&req.key));
        self.commit(&state)?;
        drop(state);
        self.refill_wanted.notify_one();
        tracing::info!(container = %req.key.container_id, ifname = %req.key.ifname, "pod released");
        Ok(DelReply { released: true })
    }
}
