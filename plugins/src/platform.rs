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

/// The DACL a private directory gets on Windows: protected (nothing
/// inherited from above), one entry, full access for `owner` (a SID),
/// inherited by every file and directory made in it.
pub fn owner_only_sddl(owner: &str) -> String {
    format!("D:P(A;OICI;FA;;;{owner})")
}

/// Windows: give `path` [`owner_only_sddl`] for its owner, the user who
/// made it (the file key store's home: no other user, and not the Users
/// group a parent may admit); Unix: nothing, its mode does it.
pub fn restrict_to_owner(path: &Path) -> std::io::Result<()> {
    #[cfg(windows)]
    {
        use windows_permissions::constants::{SeObjectType, SecurityInformation};
        use windows_permissions::wrappers::{
            ConvertSidToStringSid, ConvertStringSecurityDescriptorToSecurityDescriptor,
            GetNamedSecurityInfo, GetSecurityDescriptorDacl, GetSecurityDescriptorOwner,
            SetNamedSecurityInfo,
        };
        // The owner by SID, not the Owner Rights alias: Wine maps a DACL to
        // Unix modes and knows SIDs, not the alias.
        let current = GetNamedSecurityInfo(
            path.as_os_str(),
            SeObjectType::SE_FILE_OBJECT,
            SecurityInformation::Owner,
        )?;
        let owner = GetSecurityDescriptorOwner(&current)?
            .ok_or_else(|| std::io::Error::other("the directory has no owner"))?;
        let owner = ConvertSidToStringSid(owner)?;
        let sddl = owner_only_sddl(&owner.to_string_lossy());
        let sd = ConvertStringSecurityDescriptorToSecurityDescriptor(sddl.as_str())?;
        let dacl = GetSecurityDescriptorDacl(&sd)?
            .ok_or_else(|| std::io::Error::other("the owner-only descriptor has no DACL"))?;
        SetNamedSecurityInfo(
            path.as_os_str(),
            SeObjectType::SE_FILE_OBJECT,
            SecurityInformation::Dacl | SecurityInformation::ProtectedDacl,
            None,
            None,
            Some(dacl),
            None,
        )
    }
    #[cfg(not(windows))]
    {
        let _ = path;
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
