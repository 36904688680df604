//! CNI protocol types (spec 1.1.0, answering for 0.3.0 … 1.1.0).
//!
//! See the CNI spec, "Section 5: Result Types". What differs between versions is only the shape
//! of the result: `ips[].version` exists up to 0.4.0 and is gone from 1.0.0; the `mtu` of an
//! interface and the route fields `mtu`/`table`/`scope` are new in 1.1.0.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// Versions this plugin answers for, oldest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The version the plugin implements.
pub const SPEC_VERSION: &str = "1.1.0";

/// A CNI version as a comparable triple; `None` for anything malformed.
pub fn parse_version(version: &str) -> Option<(u32, u32, u32)> {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    let v = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(v)
}

/// Whether `version` is one this plugin answers for.
pub fn is_supported(version: &str) -> bool {
    SUPPORTED_VERSIONS.contains(&version)
}

/// The `cni.dev/valid-attachments` entries of a GC request (spec 1.1.0, "GC").
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GcAttachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// An interface of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The netns path for interfaces inside the container; absent for host-side ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

/// An address of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// "4" or "6"; only in 0.3.x and 0.4.0 results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// CIDR notation, e.g. `10.1.0.7/32`.
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// A route of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<Ipv4Addr>,
    /// 1.1.0 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    /// 1.1.0 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u8>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    fn is_empty(&self) -> bool {
        self == &Dns::default()
    }
}

/// The success result of ADD (and the `prevResult` of CHECK, DEL and chained plugins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniResult {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

impl CniResult {
    /// Reshape this result for `version`: the fields a version does not know are dropped and
    /// the fields it requires are filled in.
    pub fn shaped_for(mut self, version: &str) -> CniResult {
        let v = parse_version(version).unwrap_or((1, 1, 0));
        let pre_1_0 = v < (1, 0, 0);
        let pre_1_1 = v < (1, 1, 0);
        for ip in &mut self.ips {
            ip.version = pre_1_0.then(|| "4".to_string());
        }
        if pre_1_1 {
            for iface in &mut self.interfaces {
                iface.mtu = None;
            }
            for route in &mut self.routes {
                route.table = None;
                route.scope = None;
            }
        }
        self.cni_version = version.to_string();
        self
    }
}

/// The error result (spec "Error" section); printed on stdout with a non-zero exit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniError {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    pub code: u32,
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

/// The VERSION result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    #[serde(rename = "supportedVersions")]
    pub supported_versions: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CniResult {
        CniResult {
            cni_version: SPEC_VERSION.into(),
            interfaces: vec![Interface {
                name: "eth0".into(),
                mac: "02:00:00:00:00:01".into(),
                mtu: Some(1500),
                sandbox: Some("/run/netns/x".into()),
            }],
            ips: vec![IpConfig {
                version: None,
                address: "10.0.0.2/32".into(),
                gateway: Some(Ipv4Addr::new(169, 254, 1, 1)),
                interface: Some(0),
            }],
            routes: vec![Route {
                dst: "0.0.0.0/0".into(),
                gw: None,
                table: Some(100),
                scope: None,
            }],
            dns: Dns::default(),
        }
    }

    #[test]
    fn old_versions_carry_ip_version_and_lose_1_1_fields() {
        let r = sample().shaped_for("0.3.1");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["ips"][0]["version"], "4");
        assert!(json["interfaces"][0].get("mtu").is_none());
        assert!(json["routes"][0].get("table").is_none());
        assert!(json.get("dns").is_none());
    }

    #[test]
    fn v1_results_have_no_ip_version() {
        let json = serde_json::to_value(sample().shaped_for("1.0.0")).unwrap();
        assert!(json["ips"][0].get("version").is_none());
        let json = serde_json::to_value(sample().shaped_for("1.1.0")).unwrap();
        assert_eq!(json["interfaces"][0]["mtu"], 1500);
        assert_eq!(json["routes"][0]["table"], 100);
    }

    #[test]
    fn versions_parse_and_compare() {
        assert_eq!(parse_version("0.4.0"), Some((0, 4, 0)));
        assert_eq!(parse_version("1.1"), None);
        assert_eq!(parse_version("1.1.0.1"), None);
        assert!(parse_version("0.3.1") < parse_version("1.0.0"));
        assert!(is_supported("0.3.0") && !is_supported("0.2.0"));
    }
}
