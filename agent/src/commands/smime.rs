//! `mesh smime`: the personal CA, this device's certificates, PKCS#12, NSS, CMS.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;

use super::*;
use crate::cli::*;

/// Run `mesh smime …`.
pub(crate) fn run(home: &Path, cmd: SmimeCmd, j: bool) -> Result<()> {
    use mesh_smime::mail::SignForm;
    match cmd {
        SmimeCmd::Sign {
            input,
            output,
            opaque,
            der,
        } => with_view(home, |dh, view| {
            let data = read_opt(input.as_deref())?;
            let form = match (opaque, der) {
                (_, true) => SignForm::Der,
                (true, _) => SignForm::Opaque,
                _ => SignForm::Multipart,
            };
            let out = mesh_smime::device::sign(dh, view, &data, form).map_err(mail_err)?;
            write_opt(output.as_deref(), &out)
        }),
        SmimeCmd::Verify { input, output, ca } => {
            let data = read_opt(input.as_deref())?;
            let cas = read_cas(&ca)?;
            let opened = if has_account(home)? {
                with_view(home, |dh, view| {
                    let trust = mesh_smime::device::trust(view, &cas)?;
                    mesh_smime::device::open(dh, view, &data, trust).map_err(mail_err)
                })?
            } else {
                // A machine with no account: --ca and the system store only.
                let trust = mesh_smime::device::trust_without_account(&cas)?;
                mesh_smime::device::open_without_account(&data, trust).map_err(mail_err)?
            };
            if opened.signers.is_empty() {
                return Err(mail_err(mesh_smime::mail::MailError::NotSigned));
            }
            report_signers(&opened);
            if let Some(o) = output.as_deref() {
                write_opt(Some(o), &opened.content)?;
            }
            let emails: Vec<String> = opened
                .signers
                .iter()
                .map(|s| s.email.clone().unwrap_or_else(|| s.signer.clone()))
                .collect();
            let signers: Vec<serde_json::Value> = opened
                .signers
                .iter()
                .map(|s| json!({"email": s.email, "subject": s.signer, "retired_ca": s.retired_ca}))
                .collect();
            emit(j, json!({ "signers": signers }), &emails.join("\n"));
            Ok(())
        }
        SmimeCmd::Encrypt {
            input,
            output,
            recipient,
            gcm,
            der,
        } => with_view(home, |_, view| {
            let data = read_opt(input.as_deref())?;
            let pem = match recipient {
                Some(r) => Some(
                    std::fs::read_to_string(&r)
                        .with_context(|| format!("cannot read {}", r.display()))?,
                ),
                None => None,
            };
            let cipher = if gcm {
                mesh_smime::message::Cipher::Aes256Gcm
            } else {
                mesh_smime::message::Cipher::Aes256Cbc
            };
            let out = mesh_smime::device::encrypt(view, &data, pem.as_deref(), cipher, der)
                .map_err(mail_err)?;
            write_opt(output.as_deref(), &out)
        }),
        SmimeCmd::Decrypt { input, output, ca } => with_view(home, |dh, view| {
            let data = read_opt(input.as_deref())?;
            let trust = mesh_smime::device::trust(view, &read_cas(&ca)?)?;
            let opened = mesh_smime::device::open(dh, view, &data, trust).map_err(mail_err)?;
            if opened.decrypted == 0 {
                return Err(mail_err(mesh_smime::mail::MailError::NotEncrypted));
            }
            report_signers(&opened);
            write_opt(output.as_deref(), &opened.content)
        }),
        c => other(home, c, j),
    }
}

/// A mail error, with its hint.
fn mail_err(e: mesh_smime::mail::MailError) -> anyhow::Error {
    match e.hint() {
        Some(h) => hinted(e.to_string(), h),
        None => e.into(),
    }
}

fn read_cas(files: &[std::path::PathBuf]) -> Result<Vec<String>> {
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display())))
        .collect()
}

fn report_signers(opened: &mesh_smime::mail::Opened) {
    for s in &opened.signers {
        match &s.retired_ca {
            None => eprintln!("mesh: good signature by {}", s.signer),
            Some(ca) => eprintln!(
                "mesh: good signature by {}, signed under {ca}: an administrator revoked since held that CA's key, so trust it for mail from before then",
                s.signer
            ),
        }
    }
}

