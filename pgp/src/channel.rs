//! The OpenPGP channel of a Mesh account: administrators keep the account
//! certificate current in the Application store (per-device signing
//! subkeys, the shared encryption subkey); devices export their secrets
//! (docs/DESIGN.md, PROTOCOL.md §13).

use std::collections::BTreeMap;

use mesh_core::derive::{key_name, KeyAlg, Seed};
use mesh_core::objects::{AccountKeys, Role};
use mesh_plugins::shared::{self, Holders, Plan};
use mesh_plugins::{now, AccountView, AppEntry, Claims, DeviceHost, Event, Plugin, PluginError};
use sha2::Digest;
use zeroize::Zeroizing;

use crate::cert::{Revocation, Subkey};
pub use crate::entries::{
    cert, cert_bytes, primary_fingerprint, PgpCert, PgpSubkey, CERT_FORMAT, FINGERPRINT_CLAIM, ROLE,
};
use crate::entries::{check_cert, encryption_subkeys, pgp_err, CT_PGP_KEY};
pub use crate::export::export_secret_bytes;

type Result<T> = std::result::Result<T, PluginError>;

/// Open a wrapped subkey secret with any administrator epoch's key (or
/// escrow, in a recovery).
fn open_secret(sub: &PgpSubkey, admin: &AccountKeys) -> Result<Zeroizing<[u8; 32]>> {
    let plain = admin.open(&sub.key, CT_PGP_KEY)?;
    let arr: [u8; 32] = plain
        .as_slice()
        .try_into()
        .map_err(|_| PluginError::Untrusted("an OpenPGP subkey secret is not 32 bytes".into()))?;
    Ok(Zeroizing::new(arr))
}

fn primary_secret(seed: &Seed) -> Zeroizing<[u8; 32]> {
    seed.derive(
        KeyAlg::Ed25519,
        &key_name("Complete", "Account", "Openpgp", 0),
    )
}

fn signing_secret(seed: &Seed, device: &str) -> Zeroizing<[u8; 32]> {
    seed.derive(
        KeyAlg::Ed25519,
        &format!("CompleteAccountOpenpgpSign.{device}"),
    )
}

fn encryption_secret(seed: &Seed, epoch: u32) -> Zeroizing<[u8; 32]> {
    seed.derive(
        KeyAlg::X25519,
        &key_name("Complete", "Account", "OpenpgpEncrypt", epoch),
    )
}

/// The fingerprint of the account's OpenPGP primary key (in the profile).
pub fn fingerprint(seed: &Seed) -> Result<String> {
    Ok(crate::cert::primary_key(&primary_secret(seed))
        .map_err(pgp_err)?
        .fingerprint()
        .to_hex())
}

fn user_id(view: &AccountView) -> String {
    match &view.profile.description {
        Some(name) => format!("{name} <{}>", view.address),
        None => format!("<{}>", view.address),
    }
}

/// The OpenPGP channel.
#[derive(Debug, Default)]
pub struct PgpPlugin;

impl Plugin for PgpPlugin {
    fn name(&self) -> &'static str {
        "pgp"
    }

    fn role(&self) -> Option<Role> {
        Some(ROLE)
    }

    /// The epoch's primary key's fingerprint, under [`FINGERPRINT_CLAIM`].
    fn claims(&self, admin: &AccountKeys, claims: &mut Claims) -> Result<()> {
        claims.put(FINGERPRINT_CLAIM, &fingerprint(admin.seed())?)?;
        Ok(())
    }

    /// Signing subkeys for new `pgp` devices (re-wrapped when a device's
    /// keys were rotated), the shared encryption subkey by the shared-key
    /// policy, and the certificate when its content changed.
    fn entries(&self, _: &Event, view: &AccountView, admin: &AccountKeys) -> Result<Vec<AppEntry>> {
        let mut out = signing_entries(view, admin)?;
        out.extend(encryption_entries(view, admin)?);
        let mut next = view.clone();
        for e in &out {
            next.put_app(e.uid.clone(), e.data.clone());
        }
        out.extend(cert_entry(&next, admin)?);
        Ok(out)
    }

    fn describe(&self, event: &Event, before: &AccountView, after: &AccountView) -> Vec<String> {
        let Event::Revoked { device } = event else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let new_epoch = after.profile.epoch() > before.profile.epoch();
        if !new_epoch
            && after
                .app::<PgpSubkey>(&format!("pgp-key:{device}"))
                .ok()
                .flatten()
                .is_some()
        {
            out.push(
                "its signing subkey revoked (key compromised) in the republished certificate"
                    .to_string(),
            );
        }
        let epoch = |v: &AccountView| {
            encryption_subkeys(v)
                .ok()
                .and_then(|e| e.last().map(|k| k.epoch))
        };
        if let (Some(a), Some(b)) = (epoch(before), epoch(after)) {
            if b > a {
                out.push(format!("encryption subkey rotated: epoch {a} → {b} (the old one revoked as superseded)"));
            }
        }
        if new_epoch {
            out.push(format!(
                "a new certificate: primary {}, new signing subkeys; the old certificate retired, revoked as compromised",
                primary_fingerprint(after).unwrap_or("?")
            ));
        }
        out
    }

    fn verify(&self, view: &AccountView) -> Result<()> {
        if let Some(c) = view.app::<PgpCert>("pgp")? {
            check_cert(view, c.certificate.as_bytes())?;
        }
        Ok(())
    }

    fn apply(&self, device: &dyn DeviceHost, view: &AccountView) -> Result<Vec<String>> {
        crate::gnupg::refresh(device, view)
    }

    fn wipe(&self, device: &dyn DeviceHost) -> Result<Vec<String>> {
        crate::gnupg::wipe(device)
    }

    /// `mesh pgp …` (pgp/src/cli.rs).
    fn command(&self) -> Option<&dyn mesh_plugins::ChannelCommand> {
        Some(&crate::cli::PgpCommand)
    }
}

