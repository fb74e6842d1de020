//! The security review's findings (`docs/security.md`), each as an attack against a real server
//! on a loopback port: revocation reaching open streams (F2), password resets (F13), login
//! throttling (F3), rate-limited reads and bounded search (F4, F15), connection and stream caps
//! (F5), paged replay and cursor caps (F6), NUL text (F11), names (F19), rating once (F16),
//! the site cache (F14), trusted proxies (F8), /metrics and /readyz (F18).

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::StreamExt;
use tonic::Code;
use wsmschat::v1;
use wsmschat::v1::client_event::Event as Ce;
use wsmschat::v1::server_event::Event as Se;
use wsmschat_server::core::CoreConfig;
use wsmschat_server::core::access::AdminGrant;
use wsmschat_server::server::NetConfig;

/// How long a revoked stream may live on.
const REVOKED_WITHIN: Duration = Duration::from_secs(3);

/// Reads a Subscribe stream until it ends; returns the status it ended with (None: clean end).
async fn ends_with(sub: &mut Sub, within: Duration) -> Option<tonic::Status> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, sub.stream.next()).await {
            Err(_) => panic!("the stream was still open after {within:?}"),
            Ok(None) => return None,
            Ok(Some(Err(status))) => return Some(status),
            Ok(Some(Ok(_))) => continue,
        }
    }
}

