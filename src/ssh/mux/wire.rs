//! What a client and the helper say before the bytes of a channel flow: one JSON line each way.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::ssh::config::SshTarget;
use crate::ssh::tunnel::OpenFailure;

/// Longest line either side reads: a target with a long ProxyJump chain is a few KiB.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Open a `direct-streamlocal` channel to `socket` on `target`; the rest of the stream is its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub target: SshTarget,
    pub socket: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Answer {
    /// The channel is open; the stream now carries its bytes.
    Opened,
    /// The host refused the channel (its answer, not a link problem).
    Refused { prohibited: bool },
    /// The helper could not reach the host; the client connects itself, which reports why.
    Unavailable { reason: String },
}

impl Answer {
    pub fn refused(failure: OpenFailure) -> Answer {
        Answer::Refused {
            prohibited: failure == OpenFailure::Prohibited,
        }
    }
}

pub async fn write_line<T: Serialize>(
    out: &mut (impl AsyncWrite + Unpin),
    value: &T,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(value)?;
    line.push(b'\n');
    out.write_all(&line).await
}

/// One line of JSON; an error when it is longer than [`MAX_LINE_BYTES`], cut short, or not a `T`.
pub async fn read_line<T: for<'de> Deserialize<'de>>(
    input: &mut (impl AsyncBufRead + Unpin),
) -> std::io::Result<T> {
    let mut line = Vec::new();
    let read = (&mut *input)
        .take(MAX_LINE_BYTES as u64 + 1)
        .read_until(b'\n', &mut line)
        .await?;
    if read == 0 || line.last() != Some(&b'\n') {
        let problem = if line.len() > MAX_LINE_BYTES {
            "line too long"
        } else {
            "closed before the end of the line"
        };
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            problem,
        ));
    }
    serde_json::from_slice(&line)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, BufReader};

    #[tokio::test]
    async fn a_line_should_round_trip_and_leave_the_bytes_after_it() {
        let answer = Answer::Refused { prohibited: true };
        let mut bytes = Vec::new();
        write_line(&mut bytes, &answer).await.unwrap();
        bytes.extend_from_slice(b"channel bytes");
        let mut reader = BufReader::new(&bytes[..]);
        assert_eq!(read_line::<Answer>(&mut reader).await.unwrap(), answer);
        let mut rest = String::new();
        reader.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "channel bytes");
    }

    #[tokio::test]
    async fn an_overlong_or_cut_line_should_be_refused() {
        let long = vec![b' '; MAX_LINE_BYTES + 10];
        let error = read_line::<Answer>(&mut BufReader::new(&long[..]))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("too long"), "{error}");
        let cut = br#"{"opened""#;
        let error = read_line::<Answer>(&mut BufReader::new(&cut[..]))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("closed before"), "{error}");
    }

    #[tokio::test]
    async fn unknown_fields_should_be_refused() {
        let line = b"{\"unavailable\":{\"reason\":\"x\",\"extra\":1}}\n";
        assert!(read_line::<Answer>(&mut BufReader::new(&line[..]))
            .await
            .is_err());
    }
}
