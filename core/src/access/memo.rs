//! Access lists already verified, kept by whoever holds the memo (core
//! holds none: [`AccessList::verify`] is a pure function, and
//! [`AccessList::verify_memo`] takes the memo as an argument). At 1,000
//! devices a list is 390 kB. A hit is exact: the same envelope, byte for
//! byte, each of whose signers is among the keys authorized now (a
//! signer's UDF is its key's fingerprint, and its signature verified when
//! the list was kept here).

use super::AccessList;
use crate::envelope::Signed;
use crate::keys::PublicKey;
use crate::memo::EnvelopeMemo;
use crate::objects::ProfileAccount;
use crate::udf;
use crate::Error;

/// Verified access lists, at most `max` of them (usable as a `static` by a
/// long-running host).
#[derive(Debug)]
pub struct AccessMemo(EnvelopeMemo<AccessList>);

impl AccessMemo {
    /// An empty memo of at most `max` lists.
    pub const fn new(max: usize) -> Self {
        AccessMemo(EnvelopeMemo::new(max))
    }

    /// The list kept for exactly `env`, if every signer is in `authorized`.
    pub fn get(&self, env: &Signed, authorized: &[PublicKey]) -> Option<AccessList> {
        get(&self.0, env, authorized)
    }

    /// Keep `list`, which the caller verified from `env`.
    pub fn keep(&self, env: &Signed, list: &AccessList) {
        self.0.put(env, list.clone());
    }
}

impl AccessList {
    /// [`AccessList::verify`], served from `memo` when it holds exactly
    /// this envelope under keys authorized now, and kept there otherwise.
    pub fn verify_memo(
        env: &Signed,
        account: &ProfileAccount,
        memo: &AccessMemo,
    ) -> Result<AccessList, Error> {
        let signers = Self::signers(account);
        let a = match memo.get(env, &signers) {
            Some(a) => a,
            None => {
                let a = Self::verify_by(env, account, &signers)?;
                memo.keep(env, &a);
                return Ok(a);
            }
        };
        Self::check_account(a, account)
    }
}

fn get(
    memo: &EnvelopeMemo<AccessList>,
    env: &Signed,
    authorized: &[PublicKey],
) -> Option<AccessList> {
    if env.content_type != super::CT_ACCESS_LIST || env.signatures.is_empty() {
        return None;
    }
    let signed_by_authorized = env
        .signatures
        .iter()
        .all(|s| authorized.iter().any(|k| udf::udf_eq(&k.udf(), &s.kid)));
    if !signed_by_authorized {
        return None;
    }
    memo.get(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{AccessEntry, DeviceState, CT_ACCESS_LIST};
    use crate::keys::KeyData;
    use crate::objects::RootKeys;

    fn list(serial: u64) -> AccessList {
        AccessList {
            profile_udf: "MB".into(),
            serial,
            issued: 0,
            devices: vec![AccessEntry {
                device_udf: "MA".into(),
                name: "laptop".into(),
                authentication: KeyData::new(RootKeys::generate().authenticate.public_key()),
                roles: Vec::new(),
                state: DeviceState::Active,
                extra: Default::default(),
            }],
            extra: Default::default(),
        }
    }

    /// A hit needs the same envelope, byte for byte, and every signer
    /// among the keys authorized by the caller now.
    #[test]
    fn a_verified_list_is_served_only_to_the_same_envelope_and_signers() {
        let memo = AccessMemo::new(3);
        let get = |e: &Signed, keys: &[PublicKey]| memo.get(e, keys);
        let put = |e: &Signed, l: &AccessList| memo.keep(e, l);
        let (k1, k2) = (RootKeys::generate(), RootKeys::generate());
        let (p1, p2) = (k1.authenticate.public_key(), k2.authenticate.public_key());
        let l = list(u64::from(rand_core::RngCore::next_u32(
            &mut rand_core::OsRng,
        )));
        let env = Signed::sign_object(CT_ACCESS_LIST, &l, &k1.authenticate);
        assert_eq!(get(&env, &[p1]), None, "nothing kept yet");
        let verified: AccessList = env
            .verify_object("access list", CT_ACCESS_LIST, &[p1])
            .expect("verifies");
        put(&env, &verified);
        let mut tampered = env.clone();
        let mut bytes = tampered.payload.to_vec();
        let at = bytes.len() / 2;
        bytes[at] ^= 1;
        tampered.payload = bytes.into();
        let mut cosigned = env.clone();
        cosigned.add_signature(&k2.authenticate);
        let mut retyped = env.clone();
        retyped.content_type = "Other".into();
        let cases: [(&str, &Signed, Vec<PublicKey>, bool); 6] = [
            ("the same, its signer authorized", &env, vec![p1], true),
            ("among other keys", &env, vec![p2, p1], true),
            ("its signer no longer authorized", &env, vec![p2], false),
            ("nothing authorized", &env, vec![], false),
            ("a payload byte changed", &tampered, vec![p1], false),
            ("another signature added", &cosigned, vec![p1], false),
        ];
        for (what, e, keys, hit) in cases {
            assert_eq!(get(e, &keys).is_some(), hit, "{what}");
            if hit {
                assert_eq!(get(e, &keys), Some(verified.clone()), "{what}");
            }
        }
        assert_eq!(get(&retyped, &[p1]), None, "another content type");
    }
}
