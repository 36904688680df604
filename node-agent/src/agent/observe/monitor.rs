//! The one reader of the datapath's `events` ring buffer: decodes each record, names its pod,
//! interface and rule, and fans it out to `GET /v1/monitor` subscribers over a broadcast
//! channel. The ring is drained whether or not anyone listens, so the datapath never counts
//! lost events because of a missing reader.

use std::collections::BTreeMap;
use std::time::Duration;

use tandem_common::api::MonitorEvent;
use tokio::io::unix::AsyncFd;

use super::super::{now_ms, Agent};
use super::describe::reason_name;
use super::endpoints::{by_endpoint, local_ifaces, LocalIface};
use super::{describe_rule, proto_name};
use crate::policy::events::{EventKind, FlowEvent};

/// Drain the ring at least this often even if no wake-up came (the kernel's adaptive
/// notification skips wake-ups while the consumer is behind).
const POLL: Duration = Duration::from_millis(200);

impl Agent {
    pub(crate) async fn monitor_loop(&self) {
        let Some(enf) = self.enforcement() else {
            return;
        };
        let ring = match enf.dp.lock().expect("datapath lock").take_events() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "no events ring buffer; monitor is off");
                return;
            }
        };
        // SAFETY: the ring buffer owns its map fd (MapData) and keeps it open and unchanged
        // until it is dropped, which only happens when the AsyncFd is.
        let registered =
            unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) };
        let mut ring = match registered {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot poll the events ring buffer; monitor is off");
                return;
            }
        };
        let mut names: BTreeMap<u32, LocalIface> = BTreeMap::new();
        loop {
            let mut batch = Vec::new();
            match tokio::time::timeout(POLL, ring.readable_mut()).await {
                Ok(Ok(mut guard)) => {
                    drain(guard.get_inner_mut(), &mut batch);
                    guard.clear_ready();
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "polling the events ring buffer failed");
                    return;
                }
                Err(_) => drain(ring.get_mut(), &mut batch),
            }
            if batch.is_empty() || self.observer.events.receiver_count() == 0 {
                continue;
            }
            if batch.iter().any(|e| !names.contains_key(&e.endpoint_id)) {
                let state = self.state.lock().await;
                let model = self.model.read().expect("model lock");
                names = by_endpoint(&local_ifaces(self, &state, &model));
            }
            let events: Vec<MonitorEvent> = {
                let dp = enf.dp.lock().expect("datapath lock");
                let rules = dp.current().map(|c| &c.rules);
                batch
                    .iter()
                    .map(|e| {
                        let rule = rules
                            .and_then(|r| r.get(e.rule_id))
                            .map(describe_rule)
                            .unwrap_or_default();
                        resolve(e, names.get(&e.endpoint_id), rule)
                    })
                    .collect()
            };
            for e in events {
                // No receiver left: nothing to do until the next subscriber.
                let _ = self.observer.events.send(e);
            }
        }
    }
}

fn drain(ring: &mut crate::policy::datapath::ring::EventRing, out: &mut Vec<FlowEvent>) {
    while let Some(item) = ring.next() {
        if let Some(e) = FlowEvent::decode(&item) {
            out.push(e);
        }
    }
}

/// An event in the words of `tandemctl monitor`.
pub(crate) fn resolve(e: &FlowEvent, iface: Option<&LocalIface>, rule: String) -> MonitorEvent {
    let (verdict, reason) = match e.kind {
        EventKind::Drop => ("drop", reason_name(e.reason)),
        EventKind::NewFlow => ("new-flow", "allowed"),
        EventKind::Audit => ("audit", reason_name(e.reason)),
        EventKind::Unknown(_) => ("unknown", reason_name(e.reason)),
    };
    let rule = if rule.is_empty()
        && e.kind != EventKind::NewFlow
        && e.reason == crate::policy::abi::STAT_DROP_POLICY
    {
        "default deny".to_string()
    } else {
        rule
    };
    MonitorEvent {
        time_ms: now_ms(),
        pod: iface.map(|i| i.pod.clone()).unwrap_or_default(),
        interface: iface.map(|i| i.host_ifname.clone()).unwrap_or_default(),
        direction: if e.from_pod { "egress" } else { "ingress" }.into(),
        proto: proto_name(e.proto),
        src: e.src,
        // Host order in the record; for ICMP `dport` is type << 8 | code.
        sport: e.sport,
        dst: e.dst,
        dport: e.dport,
        verdict: verdict.into(),
        reason: reason.into(),
        rule_id: e.rule_id,
        rule,
    }
}
