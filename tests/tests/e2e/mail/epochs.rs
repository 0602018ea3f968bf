//! Several epochs of the shared encryption key (issue 22.5): after
//! revocations (each a new epoch) and a rotation, the NSS database `mesh
//! smime install` filled holds each certificate under its own nickname,
//! nothing superseded, and every epoch's key, so that old mail still
//! decrypts in NSS; a PKCS#12 export names each key with its epoch, and
//! OpenSSL decrypts each epoch's mail with that epoch's key; `mesh smime
//! decrypt` takes the key the recipient info names, and names the
//! recipient of a message for none of its keys.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use mesh_tests::{require_tool, Device, PortalProc, Scratch};

use super::{run, s, text, ADDR};

fn body(epoch: usize) -> String {
    format!("mail to epoch {epoch}\r\n")
}

/// An account whose phone holds one epoch of the shared encryption key
/// more than `revoked` names devices (each joins, with the administrator
/// role if its name says so, and is revoked), mail to each epoch's
/// certificate (OpenSSL, DER), and an NSS database the phone's `mesh smime
/// install` filled at the start and its syncs kept current.
struct Epochs {
    dir: Scratch,
    portal: PortalProc,
    phone: Device,
    nss: String,
    /// The phone's first signing certificate.
    first_signing: String,
}

impl Epochs {
    fn new(tag: &str, revoked: &[&str], rotate: bool) -> Option<Epochs> {
        if !["openssl", "cmsutil", "certutil", "pk12util"]
            .iter()
            .all(|t| require_tool(t))
        {
            return None;
        }
        let dir = Scratch::new(tag);
        let portal = PortalProc::start(&dir.path("portal"));
        let admin = Device::create_account(&dir.0, ADDR, &portal.url);
        let phone = Device::new(&dir.0, "phone");
        phone.join(&admin, ADDR, &portal.url, "phone");
        let db = dir.path("nss");
        phone.ok(&["smime", "install", "--nssdb", s(&db)]);
        let e = Epochs {
            nss: format!("sql:{}", db.display()),
            first_signing: phone.ok(&["smime", "cert"]),
            dir,
            portal,
            phone,
        };
        e.mail_to(0);
        for (i, name) in revoked.iter().enumerate() {
            e.join(&admin, name);
            admin.ok(&["device", "revoke", name]);
            e.phone.ok(&["sync"]);
            e.mail_to(i + 1);
        }
        if rotate {
            admin.ok(&["device", "rotate", "phone"]);
            e.phone.ok(&["sync"]);
        }
        Some(e)
    }

    /// A device joins, as an administrator if its name starts with "admin".
    fn join(&self, admin: &Device, name: &str) {
        let d = Device::new(&self.dir.0, name);
        let w = d.ok(&[
            "device",
            "request",
            ADDR,
            "--portal",
            &self.portal.url,
            "--name",
            name,
        ]);
        let roles = if name.starts_with("admin") {
            "admin,ssh,pgp,smime"
        } else {
            "ssh,pgp,smime"
        };
        admin.ok(&["device", "accept", w.trim(), "--roles", roles]);
        d.ok(&["sync"]);
    }

    fn p(&self, n: &str) -> PathBuf {
        self.dir.path(n)
    }

    /// Mail to the current encryption certificate (`enc<epoch>.pem`), as
    /// `m<epoch>.der`.
    fn mail_to(&self, epoch: usize) {
        let cert = self.p(&format!("enc{epoch}.pem"));
        std::fs::write(&cert, self.phone.ok(&["smime", "cert", "--encryption"])).expect("cert");
        let msg = self.p(&format!("m{epoch}.txt"));
        std::fs::write(&msg, body(epoch)).expect("msg");
        self.openssl(&[
            "cms",
            "-encrypt",
            "-aes-256-cbc",
            "-binary",
            "-outform",
            "DER",
            "-in",
            s(&msg),
            "-out",
            s(&self.p(&format!("m{epoch}.der"))),
            s(&cert),
        ]);
    }

    fn openssl(&self, args: &[&str]) -> String {
        run(Command::new("openssl").current_dir(&self.dir.0).args(args))
    }

