//! `tandemctl enis`: the ENIs on this node and who uses each address.

use tandem_common::api::{EnisReply, PATH_ENIS};

use super::{table, Ctl, CtlError};

pub async fn run(ctl: &Ctl) -> Result<(), CtlError> {
    let r: EnisReply = ctl.get(PATH_ENIS).await?;
    ctl.show(&r, |r| {
        let rows: Vec<Vec<String>> = r
            .enis
            .iter()
            .map(|e| {
                let used = e.ips.iter().filter(|i| i.owner.is_some()).count();
                vec![
                    e.id.clone(),
                    e.plane.clone(),
                    e.device.clone(),
                    e.vswitch_id.clone(),
                    e.primary_ip.to_string(),
                    e.table.to_string(),
                    format!("{used}/{}", e.ips.len()),
                ]
            })
            .collect();
        table::render(
            &[
                "ENI",
                "PLANE",
                "DEVICE",
                "VSWITCH",
                "PRIMARY IP",
                "TABLE",
                "IPS USED",
            ],
            &rows,
        )
    });
    Ok(())
}
