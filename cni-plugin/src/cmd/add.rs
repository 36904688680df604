//! ADD: ask the agent for the pod's two interfaces and print the result.

use tandem_common::api::{AddReply, AddRequest, AttachmentKey, PodRef, PATH_ADD};

use super::{client, Reply};
use crate::config::NetConf;
use crate::env::CniEnv;
use crate::error::PluginError;
use crate::result;

pub async fn run(env: &CniEnv, conf: &NetConf) -> Result<Reply, PluginError> {
    if env.ifname == conf.tenant_if_name {
        return Err(PluginError::InvalidConfig(format!(
            "CNI_IFNAME and tenantIfName are both {:?}",
            env.ifname
        )));
    }
    let req = AddRequest {
        key: AttachmentKey {
            container_id: env.container_id.clone(),
            ifname: env.ifname.clone(),
        },
        netns: env.netns.clone().into(),
        tenant_ifname: conf.tenant_if_name.clone(),
        pod: PodRef {
            namespace: env.args.pod_namespace.clone(),
            name: env.args.pod_name.clone(),
            uid: env.args.pod_uid.clone(),
            infra_container_id: env.args.infra_container_id.clone(),
        },
        tenant: env.args.tenant.clone().or_else(|| conf.tenant.clone()),
        mtu: conf.mtu,
    };
    // The agent rolls back its own half-built state when it fails; nothing is left here.
    let reply: AddReply = client(conf).post(PATH_ADD, &req).await?;
    let res = result::build(
        &reply,
        &env.netns,
        &conf.cni_version,
        conf.prev_result.as_ref(),
    )?;
    Ok(Reply::Json(
        serde_json::to_value(res).expect("results serialise"),
    ))
}
