//! The channels' subcommands (`mesh pgp`, `mesh smime`, `mesh ssh`):
//! apart from the account and device commands, to keep each file short.

use std::path::PathBuf;

use clap::Subcommand;

use super::*;

#[derive(Debug, Subcommand)]
pub(crate) enum PgpCmd {
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
        /// With --from on a machine with no Mesh home: the account's profile
        /// UDF, to check the export against what the portal serves (verified).
        #[arg(long, requires_all = ["from", "portal"])]
        account: Option<String>,
        /// The portal's URL (with --account).
        #[arg(long, requires = "account")]
        portal: Option<String>,
    },
    /// Write a Web Key Directory tree for the account's domain (direct and advanced methods).
    Wkd {
        /// The web root to write `.well-known/openpgpkey/` (and `…/<domain>/`) under.
        #[arg(long)]
        output: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SmimeCmd {
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
}

#[derive(Debug, Subcommand)]
pub(crate) enum SshCmd {
    /// Print this device's SSH public key.
    PublicKey,
    /// Print this device's SSH certificate.
    Cert,
    /// Print the account's CA line for sshd's TrustedUserCAKeys.
    Ca {
        /// On a server: the account's profile UDF (pinned); with --portal
        /// and --output, fetch the current CA from the verified history
        /// (it changes when an administrator is revoked).
        #[arg(long, requires_all = ["portal", "output"])]
        account: Option<String>,
        /// On a server: the portal's URL.
        #[arg(long, requires = "account")]
        portal: Option<String>,
        /// On a server: the TrustedUserCAKeys file (replaced atomically when the CA changed).
        #[arg(long, requires = "account")]
        output: Option<PathBuf>,
        /// On a server: the verified history, so that a portal that rolls the account back is refused.
        #[arg(long, requires = "account")]
        cache: Option<PathBuf>,
    },
    /// Write an OpenSSH KRL of every revoked or replaced device key and certificate (for RevokedKeys).
    ///
    /// On a device: from its own verified view. On a server, with --account
    /// and --portal: the KRL the account published, verified, never
    /// replacing a newer one with an older one.
    Krl {
        /// The KRL file (replaced atomically).
        #[arg(long)]
        output: PathBuf,
        /// On a server: the account's profile UDF (pinned).
        #[arg(long, requires = "portal")]
        account: Option<String>,
        /// On a server: the portal's URL.
        #[arg(long, requires = "account")]
        portal: Option<String>,
        /// On a server: a private directory where the verified history is
        /// kept, so that a portal that rolls the account back is refused.
        #[arg(long, requires = "account")]
        cache: Option<PathBuf>,
    },
    /// Write git's allowed signers (gpg.ssh.allowedSignersFile): every key a device of the account ever had, valid from its issue until its rotation or revocation.
    ///
    /// Principals are DEVICE@ADDRESS and ADDRESS; a cert-authority line per
    /// administrator epoch's CA. Read from the portal's verified public
    /// history: this device's account, or, with --account and --portal,
    /// any account's (on a server or a CI runner).
    AllowedSigners {
        /// The file (replaced atomically); standard output without it.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Also write a KRL of the keys revoked devices held, for
        /// gpg.ssh.revocationFile (not `mesh ssh krl`'s, which also revokes
        /// rotated-away keys and would refuse their older commits).
        #[arg(long)]
        krl: Option<PathBuf>,
        /// The account's profile UDF (pinned).
        #[arg(long, requires = "portal")]
        account: Option<String>,
        /// The portal's URL.
        #[arg(long, requires = "account")]
        portal: Option<String>,
        /// The verified history `mesh ssh krl --cache` keeps: a portal
        /// behind it is refused.
        #[arg(long, requires = "account")]
        cache: Option<PathBuf>,
    },
    /// Print authorized_keys lines for every active device (for sshd's AuthorizedKeysCommand).
    AuthorizedKeys {
        #[command(flatten)]
        lookup: LookupArgs,
        /// The login name (sshd's %u): nothing is printed unless it is one of the account's.
        #[arg(long)]
        user: Option<String>,
    },
    /// Print the login name when a certificate is for an active device (for sshd's AuthorizedPrincipalsCommand).
    AuthorizedPrincipals {
        #[command(flatten)]
        lookup: LookupArgs,
        /// The login name (sshd's %u).
        #[arg(long)]
        user: String,
        /// The certificate, base64 (sshd's %k).
        #[arg(long)]
        cert: String,
    },
    /// Whether every use of a device's Mesh key asks first, through SSH_ASKPASS (administrators).
    Confirm {
        /// on or off.
        state: Toggle,
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
    /// Which key each host accepts, as the agent learned it (listed first to that host).
    ///
    /// Without a subcommand: every host key fingerprint, the identity
    /// offered first to it, and when it was learned or pinned.
    Hosts {
        #[command(subcommand)]
        action: Option<HostsCmd>,
    },
    /// Show or set the account's SSH policy (administrators set it).
    #[command(subcommand)]
    Policy(SshPolicyCmd),
}

/// `mesh ssh policy`.
#[derive(Debug, Subcommand)]
pub(crate) enum SshPolicyCmd {
    /// What agents do with requests over forwarded hops (`ssh -A`); no option: show it.
    Forwarding {
        /// Signatures that are not logins (git commits, ssh-keygen -Y sign): refuse (default), confirm or allow.
        #[arg(long, value_enum)]
        sign: Option<ActionArg>,
        /// Forwarded logins: allow (default), confirm or refuse.
        #[arg(long, value_enum)]
        login: Option<ActionArg>,
        /// Only for destinations this ssh pattern-list matches (host key fingerprint SHA256:…, or a host certificate's principal).
        #[arg(long, requires = "login")]
        destination: Option<String>,
        /// Drop every per-destination rule first.
        #[arg(long)]
        reset: bool,
    },
    /// Short-lived certificates: one per window of LIFETIME (e.g. 24h, at least 10m), the coming ones held at the portal until their window; `off`: back to the validity. No argument: show it.
    CertLifetime {
        /// The window length (e.g. 24h), or off.
        #[arg(value_parser = parse_lifetime)]
        lifetime: Option<LifetimeArg>,
        /// How far ahead windows are issued (default 7d).
        #[arg(long, value_parser = parse_duration, requires = "lifetime")]
        ahead: Option<u64>,
    },
}

/// A certificate lifetime, or off.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LifetimeArg(pub Option<u64>);

fn parse_lifetime(s: &str) -> std::result::Result<LifetimeArg, String> {
    if s == "off" {
        return Ok(LifetimeArg(None));
    }
    parse_duration(s).map(|d| LifetimeArg(Some(d)))
}

/// What an agent does with a request the forwarding policy covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ActionArg {
    /// Sign.
    Allow,
    /// Ask the user (SSH_ASKPASS) first.
    Confirm,
    /// Refuse.
    Refuse,
}

impl From<ActionArg> for mesh_ssh::forward::Action {
    fn from(a: ActionArg) -> Self {
        match a {
            ActionArg::Allow => Self::Allow,
            ActionArg::Confirm => Self::Confirm,
            ActionArg::Refuse => Self::Refuse,
        }
    }
}

/// `mesh ssh hosts` subcommands (they edit the home's ssh-hosts.json; a
/// running agent takes the change within a second).
#[derive(Debug, Subcommand)]
pub(crate) enum HostsCmd {
    /// Offer KEY_FP first to the host HOST_KEY_FP, whatever the agent learns.
    Pin {
        /// The host key's SHA-256 fingerprint (`ssh-keygen -lf`, `ssh -v`).
        host: String,
        /// The identity's SHA-256 fingerprint (`ssh-add -l`).
        key: String,
    },
    /// Forget what was learned or pinned for a host.
    Forget {
        /// The host key's SHA-256 fingerprint.
        host: String,
    },
}

/// PKCS#12 encodings a user can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum P12Arg {
    /// PBES2 (AES-256, PBKDF2-SHA256), HMAC-SHA256 MAC.
    Modern,
    /// 3DES, HMAC-SHA1 MAC: older Windows and Outlook.
    Legacy,
}
