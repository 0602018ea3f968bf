//! `mesh files encrypt|decrypt`'s own age v1 format (files/src/age_file.rs)
//! against the real `age` with no Mesh home at all: the header, its MAC,
//! the STREAM payload and its chunking are the same whatever the
//! recipient, so an X25519 recipient from `age-keygen` proves them in both
//! directions. The X25519 stanza is computed here from the age spec
//! (c2sp.org/age, "The X25519 recipient type"): the test plays the age
//! client's part, the code under test only writes and reads the file.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use age_core::primitives::{aead_decrypt, aead_encrypt, hkdf};
use bech32::{Bech32, Hrp};
use mesh_files::age_file::{self, CHUNK};
use mesh_files::device::{MeshStanza, FILE_KEY_LEN};
use mesh_files::FilesError;
use mesh_tests::{require_tool, Scratch};
use x25519_dalek::{PublicKey, StaticSecret};

/// "X25519 recipient stanzas ... the wrap key is HKDF-SHA-256 of the
/// shared secret, salted with the ephemeral share and the recipient,
/// info `age-encryption.org/v1/X25519`".
const X25519_LABEL: &[u8] = b"age-encryption.org/v1/X25519";

struct AgeKey {
    secret: StaticSecret,
    recipient: String,
    file: std::path::PathBuf,
}

/// A fresh identity from the real `age-keygen`, read back as age writes it.
fn keygen(dir: &Path) -> AgeKey {
    let file = dir.join("key.txt");
    let out = run(Command::new("age-keygen").arg("-o").arg(&file), None);
    assert!(out.status.success(), "age-keygen: {out:?}");
    let text = std::fs::read_to_string(&file).expect("key file");
    let line = text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .expect("a secret key line");
    let (hrp, bytes) = bech32::decode(line).expect("bech32 identity");
    assert_eq!(hrp.as_str().to_ascii_lowercase(), "age-secret-key-");
    let bytes: [u8; 32] = bytes.try_into().expect("32 bytes");
    let secret = StaticSecret::from(bytes);
    let public = PublicKey::from(&secret);
    let hrp = Hrp::parse("age").expect("hrp");
    let recipient = bech32::encode::<Bech32>(hrp, public.as_bytes()).expect("recipient");
    AgeKey {
        secret,
        recipient,
        file,
    }
}

fn run(cmd: &mut Command, stdin: Option<&Path>) -> Output {
    let stdin = match stdin {
        Some(p) => Stdio::from(std::fs::File::open(p).expect("input")),
        None => Stdio::null(),
    };
    cmd.stdin(stdin).output().expect("run")
}

/// The stanza an age client writes for `to`: `-> X25519 <share>`.
fn x25519_stanza(to: &PublicKey, file_key: &[u8; FILE_KEY_LEN]) -> MeshStanza {
    let eph = StaticSecret::from(rand_bytes());
    let share = PublicKey::from(&eph);
    let shared = eph.diffie_hellman(to);
    let salt = [share.as_bytes().as_slice(), to.as_bytes()].concat();
    let wrap = hkdf(&salt, X25519_LABEL, shared.as_bytes());
    MeshStanza {
        tag: "X25519".into(),
        args: vec![data_encoding::BASE64_NOPAD.encode(share.as_bytes())],
        body: aead_encrypt(&wrap, file_key),
    }
}

/// The file key from the X25519 stanza of a header, as an age client
/// unwraps it.
fn x25519_unwrap(stanzas: &[MeshStanza], key: &StaticSecret) -> [u8; FILE_KEY_LEN] {
    let s = stanzas
        .iter()
        .find(|s| s.tag == "X25519")
        .expect("an X25519 stanza");
    let share: [u8; 32] = data_encoding::BASE64_NOPAD
        .decode(s.args[0].as_bytes())
        .expect("share")
        .try_into()
        .expect("32 bytes");
    let share = PublicKey::from(share);
    let me = PublicKey::from(key);
    let shared = key.diffie_hellman(&share);
    let salt = [share.as_bytes().as_slice(), me.as_bytes()].concat();
    let wrap = hkdf(&salt, X25519_LABEL, shared.as_bytes());
    aead_decrypt(&wrap, FILE_KEY_LEN, &s.body)
        .expect("the stanza opens")
        .try_into()
        .expect("16 bytes")
}

