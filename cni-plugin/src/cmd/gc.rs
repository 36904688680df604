//! GC (spec 1.1.0): release every attachment not in `cni.dev/valid-attachments`.

use tandem_common::api::{AttachmentKey, GcReply, GcRequest, PATH_GC};

use super::{client, Reply};
use crate::config::NetConf;
use crate::error::PluginError;

pub async fn run(conf: &NetConf) -> Result<Reply, PluginError> {
    if !conf.at_least("1.1.0") {
        return Err(PluginError::IncompatibleVersion(format!(
            "cniVersion {} does not allow GC (1.1.0 or later)",
            conf.cni_version
        )));
    }
    let valid = conf
        .valid_attachments
        .as_ref()
        .ok_or_else(|| PluginError::InvalidConfig("GC needs cni.dev/valid-attachments".into()))?
        .iter()
        .map(|a| AttachmentKey {
            container_id: a.container_id.clone(),
            ifname: a.ifname.clone(),
        })
        .collect();
    let _: GcReply = client(conf).post(PATH_GC, &GcRequest { valid }).await?;
    Ok(Reply::Nothing)
}
