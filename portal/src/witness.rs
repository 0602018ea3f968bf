//! The witness role (`mesh-portal serve --witness DIR`, PROTOCOL.md §10.6):
//! for each account whose root-signed profile names this witness, read the
//! account's checkpoints from the portal the profile names, extend the
//! chain kept here only with checkpoints that follow it, and sign the head
//! reached. Nothing a requester sends is taken as history: the witness
//! reads the portal itself, so a thief holding an administrator's key
//! cannot hand it a branch, and once it holds a revocation a portal
//! restored from an older backup gets no head of its branch signed.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use mesh_account::client::Client;
use mesh_core::envelope::Signed;
use mesh_core::keys::{KeyData, SigningKey};
use mesh_core::objects::ProfileAccount;
use mesh_core::portal::{self as p, code, ErrorBody};
use mesh_core::witness::{WitnessAnswer, WitnessRequest, Witnessed, CT_WITNESS_HEAD};
use rusqlite::{params, Connection, OptionalExtension};

/// Most accounts one witness keeps (each is one row).
pub const MAX_ACCOUNTS: i64 = 100_000;

/// Most checkpoints one request reads (a longer chain is followed over
/// several requests).
const MAX_READ: usize = 4096;

/// Most administrator epochs an account may have here (each is kept).
const MAX_EPOCHS: usize = 1024;

/// Largest request body: a profile UDF and a URL.
const MAX_REQUEST: usize = 4096;

/// A witness: its key and its memory of each account's chain.
pub struct Witness {
    key: SigningKey,
    db: Mutex<Connection>,
    /// One read of the portal per account at a time.
    busy: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("key", &self.key.public_key().udf())
            .finish_non_exhaustive()
    }
}

/// Errors opening the witness's directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// File or directory.
    #[error("witness {what}: {source}")]
    Io {
        /// What failed.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Its database.
    #[error("witness database: {0}")]
    Db(#[from] rusqlite::Error),
    /// A key file that is not one.
    #[error("witness key {0} is damaged (not 32 bytes)")]
    Key(String),
}

impl Witness {
    /// Open (or make) the witness in `dir`: its key (`witness.key`, 0600,
    /// made once) and its database (`witness.sqlite`).
    pub fn open(dir: &Path) -> Result<Witness, WitnessError> {
        let io = |what: String| move |source| WitnessError::Io { what, source };
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let key_file = dir.join("witness.key");
        let seed = match std::fs::read(&key_file) {
            Ok(b) => zeroize::Zeroizing::new(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => new_key(&key_file)?,
            Err(e) => return Err(io(key_file.display().to_string())(e)),
        };
        let seed: [u8; 32] = seed[..]
            .try_into()
            .map_err(|_| WitnessError::Key(key_file.display().to_string()))?;
        let db = Connection::open(dir.join("witness.sqlite"))?;
        db.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE IF NOT EXISTS witnessed (account TEXT PRIMARY KEY, state TEXT NOT NULL);",
        )?;
        Ok(Witness {
            key: SigningKey::from_seed(&seed),
            db: Mutex::new(db),
            busy: Mutex::default(),
        })
    }

    /// Its public key, as profiles name it.
    pub fn key(&self) -> KeyData {
        KeyData::new(self.key.public_key())
    }

    fn load(&self, account: &str) -> rusqlite::Result<Option<Witnessed>> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let raw: Option<String> = db
            .query_row(
                "SELECT state FROM witnessed WHERE account = ?1",
                params![account],
                |r| r.get(0),
            )
            .optional()?;
        Ok(raw.and_then(|s| serde_json::from_str(&s).ok()))
    }

    fn save(&self, account: &str, w: &Witnessed, new: bool) -> Result<(), String> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        if new {
            let count: i64 = db
                .query_row("SELECT count(*) FROM witnessed", [], |r| r.get(0))
                .map_err(|e| e.to_string())?;
            if count >= MAX_ACCOUNTS {
                return Err(format!(
                    "this witness keeps at most {MAX_ACCOUNTS} accounts"
                ));
            }
        }
        let state = serde_json::to_string(w).map_err(|e| e.to_string())?;
        db.execute(
            "INSERT INTO witnessed (account, state) VALUES (?1, ?2)
             ON CONFLICT (account) DO UPDATE SET state = excluded.state",
            params![account, state],
        )
        .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Read the account's portal and extend the chain kept here; returns
    /// the answer to sign, with why it stopped short (if it did).
    fn read(&self, req: &WitnessRequest, now: u64) -> Result<WitnessAnswer, (StatusCode, String)> {
        let lock = {
            let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
            busy.retain(|_, l| Arc::strong_count(l) > 1);
            busy.entry(req.profile_udf.clone()).or_default().clone()
        };
        let _one = lock.lock().unwrap_or_else(|p| p.into_inner());
        let udf = req.profile_udf.as_str();
        let known = self
            .load(udf)
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let new = known.is_none();
        let mut w = match known {
            Some(w) => w,
            None => self.start(req).map_err(|e| (StatusCode::FORBIDDEN, e))?,
        };
        let stopped = self.follow(&mut w, udf).err();
        self.save(udf, &w, new)
            .map_err(|e| (StatusCode::TOO_MANY_REQUESTS, e))?;
        let head = w.head(udf, now);
        Ok(WitnessAnswer {
            key: self.key(),
            head: Some(Signed::sign_object(CT_WITNESS_HEAD, &head, &self.key)),
            stopped,
        })
    }

    /// First contact: the profile, read from the portal the requester
    /// names, which must be the one the profile itself names.
    fn start(&self, req: &WitnessRequest) -> Result<Witnessed, String> {
        let client = Client::new(&req.portal).map_err(|e| e.to_string())?;
        let r: p::DownloadResponse = client
            .post(
                "Public",
                &p::PublicRequest {
                    account_address: None,
                    profile_udf: Some(req.profile_udf.clone()),
                    select: Vec::new(),
                },
            )
            .map_err(|e| format!("reading the account from {}: {e}", req.portal))?;
        let w = Witnessed::start(&r.profile, &req.profile_udf, &self.key.public_key())
            .map_err(|e| e.to_string())?;
        let profile = w.profile().map_err(|e| e.to_string())?;
        if profile.service.trim_end_matches('/') != client.url() {
            return Err(format!(
                "the account's profile names portal {}, not {}",
                profile.service,
                client.url()
            ));
        }
        Ok(w)
    }

    /// Every checkpoint the profile's portal has past the chain kept here,
    /// each verified to follow it (kept up to the first that does not).
    fn follow(&self, w: &mut Witnessed, udf: &str) -> Result<(), String> {
        let profile: ProfileAccount = w.profile().map_err(|e| e.to_string())?;
        let client = Client::new(&profile.service).map_err(|e| e.to_string())?;
        let who = p::PublicRequest {
            account_address: None,
            profile_udf: Some(udf.to_string()),
            select: Vec::new(),
        };
        // Bounded per request (what a read may cost) and in all (what a
        // witness keeps): the portal may be the account owner's own.
        let mut read = 0;
        mesh_account::pull::public_checkpoints(
            &client,
            &who,
            Some(udf),
            &mut w.history,
            |_, h, _, _| {
                read += 1;
                if read > MAX_READ || h.epochs.len() > MAX_EPOCHS {
                    return Err(mesh_account::AccountError::Untrusted(format!(
                        "more than {MAX_READ} checkpoints in one read, or {MAX_EPOCHS} epochs in all: the rest on the next request"
                    )));
                }
                Ok(())
            },
        )
        .map_err(|e| format!("the portal's checkpoints past {}: {e}", w.history.serial()))
    }
}

