//! `age-plugin-mesh` as age runs it. An integration test, so that
//! `cargo test --workspace` builds the plugin binary the e2e tests run
//! through the real `age` (tests/tests/e2e/files.rs).

use std::path::Path;
use std::process::{Command, Stdio};

use mesh_core::keys::AgreementKey;
use mesh_files::encoding::{account_tag, Recipient};

const PLUGIN: &str = env!("CARGO_BIN_EXE_age-plugin-mesh");

#[test]
fn run_by_hand_it_says_what_it_is_for() {
    let o = Command::new(PLUGIN).output().expect("run");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("mesh files recipient"), "{err}");
}

/// The real `age` encrypts to an `age1mesh1…` recipient through the
/// plugin, with no Mesh home: one `mesh` stanza for the recipient's epoch
/// and account.
#[test]
fn age_wraps_to_a_mesh_recipient_without_a_home() {
    if Command::new("age").arg("--version").output().is_err() {
        assert!(std::env::var("CI").is_err(), "age is missing under CI");
        eprintln!("skipped: age is not installed");
        return;
    }
    let r = Recipient {
        epoch: 3,
        key: AgreementKey::from_bytes(&[7; 32]).public_key(),
        account: account_tag("MBQX-EXAMPLE"),
    };
    let dir = Path::new(PLUGIN).parent().expect("bin dir");
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new("age")
        .args(["-r", &r.encode()])
        .env("PATH", path)
        .env("MESH_HOME", "/nonexistent/mesh-home")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("age");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"for the account").expect("write");
    }
    let o = child.wait_with_output().expect("age");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let header = String::from_utf8_lossy(&o.stdout);
    let stanzas: Vec<&str> = header.lines().filter(|l| l.starts_with("-> ")).collect();
    assert_eq!(stanzas.len(), 1, "{header}");
    assert!(stanzas[0].starts_with("-> mesh "), "{}", stanzas[0]);
    assert!(stanzas[0].ends_with(" 3"), "the epoch: {}", stanzas[0]);
}
