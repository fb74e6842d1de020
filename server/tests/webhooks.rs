//! Webhooks against a real HTTP receiver started by the test (axum on a loopback port): every
//! event kind arrives, signed (checked here with HMAC-SHA256 written from the specification)
//! and in order per conversation; a failing receiver gets retries with growing gaps, then the
//! delivery fails and can be resent with the same id; a hanging receiver slows neither the chat
//! nor other endpoints; private addresses are refused. Runs on SQLite and, with
//! `WSMSCHAT_TEST_POSTGRES`, on PostgreSQL.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::receiver::{Got, Receiver};
use common::*;
use hmac::{Hmac, Mac};
use wsmschat::v1;
use wsmschat::v1::client_event::Event as Ce;
use wsmschat_server::core::CoreConfig;
use wsmschat_server::core::webhooks::WebhookConfig;

/// Verifies a Standard Webhooks signature the way a receiver would.
fn verify(secret: &str, g: &Got) {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", g.id, g.timestamp).as_bytes());
    mac.update(&g.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    assert_eq!(g.signature, expected, "signature of {}", g.id);
    let ts: i64 = g.timestamp.parse().unwrap();
    let now = wsmschat_server::util::now_ms() / 1000;
    assert!((now - ts).abs() < 60, "timestamp {ts} vs now {now}");
}

fn config(retry: &[u64]) -> CoreConfig {
    CoreConfig {
        webhooks: WebhookConfig {
            allow_private: true,
            retry: retry.iter().map(|ms| Duration::from_millis(*ms)).collect(),
            timeout: Duration::from_secs(2),
            ..Default::default()
        },
        ..test_core_config()
    }
}

async fn site_id(s: &TestServer, admin: &str) -> String {
    s.admin_client()
        .await
        .list_sites(authed(admin, v1::ListSitesRequest {}))
        .await
        .unwrap()
        .into_inner()
        .sites
        .into_iter()
        .find(|x| x.site_key == "demo")
        .unwrap()
        .id
}

async fn create(
    s: &TestServer,
    admin: &str,
    url: &str,
    events: &[v1::WebhookEventType],
) -> Result<(v1::WebhookEndpoint, String), tonic::Status> {
    let site_id = site_id(s, admin).await;
    s.admin_client()
        .await
        .create_webhook(authed(
            admin,
            v1::CreateWebhookRequest {
                site_id,
                url: url.into(),
                events: events.iter().map(|e| *e as i32).collect(),
                description: "test".into(),
            },
        ))
        .await
        .map(|r| {
            let r = r.into_inner();
            (r.webhook.unwrap(), r.secret)
        })
}

async fn deliveries(s: &TestServer, admin: &str, webhook_id: &str) -> Vec<v1::WebhookDelivery> {
    s.admin_client()
        .await
        .list_webhook_deliveries(authed(
            admin,
            v1::ListWebhookDeliveriesRequest {
                webhook_id: webhook_id.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .deliveries
}

fn types(got: &[Got]) -> Vec<String> {
    got.iter()
        .map(|g| g.json["type"].as_str().unwrap_or("").to_owned())
        .collect()
}

use v1::WebhookEventType as T;
const ALL: [T; 8] = [
    T::ConversationCreated,
    T::ConversationAssigned,
    T::ConversationResolved,
    T::ConversationReopened,
    T::MessageCreated,
    T::NoteCreated,
    T::RatingSubmitted,
    T::VisitorIdentified,
];

#[tokio::test]
async fn every_event_kind_reaches_the_endpoint_signed_and_in_order() {
    let s = TestServer::start_with(config(&[100, 200])).await;
    let admin = s.admin_token().await;
    let all = Receiver::start().await;
    let messages_only = Receiver::start().await;
    let (hook, secret) = create(&s, &admin, &all.url, &ALL).await.unwrap();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(hook.events.len(), 8);
    let (_, secret2) = create(&s, &admin, &messages_only.url, &[T::MessageCreated])
        .await
        .unwrap();

    // A visitor who gives an email is identified.
    let visitor = s
        .sessions()
        .await
        .start_visitor_session(v1::StartVisitorSessionRequest {
            site_key: "demo".into(),
            name: "Vera".into(),
            email: "vera@example.com".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let vt = visitor.visitor_token.clone();
    let mut chat = s.chat().await;
    let (conv, _) = start_conversation(&mut chat, &vt, "Order", "Where is my parcel?").await;
    let (_, agent) = s.agent("Ann", &["Order"], 5).await;
    publish(
        &mut chat,
        &agent,
        ev(Ce::Join(v1::JoinConversation {
            conversation_id: conv.clone(),
        })),
    )
    .await
    .unwrap();
    publish(&mut chat, &agent, send(&conv, "", &uuid(), "On its way!"))
        .await
        .unwrap();
    publish(
        &mut chat,
        &agent,
        ev(Ce::SendMessage(v1::SendMessage {
            conversation_id: conv.clone(),
            client_msg_id: uuid(),
            text: "checked with the courier".into(),
            kind: v1::MessageKind::Note as i32,
            ..Default::default()
        })),
    )
    .await
    .unwrap();
    publish(
        &mut chat,
        &agent,
        ev(Ce::Resolve(v1::ResolveConversation {
            conversation_id: conv.clone(),
        })),
    )
    .await
    .unwrap();
    publish(
        &mut chat,
        &vt,
        ev(Ce::Rate(v1::RateConversation {
            conversation_id: conv.clone(),
            score: 5,
            comment: "quick".into(),
        })),
    )
    .await
    .unwrap();
    publish(
        &mut chat,
        &agent,
        ev(Ce::Reopen(v1::ReopenConversation {
            conversation_id: conv.clone(),
        })),
    )
    .await
    .unwrap();

    let got = all.wait("9 events", |g| g.len() >= 9).await;
    for g in &got {
        verify(&secret, g);
        assert_eq!(g.json["data"]["eventId"], g.id.as_str());
        assert!(g.json["timestamp"].as_str().unwrap().ends_with('Z'));
    }
    let ids: std::collections::HashSet<_> = got.iter().map(|g| g.id.clone()).collect();
    assert_eq!(ids.len(), got.len(), "one id per event, no duplicates");
    let visitor_events: Vec<_> = got
        .iter()
        .filter(|g| g.json["type"] == "visitor.identified")
        .collect();
    assert_eq!(visitor_events.len(), 1);
    assert_eq!(
        visitor_events[0].json["data"]["visitor"]["email"],
        "vera@example.com"
    );
    let in_conv: Vec<Got> = got
        .iter()
        .filter(|g| g.json["data"]["conversation"]["id"] == conv.as_str())
        .cloned()
        .collect();
    assert_eq!(
        types(&in_conv),
        [
            "conversation.created",
            "message.created",
            "conversation.assigned",
            "message.created",
            "note.created",
            "conversation.resolved",
            "rating.submitted",
            "conversation.reopened",
        ],
        "every kind, in the conversation's order"
    );
    let first = &in_conv[1].json["data"]["message"];
    assert_eq!(first["text"], "Where is my parcel?");
    assert_eq!(first["authorKind"], "AUTHOR_KIND_VISITOR");
    assert_eq!(
        first["seq"], "1",
        "64-bit integers as strings (canonical JSON)"
    );
    assert_eq!(
        in_conv[2].json["data"]["message"]["system"]["agentName"],
        "Ann"
    );
    assert_eq!(in_conv[6].json["data"]["message"]["system"]["score"], 5);
    assert_eq!(in_conv[0].json["data"]["visitor"]["name"], "Vera");
    assert!(
        in_conv[0].json["data"]["siteId"]
            .as_str()
            .unwrap()
            .starts_with("site_")
    );

    // The endpoint that asked for messages only: visitor and agent text, never the note.
    let got2 = messages_only.wait("2 messages", |g| g.len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got2b = messages_only.got();
    assert_eq!(got2b.len(), 2, "{:?}", types(&got2b));
    for g in &got2 {
        verify(&secret2, g);
        assert_eq!(g.json["type"], "message.created");
    }
    assert_eq!(got2[1].json["data"]["message"]["text"], "On its way!");

    // The log says delivered, with the receiver's answer.
    let log = deliveries(&s, &admin, &hook.id).await;
    assert_eq!(log.len(), 9);
    // Paged two at a time with the (time, id) cursor: every row once, though events of one
    // commit share a millisecond.
    let (mut paged, mut cursor) = (Vec::new(), (0, String::new()));
    loop {
        let page = s
            .admin_client()
            .await
            .list_webhook_deliveries(authed(
                &admin,
                v1::ListWebhookDeliveriesRequest {
                    webhook_id: hook.id.clone(),
                    limit: 2,
                    before_ms: cursor.0,
                    before_event_id: cursor.1.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .deliveries;
        let Some(last) = page.last() else { break };
        cursor = (last.created_at_ms, last.event_id.clone());
        paged.extend(page.into_iter().map(|d| d.event_id));
    }
    assert_eq!(
        paged,
        log.iter().map(|d| d.event_id.clone()).collect::<Vec<_>>()
    );
    assert!(
        log.iter()
            .all(|d| d.state == v1::WebhookDeliveryState::Delivered as i32
                && d.last_status_code == 200
                && d.attempts == 1
                && d.last_response == "ok")
    );
    s.stop().await;
}

#[tokio::test]
async fn a_failing_endpoint_gets_retries_with_growing_gaps_then_fails_and_is_resent() {
    let s = TestServer::start_with(config(&[250, 500])).await;
    let admin = s.admin_token().await;
    let r = Receiver::start().await;
    r.inbox.status.store(500, Ordering::SeqCst);
    let (hook, secret) = create(&s, &admin, &r.url, &[T::MessageCreated])
        .await
        .unwrap();
    let (_, vt) = s.visitor("Vic").await;
    let mut chat = s.chat().await;
    let (conv, _) = start_conversation(&mut chat, &vt, "Order", "first").await;
    // Wait for the first attempt, then write a second message: it must wait for the first.
    r.wait("first attempt", |g| !g.is_empty()).await;
    publish(&mut chat, &vt, send(&conv, "", &uuid(), "second"))
        .await
        .unwrap();
    let got = r.wait("3 attempts", |g| g.len() >= 3).await;
    let first_id = got[0].id.clone();
    assert!(
        got[..3].iter().all(|g| g.id == first_id),
        "the second message waits behind the first (order per conversation): {:?}",
        got.iter().map(|g| &g.id).collect::<Vec<_>>()
    );
    let gap1 = got[1].at - got[0].at;
    let gap2 = got[2].at - got[1].at;
    assert!(gap1 >= Duration::from_millis(230), "{gap1:?}");
    assert!(gap2 >= Duration::from_millis(480), "{gap2:?}");
    assert!(gap2 > gap1, "growing gaps: {gap1:?} then {gap2:?}");
    for g in &got {
        verify(&secret, g);
    }
    // Out of retries: failed, with the answer in the log. Then the second goes (receiver up).
    let deadline = Instant::now() + Duration::from_secs(10);
    let failed = loop {
        let log = deliveries(&s, &admin, &hook.id).await;
        if let Some(d) = log
            .iter()
            .find(|d| d.event_id == first_id && d.state == v1::WebhookDeliveryState::Failed as i32)
        {
            break d.clone();
        }
        assert!(Instant::now() < deadline, "{log:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((failed.attempts, failed.last_status_code), (3, 500));
    assert_eq!(failed.last_response, "boom: the receiver is down");
    r.inbox.status.store(0, Ordering::SeqCst);
    let got = r
        .wait("the second message", |g| {
            g.iter()
                .any(|x| x.json["data"]["message"]["text"] == "second")
        })
        .await;
    let before_resend = got.len();
    // The receiver answered; the log follows when the attempt is recorded.
    let deadline = Instant::now() + Duration::from_secs(10);
    let endpoint = loop {
        let e = s
            .admin_client()
            .await
            .list_webhooks(authed(&admin, v1::ListWebhooksRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .webhooks
            .remove(0);
        if e.last_success_at_ms > 0 || Instant::now() > deadline {
            break e;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(endpoint.failed, 1);
    assert!(endpoint.last_success_at_ms > 0);
    assert_eq!(endpoint.failing_since_ms, 0, "the last delivery succeeded");

    let queued = s
        .admin_client()
        .await
        .resend_webhook_deliveries(authed(
            &admin,
            v1::ResendWebhookDeliveriesRequest {
                webhook_id: hook.id.clone(),
                event_ids: vec![],
                all_failed: true,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .queued;
    assert_eq!(queued, 1);
    // (The second message may have had a 500 of its own before the receiver came back: its
    // retry can arrive too. The resend is the one with the first message's id.)
    let got = r
        .wait("the resend, with the same event id", |g| {
            g[before_resend..].iter().any(|x| x.id == first_id)
        })
        .await;
    let resent = got[before_resend..]
        .iter()
        .find(|x| x.id == first_id)
        .unwrap();
    assert_eq!(resent.json["data"]["message"]["text"], "first");
    verify(&secret, resent);
    s.stop().await;
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

/// Sends `n` messages, each after the previous ack, timing the ack.
async fn publish_timed(s: &TestServer, vt: &str, conv: &str, n: usize) -> Vec<Duration> {
    let mut chat = s.chat().await;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        publish(&mut chat, vt, send(conv, "", &uuid(), &format!("m{i}")))
            .await
            .unwrap();
        out.push(t.elapsed());
    }
    out
}

#[tokio::test]
async fn a_hanging_endpoint_slows_neither_the_chat_nor_other_endpoints() {
    let s = TestServer::start_with(config(&[60_000])).await;
    let admin = s.admin_token().await;
    let (_, vt) = s.visitor("Hal").await;
    let mut chat = s.chat().await;
    let (conv, _) = start_conversation(&mut chat, &vt, "Order", "warm-up").await;
    // Baseline: no endpoint.
    let baseline = p99(publish_timed(&s, &vt, &conv, 200).await);

    let dead = Receiver::start().await;
    dead.inbox.hang.store(true, Ordering::SeqCst);
    let live = Receiver::start().await;
    create(&s, &admin, &dead.url, &[T::MessageCreated])
        .await
        .unwrap();
    create(&s, &admin, &live.url, &[T::MessageCreated])
        .await
        .unwrap();
    let (_, vt2) = s.visitor("Hana").await;
    let (conv2, _) = start_conversation(&mut chat, &vt2, "Order", "go").await;
    let started = Instant::now();
    let with_dead = p99(publish_timed(&s, &vt2, &conv2, 200).await);
    let got = live.wait("201 messages", |g| g.len() >= 201).await;
    let all_live = started.elapsed();
    eprintln!(
        "ack p99 without webhooks {baseline:?}, with a hanging and a live endpoint {with_dead:?}; \
         the live endpoint had all 201 after {all_live:?} ({} at the hanging one)",
        dead.got().len()
    );
    assert_eq!(dead.got().len(), 1, "one in flight, the rest wait (order)");
    assert!(
        with_dead < baseline * 3 + Duration::from_millis(20),
        "a hanging endpoint slowed the chat: p99 {with_dead:?} vs {baseline:?}"
    );
    assert!(all_live < Duration::from_secs(10), "{all_live:?}");
    let texts: Vec<_> = got
        .iter()
        .map(|g| {
            g.json["data"]["message"]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let expected: Vec<String> = std::iter::once("go".to_owned())
        .chain((0..200).map(|i| format!("m{i}")))
        .collect();
    assert_eq!(texts, expected, "in order, each once");
    s.stop().await;
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    let s = TestServer::start().await; // default: private addresses refused
    let admin = s.admin_token().await;
    let r = Receiver::start().await;
    for url in [
        r.url.clone(),
        "http://[::1]:9/hook".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
    ] {
        let e = create(&s, &admin, &url, &[T::MessageCreated])
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{url}");
        assert!(
            e.message().contains("not a public address"),
            "{}",
            e.message()
        );
    }
    for (url, why) in [
        ("ftp://example.com/x", "https://"),
        ("https://u:p@example.com/x", "credentials"),
    ] {
        let e = create(&s, &admin, url, &[T::MessageCreated])
            .await
            .unwrap_err();
        assert!(e.message().contains(why), "{url}: {}", e.message());
    }
    let e = create(&s, &admin, "https://example.com/x", &[])
        .await
        .unwrap_err();
    assert!(e.message().contains("events"), "{}", e.message());

    // A name is checked after DNS, at delivery: "localhost" resolves to loopback.
    let port = r.url.split(':').nth(2).unwrap().split('/').next().unwrap();
    let (hook, _) = create(
        &s,
        &admin,
        &format!("http://localhost:{port}/hook"),
        &[T::MessageCreated],
    )
    .await
    .unwrap();
    let (_, vt) = s.visitor("Mal").await;
    let mut chat = s.chat().await;
    start_conversation(&mut chat, &vt, "Order", "probe").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let d = loop {
        let log = deliveries(&s, &admin, &hook.id).await;
        if let Some(d) = log
            .into_iter()
            .find(|d| d.attempts > 0 && d.last_attempt_at_ms > 0 && !d.last_error.is_empty())
        {
            break d;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        d.last_error.contains("not a public address"),
        "{}",
        d.last_error
    );
    assert_eq!(d.last_status_code, 0);
    assert!(r.got().is_empty(), "nothing reached the private address");
    s.stop().await;
}
