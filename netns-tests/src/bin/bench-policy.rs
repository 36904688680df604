//! `bench-policy`: security-group enforcement cost (no policy, Tandem with N rules, iptables
//! stateless and stateful with the same rules) on a veth path, and the time to apply a
//! 10,000-rule change; prints a markdown table. Exit status 0 if the run completed (and, with
//! `--enforce-targets`, every target was met), 1 otherwise.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tandem_lab::bench::{bench_policy, PolicyBenchOptions};

#[derive(Parser)]
#[command(
    name = "bench-policy",
    about = "Security groups: Tandem eBPF vs iptables on a veth path"
)]
struct Cli {
    /// CI smoke run: 1 s per cell, 10 and 1,000 rules only.
    #[arg(long)]
    quick: bool,
    /// Seconds per measure and configuration (default 3, quick 1).
    #[arg(long)]
    secs: Option<u32>,
    /// Passes over all configurations, median per cell (default 3, quick 1).
    #[arg(long)]
    rounds: Option<usize>,
    /// Rule counts of the Tandem and iptables rows (default 10,1000,10000; quick 10,1000).
    #[arg(long, value_delimiter = ',')]
    rule_counts: Option<Vec<usize>>,
    /// Leave out the iptables rows (e.g. a long no-policy vs Tandem A/B).
    #[arg(long)]
    no_iptables: bool,
    /// Only time the rule-set change (no traffic).
    #[arg(long)]
    apply_only: bool,
    /// Rule-set changes to time (default 5, quick 2).
    #[arg(long)]
    changes: Option<usize>,
    /// Fail when a target is missed.
    #[arg(long)]
    enforce_targets: bool,
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
    let mut opts = if cli.quick {
        PolicyBenchOptions::quick()
    } else {
        PolicyBenchOptions::default()
    };
    opts.traffic = !cli.apply_only;
    opts.iptables = !cli.no_iptables;
    if let Some(counts) = cli.rule_counts {
        opts.rule_counts = counts;
    }
    if let Some(n) = cli.rounds {
        opts.rounds = n.max(1);
    }
    if let Some(n) = cli.changes {
        opts.apply_changes = n.max(1);
    }
    if let Some(secs) = cli.secs {
        opts.secs = secs.max(1);
    }
    let report = bench_policy(&opts).context("policy benchmark")?;
    print!("{}", report.table());
    let ok = (cli.apply_only || report.all_nonzero())
        && (!cli.enforce_targets
            || (report.apply_target_met() && report.throughput_target_met().unwrap_or(true)));
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
