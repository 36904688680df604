//! VERSION: the versions this plugin answers for.

use tandem_common::cni::{VersionInfo, SPEC_VERSION, SUPPORTED_VERSIONS};

use super::Reply;

pub fn run() -> Reply {
    let info = VersionInfo {
        cni_version: SPEC_VERSION.to_string(),
        supported_versions: SUPPORTED_VERSIONS.iter().map(|v| v.to_string()).collect(),
    };
    Reply::Json(serde_json::to_value(info).expect("version info serialises"))
}
