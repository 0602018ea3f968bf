//! Portal messages: our JSON binding of the Mesh protocol transactions
//! (mesh-protocol §"Transactions"; notes `mesh-spec.md` §5) and the
//! account's access list. Sans-io: the portal and the agent serialize
//! these; PROTOCOL.md §10 specifies them.
//!
//! Every device request is a [`Signed`] envelope (content type
//! [`ct::REQUEST`]) whose payload is a [`Request`]: the account, the
//! device, a timestamp and a nonce (freshness), the transaction name and
//! its body. Members sign with their combined authentication key; a device
//! that is not yet a member (Connect, Complete) signs with the base
//! authentication key of its own profile.

use serde::{Deserialize, Serialize};

use crate::envelope::Signed;
use crate::objects::Role;

/// Content types of portal objects.
pub mod ct {
    /// A signed device request.
    pub const REQUEST: &str = "MeshRequest";
    /// [`super::AccessList`].
    pub const ACCESS_LIST: &str = crate::access::CT_ACCESS_LIST;
    /// [`super::RequestConnection`].
    pub const REQUEST_CONNECTION: &str = "RequestConnection";
    /// [`super::RespondConnection`].
    pub const RESPOND_CONNECTION: &str = "RespondConnection";
    /// [`super::MessagePin`] (encrypted to the administrators, then signed).
    pub const MESSAGE_PIN: &str = "MessagePin";
    /// [`crate::history::Checkpoint`].
    pub const CHECKPOINT: &str = "Checkpoint";
}

/// Store names (the reference code's bare names).
pub mod store {
    /// The access list: one signed [`super::AccessList`] per entry, the last one current.
    pub const ACCESS: &str = "Access";
    /// The device catalog: signed `CatalogedDevice` entries.
    pub const DEVICE: &str = "Device";
    /// The application catalog: signed `CatalogedApplication` entries.
    pub const APPLICATION: &str = "Application";
    /// Connection requests the portal received ([`super::InboundRequest`]).
    pub const INBOUND: &str = "Inbound";
    /// Administrators' records: PINs and responses.
    pub const LOCAL: &str = "Local";
    /// Signed `CatalogedApplication` entries that servers read without
    /// being devices of the account: the SSH policy (login names), the KRL.
    pub const PUBLISHED: &str = "Published";
    /// The account's signed history: one [`crate::history::Checkpoint`] per
    /// administrator transaction, binding every other store's position.
    pub const CHECKPOINT: &str = "Checkpoint";
    /// Every store, in sync order.
    pub const ALL: [&str; 7] = [
        ACCESS,
        DEVICE,
        APPLICATION,
        PUBLISHED,
        INBOUND,
        LOCAL,
        CHECKPOINT,
    ];
    /// Stores anyone may read (public, signed data).
    pub const PUBLIC: [&str; 4] = [ACCESS, DEVICE, PUBLISHED, CHECKPOINT];
    /// Stores whose every entry an administrator signs, and that each
    /// checkpoint covers.
    pub const COVERED: [&str; 5] = [ACCESS, DEVICE, APPLICATION, PUBLISHED, LOCAL];
}

/// Transactions.
pub mod tx {
    /// Create an account at the portal.
    pub const BIND: &str = "Bind";
    /// A new device asks to join.
    pub const CONNECT: &str = "Connect";
    /// The new device polls for the answer.
    pub const COMPLETE: &str = "Complete";
    /// Store indices.
    pub const STATUS: &str = "Status";
    /// Entries since an index.
    pub const DOWNLOAD: &str = "Download";
    /// Append entries.
    pub const TRANSACT: &str = "Transact";
}

/// Seconds a request's `Time` may differ from the portal's clock.
pub const FRESHNESS_WINDOW: u64 = 300;
/// Largest request body the portal accepts: an account event re-issues
/// every device's certificates in one transaction, so this grows with the
/// largest account served (about 2 kB per device).
pub const MAX_BODY: usize = 8 << 20;
/// Most entries one Download returns per store.
pub const MAX_RESULTS: usize = 256;
/// Most entries one Transact may append (an event writes a few per
/// device: 4,096 serves accounts of a thousand devices and more).
pub const MAX_UPDATES: usize = 4096;
/// Most unanswered connection requests an account may have.
pub const MAX_PENDING: u64 = 32;
/// Largest Connect request body: a device profile and a signature (about
/// 2 kB); anyone may send one, so it is small.
pub const MAX_CONNECT_BODY: usize = 8 << 10;
/// Largest body of the other requests anyone may send (Complete, Public).
pub const MAX_SMALL_BODY: usize = 4 << 10;
/// Most bytes of unanswered connection requests an account holds.
pub const MAX_PENDING_BYTES: u64 = 256 << 10;
/// Seconds an unanswered connection request is kept (a day).
pub const PENDING_TTL: u64 = 24 * 3600;
/// `ClientNonce` length in bytes: 128 to 256 bits.
pub const CLIENT_NONCE_BYTES: std::ops::RangeInclusive<usize> = 16..=32;

