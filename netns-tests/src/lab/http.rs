//! A minimal HTTP/1.1 client over a unix socket (hyper 1), shared by the vpcsim client and the
//! agent readiness check, plus a way to drive async code from sync code anywhere.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

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
    #[error("build request {path}: {source}")]
    Request {
        path: String,
        source: hyper::http::Error,
    },
}

/// One request on a fresh connection; returns the status and the whole body.
pub async fn request(
    socket: &Path,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<(StatusCode, Bytes), HttpError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|source| HttpError::Connect {
            socket: socket.to_owned(),
            source,
        })?;
    let http_err = |source| HttpError::Http {
        socket: socket.to_owned(),
        method: method.clone(),
        path: path.to_owned(),
        source,
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http_err)?;
    tokio::spawn(conn);
    let mut builder = Request::builder()
        .method(method.clone())
        .uri(path)
        .header("host", "localhost");
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    let req = builder
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|source| HttpError::Request {
            path: path.to_owned(),
            source,
        })?;
    let resp = sender.send_request(req).await.map_err(http_err)?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(http_err)?
        .to_bytes();
    Ok((status, bytes))
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
