//! The account's envelopes (access list, catalog and application entries)
//! live in a file of their own, apart from the header in `state.json`.
//!
//! At 1,000 devices the envelopes are 8 MB and the header a few hundred
//! bytes; a sync that finds nothing new reads only the header
//! (docs/BENCHMARKS.md). The file is named by the digest of its content and
//! written before the header that names it, so that replacing both is one
//! atomic step: a crash leaves the old header naming the old file, or the
//! new header naming the new one; a file no header names is removed at the
//! next save.

use std::collections::BTreeMap;
use std::path::Path;

use mesh_core::envelope::Signed;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{write_atomic, StoreError};

/// The envelopes of an account state.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Envelopes {
    #[serde(default)]
    pub access: Option<Signed>,
    #[serde(default)]
    pub devices: BTreeMap<String, Signed>,
    #[serde(default)]
    pub applications: BTreeMap<String, Signed>,
}

const PREFIX: &str = "envelopes-";
const SUFFIX: &str = ".json";

fn name_of(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    let hex: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{PREFIX}{hex}{SUFFIX}")
}

fn corrupt(path: &Path, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

/// Write `e` into `home` and return the name the header must carry. A
/// file of that name is written again all the same: one that was damaged
/// is repaired by the next save instead of being named again.
pub(crate) fn write(home: &Path, e: &Envelopes) -> Result<String, StoreError> {
    let bytes = serde_json::to_vec(e).map_err(|x| corrupt(home, x))?;
    let name = name_of(&bytes);
    write_atomic(&home.join(&name), &bytes)?;
    Ok(name)
}

/// Read the file a header names, checking that its content is what the
/// name says.
pub(crate) fn read(home: &Path, name: &str) -> Result<Envelopes, StoreError> {
    let well_formed = name
        .strip_prefix(PREFIX)
        .and_then(|n| n.strip_suffix(SUFFIX));
    if !well_formed.is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit())) {
        return Err(corrupt(
            &home.join("state.json"),
            format!("the state names {name:?} as its envelopes"),
        ));
    }
    let path = home.join(name);
    let bytes = std::fs::read(&path).map_err(|x| corrupt(&path, x))?;
    if name_of(&bytes) != name {
        return Err(corrupt(&path, "its content is not what its name says"));
    }
    serde_json::from_slice(&bytes).map_err(|x| corrupt(&path, x))
}

/// Remove every envelopes file of `home` but `keep` (best effort: a file
/// left behind is removed at the next save).
pub(crate) fn prune(home: &Path, keep: &str) {
    let Ok(dir) = std::fs::read_dir(home) else {
        return;
    };
    for f in dir.flatten() {
        let n = f.file_name();
        let n = n.to_string_lossy();
        if n.starts_with(PREFIX) && n.ends_with(SUFFIX) && n != keep {
            let _ = std::fs::remove_file(f.path());
        }
    }
}
