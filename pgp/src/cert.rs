//! Building the account's OpenPGP certificate with Sequoia (RFC 9580): the
//! primary key, the subkeys and their bindings, revocations and armor. No
//! account logic: `channel.rs` decides what the certificate says.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openpgp::packet::key::{Key4, PrimaryRole, SecretParts, SubordinateRole};
use openpgp::packet::signature::SignatureBuilder;
use openpgp::packet::{Key, UserID};
use openpgp::types::{KeyFlags, ReasonForRevocation, SignatureType};
use openpgp::{Cert, Packet};
use sequoia_openpgp as openpgp;

/// Errors building certificates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgpError {
    /// Sequoia refused.
    #[error("OpenPGP: {0}")]
    Openpgp(String),
}

fn err(e: impl std::fmt::Display) -> PgpError {
    PgpError::Openpgp(e.to_string())
}

/// The primary key's creation time: fixed, so that the fingerprint is a
/// function of the seed alone.
pub const PRIMARY_CREATED: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The primary key from 32 bytes of seed material.
pub fn primary_key(secret: &[u8; 32]) -> Result<Key<SecretParts, PrimaryRole>, PgpError> {
    Ok(Key4::import_secret_ed25519(secret, at(PRIMARY_CREATED))
        .map_err(err)?
        .into())
}

/// A signing subkey from 32 bytes of key material, created at `created`.
pub fn signing_subkey(
    secret: &[u8; 32],
    created: u64,
) -> Result<Key<SecretParts, SubordinateRole>, PgpError> {
    Ok(Key4::import_secret_ed25519(secret, at(created))
        .map_err(err)?
        .into())
}

/// An encryption subkey (Cv25519) from 32 bytes of key material.
pub fn encryption_subkey(
    secret: &[u8; 32],
    created: u64,
) -> Result<Key<SecretParts, SubordinateRole>, PgpError> {
    Ok(Key4::import_secret_cv25519(secret, None, None, at(created))
        .map_err(err)?
        .into())
}

/// When the certificate's own self-signatures (direct key, user ID) are
/// made: fixed, so that the certificate stays a function of its content,
/// and one second after [`PRIMARY_CREATED`], the time certificates without
/// algorithm preferences used. A keyring that merges both keeps the newer
/// self-signature, the one with the preferences (issue 22.2).
pub const SELF_SIGNED: u64 = PRIMARY_CREATED + 1;

/// The algorithm preferences every self-signature carries (RFC 9580
/// §5.2.3.14-17, 5.2.3.32). Without them GnuPG falls back to 3DES and
/// SHA-1, which Sequoia refuses to decrypt. SEIPDv1 (MDC) only, no AEAD
/// or SEIPDv2: the account's devices decrypt with GnuPG 2.2 and `sq` of
/// Sequoia 1.x, which read neither (docs/DESIGN.md, OpenPGP).
fn with_preferences(b: SignatureBuilder) -> Result<SignatureBuilder, PgpError> {
    use openpgp::types::{CompressionAlgorithm, Features, HashAlgorithm, SymmetricAlgorithm};
    b.set_preferred_symmetric_algorithms(vec![
        SymmetricAlgorithm::AES256,
        SymmetricAlgorithm::AES128,
    ])
    .map_err(err)?
    .set_preferred_hash_algorithms(vec![HashAlgorithm::SHA512, HashAlgorithm::SHA256])
    .map_err(err)?
    .set_preferred_compression_algorithms(vec![CompressionAlgorithm::Uncompressed])
    .map_err(err)?
    .set_features(Features::empty().set_seipdv1())
    .map_err(err)
}

/// A subkey in the certificate.
#[derive(Debug)]
pub struct Subkey {
    /// The key, with its secret (the administrator makes the back-signature
    /// and the binding; the secret is not part of the certificate).
    pub key: Key<SecretParts, SubordinateRole>,
    /// Revoked at this time (seconds since the epoch), with this reason.
    pub revoked: Option<(u64, Revocation)>,
}

/// Why a subkey was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// Its device was revoked: hard revocation.
    Compromised,
    /// A newer encryption subkey replaced it.
    Superseded,
}

/// Build the account's certificate: the primary with the user ID, every
/// device's signing subkey and every encryption subkey, with their
/// revocations. Signatures are made at `now`.
// Longer than most functions here: one certificate, packet by packet in
// the order RFC 9580 §10.1 lists them, reads best in one place.
pub fn build(
    primary: &Key<SecretParts, PrimaryRole>,
    user_id: &str,
    signing: &[Subkey],
    encryption: &[Subkey],
    now: u64,
) -> Result<Cert, PgpError> {
    build_as(primary, user_id, signing, encryption, now, true)
}

