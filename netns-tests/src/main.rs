//! `tandem-lab`: bring the emulated VPC lab up and down, and run its emulated cloud.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tandem_common::vpcsim::Faults;
use tandem_lab::lab::{self, Lab, LabOptions};
use tandem_lab::vpcsim::{self, SimOptions};

#[derive(Parser)]
#[command(name = "tandem-lab", about = "The emulated VPC lab (DESIGN.md §7)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the emulated cloud API on a unix socket (the lab starts this itself).
    Vpcsim {
        #[arg(long)]
        topology: PathBuf,
        #[arg(long)]
        socket: PathBuf,
        #[command(flatten)]
        faults: FaultArgs,
    },
    /// Build a lab and leave it running.
    Up {
        /// Default: `tl` + 4 random hex digits.
        #[arg(long)]
        prefix: Option<String>,
        /// Do not start `tandem-agent` on the nodes.
        #[arg(long)]
        no_agents: bool,
        #[command(flatten)]
        faults: FaultArgs,
        #[arg(long, env = "TANDEM_BIN_DIR")]
        bin_dir: Option<PathBuf>,
        #[arg(long, default_value = lab::names::RUN_ROOT)]
        run_root: PathBuf,
        /// Stay in the foreground and tear the lab down on Ctrl-C / SIGTERM.
        #[arg(long)]
        wait: bool,
    },
    /// Bring a lab up, start pods of both tenants on both nodes, show their interfaces and a
    /// connectivity matrix measured with real packets, delete them, show the pools, tear down.
    Demo {
        #[arg(long, env = "TANDEM_BIN_DIR")]
        bin_dir: Option<PathBuf>,
        #[command(flatten)]
        faults: FaultArgs,
    },
    /// Run a benchmark in fresh labs and print its table.
    Bench {
        #[command(subcommand)]
        which: BenchCmd,
    },
    /// Tear a lab down (`--prefix P`) or all of them (`--all`).
    Down {
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        prefix: Option<String>,
        #[arg(long)]
        all: bool,
        #[arg(long, default_value = lab::names::RUN_ROOT)]
        run_root: PathBuf,
    },
}

/// vpcsim's latency, throttling and failure knobs (`POST /_admin/SetFaults` changes them later).
#[derive(Args)]
struct FaultArgs {
    /// Attach and detach take this long before they reply (real clouds: seconds).
    #[arg(long, default_value_t = 2000)]
    attach_latency_ms: u64,
    /// Calls per second allowed per API action; 0: no throttling.
    #[arg(long, default_value_t = 0.0)]
    throttle_rate: f64,
    /// Calls per API action that may come at once before throttling starts.
    #[arg(long, default_value_t = 10)]
    throttle_burst: u32,
    /// Probability that a call fails with InternalError without doing anything.
    #[arg(long, default_value_t = 0.0)]
    fail_rate: f64,
    /// Probability that a create, attach or assign is done but answers InternalError.
    #[arg(long, default_value_t = 0.0)]
    partial_rate: f64,
    /// Seed of ENI ids and fault decisions, for reproducible runs.
    #[arg(long)]
    seed: Option<u64>,
}

impl FaultArgs {
    fn faults(&self) -> Faults {
        Faults {
            attach_latency_ms: self.attach_latency_ms,
            throttle_rate: self.throttle_rate,
            throttle_burst: self.throttle_burst,
            fail_rate: self.fail_rate,
            partial_rate: self.partial_rate,
        }
    }

    /// These knobs on top of `base`.
    fn lab_options(&self, base: LabOptions) -> LabOptions {
        LabOptions {
            attach_latency_ms: self.attach_latency_ms,
            throttle_rate: self.throttle_rate,
            throttle_burst: self.throttle_burst,
            fail_rate: self.fail_rate,
            partial_rate: self.partial_rate,
            seed: self.seed,
            ..base
        }
    }
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Warm and empty-pool ADDs and pod bursts with real-cloud attach latency.
    Pool {
        #[arg(long, default_value_t = 2000)]
        attach_latency_ms: u64,
        #[arg(long, default_value_t = 100)]
        warm_adds: usize,
        #[arg(long, default_value_t = 50)]
        burst: usize,
        #[arg(long, env = "TANDEM_BIN_DIR")]
        bin_dir: Option<PathBuf>,
        /// Agents without the security-group datapath: the pools alone.
        #[arg(long)]
        without_security_groups: bool,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().cmd {
        Cmd::Vpcsim {
            topology,
            socket,
            faults,
        } => {
            let topo = lab::topology::Topology::load(&topology)?;
            let options = SimOptions {
                faults: faults.faults(),
                seed: faults.seed,
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("build tokio runtime")?;
            rt.block_on(vpcsim::run(topo, &socket, options))?;
        }
        Cmd::Up {
            prefix,
            no_agents,
            faults,
            bin_dir,
            run_root,
            wait,
        } => {
            let options = faults.lab_options(LabOptions {
                prefix,
                run_root,
                start_agents: !no_agents,
                bin_dir,
                ..LabOptions::default()
            });
            let lab = Lab::up(options).context("bring the lab up")?;
            summary(&lab);
            if wait {
                lab::teardown_on_signal(&lab);
                loop {
                    std::thread::park();
                }
            }
            lab.detach();
        }
        Cmd::Demo { bin_dir, faults } => {
            let options = faults.lab_options(LabOptions {
                bin_dir,
                ..LabOptions::default()
            });
            tandem_lab::demo::run(options, &mut |text| print_out(text))?;
        }
        Cmd::Bench {
            which:
                BenchCmd::Pool {
                    attach_latency_ms,
                    warm_adds,
                    burst,
                    bin_dir,
                    without_security_groups,
                },
        } => {
            let opts = tandem_lab::bench::PoolBenchOptions {
                attach_latency_ms,
                warm_adds,
                burst,
                lab: LabOptions {
                    bin_dir,
                    agent_extra: without_security_groups
                        .then(|| serde_json::json!({"bpfRoot": null})),
                    ..LabOptions::default()
                },
            };
            let report = tandem_lab::bench::bench_pool(&opts)?;
            print_out(&(report.table() + "\n"));
        }
        Cmd::Down {
            prefix,
            all,
            run_root,
        } => {
            if all {
                let gone = lab::down_all(&run_root)?;
                tracing::info!(labs = ?gone, "down");
            } else if let Some(p) = prefix {
                lab::down(&run_root, &p)?;
                tracing::info!(prefix = %p, "down");
            }
        }
    }
    Ok(())
}

#[expect(
    clippy::print_stdout,
    reason = "the summary of `up` is this command's output"
)]
fn summary(lab: &Lab) {
    println!("lab {} is up ({})", lab.prefix(), lab.run_dir().display());
    println!("  vpc      {}", lab.vpc_netns());
    println!("  platform {}  (192.168.100.10)", lab.plat_netns());
    println!("  internet {}  (198.51.100.10)", lab.inet_netns());
    for n in lab.nodes() {
        println!(
            "  node {}  {}  {} {}  agent {}",
            n.name,
            n.netns,
            n.instance_id,
            n.ip,
            n.agent_socket.display()
        );
    }
    println!("  vpcsim   {}", lab.vpcsim_socket().display());
    println!("down with: tandem-lab down --prefix {}", lab.prefix());
}

/// The demo's report is for the terminal.
#[expect(clippy::print_stdout, reason = "the demo prints its report")]
fn print_out(text: &str) {
    print!("{text}");
}