async fn admin_update_agent(s: &TestServer, agent: v1::Agent, password: &str) {
    let admin = s.admin_token().await;
    s.admin_client()
        .await
        .update_agent(authed(
            &admin,
            v1::UpdateAgentRequest {
                agent: Some(agent),
                password: password.into(),
            },
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn deactivating_an_agent_ends_its_streams_and_refuses_its_chat_events() {
    let s = TestServer::start().await;
    let (agent, token) = s.agent("Temp", &[], 5).await;
    let mut chat = s.chat().await;
    let mut inbox = Sub::open(&mut chat, &token, vec![], true).await.unwrap();
    let mut bidi = ChatStream::open(
        &mut chat,
        &token,
        v1::Subscription {
            inbox: true,
            ..Default::default()
        },
    )
    .await;
    let (_, visitor) = s.visitor("Vic").await;
    let (conv_id, _) = start_conversation(&mut s.chat().await, &visitor, "Order", "hello").await;

    let mut off = agent.clone();
    off.active = false;
    admin_update_agent(&s, off, "").await;

    let status = ends_with(&mut inbox, REVOKED_WITHIN)
        .await
        .expect("ended with a status");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    // An event sent on the open Chat stream after the deactivation is refused, not stored.
    bidi.send(send(&conv_id, "", &uuid(), "sent after deactivation"));
    let refused = loop {
        match tokio::time::timeout(WAIT, bidi.stream.next())
            .await
            .unwrap()
        {
            Some(Ok(r)) => match r.event.unwrap().event.unwrap() {
                Se::Error(e) => break Some(e.code),
                Se::Ack(a) => panic!("a deactivated agent's message was stored: {a:?}"),
                _ => continue,
            },
            Some(Err(status)) => {
                assert_eq!(status.code(), Code::Unauthenticated);
                break None;
            }
            None => break None,
        }
    };
    if let Some(code) = refused {
        assert_eq!(code, Code::Unauthenticated as i32);
    }
    let admin = s.admin_token().await;
    let texts: Vec<String> = history(&mut s.chat().await, &admin, &conv_id)
        .await
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert!(
        !texts.iter().any(|t| t == "sent after deactivation"),
        "{texts:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn logout_revoked_keys_and_password_resets_end_streams() {
    let s = TestServer::start().await;
    let mut chat = s.chat().await;

    // Logout.
    let (_, token) = s.agent("Lou", &[], 5).await;
    let mut sub = Sub::open(&mut chat, &token, vec![], true).await.unwrap();
    s.sessions()
        .await
        .logout(authed(&token, v1::LogoutRequest {}))
        .await
        .unwrap();
    let st = ends_with(&mut sub, REVOKED_WITHIN).await.unwrap();
    assert_eq!(st.code(), Code::Unauthenticated);

    // A revoked API key.
    let admin = s.admin_token().await;
    let key = s
        .admin_client()
        .await
        .create_api_key(authed(
            &admin,
            v1::CreateApiKeyRequest {
                name: "bot".into(),
                scopes: vec![v1::ApiKeyScope::Chat as i32],
                site_ids: vec![],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let mut sub = Sub::open(&mut chat, &key.secret, vec![], true)
        .await
        .unwrap();
    s.admin_client()
        .await
        .revoke_api_key(authed(
            &admin,
            v1::RevokeApiKeyRequest {
                id: key.api_key.unwrap().id,
            },
        ))
        .await
        .unwrap();
    let st = ends_with(&mut sub, REVOKED_WITHIN).await.unwrap();
    assert_eq!(st.code(), Code::Unauthenticated);

    // A password reset by an admin ends the old sessions (F13) and their streams.
    let (agent, token) = s.agent("Rex", &[], 5).await;
    let mut sub = Sub::open(&mut chat, &token, vec![], true).await.unwrap();
    admin_update_agent(&s, agent, "a-new-password-9").await;
    let st = ends_with(&mut sub, REVOKED_WITHIN).await.unwrap();
    assert_eq!(st.code(), Code::Unauthenticated);
    let err = chat
        .list_conversations(authed(&token, v1::ListConversationsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    // The new password works.
    s.login("rex@example.com", "a-new-password-9").await;

    // A visitor's logout ends that visitor's streams, not another visitor's.
    let (_, v1_token) = s.visitor("One").await;
    let (_, v2_token) = s.visitor("Two").await;
    let mut a = Sub::open(&mut chat, &v1_token, vec![], false)
        .await
        .unwrap();
    let mut b = Sub::open(&mut chat, &v2_token, vec![], false)
        .await
        .unwrap();
    s.sessions()
        .await
        .logout(authed(&v1_token, v1::LogoutRequest {}))
        .await
        .unwrap();
    let st = ends_with(&mut a, REVOKED_WITHIN).await.unwrap();
    assert_eq!(st.code(), Code::Unauthenticated);
    b.no_message_within(Duration::from_millis(500)).await;
    s.stop().await;
}

#[tokio::test]
async fn an_expiring_session_ends_its_stream() {
    let s = TestServer::start_with(CoreConfig {
        agent_session_ttl: Duration::from_secs(2),
        ..test_core_config()
    })
    .await;
    let token = s.admin_token().await;
    let mut chat = s.chat().await;
    let mut sub = Sub::open(&mut chat, &token, vec![], true).await.unwrap();
    let opened = Instant::now();
    let st = ends_with(&mut sub, Duration::from_secs(6)).await.unwrap();
    assert_eq!(st.code(), Code::Unauthenticated);
    assert!(opened.elapsed() >= Duration::from_millis(1500));
    s.stop().await;
}

#[tokio::test]
async fn failed_logins_lock_the_account_with_growing_delays() {
    let s = TestServer::start().await;
    s.agent("Other", &[], 1).await;
    let mut sessions = s.sessions().await;
    let login = |email: &str, password: &str| v1::LoginRequest {
        email: email.into(),
        password: password.into(),
    };
    let mut codes = Vec::new();
    for _ in 0..8 {
        let e = sessions
            .login(login(ADMIN_EMAIL, "guess"))
            .await
            .unwrap_err();
        codes.push(e.code());
    }
    assert!(
        codes[..5].iter().all(|c| *c == Code::Unauthenticated),
        "{codes:?}"
    );
    assert!(codes[5..].contains(&Code::ResourceExhausted), "{codes:?}");
    // While locked, even the right password is refused (no hashing runs for locked accounts).
    let locked = sessions
        .login(login(ADMIN_EMAIL, ADMIN_PASSWORD))
        .await
        .unwrap_err();
    assert_eq!(locked.code(), Code::ResourceExhausted);
    assert!(locked.message().contains("try again"), "{locked:?}");
    // Another account is not locked by this one's failures.
    s.login("other@example.com", "agent-password").await;
    s.stop().await;
}

#[tokio::test]
async fn reads_are_rate_limited_and_search_is_bounded() {
    let s = TestServer::start_with(CoreConfig {
        events_per_second: 5,
        events_burst: 10,
        ..test_core_config()
    })
    .await;
    let (_, visitor) = s.visitor("Reader").await;
    let (conv_id, _) = start_conversation(&mut s.chat().await, &visitor, "Order", "hello").await;
    let mut chat = s.chat().await;
    let mut refused = 0;
    for _ in 0..40 {
        let r = chat
            .get_history(authed(
                &visitor,
                v1::GetHistoryRequest {
                    conversation_id: conv_id.clone(),
                    limit: 500,
                    ..Default::default()
                },
            ))
            .await;
        if let Err(e) = r {
            assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
            refused += 1;
        }
    }
    assert!(
        refused >= 25,
        "only {refused} of 40 history reads were refused"
    );

    // Search: too long a query is INVALID_ARGUMENT (never INTERNAL), also at 60 KB.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for len in [257, 60_000] {
        let e = chat
            .list_conversations(authed(
                &visitor,
                v1::ListConversationsRequest {
                    query: "z".repeat(len),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{len}: {e:?}");
    }
    s.stop().await;
}

#[tokio::test]
async fn made_up_tokens_are_charged_to_the_address() {
    let s = TestServer::start_with(CoreConfig {
        ip_events_per_second: 20,
        ip_events_burst: 20,
        ..test_core_config()
    })
    .await;
    let mut chat = s.chat().await;
    let mut codes = std::collections::HashMap::new();
    for i in 0..60 {
        let token = format!("wv_made-up-{i}");
        let e = chat
            .list_conversations(authed(&token, v1::ListConversationsRequest::default()))
            .await
            .unwrap_err();
        *codes.entry(e.code()).or_insert(0) += 1;
    }
    assert!(
        codes.get(&Code::ResourceExhausted).copied().unwrap_or(0) >= 30,
        "{codes:?}"
    );
    s.stop().await;
}

/// Opens a TCP connection that says nothing; true when the server closes it within `within`.
async fn closed_within(addr: std::net::SocketAddr, within: Duration) -> bool {
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 1];
    matches!(
        tokio::time::timeout(within, sock.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// One HTTP/1.1 request (`head`: the request line and headers, without the final blank
/// line) on a fresh connection; the whole response, or None if it did not come within 5 s.
async fn http(addr: std::net::SocketAddr, head: &str) -> Option<String> {
    let mut sock = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!("{head}host: x\r\nconnection: close\r\n\r\n");
    sock.write_all(req.as_bytes()).await.ok()?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), sock.read_to_string(&mut out))
        .await
        .ok()?
        .ok()?;
    Some(out)
}

async fn healthz(addr: std::net::SocketAddr) -> Option<String> {
    http(addr, "GET /healthz HTTP/1.1\r\n").await
}

#[tokio::test]
async fn silent_connections_are_closed_and_capped_with_a_health_reserve() {
    let s = TestServer::start_full(
        test_core_config(),
        NetConfig {
            max_connections: 20,
            max_connections_per_ip: 0,
            first_byte_timeout: Duration::from_secs(1),
            ..Default::default()
        },
        Default::default(),
    )
    .await;
    let addr = s.running.as_ref().unwrap().addr;
    // A socket that sends nothing is closed after the first-byte timeout.
    assert!(closed_within(addr, Duration::from_secs(4)).await);

    // Fill the cap with silent sockets: a health check still gets through (the reserve).
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let answer = healthz(addr)
        .await
        .expect("health check answered at the cap");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Past the cap and the reserve, new connections are closed at once.
    for _ in 0..40 {
        held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    assert!(closed_within(addr, Duration::from_millis(500)).await);
    // Once the silent ones time out, the server serves normally again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(held);
    let answer = healthz(addr).await.expect("answered after the flood");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    s.stop().await;
}

#[tokio::test]
async fn connections_per_address_are_capped() {
    let s = TestServer::start_full(
        test_core_config(),
        NetConfig {
            max_connections_per_ip: 3,
            first_byte_timeout: Duration::from_secs(30),
            ..Default::default()
        },
        Default::default(),
    )
    .await;
    let addr = s.running.as_ref().unwrap().addr;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(closed_within(addr, Duration::from_millis(500)).await);
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(healthz(addr).await.unwrap().starts_with("HTTP/1.1 200"));
    s.stop().await;
}

#[tokio::test]
async fn a_chat_call_without_a_first_request_counts_and_times_out() {
    let s = TestServer::start_with(CoreConfig {
        streams_per_token: 2,
        first_request_timeout: Duration::from_secs(1),
        ..test_core_config()
    })
    .await;
    let (_, visitor) = s.visitor("Mute").await;
    // Two Chat calls that never send their first request.
    let mut mutes = Vec::new();
    for _ in 0..2 {
        let mut chat = s.chat().await;
        let token = visitor.clone();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<v1::ChatRequest>();
        mutes.push(tokio::spawn(async move {
            let r = chat
                .chat(authed(
                    &token,
                    tokio_stream::wrappers::UnboundedReceiverStream::new(rx),
                ))
                .await;
            drop(tx);
            r.map(|_| ()).map_err(|e| e.code())
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut chat = s.chat().await;
    let e = Sub::open(&mut chat, &visitor, vec![], false)
        .await
        .err()
        .expect("the mute calls hold the token's two stream slots");
    assert_eq!(e.code(), Code::ResourceExhausted);
    for m in mutes {
        assert_eq!(m.await.unwrap(), Err(Code::DeadlineExceeded));
    }
    // Their slots are free again.
    Sub::open(&mut chat, &visitor, vec![], false).await.unwrap();
    s.stop().await;
}

#[tokio::test]
async fn streams_per_address_are_capped_across_tokens() {
    let s = TestServer::start_with(CoreConfig {
        streams_per_ip: 3,
        ..test_core_config()
    })
    .await;
    let mut chat = s.chat().await;
    let mut subs = Vec::new();
    for i in 0..3 {
        let (_, t) = s.visitor(&format!("V{i}")).await;
        subs.push(Sub::open(&mut chat, &t, vec![], false).await.unwrap());
    }
    let (_, t) = s.visitor("V3").await;
    let e = Sub::open(&mut chat, &t, vec![], false).await.err().unwrap();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(e.message().contains("address"), "{e:?}");
    s.stop().await;
}

#[tokio::test]
async fn a_long_replay_is_paged_in_order_and_cursors_are_capped() {
    let s = TestServer::start().await;
    let (_, visitor) = s.visitor("Long").await;
    let (conv_id, _) = start_conversation(&mut s.chat().await, &visitor, "Order", "m0").await;
    let mut chat = s.chat().await;
    for i in 1..350 {
        publish(
            &mut chat,
            &visitor,
            send(&conv_id, "", &uuid(), &format!("m{i}")),
        )
        .await
        .unwrap();
    }
    let admin = s.admin_token().await;
    let mut sub = Sub::open(&mut chat, &admin, vec![(conv_id.clone(), 0)], false)
        .await
        .unwrap();
    let mut seqs = Vec::new();
    while seqs.len() < 350 {
        let m = sub.next_message().await;
        if m.kind == v1::MessageKind::Text as i32 {
            seqs.push(m.seq);
        }
    }
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in order, no duplicate"
    );

    let too_many: Vec<(String, u64)> = (0..201).map(|i| (format!("c_{i}"), 0)).collect();
    let e = Sub::open(&mut chat, &admin, too_many, false)
        .await
        .err()
        .unwrap();
    assert_eq!(e.code(), Code::InvalidArgument);
    s.stop().await;
}

#[tokio::test]
async fn nul_characters_are_refused_the_same_on_every_engine() {
    let s = TestServer::start().await;
    let (_, visitor) = s.visitor("Nul").await;
    let mut chat = s.chat().await;
    let e = publish(
        &mut chat,
        &visitor,
        ev(Ce::SendMessage(v1::SendMessage {
            client_msg_id: uuid(),
            topic: "Order".into(),
            text: "a\0b".into(),
            ..Default::default()
        })),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    // Profile fields drop it; a search with it is refused.
    let r = s
        .sessions()
        .await
        .start_visitor_session(v1::StartVisitorSessionRequest {
            site_key: "demo".into(),
            name: "A\0na".into(),
            email: "a\0@example.com".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let admin = s.admin_token().await;
    let v = chat
        .get_visitor(authed(
            &admin,
            v1::GetVisitorRequest {
                visitor_id: r.visitor_id,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .visitor
        .unwrap();
    assert!(!v.name.contains('\0') && !v.email.contains('\0'), "{v:?}");
    let e = chat
        .list_conversations(authed(
            &admin,
            v1::ListConversationsRequest {
                query: "a\0".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    // The desk surfaces too: a NUL is refused before it reaches PostgreSQL.
    let e = chat
        .list_conversations(authed(
            &admin,
            v1::ListConversationsRequest {
                label_id: "lb_\0".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = chat
        .list_blocks(authed(
            &admin,
            v1::ListBlocksRequest {
                site_id: "s\0".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = chat
        .create_block(authed(
            &admin,
            v1::CreateBlockRequest {
                site_id: "s\0".into(),
                kind: v1::BlockKind::Email as i32,
                value: "a@example.com".into(),
                reason: "x".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = chat
        .list_labels(authed(
            &admin,
            v1::ListLabelsRequest {
                site_id: "s\0".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    s.stop().await;
}

#[tokio::test]
async fn display_names_are_normalised() {
    let s = TestServer::start().await;
    let r = s
        .sessions()
        .await
        .start_visitor_session(v1::StartVisitorSessionRequest {
            site_key: "demo".into(),
            name: "Support Team (official)\n\u{202e}evil".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let admin = s.admin_token().await;
    let v = s
        .chat()
        .await
        .get_visitor(authed(
            &admin,
            v1::GetVisitorRequest {
                visitor_id: r.visitor_id,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .visitor
        .unwrap();
    assert_eq!(v.name, "Support Team (official) evil");
    s.stop().await;
}

#[tokio::test]
async fn a_conversation_is_rated_once() {
    let s = TestServer::start().await;
    let (_, visitor) = s.visitor("Rater").await;
    let (conv_id, _) = start_conversation(&mut s.chat().await, &visitor, "Order", "hello").await;
    let admin = s.admin_token().await;
    let mut chat = s.chat().await;
    publish(
        &mut chat,
        &admin,
        ev(Ce::Resolve(v1::ResolveConversation {
            conversation_id: conv_id.clone(),
        })),
    )
    .await
    .unwrap();
    let rate = |score| {
        ev(Ce::Rate(v1::RateConversation {
            conversation_id: conv_id.clone(),
            score,
            comment: String::new(),
        }))
    };
    publish(&mut chat, &visitor, rate(5)).await.unwrap();
    for score in [1, 2, 1] {
        let e = publish(&mut chat, &visitor, rate(score)).await.unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition);
    }
    let c = conversation(&mut s.chat().await, &admin, &conv_id).await;
    assert_eq!(c.rating, 5);
    let rated = history(&mut s.chat().await, &admin, &conv_id)
        .await
        .into_iter()
        .filter(|m| {
            m.system
                .as_ref()
                .is_some_and(|e| e.kind == v1::SystemEventKind::Rated as i32)
        })
        .count();
    assert_eq!(rated, 1);
    s.stop().await;
}

/// A CORS preflight from `origin`; the Access-Control-Allow-Origin it got, if any.
async fn preflight(addr: std::net::SocketAddr, origin: &str) -> Option<String> {
    let head = format!(
        "OPTIONS /wsmschat.v1.ChatService/Publish HTTP/1.1\r\norigin: {origin}\r\n\
         access-control-request-method: POST\r\naccess-control-request-headers: content-type\r\n"
    );
    http(addr, &head)
        .await
        .unwrap()
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("access-control-allow-origin: ")
                .map(str::to_owned)
        })
        .map(|v| v.trim().to_owned())
}

#[tokio::test]
async fn a_site_created_behind_the_servers_back_passes_cors_soon() {
    let s = TestServer::start_with(CoreConfig {
        site_refresh: Duration::from_millis(300),
        ..test_core_config()
    })
    .await;
    let running = s.running.as_ref().unwrap();
    let addr = running.addr;
    let origin = "https://new-shop.example.net";
    assert_eq!(preflight(addr, origin).await, None);
    // As `wsmschat site create` does: a second core on the same database (the CLI's own), so
    // this server's cache hears nothing of it.
    let cli = wsmschat_server::build_core(&s.config).await.unwrap();
    cli.create_site(
        AdminGrant::operator(),
        v1::Site {
            name: "CLI shop".into(),
            allowed_origins: vec![origin.into()],
            topics: vec!["Order".into()],
            ..Default::default()
        },
        Some("pk_cli".into()),
    )
    .await
    .unwrap();
    cli.close();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        if preflight(addr, origin).await.as_deref() == Some(origin) {
            break;
        }
        assert!(Instant::now() < deadline, "CORS never allowed the new site");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.stop().await;
}

#[tokio::test]
async fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
    async fn refused_for_second_client(s: &TestServer) -> usize {
        let mut sessions = s.sessions().await;
        let start = |xff: &str| {
            let mut r = tonic::Request::new(v1::StartVisitorSessionRequest {
                site_key: "demo".into(),
                ..Default::default()
            });
            r.metadata_mut()
                .insert("x-forwarded-for", xff.parse().unwrap());
            r
        };
        // The first client uses its whole bucket.
        for _ in 0..30 {
            let _ = sessions.start_visitor_session(start("203.0.113.1")).await;
        }
        let mut refused = 0;
        for _ in 0..5 {
            if sessions
                .start_visitor_session(start("198.51.100.7, 127.0.0.1"))
                .await
                .is_err()
            {
                refused += 1;
            }
        }
        refused
    }
    let limits = CoreConfig {
        ip_events_per_second: 5,
        ip_events_burst: 10,
        ..test_core_config()
    };
    // Without a trusted proxy the header is ignored: everyone on loopback shares a bucket.
    let plain = TestServer::start_with(limits.clone()).await;
    assert_eq!(refused_for_second_client(&plain).await, 5);
    plain.stop().await;
    // Behind a trusted proxy each forwarded client has its own bucket.
    let proxied = TestServer::start_full(
        limits,
        NetConfig {
            trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
            ..Default::default()
        },
        Default::default(),
    )
    .await;
    assert_eq!(refused_for_second_client(&proxied).await, 0);
    proxied.stop().await;
}

/// One HTTP/1.1 GET; the whole response as text.
async fn get(addr: std::net::SocketAddr, path: &str, extra: &str) -> String {
    http(addr, &format!("GET {path} HTTP/1.1\r\n{extra}"))
        .await
        .unwrap()
}

#[tokio::test]
async fn pages_carry_security_headers_and_metrics_can_need_a_token() {
    let console = tempfile::tempdir().unwrap();
    std::fs::write(
        console.path().join("index.html"),
        "<!doctype html><p>console",
    )
    .unwrap();
    let s = TestServer::start_full(
        test_core_config(),
        NetConfig {
            metrics_token: Some("m-secret".into()),
            ..Default::default()
        },
        wsmschat_server::http::StaticDirs {
            console: Some(wsmschat_server::http::Source::Dir(
                console.path().to_owned(),
            )),
            ..Default::default()
        },
    )
    .await;
    let addr = s.running.as_ref().unwrap().addr;
    let page = get(addr, "/console/", "").await.to_ascii_lowercase();
    assert!(page.starts_with("http/1.1 200"), "{page}");
    for header in [
        "content-security-policy: default-src 'none'; script-src 'self' 'wasm-unsafe-eval'",
        "frame-ancestors 'none'",
        "x-frame-options: deny",
        "x-content-type-options: nosniff",
        "referrer-policy: no-referrer",
        "cross-origin-opener-policy: same-origin",
    ] {
        assert!(page.contains(header), "missing {header:?} in {page}");
    }
    let index = get(addr, "/", "").await.to_ascii_lowercase();
    assert!(index.contains("frame-ancestors 'none'"), "{index}");
    assert!(get(addr, "/metrics", "").await.starts_with("HTTP/1.1 401"));
    let m = get(addr, "/metrics", "authorization: Bearer m-secret\r\n").await;
    assert!(
        m.starts_with("HTTP/1.1 200") && m.contains("wsmschat_streams"),
        "{m}"
    );
    let ready = get(addr, "/readyz", "").await;
    assert!(ready.ends_with("\r\n\r\nready\n"), "{ready}");
    s.stop().await;
}

#[tokio::test]
async fn visitor_and_conversation_floods_are_capped_and_idle_visitors_cleaned_up() {
    let s = TestServer::start_with(CoreConfig {
        new_visitors_per_minute: 10,
        open_conversations_per_visitor: 2,
        ..test_core_config()
    })
    .await;
    let mut sessions = s.sessions().await;
    let fresh = || v1::StartVisitorSessionRequest {
        site_key: "demo".into(),
        ..Default::default()
    };
    let mut tokens = Vec::new();
    let mut refused = 0;
    for _ in 0..15 {
        match sessions.start_visitor_session(fresh()).await {
            Ok(r) => tokens.push(r.into_inner().visitor_token),
            Err(e) => {
                assert_eq!(e.code(), Code::ResourceExhausted);
                refused += 1;
            }
        }
    }
    assert_eq!((tokens.len(), refused), (10, 5));
    // A returning visitor (its token) is not a new one.
    let again = sessions
        .start_visitor_session(v1::StartVisitorSessionRequest {
            visitor_token: tokens[0].clone(),
            ..fresh()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.visitor_token, tokens[0]);

    // Open conversations per visitor; a retried first send still finds its conversation.
    let mut chat = s.chat().await;
    let v = &tokens[1];
    publish(&mut chat, v, send("", "Order", &uuid(), "one"))
        .await
        .unwrap();
    let second = uuid();
    let first_ack = publish(&mut chat, v, send("", "Order", &second, "two"))
        .await
        .unwrap();
    let e = publish(&mut chat, v, send("", "Order", &uuid(), "three"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    let retry = publish(&mut chat, v, send("", "Order", &second, "two"))
        .await
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.conversation_id, first_ack.conversation_id);

    // Cleanup: anonymous visitors who never chatted go (their tokens stop working); the one
    // with conversations stays.
    let core = &s.running.as_ref().unwrap().core;
    let purged = core.purge_idle_visitors(Duration::ZERO).await.unwrap();
    assert_eq!(purged, 9, "10 fresh visitors, one of them chatted");
    let gone = chat
        .list_conversations(authed(&tokens[2], v1::ListConversationsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::Unauthenticated);
    chat.list_conversations(authed(v, v1::ListConversationsRequest::default()))
        .await
        .unwrap();
    s.stop().await;
}

#[tokio::test]
async fn agents_and_keys_see_only_their_sites_and_restricted_topics() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let mut adm = s.admin_client().await;
    let site1 = adm
        .list_sites(authed(&admin, v1::ListSitesRequest {}))
        .await
        .unwrap()
        .into_inner()
        .sites
        .remove(0);
    let site2 = adm
        .create_site(authed(
            &admin,
            v1::CreateSiteRequest {
                site: Some(v1::Site {
                    name: "Second".into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .site
        .unwrap();
    // An agent of site 1 only (topic Order), online on an inbox stream.
    let email = "site1@example.com";
    let agent = adm
        .create_agent(authed(
            &admin,
            v1::CreateAgentRequest {
                agent: Some(v1::Agent {
                    email: email.into(),
                    name: "One".into(),
                    role: v1::AgentRole::Agent as i32,
                    topics: vec!["Order".into()],
                    capacity: 5,
                    site_ids: vec![site1.id.clone()],
                    ..Default::default()
                }),
                password: "agent-password".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .agent
        .unwrap();
    assert_eq!(agent.site_ids, vec![site1.id.clone()]);
    let token = s.login(email, "agent-password").await;
    let mut chat = s.chat().await;
    let mut inbox = Sub::open(&mut chat, &token, vec![], true).await.unwrap();

    // A site-2 visitor's Order conversation: invisible to the agent, never assigned to it.
    let v2 = s
        .sessions()
        .await
        .start_visitor_session(v1::StartVisitorSessionRequest {
            site_key: site2.site_key.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (c2, _) = start_conversation(&mut chat, &v2.visitor_token, "Order", "site two").await;
    let (_, v1_token) = s.visitor("Site one").await;
    let (c1, _) = start_conversation(&mut chat, &v1_token, "Order", "site one").await;
    // The inbox shows site 1's message, not site 2's.
    let first = inbox.next_message().await;
    assert_eq!(
        first.conversation_id, c1,
        "site 2's message reached a site-1 agent"
    );
    let e = chat
        .get_conversation(authed(
            &token,
            v1::GetConversationRequest {
                conversation_id: c2.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = publish(&mut chat, &token, send(&c2, "", &uuid(), "hi"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = chat
        .get_visitor(authed(
            &token,
            v1::GetVisitorRequest {
                visitor_id: v2.visitor_id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let listed: Vec<String> = chat
        .list_conversations(authed(&token, v1::ListConversationsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .conversations
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(listed, vec![c1.clone()]);
    let c2_now = conversation(&mut chat, &admin, &c2).await;
    assert_eq!(
        c2_now.status,
        v1::ConversationStatus::Queued as i32,
        "not assigned across sites"
    );
    // Assignment is the router's (off the ack path): wait for it.
    let deadline = Instant::now() + WAIT;
    while conversation(&mut chat, &admin, &c1).await.assignee_id != agent.id {
        assert!(
            Instant::now() < deadline,
            "c1 never assigned on its own site"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Agents of other sites stay out of its presence list (admins see everyone).
    adm.create_agent(authed(
        &admin,
        v1::CreateAgentRequest {
            agent: Some(v1::Agent {
                email: "site2@example.com".into(),
                name: "Two".into(),
                site_ids: vec![site2.id.clone()],
                ..Default::default()
            }),
            password: "agent-password".into(),
        },
    ))
    .await
    .unwrap();
    let names = |token: &str| {
        let mut chat = chat.clone();
        let token = token.to_owned();
        async move {
            chat.list_agent_presence(authed(&token, v1::ListAgentPresenceRequest {}))
                .await
                .unwrap()
                .into_inner()
                .agents
                .into_iter()
                .map(|a| a.name)
                .collect::<Vec<_>>()
        }
    };
    let seen = names(&token).await;
    assert!(seen.contains(&"One".to_string()), "{seen:?}");
    assert!(
        seen.contains(&"Demo Admin".to_string()),
        "all-site agents are listed: {seen:?}"
    );
    assert!(
        !seen.contains(&"Two".to_string()),
        "a site-2 agent listed to a site-1 agent: {seen:?}"
    );
    assert!(names(&admin).await.contains(&"Two".to_string()));

    // Canned replies of other sites stay out of its list.
    adm.put_canned_reply(authed(
        &admin,
        v1::PutCannedReplyRequest {
            canned_reply: Some(v1::CannedReply {
                site_id: site2.id.clone(),
                shortcut: "second".into(),
                text: "Site two's reply".into(),
                ..Default::default()
            }),
        },
    ))
    .await
    .unwrap();
    let canned = chat
        .list_canned_replies(authed(&token, v1::ListCannedRepliesRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .canned_replies;
    assert!(!canned.is_empty(), "the shared replies are listed");
    assert!(canned.iter().all(|c| c.site_id != site2.id), "{canned:?}");

    // A chat key limited to site 2.
    let key = adm
        .create_api_key(authed(
            &admin,
            v1::CreateApiKeyRequest {
                name: "site2-bot".into(),
                scopes: vec![v1::ApiKeyScope::Chat as i32],
                site_ids: vec![site2.id.clone()],
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .secret;
    history(&mut chat, &key, &c2).await;
    let e = chat
        .get_history(authed(
            &key,
            v1::GetHistoryRequest {
                conversation_id: c1.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // Site 1 restricts agents to their topics: a Delivery conversation disappears for the
    // Order agent, at once, also on its open stream.
    let mut restricted = site1.clone();
    restricted.restrict_agents_to_topics = true;
    adm.update_site(authed(
        &admin,
        v1::UpdateSiteRequest {
            site: Some(restricted),
            rotate_identity_secret: false,
        },
    ))
    .await
    .unwrap();
    let (cd, _) = start_conversation(&mut chat, &v1_token, "Delivery", "where is it").await;
    let e = chat
        .get_history(authed(
            &token,
            v1::GetHistoryRequest {
                conversation_id: cd.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    publish(&mut chat, &v1_token, send(&c1, "", &uuid(), "still order"))
        .await
        .unwrap();
    let next = inbox.next_message().await;
    assert_eq!(
        next.conversation_id, c1,
        "the Delivery conversation reached an Order agent"
    );
    s.stop().await;
}

#[tokio::test]
async fn reflection_answers_v1alpha_clients_and_hsts_is_sent_when_asked() {
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    let s = TestServer::start_full(
        test_core_config(),
        NetConfig {
            hsts: true,
            ..Default::default()
        },
        Default::default(),
    )
    .await;
    // Python's grpcio-reflection, Postman and older grpcurl speak v1alpha only.
    let mut client = ServerReflectionClient::new(s.channel().await);
    let request = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("expected a service list, got {answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.iter().any(|n| n == "wsmschat.v1.ChatService"),
        "{names:?}"
    );

    let addr = s.running.as_ref().unwrap().addr;
    let page = get(addr, "/healthz", "").await.to_ascii_lowercase();
    assert!(
        page.contains("strict-transport-security: max-age=31536000"),
        "{page}"
    );
    s.stop().await;
}
