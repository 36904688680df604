//! The isolation matrix of the demo's shared-scheme tenants (umbrella, wayne), measured with
//! real probes and compared with what their security groups imply (the reference evaluator,
//! from the same YAML files the agents read).

use super::{DemoError, DemoPod};
use crate::isolation::{self, Isolation, Party};
use crate::lab::Lab;

/// The tenants whose isolation the demo shows.
pub const TENANTS: [&str; 2] = ["umbrella", "wayne"];

/// Both matrices, rendered, and one line per cell where they differ.
pub fn measure(lab: &Lab, pods: &[DemoPod]) -> Result<(String, Vec<String>), DemoError> {
    let mut parties: Vec<Party> = pods
        .iter()
        .filter(|p| TENANTS.contains(&p.tenant.as_str()))
        .map(|p| Party::Pod(p.party()))
        .collect();
    parties.extend(isolation::lab::nodes(lab));
    parties.extend(isolation::lab::hosts(lab));
    let iso = Isolation::new(parties);
    let _servers = iso.serve()?;
    let expected = isolation::lab::expected(lab, &iso)?;
    let measured = iso.measure(&expected)?;
    let text = format!(
        "{}{}",
        iso.render(
            &format!(
                "isolation of the shared-scheme tenants, measured with real packets ({} probes):",
                measured.len()
            ),
            &measured
        ),
        iso.render(
            "isolation the security groups imply (reference evaluator, same YAML):",
            &expected
        )
    );
    Ok((text, iso.diff(&measured, &expected)))
}
