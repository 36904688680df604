//! Pods: namespaces created the way a container runtime creates them (`ip netns add`), plus
//! the identity a runtime hands the CNI plugin (container id, pod UID, Kubernetes namespace).

use std::path::PathBuf;

use rand::Rng;

use super::cni_exec::{self, CniOutcome, CniRequest};
use super::netns::{self, NetnsError};
use super::node::NodeInfo;
use super::{process, Lab, LabError};

/// A pod sandbox. Dropping it deletes its namespace (the lab's teardown does too).
#[derive(Debug)]
pub struct Pod {
    pub name: String,
    pub k8s_namespace: String,
    /// The netns name (`<prefix>-pod-<name>`); its path is [`Pod::netns_path`].
    pub netns: String,
    pub node: NodeInfo,
    /// 64 hex digits, like a sandbox id.
    pub container_id: String,
    /// A random UUID.
    pub uid: String,
    deleted: bool,
}

impl Pod {
    pub fn netns_path(&self) -> PathBuf {
        netns::netns_path(&self.netns)
    }

    /// Delete the namespace now (as a runtime does after CNI DEL).
    pub fn delete(mut self) -> Result<(), NetnsError> {
        self.deleted = true;
        netns::delete(&self.netns)
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        if !self.deleted {
            let _ = netns::delete(&self.netns);
        }
    }
}

fn random_uid() -> String {
    let b: [u8; 16] = rand::rng().random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

impl Lab {
    /// Create pod `name` of Kubernetes namespace `k8s_namespace` on `node` (`n1`, `n2`).
    pub fn new_pod(&self, node: &str, name: &str, k8s_namespace: &str) -> Result<Pod, LabError> {
        let node = self.node(node)?.clone();
        let ns = self.names.pod(name);
        if netns::exists(&ns) {
            return Err(LabError::PodExists(name.to_owned()));
        }
        self.update_record(|r| r.namespaces.push(ns.clone()))?;
        netns::create(&ns)?;
        let id: [u8; 32] = rand::rng().random();
        Ok(Pod {
            name: name.to_owned(),
            k8s_namespace: k8s_namespace.to_owned(),
            netns: ns,
            node,
            container_id: id.iter().map(|x| format!("{x:02x}")).collect(),
            uid: random_uid(),
            deleted: false,
        })
    }

    /// The CNI invocation a runtime would make for `pod` on its node; edit before running it.
    pub fn cni_request(&self, pod: &Pod, command: &str) -> Result<CniRequest, LabError> {
        let plugin = process::find_binary("tandem", self.options.bin_dir.as_deref())?;
        let config = cni_exec::plugin_config(&pod.node.conflist)?;
        Ok(CniRequest::for_pod(plugin, command, pod, config))
    }

    /// Run `command` (`ADD`, `DEL`, `CHECK`, …) of the real `tandem` binary for `pod`.
    pub fn cni(&self, pod: &Pod, command: &str) -> Result<CniOutcome, LabError> {
        Ok(cni_exec::run(&self.cni_request(pod, command)?)?)
    }
}
