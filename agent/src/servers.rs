//! What servers run, without being devices of the account: sshd's
//! `AuthorizedKeysCommand` (`mesh ssh authorized-keys`) and
//! `AuthorizedPrincipalsCommand` (`mesh ssh authorized-principals`), and
//! the KRL fetch (`mesh ssh krl --account`). Everything is read from the
//! portal's public stores and verified up to the pinned profile UDF; a
//! cache serves logins while the portal is away, for a bounded time.

use std::collections::BTreeMap;
use std::path::Path;

use mesh_account::client::{now, Client, ClientError};
use mesh_account::AccountError;
use mesh_core::envelope::Signed;
use mesh_core::history::History;
use mesh_core::objects::{CatalogedApplication, ProfileAccount};
use mesh_core::portal::{self as p, store as st, AccessList, StoreIndex};
use mesh_plugins::{AccountView, DeviceEntry};
use serde::{Deserialize, Serialize};

type Result<T> = std::result::Result<T, AccountError>;

/// Most pages one public read follows (a portal answering `Partial` for
/// ever is refused).
const MAX_PAGES: usize = 4096;

/// Seconds after which an unchanged cache is written again, to renew its
/// fetch time (what `--max-stale` counts from).
const CACHE_RENEW: u64 = 60;

/// Seconds a cached answer's fetch time may lie ahead of the clock.
const MAX_SKEW: u64 = 300;

/// The public state of an account, as servers fetch it: the latest entry
/// per device and per published uid, and the verified history, which is
/// the lower bound of every later answer.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct PublicAnswer {
    fetched: u64,
    profile: Option<Signed>,
    access: Option<Signed>,
    devices: BTreeMap<String, Signed>,
    #[serde(default)]
    published: BTreeMap<String, Signed>,
    #[serde(default)]
    history: History,
}

impl PublicAnswer {
    /// One page of the public stores, continuing this answer.
    fn apply(&mut self, profile: &ProfileAccount, updates: &[p::StoreEntries]) -> Result<()> {
        // Checkpoints first: an administrator epoch they start gives the
        // key the entries after it are signed with.
        let mut ordered: Vec<&p::StoreEntries> = updates.iter().collect();
        ordered.sort_by_key(|u| u.store != st::CHECKPOINT);
        for u in ordered {
            let current = self.history.profile(profile);
            self.history.behind(&[StoreIndex {
                store: u.store.clone(),
                index: u.last,
            }])?;
            for e in &u.entries {
                let env: Signed = serde_json::from_value(e.envelope.clone()).map_err(|x| {
                    AccountError::Untrusted(format!("{} entry {}: {x}", u.store, e.index))
                })?;
                if u.store == st::CHECKPOINT {
                    self.history.checkpoint(e.index, &env, profile)?;
                    continue;
                }
                self.history.entry(&u.store, e.index, &env)?;
                self.keep(&current, &u.store, env).map_err(|x| {
                    AccountError::Untrusted(format!("{} entry {}: {x}", u.store, e.index))
                })?;
            }
        }
        Ok(())
    }

    /// Verify an entry as it arrives and keep it as the latest of its kind:
    /// what the cache holds was verified once, and a view of it checks no
    /// signature again.
    fn keep(
        &mut self,
        profile: &ProfileAccount,
        store_name: &str,
        env: Signed,
    ) -> std::result::Result<(), String> {
        let s = |e: &dyn std::fmt::Display| e.to_string();
        match store_name {
            st::ACCESS => {
                let next = AccessList::verify(&env, profile).map_err(|e| s(&e))?;
                // A revoked device stays revoked in every later list.
                if let Some(prev) = &self.access {
                    let p: AccessList = prev.unverified_object("access list").map_err(|e| s(&e))?;
                    p.check_successor(&next, AccessList::by_root(&env, profile))
                        .map_err(|e| s(&e))?;
                }
                self.access = Some(env);
            }
            st::DEVICE => {
                let d = DeviceEntry::verify(&env, profile).map_err(|e| s(&e))?;
                self.devices.insert(d.catalog.device_udf, env);
            }
            _ => {
                let a: CatalogedApplication = env
                    .verify_object(
                        "application entry",
                        mesh_core::objects::ct::CATALOGED_APPLICATION,
                        &profile.history_signers(),
                    )
                    .map_err(|e| s(&e))?;
                self.published.insert(a.uid, env);
            }
        }
        Ok(())
    }
}

