//! TCX attachment of the endpoint programs to pod interfaces, with links pinned under
//! `<root>/links/<ifindex>-<program>` so they outlive the agent.

use std::collections::BTreeSet;
use std::os::fd::{AsFd, BorrowedFd};

use aya::programs::{ProgramError, SchedClassifier};

use super::sys::{self, TestRun};
use super::{pin, Datapath, DatapathError, Result};
use crate::policy::EndpointConfig;

/// One direction of a pod interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Packets the pod sends.
    FromPod,
    /// Packets delivered to the pod.
    ToPod,
}

/// Where a pod interface's programs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// The node end of a veth: the pod's packets arrive on its ingress.
    HostVeth,
    /// A device inside the pod's netns (an exclusive ENI): the pod's packets leave by its
    /// egress. It keeps the ifindex it had on the node, so ifindexes stay unique keys.
    PodDevice,
}

impl Hook {
    pub const ALL: [Hook; 2] = [Hook::FromPod, Hook::ToPod];

    pub fn program(self) -> &'static str {
        match self {
            Hook::FromPod => "from_pod",
            Hook::ToPod => "to_pod",
        }
    }

    fn attach_type(self, site: Site) -> u32 {
        match (self, site) {
            (Hook::FromPod, Site::HostVeth) | (Hook::ToPod, Site::PodDevice) => {
                sys::BPF_TCX_INGRESS
            }
            (Hook::ToPod, Site::HostVeth) | (Hook::FromPod, Site::PodDevice) => sys::BPF_TCX_EGRESS,
        }
    }
}

pub(super) fn program_error(hook: Hook) -> impl FnOnce(ProgramError) -> DatapathError {
    move |source| DatapathError::Program {
        name: hook.program(),
        source,
    }
}

impl Datapath {
    /// The loaded program of a hook (for BPF_PROG_TEST_RUN and tooling).
    pub fn program_fd(&self, hook: Hook) -> Result<BorrowedFd<'_>> {
        let fd = self.classifier(hook)?.fd().map_err(program_error(hook))?;
        Ok(fd.as_fd())
    }

    /// The loaded program of a hook.
    pub(super) fn classifier(&self, hook: Hook) -> Result<&SchedClassifier> {
        let name = hook.program();
        self.ebpf
            .program(name)
            .ok_or(DatapathError::MissingProgram { name })?
            .try_into()
            .map_err(program_error(hook))
    }

    /// Run one frame through a hook's program as if it arrived on the loopback device of the
    /// calling thread's netns (ifindex 1 in every netns): returns TC_ACT_*.
    pub fn test_run(&self, hook: Hook, frame: &[u8]) -> Result<u32> {
        let fd = self.program_fd(hook)?;
        sys::prog_test_run(
            fd,
            &TestRun {
                data: frame,
                ctx: &[],
            },
        )
        .map_err(DatapathError::TestRun)
    }

    /// Enforce `cfg` on the interface `ifindex` of the calling thread's netns (the agent runs
    /// in the node netns; for another netns, call this on a thread that entered it). The
    /// endpoint entry is written before the links exist, so the first packet the programs see
    /// is already policed; until both exist, keep the link down (strict start). Idempotent:
    /// existing pinned links are kept and switched to the current programs.
    pub fn attach_endpoint(
        &mut self,
        ifindex: u32,
        site: Site,
        cfg: &EndpointConfig,
    ) -> Result<()> {
        self.set_endpoint(ifindex, cfg)?;
        for hook in Hook::ALL {
            let prog = self.program_fd(hook)?;
            attach_pinned(&self.opts.pin_root, ifindex, site, hook, prog)?;
        }
        Ok(())
    }

    /// What attaching needs, detached from `&mut self`: each TCX attach waits for an RCU
    /// grace period (~10–15 ms here), so the agent runs the attaches of a pod's hooks in
    /// parallel, without holding the datapath while they wait.
    pub fn attach_kit(&self) -> Result<AttachKit> {
        let mut progs = Vec::new();
        for hook in Hook::ALL {
            let fd = self
                .program_fd(hook)?
                .try_clone_to_owned()
                .map_err(DatapathError::Dup)?;
            progs.push((hook, fd));
        }
        Ok(AttachKit {
            progs,
            endpoints: self.endpoints_fd.try_clone().map_err(DatapathError::Dup)?,
            root: self.opts.pin_root.clone(),
        })
    }
}

