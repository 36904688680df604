//! The isolation matrix of the demo's shared-scheme tenants (umbrella, wayne), measured with
//! real probes and compared with what their security groups imply (the reference evaluator,
//! from the same YAML files the agents read).

use super::{DemoError, DemoPod};
use crate::isolation;
use crate::lab::Lab;

/// The tenants whose isolation the demo shows.
pub const TENANTS: [&str; 2] = ["umbrella", "wayne"];

/// Both matrices, rendered, and one line per cell where they differ.
pub fn measure(lab: &Lab, pods: &[DemoPod]) -> Result<(String, Vec<String>), DemoError> {
    let shown = pods.iter().filter(|p| TENANTS.contains(&p.tenant.as_str()));
    let iso = isolation::lab::isolation(lab, shown.map(DemoPod::party));
    let _servers = iso.serve()?;
    let c = isolation::lab::compare(lab, &iso)?;
    let title = format!(
        "isolation of the shared-scheme tenants, measured with real packets ({} probes):",
        c.measured.len()
    );
    Ok((c.render(&iso, &title), c.differences))
}
