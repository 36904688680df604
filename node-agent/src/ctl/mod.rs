//! `tandemctl`: the on-call engineer's view of one node's agent. Every command prints a table
//! for people or JSON (`-o json`) for scripts, and exits non-zero when something is wrong.

pub mod conntrack;
pub mod enis;
pub mod mapping;
pub mod monitor;
pub mod pods;
pub mod pool;
pub mod sg;
pub mod status;
pub mod table;
pub mod trace;

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tandem_common::http::UdsClient;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("cannot reach the agent: {0}")]
    Agent(#[from] tandem_common::http::ClientError),
    /// The command ran, and what it found is wrong (the message says what).
    #[error("{0}")]
    Unhealthy(String),
}

pub struct Ctl {
    pub client: UdsClient,
    pub format: Format,
}

impl Ctl {
    pub fn new(socket: PathBuf, format: Format) -> Ctl {
        Ctl {
            client: UdsClient::new(socket),
            format,
        }
    }

    pub async fn get<R: DeserializeOwned>(&self, path: &str) -> Result<R, CtlError> {
        Ok(self.client.get(path).await?)
    }

    pub async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R, CtlError> {
        Ok(self.client.post(path, body).await?)
    }

    /// Print `value` as JSON, or as the table `render` makes of it.
    pub fn show<T: Serialize>(&self, value: &T, render: impl FnOnce(&T) -> String) {
        let text = match self.format {
            Format::Json => serde_json::to_string_pretty(value).expect("replies serialise"),
            Format::Table => render(value),
        };
        emit(&text);
    }
}

/// The one place `tandemctl` writes stdout.
#[expect(
    clippy::print_stdout,
    reason = "tandemctl's output is for the terminal"
)]
pub fn emit(text: &str) {
    println!("{}", text.trim_end());
}
