//! CNI exec latency: the real `tandem` plugin (two interfaces per pod, wired by a warm agent)
//! against the reference `ptp` + `host-local` plugins (one interface per pod), on lab node n1.
//!
//! Every invocation is exec'd inside the node's namespace with the CNI environment a runtime
//! gives (`cni_exec`), on a pod namespace created beforehand. Only the plugin process is timed,
//! spawn → exit. The node's pool holds a few dozen addresses at most (vpcsim: 4 ENIs of 10
//! IPs), so the iterations run in rounds: `batch` ADDs, then their `batch` DELs, and the next
//! round starts once the agent's pool is back to at least `batch` free addresses (untimed), so
//! every timed ADD is served from the warm pool. Rounds of the two plugins alternate, so drift
//! on the machine hits both alike.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::{json, Value};
use tandem_common::api::{StatusReply, PATH_STATUS};

use super::{BenchError, Samples};
use crate::lab::cni_exec::{self, CniRequest};
use crate::lab::{http, Lab, LabOptions, Pod};

pub(super) const NODE: &str = "n1";
const TENANT_NS: &str = "acme";
/// How long a round waits for the agent to refill its pool before giving up.
const REFILL_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
pub struct CniBenchOptions {
    /// ADDs (and DELs) per plugin.
    pub iterations: usize,
    /// Pods alive at once; at most the agent's warm pool (`warmIps`, 4 by default).
    pub batch: usize,
    /// The lab to build (bin dir, run root); agents are always started.
    pub lab: LabOptions,
    /// Where `ptp` and `host-local` are.
    pub reference_dir: PathBuf,
}

impl Default for CniBenchOptions {
    fn default() -> Self {
        Self {
            iterations: 200,
            batch: 4,
            lab: LabOptions::default(),
            reference_dir: PathBuf::from("/usr/lib/cni"),
        }
    }
}

/// One plugin under test: how to invoke it, and what it measured.
#[derive(Debug, Clone)]
pub struct PluginRun {
    pub label: String,
    pub plugin: PathBuf,
    config: Value,
    k8s_namespace: &'static str,
    pub add: Samples,
    pub del: Samples,
}

#[derive(Debug, Clone)]
pub struct CniBenchReport {
    pub prefix: String,
    pub iterations: usize,
    pub batch: usize,
    pub tandem: PluginRun,
    pub reference: PluginRun,
    /// Every invocation that did not exit 0, with what it printed.
    pub failures: Vec<String>,
}

/// Build a lab, run the benchmark on node n1, tear the lab down (also on error).
pub fn bench_cni(opts: &CniBenchOptions) -> Result<CniBenchReport, BenchError> {
    if opts.iterations == 0 || opts.batch == 0 {
        return Err(BenchError::Options(
            "iterations and batch must be at least 1".into(),
        ));
    }
    preflight(&opts.reference_dir)?;
    let lab = Lab::up(LabOptions {
        start_agents: true,
        ..opts.lab.clone()
    })?;
    let tandem = lab.cni_bin_dir()?.join("tandem");
    let host_local_dir = lab.run_dir().join("bench-host-local");
    let mut tandem = PluginRun::new("tandem (2 ifs)", tandem, plugin_config(&lab)?, TENANT_NS);
    let mut reference = PluginRun::new(
        "ptp + host-local (1 if)",
        opts.reference_dir.join("ptp"),
        reference_config(&host_local_dir),
        "default",
    );
    let mut bench = Bench {
        lab: &lab,
        batch: opts.batch,
        next_pod: 0,
        tenant_plane: false,
        failures: Vec::new(),
    };
    // Warm-up, untimed: page cache, the agent's connections, the nat table for ipMasq.
    bench.round(&mut tandem, opts.batch, false)?;
    bench.round(&mut reference, opts.batch, false)?;
    let mut done = 0;
    while done < opts.iterations {
        let n = opts.batch.min(opts.iterations - done);
        bench.round(&mut tandem, n, true)?;
        bench.round(&mut reference, n, true)?;
        done += n;
    }
    let report = CniBenchReport {
        prefix: lab.prefix().to_owned(),
        iterations: opts.iterations,
        batch: opts.batch,
        tandem,
        reference,
        failures: bench.failures,
    };
    lab.teardown()?;
    Ok(report)
}

fn preflight(reference_dir: &Path) -> Result<(), BenchError> {
    for plugin in ["ptp", "host-local"] {
        if !reference_dir.join(plugin).exists() {
            return Err(BenchError::MissingPlugin {
                plugin: reference_dir.join(plugin).display().to_string(),
                advice: "apt-get install -y containernetworking-plugins".into(),
            });
        }
    }
    // ptp's ipMasq runs `iptables` (in the node's namespace only).
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("iptables").exists()));
    if !found {
        return Err(BenchError::MissingTool {
            tool: "iptables".into(),
            advice: "apt-get install -y iptables (ptp's ipMasq needs it)".into(),
        });
    }
    Ok(())
}