/// [`build`], or (`preferences` false) as versions before issue 22.2 did.
fn build_as(
    primary: &Key<SecretParts, PrimaryRole>,
    user_id: &str,
    signing: &[Subkey],
    encryption: &[Subkey],
    now: u64,
    preferences: bool,
) -> Result<Cert, PgpError> {
    let prefs = |b: SignatureBuilder| match preferences {
        true => with_preferences(b),
        false => Ok(b),
    };
    let mut signer = primary.clone().into_keypair().map_err(err)?;
    let t = at(now.max(PRIMARY_CREATED));
    let mut packets: Vec<Packet> = Vec::new();
    let direct = prefs(SignatureBuilder::new(SignatureType::DirectKey))?
        .set_signature_creation_time(t)
        .map_err(err)?
        .set_key_flags(KeyFlags::empty().set_certification())
        .map_err(err)?
        .sign_direct_key(&mut signer, primary.parts_as_public())
        .map_err(err)?;
    // `take_secret` strips the secret; `parts_into_public` would only retag it.
    packets.push(primary.clone().take_secret().0.into());
    packets.push(direct.into());
    let uid = UserID::from(user_id);
    let uid_sig = prefs(SignatureBuilder::new(SignatureType::PositiveCertification))?
        .set_signature_creation_time(t)
        .map_err(err)?
        .set_key_flags(KeyFlags::empty().set_certification())
        .map_err(err)?
        .set_primary_userid(true)
        .map_err(err)?
        .sign_userid_binding(&mut signer, primary.parts_as_public(), &uid)
        .map_err(err)?;
    packets.push(uid.into());
    packets.push(uid_sig.into());
    for (sub, flags, back_sig) in signing
        .iter()
        .map(|s| (s, KeyFlags::empty().set_signing(), true))
        .chain(encryption.iter().map(|s| {
            (
                s,
                KeyFlags::empty()
                    .set_transport_encryption()
                    .set_storage_encryption(),
                false,
            )
        }))
    {
        // The subkey's own creation time: a later binding would outdate
        // a "superseded" (soft) revocation made in the same second.
        let mut b = prefs(SignatureBuilder::new(SignatureType::SubkeyBinding))?
            .set_signature_creation_time(sub.key.creation_time())
            .map_err(err)?
            .set_key_flags(flags)
            .map_err(err)?;
        if back_sig {
            let mut sub_signer = sub.key.clone().into_keypair().map_err(err)?;
            let back = SignatureBuilder::new(SignatureType::PrimaryKeyBinding)
                .set_signature_creation_time(sub.key.creation_time())
                .map_err(err)?
                .sign_primary_key_binding(
                    &mut sub_signer,
                    primary.parts_as_public(),
                    sub.key.parts_as_public(),
                )
                .map_err(err)?;
            b = b.set_embedded_signature(back).map_err(err)?;
        }
        let binding = b
            .sign_subkey_binding(
                &mut signer,
                primary.parts_as_public(),
                sub.key.parts_as_public(),
            )
            .map_err(err)?;
        packets.push(sub.key.clone().take_secret().0.into());
        packets.push(binding.into());
        if let Some((when, why)) = sub.revoked {
            let (code, text) = match why {
                Revocation::Compromised => (ReasonForRevocation::KeyCompromised, "device revoked"),
                Revocation::Superseded => (
                    ReasonForRevocation::KeySuperseded,
                    "replaced by a newer encryption subkey",
                ),
            };
            let rev = SignatureBuilder::new(SignatureType::SubkeyRevocation)
                .set_signature_creation_time(at(when.max(secs(sub.key.creation_time()))))
                .map_err(err)?
                .set_reason_for_revocation(code, text.as_bytes())
                .map_err(err)?
                .sign_subkey_binding(
                    &mut signer,
                    primary.parts_as_public(),
                    sub.key.parts_as_public(),
                )
                .map_err(err)?;
            packets.push(rev.into());
        }
    }
    Cert::from_packets(packets.into_iter()).map_err(err)
}

