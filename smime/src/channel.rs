//! The S/MIME channel of a Mesh account: the personal CA certificate, each
//! device's signing certificate, the shared encryption key and certificate
//! and the CRL, kept by administrators in the Application store
//! (PROTOCOL.md §12); and what a device does with them (export, CMS).

use mesh_core::objects::{AccountKeys, Role, Slot};
use mesh_plugins::shared::{self, Plan, Targets};
use mesh_plugins::{now, AccountView, AppEntry, DeviceHost, Event, Plugin, PluginError};
use zeroize::Zeroizing;

pub use crate::entries::{
    encryption_epochs, RetiredCa, SmimeCa, SmimeCert, SmimeCrl, SmimeEncryption, APP_CRL,
    APP_SMIME, CA_KEY, ROLE, SIGNING_VALIDITY, SLOT,
};
use crate::entries::{internal, CT_SMIME_KEY};
use crate::x509::{P256Public, P256Signer, SigningCert};

type Result<T> = std::result::Result<T, PluginError>;

/// The CAs of earlier epochs: those already published, and every earlier
/// epoch whose seed the administrator holds (its CA is a function of the
/// seed), so that accounts whose epoch changed before CAs were kept get
/// them too. The CA being replaced now is dated now. An epoch whose seed
/// is not held (a thief's, not wrapped to escrow) is never listed.
fn retired_cas(
    view: &AccountView,
    admin: &AccountKeys,
    published: Option<&SmimeCa>,
) -> Result<Vec<RetiredCa>> {
    let mut out = published.map(|p| p.retired.clone()).unwrap_or_default();
    for epoch in 0..admin.epoch() {
        if out.iter().any(|r| r.epoch == epoch) {
            continue;
        }
        let Some(seed) = admin.seed_for(epoch) else {
            continue;
        };
        let name = mesh_core::derive::key_name("Online", "Account", CA_KEY, epoch);
        let key = mesh_core::keys::p256_signing_key(seed, &name);
        let pem =
            crate::x509::ca_certificate(&P256Signer::new(key), &view.address).map_err(internal)?;
        let retired = published.is_some_and(|p| p.ca_certificate == pem).then(now);
        out.push(RetiredCa {
            epoch,
            ca_certificate: pem,
            retired,
        });
    }
    out.sort_by_key(|r| r.epoch);
    Ok(out)
}

fn random_serial() -> u64 {
    let mut sn = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut sn);
    u64::from_be_bytes(sn) >> 1
}

/// Where correspondents check this account's certificates: its portal.
pub(crate) fn status_urls(view: &AccountView) -> crate::x509::StatusUrls {
    crate::x509::StatusUrls::at(&view.profile.service, &view.profile_udf)
}

fn secs(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// The S/MIME channel.
#[derive(Debug, Default)]
pub struct SmimePlugin;

impl Plugin for SmimePlugin {
    fn name(&self) -> &'static str {
        "smime"
    }

    fn role(&self) -> Option<Role> {
        Some(ROLE)
    }

    fn slots(&self) -> &'static [Slot] {
        &[SLOT]
    }

    fn entries(&self, _: &Event, view: &AccountView, admin: &AccountKeys) -> Result<Vec<AppEntry>> {
        let ca = P256Signer::new(admin.online_p256(CA_KEY));
        let mut out = Vec::new();
        // A new administrator epoch brings a new CA (the old one may be a
        // revoked administrator's): publish it, and re-issue below.
        let pem = crate::x509::ca_certificate(&ca, &view.address).map_err(internal)?;
        let published = view.app::<SmimeCa>(APP_SMIME)?;
        let wanted = SmimeCa {
            ca_certificate: pem.clone(),
            epoch: admin.epoch(),
            retired: retired_cas(view, admin, published.as_ref())?,
        };
        if published.as_ref() != Some(&wanted) {
            out.push(AppEntry::new(APP_SMIME, &wanted));
        }
        out.extend(signing_entries(view, &ca)?);
        let (enc, rotated) = encryption_entries(view, admin, &ca)?;
        out.extend(enc);
        let mut next = view.clone();
        for e in &out {
            next.put_app(e.uid.clone(), e.data.clone());
        }
        if let Some(crl) = crl_entry(&next, &ca, rotated)? {
            next.put_app(crl.uid.clone(), crl.data.clone());
            out.push(crl);
        }
        // What correspondents check, in the same transaction as what changed.
        let changed = !out.is_empty();
        out.extend(crate::status::status_entry(&next, &ca, changed)?);
        Ok(out)
    }

    fn describe(&self, event: &Event, before: &AccountView, after: &AccountView) -> Vec<String> {
        let Event::Revoked { device } = event else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let crl = after
            .app::<SmimeCrl>(APP_CRL)
            .ok()
            .flatten()
            .map(|c| c.number);
        if let Some(c) = after
            .app::<SmimeCert>(&format!("smime-cert:{device}"))
            .ok()
            .flatten()
        {
            out.push(format!(
                "signing certificate serial {} in the CRL{}",
                c.serial,
                crl.map(|n| format!(", number {n}")).unwrap_or_default()
            ));
        }
        let epoch = |v: &AccountView| {
            encryption_epochs(v)
                .ok()
                .and_then(|e| e.last().map(|k| k.epoch))
        };
        if let (Some(a), Some(b)) = (epoch(before), epoch(after)) {
            if b > a {
                out.push(format!("encryption certificate rotated: epoch {a} → {b} (the old one in the CRL as superseded)"));
            }
        }
        if after.profile.epoch() > before.profile.epoch() {
            out.push(
                "a new CA, and every certificate re-issued by it; devices trust only the new CA"
                    .into(),
            );
        }
        out
    }

    fn apply(&self, device: &dyn DeviceHost, view: &AccountView) -> Result<Vec<String>> {
        let mut out = crate::nss::refresh(device, view)?;
        out.extend(crate::winstore::refresh(device, view)?);
        Ok(out)
    }

    /// Both stores are emptied even if one fails: a revoked device's keys
    /// must not stay in the other.
    fn wipe(&self, device: &dyn DeviceHost) -> Result<Vec<String>> {
        let nss = crate::nss::wipe(device);
        let win = crate::winstore::wipe(device);
        let mut out = nss?;
        out.extend(win?);
        Ok(out)
    }

    /// `mesh smime …` (smime/src/cli.rs).
    fn command(&self) -> Option<&dyn mesh_plugins::ChannelCommand> {
        Some(&crate::cli::SmimeCommand)
    }
}

