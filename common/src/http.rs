//! A JSON-over-HTTP/1.1 client for unix sockets (the agent's and `vpcsim`'s APIs).
//!
//! One connection per call: the plugin makes one call per run, and the agent's calls to the
//! cloud are rare enough that pooling would only add state.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("HTTP exchange with {path} failed: {source}")]
    Http { path: PathBuf, source: hyper::Error },
    /// The server answered with a non-2xx status; `body` is its error document.
    #[error("{path} answered {status}: {}", String::from_utf8_lossy(body))]
    Status {
        path: PathBuf,
        status: StatusCode,
        body: Bytes,
    },
    #[error("cannot decode the answer of {path}: {source}")]
    Decode {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// A client of one unix socket.
#[derive(Debug, Clone)]
pub struct UdsClient {
    socket: PathBuf,
}

impl UdsClient {
    pub fn new(socket: impl AsRef<Path>) -> UdsClient {
        UdsClient {
            socket: socket.as_ref().to_path_buf(),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub async fn get<R: DeserializeOwned>(&self, path: &str) -> Result<R, ClientError> {
        let body = self.call(Method::GET, path, Bytes::new()).await?;
        self.decode(&body)
    }

    pub async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R, ClientError> {
        let json = serde_json::to_vec(body).expect("request bodies always serialise");
        let body = self.call(Method::POST, path, Bytes::from(json)).await?;
        self.decode(&body)
    }

    fn decode<R: DeserializeOwned>(&self, body: &[u8]) -> Result<R, ClientError> {
        serde_json::from_slice(body).map_err(|source| ClientError::Decode {
            path: self.socket.clone(),
            source,
        })
    }

    /// One request on a fresh connection; the raw body of a 2xx answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<Bytes, ClientError> {
        let (resp, driver) = self.send(method, path, body).await?;
        let body = self.whole_body(resp).await;
        driver.abort();
        body
    }

    /// A GET whose answer streams (`/v1/monitor`): the response body, chunk by chunk.
    pub async fn get_stream(&self, path: &str) -> Result<BodyStream, ClientError> {
        let (resp, driver) = self.send(Method::GET, path, Bytes::new()).await?;
        Ok(BodyStream {
            body: resp.into_body(),
            path: self.socket.clone(),
            driver,
        })
    }

    async fn whole_body(
        &self,
        resp: hyper::Response<hyper::body::Incoming>,
    ) -> Result<Bytes, ClientError> {
        Ok(resp
            .into_body()
            .collect()
            .await
            .map_err(|source| self.http_err(source))?
            .to_bytes())
    }

    fn http_err(&self, source: hyper::Error) -> ClientError {
        ClientError::Http {
            path: self.socket.clone(),
            source,
        }
    }

    /// Connect, send, and return a 2xx response (a non-2xx one becomes
    /// [`ClientError::Status`]) with the task driving its connection.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<(hyper::Response<hyper::body::Incoming>, Driver), ClientError> {
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|source| ClientError::Connect {
                    path: self.socket.clone(),
                    source,
                })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|source| self.http_err(source))?;
        let driver = tokio::spawn(conn);
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "localhost")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .expect("a request from a valid method and path");
        let resp = sender
            .send_request(req)
            .await
            .map_err(|source| self.http_err(source))?;
        let status = resp.status();
        if !status.is_success() {
            let body = self.whole_body(resp).await?;
            driver.abort();
            return Err(ClientError::Status {
                path: self.socket.clone(),
                status,
                body,
            });
        }
        Ok((resp, driver))
    }
}

type Driver = tokio::task::JoinHandle<Result<(), hyper::Error>>;

/// The body of a streamed answer; dropping it closes the connection.
pub struct BodyStream {
    body: hyper::body::Incoming,
    path: PathBuf,
    driver: Driver,
}

impl BodyStream {
    /// The next chunk; `None` when the server ended the stream.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        loop {
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(source)) => {
                    return Err(ClientError::Http {
                        path: self.path.clone(),
                        source,
                    })
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}

impl Drop for BodyStream {
    fn drop(&mut self) {
        self.driver.abort();
    }
}