    fn certutil(&self, args: &[&str]) -> String {
        run(Command::new("certutil").args(["-d", &self.nss]).args(args))
    }

    /// `mesh smime decrypt` on the phone.
    fn decrypt(&self, file: &str) -> String {
        self.phone
            .ok(&["smime", "decrypt", "--input", s(&self.p(file))])
    }
}

fn names(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|n| format!("{ADDR} ({n})")).collect()
}

/// A certificate's DER in base64, whatever the PEM's line breaks.
fn b64(pem: &str) -> String {
    pem.lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.split_whitespace())
        .collect()
}

#[test]
fn nss_database_names_each_epoch_once_and_drops_what_is_superseded() {
    let Some(e) = Epochs::new("nss-epochs", &["tablet", "admin2"], true) else {
        return;
    };
    // `certutil -L`: a nickname, then the trust flags (`u,u,u`) in the last column.
    let l = e.certutil(&["-L"]);
    let nicks: Vec<&str> = l
        .lines()
        .filter(|x| !x.starts_with(char::is_whitespace))
        .filter_map(|x| x.trim_end().rsplit_once(char::is_whitespace))
        .filter(|(_, trust)| trust.matches(',').count() == 2)
        .map(|(n, _)| n.trim())
        .collect();
    let unique: BTreeSet<String> = nicks.iter().map(|n| n.to_string()).collect();
    assert_eq!(unique.len(), nicks.len(), "look-alike nicknames: {l}");
    let mut want = names(&[
        "signing",
        "encryption epoch 2",
        "retired encryption epoch 1",
        "retired encryption epoch 0",
    ]);
    want.insert("Mesh personal CA".into());
    assert_eq!(unique, want, "{l}");
    // The signing certificate is the new CA's, alone under its name: the
    // one the revoked administrator's CA issued is gone.
    let now = e.certutil(&["-L", "-a", "-n", &format!("{ADDR} (signing)")]);
    assert_eq!(b64(&now), b64(&e.phone.ok(&["smime", "cert"])));
    assert_ne!(
        b64(&now),
        b64(&e.first_signing),
        "the new administrator epoch re-issued it"
    );
    // One key per name: the signing key and every epoch's encryption key
    // (old mail needs them).
    let keys = e.certutil(&["-K"]);
    let key_names: Vec<String> = keys
        .lines()
        .filter(|x| x.starts_with('<'))
        .filter_map(|x| x.split_once('>'))
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(2)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    assert_eq!(key_names.len(), 4, "{keys}");
    assert_eq!(
        key_names.into_iter().collect::<BTreeSet<_>>(),
        names(&[
            "signing",
            "encryption epoch 2",
            "retired encryption epoch 1",
            "retired encryption epoch 0",
        ]),
        "{keys}"
    );
    // Every epoch's mail decrypts in NSS, as in Thunderbird, and in Mesh.
    for epoch in 0..=2 {
        let f = format!("m{epoch}.der");
        let o = Command::new("cmsutil")
            .args(["-D", "-d", &e.nss, "-p", "", "-i", s(&e.p(&f))])
            .output()
            .expect("cmsutil");
        assert!(o.status.success(), "epoch {epoch}: {}", text(&o));
        assert_eq!(String::from_utf8_lossy(&o.stdout), body(epoch));
        assert_eq!(e.decrypt(&f), body(epoch));
    }
}

/// The bags `openssl pkcs12 -nodes` prints: (friendly name, PEM block).
fn bags(dump: &str) -> Vec<(String, String)> {
    dump.split("Bag Attributes")
        .skip(1)
        .map(|b| {
            let name = b
                .lines()
                .find_map(|l| l.trim().strip_prefix("friendlyName: "))
                .unwrap_or("")
                .to_string();
            let start = b.find("-----BEGIN").expect("a PEM block");
            (name, b[start..].to_string())
        })
        .collect()
}