/// A device's signing subkey: issued once; wrapped again (same secret,
/// same creation time) when the device's encryption key changed.
fn signing_entries(view: &AccountView, admin: &AccountKeys) -> Result<Vec<AppEntry>> {
    let mut out = Vec::new();
    for (e, d) in view.active(&ROLE) {
        let uid = format!("pgp-key:{}", e.device_udf);
        let current = view.app::<PgpSubkey>(&uid)?;
        let key = d.connection.encryption.key;
        let wanted: Holders = [
            (e.device_udf.clone(), key.udf()),
            (
                shared::ADMIN.to_string(),
                admin.admin_encrypt.public_key().udf(),
            ),
        ]
        .into();
        let epoch = admin.epoch();
        let created = match &current {
            Some(c) if c.holders == wanted && c.admin_epoch == epoch => continue,
            // Written before holders were recorded: current if its device key is a recipient.
            Some(c) if c.holders.is_empty() && c.key.is_for(&key) && c.admin_epoch == epoch => {
                continue
            }
            // A new administrator epoch: a new subkey, under the new primary.
            Some(c) if c.admin_epoch == epoch => c.created,
            _ => now(),
        };
        let targets = [
            (e.device_udf.clone(), key),
            (shared::ADMIN.to_string(), admin.admin_encrypt.public_key()),
        ]
        .into();
        let secret = signing_secret(admin.seed(), &e.device_udf);
        let (wrapped, holders) = shared::wrap(CT_PGP_KEY, &secret[..], &targets)?;
        let sub = PgpSubkey {
            created,
            epoch: 0,
            key: wrapped,
            holders,
            admin_epoch: epoch,
        };
        out.push(AppEntry::new(uid, &sub));
    }
    Ok(out)
}

/// The shared encryption subkey, by the shared-key policy: every epoch
/// re-wrapped for holders whose keys changed, a new epoch when a holder
/// must lose it.
fn encryption_entries(view: &AccountView, admin: &AccountKeys) -> Result<Vec<AppEntry>> {
    let targets = shared::targets(view, admin, &ROLE);
    let encs = encryption_subkeys(view)?;
    let mut out = Vec::new();
    // An existing epoch keeps its secret (opened, wrapped again); a new
    // one is derived from the current administrator epoch's seed.
    let mut wrap =
        |epoch: u32, created: u64, old: Option<&PgpSubkey>, to: &shared::Targets| -> Result<()> {
            let (secret, admin_epoch) = match old {
                Some(o) => (open_secret(o, admin)?, o.admin_epoch),
                None => (encryption_secret(admin.seed(), epoch), admin.epoch()),
            };
            let (key, holders) = shared::wrap(CT_PGP_KEY, &secret[..], to)?;
            out.push(AppEntry::new(
                format!("pgp-enc:{epoch}"),
                &PgpSubkey {
                    created,
                    epoch,
                    key,
                    holders,
                    admin_epoch,
                },
            ));
            Ok(())
        };
    let Some((last, older)) = encs.split_last() else {
        return wrap(0, now(), None, &targets).map(|_| out);
    };
    for e in older {
        if let Plan::Rewrap(to) =
            shared::plan_old(&shared::holders_of(&e.holders, &e.key, &targets), &targets)
        {
            wrap(e.epoch, e.created, Some(e), &to)?;
        }
    }
    let held = shared::holders_of(&last.holders, &last.key, &targets);
    match shared::plan_current(&held, &targets) {
        Plan::Keep => {}
        Plan::Rewrap(to) => wrap(last.epoch, last.created, Some(last), &to)?,
        Plan::Rotate(to) => {
            // The holders that stay keep the old epoch under their current keys.
            if let Plan::Rewrap(old) = shared::plan_old(&held, &targets) {
                wrap(last.epoch, last.created, Some(last), &old)?;
            }
            wrap(last.epoch + 1, now(), None, &to)?;
        }
    }
    Ok(out)
}

