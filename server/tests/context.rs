//! Customer context (issue #15) on a real server (SQLite, or PostgreSQL with
//! WSMSCHAT_TEST_POSTGRES): custom attributes a site declares (typed; the page sets only the
//! page-writable ones, staff and API keys any; undeclared keys refused), found by the inbox's
//! attribute filter and search, announced to staff inbox streams as ids only and never to
//! visitors; the page trail (the last 20, http(s) only) and its rate limit.

mod common;

use common::*;
use tokio_stream::StreamExt;
use tonic::Code;
use wsmschat::v1;
use wsmschat::v1::server_event::Event as Se;

fn def(
    key: &str,
    ty: v1::AttributeType,
    target: v1::AttributeTarget,
    page: bool,
) -> v1::AttributeDefinition {
    v1::AttributeDefinition {
        key: key.into(),
        name: String::new(),
        r#type: ty as i32,
        target: target as i32,
        page_writable: page,
    }
}

fn values(kv: &[(&str, &str)]) -> Vec<v1::AttributeValue> {
    kv.iter()
        .map(|(k, v)| v1::AttributeValue {
            key: k.to_string(),
            value: v.to_string(),
        })
        .collect()
}

async fn set(
    s: &TestServer,
    token: &str,
    visitor_id: &str,
    conversation_id: &str,
    kv: &[(&str, &str)],
) -> Result<v1::SetAttributesResponse, tonic::Status> {
    s.chat()
        .await
        .set_attributes(authed(
            token,
            v1::SetAttributesRequest {
                visitor_id: visitor_id.into(),
                conversation_id: conversation_id.into(),
                attributes: values(kv),
            },
        ))
        .await
        .map(|r| r.into_inner())
}

async fn track(s: &TestServer, token: &str, url: &str, title: &str) -> Result<(), tonic::Status> {
    s.chat()
        .await
        .track_page(authed(
            token,
            v1::TrackPageRequest {
                url: url.into(),
                title: title.into(),
                referrer: String::new(),
            },
        ))
        .await
        .map(|_| ())
}

fn attr<'a>(a: &'a [v1::AttributeValue], key: &str) -> Option<&'a str> {
    a.iter().find(|x| x.key == key).map(|x| x.value.as_str())
}

