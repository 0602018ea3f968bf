//! The device's state and what a sync costs (issue 14): the periodic sync
//! runs the channels only when something changed, a lying Status delays it
//! at most until its hourly pass, and the state's envelopes live one per
//! file, named by digest, apart from the header.

use std::path::{Path, PathBuf};

use mesh_tests::{Device, PortalProc, Scratch};

const ADDR: &str = "alice@example.com";

/// The agent's periodic sync of the device at `home`, in process.
fn periodic_sync(home: &Path) -> mesh_account::sync::SyncReport {
    std::env::set_var("MESH_KEYSTORE", "file");
    let mut s = mesh_account::store::Store::open(home, false).expect("store");
    mesh_account::sync::sync_with(
        &mut s,
        &mesh_agent::host(),
        mesh_account::sync::Converge::WhenChanged,
    )
    .expect("sync")
}

/// Make the record of the channels' last pass older than an hour.
fn age_mark(home: &Path) {
    let mark = home.join("converged.json");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&mark).expect("mark")).expect("json");
    let aged = serde_json::json!({
        "indices": m["indices"],
        "at": mesh_account::client::now() - mesh_account::sync::RECONVERGE - 1,
    });
    std::fs::write(&mark, aged.to_string()).expect("age the mark");
}

/// The agent's periodic sync (`Converge::WhenChanged`) runs the channels
/// only when the account moved since their last complete pass, or that
/// pass is an hour old; a missing or damaged record of the pass means one
/// more pass, never a skipped change.
#[test]
fn the_periodic_sync_runs_the_channels_only_when_something_changed() {
    let dir = Scratch::new("host-converge");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::create_account(&dir.0, ADDR, &portal.url);
    let b = Device::new(&dir.0, "b");
    b.join(&a, ADDR, &portal.url, "phone");
    b.ok(&["sync"]);
    let periodic = || periodic_sync(&b.home);
    let mark = b.home.join("converged.json");
    let r = periodic();
    assert!(r.skipped && r.entries == 0, "{r:?}");
    // An old pass: one more, which is recorded again.
    age_mark(&b.home);
    assert!(!periodic().skipped);
    assert!(periodic().skipped);
    // A damaged or missing record: a pass.
    for damage in [Some("{not json"), Some("{}"), None] {
        match damage {
            Some(d) => std::fs::write(&mark, d).expect("damage"),
            None => std::fs::remove_file(&mark).expect("remove"),
        }
        assert!(!periodic().skipped, "{damage:?}");
        assert!(periodic().skipped);
    }
    // A change on the portal: the channels run, and see it.
    let c = Device::new(&dir.0, "c");
    c.join(&a, ADDR, &portal.url, "tablet");
    let r = periodic();
    assert!(!r.skipped && r.entries > 0, "{r:?}");
    assert!(r.new_devices.iter().any(|d| d == "tablet"), "{r:?}");
    assert!(periodic().skipped);
    // `mesh sync` by hand always runs every channel.
    let r = b.json(&["sync"]);
    assert_eq!(r["skipped"], false, "{r}");
}

/// A portal that lies in its Status answer gains nothing over the periodic
/// sync: "nothing moved" when something did only delays the device, as a
/// withheld download would, and never past the hourly pass; "behind what
/// you have" sends the device to the full sync, whose download is what it
/// verifies.
#[test]
fn a_lying_status_delays_the_periodic_sync_at_most_until_its_hourly_pass() {
    std::env::set_var("MESH_KEYSTORE", "file");
    let dir = Scratch::new("host-status-lie");
    let portal = PortalProc::start(&dir.path("portal"));
    let liar = mesh_tests::liar::LyingPortal::start(&portal.url);
    let a = Device::create_account(&dir.0, ADDR, &portal.url);
    let b = Device::new(&dir.0, "b");
    b.join(&a, ADDR, &liar.url, "phone");
    b.ok(&["sync"]);
    let periodic = || periodic_sync(&b.home);
    let known =
        mesh_account::account(&mesh_account::store::Store::open(&b.home, false).expect("store"))
            .expect("state")
            .indices;
    // "Nothing moved", while a device joins.
    liar.lie(move |tx, v| {
        if tx == "Status" {
            for s in v["Stores"].as_array_mut().into_iter().flatten() {
                let name = s["Store"].as_str().unwrap_or_default().to_string();
                s["Index"] = known.get(&name).copied().unwrap_or(0).into();
            }
        }
    });
    let c = Device::new(&dir.0, "c");
    c.join(&a, ADDR, &portal.url, "tablet");
    assert!(periodic().skipped, "the lie delays");
    // The hourly pass downloads, and the download is honest.
    age_mark(&b.home);
    let r = periodic();
    assert!(
        !r.skipped && r.new_devices.iter().any(|d| d == "tablet"),
        "{r:?}"
    );
    // "Behind what you have": the full sync runs; nothing is lost.
    liar.lie(|tx, v| {
        if tx == "Status" {
            for s in v["Stores"].as_array_mut().into_iter().flatten() {
                s["Index"] = 0.into();
            }
        }
    });
    let before = std::fs::read(b.home.join("state.json")).expect("state");
    let r = periodic();
    assert!(r.skipped && r.entries == 0, "{r:?}");
    assert_eq!(
        std::fs::read(b.home.join("state.json")).expect("state"),
        before
    );
}

