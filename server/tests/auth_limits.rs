//! Identity, access and limits: every refusal is a precise gRPC status and loses nothing.

mod common;

use common::*;
use wsmschat::v1;
use wsmschat::v1::client_event::Event as Ce;
use wsmschat_server::core::CoreConfig;

#[tokio::test]
async fn bad_missing_and_malformed_tokens_are_unauthenticated() {
    let server = TestServer::start().await;
    let mut chat = server.chat().await;
    let req = || v1::ListConversationsRequest::default();
    let no_token = chat.list_conversations(req()).await.unwrap_err();
    assert_eq!(no_token.code(), tonic::Code::Unauthenticated);
    assert!(
        no_token.message().contains("authorization"),
        "{}",
        no_token.message()
    );
    for token in [
        "wv_not-a-real-token",
        "wa_expired-or-fake",
        "wk_fake",
        "garbage",
    ] {
        let e = chat
            .list_conversations(authed(token, req()))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "{token}");
    }
    let mut r = tonic::Request::new(req());
    r.metadata_mut()
        .insert("authorization", "Basic abc".parse().unwrap());
    assert_eq!(
        chat.list_conversations(r).await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );
    // Streams too.
    let e = Sub::open(&mut chat, "wv_fake", vec![], false)
        .await
        .err()
        .unwrap();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    server.stop().await;
}

