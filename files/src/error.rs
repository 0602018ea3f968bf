//! Errors of the files channel, each with what to do about it.

use mesh_plugins::PluginError;

/// What went wrong opening or making a file for the account.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilesError {
    /// The file was encrypted to another Mesh account.
    #[error("this file is for another Mesh account, not {address}")]
    OtherAccount {
        /// This device's account.
        address: String,
    },
    /// The file was encrypted to an epoch of the file key this device does not hold.
    #[error("this file is encrypted to epoch {epoch} of the account's file key, which this device never had{}", newest.map(|n| format!(" (it holds epochs up to {n})")).unwrap_or_default())]
    NeverHad {
        /// The file's epoch.
        epoch: u32,
        /// The newest epoch this device holds.
        newest: Option<u32>,
    },
    /// The account has no file key yet.
    #[error("the account has no file key yet")]
    NoFileKey,
    /// The file holds no Mesh stanza (age should have tried other identities).
    #[error("this file was not encrypted to a Mesh account")]
    NotMesh,
    /// Not an age file.
    #[error("this is not an age file (it does not start with `age-encryption.org/v1`)")]
    NotAge,
    /// An ASCII-armored age file (`age -a`).
    #[error("this age file is ASCII-armored (`age -a`), which `mesh files decrypt` does not read")]
    Armored,
    /// An age file whose header or payload does not check out.
    #[error("the age file is damaged, cut short or forged: {0}")]
    Damaged(String),
    /// A recipient, identity or stanza that does not parse.
    #[error("{0}")]
    BadEncoding(String),
    /// A Mesh stanza that does not open with the key it names (a damaged or forged file).
    #[error(
        "the file's Mesh stanza for epoch {0} does not decrypt: the file is damaged or forged"
    )]
    BadStanza(u32),
    /// The `mesh` command the plugin asks could not be run.
    #[error("cannot run `{program}`: {detail}")]
    NoMesh {
        /// The program.
        program: String,
        /// What happened.
        detail: String,
    },
    /// The channel (the account view, this device's keys).
    #[error(transparent)]
    Plugin(#[from] PluginError),
}

impl FilesError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            FilesError::OtherAccount { .. } => {
                "decrypt it on a device of the account it was encrypted to (`mesh files recipient` there names it)".into()
            }
            FilesError::NeverHad { epoch, newest } if newest.is_some_and(|n| *epoch > n) => {
                "run `mesh sync` to get the newer epoch (an administrator's `mesh sync` publishes it); a device revoked before the file was made never gets it".into()
            }
            FilesError::NeverHad { .. } => {
                "the file was made before this device joined, or for epochs it was revoked from: open it on a device that held that epoch (an administrator holds every epoch)".into()
            }
            FilesError::NoFileKey => {
                "an administrator's `mesh sync` creates it; then run `mesh sync` here".into()
            }
            FilesError::NoMesh { .. } => {
                "install `mesh` next to age-plugin-mesh or on PATH, and set MESH_HOME if this device's home is not the default".into()
            }
            FilesError::BadEncoding(_) => {
                "copy the string again from `mesh files recipient` or `mesh files identity`".into()
            }
            FilesError::NotAge => "give the file age or `mesh files encrypt` wrote".into(),
            FilesError::Armored => {
                "decrypt it with `age -d -i` and the identity from `mesh files identity`, or encrypt without -a".into()
            }
            FilesError::Damaged(_) => {
                "nothing was written; get an intact copy of the file (a copy cut short in transfer fails this way)".into()
            }
            FilesError::NotMesh => {
                "open it with age and the identity it was encrypted to".into()
            }
            FilesError::Plugin(p) => return p.hint(),
            _ => return None,
        })
    }
}
