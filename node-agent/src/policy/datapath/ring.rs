//! The `events` ring buffer (drops and new-flow verdicts, DESIGN §4) for the agent's monitor
//! task. The map is pinned like the others, so a restarted agent reads the same ring.

use aya::maps::{MapData, RingBuf};

use super::load::map_error;
use super::{Datapath, DatapathError, Result};

/// The consumer side of the `events` ring buffer; decode records with
/// [`crate::policy::events::FlowEvent::decode`]. Poll its fd for readiness (epoll).
pub type EventRing = RingBuf<MapData>;

impl Datapath {
    /// Hand the ring buffer to its one reader. A ring buffer has a single consumer position,
    /// so the second call fails with `MissingMap`.
    pub fn take_events(&mut self) -> Result<EventRing> {
        let map = self
            .ebpf
            .take_map("events")
            .ok_or(DatapathError::MissingMap { name: "events" })?;
        RingBuf::try_from(map).map_err(map_error("events"))
    }
}
