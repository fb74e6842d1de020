//! The whole HTTP application (`wsmschat_server::http::app`, what the listener serves) fed
//! arbitrary gRPC-web request bodies: the input is the body as is (frames of a flag byte, a
//! big-endian u32 length and a payload, or anything else) of
//! - `POST /wsmschat.v1.SessionService/StartVisitorSession` (no token),
//! - `POST /wsmschat.v1.ChatService/Publish` with a visitor's bearer token,
//!   both as `application/grpc-web+proto`, and
//! - the Publish again as `application/grpc-web-text+proto` (base64 text framing).
//!
//! Invariants: no panic; every call answers within 10 s with a status in 100..=599; a 200
//! answer of content type `application/grpc-web*` is either trailers-only (empty body, a
//! `grpc-status` header) or a body of well-formed gRPC-web frames (after base64 for the text
//! variant) ending with a trailers frame.
#![no_main]

use std::time::Duration;

use axum::body::Body;
use base64::Engine as _;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;
use wsmschat_fuzz::fixture;

const SESSION: &str = "/wsmschat.v1.SessionService/StartVisitorSession";
const PUBLISH: &str = "/wsmschat.v1.ChatService/Publish";
const PROTO: &str = "application/grpc-web+proto";
const TEXT: &str = "application/grpc-web-text+proto";

/// Checks a gRPC-web response body: data frames (flag 0) then one trailers frame (flag 0x80).
fn check_frames(body: &[u8], what: &str) {
    let mut rest = body;
    let mut trailers = false;
    while !rest.is_empty() {
        assert!(
            !trailers,
            "{what}: bytes after the trailers frame: {body:?}"
        );
        assert!(rest.len() >= 5, "{what}: truncated frame header: {body:?}");
        let flag = rest[0];
        let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        assert!(rest.len() >= 5 + len, "{what}: truncated frame: {body:?}");
        match flag {
            0x00 => {}
            0x80 => trailers = true,
            other => panic!("{what}: unexpected frame flag {other:#x}: {body:?}"),
        }
        rest = &rest[5 + len..];
    }
    assert!(trailers, "{what}: no trailers frame: {body:?}");
}

/// A grpc-web-text body: base64 chunks (each padded on its own, one per frame or write).
fn decode_text(body: &[u8], what: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        // A chunk ends after its '=' padding, or at the end of the body.
        let end = match rest.iter().position(|&b| b == b'=') {
            Some(i) => i + rest[i..].iter().take_while(|&&b| b == b'=').count(),
            None => rest.len(),
        };
        let chunk = &rest[..end];
        base64::engine::general_purpose::STANDARD
            .decode_vec(chunk, &mut out)
            .unwrap_or_else(|e| panic!("{what}: answer is not base64 ({e}): {body:?}"));
        rest = &rest[end..];
    }
    out
}

async fn call(path: &str, content_type: &str, token: Option<&str>, body: Vec<u8>) {
    let f = fixture();
    let mut req = Request::post(path)
        .header("content-type", content_type)
        .header("x-grpc-web", "1");
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let req = req.body(Body::from(body)).unwrap();
    let what = format!("{content_type} {path}");
    let exchange = async {
        let res = f
            .app
            .clone()
            .oneshot(req)
            .await
            .expect("the router is infallible");
        let status = res.status();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let trailers_only = res.headers().contains_key("grpc-status");
        let body = res.into_body().collect().await.map(|b| b.to_bytes());
        (status, content_type, trailers_only, body)
    };
    let (status, res_type, trailers_only, body) =
        tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .unwrap_or_else(|_| panic!("{what}: no answer within 10 s"));
    assert!(
        (100..=599).contains(&status.as_u16()),
        "{what}: status {status}"
    );
    let Ok(body) = body else {
        // A body error is a reset stream, fine for a malformed request.
        return;
    };
    if body.is_empty() {
        // A trailers-only answer (an error before any message): the status is in the headers.
        assert!(
            status != StatusCode::OK
                || !res_type.starts_with("application/grpc-web")
                || trailers_only,
            "{what}: an empty 200 gRPC-web answer without grpc-status"
        );
        return;
    }
    if status == StatusCode::OK && res_type.starts_with("application/grpc-web") {
        if res_type.starts_with("application/grpc-web-text") {
            check_frames(&decode_text(&body, &what), &what);
        } else {
            check_frames(&body, &what);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    f.rt.block_on(async {
        call(SESSION, PROTO, None, data.to_vec()).await;
        call(PUBLISH, PROTO, Some(&f.visitor_token), data.to_vec()).await;
        call(PUBLISH, TEXT, Some(&f.visitor_token), data.to_vec()).await;
    });
});
