//! `wsmschat::v1::ClientEvent` through the real core: decoded from arbitrary bytes (as the
//! Publish and Chat handlers receive it) and published by a demo-site visitor, then by the demo
//! admin agent, with `Core::publish` on an SQLite store.
//!
//! A conversation id (or assignee agent id) of "@" is replaced by the seeded conversation's
//! (the admin's) id so the fuzzer reaches the checks behind "the conversation exists".
//!
//! Invariants: no panic; every publish returns (an error is fine) within 10 s.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use prost::Message;
use wsmschat::v1;
use wsmschat_fuzz::{fixture, resolve_placeholders};

fuzz_target!(|data: &[u8]| {
    let Ok(mut event) = v1::ClientEvent::decode(data) else {
        return;
    };
    let f = fixture();
    resolve_placeholders(&mut event, &f.conversation_id, f.agent_id());
    f.rt.block_on(async {
        for principal in [&f.visitor, &f.agent] {
            let publish = f.core.publish(principal, None, event.clone(), None);
            match tokio::time::timeout(Duration::from_secs(10), publish).await {
                Ok(_result) => {}
                Err(_) => panic!("publish of {event:?} as {principal:?} did not return in 10 s"),
            }
        }
    });
});
