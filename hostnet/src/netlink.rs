//! A netlink route connection bound to one namespace.

use crate::error::{HostnetError, Result};

/// A handle on an rtnetlink socket. Cloning shares the socket.
#[derive(Clone)]
pub struct Netlink {
    pub(crate) handle: rtnetlink::Handle,
    /// A netlink socket runs one dump at a time (the kernel answers EBUSY to a second), so
    /// concurrent users of a shared socket take turns for dumps.
    pub(crate) dump: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Netlink {
    /// A connection in the calling thread's namespace, driven by the current tokio runtime.
    pub fn connect() -> Result<Netlink> {
        Netlink::connect_here("")
    }

    /// `ns` only names the namespace in errors.
    pub(crate) fn connect_here(ns: &str) -> Result<Netlink> {
        let (conn, handle, _) =
            rtnetlink::new_connection().map_err(|source| HostnetError::Socket {
                ns: if ns.is_empty() {
                    String::new()
                } else {
                    format!(" in {ns}")
                },
                source,
            })?;
        tokio::spawn(conn);
        Ok(Netlink {
            handle,
            dump: Default::default(),
        })
    }
}

/// Treat "already there" (or "already gone") as success: setup and teardown are idempotent.
pub(crate) fn tolerate(res: Result<()>, errno: i32) -> Result<()> {
    match res {
        Err(e) if e.errno() == Some(errno) => Ok(()),
        other => other,
    }
}
