//! Short-lived certificates without an online CA (issue 25, PROTOCOL.md
//! §17): an administrator's pass issues each ssh device a certificate per
//! window and holds the coming ones at the portal, which releases each to
//! its device only from its window on.

use std::path::Path;
use std::process::{Command, Output};

use mesh_core::held::{self, Held, Hold, ReleasedResponse};
use mesh_core::portal as p;
use mesh_tests::{
    can_run_sshd, faketime_library, free_port, require_tool, ssh_add, workspace_bin, Backend,
    Device, PortalProc, RunningAgent, Scratch, Sshd, Val,
};
use ssh_key::Certificate;

const ADDR: &str = "alice@example.com";
/// The window of the tests (the shortest) and its overlap.
const L: u64 = 600;
const OVERLAP: u64 = 150;

struct Member {
    account: String,
    device: String,
    keys: mesh_core::objects::DeviceKeys,
}

fn member(d: &Device) -> Member {
    let show = d.json(&["account", "show"]);
    let store = mesh_account::store::Store::open(&d.home, false).expect("store");
    Member {
        account: show["profile_udf"].as_str().expect("udf").into(),
        device: show["device"].as_str().expect("dev").into(),
        keys: mesh_account::state::device_keys(&store).expect("keys"),
    }
}

fn call(
    portal: &str,
    m: &Member,
    tx: &str,
    body: serde_json::Value,
) -> Result<serde_json::Value, mesh_account::client::ClientError> {
    let client = mesh_account::client::Client::new(portal).expect("client");
    client.signed(tx, &m.account, &m.device, body, &m.keys.authenticate)
}

fn released(portal: &str, m: &Member, from: u64) -> Result<ReleasedResponse, String> {
    call(
        portal,
        m,
        held::TX_RELEASED,
        serde_json::json!({ "Index": from }),
    )
    .map(|v| serde_json::from_value(v).expect("a Released answer"))
    .map_err(|e| format!("{} {e}", e.code().unwrap_or("")))
}

fn hold(portal: &str, m: &Member, device: &str, entries: Vec<Held>) -> Result<u64, String> {
    let h = Hold {
        device: device.into(),
        entries,
    };
    call(
        portal,
        m,
        held::TX_HOLD,
        serde_json::to_value(h).expect("json"),
    )
    .map(|a| a["Index"].as_u64().expect("index"))
    .map_err(|e| format!("{} {e}", e.code().unwrap_or("")))
}

fn entry(not_before: u64, n: usize) -> Held {
    Held {
        not_before,
        data: serde_json::json!({ "N": "x".repeat(n) }),
    }
}

