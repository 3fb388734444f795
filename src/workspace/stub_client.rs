//! The addon's HTTP client for the remote stub, through the local end of the SSH tunnel. Request and
//! response types come from the `protocol` crate the stub itself is built with.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use opencode_remote_protocol::{routes, ApiError, Health, BEARER_PREFIX};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// How long one stub request may take before we give up (exec has its own, longer, deadline).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A failed stub request: either the stub answered with an error body, or the transport failed.
#[derive(Debug)]
pub enum StubError {
    /// Boxed: error bodies are large and rare.
    Api {
        host: String,
        error: Box<ApiError>,
    },
    Transport(Error),
}

impl From<StubError> for Error {
    fn from(error: StubError) -> Error {
        match error {
            StubError::Transport(error) => error,
            StubError::Api { host, error } => Error::Remote {
                host,
                kind: error.error.kind,
                message: error.error.message,
            },
        }
    }
}

#[derive(Clone)]
pub struct StubClient {
    host: String,
    base: String,
    /// `Bearer <token>`; never logged.
    authorization: String,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for StubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StubClient")
            .field("host", &self.host)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl StubClient {
    /// A client for the stub reachable at `127.0.0.1:local_port` (the tunnel's local end).
    pub fn new(host: &str, local_port: u16, token: &str) -> StubClient {
        StubClient {
            host: host.to_string(),
            base: format!("http://127.0.0.1:{local_port}"),
            authorization: format!("{BEARER_PREFIX}{token}"),
            http: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub async fn health(&self) -> Result<Health, StubError> {
        self.request::<(), Health>(Method::GET, routes::HEALTH, None)
            .await
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, StubError> {
        self.request::<(), T>(Method::GET, path, None).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, StubError> {
        self.request(Method::POST, path, Some(body)).await
    }

    /// A streamed (NDJSON) answer, read line by line. Commands may run long, so there is no request
    /// timeout here; the stub enforces the command's own.
    pub async fn post_stream<B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<NdjsonStream, StubError> {
        let response = self.start(Method::POST, path, Some(body), None).await?;
        Ok(NdjsonStream {
            host: self.host.clone(),
            body: response.into_body(),
            buffer: Vec::new(),
        })
    }

    async fn request<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, StubError> {
        let bytes = self.send(method, path, body, Some(REQUEST_TIMEOUT)).await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            StubError::Transport(Error::Ssh {
                host: self.host.clone(),
                detail: format!("unexpected stub answer: {e}"),
            })
        })
    }

    /// Send a request and return the body of a 200 answer; any other answer becomes [`StubError::Api`].
    async fn send<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        timeout: Option<Duration>,
    ) -> Result<Bytes, StubError> {
        let response = self.start(method, path, body, timeout).await?;
        response
            .into_body()
            .collect()
            .await
            .map(|body| body.to_bytes())
            .map_err(|e| self.transport(e.to_string()))
    }

    fn transport(&self, detail: String) -> StubError {
        StubError::Transport(Error::Ssh {
            host: self.host.clone(),
            detail,
        })
    }

    /// Send a request; a 200 answer is returned with its body unread, any other becomes
    /// [`StubError::Api`].
    async fn start<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        timeout: Option<Duration>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, StubError> {
        let transport = |detail: String| self.transport(detail);
        let payload = match body {
            Some(body) => serde_json::to_vec(body).map_err(|e| transport(e.to_string()))?,
            None => Vec::new(),
        };
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", &self.authorization)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(payload)))
            .map_err(|e| transport(e.to_string()))?;
        let response = match timeout {
            Some(limit) => tokio::time::timeout(limit, self.http.request(request))
                .await
                .map_err(|_| {
                    transport(format!(
                        "no answer from the stub within {} s",
                        limit.as_secs()
                    ))
                })?,
            None => self.http.request(request).await,
        }
        .map_err(|e| transport(format!("stub request failed: {e}")))?;
        let status = response.status();
        if status == StatusCode::OK {
            return Ok(response);
        }
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| transport(e.to_string()))?
            .to_bytes();
        let error = serde_json::from_slice::<ApiError>(&bytes)
            .map_err(|_| transport(format!("stub answered {status}")))?;
        Err(StubError::Api {
            host: self.host.clone(),
            error: Box::new(error),
        })
    }
}

/// The lines of a streamed answer, parsed one at a time as they arrive.
pub struct NdjsonStream {
    host: String,
    body: hyper::body::Incoming,
    buffer: Vec<u8>,
}

impl NdjsonStream {
    /// The next value; `None` at the end of the stream.
    pub async fn next<T: DeserializeOwned>(&mut self) -> Result<Option<T>> {
        loop {
            if let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return serde_json::from_slice(&line)
                    .map(Some)
                    .map_err(|e| self.lost(format!("unexpected stub answer: {e}")));
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => return Err(self.lost(format!("the stub stream broke: {e}"))),
                None if self.buffer.iter().all(u8::is_ascii_whitespace) => return Ok(None),
                None => return Err(self.lost("the stub stream ended mid-line".into())),
            }
        }
    }

    fn lost(&self, detail: String) -> Error {
        Error::Ssh {
            host: self.host.clone(),
            detail,
        }
    }
}
