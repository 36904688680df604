//! What enforcement adds to a pod's start and end, per interface: the endpoint programs on
//! both directions of a veth, attached with TCX (the agent's way, links pinned) or with
//! legacy tc (clsact + cls_bpf through netlink), then the veth deleted, against a veth that
//! carries no program. All in a namespace of its own.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use aya::programs::tc::{self, NlOptions, TcAttachOptions};
use aya::programs::{SchedClassifier, TcAttachType};
use tandem_agent::policy::datapath::{sys, Datapath, Hook, Site};
use tandem_agent::policy::EndpointConfig;

use super::policy_topo::Topology;
use super::BenchError;
use crate::lab::netns;

/// How the programs go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    None,
    Tcx,
    LegacyTc,
}

impl Method {
    pub fn label(self) -> &'static str {
        match self {
            Method::None => "no program",
            Method::Tcx => "TCX, pinned links (Tandem)",
            Method::LegacyTc => "legacy tc (clsact + cls_bpf)",
        }
    }
}

/// Medians over the veths of one method.
#[derive(Debug, Clone, Copy)]
pub struct AttachRow {
    pub method: Method,
    /// Both directions of one veth; `None` without a program.
    pub attach: Option<Duration>,
    /// `ip link del` (process start included).
    pub delete: Duration,
}

/// Deletes the namespace however the run ends.
struct Scratch(String);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = netns::delete(&self.0);
    }
}

fn ip(args: &[&str]) -> Result<(), BenchError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| BenchError::Options(format!("ip {}: {e}", args.join(" "))))?;
    if !out.status.success() {
        return Err(BenchError::Options(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn dp_error(e: impl std::fmt::Display) -> BenchError {
    BenchError::Options(format!("datapath: {e}"))
}

/// Time `veths` veths per method in `<prefix>-attach`; `pin_root` is the datapath's bpffs.
pub fn bench_attach(
    dp: &mut Datapath,
    pin_root: &Path,
    prefix: &str,
    cfg: &EndpointConfig,
    veths: usize,
) -> Result<Vec<AttachRow>, BenchError> {
    let scratch = Scratch(format!("{prefix}-attach"));
    netns::create(&scratch.0)?;
    // Legacy tc attaches a program it finds pinned, as `tc ... bpf object-pinned` would.
    let mut legacy = Vec::new();
    for hook in Hook::ALL {
        let path = pin_root.join(format!("bench-legacy-{}", hook.program()));
        let fd = dp.program_fd(hook).map_err(dp_error)?;
        sys::obj_pin(fd, &path).map_err(dp_error)?;
        let prog = SchedClassifier::from_pin(&path).map_err(dp_error);
        let _ = std::fs::remove_file(&path);
        legacy.push((hook, prog?));
    }
    let rows = Topology::within(&scratch.0, || {
        [Method::None, Method::Tcx, Method::LegacyTc]
            .into_iter()
            .map(|m| time_method(dp, &mut legacy, cfg, m, veths))
            .collect::<Result<Vec<_>, _>>()
    })??;
    drop(scratch);
    Ok(rows)
}

/// On a thread inside the scratch namespace.
fn time_method(
    dp: &mut Datapath,
    legacy: &mut [(Hook, SchedClassifier)],
    cfg: &EndpointConfig,
    method: Method,
    veths: usize,
) -> Result<AttachRow, BenchError> {
    let (mut attach, mut delete) = (Vec::new(), Vec::new());
    for i in 0..veths {
        let name = format!("ha{i}");
        ip(&[
            "link",
            "add",
            &name,
            "type",
            "veth",
            "peer",
            "name",
            &format!("pa{i}"),
        ])?;
        let ifindex = nix::net::if_::if_nametoindex(name.as_str())
            .map_err(|e| BenchError::Options(format!("{name}: {e}")))?;
        let t = Instant::now();
        match method {
            Method::None => {}
            Method::Tcx => dp
                .attach_endpoint(ifindex, Site::HostVeth, cfg)
                .map_err(dp_error)?,
            Method::LegacyTc => {
                tc::qdisc_add_clsact(&name).map_err(dp_error)?;
                for (hook, prog) in legacy.iter_mut() {
                    let side = match hook {
                        Hook::FromPod => TcAttachType::Ingress,
                        Hook::ToPod => TcAttachType::Egress,
                    };
                    let options = TcAttachOptions::Netlink(NlOptions::default());
                    let id = prog
                        .attach_with_options(&name, side, options)
                        .map_err(dp_error)?;
                    // The filter goes with the device; nothing to detach afterwards.
                    std::mem::forget(prog.take_link(id).map_err(dp_error)?);
                }
            }
        }
        attach.push(t.elapsed());
        let t = Instant::now();
        ip(&["link", "del", &name])?;
        delete.push(t.elapsed());
        if method == Method::Tcx {
            dp.detach_endpoint(ifindex).map_err(dp_error)?;
        }
    }
    Ok(AttachRow {
        method,
        attach: (method != Method::None).then(|| median(attach)),
        delete: median(delete),
    })
}
