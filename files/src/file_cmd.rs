//! `mesh files encrypt|decrypt`: age files for people without `age`. The
//! output appears whole or not at all: it is written to a temporary file
//! next to it and renamed once every chunk has authenticated.

use std::io::{BufReader, Read, Write};
use std::path::Path;

use mesh_plugins::{AccountView, DeviceHost, PluginError};
use zeroize::Zeroizing;

use crate::device::{self, FILE_KEY_LEN};
use crate::encoding::account_tag;
use crate::{age_file, FilesError};

/// What one command did, for its report.
#[derive(Debug, serde::Serialize)]
pub struct Done {
    /// The file written.
    pub output: String,
    /// The epoch of the account's file key it is (or was) encrypted to.
    pub epoch: u32,
}

/// Encrypt `input` ("-": standard input) to the account's current epoch.
pub fn encrypt(view: &AccountView, input: &Path, output: &Path) -> Result<Done, FilesError> {
    let r = device::recipient(view)?;
    let mut fk = Zeroizing::new([0u8; FILE_KEY_LEN]);
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut fk[..]);
    let stanza = device::wrap(&r, &fk[..])?;
    let mut src = open(input)?;
    write_atomic(output, |out| {
        age_file::encrypt(&[stanza], &fk, &mut src, out)
    })?;
    Ok(Done {
        output: output.display().to_string(),
        epoch: r.epoch,
    })
}

/// Decrypt an age file for the account with the epochs this device holds.
pub fn decrypt(
    host: &dyn DeviceHost,
    view: &AccountView,
    input: &Path,
    output: &Path,
) -> Result<Done, FilesError> {
    let mut src = BufReader::with_capacity(age_file::CHUNK, open(input)?);
    let header = age_file::read_header(&mut src)?;
    let fk = device::unwrap(
        &header.stanzas,
        &account_tag(&view.profile_udf),
        &view.address,
        &device::held(host, view)?,
    )?;
    let epoch = header
        .stanzas
        .iter()
        .find(|s| s.tag == crate::encoding::PLUGIN_NAME)
        .and_then(|s| s.args.get(1)?.parse().ok())
        .unwrap_or_default();
    write_atomic(output, |out| age_file::decrypt(&header, &fk, &mut src, out))?;
    Ok(Done {
        output: output.display().to_string(),
        epoch,
    })
}

fn open(input: &Path) -> Result<Box<dyn Read>, FilesError> {
    if input == Path::new("-") {
        return Ok(Box::new(std::io::stdin().lock()));
    }
    let f = std::fs::File::open(input).map_err(PluginError::io(input.display()))?;
    Ok(Box::new(f))
}

/// Write `path` through `f`, atomically: a 0600 temporary file in the same
/// directory, synced and renamed; removed when `f` fails.
fn write_atomic(
    path: &Path,
    f: impl FnOnce(&mut dyn Write) -> Result<(), FilesError>,
) -> Result<(), FilesError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let mut rnd = [0u8; 6];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut rnd);
    let tmp = dir.join(format!(
        ".{name}.{}.tmp",
        data_encoding::HEXLOWER.encode(&rnd)
    ));
    let io = || PluginError::io(path.display());
    let file = mesh_plugins::platform::private_file(
        std::fs::OpenOptions::new().write(true).create_new(true),
    )
    .open(&tmp)
    .map_err(io())?;
    let result = (|| {
        let mut w = std::io::BufWriter::with_capacity(age_file::CHUNK, file);
        f(&mut w)?;
        let file = w.into_inner().map_err(|e| io()(e.into_error()))?;
        file.sync_all().map_err(io())?;
        std::fs::rename(&tmp, path).map_err(io())?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
