//! `mesh smime`: the personal CA, this device's certificates, PKCS#12,
//! NSS, CMS. The channel's own subcommand, mounted by the host through the
//! SDK ([`ChannelCommand`]); the host hands it the verified view, and says
//! whether the home has an account (`verify` works without one).

use std::path::{Path, PathBuf};

use clap::{FromArgMatches, Subcommand};
use mesh_plugins::cli::{
    emit, read_input as read_opt, read_to_string, with_view, write_atomic, write_opt,
};
use mesh_plugins::{ChannelCommand, CommandContext, CommandError, PluginError};
use serde_json::json;

/// `mesh smime`, as the SDK mounts it.
#[derive(Debug, Default)]
pub struct SmimeCommand;

impl ChannelCommand for SmimeCommand {
    fn command(&self) -> clap::Command {
        SmimeCmd::augment_subcommands(clap::Command::new("smime"))
            .about("S/MIME: the account's CA and this device's signing certificate")
            .subcommand_required(true)
            .arg_required_else_help(true)
    }

    fn run(&self, m: &clap::ArgMatches, ctx: &dyn CommandContext) -> Result<(), CommandError> {
        let cmd =
            SmimeCmd::from_arg_matches(m).map_err(|e| CommandError::new(e.to_string(), None))?;
        run(ctx, cmd)
    }
}

/// `mesh smime`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum SmimeCmd {
    /// Print the account's personal CA certificate (PEM).
    Ca,
    /// Print this device's S/MIME signing certificate (PEM).
    Cert {
        /// The account's shared encryption certificate instead.
        #[arg(long)]
        encryption: bool,
    },
    /// Import this device's S/MIME keys and the CA (trusted for e-mail) into an NSS database, as Thunderbird keeps one, or into the Windows certificate store (Outlook).
    ///
    /// Every sync keeps what was installed current; a revocation removes it.
    #[command(group(clap::ArgGroup::new("target").required(true).multiple(true)))]
    Install {
        /// The NSS database directory (Thunderbird's profile directory).
        #[arg(long, group = "target")]
        nssdb: Option<PathBuf>,
        /// The current user's Windows certificate store: the keys in CurrentUser\My (non-exportable), the CA in CurrentUser\Root.
        #[arg(long, group = "target")]
        windows_store: bool,
    },
    /// Sign a message with this device's signing key: multipart/signed (RFC 8551) by default.
    ///
    /// The input is a whole message (its From, To, Subject stay outside the
    /// signature), a MIME entity, or plain content (signed as text/plain).
    Sign {
        /// Input (default: standard input).
        #[arg(long)]
        input: Option<PathBuf>,
        /// Output (default: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
        /// application/pkcs7-mime; smime-type=signed-data (the content inside the signature).
        #[arg(long, conflicts_with = "der")]
        opaque: bool,
        /// Bare CMS SignedData (DER) over the input as it is.
        #[arg(long)]
        der: bool,
    },
    /// Verify a signed message (S/MIME mail, or CMS in DER, BER or PEM); prints the signer's e-mail address.
    ///
    /// The signer must chain to the account's CA, a --ca certificate or the
    /// system trust store; mail signed under the account's CA of an earlier
    /// administrator epoch verifies, and says so. Encrypted layers are
    /// decrypted on the way. Works on a machine with no Mesh account
    /// (then --ca and the system store only).
    Verify {
        /// Input (default: standard input).
        #[arg(long)]
        input: Option<PathBuf>,
        /// Write the signed content here.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Also trust signers under this CA certificate (PEM); repeatable.
        #[arg(long = "ca", value_name = "FILE")]
        ca: Vec<PathBuf>,
    },
    /// Encrypt to a certificate (default: the account's own): application/pkcs7-mime, AES-256-CBC.
    Encrypt {
        /// Input (default: standard input).
        #[arg(long)]
        input: Option<PathBuf>,
        /// Output (default: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
        /// The recipient's certificate (PEM).
        #[arg(long)]
        recipient: Option<PathBuf>,
        /// AES-256-GCM (AuthEnvelopedData, RFC 5083) instead of AES-256-CBC.
        #[arg(long)]
        gcm: bool,
        /// Bare CMS (DER) over the input as it is.
        #[arg(long)]
        der: bool,
    },
    /// Decrypt a message (S/MIME mail, or CMS in DER, BER or PEM) with the account's encryption key.
    ///
    /// The key is the epoch whose certificate the message names as its recipient.
    /// Signed layers inside are verified as `verify` does.
    Decrypt {
        /// Input (default: standard input).
        #[arg(long)]
        input: Option<PathBuf>,
        /// Output (default: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Also trust signers under this CA certificate (PEM); repeatable.
        #[arg(long = "ca", value_name = "FILE")]
        ca: Vec<PathBuf>,
    },
    /// Print a certificate signing request for this device's signing key (for an organisation's CA).
    Csr,
    /// Use a signing certificate (PEM, with its chain) an organisation's CA issued for this device.
    ImportCert {
        /// The PEM file: the certificate first, then its chain.
        file: PathBuf,
    },
    /// Write the CA's current CRL (PEM).
    Crl {
        /// The CRL file (replaced atomically).
        #[arg(long)]
        output: PathBuf,
    },
    /// Write this device's signing key and the shared encryption key, with their certificates, as PKCS#12.
    ///
    /// Each key has its own name: "ADDRESS (signing)", "ADDRESS (encryption epoch N)" for the
    /// current key (the first in the file), "ADDRESS (retired encryption epoch N)" for older
    /// ones, kept to read old mail. `smime install` gives NSS the same names.
    Export {
        /// The .p12 file (replaced atomically).
        #[arg(long)]
        output: PathBuf,
        /// A file whose first line is the password (never empty).
        #[arg(long)]
        password_file: PathBuf,
        /// modern (AES-256, SHA-256 MAC) or legacy (3DES, SHA-1 MAC) for older Windows and Outlook.
        #[arg(long, value_enum, default_value_t = P12Arg::Modern)]
        profile: P12Arg,
    },
    /// Issue this account's certificates again now (administrators): every device's signing certificate and the shared encryption certificate (same key, a new certificate), with the OCSP and CRL addresses correspondents check.
    Reissue,
    /// Show or set the account's S/MIME policy (administrators set it).
    #[command(subcommand)]
    Policy(SmimePolicyCmd),
}

