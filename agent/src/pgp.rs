//! OpenPGP for a Mesh account: administrators keep the account certificate
//! current in the Application store; devices export their secrets and
//! provision GnuPG (docs/DESIGN.md, PROTOCOL.md §13).

use mesh_core::derive::{key_name, KeyAlg, Seed};
use mesh_core::envelope::Encrypted;
use mesh_core::keys::PublicKey;
use mesh_core::objects::{CatalogedDevice, ConnectionDevice, Role};
use mesh_core::portal::DeviceState;
use mesh_pgp::{Revocation, Subkey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::account::{self, app_entry as app, app_envelope as entry, AccountError, AccountState};
use crate::client::now;
use crate::store::Store;

type Result<T> = std::result::Result<T, AccountError>;

const CT_PGP_KEY: &str = "OpenpgpSubkey";

/// The published certificate (`pgp`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PgpCert {
    /// ASCII-armored certificate.
    #[serde(rename = "Certificate")]
    pub certificate: String,
}

/// A wrapped subkey secret (`pgp-key:<device UDF>` or `pgp-enc:<epoch>`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PgpSubkey {
    /// Creation time of the subkey (seconds since the epoch).
    #[serde(rename = "Created")]
    pub created: u64,
    /// Encryption epoch (encryption subkeys).
    #[serde(rename = "Epoch", default)]
    pub epoch: u32,
    /// The 32-byte secret, encrypted.
    #[serde(rename = "EnvelopedKey")]
    pub key: Encrypted,
}

fn primary_secret(seed: &Seed) -> Zeroizing<[u8; 32]> {
    seed.derive(
        KeyAlg::Ed25519,
        &key_name("Complete", "Account", "Openpgp", 0),
    )
}

/// The fingerprint of the account's OpenPGP primary key (in the profile).
pub fn fingerprint(seed: &Seed) -> std::result::Result<String, mesh_pgp::PgpError> {
    Ok(mesh_pgp::primary_key(&primary_secret(seed))?
        .fingerprint()
        .to_hex())
}

