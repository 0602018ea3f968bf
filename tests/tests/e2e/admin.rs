//! A stolen administrator (issue 11): what a copy of a revoked
//! administrator's home can still do, with the CLI and with the key
//! material itself, against the portal, real sshd, openssl and sq.

use std::path::Path;
use std::process::{Command, Output};

use mesh_account::store::Store;
use mesh_core::objects::AccountKeys;
use mesh_plugins::AccountView;
use mesh_tests::{can_run_sshd, require_tool, Device, PortalProc, Scratch};

mod attacks;
mod epochs;
mod fork;
mod names;
mod pins;
mod retired_ca;
mod roles;
mod rotate;
mod times;

use attacks::*;

const ADDR: &str = "alice@example.com";
const MAIL: &str = "sent after the revocation\n";

/// Copy a device's home, as a thief with the disk would.
fn copy_home(from: &Device, to: &Path) -> Device {
    let o = Command::new("cp")
        .arg("-a")
        .arg(&from.home)
        .arg(to)
        .output()
        .expect("cp");
    assert!(o.status.success());
    Device {
        home: to.to_path_buf(),
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("path")
}

fn ok(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// The online keys a home holds (what a thief reads from a copied disk).
fn online_keys(d: &Device, profile_udf: &str) -> AccountKeys {
    std::env::set_var("MESH_KEYSTORE", "file");
    let seeds = Store::open(&d.home, false)
        .expect("store")
        .secrets()
        .expect("secrets")
        .online_seeds
        .expect("an administrator's seeds");
    let parsed = seeds
        .seeds
        .iter()
        .map(|(e, s)| (*e, mesh_core::derive::Seed::from_udf(s).expect("seed")))
        .collect();
    AccountKeys::from_seeds(profile_udf, parsed).expect("keys")
}

fn view(d: &Device) -> AccountView {
    std::env::set_var("MESH_KEYSTORE", "file");
    let store = Store::open(&d.home, false).expect("store");
    mesh_account::host::view_of(&mesh_account::account(&store).expect("account")).expect("view")
}

/// The account: administrators `a` (laptop) and `b` (desktop), member `c`.
struct Account {
    dir: Scratch,
    portal: PortalProc,
    udf: String,
    a: Device,
    b: Device,
    c: Device,
}

fn account(tag: &str, second_admin: bool) -> Account {
    account_on(mesh_tests::Backend::Sqlite, tag, second_admin)
}

/// [`account`] on a portal with `backend`.
fn account_on(backend: mesh_tests::Backend, tag: &str, second_admin: bool) -> Account {
    let dir = Scratch::new(tag);
    let portal = PortalProc::on(backend, &dir.path("portal"));
    let a = Device::create_account(&dir.0, ADDR, &portal.url);
    let udf = a.json(&["account", "show"])["profile_udf"]
        .as_str()
        .expect("udf")
        .to_string();
    a.ok(&["ssh", "principals", "root"]);
    let b = Device::new(&dir.0, "b");
    if second_admin {
        let w = b.ok(&[
            "device",
            "request",
            ADDR,
            "--portal",
            &portal.url,
            "--name",
            "desktop",
        ]);
        a.ok(&[
            "device",
            "accept",
            w.trim(),
            "--roles",
            "admin,ssh,pgp,smime",
        ]);
        b.ok(&["sync"]);
    }
    let c = Device::new(&dir.0, "c");
    c.join(&a, ADDR, &portal.url, "phone");
    Account {
        dir,
        portal,
        udf,
        a,
        b,
        c,
    }
}

/// The owner, on a fresh home, recovers with two shares of the kit and
/// revokes the laptop (no `--since`).
fn recover_revoking_laptop(acc: &Account, owner: &Device) {
    let kit: Vec<String> = acc
        .a
        .kit_files()
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    owner.ok(&[
        "account",
        "recover",
        ADDR,
        "--portal",
        &acc.portal.url,
        "--name",
        "spare",
        "--from",
        &kit[0],
        "--from",
        &kit[1],
        "--revoke",
        "laptop",
    ]);
}

fn tools() -> bool {
    can_run_sshd() && ["openssl", "sq"].iter().all(|t| require_tool(t))
}

/// Two administrators and a member; the thief copies administrator B's
/// home and key store; A alone revokes B. The copy then writes nothing, its
/// old CA certificate is refused by sshd, it reads no new mail, and what it
/// signs the account no longer vouches for.
#[test]
fn a_revoked_administrators_copy_vouches_for_nothing() {
    if !tools() {
        return;
    }
    let acc = account("stolen-admin", true);
    let old_ca_line = acc.c.ok(&["ssh", "ca"]);
    std::fs::write(acc.dir.path("old-ca.pem"), acc.c.ok(&["smime", "ca"])).expect("old ca");
    std::fs::write(
        acc.dir.path("old.asc"),
        acc.c.ok(&["pgp", "cert", "--armor"]),
    )
    .expect("old");
    let stolen = copy_home(&acc.b, &acc.dir.path("stolen"));
    let old = online_keys(&stolen, &acc.udf);
    // C's GnuPG holds the account's certificate of epoch 0.
    let cg = crate::host::private_dir(&acc.dir.0, "c-gnupg");
    acc.c.ok(&["pgp", "install", "--gnupghome", s(&cg)]);

    let report = acc.a.json(&["device", "revoke", "desktop"]);
    let text = report.to_string();
    assert!(text.contains("administrator epoch 1"), "{text}");
    assert!(text.contains("a new SSH CA"), "{text}");
    acc.c.ok(&["sync"]);
    let seen = acc.c.ok(&["device", "list"]);
    // ... and learns at that sync that the old certificate is compromised.
    let old_fpr = mesh_pgp::channel::fingerprint(old.seed()).expect("fpr");
    let listing = ok(
        Command::new("gpg")
            .arg("--homedir")
            .arg(&cg)
            .args(["--batch", "--with-colons", "--list-keys", &old_fpr])
            .output()
            .expect("gpg"),
        "gpg",
    );
    assert!(
        listing.lines().any(|l| l.starts_with("pub:r:")),
        "{listing}"
    );

    cli_writes_refused(&acc, &stolen, "laptop");
    raw_portal_writes_refused(&acc, &stolen, &old, &acc.a);
    // A stays an active administrator; C's view is unchanged.
    acc.a.ok(&["sync"]);
    let list = acc.a.json(&["device", "list"]).to_string();
    assert!(list.contains("laptop"), "{list}");
    acc.c.ok(&["sync"]);
    assert_eq!(acc.c.ok(&["device", "list"]), seen);
    assert!(view(&acc.a).profile.epoch() == 1 && online_keys(&acc.a, &acc.udf).epoch() == 1);

    minted_certificate_refused(&acc, &old, &old_ca_line);
    new_mail_unreadable(&acc, &stolen, &acc.a, &old);
    vouches_for_nothing(
        &acc,
        &stolen,
        &old,
        &acc.dir.path("old-ca.pem"),
        &acc.dir.path("old.asc"),
    );
}

/// The only administrator is stolen. The thief acts first (revokes the
/// phone while it is offline, adds an administrator of its own, changes
/// the principals); the user recovers on a new device with two shares of
/// the kit and overrides all of it; the same attacks then fail.
#[test]
fn recovery_takes_back_an_account_whose_only_administrator_was_stolen() {
    if !tools() {
        return;
    }
    let acc = account("stolen-only-admin", false);
    let (url, dir) = (&acc.portal.url, &acc.dir);
    let old_ca_line = acc.c.ok(&["ssh", "ca"]);
    std::fs::write(dir.path("old-ca.pem"), acc.c.ok(&["smime", "ca"])).expect("old ca");
    std::fs::write(dir.path("old.asc"), acc.c.ok(&["pgp", "cert", "--armor"])).expect("old");
    let stolen = copy_home(&acc.a, &dir.path("stolen"));
    let old = online_keys(&stolen, &acc.udf);

    // The last checkpoint before the theft, as the owner finds it on any
    // machine: `mesh account history` (public, pinned to the account).
    let d = Device::new(&dir.0, "d");
    let listed = d.json(&[
        "account",
        "history",
        ADDR,
        "--portal",
        url,
        "--account",
        &acc.udf,
    ]);
    let trusted = listed.as_array().and_then(|l| l.last()).expect("history")["serial"]
        .as_u64()
        .expect("serial");

    // The thief, on the stolen laptop, before the owner notices.
    let laptop = copy_home(&stolen, &dir.path("thief-laptop"));
    let t = Device::new(&dir.0, "t");
    let w = t.ok(&[
        "device",
        "request",
        ADDR,
        "--portal",
        url,
        "--name",
        "thief-box",
    ]);
    laptop.ok(&[
        "device",
        "accept",
        w.trim(),
        "--roles",
        "admin,ssh,pgp,smime",
    ]);
    t.ok(&["sync"]);
    laptop.ok(&["ssh", "principals", "root", "evil"]);
    laptop.ok(&["device", "revoke", "phone"]);

    // The owner, on a new device, with two of the three shares.
    let kit: Vec<String> = acc
        .a
        .kit_files()
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    let o = d.run(&[
        "account",
        "recover",
        ADDR,
        "--portal",
        url,
        "--name",
        "spare",
        "--from",
        &kit[0],
        "--from",
        &kit[2],
        "--since",
        &format!("@{trusted}"),
        "--revoke",
        "laptop",
    ]);
    // It says what it turned back, in words, and what it revoked.
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{said}");
    for want in [
        "accepted thief-box (admin,pgp,smime,ssh)",
        "ssh principals root,evil",
        "revoked phone",
        "revoked: laptop",
    ] {
        assert!(said.contains(want), "{want}: {said}");
    }
    // The phone was offline: it follows the root's decision, not the thief's.
    acc.c.ok(&["sync"]);
    let states: Vec<(String, String)> = acc
        .c
        .json(&["device", "list"])
        .as_array()
        .expect("list")
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap_or("").to_string(),
                d["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for (name, want) in [
        ("laptop", "revoked"),
        ("thief-box", "revoked"),
        ("phone", "active"),
        ("spare", "active"),
    ] {
        assert!(
            states.contains(&(name.to_string(), want.to_string())),
            "{name}: {states:?}"
        );
    }
    assert_eq!(view(&acc.c).profile.epoch(), 1);
    // The history shows the thief's checkpoints, then the recovery.
    let text = d.ok(&["account", "history", ADDR, "--portal", url]);
    let last = text.lines().last().expect("lines");
    for want in [
        "recovery with the kit",
        "administrator epoch 1",
        "accepted spare (admin,pgp,smime,ssh)",
        "revoked laptop",
        "revoked thief-box",
        "restored phone",
        "ssh principals root",
    ] {
        assert!(last.contains(want), "{want}: {text}");
    }
    let first = text.lines().next().expect("lines");
    assert!(
        first.contains("account created") && first.contains("accepted laptop (admin"),
        "{text}"
    );
    for want in [
        "accepted phone (pgp,smime,ssh)",
        "accepted thief-box",
        "ssh principals root,evil",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    assert!(text.lines().count() as u64 > trusted + 1, "{text}");
    // The login names are the owner's again, not the thief's.
    let policy = mesh_ssh::channel::policy(&view(&acc.c)).expect("policy");
    assert_eq!(policy.principals, vec!["root".to_string()]);
    // Both of the thief's administrators are cut off.
    assert!(!laptop.run(&["device", "pin"]).status.success());
    assert!(!t.run(&["device", "pin"]).status.success());
    cli_writes_refused(&acc, &stolen, "spare");
    raw_portal_writes_refused(&acc, &stolen, &old, &d);

    minted_certificate_refused(&acc, &old, &old_ca_line);
    new_mail_unreadable(&acc, &stolen, &d, &old);
    vouches_for_nothing(
        &acc,
        &stolen,
        &old,
        &dir.path("old-ca.pem"),
        &dir.path("old.asc"),
    );
}

/// A member offline while an administrator was revoked (a new epoch), then
/// revoked itself: the proof is signed with a key it has not seen, and it
/// learns that key from the public checkpoints, so it still wipes.
#[test]
fn a_device_offline_across_an_epoch_still_wipes_when_revoked() {
    let acc = account("offline-epoch", true);
    acc.a.ok(&["device", "revoke", "desktop"]);
    acc.a.ok(&["device", "revoke", "phone"]);
    let e = acc.c.fails(&["sync"]);
    assert!(e.contains("secrets have been wiped"), "{e}");
}

/// A thief holding the old epoch's key, and the portal, forge a
/// revocation proof for the phone (an access list that revokes it, signed
/// by the revoked administrator's key): the phone refuses to wipe, and
/// keeps working with the real portal.
#[test]
fn a_revocation_proof_signed_with_a_revoked_administrators_key_wipes_nothing() {
    use mesh_core::envelope::Signed;
    use mesh_core::portal::{self as p, AccessList, DeviceState};
    use mesh_tests::proxy::FakePortal;
    let acc = account("forged-proof", true);
    let stolen = copy_home(&acc.b, &acc.dir.path("stolen"));
    let old = online_keys(&stolen, &acc.udf);
    acc.a.ok(&["device", "revoke", "desktop"]);
    acc.c.ok(&["sync"]);
    std::env::set_var("MESH_KEYSTORE", "file");
    let state = mesh_account::account(&Store::open(&acc.c.home, false).expect("c")).expect("c");
    let mut list: AccessList = state
        .access
        .as_ref()
        .expect("list")
        .unverified_object("list")
        .expect("list");
    list.serial += 1;
    for d in list.devices.iter_mut().filter(|d| d.name == "phone") {
        d.state = DeviceState::Revoked;
    }
    let proof = Signed::sign_object(p::ct::ACCESS_LIST, &list, &old.admin_sign);
    let body = serde_json::to_vec(&p::ErrorBody {
        error: p::code::DEVICE_REVOKED.into(),
        reason: "revoked".into(),
        access_list: Some(proof),
    })
    .expect("json");
    let fake = FakePortal::start(move |_| FakePortal::json("403 Forbidden", &body));
    // The phone is pointed at the lying portal (its state names the portal).
    let path = acc.c.home.join("state.json");
    let real = std::fs::read_to_string(&path).expect("state");
    std::fs::write(&path, real.replace(&acc.portal.url, &fake.url)).expect("state");
    let e = acc.c.fails(&["sync"]);
    assert!(e.contains("cannot prove it"), "{e}");
    let now = std::fs::read_to_string(&path).expect("state");
    std::fs::write(&path, now.replace(&fake.url, &acc.portal.url)).expect("state");
    acc.c.ok(&["sync"]);
    assert!(acc.c.ok(&["ssh", "public-key"]).starts_with("ssh-ed25519"));
}

/// A copy of a revoked device's home that asks to connect again is not
/// turned active, by the portal or by an administrator's accept.
#[test]
fn a_revoked_device_never_rejoins() {
    let dir = Scratch::new("irreversible");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::create_account(&dir.0, ADDR, &portal.url);
    let b = Device::new(&dir.0, "b");
    b.join(&a, ADDR, &portal.url, "phone");
    // Two copies that forget the account and ask with the same device keys:
    // one before the owner notices the theft, one after.
    let forget = |d: &Device| {
        let state = d.home.join("state.json");
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&state).expect("state")).expect("json");
        v["account"] = serde_json::Value::Null;
        std::fs::write(&state, v.to_string()).expect("write");
    };
    let early = copy_home(&b, &dir.path("early"));
    let thief = copy_home(&b, &dir.path("thief"));
    forget(&early);
    forget(&thief);
    let w = early.ok(&["device", "request", ADDR, "--portal", &portal.url]);
    a.ok(&["device", "revoke", "phone"]);
    // The request made before the revocation cannot be accepted after it.
    let e = a.fails(&["device", "accept", w.trim()]);
    assert!(e.contains("a revoked device cannot join again"), "{e}");
    a.ok(&["device", "reject", w.trim()]);
    let e = thief.fails(&["device", "request", ADDR, "--portal", &portal.url]);
    assert!(e.contains("a revoked device never rejoins"), "{e}");
    let pending = a.json(&["device", "pending"]);
    assert_eq!(pending.as_array().map(Vec::len), Some(0), "{pending}");
}