/// `mesh smime policy`.
#[derive(Debug, Subcommand)]
pub enum SmimePolicyCmd {
    /// How long each pre-signed OCSP answer is valid (default 24h, from 1h to 7d): a portal that withholds a revocation can serve the older `good` answer that long. No argument: show it.
    OcspValidity {
        /// e.g. 24h, 2d.
        #[arg(value_parser = mesh_plugins::cli::parse_duration)]
        duration: Option<u64>,
    },
}

/// PKCS#12 encodings a user can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum P12Arg {
    /// PBES2 (AES-256, PBKDF2-SHA256), HMAC-SHA256 MAC.
    Modern,
    /// 3DES, HMAC-SHA1 MAC: older Windows and Outlook.
    Legacy,
}

/// A channel's failure as the host prints it (message, causes, hint).
fn err(e: PluginError) -> CommandError {
    CommandError::of(&e, None)
}

fn hinted(message: impl Into<String>, hint: &str) -> CommandError {
    CommandError::new(message, Some(hint.into()))
}

/// Run `mesh smime …`.
pub fn run(ctx: &dyn CommandContext, cmd: SmimeCmd) -> Result<(), CommandError> {
    use crate::mail::SignForm;
    let j = ctx.json();
    match cmd {
        SmimeCmd::Sign {
            input,
            output,
            opaque,
            der,
        } => with_view(ctx, |dh, view| {
            let data = read_opt(input.as_deref())?;
            let form = match (opaque, der) {
                (_, true) => SignForm::Der,
                (true, _) => SignForm::Opaque,
                _ => SignForm::Multipart,
            };
            let out = crate::device::sign(dh, view, &data, form).map_err(mail_err)?;
            write_opt(output.as_deref(), &out)
        }),
        SmimeCmd::Verify { input, output, ca } => {
            let data = read_opt(input.as_deref())?;
            let cas = read_cas(&ca)?;
            let opened = if ctx.has_account()? {
                with_view(ctx, |dh, view| {
                    let trust = crate::device::trust(view, &cas).map_err(err)?;
                    crate::device::open(dh, view, &data, trust).map_err(mail_err)
                })?
            } else {
                // A machine with no account: --ca and the system store only.
                let trust = crate::device::trust_without_account(&cas).map_err(err)?;
                crate::device::open_without_account(&data, trust).map_err(mail_err)?
            };
            if opened.signers.is_empty() {
                return Err(mail_err(crate::mail::MailError::NotSigned));
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
        } => with_view(ctx, |_, view| {
            let data = read_opt(input.as_deref())?;
            let pem = match recipient {
                Some(r) => Some(read_to_string(&r)?),
                None => None,
            };
            let cipher = if gcm {
                crate::message::Cipher::Aes256Gcm
            } else {
                crate::message::Cipher::Aes256Cbc
            };
            let out = crate::device::encrypt(view, &data, pem.as_deref(), cipher, der)
                .map_err(mail_err)?;
            write_opt(output.as_deref(), &out)
        }),
        SmimeCmd::Decrypt { input, output, ca } => with_view(ctx, |dh, view| {
            let data = read_opt(input.as_deref())?;
            let trust = crate::device::trust(view, &read_cas(&ca)?).map_err(err)?;
            let opened = crate::device::open(dh, view, &data, trust).map_err(mail_err)?;
            if opened.decrypted == 0 {
                return Err(mail_err(crate::mail::MailError::NotEncrypted));
            }
            report_signers(&opened);
            write_opt(output.as_deref(), &opened.content)
        }),
        SmimeCmd::Install {
            nssdb,
            windows_store,
        } => with_view(ctx, |dh, view| install(dh, view, nssdb, windows_store, j)),
        SmimeCmd::Reissue => reissue(ctx),
        SmimeCmd::Policy(SmimePolicyCmd::OcspValidity { duration }) => ocsp_validity(ctx, duration),
        c => other(ctx, c, j),
    }
}

/// `mesh smime reissue`: the policy entry asks, the plugin issues in the
/// same transaction.
fn reissue(ctx: &dyn CommandContext) -> Result<(), CommandError> {
    ctx.publish(&|view| crate::status::reissue_entry(view))?;
    ctx.nudge_agent();
    eprintln!(
        "mesh: issued the S/MIME certificates again; devices install them at their next sync"
    );
    emit(ctx.json(), json!({ "reissued": true }), "reissued");
    Ok(())
}

/// `mesh smime policy ocsp-validity`: show it, or publish a change.
fn ocsp_validity(ctx: &dyn CommandContext, secs: Option<u64>) -> Result<(), CommandError> {
    if let Some(secs) = secs {
        // A validity out of bounds keeps its message, with a hint.
        let bad = std::cell::RefCell::new(None);
        ctx.publish(&|view| {
            crate::status::validity_entry(view, secs).inspect_err(|e| {
                if let PluginError::BadInput(m) = e {
                    *bad.borrow_mut() = Some(m.clone());
                }
            })
        })
        .map_err(|e| match bad.take() {
            Some(m) => hinted(m, "e.g. `mesh smime policy ocsp-validity 24h`"),
            None => e,
        })?;
    }
    let p = with_view(ctx, |_, view| crate::status::policy(view).map_err(err))?;
    emit(
        ctx.json(),
        json!({ "ocsp_validity": p.validity() }),
        &format!("OCSP answers valid {} s", p.validity()),
    );
    Ok(())
}

/// `mesh smime install`: into an NSS database, the Windows store, or both.
fn install(
    dh: &dyn mesh_plugins::DeviceHost,
    view: &mesh_plugins::AccountView,
    nssdb: Option<PathBuf>,
    windows_store: bool,
    j: bool,
) -> Result<(), CommandError> {
    let mut report = serde_json::Map::new();
    let mut lines = Vec::new();
    if let Some(nssdb) = nssdb {
        let slow = Slow::after(
            std::time::Duration::from_secs(1),
            format!(
                "mesh: importing into the NSS database {} (certutil, pk12util)…",
                nssdb.display()
            ),
        );
        crate::nss::install(dh, view, &nssdb).map_err(err)?;
        drop(slow);
        eprintln!(
            "mesh: installed the S/MIME keys and the CA into {}",
            nssdb.display()
        );
        report.insert("nssdb".into(), json!(nssdb.display().to_string()));
        lines.push(nssdb.display().to_string());
    }
    if windows_store {
        let out = crate::winstore::install(dh, view).map_err(err)?;
        for name in &out.installed {
            eprintln!("mesh: installed {name} in the Windows certificate store");
        }
        for why in &out.skipped {
            eprintln!("mesh: warning: not installed in the Windows certificate store: {why}");
        }
        report.insert(
            "windows_store".into(),
            json!({"installed": out.installed, "skipped": out.skipped}),
        );
        lines.push("windows-store".into());
    }
    emit(j, serde_json::Value::Object(report), &lines.join("\n"));
    Ok(())
}

/// A mail error, with its hint.
fn mail_err(e: crate::mail::MailError) -> CommandError {
    match e.hint() {
        Some(h) => hinted(e.to_string(), &h),
        None => CommandError::of(&e, None),
    }
}

fn read_cas(files: &[PathBuf]) -> Result<Vec<String>, CommandError> {
    files.iter().map(|f| read_to_string(f)).collect()
}

fn report_signers(opened: &crate::mail::Opened) {
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

/// The commands that print or write one thing.
fn other(ctx: &dyn CommandContext, c: SmimeCmd, j: bool) -> Result<(), CommandError> {
    with_view(ctx, |dh, view| {
        let (field, pem) = match c {
            SmimeCmd::Ca => ("ca", crate::device::ca_pem(view).map_err(err)?),
            SmimeCmd::Cert { encryption: false } => (
                "certificate",
                crate::device::cert_pem(dh, view).map_err(err)?,
            ),
            SmimeCmd::Cert { encryption: true } => (
                "certificate",
                crate::device::encryption_cert_pem(view).map_err(err)?,
            ),
            SmimeCmd::Sign { .. }
            | SmimeCmd::Verify { .. }
            | SmimeCmd::Encrypt { .. }
            | SmimeCmd::Decrypt { .. }
            | SmimeCmd::Install { .. }
            | SmimeCmd::Reissue
            | SmimeCmd::Policy(_) => {
                unreachable!("handled above")
            }
            SmimeCmd::Csr => ("csr", crate::device::csr(dh, view).map_err(err)?),
            SmimeCmd::ImportCert { file } => {
                let pem = read_to_string(&file)?;
                let n = crate::device::import_cert(dh, &pem).map_err(err)?;
                eprintln!("mesh: imported {n}; `mesh smime cert` now prints it");
                ("imported", n)
            }
            SmimeCmd::Crl { output } => {
                let pem = crate::device::crl_pem(view).map_err(err)?;
                write_atomic(&output, pem.as_bytes())?;
                eprintln!("mesh: wrote {}", output.display());
                ("output", output.display().to_string())
            }
            SmimeCmd::Export {
                output,
                password_file,
                profile,
            } => {
                let profile = match profile {
                    P12Arg::Modern => crate::P12Profile::Modern,
                    P12Arg::Legacy => crate::P12Profile::Legacy,
                };
                let password = read_password(&password_file)?;
                let p12 = crate::device::export(dh, view, &password, profile).map_err(err)?;
                write_atomic(&output, &p12)?;
                eprintln!("mesh: wrote {} ({} bytes)", output.display(), p12.len());
                ("output", output.display().to_string())
            }
        };
        emit(j, json!({ field: pem }), pem.trim_end());
        Ok(())
    })
}

/// The first line of a password file; never empty.
fn read_password(file: &Path) -> Result<zeroize::Zeroizing<String>, CommandError> {
    let raw = zeroize::Zeroizing::new(read_to_string(file)?);
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

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