/// Hold and Released refuse what is not the caller's (hostile cases).
fn hold_and_released_refuse_what_is_not_theirs(backend: Backend) {
    let dir = Scratch::new("held-hostile");
    let portal = PortalProc::on_with(backend, &dir.path("portal"), &[]);
    let a = Device::create_account(&dir.0, ADDR, &portal.url);
    let b = Device::new(&dir.0, "b");
    b.join(&a, ADDR, &portal.url, "phone");
    let (ma, mb) = (member(&a), member(&b));
    let now = mesh_account::client::now();
    // Released in order, up to the first entry whose time has not come.
    let past = now - 60;
    let entries = vec![
        entry(past, 1),
        entry(past, 2),
        entry(now + 3600, 3),
        entry(past, 4),
    ];
    assert_eq!(hold(&portal.url, &ma, &mb.device, entries), Ok(4));
    let r = released(&portal.url, &mb, 0).expect("released");
    let idx: Vec<u64> = r.entries.iter().map(|e| e.index).collect();
    assert_eq!(idx, vec![1, 2], "{r:?}");
    assert_eq!(r.entries[1].data, serde_json::json!({ "N": "xx" }));
    assert!(!r.partial);
    assert!(released(&portal.url, &mb, 2)
        .expect("again")
        .entries
        .is_empty());

    let big = vec![entry(past, held::MAX_ENTRY + 1)];
    let many: Vec<Held> = (0..=held::MAX_ENTRIES).map(|_| entry(past, 1)).collect();
    let cases: Vec<(&str, &Member, String, Vec<Held>, &str)> = vec![
        (
            "a member's Hold",
            &mb,
            mb.device.clone(),
            vec![entry(past, 1)],
            p::code::NOT_AUTHORIZED,
        ),
        (
            "an oversized entry",
            &ma,
            mb.device.clone(),
            big,
            p::code::BAD_REQUEST,
        ),
        (
            "too many entries",
            &ma,
            mb.device.clone(),
            many,
            p::code::BAD_REQUEST,
        ),
        (
            "no entries",
            &ma,
            mb.device.clone(),
            Vec::new(),
            p::code::BAD_REQUEST,
        ),
        (
            "another account's device",
            &ma,
            "MXXX-NOT-A-DEVICE".into(),
            vec![entry(past, 1)],
            p::code::BAD_REQUEST,
        ),
    ];
    for (name, who, device, entries, code) in cases {
        let e = hold(&portal.url, who, &device, entries).expect_err(name);
        assert!(e.starts_with(code), "{name}: {e}");
    }
    // Nothing of those landed; the administrator's own store is its own:
    // b's entries are not readable by a, nor through Download.
    assert!(released(&portal.url, &ma, 0)
        .expect("a's")
        .entries
        .is_empty());
    let dl = call(
        &portal.url,
        &ma,
        p::tx::DOWNLOAD,
        serde_json::json!({ "Select": [{ "Store": held::store_of(&mb.device), "Index": 0 }] }),
    )
    .expect_err("download of a held store");
    assert_eq!(dl.code(), Some(p::code::BAD_REQUEST), "{dl}");
    let rows = portal.db.query(
        "SELECT COUNT(*) FROM entries WHERE store LIKE 'Held:%'",
        &[],
    );
    assert_eq!(rows[0][0], Val::Int(4), "{rows:?}");

    // A revoked device reads nothing more.
    a.ok(&["device", "revoke", "phone"]);
    let e = released(&portal.url, &mb, 0).expect_err("a revoked device's Released");
    assert!(e.starts_with(p::code::DEVICE_REVOKED), "{e}");
}
mesh_tests::on_both_backends!(hold_and_released_refuse_what_is_not_theirs);

