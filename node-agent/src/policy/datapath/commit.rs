//! The atomic rule-set commit (DESIGN §4 "Updates"): build every inner trie of the inactive
//! epoch off to the side, swap them into the outer maps, flip the generation.
//!
//! Cost model on 6.18, 10,000 rules: an entry written with one BPF_MAP_UPDATE_ELEM each costs
//! a syscall; BPF_MAP_UPDATE_BATCH writes a whole trie in one. Every write to an outer
//! (map-in-map) map waits an RCU grace period (`maybe_wait_bpf_programs`, ~5–16 ms here), but
//! once per batch, not per element: all policies go in with one batch. The identity trie is
//! built and swapped on one thread while the policy tries are built and swapped on another
//! (and stale policies deleted on a third), so building overlaps and the grace periods
//! overlap: a commit waits about one grace period whatever the number of policies.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use aya::maps::{IterableMap, MapData};

use super::load::map_error;
use super::maps::v4_key;
use super::sys::{self, pod_bytes};
use super::{Datapath, DatapathError, IdentityTrie, PolicyTrie, Result};
use crate::policy::abi;
use crate::policy::compile::{CompiledPolicy, PolicyEntry};
use crate::policy::model::Action;

/// BPF_F_NO_PREALLOC, required of LPM tries.
const NO_PREALLOC: u32 = 1;

/// Where the wall time of one `apply` went. The identity track (build the trie, swap it in)
/// and the policy track (build the tries, one batch into the outer map, stale deletes) run
/// concurrently, so `total` is about the longer track plus `flip`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyBreakdown {
    /// Entries written: identity prefixes, policy trie entries, policies.
    pub identities: usize,
    pub policy_entries: usize,
    pub policies: usize,
    /// Create and fill the new identity trie (one batch), then swap it in (waits a grace period).
    pub identities_fill: Duration,
    pub identities_swap: Duration,
    /// Create and fill the new policy tries (one batch each), then swap them in (one batch,
    /// one grace period) while stale policies are deleted (one batch).
    pub policies_fill: Duration,
    pub policies_swap: Duration,
    /// Outer-map writes: each waits an RCU grace period, concurrently.
    pub outer_writes: usize,
    /// The generation write that switches every CPU, and recording the committed set.
    pub flip: Duration,
    pub total: Duration,
}

fn policy_key(e: &PolicyEntry) -> abi::PolicyKey {
    abi::PolicyKey {
        prefixlen: 40 + u32::from(e.port_len),
        dir_remote: ((e.dir as u32) << 24 | e.remote).to_be(),
        proto: e.proto as u8,
        port_hi: (e.port >> 8) as u8,
        port_lo: e.port as u8,
        _pad: 0,
    }
}

fn policy_value(e: &PolicyEntry) -> abi::PolicyValue {
    abi::PolicyValue {
        rule_id: e.rule_id,
        action: if e.action == Action::Accept {
            abi::VERDICT_ACCEPT
        } else {
            abi::VERDICT_DROP
        },
        _pad: [0; 3],
    }
}

fn batch_error(name: &'static str) -> impl FnOnce(std::io::Error) -> DatapathError {
    move |source| DatapathError::Batch { name, source }
}

fn fd_of<K: aya::Pod, V: aya::Pod>(map: &impl IterableMap<K, V>) -> BorrowedFd<'_> {
    let data: &MapData = map.map();
    data.fd().as_fd()
}

