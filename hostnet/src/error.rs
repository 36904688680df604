//! The one error type of this crate.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum HostnetError {
    /// The kernel refused a netlink request.
    #[error("{op}: {message}{advice}")]
    Netlink {
        /// What was tried, in `ip` syntax, e.g. `ip route add 10.0.0.5/32 dev tdm1234`.
        op: String,
        /// The errno the kernel answered (positive), 0 if none.
        errno: i32,
        message: String,
        advice: &'static str,
    },
    #[error("failed to open a netlink socket{ns}: {source}")]
    Socket { ns: String, source: io::Error },
    #[error("network namespace {path}: {op} failed: {source}")]
    Netns {
        path: PathBuf,
        op: &'static str,
        source: nix::Error,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("the thread entering {path} died")]
    ThreadDied { path: PathBuf },
    #[error("invalid MAC address {0:?}")]
    BadMac(String),
}

impl HostnetError {
    /// The errno of a netlink error, if this is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            HostnetError::Netlink { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    pub(crate) fn netlink(op: String, err: rtnetlink::Error) -> HostnetError {
        let errno = match &err {
            rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()).unwrap_or(0),
            _ => 0,
        };
        let message = if errno > 0 {
            io::Error::from_raw_os_error(errno).to_string()
        } else {
            err.to_string()
        };
        HostnetError::Netlink {
            op,
            errno,
            message,
            advice: advice(errno),
        }
    }
}

/// Advice for the errnos an operator meets, so a failed ADD says what to look at.
fn advice(errno: i32) -> &'static str {
    match errno {
        libc::EEXIST => {
            " (it already exists: a leftover of an earlier pod? `tandemctl mapping` compares)"
        }
        libc::ENODEV => " (no such device: was it deleted under us?)",
        libc::EPERM => " (needs CAP_NET_ADMIN in this namespace)",
        libc::ENETUNREACH => " (the gateway is not reachable from that device)",
        libc::ERANGE => " (the name is longer than 15 bytes?)",
        _ => "",
    }
}

pub type Result<T, E = HostnetError> = std::result::Result<T, E>;
