//! Tenant configuration takes effect without a restart: the config directory is polled and the
//! model reloaded when any file changes. (Polling, not inotify: it also works across the
//! symlink swaps Kubernetes uses to update a mounted ConfigMap.)

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::Agent;
use crate::model::Model;

const POLL: Duration = Duration::from_millis(25);

/// Names, sizes and modification times of the directory's files: changes when any file does.
pub(crate) fn fingerprint(dir: &Path) -> Vec<(String, u64, SystemTime)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let md = std::fs::metadata(e.path()).ok()?;
            Some((
                e.file_name().to_string_lossy().into_owned(),
                md.len(),
                md.modified().ok()?,
            ))
        })
        .collect();
    out.sort();
    out
}

impl Agent {
    pub(crate) async fn watch_loop(&self) {
        let dir = self.cfg.config_dir.clone();
        let mut seen = fingerprint(&dir);
        loop {
            tokio::time::sleep(POLL).await;
            let now = fingerprint(&dir);
            if now == seen {
                continue;
            }
            seen = now;
            match Model::load(&dir) {
                Ok(model) => {
                    tracing::info!(
                        tenants = model.tenants.len(),
                        "tenant configuration reloaded"
                    );
                    *self.model.write().expect("model lock") = model;
                    self.on_model_change().await;
                }
                // Keep enforcing the last good configuration.
                Err(e) => {
                    tracing::error!(error = %e, "tenant configuration rejected; keeping the previous one")
                }
            }
        }
    }

    /// Hook for everything derived from the model (pools now; policy later).
    async fn on_model_change(&self) {
        self.refill_wanted.notify_one();
        self.policy_changed();
    }
}
