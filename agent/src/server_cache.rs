//! The private cache of what servers fetch (`mesh ssh authorized-keys`,
//! `authorized-principals` and `krl --account` with `--cache DIR`): one
//! file per account.
//!
//! Format 2 is two lines of JSON:
//!
//! 1. the header: `format`, the fetch time, the verified [`History`] (the
//!    lower bound of every later answer), the digest of the verified
//!    profile and the [`SshdAnswer`] derived from the entries at that
//!    history;
//! 2. the entries the answer was derived from (the latest per device and
//!    per published uid, the access list, the profile), with the same
//!    history.
//!
//! A login that finds nothing new at the portal reads the header alone;
//! the entries are read only when something arrived (or for a KRL). A
//! format-1 file (the entries alone, one JSON object, as mesh wrote before)
//! is read as entries: its history stays the lower bound, and the next
//! write turns it into format 2. A format this build does not know is
//! refused with a hint, never guessed at.
//!
//! What the cache holds was verified when it was kept; the fetch time is
//! signed by nothing. So only a directory and a file of this user that
//! others cannot write are read (checked here), and a fetch time ahead of
//! the clock is refused (by the caller, which knows the clock's slack).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use mesh_account::AccountError;
use mesh_core::history::History;
use mesh_ssh::sshd::SshdAnswer;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

type Result<T> = std::result::Result<T, AccountError>;

/// The format this build writes.
pub const FORMAT: u32 = 2;

/// Most bytes of the header line: 1,000 devices' lines take about 120 kB.
const MAX_HEADER: u64 = 32 * 1024 * 1024;

/// Most bytes of the entries line (the client's answers are capped at
/// 32 MiB a page; the cache keeps only the latest entry of each kind).
const MAX_ENTRIES: u64 = 1024 * 1024 * 1024;

/// The first line of a format-2 cache file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// [`FORMAT`].
    pub format: u32,
    /// When the portal last answered and the answer verified (seconds
    /// since the Unix epoch; signed by nothing).
    pub fetched: u64,
    /// The verified history the answer was derived at.
    pub history: History,
    /// SHA-256 of the signed bytes of the profile the answer was verified
    /// against (base64url): a portal serving these very bytes again serves
    /// the verified profile, so it need not be parsed again (empty: none,
    /// the next login downloads and verifies).
    #[serde(default)]
    pub profile: String,
    /// What sshd asks, derived from the entries at `history`.
    pub answer: SshdAnswer,
    /// The administrators' heartbeat promise at `history`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<mesh_core::freshness::Heartbeat>,
}

/// Only the format field, to tell the formats apart.
#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    format: Option<u32>,
}

/// A cache file, opened and checked, its first line read.
#[derive(Debug)]
pub struct Opened {
    path: PathBuf,
    first: Vec<u8>,
    header: Option<Header>,
    rest: BufReader<File>,
}

fn damaged(f: &Path, detail: impl std::fmt::Display) -> AccountError {
    AccountError::usage(
        format!("the cache {} is damaged: {detail}", f.display()),
        "remove the file; the next login with the portal reachable writes it again",
    )
}

/// The cache file `f`, if there is one: refused when it or its directory
/// is not this user's or others can write it.
pub fn open(f: &Path) -> Result<Option<Opened>> {
    let Ok(meta) = std::fs::metadata(f) else {
        return Ok(None);
    };
    let dir = f.parent().unwrap_or(Path::new("."));
    for (path, m) in [(dir, std::fs::metadata(dir).ok()), (f, Some(meta))] {
        let Some(m) = m else { continue };
        if !mesh_plugins::platform::owned_unwritable_by_others(&m) {
            return Err(AccountError::usage(
                format!(
                    "the cache {} is writable by others or not owned by this user: not reading it",
                    path.display()
                ),
                "give --cache a directory only this user can write (mode 0700)",
            ));
        }
    }
    let file = File::open(f).map_err(|e| damaged(f, e))?;
    let mut rest = BufReader::new(file);
    let mut first = Vec::new();
    (&mut rest)
        .take(MAX_HEADER)
        .read_until(b'\n', &mut first)
        .map_err(|e| damaged(f, e))?;
    if first.last() != Some(&b'\n') && first.len() as u64 >= MAX_HEADER {
        return Err(damaged(
            f,
            format!("its first line is over {MAX_HEADER} bytes"),
        ));
    }
    let probe: Probe = serde_json::from_slice(&first).map_err(|e| damaged(f, e))?;
    let header = match probe.format {
        // Format 1: the entries alone.
        None => None,
        Some(FORMAT) => Some(serde_json::from_slice(&first).map_err(|e| damaged(f, e))?),
        Some(n) => {
            return Err(AccountError::usage(
                format!(
                "the cache {} is in format {n}, which this mesh does not know (it writes {FORMAT})",
                f.display()
            ),
                "a newer mesh wrote it: use that one, or remove the file to fetch again",
            ))
        }
    };
    Ok(Some(Opened {
        path: f.to_path_buf(),
        first,
        header,
        rest,
    }))
}

