//! The browser path, byte for byte: gRPC-web over HTTP/1.1 (`application/grpc-web+proto`),
//! CORS preflights, a server stream read incrementally, errors in trailers, malformed frames.

mod common;

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use common::*;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prost::Message;
use wsmschat::v1;
use wsmschat::v1::server_event::Event as Se;

const ORIGIN: &str = "http://localhost:5173";

fn client() -> Client<HttpConnector, Full<Bytes>> {
    // HTTP/1.1 only, like a browser on plain http://.
    Client::builder(TokioExecutor::new()).build_http()
}

fn frame(msg: &impl Message) -> Bytes {
    let body = msg.encode_to_vec();
    let mut out = BytesMut::with_capacity(5 + body.len());
    out.extend_from_slice(&[0]);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out.freeze()
}

fn grpc_web_request(
    url: &str,
    path: &str,
    token: Option<&str>,
    body: Bytes,
) -> http::Request<Full<Bytes>> {
    let mut b = http::Request::post(format!("{url}{path}"))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("origin", ORIGIN);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Full::new(body)).unwrap()
}

/// Splits a gRPC-web body into messages and the trailer block.
struct Frames {
    buf: BytesMut,
}

enum WebFrame {
    Data(Bytes),
    Trailers(String),
}

impl Frames {
    fn next(&mut self) -> Option<WebFrame> {
        if self.buf.len() < 5 {
            return None;
        }
        let len = u32::from_be_bytes(self.buf[1..5].try_into().unwrap()) as usize;
        if self.buf.len() < 5 + len {
            return None;
        }
        let flag = self.buf[0];
        self.buf.advance(5);
        let payload = self.buf.split_to(len).freeze();
        Some(if flag & 0x80 != 0 {
            WebFrame::Trailers(String::from_utf8(payload.to_vec()).unwrap())
        } else {
            WebFrame::Data(payload)
        })
    }
}

/// A gRPC-web response body read frame by frame as it arrives.
struct WebStream {
    body: hyper::body::Incoming,
    frames: Frames,
}

impl WebStream {
    async fn next(&mut self) -> WebFrame {
        loop {
            if let Some(f) = self.frames.next() {
                return f;
            }
            let chunk = self.body.frame().await.expect("stream open").unwrap();
            if let Ok(data) = chunk.into_data() {
                self.frames.buf.extend_from_slice(&data);
            }
        }
    }
}