/// A fresh key file, 0600, written once.
fn new_key(file: &Path) -> Result<zeroize::Zeroizing<Vec<u8>>, WitnessError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut seed = zeroize::Zeroizing::new(vec![0u8; 32]);
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
    let io = |source| WitnessError::Io {
        what: file.display().to_string(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .map_err(io)?;
    f.write_all(&seed).and_then(|_| f.sync_all()).map_err(io)?;
    Ok(seed)
}

/// The witness's route: `POST /mesh/v1/Witness`.
pub fn router(w: Arc<Witness>) -> Router {
    Router::new()
        .route("/mesh/v1/Witness", post(witness))
        .layer(DefaultBodyLimit::max(MAX_REQUEST))
        .with_state(w)
}

fn refuse(status: StatusCode, reason: String) -> Response {
    let c = if status == StatusCode::TOO_MANY_REQUESTS {
        code::QUOTA_EXCEEDED
    } else {
        code::BAD_REQUEST
    };
    let body = ErrorBody {
        error: c.into(),
        reason,
        access_list: None,
    };
    (status, Json(body)).into_response()
}

async fn witness(State(w): State<Arc<Witness>>, body: Bytes) -> Response {
    let req: WitnessRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("witness request: {e}")),
    };
    if req.profile_udf.is_empty() {
        let key_only = WitnessAnswer {
            key: w.key(),
            head: None,
            stopped: None,
        };
        return Json(key_only).into_response();
    }
    if let Err(e) =
        mesh_core::udf::decode_typed(&req.profile_udf, mesh_core::udf::UdfType::DigestSha2)
    {
        return refuse(StatusCode::BAD_REQUEST, format!("profile UDF: {e}"));
    }
    let now = crate::api::now();
    // The portal is read with a blocking client, off the runtime's workers.
    match tokio::task::spawn_blocking(move || w.read(&req, now)).await {
        Ok(Ok(a)) => Json(a).into_response(),
        Ok(Err((status, reason))) => refuse(status, reason),
        Err(_) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the witness failed".into(),
        ),
    }
}
