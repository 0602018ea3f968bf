//! Error codes in the JSON body of a 4xx/5xx answer (PROTOCOL.md §10.1).

/// Malformed request.
pub const BAD_REQUEST: &str = "BadRequest";
/// Bad or missing signature.
pub const NOT_AUTHENTICATED: &str = "NotAuthenticated";
/// The signer may not do this.
pub const NOT_AUTHORIZED: &str = "NotAuthorized";
/// The device is revoked (the body carries the signed access list).
pub const DEVICE_REVOKED: &str = "DeviceRevoked";
/// Nonce already seen, or time outside the window.
pub const REPLAY: &str = "Replay";
/// No such account.
pub const UNKNOWN_ACCOUNT: &str = "UnknownAccount";
/// Address or profile already bound.
pub const ACCOUNT_EXISTS: &str = "AccountExists";
/// A store moved on since the writer's index.
pub const CONFLICT: &str = "Conflict";
/// Too many connection requests wait for an answer.
pub const TOO_MANY_PENDING: &str = "TooManyPending";
/// A quota of the portal (accounts, bytes per account) is reached.
pub const QUOTA_EXCEEDED: &str = "QuotaExceeded";
/// This portal creates accounts by invitation only, and the Bind
/// carries no valid, unused code.
pub const INVITE_REQUIRED: &str = "InviteRequired";
/// Too many requests from one source (Connect, Bind); `Retry-After` says when to ask again.
pub const RATE_LIMITED: &str = "RateLimited";
/// Portal failure.
pub const INTERNAL: &str = "Internal";