/// `mesh ARGS` on `home`, its clock a window on (libfaketime preloaded:
/// the `faketime` wrapper's semaphores collide between parallel tests).
fn later(home: &Path, args: &[&str]) -> Output {
    Command::new(workspace_bin("mesh"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env("LD_PRELOAD", faketime_library())
        .env("FAKETIME", "+10m")
        .env("MESH_KEYSTORE", "file")
        .output()
        .expect("mesh under libfaketime")
}

const CERT: &str = "ssh-ed25519-cert-v01@openssh.com ";

/// Every certificate anywhere under `dir` (what a copy of a home holds),
/// also inside base64 (signed envelopes carry their payload so).
fn certs_in(dir: &Path, out: &mut Vec<Certificate>) {
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        let path = e.path();
        if path.is_dir() {
            certs_in(&path, out);
        } else {
            certs_of(&std::fs::read(&path).unwrap_or_default(), 0, out);
        }
    }
}

fn certs_of(bytes: &[u8], depth: usize, out: &mut Vec<Certificate>) {
    let text = String::from_utf8_lossy(bytes).to_string();
    for (at, _) in text.match_indices(CERT) {
        let b64: String = text[at + CERT.len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "+/=".contains(*c))
            .collect();
        if let Ok(c) = Certificate::from_openssh(&format!("{CERT}{b64}")) {
            out.push(c);
        }
    }
    if depth > 3 {
        return;
    }
    let b64 = |c: char| c.is_ascii_alphanumeric() || "+/=_-".contains(c);
    for token in text.split(|c: char| !b64(c)).filter(|t| t.len() >= 64) {
        let t = token.trim_end_matches('=');
        let decoded = data_encoding::BASE64URL_NOPAD
            .decode(t.as_bytes())
            .or_else(|_| data_encoding::BASE64_NOPAD.decode(t.as_bytes()));
        if let Ok(d) = decoded {
            certs_of(&d, depth + 1, out);
        }
    }
}

fn cert_of(line: &str) -> Certificate {
    let l = line
        .lines()
        .find(|l| l.starts_with(CERT))
        .expect("a certificate line");
    Certificate::from_openssh(l.trim()).expect("certificate")
}

/// The end of the window that holds `t`.
fn window_end(t: u64) -> u64 {
    t - t % L + L
}

/// The agent serves the certificate of the window now, no longer; sshd
/// with only `TrustedUserCAKeys` takes it.
fn served_now(dir: &Scratch, a: &Device, b: &Device, t0: u64) -> Certificate {
    let ag = RunningAgent::start(b);
    let listed = String::from_utf8_lossy(&ssh_add(&ag.sock, &["-L"]).stdout).to_string();
    let served = cert_of(&listed);
    let line = served.to_openssh().expect("line");
    let mut keygen = Command::new("ssh-keygen")
        .args(["-L", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("ssh-keygen -L");
    use std::io::Write;
    let mut stdin = keygen.stdin.take().expect("stdin");
    stdin.write_all(line.as_bytes()).expect("write");
    drop(stdin);
    let shown =
        String::from_utf8_lossy(&keygen.wait_with_output().expect("out").stdout).to_string();
    assert!(shown.contains("Valid: from"), "{shown}");
    assert!(served.valid_before() > t0, "{shown}");
    assert!(
        served.valid_before() <= t0 + L + OVERLAP + 5,
        "a certificate beyond its window: {shown}"
    );
    let l = String::from_utf8_lossy(&ssh_add(&ag.sock, &["-l"]).stdout).to_string();
    let until = mesh_ssh::windows::utc(served.valid_before());
    assert!(l.contains(&format!("certificate until {until}")), "{l}");
    let ca = dir.path("ca.pub");
    std::fs::write(&ca, a.ok(&["ssh", "ca"])).expect("ca");
    let sshd = Sshd::start(
        &dir.path("sshd"),
        &[
            "AuthorizedKeysFile none".into(),
            format!("TrustedUserCAKeys {}", ca.display()),
        ],
    );
    let cert_b = dir.path("b-cert.pub");
    std::fs::write(&cert_b, &line).expect("cert");
    assert!(
        sshd.logs_in(&ag.sock, &cert_b),
        "b logs in with its window's certificate"
    );
    served
}

/// A copy of b's home holds no certificate of b's beyond this window.
fn home_holds_no_later_window(b: &Device, served: &Certificate, t0: u64) {
    let mut found = Vec::new();
    certs_in(&b.home, &mut found);
    let mine: Vec<&Certificate> = found
        .iter()
        .filter(|c| c.public_key() == served.public_key())
        .collect();
    assert!(!mine.is_empty(), "b's certificate is somewhere in its home");
    for c in &mine {
        assert!(
            c.valid_before() <= t0 + L + OVERLAP + 5,
            "b holds {}",
            c.valid_before()
        );
    }
}

/// The portal holds b's coming windows and released none early; returns
/// what it holds.
fn portal_withholds(portal: &PortalProc, mb: &Member, t0: u64) -> Vec<Held> {
    let r = released(&portal.url, mb, 0).expect("released");
    assert!(r.entries.iter().all(|e| e.not_before <= t0 + 5), "{r:?}");
    let store = held::store_of(&mb.device);
    let rows = portal.db.query(
        "SELECT data FROM entries WHERE store = $1",
        &[Val::from(&store)],
    );
    let stored: Vec<Held> = rows
        .iter()
        .map(|r| serde_json::from_str(&r[0].text()).expect("held"))
        .collect();
    assert!(
        stored.iter().filter(|h| h.not_before > t0 + 5).count() >= 2,
        "{stored:?}"
    );
    assert!(r.entries.len() < stored.len());
    stored
}

/// A window later (the portal's clock and b's): the next is released
/// and is the one b serves.
fn next_window_released(data: &Path, listen: &str, b: &Device, served: &Certificate) {
    // Under libfaketime itself (the `faketime` wrapper forks: a kill would
    // leave the portal running).
    let preload = format!("LD_PRELOAD={}", faketime_library());
    let portal = PortalProc::start_under_on(&["env", &preload, "FAKETIME=+10m"], data, listen, &[]);
    let o = later(&b.home, &["sync"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = later(&b.home, &["ssh", "cert"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let next = cert_of(&String::from_utf8_lossy(&o.stdout));
    let end = window_end(mesh_account::client::now() + L);
    assert!(
        next.valid_before() == end || next.valid_before() == end + L,
        "served to {} at {end}",
        next.valid_before()
    );
    assert!(next.valid_before() > served.valid_before());
    portal.kill();
}

/// b is revoked: its coming windows' certificates, which no KRL names by
/// serial, are refused by the KRL's entry for its key (ssh-keygen -Q and
/// sshd share the check), and b reads nothing more.
fn revoked(dir: &Scratch, portal: &PortalProc, a: &Device, mb: &Member, stored: &[Held]) {
    a.ok(&["device", "revoke", "phone"]);
    let krl = dir.path("revoked.krl");
    a.ok(&["ssh", "krl", "--output", krl.to_str().expect("p")]);
    let last = stored.last().expect("a held window");
    let future = dir.path("future-cert.pub");
    std::fs::write(&future, last.data["Certificate"].as_str().expect("line")).expect("w");
    let q = Command::new("ssh-keygen")
        .arg("-Q")
        .arg("-f")
        .arg(&krl)
        .arg(&future)
        .output()
        .expect("ssh-keygen -Q");
    let said = String::from_utf8_lossy(&q.stdout);
    assert!(said.contains("REVOKED"), "{said}");
    let e = released(&portal.url, mb, 0).expect_err("a revoked device's Released");
    assert!(e.starts_with(p::code::DEVICE_REVOKED), "{e}");
}

#[test]
fn short_lived_certificates_are_released_one_window_at_a_time() {
    if !can_run_sshd() || !require_tool("faketime") {
        return;
    }
    let dir = Scratch::new("cert-windows");
    let data = dir.path("portal");
    let listen = format!("127.0.0.1:{}", free_port());
    let portal = PortalProc::start_on(&data, &listen, &[]);
    let url = portal.url.clone();
    let a = Device::create_account(&dir.0, ADDR, &url);
    a.ok(&["ssh", "principals", "root", "alice"]);
    let set = a.json(&["ssh", "policy", "cert-lifetime", "10m", "--ahead", "40m"]);
    assert_eq!(set["cert_lifetime"], L, "{set}");
    assert!(a
        .fails(&["ssh", "policy", "cert-lifetime", "5m"])
        .contains("shorter than"));
    let b = Device::new(&dir.0, "b");
    b.join(&a, ADDR, &url, "phone");
    // The administrator's pass issues b's windows; b reads what is released.
    a.ok(&["sync"]);
    b.ok(&["sync"]);
    let t0 = mesh_account::client::now();
    let mb = member(&b);
    let served = served_now(&dir, &a, &b, t0);
    home_holds_no_later_window(&b, &served, t0);
    let stored = portal_withholds(&portal, &mb, t0);
    portal.kill();
    next_window_released(&data, &listen, &b, &served);
    // Back on time.
    let portal = PortalProc::start_on(&data, &listen, &[]);
    revoked(&dir, &portal, &a, &mb, &stored);
    portal.kill();
}
