//! The network configuration on stdin (spec "Section 1: Network configuration format").

use std::path::PathBuf;

use serde::Deserialize;
use tandem_common::cni::{self, GcAttachment};

use crate::env::validate_ifname;
use crate::error::PluginError;

/// The plugin's configuration. Unknown keys are ignored (runtimes add `runtimeConfig`,
/// `args`, `capabilities` …), except the ones that would silently not work (`ipam`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    pub cni_version: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    #[serde(default = "default_socket")]
    pub agent_socket: PathBuf,
    #[serde(default = "default_queue")]
    pub release_queue_dir: PathBuf,
    #[serde(default = "default_tenant_ifname")]
    pub tenant_if_name: String,
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Tenant of every pod on this network (for runtimes without Kubernetes namespaces, e.g.
    /// one podman network per tenant). `TANDEM_TENANT` in CNI_ARGS overrides it.
    #[serde(default)]
    pub tenant: Option<String>,
    /// How long ADD waits for the agent (which itself waits up to its pool's bound).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub prev_result: Option<serde_json::Value>,
    #[serde(rename = "cni.dev/valid-attachments", default)]
    pub valid_attachments: Option<Vec<GcAttachment>>,
    #[serde(default)]
    ipam: Option<serde_json::Value>,
}

fn default_socket() -> PathBuf {
    "/run/tandem/agent.sock".into()
}
fn default_queue() -> PathBuf {
    "/var/lib/tandem/release-queue".into()
}
fn default_tenant_ifname() -> String {
    "eth1".into()
}
fn default_timeout_ms() -> u64 {
    30_000
}

impl NetConf {
    /// Decode (code 6), check the version (code 1), then the fields (codes 2 and 7).
    pub fn parse(stdin: &[u8]) -> Result<NetConf, PluginError> {
        let conf: NetConf = serde_json::from_slice(stdin)
            .map_err(|e| PluginError::Decode(format!("network configuration: {e}")))?;
        conf.check_version()?;
        if let Some(ipam) = &conf.ipam {
            return Err(PluginError::UnsupportedField(format!(
                "ipam: {ipam} (tandem takes addresses from the node's ENIs; remove the ipam section)"
            )));
        }
        if conf.name.is_empty() {
            return Err(PluginError::InvalidConfig("\"name\" is missing".into()));
        }
        if conf.plugin_type != "tandem" {
            return Err(PluginError::InvalidConfig(format!(
                "\"type\" is {:?}, expected \"tandem\"",
                conf.plugin_type
            )));
        }
        validate_ifname(&conf.tenant_if_name)
            .map_err(|e| PluginError::InvalidConfig(format!("tenantIfName: {e}")))?;
        if let Some(mtu) = conf.mtu {
            if !(576..=9001).contains(&mtu) {
                return Err(PluginError::InvalidConfig(format!(
                    "mtu {mtu} is outside 576-9001"
                )));
            }
        }
        Ok(conf)
    }

    fn check_version(&self) -> Result<(), PluginError> {
        if !cni::is_supported(&self.cni_version) {
            return Err(PluginError::IncompatibleVersion(format!(
                "cniVersion {:?} is not supported; supported: {}",
                self.cni_version,
                cni::SUPPORTED_VERSIONS.join(", ")
            )));
        }
        Ok(())
    }

    /// Whether this config's version knows `since` (e.g. CHECK needs 0.4.0, GC 1.1.0).
    pub fn at_least(&self, since: &str) -> bool {
        cni::parse_version(&self.cni_version) >= cni::parse_version(since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::PluginError as E;

    fn parse(s: &str) -> Result<NetConf, PluginError> {
        NetConf::parse(s.as_bytes())
    }

    #[test]
    fn codes_follow_the_order_decode_version_fields() {
        assert!(matches!(parse("{"), Err(E::Decode(_))));
        assert!(matches!(
            parse(r#"{"cniVersion":"0.2.0","name":"n","type":"tandem"}"#),
            Err(E::IncompatibleVersion(_))
        ));
        assert!(matches!(
            parse(
                r#"{"cniVersion":"1.0.0","name":"n","type":"tandem","ipam":{"type":"host-local"}}"#
            ),
            Err(E::UnsupportedField(_))
        ));
        assert!(matches!(
            parse(r#"{"cniVersion":"1.0.0","name":"","type":"tandem"}"#),
            Err(E::InvalidConfig(_))
        ));
        assert!(matches!(
            parse(r#"{"cniVersion":"1.0.0","name":"n","type":"tandem","tenantIfName":"a/b"}"#),
            Err(E::InvalidConfig(_))
        ));
        let ok = parse(r#"{"cniVersion":"1.1.0","name":"n","type":"tandem","runtimeConfig":{}}"#)
            .unwrap();
        assert_eq!(ok.tenant_if_name, "eth1");
        assert!(ok.at_least("1.0.0") && !ok.at_least("1.2.0"));
    }
}
