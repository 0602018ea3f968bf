//! The recovery kit: where `mesh account create` puts the account's root,
//! split into shares, since no device keeps it (docs/DESIGN.md, "A stolen
//! administrator").
//!
//! Each share goes to its own file, mode 0600, in a directory the user
//! names (a USB stick, a folder to print from), never overwriting one; or,
//! with `-`, to standard output, for a printer. Each file says what it is
//! and how to use it, as a paper key does.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mesh_account::AccountError;
use zeroize::Zeroizing;

/// Where the kit goes.
#[derive(Debug, Clone)]
pub enum KitTarget {
    /// One file per share in this directory.
    Dir(PathBuf),
    /// Standard output.
    Stdout,
}

impl KitTarget {
    /// `-` is standard output; anything else a directory.
    pub fn parse(s: &str) -> KitTarget {
        if s == "-" {
            KitTarget::Stdout
        } else {
            KitTarget::Dir(PathBuf::from(s))
        }
    }
}

/// What one share's file says around the share.
fn kit_text(
    address: &str,
    portal: &str,
    i: usize,
    n: usize,
    k: u8,
    share: &str,
) -> Zeroizing<String> {
    Zeroizing::new(format!(
        "# Mesh recovery share {i} of {n} for {address}\n\
         # Any {k} of the {n} shares rebuild the account's root: the only way to take the\n\
         # account back if its administrator devices are lost or stolen. No device keeps it.\n\
         # Keep each share in a different place (a safe, a trusted person); never keep {k}\n\
         # of them together, or on a device that Mesh runs on.\n\
         # To recover, on a new device:\n\
         #   mesh account recover {address} --portal {portal} --from SHARE_FILE --from ANOTHER \\\n\
         #       --since TIME_BEFORE_THE_THEFT --revoke STOLEN_DEVICE\n\
         {share}\n"
    ))
}

/// Write the kit; returns the files written (none for standard output).
/// Refuses to overwrite a file: a kit is written once.
pub fn write_kit(
    target: &KitTarget,
    address: &str,
    portal: &str,
    threshold: u8,
    shares: &[Zeroizing<String>],
) -> Result<Vec<PathBuf>, AccountError> {
    let n = shares.len();
    match target {
        KitTarget::Stdout => {
            let mut out = std::io::stdout().lock();
            for (i, s) in shares.iter().enumerate() {
                let text = kit_text(address, portal, i + 1, n, threshold, s);
                out.write_all(text.as_bytes())
                    .and_then(|_| out.write_all(b"\n"))
                    .map_err(|e| kit_error(Path::new("standard output"), e))?;
            }
            Ok(Vec::new())
        }
        KitTarget::Dir(dir) => {
            make_private_dir(dir)?;
            let mut written = Vec::new();
            for (i, s) in shares.iter().enumerate() {
                let path = dir.join(format!("{address}-share-{}-of-{n}.txt", i + 1));
                let text = kit_text(address, portal, i + 1, n, threshold, s);
                let r = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|_| f.sync_all()));
                if let Err(e) = r {
                    // Nothing half-written stays behind.
                    for p in &written {
                        let _ = std::fs::remove_file(p);
                    }
                    return Err(kit_error(&path, e));
                }
                written.push(path);
            }
            Ok(written)
        }
    }
}

fn make_private_dir(dir: &Path) -> Result<(), AccountError> {
    if let Ok(mut entries) = std::fs::read_dir(dir) {
        if entries.next().is_some() {
            return Err(kit_error(
                dir,
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "the directory is not empty",
                ),
            ));
        }
    }
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|e| kit_error(dir, e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| kit_error(dir, e))?;
    }
    Ok(())
}

fn kit_error(path: &Path, e: std::io::Error) -> AccountError {
    let hint = if e.kind() == std::io::ErrorKind::AlreadyExists {
        "a recovery kit is written once: name an empty directory"
    } else {
        "name a writable directory for the recovery kit (--recovery DIR), or `-` to print it"
    };
    AccountError::usage(
        format!(
            "cannot write the recovery kit to {}: {e}; the account was not created",
            path.display()
        ),
        hint,
    )
}
