//! `mesh ssh-agent-relay`: one ssh-agent connection carried over standard
//! input and output (issue 26, the Windows half of the WSL bridge).
//!
//! WSL's interop runs `mesh.exe ssh-agent-relay` on Windows for each
//! connection to `mesh agent wsl-bridge`'s socket inside WSL; the relay
//! copies bytes between its standard input/output and the agent's
//! endpoint: the named pipe `\\.\pipe\openssh-ssh-agent` on Windows,
//! `$SSH_AUTH_SOCK` on Unix (where it is useful for tests and for a relay
//! over ssh or Wine). It is a byte pipe: no message is parsed, so nothing
//! here can misread one; the agent at the far end bounds and checks every
//! frame (256 KiB, as OpenSSH's) as it does for a local client.
//!
//! Windows' synchronous pipe handles serialise a read against a write on
//! the same handle (a blocked read would hold back the request it waits
//! for), so both directions go through tokio's overlapped named-pipe
//! client, whose halves may wait at once.

use std::ffi::OsString;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// The Windows OpenSSH agent's pipe, where Windows' own ssh looks.
pub const WINDOWS_PIPE: &str = r"\\.\pipe\openssh-ssh-agent";

/// How long answers still in flight are carried once standard input has
/// closed (a named pipe cannot be half-closed, so the agent may never say
/// it is done).
const DRAIN: Duration = Duration::from_secs(2);

/// What went wrong, and whose doing it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// Unix without `--socket` and without `$SSH_AUTH_SOCK` (the user's).
    #[error("no agent to relay to: SSH_AUTH_SOCK is not set and --socket was not given")]
    NoEndpoint,
    /// The agent's endpoint did not answer (the agent is not running).
    #[error("cannot connect to the agent at {endpoint}: {source}")]
    Connect {
        /// The socket or pipe.
        endpoint: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Standard input or output, or the connection, failed.
    #[error("{what}: {source}")]
    Io {
        /// What failed.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
}

impl RelayError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            RelayError::NoEndpoint => {
                "start an agent (`eval \"$(mesh agent env)\"`) or give --socket PATH".into()
            }
            RelayError::Connect { .. } if cfg!(windows) => {
                "start the Mesh agent on Windows (`mesh agent start`), or give --socket with the pipe it serves".into()
            }
            RelayError::Connect { .. } => {
                "start the agent (`mesh agent start`), or give --socket with the socket it serves".into()
            }
            RelayError::Io { .. } => return None,
        })
    }
}

/// The endpoint to relay to: `--socket`, else the platform's default.
pub fn endpoint(socket: Option<OsString>) -> Result<OsString, RelayError> {
    if let Some(s) = socket {
        return Ok(s);
    }
    if cfg!(windows) {
        return Ok(WINDOWS_PIPE.into());
    }
    std::env::var_os("SSH_AUTH_SOCK")
        .filter(|s| !s.is_empty())
        .ok_or(RelayError::NoEndpoint)
}

/// Relay standard input and output to `endpoint` until either side closes.
pub fn run(endpoint: &std::ffi::OsStr) -> Result<(), RelayError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| RelayError::Io {
            what: "starting the runtime",
            source,
        })?;
    let r = rt.block_on(async {
        let (r, w) = connect(endpoint)
            .await
            .map_err(|source| RelayError::Connect {
                endpoint: endpoint.to_string_lossy().into_owned(),
                source,
            })?;
        copy_both(tokio::io::stdin(), tokio::io::stdout(), r, w).await
    });
    // Standard input is read on a blocking thread that may still wait
    // for bytes that never come: do not wait for it.
    rt.shutdown_background();
    r
}

/// The agent's Unix socket, as a read and a write half.
#[cfg(unix)]
async fn connect(
    endpoint: &std::ffi::OsStr,
) -> std::io::Result<(impl AsyncRead + Unpin, impl AsyncWrite + Unpin)> {
    let s = tokio::net::UnixStream::connect(endpoint).await?;
    Ok(s.into_split())
}

/// The agent's named pipe (overlapped, so both halves may wait at once).
/// A pipe whose every instance is busy is tried again for a while, as
/// Windows' `WaitNamedPipe` would.
#[cfg(windows)]
async fn connect(
    endpoint: &std::ffi::OsStr,
) -> std::io::Result<(impl AsyncRead + Unpin, impl AsyncWrite + Unpin)> {
    use tokio::net::windows::named_pipe::ClientOptions;
    const ERROR_PIPE_BUSY: i32 = 231;
    let mut tries = 0;
    let pipe = loop {
        match ClientOptions::new().open(endpoint) {
            Ok(p) => break p,
            Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY) && tries < 50 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    };
    Ok(tokio::io::split(pipe))
}

/// Copy `input` to the agent and the agent's answers to `output`. The
/// relay ends when the agent closes; when `input` closes first, the
/// agent is told (a half-close where the endpoint has one) and answers
/// still coming are carried for up to [`DRAIN`].
pub async fn copy_both(
    mut input: impl AsyncRead + Unpin,
    mut output: impl AsyncWrite + Unpin,
    mut agent_r: impl AsyncRead + Unpin,
    mut agent_w: impl AsyncWrite + Unpin,
) -> Result<(), RelayError> {
    let io = |what| move |source| RelayError::Io { what, source };
    let down = async {
        tokio::io::copy(&mut agent_r, &mut output)
            .await
            .map_err(io("copying the agent's answers to standard output"))?;
        output.flush().await.map_err(io("flushing standard output"))
    };
    tokio::pin!(down);
    let up = async {
        tokio::io::copy(&mut input, &mut agent_w)
            .await
            .map_err(io("copying standard input to the agent"))?;
        // Ignored: a pipe has no half-close, and a closed agent is seen below.
        let _ = agent_w.shutdown().await;
        Ok::<(), RelayError>(())
    };
    tokio::select! {
        r = &mut down => r,
        r = up => {
            r?;
            match tokio::time::timeout(DRAIN, down).await {
                Ok(r) => r,
                Err(_) => Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes go both ways unchanged, and the relay ends when the agent
    /// closes, however long standard input stays open.
    #[tokio::test]
    async fn copies_both_ways_until_the_agent_closes() {
        let (client, mut relay_in) = tokio::io::duplex(64);
        let (mut relay_out, client_out) = tokio::io::duplex(64);
        let (agent_side, relay_side) = tokio::io::duplex(64);
        let (agent_r, agent_w) = tokio::io::split(relay_side);
        let (mut a_r, mut a_w) = tokio::io::split(agent_side);
        let relay = tokio::spawn(async move {
            copy_both(&mut relay_in, &mut relay_out, agent_r, agent_w).await
        });
        let agent = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut req = [0u8; 9];
            a_r.read_exact(&mut req).await.expect("request");
            a_w.write_all(b"\0\0\0\x01\x05").await.expect("answer");
            req
        });
        let mut client = client;
        client
            .write_all(b"\0\0\0\x05\x0bhell")
            .await
            .expect("write");
        assert_eq!(&agent.await.expect("agent"), b"\0\0\0\x05\x0bhell");
        relay.await.expect("join").expect("relay");
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut { client_out }, &mut got)
            .await
            .expect("read");
        assert_eq!(got, b"\0\0\0\x01\x05");
    }

    #[test]
    fn socket_flag_wins_over_the_environment() {
        assert_eq!(
            endpoint(Some("/x/agent.sock".into())).expect("endpoint"),
            OsString::from("/x/agent.sock")
        );
    }
}
