//! NSS databases (Thunderbird's key store): install this device's S/MIME
//! keys with the account's CA trusted for e-mail only, keep every database
//! Mesh installed to current, and remove the keys on revocation.

use std::path::{Path, PathBuf};
use std::process::Command;

use mesh_plugins::{AccountView, DeviceHost, PluginError};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use zeroize::Zeroizing;

use crate::device::{ca_pem, cert_pem, held_keys};

type Result<T> = std::result::Result<T, PluginError>;

/// The CA's nickname in the database.
const CA_NICK: &str = "Mesh personal CA";
const RECORD: &str = "smime";

/// One database Mesh installed to, and the content it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Db {
    path: PathBuf,
    content: String,
}

/// The channel's local record.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Record {
    /// The account's address: what names our keys and certificates.
    address: String,
    dbs: Vec<Db>,
}

fn record(device: &dyn DeviceHost) -> Record {
    device
        .local(RECORD)
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

fn run(cmd: &mut Command) -> Result<String> {
    let tool = cmd.get_program().to_string_lossy().to_string();
    let o = cmd.output().map_err(|e| PluginError::Tool {
        tool: tool.clone(),
        detail: format!("cannot run it: {e}"),
    })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    if o.status.success() {
        Ok(text)
    } else {
        Err(PluginError::Tool {
            tool,
            detail: text.trim().to_string(),
        })
    }
}

fn sql(db: &Path) -> String {
    format!("sql:{}", db.display())
}

/// What this device should have in a database: its signing certificate and
/// every encryption epoch it holds.
fn content(device: &dyn DeviceHost, view: &AccountView) -> Result<String> {
    let mut h = sha2::Sha256::new();
    h.update(cert_pem(device, view)?.as_bytes());
    for (_, cert) in held_keys(device, view)? {
        h.update(&cert);
    }
    Ok(data_encoding::HEXLOWER.encode(&h.finalize()))
}

/// `mesh smime install --nssdb DIR`: import this device's S/MIME keys (its
/// signing key, every encryption epoch it holds) into an NSS database as
/// Thunderbird keeps one, with the account's CA trusted for e-mail only.
/// The PKCS#12 file in between and its random password live in the 0700
/// home and are removed whatever happens.
pub fn install(device: &dyn DeviceHost, view: &AccountView, nssdb: &Path) -> Result<String> {
    // The agent runs elsewhere: remember where, absolutely.
    let nssdb = &std::path::absolute(nssdb).map_err(PluginError::io(nssdb.display()))?;
    let db = sql(nssdb);
    if !nssdb.join("cert9.db").exists() {
        std::fs::create_dir_all(nssdb).map_err(PluginError::io(nssdb.display()))?;
        run(Command::new("certutil").args(["-N", "-d", &db, "--empty-password"]))?;
    }
    // Recorded before anything is imported, as not current: a crash in
    // between still leaves the database known, so that a revocation wipes
    // it and the next sync completes it.
    remember(device, view, nssdb, String::new())?;
    // Only the current CA stays trusted: an earlier administrator epoch's
    // CA may be in a revoked administrator's hands.
    delete_certs(&db, |l| l.starts_with(CA_NICK))?;
    let ca = device.home().join(".smime-ca.pem");
    write_private(&ca, ca_pem(view)?.as_bytes())?;
    let r = run(Command::new("certutil")
        .args(["-A", "-d", &db, "-n", CA_NICK, "-t", ",C,", "-a", "-i"])
        .arg(&ca));
    let _ = std::fs::remove_file(&ca);
    r?;
    let mut pw = [0u8; 18];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut pw);
    let pw = Zeroizing::new(mesh_core::b64::encode(&pw));
    let p12 = crate::device::export(device, view, &pw, crate::P12Profile::Transient)?;
    let file = device.home().join(".smime-install.p12");
    // The password goes through a 0600 file, not the command line (which
    // other processes can read).
    let pwfile = device.home().join(".smime-install.pw");
    write_private(&file, &p12)?;
    write_private(&pwfile, pw.as_bytes())?;
    let r = run(Command::new("pk12util")
        .args(["-d", &db, "-K", "", "-w"])
        .arg(&pwfile)
        .arg("-i")
        .arg(&file));
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&pwfile);
    let out = r?;
    remember(device, view, nssdb, content(device, view)?)?;
    Ok(out)
}

/// Record a database and the content it holds (replacing its earlier record).
fn remember(
    device: &dyn DeviceHost,
    view: &AccountView,
    path: &Path,
    content: String,
) -> Result<()> {
    let mut rec = record(device);
    rec.address = view.address.clone();
    rec.dbs.retain(|d| d.path != path);
    rec.dbs.push(Db {
        path: path.to_path_buf(),
        content,
    });
    device.set_local(
        RECORD,
        Some(&serde_json::to_value(&rec).unwrap_or_default()),
    )
}

fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    o.mode(0o600);
    let mut f = o.open(path).map_err(PluginError::io(path.display()))?;
    f.write_all(data).map_err(PluginError::io(path.display()))
}

/// After a sync: re-install into every database whose content is behind
/// (a new encryption epoch, a new certificate).
pub fn refresh(device: &dyn DeviceHost, view: &AccountView) -> Result<Vec<String>> {
    let rec = record(device);
    if rec.dbs.is_empty() {
        return Ok(Vec::new());
    }
    let now = content(device, view)?;
    let mut done = Vec::new();
    for d in rec.dbs.iter().filter(|d| d.content != now) {
        install(device, view, &d.path)?;
        done.push(format!("NSS database {} updated", d.path.display()));
    }
    Ok(done)
}

/// Key ids (`certutil -K`) whose nickname names the account.
fn our_keys(db: &str, address: &str) -> Result<Vec<String>> {
    let out = match run(Command::new("certutil").args(["-K", "-d", db])) {
        Ok(o) => o,
        // "no keys found" is an error exit.
        Err(PluginError::Tool { detail, .. }) if detail.contains("no keys found") => {
            return Ok(Vec::new())
        }
        Err(e) => return Err(e),
    };
    Ok(out
        .lines()
        .filter(|l| l.starts_with('<') && l.contains(address))
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_string))
        .collect())
}

/// Delete every certificate whose `certutil -L` line `matches`. Several
/// certificates may share a nickname: delete until none is left.
fn delete_certs(db: &str, matches: impl Fn(&str) -> bool) -> Result<()> {
    for _ in 0..64 {
        let out = run(Command::new("certutil").args(["-L", "-d", db]))?;
        let Some(n) = out.lines().filter(|l| matches(l)).find_map(|l| {
            l.trim_end()
                .rsplit_once(char::is_whitespace)
                .map(|(n, _)| n.trim().to_string())
        }) else {
            return Ok(());
        };
        run(Command::new("certutil").args(["-D", "-d", db, "-n", &n]))?;
    }
    Ok(())
}

/// On revocation: delete this account's keys and certificates, and the
/// account's CA, from every database Mesh installed to.
pub fn wipe(device: &dyn DeviceHost) -> Result<Vec<String>> {
    let rec = record(device);
    let mut done = Vec::new();
    for d in &rec.dbs {
        let db = sql(&d.path);
        for id in our_keys(&db, &rec.address)? {
            run(Command::new("certutil").args(["-F", "-d", &db, "-k", &id]))?;
        }
        let address = rec.address.clone();
        delete_certs(&db, |l| l.contains(&address) || l.starts_with(CA_NICK))?;
        done.push(format!(
            "keys and certificates deleted from NSS database {}",
            d.path.display()
        ));
    }
    device.set_local(RECORD, None)?;
    Ok(done)
}
