//! Short-lived certificates without an online CA (issue 25, PROTOCOL.md
//! §17). With a `CertLifetime` in the policy, an administrator's pass
//! issues each active ssh device a certificate per window
//! `[k·L, (k+1)·L)` up to `CertAhead` from now, each valid from a little
//! before its window (consecutive ones overlap). The current window's goes
//! in the `ssh-cert:` entry as before; the coming ones are held at the
//! portal and released to the device only from their `valid_after` on, so
//! that a copy of the device's home never holds a certificate for a
//! window to come: a revoked or lost device's certificates die with their
//! window, even on a server that never fetches a KRL.

use mesh_core::held::Held;
use mesh_core::objects::AccountKeys;
use mesh_plugins::{now, AccountView, AppEntry, DeviceHost, HeldBatch, PluginError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use ssh_key::public::KeyData;
use ssh_key::{Certificate, HashAlg};

use crate::cert::{self, CertRequest};
use crate::entries::{ca_key, internal, SshPolicy};

type Result<T> = std::result::Result<T, PluginError>;

/// The shortest window (tests use it).
pub const MIN_LIFETIME: u64 = 600;
/// How far ahead windows are issued when the policy does not say.
pub const DEFAULT_AHEAD: u64 = 7 * 86_400;
/// Windows issued for one device in one pass, at most (the rest follow
/// at the next pass).
const MAX_WINDOWS: usize = 1024;

/// How long before its window a certificate is valid: an hour, or a
/// quarter of the window when that is shorter. The daemon reads released
/// certificates on its full sync every 10 minutes, well within it.
pub fn overlap(lifetime: u64) -> u64 {
    (lifetime / 4).min(3600)
}

/// The window that holds `t`: `(start, end)`.
pub fn window_of(t: u64, lifetime: u64) -> (u64, u64) {
    let start = t - t % lifetime.max(1);
    (start, start + lifetime)
}

/// The serial of a device's certificate for the window from `start`:
/// the same on every administrator, so a KRL can name it.
pub fn window_serial(device: &str, start: u64) -> u64 {
    let h = Sha256::new()
        .chain_update(b"mesh-ssh-window-v1")
        .chain_update((device.len() as u64).to_be_bytes())
        .chain_update(device.as_bytes())
        .chain_update(start.to_be_bytes())
        .finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    u64::from_be_bytes(b) >> 1
}

/// How far a device's windows are issued (application entry
/// `ssh-horizon:<device UDF>`), and for what: windows issued for another
/// key, CA, principals or lifetime are issued again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Horizon {
    /// The end of the last window issued.
    #[serde(rename = "Until")]
    pub until: u64,
    /// The window length.
    #[serde(rename = "Lifetime")]
    pub lifetime: u64,
    /// The device key's fingerprint.
    #[serde(rename = "Key")]
    pub key: String,
    /// The CA's fingerprint.
    #[serde(rename = "Ca")]
    pub ca: String,
    /// The login names.
    #[serde(rename = "Principals")]
    pub principals: Vec<String>,
}

fn horizon_uid(device: &str) -> String {
    format!("ssh-horizon:{device}")
}

/// What a held entry carries: one certificate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HeldCert {
    /// OpenSSH certificate line.
    #[serde(rename = "Certificate")]
    pub certificate: String,
}

/// A device's certificate for the window from `start` (length `lifetime`).
pub(crate) fn issue_window(
    admin: &AccountKeys,
    device: &str,
    key_id: String,
    key: &KeyData,
    principals: &[String],
    (start, lifetime): (u64, u64),
) -> Result<Certificate> {
    cert::issue(
        &admin.online_ed25519(crate::entries::CA_KEY),
        &CertRequest {
            key: key.clone(),
            serial: window_serial(device, start),
            key_id,
            principals: principals.to_vec(),
            valid_after: start.saturating_sub(overlap(lifetime)),
            valid_before: start + lifetime,
        },
    )
    .map_err(internal)
}