/// What the certificate says, and when revoked devices were revoked.
struct Content {
    signing: Vec<(String, u64, Option<u64>)>,
    encryption: Vec<(u32, u64, Option<u64>)>,
    revoked: BTreeMap<String, u64>,
    digest: String,
}

fn content(view: &AccountView) -> Result<Content> {
    let published: Option<PgpCert> = view.app("pgp")?;
    let mut revoked = published.map(|p| p.revoked).unwrap_or_default();
    let mut signing = Vec::new();
    for e in view.entries() {
        let Some(sub) = view.app::<PgpSubkey>(&format!("pgp-key:{}", e.device_udf))? else {
            continue;
        };
        // Subkeys of an earlier administrator epoch were bound by the
        // earlier primary, not this certificate's.
        if sub.admin_epoch != view.profile.epoch() {
            continue;
        }
        let when = (e.state == mesh_core::portal::DeviceState::Revoked).then(|| {
            *revoked
                .entry(e.device_udf.clone())
                .or_insert_with(|| now().max(sub.created))
        });
        signing.push((e.device_udf.clone(), sub.created, when));
    }
    let encs = encryption_subkeys(view)?;
    let encryption: Vec<(u32, u64, Option<u64>)> = encs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            (
                e.epoch,
                e.created,
                encs.get(i + 1).map(|n| n.created.max(e.created)),
            )
        })
        .collect();
    let canonical = serde_json::json!({
        "uid": user_id(view), "signing": signing, "encryption": encryption,
        "primary": primary_fingerprint(view),
    });
    let digest =
        data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(canonical.to_string().as_bytes()));
    Ok(Content {
        signing,
        encryption,
        revoked,
        digest,
    })
}

/// The certificate, rebuilt and republished only when its content changed.
fn cert_entry(view: &AccountView, admin: &AccountKeys) -> Result<Option<AppEntry>> {
    let c = content(view)?;
    if view
        .app::<PgpCert>("pgp")?
        .is_some_and(|p| p.content == c.digest && p.format >= CERT_FORMAT)
    {
        return Ok(None);
    }
    let seed = admin.seed();
    let primary = crate::cert::primary_key(&primary_secret(seed)).map_err(pgp_err)?;
    let mut signing = Vec::new();
    for (device, created, revoked) in &c.signing {
        let key = crate::cert::signing_subkey(&signing_secret(seed, device), *created)
            .map_err(pgp_err)?;
        signing.push(Subkey {
            key,
            revoked: revoked.map(|t| (t, Revocation::Compromised)),
        });
    }
    let mut encryption = Vec::new();
    let encs = encryption_subkeys(view)?;
    for (epoch, created, revoked) in &c.encryption {
        let secret = match encs.iter().find(|e| e.epoch == *epoch) {
            Some(e) => open_secret(e, admin)?,
            None => encryption_secret(seed, *epoch),
        };
        let key = crate::cert::encryption_subkey(&secret, *created).map_err(pgp_err)?;
        encryption.push(Subkey {
            key,
            revoked: revoked.map(|t| (t, Revocation::Superseded)),
        });
    }
    // Signature times are the keys' own: the certificate is a function of its content.
    let cert = crate::cert::build(
        &primary,
        &user_id(view),
        &signing,
        &encryption,
        crate::cert::SELF_SIGNED,
    )
    .map_err(pgp_err)?;
    let entry = PgpCert {
        retired: retired(view, admin, &cert)?,
        certificate: crate::cert::armor(&cert).map_err(pgp_err)?,
        content: c.digest,
        revoked: c.revoked,
        format: CERT_FORMAT,
    };
    Ok(Some(AppEntry::new("pgp", &entry)))
}

/// The retired certificates: those already published, and the one this
/// certificate replaces when its primary changed (a new administrator
/// epoch), revoked with the earlier epoch's primary. Without that epoch's
/// seed (a recovery after a thief's epoch) it cannot be revoked here.
fn retired(
    view: &AccountView,
    admin: &AccountKeys,
    cert: &sequoia_openpgp::Cert,
) -> Result<Vec<String>> {
    use sequoia_openpgp::parse::Parse;
    let Some(published) = view.app::<PgpCert>("pgp")? else {
        return Ok(Vec::new());
    };
    let mut out = published.retired.clone();
    let old = sequoia_openpgp::Cert::from_bytes(published.certificate.as_bytes())
        .map_err(|e| PluginError::Untrusted(format!("the published certificate: {e}")))?;
    if old.fingerprint() == cert.fingerprint() {
        return Ok(out);
    }
    let seed = (0..=admin.epoch())
        .filter_map(|e| admin.seed_for(e))
        .find(|s| fingerprint(s).is_ok_and(|f| f == old.fingerprint().to_hex()));
    if let Some(seed) = seed {
        let primary = crate::cert::primary_key(&primary_secret(seed)).map_err(pgp_err)?;
        let revoked = crate::cert::retire(&primary, &old, now()).map_err(pgp_err)?;
        out.push(crate::cert::armor(&revoked).map_err(pgp_err)?);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "channel_tests.rs"]
mod tests;
