//! `mesh-smime`: the S/MIME plugin. The account's personal CA (ECDSA
//! P-256, derived from the account seed, so escrow rebuilds it) certifies
//! each device's S/MIME signing key (P-256, derived from the device seed)
//! for the account's address (RFC 8550/8551: emailProtection EKU,
//! rfc822Name subjectAltName, digitalSignature); a shared RSA encryption
//! key and certificate, by epochs, and a CRL complete it (PROTOCOL.md §12).
//!
//! ECDSA signatures here are deterministic (RFC 6979, through the `p256`
//! crate), so the CA certificate too is a function of the seed.
//!
//! - [`x509`]: certificates, the CRL, PEM and PKCS#12 (no account logic);
//! - [`entries`]: the Application entries the channel owns, read from a
//!   verified view; [`channel`]: the `Plugin` impl (what to publish);
//! - [`device`]: what a device does with them (export, sign, open);
//!   [`nss`]: NSS databases (Thunderbird); [`winstore`]: the Windows
//!   certificate store (Outlook); [`mail`], [`message`],
//!   [`mime`], [`ber`], [`decrypt`], [`verify`]: S/MIME messages (CMS);
//! - [`cli`]: `mesh smime`, the channel's subcommand.
#![forbid(unsafe_code)]

pub mod ber;
pub mod channel;
pub mod cli;
pub mod decrypt;
pub mod device;
pub mod entries;
pub mod mail;
pub mod message;
pub mod mime;
pub mod nss;
pub mod ocsp;
mod rejection;
pub mod status;
pub mod verify;
pub mod winstore;
#[cfg(windows)]
mod winstore_sys;
pub mod x509;

pub use channel::SmimePlugin;
pub use x509::{
    ca_certificate, certificate_key, crl, csr, encryption_certificate, encryption_name,
    new_encryption_key, pem_certificates, pem_to_der, pkcs12, signing_certificate, signing_name,
    P12Entry, P12Profile, P256Public, P256Signer, Revoked, RsaPublic, SigningCert, SmimeError,
    StatusUrls,
};
