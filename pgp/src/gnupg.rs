//! GnuPG: provision the account's certificate and this device's secrets
//! into GnuPG homes, keep every home Mesh installed to current, remove the
//! secrets on revocation; and the Web Key Directory.

use std::path::{Path, PathBuf};

use mesh_plugins::{AccountView, DeviceHost, PluginError};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub use crate::entries::check_cert;
use crate::entries::{cert, pgp_err, published_content, PgpCert};
use crate::export::export_secret_bytes;

type Result<T> = std::result::Result<T, PluginError>;

/// One GnuPG home Mesh installed to, and the content it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Home {
    /// `None`: GnuPG's default home.
    gnupghome: Option<PathBuf>,
    content: String,
}

/// The channel's local record: every home, and the primary fingerprint
/// (what a wipe removes, when the account's data is gone).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Record {
    primary: String,
    homes: Vec<Home>,
    /// Primaries of earlier administrator epochs whose secret subkeys a
    /// home may still hold (a wipe removes them too).
    #[serde(default)]
    older: Vec<String>,
}

const RECORD: &str = "pgp";

fn record(device: &dyn DeviceHost) -> Record {
    device
        .local(RECORD)
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

fn save(device: &dyn DeviceHost, r: &Record) -> Result<()> {
    device.set_local(RECORD, Some(&serde_json::to_value(r).unwrap_or_default()))
}

/// What to do when gpg fails or is missing.
#[cfg(not(windows))]
const GPG_HINT: &str = "install GnuPG (apt-get install gnupg) and check the GnuPG home";
#[cfg(windows)]
const GPG_HINT: &str = "install Gpg4win (https://www.gpg4win.org/), or put gpg.exe on PATH, and check the GnuPG home (%APPDATA%\\gnupg, or GNUPGHOME)";

fn gpg(home: Option<&Path>, args: &[&str], input: &[u8]) -> Result<String> {
    use std::io::Write;
    let tool = |detail: String| PluginError::Tool {
        tool: "gpg".into(),
        detail,
        hint: GPG_HINT,
    };
    // On Windows, Gpg4win's gpg.exe: PATH, then the registry (gpg_exe.rs).
    let mut c = std::process::Command::new(crate::gpg_exe::program());
    if let Some(h) = home {
        c.arg("--homedir").arg(h);
    }
    let mut child = c
        .args([
            "--batch",
            "--no-tty",
            "--yes",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| tool(format!("cannot run gpg: {e}")))?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(input).map_err(|e| tool(e.to_string()))?;
    }
    let o = child.wait_with_output().map_err(|e| tool(e.to_string()))?;
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).to_string())
    } else {
        Err(tool(String::from_utf8_lossy(&o.stderr).trim().to_string()))
    }
}

/// `mesh pgp install`: import the certificate and this device's secrets
/// (or, with `from`, an export made elsewhere, binary or armored) into
/// GnuPG, batch, and trust the account's own key. The home is remembered,
/// with every other one, so that the agent keeps all of them current.
pub fn install(
    device: &dyn DeviceHost,
    view: &AccountView,
    gnupghome: Option<&Path>,
    from: Option<&[u8]>,
) -> Result<String> {
    let tsk: Zeroizing<Vec<u8>> = match from {
        // An export made elsewhere: it must be this account's, untampered.
        Some(data) => {
            check_export(view, data)?;
            Zeroizing::new(data.to_vec())
        }
        None => export_secret_bytes(device, view, false)?,
    };
    let fpr = check_cert(view, cert(view)?.as_bytes())?
        .fingerprint()
        .to_hex();
    // Recorded before the import, as not current: a crash in between still
    // leaves the home known, so that a revocation wipes it and the next sync
    // completes it.
    remember(device, &fpr, gnupghome, String::new())?;
    gpg(gnupghome, &["--import"], &tsk)?;
    // Earlier epochs' certificates, revoked: a keyring that holds one
    // learns it is compromised.
    if let Some(p) = view.app::<PgpCert>("pgp")? {
        for r in &p.retired {
            gpg(gnupghome, &["--import"], r.as_bytes())?;
        }
    }
    gpg(
        gnupghome,
        &["--import-ownertrust"],
        format!("{fpr}:6:\n").as_bytes(),
    )?;
    remember(
        device,
        &fpr,
        gnupghome,
        published_content(view)?.unwrap_or_default(),
    )?;
    Ok(fpr)
}

/// On a machine with no Mesh home: import `data` (an export from
/// `mesh pgp export-secret`) into GnuPG once it is checked to be the
/// account's of `view` (a view verified from the portal's public stores).
/// Nothing is recorded: no Mesh agent here wipes it on a revocation.
pub fn install_export(view: &AccountView, gnupghome: Option<&Path>, data: &[u8]) -> Result<String> {
    check_export(view, data)?;
    // The profile (verified, of the current epoch) names the primary key.
    let fpr = check_cert(view, data)?.fingerprint().to_hex();
    gpg(gnupghome, &["--import"], data)?;
    gpg(
        gnupghome,
        &["--import-ownertrust"],
        format!("{fpr}:6:\n").as_bytes(),
    )?;
    Ok(fpr)
}

/// An export made elsewhere (binary or armored): it must parse as
/// OpenPGP, hold secret keys, and be this account's, untampered.
fn check_export(view: &AccountView, data: &[u8]) -> Result<()> {
    use sequoia_openpgp::parse::Parse;
    let c = sequoia_openpgp::Cert::from_bytes(data)
        .map_err(|e| PluginError::BadInput(format!("not an OpenPGP export: {e}")))?;
    if !c.is_tsk() {
        return Err(PluginError::BadInput(
            "not an OpenPGP export: it holds no secret keys (a certificate only)".into(),
        ));
    }
    check_cert(view, data).map_err(|e| match e {
        PluginError::Untrusted(d) => {
            PluginError::BadInput(format!("not an OpenPGP export of this account: {d}"))
        }
        other => other,
    })?;
    Ok(())
}

