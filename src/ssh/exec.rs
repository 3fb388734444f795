//! Running one command on an exec channel, with separate stdout/stderr and the exit status.

use russh::client::Msg;
use russh::{Channel, ChannelMsg};

use super::connect::Connection;
use crate::error::{Error, Result};

/// Most stdout one command may return: the largest output we ask for is a session export (a round
/// trip's back-file), so anything beyond that plus its status line is a runaway or hostile remote, and
/// holding it would only exhaust local memory before [`crate::session::Export::parse`] refused it.
pub const MAX_STDOUT_BYTES: usize = crate::session::MAX_EXPORT_BYTES + 64 * 1024;
/// stderr is only ever shown as a log tail; the rest is dropped.
pub const MAX_STDERR_BYTES: usize = 1024 * 1024;

/// What a remote command produced. `exit_status` is `None` when the command was killed by a signal or
/// the channel closed before the server reported a status.
#[derive(Debug, Default, Clone)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_status: Option<u32>,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.exit_status == Some(0)
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

impl Connection {
    /// Run `command` (a line for the remote user's shell: build it with [`super::quote`]) and feed it
    /// `stdin`, then EOF. Returns once the server has sent both the exit status and EOF/close, so no
    /// output is lost to a race between them.
    pub async fn exec(&self, command: &str, stdin: Option<&[u8]>) -> Result<ExecOutput> {
        self.exec_capped(command, stdin, MAX_STDOUT_BYTES).await
    }

    /// [`Connection::exec`] with a smaller cap on stdout than [`MAX_STDOUT_BYTES`]: past `max_stdout`
    /// bytes the command fails (`REMOTE_RUN_FAILED`) instead of growing the buffer.
    pub async fn exec_capped(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        max_stdout: usize,
    ) -> Result<ExecOutput> {
        let (channel, _slot) = self.open_session(1).await?;
        self.read_output(channel, command, stdin, max_stdout, &mut |_| {})
            .await
    }

    /// [`Connection::exec_capped`] that also hands each piece of stderr to `on_stderr` as it arrives
    /// (a long-running command's progress), besides collecting it.
    pub async fn exec_observed(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        max_stdout: usize,
        on_stderr: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<ExecOutput> {
        let (channel, _slot) = self.open_session(1).await?;
        self.read_output(channel, command, stdin, max_stdout, on_stderr)
            .await
    }

    /// Run `command` on an already opened channel (whose slot the caller holds).
    pub(super) async fn exec_on(
        &self,
        channel: Channel<Msg>,
        command: &str,
        stdin: Option<&[u8]>,
    ) -> Result<ExecOutput> {
        self.read_output(channel, command, stdin, MAX_STDOUT_BYTES, &mut |_| {})
            .await
    }

    async fn read_output(
        &self,
        channel: Channel<Msg>,
        command: &str,
        stdin: Option<&[u8]>,
        max_stdout: usize,
        on_stderr: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<ExecOutput> {
        // The remote login shell parses `command` first and may be csh, which ends a command at a
        // newline even inside quotes: the rest of a quoted value would run as a command of its own. And
        // sshd hands the line over through execve, which ends it at a NUL. So a command line is one line;
        // scripts travel on stdin (`sh -s`).
        if command.contains(['\n', '\0']) {
            return Err(Error::RemoteRunFailed {
                host: self.target.name.clone(),
                detail: "refused to send a command line containing a newline or NUL".into(),
                log_tail: String::new(),
            });
        }
        channel
            .exec(true, command)
            .await
            .map_err(|e| self.ssh_error(e))?;
        let (mut reader, writer) = channel.split();
        // russh waits forever for window space once the server has closed the channel (a command that
        // exits without reading its stdin), so stdin is fed while reading and abandoned when it ends.
        let feed = async {
            if let Some(input) = stdin {
                writer.data(input).await?;
            }
            writer.eof().await
        };
        tokio::pin!(feed);
        let mut feeding = true;
        let mut output = ExecOutput::default();
        let mut closed_cleanly = false;
        loop {
            let message = tokio::select! {
                _ = &mut feed, if feeding => {
                    feeding = false;
                    continue;
                }
                message = reader.wait() => message,
            };
            let Some(message) = message else { break };
            match message {
                ChannelMsg::Data { data } => {
                    if output.stdout.len() + data.len() > max_stdout {
                        return Err(Error::RemoteRunFailed {
                            host: self.target.name.clone(),
                            detail: format!(
                                "a remote command printed more than {max_stdout} bytes; refusing to hold it \
                                 in memory"
                            ),
                            log_tail: String::new(),
                        });
                    }
                    output.stdout.extend_from_slice(&data)
                }
                ChannelMsg::ExtendedData { data, ext: 1 } => {
                    on_stderr(&data);
                    let room = MAX_STDERR_BYTES.saturating_sub(output.stderr.len());
                    output
                        .stderr
                        .extend_from_slice(&data[..data.len().min(room)])
                }
                ChannelMsg::ExitStatus { exit_status } => output.exit_status = Some(exit_status),
                ChannelMsg::Eof | ChannelMsg::Close => closed_cleanly = true,
                ChannelMsg::Failure => {
                    return Err(self.ssh_error("the server refused to run the command"))
                }
                _ => {}
            }
        }
        if !closed_cleanly && output.exit_status.is_none() {
            return Err(Error::Ssh {
                host: self.target.name.clone(),
                detail: "connection lost during command".into(),
            });
        }
        Ok(output)
    }
}
