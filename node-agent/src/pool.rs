//! Pool planning: from one plane's levels, what to ask of the cloud or give back. Pure, so the
//! arithmetic is unit-tested without a cloud.

use crate::config::PoolConfig;

/// What a plane holds now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Levels {
    /// Addresses (shared planes) or ENIs (exclusive planes) in use by pods.
    pub used: u32,
    /// Ready to hand out.
    pub free: u32,
    /// Released, waiting out the cool-down.
    pub cooling: u32,
    /// ADDs waiting for this plane right now.
    pub waiting: u32,
    /// Asked of the cloud and not arrived yet (addresses, or ENIs of an exclusive plane).
    pub pending: u32,
    /// Room left on ENIs being attached for this plane: demand it covers waits for them
    /// (one more assign once attached) instead of attaching yet another ENI.
    pub pending_eni_room: u32,
    /// Whether pods used the plane recently; an idle plane shrinks to its minimum.
    pub active: bool,
    /// Secondary addresses on each of the plane's ENIs (ENI id, count).
    pub enis: Vec<(String, u32)>,
}

/// The instance's limits as they bear on one plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// ENIs that may still be attached to the instance (all planes together).
    pub spare_enis: u32,
    /// Secondary addresses one ENI may hold.
    pub ips_per_eni: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Assign this many more addresses to these ENIs (each ≤ the batch size).
    pub assign: Vec<(String, u32)>,
    /// Create and attach one ENI per entry, then assign it that many addresses (0 for an
    /// exclusive plane's ENI).
    pub new_enis: Vec<u32>,
    /// Give back this many free addresses (or ENIs), once the excess has lasted the idle delay.
    pub excess: u32,
    /// The one-step target the plan aims at.
    pub target: u32,
    /// The limits stop the plane short of its target.
    pub at_limit: bool,
}

/// The target: what is used and cooling, what ADDs wait for, and the warm reserve, clamped to
/// `[min, max]`. An idle plane keeps only its minimum.
pub fn target(l: &Levels, cfg: &PoolConfig, exclusive: bool) -> u32 {
    let warm = match (l.active, exclusive) {
        (false, _) => 0,
        (true, true) => cfg.warm_enis,
        (true, false) => cfg.warm_ips,
    };
    let want = l.used + l.cooling + l.waiting + warm;
    let (min, max) = if exclusive {
        (0, u32::MAX)
    } else {
        (cfg.min_ips, cfg.max_ips)
    };
    want.clamp(min, max)
}

