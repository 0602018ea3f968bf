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

/// What to do when an NSS tool fails or is missing.
const NSS_HINT: &str =
    "install the NSS tools (apt-get install libnss3-tools) and check the database directory";

fn run(cmd: &mut Command) -> Result<String> {
    let tool = cmd.get_program().to_string_lossy().to_string();
    let o = cmd.output().map_err(|e| PluginError::Tool {
        tool: tool.clone(),
        detail: format!("cannot run it: {e}"),
        hint: NSS_HINT,
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
            hint: NSS_HINT,
        })
    }
}

fn sql(db: &Path) -> String {
    format!("sql:{}", db.display())
}

/// What this device should have in a database: its signing certificate and
/// every encryption epoch it holds, under the names of PROTOCOL.md §12
/// (the version tag re-installs databases an older Mesh named otherwise).
fn content(device: &dyn DeviceHost, view: &AccountView) -> Result<String> {
    let mut h = sha2::Sha256::new();
    h.update(b"names: epoch\n");
    h.update(cert_pem(device, view)?.as_bytes());
    for k in held_keys(device, view)? {
        h.update(&k.cert);
        h.update([u8::from(k.current)]);
    }
    Ok(data_encoding::HEXLOWER.encode(&h.finalize()))
}

/// `mesh smime install --nssdb DIR`: import this device's S/MIME keys (its
/// signing key, every encryption epoch it holds) into an NSS database as
/// Thunderbird keeps one, with the account's CA trusted for e-mail only,
/// each certificate under its own nickname. What an earlier install left
/// and is superseded (a signing certificate or CA of an earlier
/// administrator epoch) is removed.
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
    // Ours go, and the current set comes back from the PKCS#12 file: so
    // nothing superseded stays (a re-issued signing certificate, an
    // imported organisation's one), while every encryption epoch this
    // device holds, which old mail needs, is imported again. Only the current CA stays
    // trusted: an earlier administrator epoch's CA may be in a revoked
    // administrator's hands.
    purge(&db, &view.address)?;
    let ca = device.home().join(".smime-ca.pem");
    write_private(&ca, ca_pem(view)?.as_bytes())?;
    let r = run(Command::new("certutil")
        .args(["-A", "-d", &db, "-n", CA_NICK, "-t", ",C,", "-a", "-i"])
        .arg(&ca));
    let _ = std::fs::remove_file(&ca);
    r?;
    add_named(device, view, &db)?;
    let out = import(device, view, &db)?;
    remember(device, view, nssdb, content(device, view)?)?;
    Ok(out)
}

/// Import this device's keys through a transient PKCS#12 file. The file
/// and its random password live in the 0700 home and are removed whatever
/// happens; the password goes through a 0600 file, not the command line
/// (which other processes can read).
fn import(device: &dyn DeviceHost, view: &AccountView, db: &str) -> Result<String> {
    let mut pw = [0u8; 18];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut pw);
    let pw = Zeroizing::new(mesh_core::b64::encode(&pw));
    let p12 = crate::device::export(device, view, &pw, crate::x509::P12Profile::Transient)?;
    let file = device.home().join(".smime-install.p12");
    let pwfile = device.home().join(".smime-install.pw");
    let r = write_private(&file, &p12)
        .and_then(|()| write_private(&pwfile, pw.as_bytes()))
        .and_then(|()| {
            run(Command::new("pk12util")
                .args(["-d", db, "-K", "", "-w"])
                .arg(&pwfile)
                .arg("-i")
                .arg(&file))
        });
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&pwfile);
    r
}

/// Add this device's certificates under their names (PROTOCOL.md §12)
/// before pk12util imports the keys: pk12util would name each by its
/// PKCS#12 bag, which p12-keystore names by subject, and it gives a key the
/// nickname its certificate already has. (Encryption certificates an older
/// Mesh issued share one subject: their keys all take the first one's
/// name, while each certificate keeps its own.)
fn add_named(device: &dyn DeviceHost, view: &AccountView, db: &str) -> Result<()> {
    let signing = crate::x509::pem_to_der(&cert_pem(device, view)?)
        .map_err(|e| PluginError::Untrusted(e.to_string()))?;
    let mut want = vec![(signing, crate::x509::signing_name(&view.address))];
    for k in held_keys(device, view)? {
        want.push((
            k.cert,
            crate::x509::encryption_name(&view.address, k.epoch, k.current),
        ));
    }
    let file = device.home().join(".smime-cert.der");
    for (der, name) in want {
        let r = write_private(&file, &der).and_then(|()| {
            run(Command::new("certutil")
                .args(["-A", "-d", db, "-n", &name, "-t", ",,", "-i"])
                .arg(&file))
        });
        let _ = std::fs::remove_file(&file);
        r?;
    }
    Ok(())
}

