//! The account's envelopes (access list, catalog and application entries)
//! live apart from the header in `state.json`, one file per envelope.
//!
//! At 1,000 devices the envelopes are 8 MB and the header a few kB. A sync
//! that finds nothing new reads only the header; one that learns of a new
//! device writes that device's entry and the new access list, not the
//! other 999 entries again (docs/BENCHMARKS.md, "Third part").
//!
//! - `entries/<digest>.json`: one envelope, named by the digest of its
//!   content, written once and never changed.
//! - `manifest-<digest>.json`: which entry file holds the access list and
//!   each device's and application's entry; named by its own digest.
//! - `state.json` names the manifest.
//!
//! Entry files are written (and synced) before the manifest that names
//! them, and the manifest before the header that names it, so replacing
//! all of it is one atomic step: a crash leaves the old header naming the
//! old manifest, whose entries are all still there, or the new one. Files
//! that the header no longer reaches are removed at the next save. Every
//! file is checked against its name when a process first reads it (later
//! reads come from what it kept), and an error names a file whose content
//! is not what its name says.
//!
//! States written before this layout kept every envelope in one
//! `envelopes-<digest>.json`; they are read, and moved to this layout at
//! their next save.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use mesh_core::envelope::Signed;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{make_private_dir, sync_dir_of, write_atomic, write_atomic_then, StoreError};

/// The envelopes of an account state, as the one-file layout held them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Envelopes {
    #[serde(default)]
    pub access: Option<Signed>,
    #[serde(default)]
    pub devices: BTreeMap<String, Arc<Signed>>,
    #[serde(default)]
    pub applications: BTreeMap<String, Arc<Signed>>,
}

/// Which entry file holds each envelope, as read (written as [`Known`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    #[serde(default)]
    access: Option<String>,
    #[serde(default)]
    devices: BTreeMap<String, String>,
    #[serde(default)]
    applications: BTreeMap<String, String>,
}

const MANIFEST: &str = "manifest-";
/// The one-file layout that came before (read, never written).
const OLD: &str = "envelopes-";
const SUFFIX: &str = ".json";
const ENTRIES: &str = "entries";

fn digest_name(prefix: &str, bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    let hex: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}{SUFFIX}")
}