/// Whether `mesh smime reissue` asks for this certificate again: issued
/// (notBefore + 5 min) before the request.
fn reissue_due(pem: &str, reissue: Option<u64>) -> bool {
    let Some(r) = reissue else {
        return false;
    };
    crate::x509::pem_to_der(pem)
        .ok()
        .and_then(|d| crate::ocsp::not_before(&d).ok())
        .is_some_and(|nb| nb + 300 < r)
}

/// Certify every active `smime` device's signing key that has no
/// certificate for its key yet (or one issued before `mesh smime reissue`).
fn signing_entries(view: &AccountView, ca: &P256Signer) -> Result<Vec<AppEntry>> {
    let t = now();
    let reissue = crate::status::policy(view)?.reissue;
    let mut out = Vec::new();
    for (e, d) in view.active(&ROLE) {
        let sec1 = d.profile.slots.bytes(SLOT.name);
        let sec1 = sec1.map_err(|x| PluginError::Untrusted(format!("{}: {x}", e.name)))?;
        // A device made by a client without this channel has no key to certify.
        let Some(sec1) = sec1 else {
            continue;
        };
        let key_b64 = mesh_core::b64::encode(&sec1);
        let uid = format!("smime-cert:{}", e.device_udf);
        if view.app::<SmimeCert>(&uid)?.is_some_and(|c| {
            c.key == key_b64
                && c.admin_epoch == view.profile.epoch()
                && !reissue_due(&c.certificate, reissue)
        }) {
            continue;
        }
        let public = P256Public::new(&sec1)
            .map_err(|x| PluginError::Untrusted(format!("{}: {x}", e.name)))?;
        let serial = random_serial();
        let pem = crate::x509::signing_certificate(
            ca,
            &public,
            &SigningCert {
                address: &view.address,
                device_name: &e.name,
                serial,
                not_before: secs(t) - 300,
                not_after: secs(t + SIGNING_VALIDITY),
                urls: Some(status_urls(view)),
            },
        )
        .map_err(internal)?;
        out.push(AppEntry::new(
            uid,
            &SmimeCert {
                device_udf: e.device_udf.clone(),
                key: key_b64,
                serial,
                certificate: pem,
                admin_epoch: view.profile.epoch(),
            },
        ));
    }
    Ok(out)
}

fn rewrap(e: &SmimeEncryption, admin: &AccountKeys, to: &Targets) -> Result<AppEntry> {
    // Wrapped to the administrators of its epoch: any epoch's key opens it.
    let pkcs8 = admin.open(&e.key, CT_SMIME_KEY)?;
    let (key, holders) = shared::wrap(CT_SMIME_KEY, &pkcs8, to)?;
    let next = SmimeEncryption {
        key,
        holders,
        ..e.clone()
    };
    Ok(AppEntry::new(format!("smime-enc:{}", e.epoch), &next))
}

fn new_epoch(view: &AccountView, ca: &P256Signer, epoch: u32, to: &Targets) -> Result<AppEntry> {
    use rsa::pkcs8::EncodePrivateKey;
    let k = crate::x509::new_encryption_key().map_err(internal)?;
    let pkcs8 = Zeroizing::new(k.to_pkcs8_der().map_err(internal)?.as_bytes().to_vec());
    let serial = random_serial();
    let public = crate::x509::RsaPublic::new(&k.to_public_key()).map_err(internal)?;
    let certificate = encryption_certificate(view, ca, &public, serial, epoch)?;
    let (key, holders) = shared::wrap(CT_SMIME_KEY, &pkcs8, to)?;
    Ok(AppEntry::new(
        format!("smime-enc:{epoch}"),
        &SmimeEncryption {
            epoch,
            serial,
            certificate,
            key,
            holders,
        },
    ))
}

