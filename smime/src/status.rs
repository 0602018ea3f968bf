//! What correspondents check (issue 28, PROTOCOL.md §12): the Published
//! entry `smime-status`, whose `Serve` the portal serves at
//! `/pki/<ProfileUdf>/…` — the CRL file and one OCSP answer per
//! certificate the current CA issued, signed ahead by an administrator —
//! and the channel's policy (`smime-policy`: the answers' validity, the
//! time of the last `mesh smime reissue`).

use mesh_plugins::{now, AccountView, AppEntry, PluginError};
use serde::{Deserialize, Serialize};

use crate::entries::{encryption_epochs, internal, SmimeCert, SmimeCrl, APP_CRL, ROLE};
use crate::ocsp::Status;
use crate::x509::P256Signer;

type Result<T> = std::result::Result<T, PluginError>;

/// The Published entry the portal serves.
pub const APP_STATUS: &str = "smime-status";
/// The channel's policy entry.
pub const APP_POLICY: &str = "smime-policy";
/// How long an OCSP answer is valid by default (its nextUpdate - thisUpdate).
pub const DEFAULT_OCSP_VALIDITY: u64 = 86400;
/// The shortest validity a policy may set: an administrator re-signs at
/// half of it.
pub const MIN_OCSP_VALIDITY: u64 = 3600;
/// The longest: how long a withholding portal can keep a revoked
/// certificate `good`.
pub const MAX_OCSP_VALIDITY: u64 = 7 * 86400;

/// The `smime-policy` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmimePolicy {
    /// Seconds an OCSP answer is valid (absent: the default).
    #[serde(
        rename = "OcspValidity",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ocsp_validity: Option<u64>,
    /// Certificates issued before this time (seconds since the Unix epoch)
    /// are issued again (`mesh smime reissue`).
    #[serde(rename = "Reissue", default, skip_serializing_if = "Option::is_none")]
    pub reissue: Option<u64>,
}

impl SmimePolicy {
    /// The validity of OCSP answers, in seconds.
    pub fn validity(&self) -> u64 {
        self.ocsp_validity.unwrap_or(DEFAULT_OCSP_VALIDITY)
    }
}

/// The account's S/MIME policy (the default when none was published).
pub fn policy(view: &AccountView) -> Result<SmimePolicy> {
    Ok(view.app(APP_POLICY)?.unwrap_or_default())
}

/// `mesh smime policy ocsp-validity`: the policy entry (the plugin re-signs
/// every answer in the same transaction).
pub fn validity_entry(view: &AccountView, secs: u64) -> Result<Vec<AppEntry>> {
    if !(MIN_OCSP_VALIDITY..=MAX_OCSP_VALIDITY).contains(&secs) {
        return Err(PluginError::BadInput(format!(
            "an OCSP validity of {secs} s is out of bounds: from {MIN_OCSP_VALIDITY} s (1h) to {MAX_OCSP_VALIDITY} s (7d)"
        )));
    }
    let pol = SmimePolicy {
        ocsp_validity: Some(secs),
        ..policy(view)?
    };
    Ok(vec![AppEntry::new(APP_POLICY, &pol)])
}

/// `mesh smime reissue`: every certificate issued before now is issued
/// again (same keys), with the status addresses, in the same transaction.
pub fn reissue_entry(view: &AccountView) -> Result<Vec<AppEntry>> {
    let pol = SmimePolicy {
        reissue: Some(now()),
        ..policy(view)?
    };
    Ok(vec![AppEntry::new(APP_POLICY, &pol)])
}

/// `Data` of the `smime-status` entry: what an administrator's sync reads
/// to know when to re-sign, and `Serve`, what the portal serves (it reads
/// `Data.Serve` of any Published entry, PROTOCOL.md §18: a member clients
/// before issue 28 ignore, where a new top-level member would be refused).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusData {
    /// The earliest nextUpdate of the answers (seconds since the Unix epoch).
    #[serde(rename = "NextUpdate")]
    pub next_update: u64,
    /// The validity they were signed with.
    #[serde(rename = "Validity")]
    pub validity: u64,
    /// What the portal serves.
    #[serde(rename = "Serve", default)]
    pub serve: Serve,
}

