//! Several server processes sharing PostgreSQL + Redis: a visitor on one node and an agent on
//! another converse; typing, presence and assignment cross nodes; capacity holds cluster-wide;
//! a node killed mid-conversation loses nothing; a Redis restart loses nothing.
//!
//! Needs PostgreSQL (`WSMSCHAT_TEST_POSTGRES`, default postgres://postgres@127.0.0.1:5432) and
//! the `redis-server` binary (each test runs its own Redis on a free port).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use tonic::transport::{Channel, Endpoint};
use wsmschat::v1;
use wsmschat::v1::chat_service_client::ChatServiceClient;
use wsmschat::v1::client_event::Event as Ce;
use wsmschat::v1::server_event::Event as Se;
use wsmschat_server::Database;

struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start_on(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { child, port }
    }

    fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::start_on(port)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A cluster: one database, one Redis, `n` nodes.
struct Cluster {
    database: Database,
    redis: Redis,
    nodes: Vec<Proc>,
    _dir: tempfile::TempDir,
}

async fn cluster(n: usize) -> Cluster {
    cluster_with(n, &[]).await
}

async fn cluster_with(n: usize, extra: &[&str]) -> Cluster {
    // A cluster shares one PostgreSQL, whatever engine the rest of the suite runs on.
    let dir = tempfile::tempdir().unwrap();
    let database = postgres_database(&postgres_base()).await;
    let redis = Redis::start();
    let url = redis.url();
    let mut nodes = Vec::new();
    for _ in 0..n {
        // One at a time: the first seeds the demo site.
        let mut args = vec!["--redis-url", &url, "--heartbeat-secs", "2"];
        args.extend_from_slice(extra);
        nodes.push(spawn(&database, &args));
    }
    Cluster {
        database,
        redis,
        nodes,
        _dir: dir,
    }
}

impl Cluster {
    async fn chat(&self, node: usize) -> ChatServiceClient<Channel> {
        ChatServiceClient::new(
            Endpoint::from_shared(self.nodes[node].url.clone())
                .unwrap()
                .connect()
                .await
                .unwrap(),
        )
    }