/// The certificate of an earlier administrator epoch, revoked as
/// compromised (an administrator that held its primary was revoked).
pub fn retire(
    primary: &Key<SecretParts, PrimaryRole>,
    cert: &Cert,
    when: u64,
) -> Result<Cert, PgpError> {
    if cert.fingerprint() != primary.fingerprint() {
        return Err(PgpError::Openpgp(
            "the primary key is not this certificate's".into(),
        ));
    }
    let mut signer = primary.clone().into_keypair().map_err(err)?;
    let rev = SignatureBuilder::new(SignatureType::KeyRevocation)
        .set_signature_creation_time(at(when.max(PRIMARY_CREATED)))
        .map_err(err)?
        .set_reason_for_revocation(
            ReasonForRevocation::KeyCompromised,
            b"an administrator device that held this key was revoked",
        )
        .map_err(err)?
        .sign_direct_key(&mut signer, primary.parts_as_public())
        .map_err(err)?;
    Ok(cert
        .clone()
        .insert_packets(Packet::from(rev))
        .map_err(err)?
        .0)
}

/// ASCII-armored certificate.
pub fn armor(cert: &Cert) -> Result<String, PgpError> {
    use openpgp::serialize::SerializeInto;
    String::from_utf8(cert.armored().to_vec().map_err(err)?).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openpgp::policy::StandardPolicy;

    #[test]
    fn certificate_structure_and_stable_fingerprint() {
        let p = primary_key(&[1; 32]).expect("primary");
        let d1 = signing_subkey(&[2; 32], PRIMARY_CREATED + 10).expect("d1");
        let d2 = signing_subkey(&[3; 32], PRIMARY_CREATED + 20).expect("d2");
        let e = encryption_subkey(&[4; 32], PRIMARY_CREATED + 10).expect("e");
        let now = PRIMARY_CREATED + 100;
        let cert = build(
            &p,
            "Alice <alice@example.com>",
            &[
                Subkey {
                    key: d1,
                    revoked: None,
                },
                Subkey {
                    key: d2,
                    revoked: Some((now, Revocation::Compromised)),
                },
            ],
            &[Subkey {
                key: e,
                revoked: None,
            }],
            now,
        )
        .expect("cert");
        let policy = StandardPolicy::new();
        let vc = cert.with_policy(&policy, at(now + 1)).expect("valid");
        assert_eq!(
            vc.keys().subkeys().for_signing().revoked(false).count(),
            1,
            "one usable device subkey"
        );
        assert_eq!(
            vc.keys().subkeys().for_signing().revoked(true).count(),
            1,
            "the revoked device's subkey"
        );
        assert_eq!(vc.keys().subkeys().for_transport_encryption().count(), 1);
        assert!(vc.primary_key().for_certification());
        assert!(!cert.is_tsk(), "no secrets in the certificate");
        // The fingerprint depends on the seed only.
        let again = build(
            &primary_key(&[1; 32]).expect("p"),
            "Alice <alice@example.com>",
            &[],
            &[],
            now + 999,
        )
        .expect("cert");
        assert_eq!(cert.fingerprint(), again.fingerprint());
        let armored = armor(&cert).expect("armor");
        assert!(armored.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));

        // GnuPG reads it as we mean it: one primary, a live and a revoked
        // signing subkey, an encryption subkey.
        let gpg_present = std::process::Command::new("gpg")
            .arg("--version")
            .output()
            .is_ok();
        if !gpg_present {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "gpg is required under CI=true"
            );
            return;
        }
        let home = std::env::temp_dir().join(format!("mesh-pgp-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(&home).expect("home");
        std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .expect("chmod");
        let file = home.join("cert.asc");
        std::fs::write(&file, &armored).expect("write");
        let gpg = |args: &[&str]| {
            std::process::Command::new("gpg")
                .arg("--homedir")
                .arg(&home)
                .args([
                    "--batch",
                    "--no-tty",
                    "--faked-system-time",
                    &format!("{}!", now + 10),
                ])
                .args(args)
                .output()
                .expect("gpg")
        };
        let o = gpg(&["--import", file.to_str().expect("p")]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let o = gpg(&["--with-colons", "--list-keys"]);
        let listing = String::from_utf8_lossy(&o.stdout).to_string();
        let _ = gpg_agent_stop(&home);
        let _ = std::fs::remove_dir_all(&home);
        assert!(
            listing.contains(&format!("fpr:::::::::{}:", cert.fingerprint().to_hex())),
            "{listing}"
        );
        assert_eq!(
            listing.lines().filter(|l| l.starts_with("sub:r:")).count(),
            1,
            "{listing}"
        );
        assert_eq!(
            listing
                .lines()
                .filter(|l| l.starts_with("sub:u:") || l.starts_with("sub:-:"))
                .count(),
            2,
            "{listing}"
        );
        assert!(listing.contains("Alice <alice@example.com>"), "{listing}");
    }

    /// Issue 22.2: every self-signature carries the preferences, and a
    /// keyring that holds the certificate as earlier versions built it
    /// (no preferences, so GnuPG chose 3DES and SHA-1) takes them from the
    /// re-issued one.
    #[test]
    fn preferences_on_every_self_signature_and_they_supersede_the_old_ones() {
        use openpgp::types::{Features, HashAlgorithm, SymmetricAlgorithm};
        let p = primary_key(&[1; 32]).expect("primary");
        let subkeys = || {
            let d = signing_subkey(&[2; 32], PRIMARY_CREATED + 10).expect("d");
            let e = encryption_subkey(&[4; 32], PRIMARY_CREATED + 10).expect("e");
            (
                [Subkey {
                    key: d,
                    revoked: None,
                }],
                [Subkey {
                    key: e,
                    revoked: None,
                }],
            )
        };
        let uid = "Alice <alice@example.com>";
        let (s, e) = subkeys();
        let old = build_as(&p, uid, &s, &e, PRIMARY_CREATED, false).expect("old");
        let new = build(&p, uid, &s, &e, SELF_SIGNED).expect("new");
        let policy = StandardPolicy::new();
        let vc = new.with_policy(&policy, None).expect("valid");
        let uid = vc.primary_userid().expect("uid");
        let direct = vc.direct_key_signature().expect("direct");
        let bindings = vc.keys().subkeys().map(|k| k.binding_signature().clone());
        for sig in [uid.binding_signature().clone(), direct.clone()]
            .into_iter()
            .chain(bindings)
        {
            assert_eq!(
                sig.preferred_symmetric_algorithms(),
                Some(&[SymmetricAlgorithm::AES256, SymmetricAlgorithm::AES128][..]),
                "{sig:?}"
            );
            assert_eq!(
                sig.preferred_hash_algorithms(),
                Some(&[HashAlgorithm::SHA512, HashAlgorithm::SHA256][..])
            );
            assert_eq!(sig.features(), Some(Features::empty().set_seipdv1()));
        }
        let vo = old.with_policy(&policy, None).expect("valid");
        assert!(vo
            .primary_userid()
            .expect("uid")
            .binding_signature()
            .preferred_symmetric_algorithms()
            .is_none());

        // GnuPG, holding the old certificate, imports the new one: its
        // preferences are the new ones.
        if std::process::Command::new("gpg")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "gpg is required under CI=true"
            );
            return;
        }
        let home = std::env::temp_dir().join(format!("mesh-pgp-prefs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(&home).expect("home");
        std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .expect("chmod");
        let fpr = new.fingerprint().to_hex();
        // The user ID's preferences as GnuPG reads them (field 13 of the
        // `uid` record `--edit-key` lists).
        let prefs = |c: &Cert, name: &str| {
            let f = home.join(name);
            std::fs::write(&f, armor(c).expect("armor")).expect("write");
            let run = |args: &[&str]| {
                use std::io::Write;
                let mut child = std::process::Command::new("gpg")
                    .arg("--homedir")
                    .arg(&home)
                    .args(["--no-tty", "--command-fd", "0", "--with-colons"])
                    .args(args)
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("gpg");
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(b"quit\n")
                    .expect("quit");
                let o = child.wait_with_output().expect("gpg");
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                String::from_utf8_lossy(&o.stdout).to_string()
            };
            run(&["--batch", "--import", f.to_str().expect("p")]);
            let listing = run(&["--edit-key", &fpr]);
            listing
                .lines()
                .find(|l| l.starts_with("uid:"))
                .and_then(|l| l.split(':').nth(12))
                .unwrap_or_default()
                .to_string()
        };
        let before = prefs(&old, "old.asc");
        let after = prefs(&new, "new.asc");
        // An old copy arriving later (a key server, a WKD cache) does not
        // take them away: the new self-signature is the newer one.
        let again = prefs(&old, "old-again.asc");
        let _ = gpg_agent_stop(&home);
        let _ = std::fs::remove_dir_all(&home);
        // S9 AES-256, S7 AES-128, H10 SHA-512, H8 SHA-256, Z0 uncompressed.
        assert!(!before.contains("S9"), "{before}");
        assert_eq!(after, "S9 S7 H10 H8 Z0,mdc", "was {before:?}");
        assert_eq!(again, after);
    }

    fn gpg_agent_stop(home: &std::path::Path) -> std::io::Result<std::process::Output> {
        std::process::Command::new("gpgconf")
            .arg("--homedir")
            .arg(home)
            .args(["--kill", "all"])
            .output()
    }
}
