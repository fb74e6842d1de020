//! Email continuity against a real SMTP server started by the test (`common::smtp`): unseen
//! replies are emailed once after the delay, in one email; seen ones are not; the link in it
//! opens the conversation for that visitor on a new device; unsubscribe stops it; an SMTP
//! server that is down, then back, gets each email once; a permanent refusal is shown. Runs
//! on SQLite and, with `WSMSCHAT_TEST_POSTGRES`, on PostgreSQL.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::smtp::SmtpServer;
use common::*;
use wsmschat::v1;
use wsmschat::v1::client_event::Event as Ce;
use wsmschat_server::core::CoreConfig;
use wsmschat_server::core::email::EmailConfig;

/// A "minute" of the site's delay, in these tests: the default 3 minutes are 600 ms.
const MINUTE_MS: u64 = 200;

fn config(smtp: &SmtpServer, retry_ms: &[u64]) -> CoreConfig {
    let mut e = EmailConfig::new(smtp.url(), "support@shop.test".into());
    e.retry = retry_ms.iter().map(|m| Duration::from_millis(*m)).collect();
    e.minute = Duration::from_millis(MINUTE_MS);
    e.timeout = Duration::from_secs(3);
    CoreConfig {
        email: Some(e),
        public_url: Some("https://chat.test".into()),
        ..test_core_config()
    }
}

/// The demo site answers on https://shop.test too (where the continuation link points).
async fn shop_origin(s: &TestServer) {
    let admin = s.admin_token().await;
    let mut site = s.demo_site(&admin).await;
    site.allowed_origins.insert(0, "https://shop.test".into());
    s.save_site(&admin, site).await.unwrap();
}

