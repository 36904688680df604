//! `tandem-lab demo`: the whole system on one machine. Brings the lab up, starts pods of both
//! tenants on both nodes through the real `tandem` binary, measures connectivity with real
//! packets, measures the isolation of the shared-scheme tenants against what their security
//! groups imply, deletes the pods and shows every address back in its pool.

mod matrix;
mod pods;
mod sg_matrix;

use std::fmt::Write as _;

use tandem_common::api::{StatusReply, PATH_STATUS};
use tandem_common::http::UdsClient;

use crate::lab::{self, http::block_on, Lab, LabOptions};

pub use matrix::Matrix;
pub use pods::{start_all, DemoPod};

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Lab(#[from] lab::LabError),
    #[error("pod {pod}: {what}")]
    Pod { pod: String, what: String },
    #[error("agent on {node}: {source}")]
    Agent {
        node: String,
        source: tandem_common::http::ClientError,
    },
    #[error(transparent)]
    Isolation(#[from] crate::isolation::IsolationError),
    #[error("the demo found problems: {0}")]
    Failed(String),
}

/// Tenants and nodes of the demo: two pods per independent tenant per node (initech's on
/// exclusive ENIs), one per shared-scheme tenant (umbrella, wayne: one vSwitch, told apart by
/// security groups only).
pub const LAYOUT: &[(&str, &str, &str)] = &[
    ("acme-1", "n1", "acme"),
    ("acme-2", "n1", "acme"),
    ("acme-3", "n2", "acme"),
    ("acme-4", "n2", "acme"),
    ("globex-1", "n1", "globex"),
    ("globex-2", "n1", "globex"),
    ("globex-3", "n2", "globex"),
    ("globex-4", "n2", "globex"),
    ("initech-1", "n1", "initech"),
    ("initech-2", "n2", "initech"),
    ("umbrella-a", "n1", "umbrella"),
    ("umbrella-b", "n2", "umbrella"),
    ("wayne-a", "n1", "wayne"),
    ("wayne-b", "n2", "wayne"),
];

/// Run the demo; the lab is torn down whatever happens. Returns the printed report.
pub fn run(options: LabOptions, out: &mut dyn FnMut(&str)) -> Result<(), DemoError> {
    let lab = Lab::up(options)?;
    lab::teardown_on_signal(&lab);
    out(&format!(
        "lab {} is up: VPC, platform, internet stand-in, nodes n1 and n2 with their agents\n",
        lab.prefix()
    ));
    let result = run_on(&lab, out);
    let down = lab.teardown();
    result?;
    down?;
    out("lab removed: no namespace, link or process left\n");
    Ok(())
}

fn run_on(lab: &Lab, out: &mut dyn FnMut(&str)) -> Result<(), DemoError> {
    let pods = pods::start_all(lab, LAYOUT)?;
    out(&pods::table(&pods));
    // A pod's group memberships reach the other node's agent within the 100 ms update budget;
    // until then that node drops its packets (strict, not open). Measure the steady state.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let matrix = Matrix::measure(lab, &pods);
    out(&matrix.render());
    let (isolation, differences) = sg_matrix::measure(lab, &pods)?;
    out(&isolation);
    out(&pool_report(lab, "pools with the pods running")?);
    pods::delete_all(lab, pods)?;
    let after = statuses(lab)?;
    out(&pool_report(lab, "pools after every pod was deleted")?);
    let mut problems = matrix.failures();
    problems.extend(
        differences
            .into_iter()
            .map(|d| format!("isolation differs from the security groups: {d}")),
    );
    for (node, s) in &after {
        if s.allocations != 0 || s.planes.iter().any(|p| p.used_ips != 0) {
            problems.push(format!("{node}: addresses still allocated after DEL"));
        }
    }
    if problems.is_empty() {
        out(
            "every measured path works, isolation is exactly what the security groups say, \
             and every address went back to its pool\n",
        );
        Ok(())
    } else {
        Err(DemoError::Failed(problems.join("; ")))
    }
}

/// Each node's agent status.
pub fn statuses(lab: &Lab) -> Result<Vec<(String, StatusReply)>, DemoError> {
    lab.nodes()
        .iter()
        .map(|n| {
            let client = UdsClient::new(&n.agent_socket);
            let s = block_on(async move { client.get::<StatusReply>(PATH_STATUS).await });
            s.map(|s| (n.name.clone(), s))
                .map_err(|source| DemoError::Agent {
                    node: n.name.clone(),
                    source,
                })
        })
        .collect()
}

fn pool_report(lab: &Lab, title: &str) -> Result<String, DemoError> {
    let mut s = format!("\n{title} (tandemctl status):\n");
    let _ = writeln!(
        s,
        "  {:<6}{:<10}{:>6}{:>10}{:>10}",
        "NODE", "PLANE", "ENIS", "USED IPS", "FREE IPS"
    );
    for (node, st) in statuses(lab)? {
        for p in &st.planes {
            let _ = writeln!(
                s,
                "  {:<6}{:<10}{:>6}{:>10}{:>10}",
                node, p.plane, p.enis, p.used_ips, p.free_ips
            );
        }
    }
    Ok(s)
}