/// The nicknames `certutil -L` lists (each line: nickname, then the trust
/// flags in the last column).
fn nicknames(db: &str) -> Result<Vec<String>> {
    let out = run(Command::new("certutil").args(["-L", "-d", db]))?;
    Ok(out
        .lines()
        .filter_map(|l| {
            l.trim_end()
                .rsplit_once(char::is_whitespace)
                .map(|(n, _)| n.trim().to_string())
        })
        .collect())
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

/// Whether a nickname is one Mesh gave (`<address> (…)`, PROTOCOL.md §12),
/// or one an older Mesh left (`CN=<address> (…)`).
fn ours(nick: &str, address: &str) -> bool {
    nick.strip_prefix("CN=")
        .unwrap_or(nick)
        .starts_with(&format!("{address} ("))
}

/// Key ids (`certutil -K`) whose nickname names the account. A line is
/// `<N> ALG ID NICKNAME`, and N takes the whole `<…>` from 10 on.
fn our_keys(db: &str, address: &str) -> Result<Vec<String>> {
    let out = match run(Command::new("certutil").args(["-K", "-d", db])) {
        Ok(o) => o,
        // "no keys found" is an error exit.
        Err(PluginError::Tool { detail, .. }) if detail.contains("no keys found") => {
            return Ok(Vec::new())
        }
        Err(e) => return Err(e),
    };
    Ok(key_ids(&out, address))
}

fn key_ids(listing: &str, address: &str) -> Vec<String> {
    listing
        .lines()
        .filter(|l| l.starts_with('<'))
        .filter_map(|l| {
            let (_, rest) = l.split_once('>')?;
            let mut f = rest.split_whitespace();
            let id = f.nth(1)?;
            let nick = f.collect::<Vec<_>>().join(" ");
            ours(&nick, address).then(|| id.to_string())
        })
        .collect()
}

/// Delete every certificate whose nickname `matches`. Several
/// certificates may share a nickname: delete until none is left.
fn delete_certs(db: &str, matches: impl Fn(&str) -> bool) -> Result<()> {
    for _ in 0..256 {
        let Some(n) = nicknames(db)?.into_iter().find(|n| matches(n)) else {
            return Ok(());
        };
        run(Command::new("certutil").args(["-D", "-d", db, "-n", &n]))?;
    }
    Ok(())
}

/// Delete this account's keys and certificates and the account's CA.
fn purge(db: &str, address: &str) -> Result<()> {
    for id in our_keys(db, address)? {
        run(Command::new("certutil").args(["-F", "-d", db, "-k", &id]))?;
    }
    delete_certs(db, |n| ours(n, address) || n.starts_with(CA_NICK))
}

/// On revocation: delete this account's keys and certificates, and the
/// account's CA, from every database Mesh installed to.
pub fn wipe(device: &dyn DeviceHost) -> Result<Vec<String>> {
    let rec = record(device);
    let mut done = Vec::new();
    for d in &rec.dbs {
        purge(&sql(&d.path), &rec.address)?;
        done.push(format!(
            "keys and certificates deleted from NSS database {}",
            d.path.display()
        ));
    }
    device.set_local(RECORD, None)?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_read_every_line_of_certutil_k() {
        // From the eleventh key on the index fills the brackets.
        let listing = "certutil: Checking token \"NSS Certificate DB\"\n\
            < 9> rsa      aa11   a@b.example (retired encryption epoch 8)\n\
            <10> rsa      bb22   CN=a@b.example (encryption)\n\
            <11> ec       cc33   a@b.example (signing)\n\
            <12> rsa      dd44   (orphan)\n\
            <13> rsa      ee55   xa@b.example (signing)\n";
        assert_eq!(key_ids(listing, "a@b.example"), ["aa11", "bb22", "cc33"]);
    }
}
