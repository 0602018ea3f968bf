//! End-to-end tests: real binaries, a real portal over HTTP with a real
//! SQLite file (and, for the portal, history, quota and multi-process
//! tests, a real PostgreSQL server too: `sqlite::` and `postgres::`
//! halves), one `--home` per device, and real peers where a plugin talks
//! to one. One test binary, one module per capability.
//!
//! Many tests here are longer than the ~80 lines the code keeps to: each is
//! one scenario, acted out step by step as a user (or an attacker) would,
//! and reads best top to bottom.

mod admin;
mod age_interop;
mod agent_install;
mod audit;
mod connections;
mod core;
mod daemon;
mod drill;
mod files;
mod freshness;
mod git_signers;
mod help;
mod history;
mod host;
mod hostile;
mod mail;
mod multiproc;
mod ocsp;
mod openssh_regress;
mod pager;
mod pgp;
mod pkcs11;
mod plain;
mod portal;
mod session;
mod smime;
mod ssh;
mod ssh_agent_cmd;
mod ssh_dest;
mod ssh_forward;
mod ssh_hosts;
mod ssh_keys;
mod ssh_windows;
mod state;
mod tls;
mod wine;
mod wine_gpg;
mod wine_install;
mod wsl_bridge;