fn corrupt(path: &Path, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

/// Whether `name` is `prefix`, 32 hex digits, `.json`: nothing that could
/// leave the directory.
fn well_formed(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|n| n.strip_suffix(SUFFIX))
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Read a file and check that its content is what its name says.
fn read_named(path: &Path, prefix: &str) -> Result<Vec<u8>, StoreError> {
    let bytes = std::fs::read(path).map_err(|x| corrupt(path, x))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if digest_name(prefix, &bytes) != name {
        return Err(corrupt(path, "its content is not what its name says"));
    }
    Ok(bytes)
}

/// Write `e` into `home` and return the name the header must carry. Only
/// envelopes without a file yet are written. A manifest of that name is
/// written again all the same: one that was damaged is repaired by the
/// next save instead of being named again.
///
/// `previous` is the manifest the header names now. Every entry it names
/// is there (entries are written before the manifest that names them, and
/// only entries no manifest names are removed), so when this process read
/// or wrote that manifest it need not look at the directory; otherwise it
/// lists it once, and [`prune`] also removes what a crash left behind.
pub(crate) fn write(
    home: &Path,
    e: EnvelopesRef<'_>,
    previous: Option<&str>,
) -> Result<Written, StoreError> {
    let dir = home.join(ENTRIES);
    make_private_dir(&dir)?;
    let prev = previous.and_then(manifests::get);
    let on_disk = match &prev {
        Some(p) => p.names.clone(),
        // One listing instead of a stat per entry (2,100 at 1,000 devices).
        None => Arc::new(
            std::fs::read_dir(&dir)
                .map_err(|x| corrupt(&dir, x))?
                .flatten()
                .filter_map(|f| f.file_name().into_string().ok())
                .collect(),
        ),
    };
    let mut wrote = false;
    // The envelope the previous manifest had under the same key, when it
    // is this one, keeps its file: no digest, no lookup.
    let mut file = |kept: Option<&Named>, env: &Arc<Signed>| -> Result<Named, StoreError> {
        if let Some((k, n)) = kept.filter(|(k, _)| Arc::ptr_eq(k, env) || **k == **env) {
            return Ok((k.clone(), n.clone()));
        }
        let (name, fresh) = entry_file(&dir, env, &on_disk)?;
        wrote |= fresh;
        Ok((env.clone(), name))
    };
    let before = |pick: fn(&Known) -> &BTreeMap<String, Named>, k: &String| {
        prev.as_ref().and_then(|p| pick(p).get(k))
    };
    let mut known = Known {
        access: e
            .access
            .map(|a| {
                file(
                    prev.as_ref().and_then(|p| p.access.as_ref()),
                    &Arc::new(a.clone()),
                )
            })
            .transpose()?,
        devices: e
            .devices
            .iter()
            .map(|(k, v)| Ok((k.clone(), file(before(|p| &p.devices, k), v)?)))
            .collect::<Result<_, StoreError>>()?,
        applications: e
            .applications
            .iter()
            .map(|(k, v)| Ok((k.clone(), file(before(|p| &p.applications, k), v)?)))
            .collect::<Result<_, StoreError>>()?,
        names: Arc::default(),
    };
    if wrote {
        sync_dir_of(&dir);
    }
    let bytes = serde_json::to_vec(&known).map_err(|x| corrupt(home, x))?;
    let name = digest_name(MANIFEST, &bytes);
    write_atomic(&home.join(&name), &bytes)?;
    known.names = Arc::new(known.all_names().cloned().collect());
    let entries = known.names.clone();
    manifests::put(&name, Arc::new(known));
    Ok(Written {
        name,
        entries,
        on_disk,
    })
}

/// An envelope and the entry file that holds it.
type Named = (Arc<Signed>, String);

/// What a manifest names, with the envelopes: what [`write`] wrote or
/// [`read`] read. Serialized, it is the manifest (the names alone).
#[derive(Serialize)]
struct Known {
    #[serde(serialize_with = "name_only")]
    access: Option<Named>,
    #[serde(serialize_with = "names_only")]
    devices: BTreeMap<String, Named>,
    #[serde(serialize_with = "names_only")]
    applications: BTreeMap<String, Named>,
    /// Every entry file named.
    #[serde(skip)]
    names: Arc<HashSet<String>>,
}

impl Known {
    fn all_names(&self) -> impl Iterator<Item = &String> {
        self.access
            .iter()
            .chain(self.devices.values())
            .chain(self.applications.values())
            .map(|(_, n)| n)
    }

    fn envelopes(&self) -> Envelopes {
        let arcs = |m: &BTreeMap<String, Named>| {
            m.iter().map(|(k, (e, _))| (k.clone(), e.clone())).collect()
        };
        Envelopes {
            access: self.access.as_ref().map(|(e, _)| (**e).clone()),
            devices: arcs(&self.devices),
            applications: arcs(&self.applications),
        }
    }
}

fn name_only<S: serde::Serializer>(n: &Option<Named>, s: S) -> Result<S::Ok, S::Error> {
    n.as_ref().map(|(_, n)| n).serialize(s)
}

fn names_only<S: serde::Serializer>(m: &BTreeMap<String, Named>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(m.iter().map(|(k, (_, n))| (k, n)))
}

/// The envelopes of a state, borrowed for [`write`].
pub(crate) struct EnvelopesRef<'a> {
    pub access: Option<&'a Signed>,
    pub devices: &'a BTreeMap<String, Arc<Signed>>,
    pub applications: &'a BTreeMap<String, Arc<Signed>>,
}

/// What [`write`] wrote: the manifest's name, for the header, and the entry
/// files it names.
pub(crate) struct Written {
    pub name: String,
    entries: Arc<HashSet<String>>,
    /// The entry files there were before the write: listed, or those the
    /// previous manifest names.
    on_disk: Arc<HashSet<String>>,
}

/// The entry file of `env`, written when it is not there; whether it was.
/// A file this process read or wrote (the memo) and that is still listed
/// is taken as it is; any other is checked against its name first.
fn entry_file(
    dir: &Path,
    env: &Arc<Signed>,
    on_disk: &HashSet<String>,
) -> Result<(String, bool), StoreError> {
    if let Some(name) = memo::name_of(env) {
        if on_disk.contains(&name) {
            return Ok((name, false));
        }
    }
    let bytes = serde_json::to_vec(&**env).map_err(|x| corrupt(dir, x))?;
    let name = digest_name("", &bytes);
    let path = dir.join(&name);
    let fresh = !on_disk.contains(&name) || read_named(&path, "").is_err();
    if fresh {
        write_atomic_then(&path, &bytes, false)?;
    }
    memo::put(&name, env);
    Ok((name, fresh))
}

