//! The calls on one ENI: attach, detach, delete, assign and unassign IPs.
//!
//! Each holds the ENI's own lock for its whole length and the global state lock only while it
//! reads or changes the books, so a slow dataplane step (an `ip` process in the VPC namespace)
//! or an injected latency never stalls calls on other ENIs. Attach reserves its device index in
//! the books before plugging; detach unplugs before it frees the index, so a concurrent attach
//! to the same instance can never meet a leftover `eth<index>`.

use serde_json::{json, Value};
use tandem_common::vpcsim::UnassignIpsRequest;
use tandem_common::vpcsim::{AssignIpsReply, AssignIpsRequest, AttachEniRequest, EniIdRequest};

use super::dataplane;
use super::server::{blocking, to_value, ApiError, Sim};

impl Sim {
    pub(super) async fn attach(&self, req: AttachEniRequest) -> Result<Value, ApiError> {
        tokio::time::sleep(self.latency()).await;
        let _eni = self.eni_guard(&req.eni_id).await;
        let (eni, plug) = {
            let mut state = self.state.lock().await;
            let eni = state.attach(&req.eni_id, &req.instance_id)?;
            match self.plug(&eni, &req.instance_id) {
                Ok(plug) => (eni, plug),
                Err(e) => {
                    state.rollback_attach(&req.eni_id);
                    return Err(e);
                }
            }
        };
        let index = eni.attachment.as_ref().map_or(0, |a| a.device_index);
        let copy = eni.clone();
        if let Err(e) = blocking(move || dataplane::attach(&plug, &copy, index)).await {
            self.state.lock().await.rollback_attach(&req.eni_id);
            return Err(e);
        }
        to_value(eni)
    }

    pub(super) async fn detach(&self, req: EniIdRequest) -> Result<Value, ApiError> {
        tokio::time::sleep(self.latency()).await;
        let _eni = self.eni_guard(&req.eni_id).await;
        let before = self.state.lock().await.check_detach(&req.eni_id)?;
        let instance = before.attachment.as_ref().map(|a| a.instance_id.clone());
        let plug = self.plug(&before, instance.as_deref().unwrap_or_default())?;
        // The books say detached either way: a leftover veth dies with its namespace, and one
        // whose node end is already gone (moved into a pod that was deleted) is not an error.
        if let Err(e) = blocking(move || dataplane::detach(&plug, &before)).await {
            tracing::warn!(eni = %req.eni_id, error = %e.body().message, "detach dataplane");
        }
        let mut state = self.state.lock().await;
        state.detach(&req.eni_id)?;
        to_value(state.eni(&req.eni_id)?.clone())
    }

    /// Books only: a detached ENI has no dataplane.
    pub(super) async fn delete(&self, eni_id: &str) -> Result<Value, ApiError> {
        let _eni = self.eni_guard(eni_id).await;
        self.state.lock().await.delete(eni_id)?;
        self.forget_eni(eni_id);
        Ok(json!({}))
    }

    pub(super) async fn assign(&self, req: AssignIpsRequest) -> Result<Value, ApiError> {
        let _eni = self.eni_guard(&req.eni_id).await;
        let (eni, assigned) = self.state.lock().await.assign(&req)?;
        if let Some(a) = &eni.attachment {
            let plug = self.plug(&eni, &a.instance_id)?;
            let (ips, mac) = (assigned.clone(), eni.mac.clone());
            let res = blocking(move || dataplane::neighbours(&plug, "replace", &ips, &mac)).await;
            if let Err(e) = res {
                let undo = UnassignIpsRequest {
                    eni_id: req.eni_id.clone(),
                    ips: assigned,
                };
                let _ = self.state.lock().await.unassign(&undo);
                return Err(e);
            }
        }
        to_value(AssignIpsReply { assigned })
    }

    pub(super) async fn unassign(&self, req: UnassignIpsRequest) -> Result<Value, ApiError> {
        let _eni = self.eni_guard(&req.eni_id).await;
        let eni = self.state.lock().await.unassign(&req)?;
        if let Some(a) = &eni.attachment {
            let plug = self.plug(&eni, &a.instance_id)?;
            let (ips, mac) = (req.ips.clone(), eni.mac.clone());
            if let Err(e) = blocking(move || dataplane::neighbours(&plug, "del", &ips, &mac)).await
            {
                tracing::warn!(eni = %req.eni_id, error = %e.body().message, "unassign dataplane");
            }
        }
        Ok(json!({}))
    }
}
