//! The connectivity matrix, measured with real ICMP echoes between lab namespaces.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::DemoPod;
use crate::lab::{probe, Lab};

/// The platform host (lab topology).
pub const PLATFORM_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 10);

pub struct Probe {
    pub from: String,
    pub to: String,
    pub path: &'static str,
    pub ok: bool,
}

pub struct Matrix {
    pub names: Vec<String>,
    pub probes: Vec<Probe>,
}

impl Matrix {
    /// platform → each pod's control IP; each pod → platform; each pod → every same-tenant
    /// pod on the other node over the tenant interface.
    pub fn measure(lab: &Lab, pods: &[DemoPod]) -> Matrix {
        let plat = lab.plat_netns();
        let ping = |ns: &str, dst, src| probe::ping(ns, dst, src).unwrap_or(false);
        let mut probes = Vec::new();
        for p in pods {
            probes.push(Probe {
                from: "platform".into(),
                to: p.pod.name.clone(),
                path: "eth0",
                ok: ping(&plat, p.control_ip, None),
            });
            probes.push(Probe {
                from: p.pod.name.clone(),
                to: "platform".into(),
                path: "eth0",
                ok: ping(&p.pod.netns, PLATFORM_IP, Some(p.control_ip)),
            });
            for q in pods {
                if q.tenant == p.tenant && q.pod.node.name != p.pod.node.name {
                    probes.push(Probe {
                        from: p.pod.name.clone(),
                        to: q.pod.name.clone(),
                        path: "eth1",
                        ok: ping(&p.pod.netns, q.tenant_ip, Some(p.tenant_ip)),
                    });
                }
            }
        }
        let mut names = vec!["platform".to_string()];
        names.extend(pods.iter().map(|p| p.pod.name.clone()));
        Matrix { names, probes }
    }

    pub fn failures(&self) -> Vec<String> {
        self.probes
            .iter()
            .filter(|p| !p.ok)
            .map(|p| format!("{} -> {} over {} failed", p.from, p.to, p.path))
            .collect()
    }

    /// Rows are sources, columns destinations; `ok`/`FAIL` where a path was measured, `.`
    /// where none was (isolation between tenants is the security groups' matrix).
    pub fn render(&self) -> String {
        let w = self.names.iter().map(|n| n.len()).max().unwrap_or(8) + 2;
        let mut s = format!(
            "\nconnectivity, measured with real packets ({} probes; ok = echo answered):\n  {:<w$}",
            self.probes.len(),
            "from \\ to"
        );
        for n in &self.names {
            let _ = write!(s, "{n:<w$}");
        }
        s.push('\n');
        for from in &self.names {
            let _ = write!(s, "  {from:<w$}");
            for to in &self.names {
                let cell = self
                    .probes
                    .iter()
                    .find(|p| &p.from == from && &p.to == to)
                    .map(|p| format!("{} {}", if p.ok { "ok" } else { "FAIL" }, p.path))
                    .unwrap_or_else(|| ".".into());
                let _ = write!(s, "{cell:<w$}");
            }
            s.push('\n');
        }
        s
    }
}
