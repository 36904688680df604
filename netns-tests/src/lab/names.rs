//! Names of everything one lab run creates, all derived from its per-run prefix.
//!
//! Every namespace is `<prefix>-<role>`, so `down --all` can find a crashed run's leftovers by name
//! alone, and two concurrent runs never collide.

use std::path::{Path, PathBuf};

use rand::Rng;

/// Where every run keeps its `lab.json`, config and sockets.
pub const RUN_ROOT: &str = "/run/tandem-lab";

/// The nodes of the standard lab: (node name, instance id, control IP).
pub const NODES: [(&str, &str, [u8; 4]); 2] = [
    ("n1", "i-n1", [10, 10, 0, 11]),
    ("n2", "i-n2", [10, 10, 0, 12]),
];

/// A fresh prefix: `tl` and four random hex digits.
pub fn random_prefix() -> String {
    format!("tl{:04x}", rand::rng().random::<u16>())
}

/// A prefix given by the user must stay short (it ends up in netns names) and shell-safe.
pub fn valid_prefix(prefix: &str) -> bool {
    (1..=12).contains(&prefix.len())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// True for a netns name a default-prefixed run (`tl` + 4 hex) created: `tl????-*`.
pub fn is_default_lab_netns(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() > 7
        && name.starts_with("tl")
        && b[2..6].iter().all(u8::is_ascii_hexdigit)
        && b[6] == b'-'
}

/// The names and paths of one run.
#[derive(Debug, Clone)]
pub struct LabNames {
    pub prefix: String,
    pub run_dir: PathBuf,
}

impl LabNames {
    pub fn new(prefix: &str, run_root: &Path) -> Self {
        Self {
            prefix: prefix.to_owned(),
            run_dir: run_root.join(prefix),
        }
    }

    pub fn netns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }
    pub fn vpc(&self) -> String {
        self.netns("vpc")
    }
    pub fn plat(&self) -> String {
        self.netns("plat")
    }
    pub fn inet(&self) -> String {
        self.netns("inet")
    }
    pub fn pod(&self, pod: &str) -> String {
        self.netns(&format!("pod-{pod}"))
    }

    pub fn record(&self) -> PathBuf {
        self.run_dir.join("lab.json")
    }
    pub fn topology(&self) -> PathBuf {
        self.run_dir.join("topology.json")
    }
    pub fn vpcsim_socket(&self) -> PathBuf {
        self.run_dir.join("vpcsim.sock")
    }
    pub fn vpcsim_log(&self) -> PathBuf {
        self.run_dir.join("vpcsim.log")
    }
    pub fn config_dir(&self) -> PathBuf {
        self.run_dir.join("config")
    }
    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.run_dir.join(node)
    }
    pub fn agent_socket(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("agent.sock")
    }
    pub fn agent_config(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("agent.json")
    }
    /// The bpffs the node's agent pins its datapath in.
    pub fn bpf_root(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("bpf")
    }
    pub fn agent_log(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("agent.log")
    }
    pub fn conflist(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("net.d/10-tandem.conflist")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        let p = random_prefix();
        assert!(valid_prefix(&p), "{p}");
        assert!(is_default_lab_netns(&format!("{p}-vpc")));
        assert!(!is_default_lab_netns("tlxyzw-vpc"));
        assert!(!is_default_lab_netns("tl12ab"));
        assert!(!valid_prefix("Bad-Prefix"));
    }
}
