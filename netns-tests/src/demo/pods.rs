//! Starting and deleting the demo's pods through the real `tandem` binary.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::Value;

use super::DemoError;
use crate::isolation::PodParty;
use crate::lab::{Lab, Pod};

pub struct DemoPod {
    pub pod: Pod,
    pub tenant: String,
    pub control_ip: Ipv4Addr,
    pub tenant_ip: Ipv4Addr,
    pub add_time: Duration,
}

impl DemoPod {
    /// The pod as a party of the isolation matrix (its Kubernetes namespace names its tenant).
    pub fn party(&self) -> PodParty {
        PodParty {
            name: self.pod.name.clone(),
            k8s_namespace: self.pod.k8s_namespace.clone(),
            tenant: self.tenant.clone(),
            node: self.pod.node.name.clone(),
            netns: self.pod.netns.clone(),
            control_ip: self.control_ip,
            tenant_ip: self.tenant_ip,
        }
    }
}

/// The address the CNI result gives the pod-side interface `ifname`.
pub fn result_ip(result: &Value, ifname: &str) -> Option<Ipv4Addr> {
    let ifaces = result["interfaces"].as_array()?;
    let idx = ifaces
        .iter()
        .position(|i| i["name"] == ifname && i.get("sandbox").is_some())?;
    result["ips"].as_array()?.iter().find_map(|ip| {
        (ip["interface"].as_u64() == Some(idx as u64))
            .then(|| ip["address"].as_str()?.split('/').next()?.parse().ok())
            .flatten()
    })
}

pub fn start_all(lab: &Lab, layout: &[(&str, &str, &str)]) -> Result<Vec<DemoPod>, DemoError> {
    let mut pods = Vec::new();
    for (name, node, tenant) in layout {
        let pod = lab.new_pod(node, name, tenant)?;
        let outcome = lab.cni(&pod, "ADD")?;
        let fail = |what: String| DemoError::Pod {
            pod: name.to_string(),
            what,
        };
        let json = match (&outcome.json, outcome.success()) {
            (Some(j), true) => j.clone(),
            _ => {
                return Err(fail(format!(
                    "ADD failed: {} {}",
                    outcome.stdout, outcome.stderr
                )))
            }
        };
        let control_ip =
            result_ip(&json, "eth0").ok_or_else(|| fail("no eth0 address in the result".into()))?;
        let tenant_ip =
            result_ip(&json, "eth1").ok_or_else(|| fail("no eth1 address in the result".into()))?;
        pods.push(DemoPod {
            pod,
            tenant: tenant.to_string(),
            control_ip,
            tenant_ip,
            add_time: outcome.duration,
        });
    }
    Ok(pods)
}

pub fn delete_all(lab: &Lab, pods: Vec<DemoPod>) -> Result<(), DemoError> {
    for p in pods {
        let outcome = lab.cni(&p.pod, "DEL")?;
        if !outcome.success() {
            return Err(DemoError::Pod {
                pod: p.pod.name.clone(),
                what: format!("DEL failed: {}", outcome.stdout),
            });
        }
        // The runtime removes the sandbox after DEL.
        let name = p.pod.name.clone();
        p.pod.delete().map_err(|e| DemoError::Pod {
            pod: name,
            what: e.to_string(),
        })?;
    }
    Ok(())
}

pub fn table(pods: &[DemoPod]) -> String {
    let mut s = String::from("\npods, each started by the real `tandem` CNI binary (CNI ADD):\n");
    let _ = writeln!(
        s,
        "  {:<12}{:<6}{:<10}{:<18}{:<18}{:>8}",
        "POD", "NODE", "TENANT", "eth0 (control)", "eth1 (tenant)", "ADD ms"
    );
    for p in pods {
        let _ = writeln!(
            s,
            "  {:<12}{:<6}{:<10}{:<18}{:<18}{:>8.1}",
            p.pod.name,
            p.pod.node.name,
            p.tenant,
            p.control_ip.to_string(),
            p.tenant_ip.to_string(),
            p.add_time.as_secs_f64() * 1000.0
        );
    }
    s
}
