//! Daemons the lab starts (vpcsim, one agent per node): spawn detached, find again, stop.
//!
//! Each runs in a session of its own (`setsid`), so it survives `tandem-lab up` exiting and can
//! be signalled as a process group. A pid is recorded with its start time, so a later `down`
//! never signals a stranger that inherited a recycled pid.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::netns::{self, NetnsError};

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("binary {name} not found in {searched:?} (build it, or set TANDEM_BIN_DIR)")]
    NotFound {
        name: String,
        searched: Vec<PathBuf>,
    },
    #[error("open log {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("start {name} ({exe}): {source}")]
    Spawn {
        name: String,
        exe: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("{name} exited during start-up; see {log}")]
    Exited { name: String, log: PathBuf },
    #[error("{name} not ready after {timeout:?}; see {log}")]
    NotReady {
        name: String,
        timeout: Duration,
        log: PathBuf,
    },
}

/// A started daemon as `lab.json` remembers it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProcRecord {
    pub name: String,
    pub pid: i32,
    /// Field 22 of `/proc/<pid>/stat`, to recognise the same process later.
    pub start_time: u64,
    pub log: PathBuf,
}

/// Find `name` in `bin_dir`, `$TANDEM_BIN_DIR`, beside the running executable, or (for test
/// binaries in `target/*/deps/`) one directory up.
pub fn find_binary(name: &str, bin_dir: Option<&Path>) -> Result<PathBuf, ProcessError> {
    let mut dirs: Vec<PathBuf> = bin_dir.into_iter().map(Path::to_path_buf).collect();
    if let Some(d) = std::env::var_os("TANDEM_BIN_DIR") {
        dirs.push(PathBuf::from(d));
    }
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        if exe_dir.ends_with("deps") {
            dirs.extend(exe_dir.parent().map(Path::to_path_buf));
        }
        dirs.push(exe_dir);
    }
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| ProcessError::NotFound {
            name: name.to_owned(),
            searched: dirs,
        })
}

/// What to start, where, and where its output goes.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    pub name: String,
    pub exe: PathBuf,
    pub args: Vec<OsString>,
    /// Run inside this namespace; `None` stays in ours (vpcsim: it only runs `ip -n`).
    pub netns: Option<String>,
    pub log: PathBuf,
    pub env: Vec<(String, String)>,
}

pub fn spawn(spec: &SpawnSpec) -> Result<(Child, ProcRecord), ProcessError> {
    let log_err = |source| ProcessError::Log {
        path: spec.log.clone(),
        source,
    };
    let log: File = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)
        .map_err(log_err)?;
    let mut cmd = Command::new(&spec.exe);
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(log_err)?)
        .stderr(log);
    match &spec.netns {
        Some(ns) => netns::enter_on_spawn(&mut cmd, ns, true)?,
        // SAFETY: setsid is async-signal-safe and the hook touches nothing else.
        None => unsafe {
            cmd.pre_exec(|| match libc::setsid() {
                -1 => Err(std::io::Error::last_os_error()),
                _ => Ok(()),
            });
        },
    }
    let child = cmd.spawn().map_err(|source| ProcessError::Spawn {
        name: spec.name.clone(),
        exe: spec.exe.clone(),
        source,
    })?;
    let pid = child.id() as i32;
    let record = ProcRecord {
        name: spec.name.clone(),
        pid,
        start_time: start_time(pid).unwrap_or(0),
        log: spec.log.clone(),
    };
    Ok((child, record))
}

/// (state, start time) from `/proc/<pid>/stat`; the command name may contain spaces and ')'.
fn stat(pid: i32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    Some((state, fields.get(19)?.parse().ok()?))
}

pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|(_, t)| t)
}

/// The recorded process still runs (same pid *and* same start time, not a zombie).
pub fn is_alive(rec: &ProcRecord) -> bool {
    matches!(stat(rec.pid), Some((state, t)) if state != 'Z' && t == rec.start_time)
}

/// SIGTERM the process group, SIGKILL it after `grace`; reap it if it is our child.
pub fn stop(rec: &ProcRecord, child: Option<&mut Child>, grace: Duration) {
    if is_alive(rec) {
        let _ = killpg(Pid::from_raw(rec.pid), Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while is_alive(rec) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if is_alive(rec) {
            let _ = killpg(Pid::from_raw(rec.pid), Signal::SIGKILL);
        }
    }
    if let Some(child) = child {
        let _ = child.wait();
    }
}

/// SIGKILL the process (not its group: a crash of this one process) and reap it if it is our
/// child, else wait until it is gone.
pub fn kill(rec: &ProcRecord, child: Option<&mut Child>) {
    if is_alive(rec) {
        let _ = nix::sys::signal::kill(Pid::from_raw(rec.pid), Signal::SIGKILL);
    }
    match child {
        Some(child) => {
            let _ = child.wait();
        }
        None => {
            let deadline = Instant::now() + Duration::from_secs(5);
            while is_alive(rec) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Poll `ready` every 20 ms until it holds, the child exits, or `timeout` passes.
pub fn wait_ready(
    rec: &ProcRecord,
    child: &mut Child,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<(), ProcessError> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return Ok(());
        }
        if !matches!(child.try_wait(), Ok(None)) {
            return Err(ProcessError::Exited {
                name: rec.name.clone(),
                log: rec.log.clone(),
            });
        }
        if Instant::now() >= deadline {
            return Err(ProcessError::NotReady {
                name: rec.name.clone(),
                timeout,
                log: rec.log.clone(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
