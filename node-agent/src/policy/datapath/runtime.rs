//! How long the kernel spends in the endpoint programs: BPF run-time statistics
//! (`BPF_ENABLE_STATS`), counted only while a [`RunTimeStats`] guard is alive, because timing
//! every run costs two clock reads per packet.

use std::os::fd::OwnedFd;
use std::time::Duration;

use aya::sys::{enable_stats, Stats};

use super::attach::{program_error, Hook};
use super::{Datapath, DatapathError, Result};

/// Keeps run-time statistics on for every program on the machine until dropped.
pub struct RunTimeStats {
    _enabled: OwnedFd,
}

impl RunTimeStats {
    pub fn enable() -> Result<RunTimeStats> {
        let fd = enable_stats(Stats::RunTime).map_err(DatapathError::Stats)?;
        Ok(RunTimeStats { _enabled: fd })
    }
}

/// Cumulative runs of the endpoint programs and the time spent in them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunTime {
    pub runs: u64,
    pub time: Duration,
}

impl RunTime {
    /// What ran between `earlier` and `self`.
    pub fn since(self, earlier: RunTime) -> RunTime {
        RunTime {
            runs: self.runs.saturating_sub(earlier.runs),
            time: self.time.saturating_sub(earlier.time),
        }
    }

    /// Mean time per run; zero when nothing ran.
    pub fn per_run(self) -> Duration {
        match self.runs {
            0 => Duration::ZERO,
            n => Duration::from_nanos((self.time.as_nanos() / u128::from(n)) as u64),
        }
    }
}

impl Datapath {
    /// Both hooks' programs together (all interfaces they are attached to).
    pub fn run_time(&self) -> Result<RunTime> {
        let mut total = RunTime::default();
        for hook in Hook::ALL {
            let info = self.classifier(hook)?.info().map_err(program_error(hook))?;
            total.runs += info.run_count();
            total.time += info.run_time();
        }
        Ok(total)
    }
}
