//! The device's signature audit log on disk (PROTOCOL.md §16):
//! `<home>/audit.log`, one record per line (the record's exact bytes in
//! base64), in chain order. The agent daemon is its only writer (it holds
//! the home's lock); readers (`mesh audit`) read complete lines only.
//!
//! Opening checks the whole chain: a torn last line (a crash in the middle
//! of an append) is cut off, so the log goes on from the last whole record;
//! anything else that does not parse, or a record out of sequence, is a
//! damaged log, reported with the record it stops at and never rewritten.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
#[cfg(unix)]
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use data_encoding::BASE64;
use mesh_core::audit::{self, Link, Record, GENESIS, MAX_RECORD};

/// The log's file name in the home.
pub const FILE: &str = "audit.log";

/// What went wrong with the log.
#[derive(Debug, thiserror::Error)]
pub enum AuditLogError {
    /// The file system said no.
    #[error("audit log {path}: {source}")]
    Io {
        /// The log.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A record in the middle of the log does not parse or is out of
    /// sequence: the file was changed outside the agent.
    #[error("audit log {path} is damaged at record {seq}: {detail}")]
    Damaged {
        /// The log.
        path: PathBuf,
        /// The first record that is not right.
        seq: u64,
        /// What is wrong with it.
        detail: String,
    },
    /// A record too large to log.
    #[error("an audit record of {0} bytes is over the {MAX_RECORD}-byte bound")]
    TooLarge(usize),
    /// Another agent of this home writes the log.
    #[error("audit log {0} is written by another agent of this home")]
    Busy(PathBuf),
}

impl AuditLogError {
    /// What the user can do.
    pub fn hint(&self) -> Option<String> {
        match self {
            AuditLogError::Io { .. } => {
                Some("check that the home exists and that this user may write there".into())
            }
            AuditLogError::Damaged { .. } => Some(
                "something other than the agent changed the file; keep a copy for inspection \
                 and compare with `mesh audit verify` on an administrator device"
                    .into(),
            ),
            AuditLogError::TooLarge(_) => None,
            AuditLogError::Busy(_) => Some(
                "one agent per home logs its signatures: stop the other (`mesh agent stop`) to log this one's"
                    .into(),
            ),
        }
    }
}

/// The log, open for appending.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: File,
    next: u64,
    head: Link,
}

/// The whole records of a log and where the last one ends.
struct Scan {
    records: Vec<Vec<u8>>,
    head: Link,
    /// Bytes of whole lines.
    good: u64,
    /// Whole records.
    count: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuditLogError + '_ {
    move |source| AuditLogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn scan(path: &Path, keep: impl Fn(u64) -> bool) -> Result<Scan, AuditLogError> {
    let mut s = Scan {
        records: Vec::new(),
        head: GENESIS,
        good: 0,
        count: 0,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(s),
        Err(e) => return Err(io(path)(e)),
    };
    let mut r = BufReader::new(file);
    let mut line = Vec::new();
    let mut seq = 0u64;
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line).map_err(io(path))?;
        if n == 0 || line.last() != Some(&b'\n') {
            // The end, or a torn last line: the log goes on before it.
            return Ok(s);
        }
        let damaged = |detail: String| AuditLogError::Damaged {
            path: path.to_path_buf(),
            seq,
            detail,
        };
        let bytes = BASE64
            .decode(&line[..line.len() - 1])
            .map_err(|e| damaged(format!("not base64 ({e})")))?;
        let rec: Record =
            serde_json::from_slice(&bytes).map_err(|e| damaged(format!("not a record ({e})")))?;
        if rec.seq != seq {
            return Err(damaged(format!("it says it is record {}", rec.seq)));
        }
        s.head = audit::link(&s.head, &bytes);
        s.good += n as u64;
        if keep(seq) {
            s.records.push(bytes);
        }
        seq += 1;
        s.count = seq;
    }
}

impl AuditLog {
    /// Open (or create) the log in `home`, checking its chain and cutting
    /// off a torn last line.
    pub fn open(home: &Path) -> Result<AuditLog, AuditLogError> {
        let path = home.join(FILE);
        let s = scan(&path, |_| false)?;
        let mut opts = OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        opts.mode(0o600);
        let file = opts.open(&path).map_err(io(&path))?;
        // One writer: two would each number their own records.
        if file.try_lock().is_err() {
            return Err(AuditLogError::Busy(path));
        }
        if file.metadata().map_err(io(&path))?.len() != s.good {
            file.set_len(s.good).map_err(io(&path))?;
        }
        Ok(AuditLog {
            path,
            file,
            next: s.count,
            head: s.head,
        })
    }

    /// The seq the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// The link after the last record.
    pub fn head(&self) -> Link {
        self.head
    }

    /// Append `record` (which must carry [`AuditLog::next_seq`]).
    pub fn append(&mut self, record: &Record) -> Result<(), AuditLogError> {
        debug_assert_eq!(record.seq, self.next);
        let bytes = serde_json::to_vec(record).unwrap_or_default();
        if bytes.len() > MAX_RECORD {
            return Err(AuditLogError::TooLarge(bytes.len()));
        }
        let mut line = BASE64.encode(&bytes).into_bytes();
        line.push(b'\n');
        self.file.write_all(&line).map_err(io(&self.path))?;
        self.head = audit::link(&self.head, &bytes);
        self.next += 1;
        Ok(())
    }

    /// Flush what was appended to the disk.
    pub fn sync(&self) -> Result<(), AuditLogError> {
        self.file.sync_data().map_err(io(&self.path))
    }
}

/// The records of the log in `home` from seq `from` on (exact bytes), and
/// the chain's link after the last whole record. For readers: a line being
/// written is not read.
pub fn read(home: &Path, from: u64) -> Result<(Vec<Vec<u8>>, Link), AuditLogError> {
    let s = scan(&home.join(FILE), |seq| seq >= from)?;
    Ok((s.records, s.head))
}

#[cfg(test)]
#[path = "audit_log_tests.rs"]
mod tests;
