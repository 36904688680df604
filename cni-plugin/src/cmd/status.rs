//! STATUS (spec 1.1.0): can this plugin serve ADDs now?

use tandem_common::api::{StatusReply, PATH_STATUS};

use super::{client, Reply};
use crate::config::NetConf;
use crate::error::PluginError;

pub async fn run(conf: &NetConf) -> Result<Reply, PluginError> {
    if !conf.at_least("1.1.0") {
        return Err(PluginError::IncompatibleVersion(format!(
            "cniVersion {} does not allow STATUS (1.1.0 or later)",
            conf.cni_version
        )));
    }
    let status: StatusReply = client(conf)
        .get(PATH_STATUS)
        .await
        .map_err(|e| PluginError::NotAvailable(PluginError::from(e).to_string()))?;
    if !status.ready {
        return Err(PluginError::NotAvailable(format!(
            "the tandem agent on {} is not ready",
            status.node
        )));
    }
    Ok(Reply::Nothing)
}
