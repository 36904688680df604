//! Tearing labs down: from a live [`Lab`], from a `lab.json` left by `tandem-lab up` or a
//! crashed run, or on a signal.

use std::path::Path;
use std::process::Child;
use std::time::Duration;

use super::names;
use super::process;
use super::record::LabRecord;
use super::{netns, Lab, LabError};

pub(super) const STOP_GRACE: Duration = Duration::from_secs(2);

/// Stop the processes (newest first), delete the namespaces (recorded ones and any other
/// `<prefix>-*`), remove the run directory. Best effort: keeps going, returns what failed.
pub(super) fn teardown_record(record: &LabRecord, children: &mut [Child]) -> Vec<String> {
    let mut errors = Vec::new();
    for rec in record.processes.iter().rev() {
        let child = children.iter_mut().find(|c| c.id() as i32 == rec.pid);
        process::stop(rec, child, STOP_GRACE);
    }
    for (node, ..) in names::NODES {
        if let Err(e) = unmount_all(&record.run_dir.join(node).join("bpf")) {
            errors.push(e);
        }
    }
    let own = format!("{}-", record.prefix);
    let mut namespaces = record.namespaces.clone();
    namespaces.extend(netns::list().into_iter().filter(|n| n.starts_with(&own)));
    namespaces.sort();
    namespaces.dedup();
    for ns in namespaces {
        if let Err(e) = netns::delete(&ns) {
            errors.push(e.to_string());
        }
    }
    if record.run_dir.exists() {
        if let Err(e) = std::fs::remove_dir_all(&record.run_dir) {
            errors.push(format!("remove {}: {e}", record.run_dir.display()));
        }
    }
    // The run root too once the last lab has gone (fails harmlessly while another lab runs).
    if let Some(root) = record.run_dir.parent() {
        let _ = std::fs::remove_dir(root);
    }
    errors
}

/// Unmount whatever is mounted on `path` (the agents' bpffs; lazily, as a killed agent's maps
/// may still be referenced), so removing the run directory neither fails nor unpins through it.
fn unmount_all(path: &Path) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let Ok(target) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return Ok(());
    };
    // Stacked mounts (an agent that mounted again) come off one per call.
    for _ in 0..8 {
        // SAFETY: `target` is a valid NUL-terminated path that outlives the call.
        if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                // Not a mount point (any more), or no such directory: done.
                Some(libc::EINVAL) | Some(libc::ENOENT) => Ok(()),
                _ => Err(format!("umount {}: {e}", path.display())),
            };
        }
    }
    Err(format!("umount {}: still mounted", path.display()))
}

/// Tear down the lab `prefix` under `run_root` from its `lab.json` (or, without one, by name).
pub fn down(run_root: &Path, prefix: &str) -> Result<(), LabError> {
    let run_dir = run_root.join(prefix);
    let record = LabRecord::load(&run_dir).unwrap_or_else(|_| LabRecord {
        prefix: prefix.to_owned(),
        run_dir: run_dir.clone(),
        ..LabRecord::default()
    });
    let errors = teardown_record(&record, &mut []);
    if errors.is_empty() {
        return Ok(());
    }
    Err(LabError::Teardown {
        prefix: prefix.to_owned(),
        errors,
    })
}

/// Tear down every lab under `run_root` and every namespace named like a default-prefixed lab
/// (`tl????-*`); returns the prefixes it found.
pub fn down_all(run_root: &Path) -> Result<Vec<String>, LabError> {
    let mut prefixes: Vec<String> = std::fs::read_dir(run_root)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    for ns in netns::list() {
        if names::is_default_lab_netns(&ns) {
            prefixes.push(ns[..6].to_owned());
        }
    }
    prefixes.sort();
    prefixes.dedup();
    let mut errors = Vec::new();
    for p in &prefixes {
        if let Err(e) = down(run_root, p) {
            errors.push(e.to_string());
        }
    }
    if errors.is_empty() {
        return Ok(prefixes);
    }
    Err(LabError::Teardown {
        prefix: "*".to_owned(),
        errors,
    })
}

/// On SIGINT or SIGTERM, tear the lab `prefix` down (from its `lab.json`) and exit 130. For
/// the demo: call once after [`Lab::up`]; the `Lab` value itself may live anywhere.
pub fn teardown_on_signal(lab: &Lab) {
    let run_root = lab.options.run_root.clone();
    let prefix = lab.names.prefix.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("build a current-thread runtime");
        rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        });
        tracing::warn!(%prefix, "signal: tearing the lab down");
        if let Err(e) = down(&run_root, &prefix) {
            tracing::error!(error = %e, "teardown on signal");
        }
        std::process::exit(130);
    });
}