/// A signed device request (payload of a [`ct::REQUEST`] envelope).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The account's profile UDF (empty for Connect and Complete).
    #[serde(rename = "Account")]
    pub account: String,
    /// The device's UDF.
    #[serde(rename = "Device")]
    pub device: String,
    /// Seconds since the Unix epoch.
    #[serde(rename = "Time")]
    pub time: u64,
    /// 128 random bits, base64url; the portal refuses a nonce twice.
    #[serde(rename = "Nonce")]
    pub nonce: String,
    /// Transaction name ([`tx`]).
    #[serde(rename = "Transaction")]
    pub transaction: String,
    /// Transaction body.
    #[serde(rename = "Body")]
    pub body: serde_json::Value,
}

pub use crate::access::{AccessEntry, AccessList, DeviceState, Extra};

/// Bind: create an account. Signed by the first administrator device, whose
/// combined authentication key the enclosed access list names.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindRequest {
    /// The self-signed account profile.
    #[serde(rename = "EnvelopedProfileAccount")]
    pub profile: Signed,
    /// First entries: the access list (serial 1) and the first device.
    #[serde(rename = "Updates")]
    pub updates: Vec<StoreUpdate>,
    /// An invitation code, for a portal that binds by invitation only
    /// (`crate::invite`).
    #[serde(rename = "Invite", default, skip_serializing_if = "Option::is_none")]
    pub invite: Option<zeroize::Zeroizing<String>>,
}

// The invitation code is a bearer credential: never printed.
impl std::fmt::Debug for BindRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BindRequest")
            .field("profile", &self.profile)
            .field("updates", &self.updates)
            .field("invite", &self.invite.as_ref().map(|_| "[secret elided]"))
            .finish()
    }
}

/// Connect: a device asks to join an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestConnection {
    /// The account's address.
    #[serde(rename = "AccountAddress")]
    pub account_address: String,
    /// The device's self-signed profile; its base authentication key signs the request.
    #[serde(rename = "EnvelopedProfileDevice")]
    pub profile_device: Signed,
    /// 128 random bits, base64url.
    #[serde(rename = "ClientNonce")]
    pub client_nonce: String,
    /// With a PIN: the PIN's id.
    #[serde(rename = "PinId", default, skip_serializing_if = "Option::is_none")]
    pub pin_id: Option<String>,
    /// With a PIN: HMAC proving knowledge of the PIN, base64url.
    #[serde(
        rename = "PinWitness",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pin_witness: Option<String>,
}

/// What the portal appends to the Inbound spool for a connection request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundRequest {
    /// Identifies the request and its answer.
    #[serde(rename = "RequestId")]
    pub request_id: String,
    /// The device's signed request (a [`ct::REQUEST`] envelope carrying a
    /// [`RequestConnection`]).
    #[serde(rename = "EnvelopedRequest")]
    pub request: Signed,
    /// 128 random bits chosen by the portal, base64url.
    #[serde(rename = "ServerNonce")]
    pub server_nonce: String,
    /// The witness both sides show.
    #[serde(rename = "Witness")]
    pub witness: String,
    /// Seconds since the Unix epoch.
    #[serde(rename = "Received")]
    pub received: u64,
}

/// The portal's answer to Connect.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectResponse {
    /// The account's profile, for the device to check the witness against.
    #[serde(rename = "EnvelopedProfileAccount")]
    pub profile: Signed,
    /// Request id to poll with.
    #[serde(rename = "RequestId")]
    pub request_id: String,
    /// Portal nonce.
    #[serde(rename = "ServerNonce")]
    pub server_nonce: String,
    /// Witness as the portal computed it (the device recomputes it).
    #[serde(rename = "Witness")]
    pub witness: String,
}

