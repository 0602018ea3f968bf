//! Secrets a user hands to `mesh` (escrow shares, a secret to split, a
//! PIN) come from standard input, a file or a prompt, never from the
//! command line: argv is readable by every user (`/proc/*/cmdline`) and
//! lands in shell history.

use std::io::{IsTerminal, Read};
use std::path::Path;

use anyhow::Result;
use zeroize::Zeroizing;

use super::hinted;

/// Most lines and bytes read: shares are at most 15, a line a few hundred
/// bytes.
const MAX_LINES: usize = 64;
const MAX_BYTES: usize = 64 * 1024;

/// The error for a secret given on the command line (the old form).
pub(crate) fn on_argv(what: &str, example: &str) -> anyhow::Error {
    hinted(
        format!("{what} on the command line would be visible to other users and kept in shell history: not using it"),
        format!("pass it on standard input or with --from FILE, e.g. `{example}`"),
    )
}

/// Non-empty lines from `from` (a file) or standard input; at a terminal,
/// after a prompt that names `what`, until an empty line.
///
/// What is read may be a share of the account's root: it goes into one
/// buffer sized once (a growing one would leave copies in freed memory)
/// and cleared when dropped, read without std's standard-input buffer,
/// which is never cleared (a duplicate of descriptor 0, read directly).
pub(crate) fn read_lines(from: Option<&Path>, what: &str) -> Result<Zeroizing<Vec<String>>> {
    let mut raw = Zeroizing::new(Vec::with_capacity(MAX_BYTES + 1));
    match from {
        Some(p) => {
            let unreadable = |e: std::io::Error| {
                let hint = match e.kind() {
                    std::io::ErrorKind::IsADirectory => "give a file, not a directory",
                    std::io::ErrorKind::NotFound => "check the path: no such file",
                    _ => "give a file this user can read",
                };
                hinted(format!("cannot read {}: {e}", p.display()), hint)
            };
            let f = std::fs::File::open(p).map_err(unreadable)?;
            f.take(MAX_BYTES as u64 + 1)
                .read_to_end(&mut raw)
                .map_err(unreadable)?;
        }
        None if std::io::stdin().is_terminal() => {
            eprintln!("mesh: enter {what}, one per line, then an empty line:");
            read_until_blank_line(&mut raw_stdin()?, &mut raw)?;
        }
        None => {
            raw_stdin()?
                .take(MAX_BYTES as u64 + 1)
                .read_to_end(&mut raw)?;
        }
    }
    if raw.len() > MAX_BYTES {
        return Err(hinted(
            format!("more than {MAX_BYTES} bytes of {what}"),
            "give only the lines asked for",
        ));
    }
    let text = std::str::from_utf8(&raw).map_err(|_| {
        hinted(
            format!("{what} is not text"),
            "give the lines as printed by mesh",
        )
    })?;
    let lines: Zeroizing<Vec<String>> = Zeroizing::new(
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect(),
    );
    if lines.is_empty() {
        return Err(hinted(
            format!("no {what} given"),
            "pass them on standard input, one per line, or with --from FILE",
        ));
    }
    if lines.len() > MAX_LINES {
        return Err(hinted(
            format!("{} lines of {what} (at most {MAX_LINES})", lines.len()),
            "give only the lines asked for",
        ));
    }
    Ok(lines)
}

/// Standard input, unbuffered: a duplicate of descriptor 0 (of the
/// standard input handle on Windows).
fn raw_stdin() -> std::io::Result<std::fs::File> {
    #[cfg(unix)]
    use std::os::fd::AsFd as AsRaw;
    #[cfg(windows)]
    use std::os::windows::io::AsHandle as AsRaw;
    #[cfg(unix)]
    let owned = std::io::stdin().as_fd().try_clone_to_owned()?;
    #[cfg(windows)]
    let owned = std::io::stdin().as_handle().try_clone_to_owned()?;
    Ok(std::fs::File::from(owned))
}

/// Read (a terminal gives a line per read) until a blank line, the end, or
/// more than [`MAX_BYTES`]; `raw` has room for `MAX_BYTES + 1`.
fn read_until_blank_line(input: &mut impl Read, raw: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = Zeroizing::new([0u8; 1024]);
    loop {
        let n = input.read(&mut chunk[..])?;
        let room = (MAX_BYTES + 1).saturating_sub(raw.len());
        raw.extend_from_slice(&chunk[..n.min(room)]);
        let last_line = raw
            .strip_suffix(b"\n")
            .map(|r| r.rsplit(|b| *b == b'\n').next().unwrap_or_default());
        if n == 0
            || raw.len() > MAX_BYTES
            || last_line.is_some_and(|l| l.iter().all(u8::is_ascii_whitespace))
        {
            return Ok(());
        }
    }
}

/// The lines of several files (a recovery kit's shares), or standard
/// input when none is named.
pub(crate) fn read_lines_from(
    files: &[std::path::PathBuf],
    what: &str,
) -> Result<Zeroizing<Vec<String>>> {
    if files.is_empty() {
        return read_lines(None, what);
    }
    let mut all = Zeroizing::new(Vec::new());
    for f in files {
        all.extend(read_lines(Some(f), what)?.iter().cloned());
    }
    Ok(all)
}

/// Exactly one secret line.
pub(crate) fn read_one(from: Option<&Path>, what: &str) -> Result<Zeroizing<String>> {
    let mut lines = read_lines(from, what)?;
    if lines.len() != 1 {
        return Err(hinted(
            format!("{} lines given for {what}, one expected", lines.len()),
            "give it on one line",
        ));
    }
    Ok(Zeroizing::new(std::mem::take(&mut lines[0])))
}
