//! Secrets a user hands to `mesh` (escrow shares, a secret to split, a
//! PIN) come from standard input, a file or a prompt, never from the
//! command line: argv is readable by every user (`/proc/*/cmdline`) and
//! lands in shell history.

use std::io::{BufRead, IsTerminal, Read};
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
pub(crate) fn read_lines(from: Option<&Path>, what: &str) -> Result<Zeroizing<Vec<String>>> {
    let mut raw = Zeroizing::new(Vec::new());
    match from {
        Some(p) => {
            let f = std::fs::File::open(p).map_err(|e| {
                hinted(
                    format!("cannot read {}: {e}", p.display()),
                    "give a readable file",
                )
            })?;
            f.take(MAX_BYTES as u64 + 1).read_to_end(&mut raw)?;
        }
        None if std::io::stdin().is_terminal() => {
            eprintln!("mesh: enter {what}, one per line, then an empty line:");
            let mut line = Zeroizing::new(String::new());
            let stdin = std::io::stdin();
            let mut lock = stdin.lock();
            while lock.read_line(&mut line)? > 0 && !line.trim().is_empty() {
                raw.extend_from_slice(line.as_bytes());
                line.clear();
                if raw.len() > MAX_BYTES {
                    break;
                }
            }
        }
        None => {
            std::io::stdin()
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
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
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
    Ok(Zeroizing::new(lines))
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