#[test]
fn pkcs12_names_each_key_with_its_epoch_and_openssl_decrypts_each_epoch() {
    let Some(e) = Epochs::new("p12-epochs", &["tablet", "watch"], false) else {
        return;
    };
    std::fs::write(e.p("pw"), "pw\n").expect("pw");
    let p12 = e.p("phone.p12");
    e.phone.ok(&[
        "smime",
        "export",
        "--output",
        s(&p12),
        "--password-file",
        s(&e.p("pw")),
    ]);
    let dump = e.openssl(&["pkcs12", "-nodes", "-passin", "pass:pw", "-in", s(&p12)]);
    let bags = bags(&dump);
    let all: BTreeSet<&str> = bags.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(all.len(), bags.len(), "look-alike friendly names: {all:?}");
    let keys: Vec<&(String, String)> = bags
        .iter()
        .filter(|(_, pem)| pem.starts_with("-----BEGIN PRIVATE KEY"))
        .collect();
    assert_eq!(
        keys.iter().map(|(n, _)| n.clone()).collect::<BTreeSet<_>>(),
        names(&[
            "signing",
            "encryption epoch 2",
            "retired encryption epoch 1",
            "retired encryption epoch 0",
        ])
    );
    // Each epoch's key, taken by its name, reads that epoch's mail.
    for (epoch, name) in [
        (2, "encryption epoch 2"),
        (1, "retired encryption epoch 1"),
        (0, "retired encryption epoch 0"),
    ] {
        let (_, pem) = keys
            .iter()
            .find(|(n, _)| *n == format!("{ADDR} ({name})"))
            .expect("key");
        std::fs::write(e.p("k.pem"), pem).expect("key");
        let out = e.openssl(&[
            "cms",
            "-decrypt",
            "-binary",
            "-inform",
            "DER",
            "-in",
            &format!("m{epoch}.der"),
            "-inkey",
            "k.pem",
        ]);
        assert_eq!(out, body(epoch), "{name}");
    }
    // The current key comes first: `openssl smime -decrypt` with the
    // whole dump as its key (it takes the first) reads current mail.
    std::fs::write(e.p("all.pem"), &dump).expect("dump");
    let out = e.openssl(&[
        "smime", "-decrypt", "-binary", "-inform", "DER", "-in", "m2.der", "-inkey", "all.pem",
    ]);
    assert_eq!(out, body(2));
}

#[test]
fn decrypt_takes_the_key_the_recipient_info_names_and_names_a_stranger() {
    let Some(e) = Epochs::new("rid-epochs", &["tablet"], false) else {
        return;
    };
    e.openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "stranger.key",
        "-out",
        "stranger.pem",
        "-subj",
        "/CN=stranger",
        "-days",
        "2",
    ]);
    let encrypt = |out: &str, to: &[&str]| {
        let mut a = vec![
            "cms",
            "-encrypt",
            "-aes-256-cbc",
            "-binary",
            "-outform",
            "DER",
            "-in",
            "m0.txt",
            "-out",
            out,
        ];
        a.extend_from_slice(to);
        e.openssl(&a);
    };
    // Each epoch's mail opens with its own key; mail to a stranger and to
    // the old epoch opens with the old epoch's key.
    assert_eq!(e.decrypt("m0.der"), body(0));
    assert_eq!(e.decrypt("m1.der"), body(1));
    encrypt("both.der", &["stranger.pem", "enc0.pem"]);
    assert_eq!(e.decrypt("both.der"), body(0));
    // Mail to none of its keys: the error and its hint name the recipient.
    encrypt("stranger.der", &["stranger.pem"]);
    let err = e
        .phone
        .fails(&["smime", "decrypt", "--input", s(&e.p("stranger.der"))]);
    let serial = e.openssl(&["x509", "-noout", "-serial", "-in", "stranger.pem"]);
    let serial = serial.trim().strip_prefix("serial=").expect("serial");
    let hint = err
        .lines()
        .find(|l| l.contains("hint:"))
        .unwrap_or_else(|| panic!("no hint: {err}"));
    assert!(
        hint.contains(&format!("serial {serial} issued by CN=stranger")),
        "{err}"
    );
    assert!(
        err.contains("not encrypted to this account's encryption certificate"),
        "{err}"
    );
}