/// A visitor who left an address; (id, token).
async fn visitor_with_email(s: &TestServer, locale: &str) -> (String, String) {
    let r = s
        .sessions()
        .await
        .start_visitor_session(v1::StartVisitorSessionRequest {
            site_key: "demo".into(),
            name: "Vera".into(),
            email: "vera@example.com".into(),
            page_url: "https://shop.test/orders/1001?tab=x".into(),
            locale: locale.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        r.site.unwrap().email_enabled,
        "the widget is told email is on"
    );
    (r.visitor_id, r.visitor_token)
}

async fn reply(chat: &mut Chat, agent: &str, conv: &str, text: &str) -> u64 {
    publish(chat, agent, send(conv, "", &uuid(), text))
        .await
        .unwrap()
        .seq
}

type Chat = wsmschat::v1::chat_service_client::ChatServiceClient<tonic::transport::Channel>;

fn text_part(m: &mail_parser::Message<'_>) -> String {
    m.body_text(0).unwrap().into_owned()
}

async fn emails(s: &TestServer, agent: &str, conv: &str) -> Vec<v1::Email> {
    s.chat()
        .await
        .list_conversation_emails(authed(
            agent,
            v1::ListConversationEmailsRequest {
                conversation_id: conv.into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .emails
}

#[tokio::test]
async fn unseen_replies_are_emailed_once_after_the_delay_and_seen_ones_never() {
    let smtp = SmtpServer::start().await;
    let s = TestServer::start_with(config(&smtp, &[200])).await;
    shop_origin(&s).await;
    let (_, vt) = visitor_with_email(&s, "en-GB").await;
    let mut chat = s.chat().await;
    let (conv, _) = start_conversation(&mut chat, &vt, "Order", "Where is order 1001?").await;
    let (_, agent) = s.agent("Ann", &["Order"], 5).await;
    // A burst of three replies the visitor does not see.
    let t0 = Instant::now();
    reply(&mut chat, &agent, &conv, "Hi Vera, let me check.").await;
    reply(&mut chat, &agent, &conv, "It left our warehouse today.").await;
    reply(&mut chat, &agent, &conv, "Tracking: <b>ZX-1</b> & more").await;
    let mails = smtp.wait(1, Duration::from_secs(10)).await;
    let after = t0.elapsed();
    assert!(
        after >= Duration::from_millis(3 * MINUTE_MS - 50),
        "not before the delay: {after:?}"
    );
    eprintln!("continuity email delivered {after:?} after the first reply (delay 600 ms)");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(smtp.mails().len(), 1, "a burst of replies is one email");
    let m = &mails[0];
    assert_eq!(m.to, ["<vera@example.com>"]);
    let p = m.parsed();
    let from = p.from().unwrap().first().unwrap();
    assert_eq!(from.name(), Some("Ann (Demo Shop)"));
    assert_eq!(from.address(), Some("support@shop.test"));
    assert_eq!(p.subject(), Some("New reply from Demo Shop"));
    let id = p.message_id().unwrap().to_owned();
    assert!(id.starts_with("em_") && id.ends_with("@shop.test"), "{id}");
    let text = text_part(&p);
    for r in [
        "Hi Vera, let me check.",
        "It left our warehouse today.",
        "Tracking: <b>ZX-1</b> & more",
    ] {
        assert!(text.contains(r), "{text}");
    }
    assert!(!text.contains("Where is order 1001?"), "only the replies");
    let html = p.body_html(0).unwrap();
    assert!(
        html.contains("Tracking: &lt;b&gt;ZX-1&lt;/b&gt; &amp; more"),
        "user text is escaped in HTML: {html}"
    );
    assert!(
        text.contains("https://shop.test/orders/1001?tab=x#wsmschat-continue="),
        "{text}"
    );
    let unsub = p.header_raw("List-Unsubscribe").unwrap().trim().to_owned();
    assert!(
        unsub.starts_with("<https://chat.test/email/unsubscribe?t="),
        "{unsub}"
    );
    assert_eq!(
        p.header_raw("List-Unsubscribe-Post").map(str::trim),
        Some("List-Unsubscribe=One-Click")
    );
    let log = emails(&s, &agent, &conv).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].state, v1::EmailState::Sent as i32);
    assert_eq!(log[0].message_id, format!("<{id}>"));

    // A reply the visitor reads in time is not emailed.
    let seq = reply(&mut chat, &agent, &conv, "Anything else?").await;
    publish(
        &mut chat,
        &vt,
        ev(Ce::MarkRead(v1::MarkRead {
            conversation_id: conv.clone(),
            seq,
        })),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(3 * MINUTE_MS + 1200)).await;
    assert_eq!(smtp.mails().len(), 1, "a seen reply is not emailed");

    // The next unseen reply is: alone, not the ones mailed before.
    reply(&mut chat, &agent, &conv, "It arrives tomorrow.").await;
    let mails = smtp.wait(2, Duration::from_secs(10)).await;
    let text = text_part(&mails[1].parsed());
    assert!(text.contains("It arrives tomorrow."), "{text}");
    assert!(!text.contains("let me check"), "{text}");
    assert!(!text.contains("Anything else?"), "{text}");
    s.stop().await;
}

#[tokio::test]
async fn the_email_link_continues_the_conversation_and_unsubscribe_stops_email() {
    let smtp = SmtpServer::start().await;
    let s = TestServer::start_with(config(&smtp, &[200])).await;
    shop_origin(&s).await;
    let (visitor_id, vt) = visitor_with_email(&s, "de-DE").await;
    let mut chat = s.chat().await;
    let (conv, _) = start_conversation(&mut chat, &vt, "Order", "Hallo").await;
    let (_, agent) = s.agent("Ann", &["Order"], 5).await;
    reply(&mut chat, &agent, &conv, "Guten Tag!").await;
    let mails = smtp.wait(1, Duration::from_secs(10)).await;
    let p = mails[0].parsed();
    assert_eq!(
        p.subject(),
        Some("Neue Antwort von Demo Shop"),
        "in the visitor's language"
    );
    let text = text_part(&p);
    assert!(text.contains("Unterhaltung fortsetzen"), "{text}");
    let token = text
        .split("#wsmschat-continue=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();

    // Another device: no visitor token, only the link's token.
    let r = s
        .sessions()
        .await
        .start_visitor_session(v1::StartVisitorSessionRequest {
            site_key: "demo".into(),
            continuation_token: token.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.visitor_id, visitor_id, "the same visitor");
    assert_eq!(r.continued_conversation_id, conv);
    assert_ne!(r.visitor_token, vt, "a token of its own");
    let h = history(&mut chat, &r.visitor_token, &conv).await;
    assert_eq!(h.last().unwrap().text, "Guten Tag!");
    // A forged or altered token is refused.
    for bad in [
        format!("{token}x"),
        token.replacen('.', "x.", 1),
        "nonsense".into(),
    ] {
        let e = s
            .sessions()
            .await
            .start_visitor_session(v1::StartVisitorSessionRequest {
                site_key: "demo".into(),
                continuation_token: bad,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    }

    // Unsubscribe: a GET only shows the button; the POST unsubscribes.
    let link = text
        .lines()
        .find_map(|l| l.split("https://chat.test").nth(1))
        .filter(|l| l.starts_with("/email/unsubscribe"))
        .unwrap()
        .trim()
        .to_owned();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let get = client
        .get(format!("{}{link}", s.url).parse().unwrap())
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    let body = http_body_util::BodyExt::collect(get.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("<form method=\"post\""));
    reply(&mut chat, &agent, &conv, "Still there?").await; // queued before the opt-out
    let post = client
        .request(
            hyper::Request::post(format!("{}{link}", s.url))
                .body(http_body_util::Full::new(bytes::Bytes::from_static(
                    b"List-Unsubscribe=One-Click",
                )))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(post.status(), 200);
    let forged = client
        .request(
            hyper::Request::post(format!("{}/email/unsubscribe?t=abc.def", s.url))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    reply(&mut chat, &agent, &conv, "Hello?").await;
    tokio::time::sleep(Duration::from_millis(3 * MINUTE_MS + 1200)).await;
    assert_eq!(smtp.mails().len(), 1, "no email after unsubscribing");
    s.stop().await;
}

#[tokio::test]
async fn an_smtp_server_down_then_back_gets_each_email_once() {
    let mut smtp = SmtpServer::down().await;
    let s = TestServer::start_with(config(&smtp, &[300, 300, 300, 300, 300, 300, 300, 300])).await;
    let (_, vt) = visitor_with_email(&s, "en").await;
    let mut chat = s.chat().await;
    let (conv, _) = start_conversation(&mut chat, &vt, "Order", "hi").await;
    let (_, agent) = s.agent("Ann", &["Order"], 5).await;
    reply(&mut chat, &agent, &conv, "Hello from support").await;
    // Queued, tried, failing: the reason is on the conversation.
    let deadline = Instant::now() + Duration::from_secs(10);
    let e = loop {
        let log = emails(&s, &agent, &conv).await;
        if let Some(e) = log.into_iter().find(|e| e.attempts >= 2) {
            break e;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(e.state, v1::EmailState::Queued as i32);
    assert!(!e.last_error.is_empty(), "{e:?}");
    smtp.start_again().await;
    let mails = smtp.wait(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(smtp.mails().len(), 1, "once");
    assert!(text_part(&mails[0].parsed()).contains("Hello from support"));
    let log = emails(&s, &agent, &conv).await;
    assert_eq!(log[0].state, v1::EmailState::Sent as i32);
    assert!(log[0].sent_at_ms > 0);

    // A permanent refusal (5xx) fails at once, with the server's reply shown.
    smtp.sink.refuse.store(550, Ordering::SeqCst);
    reply(&mut chat, &agent, &conv, "One more thing").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let e = loop {
        let log = emails(&s, &agent, &conv).await;
        if let Some(e) = log
            .into_iter()
            .find(|e| e.state == v1::EmailState::Failed as i32)
        {
            break e;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(e.attempts, 1, "not retried");
    assert!(
        e.last_error.contains("mail refused by the test"),
        "{}",
        e.last_error
    );
    s.stop().await;
}

#[tokio::test]
async fn without_smtp_nothing_is_promised_or_queued() {
    let s = TestServer::start().await;
    let r = s
        .sessions()
        .await
        .start_visitor_session(v1::StartVisitorSessionRequest {
            site_key: "demo".into(),
            email: "x@example.com".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!r.site.unwrap().email_enabled);
    let mut chat = s.chat().await;
    let (conv, _) = start_conversation(&mut chat, &r.visitor_token, "Order", "hi").await;
    let (_, agent) = s.agent("Ann", &["Order"], 5).await;
    reply(&mut chat, &agent, &conv, "hello").await;
    assert!(emails(&s, &agent, &conv).await.is_empty());
    // Visitors may not read the email log.
    let e = s
        .chat()
        .await
        .list_conversation_emails(authed(
            &r.visitor_token,
            v1::ListConversationEmailsRequest {
                conversation_id: conv.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    s.stop().await;
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(w, h, |x, y| image::Rgba([x as u8, y as u8, 90, 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Sends a mail to the server's SMTP listener; the SMTP error text on refusal.
async fn mail_to(
    at: std::net::SocketAddr,
    to: &str,
    message_id: &str,
    text: &str,
    file: Option<(&str, Vec<u8>)>,
) -> Result<(), String> {
    use lettre::message::{Attachment, MultiPart, SinglePart, header::ContentType};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(at.ip().to_string())
        .port(at.port())
        .build();
    let mut body = MultiPart::mixed().singlepart(SinglePart::plain(text.to_owned()));
    if let Some((name, bytes)) = file {
        body = body.singlepart(
            Attachment::new(name.to_owned()).body(bytes, ContentType::parse("image/png").unwrap()),
        );
    }
    let m = lettre::Message::builder()
        .from("Vera <vera@example.com>".parse().unwrap())
        .to(to.parse().map_err(|e| format!("{e}"))?)
        .subject("Re: New reply from Demo Shop")
        .message_id(Some(message_id.to_owned()))
        .multipart(body)
        .unwrap();
    transport.send(m).await.map(drop).map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_reply_by_email_lands_in_the_conversation_once() {
    let smtp = SmtpServer::start().await;
    let mut c = config(&smtp, &[200]);
    if let Some(e) = c.email.as_mut() {
        e.smtp_listen = Some("127.0.0.1:0".parse().unwrap());
        e.reply_domain = Some("reply.shop.test".into());
    }
    let s = TestServer::start_with(c).await;
    let inbound = s.running.as_ref().unwrap().smtp_addr.unwrap();
    let (_, vt) = visitor_with_email(&s, "en").await;
    let mut chat = s.chat().await;
    let (conv, _) = start_conversation(&mut chat, &vt, "Order", "Can you deliver on Friday?").await;
    let (_, agent) = s.agent("Ann", &["Order"], 5).await;
    reply(&mut chat, &agent, &conv, "Friday works. Shall we?").await;
    let mails = smtp.wait(1, Duration::from_secs(10)).await;
    let p = mails[0].parsed();
    let reply_to = p.header_raw("Reply-To").unwrap().trim().to_owned();
    assert!(
        reply_to.starts_with("reply+") && reply_to.ends_with("@reply.shop.test"),
        "{reply_to}"
    );
    assert!(text_part(&p).contains("You can also simply reply to this email."));

    // The customer answers from their mail client, quoting the email, with a photo.
    let body = "Yes please, Friday morning.\r\n\r\nOn Wed, 2 Dec 2026 at 14:00, Ann (Demo Shop) <support@shop.test> wrote:\r\n> Friday works. Shall we?\r\n";
    mail_to(
        inbound,
        &reply_to,
        "<m1@example.com>",
        body,
        Some(("door.png", png(40, 30))),
    )
    .await
    .unwrap();
    let h = history(&mut chat, &agent, &conv).await;
    let m = h.last().unwrap();
    assert_eq!(
        m.text, "Yes please, Friday morning.",
        "quoted history stripped"
    );
    assert_eq!(m.author_kind, v1::AuthorKind::Visitor as i32);
    assert_eq!(m.attachments.len(), 1);
    assert_eq!(
        (
            m.attachments[0].name.as_str(),
            m.attachments[0].content_type.as_str()
        ),
        ("door.png", "image/png")
    );
    assert_eq!((m.attachments[0].width, m.attachments[0].height), (40, 30));
    // The sender's server retries the same mail: still one message.
    mail_to(inbound, &reply_to, "<m1@example.com>", body, None)
        .await
        .unwrap();
    let again = history(&mut chat, &agent, &conv).await;
    assert_eq!(
        again.len(),
        h.len(),
        "a mail delivered twice is one message"
    );

    // Not a relay, and no guessing: other recipients and altered tokens are refused.
    for to in [
        "someone@example.org".to_owned(),
        reply_to.replacen("reply+", "reply+x", 1),
        reply_to.replace("@reply.shop.test", "@elsewhere.test"),
    ] {
        let e = mail_to(inbound, &to, "<m2@example.com>", "hi", None)
            .await
            .unwrap_err();
        assert!(e.contains("550") || e.contains("unknown"), "{to}: {e}");
    }
    assert_eq!(history(&mut chat, &agent, &conv).await.len(), h.len());
    s.stop().await;
}

#[tokio::test]
async fn transcripts_download_as_text_and_are_emailed_on_request() {
    let smtp = SmtpServer::start().await;
    let s = TestServer::start_with(config(&smtp, &[200])).await;
    let (_, vt) = visitor_with_email(&s, "en").await;
    let mut chat = s.chat().await;
    let (conv, _) = start_conversation(&mut chat, &vt, "Order", "Is it <b>here</b>?").await;
    let (_, agent) = s.agent("Ann", &["Order"], 5).await;
    reply(&mut chat, &agent, &conv, "It is.").await;
    publish(
        &mut chat,
        &agent,
        ev(Ce::SendMessage(v1::SendMessage {
            conversation_id: conv.clone(),
            client_msg_id: uuid(),
            text: "internal: courier late".into(),
            kind: v1::MessageKind::Note as i32,
            ..Default::default()
        })),
    )
    .await
    .unwrap();
    let get = |token: String| {
        let conv = conv.clone();
        let url = s.url.clone();
        async move {
            wsmschat::v1::chat_service_client::ChatServiceClient::connect(url)
                .await
                .unwrap()
                .get_transcript(authed(
                    &token,
                    v1::GetTranscriptRequest {
                        conversation_id: conv,
                    },
                ))
                .await
                .map(|r| r.into_inner())
        }
    };
    let mine = get(vt.clone()).await.unwrap();
    assert_eq!(mine.filename, format!("conversation-{conv}.txt"));
    assert!(mine.text.contains("Is it <b>here</b>?"), "{}", mine.text);
    assert!(mine.text.contains("Ann:\nIt is."), "{}", mine.text);
    assert!(!mine.text.contains("courier"), "a visitor never sees notes");
    let staff = get(agent.clone()).await.unwrap();
    assert!(
        staff
            .text
            .contains("Ann (private note):\ninternal: courier late")
    );
    let (_, other) = s.visitor("Eve").await;
    assert_eq!(get(other).await.unwrap_err().code(), tonic::Code::NotFound);

    let send_it = |token: String| {
        let conv = conv.clone();
        let url = s.url.clone();
        async move {
            wsmschat::v1::chat_service_client::ChatServiceClient::connect(url)
                .await
                .unwrap()
                .email_transcript(authed(
                    &token,
                    v1::EmailTranscriptRequest {
                        conversation_id: conv,
                    },
                ))
                .await
                .map(|r| r.into_inner())
        }
    };
    let queued = send_it(vt.clone()).await.unwrap();
    assert_eq!(queued.to, "vera@example.com");
    // Once per 10 minutes; agents cannot mail it to the visitor.
    assert_eq!(
        send_it(vt.clone()).await.unwrap_err().code(),
        tonic::Code::ResourceExhausted
    );
    assert_eq!(
        send_it(agent.clone()).await.unwrap_err().code(),
        tonic::Code::PermissionDenied
    );
    // The continuity email for the reply may come too: find the transcript.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mail = loop {
        if let Some(m) = smtp
            .mails()
            .into_iter()
            .find(|m| m.parsed().subject() == Some("Your conversation with Demo Shop"))
        {
            break m;
        }
        assert!(Instant::now() < deadline, "no transcript email");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let p = mail.parsed();
    let text = text_part(&p);
    assert!(
        text.contains("Is it <b>here</b>?") && text.contains("It is."),
        "{text}"
    );
    assert!(!text.contains("courier"));
    assert!(
        p.body_html(0)
            .unwrap()
            .contains("Is it &lt;b&gt;here&lt;/b&gt;?")
    );
    s.stop().await;
}

/// Recipients of the emails with this subject.
fn recipients(smtp: &SmtpServer, subject_starts: &str) -> Vec<String> {
    let mut to: Vec<String> = smtp
        .mails()
        .iter()
        .filter(|m| {
            m.parsed()
                .subject()
                .is_some_and(|s| s.starts_with(subject_starts))
        })
        .flat_map(|m| m.to.clone())
        .collect();
    to.sort();
    to
}

#[tokio::test]
async fn the_team_hears_of_customers_waiting_while_nobody_is_online_and_gets_a_digest() {
    let smtp = SmtpServer::start().await;
    let mut c = config(&smtp, &[200]);
    // The digest is made below, not by the clock.
    c.email.as_mut().unwrap().digest_hour = None;
    let s = TestServer::start_with(c).await;
    let admin = s.admin_token().await;
    let mut a = s.admin_client().await;
    let mut site = a
        .list_sites(authed(&admin, v1::ListSitesRequest {}))
        .await
        .unwrap()
        .into_inner()
        .sites
        .remove(0);
    site.notify_email = "team@shop.test".into();
    a.update_site(authed(
        &admin,
        v1::UpdateSiteRequest {
            site: Some(site),
            rotate_identity_secret: false,
        },
    ))
    .await
    .unwrap();
    let (_, ann) = s.agent("Ann", &["Order"], 5).await;
    s.agent("Bob", &["Delivery"], 5).await;
    let (_, carl) = s.agent("Carl", &["Order"], 5).await;
    // Carl turns alert emails off for himself.
    let me = s
        .sessions()
        .await
        .set_email_alerts(authed(&carl, v1::SetEmailAlertsRequest { off: true }))
        .await
        .unwrap()
        .into_inner()
        .agent
        .unwrap();
    assert!(me.email_alerts_off);
    let (_, vt) = s.visitor("Val").await;
    let mut chat = s.chat().await;
    let (conv, _) = start_conversation(&mut chat, &vt, "Order", "Anyone there?").await;
    publish(&mut chat, &vt, send(&conv, "", &uuid(), "Hello??"))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while recipients(&smtp, "Val is waiting").len() < 3 {
        assert!(Instant::now() < deadline, "{:?}", smtp.mails().len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        recipients(&smtp, "Val is waiting"),
        [
            "<admin@example.com>",
            "<ann@example.com>",
            "<team@shop.test>"
        ],
        "Order's agents (not Bob of Delivery, not Carl who opted out), the admin and the site's address, once each"
    );
    let alert = smtp
        .mails()
        .into_iter()
        .find(|m| m.to == ["<ann@example.com>"])
        .unwrap();
    let text = text_part(&alert.parsed());
    assert!(
        text.contains("Anyone there?") && text.contains("Hello??"),
        "{text}"
    );

    // With Ann online, nobody is alerted.
    let _online = Sub::open(&mut chat, &ann, vec![], true).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = smtp.mails().len();
    let (_, vt2) = s.visitor("Wes").await;
    start_conversation(&mut chat, &vt2, "Order", "hi").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(smtp.mails().len(), before, "an agent is online: no alert");

    // The daily digest: both wait (assigned to Ann when she came online, unread); to every agent of the site who
    // wants alerts (Bob too: it is not about one topic) and the site's address; once a day.
    let core = s.running.as_ref().unwrap().core.clone();
    assert_eq!(core.send_digests("2026-12-02").await.unwrap(), 4);
    assert_eq!(
        core.send_digests("2026-12-02").await.unwrap(),
        0,
        "once a day"
    );
    let digests = smtp.wait(before + 4, Duration::from_secs(10)).await;
    let d = digests
        .iter()
        .find(|m| {
            m.to == ["<team@shop.test>"]
                && m.parsed().subject() == Some("2 conversations waiting - Demo Shop")
        })
        .expect("a digest for the team address");
    let text = text_part(&d.parsed());
    assert!(
        text.contains("Val (Order, unread)") && text.contains("Wes (Order, unread)"),
        "{text}"
    );
    s.stop().await;
}

#[tokio::test]
async fn replies_by_email_charge_the_visitors_event_budget() {
    let smtp = SmtpServer::start().await;
    let mut c = config(&smtp, &[200]);
    c.events_per_second = 1;
    c.events_burst = 3;
    if let Some(e) = c.email.as_mut() {
        e.smtp_listen = Some("127.0.0.1:0".parse().unwrap());
    }
    let s = TestServer::start_with(c).await;
    let inbound = s.running.as_ref().unwrap().smtp_addr.unwrap();
    let (_, vt) = visitor_with_email(&s, "en").await;
    let mut chat = s.chat().await;
    let (conv, _) = start_conversation(&mut chat, &vt, "Order", "hi").await;
    let token = wsmschat_server::core::inbound::reply_token_for(
        s.running.as_ref().unwrap().core.signer(),
        &conv,
        wsmschat_server::util::now_ms(),
    )
    .unwrap();
    let to = format!("reply+{token}@shop.test");
    let mut refused = 0;
    for i in 0..6 {
        if let Err(e) = mail_to(
            inbound,
            &to,
            &format!("<flood{i}@example.com>"),
            "again",
            None,
        )
        .await
        {
            assert!(e.contains("451") || e.contains("too many"), "{e}");
            refused += 1;
        }
    }
    assert!(
        refused >= 2,
        "a flood of mails is refused with 451 ({refused} of 6)"
    );
    s.stop().await;
}

/// The unseen-replies email speaks the visitor's language (their browser's, as the widget
/// reported it): Japanese, and Arabic laid out right to left; a language we lack gets English.
#[tokio::test]
async fn emails_speak_the_visitors_language_arabic_right_to_left() {
    let smtp = SmtpServer::start().await;
    let s = TestServer::start_with(config(&smtp, &[200])).await;
    shop_origin(&s).await;
    let (_, agent) = s.agent("Ann", &["Order"], 50).await;
    let mut chat = s.chat().await;
    let mut expected = Vec::new();
    for (locale, subject, phrase, dir) in [
        (
            "ja-JP",
            "Demo Shopから新しい返信があります",
            "会話を続ける",
            "ltr",
        ),
        ("ar-EG", "رد جديد من Demo Shop", "متابعة المحادثة", "rtl"),
        (
            "sw-KE",
            "New reply from Demo Shop",
            "Continue the conversation",
            "ltr",
        ),
    ] {
        let (_, vt) = visitor_with_email(&s, locale).await;
        let (conv, _) = start_conversation(&mut chat, &vt, "Order", "hello").await;
        reply(&mut chat, &agent, &conv, &format!("reply for {locale}")).await;
        expected.push((locale, subject, phrase, dir));
    }
    let mails = smtp.wait(3, Duration::from_secs(15)).await;
    for (locale, subject, phrase, dir) in expected {
        let mail = mails
            .iter()
            .map(|m| m.parsed())
            .find(|p| text_part(p).contains(&format!("reply for {locale}")))
            .unwrap_or_else(|| panic!("an email for {locale}"));
        assert_eq!(mail.subject(), Some(subject), "{locale}");
        let text = text_part(&mail);
        assert!(text.contains(phrase), "{locale}: {text}");
        let html = mail.body_html(0).unwrap();
        assert!(html.contains(&format!("dir=\"{dir}\"")), "{locale}: {html}");
    }
    s.stop().await;
}
