//! Bringing a lab up and down.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Mutex, MutexGuard};

use hyper::Method;

use super::names::{self, LabNames, NODES};
use super::node::{self, NodeInfo};
use super::process::{self, ProcRecord, SpawnSpec};
use super::record::LabRecord;
use super::teardown::{teardown_record, STOP_GRACE};
use super::topology::Topology;
use super::{http, netns, vpc, LabError, LabOptions};
use crate::vpcsim::VpcsimClient;

/// A running lab. Dropping it tears everything down; [`Lab::teardown`] does the same and
/// reports what could not be removed; [`Lab::detach`] leaves it running (`tandem-lab up`).
#[derive(Debug)]
pub struct Lab {
    pub(super) names: LabNames,
    pub(super) options: LabOptions,
    topology: Topology,
    nodes: Vec<NodeInfo>,
    record: Mutex<LabRecord>,
    children: Mutex<Vec<Child>>,
    done: bool,
}

impl Lab {
    pub fn up(options: LabOptions) -> Result<Lab, LabError> {
        let prefix = options.prefix.clone().unwrap_or_else(names::random_prefix);
        if !names::valid_prefix(&prefix) {
            return Err(LabError::BadPrefix(prefix));
        }
        let names = LabNames::new(&prefix, &options.run_root);
        check_free(&names)?;
        std::fs::create_dir_all(&names.run_dir).map_err(|source| LabError::Dir {
            path: names.run_dir.clone(),
            source,
        })?;
        let topology = Topology::standard(&names, options.limits);
        let nodes = NODES
            .iter()
            .zip(&topology.instances)
            .map(|((node, ..), inst)| node::node_info(&names, node, inst))
            .collect();
        let record = LabRecord {
            prefix: prefix.clone(),
            run_dir: names.run_dir.clone(),
            vpcsim_socket: names.vpcsim_socket(),
            ..LabRecord::default()
        };
        record.save()?;
        // From here on, an error drops `lab`, which undoes whatever was done.
        let lab = Lab {
            names,
            options,
            topology,
            nodes,
            record: Mutex::new(record),
            children: Mutex::new(Vec::new()),
            done: false,
        };
        lab.build()?;
        Ok(lab)
    }

    fn build(&self) -> Result<(), LabError> {
        let n = &self.names;
        let mut all = vec![n.vpc(), n.plat(), n.inet()];
        all.extend(self.nodes.iter().map(|node| node.netns.clone()));
        for ns in &all {
            self.create_netns(ns)?;
        }
        vpc::setup(n, &self.topology)?;
        for node in &self.nodes {
            node::prepare(&node.netns)?;
            let o = &self.options;
            node::write_files(n, node, o.agent_pool.as_ref(), o.agent_extra.as_ref())?;
        }
        node::write_config(n)?;
        self.topology.save(&n.topology())?;
        self.start_vpcsim()?;
        let ctl = self.topology.vswitch("vsw-ctl").expect("standard topology");
        for node in &self.nodes {
            node::configure_eth0(node, ctl.cidr.prefix_len(), ctl.gateway)?;
        }
        if self.options.start_agents {
            for node in &self.nodes {
                self.start_agent(&node.name)?;
            }
        }
        Ok(())
    }

    fn create_netns(&self, ns: &str) -> Result<(), LabError> {
        self.update_record(|r| r.namespaces.push(ns.to_owned()))?;
        netns::create(ns)?;
        Ok(())
    }

    pub(super) fn update_record(&self, f: impl FnOnce(&mut LabRecord)) -> Result<(), LabError> {
        let mut record = lock(&self.record);
        f(&mut record);
        record.save()?;
        Ok(())
    }

    fn start(&self, spec: SpawnSpec, ready: impl FnMut() -> bool) -> Result<(), LabError> {
        let (mut child, rec) = process::spawn(&spec)?;
        self.update_record(|r| r.processes.push(rec.clone()))?;
        let res = process::wait_ready(&rec, &mut child, self.options.ready_timeout, ready);
        lock(&self.children).push(child);
        Ok(res?)
    }

    fn start_vpcsim(&self) -> Result<(), LabError> {
        let n = &self.names;
        let exe = process::find_binary("tandem-lab", self.options.bin_dir.as_deref())?;
        let o = &self.options;
        let mut args: Vec<OsString> = vec!["vpcsim".into(), "--topology".into()];
        args.push(n.topology().into());
        args.extend(["--socket".into(), n.vpcsim_socket().into()]);
        let mut flag = |name: &str, value: String| args.extend([name.into(), value.into()]);
        flag("--attach-latency-ms", o.attach_latency_ms.to_string());
        flag("--throttle-rate", o.throttle_rate.to_string());
        flag("--throttle-burst", o.throttle_burst.to_string());
        flag("--fail-rate", o.fail_rate.to_string());
        flag("--partial-rate", o.partial_rate.to_string());
        if let Some(seed) = o.seed {
            flag("--seed", seed.to_string());
        }
        let spec = SpawnSpec {
            name: "vpcsim".to_owned(),
            exe,
            args,
            netns: None,
            log: n.vpcsim_log(),
            env: vec![("RUST_LOG".to_owned(), "info".to_owned())],
        };
        let client = self.vpcsim();
        self.start(spec, move || {
            let c = client.clone();
            http::block_on(async move { c.describe_vswitches().await.is_ok() })
        })
    }

