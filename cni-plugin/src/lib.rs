//! `tandem`, the CNI plugin: parse the environment and configuration, ask the node agent,
//! print the result. It never calls the cloud and never touches netlink itself: the agent,
//! which holds the node's state, wires the pod.

pub mod agent;
pub mod cmd;
pub mod config;
pub mod env;
pub mod error;
pub mod output;
pub mod result;

use std::collections::BTreeMap;

use tandem_common::cni::{CniError, SPEC_VERSION};

use crate::cmd::Reply;
use crate::config::NetConf;
use crate::env::{CniEnv, Command};
use crate::error::PluginError;

/// Run one invocation. `Ok` is what to print on success (maybe nothing); `Err` the error
/// document, already carrying the version to answer in.
pub fn run(vars: &BTreeMap<String, String>, stdin: &[u8]) -> Result<Reply, CniError> {
    let env = CniEnv::from_vars(vars).map_err(|e| e.to_cni(SPEC_VERSION))?;
    if env.command == Command::Version {
        return Ok(cmd::version::run());
    }
    // Answer errors in the version the runtime speaks, when we can tell.
    let version = serde_json::from_slice::<serde_json::Value>(stdin)
        .ok()
        .and_then(|v| {
            v.get("cniVersion")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
        .filter(|v| tandem_common::cni::is_supported(v))
        .unwrap_or_else(|| SPEC_VERSION.to_string());
    let conf = NetConf::parse(stdin).map_err(|e| e.to_cni(&version))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            PluginError::AgentProtocol(format!("cannot start a runtime: {e}")).to_cni(&version)
        })?;
    rt.block_on(dispatch(&env, &conf))
        .map_err(|e| e.to_cni(&version))
}

async fn dispatch(env: &CniEnv, conf: &NetConf) -> Result<Reply, PluginError> {
    match env.command {
        Command::Add => cmd::add::run(env, conf).await,
        Command::Del => cmd::del::run(env, conf).await,
        Command::Check => cmd::check::run(env, conf).await,
        Command::Gc => cmd::gc::run(conf).await,
        Command::Status => cmd::status::run(conf).await,
        Command::Version => Ok(cmd::version::run()),
    }
}
