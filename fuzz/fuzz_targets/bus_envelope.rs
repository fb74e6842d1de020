//! `wsmschat_server::core::cluster::Envelope`: what a cluster node decodes from the Redis channel (any
//! client of that Redis can publish there).
//!
//! Invariants: decoding arbitrary bytes never panics; a decoded envelope re-encodes to
//! `encoded_len()` bytes and decodes back equal (and re-encodes to the same bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use wsmschat_server::core::cluster::Envelope;

fuzz_target!(|data: &[u8]| {
    let Ok(envelope) = Envelope::decode(data) else {
        return;
    };
    let bytes = envelope.encode_to_vec();
    assert_eq!(bytes.len(), envelope.encoded_len());
    let again = Envelope::decode(bytes.as_slice()).expect("a re-encoded envelope decodes");
    assert_eq!(envelope, again);
    assert_eq!(bytes, again.encode_to_vec());
});