#[tokio::test]
async fn wrong_password_logout_and_roles() {
    let server = TestServer::start().await;
    let mut sessions = server.sessions().await;
    let e = sessions
        .login(v1::LoginRequest {
            email: ADMIN_EMAIL.into(),
            password: "nope-nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    assert_eq!(e.message(), "wrong email or password");
    let e = sessions
        .login(v1::LoginRequest {
            email: "nobody@example.com".into(),
            password: "whatever1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "wrong email or password",
        "no hint that the email is unknown"
    );

    // A plain agent cannot administer.
    let (agent, token) = server.agent("Plain", &[], 3).await;
    let mut admin = server.admin_client().await;
    let e = admin
        .list_sites(authed(&token, v1::ListSitesRequest {}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    let e = admin
        .create_api_key(authed(
            &token,
            v1::CreateApiKeyRequest {
                name: "x".into(),
                scopes: vec![1],
                site_ids: vec![],
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    // A visitor neither.
    let (_, visitor) = server.visitor("V").await;
    assert_eq!(
        admin
            .list_agents(authed(&visitor, v1::ListAgentsRequest {}))
            .await
            .unwrap_err()
            .code(),
        tonic::Code::PermissionDenied
    );

    // Logout ends the session at once.
    let mut chat = server.chat().await;
    chat.list_conversations(authed(&token, v1::ListConversationsRequest::default()))
        .await
        .unwrap();
    sessions
        .logout(authed(&token, v1::LogoutRequest {}))
        .await
        .unwrap();
    let e = chat
        .list_conversations(authed(&token, v1::ListConversationsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);

    // Deactivating an agent ends their sessions and logins.
    let token2 = server.login(&agent.email, "agent-password").await;
    let admin_token = server.admin_token().await;
    admin
        .update_agent(authed(
            &admin_token,
            v1::UpdateAgentRequest {
                agent: Some(v1::Agent {
                    active: false,
                    ..agent.clone()
                }),
                password: String::new(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(
        chat.list_conversations(authed(&token2, v1::ListConversationsRequest::default()))
            .await
            .unwrap_err()
            .code(),
        tonic::Code::Unauthenticated
    );
    let e = sessions
        .login(v1::LoginRequest {
            email: agent.email.clone(),
            password: "agent-password".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    server.stop().await;
}

#[tokio::test]
async fn visitors_only_reach_their_own_conversations() {
    let server = TestServer::start().await;
    let (_, alice) = server.visitor("Alice").await;
    let (_, mallory) = server.visitor("Mallory").await;
    let mut chat = server.chat().await;
    let (conv, _) = start_conversation(&mut chat, &alice, "Order", "my address is ...").await;
    let e = publish(&mut chat, &mallory, send(&conv, "", &uuid(), "hijack"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    let e = chat
        .get_history(authed(
            &mallory,
            v1::GetHistoryRequest {
                conversation_id: conv.clone(),
                before_seq: 0,
                limit: 10,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    let e = Sub::open(&mut chat, &mallory, vec![(conv.clone(), 0)], false)
        .await
        .err()
        .unwrap();
    assert_eq!(e.code(), tonic::Code::NotFound);
    // Visitors cannot run agent actions.
    let e = publish(
        &mut chat,
        &alice,
        ev(Ce::Resolve(v1::ResolveConversation {
            conversation_id: conv.clone(),
        })),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    let e = publish(
        &mut chat,
        &alice,
        ev(Ce::SetPresence(v1::SetPresence { status: 1 })),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    // Nothing was lost or added by the refusals.
    let h = history(&mut chat, &alice, &conv).await;
    assert_eq!(
        h.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["my address is ..."]
    );
    server.stop().await;
}

#[tokio::test]
async fn message_size_emptiness_ids_and_topics_are_checked() {
    let server = TestServer::start().await;
    let (_, v) = server.visitor("V").await;
    let mut chat = server.chat().await;
    let too_big = "x".repeat(4 * 1024 + 1);
    let e = publish(&mut chat, &v, send("", "Order", &uuid(), &too_big))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().contains("limit is 4096 bytes"),
        "{}",
        e.message()
    );
    // Exactly at the limit (multi-byte text counts bytes) is fine.
    let at_limit = "é".repeat(2048);
    let (conv, _) = start_conversation(&mut chat, &v, "Order", &at_limit).await;
    for (text, id) in [("   ", "a1"), ("", "a2")] {
        let e = publish(&mut chat, &v, send(&conv, "", id, text))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
    }
    let e = publish(&mut chat, &v, send(&conv, "", "", "no id"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let e = publish(&mut chat, &v, send(&conv, "", &"i".repeat(65), "long id"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let e = publish(&mut chat, &v, send("", "Astrology", &uuid(), "hi"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message()
            .contains("Product, Order, Delivery, Payment, Other"),
        "{}",
        e.message()
    );
    // Empty event.
    let e = publish(&mut chat, &v, v1::ClientEvent::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    // A frame over the decode limit is refused before it is parsed.
    let huge = "y".repeat(wsmschat::limits::MAX_DECODE_BYTES + 10);
    let e = publish(&mut chat, &v, send(&conv, "", &uuid(), &huge))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::OutOfRange, "{e:?}");
    // Text is stored exactly as given (escaping is the renderer's job).
    let html = "<img src=x onerror=alert(1)> & \"quotes\"";
    publish(&mut chat, &v, send(&conv, "", "html", html))
        .await
        .unwrap();
    let h = history(&mut chat, &v, &conv).await;
    assert_eq!(h.last().unwrap().text, html);
    assert_eq!(h.len(), 2, "refused sends stored nothing");
    server.stop().await;
}

#[tokio::test]
async fn floods_and_stream_counts_are_limited_per_token() {
    let server = TestServer::start_with(CoreConfig {
        events_per_second: 5,
        events_burst: 10,
        streams_per_token: 2,
        ..test_core_config()
    })
    .await;
    let (_, v) = server.visitor("Flood").await;
    let (_, other) = server.visitor("Calm").await;
    let mut chat = server.chat().await;
    let (conv, _) = start_conversation(&mut chat, &v, "Other", "start").await;
    let mut ok = 1;
    let mut exhausted = 0;
    for i in 0..30 {
        match publish(&mut chat, &v, send(&conv, "", &format!("f{i}"), "spam")).await {
            Ok(_) => ok += 1,
            Err(e) => {
                assert_eq!(e.code(), tonic::Code::ResourceExhausted);
                assert!(e.message().contains("per token"), "{}", e.message());
                exhausted += 1;
            }
        }
    }
    assert!(ok <= 12, "burst of 10 (+ refill) allowed, got {ok}");
    assert!(exhausted >= 18);
    // Another token is not affected.
    start_conversation(&mut chat, &other, "Other", "hello").await;
    // Accepted sends are all stored; refused ones are not. (Reads are charged to the same
    // bucket: let it refill first.)
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let h = history(&mut chat, &v, &conv).await;
    assert_eq!(h.len(), ok);

    let _s1 = Sub::open(&mut chat, &v, vec![], false).await.unwrap();
    let _s2 = Sub::open(&mut chat, &v, vec![], false).await.unwrap();
    let e = Sub::open(&mut chat, &v, vec![], false).await.err().unwrap();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    drop(_s1);
    // The count is released when a stream closes.
    let mut reopened = None;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        if let Ok(s) = Sub::open(&mut chat, &v, vec![], false).await {
            reopened = Some(s);
            break;
        }
    }
    assert!(reopened.is_some());
    server.stop().await;
}

#[tokio::test]
async fn identity_verification_links_devices_and_can_be_required() {
    let server = TestServer::start().await;
    let admin_token = server.admin_token().await;
    let mut admin = server.admin_client().await;
    let site = admin
        .create_site(authed(
            &admin_token,
            v1::CreateSiteRequest {
                site: Some(v1::Site {
                    name: "Members".into(),
                    allowed_origins: vec!["https://shop.example.com".into()],
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .site
        .unwrap();
    assert_eq!(
        site.topics,
        ["Product", "Order", "Delivery", "Payment", "Other"]
    );
    let hash = wsmschat_server::auth::identity_hash(&site.identity_secret, "user-42");
    let start = |user_id: &str, user_hash: &str, token: &str| v1::StartVisitorSessionRequest {
        site_key: site.site_key.clone(),
        user_id: user_id.into(),
        user_hash: user_hash.into(),
        visitor_token: token.into(),
        name: "Member".into(),
        ..Default::default()
    };
    let mut sessions = server.sessions().await;
    let laptop = sessions
        .start_visitor_session(start("user-42", &hash, ""))
        .await
        .unwrap()
        .into_inner();
    assert!(laptop.verified);
    let mut chat = server.chat().await;
    let (conv, _) =
        start_conversation(&mut chat, &laptop.visitor_token, "Order", "from my laptop").await;
    // A new device with the same verified identity is the same visitor and sees the conversation.
    let phone = sessions
        .start_visitor_session(start("user-42", &hash, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(phone.visitor_id, laptop.visitor_id);
    assert_ne!(phone.visitor_token, laptop.visitor_token);
    assert_eq!(
        phone
            .open_conversations
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        [conv.as_str()]
    );
    // A wrong hash is refused, and an unverified user id gets a fresh anonymous visitor.
    let e = sessions
        .start_visitor_session(start("user-42", "deadbeef", ""))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    let anon = sessions
        .start_visitor_session(start("user-42", "", ""))
        .await
        .unwrap()
        .into_inner();
    assert!(!anon.verified);
    assert_ne!(anon.visitor_id, laptop.visitor_id);
    // Resuming with a token keeps the visitor and the token.
    let again = sessions
        .start_visitor_session(start("", "", &anon.visitor_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (again.visitor_id.clone(), again.visitor_token.clone()),
        (anon.visitor_id.clone(), anon.visitor_token.clone())
    );

    // Require verified identities.
    admin
        .update_site(authed(
            &admin_token,
            v1::UpdateSiteRequest {
                site: Some(v1::Site {
                    identity_required: true,
                    ..site.clone()
                }),
                rotate_identity_secret: false,
            },
        ))
        .await
        .unwrap();
    let e = sessions
        .start_visitor_session(start("", "", ""))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(e.message().contains("requires a verified identity"));
    sessions
        .start_visitor_session(start("user-42", &hash, ""))
        .await
        .unwrap();
    // Unknown site key.
    let e = sessions
        .start_visitor_session(v1::StartVisitorSessionRequest {
            site_key: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    server.stop().await;
}

#[tokio::test]
async fn visitor_calls_from_a_foreign_origin_are_refused() {
    let server = TestServer::start().await;
    let mut sessions = server.sessions().await;
    let mut req = tonic::Request::new(v1::StartVisitorSessionRequest {
        site_key: "demo".into(),
        ..Default::default()
    });
    req.metadata_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    let e = sessions.start_visitor_session(req).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    let mut req = tonic::Request::new(v1::StartVisitorSessionRequest {
        site_key: "demo".into(),
        ..Default::default()
    });
    req.metadata_mut()
        .insert("origin", "http://localhost:5173".parse().unwrap());
    let ok = sessions
        .start_visitor_session(req)
        .await
        .unwrap()
        .into_inner();
    // The token cannot be used from another origin either.
    let mut chat = server.chat().await;
    let mut req = authed(&ok.visitor_token, v1::ListConversationsRequest::default());
    req.metadata_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    assert_eq!(
        chat.list_conversations(req).await.unwrap_err().code(),
        tonic::Code::PermissionDenied
    );
    server.stop().await;
}

#[tokio::test]
async fn api_keys_are_scoped_and_revocable() {
    let server = TestServer::start().await;
    let admin_token = server.admin_token().await;
    let mut admin = server.admin_client().await;
    let key = |scopes: Vec<i32>| {
        let mut admin = admin.clone();
        let admin_token = admin_token.clone();
        async move {
            admin
                .create_api_key(authed(
                    &admin_token,
                    v1::CreateApiKeyRequest {
                        name: "k".into(),
                        scopes,
                        site_ids: vec![],
                    },
                ))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let admin_key = key(vec![v1::ApiKeyScope::Admin as i32]).await;
    let chat_key = key(vec![v1::ApiKeyScope::Chat as i32]).await;
    let mut chat = server.chat().await;
    // An admin-only key cannot chat; a chat key cannot administer.
    let e = chat
        .list_conversations(authed(
            &admin_key.secret,
            v1::ListConversationsRequest::default(),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    admin
        .list_sites(authed(&admin_key.secret, v1::ListSitesRequest {}))
        .await
        .unwrap();
    assert_eq!(
        admin
            .list_sites(authed(&chat_key.secret, v1::ListSitesRequest {}))
            .await
            .unwrap_err()
            .code(),
        tonic::Code::PermissionDenied
    );
    chat.list_conversations(authed(
        &chat_key.secret,
        v1::ListConversationsRequest::default(),
    ))
    .await
    .unwrap();
    // Listing never shows secrets; revoking works at once.
    let keys = admin
        .list_api_keys(authed(&admin_token, v1::ListApiKeysRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(keys.api_keys.len(), 2);
    admin
        .revoke_api_key(authed(
            &admin_token,
            v1::RevokeApiKeyRequest {
                id: chat_key.api_key.unwrap().id,
            },
        ))
        .await
        .unwrap();
    let e = chat
        .list_conversations(authed(
            &chat_key.secret,
            v1::ListConversationsRequest::default(),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    server.stop().await;
}

#[tokio::test]
async fn one_address_is_limited_across_tokens() {
    let server = TestServer::start_with(CoreConfig {
        ip_events_per_second: 2,
        ip_events_burst: 6,
        ..test_core_config()
    })
    .await;
    let mut chat = server.chat().await;
    let mut refused = None;
    let mut sessions = server.sessions().await;
    // Fresh visitors (new tokens) from the same address: the address budget runs out.
    for i in 0..10 {
        let start = sessions
            .start_visitor_session(v1::StartVisitorSessionRequest {
                site_key: "demo".into(),
                name: format!("Bot{i}"),
                ..Default::default()
            })
            .await;
        let result = match start {
            Ok(r) => publish(
                &mut chat,
                &r.into_inner().visitor_token,
                send("", "Other", &uuid(), "hi"),
            )
            .await
            .map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            refused = Some(e);
            break;
        }
    }
    let e = refused.expect("the per-address limit applies");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    assert!(
        e.message().contains("per address") || e.message().contains("too many requests"),
        "{}",
        e.message()
    );
    server.stop().await;
}

#[tokio::test]
async fn metrics_count_messages_streams_and_batches() {
    let server = TestServer::start().await;
    let (_, v) = server.visitor("Metric").await;
    let mut chat = server.chat().await;
    let (conv, _) = start_conversation(&mut chat, &v, "Other", "one").await;
    publish(&mut chat, &v, send(&conv, "", &uuid(), "two"))
        .await
        .unwrap();
    let _sub = Sub::open(&mut chat, &v, vec![], false).await.unwrap();
    let addr = server.running.as_ref().unwrap().addr;
    let body = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    assert!(body.contains("wsmschat_messages_in_total 2"), "{body}");
    assert!(body.contains("wsmschat_streams 1"), "{body}");
    assert!(body.contains("wsmschat_commit_batch_size_count"), "{body}");
    assert!(
        body.contains("wsmschat_publish_latency_seconds_bucket"),
        "{body}"
    );
    server.stop().await;
}
