//! What a process that may hold the account's secrets does first: no core
//! dump, and (on Linux) not dumpable, so that neither a crash nor another
//! process of the same user can copy its memory (docs/DESIGN.md, "Secrets
//! in memory").
//!
//! Every `mesh` command may open the key store (seeds, the online seeds of
//! administrator epochs, recovery shares read from standard input), and
//! the agent holds private keys for as long as it runs, so `main` calls
//! [`harden`] before anything else.
//!
//! - `RLIMIT_CORE` = 0, soft and hard: no core file, and no way back up for
//!   this process or the tools it starts (gpg, certutil).
//! - `PR_SET_DUMPABLE` = 0 (Linux): the kernel also writes no core, and
//!   refuses `ptrace` and `/proc/PID/{mem,environ,maps,…}` to processes of
//!   the same user that lack `CAP_SYS_PTRACE`; `/proc/PID` belongs to root.
//!   A root (or `CAP_SYS_PTRACE`) attacker is not stopped: nothing in the
//!   process can stop them.
//!
//! Both through `rustix` (the workspace forbids `unsafe`). On Windows
//! neither exists and this build sets nothing: a same-user debugger or
//! Windows Error Reporting can read the agent's memory there (docs/DESIGN.md,
//! "Platforms", says so).

/// A protection that could not be put in place.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HardeningError {
    /// `setrlimit(RLIMIT_CORE)` failed.
    #[error("cannot forbid core dumps (RLIMIT_CORE): {0}")]
    CoreLimit(std::io::Error),
    /// `prctl(PR_SET_DUMPABLE)` failed.
    #[error("cannot make the process undumpable (PR_SET_DUMPABLE): {0}")]
    Dumpable(std::io::Error),
}

impl HardeningError {
    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        "mesh will not hold keys in a process whose memory could be dumped; check the sandbox or seccomp policy it runs under"
    }
}

/// Forbid core dumps and, on Linux, make this process undumpable.
#[cfg(not(unix))]
pub fn harden() -> Result<(), HardeningError> {
    Ok(())
}

/// Forbid core dumps and, on Linux, make this process undumpable.
#[cfg(unix)]
pub fn harden() -> Result<(), HardeningError> {
    use rustix::process::{setrlimit, Resource, Rlimit};
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .map_err(|e| HardeningError::CoreLimit(e.into()))?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| HardeningError::Dumpable(e.into()))?;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    /// In this (test) process: the limits read back as set.
    #[test]
    fn harden_sets_the_core_limit_and_the_dumpable_flag() {
        super::harden().expect("harden");
        let core = rustix::process::getrlimit(rustix::process::Resource::Core);
        assert_eq!((core.current, core.maximum), (Some(0), Some(0)));
        #[cfg(target_os = "linux")]
        assert_eq!(
            rustix::process::dumpable_behavior().expect("prctl"),
            rustix::process::DumpableBehavior::NotDumpable
        );
    }
}