#[tokio::test]
async fn declared_attributes_are_typed_guarded_searchable_and_live_to_staff_only() {
    use v1::AttributeTarget::{Conversation, Visitor};
    use v1::AttributeType::{Date, Link, Number, Text};
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let mut site = s.demo_site(&admin).await;

    // Declarations are checked: a bad key, a duplicate.
    site.attributes = vec![def("1plan", Text, Visitor, true)];
    let e = s.save_site(&admin, site.clone()).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    site.attributes = vec![
        def("plan", Text, Visitor, true),
        def("plan", Number, Visitor, false),
    ];
    assert_eq!(
        s.save_site(&admin, site.clone()).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    site.attributes = vec![
        def("plan", Text, Visitor, true),
        def("orderId", Text, Conversation, true),
        def("ltv", Number, Visitor, false),
        def("since", Date, Visitor, false),
        def("crm", Link, Visitor, false),
    ];
    let saved = s.save_site(&admin, site.clone()).await.unwrap();
    assert_eq!(saved.attributes.len(), 5);
    assert_eq!(saved.attributes[0].name, "plan", "an empty name is the key");

    let (_, agent) = s.agent("Dora", &[], 5).await;
    let (vid, visitor) = s.visitor("Vera").await;
    let (other_vid, other) = s.visitor("Walt").await;
    let mut chat = s.chat().await;
    let (conv, _) = start_conversation(&mut chat, &visitor, "Order", "where is it?").await;
    let mut inbox = Sub::open(&mut chat, &agent, vec![], true).await.unwrap();
    let mut mine = Sub::open(&mut chat, &visitor, vec![(conv.clone(), 0)], false)
        .await
        .unwrap();

    // The page: only page-writable keys; conversation keys go to its open conversation.
    let e = set(&s, &visitor, "", "", &[("plan", "pro"), ("ltv", "5")])
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Code::PermissionDenied,
        "the page may not set ltv: {e:?}"
    );
    let e = set(&s, &visitor, "", "", &[("color", "red")])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "undeclared: {e:?}");
    let e = set(&s, &visitor, &other_vid, "", &[("plan", "pro")])
        .await
        .unwrap_err();
    assert!(
        matches!(e.code(), Code::PermissionDenied | Code::NotFound),
        "another visitor: {e:?}"
    );
    let r = set(
        &s,
        &visitor,
        "",
        "",
        &[("plan", "pro"), ("orderId", "1001")],
    )
    .await
    .unwrap();
    let me = r.visitor.unwrap();
    assert!(
        me.attributes.is_empty() && me.pages.is_empty() && me.last_ip.is_empty(),
        "a visitor's own copy"
    );
    assert_eq!(
        attr(&r.conversations[0].attributes, "orderId"),
        None,
        "stripped for the visitor"
    );

    // Staff see it live: the visitor by ids, the conversation as a snapshot.
    inbox
        .next_where(|e| match e {
            Se::Visitor(v) if v.visitor_id == vid && v.site_id == site.id => Some(()),
            _ => None,
        })
        .await;
    let snap = wait_conversation(&mut inbox, &conv, |c| {
        attr(&c.attributes, "orderId").is_some()
    })
    .await;
    assert_eq!(attr(&snap.attributes, "orderId"), Some("1001"));

    // Agents: any declared key, typed and canonical; wrong types refused, naming the key.
    let r = set(
        &s,
        &agent,
        &vid,
        "",
        &[
            ("ltv", "0042.50"),
            ("since", "2025-02-28"),
            ("crm", "https://crm.example.com/c/7"),
        ],
    )
    .await
    .unwrap();
    let v = r.visitor.unwrap();
    assert_eq!(attr(&v.attributes, "ltv"), Some("42.5"));
    for (k, bad) in [
        ("ltv", "lots"),
        ("since", "2025-02-30"),
        ("crm", "javascript:alert(1)"),
        ("crm", "https://u:p@x.example/"),
    ] {
        let e = set(&s, &agent, &vid, "", &[(k, bad)]).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{k}={bad}");
        assert!(e.message().contains(k), "{}", e.message());
    }
    let e = set(&s, &agent, &vid, "", &[("orderId", "9")])
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Code::InvalidArgument,
        "staff name the conversation of a conversation key"
    );
    set(&s, &agent, "", &conv, &[("orderId", "1002")])
        .await
        .unwrap();
    let key = s.service_key().await;
    set(&s, &key, &other_vid, "", &[("plan", "Free")])
        .await
        .unwrap();

    // The inbox filters by an attribute (case-insensitively) and its search finds values.
    let list = |f: v1::ListConversationsRequest| {
        let s = &s;
        let agent = agent.clone();
        async move {
            s.chat()
                .await
                .list_conversations(authed(&agent, f))
                .await
                .unwrap()
                .into_inner()
                .conversations
                .into_iter()
                .map(|c| c.id)
                .collect::<Vec<_>>()
        }
    };
    let by = |k: &str, v: &str| v1::ListConversationsRequest {
        attribute: Some(values(&[(k, v)]).remove(0)),
        ..Default::default()
    };
    assert_eq!(list(by("plan", "PRO")).await, vec![conv.clone()]);
    assert_eq!(list(by("orderId", "1002")).await, vec![conv.clone()]);
    assert!(
        list(by("plan", "free")).await.is_empty(),
        "Walt has no conversation"
    );
    let q = v1::ListConversationsRequest {
        query: "crm.example.com".into(),
        ..Default::default()
    };
    assert_eq!(list(q).await, vec![conv.clone()]);

    // The visitor's own stream never hears of any of it.
    track(&s, &visitor, "https://shop.example/a", "A")
        .await
        .unwrap();
    let _ = &other;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(500);
    while let Ok(Some(Ok(r))) = tokio::time::timeout_at(deadline, mine.stream.next()).await {
        let ev = r.event.unwrap().event.unwrap();
        assert!(!matches!(ev, Se::Visitor(_)), "a visitor stream got {ev:?}");
        if let Se::Conversation(c) = ev {
            assert!(
                c.attributes.is_empty(),
                "a visitor stream got attributes: {c:?}"
            );
        }
    }

    // Removing a declaration drops its values.
    site.attributes.retain(|d| d.key != "ltv");
    s.save_site(&admin, site.clone()).await.unwrap();
    site.attributes.push(def("ltv", Number, Visitor, false));
    s.save_site(&admin, site.clone()).await.unwrap();
    let p = s
        .chat()
        .await
        .get_visitor(authed(
            &agent,
            v1::GetVisitorRequest {
                visitor_id: vid.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let v = p.visitor.unwrap();
    assert_eq!(attr(&v.attributes, "ltv"), None);
    assert_eq!(attr(&v.attributes, "plan"), Some("pro"));
    assert_eq!(p.attributes.len(), 5, "the panel gets the declarations");
    s.stop().await;
}

#[tokio::test]
async fn the_page_trail_keeps_the_last_20_http_pages_and_is_rate_limited() {
    let s = TestServer::start().await;
    let (vid, visitor) = s.visitor("Vera").await;
    let (_, agent) = s.agent("Dora", &[], 5).await;
    for i in 0..25 {
        track(
            &s,
            &visitor,
            &format!("https://shop.example/p/{i}#frag"),
            &format!("Page {i}"),
        )
        .await
        .unwrap();
    }
    // A reload of the newest page replaces it.
    track(&s, &visitor, "https://shop.example/p/24", "Page 24 again")
        .await
        .unwrap();
    for bad in ["javascript:alert(1)", "file:///etc/passwd", "https://"] {
        let e = track(&s, &visitor, bad, "x").await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad}");
    }
    let e = track(&s, &agent, "https://shop.example/", "x")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "visitors only");
    let v = s
        .chat()
        .await
        .get_visitor(authed(&agent, v1::GetVisitorRequest { visitor_id: vid }))
        .await
        .unwrap()
        .into_inner()
        .visitor
        .unwrap();
    assert_eq!(v.pages.len(), 20);
    assert_eq!(v.pages[0].url, "https://shop.example/p/24");
    assert_eq!(v.pages[0].title, "Page 24 again");
    assert_eq!(v.pages[19].url, "https://shop.example/p/5");
    assert_eq!(v.page_url, "https://shop.example/p/24");
    s.stop().await;

    // The limiter: a handful a minute per visitor.
    let mut core = test_core_config();
    core.context_updates_per_minute = 5;
    let s = TestServer::start_with(core).await;
    let (_, visitor) = s.visitor("Vera").await;
    let mut codes = Vec::new();
    for i in 0..8 {
        codes.push(
            match track(&s, &visitor, &format!("https://shop.example/{i}"), "").await {
                Ok(()) => Code::Ok,
                Err(e) => e.code(),
            },
        );
    }
    assert_eq!(
        codes.iter().filter(|c| **c == Code::Ok).count(),
        5,
        "{codes:?}"
    );
    assert!(codes.contains(&Code::ResourceExhausted), "{codes:?}");
    s.stop().await;
}
