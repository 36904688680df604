//! The durable release queue: what the plugin writes when DEL cannot reach the agent.
//!
//! One JSON file per attachment in a directory the plugin and the agent share. A file is written
//! to a temporary name, fsynced, renamed into place and the directory fsynced, so a crash leaves
//! either the whole entry or nothing. The agent drains the queue on start and periodically.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::api::AttachmentKey;

/// More entries than this means the agent has been down far too long; DEL then fails so the
/// runtime retries instead of the queue growing without bound.
pub const MAX_ENTRIES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseEntry {
    pub key: AttachmentKey,
    /// Unix seconds.
    pub queued_at: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("release queue {dir} is full ({MAX_ENTRIES} entries): is the agent running?")]
    Full { dir: PathBuf },
    #[error("failed to {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("release queue entry {path} is malformed: {source}")]
    Malformed {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> QueueError + 'a {
    move |source| QueueError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn entry_file(dir: &Path, key: &AttachmentKey) -> PathBuf {
    // Container ids are `[a-zA-Z0-9][a-zA-Z0-9_.-]*` and ifnames have no `/`, so this is a
    // plain file name.
    dir.join(format!("{}@{}.json", key.container_id, key.ifname))
}

/// Queue the release of `key` durably. Queuing the same key twice keeps one entry.
pub fn enqueue(dir: &Path, key: &AttachmentKey) -> Result<PathBuf, QueueError> {
    fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    let path = entry_file(dir, key);
    if !path.exists() && count(dir)? >= MAX_ENTRIES {
        return Err(QueueError::Full {
            dir: dir.to_path_buf(),
        });
    }
    let queued_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let entry = ReleaseEntry {
        key: key.clone(),
        queued_at,
    };
    let body = serde_json::to_vec(&entry).expect("a release entry always serialises");
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(io_err("create", &tmp))?;
    file.write_all(&body).map_err(io_err("write", &tmp))?;
    file.sync_all().map_err(io_err("fsync", &tmp))?;
    fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync", dir))?;
    Ok(path)
}

fn count(dir: &Path) -> Result<usize, QueueError> {
    Ok(fs::read_dir(dir)
        .map_err(io_err("read", dir))?
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .count())
}

/// Every queued entry with its file, oldest first. A missing directory is an empty queue.
pub fn pending(dir: &Path) -> Result<Vec<(PathBuf, ReleaseEntry)>, QueueError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("read", dir)(e)),
    };
    let mut out = Vec::new();
    for entry in rd.filter_map(Result::ok) {
        let path = entry.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let body = fs::read(&path).map_err(io_err("read", &path))?;
        let parsed = serde_json::from_slice(&body).map_err(|source| QueueError::Malformed {
            path: path.clone(),
            source,
        })?;
        out.push((path, parsed));
    }
    out.sort_by_key(|(_, e): &(PathBuf, ReleaseEntry)| e.queued_at);
    Ok(out)
}

/// Drop an entry once its release is applied.
pub fn remove(path: &Path) -> Result<(), QueueError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: &str) -> AttachmentKey {
        AttachmentKey {
            container_id: c.into(),
            ifname: "eth0".into(),
        }
    }

    #[test]
    fn entries_survive_and_dedupe() {
        let dir = std::env::temp_dir().join(format!("tandem-rq-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        enqueue(&dir, &key("a")).unwrap();
        enqueue(&dir, &key("a")).unwrap();
        enqueue(&dir, &key("b")).unwrap();
        let got = pending(&dir).unwrap();
        assert_eq!(got.len(), 2);
        remove(&got[0].0).unwrap();
        remove(&got[0].0).unwrap();
        assert_eq!(pending(&dir).unwrap().len(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_dir_is_empty() {
        assert!(pending(Path::new("/nonexistent/tandem-q"))
            .unwrap()
            .is_empty());
    }
}
