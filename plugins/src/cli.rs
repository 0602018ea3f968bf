//! What channels' subcommands share with the host's own commands: data on
//! standard output (a closed pipe ends the program quietly, as `mesh … |
//! head` expects), `--json`, input files or standard input, and files
//! replaced atomically. The errors read as the host's do.

use std::io::{Read, Write};
use std::path::Path;

use crate::{AccountView, CommandContext, CommandError, DeviceHost, PluginError};

/// [`CommandContext::with_view`] for a closure that runs once and returns
/// a value (what most subcommands print).
pub fn with_view<T>(
    ctx: &dyn CommandContext,
    f: impl FnOnce(&dyn DeviceHost, &AccountView) -> Result<T, CommandError>,
) -> Result<T, CommandError> {
    let (mut f, mut out) = (Some(f), None);
    ctx.with_view(&mut |dh, view| {
        if let Some(f) = f.take() {
            out = Some(f(dh, view)?);
        }
        Ok(())
    })?;
    out.ok_or_else(|| CommandError::new("the host did not run the command", None))
}

/// Print a result: JSON when asked, else the text (nothing when empty).
pub fn emit(json: bool, value: serde_json::Value, text: &str) {
    if json {
        print_line(&value.to_string());
    } else if !text.is_empty() {
        print_line(text);
    }
}

/// A line on standard output.
pub fn print_line(s: &str) {
    let mut o = std::io::stdout().lock();
    if let Err(e) = writeln!(o, "{s}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

/// Bytes on standard output.
pub fn print_bytes(data: &[u8]) -> Result<(), CommandError> {
    let mut o = std::io::stdout().lock();
    match o.write_all(data).and_then(|()| o.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => r.map_err(|e| context("writing standard output", e)),
    }
}

/// A file's bytes, or standard input's.
pub fn read_input(file: Option<&Path>) -> Result<Vec<u8>, CommandError> {
    let mut data = Vec::new();
    match file {
        None => std::io::stdin()
            .read_to_end(&mut data)
            .map(drop)
            .map_err(|e| context("reading standard input", e))?,
        Some(f) if f.as_os_str() == "-" => {
            return read_input(None);
        }
        Some(f) => data = read(f)?,
    }
    Ok(data)
}

/// A file's bytes (`cannot read FILE: …`).
pub fn read(file: &Path) -> Result<Vec<u8>, CommandError> {
    std::fs::read(file).map_err(|e| context(&format!("cannot read {}", file.display()), e))
}

/// A file's text (`cannot read FILE: …`).
pub fn read_to_string(file: &Path) -> Result<String, CommandError> {
    std::fs::read_to_string(file)
        .map_err(|e| context(&format!("cannot read {}", file.display()), e))
}

/// Bytes to a file (atomically) or to standard output.
pub fn write_opt(file: Option<&Path>, data: &[u8]) -> Result<(), CommandError> {
    match file {
        Some(f) => write_atomic(f, data),
        None => print_bytes(data),
    }
}

/// Write `data` to `path` atomically, as the host writes its home: a new
/// 0600 file next to it, synced, renamed over `path`, the directory synced.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), CommandError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let mut rnd = [0u8; 6];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut rnd);
    let tmp = dir.join(format!(".{name}.{}.tmp", hex(&rnd)));
    let result = (|| {
        // Errors name the file being replaced, never the temporary one.
        let mut f =
            crate::platform::private_file(std::fs::OpenOptions::new().write(true).create_new(true))
                .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|source: std::io::Error| {
        let _ = std::fs::remove_file(&tmp);
        let e = PluginError::Io {
            what: path.display().to_string(),
            source,
        };
        CommandError::of(
            &e,
            Some("check that the path exists and that this user may write there".into()),
        )
    })
}

/// `what: cause`, with the hint for a file that could not be used.
pub fn context(what: &str, e: std::io::Error) -> CommandError {
    let hint = crate::command::io_hint(e.kind()).map(str::to_string);
    CommandError::new(format!("{what}: {e}"), hint)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// "90", "30s", "10m", "2h", "7d" as seconds (clap's `value_parser`).
pub fn parse_duration(s: &str) -> std::result::Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        Some((i, 'd')) => (&s[..i], 86400),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (e.g. 90s, 10m, 2h, 7d)"))?;
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("'{s}' is not a usable duration (a positive number with s, m, h or d: 90s, 30m, 1h, 2d)"))
}
