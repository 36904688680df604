//! What `tandemctl trace|sg|conntrack|monitor` ask of the agent (issue 4, DESIGN §4–§6): the
//! verdict of a would-be flow from the committed tables, groups and their members, tracked
//! flows, and the live event stream of the datapath's ring buffer. Also the conntrack GC sweep
//! and the datapath's Prometheus metrics.

mod conntrack;
mod describe;
mod endpoints;
mod monitor;
mod sg;
mod stats;
mod trace;
#[cfg(test)]
mod trace_tests;

use std::sync::Arc;
use std::time::Duration;

use tandem_common::api::MonitorEvent;
use tokio::sync::broadcast;

use super::Agent;

pub(crate) use describe::describe_rule;

/// How many events a slow `tandemctl monitor` may fall behind before it is told it lagged.
const MONITOR_BACKLOG: usize = 4096;

/// Conntrack GC sweep period (DESIGN §4: "userspace GC sweep").
pub(crate) const CT_GC_PERIOD: Duration = Duration::from_secs(10);

/// The fan-out of datapath events to `GET /v1/monitor` subscribers.
pub struct Observer {
    pub(crate) events: broadcast::Sender<MonitorEvent>,
}

impl Default for Observer {
    fn default() -> Self {
        Observer {
            events: broadcast::channel(MONITOR_BACKLOG).0,
        }
    }
}

impl Observer {
    pub fn subscribe(&self) -> broadcast::Receiver<MonitorEvent> {
        self.events.subscribe()
    }
}

/// Start the ring-buffer reader and the conntrack GC (no-ops without enforcement).
pub(crate) fn spawn(agent: &Arc<Agent>) {
    if agent.enforcement().is_none() {
        return;
    }
    let me = agent.clone();
    tokio::spawn(async move { me.monitor_loop().await });
    let me = agent.clone();
    tokio::spawn(async move { me.conntrack_gc_loop().await });
}

/// `CLOCK_MONOTONIC` in ns: the clock of `bpf_ktime_get_ns` (conntrack `last_seen_ns`).
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `tcp`, `udp`, `icmp` or the protocol number.
pub(crate) fn proto_name(proto: u8) -> String {
    match proto {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        p => p.to_string(),
    }
}
