//! DEL: remove the pod's wiring, then return its addresses. Idempotent: an unknown or
//! half-built attachment succeeds.

use tandem_common::api::{DelReply, DelRequest};

use tandem_hostnet::NetNs;

use super::{now_ms, Agent};
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
        // The netns the runtime names, else the one ADD used; either may be gone already.
        let pod_ns = req
            .netns
            .iter()
            .chain(std::iter::once(&alloc.netns))
            .find_map(|p| NetNs::open(p).ok());
        let ns = wiring::Namespaces {
            host: &self.host,
            node: &self.node_ns,
            pod: pod_ns.as_ref(),
        };
        let errors = wiring::teardown(
            &ns,
            &req.key.container_id,
            &alloc.interfaces,
            alloc.link_group,
        )
        .await;
        // After the links are gone: unpinning a link of a deleted device waits for nothing.
        self.unenforce(&alloc);
        if !errors.is_empty() {
            let all: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            return Err(AgentError::Internal(format!(
                "could not remove the network of container {}: {}",
                req.key.container_id,
                all.join("; ")
            )));
        }
        // An exclusive ENI that did not come back (its netns was deleted with it inside) is
        // gone for good: never hand it out again.
        for i in alloc.interfaces.iter().filter(|i| i.exclusive) {
            let back = match i.mac.parse() {
                Ok(mac) => matches!(self.host.link_by_mac(mac).await, Ok(Some(_))),
                Err(_) => false,
            };
            if !back {
                self.forget_eni(&i.eni_id, "it did not come back from the pod", false)
                    .await;
            }
        }
        let mut state = self.state.lock().await;
        state.allocations.remove(&key_string(&req.key));
        state.cool(
            alloc
                .interfaces
                .iter()
                .filter(|i| !i.exclusive)
                .map(|i| i.ip),
            now_ms(),
        );
        self.commit(&mut state)?;
        drop(state);
        self.refill_wanted.notify_one();
        self.policy_changed();
        tracing::info!(container = %req.key.container_id, ifname = %req.key.ifname, "pod released");
        Ok(DelReply { released: true })
    }
}
