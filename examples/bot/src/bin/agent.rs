//! A scriptable native agent over the bidi `ChatService.Chat` RPC (HTTP/2): logs in with email
//! and password, goes online, follows the inbox, and speaks JSON lines. The browser tests drive
//! it; it is also handy to answer a widget from a terminal.
//!
//! stdin, one command per line:
//!   {"cmd":"send","conversationId":"...","text":"..."}     (clientMsgId optional)
//!   {"cmd":"typing","conversationId":"...","on":true}
//!   {"cmd":"read","conversationId":"...","seq":3}
//!   {"cmd":"join"|"resolve"|"reopen","conversationId":"..."}
//!   {"cmd":"watch","conversationId":"...","afterSeq":0}      (replay after a seq, then live)
//! stdout, one event per line: {"event":"ready"|"message"|"conversation"|"typing"|"read"|
//!   "ack"|"error"|...,...}. Usage: wsmschat-agent SERVER_URL EMAIL PASSWORD

use anyhow::Context;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use wsmschat::v1;
use wsmschat::v1::chat_service_client::ChatServiceClient;
use wsmschat::v1::client_event::Event as Ce;
use wsmschat::v1::server_event::Event as Se;
use wsmschat::v1::session_service_client::SessionServiceClient;

fn kind(k: i32) -> &'static str {
    match v1::AuthorKind::try_from(k).unwrap_or_default() {
        v1::AuthorKind::Visitor => "visitor",
        v1::AuthorKind::Agent => "agent",
        v1::AuthorKind::Service => "service",
        v1::AuthorKind::System => "system",
        v1::AuthorKind::Unspecified => "",
    }
}

fn to_json(ev: Se) -> Value {
    match ev {
        Se::Ready(r) => json!({"event": "ready", "streamId": r.stream_id}),
        Se::Message(m) => json!({"event": "message", "conversationId": m.conversation_id,
            "seq": m.seq, "clientMsgId": m.client_msg_id, "authorKind": kind(m.author_kind),
            "authorName": m.author_name, "text": m.text, "kind": m.kind}),
        Se::Conversation(c) => json!({"event": "conversation", "id": c.id, "topic": c.topic,
            "status": c.status, "assigneeId": c.assignee_id, "queuePosition": c.queue_position,
            "lastSeq": c.last_seq, "visitorReadSeq": c.visitor_read_seq, "rating": c.rating}),
        Se::Typing(t) => json!({"event": "typing", "conversationId": t.conversation_id,
            "authorKind": kind(t.author_kind), "on": t.on}),
        Se::Read(r) => json!({"event": "read", "conversationId": r.conversation_id,
            "readerKind": kind(r.reader_kind), "seq": r.seq}),
        Se::Presence(p) => json!({"event": "presence", "agentId": p.agent_id, "status": p.status}),
        Se::Ack(a) => json!({"event": "ack", "requestId": a.request_id,
            "conversationId": a.conversation_id, "seq": a.seq, "duplicate": a.duplicate}),
        Se::Error(e) => json!({"event": "error", "requestId": e.request_id, "code": e.code,
            "message": e.message}),
        Se::Heartbeat(_) => json!({"event": "heartbeat"}),
        Se::ResyncRequired(r) => json!({"event": "resync", "reason": r.reason}),
        Se::Visitor(v) => json!({"event": "visitor", "visitorId": v.visitor_id,
            "siteId": v.site_id}),
    }
}

fn command(v: &Value, n: u64) -> Option<v1::ClientEvent> {
    let conv = v["conversationId"].as_str().unwrap_or_default().to_owned();
    let event = match v["cmd"].as_str()? {
        "send" => Ce::SendMessage(v1::SendMessage {
            conversation_id: conv,
            client_msg_id: v["clientMsgId"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("agent-{}-{n}", std::process::id())),
            text: v["text"].as_str().unwrap_or_default().to_owned(),
            ..Default::default()
        }),
        "typing" => Ce::Typing(v1::Typing {
            conversation_id: conv,
            on: v["on"].as_bool().unwrap_or(true),
        }),
        "read" => Ce::MarkRead(v1::MarkRead {
            conversation_id: conv,
            seq: v["seq"].as_u64().unwrap_or(0),
        }),
        "join" => Ce::Join(v1::JoinConversation {
            conversation_id: conv,
        }),
        "resolve" => Ce::Resolve(v1::ResolveConversation {
            conversation_id: conv,
        }),
        "reopen" => Ce::Reopen(v1::ReopenConversation {
            conversation_id: conv,
        }),
        "watch" => Ce::Watch(v1::WatchConversation {
            cursor: Some(v1::ConversationCursor {
                conversation_id: conv,
                after_seq: v["afterSeq"].as_u64().unwrap_or(0),
            }),
        }),
        _ => return None,
    };
    Some(v1::ClientEvent {
        request_id: v["requestId"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("r{n}")),
        event: Some(event),
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [server, email, password] = &args[..] else {
        anyhow::bail!("usage: wsmschat-agent SERVER_URL EMAIL PASSWORD");
    };
    let channel = tonic::transport::Endpoint::from_shared(server.clone())?
        .connect()
        .await
        .with_context(|| format!("cannot connect to {server}"))?;
    let login = SessionServiceClient::new(channel.clone())
        .login(v1::LoginRequest {
            email: email.clone(),
            password: password.clone(),
        })
        .await?
        .into_inner();
    let auth: MetadataValue<_> = format!("Bearer {}", login.token).parse()?;
    let mut client =
        ChatServiceClient::with_interceptor(channel, move |mut req: tonic::Request<()>| {
            req.metadata_mut().insert("authorization", auth.clone());
            Ok(req)
        });
    let (tx, rx) = mpsc::channel::<v1::ChatRequest>(64);
    tx.send(v1::ChatRequest {
        subscribe: Some(v1::Subscription {
            cursors: vec![],
            inbox: true,
        }),
        event: Some(v1::ClientEvent {
            request_id: "presence".into(),
            event: Some(Ce::SetPresence(v1::SetPresence {
                status: v1::PresenceStatus::Online as i32,
            })),
        }),
    })
    .await?;
    let mut events = client.chat(ReceiverStream::new(rx)).await?.into_inner();
    tokio::spawn(async move {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        let mut n = 0;
        while let Ok(Some(line)) = lines.next_line().await {
            n += 1;
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                eprintln!("wsmschat-agent: not JSON: {line}");
                continue;
            };
            match command(&v, n) {
                Some(event) => {
                    let req = v1::ChatRequest {
                        subscribe: None,
                        event: Some(event),
                    };
                    if tx.send(req).await.is_err() {
                        break;
                    }
                }
                None => eprintln!("wsmschat-agent: unknown command: {line}"),
            }
        }
        // stdin closed: keep the stream (and presence) until the process is killed.
        std::future::pending::<()>().await;
    });
    while let Some(item) = events.next().await {
        if let Some(ev) = item?.event.and_then(|e| e.event) {
            println!("{}", to_json(ev));
        }
    }
    Ok(())
}
