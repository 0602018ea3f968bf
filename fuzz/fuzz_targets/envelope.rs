//! Signed envelopes and portal requests from untrusted JSON: parsing and
//! verification refuse or accept, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_core::envelope::Signed;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = serde_json::from_slice::<Signed>(data) {
        let _ = env.unverified_object::<mesh_core::portal::Request>("request");
        let _ = mesh_core::objects::ProfileAccount::verify_self_signed(&env);
    }
});
