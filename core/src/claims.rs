//! Claims: what the channels state in the account profile and in each
//! administrator epoch's record (PROTOCOL.md §10.5), as data named by the
//! channel that owns it (`SshCertificationAuthority`, `OpenpgpFingerprint`).
//!
//! Core names no channel: a claim is a JSON value under a name, carried as
//! a top-level field of the profile or the epoch record. A reader asks for
//! the claim it owns by name; a claim it does not know (a newer client's,
//! another channel's) is kept and ignored. An epoch's claims replace the
//! same-named claims before it and leave the others standing.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::keys::KeyData;
use crate::Error;

/// Named claims, flattened into the object that carries them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Claims(BTreeMap<String, serde_json::Value>);

impl Claims {
    /// No claims.
    pub fn new() -> Claims {
        Claims::default()
    }

    /// Set the claim `name` (a channel's own name, never one of the
    /// carrying object's fields).
    pub fn put<T: Serialize>(&mut self, name: &str, value: &T) -> Result<(), Error> {
        let v = serde_json::to_value(value)
            .map_err(|e| Error::Malformed(format!("claim {name}: {e}")))?;
        self.0.insert(name.to_string(), v);
        Ok(())
    }

    /// The claim `name`, parsed; `None` when there is none.
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, Error> {
        self.0
            .get(name)
            .map(|v| T::deserialize(v).map_err(|e| Error::Malformed(format!("claim {name}: {e}"))))
            .transpose()
    }

    /// The claim `name` as a public key.
    pub fn key(&self, name: &str) -> Result<Option<KeyData>, Error> {
        self.get(name)
    }

    /// The claim `name` as text (`None`: absent or not text).
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.as_str())
    }

    /// The claim `name` as it was read.
    pub fn raw(&self, name: &str) -> Option<&serde_json::Value> {
        self.0.get(name)
    }

    /// The names of every claim.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Apply a later epoch's claims: each replaces the same-named one,
    /// the others stand.
    pub fn update(&mut self, later: &Claims) {
        for (k, v) in &later.0 {
            self.0.insert(k.clone(), v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_claims_and_later_epochs() {
        let k = KeyData::with_epoch(crate::keys::AgreementKey::generate().public_key(), 2);
        let mut c = Claims::new();
        c.put("Ca", &k).expect("put");
        c.put("Fingerprint", &"abc").expect("put");
        assert_eq!(c.key("Ca").expect("key"), Some(k));
        assert_eq!(c.text("Fingerprint"), Some("abc"));
        assert!(c.key("Fingerprint").is_err(), "text is not a key");
        assert_eq!(c.key("Other").expect("absent"), None);
        let mut later = Claims::new();
        later.put("Fingerprint", &"def").expect("put");
        c.update(&later);
        assert_eq!(c.text("Fingerprint"), Some("def"));
        assert!(
            c.raw("Ca").is_some(),
            "a claim the epoch does not name stands"
        );
        assert_eq!(c.names().collect::<Vec<_>>(), ["Ca", "Fingerprint"]);
    }

    /// A profile and an epoch record written by a newer client, with a
    /// claim this one does not know: both verify, the claim is kept (and
    /// written again as it was), and an epoch's claim replaces the
    /// profile's while the others stand.
    #[test]
    fn a_newer_clients_claims_are_kept_and_ignored() {
        use crate::envelope::Signed;
        use crate::history::History;
        use crate::objects::{ProfileAccount, RootKeys};
        use crate::portal::ct;
        use serde_json::json;
        let root = RootKeys::generate();
        let e0 = root.first_epoch();
        let mut claims = Claims::new();
        claims.put("Known", &"k0").expect("put");
        let env = root.profile("a@example.com", "x", None, &e0, claims, None);
        // The newer client's profile: one more claim, signed by the root.
        let mut newer =
            serde_json::to_value(env.unverified_object::<ProfileAccount>("p").expect("p"))
                .expect("json");
        newer["FutureCa"] = json!({"Udf": "MAAA", "Anything": [1, 2]});
        let env = Signed::sign_object(crate::objects::ct::PROFILE_ACCOUNT, &newer, &root.profile);
        let profile = ProfileAccount::verify(&env, &root.profile_udf()).expect("it verifies");
        assert_eq!(profile.claims.raw("FutureCa"), Some(&newer["FutureCa"]));
        assert_eq!(
            serde_json::to_value(&profile).expect("json"),
            newer,
            "written again as read"
        );

        // Its epoch 1, started in a checkpoint signed by epoch 0.
        let e1 = e0.next_epoch();
        let start = e1
            .epoch_entry(Claims::new(), &[root.escrow.public_key()])
            .expect("epoch");
        let mut h = History::default();
        let mut cp =
            serde_json::to_value(h.next(&profile.udf(), &[], 1, Some(start))).expect("json");
        cp["Epoch"]["FutureCa"] = json!("v2");
        cp["Epoch"]["Known"] = json!("k1");
        let signed = Signed::sign_object(ct::CHECKPOINT, &cp, &e0.admin_sign);
        h.checkpoint(1, &signed, &profile)
            .expect("the record verifies");
        let now = h.profile(&profile);
        assert!(e1.matches(&now));
        assert_eq!(now.claims.text("FutureCa"), Some("v2"));
        assert_eq!(now.claims.text("Known"), Some("k1"));
        assert_eq!(
            now.superseded[0].claims, profile.claims,
            "what epoch 1 replaced"
        );
        let record = h.epochs.last().expect("kept");
        assert_eq!(serde_json::to_value(record).expect("json"), cp["Epoch"]);
    }
}