/// Complete: the new device polls for the answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    /// The account's address.
    #[serde(rename = "AccountAddress")]
    pub account_address: String,
    /// From [`ConnectResponse`].
    #[serde(rename = "RequestId")]
    pub request_id: String,
}

/// Result of a connection request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectResult {
    /// No answer yet.
    Pending,
    /// Accepted.
    Accept,
    /// Rejected.
    Reject,
}

/// An administrator's answer, signed by AdministratorSignature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RespondConnection {
    /// The request answered.
    #[serde(rename = "RequestId")]
    pub request_id: String,
    /// Accept or Reject.
    #[serde(rename = "Result")]
    pub result: ConnectResult,
    /// On accept, the signed `CatalogedDevice` (connection and activation).
    #[serde(
        rename = "EnvelopedCatalogedDevice",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cataloged_device: Option<Signed>,
    /// The PIN used, when accepted by PIN (each PIN works once).
    #[serde(rename = "PinId", default, skip_serializing_if = "Option::is_none")]
    pub pin_id: Option<String>,
    /// On reject, why, for the device to tell its user (a PIN that is
    /// expired, wrong or used already).
    #[serde(rename = "Reason", default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// On accept by PIN: [`crate::pin::pin_proof`], base64url.
    #[serde(rename = "PinProof", default, skip_serializing_if = "Option::is_none")]
    pub pin_proof: Option<String>,
}

/// The answer to Complete.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteResponse {
    /// Pending, Accept or Reject.
    #[serde(rename = "Result")]
    pub result: ConnectResult,
    /// The signed [`RespondConnection`], once answered.
    #[serde(
        rename = "EnvelopedRespondConnection",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub response: Option<Signed>,
}

/// A one-time PIN an administrator registered (encrypted to the
/// administrators, then signed, in the Local spool).
///
/// Unknown members are ignored (a later version may add some); a record
/// without `Issuer` and `Epoch` is void (PROTOCOL.md §6: a PIN is honoured
/// only in the administrator epoch that minted it).
#[derive(Clone, Serialize, Deserialize)]
pub struct MessagePin {
    /// The PIN's id.
    #[serde(rename = "PinId")]
    pub pin_id: String,
    /// The salted PIN: the key of PinWitness.
    #[serde(rename = "SaltedPin")]
    pub salted_pin: zeroize::Zeroizing<String>,
    /// Roles a device joining with it gets.
    #[serde(rename = "Roles")]
    pub roles: Vec<Role>,
    /// Seconds since the Unix epoch after which it is void.
    #[serde(rename = "Expires")]
    pub expires: u64,
    /// Accept without asking.
    #[serde(rename = "Automatic")]
    pub automatic: bool,
    /// The administrator device that minted it (device UDF).
    #[serde(rename = "Issuer", default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The administrator epoch it was minted in.
    #[serde(rename = "Epoch", default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u32>,
}

impl std::fmt::Debug for MessagePin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessagePin")
            .field("pin_id", &self.pin_id)
            .field("roles", &self.roles)
            .field("expires", &self.expires)
            .field("issuer", &self.issuer)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// Longest a Status request is held (seconds): below the clients' 30 s
/// request timeout.
pub const MAX_WAIT: u64 = 20;

/// Status request body. With `Wait`, the portal holds the request until the
/// last index of a store listed in `Known` differs from the one given, or
/// `Wait` seconds (at most [`MAX_WAIT`]) pass: a long-poll.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    /// Seconds to hold the request; 0 answers at once.
    #[serde(rename = "Wait", default)]
    pub wait: u64,
    /// The last index of each store this device has.
    #[serde(rename = "Known", default)]
    pub known: Vec<StoreIndex>,
    /// The access list serial this device applied (for administrators'
    /// `revoke --wait`).
    #[serde(rename = "Applied", default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<u64>,
}

/// What a device reported it applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppliedSerial {
    /// The device.
    #[serde(rename = "DeviceUdf")]
    pub device_udf: String,
    /// The access list serial it applied.
    #[serde(rename = "Serial")]
    pub serial: u64,
    /// When it said so (seconds since the epoch).
    #[serde(rename = "Time")]
    pub time: u64,
}

