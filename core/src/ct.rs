//! Content types of the signed and encrypted Mesh objects (a leaf: the
//! profile, the authority and the device objects all name them;
//! `objects::ct` is the path readers use).

/// [`crate::objects::ProfileAccount`].
pub const PROFILE_ACCOUNT: &str = "ProfileAccount";
/// [`crate::objects::ProfileDevice`].
pub const PROFILE_DEVICE: &str = "ProfileDevice";
/// [`crate::objects::ActivationAccount`] (encrypted, then signed).
pub const ACTIVATION_ACCOUNT: &str = "ActivationAccount";
/// [`crate::objects::ConnectionDevice`].
pub const CONNECTION_DEVICE: &str = "ConnectionDevice";
/// [`crate::objects::CatalogedDevice`].
pub const CATALOGED_DEVICE: &str = "CatalogedDevice";
/// [`crate::objects::CatalogedApplication`].
pub const CATALOGED_APPLICATION: &str = "CatalogedApplication";
