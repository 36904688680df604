//! Issue 4's benchmark: TCP throughput, 64-byte UDP packet rate and new TCP connections per
//! second across a veth path (peer → host namespace → pod, see `policy_topo`) with no policy,
//! with Tandem's eBPF datapath holding N security-group rules, and with iptables holding the
//! same N rules (stateless and stateful) in the host namespace's FORWARD chain; plus the wall
//! time of `Datapath::apply` for a change of a 10,000-rule set. One table per run.
//!
//! Everything runs in namespaces named `<prefix>-*` and a private bpffs under
//! `/run/tandem-bench-<prefix>`, removed on exit and on failure.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tandem_agent::policy::compile::{compile, CompiledPolicy};
use tandem_agent::policy::datapath::{
    pin, ApplyBreakdown, Datapath, DatapathOptions, RunTime, RunTimeStats, Site,
};

use super::policy_attach::bench_attach;
use super::policy_cost::ProgramCost;
use super::policy_report::{Measures, Row};
use super::policy_rules::{self, IptablesMode};
use super::policy_topo::Topology;
use super::policy_traffic::{self, IperfServer};
use super::BenchError;

pub use super::policy_report::{ApplyReport, PolicyBenchReport};

#[derive(Debug, Clone)]
pub struct PolicyBenchOptions {
    /// Seconds per measure and configuration.
    pub secs: u32,
    /// Rule counts of the Tandem and iptables rows.
    pub rule_counts: Vec<usize>,
    /// Include the iptables rows.
    pub iptables: bool,
    /// Size of the rule set whose change `apply` is timed, and how many changes.
    pub apply_rules: usize,
    pub apply_changes: usize,
    /// Measure traffic (false: only the rule-set change).
    pub traffic: bool,
    /// Passes over all configurations; each cell is the median over the passes, which damps
    /// the noise of a shared machine (passes interleave, so drift hits every row alike).
    pub rounds: usize,
    /// Veths per attach method in the attach-cost table.
    pub attach_veths: usize,
}

impl Default for PolicyBenchOptions {
    fn default() -> Self {
        PolicyBenchOptions {
            secs: 3,
            rule_counts: vec![10, 1_000, 10_000],
            iptables: true,
            apply_rules: 10_000,
            apply_changes: 5,
            traffic: true,
            rounds: 3,
            attach_veths: 20,
        }
    }
}

impl PolicyBenchOptions {
    /// The CI smoke test: 1 s per cell, 10 and 1,000 rules.
    pub fn quick() -> Self {
        PolicyBenchOptions {
            secs: 1,
            rule_counts: vec![10, 1_000],
            iptables: true,
            apply_rules: 10_000,
            apply_changes: 2,
            traffic: true,
            rounds: 1,
            attach_veths: 3,
        }
    }
}

/// What one row enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Config {
    NoPolicy,
    Tandem(usize),
    Iptables(IptablesMode, usize),
}

/// A private bpffs, unmounted and removed on drop.
struct PinRoot {
    dir: PathBuf,
    root: PathBuf,
}

