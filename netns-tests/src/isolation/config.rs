//! What the lab's config directory says about isolation, read independently of the agent:
//! the security groups, each tenant's groups, environment and vSwitches, and per-pod group
//! overrides (`PodSecurityGroups`). The agent's own output (`Endpoint` documents) is ignored:
//! the expected matrix must not trust what it is checking.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::Deserialize;
use tandem_agent::model::{Environment, Metadata};
use tandem_agent::policy::compile::PolicySpec;
use tandem_agent::policy::model::{
    EgressAllow, EnvironmentPolicy, SecurityGroup, SecurityGroupSpec,
};

use super::IsolationError;
use crate::lab::topology::Topology;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantDoc {
    pub environment: Environment,
    pub v_switches: Vec<String>,
    #[serde(default)]
    pub security_groups: Vec<String>,
    #[serde(default)]
    pub egress_allow: Vec<EgressAllow>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodGroupsDoc {
    namespace: String,
    pod: String,
    security_groups: Vec<String>,
}

/// The isolation-relevant content of a config directory.
#[derive(Debug, Clone, Default)]
pub struct LabPolicy {
    pub groups: BTreeMap<String, SecurityGroup>,
    pub tenants: BTreeMap<String, TenantDoc>,
    /// (Kubernetes namespace, pod name) → groups replacing the tenant's.
    pub pod_groups: BTreeMap<(String, String), Vec<String>>,
    /// Tenant vSwitch id → CIDR (from the lab topology).
    pub vswitches: BTreeMap<String, Ipv4Net>,
    pub platform_cidrs: Vec<Ipv4Net>,
}

impl LabPolicy {
    /// Read every `*.yaml` of `dir`.
    pub fn load(
        dir: &Path,
        topology: &Topology,
        platform_cidrs: &[Ipv4Net],
    ) -> Result<LabPolicy, IsolationError> {
        let io = |what: String| move |source| IsolationError::Io { what, source };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io(format!("read {}", dir.display())))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        let mut lp = LabPolicy {
            vswitches: topology
                .vswitches
                .iter()
                .map(|v| (v.id.clone(), v.cidr))
                .collect(),
            platform_cidrs: platform_cidrs.to_vec(),
            ..LabPolicy::default()
        };
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(io(format!("read {}", f.display())))?;
            lp.add(&f, &text)?;
        }
        Ok(lp)
    }

    fn add(&mut self, path: &Path, text: &str) -> Result<(), IsolationError> {
        let bad = |e: serde_yaml::Error| IsolationError::Config {
            path: path.to_owned(),
            problem: e.to_string(),
        };
        for doc in serde_yaml::Deserializer::from_str(text) {
            let v = serde_yaml::Value::deserialize(doc).map_err(bad)?;
            let spec = v.get("spec").cloned().unwrap_or_default();
            let meta = || -> Result<Metadata, IsolationError> {
                serde_yaml::from_value(v.get("metadata").cloned().unwrap_or_default()).map_err(bad)
            };
            match v.get("kind").and_then(|k| k.as_str()) {
                Some("SecurityGroup") => {
                    let metadata = meta()?;
                    let spec: SecurityGroupSpec = serde_yaml::from_value(spec).map_err(bad)?;
                    self.groups
                        .insert(metadata.name.clone(), SecurityGroup { metadata, spec });
                }
                Some("TenantNetwork") => {
                    let t: TenantDoc = serde_yaml::from_value(spec).map_err(bad)?;
                    self.tenants.insert(meta()?.name, t);
                }
                Some("PodSecurityGroups") => {
                    let p: PodGroupsDoc = serde_yaml::from_value(spec).map_err(bad)?;
                    self.pod_groups
                        .insert((p.namespace, p.pod), p.security_groups);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The groups of a pod's tenant interface.
    pub fn pod_security_groups(&self, tenant: &str, k8s_namespace: &str, pod: &str) -> Vec<String> {
        let key = (k8s_namespace.to_owned(), pod.to_owned());
        match self.pod_groups.get(&key) {
            Some(g) => g.clone(),
            None => self
                .tenants
                .get(tenant)
                .map(|t| t.security_groups.clone())
                .unwrap_or_default(),
        }
    }

    /// The tenant's environment (DESIGN §3): `internal` is its vSwitches and the platform.
    pub fn environment(&self, tenant: &str) -> Option<EnvironmentPolicy> {
        let t = self.tenants.get(tenant)?;
        let mut internal: Vec<Ipv4Net> = t
            .v_switches
            .iter()
            .filter_map(|v| self.vswitches.get(v).copied())
            .collect();
        internal.extend(self.platform_cidrs.iter().copied());
        Some(EnvironmentPolicy {
            name: tenant.to_owned(),
            kind: t.environment,
            internal,
            egress_allow: t.egress_allow.clone(),
            // As the agent does: the control vSwitch (nodes, control interfaces) is never
            // reachable from a tenant interface.
            exclude: self.vswitches.get("vsw-ctl").into_iter().copied().collect(),
        })
    }

    /// A pod's tenant-interface policy.
    pub fn pod_policy(&self, tenant: &str, k8s_namespace: &str, pod: &str) -> Option<PolicySpec> {
        Some(PolicySpec {
            groups: self.pod_security_groups(tenant, k8s_namespace, pod),
            environment: self.environment(tenant)?,
        })
    }
}
