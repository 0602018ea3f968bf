//! The recovery kit: where `mesh account create` puts the account's root,
//! split into shares, since no device keeps it (docs/DESIGN.md, "A stolen
//! administrator").
//!
//! Each share goes to a destination of its own (`--recovery D1,D2,D3`: one
//! directory per share, e.g. three USB sticks), one file, mode 0600, in a
//! directory that is empty or new; or, with `-`, to standard output, for a
//! printer. Two shares in one place, or a share inside a Mesh home, are
//! refused before the root exists: k shares together are the root, and a
//! device that keeps one is a step closer to keeping it. Each file says
//! what it is and how to use it, as a paper key does.

use std::io::Write;
use std::path::{Path, PathBuf};

use mesh_account::AccountError;
use zeroize::Zeroizing;

/// Where the kit goes.
#[derive(Debug, Clone)]
pub enum KitTarget {
    /// One directory per share, in share order.
    Dirs(Vec<PathBuf>),
    /// Standard output.
    Stdout,
}

/// A destination refused, or a share that could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KitError {
    /// Not one destination per share.
    #[error("{given} recovery destination(s) for {shares} shares: each share needs a directory of its own")]
    Count {
        /// Destinations named.
        given: usize,
        /// Shares to write.
        shares: u8,
    },
    /// `-` among directories, or an empty name.
    #[error("`{0}` is not a recovery destination here")]
    Malformed(String),
    /// Two destinations are one place (the same, or one inside the other).
    #[error("{} and {} are one place: each share needs a destination of its own", .0.display(), .1.display())]
    SamePlace(PathBuf, PathBuf),
    /// A destination inside a Mesh home.
    #[error("{} is inside the Mesh home {}: a device must not keep a share of the account's root", .0.display(), .1.display())]
    InHome(PathBuf, PathBuf),
    /// A destination that already holds something.
    #[error("{} is not empty: a recovery share is written once", .0.display())]
    NotEmpty(PathBuf),
    /// The file system.
    #[error("cannot write the recovery share to {}: {source}", path.display())]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl KitError {
    /// What to do about it.
    pub fn hint(&self) -> String {
        const ONE_EACH: &str = "name one directory per share, each on its own medium, e.g. `--recovery /media/usb1/mesh,/media/usb2/mesh,/media/usb3/mesh`, or `-` to print them";
        match self {
            KitError::Count { .. } | KitError::Malformed(_) | KitError::SamePlace(..) => {
                ONE_EACH.into()
            }
            KitError::InHome(..) => "put each share outside every Mesh home (--home, $MESH_HOME): on removable media, or `-` to print them".into(),
            KitError::NotEmpty(_) => "a recovery kit is written once: name empty (or new) directories".into(),
            KitError::Io { .. } => "name writable directories for the recovery kit (--recovery D1,D2,D3), or `-` to print it".into(),
        }
    }
}

impl From<KitError> for AccountError {
    fn from(e: KitError) -> AccountError {
        AccountError::usage(format!("{e}; the account was not created"), e.hint())
    }
}

impl KitTarget {
    /// The destinations of `--recovery` for `shares` shares (`None`: one
    /// per destination), checked before any root exists: one `-`, or one
    /// directory per share, no two in one place, none inside `home` or
    /// another Mesh home, each empty or new. Returns the number of shares.
    pub fn parse(
        values: &[String],
        shares: Option<u8>,
        home: &Path,
    ) -> Result<(KitTarget, u8), KitError> {
        if values.len() == 1 && values[0] == "-" {
            return Ok((KitTarget::Stdout, shares.unwrap_or(3)));
        }
        if let Some(v) = values.iter().find(|v| v.trim().is_empty() || *v == "-") {
            return Err(KitError::Malformed(v.clone()));
        }
        let n = shares.map(usize::from).unwrap_or(values.len());
        if values.len() != n || n < 2 {
            return Err(KitError::Count {
                given: values.len(),
                shares: u8::try_from(n).unwrap_or(u8::MAX),
            });
        }
        let dirs: Vec<PathBuf> = values.iter().map(PathBuf::from).collect();
        let resolved: Vec<PathBuf> = dirs.iter().map(|d| resolve(d)).collect();
        for (i, a) in resolved.iter().enumerate() {
            if let Some(j) = resolved[..i]
                .iter()
                .position(|b| a.starts_with(b) || b.starts_with(a))
            {
                return Err(KitError::SamePlace(dirs[j].clone(), dirs[i].clone()));
            }
        }
        let home = resolve(home);
        for (d, r) in dirs.iter().zip(&resolved) {
            if r.starts_with(&home) {
                return Err(KitError::InHome(d.clone(), home));
            }
            if let Some(h) = r.ancestors().find(|a| is_mesh_home(a)) {
                return Err(KitError::InHome(d.clone(), h.to_path_buf()));
            }
            check_empty(d)?;
        }
        Ok((KitTarget::Dirs(dirs), u8::try_from(n).unwrap_or(u8::MAX)))
    }
}

