//! What servers run, without being devices of the account: sshd's
//! `AuthorizedKeysCommand` (`mesh ssh authorized-keys`) and
//! `AuthorizedPrincipalsCommand` (`mesh ssh authorized-principals`), and
//! the KRL fetch (`mesh ssh krl --account`). Everything is read from the
//! portal's public stores and verified up to the pinned profile UDF; a
//! cache serves logins while the portal is away, for a bounded time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mesh_account::client::{now, Client, ClientError};
use mesh_account::pager::Pager;
use mesh_account::witness;
use mesh_account::AccountError;
use mesh_core::envelope::Signed;
use mesh_core::history::{Head, History};
use mesh_core::objects::ProfileAccount;
use mesh_core::portal::{self as p, store as st, AccessList, StoreIndex};
use mesh_core::replica;
use mesh_plugins::{AccountView, DeviceEntry};
use mesh_ssh::sshd::SshdAnswer;
use serde::{Deserialize, Serialize};

use crate::server_cache::{self as cache, Header};

type Result<T> = std::result::Result<T, AccountError>;

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
    /// The administrators' heartbeat promise among the published entries.
    fn heartbeat(&self) -> Option<mesh_core::freshness::Heartbeat> {
        mesh_core::freshness::Heartbeat::from_entry(self.published.get(mesh_core::freshness::UID)?)
    }

    /// One page of the public stores, continuing this answer (the
    /// replica every reader shares; this keeper is a server's).
    fn apply(&mut self, profile: &ProfileAccount, updates: &[p::StoreEntries]) -> Result<()> {
        Ok(replica::apply(self, profile, updates)?)
    }
}

impl replica::Keeper for PublicAnswer {
    fn history(&mut self) -> &mut History {
        &mut self.history
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
                // A revoked device stays revoked in every later list.
                let held: Option<AccessList> = match &self.access {
                    Some(prev) => Some(prev.unverified_object("access list").map_err(|e| s(&e))?),
                    None => None,
                };
                replica::next_access(held.as_ref(), &env, profile)?;
                self.access = Some(env);
            }
            st::DEVICE => {
                let d = DeviceEntry::verify(&env, profile).map_err(|e| s(&e))?;
                self.devices.insert(d.catalog.device_udf, env);
            }
            _ => {
                let a = replica::application(&env, profile)?;
                self.published.insert(a.uid, env);
            }
        }
        Ok(())
    }
}

/// Read what is new in the public stores after `known` (one snapshot per
/// page, bounded by [`mesh_account::pager`]), and check it continues the
/// history `known` holds.
fn fetch_public(portal: &str, profile_udf: &str, known: PublicAnswer) -> Result<PublicAnswer> {
    let client = Client::new(portal)?;
    let mut ans = known;
    if ans.history == History::default() {
        checkpoints_first(&client, profile_udf, &mut ans.history)?;
    }
    // A witness ahead of what was read (a transaction landed after this
    // read) is given one more read; then the portal is behind.
    for attempt in 0..2 {
        let profile = read_pages(&client, profile_udf, &mut ans)?;
        ans.history.settle(st::PUBLIC)?;
        // The account's witness signed this head, or it is refused.
        let (serial, digest) = (ans.history.serial(), &ans.history.digest);
        match witness::confirm(&ans.history.profile(&profile), serial, digest)? {
            witness::Verdict::Behind(_) if attempt == 0 => {}
            witness::Verdict::Behind(w) => return Err(witness::behind(serial, w)),
            _ => break,
        }
    }
    ans.fetched = now();
    keeps_promise(ans.heartbeat(), &ans.history)?;
    Ok(ans)
}