impl Opened {
    /// The header (none for a format-1 file).
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// The entries: the second line (format 2) or the whole file (format 1).
    pub fn entries<T: DeserializeOwned>(mut self) -> Result<T> {
        if self.header.is_none() {
            return serde_json::from_slice(&self.first).map_err(|e| damaged(&self.path, e));
        }
        let mut line = Vec::new();
        (&mut self.rest)
            .take(MAX_ENTRIES)
            .read_until(b'\n', &mut line)
            .map_err(|e| damaged(&self.path, e))?;
        serde_json::from_slice(&line).map_err(|e| damaged(&self.path, e))
    }

    /// Write the file again with the header's fetch time renewed and the
    /// entries as they are (not parsed).
    pub fn renew(mut self, fetched: u64) -> Result<()> {
        let Some(mut header) = self.header.take() else {
            return Ok(());
        };
        header.fetched = fetched;
        let mut entries = Vec::new();
        (&mut self.rest)
            .take(MAX_ENTRIES)
            .read_to_end(&mut entries)
            .map_err(|e| damaged(&self.path, e))?;
        write_raw(&self.path, &header, &entries)
    }
}

/// Write a format-2 file: `header`, then `entries` (JSON).
pub fn write<T: Serialize>(f: &Path, header: &Header, entries: &T) -> Result<()> {
    let mut body = serde_json::to_vec(entries).map_err(|e| damaged(f, e))?;
    body.push(b'\n');
    write_raw(f, header, &body)
}

fn write_raw(f: &Path, header: &Header, entries: &[u8]) -> Result<()> {
    if let Some(dir) = f.parent() {
        if !dir.exists() {
            mesh_account::store::make_private_dir(dir)?;
        }
    }
    let mut out = serde_json::to_vec(header).map_err(|e| damaged(f, e))?;
    out.push(b'\n');
    out.extend_from_slice(entries);
    mesh_account::store::write_atomic(f, &out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn private_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mesh-cache-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        mesh_account::store::make_private_dir(&d).expect("dir");
        d
    }

    fn header() -> Header {
        Header {
            format: FORMAT,
            fetched: 7,
            history: History::default(),
            profile: String::new(),
            answer: SshdAnswer {
                principals: vec!["alice".into()],
                lines: vec!["ssh-ed25519 AAAA mesh:laptop@alice@example.com".into()],
                ca: "ssh-ed25519 BBBB".into(),
            },
            heartbeat: None,
        }
    }

    #[test]
    fn the_header_is_read_without_the_entries_and_renewal_keeps_them() {
        let d = private_dir("roundtrip");
        let f = d.join("a.json");
        let entries = serde_json::json!({"devices": {"x": 1}});
        write(&f, &header(), &entries).expect("write");
        let o = open(&f).expect("open").expect("there");
        assert_eq!(o.header(), Some(&header()));
        o.renew(9).expect("renew");
        let o = open(&f).expect("open").expect("there");
        assert_eq!(o.header().map(|h| h.fetched), Some(9));
        let back: serde_json::Value = o.entries().expect("entries");
        assert_eq!(back, entries);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_format_1_file_is_read_as_entries_and_an_unknown_format_refused() {
        let d = private_dir("formats");
        let f = d.join("a.json");
        mesh_account::store::write_atomic(&f, br#"{"fetched":3,"devices":{}}"#).expect("w");
        let o = open(&f).expect("open").expect("there");
        assert!(o.header().is_none());
        let v: serde_json::Value = o.entries().expect("entries");
        assert_eq!(v["fetched"], 3);
        mesh_account::store::write_atomic(&f, b"{\"format\":3}\n{}\n").expect("w");
        let e = open(&f).expect_err("format 3").to_string();
        assert!(e.contains("format 3"), "{e}");
        mesh_account::store::write_atomic(&f, b"not json").expect("w");
        let e = open(&f).expect_err("damaged").to_string();
        assert!(e.contains("damaged"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
