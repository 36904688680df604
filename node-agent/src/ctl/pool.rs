//! `tandemctl pool`: each plane's levels, its one-step target and the knobs behind it.

use tandem_common::api::{PoolReply, PATH_POOL};

use super::{table, Ctl, CtlError};

pub async fn run(ctl: &Ctl) -> Result<(), CtlError> {
    let r: PoolReply = ctl.get(PATH_POOL).await?;
    ctl.show(&r, |r| {
        let cap = |v: u32| {
            if v == u32::MAX {
                "-".to_string()
            } else {
                v.to_string()
            }
        };
        let rows: Vec<Vec<String>> = r
            .planes
            .iter()
            .map(|p| {
                vec![
                    p.plane.clone(),
                    p.mode.clone(),
                    p.enis.to_string(),
                    p.used.to_string(),
                    p.free.to_string(),
                    p.cooling.to_string(),
                    p.waiting.to_string(),
                    p.target.to_string(),
                    format!("{}/{}/{}", p.min, p.warm, cap(p.max)),
                    p.limit.to_string(),
                    if p.active { "active" } else { "idle" }.into(),
                ]
            })
            .collect();
        format!(
            "ENIs attached {}/{}, {} addresses per ENI (exclusive planes count ENIs)\n\n{}",
            r.enis_attached,
            r.max_enis,
            r.ips_per_eni,
            table::render(
                &[
                    "PLANE",
                    "MODE",
                    "ENIS",
                    "USED",
                    "FREE",
                    "COOLING",
                    "WAITING",
                    "TARGET",
                    "MIN/WARM/MAX",
                    "LIMIT",
                    "STATE"
                ],
                &rows
            )
        )
    });
    Ok(())
}
