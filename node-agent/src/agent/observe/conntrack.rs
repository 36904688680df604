//! `GET /v1/conntrack`: the tracked flows of the local pods; and the GC sweep that deletes
//! entries idle past their state's timeout (DESIGN §4). The datapath already ignores such
//! entries; the sweep keeps the LRU table for live flows and the fill level honest.

use std::net::Ipv4Addr;

use tandem_common::api::{ConntrackReply, CtFlow};

use super::super::Agent;
use super::describe::ct_state_name;
use super::endpoints::{by_endpoint, local_ifaces, pod_matches};
use super::{describe_rule, monotonic_ns, proto_name, CT_GC_PERIOD};
use crate::policy::abi::{self, CtEntry, CtKey};
use crate::policy::Timeouts;

/// Seconds an entry has been idle at `now` (monotonic ns).
fn idle_secs(e: &CtEntry, now: u64) -> u64 {
    now.saturating_sub(e.last_seen_ns) / 1_000_000_000
}

/// Entries idle past their timeout at `now`.
pub(crate) fn expired(entries: &[(CtKey, CtEntry)], t: &Timeouts, now: u64) -> Vec<CtKey> {
    entries
        .iter()
        .filter(|(k, e)| {
            let limit = u64::from(t.for_state(k.proto, e.state)) * 1_000_000_000;
            now.saturating_sub(e.last_seen_ns) > limit
        })
        .map(|(k, _)| *k)
        .collect()
}

impl Agent {
    /// Tracked flows (of one pod if `pod` is given), with the fill level.
    pub async fn conntrack(&self, pod: Option<&str>) -> ConntrackReply {
        let Some(enf) = self.enforcement() else {
            return ConntrackReply::default();
        };
        let ifaces = {
            let state = self.state.lock().await;
            let model = self.model.read().expect("model lock");
            by_endpoint(&local_ifaces(self, &state, &model))
        };
        let dp = enf.dp.lock().expect("datapath lock");
        let entries = dp.conntrack_entries();
        let now = monotonic_ns();
        let timeouts = dp.options().timeouts;
        let mut flows: Vec<CtFlow> = entries
            .iter()
            .filter_map(|(k, e)| {
                let i = ifaces.get(&k.endpoint_id);
                if let Some(p) = pod {
                    if !i.is_some_and(|i| pod_matches(&i.pod, p)) {
                        return None;
                    }
                }
                let rule = dp
                    .current()
                    .and_then(|c| c.rules.get(e.rule_id))
                    .map(describe_rule)
                    .unwrap_or_default();
                Some(CtFlow {
                    endpoint_id: k.endpoint_id,
                    pod: i.map(|i| i.pod.clone()).unwrap_or_default(),
                    interface: i.map(|i| i.host_ifname.clone()).unwrap_or_default(),
                    proto: proto_name(k.proto),
                    local_ip: Ipv4Addr::from(u32::from_be(k.local_ip)),
                    local_port: k.local_port,
                    remote_ip: Ipv4Addr::from(u32::from_be(k.remote_ip)),
                    remote_port: k.remote_port,
                    origin: if e.origin == abi::ORIGIN_POD {
                        "pod"
                    } else {
                        "remote"
                    }
                    .into(),
                    state: ct_state_name(k.proto, e.state).into(),
                    idle_secs: idle_secs(e, now),
                    timeout_secs: timeouts.for_state(k.proto, e.state),
                    rule_id: e.rule_id,
                    rule,
                    generation: e.generation,
                })
            })
            .collect();
        flows.sort_by(|a, b| (&a.pod, a.idle_secs).cmp(&(&b.pod, b.idle_secs)));
        ConntrackReply {
            entries: entries.len() as u32,
            capacity: dp.options().conntrack_entries,
            generation: dp.generation().unwrap_or(0),
            flows,
        }
    }

    /// One GC sweep: delete expired entries; returns (entries left, deleted).
    pub(crate) fn conntrack_gc(&self) -> Option<(usize, usize)> {
        let enf = self.enforcement()?;
        // Read under the lock, decide outside it, delete under it again: a full table is
        // 256 Ki entries and the recompile path shares the lock.
        let (entries, timeouts) = {
            let dp = enf.dp.lock().expect("datapath lock");
            (dp.conntrack_entries(), dp.options().timeouts)
        };
        let dead = expired(&entries, &timeouts, monotonic_ns());
        let mut deleted = 0;
        for chunk in dead.chunks(1024) {
            let mut dp = enf.dp.lock().expect("datapath lock");
            match dp.delete_conntrack_keys(chunk) {
                Ok(n) => deleted += n,
                Err(e) => tracing::debug!(error = %e, "conntrack GC delete failed"),
            }
        }
        Some((entries.len() - deleted, deleted))
    }

    pub(crate) async fn conntrack_gc_loop(&self) {
        let mut tick = tokio::time::interval(CT_GC_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Some((left, deleted)) = self.conntrack_gc() {
                self.metrics.conntrack_gc_deleted.inc_by(deleted as u64);
                self.metrics.conntrack_entries.set(left as i64);
                if deleted > 0 {
                    tracing::debug!(deleted, left, "conntrack GC");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(proto: u8, state: u8, last_seen_s: u64) -> (CtKey, CtEntry) {
        (
            CtKey {
                endpoint_id: 1,
                proto,
                ..Default::default()
            },
            CtEntry {
                last_seen_ns: last_seen_s * 1_000_000_000,
                state,
                ..Default::default()
            },
        )
    }

    #[test]
    fn gc_deletes_only_entries_idle_past_their_state_timeout() {
        let t = Timeouts::default();
        let now = 10_000 * 1_000_000_000;
        let entries = [
            entry(6, abi::CT_ESTABLISHED, 10_000 - 3000), // within 3600 s
            entry(6, abi::CT_SYN_SENT, 10_000 - 61),      // past 60 s
            entry(1, abi::CT_ESTABLISHED, 10_000 - 31),   // icmp, past 30 s
            entry(17, abi::CT_ESTABLISHED, 10_000 - 59),  // udp, within 60 s
        ];
        let dead = expired(&entries, &t, now);
        assert_eq!(dead, vec![entries[1].0, entries[2].0]);
    }
}
