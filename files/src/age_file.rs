//! The age v1 file format (c2sp.org/age), for `mesh files encrypt|decrypt`
//! on a device without `age`: the files it writes open with `age -d` (and
//! age-plugin-mesh), and it opens what `age -r age1mesh1…` wrote.
//!
//! - header: `age-encryption.org/v1`, one stanza per recipient
//!   (`-> tag args…`, the body in unpadded base64 at 64 columns, the last
//!   line shorter), then `--- ` and an HMAC-SHA-256 of everything before
//!   the space, keyed by HKDF-SHA-256(file key, "", "header");
//! - payload: a 16-byte nonce, then STREAM: 64 KiB chunks sealed with
//!   ChaCha20-Poly1305 under HKDF-SHA-256(file key, nonce, "payload"), the
//!   chunk nonce an 11-byte big-endian counter and a last-chunk flag, so
//!   that a cut at a chunk boundary fails as a cut anywhere else does.
//!
//! One chunk in memory at a time; nothing of a chunk is released before it
//! authenticates.

use std::io::{BufRead, Read, Write};

use age_core::primitives::hkdf;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use data_encoding::BASE64_NOPAD;
use hmac::{Hmac, Mac};
use mesh_plugins::PluginError;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::device::{MeshStanza, FILE_KEY_LEN};
use crate::FilesError;

/// The first line of every age file.
const MAGIC: &[u8] = b"age-encryption.org/v1\n";
/// The first line of an armored (`age -a`) file.
const ARMOR: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";
/// Plaintext bytes per payload chunk.
pub const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
/// Bound on a header (a few stanzas; ours is well under 1 KiB).
const MAX_HEADER: usize = 1 << 20;
/// Base64 columns of a stanza body line.
const COLUMNS: usize = 64;

/// A parsed header: the stanzas, and the MAC to check once the file key
/// is known.
#[derive(Debug)]
pub struct Header {
    /// Every stanza, ours and others'.
    pub stanzas: Vec<MeshStanza>,
    /// The header up to and including `---`.
    mac_input: Vec<u8>,
    mac: Vec<u8>,
}

fn damaged(what: impl Into<String>) -> FilesError {
    FilesError::Damaged(what.into())
}

