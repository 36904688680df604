//! Pool benchmark (issue 3): with vpcsim's attach latency at real-cloud values, how fast are
//! ADDs from a warm pool, from an empty one, and how long until a burst of pods all have
//! their network, with warm target 0 and with warm target 10.
//!
//! Every ADD is the real `tandem` binary exec'd in node n1 with the runtime's environment; a
//! burst runs one thread per pod, each retrying code 11 as kubelet would.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use tandem_common::api::{PoolReply, PATH_POOL};
use tandem_common::http::UdsClient;

use super::{BenchError, Samples};
use crate::lab::http::block_on;
use crate::lab::{Lab, LabOptions, Pod};

const NODE: &str = "n1";

#[derive(Debug, Clone)]
pub struct PoolBenchOptions {
    pub attach_latency_ms: u64,
    /// Sequential ADDs measured from the warm pool.
    pub warm_adds: usize,
    /// Pods in a burst.
    pub burst: usize,
    pub lab: LabOptions,
}

impl Default for PoolBenchOptions {
    fn default() -> Self {
        PoolBenchOptions {
            attach_latency_ms: 2000,
            warm_adds: 100,
            burst: 50,
            lab: LabOptions::default(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct PoolBenchReport {
    pub attach_latency_ms: u64,
    pub warm: Samples,
    pub empty_with_room: Duration,
    pub empty_new_eni: Duration,
    pub burst: usize,
    pub burst_warm0: Duration,
    pub burst_warm10: Duration,
    pub failures: Vec<String>,
}

fn lab_with(opts: &PoolBenchOptions, warm: u32) -> Result<Lab, BenchError> {
    let mut lab = opts.lab.clone();
    lab.attach_latency_ms = opts.attach_latency_ms;
    lab.agent_pool = Some(json!({
        "warmIps": warm, "warmEnis": 0, "cooldownSecs": 0, "emptyWaitMs": 30000, "idleReleaseSecs": 3600
    }));
    Ok(Lab::up(lab)?)
}

fn pool(lab: &Lab) -> Result<PoolReply, BenchError> {
    let client = UdsClient::new(&lab.node(NODE)?.agent_socket);
    block_on(async move { client.get::<PoolReply>(PATH_POOL).await }).map_err(|e| {
        BenchError::Agent {
            node: NODE.into(),
            problem: e.to_string(),
        }
    })
}

/// Wait until `plane` has at least `free` free addresses (untimed set-up).
fn wait_free(lab: &Lab, plane: &str, free: u32) -> Result<(), BenchError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = pool(lab)?;
        if p.planes.iter().any(|x| x.plane == plane && x.free >= free) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(BenchError::Agent {
                node: NODE.into(),
                problem: format!("plane {plane} never reached {free} free addresses: {p:?}"),
            });
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// ADD until success, retrying code 11 like a runtime; the time to success.
fn add(lab: &Lab, pod: &Pod) -> Result<Duration, String> {
    let started = Instant::now();
    for _ in 0..20 {
        let out = lab.cni(pod, "ADD").map_err(|e| e.to_string())?;
        if out.success() {
            return Ok(started.elapsed());
        }
        if out.json.as_ref().and_then(|j| j["code"].as_u64()) != Some(11) {
            return Err(format!("{}: {}", pod.name, out.stdout));
        }
        thread::sleep(Duration::from_millis(100));
    }
    Err(format!("{}: still code 11 after 20 tries", pod.name))
}

fn one(
    lab: &Lab,
    name: &str,
    ns: &str,
    report: &mut PoolBenchReport,
) -> Result<(Pod, Duration), BenchError> {
    let pod = lab.new_pod(NODE, name, ns)?;
    let d = add(lab, &pod).unwrap_or_else(|e| {
        report.failures.push(e);
        Duration::ZERO
    });
    Ok((pod, d))
}

/// A burst of `n` concurrent ADDs; the time until the last one has its network.
fn burst(
    lab: Arc<Lab>,
    n: usize,
    ns: &str,
    report: &mut PoolBenchReport,
) -> Result<Duration, BenchError> {
    let pods: Vec<Pod> = (0..n)
        .map(|i| lab.new_pod(NODE, &format!("b{i}"), ns))
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let handles: Vec<_> = pods
        .into_iter()
        .map(|pod| {
            let lab = lab.clone();
            thread::spawn(move || {
                let r = add(&lab, &pod);
                (pod, r)
            })
        })
        .collect();
    let mut done = Vec::new();
    for h in handles {
        let (pod, r) = h.join().expect("burst thread");
        if let Err(e) = r {
            report.failures.push(e);
        }
        done.push(pod);
    }
    let took = started.elapsed();
    for pod in &done {
        let _ = lab.cni(pod, "DEL");
    }
    Ok(took)
}

/// Run every scenario, each on its own lab (torn down on return, also on error).
pub fn bench_pool(opts: &PoolBenchOptions) -> Result<PoolBenchReport, BenchError> {
    let mut report = PoolBenchReport {
        attach_latency_ms: opts.attach_latency_ms,
        burst: opts.burst,
        ..PoolBenchReport::default()
    };
    // Warm target 10: sequential ADDs from the warm pool, then the 50-pod burst.
    {
        let lab = Arc::new(lab_with(opts, 10)?);
        // The tenant plane starts on this node with its first pod (untimed).
        let (first, _) = one(&lab, "warmup", "acme", &mut report)?;
        wait_free(&lab, "acme", 10)?;
        wait_free(&lab, "control", 10)?;
        let mut pods = vec![first];
        for i in 0..opts.warm_adds {
            let (pod, d) = one(&lab, &format!("w{i}"), "acme", &mut report)?;
            report.warm.push(d);
            pods.push(pod);
            if pods.len() >= 20 {
                for p in pods.drain(..) {
                    let _ = lab.cni(&p, "DEL");
                }
                wait_free(&lab, "acme", 10)?;
                wait_free(&lab, "control", 10)?;
            }
        }
        for p in pods.drain(..) {
            let _ = lab.cni(&p, "DEL");
        }
        wait_free(&lab, "acme", 10)?;
        wait_free(&lab, "control", 10)?;
        report.burst_warm10 = burst(lab.clone(), opts.burst, "acme", &mut report)?;
    }
    // Warm target 0: the first pod of a tenant waits for its ENI (create + attach); a second
    // one, with the first still running, for one assign call on that ENI.
    {
        let lab = lab_with(opts, 0)?;
        let (p1, d) = one(&lab, "empty1", "globex", &mut report)?;
        report.empty_new_eni = d;
        let (p2, d) = one(&lab, "empty2", "globex", &mut report)?;
        report.empty_with_room = d;
        for p in [p1, p2] {
            let _ = lab.cni(&p, "DEL");
        }
    }
    // Warm target 0 on a fresh lab: nothing ready anywhere; the burst alone sizes the pools.
    {
        let lab = Arc::new(lab_with(opts, 0)?);
        report.burst_warm0 = burst(lab, opts.burst, "acme", &mut report)?;
    }
    Ok(report)
}

impl PoolBenchReport {
    pub fn burst_target(&self) -> Duration {
        Duration::from_millis(2 * self.attach_latency_ms + 1000)
    }

    pub fn targets_met(&self) -> bool {
        self.warm.percentile_ms(99.0) <= 20.0 && self.burst_warm10 <= self.burst_target()
    }

    pub fn table(&self) -> String {
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
        let [p50, _, p99] = self.warm.summary_ms();
        let ok = |b: bool| if b { "met" } else { "MISSED" }.to_string();
        let rows = vec![
            vec![
                format!(
                    "ADD from a warm pool ({} sequential, warm target 10)",
                    self.warm.len()
                ),
                format!("p50 {p50:.1} ms, p99 {p99:.1} ms"),
                "p99 ≤ 20 ms".into(),
                ok(p99 <= 20.0),
            ],
            vec![
                "ADD, pool empty, its ENI has room (one assign call)".into(),
                ms(self.empty_with_room),
                "-".into(),
                "-".into(),
            ],
            vec![
                "ADD, plane has no ENI on the node (create + attach)".into(),
                ms(self.empty_new_eni),
                "-".into(),
                "-".into(),
            ],
            vec![
                format!("burst of {} pods, warm target 0: all networked", self.burst),
                ms(self.burst_warm0),
                "-".into(),
                "-".into(),
            ],
            vec![
                format!(
                    "burst of {} pods, warm target 10: all networked",
                    self.burst
                ),
                ms(self.burst_warm10),
                format!("≤ 2 × attach + 1 s = {}", ms(self.burst_target())),
                ok(self.burst_warm10 <= self.burst_target()),
            ],
        ];
        let mut s = format!(
            "pool benchmark, vpcsim attach latency {} ms, node {NODE}, one run\n\n",
            self.attach_latency_ms
        );
        s += &super::markdown_table(&["scenario", "measured", "target", "result"], &rows);
        for f in &self.failures {
            s += &format!("\nfailure: {f}");
        }
        s
    }
}
