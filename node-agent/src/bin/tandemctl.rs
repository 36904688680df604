//! `tandemctl`: debug a node's Tandem agent.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tandem_agent::ctl::{self, Ctl, CtlError, Format};

#[derive(Parser)]
#[command(version, about = "Debug a node's Tandem agent")]
struct Args {
    /// The agent's API socket.
    #[arg(
        long,
        env = "TANDEM_AGENT_SOCKET",
        default_value = "/run/tandem/agent.sock"
    )]
    socket: PathBuf,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: Format,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Readiness and pool levels; exits 1 when the agent is not ready.
    Status,
    /// Pods and their control and tenant addresses.
    Pods,
    /// ENIs attached to this node and the use of their addresses.
    Enis,
    /// Each plane's pool levels, target and knobs.
    Pool,
    /// Compare store, kernel and cloud; exits 1 on any mismatch.
    Mapping,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let ctl = Ctl::new(args.socket, args.output);
    let res = match args.cmd {
        Cmd::Status => ctl::status::run(&ctl).await,
        Cmd::Pods => ctl::pods::run(&ctl).await,
        Cmd::Enis => ctl::enis::run(&ctl).await,
        Cmd::Pool => ctl::pool::run(&ctl).await,
        Cmd::Mapping => ctl::mapping::run(&ctl).await,
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ CtlError::Unhealthy(_)) => {
            eprintln!("tandemctl: {e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("tandemctl: {e}");
            ExitCode::from(2)
        }
    }
}
