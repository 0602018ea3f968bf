//! What differs between Unix and Windows for the files a channel or the
//! host writes: owner-only modes on Unix; on Windows a file inherits the
//! ACL of its directory, which under the user's profile (`%LOCALAPPDATA%`)
//! admits only the user, SYSTEM and Administrators (docs/DESIGN.md,
//! "Platforms").

use std::fs::{DirBuilder, OpenOptions};
use std::path::Path;

/// Options for a new file that only this user may read.
pub fn private_file(opts: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts
}

/// A builder for a directory that only this user may enter.
pub fn private_dir_builder() -> DirBuilder {
    #[allow(unused_mut)]
    let mut b = DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b
}

/// Make `path` readable by others (a public file: a KRL, a CA list, a
/// public certificate); on Windows the directory's ACL decides.
pub fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

/// This process's user id (0 where there is none: Windows).
pub fn my_uid() -> u32 {
    #[cfg(unix)]
    {
        rustix::process::getuid().as_raw()
    }
    #[cfg(not(unix))]
    {
        0
    }
}

/// Whether `meta` belongs to this user and admits no one else (group and
/// others have no access). Windows: the user's profile directory's ACL,
/// which this build does not read, decides (docs/DESIGN.md, "Platforms").
pub fn owned_private(meta: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        meta.uid() == my_uid() && meta.permissions().mode() & 0o077 == 0
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        true
    }
}

/// Whether `meta` belongs to this user and no one else may write it.
pub fn owned_unwritable_by_others(meta: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        meta.uid() == my_uid() && meta.mode() & 0o022 == 0
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        true
    }
}
