//! Invoking the CNI plugin exactly as a runtime does (CNI spec §3 "Execution Protocol"): in
//! the node's namespace, `CNI_*` in the environment, the network config on stdin, the result
//! on stdout.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::netns::{self, NetnsError};
use super::pod::Pod;

#[derive(Debug, thiserror::Error)]
pub enum CniExecError {
    #[error("read conflist {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("conflist {path}: {reason}")]
    Conflist { path: PathBuf, reason: String },
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("run {plugin}: {source}")]
    Spawn {
        plugin: PathBuf,
        source: std::io::Error,
    },
}

/// The first plugin of a conflist with `cniVersion` and `name` copied in, as libcni builds it.
pub fn plugin_config(conflist: &Path) -> Result<Value, CniExecError> {
    let text = std::fs::read_to_string(conflist).map_err(|source| CniExecError::Read {
        path: conflist.to_owned(),
        source,
    })?;
    let bad = |reason: &str| CniExecError::Conflist {
        path: conflist.to_owned(),
        reason: reason.to_owned(),
    };
    let list: Value = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
    let mut plugin = list
        .get("plugins")
        .and_then(|p| p.get(0))
        .cloned()
        .ok_or_else(|| bad("no plugins"))?;
    let obj = plugin
        .as_object_mut()
        .ok_or_else(|| bad("plugin is not an object"))?;
    for key in ["cniVersion", "name"] {
        obj.insert(
            key.to_owned(),
            list.get(key).cloned().unwrap_or(Value::Null),
        );
    }
    Ok(plugin)
}

/// One plugin invocation. Every field is public so tests can break any of them.
#[derive(Debug, Clone)]
pub struct CniRequest {
    pub plugin: PathBuf,
    /// The namespace the plugin runs in (the node's), `None` for ours.
    pub run_in_netns: Option<String>,
    /// The whole environment of the plugin (nothing else is inherited but `PATH`).
    pub env: BTreeMap<String, String>,
    /// Sent on stdin unless `raw_stdin` is set.
    pub config: Value,
    pub raw_stdin: Option<Vec<u8>>,
}

impl CniRequest {
    /// What a runtime sends for `pod`: CNI_IFNAME `eth0`, CNI_PATH = the plugin's directory.
    pub fn for_pod(plugin: PathBuf, command: &str, pod: &Pod, config: Value) -> Self {
        let cni_path = plugin.parent().map(Path::to_path_buf).unwrap_or_default();
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};\
             K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
            pod.k8s_namespace, pod.name, pod.container_id, pod.uid
        );
        let env = [
            ("CNI_COMMAND", command.to_owned()),
            ("CNI_CONTAINERID", pod.container_id.clone()),
            ("CNI_NETNS", pod.netns_path().display().to_string()),
            ("CNI_IFNAME", "eth0".to_owned()),
            ("CNI_PATH", cni_path.display().to_string()),
            ("CNI_ARGS", args),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Self {
            plugin,
            run_in_netns: Some(pod.node.netns.clone()),
            env,
            config,
            raw_stdin: None,
        }
    }

    /// Set (or add) one variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Leave one variable out.
    pub fn without_env(mut self, key: &str) -> Self {
        self.env.remove(key);
        self
    }
}

/// What the plugin did.
#[derive(Debug, Clone)]
pub struct CniOutcome {
    pub status: ExitStatus,
    pub stdout: String,
    /// `stdout` parsed, if it is JSON.
    pub json: Option<Value>,
    pub stderr: String,
    pub duration: Duration,
}

impl CniOutcome {
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

pub fn run(req: &CniRequest) -> Result<CniOutcome, CniExecError> {
    let mut cmd = Command::new(&req.plugin);
    cmd.env_clear()
        .envs(std::env::var_os("PATH").map(|p| ("PATH", p)))
        .envs(&req.env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(ns) = &req.run_in_netns {
        netns::enter_on_spawn(&mut cmd, ns, false)?;
    }
    let spawn_err = |source| CniExecError::Spawn {
        plugin: req.plugin.clone(),
        source,
    };
    let stdin = match &req.raw_stdin {
        Some(raw) => raw.clone(),
        None => serde_json::to_vec(&req.config).expect("json"),
    };
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(spawn_err)?;
    let mut pipe = child.stdin.take().expect("stdin is piped");
    // A plugin may exit without reading stdin (bad env): a broken pipe is its answer, not ours.
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&stdin);
    });
    let out = child.wait_with_output().map_err(spawn_err)?;
    let duration = started.elapsed();
    let _ = writer.join();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Ok(CniOutcome {
        status: out.status,
        json: serde_json::from_str(&stdout).ok(),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        duration,
    })
}