    /// Start `tandem-agent` inside `node`'s namespace and wait until `GET /v1/status` is 200.
    pub fn start_agent(&self, node: &str) -> Result<(), LabError> {
        let info = self.node(node)?.clone();
        let exe = process::find_binary("tandem-agent", self.options.bin_dir.as_deref())?;
        let spec = SpawnSpec {
            name: format!("agent-{node}"),
            exe,
            args: vec!["--config".into(), info.agent_config.clone().into()],
            netns: Some(info.netns.clone()),
            log: self.names.agent_log(node),
            env: self.options.agent_env.clone(),
        };
        self.update_record(|r| {
            r.agent_sockets.retain(|(n, _)| n != node);
            r.agent_sockets
                .push((node.to_owned(), info.agent_socket.clone()));
        })?;
        let socket = info.agent_socket;
        self.start(spec, move || agent_ready(&socket))
    }

    /// Stop `node`'s agent (SIGTERM, SIGKILL after 2 s), e.g. to test DEL while it is down.
    pub fn stop_agent(&self, node: &str) -> Result<(), LabError> {
        self.end_agent(node, |rec, child| process::stop(rec, child, STOP_GRACE))
    }

    /// SIGKILL `node`'s agent and reap it: a crash, with no chance to clean up.
    pub fn kill_agent(&self, node: &str) -> Result<(), LabError> {
        self.end_agent(node, process::kill)
    }

    fn end_agent(
        &self,
        node: &str,
        end: impl Fn(&ProcRecord, Option<&mut Child>),
    ) -> Result<(), LabError> {
        self.node(node)?;
        let name = format!("agent-{node}");
        let recs: Vec<ProcRecord> = lock(&self.record)
            .processes
            .iter()
            .filter(|p| p.name == name)
            .cloned()
            .collect();
        let mut children = lock(&self.children);
        for rec in &recs {
            let child = children.iter_mut().find(|c| c.id() as i32 == rec.pid);
            end(rec, child);
            children.retain(|c| c.id() as i32 != rec.pid);
        }
        drop(children);
        self.update_record(|r| r.processes.retain(|p| p.name != name))
    }

    pub fn prefix(&self) -> &str {
        &self.names.prefix
    }
    pub fn run_dir(&self) -> &Path {
        &self.names.run_dir
    }
    pub fn names(&self) -> &LabNames {
        &self.names
    }
    pub fn topology(&self) -> &Topology {
        &self.topology
    }
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }
    pub fn node(&self, name: &str) -> Result<&NodeInfo, LabError> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| LabError::NoNode(name.to_owned()))
    }
    pub fn vpc_netns(&self) -> String {
        self.names.vpc()
    }
    pub fn plat_netns(&self) -> String {
        self.names.plat()
    }
    pub fn inet_netns(&self) -> String {
        self.names.inet()
    }
    pub fn vpcsim_socket(&self) -> PathBuf {
        self.names.vpcsim_socket()
    }
    pub fn vpcsim(&self) -> VpcsimClient {
        VpcsimClient::new(self.names.vpcsim_socket())
    }
    /// A copy of `lab.json` as it stands.
    pub fn record(&self) -> LabRecord {
        lock(&self.record).clone()
    }

    /// The directory holding `tandem` (export it as `CNI_PATH`).
    pub fn cni_bin_dir(&self) -> Result<PathBuf, LabError> {
        let plugin = process::find_binary("tandem", self.options.bin_dir.as_deref())?;
        Ok(plugin.parent().map(Path::to_path_buf).unwrap_or_default())
    }

    /// Tear everything down now and say what could not be removed.
    pub fn teardown(mut self) -> Result<(), LabError> {
        self.done = true;
        let errors = self.teardown_inner();
        if errors.is_empty() {
            return Ok(());
        }
        Err(LabError::Teardown {
            prefix: self.names.prefix.clone(),
            errors,
        })
    }

    fn teardown_inner(&mut self) -> Vec<String> {
        let record = lock(&self.record).clone();
        let mut children = std::mem::take(&mut *lock(&self.children));
        teardown_record(&record, &mut children)
    }

    /// Leave everything running (processes keep their own sessions); returns the record that
    /// `down` will use.
    pub fn detach(mut self) -> LabRecord {
        self.done = true;
        lock(&self.record).clone()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        for e in self.teardown_inner() {
            tracing::warn!(prefix = %self.names.prefix, error = %e, "lab teardown");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn check_free(names: &LabNames) -> Result<(), LabError> {
    let exists = |what: String| LabError::Exists {
        prefix: names.prefix.clone(),
        what,
    };
    if names.run_dir.exists() {
        return Err(exists(names.run_dir.display().to_string()));
    }
    let own = format!("{}-", names.prefix);
    match netns::list().into_iter().find(|n| n.starts_with(&own)) {
        Some(ns) => Err(exists(format!("netns {ns}"))),
        None => Ok(()),
    }
}

fn agent_ready(socket: &Path) -> bool {
    let socket = socket.to_owned();
    http::block_on(async move {
        matches!(
            http::request(&socket, Method::GET, "/v1/status", None).await,
            Ok((status, _)) if status.is_success()
        )
    })
}