/// A unary gRPC-web call: (message or None, grpc-status, grpc-message).
async fn unary<R: Message + Default>(
    url: &str,
    path: &str,
    token: Option<&str>,
    req: &impl Message,
) -> (Option<R>, String, String) {
    let resp = client()
        .request(grpc_web_request(url, path, token, frame(req)))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["access-control-allow-origin"], ORIGIN);
    let (parts, body) = resp.into_parts();
    // Trailers-only responses carry the status in the headers.
    let header = |k: &str| parts.headers.get(k).map(|v| v.to_str().unwrap().to_owned());
    let mut status = header("grpc-status");
    let mut message = header("grpc-message");
    let mut frames = Frames {
        buf: BytesMut::from(&body.collect().await.unwrap().to_bytes()[..]),
    };
    let mut out = None;
    while let Some(f) = frames.next() {
        match f {
            WebFrame::Data(d) => out = Some(R::decode(d).unwrap()),
            WebFrame::Trailers(t) => {
                for line in t.lines() {
                    if let Some((k, v)) = line.split_once(':') {
                        match k.trim() {
                            "grpc-status" => status = Some(v.trim().to_owned()),
                            "grpc-message" => message = Some(v.trim().to_owned()),
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    (
        out,
        status.expect("a grpc-status"),
        message.unwrap_or_default(),
    )
}

#[tokio::test]
async fn cors_preflight_passes_for_site_origins_only() {
    let server = TestServer::start().await;
    let preflight = |origin: &'static str| {
        http::Request::builder()
            .method("OPTIONS")
            .uri(format!("{}/wsmschat.v1.ChatService/Publish", server.url))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type,x-grpc-web,x-user-agent",
            )
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let ok = client()
        .request(preflight("http://localhost:5173"))
        .await
        .unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    let allowed = ok.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    for h in ["authorization", "content-type", "x-grpc-web"] {
        assert!(allowed.contains(h), "{allowed}");
    }
    let bad = client()
        .request(preflight("https://evil.example"))
        .await
        .unwrap();
    assert!(bad.headers().get("access-control-allow-origin").is_none());
    server.stop().await;
}

#[tokio::test]
async fn a_browser_session_publishes_and_streams_over_grpc_web() {
    let server = TestServer::start().await;
    let url = server.url.clone();
    let (session, status, _) = unary::<v1::StartVisitorSessionResponse>(
        &url,
        "/wsmschat.v1.SessionService/StartVisitorSession",
        None,
        &v1::StartVisitorSessionRequest {
            site_key: "demo".into(),
            page_url: format!("{ORIGIN}/shop"),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(status, "0");
    let session = session.unwrap();
    assert_eq!(session.site.as_ref().unwrap().name, "Demo Shop");
    let token = session.visitor_token;

    // Open the server stream and read it frame by frame as it arrives.
    let sub = v1::SubscribeRequest {
        subscription: Some(v1::Subscription::default()),
    };
    let resp = client()
        .request(grpc_web_request(
            &url,
            "/wsmschat.v1.ChatService/Subscribe",
            Some(&token),
            frame(&sub),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/grpc-web")
    );
    let mut stream = WebStream {
        body: resp.into_body(),
        frames: Frames {
            buf: BytesMut::new(),
        },
    };
    let first = tokio::time::timeout(WAIT, stream.next()).await.unwrap();
    let WebFrame::Data(d) = first else {
        panic!("expected data")
    };
    let ev = v1::SubscribeResponse::decode(d)
        .unwrap()
        .event
        .unwrap()
        .event
        .unwrap();
    assert!(matches!(ev, Se::Ready(_)));

    // Publish over gRPC-web (a second connection, as a browser does with one stream open).
    let (ack, status, msg) = unary::<v1::PublishResponse>(
        &url,
        "/wsmschat.v1.ChatService/Publish",
        Some(&token),
        &v1::PublishRequest {
            event: Some(send("", "Order", "web-1", "hello from the browser")),
        },
    )
    .await;
    assert_eq!(status, "0", "{msg}");
    let ack = ack.unwrap().ack.unwrap();
    assert_eq!(ack.seq, 1);
    // The stream delivers the message (and the conversation snapshot) live.
    let mut got_message = false;
    for _ in 0..5 {
        let WebFrame::Data(d) = tokio::time::timeout(WAIT, stream.next()).await.unwrap() else {
            panic!("stream ended")
        };
        if let Some(Se::Message(m)) = v1::SubscribeResponse::decode(d)
            .unwrap()
            .event
            .unwrap()
            .event
        {
            assert_eq!((m.text.as_str(), m.seq), ("hello from the browser", 1));
            got_message = true;
            break;
        }
    }
    assert!(got_message);

    // An error reaches the browser as a readable status.
    let (_, status, msg) = unary::<v1::PublishResponse>(
        &url,
        "/wsmschat.v1.ChatService/Publish",
        Some(&token),
        &v1::PublishRequest {
            event: Some(send(&ack.conversation_id, "", "web-2", &"x".repeat(5000))),
        },
    )
    .await;
    assert_eq!(status, "3");
    assert!(msg.contains("limit"), "{msg}");
    let (_, status, _) = unary::<v1::PublishResponse>(
        &url,
        "/wsmschat.v1.ChatService/Publish",
        Some("wv_bogus"),
        &v1::PublishRequest {
            event: Some(send(&ack.conversation_id, "", "web-3", "x")),
        },
    )
    .await;
    assert_eq!(status, "16");
    server.stop().await;
}

#[tokio::test]
async fn malformed_frames_get_an_error_and_the_server_keeps_serving() {
    let server = TestServer::start().await;
    let url = server.url.clone();
    let (_, token) = server.visitor("M").await;
    for body in [
        Bytes::from_static(b"\x00\x00\x00\x00\x05\xff\xff\xff\xff\xff"), // invalid protobuf
        Bytes::from_static(b"\x00\x00\x00\x10\x00abc"),                  // length beyond the body
        Bytes::from_static(b"not grpc at all"),
    ] {
        let resp = tokio::time::timeout(
            Duration::from_secs(5),
            client().request(grpc_web_request(
                &url,
                "/wsmschat.v1.ChatService/Publish",
                Some(&token),
                body,
            )),
        )
        .await
        .unwrap()
        .unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).to_string();
        let status = parts
            .headers
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_owned())
            .or_else(|| {
                text.split("grpc-status:").nth(1).map(|s| {
                    s.trim()
                        .chars()
                        .take_while(|c| c.is_ascii_digit())
                        .collect()
                })
            })
            .expect("a grpc-status");
        assert_ne!(status, "0", "malformed input must not succeed");
    }
    // Invalid UTF-8 in a string field is refused with a clear message.
    let mut bad = frame(&v1::PublishRequest {
        event: Some(send("", "Order", "utf", "AB")),
    })
    .to_vec();
    let pos = bad.windows(2).position(|w| w == b"AB").unwrap();
    bad[pos] = 0xff;
    let resp = client()
        .request(grpc_web_request(
            &url,
            "/wsmschat.v1.ChatService/Publish",
            Some(&token),
            Bytes::from(bad),
        ))
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let all = format!("{:?} {}", parts.headers, String::from_utf8_lossy(&bytes));
    assert!(all.contains("UTF-8") || all.contains("utf-8"), "{all}");
    // Still serving.
    let mut chat = server.chat().await;
    start_conversation(&mut chat, &token, "Order", "still works").await;
    server.stop().await;
}
