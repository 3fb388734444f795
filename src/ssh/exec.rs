//! Running one command on an exec channel, with separate stdout/stderr and the exit status.

use russh::ChannelMsg;

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
        let _slot = self.channel_slot().await;
        let mut channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| self.ssh_error(e))?;
        channel
            .exec(true, command)
            .await
            .map_err(|e| self.ssh_error(e))?;
        if let Some(input) = stdin {
            channel.data(input).await.map_err(|e| self.ssh_error(e))?;
        }
        channel.eof().await.map_err(|e| self.ssh_error(e))?;

        let mut output = ExecOutput::default();
        let mut closed_cleanly = false;
        while let Some(message) = channel.wait().await {
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
