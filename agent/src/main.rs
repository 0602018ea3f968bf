//! `mesh`: the command line of a Mesh device.
//!
//! Data goes to standard output, messages to standard error. Every command
//! that reports takes `--json`. Errors print as `mesh: error: …`, with a
//! `hint:` line when there is something to do about it, and exit non-zero.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use mesh_account::device::{self, DeviceError};
use mesh_account::store::{self, Store, StoreError};
use mesh_account::{admin, join, AccountError, StoreHost};
use mesh_core::derive::{spec, Seed};
use mesh_core::objects::Role;
use mesh_core::udf::{self, DigestAlg};
use mesh_core::{shamir, Error as CoreError};
use mesh_plugins::{AccountView, PluginError};
use serde_json::json;

/// `println!` that ends the program quietly when standard output is a
/// closed pipe (`mesh … | head`), instead of panicking.
macro_rules! out {
    ($($t:tt)*) => {{
        let mut o = std::io::stdout().lock();
        if let Err(e) = writeln!(o, $($t)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

/// Mesh: your public keys on all your devices.
#[derive(Debug, Parser)]
#[command(name = "mesh", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// This device's home directory (default: $MESH_HOME, else the platform's data directory).
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start Mesh on an embedded default: a local portal, an account and two devices.
    Quickstart {
        /// Where the demo portal and device homes live.
        #[arg(long, default_value = "mesh-quickstart", value_name = "DIR")]
        dir: PathBuf,
        /// The embedded portal's address.
        #[arg(long, default_value = "127.0.0.1:8461")]
        listen: std::net::SocketAddr,
        /// The demo account's address.
        #[arg(long, default_value = "alice@example.com")]
        address: String,
        /// Show it working, then stop (instead of serving until Ctrl-C).
        #[arg(long)]
        once: bool,
    },
    /// Show this device's home, key store and identity.
    Status,
    /// Fingerprints of data.
    #[command(subcommand)]
    Hash(HashCmd),
    /// Random values, secret seeds and escrow shares.
    #[command(subcommand)]
    Key(KeyCmd),
    /// The account: create, show, escrow, recover.
    #[command(subcommand)]
    Account(AccountCmd),
    /// This device and the account's other devices.
    #[command(subcommand)]
    Device(DeviceCmd),
    /// Pull what changed at the portal, verify it, and act on it.
    Sync,
    /// The background agent: ssh-agent socket, control socket, sync.
    #[command(subcommand)]
    Agent(AgentCmd),
    /// SSH: this device's key and certificate, and what servers use.
    #[command(subcommand)]
    Ssh(SshCmd),
    /// S/MIME: the account's CA and this device's signing certificate.
    #[command(subcommand)]
    Smime(SmimeCmd),
    /// OpenPGP: the account's certificate, this device's secrets, GnuPG.
    #[command(subcommand)]
    Pgp(PgpCmd),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (or write one page per command to a directory).
    Man {
        /// Write mesh.1 and mesh-COMMAND.1 pages here instead of printing mesh.1.
        #[arg(long, value_name = "DIR")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum HashCmd {
    /// Print the UDF of a file's content ("-" for standard input).
    Udf {
        /// The file, or "-".
        file: PathBuf,
        /// Content type bound into the fingerprint.
        #[arg(long, default_value = "application/octet-stream")]
        content_type: String,
        /// Use SHA-3-512 instead of SHA-2-512.
        #[arg(long)]
        sha3: bool,
        /// Precision in bits (100 to 440, rounded up to a multiple of 20).
        #[arg(long, default_value_t = udf::DEFAULT_BITS)]
        bits: usize,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCmd {
    /// Print a fresh nonce UDF (N).
    Nonce {
        /// Random bits.
        #[arg(long, default_value_t = 128)]
        bits: usize,
    },
    /// Print a fresh symmetric key UDF (E).
    Secret {
        /// Random bits.
        #[arg(long, default_value_t = 256)]
        bits: usize,
    },
    /// Print a fresh secret seed UDF (Z) for key derivation.
    Seed {
        /// What the seed derives: ed25519, x25519, device, account.
        #[arg(long = "type", default_value = "ed25519")]
        kind: String,
        /// Random bits.
        #[arg(long, default_value_t = 256)]
        bits: usize,
    },
    /// Split a secret (hex) into N shares, any K of which recover it.
    Share {
        /// Shares needed to recover (2 to 15).
        #[arg(long)]
        threshold: u8,
        /// Shares to make (threshold to 15).
        #[arg(long)]
        shares: u8,
        /// The secret, in hex.
        secret: String,
    },
    /// Recover a secret from shares; give more than the quorum to check them.
    Recover {
        /// S-UDF shares.
        #[arg(required = true)]
        shares: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum AccountCmd {
    /// Create an account at a portal, with this device as its first administrator.
    Create {
        /// The account's address, user@domain.
        address: String,
        /// The portal's URL.
        #[arg(long)]
        portal: String,
        /// A display name for the account.
        #[arg(long)]
        name: Option<String>,
        /// A name for this, the first, device (default: the host name).
        #[arg(long)]
        device: Option<String>,
    },
    /// Show the account, this device and its roles.
    Show,
    /// Split the account seed into escrow shares (administrators).
    Escrow {
        /// Shares needed to recover (2 to 15).
        #[arg(long)]
        threshold: u8,
        /// Shares to make.
        #[arg(long)]
        shares: u8,
    },
    /// Rebuild the account from escrow shares on a fresh home; this device becomes an administrator.
    Recover {
        /// The account's address.
        address: String,
        /// The portal's URL.
        #[arg(long)]
        portal: String,
        /// A name for this device.
        #[arg(long)]
        name: Option<String>,
        /// The shares.
        #[arg(required = true)]
        shares: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum DeviceCmd {
    /// Create this device's seed and profile in its home.
    Init {
        /// A name for this device (default: the host name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Ask to join an account; prints the witness to compare on an administrator device.
    Request {
        /// The account's address.
        address: String,
        /// The portal's URL.
        #[arg(long)]
        portal: String,
        /// A name for this device (default: the host name).
        #[arg(long)]
        name: Option<String>,
        /// A one-time PIN from `mesh device pin`: the request is accepted without asking.
        #[arg(long)]
        pin: Option<String>,
        /// Wait for the answer, then complete.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits.
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        timeout: u64,
    },
    /// List connection requests waiting for an answer (administrators).
    Pending,
    /// Accept a request by its witness or id (administrators).
    Accept {
        /// Witness or request id.
        which: String,
        /// Roles to grant (default: every role but admin).
        #[arg(long, value_delimiter = ',', default_value = "ssh,pgp,smime")]
        roles: Vec<String>,
    },
    /// Reject a request by its witness or id (administrators).
    Reject {
        /// Witness or request id.
        which: String,
    },
    /// Print a one-time PIN; a request carrying it is accepted at the next sync (administrators).
    Pin {
        /// Roles the device will get.
        #[arg(long, value_delimiter = ',', default_value = "ssh,pgp,smime")]
        roles: Vec<String>,
        /// How long the PIN is valid (e.g. 30m, 1h, 2d).
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        expires: u64,
    },
    /// Finish this device's connection once it is accepted (also done by `mesh sync`).
    Complete,
    /// List the account's devices.
    List,
    /// Revoke a device by name or UDF (administrators).
    Revoke {
        /// Name or device UDF.
        which: String,
    },
    /// Give a device new keys at the next epoch, keeping its identity (administrators).
    Rotate {
        /// Name or device UDF.
        which: String,
    },
}

#[derive(Debug, Subcommand)]
enum AgentCmd {
    /// Run the agent in the foreground.
    Run {
        /// Seconds between syncs with the portal.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        interval: u64,
    },
    /// Start the agent in the background; returns once its socket accepts connections.
    Start {
        /// Seconds between syncs with the portal.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        interval: u64,
    },
    /// Stop the running agent.
    Stop,
    /// Show the agent: socket, account, keys held, last sync, portal reachable.
    Status,
    /// Print `SSH_AUTH_SOCK=…; export SSH_AUTH_SOCK;` for `eval`.
    Env,
}

#[derive(Debug, Subcommand)]
enum PgpCmd {
    /// Print the account's certificate, with every binding and revocation.
    Cert {
        /// ASCII armor instead of binary.
        #[arg(long)]
        armor: bool,
    },
    /// Write the certificate with this device's signing subkey and the encryption subkeys (no primary secret).
    ExportSecret {
        /// The file (replaced atomically; 0600).
        #[arg(long)]
        output: PathBuf,
        /// ASCII armor instead of binary.
        #[arg(long)]
        armor: bool,
    },
    /// Import the certificate and this device's secrets into GnuPG and trust the account's key.
    Install {
        /// The GnuPG home (default: GnuPG's own).
        #[arg(long)]
        gnupghome: Option<PathBuf>,
        /// Import this export (from `export-secret`) instead; it must be this account's.
        #[arg(long)]
        from: Option<PathBuf>,
    },
    /// Write a Web Key Directory tree for the account's domain (direct method).
    Wkd {
        /// The web root to write `.well-known/openpgpkey/` under.
        #[arg(long)]
        output: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum SmimeCmd {
    /// Print the account's personal CA certificate (PEM).
    Ca,
    /// Print this device's S/MIME signing certificate (PEM).
    Cert {
        /// The account's shared encryption certificate instead.
        #[arg(long)]
        encryption: bool,
    },
    /// Import this device's S/MIME keys and the CA (trusted for e-mail) into an NSS database, as Thunderbird keeps one.
    Install {
        /// The NSS database directory (Thunderbird's profile directory).
        #[arg(long)]
        nssdb: PathBuf,
    },
    /// Sign (CMS SignedData, DER) with this device's signing key.
    Sign {
        /// Input (default: standard input).
        #[arg(long)]
        input: Option<PathBuf>,
        /// Output (default: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Verify a CMS SignedData message signed under the account's CA; writes its content.
    Verify {
        /// Input (default: standard input).
        #[arg(long)]
        input: Option<PathBuf>,
        /// Output (default: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Encrypt (CMS EnvelopedData, AES-256-CBC, DER) to a certificate (default: the account's own).
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
    },
    /// Decrypt a CMS EnvelopedData message with the account's encryption key.
    Decrypt {
        /// Input (default: standard input).
        #[arg(long)]
        input: Option<PathBuf>,
        /// Output (default: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
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
    Export {
        /// The .p12 file (replaced atomically).
        #[arg(long)]
        output: PathBuf,
        /// A file whose first line is the password (never empty).
        #[arg(long)]
        password_file: PathBuf,
        /// modern (AES-256, SHA-256 MAC) or legacy (3DES, SHA-1 MAC) for older Windows and Outlook.
        #[arg(long, default_value = "modern")]
        profile: String,
    },
}

#[derive(Debug, Subcommand)]
enum SshCmd {
    /// Print this device's SSH public key.
    PublicKey,
    /// Print this device's SSH certificate.
    Cert,
    /// Print the account's CA line for sshd's TrustedUserCAKeys.
    Ca,
    /// Write an OpenSSH KRL of every revoked device key and certificate (for RevokedKeys).
    Krl {
        /// The KRL file (replaced atomically).
        #[arg(long)]
        output: PathBuf,
    },
    /// Print authorized_keys lines for every active device (for sshd's AuthorizedKeysCommand).
    AuthorizedKeys {
        /// The account's profile UDF (pinned: everything is verified up to it).
        #[arg(long)]
        account: String,
        /// The portal's URL.
        #[arg(long)]
        portal: String,
        /// Keep the last verified answer here, for when the portal is unreachable.
        #[arg(long)]
        cache: Option<PathBuf>,
        /// How old a cached answer may be before this fails closed.
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        max_stale: u64,
    },
    /// Set the login names certificates are valid for (administrators); re-issues every certificate.
    Principals {
        /// Login names.
        #[arg(required = true)]
        names: Vec<String>,
        /// Certificate validity (e.g. 30d).
        #[arg(long, value_parser = parse_duration)]
        validity: Option<u64>,
    },
}

/// "90", "30s", "10m", "2h", "7d" as seconds.
fn parse_duration(s: &str) -> std::result::Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        Some((i, 'd')) => (&s[..i], 86400),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (e.g. 90s, 10m, 2h, 7d)"))?;
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("'{s}' is not a usable duration"))
}

fn roles(list: &[String]) -> Result<Vec<Role>> {
    list.iter()
        .filter(|r| !r.trim().is_empty())
        .map(|r| {
            Role::parse(r).map_err(|e| {
                hinted(
                    e.to_string(),
                    "roles are admin, ssh, pgp, smime, comma-separated",
                )
            })
        })
        .collect()
}

/// An error with a hint for the user.
#[derive(Debug)]
struct Hinted {
    message: String,
    hint: String,
}

impl std::fmt::Display for Hinted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Hinted {}

fn hinted(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Hinted {
        message: message.into(),
        hint: hint.into(),
    })
}

fn hint_of(e: &anyhow::Error) -> Option<String> {
    for cause in e.chain() {
        if let Some(h) = cause.downcast_ref::<Hinted>() {
            return Some(h.hint.clone());
        }
        if let Some(s) = cause.downcast_ref::<StoreError>() {
            return s.hint();
        }
        if let Some(d) = cause.downcast_ref::<DeviceError>() {
            return d.hint();
        }
        if let Some(a) = cause.downcast_ref::<AccountError>() {
            return a.hint();
        }
        if let Some(p) = cause.downcast_ref::<PluginError>() {
            return p.hint();
        }
        if let Some(d) = cause.downcast_ref::<mesh_agent::daemon::DaemonError>() {
            return d.hint();
        }
        if let Some(CoreError::Shares(_)) = cause.downcast_ref::<CoreError>() {
            return Some("check the shares against what was printed; give more than the quorum to find a wrong one".into());
        }
    }
    None
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "mesh: error: {e:#}");
            if let Some(h) = hint_of(&e) {
                let _ = writeln!(err, "hint: {h}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Run `f` with this device's verified view of its account.
fn with_view<T>(
    home: &std::path::Path,
    f: impl FnOnce(&StoreHost, &AccountView) -> Result<T>,
) -> Result<T> {
    with_view_of(&Store::open(home, false)?, f)
}

/// [`with_view`] on an open store.
fn with_view_of<T>(
    store: &Store,
    f: impl FnOnce(&StoreHost, &AccountView) -> Result<T>,
) -> Result<T> {
    let a = mesh_account::account(store)?;
    if a.membership == mesh_account::Membership::Revoked {
        return Err(AccountError::Revoked(a.address).into());
    }
    let view = mesh_agent::host().view(&a)?;
    let dh = StoreHost::new(store)?;
    f(&dh, &view)
}

/// `mesh pgp wkd`: the direct-method tree, readable by a web server
/// (directories 0755, files 0644).
fn write_wkd(view: &AccountView, root: &std::path::Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let (name, cert) = mesh_pgp::gnupg::wkd(view)?;
    let base = root.join(".well-known/openpgpkey");
    let hu = base.join("hu");
    std::fs::create_dir_all(&hu).with_context(|| format!("cannot create {}", hu.display()))?;
    for d in [root.join(".well-known"), base.clone(), hu.clone()] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))?;
    }
    let path = hu.join(name);
    for (f, data) in [(base.join("policy"), &b""[..]), (path.clone(), &cert[..])] {
        store::write_atomic(&f, data)?;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644))?;
    }
    Ok(path)
}

/// Print a result: JSON when asked, else the text.
fn emit(json_mode: bool, value: serde_json::Value, text: &str) {
    if json_mode {
        out!("{value}");
    } else if !text.is_empty() {
        out!("{text}");
    }
}

fn run(cli: Cli) -> Result<()> {
    let home = cli.home.clone().unwrap_or_else(store::default_home);
    let j = cli.json;
    match cli.command {
        Command::Quickstart {
            dir,
            listen,
            address,
            once,
        } => quickstart(&dir, listen, &address, once, j),
        Command::Status => status(&home, j),
        Command::Hash(HashCmd::Udf {
            file,
            content_type,
            sha3,
            bits,
        }) => {
            let data = read_input(&file)?;
            let alg = if sha3 {
                DigestAlg::Sha3
            } else {
                DigestAlg::Sha2
            };
            let u = udf::content_digest_string(alg, &content_type, &data, bits)
                .map_err(|e| hinted(e.to_string(), "use --bits between 100 and 440"))?;
            emit(
                j,
                json!({"udf": u, "content_type": content_type, "alg": if sha3 {"sha3-512"} else {"sha2-512"}, "bits": bits}),
                &u,
            );
            Ok(())
        }
        Command::Key(k) => key(k, j),
        Command::Account(a) => account_cmd(&home, a, j),
        Command::Agent(a) => agent_cmd(&home, a, j),
        Command::Ssh(s) => ssh_cmd(&home, s, j),
        Command::Pgp(c) => with_view(&home, |dh, view| {
            match c {
                PgpCmd::Cert { armor } => {
                    if j {
                        out!("{}", json!({"certificate": mesh_pgp::channel::cert(view)?}));
                    } else {
                        write_opt(None, &mesh_pgp::channel::cert_bytes(view, armor)?)?;
                    }
                }
                PgpCmd::ExportSecret { output, armor } => {
                    let a = mesh_pgp::channel::export_secret_bytes(dh, view, armor)?;
                    store::write_atomic(&output, &a)?;
                    eprintln!("mesh: wrote {}", output.display());
                    emit(j, json!({"output": output}), "");
                }
                PgpCmd::Wkd { output } => {
                    let path = write_wkd(view, &output)?;
                    eprintln!("mesh: wrote {}", path.display());
                    emit(j, json!({"path": path}), &path.display().to_string());
                }
                PgpCmd::Install { gnupghome, from } => {
                    let data = match &from {
                        Some(f) => Some(zeroize::Zeroizing::new(
                            std::fs::read(f)
                                .with_context(|| format!("cannot read {}", f.display()))?,
                        )),
                        None => None,
                    };
                    let fpr = mesh_pgp::gnupg::install(
                        dh,
                        view,
                        gnupghome.as_deref(),
                        data.as_ref().map(|d| d.as_slice()),
                    )?;
                    eprintln!("mesh: imported the account's certificate {fpr} and this device's secrets into GnuPG");
                    emit(j, json!({"fingerprint": fpr}), &fpr);
                }
            }
            Ok(())
        }),
        Command::Smime(SmimeCmd::Sign { input, output }) => with_view(&home, |dh, view| {
            let data = read_opt(input.as_deref())?;
            write_opt(
                output.as_deref(),
                &mesh_smime::device::sign(dh, view, &data)?,
            )
        }),
        Command::Smime(SmimeCmd::Verify { input, output }) => with_view(&home, |_, view| {
            let data = read_opt(input.as_deref())?;
            let v = mesh_smime::device::verify(view, &data)?;
            eprintln!("mesh: good signature by {}", v.signer);
            write_opt(output.as_deref(), &v.content)
        }),
        Command::Smime(SmimeCmd::Encrypt {
            input,
            output,
            recipient,
        }) => with_view(&home, |_, view| {
            let data = read_opt(input.as_deref())?;
            let pem = match recipient {
                Some(r) => Some(
                    std::fs::read_to_string(&r)
                        .with_context(|| format!("cannot read {}", r.display()))?,
                ),
                None => None,
            };
            write_opt(
                output.as_deref(),
                &mesh_smime::device::encrypt(view, &data, pem.as_deref())?,
            )
        }),
        Command::Smime(SmimeCmd::Decrypt { input, output }) => with_view(&home, |dh, view| {
            let data = read_opt(input.as_deref())?;
            write_opt(
                output.as_deref(),
                &mesh_smime::device::decrypt(dh, view, &data)?,
            )
        }),
        Command::Smime(c) => with_view(&home, |dh, view| {
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
                    mesh_smime::nss::install(dh, view, &nssdb)?;
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
                    let profile = match profile.as_str() {
                        "modern" => mesh_smime::P12Profile::Modern,
                        "legacy" => mesh_smime::P12Profile::Legacy,
                        other => {
                            return Err(hinted(
                                format!("'{other}' is not a PKCS#12 profile"),
                                "use --profile modern or --profile legacy",
                            ))
                        }
                    };
                    let raw = zeroize::Zeroizing::new(
                        std::fs::read_to_string(&password_file)
                            .with_context(|| format!("cannot read {}", password_file.display()))?,
                    );
                    let password =
                        zeroize::Zeroizing::new(raw.lines().next().unwrap_or("").to_string());
                    if password.is_empty() {
                        return Err(hinted(
                            format!("{} holds an empty password", password_file.display()),
                            "PKCS#12 files are always protected: put a password on the file's first line",
                        ));
                    }
                    let p12 = mesh_smime::device::export(dh, view, &password, profile)?;
                    store::write_atomic(&output, &p12)?;
                    eprintln!("mesh: wrote {} ({} bytes)", output.display(), p12.len());
                    ("output", output.display().to_string())
                }
            };
            emit(j, json!({ field: pem }), pem.trim_end());
            Ok(())
        }),
        Command::Device(d) => device_cmd(&home, d, j),
        Command::Sync => {
            let mut store = Store::open(&home, false)?;
            let r = mesh_account::sync::sync(&mut store, &mesh_agent::host())?;
            let mut lines = Vec::new();
            if r.completed {
                lines.push(
                    "connection completed: this device is now part of the account".to_string(),
                );
            }
            for d in &r.new_devices {
                lines.push(format!("new device: {d}"));
            }
            for d in &r.revoked_devices {
                lines.push(format!("revoked device: {d}"));
            }
            for d in &r.auto_accepted {
                lines.push(format!("accepted by PIN: {d}"));
            }
            for (d, why) in &r.pin_refused {
                lines.push(format!("refused a PIN request from {d}: {why}"));
            }
            for w in &r.new_requests {
                lines.push(format!(
                    "new connection request: {w} (see `mesh device pending`)"
                ));
            }
            if r.rotated {
                lines.push("this device's keys were rotated: it now uses the new ones".into());
            }
            if r.entries_published > 0 {
                lines.push(format!(
                    "channel entries published: {}",
                    r.entries_published
                ));
            }
            lines.extend(r.applied.iter().cloned());
            for w in &r.warnings {
                eprintln!("mesh: warning: {w}");
            }
            if lines.is_empty() {
                lines.push("up to date".into());
            }
            drop(store);
            // A running agent reloads what this sync changed.
            let _ = mesh_agent::daemon::query(&home, "sync");
            emit(j, serde_json::to_value(&r)?, &lines.join("\n"));
            Ok(())
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "mesh", &mut std::io::stdout());
            Ok(())
        }
        Command::Man { output } => man(output),
    }
}

fn agent_cmd(home: &std::path::Path, cmd: AgentCmd, j: bool) -> Result<()> {
    use mesh_agent::daemon;
    match cmd {
        AgentCmd::Run { interval } => {
            let p = daemon::paths(home);
            eprintln!("mesh: agent serving SSH_AUTH_SOCK={}", p.ssh.display());
            daemon::run(home, std::time::Duration::from_secs(interval))?;
            eprintln!("mesh: agent stopped");
        }
        AgentCmd::Start { interval } => {
            let exe = std::env::current_exe().context("locating the mesh binary")?;
            let s = daemon::start(home, &exe, std::time::Duration::from_secs(interval))?;
            eprintln!("mesh: agent started (pid {})", s.pid);
            emit(
                j,
                serde_json::to_value(&s)?,
                &format!("SSH_AUTH_SOCK={}; export SSH_AUTH_SOCK;", s.ssh_auth_sock),
            );
        }
        AgentCmd::Stop => {
            daemon::stop(home)?;
            eprintln!("mesh: agent stopped");
        }
        AgentCmd::Status => {
            let s = daemon::query(home, "status")?;
            let when = s
                .last_sync
                .map(|t| format!("{} s ago", mesh_account::client::now().saturating_sub(t)));
            emit(
                j,
                serde_json::to_value(&s)?,
                &format!(
                    "socket:   {}\naccount:  {}\nkeys:     {} from Mesh, {} added\nsync:     {}\nportal:   {}{}",
                    s.ssh_auth_sock,
                    s.account.as_deref().unwrap_or("none"),
                    s.mesh_keys,
                    s.added_keys,
                    when.unwrap_or_else(|| "not yet".into()),
                    match s.portal_reachable {
                        Some(true) => "reachable",
                        Some(false) => "unreachable",
                        None => "not asked yet",
                    },
                    if s.revoked { "\nstate:    this device was revoked" } else { "" }
                ),
            );
        }
        AgentCmd::Env => {
            let p = daemon::paths(home);
            emit(
                j,
                json!({"SSH_AUTH_SOCK": p.ssh}),
                &format!("SSH_AUTH_SOCK={}; export SSH_AUTH_SOCK;", p.ssh.display()),
            );
        }
    }
    Ok(())
}

fn ssh_cmd(home: &std::path::Path, cmd: SshCmd, j: bool) -> Result<()> {
    use mesh_ssh::channel as ssh;
    match cmd {
        SshCmd::PublicKey => {
            let l = with_view(home, |dh, view| Ok(ssh::public_key_line(dh, view)?))?;
            emit(j, json!({"public_key": l}), &l);
        }
        SshCmd::Cert => {
            let l = with_view(home, |dh, view| Ok(ssh::cert_line(dh, view)?))?;
            emit(j, json!({"certificate": l}), &l);
        }
        SshCmd::Ca => {
            let l = with_view(home, |_, view| Ok(ssh::ca_line(view)?))?;
            emit(j, json!({"ca": l}), &l);
        }
        SshCmd::Krl { output } => {
            {
                // The KRL reflects the latest revocations the portal has.
                let mut store = Store::open(home, false)?;
                mesh_account::sync::sync(&mut store, &mesh_agent::host())?;
            }
            let k = with_view(home, |_, view| Ok(ssh::krl(view)?))?;
            store::write_atomic(&output, &k)?;
            eprintln!("mesh: wrote {} ({} bytes)", output.display(), k.len());
            emit(j, json!({"output": output, "bytes": k.len()}), "");
        }
        SshCmd::AuthorizedKeys {
            account,
            portal,
            cache,
            max_stale,
        } => {
            let lines = mesh_agent::servers::authorized_keys(
                &account,
                &portal,
                cache.as_deref(),
                max_stale,
            )?;
            if j {
                out!("{}", json!({"keys": lines}));
            } else {
                for l in lines {
                    out!("{l}");
                }
            }
        }
        SshCmd::Principals { names, validity } => {
            let mut store = Store::open(home, false)?;
            admin::publish(&mut store, &mesh_agent::host(), |view| {
                ssh::principals_entry(view, &names, validity)
            })?;
            let p = with_view_of(&store, |_, view| Ok(ssh::policy(view)?))?;
            eprintln!(
                "mesh: certificates are now for {} and valid {} s",
                p.principals.join(","),
                p.validity
            );
            emit(j, serde_json::to_value(&p)?, "");
        }
    }
    Ok(())
}

fn account_cmd(home: &std::path::Path, cmd: AccountCmd, j: bool) -> Result<()> {
    match cmd {
        AccountCmd::Create {
            address,
            portal,
            name,
            device,
        } => {
            let mut store = Store::open(home, true)?;
            let a = join::create(
                &mut store,
                &mesh_agent::host(),
                &address,
                &portal,
                name,
                device.as_deref(),
            )?;
            eprintln!(
                "mesh: created account {} at {}; this device is its administrator",
                a.address, a.portal
            );
            emit(
                j,
                json!({"address": a.address, "portal": a.portal, "profile_udf": a.profile_udf}),
                &a.profile_udf,
            );
        }
        AccountCmd::Show => {
            let store = Store::open(home, false)?;
            let a = mesh_account::account(&store)?;
            let dev = store.state().device.clone();
            let roles: Vec<&str> = a.roles.iter().map(|r| r.name()).collect();
            let membership = format!("{:?}", a.membership).to_lowercase();
            emit(
                j,
                json!({
                    "address": a.address, "portal": a.portal, "profile_udf": a.profile_udf,
                    "device": dev.as_ref().map(|d| &d.udf), "device_name": dev.as_ref().map(|d| &d.name),
                    "roles": roles, "membership": membership,
                }),
                &format!(
                    "account:  {}\nportal:   {}\nprofile:  {}\ndevice:   {} ({})\nroles:    {}\nstate:    {}",
                    a.address,
                    a.portal,
                    a.profile_udf,
                    dev.as_ref().map(|d| d.udf.as_str()).unwrap_or("-"),
                    dev.as_ref().map(|d| d.name.as_str()).unwrap_or("-"),
                    if roles.is_empty() { "none".to_string() } else { roles.join(",") },
                    membership
                ),
            );
        }
        AccountCmd::Escrow { threshold, shares } => {
            let store = Store::open(home, false)?;
            let list = admin::escrow(&store, threshold, shares).map_err(|e| match e {
                AccountError::Core(c) => {
                    hinted(c.to_string(), "use 2 <= --threshold <= --shares <= 15")
                }
                other => other.into(),
            })?;
            eprintln!("mesh: any {threshold} of these {shares} shares rebuild the account; keep them apart");
            if j {
                let v: Vec<&str> = list.iter().map(|s| s.as_str()).collect();
                out!("{}", json!({"threshold": threshold, "shares": v}));
            } else {
                for s in &list {
                    out!("{}", s.as_str());
                }
            }
        }
        AccountCmd::Recover {
            address,
            portal,
            name,
            shares,
        } => {
            let mut store = Store::open(home, true)?;
            let a = join::recover(
                &mut store,
                &mesh_agent::host(),
                &address,
                &portal,
                &shares,
                name.as_deref(),
            )?;
            eprintln!(
                "mesh: recovered account {}; this device is an administrator",
                a.address
            );
            emit(
                j,
                json!({"address": a.address, "profile_udf": a.profile_udf}),
                &a.profile_udf,
            );
        }
    }
    Ok(())
}

fn device_cmd(home: &std::path::Path, cmd: DeviceCmd, j: bool) -> Result<()> {
    match cmd {
        DeviceCmd::Init { name } => {
            let mut store = Store::open(home, true)?;
            let name = name.unwrap_or_else(device::default_name);
            let d = device::init(&mut store, &name)?;
            eprintln!("mesh: created device {} in {}", d.name, home.display());
            emit(
                j,
                json!({"device": d.udf, "name": d.name, "home": home}),
                &d.udf,
            );
        }
        DeviceCmd::Request {
            address,
            portal,
            name,
            pin,
            wait,
            timeout,
        } => {
            let mut store = Store::open(home, true)?;
            let r = join::request(
                &mut store,
                &address,
                &portal,
                name.as_deref(),
                pin.as_deref(),
            )?;
            if pin.is_some() {
                eprintln!("mesh: request sent with a PIN; it is accepted at the administrator's next sync");
            } else {
                eprintln!("mesh: request sent; on an administrator device check that `mesh device pending` shows this witness:");
            }
            emit(j, serde_json::to_value(&r)?, &r.witness);
            if wait {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout);
                loop {
                    match join::complete(&mut store) {
                        Ok(_) => break,
                        Err(AccountError::Pending(_)) if std::time::Instant::now() < deadline => {
                            // Polling the portal for the answer (not a test synchronisation).
                            std::thread::sleep(std::time::Duration::from_secs(1));
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                mesh_account::sync::sync(&mut store, &mesh_agent::host())?;
                eprintln!("mesh: accepted; this device is now part of {address}");
            }
        }
        DeviceCmd::Pending => {
            let mut store = Store::open(home, false)?;
            let r = mesh_account::sync::sync(&mut store, &mesh_agent::host())?;
            for d in &r.auto_accepted {
                eprintln!("mesh: accepted by PIN: {d}");
            }
            for (d, why) in &r.pin_refused {
                eprintln!("mesh: refused a PIN request from {d}: {why}");
            }
            let list = admin::pending(&mut store)?;
            if j {
                out!("{}", serde_json::to_value(&list)?);
            } else if list.is_empty() {
                eprintln!("mesh: no pending requests");
            } else {
                for p in &list {
                    out!(
                        "{}  {}  {}{}",
                        p.witness,
                        p.name,
                        p.request_id,
                        if p.pin { "  (PIN)" } else { "" }
                    );
                }
            }
        }
        DeviceCmd::Accept { which, roles: r } => {
            let roles = roles(&r)?;
            let mut store = Store::open(home, false)?;
            let name = admin::accept(&mut store, &mesh_agent::host(), &which, &roles)?;
            eprintln!("mesh: accepted {name}");
            emit(j, json!({"accepted": name}), "");
        }
        DeviceCmd::Reject { which } => {
            let mut store = Store::open(home, false)?;
            let name = admin::reject(&mut store, &mesh_agent::host(), &which)?;
            eprintln!("mesh: rejected {name}");
            emit(j, json!({"rejected": name}), "");
        }
        DeviceCmd::Pin { roles: r, expires } => {
            let roles = roles(&r)?;
            let mut store = Store::open(home, false)?;
            let (pin, until) = admin::new_pin(&mut store, &mesh_agent::host(), &roles, expires)?;
            eprintln!("mesh: one-time PIN, valid for {expires} s: give it to the new device's `mesh device request --pin`");
            emit(j, json!({"pin": pin, "expires": until}), &pin);
        }
        DeviceCmd::Complete => {
            let mut store = Store::open(home, false)?;
            if join::complete(&mut store)? {
                mesh_account::sync::sync(&mut store, &mesh_agent::host())?;
                eprintln!("mesh: connection completed");
            } else {
                eprintln!("mesh: nothing to complete: this device is connected");
            }
            emit(j, json!({"completed": true}), "");
        }
        DeviceCmd::List => {
            let mut store = Store::open(home, false)?;
            mesh_account::sync::sync(&mut store, &mesh_agent::host())?;
            let list = admin::list(&store)?;
            if j {
                out!("{}", serde_json::to_value(&list)?);
            } else {
                for d in &list {
                    let roles: Vec<&str> = d.roles.iter().map(|r| r.name()).collect();
                    out!(
                        "{:<16} {}  {:<20} {}{}",
                        d.name,
                        d.device,
                        roles.join(","),
                        d.state,
                        if d.this { "  (this device)" } else { "" }
                    );
                }
            }
        }
        DeviceCmd::Rotate { which } => {
            let mut store = Store::open(home, false)?;
            let (name, epoch) = admin::rotate(&mut store, &mesh_agent::host(), &which)?;
            eprintln!(
                "mesh: {name} has new keys (epoch {epoch}); it switches to them at its next sync"
            );
            emit(j, json!({"rotated": name, "epoch": epoch}), "");
        }
        DeviceCmd::Revoke { which } => {
            let mut store = Store::open(home, false)?;
            let name = admin::revoke(&mut store, &mesh_agent::host(), &which)?;
            eprintln!("mesh: revoked {name}: the portal refuses it from now on");
            emit(j, json!({"revoked": name}), "");
        }
    }
    Ok(())
}

fn quickstart(
    dir: &std::path::Path,
    listen: std::net::SocketAddr,
    address: &str,
    once: bool,
    j: bool,
) -> Result<()> {
    // Demo homes keep their store keys in files: say so, and never touch the user's own home.
    std::env::set_var("MESH_KEYSTORE", "file");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot open {}", dir.display()))?;
    let portal = mesh_agent::quickstart::EmbeddedPortal::start(listen, &dir.join("portal"))
        .map_err(|e| {
            hinted(
                e.to_string(),
                "another quickstart may be running; use --listen 127.0.0.1:0 or stop it",
            )
        })?;
    let q = mesh_agent::quickstart::run(&dir, &portal, address)?;
    if j {
        out!("{}", serde_json::to_value(&q)?);
    } else {
        out!("Mesh is running.");
        out!(
            "  portal:   {} (embedded, SQLite in {})",
            q.portal,
            dir.join("portal").display()
        );
        out!("  account:  {}  profile {}", q.address, q.profile_udf);
        out!("  devices (as the phone verified them):");
        for d in &q.devices {
            let roles: Vec<&str> = d.roles.iter().map(|r| r.name()).collect();
            out!(
                "    {:<8} {}  {:<20} {}",
                d.name,
                d.device,
                roles.join(","),
                d.state
            );
        }
        out!("");
        out!("Try, in another terminal (demo homes keep their keys in files):");
        out!("  export MESH_KEYSTORE=file");
        out!("  mesh --home {} device list", q.laptop.display());
        out!("  mesh --home {} device pin", q.laptop.display());
        out!("  mesh --home {} device revoke phone", q.laptop.display());
        out!("  mesh --home {} sync", q.phone.display());
    }
    // The laptop's agent: its Mesh SSH key and certificate on SSH_AUTH_SOCK.
    let exe = std::env::current_exe().context("locating the mesh binary")?;
    let agent = match mesh_agent::daemon::start(&q.laptop, &exe, std::time::Duration::from_secs(5))
    {
        Ok(s) => s,
        Err(mesh_agent::daemon::DaemonError::Running(_)) => {
            mesh_agent::daemon::query(&q.laptop, "status")?
        }
        Err(e) => return Err(e.into()),
    };
    let key = {
        with_view(&q.laptop, |dh, view| {
            Ok(mesh_ssh::channel::public_key_line(dh, view)?)
        })?
    };
    if !j {
        out!("");
        out!("The laptop's agent is running; use it with:");
        out!("  export SSH_AUTH_SOCK={}", agent.ssh_auth_sock);
        out!("  ssh-add -l");
        out!("Its SSH public key (for authorized_keys):");
        out!("  {key}");
    }
    if once {
        let _ = mesh_agent::daemon::stop(&q.laptop);
        return Ok(());
    }
    eprintln!("mesh: serving the portal until Ctrl-C");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(mesh_portal::shutdown_signal());
    let _ = mesh_agent::daemon::stop(&q.laptop);
    drop(portal);
    eprintln!("mesh: stopped; run `mesh quickstart` again to continue where you left off");
    Ok(())
}

/// A file's bytes, or standard input.
fn read_opt(file: Option<&std::path::Path>) -> Result<Vec<u8>> {
    match file {
        Some(f) => read_input(&f.to_path_buf()),
        None => read_input(&PathBuf::from("-")),
    }
}

/// Bytes to a file (atomically) or to standard output.
fn write_opt(file: Option<&std::path::Path>, data: &[u8]) -> Result<()> {
    match file {
        Some(f) => Ok(store::write_atomic(f, data)?),
        None => {
            let mut o = std::io::stdout().lock();
            o.write_all(data).context("writing standard output")?;
            Ok(o.flush()?)
        }
    }
}

fn read_input(file: &PathBuf) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    if file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut data)
            .context("reading standard input")?;
    } else {
        data = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    }
    Ok(data)
}

fn status(home: &std::path::Path, j: bool) -> Result<()> {
    let store = match Store::open(home, false) {
        Err(StoreError::NoStore(_)) => {
            emit(
                j,
                json!({"home": home, "device": null}),
                &format!(
                    "home:     {}\ndevice:   none (run `mesh device init`)",
                    home.display()
                ),
            );
            return Ok(());
        }
        other => other?,
    };
    let st = store.state();
    let dev = st.device.as_ref();
    emit(
        j,
        json!({
            "home": home,
            "keystore": store.backend().name(),
            "device": dev.map(|d| &d.udf),
            "name": dev.map(|d| &d.name),
        }),
        &format!(
            "home:     {}\nkeystore: {} ({})\ndevice:   {}",
            home.display(),
            store.backend().name(),
            store.backend().describe(),
            dev.map(|d| format!("{} ({})", d.udf, d.name))
                .unwrap_or_else(|| "none (run `mesh device init`)".into())
        ),
    );
    Ok(())
}

fn key(cmd: KeyCmd, j: bool) -> Result<()> {
    match cmd {
        KeyCmd::Nonce { bits } => {
            let n = udf::presentation_whole(&udf::nonce(bits)?);
            emit(j, json!({"nonce": n}), &n);
        }
        KeyCmd::Secret { bits } => {
            let s = zeroize::Zeroizing::new(udf::presentation_whole(&udf::encryption_key(bits)?));
            emit(j, json!({"secret": &*s}), &s);
        }
        KeyCmd::Seed { kind, bits } => {
            let code = match kind.as_str() {
                "ed25519" => spec::ED25519,
                "x25519" => spec::X25519,
                "device" => spec::MESH_PROFILE_DEVICE,
                "account" => spec::MESH_PROFILE_ACCOUNT,
                other => {
                    return Err(hinted(
                        format!("'{other}' is not a seed type"),
                        "use --type ed25519, x25519, device or account",
                    ))
                }
            };
            let s =
                zeroize::Zeroizing::new(udf::presentation_whole(&udf::secret_seed(code, bits)?));
            // Seeds parse back through the same code that derives keys.
            Seed::from_udf(&s)?;
            emit(j, json!({"seed": &*s, "type": kind}), &s);
        }
        KeyCmd::Share {
            threshold,
            shares,
            secret,
        } => {
            let bytes = zeroize::Zeroizing::new(
                data_encoding::HEXUPPER_PERMISSIVE
                    .decode(secret.trim().as_bytes())
                    .map_err(|e| {
                        hinted(
                            format!("the secret is not hex: {e}"),
                            "give the secret as hex digits, e.g. 3D02BCFA…",
                        )
                    })?,
            );
            let list = shamir::split(&bytes, threshold, shares)
                .map_err(|e| hinted(e.to_string(), "use 2 <= --threshold <= --shares <= 15"))?;
            let texts: Vec<zeroize::Zeroizing<String>> = list.iter().map(|s| s.to_udf()).collect();
            if j {
                let v: Vec<&str> = texts.iter().map(|t| t.as_str()).collect();
                out!("{}", json!({"threshold": threshold, "shares": v}));
            } else {
                for t in &texts {
                    out!("{}", t.as_str());
                }
            }
        }
        KeyCmd::Recover { shares } => {
            let mut parsed = Vec::with_capacity(shares.len());
            for (i, s) in shares.iter().enumerate() {
                parsed.push(
                    shamir::Share::from_udf(s)
                        .with_context(|| format!("share {} is not a valid share", i + 1))?,
                );
            }
            let secret = shamir::recover(&parsed)?;
            let hex = zeroize::Zeroizing::new(data_encoding::HEXUPPER.encode(&secret));
            emit(j, json!({"secret": &*hex}), &hex);
        }
    }
    Ok(())
}

fn man(output: Option<PathBuf>) -> Result<()> {
    let cmd = Cli::command();
    match output {
        None => {
            clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
            store::write_atomic(&dir.join("mesh.1"), &page)?;
            for sub in cmd.get_subcommands() {
                let name = format!("mesh-{}", sub.get_name());
                let mut page = Vec::new();
                clap_mangen::Man::new(sub.clone().name(name.clone())).render(&mut page)?;
                store::write_atomic(&dir.join(format!("{name}.1")), &page)?;
            }
            eprintln!("mesh: wrote manual pages to {}", dir.display());
        }
    }
    Ok(())
}