/// `p` absolute and canonical as far as it exists (symbolic links
/// resolved), `.` and `..` resolved in what does not exist yet, so that two
/// spellings of one place compare equal before the directories exist.
fn resolve(p: &Path) -> PathBuf {
    use std::path::Component;
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
        if let Ok(canonical) = out.canonicalize() {
            out = canonical;
        }
    }
    out
}

/// A device home: its state and its lock (`mesh_account::store`).
fn is_mesh_home(dir: &Path) -> bool {
    dir.join("state.json").is_file() && dir.join("lock").is_file()
}

fn check_empty(dir: &Path) -> Result<(), KitError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            Some(_) => Err(KitError::NotEmpty(dir.to_path_buf())),
            None => Ok(()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(KitError::Io {
            path: dir.to_path_buf(),
            source: e,
        }),
    }
}

/// What one share's file says around the share, built in one buffer
/// sized once (`format!` grows its buffer and would leave copies of the
/// share in freed memory).
fn kit_text(
    address: &str,
    portal: &str,
    i: usize,
    n: usize,
    k: u8,
    share: &str,
) -> Zeroizing<String> {
    use std::fmt::Write as _;
    let mut text = Zeroizing::new(String::with_capacity(
        1024 + 2 * address.len() + portal.len() + share.len(),
    ));
    let _ = write!(
        text,
        "# Mesh recovery share {i} of {n} for {address}\n\
         # Any {k} of the {n} shares rebuild the account's root: the only way to take the\n\
         # account back if its administrator devices are lost or stolen. No device keeps it.\n\
         # Keep each share in a different place (a safe, a trusted person); never keep {k}\n\
         # of them together, or on a device that Mesh runs on.\n\
         # To recover, on a new device:\n\
         #   mesh account recover {address} --portal {portal} --from SHARE_FILE --from ANOTHER \\\n\
         #       --since TIME_BEFORE_THE_THEFT --revoke STOLEN_DEVICE\n\
         {share}\n"
    );
    text
}

/// A kit written to directories: the share files, and the directories
/// this run made (so that a failure leaves nothing behind).
#[derive(Debug, Default)]
pub struct Written {
    /// The share files, in share order.
    pub files: Vec<PathBuf>,
    made: Vec<PathBuf>,
}