/// Record a home and the content it holds (replacing its earlier record).
fn remember(
    device: &dyn DeviceHost,
    fpr: &str,
    gnupghome: Option<&Path>,
    content: String,
) -> Result<()> {
    let mut r = record(device);
    if !r.primary.is_empty() && r.primary != fpr && !r.older.contains(&r.primary) {
        let old = std::mem::take(&mut r.primary);
        r.older.push(old);
    }
    r.primary = fpr.to_string();
    let home = Home {
        gnupghome: gnupghome.map(Path::to_path_buf),
        content,
    };
    r.homes.retain(|h| h.gnupghome != home.gnupghome);
    r.homes.push(home);
    save(device, &r)
}

/// After a sync: re-install into every home whose content is behind.
pub fn refresh(device: &dyn DeviceHost, view: &AccountView) -> Result<Vec<String>> {
    let r = record(device);
    let Some(current) = published_content(view)? else {
        return Ok(Vec::new());
    };
    let mut done = Vec::new();
    for h in r.homes.iter().filter(|h| h.content != current) {
        install(device, view, h.gnupghome.as_deref(), None)?;
        done.push(format!(
            "GnuPG home {} updated",
            show(h.gnupghome.as_deref())
        ));
    }
    Ok(done)
}

fn show(home: Option<&Path>) -> String {
    home.map(|p| p.display().to_string())
        .unwrap_or_else(|| "(default)".into())
}

/// On revocation: delete the account's secret keys (this device's signing
/// subkey and every shared decryption subkey; the primary is only a stub)
/// from every home Mesh installed to. The public certificate stays, so
/// that signatures still verify and the revocations show.
pub fn wipe(device: &dyn DeviceHost) -> Result<Vec<String>> {
    let r = record(device);
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for h in &r.homes {
        let home = h.gnupghome.as_deref();
        let mut deleted = Ok(0);
        for primary in std::iter::once(&r.primary).chain(&r.older) {
            deleted = match (deleted, delete_secret_subkeys(home, primary)) {
                (Ok(a), Ok(b)) => Ok(a + b),
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
        }
        match deleted {
            Ok(n) => done.push(format!(
                "{n} secret subkey(s) deleted from GnuPG home {}",
                show(home)
            )),
            Err(e) => failed.push(format!("{}: {e}", show(home))),
        }
    }
    if !failed.is_empty() {
        // Keep the record: the next attempt tries again.
        return Err(PluginError::Tool {
            tool: "gpg".into(),
            detail: failed.join("; "),
            hint: GPG_HINT,
        });
    }
    device.set_local(RECORD, None)?;
    Ok(done)
}

/// Delete every secret subkey of `primary` in a home (GnuPG cannot delete
/// a key whose primary is a stub as a whole: each subkey goes by its
/// fingerprint with `!`).
fn delete_secret_subkeys(home: Option<&Path>, primary: &str) -> Result<usize> {
    let listing = match gpg(home, &["--with-colons", "--list-secret-keys", primary], b"") {
        Ok(l) => l,
        Err(PluginError::Tool { detail, .. })
            if detail.contains("No secret key") || detail.contains("not found") =>
        {
            return Ok(0)
        }
        Err(e) => return Err(e),
    };
    // An `ssb` record whose field 15 is `#` is a stub; its `fpr` follows it.
    let mut secret = false;
    let mut subkeys = Vec::new();
    for line in listing.lines() {
        let f: Vec<&str> = line.split(':').collect();
        match f.first() {
            Some(&"ssb") => secret = f.get(14).is_some_and(|t| *t != "#"),
            Some(&"sec") => secret = false,
            Some(&"fpr") if secret => {
                subkeys.extend(f.get(9).map(|x| format!("{x}!")));
                secret = false;
            }
            _ => {}
        }
    }
    for s in &subkeys {
        gpg(home, &["--delete-secret-keys", s], b"")?;
    }
    Ok(subkeys.len())
}

/// z-base-32 (the WKD encoding of the local part's SHA-1), hand-written: 12 lines.
fn zbase32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";
    let mut out = String::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in data {
        acc = (acc << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(
                ALPHABET[usize::try_from((acc >> bits) & 31).unwrap_or(0)],
            ));
        }
    }
    if bits > 0 {
        out.push(char::from(
            ALPHABET[usize::try_from((acc << (5 - bits)) & 31).unwrap_or(0)],
        ));
    }
    out
}

/// `mesh pgp wkd`: the file name under `.well-known/openpgpkey/hu/` for
/// the account's address, and the binary certificate to put there
/// (draft-koch-openpgp-webkey-service, direct method).
pub fn wkd(view: &AccountView) -> Result<(String, Vec<u8>)> {
    use sequoia_openpgp::serialize::SerializeInto;
    use sha1::Digest;
    let c = check_cert(view, cert(view)?.as_bytes())?;
    let local = view.address.split('@').next().unwrap_or("").to_lowercase();
    Ok((
        zbase32(&sha1::Sha1::digest(local.as_bytes())),
        c.to_vec().map_err(pgp_err)?,
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn zbase32_matches_the_wkd_draft_example() {
        // draft-koch-openpgp-webkey-service §3.1: "Joe.Doe" -> iy9q119eutrkn8s1mk4r39qejnbu3n5q
        use sha1::Digest;
        assert_eq!(
            super::zbase32(&sha1::Sha1::digest(b"joe.doe")),
            "iy9q119eutrkn8s1mk4r39qejnbu3n5q"
        );
    }
}