/// Parse and check a certificate: it must be the account's (the primary
/// key the signed profile names), every signature must hold under
/// Sequoia's standard policy, and it must carry the account's address.
pub fn check_cert(a: &AccountState, data: &[u8]) -> Result<sequoia_openpgp::Cert> {
    use sequoia_openpgp::parse::Parse;
    let profile = a.profile()?;
    let want = profile.openpgp_fingerprint.ok_or_else(|| {
        AccountError::NotFound("this account's profile names no OpenPGP key".into())
    })?;
    let c = sequoia_openpgp::Cert::from_bytes(data)
        .map_err(|e| AccountError::Untrusted(format!("OpenPGP certificate: {e}")))?;
    if c.fingerprint().to_hex() != want {
        return Err(AccountError::Untrusted(format!(
            "OpenPGP certificate {} is not this account's ({want})",
            c.fingerprint().to_hex()
        )));
    }
    let policy = sequoia_openpgp::policy::StandardPolicy::new();
    let vc = c
        .with_policy(&policy, None)
        .map_err(|e| AccountError::Untrusted(format!("OpenPGP certificate {want}: {e}")))?;
    if !vc
        .userids()
        .any(|u| String::from_utf8_lossy(u.userid().value()).contains(&a.address))
    {
        return Err(AccountError::Untrusted(format!(
            "OpenPGP certificate {want} lacks {}",
            a.address
        )));
    }
    Ok(c)
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

fn pgp_err(e: mesh_pgp::PgpError) -> AccountError {
    AccountError::Usage(e.to_string())
}

fn user_id(a: &AccountState) -> Result<String> {
    let p = a.profile()?;
    Ok(match p.description {
        Some(name) => format!("{name} <{}>", a.address),
        None => format!("<{}>", a.address),
    })
}

/// Administrators: issue signing subkeys to new `pgp` devices, keep the
/// shared encryption subkey (a new one when a holder was revoked) and
/// republish the certificate when it changed.
pub fn maintain(store: &mut Store) -> Result<usize> {
    account::admin_write(store, |a, admin| {
        let Some(list) = a.access_list()? else {
            return Ok((Vec::new(), 0));
        };
        let profile = a.profile()?;
        let seed = admin.seed();
        let t = now();
        let mut envelopes = Vec::new();
        let mut fresh: std::collections::BTreeMap<String, PgpSubkey> = Default::default();
        let mut recipients: Vec<PublicKey> =
            vec![admin.admin_encrypt.public_key(), admin.escrow.public_key()];
        for d in list
            .devices
            .iter()
            .filter(|d| d.state == DeviceState::Active && d.roles.contains(&Role::Pgp))
        {
            let Some(env) = a.devices.get(&d.device_udf) else {
                continue;
            };
            let cat: CatalogedDevice = env.unverified_object("catalog entry")?;
            let conn = ConnectionDevice::verify(&cat.connection_device, &profile)?;
            recipients.push(conn.encryption.key);
            let uid = format!("pgp-key:{}", d.device_udf);
            if app::<PgpSubkey>(a, &uid)?.is_none() {
                let secret = signing_secret(seed, &d.device_udf);
                let sub = PgpSubkey {
                    created: t,
                    epoch: 0,
                    key: Encrypted::encrypt(
                        CT_PGP_KEY,
                        &secret[..],
                        &[conn.encryption.key, admin.admin_encrypt.public_key()],
                    )?,
                };
                envelopes.push(entry(uid.clone(), &sub, admin));
                fresh.insert(uid, sub);
            }
        }
        // The shared encryption subkey.
        let kids: std::collections::BTreeSet<String> = recipients.iter().map(|k| k.udf()).collect();
        let mut encs: Vec<PgpSubkey> = a
            .applications
            .keys()
            .filter(|u| u.starts_with("pgp-enc:"))
            .filter_map(|u| app::<PgpSubkey>(a, u).ok().flatten())
            .collect();
        encs.sort_by_key(|e| e.epoch);
        let current = encs.last().cloned();
        let next = match &current {
            None => Some((0, t)),
            Some(c) => {
                let held: std::collections::BTreeSet<String> =
                    c.key.recipients.iter().map(|r| r.kid.clone()).collect();
                if held == kids {
                    None
                } else if held.iter().all(|k| kids.contains(k)) {
                    Some((c.epoch, c.created))
                } else {
                    Some((c.epoch + 1, t))
                }
            }
        };
        if let Some((epoch, created)) = next {
            let secret = encryption_secret(seed, epoch);
            let sub = PgpSubkey {
                created,
                epoch,
                key: Encrypted::encrypt(CT_PGP_KEY, &secret[..], &recipients)?,
            };
            envelopes.push(entry(format!("pgp-enc:{epoch}"), &sub, admin));
            encs.retain(|e| e.epoch != epoch);
            encs.push(sub);
            encs.sort_by_key(|e| e.epoch);
        }
        // The certificate, from every subkey ever issued.
        let primary = mesh_pgp::primary_key(&primary_secret(seed)).map_err(pgp_err)?;
        let mut signing = Vec::new();
        for d in &list.devices {
            let uid = format!("pgp-key:{}", d.device_udf);
            let Some(sub) = fresh.get(&uid).cloned().or(app::<PgpSubkey>(a, &uid)?) else {
                continue;
            };
            let key = mesh_pgp::signing_subkey(&signing_secret(seed, &d.device_udf), sub.created)
                .map_err(pgp_err)?;
            let revoked = (d.state == DeviceState::Revoked)
                .then_some((list.issued.max(sub.created), Revocation::Compromised));
            signing.push(Subkey { key, revoked });
        }
        let mut encryption = Vec::new();
        for (i, e) in encs.iter().enumerate() {
            let key = mesh_pgp::encryption_subkey(&encryption_secret(seed, e.epoch), e.created)
                .map_err(pgp_err)?;
            let revoked = encs
                .get(i + 1)
                .map(|n| (n.created.max(e.created), Revocation::Superseded));
            encryption.push(Subkey { key, revoked });
        }
        // Signature times are the keys' own: the certificate is a function of its content.
        let cert = mesh_pgp::build(
            &primary,
            &user_id(a)?,
            &signing,
            &encryption,
            mesh_pgp::PRIMARY_CREATED,
        )
        .map_err(pgp_err)?;
        let armored = mesh_pgp::armor(&cert).map_err(pgp_err)?;
        if app::<PgpCert>(a, "pgp")?.map(|c| c.certificate) != Some(armored.clone()) {
            envelopes.push(entry(
                "pgp".into(),
                &PgpCert {
                    certificate: armored,
                },
                admin,
            ));
        }
        Ok(account::application_update(a, envelopes))
    })
}

/// `mesh pgp cert`: the account's certificate, armored.
pub fn cert(store: &Store) -> Result<String> {
    let a = account::account(store)?;
    app::<PgpCert>(&a, "pgp")?
        .map(|c| c.certificate)
        .ok_or_else(|| {
            AccountError::NotFound(
                "no OpenPGP certificate yet: an administrator's sync publishes it".into(),
            )
        })
}

/// `mesh pgp export-secret`: the certificate with this device's signing
/// subkey and the encryption subkeys it holds, the primary as a stub
/// (GnuPG shows `sec#`). Armored.
pub fn export_secret(store: &Store) -> Result<String> {
    String::from_utf8(export_secret_bytes(store, true)?.to_vec())
        .map_err(|e| AccountError::Usage(e.to_string()))
}

/// The same, binary or armored.
pub fn export_secret_bytes(store: &Store, armor: bool) -> Result<Zeroizing<Vec<u8>>> {
    use sequoia_openpgp::serialize::SerializeInto;
    let a = account::account(store)?;
    let me = account::device_udf(store)?;
    let keys = account::device_keys(store)?;
    let armored = cert(store)?;
    let c = check_cert(&a, armored.as_bytes())?;
    let mut secrets: Vec<sequoia_openpgp::Packet> = Vec::new();
    let open = |sub: &PgpSubkey| -> Option<Zeroizing<[u8; 32]>> {
        let plain = sub.key.decrypt(CT_PGP_KEY, &keys.encrypt).ok()?;
        let arr: [u8; 32] = plain.as_slice().try_into().ok()?;
        Some(Zeroizing::new(arr))
    };
    let mine = app::<PgpSubkey>(&a, &format!("pgp-key:{me}"))?.ok_or_else(|| {
        AccountError::NotFound(
            "this device has no OpenPGP signing subkey (it needs the pgp role)".into(),
        )
    })?;
    let s = open(&mine).ok_or_else(|| {
        AccountError::Untrusted("this device's OpenPGP subkey does not decrypt".into())
    })?;
    secrets.push(
        mesh_pgp::signing_subkey(&s, mine.created)
            .map_err(pgp_err)?
            .into(),
    );
    for uid in a.applications.keys().filter(|u| u.starts_with("pgp-enc:")) {
        let Some(sub) = app::<PgpSubkey>(&a, uid)? else {
            continue;
        };
        let Some(s) = open(&sub) else { continue };
        secrets.push(
            mesh_pgp::encryption_subkey(&s, sub.created)
                .map_err(pgp_err)?
                .into(),
        );
    }
    let tsk = c
        .insert_packets(secrets)
        .map_err(|e| AccountError::Usage(e.to_string()))?
        .0;
    let t = tsk.as_tsk().emit_secret_key_stubs(true);
    let out = if armor {
        t.armored().to_vec()
    } else {
        t.to_vec()
    };
    out.map(Zeroizing::new)
        .map_err(|e| AccountError::Usage(e.to_string()))
}

/// `mesh pgp cert`: binary, or armored.
pub fn cert_bytes(store: &Store, armored: bool) -> Result<Vec<u8>> {
    use sequoia_openpgp::serialize::SerializeInto;
    let a = account::account(store)?;
    let text = cert(store)?;
    if armored {
        return Ok(text.into_bytes());
    }
    check_cert(&a, text.as_bytes())?
        .to_vec()
        .map_err(|e| AccountError::Usage(e.to_string()))
}

/// `mesh pgp install`: import the certificate and this device's secrets
/// into GnuPG (batch, no prompts) and trust the account's own key.
pub fn install(
    store: &Store,
    gnupghome: Option<&std::path::Path>,
    from: Option<&[u8]>,
) -> Result<String> {
    use std::io::Write;
    let a = account::account(store)?;
    let tsk = Zeroizing::new(match from {
        // An export made elsewhere: it must be this account's, untampered.
        Some(data) => {
            check_cert(&a, data)?;
            String::from_utf8_lossy(data).to_string()
        }
        None => export_secret(store)?,
    });
    let fpr = check_cert(&a, cert(store)?.as_bytes())?
        .fingerprint()
        .to_hex();
    let gpg = |args: &[&str], input: &[u8]| -> Result<String> {
        let mut c = std::process::Command::new("gpg");
        if let Some(h) = gnupghome {
            c.arg("--homedir").arg(h);
        }
        let mut child = c
            .args([
                "--batch",
                "--no-tty",
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
            .map_err(|e| AccountError::Usage(format!("cannot run gpg: {e} (install GnuPG)")))?;
        if let Some(mut i) = child.stdin.take() {
            i.write_all(input)
                .map_err(|e| AccountError::Usage(e.to_string()))?;
        }
        let o = child
            .wait_with_output()
            .map_err(|e| AccountError::Usage(e.to_string()))?;
        let text = String::from_utf8_lossy(&o.stderr).to_string();
        if o.status.success() {
            Ok(text)
        } else {
            Err(AccountError::Usage(format!("gpg failed: {}", text.trim())))
        }
    };
    gpg(&["--import"], tsk.as_bytes())?;
    gpg(&["--import-ownertrust"], format!("{fpr}:6:\n").as_bytes())?;
    // Remember where, so that the agent keeps this GnuPG home current.
    let marker = InstallMarker {
        gnupghome: gnupghome.map(|p| p.to_path_buf()),
        certificate: cert(store)?,
    };
    crate::store::write_atomic(
        &store.home().join(INSTALLED),
        &serde_json::to_vec(&marker).unwrap_or_default(),
    )?;
    Ok(fpr)
}

const INSTALLED: &str = "pgp-installed.json";

/// Where `mesh pgp install` put the keys, and which certificate.
#[derive(Debug, Serialize, Deserialize)]
struct InstallMarker {
    gnupghome: Option<std::path::PathBuf>,
    certificate: String,
}

/// For the agent: after a sync, re-run `install` into the GnuPG home the
/// user installed into, if the account's certificate changed since.
pub fn refresh(store: &Store) -> Result<bool> {
    let Ok(raw) = std::fs::read(store.home().join(INSTALLED)) else {
        return Ok(false);
    };
    let Ok(marker) = serde_json::from_slice::<InstallMarker>(&raw) else {
        return Ok(false);
    };
    let current = match cert(store) {
        Ok(c) => c,
        Err(_) => return Ok(false),
    };
    if current == marker.certificate {
        return Ok(false);
    }
    install(store, marker.gnupghome.as_deref(), None)?;
    Ok(true)
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

/// `mesh pgp wkd`: `.well-known/openpgpkey/hu/<zbase32(SHA-1(local part))>`
/// holding the binary certificate, and an empty `policy` file
/// (draft-koch-openpgp-webkey-service, direct method).
pub fn wkd(store: &Store, root: &std::path::Path) -> Result<std::path::PathBuf> {
    use sequoia_openpgp::serialize::SerializeInto;
    use sha1::Digest;
    let a = account::account(store)?;
    let c = check_cert(&a, cert(store)?.as_bytes())?;
    let local = a.address.split('@').next().unwrap_or("").to_lowercase();
    let hu = root.join(".well-known/openpgpkey/hu");
    std::fs::create_dir_all(&hu)
        .map_err(|e| AccountError::Usage(format!("{}: {e}", hu.display())))?;
    crate::store::write_atomic(&root.join(".well-known/openpgpkey/policy"), b"")?;
    let path = hu.join(zbase32(&sha1::Sha1::digest(local.as_bytes())));
    crate::store::write_atomic(
        &path,
        &c.to_vec().map_err(|e| AccountError::Usage(e.to_string()))?,
    )?;
    Ok(path)
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