/// The shared encryption certificate of `epoch` for `public`, valid from
/// now, with the status addresses.
fn encryption_certificate(
    view: &AccountView,
    ca: &P256Signer,
    public: &crate::x509::RsaPublic,
    serial: u64,
    epoch: u32,
) -> Result<String> {
    let t = now();
    crate::x509::encryption_certificate(
        ca,
        public,
        &SigningCert {
            address: &view.address,
            device_name: "encryption",
            serial,
            not_before: secs(t) - 300,
            not_after: secs(t + SIGNING_VALIDITY),
            urls: Some(status_urls(view)),
        },
        epoch,
    )
    .map_err(internal)
}

/// The current encryption certificate issued again for the same key (a
/// new serial, the status addresses): holders keep the key they have.
fn reissued(view: &AccountView, ca: &P256Signer, e: &SmimeEncryption) -> Result<AppEntry> {
    let der = crate::x509::pem_to_der(&e.certificate).map_err(internal)?;
    let public = crate::x509::RsaPublic::of_certificate(&der).map_err(internal)?;
    let serial = random_serial();
    let certificate = encryption_certificate(view, ca, &public, serial, e.epoch)?;
    let next = SmimeEncryption {
        serial,
        certificate,
        ..e.clone()
    };
    Ok(AppEntry::new(format!("smime-enc:{}", e.epoch), &next))
}

/// The shared encryption key by the shared-key policy. Returns the entries
/// and whether a new epoch began.
fn encryption_entries(
    view: &AccountView,
    admin: &AccountKeys,
    ca: &P256Signer,
) -> Result<(Vec<AppEntry>, bool)> {
    let targets = shared::targets(view, admin, &ROLE);
    let epochs = encryption_epochs(view)?;
    let Some((last, older)) = epochs.split_last() else {
        return Ok((vec![new_epoch(view, ca, 0, &targets)?], true));
    };
    let mut out = Vec::new();
    for e in older {
        if let Plan::Rewrap(to) =
            shared::plan_old(&shared::holders_of(&e.holders, &e.key, &targets), &targets)
        {
            out.push(rewrap(e, admin, &to)?);
        }
    }
    let held = shared::holders_of(&last.holders, &last.key, &targets);
    let reissue = crate::status::policy(view)?.reissue;
    let rotated = match shared::plan_current(&held, &targets) {
        Plan::Keep if reissue_due(&last.certificate, reissue) => {
            out.push(reissued(view, ca, last)?);
            false
        }
        Plan::Keep => false,
        Plan::Rewrap(to) => {
            out.push(rewrap(last, admin, &to)?);
            false
        }
        Plan::Rotate(to) => {
            if let Plan::Rewrap(old) = shared::plan_old(&held, &targets) {
                out.push(rewrap(last, admin, &old)?);
            }
            out.push(new_epoch(view, ca, last.epoch + 1, &to)?);
            true
        }
    };
    Ok((out, rotated))
}

/// The CRL, whenever the access list moved on since the published one or
/// the encryption key rotated: revoked devices' signing certificates
/// (keyCompromise) and superseded encryption certificates.
fn crl_entry(view: &AccountView, ca: &P256Signer, rotated: bool) -> Result<Option<AppEntry>> {
    let published: Option<SmimeCrl> = view.app(APP_CRL)?;
    if !rotated
        && published
            .as_ref()
            .is_some_and(|c| c.number == view.serial())
    {
        return Ok(None);
    }
    let Some(list) = &view.access else {
        return Ok(None);
    };
    let t = now();
    let mut revoked = Vec::new();
    for (e, _) in view.revoked() {
        if let Some(c) = view.app::<SmimeCert>(&format!("smime-cert:{}", e.device_udf))? {
            revoked.push(crate::x509::Revoked {
                serial: c.serial,
                when: secs(list.issued),
                compromised: true,
            });
        }
    }
    let epochs = encryption_epochs(view)?;
    if let Some((_, older)) = epochs.split_last() {
        for e in older {
            revoked.push(crate::x509::Revoked {
                serial: e.serial,
                when: secs(t),
                compromised: false,
            });
        }
    }
    let pem = crate::x509::crl(
        ca,
        &view.address,
        list.serial,
        secs(t),
        30 * 86400,
        &revoked,
    )
    .map_err(internal)?;
    Ok(Some(AppEntry::new(
        APP_CRL,
        &SmimeCrl {
            number: list.serial,
            crl: pem,
        },
    )))
}

#[cfg(test)]
#[path = "channel_tests.rs"]
mod tests;
