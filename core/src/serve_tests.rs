use super::*;
use crate::objects::CatalogedApplication;

const KEY: &str = "0123456789abcdef0123456789abcdef01234567";

fn answer(serial: &str) -> ServedOcsp {
    ServedOcsp {
        issuer_key_hash: KEY.into(),
        serial: serial.into(),
        next_update: 1_800_000_000,
        response: data_encoding::BASE64.encode(&[0x30, 0x03, 0x0a, 0x01, 0x00]),
    }
}

fn file(name: &str) -> ServedFile {
    ServedFile {
        name: name.into(),
        content_type: "application/pkix-crl".into(),
        body: data_encoding::BASE64.encode(b"\x30\x00"),
    }
}

#[test]
fn an_entry_without_serve_keeps_its_exact_bytes() {
    // What today's clients sign: parsing and writing again gives the same bytes.
    let bytes = r#"{"Uid":"ssh","Data":{"Principals":["alice"]}}"#;
    let app: CatalogedApplication = serde_json::from_str(bytes).expect("parses");
    assert_eq!(app.serve, None);
    assert_eq!(serde_json::to_string(&app).expect("writes"), bytes);
}

#[test]
fn an_entry_with_serve_round_trips_with_the_plan_names() {
    let bytes = r#"{"Uid":"status","Data":{},"Serve":{"Files":[{"Name":"a.crl","ContentType":"application/pkix-crl","Body":"MAA="}],"Ocsp":[{"IssuerKeyHash":"0123456789abcdef0123456789abcdef01234567","Serial":"1f","NextUpdate":1800000000,"Response":"MAMKAQA="}]}}"#;
    let app: CatalogedApplication = serde_json::from_str(bytes).expect("parses");
    let serve = app.serve.clone().expect("serve");
    let c = serve.check().expect("valid");
    assert_eq!(c.files[0].body, b"\x30\x00");
    assert_eq!(c.ocsp[0].serial, "1f");
    assert_eq!(c.ocsp[0].response, [0x30, 0x03, 0x0a, 0x01, 0x00]);
    assert_eq!(serde_json::to_string(&app).expect("writes"), bytes);
}