/// The node's conflist entry, as libcni hands it to the plugin.
fn plugin_config(lab: &Lab) -> Result<Value, BenchError> {
    let conflist = &lab.node(NODE)?.conflist;
    Ok(cni_exec::plugin_config(conflist).map_err(crate::lab::LabError::from)?)
}

/// The reference configuration of the CNI project's ptp documentation.
fn reference_config(data_dir: &Path) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "ref",
        "type": "ptp",
        "ipMasq": true,
        "ipam": {"type": "host-local", "subnet": "10.200.0.0/16", "dataDir": data_dir},
    })
}

impl PluginRun {
    fn new(label: &str, plugin: PathBuf, config: Value, k8s_namespace: &'static str) -> Self {
        Self {
            label: label.to_owned(),
            plugin,
            config,
            k8s_namespace,
            add: Samples::default(),
            del: Samples::default(),
        }
    }
}

struct Bench<'a> {
    lab: &'a Lab,
    batch: usize,
    next_pod: usize,
    /// Whether the tenant's plane exists yet (so its pool can be waited for).
    tenant_plane: bool,
    failures: Vec<String>,
}

impl Bench<'_> {
    /// `n` fresh pods (untimed), ADD each, DEL each, delete the pods (untimed).
    fn round(&mut self, run: &mut PluginRun, n: usize, timed: bool) -> Result<(), BenchError> {
        if run.k8s_namespace == TENANT_NS {
            self.wait_for_pool()?;
            // The agent creates the tenant's plane (its first ENI) on the tenant's first ADD.
            self.tenant_plane = true;
        }
        let mut pods = Vec::with_capacity(n);
        for _ in 0..n {
            self.next_pod += 1;
            let name = format!("b{}", self.next_pod);
            pods.push(self.lab.new_pod(NODE, &name, run.k8s_namespace)?);
        }
        for pod in &pods {
            if let Some(d) = self.exec(run, "ADD", pod)? {
                if timed {
                    run.add.push(d);
                }
            }
        }
        for pod in &pods {
            if let Some(d) = self.exec(run, "DEL", pod)? {
                if timed {
                    run.del.push(d);
                }
            }
        }
        for pod in pods {
            pod.delete()?;
        }
        Ok(())
    }

    /// One invocation; its duration if it succeeded, else the failure is recorded.
    fn exec(
        &mut self,
        run: &PluginRun,
        command: &str,
        pod: &Pod,
    ) -> Result<Option<Duration>, BenchError> {
        let req = CniRequest::for_pod(run.plugin.clone(), command, pod, run.config.clone());
        let out = cni_exec::run(&req).map_err(crate::lab::LabError::from)?;
        if out.success() {
            return Ok(Some(out.duration));
        }
        self.failures.push(format!(
            "{} {command} {}: {} stdout={} stderr={}",
            run.label,
            pod.name,
            out.status,
            out.stdout.trim(),
            out.stderr.trim()
        ));
        Ok(None)
    }

    /// Until the agent is ready and its control and (once it exists) tenant planes have
    /// `batch` free addresses.
    fn wait_for_pool(&self) -> Result<(), BenchError> {
        let socket = self.lab.node(NODE)?.agent_socket.clone();
        let deadline = Instant::now() + REFILL_TIMEOUT;
        let mut last = String::from("no answer");
        while Instant::now() < deadline {
            let s = socket.clone();
            let (code, body) =
                http::block_on(
                    async move { http::request(&s, Method::GET, PATH_STATUS, None).await },
                )?;
            if let Ok(status) = serde_json::from_slice::<StatusReply>(&body) {
                if code.is_success() && pool_ready(&status, self.batch, self.tenant_plane) {
                    return Ok(());
                }
                last = format!("{:?}", status.planes);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Err(BenchError::Agent {
            node: NODE.into(),
            problem: format!(
                "pool did not refill to {} free addresses in {REFILL_TIMEOUT:?} ({last}); \
                 use a batch of at most the agent's warmIps",
                self.batch
            ),
        })
    }
}

fn pool_ready(status: &StatusReply, batch: usize, tenant_plane: bool) -> bool {
    let free = |plane: &str| {
        status
            .planes
            .iter()
            .find(|p| p.plane == plane)
            .map_or(0, |p| p.free_ips as usize)
    };
    status.ready && free("control") >= batch && (!tenant_plane || free(TENANT_NS) >= batch)
}