fn envelope_files(home: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(home)
        .expect("home")
        .flatten()
        .map(|f| f.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("manifest-") || n.starts_with("envelopes-"))
        })
        .collect();
    v.sort();
    v
}

/// The entry files of a home, by name, with their inode numbers.
fn entry_files(home: &Path) -> std::collections::BTreeMap<String, u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(home.join("entries"))
        .expect("entries")
        .flatten()
        .map(|f| {
            let ino = f.metadata().expect("metadata").ino();
            (f.file_name().to_string_lossy().into_owned(), ino)
        })
        .collect()
}

/// What the one manifest of a home names: every entry file.
fn named_entries(home: &Path) -> std::collections::BTreeSet<String> {
    let files = envelope_files(home);
    assert_eq!(files.len(), 1, "{files:?}");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files[0]).expect("manifest")).expect("json");
    let mut named: std::collections::BTreeSet<String> = ["devices", "applications"]
        .iter()
        .flat_map(|k| m[k].as_object().expect(k).values())
        .map(|v| v.as_str().expect("name").to_string())
        .collect();
    named.insert(m["access"].as_str().expect("access").to_string());
    named
}

/// `name`-prefixed digest name of `bytes`, as the store names its files.
fn digest_name(prefix: &str, bytes: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(bytes);
    format!("{prefix}{}.json", data_encoding::HEXLOWER.encode(&d[..16]))
}

