//! Helpers for the agent's tests: keys, certificates, binds and userauth
//! requests as ssh makes them, driven through `Agent::handle_key`.

use ed25519_dalek::Signer as _;

use super::{Agent, Connection};
use crate::wire::{self, put_string, KeyReply};

pub(super) fn sk(seed: u8) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
}

pub(super) fn pub_blob(seed: u8) -> Vec<u8> {
    let mut b = Vec::new();
    put_string(&mut b, b"ssh-ed25519");
    put_string(&mut b, &sk(seed).verifying_key().to_bytes());
    b
}

pub(super) fn sig_blob(k: &ed25519_dalek::SigningKey, msg: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    put_string(&mut b, b"ssh-ed25519");
    put_string(&mut b, &k.sign(msg).to_bytes());
    b
}

/// A user certificate of key `seed` (signed by key 99) valid until `before`.
pub(super) fn cert_blob(seed: u8, before: u64) -> Vec<u8> {
    let mut b = Vec::new();
    put_string(&mut b, b"ssh-ed25519-cert-v01@openssh.com");
    put_string(&mut b, &[9; 32]);
    put_string(&mut b, &sk(seed).verifying_key().to_bytes());
    b.extend_from_slice(&1u64.to_be_bytes());
    b.extend_from_slice(&1u32.to_be_bytes());
    put_string(&mut b, b"id");
    put_string(&mut b, b"");
    b.extend_from_slice(&0u64.to_be_bytes());
    b.extend_from_slice(&before.to_be_bytes());
    for _ in 0..3 {
        put_string(&mut b, b"");
    }
    put_string(&mut b, &pub_blob(99));
    let sig = sig_blob(&sk(99), &b);
    put_string(&mut b, &sig);
    b
}

/// Add key `seed` (or its certificate `cert`) with comment `name`.
pub(super) async fn add(agent: &Agent, seed: u8, cert: Option<Vec<u8>>, name: &str) {
    let k = sk(seed);
    let mut m = vec![wire::ADD_IDENTITY];
    match cert {
        Some(c) => {
            put_string(&mut m, b"ssh-ed25519-cert-v01@openssh.com");
            put_string(&mut m, &c);
        }
        None => put_string(&mut m, b"ssh-ed25519"),
    }
    put_string(&mut m, &k.verifying_key().to_bytes());
    let mut private = k.to_bytes().to_vec();
    private.extend_from_slice(&k.verifying_key().to_bytes());
    put_string(&mut m, &private);
    put_string(&mut m, name.as_bytes());
    let req = wire::decode(&m).expect("ours").expect("parses");
    let r = agent.handle_key(&mut Connection::default(), req).await;
    assert!(matches!(r, KeyReply::Status(true)), "{r:?}");
}

/// A connection bound to host `seed` for session `sid` (`fwd`: a forwarding).
pub(super) fn bound(binds: &[(u8, &[u8], bool)]) -> Connection {
    let mut c = Connection::default();
    for (seed, sid, fwd) in binds {
        let mut m = Vec::new();
        put_string(&mut m, &pub_blob(*seed));
        put_string(&mut m, sid);
        put_string(&mut m, &sig_blob(&sk(*seed), sid));
        m.push(u8::from(*fwd));
        assert!(c.bind(&m), "bind");
    }
    c
}

/// A publickey userauth request for session `sid` signed by `key`.
pub(super) fn userauth(sid: &[u8], key: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    put_string(&mut m, sid);
    m.push(50);
    put_string(&mut m, b"root");
    put_string(&mut m, b"ssh-connection");
    put_string(&mut m, b"publickey");
    m.push(1);
    put_string(&mut m, b"ssh-ed25519");
    put_string(&mut m, key);
    m
}

pub(super) async fn sign(agent: &Agent, conn: &mut Connection, key: &[u8], data: &[u8]) -> bool {
    let req = wire::KeyRequest::Sign {
        blob: key.to_vec(),
        data: data.to_vec(),
        flags: 0,
    };
    matches!(agent.handle_key(conn, req).await, KeyReply::Signature(_))
}

pub(super) async fn names(agent: &Agent, conn: &mut Connection) -> Vec<String> {
    match agent.handle_key(conn, wire::KeyRequest::Identities).await {
        KeyReply::Identities(ids) => ids.into_iter().map(|(_, c)| c).collect(),
        r => panic!("{r:?}"),
    }
}

pub(super) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}
