//! Start-up reconciliation: the cloud is the truth for which ENIs and IPs this node holds,
//! the store for which pod holds which IP. Each repair is logged.

use std::collections::BTreeMap;

use tandem_common::vpcsim::{DescribeEnisRequest, Eni};

use super::Agent;
use crate::eni;
use crate::error::{AgentError, AgentResult};
use crate::state::{EniRecord, CONTROL_PLANE};
use crate::wiring::ENI_TABLE_BASE;

pub(crate) const TAG_CLUSTER: &str = "tandem.dev/cluster";
pub(crate) const TAG_NODE: &str = "tandem.dev/node";
pub(crate) const TAG_CREATOR: &str = "tandem.dev/creator";
pub(crate) const TAG_PLANE: &str = "tandem.dev/plane";
pub(crate) const CREATOR: &str = "tandem-agent";

impl Agent {
    pub(crate) async fn reconcile(&self) -> AgentResult<()> {
        let filter = DescribeEnisRequest {
            instance_id: Some(self.cfg.instance_id.clone()),
            ..Default::default()
        };
        let attached = self.cloud.describe_enis(&filter).await?;
        let mut state = self.state.lock().await;
        let mut enis = BTreeMap::new();
        for e in attached {
            let Some(plane) = self.plane_of(&e) else {
                tracing::info!(eni = %e.id, "ignoring an attached ENI that Tandem does not manage");
                continue;
            };
            let mut rec = self.record_for(&e, &plane)?;
            if rec.exclusive {
                // Inside a pod, or somewhere the sweep will look for it; never waited for.
                rec.device = match state.enis.get(&rec.id) {
                    Some(old) => old.device.clone(),
                    None => self.exclusive_device(&rec).await,
                };
            } else {
                rec.device = eni::configure(&self.host, &rec).await?;
            }
            if state.enis.get(&rec.id).map(|old| &old.ips) != Some(&rec.ips) {
                tracing::info!(eni = %rec.id, plane = %plane, ips = rec.ips.len(), "repair: ENI addresses taken from the cloud");
            }
            enis.insert(rec.id.clone(), rec);
        }
        if !enis.values().any(|e| e.plane == CONTROL_PLANE) {
            return Err(AgentError::Internal(format!(
                "instance {} has no ENI in the control vSwitch {}",
                self.cfg.instance_id, self.cfg.control.v_switch
            )));
        }
        state.enis = enis;
        // Allocations whose address the cloud no longer assigns to us cannot be served. An
        // exclusive interface holds its ENI's primary address, never a secondary one.
        let st = &mut *state;
        let enis = &st.enis;
        st.allocations.retain(|k, a| {
            let ok = a.interfaces.iter().all(|i| match enis.get(&i.eni_id) {
                Some(e) if i.exclusive => e.primary_ip == i.ip,
                Some(e) => e.ips.contains(&i.ip),
                None => false,
            });
            if !ok {
                tracing::warn!(attachment = %k, "repair: dropping an allocation whose addresses the cloud no longer assigns here");
            }
            ok
        });
        self.commit(&mut state)?;
        tracing::info!(
            enis = state.enis.len(),
            allocations = state.allocations.len(),
            "reconciled"
        );
        Ok(())
    }

    async fn exclusive_device(&self, rec: &EniRecord) -> String {
        match rec.mac.parse() {
            Ok(mac) => match self.host.link_by_mac(mac).await {
                Ok(Some(link)) => link.name,
                _ => String::new(),
            },
            Err(_) => String::new(),
        }
    }

    pub(crate) fn is_exclusive(&self, plane: &str) -> bool {
        let model = self.model.read().expect("model lock");
        model
            .tenants
            .get(plane)
            .is_some_and(|t| t.spec.interface_mode == crate::model::InterfaceMode::Exclusive)
    }

    /// The plane an attached ENI belongs to: the node's ENI in the control vSwitch is the
    /// control plane; others must carry our tags.
    fn plane_of(&self, e: &Eni) -> Option<String> {
        let idx = e.attachment.as_ref().map(|a| a.device_index);
        if e.vswitch_id == self.cfg.control.v_switch
            && (idx == Some(0) || e.tags.get(TAG_PLANE).map(String::as_str) == Some(CONTROL_PLANE))
        {
            return Some(CONTROL_PLANE.to_string());
        }
        let ours = e.tags.get(TAG_CLUSTER) == Some(&self.cfg.cluster)
            && e.tags.get(TAG_NODE) == Some(&self.cfg.node);
        ours.then(|| e.tags.get(TAG_PLANE).cloned()).flatten()
    }

    pub(crate) fn record_for(&self, e: &Eni, plane: &str) -> AgentResult<EniRecord> {
        let vsw = self.vswitch(&e.vswitch_id)?;
        let device_index = e
            .attachment
            .as_ref()
            .map(|a| a.device_index)
            .ok_or_else(|| AgentError::Internal(format!("ENI {} is not attached", e.id)))?;
        Ok(EniRecord {
            id: e.id.clone(),
            plane: plane.to_string(),
            vswitch_id: e.vswitch_id.clone(),
            cidr: vsw.cidr,
            gateway: vsw.gateway,
            mac: e.mac.clone(),
            device_index,
            device: String::new(),
            primary_ip: e.primary_ip,
            ips: e.secondary_ips.iter().copied().collect(),
            table: ENI_TABLE_BASE + device_index,
            exclusive: self.is_exclusive(plane),
        })
    }
}
