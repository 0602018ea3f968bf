//! `mesh-files`: the files channel. A file encrypted with `age` to the
//! account's recipient (`mesh files recipient`, `age1mesh1…`) opens on
//! every active device of the account (`age -d -i` with the identity from
//! `mesh files identity`, which holds no secret) and not on a device
//! revoked before it was made.
//!
//! - [`channel`]: the administrator side, the account's file key per epoch
//!   (PROTOCOL.md, "Files").
//! - [`device`]: the device side, the epochs it holds, and the age stanza.
//! - [`encoding`]: the recipient and identity strings.
//! - [`cli`]: `mesh files …`, mounted by the `mesh` binary through the
//!   SDK's `ChannelCommand`.
//! - [`age_file`], [`file_cmd`]: `mesh files encrypt|decrypt`, the age v1
//!   format written and read without `age`.
//! - `age-plugin-mesh` (src/bin): the age plugin; it wraps to the
//!   recipient's key itself and asks `mesh files unwrap` to unwrap, so the
//!   device's keys stay behind `mesh` and its home.
#![forbid(unsafe_code)]

pub mod age_file;
pub mod channel;
pub mod cli;
pub mod device;
pub mod encoding;
mod error;
pub mod file_cmd;

pub use channel::FilesPlugin;
pub use error::FilesError;
