//! Safety (issue #15): blocks by visitor, email and IP range, with reasons and an audit log,
//! and the per-address hourly cap on new conversations, on a real server (SQLite, or
//! PostgreSQL with WSMSCHAT_TEST_POSTGRES). Every refusal carries its machine-readable reason.

mod common;

use std::time::Duration;

use common::*;
use tonic::Code;
use wsmschat::errors::{CHAT_UNAVAILABLE, NEW_CONVERSATION_QUOTA, error_info};
use wsmschat::v1;

/// The wsmschat reason of a refusal.
fn reason(s: &tonic::Status) -> String {
    error_info(s.details())
        .map(|i| i.reason)
        .unwrap_or_default()
}

async fn block(
    s: &TestServer,
    token: &str,
    site_id: &str,
    kind: v1::BlockKind,
    value: &str,
    why: &str,
) -> Result<v1::CreateBlockResponse, tonic::Status> {
    s.chat()
        .await
        .create_block(authed(
            token,
            v1::CreateBlockRequest {
                site_id: site_id.into(),
                kind: kind as i32,
                value: value.into(),
                reason: why.into(),
            },
        ))
        .await
        .map(|r| r.into_inner())
}

async fn session(s: &TestServer, token: &str, email: &str) -> Result<String, tonic::Status> {
    s.sessions()
        .await
        .start_visitor_session(v1::StartVisitorSessionRequest {
            site_key: "demo".into(),
            visitor_token: token.into(),
            email: email.into(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().visitor_token)
}

async fn audit(s: &TestServer, admin: &str, site_id: &str) -> Vec<v1::AuditEntry> {
    s.admin_client()
        .await
        .list_audit_log(authed(
            admin,
            v1::ListAuditLogRequest {
                site_id: site_id.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .entries
}

#[tokio::test]
async fn a_blocked_visitor_loses_every_call_and_stream_at_once_and_others_keep_theirs() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let site = s.demo_site(&admin).await;
    let (_, agent) = s.agent("Dora", &[], 5).await;
    let (a_id, a) = s.visitor("Mallory").await;
    let (_, b) = s.visitor("Bob").await;
    let mut chat = s.chat().await;
    let (conv, _) = start_conversation(&mut chat, &a, "Order", "spam spam").await;
    let mut stream = Sub::open(&mut chat, &a, vec![(conv.clone(), 0)], false)
        .await
        .unwrap();

    // A visitor cannot block anyone.
    let e = block(&s, &b, "", v1::BlockKind::Visitor, &a_id, "no")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // A reason is required.
    let e = block(&s, &agent, "", v1::BlockKind::Visitor, &a_id, "  ")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    let r = block(&s, &agent, "", v1::BlockKind::Visitor, &a_id, "abusive")
        .await
        .unwrap();
    assert_eq!(r.visitors_blocked, 1);
    let b1 = r.block.unwrap();
    assert_eq!(b1.site_id, site.id);
    assert_eq!(b1.created_by_name, "Dora");
    // Blocking the same visitor twice: already blocked.
    let e = block(&s, &agent, "", v1::BlockKind::Visitor, &a_id, "again")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);

    // The open stream ends with the neutral refusal (not a retryable error).
    let end = stream.end_status().await;
    assert_eq!(end.code(), Code::PermissionDenied);
    assert_eq!(reason(&end), CHAT_UNAVAILABLE);
    assert_eq!(end.message(), "the chat is not available");
    // Every call of theirs: refused, with the reason; a new stream too.
    let e = publish(&mut chat, &a, send(&conv, "", &uuid(), "more"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), reason(&e).as_str()),
        (Code::PermissionDenied, CHAT_UNAVAILABLE)
    );
    let e = Sub::open(&mut chat, &a, vec![], false).await.err().unwrap();
    assert_eq!(reason(&e), CHAT_UNAVAILABLE);
    // A reload (session start with the kept token) is refused: no fresh identity either.
    let e = session(&s, &a, "").await.unwrap_err();
    assert_eq!(
        (e.code(), reason(&e).as_str()),
        (Code::PermissionDenied, CHAT_UNAVAILABLE)
    );
    // Others are unaffected.
    start_conversation(&mut chat, &b, "Order", "hello").await;
    // Staff see the block on the visitor, in the site's list and in the audit log.
    let v = chat
        .get_visitor(authed(
            &agent,
            v1::GetVisitorRequest {
                visitor_id: a_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .visitor
        .unwrap();
    assert!(v.blocked);
    assert_eq!(v.last_ip, "127.0.0.1");
    let blocks = chat
        .list_blocks(authed(
            &agent,
            v1::ListBlocksRequest {
                site_id: site.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .blocks;
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].reason, "abusive");

    // Lifted: the same token works again at once.
    chat.delete_block(authed(
        &agent,
        v1::DeleteBlockRequest {
            block_id: b1.id.clone(),
        },
    ))
    .await
    .unwrap();
    publish(&mut chat, &a, send(&conv, "", &uuid(), "sorry"))
        .await
        .unwrap();
    assert_eq!(session(&s, &a, "").await.unwrap(), a);
    let log = audit(&s, &admin, &site.id).await;
    let actions: Vec<(&str, &str, &str)> = log
        .iter()
        .map(|e| (e.action.as_str(), e.actor_name.as_str(), e.detail.as_str()))
        .collect();
    assert_eq!(
        actions,
        [("unblock", "Dora", ""), ("block", "Dora", "abusive")]
    );
    assert_eq!(log[1].target, format!("visitor {a_id}"));
    // Agents may not read the audit log.
    let e = s
        .admin_client()
        .await
        .list_audit_log(authed(
            &agent,
            v1::ListAuditLogRequest {
                site_id: site.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    s.stop().await;
}

#[tokio::test]
async fn email_and_ip_blocks_refuse_sessions_and_hold_off_known_visitors() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let site = s.demo_site(&admin).await;
    let known = session(&s, "", "Spammer@Example.com").await.unwrap();

    let r = block(
        &s,
        &admin,
        &site.id,
        v1::BlockKind::Email,
        " spammer@EXAMPLE.com ",
        "spam",
    )
    .await
    .unwrap();
    assert_eq!(r.block.as_ref().unwrap().value, "spammer@example.com");
    assert_eq!(r.visitors_blocked, 1, "the visitor who gave that email");
    let e = session(&s, &known, "").await.unwrap_err();
    assert_eq!(reason(&e), CHAT_UNAVAILABLE);
    // A new session giving the email (any case) is refused; another email is fine.
    let e = session(&s, "", "SPAMMER@example.com").await.unwrap_err();
    assert_eq!(reason(&e), CHAT_UNAVAILABLE);
    let other = session(&s, "", "customer@example.com").await.unwrap();

    // Too wide, or not an address: refused with a clear error.
    for bad in ["10.0.0.0/7", "::/0", "localhost", "127.0.0.1/33"] {
        let e = block(&s, &admin, &site.id, v1::BlockKind::Ip, bad, "x")
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad}: {e:?}");
    }
    // The test's clients come from 127.0.0.1: block its /8.
    let r = block(
        &s,
        &admin,
        &site.id,
        v1::BlockKind::Ip,
        "127.1.2.3/8",
        "bot net",
    )
    .await
    .unwrap();
    let ip_block = r.block.unwrap();
    assert_eq!(ip_block.value, "127.0.0.0/8");
    assert!(r.visitors_blocked >= 1, "visitors seen from there today");
    let e = session(&s, "", "").await.unwrap_err();
    assert_eq!(
        (e.code(), reason(&e).as_str()),
        (Code::PermissionDenied, CHAT_UNAVAILABLE)
    );
    let e = session(&s, &other, "").await.unwrap_err();
    assert_eq!(reason(&e), CHAT_UNAVAILABLE);
    // Lifted: sessions start again (the email block still holds its visitor).
    s.chat()
        .await
        .delete_block(authed(
            &admin,
            v1::DeleteBlockRequest {
                block_id: ip_block.id,
            },
        ))
        .await
        .unwrap();
    assert_eq!(session(&s, &other, "").await.unwrap(), other);
    let e = session(&s, "", "spammer@example.com").await.unwrap_err();
    assert_eq!(reason(&e), CHAT_UNAVAILABLE);
    let log = audit(&s, &admin, &site.id).await;
    assert_eq!(
        log.iter().map(|e| e.target.as_str()).collect::<Vec<_>>(),
        [
            "ip 127.0.0.0/8",
            "ip 127.0.0.0/8",
            "email spammer@example.com"
        ]
    );
    s.stop().await;
}

#[tokio::test]
async fn new_conversations_per_address_are_capped_per_hour_even_across_a_restart() {
    let mut s = TestServer::start().await;
    let admin = s.admin_token().await;
    let mut site = s.demo_site(&admin).await;
    site.new_conversations_per_ip_hour = 3;
    s.admin_client()
        .await
        .update_site(authed(
            &admin,
            v1::UpdateSiteRequest {
                site: Some(site.clone()),
                rotate_identity_secret: false,
            },
        ))
        .await
        .unwrap();
    let mut chat = s.chat().await;
    let mut first = None;
    for i in 0..3 {
        // Different visitors, one address: the cap is the address's.
        let (_, v) = s.visitor(&format!("V{i}")).await;
        let cmid = uuid();
        let ack = publish(&mut chat, &v, send("", "Order", &cmid, "hi"))
            .await
            .unwrap();
        first.get_or_insert((v, cmid, ack));
    }
    let (_, fourth) = s.visitor("V3").await;
    let e = publish(&mut chat, &fourth, send("", "Order", &uuid(), "hi"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    let info = error_info(e.details()).expect("a reason");
    assert_eq!(info.reason, NEW_CONVERSATION_QUOTA);
    let retry: u64 = info.get("retry_after_s").unwrap().parse().unwrap();
    assert!((3000..=3600).contains(&retry), "{retry}");
    assert!(e.message().contains("try again in"), "{}", e.message());
    // Writing in a conversation one has is not capped; a retried first send finds its own.
    let (v0, cmid0, ack0) = first.unwrap();
    publish(
        &mut chat,
        &v0,
        send(&ack0.conversation_id, "", &uuid(), "more"),
    )
    .await
    .unwrap();
    let again = publish(&mut chat, &v0, send("", "Order", &cmid0, "hi"))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.conversation_id, ack0.conversation_id);
    // The count is in the database: a restart forgets nothing.
    s.restart().await;
    let mut chat = s.chat().await;
    let e = publish(&mut chat, &fourth, send("", "Order", &uuid(), "hi"))
        .await
        .unwrap_err();
    assert_eq!(reason(&e), NEW_CONVERSATION_QUOTA);
    // Raising the site's limit lets the visitor in at once (the site cache refreshes).
    site.new_conversations_per_ip_hour = 10;
    let admin = s.admin_token().await;
    s.admin_client()
        .await
        .update_site(authed(
            &admin,
            v1::UpdateSiteRequest {
                site: Some(site),
                rotate_identity_secret: false,
            },
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    publish(&mut chat, &fourth, send("", "Order", &uuid(), "hi"))
        .await
        .unwrap();
    s.stop().await;
}
