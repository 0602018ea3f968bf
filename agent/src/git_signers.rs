//! `mesh ssh allowed-signers`: git's `gpg.ssh.allowedSignersFile` from the
//! account's signed history (ssh-keygen(1), ALLOWED SIGNERS), and a KRL of
//! revoked devices' keys for `gpg.ssh.revocationFile`.
//!
//! Every SSH key a device ever had gets a line valid from its connection's
//! issue time until the access list that rotated it away or revoked the
//! device: git passes the commit's time (`-Overify-time`), so a commit
//! signed before a rotation still verifies after it, and one dated after
//! it with the old key does not. The account's own KRL (`mesh ssh krl`,
//! for sshd) revokes rotated-away keys too, so it must not be git's
//! revocation file: old commits of a rotated key would fail. The KRL
//! written here holds only the keys revoked devices held when they were
//! revoked (a revocation means the key may be in a thief's hands: every
//! signature by it is refused, whatever its date).

use std::path::Path;

use mesh_account::chronicle::KeyHistory;
use mesh_account::AccountError;
use mesh_core::portal::{AccessEntry, DeviceState};
use serde::Serialize;
use ssh_key::public::KeyData;

type Result<T> = std::result::Result<T, AccountError>;

/// One line of the allowed signers file: a key and when it may sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// The device's name (none for a CA line).
    pub device: Option<String>,
    /// The device's UDF (empty for a CA line).
    pub device_udf: String,
    /// The key (the CA key for a `cert-authority` line).
    pub key: KeyData,
    /// Seconds since the Unix epoch from which it signs.
    pub after: u64,
    /// Seconds from which it no longer signs (none: still current).
    pub before: Option<u64>,
    /// The window was closed by the device's revocation.
    pub revoked: bool,
}

/// The key a device holds under an access entry, if it may sign with it
/// then (an active device with the ssh role), with its connection's time.
fn key_under(h: &KeyHistory, a: &AccessEntry) -> Option<(KeyData, u64)> {
    if a.state != DeviceState::Active || !a.roles.contains(&mesh_ssh::channel::ROLE) {
        return None;
    }
    let c = h
        .connections
        .iter()
        .rev()
        .find(|c| c.device_udf == a.device_udf && c.authentication == a.authentication)?;
    Some((mesh_ssh::channel::device_key(c)?, c.issued))
}

/// Every device key's window, from the access lists in order: a window
/// opens when a list first names the key (at its connection's issue time;
/// at the list's time when a revoked device is restored) and closes at the
/// list that rotates the key away, revokes the device or drops its ssh role.
pub fn device_windows(h: &KeyHistory) -> Vec<Window> {
    let mut out: Vec<Window> = Vec::new();
    let mut open: std::collections::BTreeMap<String, usize> = Default::default();
    for list in &h.access {
        // A device a list no longer names stops signing there.
        let gone: Vec<String> = open
            .keys()
            .filter(|u| list.device(u).is_none())
            .cloned()
            .collect();
        for u in gone {
            if let Some(i) = open.remove(&u) {
                close(&mut out[i], list.issued);
            }
        }
        for a in &list.devices {
            let now = key_under(h, a);
            let cur = open.get(&a.device_udf).map(|&i| &out[i].key);
            if cur == now.as_ref().map(|n| &n.0) {
                continue;
            }
            if let Some(i) = open.remove(&a.device_udf) {
                close(&mut out[i], list.issued);
                out[i].revoked = a.state == DeviceState::Revoked;
            }
            let Some((key, issued)) = now else { continue };
            let again = out
                .iter()
                .any(|w| w.device_udf == a.device_udf && w.key == key);
            open.insert(a.device_udf.clone(), out.len());
            out.push(Window {
                device: Some(a.name.clone()),
                device_udf: a.device_udf.clone(),
                key,
                after: if again { list.issued } else { issued },
                before: None,
                revoked: false,
            });
        }
    }
    out
}

/// End a window at `at`. Times have a resolution of one second and
/// ssh-keygen refuses a line whose valid-before is not after its
/// valid-after: a key replaced within the second it was issued in keeps
/// that second (what it signed then still verifies).
fn close(w: &mut Window, at: u64) {
    w.before = Some(at.max(w.after + 1));
}

/// A `cert-authority` window per administrator epoch's SSH CA.
pub fn ca_windows(h: &KeyHistory) -> Vec<Window> {
    let mut out = Vec::new();
    for (i, (from, claims)) in h.epochs.iter().enumerate() {
        let Some(key) = mesh_ssh::channel::ca_of(claims).ok().flatten() else {
            continue;
        };
        out.push(Window {
            device: None,
            device_udf: String::new(),
            key,
            after: *from,
            before: h.epochs.get(i + 1).map(|n| n.0.max(from + 1)),
            revoked: false,
        });
    }
    out
}

