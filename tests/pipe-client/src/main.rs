//! A test client of an ssh-agent, built for Windows and run under Wine
//! against `mesh.exe`'s named pipe (and for Unix against a socket), so that
//! the end-to-end tests reach the Windows agent through the pipe the way
//! Windows' OpenSSH does. It speaks the agent protocol
//! (draft-miller-ssh-agent: "SSH_AGENTC_REQUEST_IDENTITIES",
//! "SSH_AGENTC_SIGN_REQUEST") and nothing more of it; on Windows it also
//! reads, for the tests, what a Windows program sees of the user's
//! certificate stores.
//!
//! ```text
//! mesh-pipe-client ENDPOINT list             one OpenSSH line per identity
//! mesh-pipe-client ENDPOINT sign N NAMESPACE SSHSIG (armored) of stdin by identity N
//! mesh-pipe-client certs STORE               Windows: `KEY NAME` per certificate of
//!                                            CurrentUser\STORE (KEY: 1 when its private key opens)
//! ```

use std::io::{Read, Write};

use ssh_encoding::{Decode, Encode, Reader};
use ssh_key::{Certificate, HashAlg, LineEnding, PublicKey, Signature, SshSig};

const REQUEST_IDENTITIES: u8 = 11;
const IDENTITIES_ANSWER: u8 = 12;
const SIGN_REQUEST: u8 = 13;
const SIGN_RESPONSE: u8 = 14;
/// What this client reads of an answer at most.
const MAX_ANSWER: usize = 256 * 1024;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() {
    if let Err(e) = run() {
        eprintln!("mesh-pipe-client: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, c, store] = args.as_slice() {
        if c == "certs" {
            return certs(store);
        }
    }
    let (endpoint, command) = match args.as_slice() {
        [_, e, c, ..] => (e.as_str(), c.as_str()),
        _ => return Err("usage: mesh-pipe-client ENDPOINT list|sign N NAMESPACE".into()),
    };
    let mut conn = connect(endpoint)?;
    let ids = identities(&mut conn)?;
    match command {
        "list" => {
            for (blob, comment) in &ids {
                println!("{} {comment}", openssh_line(blob)?);
            }
        }
        "sign" => {
            let n: usize = args.get(3).ok_or("sign needs N")?.parse()?;
            let namespace = args.get(4).ok_or("sign needs NAMESPACE")?;
            let (blob, _) = ids.get(n).ok_or("no such identity")?;
            let mut msg = Vec::new();
            std::io::stdin().read_to_end(&mut msg)?;
            let data = SshSig::signed_data(namespace, HashAlg::Sha512, &msg)?;
            let sig = sign(&mut conn, blob, &data)?;
            let key = match PublicKey::from_bytes(blob) {
                Ok(k) => k.key_data().clone(),
                Err(_) => Certificate::from_bytes(blob)?.public_key().clone(),
            };
            let sshsig = SshSig::new(key, namespace.as_str(), HashAlg::Sha512, sig)?;
            print!("{}", sshsig.to_pem(LineEnding::LF)?);
        }
        other => return Err(format!("unknown command {other}").into()),
    }
    Ok(())
}

fn openssh_line(blob: &[u8]) -> Result<String> {
    match PublicKey::from_bytes(blob) {
        Ok(k) => Ok(k.to_openssh()?),
        Err(_) => Ok(Certificate::from_bytes(blob)?.to_openssh()?),
    }
}

/// One request, one answer (a length-prefixed frame each).
fn call(conn: &mut impl ReadWrite, body: &[u8]) -> Result<Vec<u8>> {
    let len = u32::try_from(body.len())?;
    conn.write_all(&len.to_be_bytes())?;
    conn.write_all(body)?;
    conn.flush()?;
    let mut n = [0u8; 4];
    conn.read_exact(&mut n)?;
    let n = usize::try_from(u32::from_be_bytes(n))?;
    if n == 0 || n > MAX_ANSWER {
        return Err(format!("an answer of {n} bytes").into());
    }
    let mut answer = vec![0u8; n];
    conn.read_exact(&mut answer)?;
    Ok(answer)
}

fn identities(conn: &mut impl ReadWrite) -> Result<Vec<(Vec<u8>, String)>> {
    let answer = call(conn, &[REQUEST_IDENTITIES])?;
    let (kind, mut r) = answer.split_first().ok_or("empty answer")?;
    if *kind != IDENTITIES_ANSWER {
        return Err(format!("answer type {kind} to REQUEST_IDENTITIES").into());
    }
    let count = u32::decode(&mut r)?;
    let mut ids = Vec::new();
    for _ in 0..count {
        let blob = Vec::<u8>::decode(&mut r)?;
        let comment = String::decode(&mut r)?;
        ids.push((blob, comment));
    }
    Ok(ids)
}

fn sign(conn: &mut impl ReadWrite, blob: &[u8], data: &[u8]) -> Result<Signature> {
    let mut req = vec![SIGN_REQUEST];
    blob.encode(&mut req)?;
    data.encode(&mut req)?;
    0u32.encode(&mut req)?;
    let answer = call(conn, &req)?;
    let (kind, mut r) = answer.split_first().ok_or("empty answer")?;
    if *kind != SIGN_RESPONSE {
        return Err(format!("answer type {kind} to SIGN_REQUEST (refused)").into());
    }
    let sig = Vec::<u8>::decode(&mut r)?;
    let mut sr = sig.as_slice();
    let sig = Signature::decode(&mut sr)?;
    if !sr.is_finished() {
        return Err("trailing bytes after the signature".into());
    }
    Ok(sig)
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

#[cfg(unix)]
fn connect(endpoint: &str) -> Result<impl ReadWrite> {
    Ok(std::os::unix::net::UnixStream::connect(endpoint)?)
}

#[cfg(windows)]
fn connect(endpoint: &str) -> Result<impl ReadWrite> {
    use interprocess::local_socket::traits::Stream as _;
    use interprocess::local_socket::{GenericFilePath, Stream, ToFsName};
    Ok(Stream::connect(endpoint.to_fs_name::<GenericFilePath>()?)?)
}

#[cfg(windows)]
fn certs(store: &str) -> Result<()> {
    let st = schannel::cert_store::CertStore::open_current_user(store)?;
    for c in st.certs() {
        let keyed = c.private_key().silent(true).acquire().is_ok();
        let name = c.friendly_name().unwrap_or_default();
        println!("{} {name}", u8::from(keyed));
    }
    Ok(())
}

#[cfg(not(windows))]
fn certs(_store: &str) -> Result<()> {
    Err("certificate stores are Windows'".into())
}
