//! The delivery contract: dense seq, ack after commit, idempotent publish, gapless resume
//! (also across restarts), heartbeats, and resync for slow subscribers.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use wsmschat::v1;
use wsmschat::v1::server_event::Event as Se;

#[tokio::test]
async fn seq_is_dense_and_acked_messages_are_committed() {
    let server = TestServer::start().await;
    let (_, visitor) = server.visitor("Ann").await;
    let mut chat = server.chat().await;
    let (conv, first) = start_conversation(&mut chat, &visitor, "Order", "hello").await;
    assert_eq!(first.seq, 1);

    // 50 concurrent publishes: every one gets a distinct seq, together 2..=51 (no hole).
    let mut tasks = Vec::new();
    for i in 0..50 {
        let mut chat = chat.clone();
        let (visitor, conv) = (visitor.clone(), conv.clone());
        tasks.push(tokio::spawn(async move {
            publish(
                &mut chat,
                &visitor,
                send(&conv, "", &uuid(), &format!("m{i}")),
            )
            .await
            .unwrap()
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        let ack = t.await.unwrap();
        assert!(!ack.duplicate);
        // Acked means committed: a fresh reader sees it.
        let h = history(&mut chat, &visitor, &conv).await;
        assert!(
            h.iter().any(|m| m.seq == ack.seq),
            "acked seq {} not in the store",
            ack.seq
        );
        seqs.push(ack.seq);
    }
    seqs.sort();
    assert_eq!(seqs, (2..=51).collect::<Vec<u64>>());
    let h = history(&mut chat, &visitor, &conv).await;
    let stored: Vec<u64> = h
        .iter()
        .filter(|m| m.kind == v1::MessageKind::Text as i32)
        .map(|m| m.seq)
        .collect();
    assert_eq!(stored.len(), 51);
    // Every seq of the conversation (system messages included) is dense from 1.
    let all: Vec<u64> = h.iter().map(|m| m.seq).collect();
    assert_eq!(
        all,
        (1..=all.len() as u64).collect::<Vec<_>>(),
        "history seqs are not dense from 1"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_retried_publish_returns_the_first_seq_and_stores_one_copy() {
    let server = TestServer::start().await;
    let (_, visitor) = server.visitor("Bob").await;
    let mut chat = server.chat().await;

    // Retrying the very first send (which creates the conversation) gives the same result.
    let first = send("", "Delivery", "first-send", "where is my parcel?");
    let a = publish(&mut chat, &visitor, first.clone()).await.unwrap();
    let b = publish(&mut chat, &visitor, first.clone()).await.unwrap();
    assert_eq!(
        (a.conversation_id.clone(), a.seq),
        (b.conversation_id.clone(), b.seq)
    );
    assert!(!a.duplicate);
    assert!(b.duplicate);

    // The same client_msg_id sent 20 times at once is stored once.
    let retry = send(&a.conversation_id, "", "retry-me", "are you there?");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (mut chat, visitor, retry) = (chat.clone(), visitor.clone(), retry.clone());
        tasks.push(tokio::spawn(async move {
            publish(&mut chat, &visitor, retry).await.unwrap()
        }));
    }
    let mut seqs = HashSet::new();
    let mut originals = 0;
    for t in tasks {
        let ack = t.await.unwrap();
        seqs.insert(ack.seq);
        originals += usize::from(!ack.duplicate);
    }
    assert_eq!(seqs.len(), 1, "all retries return one seq");
    assert_eq!(originals, 1, "exactly one retry stored the message");
    // A retry takes no seq of its own: the next send follows the first copy, with no hole.
    let stored = *seqs.iter().next().unwrap();
    let next = publish(
        &mut chat,
        &visitor,
        send(&a.conversation_id, "", "after-retries", "hello?"),
    )
    .await
    .unwrap();
    assert_eq!(next.seq, stored + 1, "the retries left a hole in the seqs");
    let h = history(&mut chat, &visitor, &a.conversation_id).await;
    let all: Vec<u64> = h.iter().map(|m| m.seq).collect();
    assert_eq!(
        all,
        (1..=all.len() as u64).collect::<Vec<_>>(),
        "history seqs are not dense from 1"
    );
    assert_eq!(
        h.iter().filter(|m| m.client_msg_id == "retry-me").count(),
        1
    );
    assert_eq!(
        h.iter().filter(|m| m.client_msg_id == "first-send").count(),
        1
    );
    server.stop().await;
}

#[tokio::test]
async fn resume_replays_exactly_what_was_missed_then_continues_live() {
    let server = TestServer::start().await;
    let (_, visitor) = server.visitor("Cy").await;
    let svc = server.service_key().await;
    let mut chat = server.chat().await;
    let (conv, _) = start_conversation(&mut chat, &visitor, "Product", "m1").await;

    let mut sub = Sub::open(&mut chat, &visitor, vec![(conv.clone(), 0)], false)
        .await
        .unwrap();
    let m = sub.next_message().await;
    assert_eq!(m.text, "m1");
    let last_seen = m.seq;
    drop(sub);

    // Missed while away: three messages from the service.
    for i in 2..=4 {
        publish(&mut chat, &svc, send(&conv, "", &uuid(), &format!("m{i}")))
            .await
            .unwrap();
    }
    let mut sub = Sub::open(&mut chat, &visitor, vec![(conv.clone(), last_seen)], false)
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(sub.next_message().await);
    }
    assert_eq!(
        got.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["m2", "m3", "m4"]
    );
    assert!(got.windows(2).all(|w| w[0].seq < w[1].seq));
    // Then live, with no duplicate of what was replayed.
    publish(&mut chat, &svc, send(&conv, "", &uuid(), "m5"))
        .await
        .unwrap();
    let live = sub.next_message().await;
    assert_eq!(live.text, "m5");
    assert_eq!(live.seq, got[2].seq + 1);
    sub.no_message_within(Duration::from_millis(300)).await;
    server.stop().await;
}

#[tokio::test]
async fn resume_works_across_a_server_restart_on_the_same_database() {
    let mut server = TestServer::start().await;
    let (_, visitor) = server.visitor("Di").await;
    let svc = server.service_key().await;
    let mut chat = server.chat().await;
    let (conv, ack) = start_conversation(&mut chat, &visitor, "Payment", "before restart").await;

    let mut sub = Sub::open(&mut chat, &visitor, vec![(conv.clone(), 0)], false)
        .await
        .unwrap();
    assert_eq!(sub.next_message().await.seq, ack.seq);
    server.restart().await;
    // The stream ends cleanly at shutdown (clients reconnect).
    loop {
        match tokio::time::timeout(WAIT, sub.stream.message())
            .await
            .unwrap()
        {
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(status) => panic!("stream should end cleanly, got {status:?}"),
        }
    }
    let mut chat = server.chat().await;
    let after = publish(&mut chat, &svc, send(&conv, "", &uuid(), "after restart"))
        .await
        .unwrap();
    let mut sub = Sub::open(&mut chat, &visitor, vec![(conv.clone(), ack.seq)], false)
        .await
        .unwrap();
    let mut texts = Vec::new();
    loop {
        let m = sub.next_message().await;
        texts.push(m.text.clone());
        if m.seq == after.seq {
            break;
        }
    }
    assert_eq!(texts.last().unwrap(), "after restart");
    assert!(
        !texts.contains(&"before restart".to_string()),
        "no duplicate of what was seen"
    );
    server.stop().await;
}

#[tokio::test]
async fn idle_streams_get_heartbeats() {
    let server = TestServer::start_with(wsmschat_server::core::CoreConfig {
        heartbeat: Duration::from_millis(200),
        ..test_core_config()
    })
    .await;
    let (_, visitor) = server.visitor("Eve").await;
    let mut chat = server.chat().await;
    let mut sub = Sub::open(&mut chat, &visitor, vec![], false).await.unwrap();
    let started = std::time::Instant::now();
    for _ in 0..3 {
        match sub.next().await {
            Some(Se::Heartbeat(h)) => assert!(h.server_time_ms > 0),
            other => panic!("expected a heartbeat, got {other:?}"),
        }
    }
    assert!(started.elapsed() >= Duration::from_millis(500));
    server.stop().await;
}

#[tokio::test]
async fn a_slow_subscriber_is_told_to_resync_and_never_blocks_others() {
    let server = TestServer::start().await;
    let (_, visitor) = server.visitor("Fay").await;
    let svc = server.service_key().await;
    let mut chat = server.chat().await;
    let (conv, _) = start_conversation(&mut chat, &visitor, "Other", "start").await;

    // The slow reader: a tiny HTTP/2 window so the server cannot park events in the socket.
    let slow_channel = tonic::transport::Endpoint::from_shared(server.url.clone())
        .unwrap()
        .initial_stream_window_size(Some(8 * 1024))
        .initial_connection_window_size(Some(8 * 1024))
        .connect()
        .await
        .unwrap();
    let mut slow_chat = wsmschat::v1::chat_service_client::ChatServiceClient::new(slow_channel);
    let mut slow = Sub::open(&mut slow_chat, &svc, vec![(conv.clone(), 0)], false)
        .await
        .unwrap();
    let mut fast = Sub::open(&mut chat, &visitor, vec![(conv.clone(), 0)], false)
        .await
        .unwrap();

    let total = 1200u64;
    let mut last = 0;
    for i in 0..total {
        last = publish(
            &mut chat,
            &svc,
            send(&conv, "", &uuid(), &format!("burst {i}")),
        )
        .await
        .unwrap()
        .seq;
    }
    // The fast reader got everything, in order, while the slow one was not reading.
    let mut expected = 1;
    loop {
        let m = fast.next_message().await;
        assert_eq!(
            m.seq, expected,
            "the fast reader gets every message in order"
        );
        expected += 1;
        if m.seq == last {
            break;
        }
    }

    // The slow reader gets what was queued, then a resync notice, then the end of the stream.
    let mut messages = 0;
    let mut resync = false;
    while let Some(e) = slow.next().await {
        match e {
            Se::Message(_) => messages += 1,
            Se::ResyncRequired(r) => {
                assert!(!r.reason.is_empty());
                resync = true;
            }
            _ => {}
        }
    }
    assert!(resync, "slow subscriber must be told to resync");
    assert!(
        messages < total as usize,
        "it did not get everything ({messages})"
    );
    server.stop().await;
}

/// The bidirectional Chat stream: events in, acks and live events out on one stream. The
/// stream that sent a message gets its ack (with the seq) and no echo of it; the visitor's other
/// streams (other tabs) and the agent's get the message once.
#[tokio::test]
async fn a_chat_stream_gets_acks_for_its_sends_and_no_echo_of_them() {
    let server = TestServer::start().await;
    let (_, visitor) = server.visitor("Chat tab").await;
    let key = server.service_key().await;
    let mut chat = server.chat().await;
    let (conv, first) = start_conversation(&mut chat, &visitor, "Order", "hello").await;
    let mut other_tab = Sub::open(&mut chat, &visitor, vec![], false).await.unwrap();
    let mut agent = Sub::open(&mut chat, &key, vec![(conv.clone(), first.seq)], false)
        .await
        .unwrap();
    let mut stream = ChatStream::open(&mut chat, &visitor, v1::Subscription::default()).await;

    let mut acked = Vec::new();
    for i in 0..3 {
        let mut e = send(&conv, "", &uuid(), &format!("from chat {i}"));
        e.request_id = format!("r{i}");
        stream.send(e);
        // Only heartbeats may come before the ack: never the echo of the message.
        let ack = loop {
            match stream.next().await {
                Se::Ack(a) => break a,
                Se::Heartbeat(_) => continue,
                other => panic!("expected the ack of r{i}, got {other:?}"),
            }
        };
        assert_eq!(ack.request_id, format!("r{i}"));
        assert_eq!(ack.conversation_id, conv);
        acked.push(ack.seq);
    }
    assert_eq!(acked, vec![first.seq + 1, first.seq + 2, first.seq + 3]);
    for seq in &acked {
        assert_eq!(other_tab.next_message().await.seq, *seq);
        assert_eq!(agent.next_message().await.seq, *seq);
    }

    // The agent's answer reaches the Chat stream live (and is the first message it gets: no
    // echo of the three sends came in between).
    let reply = publish(&mut chat, &key, send(&conv, "", &uuid(), "answer"))
        .await
        .unwrap();
    match stream.next_significant().await {
        Se::Message(m) => {
            assert_eq!(m.seq, reply.seq);
            assert_eq!(m.text, "answer");
        }
        other => panic!("expected the answer, got {other:?}"),
    }

    // An error answers on the stream without closing it.
    stream.send(send(&conv, "", "", "no client_msg_id"));
    match stream.next_significant().await {
        Se::Error(e) => assert_eq!(e.code, tonic::Code::InvalidArgument as i32),
        other => panic!("expected an error, got {other:?}"),
    }
    server.stop().await;
}

/// An inbox stream that already got live messages of a conversation, then watches it from an
/// older cursor, gets exactly the messages it missed (committed before it opened), once.
#[tokio::test]
async fn a_watch_after_live_messages_replays_only_what_the_stream_missed() {
    let server = TestServer::start().await;
    let (_, visitor) = server.visitor("Watch").await;
    let key = server.service_key().await;
    let mut chat = server.chat().await;
    let (conv, first) = start_conversation(&mut chat, &visitor, "Order", "before 1").await;
    let missed = publish(&mut chat, &visitor, send(&conv, "", &uuid(), "before 2"))
        .await
        .unwrap();
    let mut inbox = ChatStream::open(
        &mut chat,
        &key,
        v1::Subscription {
            cursors: vec![],
            inbox: true,
        },
    )
    .await;
    let live = publish(&mut chat, &visitor, send(&conv, "", &uuid(), "live"))
        .await
        .unwrap();
    let got = loop {
        if let Se::Message(m) = inbox.next_significant().await {
            break m;
        }
    };
    assert_eq!(got.seq, live.seq);

    inbox.send(ev(v1::client_event::Event::Watch(v1::WatchConversation {
        cursor: Some(v1::ConversationCursor {
            conversation_id: conv.clone(),
            after_seq: first.seq,
        }),
    })));
    let later = publish(&mut chat, &visitor, send(&conv, "", &uuid(), "after watch"))
        .await
        .unwrap();
    let mut seqs = Vec::new();
    while seqs.last() != Some(&later.seq) {
        match inbox.next_significant().await {
            Se::Message(m) if m.author_kind == v1::AuthorKind::Visitor as i32 => seqs.push(m.seq),
            _ => {}
        }
    }
    // The missed message comes (after the newer live one), "live" is not sent again.
    assert_eq!(seqs, vec![missed.seq, later.seq]);
    server.stop().await;
}

/// A server whose inbox streams coalesce writes over `window`, a conversation, and a service
/// key's inbox stream open on it.
struct Inbox {
    server: TestServer,
    visitor: String,
    key: String,
    chat: wsmschat::v1::chat_service_client::ChatServiceClient<tonic::transport::Channel>,
    conv: String,
    inbox: ChatStream,
}

impl Inbox {
    async fn open(window: Duration) -> Self {
        let server = TestServer::start_with(wsmschat_server::core::CoreConfig {
            inbox_coalesce: window,
            ..test_core_config()
        })
        .await;
        let (_, visitor) = server.visitor("Busy").await;
        let key = server.service_key().await;
        let mut chat = server.chat().await;
        let (conv, _) = start_conversation(&mut chat, &visitor, "Order", "hello").await;
        let inbox = ChatStream::open(
            &mut chat,
            &key,
            v1::Subscription {
                cursors: vec![],
                inbox: true,
            },
        )
        .await;
        Self {
            server,
            visitor,
            key,
            chat,
            conv,
            inbox,
        }
    }
}

/// A busy inbox stream gathers events into one write at most once per `inbox_coalesce`: the
/// first event after a quiet spell goes at once, the next one waits for the window, and the
/// stream's own ack goes at once, taking what was held with it (in order).
#[tokio::test]
async fn a_busy_inbox_stream_coalesces_writes_but_never_holds_the_first_event_or_an_ack() {
    let window = Duration::from_millis(1_000);
    let Inbox {
        server,
        visitor,
        mut chat,
        conv,
        mut inbox,
        ..
    } = Inbox::open(window).await;
    // The next message or ack, and when it came.
    async fn next(s: &mut ChatStream) -> (Se, std::time::Instant) {
        loop {
            match s.next().await {
                ev @ (Se::Message(_) | Se::Ack(_)) => return (ev, std::time::Instant::now()),
                _ => continue,
            }
        }
    }
    let text = |ev: &Se| match ev {
        Se::Message(m) => m.text.clone(),
        other => panic!("expected a message, got {other:?}"),
    };
    // Quiet for longer than the window (the Ready event opened one).
    tokio::time::sleep(window + Duration::from_millis(200)).await;
    let sent = std::time::Instant::now();
    publish(&mut chat, &visitor, send(&conv, "", &uuid(), "first"))
        .await
        .unwrap();
    let (ev, first_at) = next(&mut inbox).await;
    assert_eq!(text(&ev), "first");
    assert!(
        first_at - sent < window * 7 / 10,
        "the first event after a quiet spell is not held ({:?})",
        first_at - sent
    );

    // The next one waits for the window...
    publish(&mut chat, &visitor, send(&conv, "", &uuid(), "second"))
        .await
        .unwrap();
    let (ev, second_at) = next(&mut inbox).await;
    assert_eq!(text(&ev), "second");
    assert!(
        second_at - first_at >= window * 8 / 10,
        "a busy inbox stream holds events for its window ({:?})",
        second_at - first_at
    );

    // ...unless the stream's own send is answered: its ack goes at once, after what was held.
    publish(&mut chat, &visitor, send(&conv, "", &uuid(), "third"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let asked = std::time::Instant::now();
    let mut reply = send(&conv, "", &uuid(), "answer");
    reply.request_id = "reply".into();
    inbox.send(reply);
    let (ev, third_at) = next(&mut inbox).await;
    assert_eq!(text(&ev), "third", "held events go first, in order");
    match next(&mut inbox).await {
        (Se::Ack(a), acked_at) => {
            assert_eq!(a.request_id, "reply");
            assert!(
                acked_at - asked < window * 7 / 10 && third_at - asked < window * 7 / 10,
                "an ack is never held ({:?})",
                acked_at - asked
            );
        }
        (other, _) => panic!("expected the ack, got {other:?}"),
    }
    server.stop().await;
}

/// A holding inbox stream leaves its queue unread until the hold ends (one wake per hold, not
/// one per event): a burst far larger than a visitor stream's queue (256) arriving during one
/// hold is delivered whole and in order when the hold ends (here: the stream's own ack ends
/// it), not dropped as a lagging stream. The window is far longer than the test so that the
/// burst lands in one hold however slow the machine is.
#[tokio::test]
async fn a_burst_during_an_inbox_hold_is_delivered_whole_not_dropped_as_lagging() {
    let window = Duration::from_secs(600);
    let Inbox {
        server,
        key,
        chat,
        conv,
        mut inbox,
        ..
    } = Inbox::open(window).await;
    // The Ready event opened a hold: everything published now waits in the stream's queue.
    let burst = 1_000u64;
    let sends = (0..burst).map(|i| {
        let mut chat = chat.clone();
        let key = key.clone();
        let conv = conv.clone();
        async move {
            publish(&mut chat, &key, send(&conv, "", &uuid(), &format!("b{i}")))
                .await
                .unwrap()
                .seq
        }
    });
    let seqs: Vec<u64> = futures_util::future::join_all(sends).await;
    let (first, last) = (*seqs.iter().min().unwrap(), *seqs.iter().max().unwrap());
    assert_eq!(last - first + 1, burst);
    // The stream's own send is acked at once, after everything it held, in order.
    let mut flush = send(&conv, "", &uuid(), "flush");
    flush.request_id = "flush".into();
    inbox.send(flush);
    let mut expected = first;
    loop {
        match inbox.next().await {
            Se::Message(m) => {
                assert_eq!(m.seq, expected, "in order, none missing");
                expected += 1;
            }
            Se::Ack(a) => {
                assert_eq!(a.request_id, "flush");
                break;
            }
            Se::ResyncRequired(r) => panic!("the inbox was dropped as lagging: {}", r.reason),
            _ => {}
        }
    }
    assert_eq!(expected, last + 1, "the whole burst came before the ack");
    server.stop().await;
}
