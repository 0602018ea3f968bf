//! The ssh-agent message decoder: any bytes either decode to a request
//! (ssh-agent-lib's encode back to the same bytes), or are refused;
//! nothing panics. Key requests (list, sign, add, remove) are our own
//! decoder's (`mesh_ssh::wire`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_ssh::server::Message;
use ssh_agent_lib::ssh_encoding::Encode;

fuzz_target!(|data: &[u8]| {
    if let Some(Message::Other(req)) = mesh_ssh::server::decode_request(data) {
        let mut out = Vec::new();
        if req.encode(&mut out).is_ok() {
            // Round trip: the re-encoding decodes to the same request.
            match mesh_ssh::server::decode_request(&out) {
                Some(Message::Other(again)) => assert_eq!(again, req),
                _ => panic!("re-encoding changed the request"),
            }
        }
    }
});