/// Every page of the public stores past `ans`, verified into it; the
/// last page's profile.
fn read_pages(
    client: &Client,
    profile_udf: &str,
    ans: &mut PublicAnswer,
) -> Result<ProfileAccount> {
    let mut last = None;
    let fetch = |_: &PublicAnswer, select: &[StoreIndex]| -> Result<p::DownloadResponse> {
        Ok(client.public(profile_udf, select.to_vec())?)
    };
    let apply = |ans: &mut PublicAnswer, r: p::DownloadResponse| -> Result<()> {
        let profile = ProfileAccount::verify(&r.profile, profile_udf)
            .map_err(|e| AccountError::Untrusted(format!("account profile: {e}")))?;
        ans.apply(&profile, &r.updates)?;
        ans.profile = Some(r.profile);
        last = Some(profile);
        Ok(())
    };
    let position = |a: &PublicAnswer| mesh_account::chronicle::public_position(&a.history);
    Pager::new(client.url(), "a server's public read").read(ans, position, fetch, apply)?;
    last.ok_or_else(|| AccountError::Untrusted("no page was read".into()))
}

/// A reader with no history reads the checkpoints first (verifying each,
/// and their chain), then starts the Access store at the head signed by
/// the checkpoint before the last one that changed it: each access list is
/// whole, so only the newest is needed, and the old ones would make the
/// download grow with the square of the account (issue 14). What follows
/// that head is still checked against the latest checkpoint's chain.
fn checkpoints_first(client: &Client, profile_udf: &str, history: &mut History) -> Result<()> {
    let who = p::PublicRequest {
        account_address: None,
        profile_udf: Some(profile_udf.to_string()),
        select: Vec::new(),
    };
    let access =
        |c: Option<&mesh_core::history::Checkpoint>| c.and_then(|c| c.head(st::ACCESS)).cloned();
    let mut before: Option<Head> = None;
    mesh_account::pull::public_checkpoints(
        client,
        &who,
        Some(profile_udf),
        history,
        |prev, now, _, _| {
            if let (Some(p), Some(n)) = (access(prev), access(now.checkpoint.as_ref())) {
                if n.index > p.index {
                    before = Some(p);
                }
            }
            Ok(())
        },
    )?;
    if let Some(h) = before.filter(|h| h.index > 0) {
        history.start_at(&h)?;
    }
    Ok(())
}

/// What the public stores hold past `history` (one page, one snapshot).
fn public_page(
    client: &Client,
    profile_udf: &str,
    history: &History,
) -> Result<p::DownloadResponse> {
    Ok(client.public(
        profile_udf,
        mesh_account::chronicle::public_position(history),
    )?)
}

/// Whether the portal has nothing past the cached `header`: the answer
/// carries the very profile the cache verified (byte for byte: its digest),
/// puts no store behind the history (a rollback is refused), and brings no
/// entry and no later index. Anything else is left to the full download,
/// which verifies what arrives.
fn nothing_new(portal: &str, profile_udf: &str, header: &Header) -> Result<bool> {
    let client = Client::new(portal)?;
    let history = &header.history;
    let r = public_page(&client, profile_udf, history)?;
    if mesh_core::b64::encode(&r.profile.content_digest()) != header.profile {
        return Ok(false);
    }
    let known = mesh_account::chronicle::public_position(history);
    for u in &r.updates {
        history.behind(&[StoreIndex {
            store: u.store.clone(),
            index: u.last,
        }])?;
        let at = known.iter().find(|k| k.store == u.store).map(|k| k.index);
        if !u.entries.is_empty() || u.partial || at.is_none_or(|i| u.last > i) {
            return Ok(false);
        }
    }
    // Nothing new at the portal: the witness says whether that is the
    // account's head (a portal that froze the account is refused). The
    // profile is the one the cache verified, byte for byte.
    let profile: ProfileAccount = r.profile.unverified_object("account profile")?;
    witness::require(
        &history.profile(&profile),
        history.serial(),
        &history.digest,
    )?;
    keeps_promise(header.heartbeat, history)?;
    Ok(true)
}