/// Read what is new in the public stores after `known` (one snapshot per
/// page), and check it continues the history `known` holds.
fn fetch_public(portal: &str, profile_udf: &str, known: PublicAnswer) -> Result<PublicAnswer> {
    let client = Client::new(portal)?;
    let mut ans = known;
    for _ in 0..MAX_PAGES {
        let select = st::PUBLIC
            .iter()
            .map(|s| StoreIndex {
                store: s.to_string(),
                index: if *s == st::CHECKPOINT {
                    ans.history.serial()
                } else {
                    ans.history.position(s).index
                },
            })
            .collect();
        let r: p::DownloadResponse = client.post(
            "Public",
            &p::PublicRequest {
                account_address: None,
                profile_udf: Some(profile_udf.to_string()),
                select,
            },
        )?;
        let profile = ProfileAccount::verify(&r.profile, profile_udf)
            .map_err(|e| AccountError::Untrusted(format!("account profile: {e}")))?;
        ans.apply(&profile, &r.updates)?;
        ans.profile = Some(r.profile);
        if !mesh_account::pull::more_pages(&r.updates)? {
            ans.history.settle(st::PUBLIC)?;
            ans.fetched = now();
            return Ok(ans);
        }
    }
    Err(AccountError::Untrusted(format!(
        "the portal kept answering 'partial' after {MAX_PAGES} pages"
    )))
}

/// Everything the answer says, verified up to the pinned profile UDF.
fn verified(ans: &PublicAnswer, pinned: &str) -> Result<AccountView> {
    let (Some(profile), Some(access)) = (&ans.profile, &ans.access) else {
        return Err(AccountError::Untrusted(
            "the account has no access list".into(),
        ));
    };
    Ok(AccountView::from_verified(
        pinned,
        profile,
        &ans.history.epochs,
        Some(access),
        ans.devices.values(),
        ans.published.values(),
    )?)
}

/// A profile UDF given on a command line is checked here, before anything
/// is asked of the portal.
pub fn check_profile_udf(text: &str) -> Result<()> {
    mesh_core::udf::decode_typed(text, mesh_core::udf::UdfType::DigestSha2)
        .map(|_| ())
        .map_err(|e| {
            AccountError::usage(
                format!("'{text}' is not a profile UDF: {e}"),
                "give the account's profile UDF, as `mesh account show` prints it (MB…)",
            )
        })
}

/// Where a server looks the account up, and how long a cached answer
/// may serve while the portal is away.
#[derive(Debug, Clone, Copy)]
pub struct Lookup<'a> {
    /// The pinned profile UDF.
    pub profile_udf: &'a str,
    /// The portal's URL.
    pub portal: &'a str,
    /// The cache directory, if any.
    pub cache: Option<&'a Path>,
    /// Seconds a cached answer may serve.
    pub max_stale: u64,
}

/// The verified public view: fresh from the portal (continuing, and
/// checked against, the cached answer), or, when the portal cannot be
/// reached, the cached answer while it is younger than `max_stale`; then
/// it fails closed. A portal that serves a history behind or beside the
/// cached one is refused and the cache is kept.
fn public_view(l: &Lookup) -> Result<AccountView> {
    check_profile_udf(l.profile_udf)?;
    let cache_file = l
        .cache
        .map(|d| d.join(format!("{}.json", l.profile_udf.replace('-', ""))));
    let cached = match &cache_file {
        Some(f) => read_cache(f)?,
        None => None,
    };
    match fetch_public(l.portal, l.profile_udf, cached.clone().unwrap_or_default()) {
        Ok(ans) => {
            let view = verified(&ans, l.profile_udf)?;
            // Rewritten when something arrived, or to renew its fetch time
            // once a minute: most logins read the cache and write nothing.
            let fresh = cached.as_ref().is_some_and(|c| {
                c.history == ans.history && ans.fetched.saturating_sub(c.fetched) < CACHE_RENEW
            });
            if let (Some(f), false) = (&cache_file, fresh) {
                write_cache(f, &ans)?;
            }
            Ok(view)
        }
        Err(AccountError::Client(e @ ClientError::Unreachable { .. })) => {
            let Some(ans) = cached.filter(|_| l.max_stale > 0) else {
                return Err(e.into());
            };
            let age = now().saturating_sub(ans.fetched);
            if age > l.max_stale {
                return Err(AccountError::usage(
                    format!("the portal is unreachable and the cached answer is {age} s old (more than --max-stale {} s): refusing", l.max_stale),
                    "bring the portal back, or allow older answers with a larger --max-stale",
                ));
            }
            // Verified when it was kept, in a directory only this user writes.
            verified(&ans, l.profile_udf)
        }
        Err(e) => Err(e),
    }
}

/// The cached answer, if any. The cache holds data verified when it was
/// kept (signatures are not checked again)
/// and a fetch time that nothing signs: only a private directory and file
/// of this user are read, and a time ahead of the clock is refused.
fn read_cache(f: &Path) -> Result<Option<PublicAnswer>> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(f) else {
        return Ok(None);
    };
    let dir = f.parent().unwrap_or(Path::new("."));
    let uid = crate::daemon::my_uid();
    for (path, m) in [(dir, std::fs::metadata(dir).ok()), (f, Some(meta))] {
        let Some(m) = m else { continue };
        if m.uid() != uid || m.mode() & 0o022 != 0 {
            return Err(AccountError::usage(
                format!(
                    "the cache {} is writable by others or not owned by this user: not reading it",
                    path.display()
                ),
                "give --cache a directory only this user can write (mode 0700)",
            ));
        }
    }
    let damaged = |detail: String| {
        AccountError::usage(
            format!("the cache {} is damaged: {detail}", f.display()),
            "remove the file; the next login with the portal reachable writes it again",
        )
    };
    let raw = std::fs::read(f).map_err(|e| damaged(e.to_string()))?;
    let ans: PublicAnswer = serde_json::from_slice(&raw).map_err(|e| damaged(e.to_string()))?;
    if ans.fetched > now() + MAX_SKEW {
        return Err(damaged("its fetch time is in the future".into()));
    }
    Ok(Some(ans))
}