fn rand_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom(&mut b);
    b
}

fn getrandom(b: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(b))
        .expect("urandom");
}

fn plain(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 253) as u8).collect()
}

/// Sizes around the 64 KiB chunk boundary, where STREAM's last-chunk flag
/// and an empty final chunk differ between implementations that disagree.
const SIZES: [usize; 6] = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5];

#[test]
fn what_we_write_opens_with_the_real_age_and_a_change_is_refused() {
    if !require_tool("age") || !require_tool("age-keygen") {
        return;
    }
    let dir = Scratch::new("age-interop-w");
    let key = keygen(&dir.0);
    let to = PublicKey::from(&key.secret);
    for len in SIZES {
        let data = plain(len);
        let file_key: [u8; FILE_KEY_LEN] = rand_bytes();
        let mut sealed = Vec::new();
        age_file::encrypt(
            &[x25519_stanza(&to, &file_key)],
            &file_key,
            &mut &data[..],
            &mut sealed,
        )
        .expect("encrypt");
        let path = dir.path(&format!("ours-{len}.age"));
        std::fs::write(&path, &sealed).expect("write");
        let out = run(
            Command::new("age").arg("-d").arg("-i").arg(&key.file),
            Some(&path),
        );
        assert!(out.status.success(), "age -d of {len} bytes: {out:?}");
        assert!(out.stdout == data, "age -d of {len} bytes: other bytes");

        // One flipped byte in the payload: age refuses the file.
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        std::fs::write(&path, &bad).expect("write");
        let out = run(
            Command::new("age").arg("-d").arg("-i").arg(&key.file),
            Some(&path),
        );
        assert!(!out.status.success(), "age took a changed file of {len}");
    }
}

#[test]
fn what_the_real_age_writes_opens_with_ours_and_a_change_is_refused() {
    if !require_tool("age") || !require_tool("age-keygen") {
        return;
    }
    let dir = Scratch::new("age-interop-r");
    let key = keygen(&dir.0);
    for len in SIZES {
        let data = plain(len);
        let input = dir.path(&format!("plain-{len}"));
        std::fs::write(&input, &data).expect("write");
        let out = run(
            Command::new("age").arg("-r").arg(&key.recipient),
            Some(&input),
        );
        assert!(out.status.success(), "age -r: {out:?}");
        let sealed = out.stdout;

        let open = |file: &[u8]| -> Result<Vec<u8>, FilesError> {
            let mut input = file;
            let header = age_file::read_header(&mut input)?;
            let file_key = x25519_unwrap(&header.stanzas, &key.secret);
            let mut out = Vec::new();
            age_file::decrypt(&header, &file_key, &mut input, &mut out)?;
            Ok(out)
        };
        assert_eq!(open(&sealed).expect("ours opens age's file"), data, "{len}");

        // A changed payload byte, a cut at the chunk boundary, and a
        // changed header byte (the MAC) are each refused.
        let header_len = sealed.len() - (16 + len + len.div_ceil(CHUNK).max(1) * 16);
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let mut cut = sealed.clone();
        cut.truncate(header_len + 16 + (CHUNK + 16).min(len + 16));
        let mut header = sealed.clone();
        header[header_len - 3] ^= 1;
        for (what, bad) in [("flipped", flipped), ("cut", cut), ("header", header)] {
            if bad == sealed {
                continue; // a cut that keeps the whole file (one chunk)
            }
            assert!(
                open(&bad).is_err(),
                "{what} file of {len} bytes opened with ours"
            );
        }
    }
}
