//! `tandemctl pods`: which pod holds which addresses.

use tandem_common::api::{PodsReply, Role, PATH_PODS};

use super::{table, Ctl, CtlError};

pub async fn run(ctl: &Ctl) -> Result<(), CtlError> {
    let r: PodsReply = ctl.get(PATH_PODS).await?;
    ctl.show(&r, |r| {
        let rows: Vec<Vec<String>> = r
            .pods
            .iter()
            .map(|p| {
                let ip = |role| {
                    p.interfaces
                        .iter()
                        .find(|i| i.role == role)
                        .map(|i| format!("{} {} ({})", i.ifname, i.ip, i.host_ifname))
                        .unwrap_or_default()
                };
                vec![
                    format!("{}/{}", p.pod.namespace, p.pod.name),
                    p.key.container_id.chars().take(12).collect(),
                    p.tenant.clone(),
                    ip(Role::Control),
                    ip(Role::Tenant),
                ]
            })
            .collect();
        table::render(
            &["POD", "CONTAINER", "TENANT", "CONTROL", "TENANT IF"],
            &rows,
        )
    });
    Ok(())
}
