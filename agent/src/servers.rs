//! What servers run: `mesh ssh authorized-keys` for sshd's
//! `AuthorizedKeysCommand`, verified up to the pinned profile UDF, with a
//! cache for when the portal cannot be reached.

use std::path::Path;

use mesh_account::client::{now, Client, ClientError};
use mesh_account::AccountError;
use mesh_core::envelope::Signed;
use mesh_core::portal::{self as p, store as st, StoreIndex};
use serde::{Deserialize, Serialize};

type Result<T> = std::result::Result<T, AccountError>;

/// The public state of an account, as servers fetch it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PublicAnswer {
    fetched: u64,
    profile: Signed,
    access: Signed,
    devices: Vec<Signed>,
}

fn fetch_public(portal: &str, profile_udf: &str) -> std::result::Result<PublicAnswer, ClientError> {
    let client = Client::new(portal)?;
    let mut access = None;
    let mut devices = Vec::new();
    let mut profile = None;
    for store_name in [st::ACCESS, st::DEVICE] {
        let mut index = 0;
        loop {
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
            profile = Some(r.profile);
            let Some(u) = r.updates.into_iter().next() else {
                break;
            };
            for e in &u.entries {
                index = e.index;
                let env: Signed = serde_json::from_value(e.envelope.clone())
                    .map_err(|x| ClientError::BadAnswer(x.to_string()))?;
                if store_name == st::ACCESS {
                    access = Some(env);
                } else {
                    devices.push(env);
                }
            }
            if !u.partial {
                break;
            }
        }
    }
    Ok(PublicAnswer {
        fetched: now(),
        profile: profile.ok_or_else(|| ClientError::BadAnswer("no profile".into()))?,
        access: access.ok_or_else(|| ClientError::BadAnswer("no access list".into()))?,
        devices,
    })
}

fn lines(ans: &PublicAnswer, pinned: &str) -> Result<Vec<String>> {
    Ok(mesh_ssh::channel::authorized_lines(
        pinned,
        &ans.profile,
        &ans.access,
        &ans.devices,
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

/// `mesh ssh authorized-keys`: lines for every active device of the
/// account, verified up to the pinned profile UDF. When the portal cannot
/// be reached, the last verified answer in `cache` is used while it is
/// younger than `max_stale` seconds; then it fails closed.
pub fn authorized_keys(
    profile_udf: &str,
    portal: &str,
    cache: Option<&Path>,
    max_stale: u64,
) -> Result<Vec<String>> {
    check_profile_udf(profile_udf)?;
    let cache_file = cache.map(|d| d.join(format!("{}.json", profile_udf.replace('-', ""))));
    match fetch_public(portal, profile_udf) {
        Ok(ans) => {
            let out = lines(&ans, profile_udf)?;
            if let Some(f) = &cache_file {
                if let Some(dir) = f.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                mesh_account::store::write_atomic(
                    f,
                    &serde_json::to_vec(&ans).unwrap_or_default(),
                )?;
            }
            Ok(out)
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
            if age > max_stale {
                return Err(AccountError::usage(
                    format!("the portal is unreachable and the cached answer is {age} s old (more than --max-stale {max_stale} s): refusing"),
                    "bring the portal back, or allow older answers with a larger --max-stale",
                ));
            }
            // The cache is re-verified: a file is no more trusted than the portal.
            lines(&ans, profile_udf)
        }
        Err(e) => Err(e.into()),
    }
}
