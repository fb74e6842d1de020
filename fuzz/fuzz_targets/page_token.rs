//! `wsmschat_server::core::queries::parse_page_token`: the `page_token` of `ListConversations`,
//! sent back by clients as they page.
//!
//! Invariants: it never panics; only the empty token is `Ok(None)`; a parsed `(at, id)`
//! re-encoded as `"{at}:{id}"` (what `page_token` produces) parses back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsmschat_server::core::queries::parse_page_token;

fuzz_target!(|data: &[u8]| {
    // gRPC strings are UTF-8 (prost rejects anything else before the handler runs).
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    match parse_page_token(token) {
        Ok(None) => assert!(token.is_empty(), "non-empty token {token:?} parsed as None"),
        Ok(Some((at, id))) => {
            assert!(!token.is_empty());
            let again = format!("{at}:{id}");
            match parse_page_token(&again) {
                Ok(Some((at2, id2))) => {
                    assert_eq!((at, &id), (at2, &id2), "{token:?} -> {again:?}")
                }
                other => panic!("{token:?} -> {again:?} parsed as {other:?}"),
            }
        }
        Err(status) => assert_eq!(status.code(), tonic::Code::InvalidArgument),
    }
});
