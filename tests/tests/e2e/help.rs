//! What a new user reads (issue 22.12): `mesh-portal` has manual pages,
//! and errors that had no hint now give one.

use mesh_tests::{workspace_bin, Device, PortalProc, Scratch};

#[test]
fn mesh_portal_writes_its_manual_pages() {
    let dir = Scratch::new("portal-man");
    let o = std::process::Command::new(workspace_bin("mesh-portal"))
        .args(["man", "--output"])
        .arg(dir.path("man"))
        .output()
        .expect("mesh-portal");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for page in [
        "mesh-portal.1",
        "mesh-portal-serve.1",
        "mesh-portal-invite.1",
    ] {
        let text = std::fs::read_to_string(dir.path("man").join(page)).expect(page);
        assert!(text.contains(".TH") && text.contains("mesh"), "{page}");
    }
    let serve =
        std::fs::read_to_string(dir.path("man").join("mesh-portal-serve.1")).expect("serve");
    assert!(serve.contains("\\-\\-bind"), "{serve}");
}

#[test]
fn login_names_with_a_comma_are_refused_with_a_hint() {
    let dir = Scratch::new("principals-hint");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::create_account(&dir.0, "alice@example.com", &portal.url);
    let e = a.fails(&["ssh", "principals", "root,deploy"]);
    assert!(
        e.contains("without spaces or commas")
            && e.contains("hint: give each login name as its own argument"),
        "{e}"
    );
}
