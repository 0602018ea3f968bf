//! `mesh quickstart`: Mesh on an embedded default, in one command.
//!
//! It starts a portal in this process (embedded SQLite under the quickstart
//! directory), creates an account whose first administrator is a "laptop"
//! home, connects a "phone" home with a one-time PIN, and shows the signed
//! device list both devices agree on. The homes keep their store keys in
//! files (`MESH_KEYSTORE=file`): this is a demonstration, not a key store
//! for real keys. Run again, it reuses the directory and restarts the portal.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use mesh_core::objects::Role;

use mesh_account::store::Store;
use mesh_account::{admin, join, sync, AccountError, Membership};

/// What the quickstart set up.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Quickstart {
    /// The portal's URL.
    pub portal: String,
    /// The account's address.
    pub address: String,
    /// The account's profile UDF.
    pub profile_udf: String,
    /// The administrator's home.
    pub laptop: PathBuf,
    /// The second device's home.
    pub phone: PathBuf,
    /// The recovery kit: the account's root, one share per directory, none
    /// inside a home (no device keeps it).
    pub recovery: Vec<PathBuf>,
    /// Devices as the phone sees them.
    pub devices: Vec<admin::DeviceView>,
    /// A phone home revoked since the last run, moved here; a new phone
    /// home took its place.
    pub revoked_phone: Option<PathBuf>,
}

/// Errors of the quickstart.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuickstartError {
    /// The embedded portal.
    #[error("embedded portal: {0}")]
    Portal(#[from] mesh_portal::ServeError),
    /// The account steps.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// The runtime.
    #[error("{0}")]
    Runtime(String),
}

/// A running embedded portal; stops when dropped.
#[derive(Debug)]
pub struct EmbeddedPortal {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EmbeddedPortal {
    /// Start a portal on `listen` with its data in `data`.
    pub fn start(listen: SocketAddr, data: &Path) -> Result<EmbeddedPortal, QuickstartError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| QuickstartError::Runtime(e.to_string()))?;
        let portal = rt.block_on(mesh_portal::Portal::bind(listen, data, None))?;
        let url = portal.url();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let _ = rt.block_on(portal.run(async {
                let _ = rx.await;
            }));
        });
        Ok(EmbeddedPortal {
            url,
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for EmbeddedPortal {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Set up (or reuse) the quickstart in `dir` against `portal`.
pub fn run(
    dir: &Path,
    portal: &EmbeddedPortal,
    address: &str,
) -> Result<Quickstart, QuickstartError> {
    let laptop = dir.join("laptop");
    let phone = dir.join("phone");
    // One directory per share, beside the homes, not in them: a real kit
    // goes to separate media (`mesh account create --recovery D1,D2,D3`).
    let recovery: Vec<PathBuf> = (1..=3).map(|i| dir.join(format!("recovery-{i}"))).collect();
    let host = crate::host();
    let mut revoked_phone = None;
    {
        let mut admin = Store::open(&laptop, true).map_err(AccountError::from)?;
        if mesh_account::account(&admin).is_err() {
            if admin.state().device.is_none() {
                mesh_account::device::init(&mut admin, "laptop", &host.slots())
                    .map_err(AccountError::from)?;
            }
            let names: Vec<String> = recovery.iter().map(|d| d.display().to_string()).collect();
            let (kit, _) = crate::recovery::KitTarget::parse(&names, None, &laptop)
                .map_err(AccountError::from)?;
            join::create(
                &mut admin,
                &host,
                join::NewAccount {
                    address,
                    portal: portal.url(),
                    name: Some("Quickstart".into()),
                    device_name: Some("laptop"),
                    recovery: join::Recovery {
                        threshold: 2,
                        shares: 3,
                    },
                    witness: None,
                    invite: None,
                },
                |shares| {
                    crate::recovery::write_kit(&kit, address, portal.url(), 2, shares)?;
                    Ok(())
                },
            )?;
        }
        let mut p = Store::open(&phone, true).map_err(AccountError::from)?;
        // The phone was revoked (as the quick start suggests trying): keep
        // its home aside, and connect a new phone in its place.
        if phone_revoked(&mut p, &host)? {
            drop(p);
            let aside = free_name(dir, "phone.revoked");
            std::fs::rename(&phone, &aside).map_err(|e| {
                QuickstartError::Runtime(format!("cannot move {} aside: {e}", phone.display()))
            })?;
            revoked_phone = Some(aside);
            p = Store::open(&phone, true).map_err(AccountError::from)?;
        }
        if mesh_account::account(&p).is_err() {
            let mut roles = host.roles();
            roles.retain(|r| *r != Role::ADMIN);
            let (pin, _) = admin::new_pin(&mut admin, &host, &roles, 600)?;
            let slots = host.slots();
            join::request(
                &mut p,
                address,
                portal.url(),
                Some("phone"),
                Some(&pin),
                &slots,
            )?;
            sync::sync(&mut admin, &host)?;
        }
        sync::sync(&mut p, &host)?;
    }
    let p = Store::open(&phone, false).map_err(AccountError::from)?;
    let a = mesh_account::account(&p)?;
    Ok(Quickstart {
        portal: portal.url().to_string(),
        address: a.address.clone(),
        profile_udf: a.profile_udf.clone(),
        laptop,
        phone,
        recovery,
        devices: admin::list(&p)?,
        revoked_phone,
    })
}

/// Whether the phone home was revoked: wiped already, or told so at this sync.
fn phone_revoked(p: &mut Store, host: &mesh_account::Host) -> Result<bool, AccountError> {
    match mesh_account::account(p) {
        Err(_) => Ok(false),
        Ok(a) if a.membership == Membership::Revoked => Ok(true),
        Ok(a) if a.membership == Membership::Pending => Ok(false),
        Ok(_) => match sync::sync(p, host) {
            Err(AccountError::Revoked(_)) => Ok(true),
            r => r.map(|_| false),
        },
    }
}

/// `dir/base-1`, or the first of `-2`, `-3`… that does not exist.
fn free_name(dir: &Path, base: &str) -> PathBuf {
    (1..)
        .map(|i| dir.join(format!("{base}-{i}")))
        .find(|p| !p.exists())
        .unwrap_or_else(|| dir.join(base))
}
