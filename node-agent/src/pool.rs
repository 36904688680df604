//! Pool planning: what the background refill should ask of the cloud for one plane. Pure, so
//! the arithmetic is unit-tested without a cloud.

use tandem_common::vpcsim::Instance;

use crate::config::PoolConfig;
use crate::state::State;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefillAction {
    /// The plane has its warm IPs.
    Nothing,
    /// Ask for `count` more secondary IPs on this ENI.
    AssignIps { eni_id: String, count: u32 },
    /// Every ENI of the plane is full: create and attach one more in this vSwitch.
    NewEni { vswitch_id: String },
    /// The instance's ENI or IP limits are reached.
    AtLimit,
}

/// One step from the current levels to the warm target: the number asked is the whole gap
/// (at least one batch), capped by what the ENI can still hold.
pub fn plan(
    state: &State,
    plane: &str,
    vswitch_id: &str,
    limits: &Instance,
    cfg: &PoolConfig,
    demand: u32,
) -> RefillAction {
    let free = state.free_ips(plane).len() as u32;
    let want = cfg.warm_ips.max(demand);
    if free >= want {
        return RefillAction::Nothing;
    }
    let gap = (want - free).max(cfg.batch);
    // Secondary IPs per ENI: the primary IP counts against the limit.
    let per_eni = limits.max_ips_per_eni.saturating_sub(1);
    let with_room = state
        .enis_of(plane)
        .map(|e| (e, per_eni.saturating_sub(e.ips.len() as u32)))
        .filter(|(_, room)| *room > 0)
        .max_by_key(|(_, room)| *room);
    if let Some((eni, room)) = with_room {
        return RefillAction::AssignIps {
            eni_id: eni.id.clone(),
            count: gap.min(room),
        };
    }
    if (state.enis.len() as u32) < limits.max_enis {
        return RefillAction::NewEni {
            vswitch_id: vswitch_id.to_string(),
        };
    }
    RefillAction::AtLimit
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::net::Ipv4Addr;

    use super::*;
    use crate::state::EniRecord;

    fn eni(id: &str, plane: &str, ips: u8) -> EniRecord {
        EniRecord {
            id: id.into(),
            plane: plane.into(),
            vswitch_id: "vsw".into(),
            cidr: "10.0.0.0/24".parse().unwrap(),
            gateway: Ipv4Addr::new(10, 0, 0, 1),
            mac: "02:00:00:00:00:01".into(),
            device_index: 1,
            device: "eth1".into(),
            primary_ip: Ipv4Addr::new(10, 0, 0, 2),
            ips: (0..ips)
                .map(|i| Ipv4Addr::new(10, 0, 0, 10 + i))
                .collect::<BTreeSet<_>>(),
            table: 3001,
        }
    }

    const LIMITS: Instance = Instance {
        id: String::new(),
        max_enis: 2,
        max_ips_per_eni: 6,
    };

    fn cfg() -> PoolConfig {
        PoolConfig {
            warm_ips: 4,
            batch: 2,
            empty_wait_ms: 0,
        }
    }

    #[test]
    fn empty_plane_gets_an_eni_then_ips() {
        let mut s = State::default();
        assert_eq!(
            plan(&s, "acme", "vsw", &LIMITS, &cfg(), 0),
            RefillAction::NewEni {
                vswitch_id: "vsw".into()
            }
        );
        s.enis.insert("e1".into(), eni("e1", "acme", 0));
        assert_eq!(
            plan(&s, "acme", "vsw", &LIMITS, &cfg(), 0),
            RefillAction::AssignIps {
                eni_id: "e1".into(),
                count: 4
            }
        );
    }

    #[test]
    fn asks_the_whole_gap_capped_by_room_and_limits() {
        let mut s = State::default();
        s.enis.insert("e1".into(), eni("e1", "acme", 3));
        // 3 free, want 4 → gap 1, raised to one batch (2), room 2.
        assert_eq!(
            plan(&s, "acme", "vsw", &LIMITS, &cfg(), 0),
            RefillAction::AssignIps {
                eni_id: "e1".into(),
                count: 2
            }
        );
        // A burst of 10 waiting ADDs raises the target.
        s.enis.insert("e1".into(), eni("e1", "acme", 5));
        assert_eq!(
            plan(&s, "acme", "vsw", &LIMITS, &cfg(), 10),
            RefillAction::NewEni {
                vswitch_id: "vsw".into()
            }
        );
        s.enis.insert("e2".into(), eni("e2", "other", 5));
        assert_eq!(
            plan(&s, "acme", "vsw", &LIMITS, &cfg(), 10),
            RefillAction::AtLimit
        );
        assert_eq!(
            plan(&s, "acme", "vsw", &LIMITS, &cfg(), 0),
            RefillAction::Nothing
        );
    }
}
