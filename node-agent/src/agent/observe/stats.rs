//! Datapath counters for `GET /v1/datapath/stats` and Prometheus: drops by reason, lost
//! events, conntrack fill, per-rule packets, tracked flows per tenant.

use std::collections::BTreeMap;

use tandem_common::api::DatapathStats;

use super::super::Agent;
use super::describe::{reason_name, DROP_REASONS};
use super::describe_rule;
use super::endpoints::{by_endpoint, local_ifaces};
use crate::metrics::{ReasonLabels, RuleLabels, TenantLabels};
use crate::policy::abi;

impl Agent {
    pub async fn datapath_stats(&self) -> DatapathStats {
        let Some(enf) = self.enforcement() else {
            return DatapathStats::default();
        };
        let dp = enf.dp.lock().expect("datapath lock");
        let stat = |i| dp.stat(i).unwrap_or(0);
        DatapathStats {
            passed: stat(abi::STAT_PASS),
            new_flows: stat(abi::STAT_NEW_FLOW),
            audited: stat(abi::STAT_AUDIT),
            events_lost: stat(abi::STAT_EVENTS_LOST),
            drops: DROP_REASONS
                .iter()
                .map(|&i| (reason_name(i).to_string(), stat(i)))
                .collect(),
        }
    }

    /// Bring the datapath's metrics up to date (before a scrape).
    pub async fn refresh_datapath_metrics(&self) {
        let Some(enf) = self.enforcement() else {
            return;
        };
        let tenants: BTreeMap<u32, String> = {
            let state = self.state.lock().await;
            let model = self.model.read().expect("model lock");
            by_endpoint(&local_ifaces(self, &state, &model))
                .into_iter()
                .map(|(id, i)| (id, i.tenant))
                .collect()
        };
        let stats = self.datapath_stats().await;
        let m = &self.metrics;
        for (reason, v) in &stats.drops {
            let c = m.datapath_drops.get_or_create(&ReasonLabels {
                reason: reason.clone(),
            });
            c.inc_by(v.saturating_sub(c.get()));
        }
        m.events_lost
            .inc_by(stats.events_lost.saturating_sub(m.events_lost.get()));
        m.new_flows
            .inc_by(stats.new_flows.saturating_sub(m.new_flows.get()));

        let dp = enf.dp.lock().expect("datapath lock");
        let entries = dp.conntrack_entries();
        m.conntrack_entries.set(entries.len() as i64);
        m.conntrack_capacity
            .set(i64::from(dp.options().conntrack_entries));
        m.tenant_flows.clear();
        for (k, _) in &entries {
            let tenant = tenants.get(&k.endpoint_id).cloned().unwrap_or_default();
            m.tenant_flows.get_or_create(&TenantLabels { tenant }).inc();
        }
        m.rule_packets.clear();
        m.rule_bytes.clear();
        if let Some(c) = dp.current() {
            for r in &c.rules.rules {
                let Ok(v) = dp.rule_counter(r.id) else {
                    continue;
                };
                if v.packets == 0 {
                    continue;
                }
                let labels = RuleLabels {
                    id: r.id.to_string(),
                    rule: describe_rule(r),
                };
                m.rule_packets.get_or_create(&labels).set(v.packets as i64);
                m.rule_bytes.get_or_create(&labels).set(v.bytes as i64);
            }
        }
    }
}
