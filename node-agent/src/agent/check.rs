//! CHECK: compare the pod's network with the allocation and the runtime's previous result.

use tandem_common::api::CheckRequest;
use tandem_hostnet::NetNs;

use super::Agent;
use crate::error::{AgentError, AgentResult};
use crate::wiring;

impl Agent {
    pub async fn check(&self, req: CheckRequest) -> AgentResult<()> {
        let alloc = self
            .state
            .lock()
            .await
            .allocation(&req.key)
            .cloned()
            .ok_or_else(|| {
                AgentError::CheckFailed(format!(
                    "the agent holds no network for container {} interface {}",
                    req.key.container_id, req.key.ifname
                ))
            })?;
        if alloc.netns != req.netns {
            return Err(AgentError::CheckFailed(format!(
                "container {} was wired in {}, not {}",
                req.key.container_id,
                alloc.netns.display(),
                req.netns.display()
            )));
        }
        for e in &req.interfaces {
            for a in &e.addresses {
                if !alloc.interfaces.iter().any(|i| i.ip == a.addr()) {
                    return Err(AgentError::CheckFailed(format!(
                        "previous result names address {a} on {}, which the agent never gave this pod",
                        e.name
                    )));
                }
            }
        }
        let ns = NetNs::open(&req.netns).map_err(|source| AgentError::Netns {
            path: req.netns.clone(),
            source,
        })?;
        wiring::check(
            &self.host,
            &ns,
            &alloc.interfaces,
            &req.interfaces,
            &req.routes,
        )
        .await
    }
}