/// Whether this home holds an account (a missing or empty home does not).
fn has_account(home: &Path) -> Result<bool> {
    use mesh_account::store::{Store, StoreError};
    let store = match Store::open(home, false) {
        Ok(s) => s,
        Err(StoreError::NoStore(_)) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    match mesh_account::account(&store) {
        Ok(_) => Ok(true),
        Err(mesh_account::AccountError::NoAccount) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The commands that print or write one thing.
fn other(home: &Path, c: SmimeCmd, j: bool) -> Result<()> {
    with_view(home, |dh, view| {
        let (field, pem) = match c {
            SmimeCmd::Ca => ("ca", mesh_smime::device::ca_pem(view)?),
            SmimeCmd::Cert { encryption: false } => {
                ("certificate", mesh_smime::device::cert_pem(dh, view)?)
            }
            SmimeCmd::Cert { encryption: true } => (
                "certificate",
                mesh_smime::device::encryption_cert_pem(view)?,
            ),
            SmimeCmd::Sign { .. }
            | SmimeCmd::Verify { .. }
            | SmimeCmd::Encrypt { .. }
            | SmimeCmd::Decrypt { .. } => {
                unreachable!("handled above")
            }
            SmimeCmd::Csr => ("csr", mesh_smime::device::csr(dh, view)?),
            SmimeCmd::ImportCert { file } => {
                let pem = std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let n = mesh_smime::device::import_cert(dh, &pem)?;
                eprintln!("mesh: imported {n}; `mesh smime cert` now prints it");
                ("imported", n)
            }
            SmimeCmd::Install { nssdb } => {
                let slow = Slow::after(
                    std::time::Duration::from_secs(1),
                    format!(
                        "mesh: importing into the NSS database {} (certutil, pk12util)…",
                        nssdb.display()
                    ),
                );
                mesh_smime::nss::install(dh, view, &nssdb)?;
                drop(slow);
                eprintln!(
                    "mesh: installed the S/MIME keys and the CA into {}",
                    nssdb.display()
                );
                ("nssdb", nssdb.display().to_string())
            }
            SmimeCmd::Crl { output } => {
                let pem = mesh_smime::device::crl_pem(view)?;
                store::write_atomic(&output, pem.as_bytes())?;
                eprintln!("mesh: wrote {}", output.display());
                ("output", output.display().to_string())
            }
            SmimeCmd::Export {
                output,
                password_file,
                profile,
            } => {
                let profile = match profile {
                    P12Arg::Modern => mesh_smime::P12Profile::Modern,
                    P12Arg::Legacy => mesh_smime::P12Profile::Legacy,
                };
                let password = read_password(&password_file)?;
                let p12 = mesh_smime::device::export(dh, view, &password, profile)?;
                store::write_atomic(&output, &p12)?;
                eprintln!("mesh: wrote {} ({} bytes)", output.display(), p12.len());
                ("output", output.display().to_string())
            }
        };
        emit(j, json!({ field: pem }), pem.trim_end());
        Ok(())
    })
}

/// The first line of a password file; never empty.
fn read_password(file: &Path) -> Result<zeroize::Zeroizing<String>> {
    let raw = zeroize::Zeroizing::new(
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?,
    );
    let password = zeroize::Zeroizing::new(raw.lines().next().unwrap_or("").to_string());
    if password.is_empty() {
        return Err(hinted(
            format!("{} holds an empty password", file.display()),
            "PKCS#12 files are always protected: put a password on the file's first line",
        ));
    }
    Ok(password)
}

/// A progress line on stderr for a step that takes over a second: printed
/// once the time has passed, never for a quick step.
struct Slow {
    done: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Slow {
    fn after(wait: std::time::Duration, line: String) -> Slow {
        let (done, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(wait) {
                eprintln!("{line}");
            }
        });
        Slow {
            done: Some(done),
            thread: Some(thread),
        }
    }
}

impl Drop for Slow {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
