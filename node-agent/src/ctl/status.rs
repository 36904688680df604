//! `tandemctl status`: is the agent ready, and how full are its pools?

use tandem_common::api::{StatusReply, PATH_STATUS};

use super::{table, Ctl, CtlError};

pub async fn run(ctl: &Ctl) -> Result<(), CtlError> {
    let s: StatusReply = ctl.get(PATH_STATUS).await?;
    ctl.show(&s, |s| {
        let mut out = format!(
            "node {} ({}), agent {}: {}\nallocations: {}   pending releases: {}\n\n",
            s.node,
            s.instance_id,
            s.version,
            if s.ready { "ready" } else { "NOT READY" },
            s.allocations,
            s.pending_releases
        );
        let rows: Vec<Vec<String>> = s
            .planes
            .iter()
            .map(|p| {
                vec![
                    p.plane.clone(),
                    p.enis.to_string(),
                    p.used_ips.to_string(),
                    p.free_ips.to_string(),
                ]
            })
            .collect();
        out += &table::render(&["PLANE", "ENIS", "USED IPS", "FREE IPS"], &rows);
        out
    });
    if !s.ready {
        return Err(CtlError::Unhealthy(format!(
            "agent on {} is not ready",
            s.node
        )));
    }
    Ok(())
}
