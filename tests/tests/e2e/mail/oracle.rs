//! No decryption oracle: messages to our certificate that OpenSSL builds
//! and the test then forges (an RSA block of the wrong type, without its
//! zero, with a content key of the wrong length; bad CBC padding; a bad GCM
//! tag; a truncated ciphertext) all give `mesh smime decrypt` the same
//! error text and exit status, while the untouched messages decrypt.

use super::{text, Mail, BODY};

/// A DER value, enough of one to rewrite a leaf: definite lengths,
/// one-byte tags (all of CMS's here).
enum Node {
    Leaf(u8, Vec<u8>),
    Tree(u8, Vec<Node>),
}

fn parse(mut b: &[u8]) -> Vec<Node> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let tag = b[0];
        let (len, hl) = match b[1] {
            n if n < 0x80 => (usize::from(n), 2),
            0x80 => panic!("indefinite length: OpenSSL wrote BER"),
            n => {
                let k = usize::from(n & 0x7f);
                let len = b[2..2 + k]
                    .iter()
                    .fold(0usize, |a, x| (a << 8) | usize::from(*x));
                (len, 2 + k)
            }
        };
        let body = &b[hl..hl + len];
        out.push(if tag & 0x20 != 0 {
            Node::Tree(tag, parse(body))
        } else {
            Node::Leaf(tag, body.to_vec())
        });
        b = &b[hl + len..];
    }
    out
}

fn encode(nodes: &[Node]) -> Vec<u8> {
    let mut out = Vec::new();
    for n in nodes {
        let (tag, body) = match n {
            Node::Leaf(t, v) => (*t, v.clone()),
            Node::Tree(t, kids) => (*t, encode(kids)),
        };
        out.push(tag);
        let len = body.len().to_be_bytes();
        let skip = len.iter().take_while(|x| **x == 0).count();
        if body.len() < 0x80 {
            out.push(len[len.len() - 1]);
        } else {
            out.push(0x80 | u8::try_from(len.len() - skip).expect("length"));
            out.extend_from_slice(&len[skip..]);
        }
        out.extend_from_slice(&body);
    }
    out
}

/// `der` with `edit` applied to the last leaf that `pick` chooses.
fn forge(der: &[u8], pick: fn(u8, &[u8]) -> bool, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    fn last(nodes: &mut [Node], pick: fn(u8, &[u8]) -> bool) -> Option<&mut Vec<u8>> {
        let mut found = None;
        for n in nodes {
            match n {
                Node::Leaf(t, v) if pick(*t, v) => found = Some(v),
                Node::Leaf(..) => {}
                Node::Tree(_, kids) => {
                    if let Some(v) = last(kids, pick) {
                        found = Some(v);
                    }
                }
            }
        }
        found
    }
    let mut tree = parse(der);
    edit(last(&mut tree, pick).expect("the leaf to forge"));
    encode(&tree)
}

/// The RSA-wrapped content key (RecipientInfo's encryptedKey, 2,048 bits).
fn wrapped_key(tag: u8, v: &[u8]) -> bool {
    tag == 0x04 && v.len() == 256
}

/// The encrypted content (`[0] IMPLICIT`).
fn ciphertext(tag: u8, _: &[u8]) -> bool {
    tag == 0x80
}

/// AuthEnvelopedData's last OCTET STRING of 16 bytes: the tag (mac).
fn gcm_tag(tag: u8, v: &[u8]) -> bool {
    tag == 0x04 && v.len() == 16
}

/// A 2,048-bit PKCS#1 block: `00 kind PS sep KEY`.
fn block(kind: u8, sep: u8, key_len: usize) -> Vec<u8> {
    let mut b = vec![0, kind];
    b.resize(256 - key_len - 1, 0x5a);
    b.push(sep);
    b.resize(256, 0x11);
    b
}