#[test]
fn malformed_serve_members_are_refused_with_what_is_wrong() {
    let cases: Vec<(&str, Serve, &str)> = vec![
        (
            "upper-case name",
            Serve {
                files: vec![file("A.crl")],
                ..Default::default()
            },
            "file name",
        ),
        (
            "empty name",
            Serve {
                files: vec![file("")],
                ..Default::default()
            },
            "file name",
        ),
        (
            "dot name",
            Serve {
                files: vec![file("..")],
                ..Default::default()
            },
            "file name",
        ),
        (
            "slash in name",
            Serve {
                files: vec![file("a/b")],
                ..Default::default()
            },
            "file name",
        ),
        (
            "reserved name",
            Serve {
                files: vec![file("ocsp")],
                ..Default::default()
            },
            "file name",
        ),
        (
            "long name",
            Serve {
                files: vec![file(&"a".repeat(65))],
                ..Default::default()
            },
            "file name",
        ),
        (
            "content type",
            Serve {
                files: vec![ServedFile {
                    content_type: "text\n/x".into(),
                    ..file("a")
                }],
                ..Default::default()
            },
            "ContentType",
        ),
        (
            "body",
            Serve {
                files: vec![ServedFile {
                    body: "!!".into(),
                    ..file("a")
                }],
                ..Default::default()
            },
            "Body",
        ),
        (
            "short key hash",
            Serve {
                ocsp: vec![ServedOcsp {
                    issuer_key_hash: "00".into(),
                    ..answer("1")
                }],
                ..Default::default()
            },
            "IssuerKeyHash",
        ),
        (
            "upper key hash",
            Serve {
                ocsp: vec![ServedOcsp {
                    issuer_key_hash: KEY.to_uppercase(),
                    ..answer("1")
                }],
                ..Default::default()
            },
            "IssuerKeyHash",
        ),
        (
            "leading zero",
            Serve {
                ocsp: vec![answer("01")],
                ..Default::default()
            },
            "Serial",
        ),
        (
            "empty serial",
            Serve {
                ocsp: vec![answer("")],
                ..Default::default()
            },
            "Serial",
        ),
        (
            "not hex",
            Serve {
                ocsp: vec![answer("xy")],
                ..Default::default()
            },
            "Serial",
        ),
        (
            "long serial",
            Serve {
                ocsp: vec![answer(&"f".repeat(41))],
                ..Default::default()
            },
            "Serial",
        ),
        (
            "not base64",
            Serve {
                ocsp: vec![ServedOcsp {
                    response: "%%".into(),
                    ..answer("1")
                }],
                ..Default::default()
            },
            "Response",
        ),
        (
            "not DER",
            Serve {
                ocsp: vec![ServedOcsp {
                    response: "AAAA".into(),
                    ..answer("1")
                }],
                ..Default::default()
            },
            "DER",
        ),
    ];
    for (what, serve, says) in cases {
        match serve.check() {
            Err(e @ ServeError::Malformed(_)) => {
                assert!(e.to_string().contains(says), "{what}: {e}")
            }
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn too_large_serve_members_are_refused() {
    let many = Serve {
        ocsp: (0..=MAX_OCSP)
            .map(|i| answer(&format!("{:x}", i + 1)))
            .collect(),
        ..Default::default()
    };
    assert!(matches!(many.check(), Err(ServeError::TooLarge(_))));
    let big = Serve {
        files: vec![ServedFile {
            body: data_encoding::BASE64.encode(&vec![0u8; MAX_SERVE_BYTES]),
            ..file("big")
        }],
        ..Default::default()
    };
    let e = big.check().expect_err("too large");
    assert!(e.to_string().contains("bytes of JSON"), "{e}");
    // At the limit of answers, it passes.
    let full = Serve {
        ocsp: (0..MAX_OCSP)
            .map(|i| answer(&format!("{:x}", i + 1)))
            .collect(),
        ..Default::default()
    };
    assert_eq!(full.check().expect("at the limit").ocsp.len(), MAX_OCSP);
}

#[test]
fn members_a_newer_writer_adds_are_ignored() {
    let s: Serve = serde_json::from_str(r#"{"Files":[],"Later":"x"}"#).expect("parses");
    assert_eq!(s, Serve::default());
    let app: CatalogedApplication =
        serde_json::from_str(r#"{"Uid":"a","Data":{},"Later":1}"#).expect("parses");
    assert_eq!(app.uid, "a");
}

#[test]
fn serial_keys_drop_leading_zeros() {
    assert_eq!(serial_hex(&[0x00, 0x8f, 0x01]), "8f01");
    assert_eq!(serial_hex(&[0x01]), "1");
    assert_eq!(serial_hex(&[0x00]), "0");
    assert_eq!(serial_hex(&[0x0a, 0x00]), "a00");
}

/// What a client before issue 28 parses (`deny_unknown_fields` then).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Pre28 {
    #[serde(rename = "Uid")]
    uid: String,
    #[serde(rename = "Data")]
    data: serde_json::Value,
}

#[test]
fn data_serve_is_read_and_parses_in_clients_before_issue_28() {
    let serve = Serve {
        ocsp: vec![answer("1f")],
        ..Default::default()
    };
    let inner = CatalogedApplication {
        uid: "status".into(),
        data: serde_json::json!({ "Serve": serve }),
        serve: None,
    };
    let top = CatalogedApplication {
        uid: "status".into(),
        data: serde_json::json!({}),
        serve: Some(serve.clone()),
    };
    assert_eq!(of(&inner).expect("reads"), Some(serve.clone()));
    assert_eq!(of(&top).expect("reads"), Some(serve.clone()));
    let old = |a: &CatalogedApplication| {
        serde_json::from_str::<Pre28>(&serde_json::to_string(a).expect("json")).is_ok()
    };
    assert!(old(&inner), "a client before issue 28 reads Data.Serve");
    assert!(!old(&top), "and refuses a top-level Serve");
    let both = CatalogedApplication {
        serve: Some(serve),
        ..inner
    };
    assert!(matches!(of(&both), Err(ServeError::Malformed(_))));
    let broken = CatalogedApplication {
        uid: "status".into(),
        data: serde_json::json!({"Serve": {"Ocsp": "no"}}),
        serve: None,
    };
    let e = of(&broken).expect_err("refused");
    assert!(e.to_string().contains("Data.Serve"), "{e}");
}
