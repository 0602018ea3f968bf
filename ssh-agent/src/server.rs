//! The socket side: bounded frames over a Unix stream (RFC 9987 §3).
//!
//! > Messages are a uint32 length followed by the message: the agent MUST
//! > NOT accept messages longer than it is prepared to handle.
//!
//! A frame over 256 KiB (OpenSSH's `AGENT_MAX_LEN`) closes the connection;
//! a message that does not parse, has trailing bytes or an unknown type is
//! answered `SSH_AGENT_FAILURE` and the connection goes on. One client's
//! mistakes never reach another client.

use std::sync::Arc;

use ssh_agent_lib::proto::{Request, Response};
use ssh_encoding::{Decode, Encode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::agent::{Agent, Connection};
use crate::wire::{self, KeyRequest};

/// Largest message accepted.
pub const MAX_FRAME: usize = 256 * 1024;

/// A decoded request: key requests are ours ([`crate::wire`]), the rest
/// ssh-agent-lib's.
#[derive(Debug)]
pub enum Message {
    /// List, sign, add, remove.
    Key(KeyRequest),
    /// Everything else.
    Other(Request),
}

/// Decode one message body: the whole body, nothing left over.
pub fn decode_request(body: &[u8]) -> Option<Message> {
    if let Some(k) = wire::decode(body) {
        return k.ok().map(Message::Key);
    }
    let mut reader = body;
    let req = Request::decode(&mut reader).ok()?;
    reader.is_empty().then_some(Message::Other(req))
}

/// Answer one message body.
pub async fn answer(agent: &Agent, conn: &mut Connection, body: &[u8]) -> Vec<u8> {
    match decode_request(body) {
        Some(Message::Key(k)) => {
            let reply = agent.handle_key(conn, k).await;
            let mut out = vec![0u8; 4];
            reply.encode(&mut out);
            let n = u32::try_from(out.len() - 4).unwrap_or(0);
            out[..4].copy_from_slice(&n.to_be_bytes());
            out
        }
        Some(Message::Other(req)) => encode_response(&agent.handle(conn, req).await),
        None => encode_response(&Response::Failure),
    }
}

/// The name an `ssh-rsa` (SHA-1) signature carries inside the agent: the
/// ssh-key crate has no value for it (its `Algorithm::Rsa { hash: None }`
/// signatures cannot be made), so it travels as this name and is written
/// as `ssh-rsa` on the wire.
pub(crate) const SSH_RSA_SHA1: &str = "ssh-rsa@sha1.mesh.invalid";

/// A SIGN_RESPONSE of an `ssh-rsa` signature (see [`SSH_RSA_SHA1`]).
fn encode_ssh_rsa(resp: &Response, body: &mut Vec<u8>) -> Option<()> {
    let Response::SignResponse(sig) = resp else {
        return None;
    };
    if sig.algorithm().as_str() != SSH_RSA_SHA1 {
        return None;
    }
    let mut blob = Vec::new();
    "ssh-rsa".encode(&mut blob).ok()?;
    sig.as_bytes().encode(&mut blob).ok()?;
    body.push(14);
    blob.encode(body).ok()
}

/// Encode a response with its length prefix.
pub fn encode_response(resp: &Response) -> Vec<u8> {
    let mut body = Vec::new();
    if encode_ssh_rsa(resp, &mut body).is_none() && resp.encode(&mut body).is_err() {
        body.clear();
        // SSH_AGENT_FAILURE always encodes.
        body.push(5);
    }
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Serve one connection until the peer closes it or sends an oversized frame.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(stream: S, agent: Arc<Agent>) {
    serve_conn(stream, agent, Connection::default()).await
}

/// Serve a Unix socket connection, knowing its peer (batch confirmation
/// groups requests by the requesting program).
#[cfg(unix)]
pub async fn serve_unix(stream: tokio::net::UnixStream, agent: Arc<Agent>) {
    let conn = match stream.peer_cred() {
        Ok(c) => Connection::with_peer(crate::dest::Peer {
            uid: c.uid(),
            pid: c.pid(),
        }),
        Err(_) => Connection::default(),
    };
    serve_conn(stream, agent, conn).await
}

/// Serve one connection whose state starts as `conn`.
pub async fn serve_conn<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    agent: Arc<Agent>,
    mut conn: Connection,
) {
    let mut len = [0u8; 4];
    loop {
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let n = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
        if n == 0 || n > MAX_FRAME {
            return;
        }
        let mut body = vec![0u8; n];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let out = answer(&agent, &mut conn, &body).await;
        zeroize::Zeroize::zeroize(&mut body);
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_ssh_rsa_signature_goes_out_as_ssh_rsa() {
        let name = ssh_key::AlgorithmName::new(SSH_RSA_SHA1).expect("name");
        let sig =
            ssh_key::Signature::new(ssh_key::Algorithm::Other(name), vec![7u8; 256]).expect("sig");
        let out = encode_response(&Response::SignResponse(sig));
        let mut want = vec![14u8];
        let mut blob = Vec::new();
        "ssh-rsa".encode(&mut blob).expect("name");
        [7u8; 256].as_slice().encode(&mut blob).expect("data");
        blob.encode(&mut want).expect("blob");
        assert_eq!(&out[4..], want.as_slice());
        assert_eq!(
            out[..4],
            u32::try_from(want.len()).expect("len").to_be_bytes()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// The decoder's fuzz smoke test (the cargo-fuzz target is `fuzz/`):
        /// any bytes decode to a request that re-encodes to the same bytes, or
        /// are refused; nothing panics.
        #[test]
        fn decoder_never_panics_and_round_trips(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Some(Message::Other(req)) = decode_request(&data) {
                let mut out = Vec::new();
                req.encode(&mut out).expect("encode");
                prop_assert_eq!(out, data);
            }
        }

        #[test]
        fn trailing_bytes_are_refused(extra in proptest::collection::vec(any::<u8>(), 1..8)) {
            // SSH_AGENTC_REMOVE_IDENTITY of an Ed25519 key. (Extensions are no
            // example: what follows their name is their contents.)
            let key = ssh_key::public::KeyData::Ed25519(ssh_key::public::Ed25519PublicKey([7; 32]));
            let mut msg = vec![18];
            let mut blob = Vec::new();
            key.encode(&mut blob).expect("blob");
            msg.extend_from_slice(&u32::try_from(blob.len()).expect("len").to_be_bytes());
            msg.extend_from_slice(&blob);
            prop_assert!(decode_request(&msg).is_some());
            msg.extend_from_slice(&extra);
            prop_assert!(decode_request(&msg).is_none());
        }
    }
}
