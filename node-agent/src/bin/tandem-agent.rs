//! `tandem-agent`: the node agent daemon.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use tandem_agent::agent::Agent;
use tandem_agent::config::AgentConfig;
use tandem_agent::provider::vpcsim::VpcSim;
use tandem_agent::store::JsonStore;

#[derive(Parser)]
#[command(version, about = "Tandem node agent: warm ENI/IP pools and pod wiring")]
struct Args {
    /// Agent configuration file (YAML or JSON).
    #[arg(
        long,
        env = "TANDEM_AGENT_CONFIG",
        default_value = "/etc/tandem/agent.yaml"
    )]
    config: PathBuf,
    /// Log as JSON lines (for the DaemonSet).
    #[arg(long)]
    json_logs: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("TANDEM_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.json_logs {
        builder.json().init();
    } else {
        builder.init();
    }
    let cfg = AgentConfig::load(&args.config)?;
    let store = JsonStore::open(&cfg.state_dir)?;
    let cloud = Arc::new(VpcSim::new(&cfg.cloud.endpoint));
    let socket = cfg.socket.clone();
    let metrics_listen = cfg.metrics_listen;
    let agent = Agent::start(cfg, Box::new(store), cloud)
        .await
        .context("agent start-up")?;
    agent.spawn_background();
    if let Some(addr) = metrics_listen {
        let a = agent.clone();
        tokio::spawn(async move {
            if let Err(e) = tandem_agent::api::serve_metrics(a, addr).await {
                tracing::error!(error = %e, "metrics listener failed");
            }
        });
    }
    tandem_agent::api::serve(agent, &socket)
        .await
        .with_context(|| format!("serving on {}", socket.display()))
}
