//! The plugin host (issue: plugin host): every account event is one portal
//! transaction; rotation keeps every channel working on the rotated
//! device; revocation reaches GnuPG, NSS and the agent on the revoked
//! device and re-provisions the others; routine syncs publish nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mesh_tests::proxy::{Fault, FaultProxy};
use mesh_tests::{eventually, require_tool, Device, PortalProc, RunningAgent, Scratch};

const ADDR: &str = "alice@example.com";
pub(crate) const MAIL: &str = "a message for every device";

pub(crate) fn private_dir(dir: &Path, name: &str) -> PathBuf {
    let h = dir.join(name);
    std::fs::create_dir_all(&h).expect("dir");
    std::fs::set_permissions(&h, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    h
}

pub(crate) fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub(crate) fn run(cmd: &mut Command) -> String {
    let o = cmd.output().expect("run");
    assert!(o.status.success(), "{cmd:?}: {}", out(&o));
    out(&o)
}

pub(crate) fn gpg(home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("gpg");
    c.arg("--homedir").arg(home).args([
        "--batch",
        "--no-tty",
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
    ]);
    c.args(args);
    c
}

pub(crate) fn stop_gpg(homes: &[&Path]) {
    for h in homes {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(h)
            .args(["--kill", "all"])
            .output();
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// `mesh smime cert --encryption` of `d`, written to a file.
pub(crate) fn encryption_cert(d: &Device, file: &Path) -> String {
    let pem = d.ok(&["smime", "cert", "--encryption"]);
    std::fs::write(file, &pem).expect("write");
    pem
}

/// S/MIME mail to the account as any sender writes it (OpenSSL).
pub(crate) fn smime_mail(cert: &Path, out_file: &Path, msg: &Path) {
    run(Command::new("openssl")
        .args([
            "cms",
            "-encrypt",
            "-aes-256-cbc",
            "-binary",
            "-outform",
            "DER",
            "-in",
        ])
        .arg(msg)
        .arg("-out")
        .arg(out_file)
        .arg(cert));
}

pub(crate) fn cmsutil_decrypts(nssdb: &Path, file: &Path) -> bool {
    let o = Command::new("cmsutil")
        .args([
            "-D",
            "-d",
            &format!("sql:{}", nssdb.display()),
            "-p",
            "",
            "-i",
        ])
        .arg(file)
        .output()
        .expect("cmsutil");
    o.status.success() && out(&o).contains(MAIL)
}

/// OpenPGP mail to the account, from a third party's GnuPG home.
fn pgp_mail(sender: &Path, a: &Device, dir: &Path, name: &str) -> PathBuf {
    let cert = dir.join(format!("{name}.cert"));
    std::fs::write(&cert, a.ok(&["pgp", "cert", "--armor"])).expect("cert");
    run(gpg(sender, &["--import"]).arg(&cert));
    let file = dir.join(format!("{name}.pgp"));
    run(gpg(
        sender,
        &[
            "--trust-model",
            "always",
            "--encrypt",
            "-r",
            ADDR,
            "--output",
            s(&file),
        ],
    )
    .arg(dir.join("msg.txt")));
    file
}

fn tools() -> bool {
    [
        "gpg", "openssl", "cmsutil", "certutil", "pk12util", "ssh-add",
    ]
    .iter()
    .all(|t| require_tool(t))
}

#[test]
fn rotation_keeps_openpgp_and_smime_working_on_the_rotated_device() {
    if !tools() {
        return;
    }
    let dir = Scratch::new("host-rotate");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::create_account(&dir.0, ADDR, &portal.url);
    let b = Device::new(&dir.0, "b");
    b.join(&a, ADDR, &portal.url, "phone");
    let (bg, xg, bn) = (
        private_dir(&dir.0, "b-gnupg"),
        private_dir(&dir.0, "x-gnupg"),
        dir.path("b-nss"),
    );
    b.ok(&["pgp", "install", "--gnupghome", s(&bg)]);
    b.ok(&["smime", "install", "--nssdb", s(&bn)]);
    std::fs::write(dir.path("msg.txt"), MAIL).expect("msg");
    let enc_before = encryption_cert(&b, &dir.path("enc.pem"));
    let old_pgp = pgp_mail(&xg, &a, &dir.0, "old");
    smime_mail(
        &dir.path("enc.pem"),
        &dir.path("old.p7m"),
        &dir.path("msg.txt"),
    );
    let key_before = b.ok(&["ssh", "public-key"]);

    a.ok(&["device", "rotate", "phone"]);
    assert!(b.ok(&["sync"]).contains("rotated"));
    // The rotation published a KRL with the replaced key; servers fetch it.
    let udf = a.json(&["account", "show"])["profile_udf"]
        .as_str()
        .expect("udf")
        .to_string();
    let krl = dir.path("rotated.krl");
    a.ok(&[
        "ssh",
        "krl",
        "--account",
        &udf,
        "--portal",
        &portal.url,
        "--output",
        s(&krl),
    ]);
    std::fs::write(dir.path("old.pub"), &key_before).expect("old key");
    std::fs::write(dir.path("new.pub"), b.ok(&["ssh", "public-key"])).expect("new key");
    let revoked = |k: &str| {
        let o = Command::new("ssh-keygen")
            .arg("-Q")
            .arg("-f")
            .arg(&krl)
            .arg(dir.path(k))
            .output()
            .expect("ssh-keygen");
        String::from_utf8_lossy(&o.stdout).contains("REVOKED")
    };
    assert!(
        revoked("old.pub") && !revoked("new.pub"),
        "the old key, not the new one"
    );
    assert_ne!(
        b.ok(&["ssh", "public-key"]),
        key_before,
        "the SSH key is new"
    );
    // Rotation is not revocation: the shared encryption key stays.
    assert_eq!(encryption_cert(&b, &dir.path("enc.pem")), enc_before);
    let new_pgp = pgp_mail(&xg, &a, &dir.0, "new");
    smime_mail(
        &dir.path("enc.pem"),
        &dir.path("new.p7m"),
        &dir.path("msg.txt"),
    );
    for f in ["old.p7m", "new.p7m"] {
        let clear = b.ok(&["smime", "decrypt", "--input", s(&dir.path(f))]);
        assert_eq!(clear, MAIL, "{f} with mesh on the rotated device");
        assert!(
            cmsutil_decrypts(&bn, &dir.path(f)),
            "{f} with NSS on the rotated device"
        );
    }
    // Its OpenPGP secrets open under its new key: a fresh export works.
    let bg2 = private_dir(&dir.0, "b-gnupg-2");
    b.ok(&["pgp", "export-secret", "--output", s(&dir.path("b.pgp"))]);
    b.ok(&[
        "pgp",
        "install",
        "--gnupghome",
        s(&bg2),
        "--from",
        s(&dir.path("b.pgp")),
    ]);
    for home in [&bg, &bg2] {
        for f in [&old_pgp, &new_pgp] {
            let clear = run(gpg(home, &["--decrypt"]).arg(f));
            assert!(clear.contains(MAIL), "{}: {clear}", f.display());
        }
    }
    // It signs; a third party verifies against the account's certificate.
    run(gpg(&bg, &["--sign", "--output", s(&dir.path("signed.gpg"))]).arg(dir.path("msg.txt")));
    run(gpg(&xg, &["--import"]).arg(dir.path("new.cert")));
    let v = run(gpg(&xg, &["--status-fd", "1", "--verify"]).arg(dir.path("signed.gpg")));
    assert!(v.contains("VALIDSIG"), "{v}");
    stop_gpg(&[&bg, &bg2, &xg]);
}

#[test]
fn revocation_wipes_the_revoked_device_and_reprovisions_the_others() {
    if !tools() {
        return;
    }
    let dir = Scratch::new("host-revoke");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::create_account(&dir.0, ADDR, &portal.url);
    let (b, c) = (Device::new(&dir.0, "b"), Device::new(&dir.0, "c"));
    b.join(&a, ADDR, &portal.url, "phone");
    c.join(&a, ADDR, &portal.url, "tablet");
    let (bg, bn, cn) = (
        private_dir(&dir.0, "b-gnupg"),
        dir.path("b-nss"),
        dir.path("c-nss"),
    );
    b.ok(&["pgp", "install", "--gnupghome", s(&bg)]);
    b.ok(&["smime", "install", "--nssdb", s(&bn)]);
    c.ok(&["smime", "install", "--nssdb", s(&cn)]);
    let fpr = a.json(&[
        "pgp",
        "install",
        "--gnupghome",
        s(&private_dir(&dir.0, "a-gnupg")),
    ])["fingerprint"]
        .as_str()
        .expect("fpr")
        .to_string();
    let enc_before = encryption_cert(&c, &dir.path("enc-old.pem"));
    let (ag_b, _ag_c) = (RunningAgent::start(&b), RunningAgent::start(&c));
    assert!(
        ag_b.identities().contains("phone@"),
        "{}",
        ag_b.identities()
    );
    assert!(out(&gpg(&bg, &["-K", "--with-colons"]).output().expect("gpg")).contains(&fpr));

    a.ok(&["device", "revoke", "phone"]);

    // The revoked device, at its agent's next contact: no agent (it wiped
    // and exited), no secret key of the account in GnuPG, no key in NSS.
    assert!(
        eventually(30, || ag_b.exited() && !ag_b.sock.exists()),
        "{}",
        ag_b.log()
    );
    assert!(eventually(10, || {
        let k = out(&gpg(&bg, &["-K", "--with-colons"]).output().expect("gpg"));
        !k.contains(&fpr)
            && !k
                .lines()
                .any(|l| l.starts_with("ssb") || l.starts_with("sec"))
    }));
    let keys = out(&Command::new("certutil")
        .args(["-K", "-d", &format!("sql:{}", bn.display())])
        .output()
        .expect("certutil"));
    assert!(!keys.contains(ADDR), "{keys}");
    let certs = out(&Command::new("certutil")
        .args(["-L", "-d", &format!("sql:{}", bn.display())])
        .output()
        .expect("certutil"));
    assert!(
        !certs.contains(ADDR) && !certs.contains("Mesh personal CA"),
        "{certs}"
    );
    // The public certificate stays: the revocation shows.
    let pubs = out(&gpg(&bg, &["--with-colons", "--list-keys", &fpr])
        .output()
        .expect("gpg"));
    assert!(pubs.contains(&fpr), "{pubs}");
    let e = b.fails(&["agent", "start"]);
    assert!(e.contains("revoked"), "{e}");
    assert!(!b.home.join("secrets.enc").exists());
    assert!(!b.home.join("keystore").join("store.key").exists());
    assert!(b.json(&["account", "show"])["membership"] == "revoked");

    // A surviving device's NSS database decrypts mail to the new key.
    assert!(eventually(30, || encryption_cert(
        &c,
        &dir.path("enc-new.pem")
    ) != enc_before));
    smime_mail(&dir.path("enc-new.pem"), &dir.path("new.p7m"), &{
        std::fs::write(dir.path("msg.txt"), MAIL).expect("msg");
        dir.path("msg.txt")
    });
    assert!(eventually(30, || cmsutil_decrypts(
        &cn,
        &dir.path("new.p7m")
    )));
    stop_gpg(&[&bg, &dir.path("a-gnupg")]);
}

#[test]
fn routine_administrator_syncs_publish_nothing() {
    let dir = Scratch::new("host-idle");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::create_account(&dir.0, ADDR, &portal.url);
    let b = Device::new(&dir.0, "b");
    b.join(&a, ADDR, &portal.url, "phone");
    a.ok(&["sync"]);
    let cert = a.ok(&["pgp", "cert", "--armor"]);
    for _ in 0..3 {
        let r = a.json(&["sync"]);
        assert_eq!(r["entries_published"], 0, "{r}");
        assert_eq!(a.ok(&["pgp", "cert", "--armor"]), cert);
    }
    let r = b.json(&["sync"]);
    assert_eq!(r["entries"], 0, "a member has nothing new: {r}");
}

/// The state another device sees: device states, the encryption
/// certificate, the OpenPGP certificate.
fn observed(c: &Device) -> (String, String, String) {
    c.ok(&["sync"]);
    (
        c.ok(&["device", "list"]),
        c.ok(&["smime", "cert", "--encryption"]),
        c.ok(&["pgp", "cert", "--armor"]),
    )
}

#[test]
fn every_account_event_is_one_transaction_and_a_fault_leaves_old_or_new() {
    let dir = Scratch::new("host-fault");
    let portal = PortalProc::start(&dir.path("portal"));
    let proxy = FaultProxy::start(&portal.url);
    let a = Device::new(&dir.0, "a");
    a.ok(&[
        "account",
        "create",
        ADDR,
        "--portal",
        &proxy.url,
        "--device",
        "laptop",
        "--recovery",
        &a.kit(),
    ]);
    let (b, c) = (Device::new(&dir.0, "b"), Device::new(&dir.0, "c"));
    // Accepting a device: one transaction with its catalog entry, the access
    // list and every channel's entries (certificates, wrapped keys).
    let w = b.ok(&[
        "device", "request", ADDR, "--portal", &proxy.url, "--name", "phone",
    ]);
    proxy.reset();
    a.ok(&["device", "accept", w.trim()]);
    assert_eq!(proxy.count("Transact"), 1, "accept");
    b.ok(&["sync"]);
    assert!(
        b.ok(&["smime", "cert"]).contains("BEGIN CERTIFICATE"),
        "its certificate came with the acceptance"
    );
    c.join(&a, ADDR, &proxy.url, "tablet");

    // Rotation: one transaction.
    proxy.reset();
    a.ok(&["device", "rotate", "tablet"]);
    assert_eq!(proxy.count("Transact"), 1, "rotate");
    c.ok(&["sync"]);

    // A revocation whose request never reached the portal: nothing changed.
    let before = observed(&c);
    proxy.arm("Transact", Fault::DropRequest);
    a.fails(&["device", "revoke", "phone"]);
    assert_eq!(observed(&c), before, "the old state, whole");

    // A revocation whose answer was lost, with the portal gone right after:
    // the outcome is unknown, and said so.
    proxy.reset();
    proxy.arm("Transact", Fault::DropResponseThenDown);
    let e = a.fails(&["device", "revoke", "phone"]);
    assert!(
        e.contains("the outcome is unknown") && e.contains("hint: when the portal is back"),
        "{e}"
    );
    assert_eq!(proxy.count("Transact"), 1, "revoke");
    proxy.heal();
    // Everything changed at once; a retry of the committed revocation succeeds.
    let retry = a.run(&["device", "revoke", "phone"]);
    assert!(retry.status.success(), "{}", out(&retry));
    assert!(String::from_utf8_lossy(&retry.stderr).contains("was revoked already"));
    let after = observed(&c);
    assert!(
        after
            .0
            .lines()
            .any(|l| l.contains("phone") && l.contains("revoked")),
        "{}",
        after.0
    );
    assert_ne!(
        after.1, before.1,
        "the encryption certificate rotated in the same transaction"
    );
    assert_ne!(
        after.2, before.2,
        "the OpenPGP certificate changed in the same transaction"
    );
    // The administrator converges at its next sync; nothing is left to publish.
    assert_eq!(a.json(&["sync"])["entries_published"], 0);
    assert_eq!(observed(&c), after);

    // Recovery from escrow: one transaction too, and the recovered device
    // has its certificates and wrapped keys at once.
    let kit: Vec<String> = a
        .kit_files()
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    let r = Device::new(&dir.0, "r");
    proxy.reset();
    r.ok(&[
        "account", "recover", ADDR, "--portal", &proxy.url, "--name", "spare", "--from", &kit[0],
        "--from", &kit[2],
    ]);
    assert_eq!(proxy.count("Transact"), 1, "recover");
    assert!(r.ok(&["smime", "cert"]).contains("BEGIN CERTIFICATE"));
    assert!(r.ok(&["ssh", "cert"]).contains("-cert-v01@openssh.com"));
    r.ok(&["pgp", "export-secret", "--output", s(&dir.path("r.pgp"))]);
    assert_eq!(
        a.json(&["sync"])["entries_published"],
        0,
        "nothing left for the others to publish"
    );
}

fn process_gone(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
        Err(_) => true,
    }
}

#[test]
fn agent_start_is_idempotent_stop_waits_and_errors_carry_hints() {
    let dir = Scratch::new("host-cli");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::create_account(&dir.0, ADDR, &portal.url);
    // `eval "$(mesh agent start)"` twice: the same lines, success both times.
    let first = a.ok(&["agent", "start", "--interval", "1s"]);
    assert!(first.starts_with("SSH_AUTH_SOCK="), "{first}");
    let again = a.run(&["agent", "start"]);
    assert!(again.status.success(), "{}", out(&again));
    assert_eq!(String::from_utf8_lossy(&again.stdout), first);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already running"));
    let pid = a.json(&["agent", "status"])["pid"].as_u64().expect("pid");
    a.ok(&["agent", "stop"]);
    assert!(
        process_gone(pid),
        "`agent stop` returned before pid {pid} exited"
    );

    let e = a.fails(&["device", "accept", "NOSUCHWITNESS"]);
    assert!(
        e.contains("no pending request") && e.contains("hint: `mesh device pending`"),
        "{e}"
    );
    let e = a.fails(&["device", "revoke", "nosuch"]);
    assert!(
        e.contains("no device named nosuch") && e.contains("hint: `mesh device list`"),
        "{e}"
    );
    let e = a.fails(&["device", "revoke", "laptop"]);
    assert!(
        e.contains("hint: revoke it from another administrator"),
        "{e}"
    );
}

#[test]
fn the_policy_can_make_mesh_keys_ask_before_each_use() {
    if !require_tool("ssh-add") {
        return;
    }
    let dir = Scratch::new("host-confirm");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::create_account(&dir.0, ADDR, &portal.url);
    // A scripted askpass: it answers what the file says, and counts its calls.
    let answer = dir.path("answer");
    let calls = dir.path("calls");
    let askpass = dir.path("askpass.sh");
    std::fs::write(
        &askpass,
        format!(
            "#!/bin/sh\necho \"$1\" >> {}\n[ \"$(cat {})\" = yes ]\n",
            calls.display(),
            answer.display()
        ),
    )
    .expect("askpass");
    std::fs::set_permissions(
        &askpass,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod");
    let ag = RunningAgent::start_with(&a, &[("SSH_ASKPASS", s(&askpass))]);
    let key = dir.path("mesh.pub");
    std::fs::write(&key, a.ok(&["ssh", "public-key"])).expect("key");
    let test_sign = || {
        mesh_tests::ssh_add(&ag.sock, &["-T", s(&key)])
            .status
            .success()
    };
    assert!(test_sign(), "no confirmation by default");
    assert!(!calls.exists());

    a.ok(&["ssh", "confirm", "on"]);
    std::fs::write(&answer, "no").expect("answer");
    assert!(
        eventually(10, || !test_sign()),
        "refused when the user says no"
    );
    std::fs::write(&answer, "yes").expect("answer");
    assert!(test_sign(), "allowed when the user says yes");
    let asked = std::fs::read_to_string(&calls).expect("calls");
    assert!(
        asked.contains("Allow use of key laptop@alice@example.com (mesh)?"),
        "{asked}"
    );

    a.ok(&["ssh", "confirm", "off"]);
    std::fs::write(&answer, "no").expect("answer");
    assert!(
        eventually(10, test_sign),
        "no confirmation once the policy is off"
    );
}

#[test]
fn a_revocation_whose_answer_was_lost_is_resolved_and_reported_channel_by_channel() {
    let dir = Scratch::new("host-report");
    let portal = PortalProc::start(&dir.path("portal"));
    let proxy = FaultProxy::start(&portal.url);
    let a = Device::create_account(&dir.0, ADDR, &proxy.url);
    let (b, c) = (Device::new(&dir.0, "b"), Device::new(&dir.0, "c"));
    b.join(&a, ADDR, &proxy.url, "phone");
    c.join(&a, ADDR, &proxy.url, "tablet");
    let _agent_c = RunningAgent::start(&c);
    proxy.arm("Transact", Fault::DropResponse);
    let r = a.json(&["device", "revoke", "phone", "--wait", "20s"]);
    assert_eq!(r["revoked"]["already"], false, "{r}");
    let channels = r["revoked"]["channels"].as_array().expect("channels");
    let said = |name: &str| -> String {
        channels
            .iter()
            .find(|c| c["channel"] == name)
            .map(|c| c["done"].to_string())
            .unwrap_or_default()
    };
    assert!(said("portal").contains("revokes it"), "{r}");
    assert!(said("ssh").contains("published KRL"), "{r}");
    assert!(
        said("pgp").contains("subkey revoked") && said("pgp").contains("epoch 0 → 1"),
        "{r}"
    );
    assert!(
        said("smime").contains("in the CRL") && said("smime").contains("epoch 0 → 1"),
        "{r}"
    );
    let devices = r["devices"].as_array().expect("devices");
    assert_eq!(devices.len(), 1, "{r}");
    assert_eq!(devices[0]["name"], "tablet");
    assert!(
        devices[0]["seconds"].as_f64().is_some(),
        "the tablet's agent applied it: {r}"
    );
    // Devices that do not apply it in time (offline) are named.
    let d = Device::new(&dir.0, "d");
    d.join(&a, ADDR, &proxy.url, "desk");
    let r = a.json(&["device", "revoke", "tablet", "--wait", "1s"]);
    let devices = r["devices"].as_array().expect("devices");
    assert!(
        devices
            .iter()
            .any(|x| x["name"] == "desk" && x["seconds"].is_null()),
        "{r}"
    );
}
