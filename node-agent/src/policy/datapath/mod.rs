//! The eBPF datapath: load (or adopt) the pinned programs and maps, commit compiled policies,
//! write endpoint entries and attach the programs to host veths with TCX.
//!
//! ```text
//! Datapath::open(opts)            load ebpf/endpoint.bpf.c; maps pinned under <root>/maps
//!                                 (adopted as they are when already pinned)
//! dp.apply(&compiled)             fill the inactive epoch, flip dp_config.generation
//! dp.attach_endpoint(ifx, site, &cfg)
//!                                 endpoint entry first, then TCX links pinned under <root>/links
//!                                 (host veth in the node netns, or an exclusive ENI in the pod's)
//! dp.detach_endpoint(ifx)         links, entry, conntrack entries of the endpoint
//! dp.trace(...)                   the verdict the committed tables give, with the rule
//! dp.run_time()                   time spent in the programs (while RunTimeStats is held)
//! ```

mod attach;
mod commit;
mod load;
mod maps;
pub mod pin;
pub mod ring;
mod runtime;
pub mod sys;

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use aya::maps::{Array, ArrayOfMaps, HashMap, HashOfMaps, LpmTrie, MapData, PerCpuArray};
use aya::Ebpf;

use super::abi;
use super::compile::CompiledPolicy;
use super::Timeouts;

pub use attach::{AttachKit, Hook, Site};
pub use commit::ApplyBreakdown;
pub use runtime::{RunTime, RunTimeStats};

#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    #[error("cannot prepare the bpffs at {path}: {source}")]
    Bpffs {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot load the endpoint programs: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("program {name}: {source}")]
    Program {
        name: &'static str,
        source: aya::programs::ProgramError,
    },
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        source: aya::maps::MapError,
    },
    #[error("program {name} missing from the object")]
    MissingProgram { name: &'static str },
    #[error("map {name} missing from the object")]
    MissingMap { name: &'static str },
    #[error("{op} on ifindex {ifindex}: {source}")]
    Link {
        op: &'static str,
        ifindex: u32,
        source: std::io::Error,
    },
    #[error("batched write of {name}: {source}")]
    Batch {
        name: &'static str,
        source: std::io::Error,
    },
    #[error("BPF_PROG_TEST_RUN: {0}")]
    TestRun(std::io::Error),
    #[error("cannot duplicate a map or program descriptor: {0}")]
    Dup(std::io::Error),
    #[error("cannot enable BPF run-time statistics: {0}")]
    Stats(aya::sys::SyscallError),
}

pub type Result<T, E = DatapathError> = std::result::Result<T, E>;

/// How to open the datapath.
#[derive(Debug, Clone)]
pub struct DatapathOptions {
    /// A bpffs (mounted here if it is not one): `/sys/fs/bpf/tandem` in production.
    pub pin_root: PathBuf,
    /// Conntrack capacity (LRU); only used when the map is created, not when adopted.
    pub conntrack_entries: u32,
    pub timeouts: Timeouts,
    /// Ring-buffer event budget per CPU.
    pub events_per_sec: u32,
    pub events_burst: u32,
}

impl DatapathOptions {
    pub fn new(pin_root: impl Into<PathBuf>) -> DatapathOptions {
        DatapathOptions {
            pin_root: pin_root.into(),
            conntrack_entries: 262_144,
            timeouts: Timeouts::default(),
            events_per_sec: 1000,
            events_burst: 100,
        }
    }
}

type PolicyTrie = LpmTrie<MapData, abi::PolicyKeyData, abi::PolicyValue>;
type IdentityTrie = LpmTrie<MapData, u32, u32>;

/// The loaded datapath. One per agent; methods take `&mut self` (single writer).
pub struct Datapath {
    opts: DatapathOptions,
    /// Whether `open` mounted the bpffs (tests unmount it).
    pub mounted_bpffs: bool,
    ebpf: Ebpf,
    endpoints: HashMap<MapData, u32, abi::EndpointConfig>,
    endpoints_fd: OwnedFd,
    config: Array<MapData, abi::DpConfig>,
    identities: ArrayOfMaps<MapData, IdentityTrie>,
    policies: HashOfMaps<MapData, abi::PolicyOuterKey, PolicyTrie>,
    policies_fd: OwnedFd,
    control_peers: LpmTrie<MapData, u32, u32>,
    conntrack: HashMap<MapData, abi::CtKey, abi::CtEntry>,
    conntrack_fd: OwnedFd,
    stats: PerCpuArray<MapData, u64>,
    rule_stats: PerCpuArray<MapData, abi::RuleCounter>,
    current: Option<CompiledPolicy>,
    last_apply: Option<ApplyBreakdown>,
}
