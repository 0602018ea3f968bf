//! A fake [`CommandContext`] for channels' subcommand tests: the host's
//! side of `mesh CHANNEL …` on a [`FakeDevice`] and a [`TestAccount`]'s
//! view, recording what the subcommand asked the host to do.

use std::cell::{Cell, RefCell};
use std::path::Path;

use crate::command::{AccountRef, PublishFn, ViewFn};
use crate::{AccountView, AppEntry, CommandContext, CommandError, DeviceHost};

use super::FakeDevice;

/// The host as a channel's subcommand sees it, without a portal: the
/// device's home, `--json`, the view, and host services that record their
/// calls ([`published`](Self::published), [`syncs`](Self::syncs)).
pub struct FakeContext<'a> {
    device: &'a FakeDevice,
    view: AccountView,
    json: bool,
    published: RefCell<Vec<AppEntry>>,
    syncs: Cell<usize>,
    nudges: Cell<usize>,
}

impl<'a> FakeContext<'a> {
    /// `device` with `view` (from [`super::TestAccount::view`]).
    pub fn new(device: &'a FakeDevice, view: AccountView, json: bool) -> FakeContext<'a> {
        FakeContext {
            device,
            view,
            json,
            published: RefCell::new(Vec::new()),
            syncs: Cell::new(0),
            nudges: Cell::new(0),
        }
    }

    /// The entries [`CommandContext::publish`] was asked to publish.
    pub fn published(&self) -> Vec<AppEntry> {
        self.published.borrow().clone()
    }

    /// How many times the subcommand synced.
    pub fn syncs(&self) -> usize {
        self.syncs.get()
    }

    /// How many times the subcommand asked a running agent to sync.
    pub fn nudges(&self) -> usize {
        self.nudges.get()
    }
}

impl std::fmt::Debug for FakeContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeContext")
            .field("device", &self.device.device_udf())
            .field("json", &self.json)
            .finish_non_exhaustive()
    }
}

impl CommandContext for FakeContext<'_> {
    fn home(&self) -> &Path {
        self.device.home()
    }

    fn json(&self) -> bool {
        self.json
    }

    fn with_view(&self, f: ViewFn<'_>) -> Result<(), CommandError> {
        f(self.device, &self.view)
    }

    fn has_account(&self) -> Result<bool, CommandError> {
        Ok(true)
    }

    fn account(&self) -> Result<AccountRef, CommandError> {
        Ok(AccountRef {
            profile_udf: self.view.profile_udf.clone(),
            portal: "https://portal.invalid".into(),
        })
    }

    fn sync(&self) -> Result<(), CommandError> {
        self.syncs.set(self.syncs.get() + 1);
        Ok(())
    }

    fn publish(&self, build: PublishFn<'_>) -> Result<(), CommandError> {
        let entries = build(&self.view)?;
        self.published.borrow_mut().extend(entries);
        Ok(())
    }

    fn nudge_agent(&self) {
        self.nudges.set(self.nudges.get() + 1);
    }
}
