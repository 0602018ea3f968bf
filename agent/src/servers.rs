//! What servers run, without being devices of the account: sshd's
//! `AuthorizedKeysCommand` (`mesh ssh authorized-keys`) and
//! `AuthorizedPrincipalsCommand` (`mesh ssh authorized-principals`), and
//! the KRL fetch (`mesh ssh krl --account`). Everything is read from the
//! portal's public stores and verified up to the pinned profile UDF; a
//! cache serves logins while the portal is away, for a bounded time.

use std::path::Path;

use mesh_account::client::{now, Client, ClientError};
use mesh_account::AccountError;
use mesh_core::envelope::Signed;
use mesh_core::portal::{self as p, store as st, StoreIndex};
use mesh_plugins::AccountView;
use serde::{Deserialize, Serialize};

type Result<T> = std::result::Result<T, AccountError>;

/// Most pages one public read follows (a portal answering `Partial` for
/// ever is refused).
const MAX_PAGES: usize = 4096;

/// The public state of an account, as servers fetch it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PublicAnswer {
    fetched: u64,
    profile: Signed,
    access: Signed,
    devices: Vec<Signed>,
    #[serde(default)]
    published: Vec<Signed>,
}

fn fetch_store(
    client: &Client,
    profile_udf: &str,
    store_name: &str,
) -> std::result::Result<(Signed, Vec<Signed>), ClientError> {
    let mut index = 0;
    let mut out = Vec::new();
    for _ in 0..MAX_PAGES {
        let r: p::DownloadResponse = client.post(
            "Public",
            &p::PublicRequest {
                account_address: None,
                profile_udf: Some(profile_udf.to_string()),
                select: vec![StoreIndex {
                    store: store_name.into(),
                    index,
                }],
            },
        )?;
        let Some(u) = r.updates.into_iter().next() else {
            return Ok((r.profile, out));
        };
        for e in &u.entries {
            index = e.index;
            out.push(
                serde_json::from_value(e.envelope.clone())
                    .map_err(|x| ClientError::BadAnswer(x.to_string()))?,
            );
        }
        if !u.partial {
            return Ok((r.profile, out));
        }
        if u.entries.is_empty() {
            return Err(ClientError::BadAnswer(format!(
                "the {store_name} store answered 'more follow' with no entries"
            )));
        }
    }
    Err(ClientError::BadAnswer(format!(
        "the {store_name} store kept answering 'partial' after {MAX_PAGES} pages"
    )))
}

fn fetch_public(portal: &str, profile_udf: &str) -> std::result::Result<PublicAnswer, ClientError> {
    let client = Client::new(portal)?;
    let (profile, access) = fetch_store(&client, profile_udf, st::ACCESS)?;
    let (_, devices) = fetch_store(&client, profile_udf, st::DEVICE)?;
    let (_, published) = fetch_store(&client, profile_udf, st::PUBLISHED)?;
    Ok(PublicAnswer {
        fetched: now(),
        profile,
        access: access
            .last()
            .cloned()
            .ok_or_else(|| ClientError::BadAnswer("no access list".into()))?,
        devices,
        published,
    })
}

/// Everything the answer says, verified up to the pinned profile UDF.
fn verified(ans: &PublicAnswer, pinned: &str) -> Result<AccountView> {
    Ok(AccountView::verify(
        pinned,
        &ans.profile,
        Some(&ans.access),
        &ans.devices,
        &ans.published,
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

/// The verified public view: fresh from the portal (and cached), or, when
/// the portal cannot be reached, the cached answer while it is younger than
/// `max_stale`; then it fails closed.
fn public_view(l: &Lookup) -> Result<AccountView> {
    check_profile_udf(l.profile_udf)?;
    let cache_file = l
        .cache
        .map(|d| d.join(format!("{}.json", l.profile_udf.replace('-', ""))));
    match fetch_public(l.portal, l.profile_udf) {
        Ok(ans) => {
            let view = verified(&ans, l.profile_udf)?;
            if let Some(f) = &cache_file {
                if let Some(dir) = f.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                mesh_account::store::write_atomic(
                    f,
                    &serde_json::to_vec(&ans).unwrap_or_default(),
                )?;
            }
            Ok(view)
        }
        Err(e @ ClientError::Unreachable { .. }) => {
            let Some(f) = cache_file else {
                return Err(e.into());
            };
            let Ok(raw) = std::fs::read(&f) else {
                return Err(e.into());
            };
            let ans: PublicAnswer = serde_json::from_slice(&raw).map_err(|x| {
                AccountError::usage(
                    format!("the cache {} is damaged: {x}", f.display()),
                    "remove the file; the next login with the portal reachable writes it again",
                )
            })?;
            let age = now().saturating_sub(ans.fetched);
            if age > l.max_stale {
                return Err(AccountError::usage(
                    format!("the portal is unreachable and the cached answer is {age} s old (more than --max-stale {} s): refusing", l.max_stale),
                    "bring the portal back, or allow older answers with a larger --max-stale",
                ));
            }
            // The cache is re-verified: a file is no more trusted than the portal.
            verified(&ans, l.profile_udf)
        }
        Err(e) => Err(e.into()),
    }
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
pub fn fetch_krl(profile_udf: &str, portal: &str, output: &Path) -> Result<KrlFetch> {
    check_profile_udf(profile_udf)?;
    let view = verified(&fetch_public(portal, profile_udf)?, profile_udf)?;
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
            mesh_account::store::write_atomic(output, &bytes)?;
            std::fs::set_permissions(output, std::os::unix::fs::PermissionsExt::from_mode(0o644))
                .map_err(|e| {
                AccountError::Store(mesh_account::store::StoreError::Io {
                    path: output.to_path_buf(),
                    source: e,
                })
            })?;
            Ok(KrlFetch {
                version,
                replaced: true,
            })
        }
    }
}