/// What the portal serves (PROTOCOL.md §18): mesh-core's type, checked by
/// the portal on append.
pub use mesh_core::serve::{Serve, ServedFile as ServeFile, ServedOcsp as ServeOcsp};

/// The `smime-status` entry of `view` (the state after this event's other
/// entries), when something `changed`, the policy's validity differs from
/// the published one, or the published answers are past half their
/// validity; else none.
pub fn status_entry(
    view: &AccountView,
    ca: &P256Signer,
    changed: bool,
) -> Result<Option<AppEntry>> {
    let validity = policy(view)?.validity();
    let t = now();
    let fresh = view
        .app::<StatusData>(APP_STATUS)?
        .is_some_and(|s| s.validity == validity && s.next_update >= t + validity / 2);
    if fresh && !changed {
        return Ok(None);
    }
    let ca_der =
        crate::x509::pem_to_der(&crate::x509::ca_certificate(ca, &view.address).map_err(internal)?)
            .map_err(internal)?;
    let mut serve = Serve::default();
    if let Some(crl) = view.app::<SmimeCrl>(APP_CRL)? {
        serve.files.push(ServeFile {
            name: "smime.crl".into(),
            content_type: "application/pkix-crl".into(),
            body: data_encoding::BASE64
                .encode(&crate::x509::pem_to_der(&crl.crl).map_err(internal)?),
        });
    }
    let mut next_update = u64::MAX;
    for (pem, status) in certificates(view)? {
        let der = crate::x509::pem_to_der(&pem).map_err(internal)?;
        // A certificate of an earlier epoch's CA keeps that CA's last answers.
        if !crate::ocsp::issued_by(ca, &der) {
            continue;
        }
        let a = crate::ocsp::response(ca, &ca_der, &der, status, secs(t), secs(validity))
            .map_err(internal)?;
        next_update = next_update.min(a.next_update);
        serve.ocsp.push(ServeOcsp {
            issuer_key_hash: a.issuer_key_hash,
            serial: a.serial,
            next_update: a.next_update,
            response: data_encoding::BASE64.encode(&a.response),
        });
    }
    let data = StatusData {
        next_update: if serve.ocsp.is_empty() {
            t + validity
        } else {
            next_update
        },
        validity,
        serve,
    };
    Ok(Some(AppEntry::public(APP_STATUS, &data)))
}

fn secs(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// Every certificate the account issued that is current, with what its
/// answer says, as the CRL says it: active devices' signing certificates
/// good, revoked devices' revoked (keyCompromise, when the access list
/// revoked them), the current encryption certificate good, superseded
/// ones revoked (superseded).
fn certificates(view: &AccountView) -> Result<Vec<(String, Status)>> {
    let cert = |udf: &str| view.app::<SmimeCert>(&format!("smime-cert:{udf}"));
    let mut out = Vec::new();
    for (e, _) in view.active(&ROLE) {
        if let Some(c) = cert(&e.device_udf)? {
            out.push((c.certificate, Status::Good));
        }
    }
    let revoked_at = view.access.as_ref().map_or(now(), |l| l.issued);
    for (e, _) in view.revoked() {
        if let Some(c) = cert(&e.device_udf)? {
            let when = secs(revoked_at);
            out.push((
                c.certificate,
                Status::Revoked {
                    when,
                    compromised: true,
                },
            ));
        }
    }
    let epochs = encryption_epochs(view)?;
    if let Some((last, older)) = epochs.split_last() {
        out.push((last.certificate.clone(), Status::Good));
        for e in older {
            let when = secs(now());
            out.push((
                e.certificate.clone(),
                Status::Revoked {
                    when,
                    compromised: false,
                },
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