impl Written {
    /// Remove the shares and the directories made for them.
    pub fn remove(&self) {
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
        for d in self.made.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Write the kit, one share per destination; nothing for standard output.
/// Refuses to overwrite a file: a kit is written once. On a failure, what
/// was written is removed.
pub fn write_kit(
    target: &KitTarget,
    address: &str,
    portal: &str,
    threshold: u8,
    shares: &[Zeroizing<String>],
) -> Result<Written, KitError> {
    let n = shares.len();
    let dirs = match target {
        KitTarget::Stdout => {
            let mut out = std::io::stdout().lock();
            for (i, s) in shares.iter().enumerate() {
                let text = kit_text(address, portal, i + 1, n, threshold, s);
                out.write_all(text.as_bytes())
                    .and_then(|_| out.write_all(b"\n"))
                    .map_err(|source| KitError::Io {
                        path: "standard output".into(),
                        source,
                    })?;
            }
            return Ok(Written::default());
        }
        KitTarget::Dirs(dirs) if dirs.len() == n => dirs,
        KitTarget::Dirs(dirs) => {
            return Err(KitError::Count {
                given: dirs.len(),
                shares: u8::try_from(n).unwrap_or(u8::MAX),
            })
        }
    };
    let mut written = Written::default();
    for (i, (s, dir)) in shares.iter().zip(dirs).enumerate() {
        let text = kit_text(address, portal, i + 1, n, threshold, s);
        let path = dir.join(format!("{address}-share-{}-of-{n}.txt", i + 1));
        if let Err(e) = write_share(dir, &path, &text, &mut written) {
            // Nothing half-written stays behind.
            written.remove();
            return Err(e);
        }
    }
    Ok(written)
}

fn write_share(dir: &Path, path: &Path, text: &str, written: &mut Written) -> Result<(), KitError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KitError::Io { path, source }
    };
    check_empty(dir)?;
    // The directories this creates, outermost first, to remove on failure.
    let missing: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
        .map(Path::to_path_buf)
        .collect();
    mesh_plugins::platform::private_dir_builder()
        .recursive(true)
        .create(dir)
        .map_err(io(dir))?;
    written.made.extend(missing.into_iter().rev());
    mesh_plugins::platform::private_file(std::fs::OpenOptions::new().write(true).create_new(true))
        .open(path)
        .and_then(|mut f| {
            written.files.push(path.to_path_buf());
            f.write_all(text.as_bytes()).and_then(|_| f.sync_all())
        })
        .map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mesh-kit-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("scratch");
        d
    }

    fn parse(values: &[&str], shares: Option<u8>, home: &Path) -> Result<u8, KitError> {
        let v: Vec<String> = values.iter().map(|s| s.to_string()).collect();
        KitTarget::parse(&v, shares, home).map(|(_, n)| n)
    }

    #[test]
    fn destinations_are_one_per_share_apart_and_outside_homes() {
        let d = scratch("parse");
        let home = d.join("home");
        std::fs::create_dir_all(&home).expect("home");
        let other = d.join("other-home");
        std::fs::create_dir_all(&other).expect("other");
        std::fs::write(other.join("state.json"), "{}").expect("state");
        std::fs::write(other.join("lock"), "").expect("lock");
        let p = |n: &str| d.join(n).display().to_string();
        assert_eq!(parse(&["-"], None, &home).expect("stdout"), 3);
        assert_eq!(parse(&[&p("a"), &p("b")], None, &home).expect("two"), 2);
        let refused: Vec<(Vec<String>, Option<u8>, &str)> = vec![
            (vec![p("a")], None, "1 recovery destination(s) for 1 shares"),
            (
                vec![p("a"), p("b")],
                Some(3),
                "2 recovery destination(s) for 3",
            ),
            (vec![p("a"), p("a/../a")], None, "one place"),
            (vec![p("a"), p("a/inner")], None, "one place"),
            (vec![p("a"), p("home/kit")], None, "inside the Mesh home"),
            (
                vec![p("a"), p("other-home/x/y")],
                None,
                "inside the Mesh home",
            ),
            (vec![p("a"), "-".into()], None, "not a recovery destination"),
            (vec![p("a"), p("")], None, "one place"),
        ];
        for (v, n, want) in refused {
            let v: Vec<&str> = v.iter().map(String::as_str).collect();
            let e = parse(&v, n, &home).expect_err(want);
            assert!(e.to_string().contains(want), "{v:?}: {e}");
            assert!(!e.hint().is_empty());
        }
        std::fs::create_dir_all(d.join("full")).expect("full");
        std::fs::write(d.join("full/x"), "x").expect("x");
        let e = parse(&[&p("a"), &p("full")], None, &home).expect_err("not empty");
        assert!(e.to_string().contains("written once"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_failed_kit_leaves_nothing() {
        let d = scratch("fail");
        let shares: Vec<Zeroizing<String>> =
            (0..3).map(|i| Zeroizing::new(format!("S{i}"))).collect();
        // The third destination is a file: the first two shares go again.
        std::fs::write(d.join("blocker"), "x").expect("blocker");
        let target = KitTarget::Dirs(vec![d.join("a/1"), d.join("b"), d.join("blocker/c")]);
        let e = write_kit(&target, "a@example.com", "http://p", 2, &shares).expect_err("fails");
        assert!(matches!(e, KitError::Io { .. }), "{e}");
        let left: Vec<_> = std::fs::read_dir(&d)
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("blocker")]);
        let target = KitTarget::Dirs(vec![d.join("a"), d.join("b"), d.join("c")]);
        let w = write_kit(&target, "a@example.com", "http://p", 2, &shares).expect("writes");
        assert_eq!(w.files.len(), 3);
        for (i, f) in w.files.iter().enumerate() {
            let text = std::fs::read_to_string(f).expect("share");
            assert!(text.ends_with(&format!("S{i}\n")), "{text}");
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}
