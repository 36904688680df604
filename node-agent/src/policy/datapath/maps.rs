//! Writing the maps: endpoint entries, control peers, conntrack and counters (the rule-set
//! commit is in `commit`).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, BorrowedFd};

use aya::maps::lpm_trie::Key;
use aya::maps::MapError;
use ipnet::Ipv4Net;

use super::load::map_error;
use super::{sys, Datapath, DatapathError, Result};
use crate::policy::abi;
use crate::policy::compile::{CompiledPolicy, Verdict};
use crate::policy::model::Dir;
use crate::policy::{ControlClass, EndpointConfig, Role};

/// Conntrack entries per batch syscall. A walk step fails (ENOSPC) only if one hash bucket
/// held more; with as many buckets as entries, a bucket holds a handful.
const CT_BATCH: usize = 4096;

/// One endpoint entry, written through the map's fd: shared by the [`Datapath`] and the
/// `AttachKit`, which writes without holding the datapath.
pub(super) fn write_endpoint(
    map: BorrowedFd<'_>,
    ifindex: u32,
    cfg: &EndpointConfig,
) -> Result<()> {
    let value = [cfg.to_abi()];
    sys::map_update_batch(map, &ifindex.to_ne_bytes(), sys::pod_bytes(&value), 1).map_err(
        |source| DatapathError::Batch {
            name: "endpoints",
            source,
        },
    )
}

pub(super) fn v4_key(net: &Ipv4Net) -> Key<u32> {
    Key::new(
        u32::from(net.prefix_len()),
        u32::from(net.network()).to_be(),
    )
}

impl Datapath {
    /// The committed rule set, if this agent committed one.
    pub fn current(&self) -> Option<&CompiledPolicy> {
        self.current.as_ref()
    }

    /// The verdict the committed tables give a new flow of an endpoint: `towards_pod` picks
    /// the direction, `remote` is the other side. `None` before the first `apply`.
    pub fn trace(
        &self,
        cfg: &EndpointConfig,
        towards_pod: bool,
        remote: Ipv4Addr,
        ip_proto: u8,
        port: u16,
    ) -> Option<Verdict> {
        let compiled = self.current.as_ref()?;
        match cfg.role {
            Role::Tenant { policy_id } => {
                let dir = if towards_pod {
                    Dir::Ingress
                } else {
                    Dir::Egress
                };
                Some(compiled.evaluate(policy_id, dir, remote, ip_proto, port))
            }
            Role::Control => None,
        }
    }

    /// Write (or replace) the entry of one interface without touching its links.
    pub fn set_endpoint(&self, ifindex: u32, cfg: &EndpointConfig) -> Result<()> {
        write_endpoint(self.endpoints_fd.as_fd(), ifindex, cfg)
    }

    pub(super) fn remove_endpoint_entry(
        &mut self,
        ifindex: u32,
    ) -> Result<Option<abi::EndpointConfig>> {
        let old = self.endpoints.get(&ifindex, 0).ok();
        match self.endpoints.remove(&ifindex) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(old),
            Err(e) if is_enoent(&e) => Ok(old),
            Err(source) => Err(map_error("endpoints")(source)),
        }
    }

    /// Classify a control-network prefix (the longest matching prefix decides).
    pub fn set_control_peer(&mut self, net: Ipv4Net, class: ControlClass) -> Result<()> {
        let v = match class {
            ControlClass::Platform => abi::CONTROL_PLATFORM,
            ControlClass::Pod => abi::CONTROL_POD,
        };
        self.control_peers
            .insert(&v4_key(&net.trunc()), v, 0)
            .map_err(map_error("control_peers"))
    }

    pub fn remove_control_peer(&mut self, net: Ipv4Net) -> Result<()> {
        match self.control_peers.remove(&v4_key(&net.trunc())) {
            Ok(()) => Ok(()),
            Err(e) if is_enoent(&e) => Ok(()),
            Err(source) => Err(map_error("control_peers")(source)),
        }
    }

    /// Every conntrack entry (key, entry), read in batches; empty (and logged) if the kernel
    /// refuses the walk.
    pub fn conntrack_entries(&self) -> Vec<(abi::CtKey, abi::CtEntry)> {
        self.read_conntrack().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the conntrack map");
            Vec::new()
        })
    }

    fn read_conntrack(&self) -> Result<Vec<(abi::CtKey, abi::CtEntry)>> {
        let err = |source| DatapathError::Batch {
            name: "conntrack",
            source,
        };
        let mut keys = vec![abi::CtKey::default(); CT_BATCH];
        let mut values = vec![abi::CtEntry::default(); CT_BATCH];
        let mut out = Vec::new();
        let mut from = None;
        loop {
            let (n, next) = sys::map_lookup_batch(
                self.conntrack_fd.as_fd(),
                from,
                sys::pod_bytes_mut(&mut keys),
                sys::pod_bytes_mut(&mut values),
                CT_BATCH,
            )
            .map_err(err)?;
            out.extend(keys[..n].iter().copied().zip(values[..n].iter().copied()));
            match next {
                Some(token) => from = Some(token),
                None => return Ok(out),
            }
        }
    }

    /// Delete the conntrack entries of the given endpoints (all if `None`); returns how many.
    pub fn flush_conntrack(&mut self, endpoints: Option<&BTreeSet<u32>>) -> Result<usize> {
        let keys: Vec<abi::CtKey> = self
            .read_conntrack()?
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| endpoints.is_none_or(|s| s.contains(&k.endpoint_id)))
            .collect();
        self.delete_conntrack_keys(&keys)
    }

    /// Delete these conntrack entries, a batch per syscall; an entry that went meanwhile
    /// (evicted, or deleted by someone else) is not an error. Returns how many were deleted
    /// (a batch cut short by such an entry counts only what was deleted after it).
    pub fn delete_conntrack_keys(&mut self, keys: &[abi::CtKey]) -> Result<usize> {
        let mut deleted = 0;
        for chunk in keys.chunks(CT_BATCH) {
            let bytes = sys::pod_bytes(chunk);
            match sys::map_delete_batch(self.conntrack_fd.as_fd(), bytes, chunk.len()) {
                Ok(()) => deleted += chunk.len(),
                // The batch stops at the missing key: finish the chunk one by one.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    for k in chunk {
                        if self.conntrack.remove(k).is_ok() {
                            deleted += 1;
                        }
                    }
                }
                Err(source) => {
                    return Err(DatapathError::Batch {
                        name: "conntrack",
                        source,
                    })
                }
            }
        }
        Ok(deleted)
    }

    /// Sum over CPUs of a `stats` counter (abi::STAT_*).
    pub fn stat(&self, index: u32) -> Result<u64> {
        let v = self.stats.get(&index, 0).map_err(map_error("stats"))?;
        Ok(v.iter().sum())
    }

    /// Sum over CPUs of a rule's counters.
    pub fn rule_counter(&self, rule_id: u32) -> Result<abi::RuleCounter> {
        let v = self
            .rule_stats
            .get(&rule_id, 0)
            .map_err(map_error("rule_stats"))?;
        Ok(v.iter()
            .fold(abi::RuleCounter::default(), |a, c| abi::RuleCounter {
                packets: a.packets + c.packets,
                bytes: a.bytes + c.bytes,
            }))
    }
}

fn is_enoent(e: &MapError) -> bool {
    match e {
        MapError::KeyNotFound => true,
        MapError::SyscallError(s) => s.io_error.raw_os_error() == Some(libc::ENOENT),
        _ => false,
    }
}
