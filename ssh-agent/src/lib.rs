//! `mesh-ssh`: the ssh-agent plugin. It serves the device's co-generated
//! SSH key and its certificate on `SSH_AUTH_SOCK` (RFC 9987 with OpenSSH's
//! extensions), holds keys added with `ssh-add`, and makes what servers
//! use: authorized_keys lines, the CA line and KRLs.
#![forbid(unsafe_code)]

pub mod agent;
pub mod audit;
pub mod cert;
pub mod channel;
pub mod cli;
pub mod dest;
pub mod entries;
pub mod forward;
pub mod hosts;
pub mod hosts_file;
pub mod keys;
pub mod options;
pub mod pkcs11;
pub mod server;
pub mod sk;
pub mod sshd;
pub mod windows;
pub mod wire;

pub use channel::SshPlugin;
