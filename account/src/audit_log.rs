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
    /// Where the next record goes (counting those not yet written).
    next: u64,
    head: Link,
    /// Lines appended since the last [`AuditLog::sync`], and the log as it
    /// stood on disk then (to come back to when a write fails).
    buf: Vec<u8>,
    on_disk: Position,
}

/// A record's number, and that the members every record has are there,
/// read without copying the rest.
#[derive(serde::Deserialize)]
struct SeqOnly {
    #[serde(rename = "Seq")]
    seq: u64,
    #[serde(rename = "Time")]
    _time: u64,
    #[serde(rename = "Key")]
    _key: serde::de::IgnoredAny,
    #[serde(rename = "Decision")]
    _decision: serde::de::IgnoredAny,
}

/// A place in the log: the byte offset of a line, its seq, and the link
/// before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// Byte offset of the line.
    pub offset: u64,
    /// Its record's seq.
    pub seq: u64,
    /// The link before it.
    pub head: Link,
}

impl Default for Position {
    fn default() -> Position {
        Position {
            offset: 0,
            seq: 0,
            head: GENESIS,
        }
    }
}

/// The records kept by a scan and where it stopped (after the last whole
/// line it read).
struct Scan {
    records: Vec<Vec<u8>>,
    end: Position,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuditLogError + '_ {
    move |source| AuditLogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How much a scan keeps: records and their bytes (at least one record).
#[derive(Clone, Copy, Debug)]
pub struct Take {
    /// Records, at most.
    pub records: usize,
    /// Bytes of records, at most (a first record larger than this is
    /// still taken).
    pub bytes: usize,
}

impl Take {
    /// Everything.
    pub const ALL: Take = Take {
        records: usize::MAX,
        bytes: usize::MAX,
    };
}

/// Read the log from `at`, keeping records from seq `keep_from` on, until
/// `take` is full (or the end, or before a torn last line).
fn scan(path: &Path, at: Position, keep_from: u64, take: Take) -> Result<Scan, AuditLogError> {
    let mut s = Scan {
        records: Vec::new(),
        end: at,
    };
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(s),
        Err(e) => return Err(io(path)(e)),
    };
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(at.offset)).map_err(io(path))?;
    let mut r = BufReader::new(file);
    let mut line = Vec::new();
    let mut kept = 0usize;
    while s.records.len() < take.records {
        line.clear();
        let n = r.read_until(b'\n', &mut line).map_err(io(path))?;
        if n == 0 || line.last() != Some(&b'\n') {
            // The end, or a torn last line: the log goes on before it.
            break;
        }
        let seq = s.end.seq;
        let damaged = |detail: String| AuditLogError::Damaged {
            path: path.to_path_buf(),
            seq,
            detail,
        };
        let bytes = BASE64
            .decode(&line[..line.len() - 1])
            .map_err(|e| damaged(format!("not base64 ({e})")))?;
        // Its number is all a reader needs here (what it says is the
        // channel's, checked where it is shown).
        let rec: SeqOnly =
            serde_json::from_slice(&bytes).map_err(|e| damaged(format!("not a record ({e})")))?;
        if rec.seq != seq {
            return Err(damaged(format!("it says it is record {}", rec.seq)));
        }
        let end = Position {
            offset: s.end.offset + n as u64,
            seq: seq + 1,
            head: audit::link(&s.end.head, &bytes),
        };
        if seq >= keep_from {
            if !s.records.is_empty() && kept + bytes.len() > take.bytes {
                break;
            }
            kept += bytes.len();
            s.records.push(bytes);
        }
        s.end = end;
    }
    Ok(s)
}

impl AuditLog {
    /// Open (or create) the log in `home`, checking its chain and cutting
    /// off a torn last line.
    pub fn open(home: &Path) -> Result<AuditLog, AuditLogError> {
        let path = home.join(FILE);
        let s = scan(&path, Position::default(), u64::MAX, Take::ALL)?;
        let mut opts = OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        opts.mode(0o600);
        let file = opts.open(&path).map_err(io(&path))?;
        // One writer: two would each number their own records.
        if file.try_lock().is_err() {
            return Err(AuditLogError::Busy(path));
        }
        if file.metadata().map_err(io(&path))?.len() != s.end.offset {
            file.set_len(s.end.offset).map_err(io(&path))?;
        }
        Ok(AuditLog {
            path,
            file,
            next: s.end.seq,
            head: s.end.head,
            buf: Vec::new(),
            on_disk: s.end,
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

    /// Append `record` (which must carry [`AuditLog::next_seq`]); it is
    /// written with the others of its burst at [`AuditLog::sync`].
    pub fn append(&mut self, record: &Record) -> Result<(), AuditLogError> {
        debug_assert_eq!(record.seq, self.next);
        let bytes = serde_json::to_vec(record).unwrap_or_default();
        if bytes.len() > MAX_RECORD {
            return Err(AuditLogError::TooLarge(bytes.len()));
        }
        let at = self.buf.len();
        self.buf.resize(at + BASE64.encode_len(bytes.len()), 0);
        BASE64.encode_mut(&bytes, &mut self.buf[at..]);
        self.buf.push(b'\n');
        self.head = audit::link(&self.head, &bytes);
        self.next += 1;
        Ok(())
    }

    /// Write what was appended, in one write, and flush it to the disk.
    pub fn sync(&mut self) -> Result<(), AuditLogError> {
        self.write()?;
        self.file.sync_data().map_err(io(&self.path))
    }

    /// Write what was appended, in one write (readers see it; a crash of
    /// the system, not of the agent, may still lose it until
    /// [`AuditLog::sync`]). When the write fails, the log is as it was
    /// before the burst (a part written is cut off) and the burst's records
    /// are lost, said by the error: the next ones take their numbers, so
    /// the chain stays whole.
    pub fn write(&mut self) -> Result<(), AuditLogError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        match self.file.write_all(&self.buf) {
            Ok(()) => {
                self.on_disk = Position {
                    offset: self.on_disk.offset + self.buf.len() as u64,
                    seq: self.next,
                    head: self.head,
                };
                self.buf.clear();
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.on_disk.offset);
                self.next = self.on_disk.seq;
                self.head = self.on_disk.head;
                self.buf.clear();
                Err(io(&self.path)(e))
            }
        }
    }
}

/// The records of the log in `home` from seq `from` on (exact bytes), and
/// the chain's link after the last whole record. For readers: a line being
/// written is not read.
pub fn read(home: &Path, from: u64) -> Result<(Vec<Vec<u8>>, Link), AuditLogError> {
    let s = scan(&home.join(FILE), Position::default(), from, Take::ALL)?;
    Ok((s.records, s.end.head))
}

/// The records `take` allows from `at` (a position an earlier read
/// returned), skipping those before seq `keep_from`, and the position after
/// them: a sender reads on from where it stopped, not the whole log.
pub fn read_at(
    home: &Path,
    at: Position,
    keep_from: u64,
    take: Take,
) -> Result<(Vec<Vec<u8>>, Position), AuditLogError> {
    let s = scan(&home.join(FILE), at, keep_from, take)?;
    Ok((s.records, s.end))
}

#[cfg(test)]
#[path = "audit_log_tests.rs"]
mod tests;