/// Read the envelopes a header names, checking every file against its
/// name.
pub(crate) fn read(home: &Path, name: &str) -> Result<Envelopes, StoreError> {
    if well_formed(name, OLD) {
        let path = home.join(name);
        let bytes = read_named(&path, OLD)?;
        return serde_json::from_slice(&bytes).map_err(|x| corrupt(&path, x));
    }
    if !well_formed(name, MANIFEST) {
        return Err(corrupt(
            &home.join("state.json"),
            format!("the state names {name:?} as its envelopes"),
        ));
    }
    if let Some(known) = manifests::get(name) {
        return Ok(known.envelopes());
    }
    let path = home.join(name);
    let m: Manifest =
        serde_json::from_slice(&read_named(&path, MANIFEST)?).map_err(|x| corrupt(&path, x))?;
    let dir = home.join(ENTRIES);
    let entry = |n: &String| -> Result<Named, StoreError> {
        if !well_formed(n, "") {
            return Err(corrupt(&path, format!("it names {n:?} as an entry")));
        }
        if let Some(env) = memo::get(n) {
            return Ok((env, n.clone()));
        }
        let p = dir.join(n);
        let env: Arc<Signed> =
            serde_json::from_slice(&read_named(&p, "")?).map_err(|x| corrupt(&p, x))?;
        memo::put(n, &env);
        Ok((env, n.clone()))
    };
    let map = |m: &BTreeMap<String, String>| -> Result<BTreeMap<String, Named>, StoreError> {
        m.iter().map(|(k, n)| Ok((k.clone(), entry(n)?))).collect()
    };
    let mut known = Known {
        access: m.access.as_ref().map(entry).transpose()?,
        devices: map(&m.devices)?,
        applications: map(&m.applications)?,
        names: Arc::default(),
    };
    // Every entry it names was read: they are there.
    known.names = Arc::new(known.all_names().cloned().collect());
    let e = known.envelopes();
    manifests::put(name, Arc::new(known));
    Ok(e)
}

/// Remove every manifest and envelopes file of `home` but the one just
/// written, and every entry file it does not name (best effort: what is
/// left behind is removed at the next save).
pub(crate) fn prune(home: &Path, keep: &Written) {
    let remove_unless = |dir: &Path, keep: &dyn Fn(&str) -> bool| {
        for f in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let n = f.file_name();
            if !keep(&n.to_string_lossy()) {
                let _ = std::fs::remove_file(f.path());
            }
        }
    };
    remove_unless(home, &|n| {
        let ours = (n.starts_with(MANIFEST) || n.starts_with(OLD)) && n.ends_with(SUFFIX);
        !ours || n == keep.name
    });
    // Files written since the listing are all named by the manifest. Not
    // listed: what the previous manifest named and this one does not.
    let entries = home.join(ENTRIES);
    for n in keep.on_disk.iter().filter(|n| !keep.entries.contains(*n)) {
        let _ = std::fs::remove_file(entries.join(n));
    }
}

/// Manifests this process read or wrote, with their envelopes (a name is
/// a digest of the content, so it means the same in any home). A hit is
/// what a manifest of that name held when this process read or wrote it.
/// A command reads its state once (issue 24): this memo is for the daemon,
/// whose every sync reads the state again without parsing 2,100 names and
/// saves it without a lookup per unchanged entry.
mod manifests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use super::Known;

    /// A few: one per account state this process keeps.
    const MAX: usize = 4;

    static KEPT: Mutex<VecDeque<(String, Arc<Known>)>> = Mutex::new(VecDeque::new());

    pub(super) fn get(name: &str) -> Option<Arc<Known>> {
        let k = KEPT.lock().ok()?;
        k.iter().find(|(n, _)| n == name).map(|(_, e)| e.clone())
    }

    pub(super) fn put(name: &str, known: Arc<Known>) {
        let Ok(mut k) = KEPT.lock() else {
            return;
        };
        k.retain(|(n, _)| n != name);
        k.push_back((name.to_string(), known));
        while k.len() > MAX {
            k.pop_front();
        }
    }
}

