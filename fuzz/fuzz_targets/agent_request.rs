//! The ssh-agent message decoder: any bytes either decode to a request
//! that encodes back to the same bytes, or are refused; nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssh_agent_lib::ssh_encoding::Encode;

fuzz_target!(|data: &[u8]| {
    if let Some(req) = mesh_ssh::server::decode_request(data) {
        let mut out = Vec::new();
        if req.encode(&mut out).is_ok() {
            // Round trip: the re-encoding decodes to the same request.
            assert_eq!(mesh_ssh::server::decode_request(&out).as_ref(), Some(&req));
        }
    }
});