/// The programs, the endpoints map and the pin root: what a pod's ADD needs, without the
/// [`Datapath`] (so it never waits for a rule-set commit).
#[derive(Debug)]
pub struct AttachKit {
    progs: Vec<(Hook, std::os::fd::OwnedFd)>,
    endpoints: std::os::fd::OwnedFd,
    root: std::path::PathBuf,
}

impl AttachKit {
    /// Write (or replace) the entry of one interface.
    pub fn set_endpoint(&self, ifindex: u32, cfg: &EndpointConfig) -> Result<()> {
        super::maps::write_endpoint(self.endpoints.as_fd(), ifindex, cfg)
    }

    /// Attach and pin one hook of `ifindex` (write its endpoint entry first: strict start).
    /// Call on a thread in the device's netns.
    pub fn attach(&self, ifindex: u32, site: Site, hook: Hook) -> Result<()> {
        let prog = self
            .progs
            .iter()
            .find(|(h, _)| *h == hook)
            .map(|(_, fd)| fd.as_fd())
            .ok_or(DatapathError::MissingProgram {
                name: hook.program(),
            })?;
        attach_pinned(&self.root, ifindex, site, hook, prog)
    }
}

fn attach_pinned(
    root: &std::path::Path,
    ifindex: u32,
    site: Site,
    hook: Hook,
    prog: BorrowedFd<'_>,
) -> Result<()> {
    {
        let path = pin::link_path(root, ifindex, hook.program());
        let link_err = |op| {
            move |source| DatapathError::Link {
                op,
                ifindex,
                source,
            }
        };
        if let Ok(link) = sys::obj_get(&path) {
            match sys::link_update(link.as_fd(), prog) {
                // A pin left by a deleted device whose ifindex is being reused: replace it.
                Err(e) if e.raw_os_error() == Some(libc::ENOLINK) => {
                    let _ = std::fs::remove_file(&path);
                }
                other => return other.map_err(link_err("link update")),
            }
        }
        let link = sys::tcx_link_create(prog, ifindex, hook.attach_type(site))
            .map_err(link_err("tcx attach"))?;
        sys::obj_pin(link.as_fd(), &path).map_err(link_err("pin link"))
    }
}

impl Datapath {
    /// Stop enforcing on `ifindex`: unpin its links (which detaches them), remove the entry
    /// and the endpoint's conntrack entries. Best effort and idempotent (DEL semantics).
    pub fn detach_endpoint(&mut self, ifindex: u32) -> Result<()> {
        let mut first_err = None;
        for hook in Hook::ALL {
            let path = pin::link_path(&self.opts.pin_root, ifindex, hook.program());
            if let Err(e) = std::fs::remove_file(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    first_err.get_or_insert(DatapathError::Link {
                        op: "unpin link",
                        ifindex,
                        source: e,
                    });
                }
            }
        }
        if let Some(old) = self.remove_endpoint_entry(ifindex)? {
            self.flush_conntrack(Some(&BTreeSet::from([old.endpoint_id])))?;
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Point every pinned link at this agent's programs (one atomic BPF_LINK_UPDATE each).
    pub(super) fn adopt_links(&self) -> Result<()> {
        let dir = pin::links_dir(&self.opts.pin_root);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((ifx, program)) = name.split_once('-') else {
                continue;
            };
            let Ok(ifindex) = ifx.parse::<u32>() else {
                continue;
            };
            let Some(hook) = Hook::ALL.into_iter().find(|h| h.program() == program) else {
                continue;
            };
            let link = sys::obj_get(&entry.path()).map_err(|source| DatapathError::Link {
                op: "open pinned link",
                ifindex,
                source,
            })?;
            match sys::link_update(link.as_fd(), self.program_fd(hook)?) {
                Ok(()) => {}
                // The device went away while no agent ran (its pod was deleted): the pin is
                // all that is left of the link.
                Err(e) if e.raw_os_error() == Some(libc::ENOLINK) => {
                    let _ = std::fs::remove_file(entry.path());
                }
                Err(source) => {
                    return Err(DatapathError::Link {
                        op: "link update",
                        ifindex,
                        source,
                    })
                }
            }
        }
        Ok(())
    }
}
