//! Device key slots: keys a channel asks every device to hold, beside the
//! Mesh's own (authentication, signature, encryption). A channel names its
//! slots (a [`Slot`] constant in its crate) and declares them to the host;
//! core knows only the kinds of key, never a channel.
//!
//! In a device profile and a connection the slots are plain JSON fields
//! named by the slot ([`Slots`]): a reader keeps the ones it does not know
//! (a newer client's) and ignores them, so a new slot is no wire break.

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::derive::{key_name, Seed};
use crate::keys::{KeyData, SigningKey};
use crate::Error;

/// A device key slot a channel owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// The JSON field in the profile and connection, and the operation in
    /// the derivation's key name (`key_name("Base", "Device", name, 0)`):
    /// changing it changes every device's key.
    pub name: &'static str,
    /// How the key is made.
    pub kind: SlotKind,
}

/// How a slot's key is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlotKind {
    /// An Ed25519 key co-generated like the Mesh's own keys: the device's
    /// base contribution (its public key in the profile), plus an
    /// activation contribution per epoch from the administrator; the
    /// combined public key, with its epoch, is in the connection.
    Combined,
    /// An ECDSA P-256 signing key from the device's seed alone (for
    /// clients that need a NIST curve): its uncompressed SEC1 point,
    /// base64url, in the profile; nothing in the connection.
    DeviceP256,
}

impl Slot {
    /// The key name of the device's base key (or contribution).
    pub fn base_name(&self) -> String {
        key_name("Base", "Device", self.name, 0)
    }

    /// The key name of the activation contribution at `epoch`.
    pub fn activation_name(&self, epoch: u32) -> String {
        key_name("Activation", "Device", self.name, epoch)
    }

    /// Refuse a slot of another kind than the caller's key type.
    pub(crate) fn expect(&self, kind: SlotKind) -> Result<(), Error> {
        if self.kind == kind {
            return Ok(());
        }
        Err(Error::BadKey(format!(
            "key slot {} is {:?}, not {kind:?}",
            self.name, self.kind
        )))
    }

    /// The Ed25519 contribution of a [`SlotKind::Combined`] slot from `seed`
    /// (the base one at epoch `None`, else the activation's).
    pub(crate) fn ed25519(&self, seed: &Seed, epoch: Option<u32>) -> Result<SigningKey, Error> {
        self.expect(SlotKind::Combined)?;
        let name = match epoch {
            None => self.base_name(),
            Some(e) => self.activation_name(e),
        };
        Ok(SigningKey::derive(seed, &name))
    }

    /// The P-256 key of a [`SlotKind::DeviceP256`] slot from the device seed.
    pub(crate) fn p256(&self, seed: &Seed) -> Result<p256::ecdsa::SigningKey, Error> {
        self.expect(SlotKind::DeviceP256)?;
        Ok(crate::keys::p256_signing_key(seed, &self.base_name()))
    }
}

/// The slots of a profile or connection, as data: every field the object
/// does not name itself, in the order read or set, known slots and a newer
/// client's alike. A slot is kept as JSON text, so that what a client
/// signs has the field order of the key's own form (`KeyData`'s).
#[derive(Clone, Debug, Default)]
pub struct Slots(Vec<(String, Box<RawValue>)>);

impl PartialEq for Slots {
    fn eq(&self, other: &Slots) -> bool {
        let parsed = |r: &RawValue| serde_json::from_str::<Value>(r.get()).ok();
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .all(|((n, v), (m, w))| n == m && parsed(v) == parsed(w))
    }
}

impl Eq for Slots {}

impl Slots {
    /// The value of slot `name`.
    pub fn get(&self, name: &str) -> Option<Value> {
        self.raw(name)
            .and_then(|r| serde_json::from_str(r.get()).ok())
    }

    fn raw(&self, name: &str) -> Option<&RawValue> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| &**v)
    }

    /// The slot names present, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }

    /// Set slot `name` (replacing it where it is, else appending).
    pub fn set<T: Serialize>(&mut self, name: &str, value: &T) -> Result<(), Error> {
        let raw = serde_json::value::to_raw_value(value)
            .map_err(|e| Error::Malformed(format!("key slot {name}: {e}")))?;
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = raw,
            None => self.0.push((name.to_string(), raw)),
        }
        Ok(())
    }

    /// A public key slot ([`SlotKind::Combined`]); `None` when absent.
    pub fn key(&self, name: &str) -> Result<Option<KeyData>, Error> {
        match self.raw(name).map(RawValue::get) {
            None | Some("null") => Ok(None),
            Some(text) => serde_json::from_str(text)
                .map(Some)
                .map_err(|e| Error::Malformed(format!("key slot {name}: {e}"))),
        }
    }

    /// A byte-string slot (base64url, e.g. [`SlotKind::DeviceP256`]'s
    /// point); `None` when absent.
    pub fn bytes(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        let text: Option<String> = match self.raw(name).map(RawValue::get) {
            None | Some("null") => None,
            Some(text) => Some(serde_json::from_str(text).map_err(|_| {
                Error::Malformed(format!("key slot {name}: not a base64url string"))
            })?),
        };
        text.map(|t| crate::b64::decode(&t))
            .transpose()
            .map_err(|e| Error::Malformed(format!("key slot {name}: {e}")))
    }
}

impl Serialize for Slots {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (n, v) in &self.0 {
            m.serialize_entry(n, v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Slots {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Slots;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("key slots")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Slots, A::Error> {
                use serde::de::Error as _;
                let mut out = Slots::default();
                // A flattened field arrives buffered: as a value, then text.
                while let Some((n, v)) = a.next_entry::<String, Value>()? {
                    if out.raw(&n).is_some() {
                        return Err(A::Error::custom(format!("duplicate field {n}")));
                    }
                    out.set(&n, &v).map_err(A::Error::custom)?;
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
#[path = "slot_tests.rs"]
mod tests;
