//! The support workflow: auto-assignment within capacity (also under concurrency), queue order
//! and positions, presence, transfer, notes, typing, read receipts, resolve, rating, reopen.

mod common;

use std::collections::HashMap;
use std::time::Duration;
use tokio_stream::StreamExt;

use common::*;
use wsmschat::v1;
use wsmschat::v1::client_event::Event as Ce;
use wsmschat::v1::server_event::Event as Se;

const OPEN: i32 = v1::ConversationStatus::Open as i32;
const QUEUED: i32 = v1::ConversationStatus::Queued as i32;
const RESOLVED: i32 = v1::ConversationStatus::Resolved as i32;

#[tokio::test]
async fn concurrent_conversations_never_exceed_capacity_and_the_queue_drains_in_order() {
    let server = TestServer::start().await;
    let (a, a_token) = server.agent("Alice", &["Order"], 2).await;
    let (b, b_token) = server.agent("Bert", &["Order"], 2).await;
    // A Payment agent must not get Order conversations.
    let (p, p_token) = server.agent("Pia", &["Payment"], 10).await;
    let mut chat = server.chat().await;
    // Online = an open stream.
    let _a_stream = Sub::open(&mut chat, &a_token, vec![], true).await.unwrap();
    let _b_stream = Sub::open(&mut chat, &b_token, vec![], true).await.unwrap();
    let _p_stream = Sub::open(&mut chat, &p_token, vec![], true).await.unwrap();

    // 10 visitors ask about an order at the same moment.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let mut chat = chat.clone();
        let (_, token) = server.visitor(&format!("V{i}")).await;
        tasks.push(tokio::spawn(async move {
            let (conv, _) = start_conversation(&mut chat, &token, "Order", "hello").await;
            (conv, token)
        }));
    }
    let mut convs = Vec::new();
    for t in tasks {
        convs.push(t.await.unwrap());
    }
    // Let assignment settle, then check the invariant from the store.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let admin = server.admin_token().await;
    let mut per_agent: HashMap<String, usize> = HashMap::new();
    let mut queued = Vec::new();
    for (conv, _) in &convs {
        let c = conversation(&mut chat, &admin, conv).await;
        match c.status {
            OPEN => *per_agent.entry(c.assignee_id.clone()).or_default() += 1,
            QUEUED => queued.push(c),
            s => panic!("unexpected status {s}"),
        }
    }
    assert_eq!(per_agent.get(&a.id), Some(&2), "Alice at capacity");
    assert_eq!(per_agent.get(&b.id), Some(&2), "Bert at capacity");
    assert!(!per_agent.contains_key(&p.id), "Pia does not answer Order");
    assert_eq!(queued.len(), 6);
    let mut positions: Vec<u32> = queued.iter().map(|c| c.queue_position).collect();
    positions.sort();
    assert_eq!(positions, vec![1, 2, 3, 4, 5, 6]);

    // Resolving one of Alice's conversations hands her the head of the queue.
    let head = queued
        .iter()
        .find(|c| c.queue_position == 1)
        .unwrap()
        .clone();
    let second = queued
        .iter()
        .find(|c| c.queue_position == 2)
        .unwrap()
        .clone();
    let (head_visitor_token, _) = (
        convs.iter().find(|(c, _)| *c == head.id).unwrap().1.clone(),
        (),
    );
    let mut head_sub = Sub::open(&mut chat, &head_visitor_token, vec![], false)
        .await
        .unwrap();
    let alices = convs.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>();
    let mut alice_conv = None;
    for c in &alices {
        let cv = conversation(&mut chat, &admin, c).await;
        if cv.assignee_id == a.id {
            alice_conv = Some(cv.id);
            break;
        }
    }
    publish(
        &mut chat,
        &a_token,
        ev(Ce::Resolve(v1::ResolveConversation {
            conversation_id: alice_conv.unwrap(),
        })),
    )
    .await
    .unwrap();
    let assigned = wait_conversation(&mut head_sub, &head.id, |c| c.status == OPEN).await;
    assert_eq!(
        assigned.assignee_id, a.id,
        "freed capacity goes to the oldest queued"
    );
    assert_eq!(assigned.assignee_name, "Alice");
    let second_now = conversation(&mut chat, &admin, &second.id).await;
    assert_eq!(second_now.status, QUEUED);
    assert_eq!(second_now.queue_position, 1, "everyone behind moved up");
    // The visitor sees who joined as a system message.
    let h = history(&mut chat, &head_visitor_token, &head.id).await;
    let sys = h.last().unwrap().clone();
    assert_eq!(
        sys.system.unwrap().kind,
        v1::SystemEventKind::Assigned as i32
    );
    server.stop().await;
}

