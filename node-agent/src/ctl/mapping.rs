//! `tandemctl mapping`: do the store, the kernel and the cloud agree? Exits 1 when not.

use tandem_common::api::{MappingReply, PATH_MAPPING};

use super::{Ctl, CtlError};

pub async fn run(ctl: &Ctl) -> Result<(), CtlError> {
    let r: MappingReply = ctl.get(PATH_MAPPING).await?;
    ctl.show(&r, |r| {
        let mut s = format!(
            "store:  {} ENIs, {} ENI addresses, {} pod addresses\nkernel: {} ENIs, {} pod addresses\ncloud:  {} ENIs, {} ENI addresses\n",
            r.store.enis.len(),
            r.store.eni_ips.len(),
            r.store.pod_ips.len(),
            r.kernel.enis.len(),
            r.kernel.pod_ips.len(),
            r.cloud.enis.len(),
            r.cloud.eni_ips.len()
        );
        if r.consistent {
            s += "consistent\n";
        }
        for p in &r.problems {
            s += &format!("MISMATCH: {p}\n");
        }
        s
    });
    if r.consistent {
        Ok(())
    } else {
        Err(CtlError::Unhealthy(format!(
            "{} mismatches",
            r.problems.len()
        )))
    }
}
