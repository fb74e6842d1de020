//! Attachments against a real server (SQLite by default, PostgreSQL with
//! `WSMSCHAT_TEST_POSTGRES`): uploads over HTTP and gRPC, messages carrying files through the
//! stream, history and replay, signed links and who may use them, what is served how, the
//! limits (refused before the body is read), idempotent sends, and the sweeper.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsmschat::v1;
use wsmschat::v1::client_event::Event as Ce;
use wsmschat::v1::server_event::Event as Se;

/// A response: status, headers, body.
struct Res {
    status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Res {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "{} is not JSON: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

async fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Res {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = client
        .request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    Res {
        status,
        headers,
        body,
    }
}

/// `POST /uploads` as the browser does.
async fn upload(url: &str, token: &str, name: &str, conversation: &str, bytes: Vec<u8>) -> Res {
    let name = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    request(
        "POST",
        &format!("{url}/uploads?name={name}&conversation={conversation}"),
        &[("authorization", &format!("Bearer {token}"))],
        bytes,
    )
    .await
}

/// An upload that must succeed; returns its id.
async fn upload_ok(
    url: &str,
    token: &str,
    name: &str,
    conversation: &str,
    bytes: Vec<u8>,
) -> String {
    let r = upload(url, token, name, conversation, bytes).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()["id"].as_str().unwrap().to_owned()
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(w, h, |x, y| image::Rgba([x as u8, y as u8, 90, 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn pdf() -> Vec<u8> {
    let mut b = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n".to_vec();
    b.extend(std::iter::repeat_n(b'x', 20_000));
    b.extend_from_slice(b"\n%%EOF\n");
    b
}

fn send_files(
    conversation: &str,
    topic: &str,
    id: &str,
    text: &str,
    files: &[&str],
) -> v1::ClientEvent {
    ev(Ce::SendMessage(v1::SendMessage {
        conversation_id: conversation.into(),
        topic: topic.into(),
        client_msg_id: id.into(),
        text: text.into(),
        attachment_ids: files.iter().map(|f| f.to_string()).collect(),
        ..Default::default()
    }))
}

async fn set_site(s: &TestServer, f: impl FnOnce(&mut v1::Site)) {
    let admin = s.admin_token().await;
    let mut a = s.admin_client().await;
    let mut site = a
        .list_sites(authed(&admin, v1::ListSitesRequest {}))
        .await
        .unwrap()
        .into_inner()
        .sites
        .into_iter()
        .find(|x| x.site_key == "demo")
        .unwrap();
    f(&mut site);
    a.update_site(authed(
        &admin,
        v1::UpdateSiteRequest {
            site: Some(site),
            rotate_identity_secret: false,
        },
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn a_visitor_sends_a_screenshot_and_a_pdf_and_the_agent_reads_them_back() {
    let s = TestServer::start().await;
    let mut chat = s.chat().await;
    let (_, agent) = s.agent("Ann", &["Order"], 5).await;
    let mut inbox = Sub::open(&mut chat, &agent, vec![], true).await.unwrap();
    let (_, visitor) = s.visitor("Vic").await;
    let shot = png(800, 600);
    let image_id = upload_ok(&s.url, &visitor, "screenshot.png", "", shot.clone()).await;
    let pdf_bytes = pdf();
    let pdf_id = upload_ok(&s.url, &visitor, "Rechnung März.pdf", "", pdf_bytes.clone()).await;
    let ack = publish(
        &mut chat,
        &visitor,
        send_files(
            "",
            "Order",
            "m1",
            "the parcel arrived broken",
            &[&image_id, &pdf_id],
        ),
    )
    .await
    .unwrap();
    let m = inbox
        .next_where(|e| match e {
            Se::Message(m) if m.seq == ack.seq => Some(m.clone()),
            _ => None,
        })
        .await;
    assert_eq!(m.text, "the parcel arrived broken");
    assert_eq!(m.attachments.len(), 2);
    let (img, doc) = (&m.attachments[0], &m.attachments[1]);
    assert_eq!(
        (
            img.id.as_str(),
            img.content_type.as_str(),
            img.width,
            img.height
        ),
        (image_id.as_str(), "image/png", 800, 600)
    );
    assert!(img.has_thumbnail && !img.thumbnail_url.is_empty());
    assert_eq!(img.size, shot.len() as u64);
    assert_eq!(doc.name, "Rechnung März.pdf");
    assert_eq!(doc.content_type, "application/pdf");
    assert!(!doc.has_thumbnail);
    assert!(doc.urls_expire_at_ms > wsmschat_server::util::now_ms());

    // The agent's links serve the bytes: the image inline, the PDF as a named download.
    let r = request("GET", &format!("{}{}", s.url, img.url), &[], vec![]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, shot);
    assert_eq!(r.header("content-type"), "image/png");
    assert!(r.header("content-disposition").starts_with("inline"));
    assert_eq!(r.header("x-content-type-options"), "nosniff");
    assert!(r.header("content-security-policy").starts_with("sandbox"));
    let r = request("GET", &format!("{}{}", s.url, doc.url), &[], vec![]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, pdf_bytes);
    assert_eq!(
        r.header("content-disposition"),
        "attachment; filename=\"Rechnung M_rz.pdf\"; filename*=UTF-8''Rechnung%20M%C3%A4rz%2Epdf"
    );
    // A range of the PDF.
    let r = request(
        "GET",
        &format!("{}{}", s.url, doc.url),
        &[("range", "bytes=5-9")],
        vec![],
    )
    .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &pdf_bytes[5..10]);
    assert_eq!(
        r.header("content-range"),
        format!("bytes 5-9/{}", pdf_bytes.len())
    );
    // The thumbnail is a small image of the same shape.
    let r = request(
        "GET",
        &format!("{}{}", s.url, img.thumbnail_url),
        &[],
        vec![],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), "image/jpeg");
    let t = image::load_from_memory(&r.body).unwrap();
    assert_eq!((t.width(), t.height()), (320, 240));

    // History (the visitor's and the agent's) and the files list carry them too.
    let page = history(&mut chat, &visitor, &ack.conversation_id).await;
    let again = page.iter().find(|x| x.seq == ack.seq).unwrap();
    assert_eq!(again.attachments.len(), 2);
    assert!(!again.attachments[1].url.is_empty());
    let files = chat
        .list_attachments(authed(
            &agent,
            v1::ListAttachmentsRequest {
                conversation_id: ack.conversation_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .files;
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].author_kind, v1::AuthorKind::Visitor as i32);
    assert_eq!(files[0].author_name, "Vic");
    // A backend reads the bytes back over gRPC.
    let mut parts = chat
        .download_attachment(authed(
            &agent,
            v1::DownloadAttachmentRequest {
                attachment_id: pdf_id.clone(),
                thumbnail: false,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let first = parts.message().await.unwrap().unwrap();
    assert_eq!(first.attachment.unwrap().name, "Rechnung März.pdf");
    let mut got = Vec::new();
    while let Some(p) = parts.message().await.unwrap() {
        got.extend_from_slice(&p.chunk);
    }
    assert_eq!(got, pdf_bytes);

    // A resumed stream replays the message with its files and fresh links.
    let mut resumed = Sub::open(
        &mut chat,
        &visitor,
        vec![(ack.conversation_id.clone(), 0)],
        false,
    )
    .await
    .unwrap();
    let replayed = resumed
        .next_where(|e| match e {
            Se::Message(m) if m.seq == ack.seq => Some(m.clone()),
            _ => None,
        })
        .await;
    assert_eq!(replayed.attachments.len(), 2);
    assert!(!replayed.attachments[0].thumbnail_url.is_empty());
    s.stop().await;
}

#[tokio::test]
async fn a_retried_send_with_files_makes_one_message_and_a_file_is_sent_once() {
    let s = TestServer::start().await;
    let mut chat = s.chat().await;
    let (_, visitor) = s.visitor("Vic").await;
    let f = upload_ok(&s.url, &visitor, "a.png", "", png(10, 10)).await;
    let first = publish(
        &mut chat,
        &visitor,
        send_files("", "Order", "retry-1", "", &[&f]),
    )
    .await
    .unwrap();
    let again = publish(
        &mut chat,
        &visitor,
        send_files("", "Order", "retry-1", "", &[&f]),
    )
    .await
    .unwrap();
    assert!(again.duplicate);
    assert_eq!(
        (again.conversation_id.as_str(), again.seq),
        (first.conversation_id.as_str(), first.seq)
    );
    let page = history(&mut chat, &visitor, &first.conversation_id).await;
    assert_eq!(
        page.iter().filter(|m| !m.attachments.is_empty()).count(),
        1,
        "one message, one copy of its file"
    );
    // The file is taken: another message cannot carry it again.
    let err = publish(
        &mut chat,
        &visitor,
        send_files(&first.conversation_id, "", "other", "", &[&f]),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("already sent"), "{}", err.message());
    // Neither text nor files: refused; more than 10 files: refused.
    let err = publish(
        &mut chat,
        &visitor,
        send_files(&first.conversation_id, "", "e", "", &[]),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let many: Vec<String> = (0..11).map(|i| format!("f_{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let err = publish(
        &mut chat,
        &visitor,
        send_files(&first.conversation_id, "", "e2", "x", &many),
    )
    .await
    .unwrap_err();
    assert!(err.message().contains("at most 10"), "{}", err.message());
    s.stop().await;
}

#[tokio::test]
async fn links_and_files_reach_only_who_may_see_them() {
    let s = TestServer::start().await;
    let mut chat = s.chat().await;
    let (_, agent) = s.agent("Ann", &["Order"], 5).await;
    let (_, visitor) = s.visitor("Vic").await;
    let (_, other) = s.visitor("Mallory").await;
    let f = upload_ok(&s.url, &visitor, "mine.pdf", "", pdf()).await;
    // Another visitor cannot send (or even see) my upload.
    let err = publish(
        &mut chat,
        &other,
        send_files("", "Order", "steal", "", &[&f]),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    let ack = publish(
        &mut chat,
        &visitor,
        send_files("", "Order", "m1", "", &[&f]),
    )
    .await
    .unwrap();
    let conv = ack.conversation_id.clone();
    let err = chat
        .get_attachment(authed(
            &other,
            v1::GetAttachmentRequest {
                attachment_id: f.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let mine = chat
        .get_attachment(authed(
            &visitor,
            v1::GetAttachmentRequest {
                attachment_id: f.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .attachment
        .unwrap();
    // A forged signature, a link for another file and an expired link are refused.
    let forged = mine.url.replace("&s=", "&s=A");
    assert_eq!(
        request("GET", &format!("{}{forged}", s.url), &[], vec![])
            .await
            .status,
        403
    );
    let (expired, _) = s
        .running
        .as_ref()
        .unwrap()
        .core
        .signer()
        .link(&f, wsmschat_server::files::Variant::Original, 0)
        .unwrap();
    let r = request("GET", &format!("{}{expired}", s.url), &[], vec![]).await;
    assert_eq!(r.status, 403);
    assert!(String::from_utf8_lossy(&r.body).contains("expired"));
    let thumb_of_pdf = mine.url.replace("/o?", "/t?");
    assert_eq!(
        request("GET", &format!("{}{thumb_of_pdf}", s.url), &[], vec![])
            .await
            .status,
        403
    );

    // A note's file: the agent's upload for the conversation, sent as a note.
    let note_file = upload_ok(&s.url, &agent, "internal.png", &conv, png(20, 20)).await;
    let mut visitor_sub = Sub::open(&mut chat, &visitor, vec![], false).await.unwrap();
    publish(
        &mut chat,
        &agent,
        ev(Ce::SendMessage(v1::SendMessage {
            conversation_id: conv.clone(),
            client_msg_id: "note-1".into(),
            kind: v1::MessageKind::Note as i32,
            attachment_ids: vec![note_file.clone()],
            ..Default::default()
        })),
    )
    .await
    .unwrap();
    visitor_sub
        .no_message_within(Duration::from_millis(500))
        .await;
    let err = chat
        .get_attachment(authed(
            &visitor,
            v1::GetAttachmentRequest {
                attachment_id: note_file.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let visitor_files = chat
        .list_attachments(authed(
            &visitor,
            v1::ListAttachmentsRequest {
                conversation_id: conv.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .files;
    assert_eq!(visitor_files.len(), 1, "the note's file is not listed");
    assert!(
        history(&mut chat, &visitor, &conv)
            .await
            .iter()
            .all(|m| m.attachments.iter().all(|a| a.id != note_file))
    );
    // Staff upload only for a conversation they see; a visitor only on their site's origins.
    let r = upload(&s.url, &agent, "x.png", "", png(2, 2)).await;
    assert_eq!(r.status, 400);
    let r = upload(&s.url, &other, "x.png", &conv, png(2, 2)).await;
    assert_eq!(r.status, 404);
    let r = request(
        "POST",
        &format!("{}/uploads?name=x.png", s.url),
        &[
            ("authorization", &format!("Bearer {visitor}")),
            ("origin", "https://evil.example"),
        ],
        png(2, 2),
    )
    .await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    let r = upload(&s.url, "not-a-token", "x.png", "", png(2, 2)).await;
    assert_eq!(r.status, 401);
    s.stop().await;
}

#[tokio::test]
async fn markup_is_always_a_download_and_refused_kinds_say_what_is_accepted() {
    let s = TestServer::start().await;
    let (_, visitor) = s.visitor("Vic").await;
    let html = b"<!DOCTYPE html><script>alert(document.domain)</script>".to_vec();
    // The default kinds (images and documents) refuse markup, saying what they take.
    let r = upload(&s.url, &visitor, "page.html", "", html.clone()).await;
    assert_eq!(r.status, 415);
    let msg = r.json()["message"].as_str().unwrap().to_owned();
    assert!(
        msg.contains("text/html") && msg.contains("images and documents"),
        "{msg}"
    );
    // A PDF named .png is a PDF: the bytes decide, not the name.
    let r = upload(&s.url, &visitor, "fake.png", "", pdf()).await;
    assert_eq!(r.json()["contentType"], "application/pdf");
    set_site(&s, |site| site.file_kinds = v1::FileKinds::Images as i32).await;
    let r = upload(&s.url, &visitor, "doc.pdf", "", pdf()).await;
    assert_eq!(r.status, 415);
    // With "any file", HTML and SVG are kept, and served as downloads that never render.
    set_site(&s, |site| site.file_kinds = v1::FileKinds::Any as i32).await;
    let mut chat = s.chat().await;
    let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>".to_vec();
    for (name, bytes, detected) in [
        ("page.html", html, "text/html"),
        ("logo.svg", svg, "image/svg+xml"),
    ] {
        let r = upload(&s.url, &visitor, name, "", bytes.clone()).await;
        assert_eq!(r.status, 201);
        let a = r.json();
        assert_eq!(a["contentType"], detected);
        assert_eq!(a["hasThumbnail"], false);
        let id = a["id"].as_str().unwrap().to_owned();
        publish(
            &mut chat,
            &visitor,
            send_files("", "Order", &uuid(), "", &[&id]),
        )
        .await
        .unwrap();
        let url = a["url"].as_str().unwrap();
        let r = request("GET", &format!("{}{url}", s.url), &[], vec![]).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, bytes);
        assert_eq!(r.header("content-type"), "application/octet-stream");
        assert!(r.header("content-disposition").starts_with("attachment;"));
        assert!(r.header("content-security-policy").starts_with("sandbox"));
        assert_eq!(r.header("x-content-type-options"), "nosniff");
    }
    set_site(&s, |site| site.file_kinds = v1::FileKinds::None as i32).await;
    let r = upload(&s.url, &visitor, "a.png", "", png(2, 2)).await;
    assert_eq!(r.status, 403);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("does not accept files")
    );
    s.stop().await;
}

/// Sends a request head (and `body`) on a raw connection; returns what the server answered
/// before the rest of the body was sent.
async fn raw_exchange(addr: &str, head: &str, body: &[u8]) -> String {
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(head.as_bytes()).await.unwrap();
    let _ = c.write_all(body).await;
    let mut out = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, c.read(&mut out))
        .await
        .expect("the server answers without waiting for the rest of the body")
        .unwrap();
    String::from_utf8_lossy(&out[..n]).into_owned()
}

#[tokio::test]
async fn a_file_over_the_limit_is_refused_before_its_body_is_read() {
    let s = TestServer::start().await;
    set_site(&s, |site| site.max_file_bytes = 1024 * 1024).await;
    let (_, visitor) = s.visitor("Vic").await;
    let addr = s.url.trim_start_matches("http://");
    // Announced too large: refused at once, with the limit, though no byte of it was sent.
    let answer = raw_exchange(
        addr,
        &format!(
            "POST /uploads?name=big.zip HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {visitor}\r\n\
             content-length: 52428800\r\n\r\n"
        ),
        b"",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("the file is 50 MB; this site accepts files up to 1 MB"),
        "{answer}"
    );
    // Not announced (chunked): refused as soon as it passes the limit.
    let chunk = vec![b'a'; 64 * 1024];
    let mut body = Vec::new();
    for _ in 0..20 {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(&chunk);
        body.extend_from_slice(b"\r\n");
    }
    let answer = raw_exchange(
        addr,
        &format!(
            "POST /uploads?name=big.txt HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {visitor}\r\n\
             transfer-encoding: chunked\r\n\r\n"
        ),
        &body,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("up to 1 MB"), "{answer}");
    // The server goes on serving, and a file within the limit passes.
    upload_ok(&s.url, &visitor, "ok.png", "", png(100, 100)).await;
    let metrics = request("GET", &format!("{}/metrics", s.url), &[], vec![]).await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("wsmschat_uploads_refused_total{reason=\"too_large\"} 2"),
        "{text}"
    );
    assert!(text.contains("wsmschat_uploads_total 1"), "{text}");
    s.stop().await;
}

#[tokio::test]
async fn location_is_stripped_from_photos() {
    let s = TestServer::start().await;
    let (_, visitor) = s.visitor("Vic").await;
    // A real JPEG with an EXIF block holding GPS coordinates spliced in after SOI.
    let img = image::RgbImage::from_fn(64, 48, |x, _| image::Rgb([x as u8 * 4, 100, 50]));
    let mut jpeg = std::io::Cursor::new(Vec::new());
    img.write_to(&mut jpeg, image::ImageFormat::Jpeg).unwrap();
    let jpeg = jpeg.into_inner();
    let exif = wsmschat_server::files::sample_gps_exif_segment();
    let mut photo = jpeg[..2].to_vec();
    photo.extend_from_slice(&exif);
    photo.extend_from_slice(&jpeg[2..]);
    let latitude = 1234u32.to_le_bytes();
    let has = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    assert!(has(&photo, &latitude));
    let r = upload(&s.url, &visitor, "photo.jpg", "", photo).await;
    assert_eq!(r.status, 201);
    let a = r.json();
    assert_eq!(
        (a["width"].as_u64(), a["height"].as_u64()),
        (Some(64), Some(48))
    );
    let url = a["url"].as_str().unwrap().to_owned();
    let served = request("GET", &format!("{}{url}", s.url), &[], vec![])
        .await
        .body;
    assert!(!has(&served, &latitude), "the latitude is gone");
    assert!(
        image::load_from_memory(&served).is_ok(),
        "still a valid JPEG"
    );
    s.stop().await;
}

#[tokio::test]
async fn unsent_uploads_and_files_past_retention_are_deleted() {
    let s = TestServer::start().await;
    let mut chat = s.chat().await;
    let (_, agent) = s.agent("Ann", &["Order"], 5).await;
    let (_, visitor) = s.visitor("Vic").await;
    let kept = upload_ok(&s.url, &visitor, "kept.png", "", png(8, 8)).await;
    let unsent = upload_ok(&s.url, &visitor, "unsent.png", "", png(8, 8)).await;
    let ack = publish(
        &mut chat,
        &visitor,
        send_files("", "Order", "m1", "", &[&kept]),
    )
    .await
    .unwrap();
    let core = s.running.as_ref().unwrap().core.clone();
    let now = wsmschat_server::util::now_ms();
    // Within a day nothing goes.
    assert_eq!(core.sweep_files(now).await.unwrap(), (0, 0));
    let day = 86_400_000;
    assert_eq!(core.sweep_files(now + day + 60_000).await.unwrap(), (1, 0));
    let err = chat
        .get_attachment(authed(
            &visitor,
            v1::GetAttachmentRequest {
                attachment_id: unsent,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    // A site keeping files 1 day: the resolved conversation's file goes after that.
    set_site(&s, |site| site.file_retention_days = 1).await;
    let link = chat
        .get_attachment(authed(
            &visitor,
            v1::GetAttachmentRequest {
                attachment_id: kept.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .attachment
        .unwrap()
        .url;
    assert_eq!(
        core.sweep_files(now + 2 * day).await.unwrap(),
        (0, 0),
        "open: kept"
    );
    publish(
        &mut chat,
        &agent,
        ev(Ce::Resolve(v1::ResolveConversation {
            conversation_id: ack.conversation_id.clone(),
        })),
    )
    .await
    .unwrap();
    assert_eq!(core.sweep_files(now + 2 * day).await.unwrap(), (0, 1));
    let page = history(&mut chat, &visitor, &ack.conversation_id).await;
    let a = &page.iter().find(|m| m.seq == ack.seq).unwrap().attachments[0];
    assert!(a.deleted && a.url.is_empty(), "{a:?}");
    assert_eq!(a.name, "kept.png", "the metadata stays");
    let r = request("GET", &format!("{}{link}", s.url), &[], vec![]).await;
    assert_eq!(r.status, 410);
    s.stop().await;
}

#[tokio::test]
async fn a_backend_uploads_over_grpc_and_sends_the_file() {
    let s = TestServer::start().await;
    let mut chat = s.chat().await;
    let (_, visitor) = s.visitor("Vic").await;
    let (conv, _) = start_conversation(&mut chat, &visitor, "Order", "send me a photo?").await;
    let bot = s.service_key().await;
    let bytes = png(300, 200);
    let parts = vec![
        v1::UploadAttachmentRequest {
            part: Some(v1::upload_attachment_request::Part::Metadata(
                v1::UploadMetadata {
                    name: "label.png".into(),
                    conversation_id: conv.clone(),
                    size: bytes.len() as u64,
                },
            )),
        },
        v1::UploadAttachmentRequest {
            part: Some(v1::upload_attachment_request::Part::Chunk(
                bytes[..1000].to_vec(),
            )),
        },
        v1::UploadAttachmentRequest {
            part: Some(v1::upload_attachment_request::Part::Chunk(
                bytes[1000..].to_vec(),
            )),
        },
    ];
    let a = chat
        .upload_attachment(authed(&bot, futures_util::stream::iter(parts)))
        .await
        .unwrap()
        .into_inner()
        .attachment
        .unwrap();
    assert_eq!((a.width, a.height, a.size), (300, 200, bytes.len() as u64));
    let mut sub = Sub::open(&mut chat, &visitor, vec![], false).await.unwrap();
    publish(
        &mut chat,
        &bot,
        send_files(&conv, "", "bot-1", "here is your label", &[&a.id]),
    )
    .await
    .unwrap();
    let m = sub.next_message().await;
    assert_eq!(m.attachments[0].id, a.id);
    let r = request(
        "GET",
        &format!("{}{}", s.url, m.attachments[0].url),
        &[],
        vec![],
    )
    .await;
    assert_eq!(r.body, bytes);
    // Announced over the limit: refused before any chunk.
    let parts = vec![v1::UploadAttachmentRequest {
        part: Some(v1::upload_attachment_request::Part::Metadata(
            v1::UploadMetadata {
                name: "huge.bin".into(),
                conversation_id: conv.clone(),
                size: 11 * 1024 * 1024,
            },
        )),
    }];
    let err = chat
        .upload_attachment(authed(&bot, futures_util::stream::iter(parts)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    assert!(err.message().contains("up to 10 MB"), "{}", err.message());
    s.stop().await;
}