/// The newest checkpoint against the administrators' heartbeat promise
/// (PROTOCOL.md §10.7): a portal that serves a frozen account is refused
/// once it is twice the promise old.
fn keeps_promise(
    promise: Option<mesh_core::freshness::Heartbeat>,
    history: &History,
) -> Result<()> {
    let (Some(h), Some(c)) = (promise, &history.checkpoint) else {
        return Ok(());
    };
    h.check(c.issued, now()).map_err(AccountError::Stale)
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
/// may serve while the portal is away (the SDK's, which channels' server
/// subcommands fill in).
pub use mesh_plugins::command::Lookup;

/// The portal, or the account's witness, could not be reached: a cached
/// answer may serve for a bounded time (what either would have refused is
/// not in it).
fn unreachable(e: &AccountError) -> bool {
    matches!(
        e,
        AccountError::Client(ClientError::Unreachable { .. }) | AccountError::Witness { .. }
    )
}

/// The cache file of the account `l` looks up, if a cache is given.
fn cache_file(l: &Lookup) -> Option<PathBuf> {
    l.cache
        .map(|d| d.join(format!("{}.json", l.profile_udf.replace('-', ""))))
}

/// A cached answer may serve while the portal is unreachable, while it is
/// younger than `max_stale`; then it fails closed.
fn serve_stale(l: &Lookup, fetched: u64) -> Result<()> {
    let age = now().saturating_sub(fetched);
    if age > l.max_stale {
        return Err(AccountError::usage(
            format!("the portal is unreachable and the cached answer is {age} s old (more than --max-stale {} s): refusing", l.max_stale),
            "bring the portal back, or allow older answers with a larger --max-stale",
        ));
    }
    Ok(())
}

/// The fetch time is signed by nothing: one ahead of the clock is refused.
fn check_fetched(f: &Path, fetched: u64) -> Result<()> {
    if fetched > now() + MAX_SKEW {
        return Err(AccountError::usage(
            format!(
                "the cache {} is damaged: its fetch time is in the future",
                f.display()
            ),
            "remove the file; the next login with the portal reachable writes it again",
        ));
    }
    Ok(())
}

/// What sshd asks, for the account `l` looks up. With a cache whose
/// header holds the answer, a portal that has nothing new is asked once
/// and the answer is printed as kept (no entry parsed, no key decoded);
/// when it has something, or there is no such cache, the full download
/// ([`public_view`]) verifies it and the answer is derived again.
fn sshd_answer(l: &Lookup) -> Result<SshdAnswer> {
    check_profile_udf(l.profile_udf)?;
    let file = cache_file(l);
    let opened = match &file {
        Some(f) => cache::open(f)?,
        None => None,
    };
    let header = opened.as_ref().and_then(|o| o.header().cloned());
    if let (Some(f), Some(h)) = (&file, header) {
        check_fetched(f, h.fetched)?;
        match nothing_new(l.portal, l.profile_udf, &h) {
            Ok(true) => {
                if let Some(o) = opened.filter(|_| now().saturating_sub(h.fetched) >= CACHE_RENEW) {
                    o.renew(now())?;
                }
                return Ok(h.answer);
            }
            Ok(false) => {}
            Err(e) if unreachable(&e) => {
                if l.max_stale == 0 {
                    return Err(e);
                }
                serve_stale(l, h.fetched)?;
                return Ok(h.answer);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(full_view(l, file.as_deref(), opened)?.1)
}

/// The verified public view: fresh from the portal (continuing, and
/// checked against, the cached answer), or, when the portal cannot be
/// reached, the cached answer while it is younger than `max_stale`; then
/// it fails closed. A portal that serves a history behind or beside the
/// cached one is refused and the cache is kept.
pub fn public_view(l: &Lookup) -> Result<AccountView> {
    check_profile_udf(l.profile_udf)?;
    let file = cache_file(l);
    let opened = match &file {
        Some(f) => cache::open(f)?,
        None => None,
    };
    Ok(full_view(l, file.as_deref(), opened)?.0)
}

/// The cached entries (format 1, or format 2 checked against its header).
fn cached_entries(f: &Path, o: cache::Opened) -> Result<(PublicAnswer, bool)> {
    let header = o.header().cloned();
    let mut ans: PublicAnswer = o.entries()?;
    if let Some(h) = &header {
        if h.history != ans.history {
            return Err(AccountError::usage(
                format!(
                    "the cache {} is damaged: its entries are not at its header's history",
                    f.display()
                ),
                "remove the file; the next login with the portal reachable writes it again",
            ));
        }
        ans.fetched = h.fetched;
    }
    check_fetched(f, ans.fetched)?;
    Ok((ans, header.is_some()))
}

/// [`public_view`] from an opened cache, with what sshd asks of it.
fn full_view(
    l: &Lookup,
    file: Option<&Path>,
    opened: Option<cache::Opened>,
) -> Result<(AccountView, SshdAnswer)> {
    let cached = match (file, opened) {
        (Some(f), Some(o)) => Some(cached_entries(f, o)?),
        _ => None,
    };
    let known = cached.as_ref().map(|c| c.0.clone()).unwrap_or_default();
    match fetch_public(l.portal, l.profile_udf, known) {
        Ok(ans) => {
            let view = verified(&ans, l.profile_udf)?;
            let answer = SshdAnswer::of(&view)?;
            // Rewritten when something arrived, or to renew its fetch time
            // once a minute, or from format 1: most logins write nothing.
            let fresh = cached.as_ref().is_some_and(|(c, current)| {
                *current
                    && c.history == ans.history
                    && ans.fetched.saturating_sub(c.fetched) < CACHE_RENEW
            });
            if let (Some(f), false) = (file, fresh) {
                let profile = ans.profile.as_ref().map(|p| p.content_digest());
                let header = Header {
                    format: cache::FORMAT,
                    fetched: ans.fetched,
                    history: ans.history.clone(),
                    profile: profile
                        .map(|d| mesh_core::b64::encode(&d))
                        .unwrap_or_default(),
                    answer: answer.clone(),
                    heartbeat: ans.heartbeat(),
                };
                cache::write(f, &header, &ans)?;
            }
            Ok((view, answer))
        }
        Err(e) if unreachable(&e) => {
            let Some((ans, _)) = cached.filter(|_| l.max_stale > 0) else {
                return Err(e);
            };
            serve_stale(l, ans.fetched)?;
            // Verified when it was kept, in a directory only this user writes.
            let view = verified(&ans, l.profile_udf)?;
            let answer = SshdAnswer::of(&view)?;
            Ok((view, answer))
        }
        Err(e) => Err(e),
    }
}

/// `mesh ssh authorized-keys`: lines for every active ssh device of the
/// account; none when `user` is given and is not one of its login names.
pub fn authorized_keys(l: &Lookup, user: Option<&str>) -> Result<Vec<String>> {
    Ok(sshd_answer(l)?.authorized_lines(user))
}

/// `mesh ssh authorized-principals`: the login name, when the certificate
/// is for an active device's current key and the name is the account's.
pub fn authorized_principals(l: &Lookup, user: &str, cert: &str) -> Result<Vec<String>> {
    Ok(sshd_answer(l)?.authorized_principals(user, cert)?)
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
    let view = fresh_view(profile_udf, portal, cache)?;
    let Some((version, bytes)) = mesh_ssh::channel::published_krl(&view)? else {
        return Err(no_krl(output));
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

/// An account created before accounts published an empty KRL at once:
/// say what became of the file, and what publishes one.
fn no_krl(output: &Path) -> AccountError {
    let file = if output.exists() {
        format!("{} is kept as it is", output.display())
    } else {
        format!(
            "{} was not written, and sshd refuses every key while its RevokedKeys names a missing file",
            output.display()
        )
    };
    AccountError::usage(
        format!("the account has published no KRL yet: {file}"),
        "an administrator's next sync publishes one (`mesh sync` on an administrator device, or its running agent within the hour); then run this again",
    )
}

/// The account's verified public view, from the portal now (never a
/// cached answer older than this call).
pub(crate) fn fresh_view(
    profile_udf: &str,
    portal: &str,
    cache: Option<&Path>,
) -> Result<AccountView> {
    public_view(&Lookup {
        profile_udf,
        portal,
        cache,
        max_stale: 0,
    })
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
    let view = fresh_view(profile_udf, portal, cache)?;
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
pub(crate) fn write_public(output: &Path, bytes: &[u8]) -> Result<()> {
    mesh_account::store::write_atomic(output, bytes)?;
    mesh_plugins::platform::set_mode(output, 0o644).map_err(|e| {
        AccountError::Store(mesh_account::store::StoreError::Io {
            path: output.to_path_buf(),
            source: e,
        })
    })
}
