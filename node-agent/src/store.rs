//! Durable state: a `StateStore` trait and its first implementation, a JSON checkpoint written
//! tmp → fsync → rename → fsync(dir), so a crash leaves the old or the new state, never half.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::state::State;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("failed to {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state file {path} is corrupt: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

pub trait StateStore: Send + Sync {
    /// The last committed state; empty on first start.
    fn load(&self) -> Result<State, StoreError>;
    /// Make `state` durable before returning.
    fn commit(&self, state: &State) -> Result<(), StoreError>;
}

pub struct JsonStore {
    dir: PathBuf,
}

impl JsonStore {
    pub fn open(dir: &Path) -> Result<JsonStore, StoreError> {
        fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            op: "create",
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(JsonStore {
            dir: dir.to_path_buf(),
        })
    }

    fn file(&self) -> PathBuf {
        self.dir.join("state.json")
    }
}

impl StateStore for JsonStore {
    fn load(&self) -> Result<State, StoreError> {
        let path = self.file();
        match fs::read(&path) {
            Ok(body) => {
                serde_json::from_slice(&body).map_err(|source| StoreError::Corrupt { path, source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(source) => Err(StoreError::Io {
                op: "read",
                path,
                source,
            }),
        }
    }

    fn commit(&self, state: &State) -> Result<(), StoreError> {
        let path = self.file();
        let tmp = self.dir.join("state.json.tmp");
        let io = |op, p: &Path| {
            let p = p.to_path_buf();
            move |source| StoreError::Io {
                op,
                path: p,
                source,
            }
        };
        let body = serde_json::to_vec(state).expect("state always serialises");
        let mut f = File::create(&tmp).map_err(io("create", &tmp))?;
        f.write_all(&body).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("fsync", &tmp))?;
        fs::rename(&tmp, &path).map_err(io("rename", &tmp))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync", &self.dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_then_load_round_trips() {
        let dir = std::env::temp_dir().join(format!("tandem-store-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = JsonStore::open(&dir).unwrap();
        assert_eq!(store.load().unwrap(), State::default());
        let mut s = State::default();
        s.take_link_group();
        store.commit(&s).unwrap();
        assert_eq!(JsonStore::open(&dir).unwrap().load().unwrap(), s);
        fs::write(dir.join("state.json"), b"{").unwrap();
        assert!(matches!(store.load(), Err(StoreError::Corrupt { .. })));
        fs::remove_dir_all(&dir).unwrap();
    }
}
