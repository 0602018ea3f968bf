//! `mesh-tests`: end-to-end tests that drive the real `mesh` and
//! `mesh-portal` binaries and real peers (ssh, sshd, ssh-add, gpg, sq,
//! openssl, NSS tools) on loopback. This library holds the shared harness:
//! finding the binaries and tools, and temporary homes.
#![forbid(unsafe_code)]

use std::path::PathBuf;

/// Path of a workspace binary built next to the running test executable
/// (`target/<profile>/NAME`). `cargo test --workspace` builds the binaries
/// before it runs any test because `mesh-agent` has integration tests.
pub fn workspace_bin(name: &str) -> PathBuf {
    if let Ok(p) = std::env::var(format!(
        "MESH_BIN_{}",
        name.to_uppercase().replace('-', "_")
    )) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/test-binary -> target/<profile>/NAME
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .map(PathBuf::from)
        .unwrap_or_default();
    dir.join(name)
}

/// Whether a peer tool is on PATH. Under `CI=true` a missing tool is a
/// failure, not a skip.
pub fn require_tool(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    if !found && std::env::var("CI").as_deref() == Ok("true") {
        panic!("{tool} is required under CI=true but is not installed");
    }
    found
}
