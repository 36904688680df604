//! `lab.json`: what a run created, written before each step, so `down` can undo a run that
//! crashed half-way (or whose `up` has long exited).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::process::ProcRecord;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parse {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabRecord {
    pub prefix: String,
    pub run_dir: PathBuf,
    /// Every namespace this run created (or was about to), pods included.
    pub namespaces: Vec<String>,
    pub processes: Vec<ProcRecord>,
    pub vpcsim_socket: PathBuf,
    /// node name → agent socket.
    pub agent_sockets: Vec<(String, PathBuf)>,
}

impl LabRecord {
    pub fn path(run_dir: &Path) -> PathBuf {
        run_dir.join("lab.json")
    }

    pub fn load(run_dir: &Path) -> Result<Self, RecordError> {
        let path = Self::path(run_dir);
        let text = std::fs::read_to_string(&path).map_err(|source| RecordError::Read {
            path: path.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| RecordError::Parse { path, source })
    }

    /// Write to a temporary file and rename, so a crash never leaves half a record.
    pub fn save(&self) -> Result<(), RecordError> {
        let path = Self::path(&self.run_dir);
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).expect("record serialises");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|source| RecordError::Write { path, source })
    }
}