#[tokio::test]
async fn with_nobody_online_the_message_waits_and_an_agent_coming_online_takes_it() {
    let server = TestServer::start().await;
    let (agent, token) = server.agent("Olga", &["Delivery"], 3).await;
    let (_, visitor) = server.visitor("Pat").await;
    let mut chat = server.chat().await;
    let (conv, _) = start_conversation(&mut chat, &visitor, "Delivery", "is anyone there?").await;
    let c = conversation(&mut chat, &visitor, &conv).await;
    assert_eq!(c.status, QUEUED);
    assert_eq!(c.agents_online, 0, "the widget shows 'leave a message'");
    assert_eq!(c.queue_position, 1);
    let mut vsub = Sub::open(&mut chat, &visitor, vec![], false).await.unwrap();

    let mut agent_sub = Sub::open(&mut chat, &token, vec![], true).await.unwrap();
    let c = wait_conversation(&mut vsub, &conv, |c| c.status == OPEN).await;
    assert_eq!(c.assignee_id, agent.id);
    // The agent sees it too (inbox), and the waiting message is in the history.
    wait_conversation(&mut agent_sub, &conv, |c| c.assignee_id == agent.id).await;
    let h = history(&mut chat, &token, &conv).await;
    assert_eq!(h[0].text, "is anyone there?");
    server.stop().await;
}

#[tokio::test]
async fn presence_follows_streams_and_away_agents_get_no_new_work() {
    let server = TestServer::start().await;
    let (watcher, w_token) = server.agent("Walt", &["Other"], 5).await;
    let (agent, token) = server.agent("Ada", &["Product"], 5).await;
    let mut chat = server.chat().await;
    let mut inbox = Sub::open(&mut chat, &w_token, vec![], true).await.unwrap();
    let presence = |e: &Se, id: &str| match e {
        Se::Presence(p) if p.agent_id == id => Some(p.status),
        _ => None,
    };
    let s = Sub::open(&mut chat, &token, vec![], true).await.unwrap();
    let st = inbox.next_where(|e| presence(e, &agent.id)).await;
    assert_eq!(st, v1::PresenceStatus::Online as i32);

    publish(
        &mut chat,
        &token,
        ev(Ce::SetPresence(v1::SetPresence {
            status: v1::PresenceStatus::Away as i32,
        })),
    )
    .await
    .unwrap();
    assert_eq!(
        inbox.next_where(|e| presence(e, &agent.id)).await,
        v1::PresenceStatus::Away as i32
    );
    let (_, visitor) = server.visitor("Q").await;
    let (conv, _) = start_conversation(&mut chat, &visitor, "Product", "hi").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        conversation(&mut chat, &token, &conv).await.status,
        QUEUED,
        "away: not assigned"
    );

    drop(s);
    assert_eq!(
        inbox.next_where(|e| presence(e, &agent.id)).await,
        v1::PresenceStatus::Offline as i32
    );
    let list = chat
        .list_agent_presence(authed(&w_token, v1::ListAgentPresenceRequest {}))
        .await
        .unwrap()
        .into_inner();
    let ada = list.agents.iter().find(|a| a.agent_id == agent.id).unwrap();
    assert_eq!(ada.status, v1::PresenceStatus::Offline as i32);
    let walt = list
        .agents
        .iter()
        .find(|a| a.agent_id == watcher.id)
        .unwrap();
    assert_eq!(walt.status, v1::PresenceStatus::Online as i32);
    server.stop().await;
}

