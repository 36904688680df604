//! Load the endpoint programs, creating the pinned maps or adopting the ones a previous agent
//! left (aya opens a map pinned by name instead of creating it), then move the pinned links
//! onto the new programs atomically.

use std::os::fd::{AsFd, OwnedFd};

use aya::maps::{Array, ArrayOfMaps, HashMap, HashOfMaps, LpmTrie, Map, PerCpuArray};
use aya::programs::SchedClassifier;
use aya::EbpfLoader;

use super::attach::program_error;
use super::{pin, Datapath, DatapathError, DatapathOptions, Hook, Result};

static ENDPOINT_OBJ: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/endpoint.bpf.o"));

/// A descriptor of a hash map of our own, for the bpf(2) commands aya 0.14 lacks (batches).
fn second_fd(map: &Map, name: &'static str) -> Result<OwnedFd> {
    let data = match map {
        Map::HashMap(data) | Map::LruHashMap(data) | Map::HashOfMaps(data) => data,
        _ => return Err(DatapathError::MissingMap { name }),
    };
    data.fd()
        .as_fd()
        .try_clone_to_owned()
        .map_err(DatapathError::Dup)
}

pub(super) fn map_error(name: &'static str) -> impl FnOnce(aya::maps::MapError) -> DatapathError {
    move |source| DatapathError::Map { name, source }
}

impl Datapath {
    /// Load the datapath, or adopt the pinned state under `opts.pin_root`: maps keep their
    /// contents (endpoints, policies, conntrack) and pinned links switch to the new programs
    /// with one BPF_LINK_UPDATE each, so enforcement never stops.
    pub fn open(opts: DatapathOptions) -> Result<Datapath> {
        let mounted_bpffs =
            pin::prepare(&opts.pin_root).map_err(|source| DatapathError::Bpffs {
                path: opts.pin_root.clone(),
                source,
            })?;
        let maps_dir = pin::maps_dir(&opts.pin_root);
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(&maps_dir)
            .map_max_entries("conntrack", opts.conntrack_entries)
            .load(ENDPOINT_OBJ)?;
        for hook in Hook::ALL {
            let name = hook.program();
            let prog: &mut SchedClassifier = ebpf
                .program_mut(name)
                .ok_or(DatapathError::MissingProgram { name })?
                .try_into()
                .map_err(program_error(hook))?;
            prog.load().map_err(program_error(hook))?;
        }
        let mut take = |name: &'static str| -> Result<Map> {
            ebpf.take_map(name)
                .ok_or(DatapathError::MissingMap { name })
        };
        let endpoints_map = take("endpoints")?;
        // Endpoint entries are written through this, also without the Datapath (`AttachKit`).
        let endpoints_fd = second_fd(&endpoints_map, "endpoints")?;
        let endpoints = HashMap::try_from(endpoints_map).map_err(map_error("endpoints"))?;
        let config = Array::try_from(take("config")?).map_err(map_error("config"))?;
        let identities =
            ArrayOfMaps::try_from(take("identities")?).map_err(map_error("identities"))?;
        let policies_map = take("policies")?;
        // Kept for the batch commands aya 0.14 lacks (`commit`).
        let policies_fd = second_fd(&policies_map, "policies")?;
        let policies = HashOfMaps::try_from(policies_map).map_err(map_error("policies"))?;
        let control_peers =
            LpmTrie::try_from(take("control_peers")?).map_err(map_error("control_peers"))?;
        let conntrack_map = take("conntrack")?;
        // Read in batches (`maps`): a full conntrack is 262,144 entries.
        let conntrack_fd = second_fd(&conntrack_map, "conntrack")?;
        let conntrack = HashMap::try_from(conntrack_map).map_err(map_error("conntrack"))?;
        let stats = PerCpuArray::try_from(take("stats")?).map_err(map_error("stats"))?;
        let rule_stats =
            PerCpuArray::try_from(take("rule_stats")?).map_err(map_error("rule_stats"))?;
        let mut dp = Datapath {
            opts,
            mounted_bpffs,
            ebpf,
            endpoints,
            endpoints_fd,
            config,
            identities,
            policies,
            policies_fd,
            control_peers,
            conntrack,
            conntrack_fd,
            stats,
            rule_stats,
            current: None,
            last_apply: None,
        };
        dp.write_knobs()?;
        dp.adopt_links()?;
        Ok(dp)
    }

    /// Timeouts and event budget from the options; the generation (and so the active epoch)
    /// of an adopted config is kept.
    fn write_knobs(&mut self) -> Result<()> {
        let mut cfg = self.config.get(&0, 0).map_err(map_error("config"))?;
        let t = self.opts.timeouts;
        cfg.tcp_syn_timeout_s = t.tcp_syn;
        cfg.tcp_established_timeout_s = t.tcp_established;
        cfg.tcp_closing_timeout_s = t.tcp_closing;
        cfg.udp_timeout_s = t.udp;
        cfg.icmp_timeout_s = t.icmp;
        cfg.other_timeout_s = t.other;
        cfg.events_per_sec = self.opts.events_per_sec;
        cfg.events_burst = self.opts.events_burst;
        self.config.set(0, cfg, 0).map_err(map_error("config"))
    }

    /// The generation of the committed rule set (0: nothing committed yet).
    pub fn generation(&self) -> Result<u32> {
        Ok(self
            .config
            .get(&0, 0)
            .map_err(map_error("config"))?
            .generation)
    }

    pub fn options(&self) -> &DatapathOptions {
        &self.opts
    }
}