/// Entry files read or written by this process, by name and by envelope.
/// A command reads its state once (issue 24): this memo is for the daemon,
/// which reads its state after every change; at 1,000 devices
/// reading and hashing each entry again was a fifth of a sync. A hit is
/// exact: by name, the content that name was checked against; by
/// envelope, the same envelope byte for byte. Bounded: emptied when full.
mod memo {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};

    use mesh_core::envelope::Signed;

    /// Payload bytes kept at most: an account of 1,000 devices has some
    /// 2,100 entries of 3 to 7 kB, and a list of 390 kB per access list.
    const MAX_BYTES: usize = 48 << 20;

    #[derive(Default)]
    struct Memo {
        bytes: usize,
        by_name: HashMap<String, Arc<Signed>>,
        /// First signature → name.
        by_signature: HashMap<Vec<u8>, String>,
    }

    fn memo() -> &'static Mutex<Memo> {
        static M: OnceLock<Mutex<Memo>> = OnceLock::new();
        M.get_or_init(|| Mutex::new(Memo::default()))
    }

    pub(super) fn get(name: &str) -> Option<Arc<Signed>> {
        memo().lock().ok()?.by_name.get(name).cloned()
    }

    pub(super) fn name_of(env: &Arc<Signed>) -> Option<String> {
        let m = memo().lock().ok()?;
        let name = m.by_signature.get(&env.signatures.first()?.signature)?;
        let kept = m.by_name.get(name)?;
        // The same envelope as read or written (the usual case), or the
        // same bytes.
        (Arc::ptr_eq(kept, env) || **kept == **env).then(|| name.clone())
    }

    pub(super) fn put(name: &str, env: &Arc<Signed>) {
        let (Some(sig), Ok(mut m)) = (env.signatures.first(), memo().lock()) else {
            return;
        };
        if m.bytes + env.payload.len() > MAX_BYTES {
            *m = Memo::default();
        }
        m.by_signature
            .insert(sig.signature.clone(), name.to_string());
        if m.by_name.insert(name.to_string(), env.clone()).is_none() {
            m.bytes += env.payload.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn env(key: &mesh_core::keys::SigningKey, body: &str) -> Arc<Signed> {
        Arc::new(Signed::sign("t", body.as_bytes().to_vec(), &[key]))
    }

    fn save(
        home: &Path,
        access: &Signed,
        devices: &BTreeMap<String, Arc<Signed>>,
        prev: Option<&str>,
    ) -> Written {
        let e = EnvelopesRef {
            access: Some(access),
            devices,
            applications: &BTreeMap::new(),
        };
        let w = write(home, e, prev).expect("write");
        prune(home, &w);
        w
    }

    /// A save that knows the previous manifest writes only what changed,
    /// removes what is no longer named, and its manifest reads back the
    /// same in this process (the memo) and from the files alone.
    #[test]
    fn a_save_writes_what_changed_and_reads_back() {
        let dir = std::env::temp_dir().join(format!("mesh-envelopes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let k = mesh_core::objects::RootKeys::generate().authenticate;
        let access = (*env(&k, "list 1")).clone();
        let mut devices: BTreeMap<String, Arc<Signed>> = [("a", "entry a"), ("b", "entry b")]
            .iter()
            .map(|(n, b)| (n.to_string(), env(&k, b)))
            .collect();
        let first = save(&dir, &access, &devices, None);
        let files = |w: &Written| -> BTreeMap<String, u64> {
            w.entries
                .iter()
                .map(|n| {
                    let m = std::fs::metadata(dir.join(ENTRIES).join(n)).expect("entry file");
                    (n.clone(), m.ino())
                })
                .collect()
        };
        let before = files(&first);
        devices.insert("b".into(), env(&k, "entry b, new"));
        let second = save(&dir, &access, &devices, Some(&first.name));
        let after = files(&second);
        let kept: Vec<_> = before
            .iter()
            .filter(|(n, i)| after.get(*n) == Some(i))
            .collect();
        assert_eq!(kept.len(), 2, "the list and a are not written again");
        assert_eq!(after.len(), 3);
        let listed = std::fs::read_dir(dir.join(ENTRIES)).expect("dir").count();
        assert_eq!(listed, 3, "b's old file is removed");
        assert!(
            !dir.join(&first.name).exists(),
            "the old manifest is removed"
        );
        // In this process (the memo), and from the files.
        let memo = read(&dir, &second.name).expect("read");
        let bytes = std::fs::read(dir.join(&second.name)).expect("manifest");
        let m: Manifest = serde_json::from_slice(&bytes).expect("a manifest");
        assert_eq!(digest_name(MANIFEST, &bytes), second.name);
        assert_eq!(m.devices.len(), 2);
        for (key, name) in &m.devices {
            let on_disk: Signed = serde_json::from_slice(
                &read_named(&dir.join(ENTRIES).join(name), "").expect("entry"),
            )
            .expect("envelope");
            assert_eq!(&on_disk, &*memo.devices[key], "{key}");
            assert_eq!(&on_disk, &*devices[key], "{key}");
        }
        assert_eq!(memo.access.as_ref(), Some(&access));
        // A save that does not know the previous manifest lists the
        // directory, and removes what a crash left there.
        std::fs::write(dir.join(ENTRIES).join("left-by-a-crash"), b"x").expect("junk");
        let third = save(&dir, &access, &devices, None);
        assert_eq!(third.name, second.name);
        assert_eq!(
            std::fs::read_dir(dir.join(ENTRIES)).expect("dir").count(),
            3
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