impl Drop for PinRoot {
    fn drop(&mut self) {
        if pin::is_bpffs(&self.root).unwrap_or(false) {
            if let Err(e) = pin::unmount(&self.root) {
                tracing::warn!("policy bench: cannot unmount {}: {e}", self.root.display());
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn preflight() -> Result<(), BenchError> {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return Err(BenchError::Options(
            "the policy benchmark needs root".into(),
        ));
    }
    for (tool, pkg) in [
        ("iperf3", "iperf3"),
        ("iptables-restore", "iptables"),
        ("ss", "iproute2"),
    ] {
        let found = std::process::Command::new("which")
            .arg(tool)
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Err(BenchError::MissingTool {
                tool: tool.into(),
                advice: format!("apt-get install {pkg} (scripts/install-deps.sh)"),
            });
        }
    }
    Ok(())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Run every configuration in a fresh path, then time rule-set changes.
pub fn bench_policy(opts: &PolicyBenchOptions) -> Result<PolicyBenchReport, BenchError> {
    preflight()?;
    let prefix = format!("tpb{:05x}", rand::random::<u32>() & 0xfffff);
    let dir = PathBuf::from(format!("/run/tandem-bench-{prefix}"));
    let pins = PinRoot {
        root: dir.join("bpf"),
        dir,
    };
    let load_before = load_average();
    let mut dp = Datapath::open(DatapathOptions::new(&pins.root)).map_err(dp_error)?;
    let mut configs = vec![Config::NoPolicy];
    configs.extend(opts.rule_counts.iter().map(|&n| Config::Tandem(n)));
    let modes = [IptablesMode::Stateless, IptablesMode::Stateful];
    for mode in modes.into_iter().filter(|_| opts.iptables) {
        configs.extend(opts.rule_counts.iter().map(|&n| Config::Iptables(mode, n)));
    }
    let configs: Vec<Config> = configs.into_iter().filter(|_| opts.traffic).collect();
    let mut passes: Vec<Vec<Row>> = vec![Vec::new(); configs.len()];
    for round in 0..opts.rounds.max(1) {
        for (i, &config) in configs.iter().enumerate() {
            tracing::info!("policy bench: round {round}, {config:?}");
            passes[i].push(run_config(&mut dp, &prefix, config, opts.secs, false)?.0);
        }
    }
    let rows = passes.into_iter().map(Row::median).collect();
    let costs = cost_passes(&mut dp, &prefix, &configs, opts.secs)?;
    let apply = [Spread::OnePolicy, Spread::Groups(10)]
        .into_iter()
        .map(|spread| time_changes(&mut dp, opts.apply_rules, spread, opts.apply_changes))
        .collect::<Result<Vec<_>, _>>()?;
    let attach = bench_attach(
        &mut dp,
        &pins.root,
        &prefix,
        &policy_rules::endpoint(1),
        opts.attach_veths,
    )?;
    drop(dp);
    drop(pins);
    Ok(PolicyBenchReport {
        prefix,
        secs: opts.secs,
        rounds: opts.rounds.max(1),
        rows,
        costs,
        apply,
        attach,
        load_before,
        load_after: load_average(),
    })
}

fn dp_error(e: impl std::fmt::Display) -> BenchError {
    BenchError::Options(format!("datapath: {e}"))
}

/// One more pass over the Tandem rows with BPF run-time statistics on.
fn cost_passes(
    dp: &mut Datapath,
    prefix: &str,
    configs: &[Config],
    secs: u32,
) -> Result<Vec<ProgramCost>, BenchError> {
    let tandem: Vec<Config> = configs
        .iter()
        .copied()
        .filter(|c| matches!(c, Config::Tandem(_)))
        .collect();
    if tandem.is_empty() {
        return Ok(Vec::new());
    }
    let _stats = RunTimeStats::enable().map_err(dp_error)?;
    let mut costs = Vec::new();
    for config in tandem {
        tracing::info!("policy bench: cost pass, {config:?}");
        costs.extend(run_config(dp, prefix, config, secs, true)?.1);
    }
    Ok(costs)
}

/// One configuration in a fresh path; with `cost`, also the programs' run time per measure
/// (Tandem rows, while run-time statistics are on).
fn run_config(
    dp: &mut Datapath,
    prefix: &str,
    config: Config,
    secs: u32,
    cost: bool,
) -> Result<(Row, Option<ProgramCost>), BenchError> {
    let topo = Topology::up(prefix)?;
    let start = Instant::now();
    let mut attached = None;
    let setup = match config {
        Config::NoPolicy => None,
        Config::Tandem(n) => {
            let compiled = compile(&policy_rules::policy_input(&policy_rules::rules(n, 0)))
                .map_err(dp_error)?;
            let t = Instant::now();
            dp.apply(&compiled).map_err(dp_error)?;
            let applied = t.elapsed();
            let cfg = policy_rules::endpoint(1);
            let ifx = topo.hpod_ifindex;
            Topology::within(&topo.host, || dp.attach_endpoint(ifx, Site::HostVeth, &cfg))?
                .map_err(dp_error)?;
            attached = Some(ifx);
            Some(applied)
        }
        Config::Iptables(mode, n) => {
            let script = policy_rules::iptables_script(&policy_rules::rules(n, 0), mode);
            topo.iptables_restore(&script)?;
            Some(start.elapsed())
        }
    };
    let probe = match config {
        Config::Tandem(rules) if cost => Some((&*dp, rules)),
        _ => None,
    };
    let measured = measure(&topo, secs, probe);
    if let Some(ifx) = attached {
        dp.detach_endpoint(ifx).map_err(dp_error)?;
    }
    let (measures, cost) = measured?;
    Ok((
        Row {
            config,
            setup,
            measures,
        },
        cost,
    ))
}

/// The three measures; with a probe, the programs' run time during each.
fn measure(
    topo: &Topology,
    secs: u32,
    probe: Option<(&Datapath, usize)>,
) -> Result<(Measures, Option<ProgramCost>), BenchError> {
    let run_time = || -> Result<RunTime, BenchError> {
        match probe {
            Some((dp, _)) => dp.run_time().map_err(dp_error),
            None => Ok(RunTime::default()),
        }
    };
    let server = IperfServer::start(topo)?;
    let t0 = run_time()?;
    let tcp_gbps = policy_traffic::tcp_gbps(topo, secs)?;
    let t1 = run_time()?;
    let udp_kpps = policy_traffic::udp_kpps(topo, secs)?;
    let t2 = run_time()?;
    drop(server);
    let conn = policy_traffic::conn_rate(topo, secs)?;
    let t3 = run_time()?;
    let measures = Measures {
        tcp_gbps,
        udp_kpps,
        conn_per_sec: conn.per_sec,
        conn_failed: conn.failed,
    };
    let cost = probe.map(|(_, rules)| ProgramCost {
        rules,
        tcp: t1.since(t0),
        udp: t2.since(t1),
        conn: t3.since(t2),
        connections: conn.connections,
        conn_elapsed: conn.elapsed,
    });
    Ok((measures, cost))
}

/// How the changed rules are spread: one policy, or `groups` groups in as many policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spread {
    OnePolicy,
    Groups(usize),
}

/// Alternate between two `n`-rule sets that differ in every rule but the matching three;
/// each `apply` after the first is a change.
fn time_changes(
    dp: &mut Datapath,
    n: usize,
    spread: Spread,
    changes: usize,
) -> Result<ApplyReport, BenchError> {
    let input = |v| {
        let rules = policy_rules::rules(n, v);
        match spread {
            Spread::OnePolicy => policy_rules::policy_input(&rules),
            Spread::Groups(g) => policy_rules::spread_input(&rules, g),
        }
    };
    let t = Instant::now();
    let sets: Vec<CompiledPolicy> = (0..2)
        .map(|v| compile(&input(v)))
        .collect::<Result<_, _>>()
        .map_err(dp_error)?;
    let compile_each = t.elapsed() / 2;
    dp.apply(&sets[0]).map_err(dp_error)?;
    let mut runs: Vec<(Duration, ApplyBreakdown)> = Vec::new();
    for i in 0..changes.max(1) {
        let t = Instant::now();
        dp.apply(&sets[(i + 1) % 2]).map_err(dp_error)?;
        let wall = t.elapsed();
        runs.push((wall, dp.last_apply().unwrap_or_default()));
    }
    runs.sort_by_key(|r| r.0);
    Ok(ApplyReport {
        rules: n,
        spread,
        compile: compile_each,
        median: runs[runs.len() / 2].0,
        max: runs[runs.len() - 1].0,
        changes: runs.len(),
        breakdown: runs[runs.len() / 2].1,
    })
}
