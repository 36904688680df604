//! DEL: release through the agent; when the agent is down, queue the release durably so the
//! runtime is never wedged and nothing leaks.

use tandem_common::api::{AttachmentKey, DelReply, DelRequest, PATH_DEL};
use tandem_common::release_queue;

use super::{client, Reply};
use crate::agent::CallError;
use crate::config::NetConf;
use crate::env::CniEnv;
use crate::error::PluginError;

pub async fn run(env: &CniEnv, conf: &NetConf) -> Result<Reply, PluginError> {
    let key = AttachmentKey {
        container_id: env.container_id.clone(),
        ifname: env.ifname.clone(),
    };
    let req = DelRequest {
        key: key.clone(),
        netns: (!env.netns.is_empty()).then(|| env.netns.clone().into()),
    };
    match client(conf).post::<_, DelReply>(PATH_DEL, &req).await {
        Ok(_) => Ok(Reply::Nothing),
        Err(CallError::Unreachable(why)) => {
            release_queue::enqueue(&conf.release_queue_dir, &key)
                .map_err(|e| PluginError::ReleaseQueue(format!("{e} (agent: {why})")))?;
            Ok(Reply::Nothing)
        }
        Err(other) => Err(other.into()),
    }
}