/// One step from the levels to the target.
pub fn plan(l: &Levels, limits: Limits, cfg: &PoolConfig, exclusive: bool) -> Plan {
    let target = target(l, cfg, exclusive);
    let have = l.used + l.free + l.cooling + l.pending;
    let mut plan = Plan {
        target,
        ..Plan::default()
    };
    if have > target {
        // Nothing goes back while a request is in flight: the levels are about to change.
        if l.pending == 0 {
            plan.excess = (have - target).min(l.free);
        }
        return plan;
    }
    let mut gap = target - have;
    // A new ENI uses up a slot the instance shares with every plane: take one only when this
    // plane has nothing free or ADDs are waiting, never just to top up a warm reserve that
    // still has addresses (else warm pools of busy tenants lock a new tenant out).
    let may_add_eni = l.free == 0 || l.waiting > 0;
    let spare_enis = if may_add_eni { limits.spare_enis } else { 0 };
    if exclusive {
        let n = gap.min(spare_enis);
        plan.new_enis = vec![0; n as usize];
        plan.at_limit = n < gap && may_add_eni;
        return plan;
    }
    let mut enis = l.enis.clone();
    enis.sort_by_key(|(_, n)| *n);
    for (id, n) in enis {
        let mut room = limits.ips_per_eni.saturating_sub(n);
        while gap > 0 && room > 0 {
            let take = gap.min(room).min(cfg.batch);
            plan.assign.push((id.clone(), take));
            gap -= take;
            room -= take;
        }
    }
    // Demand that ENIs already on their way can hold is served by them.
    gap -= gap.min(l.pending_eni_room);
    let mut spare = spare_enis;
    while gap > 0 && spare > 0 && limits.ips_per_eni > 0 {
        let take = gap.min(limits.ips_per_eni);
        plan.new_enis.push(take);
        gap -= take;
        spare -= 1;
    }
    plan.at_limit = gap > 0 && may_add_eni;
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> PoolConfig {
        PoolConfig {
            min_ips: 2,
            warm_ips: 4,
            max_ips: 100,
            batch: 10,
            ..PoolConfig::default()
        }
    }

    fn lv(used: u32, free: u32, enis: &[u32]) -> Levels {
        Levels {
            used,
            free,
            active: true,
            enis: enis
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("e{i}"), *n))
                .collect(),
            ..Levels::default()
        }
    }

    const LIM: Limits = Limits {
        spare_enis: 3,
        ips_per_eni: 29,
    };

    #[test]
    fn empty_plane_gets_an_eni_with_its_warm_addresses() {
        let p = plan(&lv(0, 0, &[]), LIM, &cfg(), false);
        assert_eq!(p.new_enis, vec![4]);
        assert!(p.assign.is_empty());
    }

    #[test]
    fn a_burst_is_planned_in_one_step_across_enis() {
        // 10 used, 0 free, 40 ADDs waiting: target 54 → 44 more; 19 fit the ENI (in batches
        // of 10), 25 go to one new ENI.
        let mut l = lv(10, 0, &[10]);
        l.waiting = 40;
        let p = plan(&l, LIM, &cfg(), false);
        assert_eq!(p.target, 54);
        assert_eq!(p.assign, vec![("e0".into(), 10), ("e0".into(), 9)]);
        assert_eq!(p.new_enis, vec![25]);
        assert!(!p.at_limit);
    }

    #[test]
    fn limits_and_max_cap_the_target() {
        let mut l = lv(29, 0, &[29]);
        l.waiting = 200;
        let p = plan(
            &l,
            Limits {
                spare_enis: 1,
                ips_per_eni: 29,
            },
            &cfg(),
            false,
        );
        assert_eq!(p.new_enis, vec![29]);
        assert!(p.at_limit);
        let capped = PoolConfig {
            max_ips: 30,
            ..cfg()
        };
        let p = plan(&l, LIM, &capped, false);
        assert_eq!(p.target, 30);
        assert_eq!(p.new_enis, vec![1]);
        assert_eq!(p.excess, 0, "nothing free to give back");
    }

    #[test]
    fn idle_planes_shrink_to_min_and_cooling_counts_as_held() {
        let mut l = lv(0, 8, &[8]);
        l.active = false;
        assert_eq!(plan(&l, LIM, &cfg(), false).excess, 6);
        let mut l = lv(3, 4, &[10]);
        l.cooling = 3;
        let p = plan(&l, LIM, &cfg(), false);
        assert_eq!(p.target, 10);
        assert_eq!((p.excess, p.assign.len()), (0, 0));
    }

    #[test]
    fn warm_top_ups_never_take_a_new_eni() {
        // 27 used, 2 free on a full ENI: the warm reserve wants 2 more, but a new ENI is only
        // worth its slot once nothing is free or an ADD waits.
        let p = plan(&lv(27, 2, &[29]), LIM, &cfg(), false);
        assert!(p.new_enis.is_empty() && p.assign.is_empty());
        let p = plan(&lv(29, 0, &[29]), LIM, &cfg(), false);
        assert_eq!(p.new_enis, vec![4]);
    }

    #[test]
    fn requests_in_flight_count_as_held() {
        let mut l = lv(10, 0, &[10]);
        l.waiting = 40;
        l.pending = 44;
        let p = plan(&l, LIM, &cfg(), false);
        assert!(p.assign.is_empty() && p.new_enis.is_empty());
        l.waiting = 50;
        let p = plan(&l, LIM, &cfg(), false);
        assert_eq!(
            p.assign,
            vec![("e0".into(), 10)],
            "only the new demand is asked"
        );
    }

    #[test]
    fn demand_trickling_in_waits_for_the_eni_on_its_way() {
        // One ADD planned a new ENI for 1 address; five more arrive before it is attached.
        let mut l = lv(0, 0, &[]);
        l.waiting = 6;
        l.pending = 1;
        l.pending_eni_room = 28;
        let p = plan(&l, LIM, &cfg(), false);
        assert!(
            p.new_enis.is_empty(),
            "no second ENI while the first has room: {p:?}"
        );
        l.waiting = 40;
        assert_eq!(
            plan(&l, LIM, &cfg(), false).new_enis,
            vec![15],
            "40 waiting + 4 warm - 1 pending - 28 room"
        );
    }

    #[test]
    fn exclusive_planes_count_enis() {
        let mut l = Levels {
            used: 2,
            free: 0,
            waiting: 3,
            active: true,
            ..Levels::default()
        };
        let p = plan(&l, LIM, &cfg(), true);
        assert_eq!(p.new_enis.len(), 3, "4 + 1 warm wanted, 2 held, 3 spare");
        assert!(p.at_limit);
        l.waiting = 0;
        l.free = 3;
        assert_eq!(plan(&l, LIM, &cfg(), true).excess, 2);
    }
}