#[test]
fn mail_forged_messages_to_our_certificate_all_fail_alike() {
    let Some(m) = Mail::new("mail-oracle") else {
        return;
    };
    for (alg, out) in [("-aes-256-cbc", "cbc.der"), ("-aes-256-gcm", "gcm.der")] {
        m.openssl(&[
            "cms", "-encrypt", alg, "-binary", "-outform", "DER", "-in", "msg.txt", "-out", out,
            "enc.pem",
        ]);
    }
    let read = |n: &str| std::fs::read(m.p(n)).expect("read");
    let (cbc, gcm) = (read("cbc.der"), read("gcm.der"));
    // OpenSSL encrypts a block of our choosing to our certificate.
    let rsa = |name: &str, input: &[u8], padding: &str| -> Vec<u8> {
        std::fs::write(m.p(name), input).expect("block");
        let out = format!("{name}.rsa");
        m.openssl(&[
            "pkeyutl",
            "-encrypt",
            "-certin",
            "-inkey",
            "enc.pem",
            "-pkeyopt",
            &format!("rsa_padding_mode:{padding}"),
            "-in",
            name,
            "-out",
            &out,
        ]);
        read(&out)
    };
    // The last plaintext byte is the padding's length: XORed into the byte
    // before it in the ciphertext, it becomes 0, which no padding ends with.
    let plain = read("msg.txt").len();
    let pad = u8::try_from(16 - plain % 16).expect("pad");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "an RSA block of type 1",
            forge(&cbc, wrapped_key, |v| {
                *v = rsa("t1", &block(1, 0, 32), "none")
            }),
        ),
        (
            "an RSA block without its zero",
            forge(&cbc, wrapped_key, |v| {
                *v = rsa("nz", &block(2, 0x5a, 32), "none")
            }),
        ),
        (
            "a 16-byte content key for AES-256",
            forge(&cbc, wrapped_key, |v| *v = rsa("k16", &[0x11; 16], "pkcs1")),
        ),
        (
            "an altered RSA ciphertext",
            forge(&cbc, wrapped_key, |v| v[100] ^= 1),
        ),
        (
            "bad CBC padding",
            forge(&cbc, ciphertext, |v| {
                let n = v.len();
                v[n - 17] ^= pad
            }),
        ),
        (
            "a CBC ciphertext cut inside a block",
            forge(&cbc, ciphertext, |v| v.truncate(v.len() - 5)),
        ),
        ("a bad GCM tag", forge(&gcm, gcm_tag, |v| v[0] ^= 1)),
        (
            "a GCM ciphertext cut short",
            forge(&gcm, ciphertext, |v| v.truncate(v.len() - 1)),
        ),
        (
            "an RSA block of type 1 (GCM)",
            forge(&gcm, wrapped_key, |v| {
                *v = rsa("g1", &block(1, 0, 32), "none")
            }),
        ),
    ];
    // A content key that does not unwrap is replaced by the implicit
    // rejection's (derived from the private key and the forged block), and
    // AES-CBC has no integrity: about 1 in 256 such forgeries "decrypt" to
    // garbage, in OpenSSL as in Mesh, whatever the RSA block was (so the
    // answer tells nothing about it). Those cases may do so; none may
    // ever give the message back, and every failure is the same.
    let rejected_cbc = [
        "an RSA block of type 1",
        "an RSA block without its zero",
        "a 16-byte content key for AES-256",
        "an altered RSA ciphertext",
    ];
    let body = read("msg.txt");
    let mut first: Option<(Option<i32>, String)> = None;
    for (what, der) in &cases {
        let garbage_allowed = rejected_cbc.contains(what);
        // One file name for all: the error text may name it.
        std::fs::write(m.p("forged.der"), der).expect("forged");
        let o = std::process::Command::new("openssl")
            .current_dir(&m.dir.0)
            .args([
                "cms",
                "-decrypt",
                "-inform",
                "DER",
                "-in",
                "forged.der",
                "-inkey",
                "rsa.pem",
                "-recip",
                "enc.pem",
            ])
            .output()
            .expect("openssl");
        assert!(
            !o.status.success() || (garbage_allowed && !o.stdout.ends_with(&body)),
            "{what}: OpenSSL decrypts the forgery"
        );
        let o =
            m.a.run(&["smime", "decrypt", "--input", &m.ps("forged.der")]);
        if garbage_allowed && o.status.success() {
            assert!(
                !o.stdout.ends_with(&body),
                "{what}: the forgery gave the message"
            );
            continue;
        }
        assert!(
            !o.status.success() && o.stdout.is_empty(),
            "{what}: {}",
            text(&o)
        );
        let got = (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        );
        match &first {
            None => {
                assert!(
                    got.1.contains("does not decrypt with this account's key")
                        && got.1.contains("\nhint: "),
                    "{what}: {}",
                    got.1
                );
                first = Some(got);
            }
            Some(f) => assert_eq!(&got, f, "{what} fails otherwise than {}", cases[0].0),
        }
    }
    // The messages as OpenSSL wrote them decrypt.
    for file in ["cbc.der", "gcm.der"] {
        assert!(m.decrypt(file).0.ends_with(BODY), "{file}");
    }
}
