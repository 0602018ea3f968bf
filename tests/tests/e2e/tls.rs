//! The portal over TLS with a private root (issue: portal), moved out of
//! `portal.rs` to keep files small.

use mesh_account::client::Client;
use mesh_tests::{Device, PortalProc, Scratch};

const ADDR: &str = "alice@example.com";

#[test]
fn over_tls_with_a_private_root() {
    if !mesh_tests::require_tool("openssl") {
        return;
    }
    let dir = Scratch::new("tls");
    let (ca, ca_key) = (dir.path("ca.pem"), dir.path("ca.key"));
    let (cert, key, csr) = (
        dir.path("cert.pem"),
        dir.path("key.pem"),
        dir.path("req.csr"),
    );
    let ext = dir.path("leaf.ext");
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n")
        .expect("ext");
    let openssl = |args: &[&std::ffi::OsStr]| {
        let o = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let s = |x: &str| std::ffi::OsString::from(x);
    openssl(&[
        &s("req"),
        &s("-x509"),
        &s("-newkey"),
        &s("ec"),
        &s("-pkeyopt"),
        &s("ec_paramgen_curve:P-256"),
        &s("-nodes"),
        &s("-days"),
        &s("1"),
        &s("-subj"),
        &s("/CN=Mesh test root"),
        &s("-keyout"),
        ca_key.as_os_str(),
        &s("-out"),
        ca.as_os_str(),
    ]);
    openssl(&[
        &s("req"),
        &s("-newkey"),
        &s("ec"),
        &s("-pkeyopt"),
        &s("ec_paramgen_curve:P-256"),
        &s("-nodes"),
        &s("-subj"),
        &s("/CN=127.0.0.1"),
        &s("-keyout"),
        key.as_os_str(),
        &s("-out"),
        csr.as_os_str(),
    ]);
    openssl(&[
        &s("x509"),
        &s("-req"),
        &s("-in"),
        csr.as_os_str(),
        &s("-CA"),
        ca.as_os_str(),
        &s("-CAkey"),
        ca_key.as_os_str(),
        &s("-CAcreateserial"),
        &s("-days"),
        &s("1"),
        &s("-extfile"),
        ext.as_os_str(),
        &s("-out"),
        cert.as_os_str(),
    ]);
    let portal = PortalProc::start_with(
        &dir.path("portal"),
        &[
            "--tls-cert",
            cert.to_str().expect("p"),
            "--tls-key",
            key.to_str().expect("p"),
        ],
    );
    assert!(
        portal.url.starts_with("https://127.0.0.1:"),
        "{}",
        portal.url
    );
    let a = Device::new(&dir.0, "a");
    // Without the private root the client refuses the portal's certificate.
    let e = a.fails(&[
        "account",
        "create",
        ADDR,
        "--portal",
        &portal.url,
        "--recovery",
        &a.kit(),
    ]);
    assert!(e.contains("cannot reach the portal"), "{e}");
    let o = a
        .command(&[
            "account",
            "create",
            ADDR,
            "--portal",
            &portal.url,
            "--recovery",
            &a.kit(),
        ])
        .env("MESH_PORTAL_CA", &ca)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A client that never finishes its handshake is cut off.
    let slow = PortalProc::start_with(
        &dir.path("slow"),
        &[
            "--tls-cert",
            cert.to_str().expect("p"),
            "--tls-key",
            key.to_str().expect("p"),
            "--handshake-timeout",
            "1",
        ],
    );
    assert!(mesh_tests::closed_by_peer(&slow.url, b"\x16\x03\x01"));
    // The client refuses plain HTTP to a portal that is not on loopback.
    let e = Client::new("http://portal.example.com").expect_err("plain");
    assert!(e.to_string().contains("only for loopback"), "{e}");
}
