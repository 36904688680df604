//! `tandemctl`: debug a node's Tandem agent.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tandem_agent::ctl::{self, Ctl, CtlError, Format};
use tandem_common::api::TraceRequest;

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
    /// Would a new flow from A to B pass, and which rule decides? Exits 0 allowed, 1 denied
    /// or not on this node.
    Trace {
        /// Source: an address or a pod (`name` or `namespace/name`).
        #[arg(long)]
        from: String,
        /// Destination: an address or a pod.
        #[arg(long)]
        to: String,
        #[arg(long, value_parser = ["tcp", "udp", "icmp"])]
        proto: String,
        /// Destination port (tcp, udp).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// ICMP type (default 8, echo request).
        #[arg(long)]
        icmp_type: Option<u8>,
        /// ICMP code (default 0).
        #[arg(long)]
        icmp_code: Option<u8>,
    },
    /// Security groups, members (here and on other nodes), local users, compiled policies.
    Sg,
    /// Tracked flows and the conntrack fill level.
    Conntrack {
        /// Only this pod's flows.
        #[arg(long)]
        pod: Option<String>,
    },
    /// Stream drops and new-flow verdicts live until Ctrl-C.
    Monitor {
        /// Only this pod's events.
        #[arg(long)]
        pod: Option<String>,
        /// Only drops (and audit-mode would-be drops).
        #[arg(long)]
        drops_only: bool,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
    },
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
        Cmd::Trace {
            from,
            to,
            proto,
            port,
            icmp_type,
            icmp_code,
        } => {
            let req = TraceRequest {
                from,
                to,
                proto,
                port,
                icmp_type,
                icmp_code,
            };
            ctl::trace::run(&ctl, &req).await
        }
        Cmd::Sg => ctl::sg::run(&ctl).await,
        Cmd::Conntrack { pod } => ctl::conntrack::run(&ctl, pod.as_deref()).await,
        Cmd::Monitor {
            pod,
            drops_only,
            count,
        } => {
            let o = ctl::monitor::MonitorOptions {
                pod: pod.as_deref(),
                drops_only,
                count,
            };
            ctl::monitor::run(&ctl, &o).await
        }
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
