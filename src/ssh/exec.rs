//! Running one command on an exec channel, with separate stdout/stderr and the exit status.

use russh::client::Msg;
use russh::{Channel, ChannelMsg};

use super::connect::Connection;
use crate::error::{Error, Result};

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
        let (channel, _slot) = self.open_session(1).await?;
        self.exec_on(channel, command, stdin).await
    }

    /// Run `command` on an already opened channel (whose slot the caller holds).
    pub(super) async fn exec_on(
        &self,
        channel: Channel<Msg>,
        command: &str,
        stdin: Option<&[u8]>,
    ) -> Result<ExecOutput> {
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
                ChannelMsg::Data { data } => output.stdout.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, ext: 1 } => output.stderr.extend_from_slice(&data),
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