/// The held certificates of every active ssh device for the windows after
/// the current one up to `CertAhead` from now that were not issued yet,
/// each with the horizon entry that records them.
pub(crate) fn held(view: &AccountView, admin: &AccountKeys) -> Result<Vec<HeldBatch>> {
    let pol = crate::entries::policy(view)?;
    let Some(lifetime) = pol.cert_lifetime.filter(|l| *l >= MIN_LIFETIME) else {
        return Ok(Vec::new());
    };
    let t = now();
    let until = t + pol.cert_ahead.unwrap_or(DEFAULT_AHEAD);
    let ca = ca_key(&view.profile)?
        .fingerprint(HashAlg::Sha256)
        .to_string();
    let mut out = Vec::new();
    for (e, d) in view.active(&crate::entries::ROLE) {
        let Some(key) = crate::entries::device_key(&d.connection) else {
            continue;
        };
        let mine = Horizon {
            until: 0,
            lifetime,
            key: key.fingerprint(HashAlg::Sha256).to_string(),
            ca: ca.clone(),
            principals: pol.principals.clone(),
        };
        let uid = horizon_uid(&e.device_udf);
        let from = view
            .app::<Horizon>(&uid)
            .ok()
            .flatten()
            .filter(|h| {
                Horizon {
                    until: 0,
                    ..h.clone()
                } == mine
            })
            .map_or(0, |h| h.until)
            .max(window_of(t, lifetime).1);
        let mut entries = Vec::new();
        let mut w = from;
        while w < until && entries.len() < MAX_WINDOWS {
            let id = format!("{}@{}", e.name, view.address);
            let c = issue_window(
                admin,
                &e.device_udf,
                id,
                &key,
                &pol.principals,
                (w, lifetime),
            )?;
            let line = c.to_openssh().map_err(internal)?;
            entries.push(Held {
                not_before: c.valid_after(),
                data: serde_json::to_value(HeldCert { certificate: line }).map_err(internal)?,
            });
            w += lifetime;
        }
        if entries.is_empty() {
            continue;
        }
        out.push(HeldBatch {
            device: e.device_udf.clone(),
            entries,
            record: vec![AppEntry::new(uid, &Horizon { until: w, ..mine })],
        });
    }
    Ok(out)
}

/// A certificate a portal released, verified: issued by the account's CA
/// for this device's `key` and the account's login names.
fn verify(
    view: &AccountView,
    pol: &SshPolicy,
    key: &KeyData,
    data: &serde_json::Value,
) -> Result<Certificate> {
    let bad = |e: String| PluginError::Untrusted(format!("a released certificate: {e}"));
    let h: HeldCert = serde_json::from_value(data.clone()).map_err(|e| bad(e.to_string()))?;
    let c = Certificate::from_openssh(&h.certificate).map_err(|e| bad(e.to_string()))?;
    let fp = ca_key(&view.profile)?.fingerprint(HashAlg::Sha256);
    c.validate_at(c.valid_after(), [&fp])
        .map_err(|e| bad(e.to_string()))?;
    if c.public_key() != key {
        return Err(bad("it is for another key".into()));
    }
    if c.valid_principals() != pol.principals.as_slice() {
        return Err(bad("it is for other login names than the account's".into()));
    }
    Ok(c)
}

/// The released certificates this device keeps (its channel record).
fn kept(device: &dyn DeviceHost) -> (u64, Vec<String>) {
    let rec = device.local("ssh").unwrap_or_default();
    let cursor = rec.get("Released").and_then(|v| v.as_u64()).unwrap_or(0);
    let certs = rec
        .get("Held")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    (cursor, certs)
}

