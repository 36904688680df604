//! `sysctl -w`: writes under /proc/sys for the calling thread's network namespace.
//!
//! `/proc/sys/net` shows the namespace of the thread that opens the file, so call these on a
//! thread inside the intended namespace (see [`crate::NetNs::run`]).

use std::path::PathBuf;

use crate::error::{HostnetError, Result};

fn path(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(key.replace('.', "/"))
}

/// `sysctl -w KEY=VALUE`, e.g. `net.ipv4.conf.eth1.rp_filter`. Interface names with dots are
/// not supported (Tandem never creates any).
pub fn write(key: &str, value: &str) -> Result<()> {
    let p = path(key);
    std::fs::write(&p, value).map_err(|source| HostnetError::Io {
        op: "write",
        path: p,
        source,
    })
}

/// `sysctl KEY`.
pub fn read(key: &str) -> Result<String> {
    let p = path(key);
    std::fs::read_to_string(&p)
        .map(|s| s.trim().to_string())
        .map_err(|source| HostnetError::Io {
            op: "read",
            path: p,
            source,
        })
}