/// The account's envelopes live one per file, named by digest, apart from
/// the small header a quiet sync reads; a change writes only what changed;
/// a file that is not what its name says, or is missing, is refused with
/// its name and nothing is lost; the two layouts before this one (one
/// envelopes file, and envelopes inline in the header) are read and moved
/// to this one at the next save.
#[test]
fn the_state_header_names_its_envelopes_file_by_digest() {
    let dir = Scratch::new("host-envelopes");
    let portal = PortalProc::start(&dir.path("portal"));
    let a = Device::create_account(&dir.0, ADDR, &portal.url);
    let b = Device::new(&dir.0, "b");
    b.join(&a, ADDR, &portal.url, "phone");
    b.ok(&["sync"]);
    let named = named_entries(&b.home);
    let before = entry_files(&b.home);
    assert_eq!(
        before
            .keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        named
    );
    let state = b.home.join("state.json");
    let header: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).expect("state")).expect("json");
    // The header holds no envelope.
    for k in ["devices", "applications"] {
        assert!(
            header["account"][k]
                .as_object()
                .is_none_or(|m| m.is_empty()),
            "{header}"
        );
    }
    assert!(header["account"]["access"].is_null(), "{header}");

    // One change (a device joins): the entries already kept are not
    // written again, and the old access list's file is gone.
    let c = Device::new(&dir.0, "c");
    c.join(&a, ADDR, &portal.url, "tablet");
    b.ok(&["sync"]);
    let after = entry_files(&b.home);
    assert_eq!(
        after
            .keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        named_entries(&b.home)
    );
    let kept: Vec<&String> = before.keys().filter(|n| after.contains_key(*n)).collect();
    assert!(kept.len() >= 3, "kept {} of {}", kept.len(), before.len());
    for n in kept {
        assert_eq!(before[n], after[n], "{n} was written again");
    }
    assert!(after.len() > before.len());
    let devices = b.ok(&["device", "list"]);
    assert!(devices.contains("tablet"), "{devices}");

    // Damage, each refused with the file's name; restored, nothing lost.
    let manifest = envelope_files(&b.home).remove(0);
    let entry = b
        .home
        .join("entries")
        .join(after.keys().next().expect("an entry"));
    let flip = |p: &Path| {
        let mut bad = std::fs::read(p).expect("read");
        let at = bad.len() / 2;
        bad[at] ^= 1;
        bad
    };
    let good_header = std::fs::read(&state).expect("state");
    let mut odd = header.clone();
    odd["account"]["envelopes"] = "../manifest-00000000000000000000000000000000.json".into();
    let cases: [(&str, &Path, Option<Vec<u8>>, &str); 4] = [
        (
            "manifest flipped",
            &manifest,
            Some(flip(&manifest)),
            "not what its name says",
        ),
        (
            "entry flipped",
            &entry,
            Some(flip(&entry)),
            "not what its name says",
        ),
        ("entry removed", &entry, None, "entries/"),
        (
            "header names a path",
            &state,
            Some(odd.to_string().into_bytes()),
            "as its envelopes",
        ),
    ];
    for (what, path, content, says) in cases {
        let good = std::fs::read(path).expect("read");
        match content {
            Some(c) => std::fs::write(path, c).expect("damage"),
            None => std::fs::remove_file(path).expect("remove"),
        }
        let e = b.fails(&["sync"]);
        assert!(e.contains(says), "{what}: {e}");
        if what != "header names a path" {
            let name = path.file_name().and_then(|n| n.to_str()).expect("name");
            assert!(e.contains(name), "{what}: the error names the file: {e}");
        }
        std::fs::write(path, good).expect("restore");
        assert_eq!(b.ok(&["device", "list"]), devices, "{what}");
    }
    assert_eq!(std::fs::read(&state).expect("state"), good_header);
    // A manifest, true to its name, that names a path outside `entries/`.
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).expect("manifest")).expect("json");
    m["access"] = "../state.json".into();
    let forged = serde_json::to_vec(&m).expect("json");
    let forged_name = digest_name("manifest-", &forged);
    std::fs::write(b.home.join(&forged_name), &forged).expect("forged manifest");
    let mut pointed = header.clone();
    pointed["account"]["envelopes"] = forged_name.clone().into();
    std::fs::write(&state, pointed.to_string()).expect("header");
    let e = b.fails(&["sync"]);
    assert!(e.contains("as an entry") && e.contains(&forged_name), "{e}");
    std::fs::write(&state, &good_header).expect("restore");
    std::fs::remove_file(b.home.join(&forged_name)).expect("remove");
    assert_eq!(b.ok(&["device", "list"]), devices);

    // The layouts before this one, each read as it is and moved to this
    // one by the next change.
    let mut devices = devices;
    for (i, layout) in ["one envelopes file", "inline"].into_iter().enumerate() {
        let (mut old, envelopes) = as_one_document(&b.home);
        let acc = old["account"].as_object_mut().expect("account");
        acc.remove("access_serial");
        if layout == "inline" {
            acc.remove("envelopes");
            for (k, v) in envelopes.as_object().expect("envelopes") {
                acc.insert(k.clone(), v.clone());
            }
        } else {
            let bytes = serde_json::to_vec(&envelopes).expect("json");
            let name = digest_name("envelopes-", &bytes);
            std::fs::write(b.home.join(&name), bytes).expect("old file");
            acc.insert("envelopes".into(), name.into());
        }
        std::fs::remove_file(
            envelope_files(&b.home)
                .iter()
                .find(|p| p.to_string_lossy().contains("manifest-"))
                .expect("manifest"),
        )
        .expect("remove manifest");
        std::fs::remove_dir_all(b.home.join("entries")).expect("remove entries");
        std::fs::write(&state, old.to_string()).expect("old state");
        assert_eq!(b.ok(&["device", "list"]), devices, "{layout}");
        let d = Device::new(&dir.0, &format!("d{i}"));
        d.join(&a, ADDR, &portal.url, &format!("laptop{i}"));
        b.ok(&["sync"]);
        let files = envelope_files(&b.home);
        assert!(
            files.len() == 1 && files[0].to_string_lossy().contains("manifest-"),
            "{layout}: {files:?}"
        );
        assert_eq!(
            entry_files(&b.home).len(),
            named_entries(&b.home).len(),
            "{layout}"
        );
        devices = b.ok(&["device", "list"]);
        assert!(devices.contains(&format!("laptop{i}")), "{layout}");
    }
}

/// A home's header, and its envelopes as one document (the layout before
/// entry files).
fn as_one_document(home: &Path) -> (serde_json::Value, serde_json::Value) {
    let manifest = envelope_files(home).remove(0);
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(manifest).expect("manifest")).expect("json");
    let load = |n: &serde_json::Value| -> serde_json::Value {
        let p = home.join("entries").join(n.as_str().expect("name"));
        serde_json::from_slice(&std::fs::read(p).expect("entry")).expect("json")
    };
    let map = |k: &str| -> serde_json::Value {
        m[k].as_object()
            .expect(k)
            .iter()
            .map(|(id, n)| (id.clone(), load(n)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let envelopes = serde_json::json!({
        "access": load(&m["access"]),
        "devices": map("devices"),
        "applications": map("applications"),
    });
    let header = serde_json::from_slice(&std::fs::read(home.join("state.json")).expect("state"))
        .expect("json");
    (header, envelopes)
}
