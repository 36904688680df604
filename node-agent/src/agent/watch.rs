//! Tenant configuration takes effect without a restart: inotify (through `notify`) wakes a
//! reload of the config directory as soon as a file in it is closed after writing, created,
//! renamed or removed — the other nodes' published memberships included, so a change reaches
//! the policy in a few milliseconds instead of a poll period.
//!
//! A mounted ConfigMap's update (the kubelet renames a new `..data` symlink over the old one)
//! is a rename in the directory and wakes the reload like any other. A slow poll of the
//! directory's fingerprint, which follows symlinks, stays beside the watch for what inotify on
//! one directory cannot see: a symlinked file changing where it points, the directory itself
//! replaced (the watch dies with it), events lost when the kernel's queue overflows. Without
//! inotify (no watch could be set up, e.g. `max_user_watches` reached) that poll runs every
//! 25 ms instead of every second.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;

use super::Agent;
use crate::model::{Model, ModelError};

/// The fingerprint poll while inotify watches the directory.
const FALLBACK: Duration = Duration::from_secs(1);
/// The fingerprint poll when it is the only way to notice a change.
const POLL_WITHOUT_INOTIFY: Duration = Duration::from_millis(25);

type Fingerprint = Vec<(String, u64, SystemTime)>;

/// Names, sizes and modification times of the directory's files (through symlinks): changes
/// when any file does.
fn fingerprint(dir: &Path) -> Fingerprint {
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

/// Whether an inotify event may have changed what [`Model::load`] reads.
///
/// Opens and reads are ignored (the agent's own reload opens every file, which would wake it
/// again), and so are bare writes: a writer's close follows them, and reloading between its
/// truncate and its last write would briefly enforce half a file. Files named `*.tmp` are
/// ignored too: writers (this agent's `publish_membership`, the lab) write one and rename it
/// over the real name, and the rename's `To` half, under the real name, is the event that
/// counts. An error or a rescan request (the kernel's queue overflowed) wakes the reload,
/// which re-reads everything.
fn relevant(event: &notify::Result<Event>) -> bool {
    let Ok(event) = event else {
        return true;
    };
    if event.need_rescan() {
        return true;
    }
    let kind = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Data(_)) => false,
        // Follows its `From` and `To` halves, which count.
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => false,
        EventKind::Any
        | EventKind::Create(_)
        | EventKind::Modify(_)
        | EventKind::Remove(_)
        | EventKind::Other => true,
    };
    let is_temp = |p: &PathBuf| p.extension().is_some_and(|x| x == "tmp");
    kind && (event.paths.is_empty() || !event.paths.iter().all(is_temp))
}

/// Watch `dir` (not its subdirectories) and wake `wake` on every relevant event. The watcher
/// reads inotify on its own thread; dropping it ends the watch.
fn watch(dir: &Path, wake: Arc<Notify>) -> notify::Result<RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
        if relevant(&event) {
            wake.notify_one();
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// The config directory as a stream of reloads.
struct ConfigWatch {
    dir: PathBuf,
    wake: Arc<Notify>,
    /// Ends the watch when dropped; `None` when it could not be set up.
    _watcher: Option<RecommendedWatcher>,
    poll: Duration,
    seen: Fingerprint,
}

/// One reload of the config directory.
struct Reload {
    loaded: Result<Model, ModelError>,
    /// Woken by inotify (else the poll saw a different fingerprint).
    woken: bool,
    /// From waking to the model loaded.
    took: Duration,
}

impl ConfigWatch {
    async fn new(dir: PathBuf) -> ConfigWatch {
        let wake = Arc::new(Notify::new());
        let (watcher, poll) = match watch(&dir, wake.clone()) {
            Ok(w) => (Some(w), FALLBACK),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e,
                    "cannot watch the config directory; polling it instead");
                (None, POLL_WITHOUT_INOTIFY)
            }
        };
        let seen = blocking(&dir, fingerprint).await;
        ConfigWatch {
            dir,
            wake,
            _watcher: watcher,
            poll,
            seen,
        }
    }

    /// Wait for the directory to change, then load it. Directory reads run on a blocking
    /// thread, off the runtime's workers.
    async fn next(&mut self) -> Reload {
        loop {
            // An event that arrives during a reload leaves a permit: the next round reads
            // whatever was written meanwhile.
            let woken = tokio::select! {
                () = self.wake.notified() => true,
                () = tokio::time::sleep(self.poll) => false,
            };
            let started = Instant::now();
            let last = std::mem::take(&mut self.seen);
            let (now, loaded) = blocking(&self.dir, move |d| {
                let now = fingerprint(d);
                let changed = woken || now != last;
                (now, changed.then(|| Model::load(d)))
            })
            .await;
            self.seen = now;
            if let Some(loaded) = loaded {
                return Reload {
                    loaded,
                    woken,
                    took: started.elapsed(),
                };
            }
        }
    }
}

impl Agent {
    pub(crate) async fn watch_loop(&self) {
        let mut watch = ConfigWatch::new(self.cfg.config_dir.clone()).await;
        loop {
            let reload = watch.next().await;
            self.take_model(reload).await;
        }
    }

    /// Install a freshly loaded model, unless it is the one in force already (one change
    /// often makes several events) or did not load.
    ///
    /// The agent's own published memberships come back this way too: they cost one recompile
    /// that finds the tables unchanged, and `publish_membership` then finds its file as it
    /// would write it, so nothing is written and no further event follows.
    async fn take_model(&self, reload: Reload) {
        let model = match reload.loaded {
            Ok(model) => model,
            // Keep enforcing the last good configuration.
            Err(e) => {
                tracing::error!(error = %e, "tenant configuration rejected; keeping the previous one");
                return;
            }
        };
        if *self.model.read().expect("model lock") == model {
            return;
        }
        tracing::info!(
            tenants = model.tenants.len(),
            endpoints = model.endpoints.len(),
            by = if reload.woken { "inotify" } else { "poll" },
            load_us = reload.took.as_micros() as u64,
            "tenant configuration reloaded"
        );
        *self.model.write().expect("model lock") = model;
        self.on_model_change().await;
    }

    /// Hook for everything derived from the model (pools now; policy later).
    async fn on_model_change(&self) {
        self.refill_wanted.notify_one();
        self.policy_changed();
    }
}

/// Run `f(dir)` on a blocking thread.
async fn blocking<T: Send + 'static>(dir: &Path, f: impl FnOnce(&Path) -> T + Send + 'static) -> T {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || f(&dir))
        .await
        .expect("config directory reader panicked")
}

#[cfg(test)]
mod tests;
