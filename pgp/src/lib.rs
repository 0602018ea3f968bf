//! `mesh-pgp`: the OpenPGP plugin (first part of its issue): the account's
//! certificate, built with Sequoia.
//!
//! - Primary key: Ed25519, certification only, from 32 bytes the
//!   administrator epoch's seed derives, with a fixed creation time: one
//!   certificate per administrator epoch. A new epoch (an administrator
//!   revoked) retires the old certificate with a revocation
//!   ([`retire`]), so that keyrings that hold it learn it is compromised.
//! - One signing subkey per device (Ed25519), issued by an administrator:
//!   the binding carries the subkey's own back-signature (RFC 9580 §5.2.3.7,
//!   primary key binding), which is why the administrator makes the subkey.
//! - One encryption subkey (Cv25519) shared by the account's devices: mail
//!   clients encrypt to a single subkey.
//! - Revoked subkeys keep their binding and get a revocation signature.
//!
//! [`cert`] builds the certificate; [`entries`] holds the Application
//! entries the channel owns and reads them from a verified view;
//! [`channel`] is the channel (the `Plugin` impl: what to publish);
//! [`export`] makes this device's secret export; [`gnupg`] provisions GnuPG
//! homes, keeps them current and wipes them; [`cli`] is `mesh pgp`.
#![forbid(unsafe_code)]

pub mod cert;
pub mod channel;
pub mod cli;
pub mod entries;
pub mod export;
pub mod gnupg;
pub mod gpg_exe;

pub use cert::{
    armor, build, encryption_subkey, primary_key, retire, signing_subkey, PgpError, Revocation,
    Subkey, PRIMARY_CREATED, SELF_SIGNED,
};
pub use channel::PgpPlugin;
