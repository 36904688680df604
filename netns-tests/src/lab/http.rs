//! Requests to the lab's unix-socket servers (vpcsim, the agents) through the project's client
//! (`tandem_common::http`), answering the status of every reply instead of failing on non-2xx,
//! plus a way to drive async code from sync code anywhere.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use hyper::{Method, StatusCode};
use tandem_common::http::{ClientError, UdsClient};

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("connect to {socket}: {source}")]
    Connect {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("{method} {path} on {socket}: {source}")]
    Http {
        socket: PathBuf,
        method: Method,
        path: String,
        source: hyper::Error,
    },
}

/// One request on a fresh connection; returns the status and the whole body.
pub async fn request(
    socket: &Path,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<(StatusCode, Bytes), HttpError> {
    let client = UdsClient::new(socket);
    match client
        .call(method.clone(), path, Bytes::from(body.unwrap_or_default()))
        .await
    {
        Ok(body) => Ok((StatusCode::OK, body)),
        Err(ClientError::Status { status, body, .. }) => Ok((status, body)),
        Err(ClientError::Connect { source, .. }) => Err(HttpError::Connect {
            socket: socket.to_owned(),
            source,
        }),
        Err(ClientError::Http { source, .. }) => Err(HttpError::Http {
            socket: socket.to_owned(),
            method,
            path: path.to_owned(),
            source,
        }),
        Err(ClientError::Decode { .. }) => unreachable!("call does not decode"),
    }
}

/// Run a future to completion on a fresh thread with its own runtime, so sync lab code can
/// call async clients whether or not the caller is itself inside a tokio runtime.
pub fn block_on<F>(fut: F) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("build a current-thread runtime")
            .block_on(fut)
    })
    .join()
    .expect("block_on thread panicked")
}