fn joined<T>(r: std::thread::Result<T>) -> T {
    r.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// A new policy trie holding `entries`, written with one batch.
fn policy_trie(entries: &[PolicyEntry]) -> Result<PolicyTrie> {
    let trie = PolicyTrie::create(entries.len().max(1) as u32, NO_PREALLOC)
        .map_err(map_error("policies"))?;
    let keys: Vec<abi::PolicyKey> = entries.iter().map(policy_key).collect();
    let values: Vec<abi::PolicyValue> = entries.iter().map(policy_value).collect();
    sys::map_update_batch(
        fd_of(&trie),
        pod_bytes(&keys),
        pod_bytes(&values),
        keys.len(),
    )
    .map_err(batch_error("policy trie"))?;
    Ok(trie)
}

/// A new identity trie holding `compiled.identities`, written with one batch.
fn identity_trie(compiled: &CompiledPolicy) -> Result<IdentityTrie> {
    let ids = IdentityTrie::create(compiled.identities.len().max(1) as u32, NO_PREALLOC)
        .map_err(map_error("identities"))?;
    let keys: Vec<abi::LpmV4Key> = compiled
        .identities
        .iter()
        .map(|(net, _)| {
            let k = v4_key(net);
            abi::LpmV4Key {
                prefixlen: k.prefix_len(),
                addr: k.data(),
            }
        })
        .collect();
    let values: Vec<u32> = compiled.identities.iter().map(|(_, id)| *id).collect();
    sys::map_update_batch(
        fd_of(&ids),
        pod_bytes(&keys),
        pod_bytes(&values),
        keys.len(),
    )
    .map_err(batch_error("identity trie"))?;
    Ok(ids)
}

/// Build every policy trie of `epoch`, then put them all into the outer map with one batch.
fn swap_policies(
    outer: BorrowedFd<'_>,
    compiled: &CompiledPolicy,
    epoch: u32,
) -> Result<(Duration, Duration)> {
    let t = Instant::now();
    let tries: Vec<PolicyTrie> = compiled
        .policies
        .values()
        .map(|entries| policy_trie(entries))
        .collect::<Result<_>>()?;
    let keys: Vec<abi::PolicyOuterKey> = compiled
        .policies
        .keys()
        .map(|&policy_id| abi::PolicyOuterKey { policy_id, epoch })
        .collect();
    let fds: Vec<u32> = tries.iter().map(|t| fd_of(t).as_raw_fd() as u32).collect();
    let filled = t.elapsed();
    sys::map_update_batch(outer, pod_bytes(&keys), pod_bytes(&fds), keys.len())
        .map_err(batch_error("policies"))?;
    Ok((filled, t.elapsed() - filled))
}

impl Datapath {
    /// Commit a whole compiled rule set atomically: the identity trie and every policy trie
    /// are built off to the side into the inactive epoch, then one write of the generation
    /// switches every CPU to them. Returns the new generation.
    pub fn apply(&mut self, compiled: &CompiledPolicy) -> Result<u32> {
        let start = Instant::now();
        let cfg = self.config.get(&0, 0).map_err(map_error("config"))?;
        let next = cfg.generation.wrapping_add(1).max(1);
        let epoch = next & 1;
        // Policies no interface uses any more leave this epoch now, the other one next time.
        let stale: Vec<abi::PolicyOuterKey> = self
            .policies
            .keys()
            .filter_map(|k| k.ok())
            .filter(|k| k.epoch == epoch && !compiled.policies.contains_key(&k.policy_id))
            .collect();
        let mut b = ApplyBreakdown {
            identities: compiled.identities.len(),
            policy_entries: compiled.policies.values().map(Vec::len).sum(),
            policies: compiled.policies.len(),
            outer_writes: 1
                + usize::from(!compiled.policies.is_empty())
                + usize::from(!stale.is_empty()),
            ..Default::default()
        };

        let policies = self.policies_fd.as_fd();
        let identities = &mut self.identities;
        let (ids_track, policy_track) = std::thread::scope(|s| {
            let ids_track = s.spawn(|| -> Result<(Duration, Duration)> {
                let t = Instant::now();
                let ids = identity_trie(compiled)?;
                let filled = t.elapsed();
                identities
                    .set(epoch, &ids, 0)
                    .map_err(map_error("identities"))?;
                Ok((filled, t.elapsed() - filled))
            });
            let removed =
                s.spawn(|| sys::map_delete_batch(policies, pod_bytes(&stale), stale.len()));
            let policy_track = swap_policies(policies, compiled, epoch);
            let removed = joined(removed.join()).map_err(batch_error("stale policies"));
            (
                joined(ids_track.join()),
                policy_track.and_then(|t| removed.map(|()| t)),
            )
        });
        (b.identities_fill, b.identities_swap) = ids_track?;
        (b.policies_fill, b.policies_swap) = policy_track?;

        let t = Instant::now();
        let mut cfg = self.config.get(&0, 0).map_err(map_error("config"))?;
        cfg.generation = next;
        self.config.set(0, cfg, 0).map_err(map_error("config"))?;
        self.current = Some(compiled.clone());
        b.flip = t.elapsed();
        b.total = start.elapsed();
        self.last_apply = Some(b);
        Ok(next)
    }

    /// Where the time of the last `apply` went.
    pub fn last_apply(&self) -> Option<ApplyBreakdown> {
        self.last_apply
    }
}
