//! One command's account (issue 24, "a per-command session"): the state a
//! pull verified and kept, and its verified view, built at most once. It is
//! handed down by value from the pull to the event, from one event to the
//! next and to the channels' pass: nothing below reads the state again or
//! builds the view again. The secrets are the open store's (decrypted once:
//! `store/sealed.rs`), the profile the state's (`state::VerifiedProfile`).

use mesh_plugins::AccountView;

use crate::error::Result;
use crate::host::Host;
use crate::state::AccountState;

/// The state a pull verified, and its view once built.
#[derive(Debug)]
pub(crate) struct Session {
    state: AccountState,
    view: Option<AccountView>,
}

impl Session {
    /// The session of a state just verified (no view yet).
    pub(crate) fn new(state: AccountState) -> Session {
        Session { state, view: None }
    }

    /// The state.
    pub(crate) fn state(&self) -> &AccountState {
        &self.state
    }

    /// The state, for a pull or a wipe that moves it on (the view goes).
    pub(crate) fn into_state(self) -> AccountState {
        self.state
    }

    /// The state and its verified view (with every channel's checks),
    /// built on first use.
    pub(crate) fn view(&mut self, host: &Host) -> Result<(&AccountState, &AccountView)> {
        let view = match self.view.take() {
            Some(v) => v,
            None => host.view(&self.state)?,
        };
        Ok((&self.state, self.view.insert(view)))
    }
}