/// Device side: read what the portal released since the last read,
/// keep the certificates that verify and have not expired, drop the
/// expired ones, and note when the next window's is due (the host runs
/// the channel again then, even when the account does not move). A
/// released certificate that does not verify (issued for a key or login
/// names since replaced) is skipped and said. Returns what it did.
pub(crate) fn fetch(
    device: &dyn DeviceHost,
    view: &AccountView,
    key: &KeyData,
) -> Result<Vec<String>> {
    let pol = crate::entries::policy(view)?;
    let (mut cursor, mut certs) = kept(device);
    let lifetime = pol.cert_lifetime.filter(|l| *l >= MIN_LIFETIME);
    if lifetime.is_none()
        && certs.is_empty()
        && device.local("ssh").is_none_or(|r| r.get("Due").is_none())
    {
        return Ok(Vec::new());
    }
    let t = now();
    let mut actions = Vec::new();
    for _ in 0..64 {
        let page = device.released(cursor)?;
        for r in &page.entries {
            cursor = cursor.max(r.index);
            match verify(view, &pol, key, &r.data) {
                Ok(c) if c.valid_before() > t => {
                    actions.push(format!(
                        "SSH certificate for the window until {} released",
                        utc(c.valid_before())
                    ));
                    certs.push(c.to_openssh().map_err(internal)?);
                }
                Ok(_) => {}
                Err(e) => actions.push(format!("skipped released entry {}: {e}", r.index)),
            }
        }
        if !page.partial || page.entries.is_empty() {
            break;
        }
    }
    certs.retain(|l| Certificate::from_openssh(l).is_ok_and(|c| c.valid_before() > t));
    // The next window's certificate is released an overlap before the
    // latest one this device holds ends.
    let entry = crate::entries::device_cert(view, device.device_udf(), key)
        .ok()
        .flatten()
        .map(|(c, _)| c.valid_before());
    let latest = certs
        .iter()
        .filter_map(|l| Certificate::from_openssh(l).ok().map(|c| c.valid_before()))
        .chain(entry)
        .max();
    let due = lifetime.map(|l| latest.unwrap_or(t).saturating_sub(overlap(l)));
    let mut rec = device.local("ssh").unwrap_or_else(|| serde_json::json!({}));
    if let Some(o) = rec.as_object_mut() {
        o.insert("Released".into(), cursor.into());
        o.insert("Held".into(), serde_json::json!(certs));
        match due {
            Some(d) => o.insert("Due".into(), d.into()),
            None => o.remove("Due"),
        };
    }
    device.set_local("ssh", Some(&rec))?;
    Ok(actions)
}

/// When this device's channel needs a pass for the next window's
/// certificate (see [`fetch`]).
pub(crate) fn due(device: &dyn DeviceHost) -> Option<u64> {
    device.local("ssh")?.get("Due")?.as_u64()
}

/// The certificate to serve now: of `entry` (the `ssh-cert:` entry) and
/// the released ones this device keeps, the one valid now (verified
/// again) with the latest `valid_before`; `entry` when none is.
pub(crate) fn current(
    device: &dyn DeviceHost,
    view: &AccountView,
    key: &KeyData,
    entry: Option<Certificate>,
) -> Result<Option<Certificate>> {
    let pol = crate::entries::policy(view)?;
    let t = now();
    let valid = |c: &Certificate| c.valid_after() <= t && t < c.valid_before();
    let released = kept(device).1.into_iter().filter_map(|l| {
        let data = serde_json::to_value(HeldCert { certificate: l }).ok()?;
        verify(view, &pol, key, &data).ok()
    });
    let best = entry
        .iter()
        .cloned()
        .chain(released)
        .filter(valid)
        .max_by_key(|c| c.valid_before());
    Ok(best.or(entry))
}

/// `secs` as `YYYY-MM-DDTHH:MM:SSZ` (the civil calendar, UTC).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days to civil date (H. Hinnant's algorithm), from 1970-01-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned_and_overlap() {
        assert_eq!(window_of(1_000, 600), (600, 1_200));
        assert_eq!(window_of(1_200, 600), (1_200, 1_800));
        assert_eq!(overlap(600), 150);
        assert_eq!(overlap(86_400), 3_600);
        assert_eq!(window_serial("D", 600), window_serial("D", 600));
        assert_ne!(window_serial("D", 600), window_serial("D", 1_200));
        assert_ne!(window_serial("D", 600), window_serial("E", 600));
        assert!(window_serial("D", 600) < 1 << 63);
    }

    #[test]
    fn utc_is_the_civil_date() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_796_679_000), "2026-12-07T21:30:00Z");
    }
}

#[cfg(test)]
#[path = "windows_tests.rs"]
mod channel_tests;
