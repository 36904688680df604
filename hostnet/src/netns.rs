//! Network namespace handles.
//!
//! A namespace is entered only on a dedicated OS thread that exists for that one job: `setns`
//! changes the calling thread, and doing it on a shared or async runtime thread would move
//! unrelated work into the pod's namespace (see the reference plugins' `pkg/ns` for the same rule).

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};

use crate::error::{HostnetError, Result};
use crate::netlink::Netlink;

/// An open handle on a network namespace (a file under `/run/netns`, `/proc/<pid>/ns/net` …).
#[derive(Debug)]
pub struct NetNs {
    file: File,
    path: PathBuf,
}

impl NetNs {
    /// Open the namespace at `path`; fails if it does not exist or is not a network namespace.
    pub fn open(path: impl AsRef<Path>) -> Result<NetNs> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|source| HostnetError::Io {
            op: "open network namespace",
            path: path.clone(),
            source,
        })?;
        let ns = NetNs { file, path };
        ns.check_is_netns()?;
        Ok(ns)
    }

    /// The namespace of the calling thread.
    pub fn current() -> Result<NetNs> {
        NetNs::open("/proc/thread-self/ns/net")
    }

    fn check_is_netns(&self) -> Result<()> {
        // NS_GET_NSTYPE would be exact; comparing the nsfs magic and asking `setns` with
        // CLONE_NEWNET on a scratch thread is heavier than needed. A bind-mounted netns file is
        // on nsfs (magic 0x6e736673).
        let st =
            nix::sys::statfs::fstatfs(self.file.as_fd()).map_err(|source| HostnetError::Netns {
                path: self.path.clone(),
                op: "statfs",
                source,
            })?;
        if st.filesystem_type().0 as i64 != 0x6e73_6673 {
            return Err(HostnetError::Netns {
                path: self.path.clone(),
                op: "check it is a namespace",
                source: nix::Error::EINVAL,
            });
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Run `f` on a fresh thread inside this namespace and return its result.
    pub fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        std::thread::scope(|s| {
            s.spawn(|| {
                self.enter_this_thread()?;
                Ok(f())
            })
            .join()
            .map_err(|_| HostnetError::ThreadDied {
                path: self.path.clone(),
            })?
        })
    }

    fn enter_this_thread(&self) -> Result<()> {
        setns(self.file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|source| HostnetError::Netns {
            path: self.path.clone(),
            op: "setns",
            source,
        })
    }

    /// A netlink connection whose socket lives in this namespace, driven by the current tokio
    /// runtime. The namespace is entered on a throw-away thread just to create the socket.
    pub async fn netlink(&self) -> Result<Netlink> {
        let rt = tokio::runtime::Handle::current();
        let file = self.file.try_clone().map_err(|source| HostnetError::Io {
            op: "dup",
            path: self.path.clone(),
            source,
        })?;
        let ns = NetNs {
            file,
            path: self.path.clone(),
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let made = ns.enter_this_thread().and_then(|()| {
                let _guard = rt.enter();
                Netlink::connect_here(&ns.path.display().to_string())
            });
            let _ = tx.send(made);
        });
        rx.await.map_err(|_| HostnetError::ThreadDied {
            path: self.path.clone(),
        })?
    }
}