    async fn login(&self, node: usize, email: &str, password: &str) -> String {
        let mut s = wsmschat::v1::session_service_client::SessionServiceClient::connect(
            self.nodes[node].url.clone(),
        )
        .await
        .unwrap();
        s.login(v1::LoginRequest {
            email: email.into(),
            password: password.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .token
    }

    async fn agent(&self, name: &str, topics: &[&str], capacity: u32) -> v1::Agent {
        let admin = self.login(0, ADMIN_EMAIL, ADMIN_PASSWORD).await;
        let mut a = wsmschat::v1::admin_service_client::AdminServiceClient::connect(
            self.nodes[0].url.clone(),
        )
        .await
        .unwrap();
        a.create_agent(authed(
            &admin,
            v1::CreateAgentRequest {
                agent: Some(v1::Agent {
                    email: format!("{}@example.com", name.to_lowercase()),
                    name: name.into(),
                    topics: topics.iter().map(|t| t.to_string()).collect(),
                    capacity,
                    ..Default::default()
                }),
                password: "agent-password".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .agent
        .unwrap()
    }

    async fn visitor(&self, node: usize) -> String {
        visitor_at(&self.nodes[node].url).await
    }

    async fn finish(mut self) {
        self.nodes.clear();
        self.redis.stop();
        drop_database(&self.database).await;
    }
}

/// Waits until `f` holds (polling), at most WAIT.
async fn eventually<F: std::future::Future<Output = bool>>(mut f: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached in time");
}

#[tokio::test]
async fn a_visitor_on_one_node_and_an_agent_on_another_converse() {
    let c = cluster(2).await;
    let ana = c.agent("Ana", &["Order"], 3).await;
    let watcher = c.agent("Wim", &["Payment"], 3).await;
    let mut chat0 = c.chat(0).await;
    let mut chat1 = c.chat(1).await;
    // Wim watches the inbox on node 0; Ana comes online on node 1.
    let wim = c.login(0, &watcher.email, "agent-password").await;
    let mut wim_inbox = Sub::open(&mut chat0, &wim, vec![], true).await.unwrap();
    let ana_token = c.login(1, &ana.email, "agent-password").await;
    let mut ana_inbox = Sub::open(&mut chat1, &ana_token, vec![], true)
        .await
        .unwrap();
    // Presence crosses nodes.
    let st = wim_inbox
        .next_where(|e| match e {
            Se::Presence(p) if p.agent_id == ana.id => Some(p.status),
            _ => None,
        })
        .await;
    assert_eq!(st, v1::PresenceStatus::Online as i32);

    // A visitor on node 0 asks; node 0's router assigns Ana (online on node 1).
    let visitor = c.visitor(0).await;
    let mut eventually_assigned = None;
    let (conv, _) = start_conversation(&mut chat0, &visitor, "Order", "where is my order?").await;
    for _ in 0..100 {
        let cv = conversation(&mut chat0, &visitor, &conv).await;
        if cv.status == v1::ConversationStatus::Open as i32 {
            eventually_assigned = Some(cv);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(eventually_assigned.expect("assigned").assignee_id, ana.id);
    let m = ana_inbox
        .next_where(|e| match e {
            Se::Message(m)
                if m.conversation_id == conv && m.kind == v1::MessageKind::Text as i32 =>
            {
                Some(m.clone())
            }
            _ => None,
        })
        .await;
    assert_eq!(m.text, "where is my order?");

    // Typing and the reply cross back to node 0.
    let mut vsub = Sub::open(&mut chat0, &visitor, vec![(conv.clone(), m.seq)], false)
        .await
        .unwrap();
    publish(
        &mut chat1,
        &ana_token,
        ev(Ce::Typing(v1::Typing {
            conversation_id: conv.clone(),
            on: true,
        })),
    )
    .await
    .unwrap();
    let t = vsub
        .next_where(|e| match e {
            Se::Typing(t) => Some(t.clone()),
            _ => None,
        })
        .await;
    assert_eq!(t.author_name, "Ana");
    let reply = publish(
        &mut chat1,
        &ana_token,
        send(&conv, "", "r1", "It left the warehouse today."),
    )
    .await
    .unwrap();
    let got = vsub.next_message().await;
    assert_eq!(
        (got.seq, got.text.as_str()),
        (reply.seq, "It left the warehouse today.")
    );
    // A note from node 1 never reaches the visitor on node 0, but Wim's inbox on node 0 sees it.
    let mut note = send(&conv, "", "n1", "VIP customer");
    if let Some(Ce::SendMessage(m)) = &mut note.event {
        m.kind = v1::MessageKind::Note as i32;
    }
    let note_ack = publish(&mut chat1, &ana_token, note).await.unwrap();
    let seen = wim_inbox
        .next_where(|e| match e {
            Se::Message(m) if m.seq == note_ack.seq => Some(m.clone()),
            _ => None,
        })
        .await;
    assert_eq!(seen.text, "VIP customer");
    let after = publish(
        &mut chat1,
        &ana_token,
        send(&conv, "", "r2", "Anything else?"),
    )
    .await
    .unwrap();
    assert_eq!(
        vsub.next_message().await.seq,
        after.seq,
        "the note was skipped for the visitor"
    );
    drop(ana_inbox);
    c.finish().await;
}

#[tokio::test]
async fn capacity_holds_when_visitors_arrive_on_every_node_at_once() {
    let c = cluster(3).await;
    let a = c.agent("Aki", &["Delivery"], 2).await;
    let b = c.agent("Bea", &["Delivery"], 2).await;
    let a_token = c.login(1, &a.email, "agent-password").await;
    let b_token = c.login(2, &b.email, "agent-password").await;
    let mut c1 = c.chat(1).await;
    let mut c2 = c.chat(2).await;
    let _a = Sub::open(&mut c1, &a_token, vec![], true).await.unwrap();
    let _b = Sub::open(&mut c2, &b_token, vec![], true).await.unwrap();
    // Every node must know both agents are online before the rush.
    let admin = c.login(0, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    for node in 0..3 {
        let mut chat = c.chat(node).await;
        let admin = admin.clone();
        eventually(|| {
            let mut chat = chat.clone();
            let admin = admin.clone();
            async move {
                let l = chat
                    .list_agent_presence(authed(&admin, v1::ListAgentPresenceRequest {}))
                    .await
                    .unwrap()
                    .into_inner();
                l.agents
                    .iter()
                    .filter(|x| x.status == v1::PresenceStatus::Online as i32)
                    .count()
                    >= 2
            }
        })
        .await;
        let _ = &mut chat;
    }
    let mut tasks = Vec::new();
    for i in 0..12 {
        let node = i % 3;
        let token = c.visitor(node).await;
        let mut chat = c.chat(node).await;
        tasks.push(tokio::spawn(async move {
            start_conversation(&mut chat, &token, "Delivery", "hello")
                .await
                .0
        }));
    }
    let mut convs = Vec::new();
    for t in tasks {
        convs.push(t.await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut chat0 = c.chat(0).await;
    let (mut per_a, mut per_b, mut queued) = (0, 0, 0);
    for id in &convs {
        let cv = conversation(&mut chat0, &admin, id).await;
        match (cv.status, cv.assignee_id.as_str()) {
            (2, x) if x == a.id => per_a += 1,
            (2, x) if x == b.id => per_b += 1,
            (1, _) => queued += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        (per_a, per_b, queued),
        (2, 2, 8),
        "capacity 2 each, the rest queued"
    );
    c.finish().await;
}

#[tokio::test]
async fn a_node_killed_mid_conversation_loses_nothing() {
    let mut c = cluster(2).await;
    let visitor = c.visitor(0).await;
    let mut chat0 = c.chat(0).await;
    let (conv, first) = start_conversation(&mut chat0, &visitor, "Other", "m0").await;
    let mut sub = Sub::open(&mut chat0, &visitor, vec![(conv.clone(), 0)], false)
        .await
        .unwrap();
    assert_eq!(sub.next_message().await.seq, first.seq);
    let mut acked = vec![first.seq];
    for i in 1..=20 {
        acked.push(
            publish(
                &mut chat0,
                &visitor,
                send(&conv, "", &format!("k{i}"), &format!("m{i}")),
            )
            .await
            .unwrap()
            .seq,
        );
    }
    let mut seen = first.seq;
    // Read a few, then the node dies (SIGKILL).
    for _ in 0..5 {
        seen = sub.next_message().await.seq;
    }
    let mut node0 = c.nodes.remove(0);
    node0.child.kill().unwrap();
    node0.child.wait().unwrap();
    // The client reconnects to the other node with its cursor.
    let mut chat1 = c.chat(0).await; // nodes[0] is now the surviving node
    let mut sub = Sub::open(&mut chat1, &visitor, vec![(conv.clone(), seen)], false)
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < acked.len() - acked.iter().position(|s| *s == seen).unwrap() - 1 {
        got.push(sub.next_message().await.seq);
    }
    let expected: Vec<u64> = acked.iter().copied().filter(|s| *s > seen).collect();
    assert_eq!(
        got, expected,
        "every acked message after the cursor, once, in order"
    );
    let more = publish(
        &mut chat1,
        &visitor,
        send(&conv, "", "after", "still there?"),
    )
    .await
    .unwrap();
    assert_eq!(sub.next_message().await.seq, more.seq);
    c.finish().await;
}

#[tokio::test]
async fn a_redis_restart_loses_nothing() {
    let mut c = cluster(2).await;
    let key = {
        let admin = c.login(0, ADMIN_EMAIL, ADMIN_PASSWORD).await;
        let mut a =
            wsmschat::v1::admin_service_client::AdminServiceClient::connect(c.nodes[0].url.clone())
                .await
                .unwrap();
        a.create_api_key(authed(
            &admin,
            v1::CreateApiKeyRequest {
                name: "bot".into(),
                scopes: vec![1],
                site_ids: vec![],
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .secret
    };
    let visitor = c.visitor(0).await;
    let mut chat0 = c.chat(0).await;
    let mut chat1 = c.chat(1).await;
    let (conv, first) = start_conversation(&mut chat0, &visitor, "Product", "hi").await;
    let mut sub = Sub::open(&mut chat0, &visitor, vec![(conv.clone(), first.seq)], false)
        .await
        .unwrap();
    // Cross-node delivery works before the outage.
    let a = publish(&mut chat1, &key, send(&conv, "", "b0", "before"))
        .await
        .unwrap();
    assert_eq!(sub.next_message().await.seq, a.seq);

    let port = c.redis.port;
    c.redis.stop();
    // The service keeps answering through node 1 while Redis is down: stored, not fanned out.
    let mut during = Vec::new();
    for i in 0..5 {
        during.push(
            publish(
                &mut chat1,
                &key,
                send(&conv, "", &format!("d{i}"), &format!("during {i}")),
            )
            .await
            .unwrap()
            .seq,
        );
    }
    c.redis = Redis::start_on(port);
    // The visitor's node reconnects to Redis and tells its streams to resync; the client
    // resumes from its cursor and gets everything, in order, once.
    let mut last = a.seq;
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got.len() < during.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "messages did not arrive: {got:?}"
        );
        match tokio::time::timeout(WAIT, sub.stream.message()).await {
            Ok(Ok(Some(r))) => match r.event.and_then(|e| e.event) {
                Some(Se::Message(m)) => {
                    assert!(m.seq > last, "no duplicate, in order");
                    last = m.seq;
                    got.push(m.seq);
                }
                Some(Se::ResyncRequired(_)) => {}
                _ => {}
            },
            // Stream ended (after a resync notice): reconnect with the cursor.
            _ => {
                sub = Sub::open(&mut chat0, &visitor, vec![(conv.clone(), last)], false)
                    .await
                    .unwrap();
            }
        }
    }
    assert_eq!(got, during);
    // And live cross-node delivery works again. (Node 1 lost publishes during the outage and
    // announces a resync once its Redis connection is back: a stream may be told to resync
    // once more, and then resumes from its cursor, as clients do.)
    let mut fresh = Sub::open(&mut chat0, &visitor, vec![(conv.clone(), last)], false)
        .await
        .unwrap();
    let after = publish(&mut chat1, &key, send(&conv, "", "after", "after"))
        .await
        .unwrap();
    let seq = loop {
        match tokio::time::timeout(WAIT, fresh.stream.message()).await {
            Ok(Ok(Some(r))) => {
                if let Some(Se::Message(m)) = r.event.and_then(|e| e.event) {
                    break m.seq;
                }
            }
            _ => {
                fresh = Sub::open(&mut chat0, &visitor, vec![(conv.clone(), last)], false)
                    .await
                    .unwrap();
            }
        }
    };
    assert_eq!(seq, after.seq);
    drop(sub);
    c.finish().await;
}

#[tokio::test]
async fn a_lost_publish_is_recovered_without_a_next_message() {
    let c = cluster(2).await;
    let visitor = c.visitor(0).await;
    let mut chat0 = c.chat(0).await;
    let mut chat1 = c.chat(1).await;
    let (conv, first) = start_conversation(&mut chat0, &visitor, "Product", "hi").await;
    let admin = c.login(1, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let mut sub = Sub::open(&mut chat0, &visitor, vec![(conv.clone(), first.seq)], false)
        .await
        .unwrap();
    // Kill the nodes' plain (publishing) Redis connections; subscriptions stay up, so node 0
    // never sees a disconnect of its own.
    let mut redis = redis_cli(c.redis.port);
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .query(&mut redis)
        .unwrap();
    assert!(killed >= 1, "killed {killed} publisher connections");
    let lost = publish(
        &mut chat1,
        &admin,
        send(&conv, "", "lost-1", "into the void"),
    )
    .await
    .unwrap();
    // No further message: node 0 must still deliver it (by a resync from the store).
    let mut last = first.seq;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lost publish was never recovered"
        );
        match tokio::time::timeout(WAIT, sub.stream.message()).await {
            Ok(Ok(Some(r))) => {
                if let Some(Se::Message(m)) = r.event.and_then(|e| e.event) {
                    assert!(m.seq > last);
                    last = m.seq;
                    if m.seq == lost.seq {
                        break;
                    }
                }
            }
            _ => {
                sub = Sub::open(&mut chat0, &visitor, vec![(conv.clone(), last)], false)
                    .await
                    .unwrap();
            }
        }
    }
    c.finish().await;
}

fn redis_cli(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_connection()
        .unwrap()
}

/// A small real PNG (via the server's own image crate).
fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 120]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// One HTTP request; (status, body).
async fn http(method: &str, url: &str, token: Option<&str>, body: Vec<u8>) -> (u16, Vec<u8>) {
    use http_body_util::{BodyExt, Full};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let mut req = http::Request::builder().method(method).uri(url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let res = client
        .request(req.body(Full::new(body.into())).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    (
        status,
        res.into_body().collect().await.unwrap().to_bytes().to_vec(),
    )
}

#[tokio::test]
async fn a_file_uploaded_on_one_node_downloads_from_another() {
    let c = cluster(2).await;
    let ana = c.agent("Ana", &["Order"], 3).await;
    let ana_token = c.login(1, &ana.email, "agent-password").await;
    let mut chat0 = c.chat(0).await;
    let mut chat1 = c.chat(1).await;
    let mut inbox = Sub::open(&mut chat1, &ana_token, vec![], true)
        .await
        .unwrap();
    // The visitor uploads and sends on node 0.
    let visitor = c.visitor(0).await;
    let bytes = png(400, 300);
    let (status, body) = http(
        "POST",
        &format!("{}/uploads?name=parcel.png", c.nodes[0].url),
        Some(&visitor),
        bytes.clone(),
    )
    .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let up: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let id = up["id"].as_str().unwrap().to_owned();
    let ack = publish(
        &mut chat0,
        &visitor,
        ev(Ce::SendMessage(v1::SendMessage {
            topic: "Order".into(),
            client_msg_id: "with-file".into(),
            text: "broken".into(),
            attachment_ids: vec![id.clone()],
            ..Default::default()
        })),
    )
    .await
    .unwrap();
    // The agent on node 1 gets it live, with links node 1 honours.
    let m = inbox
        .next_where(|e| match e {
            Se::Message(m) if m.seq == ack.seq && m.conversation_id == ack.conversation_id => {
                Some(m.clone())
            }
            _ => None,
        })
        .await;
    let a = &m.attachments[0];
    assert_eq!((a.id.as_str(), a.width, a.height), (id.as_str(), 400, 300));
    let (status, got) = http("GET", &format!("{}{}", c.nodes[1].url, a.url), None, vec![]).await;
    assert_eq!(status, 200);
    assert_eq!(got, bytes, "node 1 serves what node 0 stored");
    let (status, thumb) = http(
        "GET",
        &format!("{}{}", c.nodes[1].url, a.thumbnail_url),
        None,
        vec![],
    )
    .await;
    assert_eq!(status, 200);
    assert!(image::load_from_memory(&thumb).is_ok());
    // Fresh links from node 1 work on node 0 too (one signing key for the cluster).
    let fresh = chat1
        .get_attachment(authed(
            &ana_token,
            v1::GetAttachmentRequest {
                attachment_id: id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .attachment
        .unwrap();
    let (status, got) = http(
        "GET",
        &format!("{}{}", c.nodes[0].url, fresh.url),
        None,
        vec![],
    )
    .await;
    assert_eq!((status, got.len()), (200, bytes.len()));
    drop(inbox);
    c.finish().await;
}

#[tokio::test]
async fn webhooks_go_out_once_in_order_from_a_cluster() {
    use common::receiver::Receiver;
    let c = cluster_with(2, &["--webhooks-allow-private"]).await;
    let r = Receiver::start().await;
    webhook_at(&c.nodes[1].url, &r.url).await;
    // Two visitors, one per node, write 20 messages each; both nodes' dispatchers see every
    // delivery (one database) and race for them.
    let mut writers = Vec::new();
    for node in 0..2 {
        let url = c.nodes[node].url.clone();
        let visitor = c.visitor(node).await;
        writers.push(tokio::spawn(async move {
            let mut chat = ChatServiceClient::new(
                Endpoint::from_shared(url).unwrap().connect().await.unwrap(),
            );
            let (conv, _) =
                start_conversation(&mut chat, &visitor, "Order", &format!("n{node} 0")).await;
            for i in 1..20 {
                publish(
                    &mut chat,
                    &visitor,
                    send(&conv, "", &uuid(), &format!("n{node} {i}")),
                )
                .await
                .unwrap();
            }
            conv
        }));
    }
    let mut convs = Vec::new();
    for w in writers {
        convs.push(w.await.unwrap());
    }
    r.wait("40 messages", |g| g.len() >= 40).await;
    tokio::time::sleep(Duration::from_millis(1500)).await; // both nodes polled again
    let got = r.got();
    assert_eq!(got.len(), 40, "each event once, though two nodes deliver");
    for (node, conv) in convs.iter().enumerate() {
        let texts: Vec<String> = got
            .iter()
            .filter(|g| g.json["data"]["conversation"]["id"] == conv.as_str())
            .map(|g| {
                g.json["data"]["message"]["text"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        let expected: Vec<String> = (0..20).map(|i| format!("n{node} {i}")).collect();
        assert_eq!(texts, expected, "in order per conversation");
    }
    c.finish().await;
}

/// Queue positions are one truth cluster-wide: every node reads the same positions for a queue
/// whose conversations arrived on different nodes, and when an assignment on one node moves the
/// queue, visitors on every node are told their new position (each node tells its own).
#[tokio::test]
async fn queue_positions_agree_on_every_node_and_moves_reach_visitors_on_each() {
    let c = cluster(2).await;
    let ana = c.agent("Ana", &["Payment"], 1).await;
    let ana_token = c.login(1, &ana.email, "agent-password").await;
    let mut chat = [c.chat(0).await, c.chat(1).await];
    let _ana = Sub::open(&mut chat[1], &ana_token, vec![], true)
        .await
        .unwrap();
    let admin = c.login(0, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    // Node 0 must know Ana is online before the first visitor arrives there.
    {
        let chat0 = chat[0].clone();
        eventually(|| {
            let (mut chat, admin) = (chat0.clone(), admin.clone());
            async move {
                chat.list_agent_presence(authed(&admin, v1::ListAgentPresenceRequest {}))
                    .await
                    .unwrap()
                    .into_inner()
                    .agents
                    .iter()
                    .any(|x| x.status == v1::PresenceStatus::Online as i32)
            }
        })
        .await;
    }
    // Four visitors, alternating nodes: the first gets Ana, the others wait at 1, 2, 3.
    let mut visitors = Vec::new();
    for i in 0..4 {
        let node = i % 2;
        let token = c.visitor(node).await;
        let (conv, _) = start_conversation(&mut chat[node], &token, "Payment", "hi").await;
        let sub = Sub::open(&mut chat[node], &token, vec![], false)
            .await
            .unwrap();
        visitors.push((conv, node, sub));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let positions = |chat: &mut [ChatServiceClient<Channel>; 2], ids: Vec<String>| {
        let (mut c0, mut c1, admin) = (chat[0].clone(), chat[1].clone(), admin.clone());
        async move {
            let mut out = Vec::new();
            for id in ids {
                let a = conversation(&mut c0, &admin, &id).await.queue_position;
                let b = conversation(&mut c1, &admin, &id).await.queue_position;
                out.push((a, b));
            }
            out
        }
    };
    let ids: Vec<String> = visitors.iter().map(|v| v.0.clone()).collect();
    let first = conversation(&mut chat[0], &admin, &ids[0]).await;
    assert_eq!(first.assignee_id, ana.id);
    // Each node learns of the other's arrivals from the bus: equal within a moment.
    {
        let ids = ids[1..].to_vec();
        let chat = chat.clone();
        eventually(|| {
            let (mut chat, ids) = (chat.clone(), ids.clone());
            async move { positions(&mut chat, ids).await == [(1, 1), (2, 2), (3, 3)] }
        })
        .await;
    }
    // Ana (node 1) resolves: node 1 assigns the head; the two behind move up on both nodes.
    publish(
        &mut chat[1],
        &ana_token,
        ev(Ce::Resolve(v1::ResolveConversation {
            conversation_id: ids[0].clone(),
        })),
    )
    .await
    .unwrap();
    for (i, (conv, _, sub)) in visitors.iter_mut().enumerate().skip(2) {
        let c = wait_conversation(sub, conv, |c| c.queue_position == i as u32 - 1).await;
        assert_eq!(c.status, v1::ConversationStatus::Queued as i32);
    }
    assert_eq!(
        positions(&mut chat, ids[2..].to_vec()).await,
        [(1, 1), (2, 2)]
    );
    c.finish().await;
}

/// What staff change on one node holds on the others at once: a visitor blocked on node 0 is
/// cut off on node 1 (open stream, cached token, a new session), and let back in when
/// unblocked; a site's opening hours saved on node 0 are what node 1 tells the widget; a
/// snooze on node 0 reaches an inbox on node 1.
#[tokio::test]
async fn blocks_hours_and_snoozes_reach_every_node_at_once() {
    use wsmschat::v1::session_service_client::SessionServiceClient;
    let c = cluster(2).await;
    let admin = c.login(0, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let mut chat0 = c.chat(0).await;
    let mut chat1 = c.chat(1).await;
    let mut sessions1 = SessionServiceClient::connect(c.nodes[1].url.clone())
        .await
        .unwrap();
    let start = v1::StartVisitorSessionRequest {
        site_key: "demo".into(),
        ..Default::default()
    };
    let v = sessions1
        .start_visitor_session(start.clone())
        .await
        .unwrap()
        .into_inner();
    let (conv, _) = start_conversation(&mut chat1, &v.visitor_token, "Order", "hi").await;
    let mut stream = Sub::open(&mut chat1, &v.visitor_token, vec![(conv.clone(), 0)], false)
        .await
        .unwrap();

    // Blocked on node 0: node 1 ends the stream and refuses the cached token.
    let b = chat0
        .create_block(authed(
            &admin,
            v1::CreateBlockRequest {
                site_id: String::new(),
                kind: v1::BlockKind::Visitor as i32,
                value: v.visitor_id.clone(),
                reason: "spam".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .block
        .unwrap();
    let end = stream.end_status().await;
    assert_eq!(end.code(), tonic::Code::PermissionDenied);
    let e = publish(
        &mut chat1,
        &v.visitor_token,
        send(&conv, "", &uuid(), "again"),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    let e = sessions1
        .start_visitor_session(v1::StartVisitorSessionRequest {
            visitor_token: v.visitor_token.clone(),
            ..start.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    // Unblocked on node 0: node 1 lets the same token in.
    chat0
        .delete_block(authed(&admin, v1::DeleteBlockRequest { block_id: b.id }))
        .await
        .unwrap();
    publish(
        &mut chat1,
        &v.visitor_token,
        send(&conv, "", &uuid(), "back"),
    )
    .await
    .unwrap();

    // Hours saved on node 0: node 1 says closed (and sends the away reply) at once.
    let mut adm0 =
        wsmschat::v1::admin_service_client::AdminServiceClient::connect(c.nodes[0].url.clone())
            .await
            .unwrap();
    let mut site = adm0
        .list_sites(authed(&admin, v1::ListSitesRequest {}))
        .await
        .unwrap()
        .into_inner()
        .sites
        .into_iter()
        .find(|s| s.site_key == "demo")
        .unwrap();
    site.opening_hours = (1..=7)
        .map(|weekday| v1::OpeningHours {
            weekday,
            open_minute: 0,
            close_minute: 1440,
        })
        .collect();
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    site.closed_dates = vec![today.to_string(), today.tomorrow().unwrap().to_string()];
    site.away_message = "Closed today.".into();
    adm0.update_site(authed(
        &admin,
        v1::UpdateSiteRequest {
            site: Some(site),
            rotate_identity_secret: false,
        },
    ))
    .await
    .unwrap();
    let info = sessions1
        .start_visitor_session(start.clone())
        .await
        .unwrap()
        .into_inner();
    let site_info = info.site.unwrap();
    assert!(
        site_info.closed,
        "node 1 knows the new hours without waiting"
    );
    assert!(site_info.opens_at_ms > 0);
    let (c2, ack) = start_conversation(&mut chat1, &info.visitor_token, "Order", "open?").await;
    let mut vsub = Sub::open(&mut chat1, &info.visitor_token, vec![(c2, ack.seq)], false)
        .await
        .unwrap();
    assert_eq!(vsub.next_message().await.text, "Closed today.");

    // Snoozed on node 0: an inbox on node 1 gets the snapshot.
    let agent = c.agent("Zed", &[], 5).await;
    let zed = c.login(1, &agent.email, "agent-password").await;
    let mut inbox1 = Sub::open(&mut chat1, &zed, vec![], true).await.unwrap();
    publish(
        &mut chat0,
        &admin,
        ev(Ce::Join(v1::JoinConversation {
            conversation_id: conv.clone(),
        })),
    )
    .await
    .unwrap();
    publish(
        &mut chat0,
        &admin,
        ev(Ce::Snooze(v1::SnoozeConversation {
            conversation_id: conv.clone(),
            until_ms: 0,
            wake: false,
        })),
    )
    .await
    .unwrap();
    wait_conversation(&mut inbox1, &conv, |c| c.snoozed).await;
    c.finish().await;
}

/// Waits for the `VisitorChanged` of `visitor_id`.
async fn visitor_changed(inbox: &mut Sub, visitor_id: &str) {
    inbox
        .next_where(|e| match e {
            Se::Visitor(v) if v.visitor_id == visitor_id => Some(()),
            _ => None,
        })
        .await
}

#[tokio::test]
async fn attribute_declarations_and_visitor_changes_reach_every_node() {
    let c = cluster(2).await;
    let admin = c.login(0, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let mut chat0 = c.chat(0).await;
    let mut chat1 = c.chat(1).await;
    let visitor = c.visitor(1).await;
    let (conv, _) = start_conversation(&mut chat1, &visitor, "Order", "hi").await;
    let mut inbox = Sub::open(&mut chat0, &admin, vec![], true).await.unwrap();

    // Declared on node 0: node 1 takes the key at once (its site cache heard of the change).
    let mut adm0 =
        wsmschat::v1::admin_service_client::AdminServiceClient::connect(c.nodes[0].url.clone())
            .await
            .unwrap();
    let mut site = adm0
        .list_sites(authed(&admin, v1::ListSitesRequest {}))
        .await
        .unwrap()
        .into_inner()
        .sites
        .into_iter()
        .find(|s| s.site_key == "demo")
        .unwrap();
    site.attributes = vec![v1::AttributeDefinition {
        key: "plan".into(),
        page_writable: true,
        ..Default::default()
    }];
    adm0.update_site(authed(
        &admin,
        v1::UpdateSiteRequest {
            site: Some(site),
            rotate_identity_secret: false,
        },
    ))
    .await
    .unwrap();
    let r = chat1
        .set_attributes(authed(
            &visitor,
            v1::SetAttributesRequest {
                attributes: vec![v1::AttributeValue {
                    key: "plan".into(),
                    value: "pro".into(),
                }],
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let visitor_id = r.visitor.unwrap().id;
    // The inbox on node 0 hears of it, and of a page the visitor opens on node 1.
    visitor_changed(&mut inbox, &visitor_id).await;
    chat1
        .track_page(authed(
            &visitor,
            v1::TrackPageRequest {
                url: "https://shop.example/pricing".into(),
                title: "Pricing".into(),
                referrer: String::new(),
            },
        ))
        .await
        .unwrap();
    visitor_changed(&mut inbox, &visitor_id).await;
    let p = chat0
        .get_visitor(authed(
            &admin,
            v1::GetVisitorRequest {
                visitor_id: visitor_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let v = p.visitor.unwrap();
    assert_eq!(v.pages[0].url, "https://shop.example/pricing");
    assert_eq!(v.attributes[0].value, "pro");
    let _ = conv;
    drop(inbox);
    c.finish().await;
}
