//! `GET /v1/pool` and the pool gauges of `/metrics`: each plane's levels and one-step target.

use tandem_common::api::{PoolPlane, PoolReply};

use super::Agent;
use crate::metrics::{PlaneLabels, PoolLabels};
use crate::pool;

impl Agent {
    pub async fn pool(&self) -> PoolReply {
        let state = self.state.lock().await;
        let limits_spare = self
            .instance
            .max_enis
            .saturating_sub(state.enis.len() as u32);
        let per_eni = self.instance.max_ips_per_eni.saturating_sub(1);
        let planes = self
            .planes(&state)
            .into_iter()
            .map(|p| {
                let l = self.levels(&state, &p);
                let enis = state.enis_of(&p.name).count() as u32;
                let cfg = &self.cfg.pool;
                let (min, warm, max, limit) = if p.exclusive {
                    (0, cfg.warm_enis, u32::MAX, enis + limits_spare)
                } else {
                    let held: u32 = l.enis.iter().map(|(_, n)| per_eni.max(*n)).sum();
                    (
                        cfg.min_ips,
                        cfg.warm_ips,
                        cfg.max_ips,
                        held + limits_spare * per_eni,
                    )
                };
                PoolPlane {
                    plane: p.name.clone(),
                    mode: if p.exclusive { "exclusive" } else { "shared" }.into(),
                    enis,
                    used: l.used,
                    free: l.free,
                    cooling: l.cooling,
                    waiting: l.waiting,
                    active: l.active,
                    target: pool::target(&l, cfg, p.exclusive),
                    min,
                    warm,
                    max,
                    limit,
                }
            })
            .collect();
        PoolReply {
            max_enis: self.instance.max_enis,
            ips_per_eni: per_eni,
            enis_attached: state.enis.len() as u32,
            planes,
        }
    }

    /// The metrics text, with the pool gauges brought up to date.
    pub async fn metrics_text(&self) -> String {
        for p in self.pool().await.planes {
            let m = &self.metrics;
            for (state, v) in [
                ("used", p.used),
                ("free", p.free),
                ("cooling", p.cooling),
                ("target", p.target),
            ] {
                let labels = PoolLabels {
                    plane: p.plane.clone(),
                    state: state.into(),
                };
                m.pool_ips.get_or_create(&labels).set(v as i64);
            }
            m.pool_enis
                .get_or_create(&PlaneLabels {
                    plane: p.plane.clone(),
                })
                .set(p.enis as i64);
        }
        self.metrics.encode()
    }
}