/// The keys revoked devices held when they were revoked, for those still
/// revoked in the latest access list (a restored device's key is not).
pub fn revoked_keys(h: &KeyHistory, windows: &[Window]) -> Vec<KeyData> {
    let Some(last) = h.access.last() else {
        return Vec::new();
    };
    windows
        .iter()
        .filter(|w| w.revoked)
        .filter(|w| {
            last.device(&w.device_udf)
                .is_some_and(|a| a.state == DeviceState::Revoked)
        })
        .map(|w| w.key.clone())
        .collect()
}

/// A time as ssh-keygen's allowed signers take it: `YYYYMMDDHHMMSSZ`, UTC.
pub fn stamp(secs: u64) -> String {
    let t = i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A principal from a device name: no whitespace, commas, quotes or
/// pattern characters (ssh-keygen reads the field as a pattern list).
fn principal_part(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_whitespace() || matches!(c, ',' | '"' | '*' | '?' | '!' | '#') {
                '-'
            } else {
                c
            }
        })
        .collect()
}

/// One line. A device key's principals are `DEVICE@ADDRESS,ADDRESS`: git
/// shows the first that matches (`Good "git" signature for
/// phone@alice@example.com`), and `-I ADDRESS` matches every device. A CA
/// line's principal is `*`: every certificate the account's CA issued is
/// for one of its devices, under the login names it names.
pub fn line(address: &str, w: &Window) -> String {
    let mut opts = Vec::new();
    let (principals, comment) = match &w.device {
        Some(d) => (
            format!("{}@{address},{address}", principal_part(d)),
            format!("{d}@{address} (mesh)"),
        ),
        None => {
            opts.push("cert-authority".to_string());
            ("*".to_string(), format!("mesh-ca:{address}"))
        }
    };
    opts.push("namespaces=\"git\"".into());
    opts.push(format!("valid-after=\"{}\"", stamp(w.after)));
    if let Some(b) = w.before {
        opts.push(format!("valid-before=\"{}\"", stamp(b)));
    }
    format!(
        "{principals} {} {}",
        opts.join(","),
        mesh_ssh::cert::key_line(&w.key, &comment)
    )
}

/// The whole file: a header, the device keys, then the CA lines.
pub fn allowed_signers(address: &str, devices: &[Window], cas: &[Window]) -> String {
    let mut s = format!(
        "# git allowed signers of {address}, written by `mesh ssh allowed-signers`:\n\
         # every key a device of the account had, valid from its issue until its\n\
         # rotation or revocation (UTC).\n"
    );
    for w in devices.iter().chain(cas) {
        s.push_str(&line(address, w));
        s.push('\n');
    }
    s
}

/// What `mesh ssh allowed-signers` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Written {
    /// The allowed signers file's text.
    #[serde(skip)]
    pub text: String,
    /// Device key lines.
    pub keys: usize,
    /// CA lines.
    pub cas: usize,
    /// Keys in the revocation KRL.
    pub revoked: usize,
}

/// The allowed signers of the account pinned to `profile_udf`, and, when
/// `krl` is given, git's revocation KRL written there. With `cache`, the
/// read is also checked against (and renews) the cache a server keeps for
/// `mesh ssh krl --account`: a portal that rolls the account back behind
/// it is refused.
pub fn write(
    profile_udf: &str,
    portal: &str,
    cache: Option<&Path>,
    krl: Option<&Path>,
) -> Result<Written> {
    crate::servers::check_profile_udf(profile_udf)?;
    let floor = match cache {
        Some(_) => Some(crate::servers::fresh_view(profile_udf, portal, cache)?),
        None => None,
    };
    let h = mesh_account::chronicle::key_history(portal, profile_udf)?;
    let serial = h.access.last().map_or(0, |a| a.serial);
    if let Some(v) = floor.filter(|v| v.serial() > serial) {
        return Err(AccountError::Untrusted(format!(
            "the portal served access list {serial}, behind the {} the cache holds",
            v.serial()
        )));
    }
    let devices = device_windows(&h);
    let cas = ca_windows(&h);
    let revoked = revoked_keys(&h, &devices);
    if let Some(out) = krl {
        let ca = cas.last().map(|w| w.key.clone()).ok_or_else(|| {
            AccountError::Untrusted("the account's history names no SSH CA".into())
        })?;
        let bytes = mesh_ssh::cert::krl(
            &ca,
            &[],
            &revoked,
            serial,
            mesh_account::client::now(),
            &format!("mesh git revocations: {}", h.address),
        );
        crate::servers::write_public(out, &bytes)?;
    }
    Ok(Written {
        text: allowed_signers(&h.address, &devices, &cas),
        keys: devices.len(),
        cas: cas.len(),
        revoked: revoked.len(),
    })
}

#[cfg(test)]
#[path = "git_signers_tests.rs"]
mod tests;
