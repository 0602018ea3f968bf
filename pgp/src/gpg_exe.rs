//! Which `gpg` Mesh runs, and GnuPG's default home (issue 26). On Windows,
//! Gpg4win's `gpg.exe`: on PATH first, else where the registry says GnuPG
//! is installed (`HKLM\SOFTWARE\GnuPG` value `Install Directory`, then the
//! 32-bit view's `WOW6432Node` key), `bin\gpg.exe` under it; its home is
//! `%APPDATA%\gnupg` unless GNUPGHOME is set. Elsewhere, `gpg` on PATH
//! and `~/.gnupg`. The choice is made from values passed in, so that it is
//! tested on any platform.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// The registry keys (under HKEY_LOCAL_MACHINE) Gpg4win's installer writes.
pub const REGISTRY_KEYS: [&str; 2] = [r"SOFTWARE\GnuPG", r"SOFTWARE\WOW6432Node\GnuPG"];
/// The value naming the installation directory.
pub const REGISTRY_VALUE: &str = "Install Directory";

/// The first `name` in a directory of `path` (a PATH value; Windows'
/// entries may be quoted), else `bin\<name>` under the first install
/// directory that has it.
pub fn find(
    name: &str,
    path: Option<&OsStr>,
    install_dirs: &[PathBuf],
    is_file: &dyn Fn(&Path) -> bool,
) -> Option<PathBuf> {
    let on_path = path
        .map(|p| std::env::split_paths(p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| {
            let s = d.to_string_lossy();
            match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                Some(unquoted) => PathBuf::from(unquoted),
                None => d,
            }
        })
        .filter(|d| !d.as_os_str().is_empty())
        .map(|d| d.join(name));
    let installed = install_dirs.iter().map(|d| d.join("bin").join(name));
    on_path.chain(installed).find(|p| is_file(p))
}

/// GnuPG's home on Windows: GNUPGHOME if set, else `%APPDATA%\gnupg`.
pub fn windows_home(gnupghome: Option<&OsStr>, appdata: Option<&OsStr>) -> Option<PathBuf> {
    match gnupghome.filter(|h| !h.is_empty()) {
        Some(h) => Some(PathBuf::from(h)),
        None => appdata
            .filter(|a| !a.is_empty())
            .map(|a| PathBuf::from(a).join("gnupg")),
    }
}

/// The program to run: on Windows the `gpg.exe` found (else plain `gpg`,
/// whose failure names the hint); elsewhere `gpg` through PATH.
pub fn program() -> OsString {
    #[cfg(windows)]
    {
        static FOUND: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
        let found = FOUND.get_or_init(|| {
            let path = std::env::var_os("PATH");
            find("gpg.exe", path.as_deref(), &registry_dirs(), &|p| {
                p.is_file()
            })
        });
        if let Some(p) = found {
            return p.clone().into_os_string();
        }
    }
    "gpg".into()
}

/// GnuPG's default home, for what `mesh pgp install` reports.
pub fn default_home() -> Option<PathBuf> {
    let gnupghome = std::env::var_os("GNUPGHOME");
    if cfg!(windows) {
        windows_home(gnupghome.as_deref(), std::env::var_os("APPDATA").as_deref())
    } else {
        match gnupghome.filter(|h| !h.is_empty()) {
            Some(h) => Some(PathBuf::from(h)),
            None => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".gnupg")),
        }
    }
}

/// The install directories the registry names, in [`REGISTRY_KEYS`] order.
#[cfg(windows)]
fn registry_dirs() -> Vec<PathBuf> {
    let hklm = winreg::RegKey::predef(winreg::enums::HKEY_LOCAL_MACHINE);
    REGISTRY_KEYS
        .iter()
        .filter_map(|k| hklm.open_subkey(k).ok())
        .filter_map(|k| k.get_value::<String, _>(REGISTRY_VALUE).ok())
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(files: &'static [&'static str]) -> impl Fn(&Path) -> bool {
        move |p: &Path| files.iter().any(|f| Path::new(f) == p)
    }

    #[test]
    fn path_comes_before_the_registry() {
        let path = std::env::join_paths(["/a", "/b"]).expect("path");
        let dirs = [PathBuf::from("/gnupg")];
        let both = only(&["/b/gpg.exe", "/gnupg/bin/gpg.exe"]);
        assert_eq!(
            find("gpg.exe", Some(&path), &dirs, &both),
            Some(PathBuf::from("/b/gpg.exe"))
        );
        let installed = only(&["/gnupg/bin/gpg.exe"]);
        assert_eq!(
            find("gpg.exe", Some(&path), &dirs, &installed),
            Some(PathBuf::from("/gnupg/bin/gpg.exe"))
        );
        assert_eq!(
            find("gpg.exe", None, &dirs, &installed),
            Some(PathBuf::from("/gnupg/bin/gpg.exe"))
        );
    }

    #[test]
    fn the_64_bit_key_comes_before_wow6432node_and_missing_ones_are_skipped() {
        let dirs = [PathBuf::from("/pf/GnuPG"), PathBuf::from("/pf86/GnuPG")];
        let second = only(&["/pf86/GnuPG/bin/gpg.exe"]);
        assert_eq!(
            find("gpg.exe", None, &dirs, &second),
            Some(PathBuf::from("/pf86/GnuPG/bin/gpg.exe"))
        );
        // Only bin\gpg.exe counts, not one beside it.
        assert_eq!(
            find("gpg.exe", None, &dirs, &only(&["/pf/GnuPG/gpg.exe"])),
            None
        );
        assert_eq!(
            REGISTRY_KEYS,
            [r"SOFTWARE\GnuPG", r"SOFTWARE\WOW6432Node\GnuPG"]
        );
    }

    #[test]
    fn quoted_and_empty_path_entries() {
        let path = OsString::from(if cfg!(windows) {
            "\"/q d\";;/x"
        } else {
            "\"/q d\"::/x"
        });
        assert_eq!(
            find("gpg.exe", Some(&path), &[], &only(&["/q d/gpg.exe"])),
            Some(PathBuf::from("/q d/gpg.exe"))
        );
        // An empty entry is not the current directory.
        assert_eq!(find("gpg.exe", Some(&path), &[], &only(&["gpg.exe"])), None);
    }

    #[test]
    fn the_windows_home_is_gnupghome_else_appdata_gnupg() {
        let appdata = OsStr::new(r"C:\Users\a\AppData\Roaming");
        assert_eq!(
            windows_home(None, Some(appdata)),
            Some(Path::new(r"C:\Users\a\AppData\Roaming").join("gnupg"))
        );
        assert_eq!(
            windows_home(Some(OsStr::new(r"D:\keys")), Some(appdata)),
            Some(PathBuf::from(r"D:\keys"))
        );
        assert_eq!(
            windows_home(Some(OsStr::new("")), Some(appdata)),
            Some(Path::new(r"C:\Users\a\AppData\Roaming").join("gnupg"))
        );
        assert_eq!(windows_home(None, None), None);
    }
}