/// Write an age file: the header for `stanzas` (which wrap `file_key`),
/// then `input` sealed chunk by chunk.
pub fn encrypt(
    stanzas: &[MeshStanza],
    file_key: &[u8; FILE_KEY_LEN],
    input: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<(), FilesError> {
    let mut h = MAGIC.to_vec();
    for s in stanzas {
        write_stanza(&mut h, s);
    }
    h.extend_from_slice(b"---");
    let mac = header_mac(file_key, &h).finalize().into_bytes();
    h.extend_from_slice(format!(" {}\n", BASE64_NOPAD.encode(&mac)).as_bytes());
    let mut nonce = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    h.extend_from_slice(&nonce);
    out.write_all(&h).map_err(PluginError::io("the output"))?;
    let aead = payload_cipher(file_key, &nonce);
    let mut input = std::io::BufReader::with_capacity(CHUNK, input);
    let mut buf = Zeroizing::new(vec![0u8; CHUNK]);
    for counter in 0u64.. {
        let n = read_full(&mut input, &mut buf).map_err(PluginError::io("the input"))?;
        let last = n < CHUNK || at_end(&mut input).map_err(PluginError::io("the input"))?;
        let sealed = aead
            .encrypt(Nonce::from_slice(&chunk_nonce(counter, last)), &buf[..n])
            .map_err(|_| PluginError::Internal("ChaCha20-Poly1305 refused a chunk".into()))?;
        out.write_all(&sealed)
            .map_err(PluginError::io("the output"))?;
        if last {
            break;
        }
    }
    Ok(())
}

/// Read an age file's header (bounded), leaving `input` at the payload.
pub fn read_header(input: &mut dyn BufRead) -> Result<Header, FilesError> {
    let mut h = Vec::new();
    let first = read_line(input, &mut h)?;
    if first != MAGIC {
        return Err(if first.starts_with(ARMOR) {
            FilesError::Armored
        } else {
            FilesError::NotAge
        });
    }
    let mut stanzas = Vec::new();
    loop {
        let start = h.len();
        let line = read_line(input, &mut h)?;
        if let Some(mac) = line.strip_prefix(b"--- ") {
            let mac = mac.strip_suffix(b"\n").unwrap_or(mac);
            let mac = BASE64_NOPAD
                .decode(mac)
                .ok()
                .filter(|m| m.len() == 32)
                .ok_or_else(|| damaged("the header's MAC does not parse"))?;
            h.truncate(start + 3);
            return Ok(Header {
                stanzas,
                mac_input: h,
                mac,
            });
        }
        let args = line
            .strip_prefix(b"-> ")
            .and_then(|l| l.strip_suffix(b"\n"))
            .ok_or_else(|| damaged("a header line is neither a stanza nor its end"))?;
        stanzas.push(read_stanza(input, &mut h, args)?);
    }
}

/// Check the header's MAC with the file key, then write the payload of
/// `input` to `out`, chunk by authenticated chunk.
pub fn decrypt(
    header: &Header,
    file_key: &[u8],
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<(), FilesError> {
    header_mac(file_key, &header.mac_input)
        .verify_slice(&header.mac)
        .map_err(|_| damaged("the header's MAC does not match"))?;
    let mut nonce = [0u8; 16];
    if read_full(input, &mut nonce).map_err(PluginError::io("the input"))? < nonce.len() {
        return Err(damaged("the file ends before its payload"));
    }
    let aead = payload_cipher(file_key, &nonce);
    let mut buf = vec![0u8; CHUNK + TAG];
    for counter in 0u64.. {
        let n = read_full(input, &mut buf).map_err(PluginError::io("the input"))?;
        let last = n < buf.len() || at_end(input).map_err(PluginError::io("the input"))?;
        if n < TAG || (last && n == TAG && counter > 0) {
            return Err(damaged("the file is cut short"));
        }
        let plain = Zeroizing::new(
            aead.decrypt(Nonce::from_slice(&chunk_nonce(counter, last)), &buf[..n])
                .map_err(|_| {
                    damaged(format!(
                        "chunk {counter} does not authenticate (cut short, or changed)"
                    ))
                })?,
        );
        out.write_all(&plain)
            .map_err(PluginError::io("the output"))?;
        if last {
            return Ok(());
        }
    }
    Err(damaged("too many chunks"))
}

fn header_mac(file_key: &[u8], header: &[u8]) -> Hmac<Sha256> {
    let key = Zeroizing::new(hkdf(&[], b"header", file_key));
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&key[..]).expect("HMAC takes any key");
    m.update(header);
    m
}

fn payload_cipher(file_key: &[u8], nonce: &[u8; 16]) -> ChaCha20Poly1305 {
    let key = Zeroizing::new(hkdf(nonce, b"payload", file_key));
    ChaCha20Poly1305::new(Key::from_slice(&key[..]))
}

/// STREAM's nonce: an 11-byte big-endian counter, then the last-chunk flag.
fn chunk_nonce(counter: u64, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    n
}

fn write_stanza(h: &mut Vec<u8>, s: &MeshStanza) {
    h.extend_from_slice(b"-> ");
    h.extend_from_slice(s.tag.as_bytes());
    for a in &s.args {
        h.push(b' ');
        h.extend_from_slice(a.as_bytes());
    }
    h.push(b'\n');
    let body = BASE64_NOPAD.encode(&s.body);
    for line in body.as_bytes().chunks(COLUMNS) {
        h.extend_from_slice(line);
        h.push(b'\n');
    }
    // The body ends with a line shorter than 64 columns, empty if need be.
    if body.len().is_multiple_of(COLUMNS) {
        h.push(b'\n');
    }
}

/// A stanza whose `-> ` line held `args`: its body lines follow.
fn read_stanza(
    input: &mut dyn BufRead,
    h: &mut Vec<u8>,
    args: &[u8],
) -> Result<MeshStanza, FilesError> {
    let args = std::str::from_utf8(args).map_err(|_| damaged("a stanza is not text"))?;
    let mut words = args.split(' ').map(str::to_string);
    let tag = words.next().unwrap_or_default();
    let args: Vec<String> = words.collect();
    let printable = |w: &String| !w.is_empty() && w.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if !printable(&tag) || !args.iter().all(printable) {
        return Err(damaged("a stanza's arguments are not age's"));
    }
    let mut b64 = Vec::new();
    loop {
        let line = read_line(input, h)?;
        let line = line.strip_suffix(b"\n").unwrap_or(&line);
        if line.len() > COLUMNS {
            return Err(damaged("a stanza body line is longer than 64 columns"));
        }
        b64.extend_from_slice(line);
        if line.len() < COLUMNS {
            break;
        }
    }
    let body = BASE64_NOPAD
        .decode(&b64)
        .map_err(|_| damaged("a stanza body is not canonical base64"))?;
    Ok(MeshStanza { tag, args, body })
}

/// One header line (with its `\n`), appended to `h` too.
fn read_line(input: &mut dyn BufRead, h: &mut Vec<u8>) -> Result<Vec<u8>, FilesError> {
    let mut line = Vec::new();
    let limit = (MAX_HEADER.saturating_sub(h.len()) + 1) as u64;
    (&mut *input)
        .take(limit)
        .read_until(b'\n', &mut line)
        .map_err(PluginError::io("the input"))?;
    if h.len() + line.len() > MAX_HEADER {
        return Err(damaged("the header is larger than 1 MiB"));
    }
    if line.last() != Some(&b'\n') {
        return Err(if h.is_empty() && line.is_empty() {
            FilesError::NotAge
        } else {
            damaged("the file ends inside its header")
        });
    }
    h.extend_from_slice(&line);
    Ok(line)
}

/// Fill `buf` unless the input ends first; the bytes read.
fn read_full<R: Read + ?Sized>(input: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn at_end(input: &mut dyn BufRead) -> std::io::Result<bool> {
    Ok(input.fill_buf()?.is_empty())
}

#[cfg(test)]
#[path = "age_file_tests.rs"]
mod tests;
