//! `mesh agent install` / `mesh agent uninstall` (issue 26): start the
//! agent at logon, per user, without administrator rights. Linux: a
//! systemd user unit; Windows: a value under HKCU's `Run` key; macOS: a
//! launchd user agent. Each registration names the binary and the home;
//! one that is not Mesh's for this home is never replaced or removed.

use std::path::{Path, PathBuf};

use serde::Serialize;

pub mod launchd;
pub mod systemd;
pub mod windows;

/// What install or uninstall could not do.
#[derive(Debug, thiserror::Error)]
pub enum AutostartError {
    /// The name is taken by something that is not Mesh's for this home.
    #[error("{what} already exists and is not Mesh's agent for this home: it runs {found}")]
    Foreign {
        what: String,
        found: String,
        hint: String,
    },
    /// A path the unit or command line cannot carry.
    #[error("{0}")]
    Path(String),
    /// Reading or writing the registration failed.
    #[error("{what}: {detail}")]
    Io {
        what: String,
        detail: String,
        hint: &'static str,
    },
    /// This platform has no logon mechanism Mesh knows.
    #[error("starting the agent at logon is not supported on this platform")]
    Unsupported,
}

impl AutostartError {
    pub fn hint(&self) -> Option<String> {
        match self {
            AutostartError::Foreign { hint, .. } => Some(hint.clone()),
            AutostartError::Path(_) => {
                Some("use a home and a binary path without control characters".into())
            }
            AutostartError::Io { hint, .. } => Some((*hint).into()),
            AutostartError::Unsupported => Some("start it yourself: `mesh agent start`".into()),
        }
    }
}

/// What install or uninstall did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// A new registration.
    Installed,
    /// Mesh's registration for this home, with a new command (the binary moved).
    Updated,
    /// Already registered as it would be.
    Unchanged,
    /// Removed.
    Removed,
    /// There was nothing to remove.
    NotInstalled,
}

/// The report of install or uninstall (printed, or `--json`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub action: Action,
    /// "systemd user unit", "Run registry value", "launchd agent".
    pub mechanism: &'static str,
    /// The unit's, value's or agent's name.
    pub name: String,
    /// Where it is: a file, or the registry key.
    pub location: String,
    /// The command started at logon.
    pub command: String,
    /// Whether the service manager took it up now (systemd, launchd);
    /// `None` where the registration alone is enough (Windows).
    pub active: Option<bool>,
    /// What is left to do, when the service manager could not be reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub todo: Option<String>,
}

/// The binary and the home a registration runs.
#[derive(Debug, Clone)]
pub struct Target {
    pub exe: PathBuf,
    pub home: PathBuf,
    /// The home is the platform's default (the registration keeps the plain name).
    pub default_home: bool,
}

impl Target {
    /// This binary and `home`, both made absolute.
    pub fn new(exe: &Path, home: &Path) -> Result<Target, AutostartError> {
        let abs = |p: &Path| {
            std::path::absolute(p).map_err(|e| AutostartError::Io {
                what: format!("making {} absolute", p.display()),
                detail: e.to_string(),
                hint: "run it from an existing directory, or give an absolute --home",
            })
        };
        let home = abs(home)?;
        let platform = abs(&mesh_account::store::platform_home())?;
        Ok(Target {
            exe: abs(exe)?,
            default_home: home == platform,
            home,
        })
    }

    /// A short, stable tag telling this home's registration from others'
    /// (the first 8 hex digits of the SHA-256 of the home's path).
    pub fn tag(&self) -> String {
        use sha2::Digest as _;
        let d = sha2::Sha256::digest(self.home.as_os_str().as_encoded_bytes());
        data_encoding::HEXLOWER.encode(&d[..4])
    }
}

/// Register the agent to start at logon.
pub fn install(t: &Target) -> Result<Report, AutostartError> {
    #[cfg(windows)]
    return windows::install(t);
    #[cfg(target_os = "macos")]
    return launchd::install(t);
    #[cfg(all(unix, not(target_os = "macos")))]
    return systemd::install(t);
    #[allow(unreachable_code)]
    {
        let _ = t;
        Err(AutostartError::Unsupported)
    }
}

/// Remove the registration [`install`] made.
pub fn uninstall(t: &Target) -> Result<Report, AutostartError> {
    #[cfg(windows)]
    return windows::uninstall(t);
    #[cfg(target_os = "macos")]
    return launchd::uninstall(t);
    #[cfg(all(unix, not(target_os = "macos")))]
    return systemd::uninstall(t);
    #[allow(unreachable_code)]
    {
        let _ = t;
        Err(AutostartError::Unsupported)
    }
}

/// Refuse control characters: no unit, plist or command line carries them safely.
fn check_plain(p: &Path) -> Result<String, AutostartError> {
    let s = p
        .to_str()
        .ok_or_else(|| AutostartError::Path(format!("{} is not valid Unicode", p.display())))?;
    if s.chars().any(char::is_control) {
        return Err(AutostartError::Path(format!(
            "{s:?} has a control character"
        )));
    }
    Ok(s.to_string())
}

/// Write `data` to `path` atomically, making its directory.
#[cfg_attr(windows, allow(dead_code))]
fn write_file(path: &Path, data: &str) -> Result<(), AutostartError> {
    let err = |e: String| AutostartError::Io {
        what: format!("writing {}", path.display()),
        detail: e,
        hint: "check that the directory is yours and writable",
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    }
    mesh_account::store::write_atomic(path, data.as_bytes()).map_err(|e| err(e.to_string()))
}
