//! The addon's HTTP client for the remote stub, through the local end of the SSH tunnel. Request and
//! response types come from the `protocol` crate the stub itself is built with.

use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
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

/// Largest stub answer read into memory: a read of the largest file, base64-encoded, fits well
/// within it. A stub (or whatever answers in its place) sending more is cut off with an error.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Longest NDJSON line of a streamed answer; the stub caps its own output lines far below this.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;
/// Idle pooled connections are dropped before the stub's own idle deadline (10 s) closes them, so
/// a request is not sent on a connection the stub is closing.
const POOL_IDLE: Duration = Duration::from_secs(5);

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
            http: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(POOL_IDLE)
                .build_http(),
        }
    }

    /// `http://127.0.0.1:<tunnel port>`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The `authorization` header value the stub requires (`Bearer <token>`); never log it.
    pub fn authorization(&self) -> &str {
        &self.authorization
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

    /// A 200 answer's body as the stub sent it, unparsed: the addon hands it to JS as JSON text,
    /// which `JSON.parse` turns into objects far faster than building them value by value.
    pub async fn post_raw<B: Serialize>(&self, path: &str, body: &B) -> Result<Bytes, StubError> {
        self.send(Method::POST, path, Some(body), Some(REQUEST_TIMEOUT))
            .await
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

    /// A streamed (NDJSON) answer to a GET that lasts as long as the stub keeps it open.
    pub async fn get_stream(&self, path: &str) -> Result<NdjsonStream, StubError> {
        let response = self.start::<()>(Method::GET, path, None, None).await?;
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
        read_capped(response.into_body())
            .await
            .map_err(|detail| self.transport(detail))
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
        let bytes = read_capped(response.into_body()).await.map_err(transport)?;
        let error = serde_json::from_slice::<ApiError>(&bytes)
            .map_err(|_| transport(format!("stub answered {status}")))?;
        Err(StubError::Api {
            host: self.host.clone(),
            error: Box::new(error),
        })
    }
}

/// A whole answer body, at most [`MAX_BODY_BYTES`].
async fn read_capped(body: hyper::body::Incoming) -> std::result::Result<Bytes, String> {
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(format!(
            "the stub's answer is larger than {} MiB; refused (is something other than the stub answering?)",
            MAX_BODY_BYTES >> 20
        )),
        Err(e) => Err(format!("reading the stub's answer: {e}")),
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
                    if self.buffer.len() > MAX_LINE_BYTES
                        && !self.buffer[..=MAX_LINE_BYTES].contains(&b'\n')
                    {
                        return Err(self.lost(format!(
                            "a line of the stub's streamed answer is longer than {} MiB; refused",
                            MAX_LINE_BYTES >> 20
                        )));
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

#[cfg(test)]
mod tests {
    //! Whatever answers on the stub's port may be hostile (or broken): the client must not read an
    //! unbounded answer into memory. The "stub" here is a raw loopback server sending such answers.

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server that answers the first request with `head` and then `body_bytes` bytes of `fill`,
    /// in chunked encoding; returns its port.
    async fn hostile_server(body_bytes: usize, fill: u8) -> u16 {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![fill; 256 * 1024];
            let mut sent = 0;
            while sent < body_bytes {
                let n = chunk.len().min(body_bytes - sent);
                let frame = [format!("{n:x}\r\n").as_bytes(), &chunk[..n], b"\r\n"].concat();
                if socket.write_all(&frame).await.is_err() {
                    return; // the client hung up: what the cap should do
                }
                sent += n;
            }
            let _ = socket.write_all(b"0\r\n\r\n").await;
        });
        port
    }

    #[tokio::test]
    async fn an_answer_larger_than_the_cap_should_be_refused() {
        let port = hostile_server(MAX_BODY_BYTES + 1024 * 1024, b' ').await;
        let client = StubClient::new("h", port, "secret-token");
        let error = client.health().await.unwrap_err();
        let text = Error::from(error).to_string();
        assert!(text.contains("larger than 64 MiB"), "{text}");
        assert!(!text.contains("secret-token"), "{text}");
    }

    #[tokio::test]
    async fn a_streamed_line_longer_than_the_cap_should_be_refused() {
        let port = hostile_server(MAX_LINE_BYTES * 4, b'x').await;
        let client = StubClient::new("h", port, "secret-token");
        let mut stream = client.post_stream("/x", &()).await.unwrap();
        let text = stream
            .next::<serde_json::Value>()
            .await
            .unwrap_err()
            .to_string();
        assert!(text.contains("longer than 1 MiB"), "{text}");
    }
}