fn write_cache(f: &Path, ans: &PublicAnswer) -> Result<()> {
    if let Some(dir) = f.parent() {
        if !dir.exists() {
            mesh_account::store::make_private_dir(dir)?;
        }
    }
    mesh_account::store::write_atomic(f, &serde_json::to_vec(ans).unwrap_or_default())?;
    Ok(())
}

/// `mesh ssh authorized-keys`: lines for every active ssh device of the
/// account; none when `user` is given and is not one of its login names.
pub fn authorized_keys(l: &Lookup, user: Option<&str>) -> Result<Vec<String>> {
    Ok(mesh_ssh::channel::authorized_lines(&public_view(l)?, user)?)
}

/// `mesh ssh authorized-principals`: the login name, when the certificate
/// is for an active device's current key and the name is the account's.
pub fn authorized_principals(l: &Lookup, user: &str, cert: &str) -> Result<Vec<String>> {
    Ok(mesh_ssh::channel::authorized_principals(
        &public_view(l)?,
        user,
        cert,
    )?)
}

/// What `mesh ssh krl --account` did.
#[derive(Debug, Clone, Serialize)]
pub struct KrlFetch {
    /// The version now in the file.
    pub version: u64,
    /// Whether the file was replaced.
    pub replaced: bool,
}

/// Fetch the account's published KRL, verify it, and write it to `output`
/// atomically, never replacing a newer KRL with an older one (a portal
/// that rolls back is refused).
pub fn fetch_krl(
    profile_udf: &str,
    portal: &str,
    output: &Path,
    cache: Option<&Path>,
) -> Result<KrlFetch> {
    // No stale answers here: a portal that cannot be reached leaves the
    // KRL on disk as it is.
    let view = public_view(&Lookup {
        profile_udf,
        portal,
        cache,
        max_stale: 0,
    })?;
    let Some((version, bytes)) = mesh_ssh::channel::published_krl(&view)? else {
        return Err(AccountError::NotFound(
            "the account has published no KRL yet (none of its devices was revoked or rotated)"
                .into(),
        ));
    };
    let current = std::fs::read(output)
        .ok()
        .and_then(|b| mesh_ssh::channel::krl_version(&b));
    match current {
        Some(v) if v > version => Err(AccountError::Untrusted(format!(
            "{} holds KRL version {v}, newer than the portal's {version}: keeping it",
            output.display()
        ))),
        Some(v) if v == version => Ok(KrlFetch {
            version,
            replaced: false,
        }),
        _ => {
            write_public(output, &bytes)?;
            Ok(KrlFetch {
                version,
                replaced: true,
            })
        }
    }
}

/// What `mesh ssh ca --account` did.
#[derive(Debug, Clone, Serialize)]
pub struct CaFetch {
    /// The administrator epoch whose CA the file now holds.
    pub epoch: u32,
    /// Whether the file was replaced.
    pub replaced: bool,
}

/// Fetch the account's current SSH CA from its verified history and write
/// its line to `output` (sshd's TrustedUserCAKeys) when it changed.
/// Revoking an administrator starts a new epoch with a new CA; the old one
/// goes into the KRL.
pub fn fetch_ca(
    profile_udf: &str,
    portal: &str,
    output: &Path,
    cache: Option<&Path>,
) -> Result<CaFetch> {
    let view = public_view(&Lookup {
        profile_udf,
        portal,
        cache,
        max_stale: 0,
    })?;
    let line = format!("{}\n", mesh_ssh::channel::ca_line(&view)?);
    let epoch = view.profile.epoch();
    if std::fs::read(output).ok().as_deref() == Some(line.as_bytes()) {
        return Ok(CaFetch {
            epoch,
            replaced: false,
        });
    }
    write_public(output, line.as_bytes())?;
    Ok(CaFetch {
        epoch,
        replaced: true,
    })
}

/// Replace a file sshd reads (KRL, CA) atomically, readable by all.
fn write_public(output: &Path, bytes: &[u8]) -> Result<()> {
    mesh_account::store::write_atomic(output, bytes)?;
    std::fs::set_permissions(output, std::os::unix::fs::PermissionsExt::from_mode(0o644)).map_err(
        |e| {
            AccountError::Store(mesh_account::store::StoreError::Io {
                path: output.to_path_buf(),
                source: e,
            })
        },
    )
}
