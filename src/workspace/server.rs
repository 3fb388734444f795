//! The per-workspace local `opencode serve`: OpenCode's own server, with this plugin in remote tools
//! mode, so the workspace speaks the full OpenCode protocol while every file and command goes to the
//! host. The control plane proxies the workspace's sessions to it (its `target` URL).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::error::{Error, Result};

/// The server must not outlive the OpenCode that started it: a killed or crashed parent runs no
/// destructor, so `kill_on_drop` alone would leave it running. The kernel sends it SIGTERM when the
/// spawning thread ends; that is one of the runtime's worker threads, which live as long as the process.
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    // SAFETY: between fork and exec, only the async-signal-safe prctl(2) is called.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// Elsewhere the server is stopped by `remove` or when the plugin's process drops it.
#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}

/// How long `opencode serve` gets to print that it listens (a cold start is ~1–3 s; first plugin loads
/// can be slower).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long it then gets to load the project (config and plugins) and answer.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// What the server needs to know.
pub struct ServeSpec<'a> {
    pub opencode_bin: &'a str,
    /// The local working directory of the server (a private scratch dir; sessions' files are remote).
    pub cwd: &'a Path,
    /// Where its output goes.
    pub log_file: &'a Path,
    /// Environment from the control plane's `create` (workspace id, auth) plus our own.
    pub env: Vec<(String, String)>,
}

/// The user name OpenCode's basic auth expects when `OPENCODE_SERVER_USERNAME` is unset.
const SERVER_USER: &str = "opencode";
/// Random bytes of a workspace server's password (hex-encoded in the env).
const PASSWORD_BYTES: usize = 32;

/// The value of a workspace server's `authorization` header; `Debug` does not show it.
#[derive(Clone, Default)]
pub struct Authorization(String);

impl Authorization {
    /// The header value, for the control plane only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    #[cfg(test)]
    pub fn for_test(value: &str) -> Authorization {
        Authorization(value.to_string())
    }
}

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authorization(redacted)")
    }
}

/// A running per-workspace server.
pub struct WorkspaceServer {
    pub url: String,
    /// Its `OPENCODE_SERVER_PASSWORD`: without one, any local user could drive the server (and so the
    /// remote host). Fresh per start, kept only in memory, never logged (no `Debug`).
    password: String,
    child: Child,
}

impl WorkspaceServer {
    pub async fn start(spec: ServeSpec<'_>) -> Result<WorkspaceServer> {
        let log_dir = spec.log_file.parent().unwrap_or(spec.cwd);
        for dir in [spec.cwd, log_dir] {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        let password = random_password();
        let mut command = Command::new(spec.opencode_bin);
        command
            .args([
                "serve",
                "--port",
                "0",
                "--hostname",
                "127.0.0.1",
                "--print-logs",
            ])
            .current_dir(spec.cwd)
            .env("PWD", spec.cwd)
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            // After the control plane's env, so its own server password never leaks into ours.
            .env("OPENCODE_SERVER_USERNAME", SERVER_USER)
            .env("OPENCODE_SERVER_PASSWORD", &password)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        die_with_parent(&mut command);
        let mut child = command
            .spawn()
            .map_err(|e| Error::io("starting opencode serve", e))?;
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let log_file = spec.log_file.to_path_buf();
        let url = tokio::time::timeout(
            START_TIMEOUT,
            wait_for_url(stdout, stderr, log_file.clone()),
        )
        .await
        .map_err(|_| serve_failed(&log_file, "did not start listening in time"))?
        .ok_or_else(|| serve_failed(&log_file, "exited before listening"))?;
        let mut server = WorkspaceServer {
            url,
            password,
            child,
        };
        if let Err(problem) = server.wait_until_ready().await {
            server.stop().await;
            return Err(serve_failed(&log_file, &problem));
        }
        Ok(server)
    }

    /// Ask for something of the project's instance, which makes the server bootstrap it (config,
    /// plugins: seconds on a cold machine) and answers only once that is done. OpenCode gives a
    /// workspace 5 s after `create` returns to answer its first sync; without this, a slow first
    /// bootstrap fails the create with OpenCode's "Timed out waiting for global event".
    async fn wait_until_ready(&self) -> std::result::Result<(), String> {
        use http_body_util::Empty;
        use hyper::body::Bytes;
        use hyper_util::client::legacy::Client;
        use hyper_util::rt::TokioExecutor;

        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let request = hyper::Request::get(format!("{}/path", self.url))
            .header(hyper::header::AUTHORIZATION, self.authorization().expose())
            .body(Empty::new())
            .map_err(|e| format!("could not be asked for its paths: {e}"))?;
        match tokio::time::timeout(READY_TIMEOUT, client.request(request)).await {
            // Any answer means the instance is up; the status only matters to OpenCode's own requests.
            Ok(Ok(_answer)) => Ok(()),
            Ok(Err(e)) => Err(format!("did not answer its first request: {e}")),
            Err(_) => Err(format!(
                "did not finish starting within {} s",
                READY_TIMEOUT.as_secs()
            )),
        }
    }

    /// The `authorization` header the control plane sends to reach this server.
    pub fn authorization(&self) -> Authorization {
        use base64::Engine;
        let credentials = format!("{SERVER_USER}:{}", self.password);
        Authorization(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        ))
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub async fn stop(&mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// Copy the server's output to its log file and return the URL from its "listening on" line.
async fn wait_for_url(
    stdout: tokio::process::ChildStdout,
    stderr: tokio::process::ChildStderr,
    log_file: PathBuf,
) -> Option<String> {
    let (url_tx, url_rx) = tokio::sync::oneshot::channel();
    let log = std::sync::Arc::new(tokio::sync::Mutex::new(
        tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_file)
            .await
            .ok()?,
    ));
    let stderr_log = log.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = stderr_log
                .lock()
                .await
                .write_all(format!("{line}\n").as_bytes())
                .await;
        }
    });
    tokio::spawn(async move {
        let mut url_tx = Some(url_tx);
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(url) = line.split("listening on ").nth(1) {
                if let Some(tx) = url_tx.take() {
                    let _ = tx.send(url.trim().trim_end_matches('/').to_string());
                }
            }
            let _ = log
                .lock()
                .await
                .write_all(format!("{line}\n").as_bytes())
                .await;
        }
    });
    url_rx.await.ok()
}

fn serve_failed(log_file: &Path, what: &str) -> Error {
    let tail = std::fs::read_to_string(log_file).unwrap_or_default();
    let tail: Vec<&str> = tail.lines().rev().take(15).collect();
    Error::RemoteRunFailed {
        host: "(local)".into(),
        detail: format!("the workspace's opencode serve {what}"),
        log_tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
    }
}

fn random_password() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; PASSWORD_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
