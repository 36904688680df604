//! `bench-cni`: the CNI exec-latency benchmark (tandem vs ptp + host-local) in a fresh lab;
//! prints a markdown table. Exit status: 0 if every invocation succeeded (and, with
//! `--enforce-targets`, every target was met), 1 otherwise.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tandem_lab::bench::{bench_cni, CniBenchOptions};
use tandem_lab::lab::{names, LabOptions};

#[derive(Parser)]
#[command(
    name = "bench-cni",
    about = "CNI exec latency: tandem vs ptp + host-local"
)]
struct Cli {
    /// ADDs (and DELs) per plugin.
    #[arg(long, default_value_t = 200)]
    iterations: usize,
    /// Pods alive at once (at most the agent's warm pool, 4).
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Where `tandem` and `tandem-agent` are; default: beside this executable.
    #[arg(long, env = "TANDEM_BIN_DIR")]
    bin_dir: Option<PathBuf>,
    /// Where the reference plugins are.
    #[arg(long, default_value = "/usr/lib/cni")]
    reference_dir: PathBuf,
    #[arg(long, default_value = names::RUN_ROOT)]
    run_root: PathBuf,
    /// Fail when a target is missed.
    #[arg(long)]
    enforce_targets: bool,
    /// Run the agents without the security-group datapath (no TCX attach per pod), to show
    /// what enforcement costs an ADD and a DEL.
    #[arg(long)]
    without_security_groups: bool,
}

#[expect(clippy::print_stdout, reason = "the table is this command's output")]
fn main() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let opts = CniBenchOptions {
        iterations: cli.iterations,
        batch: cli.batch,
        lab: LabOptions {
            bin_dir: cli.bin_dir,
            run_root: cli.run_root,
            agent_extra: cli
                .without_security_groups
                .then(|| serde_json::json!({"bpfRoot": null})),
            ..LabOptions::default()
        },
        reference_dir: cli.reference_dir,
    };
    let report = bench_cni(&opts).context("cni benchmark")?;
    print!("{}", report.table());
    let ok = report.all_succeeded() && (!cli.enforce_targets || report.targets_met());
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
