//! Named network namespaces (`/run/netns/<name>`), and running things inside them.
//!
//! Namespaces are created and deleted with `ip netns add/del`, exactly as a container runtime
//! does. Commands are entered into a namespace with `setns(2)` in a `pre_exec` hook rather than
//! `ip netns exec`, which also remounts `/sys` and hides `/sys/fs/bpf` (DESIGN.md §4). In-process
//! work (sysctls, sockets) runs on a fresh thread that enters the namespace and then exits, so no
//! shared or async runtime thread ever changes namespace (STYLE.md habit 5).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output};

use nix::sched::{setns, CloneFlags};

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("open netns {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("enter netns {name}: {source}")]
    Enter { name: String, source: nix::Error },
    #[error("run `{cmd}`: {source}")]
    Spawn { cmd: String, source: io::Error },
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Failed {
        cmd: String,
        status: String,
        stderr: String,
    },
    #[error("write sysctl {key}={value} in netns {name}: {source}")]
    Sysctl {
        name: String,
        key: String,
        value: String,
        source: io::Error,
    },
    #[error("thread working in netns {name} panicked")]
    Panicked { name: String },
}

/// The bind-mount path of a named namespace.
pub fn netns_path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

pub fn exists(name: &str) -> bool {
    netns_path(name).exists()
}

/// Every named namespace on the machine.
pub fn list() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// `ip netns add NAME` and `ip -n NAME link set lo up`.
pub fn create(name: &str) -> Result<(), NetnsError> {
    run(Command::new("ip").args(["netns", "add", name]))?;
    ip(name, &["link", "set", "lo", "up"])
}

/// `ip netns del NAME`; a namespace that is already gone is not an error.
pub fn delete(name: &str) -> Result<(), NetnsError> {
    if !exists(name) {
        return Ok(());
    }
    run(Command::new("ip").args(["netns", "del", name])).map(|_| ())
}

/// `ip -n NS ARGS...` (iproute2 enters the namespace itself, without remounting anything).
pub fn ip(ns: &str, args: &[&str]) -> Result<(), NetnsError> {
    run(Command::new("ip").arg("-n").arg(ns).args(args)).map(|_| ())
}

/// `ip -n NS -batch -`: many commands, one process (bringing a lab up is mostly `ip` calls).
pub fn ip_batch(ns: &str, lines: &[String]) -> Result<(), NetnsError> {
    use std::io::Write;
    use std::process::Stdio;
    let cmd = format!("ip -n {ns} -batch - <<{}", lines.join("; "));
    let mut child = Command::new("ip")
        .args(["-n", ns, "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| NetnsError::Spawn {
            cmd: cmd.clone(),
            source,
        })?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let script = lines.join("\n") + "\n";
    let written = stdin.write_all(script.as_bytes());
    drop(stdin);
    let out = child
        .wait_with_output()
        .map_err(|source| NetnsError::Spawn {
            cmd: cmd.clone(),
            source,
        })?;
    written.map_err(|source| NetnsError::Spawn {
        cmd: cmd.clone(),
        source,
    })?;
    check(&cmd, &out)
}

/// Run a command to completion; a non-zero exit is an error carrying its stderr.
pub fn run(cmd: &mut Command) -> Result<Output, NetnsError> {
    let text = format!("{cmd:?}").replace('"', "");
    let out = cmd.output().map_err(|source| NetnsError::Spawn {
        cmd: text.clone(),
        source,
    })?;
    check(&text, &out)?;
    Ok(out)
}

fn check(cmd: &str, out: &Output) -> Result<(), NetnsError> {
    if out.status.success() {
        return Ok(());
    }
    Err(NetnsError::Failed {
        cmd: cmd.to_owned(),
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    })
}

/// Make `cmd` start inside namespace `name` (and, if `new_session`, in a session of its own so
/// it outlives our terminal and can be signalled as a group). The namespace file is opened now;
/// the child only calls `setns`/`setsid`, both async-signal-safe.
pub fn enter_on_spawn(cmd: &mut Command, name: &str, new_session: bool) -> Result<(), NetnsError> {
    let path = netns_path(name);
    let file = File::open(&path).map_err(|source| NetnsError::Open { path, source })?;
    // SAFETY: the hook only makes raw syscalls (setns, setsid) on an fd the closure owns; it
    // allocates nothing and touches no lock, as required between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            if new_session && libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

/// Run `f` on a new thread that first enters namespace `name`; the thread ends with `f`, so
/// its namespace never leaks into other work. Sockets `f` creates stay in that namespace.
pub fn in_netns<T, F>(name: &str, f: F) -> Result<T, NetnsError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let path = netns_path(name);
    let file = File::open(&path).map_err(|source| NetnsError::Open { path, source })?;
    let owned = name.to_owned();
    std::thread::spawn(move || {
        setns(&file, CloneFlags::CLONE_NEWNET).map_err(|source| NetnsError::Enter {
            name: owned,
            source,
        })?;
        Ok(f())
    })
    .join()
    .map_err(|_| NetnsError::Panicked {
        name: name.to_owned(),
    })?
}

/// Write `net.*` sysctls inside namespace `name`; keys are dotted (`net.ipv4.ip_forward`).
/// `/proc/sys/net` shows the namespace of the thread that opens it, hence [`in_netns`].
pub fn sysctls(name: &str, kv: &[(&str, &str)]) -> Result<(), NetnsError> {
    let owned: Vec<(String, String)> = kv
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let ns = name.to_owned();
    in_netns(name, move || {
        for (key, value) in owned {
            let path = format!("/proc/sys/{}", key.replace('.', "/"));
            std::fs::write(&path, &value).map_err(|source| NetnsError::Sysctl {
                name: ns.clone(),
                key,
                value,
                source,
            })?;
        }
        Ok(())
    })?
}
