//! Runs `testdata/udf-vectors.txt`: every conformance vector of the spec
//! notes and the reference examples.

use std::collections::HashMap;

use crate::derive::{KeyAlg, Seed};
use crate::keys::{AgreementKey, SigningKey};
use crate::udf::{self, DigestAlg};
use crate::{pin, shamir};

const DATA: &str = include_str!("../testdata/udf-vectors.txt");

struct Record {
    kind: String,
    fields: HashMap<String, Vec<String>>,
}

impl Record {
    fn get(&self, k: &str) -> &str {
        self.fields
            .get(k)
            .and_then(|v| v.first())
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{} record lacks '{k}'", self.kind))
    }
}

fn records() -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    for line in DATA.lines() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(kind) = line.strip_prefix("== ") {
            out.push(Record {
                kind: kind.trim().to_string(),
                fields: HashMap::new(),
            });
        } else if let Some((k, v)) = line.split_once(':') {
            let r = out.last_mut().expect("field before first record");
            r.fields
                .entry(k.trim().to_string())
                .or_default()
                .push(v.trim().to_string());
        }
    }
    assert!(
        out.iter().all(|r| r.fields.contains_key("source")),
        "every vector names its source"
    );
    out
}

fn hex(s: &str) -> Vec<u8> {
    data_encoding::HEXUPPER_PERMISSIVE
        .decode(s.as_bytes())
        .expect("hex")
}

fn run(kind: &str, f: impl Fn(&Record)) -> usize {
    let rs: Vec<Record> = records().into_iter().filter(|r| r.kind == kind).collect();
    assert!(!rs.is_empty(), "no {kind} vectors");
    rs.iter().for_each(f);
    rs.len()
}

#[test]
fn digest_vectors() {
    let n = run("digest", |r| {
        let alg = if r.get("alg") == "sha3" {
            DigestAlg::Sha3
        } else {
            DigestAlg::Sha2
        };
        let bits: usize = r.get("bits").parse().expect("bits");
        let got =
            udf::content_digest_string(alg, r.get("content-type"), r.get("data").as_bytes(), bits)
                .expect("digest");
        assert_eq!(got, r.get("udf"));
    });
    assert_eq!(n, 6);
}

#[test]
fn authenticator_vectors() {
    run("authenticator", |r| {
        let mac = udf::authenticator(
            r.get("key"),
            r.get("content-type"),
            r.get("data").as_bytes(),
        );
        assert_eq!(
            udf::presentation_bits(&mac, udf::DEFAULT_BITS),
            r.get("udf")
        );
    });
}

#[test]
fn derivation_vectors() {
    run("derive", |r| {
        let seed = Seed::from_udf(r.get("seed")).expect("seed");
        assert_eq!(&*seed.to_udf(), r.get("seed"), "seed round trip");
        let (alg, public) = match r.get("alg") {
            "X25519" => (KeyAlg::X25519, {
                let okm = seed.derive(KeyAlg::X25519, r.get("key-name"));
                let k = AgreementKey::from_bytes(&okm);
                (
                    k.public_key().x25519_u().expect("u").to_vec(),
                    k.public_key(),
                )
            }),
            _ => (KeyAlg::Ed25519, {
                let okm = seed.derive(KeyAlg::Ed25519, r.get("key-name"));
                let k = SigningKey::from_seed(&okm);
                (k.verifying_key().to_bytes().to_vec(), k.public_key())
            }),
        };
        let okm = seed.derive(alg, r.get("key-name"));
        assert_eq!(&okm[..], &hex(r.get("okm"))[..], "OKM");
        assert_eq!(public.0, hex(r.get("public-u")), "public key");
        assert_eq!(public.1.udf(), r.get("fingerprint"), "fingerprint");
    });
}

#[test]
fn oid_vectors() {
    run("oid", |r| {
        let public = hex(r.get("public"));
        let mut o = vec![udf::UdfType::Oid.code()];
        o.extend_from_slice(&udf::pkix_key_der(&public));
        assert_eq!(udf::presentation_whole(&o), r.get("oid-udf"));
        assert_eq!(udf::key_udf(&public), r.get("fingerprint"));
    });
}

#[test]
fn message_id_vectors() {
    run("message-id", |r| {
        let m = r.get("message-id");
        assert_eq!(
            udf::message_digest_id(m, "application/mmm/envelopeid").expect("id"),
            r.get("envelope-id")
        );
        assert_eq!(
            udf::message_digest_id(m, "application/mmm/responseid").expect("id"),
            r.get("response-id")
        );
    });
}

#[test]
fn earl_vectors() {
    run("earl", |r| {
        let bits: usize = r.get("bits").parse().expect("bits");
        let got = udf::content_digest_string(
            DigestAlg::Sha2,
            "UDFEncryption",
            r.get("key").as_bytes(),
            bits,
        )
        .expect("earl");
        assert_eq!(got, r.get("locator"));
    });
}

#[test]
fn shamir_vectors() {
    run("shamir", |r| {
        let secret = hex(r.get("secret"));
        let k: usize = r.get("threshold").parse().expect("k");
        let texts = &r.fields["share"];
        let shares: Vec<shamir::Share> = texts
            .iter()
            .map(|t| shamir::Share::from_udf(t).expect("share parses"))
            .collect();
        for (s, t) in shares.iter().zip(texts) {
            assert_eq!(&*s.to_udf(), t, "share re-encodes to the same text");
            assert_eq!(usize::from(s.threshold()), k);
        }
        if let Some(values) = r.fields.get("values") {
            for (s, v) in shares.iter().zip(values[0].split_whitespace()) {
                let want: num_bigint::BigUint = v.parse().expect("decimal");
                assert_eq!(num_bigint::BigUint::from_bytes_be(&s.to_bytes()[2..]), want);
            }
        }
        // Every k-subset (of consecutive windows, wrapping) recovers the secret.
        for start in 0..shares.len() {
            let subset: Vec<_> = (0..k)
                .map(|i| shares[(start + i) % shares.len()].clone())
                .collect();
            assert_eq!(&shamir::recover(&subset).expect("recover")[..], &secret[..]);
        }
        assert_eq!(&shamir::recover(&shares).expect("all")[..], &secret[..]);
    });
}

#[test]
fn pin_vectors() {
    run("pin", |r| {
        assert_eq!(
            pin::salted_pin(r.get("pin"), r.get("action")).expect("salt"),
            r.get("salted-pin")
        );
        assert_eq!(
            pin::pin_id(r.get("pin"), r.get("account")).expect("id"),
            r.get("pin-id-of-unsalted")
        );
    });
}
