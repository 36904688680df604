//! CHECK: the agent compares the pod's network with what it built and with prevResult.

use ipnet::Ipv4Net;
use tandem_common::api::{AttachmentKey, CheckRequest, ExpectedInterface, PodRoute, PATH_CHECK};

use super::{client, Reply};
use crate::config::NetConf;
use crate::env::CniEnv;
use crate::error::PluginError;
use crate::result::parse_prev;

pub async fn run(env: &CniEnv, conf: &NetConf) -> Result<Reply, PluginError> {
    if !conf.at_least("0.4.0") {
        return Err(PluginError::IncompatibleVersion(format!(
            "cniVersion {} does not allow CHECK (0.4.0 or later)",
            conf.cni_version
        )));
    }
    let prev = conf
        .prev_result
        .as_ref()
        .ok_or_else(|| PluginError::InvalidConfig("CHECK needs prevResult".into()))?;
    let prev = parse_prev(prev)?;
    let ours = [env.ifname.as_str(), conf.tenant_if_name.as_str()];
    let mut interfaces = Vec::new();
    for (idx, iface) in prev.interfaces.iter().enumerate() {
        if iface.sandbox.as_deref() != Some(env.netns.as_str())
            || !ours.contains(&iface.name.as_str())
        {
            continue;
        }
        let mut addresses = Vec::new();
        for ip in prev.ips.iter().filter(|ip| ip.interface == Some(idx)) {
            let net: Ipv4Net = ip.address.parse().map_err(|e| {
                PluginError::Decode(format!("prevResult address {:?}: {e}", ip.address))
            })?;
            addresses.push(net);
        }
        interfaces.push(ExpectedInterface {
            name: iface.name.clone(),
            mac: iface.mac.clone(),
            addresses,
        });
    }
    if interfaces.len() != ours.len() {
        return Err(PluginError::Agent(tandem_common::api::ApiError {
            kind: tandem_common::api::ErrorKind::CheckFailed,
            message: format!(
                "prevResult lists {} of the interfaces {ours:?} in {}",
                interfaces.len(),
                env.netns
            ),
            details: String::new(),
        }));
    }
    let mut routes = Vec::new();
    for r in &prev.routes {
        let (Ok(dst), Some(gw)) = (r.dst.parse(), r.gw) else {
            continue;
        };
        routes.push(PodRoute {
            dst,
            gw,
            table: r.table,
        });
    }
    let req = CheckRequest {
        key: AttachmentKey {
            container_id: env.container_id.clone(),
            ifname: env.ifname.clone(),
        },
        netns: env.netns.clone().into(),
        interfaces,
        routes,
    };
    let _: serde_json::Value = client(conf).post(PATH_CHECK, &req).await?;
    Ok(Reply::Nothing)
}