/// Status: the indices of the account's stores.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusResponse {
    /// The account's profile.
    #[serde(rename = "EnvelopedProfileAccount")]
    pub profile: Signed,
    /// Last index of each store.
    #[serde(rename = "Stores")]
    pub stores: Vec<StoreIndex>,
    /// Administrators: what each device reported it applied.
    #[serde(rename = "Applied", default, skip_serializing_if = "Vec::is_empty")]
    pub applied: Vec<AppliedSerial>,
}

/// The last index of a store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreIndex {
    /// Store name.
    #[serde(rename = "Store")]
    pub store: String,
    /// Last index (0: empty).
    #[serde(rename = "Index")]
    pub index: u64,
}

/// Download: entries after an index, per store.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownloadRequest {
    /// What to fetch.
    #[serde(rename = "Select")]
    pub select: Vec<StoreIndex>,
    /// Access lists may come as changes from the one before
    /// ([`crate::access::delta`]).
    #[serde(
        rename = "Changes",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub changes: bool,
}

/// One stored entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Its index in the store, from 1.
    #[serde(rename = "Index")]
    pub index: u64,
    /// The entry: a signed envelope, or an [`InboundRequest`] in the Inbound
    /// spool. Absent (null) when `delta` carries it.
    #[serde(
        rename = "Envelope",
        default,
        skip_serializing_if = "serde_json::Value::is_null"
    )]
    pub envelope: serde_json::Value,
    /// An access list as its change from the entry before it, for a reader
    /// that asked for changes ([`crate::access::delta`]).
    #[serde(rename = "Delta", default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<crate::access::delta::AccessDelta>,
}

/// Entries of one store.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreEntries {
    /// Store name.
    #[serde(rename = "Store")]
    pub store: String,
    /// Entries in index order.
    #[serde(rename = "Entries")]
    pub entries: Vec<Entry>,
    /// More entries follow: download again from the last index.
    #[serde(rename = "Partial")]
    pub partial: bool,
    /// The store's last index when this page was read (a reader that has
    /// seen more knows the portal rolled it back).
    #[serde(rename = "Last", default)]
    pub last: u64,
}

/// Download response.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownloadResponse {
    /// The account's profile.
    #[serde(rename = "EnvelopedProfileAccount")]
    pub profile: Signed,
    /// One per selected store.
    #[serde(rename = "Updates")]
    pub updates: Vec<StoreEntries>,
}

/// Entries to append to one store.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreUpdate {
    /// Store name.
    #[serde(rename = "Store")]
    pub store: String,
    /// The store's last index as the writer knows it: if the store has moved
    /// on, the whole transaction is answered Conflict and nothing is written.
    #[serde(rename = "Expected")]
    pub expected: u64,
    /// Signed envelopes to append, in order.
    #[serde(rename = "Envelopes")]
    pub envelopes: Vec<Signed>,
    /// The Access store's next entry as its change from the store's entry
    /// at `expected` ([`crate::access::delta`]); it comes before `envelopes`. A
    /// portal from before it refuses the member (BadRequest): the writer
    /// sends the list whole.
    #[serde(rename = "Delta", default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<crate::access::delta::AccessDelta>,
}

/// Transact: append to stores, all or nothing.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransactRequest {
    /// Appends.
    #[serde(rename = "Updates")]
    pub updates: Vec<StoreUpdate>,
}

/// Transact response: the new last index of each updated store.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransactResponse {
    /// New indices.
    #[serde(rename = "Stores")]
    pub stores: Vec<StoreIndex>,
}

/// Public read of an account's public stores, by address or profile UDF.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicRequest {
    /// The account's address, or
    #[serde(
        rename = "AccountAddress",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub account_address: Option<String>,
    /// its profile UDF.
    #[serde(
        rename = "ProfileUdf",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub profile_udf: Option<String>,
    /// Public stores to read from index 0 ([`store::PUBLIC`]); empty for the profile only.
    #[serde(rename = "Select", default)]
    pub select: Vec<StoreIndex>,
}

/// Error codes in the JSON body of a 4xx/5xx answer.
pub mod code;

/// The JSON body of an error answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// One of [`code`].
    #[serde(rename = "Error")]
    pub error: String,
    /// Human-readable reason.
    #[serde(rename = "Reason")]
    pub reason: String,
    /// With `DeviceRevoked`: the current signed access list, so that the
    /// device can check the revocation before acting on it.
    #[serde(
        rename = "EnvelopedAccessList",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub access_list: Option<Signed>,
}