#[tokio::test]
async fn notes_typing_reads_transfer_resolve_rate_and_reopen() {
    let server = TestServer::start().await;
    let (a, a_token) = server.agent("Anna", &["Order"], 5).await;
    let (b, b_token) = server.agent("Ben", &["Payment"], 5).await;
    let mut chat = server.chat().await;
    let mut a_sub = Sub::open(&mut chat, &a_token, vec![], true).await.unwrap();
    let (_, visitor) = server.visitor("Vic").await;
    let (conv, first) = start_conversation(&mut chat, &visitor, "Order", "my order is late").await;
    let mut v_sub = Sub::open(&mut chat, &visitor, vec![(conv.clone(), first.seq)], false)
        .await
        .unwrap();
    wait_conversation(&mut a_sub, &conv, |c| c.assignee_id == a.id).await;

    // Typing reaches the other side and is never stored.
    let before = history(&mut chat, &a_token, &conv).await.len();
    publish(
        &mut chat,
        &visitor,
        ev(Ce::Typing(v1::Typing {
            conversation_id: conv.clone(),
            on: true,
        })),
    )
    .await
    .unwrap();
    let t = a_sub
        .next_where(|e| match e {
            Se::Typing(t) if t.conversation_id == conv => Some(t.clone()),
            _ => None,
        })
        .await;
    assert!(t.on);
    assert_eq!(t.author_kind, v1::AuthorKind::Visitor as i32);
    publish(
        &mut chat,
        &a_token,
        ev(Ce::Typing(v1::Typing {
            conversation_id: conv.clone(),
            on: true,
        })),
    )
    .await
    .unwrap();
    let t = v_sub
        .next_where(|e| match e {
            Se::Typing(t) => Some(t.clone()),
            _ => None,
        })
        .await;
    assert_eq!(t.author_name, "Anna");
    assert_eq!(history(&mut chat, &a_token, &conv).await.len(), before);

    // A private note: the agent side sees it, the visitor never does (stream or history).
    let mut note = send(
        &conv,
        "",
        "note-1",
        "customer seems upset, check the courier",
    );
    if let Some(Ce::SendMessage(m)) = &mut note.event {
        m.kind = v1::MessageKind::Note as i32;
    }
    let note_ack = publish(&mut chat, &a_token, note).await.unwrap();
    let reply = publish(
        &mut chat,
        &a_token,
        send(&conv, "", "reply-1", "Sorry! Checking now."),
    )
    .await
    .unwrap();
    assert_eq!(reply.seq, note_ack.seq + 1);
    let m = v_sub.next_message().await;
    assert_eq!(
        m.text, "Sorry! Checking now.",
        "the note was skipped for the visitor"
    );
    assert!(
        history(&mut chat, &visitor, &conv)
            .await
            .iter()
            .all(|m| m.kind != v1::MessageKind::Note as i32)
    );
    assert!(
        history(&mut chat, &a_token, &conv)
            .await
            .iter()
            .any(|m| m.client_msg_id == "note-1")
    );
    // A visitor may not write notes.
    let mut bad = send(&conv, "", "vnote", "x");
    if let Some(Ce::SendMessage(m)) = &mut bad.event {
        m.kind = v1::MessageKind::Note as i32;
    }
    assert_eq!(
        publish(&mut chat, &visitor, bad).await.unwrap_err().code(),
        tonic::Code::PermissionDenied
    );

    // Read receipt: the visitor read the reply; the agent sees it, and it is kept.
    publish(
        &mut chat,
        &visitor,
        ev(Ce::MarkRead(v1::MarkRead {
            conversation_id: conv.clone(),
            seq: reply.seq,
        })),
    )
    .await
    .unwrap();
    let r = a_sub
        .next_where(|e| match e {
            Se::Read(r) if r.conversation_id == conv => Some(r.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        (r.reader_kind, r.seq),
        (v1::AuthorKind::Visitor as i32, reply.seq)
    );
    assert_eq!(
        conversation(&mut chat, &a_token, &conv)
            .await
            .visitor_read_seq,
        reply.seq
    );

    // Transfer to Ben (another topic: a human decision ignores topics and capacity).
    publish(
        &mut chat,
        &a_token,
        ev(Ce::Assign(v1::AssignConversation {
            conversation_id: conv.clone(),
            agent_id: b.id.clone(),
        })),
    )
    .await
    .unwrap();
    let sys = v_sub.next_message().await;
    let s = sys.system.unwrap();
    assert_eq!(
        (s.kind, s.agent_name.as_str()),
        (v1::SystemEventKind::Transferred as i32, "Ben")
    );
    let mine = chat
        .list_conversations(authed(
            &b_token,
            v1::ListConversationsRequest {
                assignee_id: "me".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        mine.conversations
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        [conv.as_str()]
    );

    // Rating before resolve is refused; after resolve it is kept.
    let rate = ev(Ce::Rate(v1::RateConversation {
        conversation_id: conv.clone(),
        score: 5,
        comment: "great".into(),
    }));
    assert_eq!(
        publish(&mut chat, &visitor, rate.clone())
            .await
            .unwrap_err()
            .code(),
        tonic::Code::FailedPrecondition
    );
    publish(
        &mut chat,
        &b_token,
        ev(Ce::Resolve(v1::ResolveConversation {
            conversation_id: conv.clone(),
        })),
    )
    .await
    .unwrap();
    let resolved = wait_conversation(&mut v_sub, &conv, |c| c.status == RESOLVED).await;
    assert_eq!(resolved.assignee_id, b.id);
    publish(&mut chat, &visitor, rate).await.unwrap();
    let c = conversation(&mut chat, &b_token, &conv).await;
    assert_eq!((c.rating, c.rating_comment.as_str()), (5, "great"));
    // Only the visitor rates.
    let agent_rate = ev(Ce::Rate(v1::RateConversation {
        conversation_id: conv.clone(),
        score: 1,
        comment: String::new(),
    }));
    assert_eq!(
        publish(&mut chat, &b_token, agent_rate)
            .await
            .unwrap_err()
            .code(),
        tonic::Code::PermissionDenied
    );

    // A new customer message reopens it (queued, then assigned again to an online Order agent).
    publish(
        &mut chat,
        &visitor,
        send(&conv, "", "again", "one more thing"),
    )
    .await
    .unwrap();
    let c = wait_conversation(&mut v_sub, &conv, |c| c.status == OPEN).await;
    assert_eq!(c.assignee_id, a.id);
    let kinds: Vec<i32> = history(&mut chat, &a_token, &conv)
        .await
        .iter()
        .filter_map(|m| m.system.as_ref().map(|s| s.kind))
        .collect();
    use v1::SystemEventKind as K;
    assert_eq!(
        kinds,
        [
            K::Assigned,
            K::Transferred,
            K::Resolved,
            K::Rated,
            K::Assigned
        ]
        .map(|k| k as i32)
    );
    server.stop().await;
}

#[tokio::test]
async fn inbox_filters_search_and_paging() {
    let server = TestServer::start().await;
    let (_, agent) = server.agent("Ina", &["Payment"], 1).await;
    let mut chat = server.chat().await;
    let mut ids = Vec::new();
    let mut visitors = Vec::new();
    for i in 0..7 {
        let (_, v) = server.visitor(&format!("Customer{i}")).await;
        let topic = if i % 2 == 0 { "Payment" } else { "Order" };
        let (c, _) = start_conversation(&mut chat, &v, topic, &format!("invoice number {i}")).await;
        ids.push(c);
        visitors.push(v);
    }
    let list = |req: v1::ListConversationsRequest| {
        let mut chat = chat.clone();
        let agent = agent.clone();
        async move {
            chat.list_conversations(authed(&agent, req))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let all = list(v1::ListConversationsRequest::default()).await;
    assert_eq!(all.total, 7);
    // Newest activity first.
    assert_eq!(all.conversations[0].id, ids[6]);
    let payment = list(v1::ListConversationsRequest {
        topic: "Payment".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(payment.total, 4);
    let found = list(v1::ListConversationsRequest {
        query: "NUMBER 3".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(
        found
            .conversations
            .iter()
            .map(|c| c.id.clone())
            .collect::<Vec<_>>(),
        [ids[3].clone()]
    );
    let by_name = list(v1::ListConversationsRequest {
        query: "customer5".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(by_name.total, 1);
    // A search pages like the list. "customer" finds all 7 by name, conversations 2 and 5
    // also by a message: each counted and listed once. Every page carries the whole total;
    // pages are newest activity first, without overlap; a filter narrows the count and the
    // pages alike.
    for (i, text) in [(2, "customer service, please"), (5, "a CUSTOMER question")] {
        publish(
            &mut chat.clone(),
            &visitors[i],
            send(&ids[i], "", &uuid(), text),
        )
        .await
        .unwrap();
    }
    for (topic, want) in [("", 7), ("Payment", 4)] {
        let mut pages = Vec::new();
        let mut token = String::new();
        loop {
            let page = list(v1::ListConversationsRequest {
                query: "customer".into(),
                topic: topic.into(),
                page_size: 3,
                page_token: token.clone(),
                ..Default::default()
            })
            .await;
            assert_eq!(
                (page.total, page.total_capped),
                (want, false),
                "topic {topic:?}"
            );
            assert!(page.conversations.len() <= 3);
            pages.extend(
                page.conversations
                    .iter()
                    .map(|c| (c.updated_at_ms, c.id.clone())),
            );
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        let mut sorted = pages.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(pages, sorted, "newest activity first across pages");
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            want as usize,
            "no conversation twice: {pages:?}"
        );
        if topic.is_empty() {
            // The two conversations with the newest messages lead.
            assert_eq!([&pages[0].1, &pages[1].1], [&ids[5], &ids[2]]);
        }
    }
    // Nothing found: a count of 0 and no page.
    let none = list(v1::ListConversationsRequest {
        query: "zq5xv".into(),
        ..Default::default()
    })
    .await;
    assert_eq!((none.total, none.conversations.len()), (0, 0));
    // Paging: 3 + 3 + 1, no overlap.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = list(v1::ListConversationsRequest {
            page_size: 3,
            page_token: token.clone(),
            ..Default::default()
        })
        .await;
        seen.extend(page.conversations.iter().map(|c| c.id.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    seen.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(seen, expected);
    // A visitor lists only their own.
    let (_, v) = server.visitor("Solo").await;
    let (mine, _) = start_conversation(&mut chat, &v, "Other", "x").await;
    let own = chat
        .list_conversations(authed(&v, v1::ListConversationsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        own.conversations
            .iter()
            .map(|c| c.id.clone())
            .collect::<Vec<_>>(),
        [mine]
    );
    server.stop().await;
}

/// When the queue moves, every waiting visitor's stream gets its new position within a second
/// (one snapshot per visitor, however many assignments happened); the inbox gets the
/// conversations' own changes only, not a re-announcement of everyone behind them.
#[tokio::test]
async fn waiting_visitors_are_told_their_new_position_and_the_inbox_is_not() {
    let server = TestServer::start().await;
    let (_, a_token) = server.agent("Alice", &["Order"], 1).await;
    let mut chat = server.chat().await;
    let mut inbox = Sub::open(&mut chat, &a_token, vec![], true).await.unwrap();
    let mut visitors = Vec::new();
    for i in 0..5 {
        let (_, token) = server.visitor(&format!("Q{i}")).await;
        let (conv, _) = start_conversation(&mut chat, &token, "Order", "hello").await;
        let sub = Sub::open(&mut chat, &token, vec![], false).await.unwrap();
        visitors.push((conv, token, sub));
    }
    let admin = server.admin_token().await;
    // The first is Alice's; the others wait at 1..4.
    let first = conversation(&mut chat, &admin, &visitors[0].0).await;
    assert_eq!(first.status, OPEN);
    for (i, (conv, _, _)) in visitors.iter().enumerate().skip(1) {
        assert_eq!(
            conversation(&mut chat, &admin, conv).await.queue_position,
            i as u32
        );
    }
    // Drain what the inbox got so far.
    while tokio::time::timeout(Duration::from_millis(300), inbox.stream.next())
        .await
        .is_ok()
    {}
    publish(
        &mut chat,
        &a_token,
        ev(Ce::Resolve(v1::ResolveConversation {
            conversation_id: first.id.clone(),
        })),
    )
    .await
    .unwrap();
    // The head is assigned; the three behind it move up, told on their own streams.
    let started = std::time::Instant::now();
    for (i, (conv, _, sub)) in visitors.iter_mut().enumerate().skip(2) {
        let c = wait_conversation(sub, conv, |c| c.queue_position == i as u32 - 1).await;
        assert_eq!(c.status, QUEUED);
        assert_eq!(c.agents_online, 1);
    }
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "positions within about a second: {:?}",
        started.elapsed()
    );
    // The inbox heard of the resolved and the assigned conversation, nothing of the others.
    let mut seen = Vec::new();
    while let Ok(Some(Ok(r))) =
        tokio::time::timeout(Duration::from_millis(800), inbox.stream.next()).await
    {
        if let Some(Se::Conversation(c)) = r.event.unwrap().event {
            seen.push(c.id);
        }
    }
    seen.dedup();
    assert!(
        seen.contains(&first.id) && seen.contains(&visitors[1].0),
        "{seen:?}"
    );
    for (conv, _, _) in &visitors[2..] {
        assert!(
            !seen.contains(conv),
            "no position broadcast to the inbox: {seen:?}"
        );
    }
    server.stop().await;
}

/// Search reads indexes (migrations 0015, 0016): a visitor found by the name it has now, not
/// by one it had; a word in more messages than a search reads (`SEARCH_MESSAGES`) gives a full
/// page and a capped total, its newest matches first; a rare one an exact total.
#[tokio::test]
async fn search_finds_current_names_and_caps_common_words() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let mut chat = server.chat().await;
    let (_, token) = server.visitor("Wilhelmina Oldname").await;
    let (conv, _) = start_conversation(&mut chat, &token, "Order", "hello").await;
    // The visitor comes back under another name (the session's name is kept).
    server
        .sessions()
        .await
        .start_visitor_session(v1::StartVisitorSessionRequest {
            site_key: "demo".into(),
            visitor_token: token.clone(),
            name: "Wilhelmina Newname".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let list = |query: &str| {
        let mut chat = chat.clone();
        let req = authed(
            &admin,
            v1::ListConversationsRequest {
                query: query.into(),
                ..Default::default()
            },
        );
        async move { chat.list_conversations(req).await.unwrap().into_inner() }
    };
    let ids = |page: &v1::ListConversationsResponse| {
        page.conversations
            .iter()
            .map(|c| c.id.clone())
            .collect::<Vec<_>>()
    };
    let now = list("newname").await;
    assert_eq!(
        (ids(&now), now.total, now.total_capped),
        (vec![conv.clone()], 1, false)
    );
    let old = list("OLDNAME").await;
    assert_eq!((old.total, old.conversations.len()), (0, 0));

    // 20,000 seeded messages: "order" is in about a third of them, more than a search reads.
    let core = server.running.as_ref().unwrap().core.clone();
    core.seed_history(
        wsmschat_server::core::access::AdminGrant::operator(),
        wsmschat_server::store::seed::HistorySpec {
            conversations: 1_000,
            messages: 20_000,
            big: 20,
            now_ms: wsmschat_server::util::now_ms(),
        },
        500,
        |_| {},
    )
    .await
    .unwrap();
    // The newest matches are what a capped search reads (PostgreSQL walks them newest first
    // for a word this common, 0017): a message sent now puts its conversation first.
    tokio::time::sleep(Duration::from_millis(5)).await;
    publish(
        &mut chat.clone(),
        &token,
        send(&conv, "", &uuid(), "Where is my ORDER?"),
    )
    .await
    .unwrap();
    let common = list("order").await;
    assert!(common.total_capped, "total {}", common.total);
    assert_eq!(common.conversations.len(), 50);
    assert_eq!(common.conversations[0].id, conv, "the newest match first");
    assert!(
        common.total >= 50 && common.total <= 1_000,
        "{}",
        common.total
    );
    let one = list(&wsmschat_server::store::seed::order_number(7)).await;
    assert_eq!(
        (ids(&one), one.total, one.total_capped),
        (vec!["c_seed7".to_owned()], 1, false)
    );
    server.stop().await;
}

/// SQLite indexes messages for search in batches, off the append path (migration 0018,
/// `store/search_index.rs`): a message is found as soon as its send is acknowledged (a search
/// scans what is not indexed yet), the writer indexes it within a fraction of a second, and
/// messages a crash left unindexed are indexed when the server starts again.
#[tokio::test]
async fn search_sees_unindexed_messages_and_the_index_catches_up() {
    async fn found(server: &TestServer, query: &str) -> Vec<String> {
        let admin = server.admin_token().await;
        let req = authed(
            &admin,
            v1::ListConversationsRequest {
                query: query.into(),
                ..Default::default()
            },
        );
        let page = server
            .chat()
            .await
            .list_conversations(req)
            .await
            .unwrap()
            .into_inner();
        page.conversations.into_iter().map(|c| c.id).collect()
    }
    /// (index rows matching `word`, the stored progress, the newest message rowid).
    fn index_state(path: &std::path::Path, word: &str) -> (i64, i64, i64) {
        let db = rusqlite::Connection::open(path).unwrap();
        db.busy_timeout(Duration::from_secs(5)).unwrap();
        db.query_row(
            "SELECT (SELECT COUNT(*) FROM message_search WHERE message_search MATCH ?1), \
             (SELECT messages_rowid FROM search_progress), (SELECT MAX(rowid) FROM messages)",
            [format!("\"{word}\"")],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    }
    async fn wait_indexed(path: &std::path::Path, word: &str) {
        let started = std::time::Instant::now();
        loop {
            let (rows, progress, newest) = index_state(path, word);
            if rows == 1 && progress == newest {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "not indexed: {rows} rows for {word}, progress {progress} of {newest}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let mut server = TestServer::start().await;
    let mut chat = server.chat().await;
    let (_, token) = server.visitor("Quinn").await;
    let (conv, _) =
        start_conversation(&mut chat, &token, "Order", "my zebraquartz arrived broken").await;
    assert_eq!(
        found(&server, "ZEBRAQUARTZ").await,
        std::slice::from_ref(&conv)
    );
    let wsmschat_server::Database::Sqlite(path) = server.config.database.clone() else {
        // PostgreSQL's trigram index is written with the message: nothing to catch up.
        server.stop().await;
        return;
    };
    let started = std::time::Instant::now();
    wait_indexed(&path, "zebraquartz").await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "indexed within a second: {:?}",
        started.elapsed()
    );
    assert_eq!(
        found(&server, "zebraquartz").await,
        std::slice::from_ref(&conv)
    );

    // Runs `sql` on the database while the server is down, then starts it again.
    let change = |sql: &'static str| {
        let path = path.clone();
        move |_: &wsmschat_server::Config| {
            rusqlite::Connection::open(&path)
                .unwrap()
                .execute_batch(sql)
                .unwrap()
        }
    };

    // A crash before the writer's next run: the message is stored, the index never saw it.
    server
        .restart_after(|config| {
            change(
                "INSERT INTO message_search (message_search) VALUES ('delete-all'); \
                 UPDATE search_progress SET messages_rowid = 0;",
            )(config);
            assert_eq!(index_state(&path, "zebraquartz").0, 0);
        })
        .await;
    // Indexed by the writer's first run after the start.
    wait_indexed(&path, "zebraquartz").await;
    assert_eq!(
        found(&server, "zebraquartz").await,
        std::slice::from_ref(&conv)
    );

    // Rowids went back (a manual VACUUM, an old copy restored): the progress points past the
    // newest message, and the index is rebuilt (one row, not two) instead of trusted.
    server
        .restart_after(change(
            "UPDATE search_progress SET messages_rowid = 1000000000;",
        ))
        .await;
    wait_indexed(&path, "zebraquartz").await;

    // A search between the send and the index run scans the unindexed tail: with the index
    // emptied, the progress set back and every index run failing (its savepoint rolls back),
    // the search still finds the message.
    server
        .restart_after(change(
            "INSERT INTO message_search (message_search) VALUES ('delete-all'); \
             UPDATE search_progress SET messages_rowid = 0; \
             CREATE TRIGGER hold_search_progress BEFORE UPDATE ON search_progress \
             BEGIN SELECT RAISE(ABORT, 'held by the test'); END;",
        ))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(found(&server, "zebraquartz").await, [conv]);
    assert_eq!(index_state(&path, "zebraquartz").0, 0, "the runs failed");
    server.stop().await;
}
