//! The tenant model: Kubernetes-shaped objects (`TenantNetwork`, `Namespace`, later
//! `SecurityGroup`), read from YAML files in the lab and from CRDs in a cluster, so there is one
//! model and one parser (DESIGN §5).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_yaml::Error,
    },
    #[error("{path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Scheme {
    Independent,
    Shared,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum InterfaceMode {
    Shared,
    Exclusive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Environment {
    Closed,
    Controlled,
    Open,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

impl LabelSelector {
    /// Kubernetes semantics: an empty selector matches everything.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantNetworkSpec {
    pub scheme: Scheme,
    pub interface_mode: InterfaceMode,
    pub environment: Environment,
    pub v_switches: Vec<String>,
    #[serde(default)]
    pub security_groups: Vec<String>,
    #[serde(default)]
    pub namespace_selector: LabelSelector,
    /// `controlled` environments: what egress may reach beyond the tenant VPC and platform.
    #[serde(default)]
    pub egress_allow: Vec<crate::policy::model::EgressAllow>,
}

/// `kind: PodSecurityGroups`: the security groups of one pod's tenant interface, replacing its
/// tenant's (the lab's stand-in for a pod annotation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSecurityGroupsSpec {
    pub namespace: String,
    pub pod: String,
    pub security_groups: Vec<String>,
}

/// `kind: Endpoint`: a pod's tenant address and effective groups, published by the agent of
/// its node so the others know the members of every group (in a cluster: the Pod objects).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSpec {
    pub node: String,
    pub namespace: String,
    pub pod: String,
    pub tenant: String,
    pub ip: std::net::Ipv4Addr,
    pub security_groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantNetwork {
    pub name: String,
    pub spec: TenantNetworkSpec,
}

/// One YAML document, dispatched on `kind`.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind")]
enum Object {
    TenantNetwork {
        metadata: Metadata,
        spec: TenantNetworkSpec,
    },
    Namespace {
        metadata: Metadata,
    },
    SecurityGroup {
        metadata: Metadata,
        spec: crate::policy::model::SecurityGroupSpec,
    },
    PodSecurityGroups {
        spec: PodSecurityGroupsSpec,
    },
    Endpoint {
        spec: EndpointSpec,
    },
}

/// Everything the agent knows about tenants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    pub tenants: BTreeMap<String, TenantNetwork>,
    pub namespaces: BTreeMap<String, Metadata>,
    pub security_groups: BTreeMap<String, crate::policy::model::SecurityGroup>,
    /// (namespace, pod) → groups replacing the tenant's.
    pub pod_groups: BTreeMap<(String, String), Vec<String>>,
    /// Pods published by the agents of all nodes.
    pub endpoints: Vec<EndpointSpec>,
}

impl Model {
    /// Read every `*.yaml` / `*.yml` file of `dir` (multi-document files allowed).
    pub fn load(dir: &Path) -> Result<Model, ModelError> {
        let read_err = |source| ModelError::Read {
            path: dir.to_path_buf(),
            source,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(read_err)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        let mut model = Model::default();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|source| ModelError::Read {
                path: path.clone(),
                source,
            })?;
            model.add_documents(&path, &text)?;
        }
        Ok(model)
    }

    fn add_documents(&mut self, path: &Path, text: &str) -> Result<(), ModelError> {
        for doc in serde_yaml::Deserializer::from_str(text) {
            let value =
                serde_yaml::Value::deserialize(doc).map_err(|source| ModelError::Parse {
                    path: path.to_path_buf(),
                    source,
                })?;
            if value.is_null() {
                continue;
            }
            let obj: Object =
                serde_yaml::from_value(value).map_err(|source| ModelError::Parse {
                    path: path.to_path_buf(),
                    source,
                })?;
            match obj {
                Object::TenantNetwork { metadata, spec } => {
                    if spec.v_switches.is_empty() {
                        return Err(ModelError::Invalid {
                            path: path.to_path_buf(),
                            problem: format!("TenantNetwork {} has no vSwitches", metadata.name),
                        });
                    }
                    let t = TenantNetwork {
                        name: metadata.name.clone(),
                        spec,
                    };
                    self.tenants.insert(metadata.name, t);
                }
                Object::Namespace { metadata } => {
                    self.namespaces.insert(metadata.name.clone(), metadata);
                }
                Object::SecurityGroup { metadata, spec } => {
                    let sg = crate::policy::model::SecurityGroup {
                        metadata: metadata.clone(),
                        spec,
                    };
                    self.security_groups.insert(metadata.name, sg);
                }
                Object::PodSecurityGroups { spec } => {
                    self.pod_groups
                        .insert((spec.namespace, spec.pod), spec.security_groups);
                }
                Object::Endpoint { spec } => self.endpoints.push(spec),
            }
        }
        Ok(())
    }

    /// The security groups of a pod's tenant interface.
    pub fn pod_security_groups(
        &self,
        tenant: &TenantNetwork,
        namespace: &str,
        pod: &str,
    ) -> Vec<String> {
        self.pod_groups
            .get(&(namespace.to_string(), pod.to_string()))
            .cloned()
            .unwrap_or_else(|| tenant.spec.security_groups.clone())
    }

    /// The tenant of a pod: the one named explicitly, else the first (by name) whose namespace
    /// selector matches the pod's namespace labels.
    pub fn tenant_for(&self, explicit: Option<&str>, namespace: &str) -> Option<&TenantNetwork> {
        if let Some(name) = explicit {
            return self.tenants.get(name);
        }
        let labels = &self.namespaces.get(namespace)?.labels;
        self.tenants
            .values()
            .find(|t| t.spec.namespace_selector.matches(labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCS: &str = r#"
apiVersion: tandem.dev/v1alpha1
kind: TenantNetwork
metadata: {name: acme}
spec: {scheme: independent, interfaceMode: shared, environment: closed, vSwitches: [vsw-acme], namespaceSelector: {matchLabels: {tenant: acme}}}
---
apiVersion: v1
kind: Namespace
metadata: {name: acme-prod, labels: {tenant: acme}}
---
apiVersion: v1
kind: Namespace
metadata: {name: other}
"#;

    #[test]
    fn resolves_tenant_by_namespace_labels_or_name() {
        let mut m = Model::default();
        m.add_documents(Path::new("t.yaml"), DOCS).unwrap();
        assert_eq!(m.tenant_for(None, "acme-prod").unwrap().name, "acme");
        assert!(m.tenant_for(None, "other").is_none());
        assert!(m.tenant_for(None, "missing").is_none());
        assert_eq!(m.tenant_for(Some("acme"), "other").unwrap().name, "acme");
        assert!(m.tenant_for(Some("nope"), "acme-prod").is_none());
    }

    #[test]
    fn rejects_unknown_kinds_and_empty_vswitches() {
        let mut m = Model::default();
        assert!(m.add_documents(Path::new("x"), "kind: Bogus\n").is_err());
        let bad = "kind: TenantNetwork\nmetadata: {name: a}\nspec: {scheme: shared, interfaceMode: shared, environment: open, vSwitches: []}\n";
        assert!(m.add_documents(Path::new("x"), bad).is_err());
    }
}
